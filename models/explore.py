#!/usr/bin/env python3
"""Which flow representation to deploy: accuracy against measured cost, one row per feature set.

    python models/explore.py CAPTURES... --labels DIR --out DIR
        [--sets counters=;flowstats=flowstats;splt=splt;tcp=tcp;all=flowstats,splt,tcp,entropy]
        [--label-column application_category_name] [--weir target/release/weir]
        [--plugin-dir DIR] [--folds 5] [--n-estimators 50] [--max-depth 16] [--jobs 2]

For each feature set (a name and the plugins it needs; the packet and byte counters of the
core columns, as NetFlow gives them, are in every set) this drives weir:

1. `weir extract` of every capture (one run per capture, as `make records` does: each capture
   has its own clock) with only the set's plugins loaded (`--no-plugins` for none);
2. `weir cost CAPTURES... --json` with the same plugins: the measured cost;

then joins the records with the labels (NFStream's CSVs, on the flow key, as `train.py` does),
cross-validates the same model on the set's features (stratified k-fold, `train.py`'s
estimator; classes with fewer than --min-class-samples flows become "Other") and writes

- OUT/explore.csv and OUT/explore.md: per set accuracy, macro precision, recall and F1 and the
  cost: `plugin_cycles_per_packet` (the set's plugins' cycles over every packet of the run, so
  plugins that stop early are amortised), the same from each plugin's median call
  (`plugin_p50_cycles_per_packet`: robust to a preempted call on a busy machine; the plot's
  x axis), each plugin's own mean cycles per packet it saw, plugin
  state bytes per flow, record bytes per flow (CSV bytes of a record);
- OUT/explore.png: macro F1 and accuracy against plugin cycles per packet;
- OUT/<set>/cost.json (what `weir cost --json` wrote) and OUT/<set>/records/*.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import group_rare, make_estimator  # noqa: E402
from weir_records import NOT_FEATURES, feature_matrix, join_labels, read_records  # noqa: E402

DEFAULT_SETS = "counters=;flowstats=flowstats;splt=splt;tcp=tcp;all=flowstats,splt,tcp,entropy"
_DIRS = ["bidirectional", "src2dst", "dst2src"]
# What NetFlow/IPFIX gives: the core columns' counters, plus protocol and server port.
COUNTERS = ["protocol", "dst_port"] + [f"{d}_{f}" for d in _DIRS for f in ("duration_ms", "packets", "bytes")]


def parse_sets(text: str) -> list[tuple[str, list[str]]]:
    sets = []
    for item in text.split(";"):
        if not item.strip():
            continue
        name, _, plugins = item.partition("=")
        name = name.strip()
        if not name:
            raise SystemExit(f"--sets: `{item}` has no name (NAME=plugin,plugin)")
        sets.append((name, [p.strip() for p in plugins.split(",") if p.strip()]))
    if not sets:
        raise SystemExit("--sets: no feature set")
    return sets


def plugin_features(weir: str, plugin_dir: str | None) -> dict[str, list[str]]:
    """Feature columns of every plugin, from `weir plugins list`."""
    cmd = [weir, "plugins", "list"] + (["--plugin-dir", plugin_dir] if plugin_dir else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    feats: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line and not line.startswith(" ") and not line.startswith("plugin directory"):
            current = line.split()[0]
            feats[current] = []
        elif line.strip().startswith("features:") and current:
            feats[current] = [f.split(":")[0] for f in line.split(":", 1)[1].split()]
    return feats


def set_config(out: Path, plugins: list[str]) -> Path | None:
    if not plugins:
        return None
    p = out / "weir.toml"
    p.write_text("[plugins]\nenabled = [" + ", ".join(json.dumps(x) for x in plugins) + "]\n"
                 "required = [" + ", ".join(json.dumps(x) for x in plugins) + "]\n")
    return p


def weir_args(cfg: Path | None, empty_dir: Path, plugin_dir: str | None) -> list[str]:
    if cfg is None:
        return ["--plugin-dir", str(empty_dir)]
    return ["--config", str(cfg)] + (["--plugin-dir", plugin_dir] if plugin_dir else [])


def extract_all(weir: str, captures: list[Path], out: Path, args: list[str], jobs: int) -> list[Path]:
    rec = out / "records"
    rec.mkdir(parents=True, exist_ok=True)

    def one(cap: Path) -> Path:
        dst = rec / f"{cap.name}.csv"
        r = subprocess.run([weir, "extract", str(cap), "--out", str(dst), "--quiet", "--no-progress", *args],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"weir extract {cap}: {r.stderr.strip()}")
        return dst

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        return list(ex.map(one, captures))


def measure_cost(weir: str, captures: list[Path], out: Path, args: list[str]) -> dict:
    js = out / "cost.json"
    r = subprocess.run([weir, "cost", *map(str, captures), "--json", str(js), *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"weir cost: {r.stderr.strip()}")
    (out / "cost.txt").write_text(r.stdout)
    return json.loads(js.read_text())


def cost_summary(cost: dict, plugins: list[str]) -> dict:
    """The set's cost from one `weir cost --json`: plugin cycles over all packets of the run."""
    rows = {r["name"]: r for r in cost["rows"]}
    packets = max(1, int(cost["packets"]))
    plugin_rows = [r for r in cost["rows"] if r["is_plugin"]]
    names = sorted(r["name"] for r in plugin_rows)
    if names != sorted(plugins):
        raise SystemExit(f"weir cost ran plugins {names}, the set needs {sorted(plugins)}")
    cycles = sum(int(r["cycles"]) for r in plugin_rows)
    # The median call's cycles per packet, weighted by the packets each plugin saw: what a
    # plugin costs when its thread is not preempted mid-call (a shared machine inflates means).
    p50 = sum(float(r["p50_cycles_per_packet"]) * int(r["packets"]) for r in plugin_rows)
    return {
        "plugin_cycles_per_packet": cycles / packets,
        "plugin_p50_cycles_per_packet": p50 / packets,
        "per_plugin_cycles_per_packet": {p: rows[p]["cycles_per_packet"] for p in plugins},
        "state_bytes_per_flow": sum(int(r["state_bytes"]) for r in plugin_rows),
        "packets": packets,
        "tsc_hz": cost.get("tsc_hz"),
    }


def record_bytes_per_flow(files: list[Path]) -> float:
    size = rows = 0
    for f in files:
        with open(f, newline="") as fh:
            header = fh.readline()
            size += os.path.getsize(f) - len(header.encode())
            rows += sum(1 for _ in csv.reader(fh))
    return size / max(1, rows)


def cross_validate(df, features: list[str], label_column: str, *, folds: int, seed: int,
                   n_estimators: int, max_depth: int | None, min_class_samples: int) -> dict:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    X = feature_matrix(df, features)
    y, rare = group_rare(df[label_column].astype(str).to_numpy(), min_class_samples)
    est = make_estimator("rf", seed, n_estimators, max_depth)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pred = cross_val_predict(est, X, y, cv=cv)
    p, r, f, _ = precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    return {"flows": int(len(y)), "classes": int(len(set(y))), "accuracy": float(accuracy_score(y, pred)),
            "precision_macro": float(p), "recall_macro": float(r), "f1_macro": float(f)}


COLUMNS = ["set", "plugins", "features", "flows", "classes", "accuracy", "precision_macro", "recall_macro",
           "f1_macro", "plugin_cycles_per_packet", "plugin_p50_cycles_per_packet", "per_plugin_cycles_per_packet",
           "state_bytes_per_flow", "record_bytes_per_flow"]


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, dict):
        return " ".join(f"{k}:{x:.1f}" for k, x in v.items()) or "-"
    if isinstance(v, list):
        return "+".join(v) or "-"
    return str(v)


def write_tables(rows: list[dict], out: Path) -> None:
    with open(out / "explore.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow([fmt(r[c]) if isinstance(r[c], (list, dict)) else r[c] for c in COLUMNS])
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    (out / "explore.md").write_text("\n".join(lines) + "\n")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = [r["plugin_p50_cycles_per_packet"] for r in rows]
    ax.plot(x, [r["f1_macro"] for r in rows], "o", label="macro F1")
    ax.plot(x, [r["accuracy"] for r in rows], "s", mfc="none", label="accuracy")
    for r in rows:
        ax.annotate(r["set"], (r["plugin_p50_cycles_per_packet"], r["f1_macro"]), textcoords="offset points",
                    xytext=(5, -12))
    ax.set_xlabel("plugin cycles per packet (weir cost: median call, over all packets)")
    ax.set_ylabel("cross-validated score")
    ax.set_title("Feature sets: accuracy against cost")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("captures", nargs="+", help="pcap/pcapng files or directories of them")
    ap.add_argument("--labels", required=True, help="labels CSV (or a directory of them), joined on the flow key")
    ap.add_argument("--label-column", default="application_category_name")
    ap.add_argument("--out", required=True)
    ap.add_argument("--sets", default=DEFAULT_SETS, help=f"NAME=plugin,plugin;... (default {DEFAULT_SETS})")
    ap.add_argument("--weir", default=str(Path(__file__).resolve().parent.parent / "target/release/weir"))
    ap.add_argument("--plugin-dir")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-estimators", type=int, default=50)
    ap.add_argument("--max-depth", type=int, default=16)
    ap.add_argument("--min-class-samples", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2, help="weir extract runs at a time")
    a = ap.parse_args(argv)
    # Concatenating wide record files one column at a time; harmless here.
    warnings.filterwarnings("ignore", message="DataFrame is highly fragmented")

    captures: list[Path] = []
    for c in a.captures:
        p = Path(c)
        captures.extend(sorted(q for q in p.iterdir() if q.suffix in (".pcap", ".pcapng")) if p.is_dir() else [p])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    empty = out / "no-plugins"
    empty.mkdir(exist_ok=True)
    feats = plugin_features(a.weir, a.plugin_dir)
    rows = []
    for name, plugins in parse_sets(a.sets):
        missing = [p for p in plugins if p not in feats]
        if missing:
            raise SystemExit(f"set {name}: plugins {missing} are not loadable (have {sorted(feats)})")
        d = out / name
        d.mkdir(exist_ok=True)
        args = weir_args(set_config(d, plugins), empty, a.plugin_dir)
        print(f"[{name}] extracting {len(captures)} captures with plugins {plugins or 'none'}", file=sys.stderr)
        files = extract_all(a.weir, captures, d, args, a.jobs)
        cost = cost_summary(measure_cost(a.weir, captures, d, args), plugins)
        df = join_labels(read_records(files), a.labels, a.label_column)
        features = [f for f in COUNTERS if f in df.columns]
        for p in plugins:
            features += [f for f in feats[p] if f in df.columns and f not in NOT_FEATURES]
        scores = cross_validate(df, features, a.label_column, folds=a.folds, seed=a.seed,
                                n_estimators=a.n_estimators, max_depth=a.max_depth,
                                min_class_samples=a.min_class_samples)
        row = {"set": name, "plugins": plugins, "features": len(features), **scores,
               "plugin_cycles_per_packet": cost["plugin_cycles_per_packet"],
               "plugin_p50_cycles_per_packet": cost["plugin_p50_cycles_per_packet"],
               "per_plugin_cycles_per_packet": cost["per_plugin_cycles_per_packet"],
               "state_bytes_per_flow": cost["state_bytes_per_flow"],
               "record_bytes_per_flow": record_bytes_per_flow(files)}
        print(f"[{name}] " + ", ".join(f"{k}={fmt(v)}" for k, v in row.items() if k != "set"), file=sys.stderr)
        rows.append(row)
    write_tables(rows, out)
    plot(rows, out / "explore.png")
    (out / "explore.json").write_text(json.dumps(rows, indent=2) + "\n")
    print((out / "explore.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

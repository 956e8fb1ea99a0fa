"""Reading flow records as `weir extract` writes them, and the model directory format.

Records are CSV or Parquet files whose columns carry NFStream's names (core columns such as
`bidirectional_packets`, plugin features such as `src2dst_mean_ps`). NFStream's own CSVs
(appliance/tests/data/nfstream/expected/) have the same names, so they serve as training data
until `weir extract` writes records end to end.

The model directory (`weir-model/1`) is `model.onnx` plus `model.json`; see models/README.md.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

FORMAT = "weir-model/1"

# The flow key a labels file is joined on: NFStream's bidirectional 5-tuple plus VLAN and tunnel
# id. `bidirectional_first_seen_ms` is used too when both sides have it, to tell apart flows
# that reuse a 5-tuple within one capture.
FLOW_KEY = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "vlan_id", "tunnel_id"]
FLOW_KEY_TIME = "bidirectional_first_seen_ms"

# Columns that identify a flow or a capture rather than describe its behaviour; never features.
NOT_FEATURES = {
    "id", "src_ip", "dst_ip", "src_mac", "dst_mac", "src_oui", "dst_oui", "expiration_id",
    "worker", "service", "prediction", "score_status", "model_name", "model_version",
    "application_name", "application_category_name", "requested_server_name",
    "bidirectional_first_seen_ms", "bidirectional_last_seen_ms", "src2dst_first_seen_ms",
    "src2dst_last_seen_ms", "dst2src_first_seen_ms", "dst2src_last_seen_ms",
    "record_kind", "interval_start_ms", "interval_end_ms", "community_id",
}

# `record_kind` values (weir's records since interval records; older files are all "flow").
RECORD_KINDS = ("flow", "interval")


def select_record_kinds(df: pd.DataFrame, kinds: list[str]) -> pd.DataFrame:
    """The rows of the given record kinds; records without a `record_kind` column are flows."""
    bad = [k for k in kinds if k not in RECORD_KINDS]
    if bad:
        raise SystemExit(f"unknown record kinds {bad}: use {list(RECORD_KINDS)}")
    kind = df["record_kind"] if "record_kind" in df.columns else pd.Series("flow", index=df.index)
    out = df[kind.fillna("flow").isin(kinds)]
    if out.empty:
        raise SystemExit(f"no {' or '.join(kinds)} records in the input")
    return out.reset_index(drop=True)

_DIRS = ["bidirectional", "src2dst", "dst2src"]

# The default feature set: what weir's core columns and the flowstats plugin give, without the
# source port (ephemeral) nor absolute times (they identify the capture, not the traffic).
DEFAULT_FEATURES = (
    ["protocol", "dst_port"]
    + [f"{d}_{f}" for d in _DIRS for f in ("duration_ms", "packets", "bytes")]
    + [f"{d}_{s}_{m}" for d in _DIRS for m in ("ps", "piat_ms") for s in ("min", "mean", "stddev", "max")]
    + [f"{d}_{flag}_packets" for d in _DIRS
       for flag in ("syn", "cwr", "ece", "urg", "ack", "psh", "rst", "fin")]
)


def expand(paths: list[str | Path]) -> list[Path]:
    """Files as given; a directory stands for every record file below it, sorted."""
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*")
                                if q.suffix in (".csv", ".parquet", ".pq") or q.name.endswith(".csv.gz")))
        else:
            files.append(p)
    return files


def read_records(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate record files (CSV, or Parquet by extension; a directory means every such
    file below it, sorted); adds `_source` (file name)."""
    frames = []
    sources = []
    for p in expand(paths):
        if p.suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif p.suffix in (".csv", ".gz") or p.name.endswith(".csv.gz"):
            df = pd.read_csv(p)
        else:
            raise SystemExit(f"{p}: not a records file (expected .csv, .csv.gz or .parquet)")
        frames.append(df)
        sources.append(np.full(len(df), p.name, dtype=object))
    if not frames:
        raise SystemExit("no record files given")
    # One frame built once: a wide record file reads into many blocks, and inserting a column
    # into it (per file) made pandas warn that the frame is fragmented.
    records = pd.concat(frames, ignore_index=True)
    source = pd.Series(np.concatenate(sources), name="_source", index=records.index)
    return pd.concat([records, source], axis=1)


MANIFEST_SUFFIX = ".manifest.json"


def manifest_of(records: str | Path) -> Path:
    """The data manifest `weir extract` writes beside a records file."""
    p = Path(records)
    return p.with_name(p.name + MANIFEST_SUFFIX)


def combine_manifests(manifests: dict[str, str]) -> str:
    """One fingerprint for several manifests: the manifest's own sha256 when there is one,
    else the sha256 of the lines `SHA256  NAME.manifest.json` sorted by name (bytewise), i.e.
    `sha256sum *.manifest.json | LC_ALL=C sort -k2 | sha256sum` in the records directory."""
    if len(manifests) == 1:
        return next(iter(manifests.values()))
    lines = "".join(f"{h}  {n}\n" for n, h in sorted(manifests.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def fingerprint(paths: list[str | Path]) -> dict:
    """sha256 of each input file and of them all (in the order given); with weir's data
    manifests beside the records, their sha256 each and combined (`manifest_sha256`, the data
    fingerprint). A manifest that does not describe the records beside it is refused."""
    total = hashlib.sha256()
    files = {}
    manifests = {}
    without = []
    for p in expand(paths):
        p = Path(p)
        data = p.read_bytes()
        h = hashlib.sha256(data).hexdigest()
        files[p.name] = h
        total.update(h.encode())
        m = manifest_of(p)
        if not m.is_file():
            without.append(p.name)
            continue
        mbytes = m.read_bytes()
        try:
            described = json.loads(mbytes)["output"]["sha256"]
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{m}: not a weir data manifest ({e})")
        if described != h:
            raise SystemExit(f"{m}: describes records with sha256 {described}, but {p} has "
                             f"sha256 {h}: re-extract the records, or delete the stale manifest")
        manifests[m.name] = hashlib.sha256(mbytes).hexdigest()
    fp = {"sha256": total.hexdigest(), "files": files}
    if manifests:
        fp["manifest_sha256"] = combine_manifests(manifests)
        fp["manifests"] = manifests
        if without:
            fp["without_manifest"] = without
    return fp


def join_labels(df: pd.DataFrame, labels_path: str | Path, label_column: str) -> pd.DataFrame:
    """Join a labels file (CSV or Parquet) on the flow key; unlabelled flows are dropped."""
    labels = read_records([labels_path]).drop(columns=["_source"])
    if label_column not in labels.columns:
        raise SystemExit(f"{labels_path}: no label column {label_column!r}")
    missing = [k for k in FLOW_KEY if k not in labels.columns]
    if missing:
        raise SystemExit(f"{labels_path}: the flow key needs columns {missing}")
    key = list(FLOW_KEY)
    if FLOW_KEY_TIME in labels.columns and FLOW_KEY_TIME in df.columns:
        key.append(FLOW_KEY_TIME)
    labels = labels[key + [label_column]].drop_duplicates(subset=key)
    df = df.drop(columns=[label_column], errors="ignore")
    out = df.merge(labels, on=key, how="inner")
    if out.empty:
        raise SystemExit(f"{labels_path}: no record matched a label on {key}")
    return out


def feature_matrix(df: pd.DataFrame, features: list[str]) -> np.ndarray:
    """The float32 matrix weir feeds the model (NaN stays NaN: weir's "missing")."""
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise SystemExit(f"features not in the records: {missing}")
    bad = [f for f in features if f in NOT_FEATURES]
    if bad:
        raise SystemExit(f"not usable as features (identifiers or labels): {bad}")
    text = [f for f in features if is_text_column(df[f])]
    if text:
        raise SystemExit(f"text columns are never numeric features (use one as --label-column): {text}")
    return df[features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)


def is_text_column(col: pd.Series) -> bool:
    """Whether a column holds text (a plugin's text feature, ABI 1.4): some present value is
    not a number. Such a column can be a label, never a numeric feature."""
    if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        return False
    present = col.dropna()
    if present.empty:
        return False
    return bool(pd.to_numeric(present, errors="coerce").isna().any())


def write_model_dir(out: str | Path, onnx_model, meta: dict) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(onnx_model.SerializeToString())
    meta = {"format": FORMAT, **meta}
    (out / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_model_json(model_dir: str | Path) -> dict:
    meta = json.loads((Path(model_dir) / "model.json").read_text())
    if meta.get("format") != FORMAT:
        raise SystemExit(f"{model_dir}/model.json: format is {meta.get('format')!r}, expected {FORMAT}")
    return meta

"""models/explore.py on a small set: the table's cost columns are what `weir cost` measures on
the same input, and its scores are a real cross-validation (sklearn on weir's records)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "appliance/tests/data/nfstream"
WEIR = Path(os.environ.get("WEIR_BIN", ROOT / "target/release/weir"))
CAPTURES = [DATA / "pcaps/android.pcap", DATA / "pcaps/iphone.pcap"]


@pytest.fixture(scope="module")
def explored(tmp_path_factory):
    if not WEIR.exists():
        pytest.fail(f"{WEIR} not built: run `cargo build --release --workspace` (make test does)")
    out = tmp_path_factory.mktemp("explore")
    subprocess.run([sys.executable, str(ROOT / "models/explore.py"), *map(str, CAPTURES),
                    "--labels", str(DATA / "expected"), "--out", str(out), "--weir", str(WEIR),
                    "--sets", "counters=;flowstats=flowstats;fs_tcp=flowstats,tcp",
                    "--folds", "3", "--min-class-samples", "6", "--n-estimators", "20"],
                   check=True, capture_output=True, text=True)
    with open(out / "explore.csv", newline="") as fh:
        rows = {r["set"]: r for r in csv.DictReader(fh)}
    return out, rows


def weir_cost(tmp: Path, config: Path | None, empty: Path) -> dict:
    js = tmp / "cost.json"
    args = ["--config", str(config)] if config else ["--plugin-dir", str(empty)]
    subprocess.run([str(WEIR), "cost", *map(str, CAPTURES), "--json", str(js), *args],
                   check=True, capture_output=True)
    return json.loads(js.read_text())


def test_cost_columns_match_weir_cost(explored, tmp_path):
    out, rows = explored
    assert list(rows) == ["counters", "flowstats", "fs_tcp"]
    for name, plugins in [("counters", []), ("flowstats", ["flowstats"]), ("fs_tcp", ["flowstats", "tcp"])]:
        r = rows[name]
        own = json.loads((out / name / "cost.json").read_text())
        # The table's cycles are exactly those of the `weir cost` run explore made.
        cyc = sum(x["cycles"] for x in own["rows"] if x["is_plugin"]) / own["packets"]
        assert float(r["plugin_cycles_per_packet"]) == pytest.approx(cyc, rel=1e-12)
        p50 = sum(x["p50_cycles_per_packet"] * x["packets"] for x in own["rows"] if x["is_plugin"]) / own["packets"]
        assert float(r["plugin_p50_cycles_per_packet"]) == pytest.approx(p50, rel=1e-12)
        # And an independent `weir cost` on the same input agrees: exactly on what is
        # deterministic (plugins, packets, flows, state), within noise on cycles.
        mine = weir_cost(tmp_path, (out / name / "weir.toml") if plugins else None, out / "no-plugins")
        assert mine["packets"] == own["packets"]
        mine_plugins = {x["name"]: x for x in mine["rows"] if x["is_plugin"]}
        assert sorted(mine_plugins) == sorted(plugins)
        for x in own["rows"]:
            if x["is_plugin"]:
                assert (x["packets"], x["flows"]) == (mine_plugins[x["name"]]["packets"], mine_plugins[x["name"]]["flows"])
        assert int(r["state_bytes_per_flow"]) == sum(x["state_bytes"] for x in mine_plugins.values())
        mine_cyc = sum(x["cycles"] for x in mine_plugins.values()) / mine["packets"]
        if plugins:
            assert cyc > 0 and mine_cyc > 0
            assert 0.2 < mine_cyc / cyc < 5, (name, cyc, mine_cyc)
        else:
            assert cyc == 0 == mine_cyc
    # More plugins cost more state and more record bytes.
    assert int(rows["counters"]["state_bytes_per_flow"]) < int(rows["flowstats"]["state_bytes_per_flow"]) \
        < int(rows["fs_tcp"]["state_bytes_per_flow"])
    assert float(rows["counters"]["record_bytes_per_flow"]) < float(rows["flowstats"]["record_bytes_per_flow"])


def test_scores_are_a_real_cross_validation(explored):
    out, rows = explored
    for r in rows.values():
        assert int(r["flows"]) > 50 and int(r["classes"]) >= 2
        for k in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
            assert 0.0 <= float(r[k]) <= 1.0
    assert int(rows["counters"]["features"]) == 11
    assert int(rows["flowstats"]["features"]) == 11 + 48
    md = (out / "explore.md").read_text()
    assert md.count("\n") == 2 + len(rows) and "| counters |" in md
    png = (out / "explore.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

"""models/weir_records.py reads weir's wide record files into one frame without pandas'
PerformanceWarning (the first thing `make demo` printed), and the frame is right: every row of
every file, `_source` naming its file."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import weir_records  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PCAPS = ROOT / "appliance/tests/data/nfstream/pcaps"
WEIR = Path(os.environ.get("WEIR_BIN", ROOT / "target/release/weir"))


def test_read_records_builds_the_frame_once_without_warnings(tmp_path):
    if not WEIR.exists():
        raise AssertionError(f"{WEIR} not built: run `cargo build --release --workspace`")
    # weir's own record files: ~200 columns, which pandas reads into many blocks.
    files = []
    for name in ["1kxun.pcap", "ajp.pcap", "amqp.pcap", "android.pcap"]:
        out = tmp_path / f"{name}.csv"
        subprocess.run([str(WEIR), "extract", str(PCAPS / name), "--out", str(out), "--quiet",
                        "--no-progress"], check=True, capture_output=True)
        files.append(out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = weir_records.read_records(files)
    want = [pd.read_csv(f) for f in files]
    assert len(df) == sum(len(w) for w in want)
    assert list(df.columns[:-1]) == list(pd.concat(want, ignore_index=True).columns)
    assert df.columns[-1] == "_source"
    expected_sources = [f.name for f, w in zip(files, want) for _ in range(len(w))]
    assert df["_source"].tolist() == expected_sources


def test_text_columns_are_labels_never_numeric_features():
    # A plugin's text feature (ABI 1.4, e.g. the ndpi plugin's application_name) read from CSV:
    # text is recognised whatever the pandas dtype, numbers stored as text are not text.
    df = pd.DataFrame({
        "application_name": ["TLS.Google", None, "DNS"],
        "sni": ["a.example", "b.example", None],
        "ports_as_text": ["443", "53", None],
        "dst_port": [443, 53, 53],
    })
    assert weir_records.is_text_column(df["application_name"])
    assert weir_records.is_text_column(df["sni"])
    assert not weir_records.is_text_column(df["ports_as_text"])
    assert not weir_records.is_text_column(df["dst_port"])
    try:
        weir_records.feature_matrix(df, ["dst_port", "sni"])
    except SystemExit as e:
        assert "text columns are never numeric features" in str(e) and "sni" in str(e)
    else:
        raise AssertionError("a text column was accepted as a numeric feature")
    assert weir_records.feature_matrix(df, ["dst_port", "ports_as_text"]).shape == (3, 2)

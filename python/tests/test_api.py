"""The Python API against independent oracles: NFStream's records of the bundled captures (the
flows, their counters and flowstats features) and the `communityid` reference package (a seed
given through `config`)."""
import os
from pathlib import Path

import communityid
import pandas as pd
import pytest

import weir

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "appliance" / "tests" / "data" / "nfstream"
PCAP = DATA / "pcaps" / "instagram.pcap"
KEY = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "bidirectional_first_seen_ms"]


@pytest.fixture(autouse=True)
def build_tree(monkeypatch):
    # Found from the repository's build tree, as a developer runs it.
    monkeypatch.chdir(ROOT)
    if not os.environ.get("WEIR_BIN") and not (ROOT / "target/release/weir").exists():
        pytest.fail("build weir first (cargo build --release --workspace --bins --lib)")


def nfstream():
    df = pd.read_csv(DATA / "expected" / f"{PCAP.name}.csv")
    return df.set_index(KEY).sort_index()


def test_extract_gives_nfstreams_flows_with_the_chosen_plugins():
    df = weir.extract(PCAP, plugins=["flowstats"])
    assert isinstance(df, pd.DataFrame)
    want = nfstream()
    got = df.set_index(KEY).sort_index()
    assert len(got) == len(want) > 10
    assert list(got.index) == list(want.index)
    for c in ("bidirectional_packets", "bidirectional_bytes", "src2dst_packets", "dst2src_bytes",
              "bidirectional_last_seen_ms"):
        assert (got[c].to_numpy() == want[c].to_numpy()).all(), c
        assert str(got[c].dtype) == "int64", c
    assert ((got["bidirectional_mean_ps"] - want["bidirectional_mean_ps"]).abs()
            <= 1e-6 * want["bidirectional_mean_ps"].abs().clip(lower=1)).all()
    # Only the chosen plugin: no splt columns.
    assert not [c for c in df.columns if c.startswith("splt_")]


def test_no_plugins_and_a_config_dict():
    df = weir.extract([PCAP], plugins=[], config={"flows": {"community_id_seed": 7}})
    assert "bidirectional_mean_ps" not in df.columns
    cid = communityid.CommunityID(7)
    tcp = df[df["protocol"] == 6]
    assert len(tcp) > 0
    for r in tcp.itertuples():
        t = communityid.FlowTuple.make_tcp(r.src_ip, r.dst_ip, r.src_port, r.dst_port)
        assert r.community_id == cid.calc(t)


def test_extract_to_writes_a_dataset_that_pandas_reads(tmp_path):
    out = weir.extract_to(PCAP, tmp_path / "out", plugins=[])
    assert out == tmp_path / "out"
    assert list(out.glob("date=*/hour=*/*.parquet"))
    df = pd.read_parquet(out)
    assert len(df) == len(nfstream())
    assert {"date", "hour"} <= set(df.columns)


def test_errors_name_the_problem(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        weir.extract(tmp_path / "missing.pcap")
    with pytest.raises(weir.WeirError, match="no_such_key"):
        weir.extract(PCAP, config={"flows": {"no_such_key": 1}})
    bad = tmp_path / "not-weir"
    bad.write_text("")
    monkeypatch.setenv("WEIR_BIN", str(bad))
    with pytest.raises(weir.WeirError, match="WEIR_BIN"):
        weir.weir_binary()

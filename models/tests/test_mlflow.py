"""Model tracking and versioning with a real MLflow, driving the real weir binary.

A file store: train.py logs a run (params, per-class metrics, confusion matrix, features,
data fingerprint, the ONNX model with model.json) and registers it; MLflow's own client is the
oracle for what was logged. weir loads the version by registry URI and scores exactly as the
directory train.py wrote, and as ONNX Runtime in Python on the MLflow copy of the model. The
data fingerprint is the sha256 of the manifests `weir extract` wrote (checked with sha256sum).

A tracking server (`mlflow server` on 127.0.0.1, its own venv): train.py logs and registers
over HTTP; the version is downloaded with MLflow's client into a directory weir loads (what an
operator does with a remote registry), and weir refuses, with the way out, to read a server's
registry whose artifacts it cannot reach locally through a file store URI. MLflow 3's default
server (SQLite backend, proxied artifacts): weir itself resolves `models:/NAME/VERSION` and
`latest` over HTTP, downloads the version into its cache and scores as the trained directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "models"))
from weir_records import feature_matrix  # noqa: E402

DATA = ROOT / "appliance/tests/data/nfstream"
CAPTURES = ["1kxun.pcap", "alexa-app.pcapng", "skype.pcap", "wechat.pcap"]
SCORED = "skype.pcap"
TRAIN_ARGS = ["--labels", str(DATA / "expected"), "--label-column", "application_category_name",
              "--n-estimators", "20", "--max-depth", "8", "--name", "demo", "--version", "7"]


def weir_bin() -> Path:
    p = Path(os.environ.get("WEIR_BIN", ROOT / "target/release/weir"))
    assert p.is_file(), f"{p}: build weir first (cargo build --release --workspace)"
    return p


def run(cmd, env=None, ok=True, **kw) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    e.update(env or {})
    p = subprocess.run([str(c) for c in cmd], env=e, capture_output=True, text=True,
                       timeout=300, **kw)
    if ok:
        assert p.returncode == 0, f"{cmd} failed:\n{p.stdout}\n{p.stderr}"
    return p


def extract(out: Path, capture: str, *args, env=None, ok=True):
    return run([weir_bin(), "extract", DATA / "pcaps" / capture, "--out", out, "--quiet",
                "--no-progress", *args], env=env, ok=ok)


def train(records, out: Path, *args, env=None):
    return run([sys.executable, ROOT / "models/train.py", *records, "--out", out, *TRAIN_ARGS,
                *args], env=env, cwd=out.parent)


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def scores(csv: Path) -> pd.DataFrame:
    df = pd.read_csv(csv, keep_default_na=False)
    cols = ["prediction"] + [c for c in df.columns if c.startswith("proba_")]
    return df[cols + ["score_status", "model_name", "model_version"]]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="module")
def records(work):
    d = work / "records"
    d.mkdir()
    for c in CAPTURES:
        extract(d / f"{c}.csv", c)
    return d


@pytest.fixture(scope="module")
def filestore(work, records):
    """One run logged to a file store and registered as `demo`."""
    store = work / "mlruns"
    out = work / "model"
    p = train([records], out, "--register", "demo",
              env={"MLFLOW_TRACKING_URI": store.as_uri()})
    assert "registered models:/demo/1" in p.stdout, p.stdout
    return {"store": store, "out": out, "logged": json.loads((out / "mlflow.json").read_text()),
            "meta": json.loads((out / "model.json").read_text())}


def mlflow_client(uri: str):
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    import mlflow
    from mlflow import MlflowClient
    mlflow.set_tracking_uri(uri)
    return mlflow, MlflowClient(uri)


def test_run_is_logged_with_metrics_artifacts_and_a_registered_version(filestore, tmp_path):
    mlflow, client = mlflow_client(filestore["store"].as_uri())
    meta, logged = filestore["meta"], filestore["logged"]
    r = client.get_run(logged["run_id"])
    m = meta["metadata"]["metrics"]
    assert r.data.params["estimator"] == "rf"
    assert r.data.params["n_estimators"] == "20"
    assert r.data.params["features"] == str(len(meta["features"]))
    assert r.data.params["data_fingerprint"] == meta["metadata"]["data"]["manifest_sha256"]
    assert r.data.metrics["accuracy"] == pytest.approx(m["accuracy"])
    assert r.data.metrics["f1_macro"] == pytest.approx(m["f1_macro"])
    for cls, pc in m["per_class"].items():
        for k in ("precision", "recall", "f1", "support"):
            assert r.data.metrics[f"{k}.{cls}"] == pytest.approx(pc[k]), (cls, k)
    arts = {a.path for a in client.list_artifacts(r.info.run_id)}
    assert {"features.txt", "confusion_matrix.csv", "confusion_matrix.json", "model.json",
            "data"} <= arts, arts
    manifests = {Path(a.path).name for a in client.list_artifacts(r.info.run_id, "data")}
    assert manifests == {f"{c}.csv.manifest.json" for c in CAPTURES}
    run_dir = Path(mlflow.artifacts.download_artifacts(run_id=r.info.run_id, dst_path=tmp_path))
    assert (run_dir / "features.txt").read_text().split() == meta["features"]
    cm = json.loads((run_dir / "confusion_matrix.json").read_text())
    # The holdout's confusion matrix: each row sums to the class's support.
    assert cm["labels"] == meta["classes"]
    assert [sum(row) for row in cm["matrix"]] == [m["per_class"][c]["support"]
                                                   for c in meta["classes"]]

    mv = client.get_model_version("demo", "1")
    assert mv.run_id == r.info.run_id and mv.status == "READY"
    model_dir = Path(mlflow.artifacts.download_artifacts(artifact_uri="models:/demo/1",
                                                         dst_path=tmp_path / "v1"))
    import yaml
    mlmodel = yaml.safe_load((model_dir / "MLmodel").read_text())
    assert mlmodel["flavors"]["onnx"]["data"] == "model.onnx"
    assert json.loads((model_dir / "model.json").read_text()) == meta


def test_manifest_hash_is_the_models_data_fingerprint(filestore, records, work):
    meta = filestore["meta"]
    data = meta["metadata"]["data"]
    for c in CAPTURES:
        man = records / f"{c}.csv.manifest.json"
        doc = json.loads(man.read_text())
        assert data["manifests"][man.name] == sha256(man)
        assert doc["output"]["sha256"] == sha256(records / f"{c}.csv")
        assert doc["captures"][0]["sha256"] == sha256(DATA / "pcaps" / c)
        assert {"flowstats", "splt", "tcp", "entropy"} <= {p["name"] for p in doc["plugins"]}
        version = run([weir_bin(), "--version"]).stdout.split()[-1]
        assert doc["weir_version"] == version and doc["format"] == "weir-manifest/1"
    # Several manifests combine as the README says: sha256sum's lines sorted by name, hashed.
    combined = run(["bash", "-c", "sha256sum *.manifest.json | LC_ALL=C sort -k2 | sha256sum"],
                   cwd=records).stdout.split()[0]
    assert data["manifest_sha256"] == combined
    # One records file: the fingerprint is its manifest's sha256 itself.
    one = work / "one"
    train([records / f"{SCORED}.csv"], one, "--no-mlflow")
    got = json.loads((one / "model.json").read_text())["metadata"]["data"]["manifest_sha256"]
    assert got == sha256(records / f"{SCORED}.csv.manifest.json")
    # A manifest that does not describe the records beside it is refused.
    stale = work / "stale"
    stale.mkdir()
    shutil.copy(records / f"{SCORED}.csv", stale / "a.csv")
    shutil.copy(records / "wechat.pcap.csv.manifest.json", stale / "a.csv.manifest.json")
    p = run([sys.executable, ROOT / "models/train.py", stale, "--out", work / "x", "--no-mlflow",
             *TRAIN_ARGS], ok=False)
    assert p.returncode != 0 and "a.csv.manifest.json: describes records with sha256" in p.stderr


def test_weir_scores_a_registry_version_as_the_directory(filestore, work):
    store = filestore["store"]
    by_dir, by_env, by_cfg = work / "dir.csv", work / "env.csv", work / "cfg.csv"
    extract(by_dir, SCORED, "--model", filestore["out"])
    extract(by_env, SCORED, "--model", "models:/demo/1",
            env={"MLFLOW_TRACKING_URI": store.as_uri()})
    cfg = work / "weir.toml"
    cfg.write_text(f'[model]\nmlflow_store = "{store}"\n')
    extract(by_cfg, SCORED, "--config", cfg, "--model", "models:/demo/latest")
    d, e, c = scores(by_dir), scores(by_env), scores(by_cfg)
    header = by_env.read_text().splitlines()[0].split(",")
    assert header[-3:] == ["score_status", "model_name", "model_version"], header[-4:]
    assert len(d) > 100 and (d["score_status"] == "scored").all()
    score_cols = [k for k in d.columns if k not in ("model_name", "model_version")]
    pd.testing.assert_frame_equal(d[score_cols], e[score_cols])
    pd.testing.assert_frame_equal(d[score_cols], c[score_cols])
    # Directory: model.json's name and version; registry: the registered name and version.
    assert set(zip(d.model_name, d.model_version.astype(str))) == {("demo", "7")}
    assert set(zip(e.model_name, e.model_version.astype(str))) == {("demo", "1")}
    assert set(zip(c.model_name, c.model_version.astype(str))) == {("demo", "1")}
    man = json.loads((work / "env.csv.manifest.json").read_text())
    assert man["model"]["name"] == "demo" and man["model"]["version"] == "1"

    # The oracle: ONNX Runtime in Python on MLflow's copy of the registered model.
    mlflow, _ = mlflow_client(store.as_uri())
    import mlflow.onnx
    import onnxruntime as ort
    onx = mlflow.onnx.load_model("models:/demo/1")
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1  # as weir: one thread, the trees summed in one order
    sess = ort.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
    meta = filestore["meta"]
    rec = pd.read_csv(by_env)
    probs = sess.run(["probabilities"], {"X": feature_matrix(rec, meta["features"])})[0]
    ours = rec[[f"proba_{k}" for k in meta["classes"]]].to_numpy()
    np.testing.assert_allclose(ours, probs, rtol=0, atol=1e-6)
    assert list(rec.prediction) == [meta["classes"][i] for i in probs.argmax(axis=1)]

    text = run([weir_bin(), "models", "inspect", "models:/demo/1"],
               env={"MLFLOW_TRACKING_URI": store.as_uri()}).stdout
    assert "MLflow registry models:/demo/1 (version 1" in text
    assert f"manifest sha256 {meta['metadata']['data']['manifest_sha256']}" in text


def test_refusals_name_the_path_and_reason(filestore, work, tmp_path):
    mlflow, _ = mlflow_client(filestore["store"].as_uri())
    src = Path(mlflow.artifacts.download_artifacts(artifact_uri="models:/demo/1",
                                                   dst_path=tmp_path / "dl"))
    env = {"MLFLOW_TRACKING_URI": filestore["store"].as_uri()}

    def refused(model, *args, env=None) -> str:
        p = extract(tmp_path / "x.csv", SCORED, "--model", model, *args, env=env, ok=False)
        assert p.returncode != 0, p.stdout
        return p.stderr

    no_json = tmp_path / "no_json"
    shutil.copytree(src, no_json)
    (no_json / "model.json").unlink()
    err = refused(no_json)
    assert f"{no_json}/model.json: an MLflow model without weir's model.json" in err, err

    # A model whose features the loaded plugins do not provide.
    err = refused(src, "--no-plugins")
    assert f"{src}/model.json: model feature `" in err and "not provided by anything" in err, err

    # A feature list that does not match the ONNX graph's input.
    short = tmp_path / "short"
    shutil.copytree(src, short)
    meta = json.loads((short / "model.json").read_text())
    meta["features"] = meta["features"][:-1]
    (short / "model.json").write_text(json.dumps(meta))
    err = refused(short)
    assert f"{short}/model.onnx: input `X` is {len(meta['features']) + 1} wide but model.json " \
           f"lists {len(meta['features'])} features" in err, err

    err = refused("models:/demo/9", env=env)
    assert "has no version 9 (versions: 1)" in err, err
    err = refused("models:/nope/1", env=env)
    assert "no registered model `nope`" in err and "registered: demo" in err, err
    err = refused("models:/demo/1")
    assert "needs a local MLflow store" in err, err
    # Nothing written for a refused model, and no manifest left behind.
    assert not (tmp_path / "x.csv.manifest.json").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_against_an_mlflow_tracking_server(records, filestore, work):
    server = Path(os.environ.get("WEIR_MLFLOW_SERVER", ROOT / "build/mlflow-server-venv/bin/mlflow"))
    assert server.is_file(), f"{server}: make test-python installs the tracking server's venv"
    backend, artifacts = work / "server-store", work / "server-artifacts"
    port = free_port()
    log = open(work / "server.log", "w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    proc = subprocess.Popen([server, "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", backend.as_uri(), "--artifacts-destination",
                             str(artifacts), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (work / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer in 90 s"
            time.sleep(0.5)
        out = work / "server-model"
        p = train([records], out, "--register", "demo-srv", env={"MLFLOW_TRACKING_URI": uri})
        assert "registered models:/demo-srv/1" in p.stdout, p.stdout
        # The run is on the server: its own REST API lists it.
        mlflow, client = mlflow_client(uri)
        logged = json.loads((out / "mlflow.json").read_text())
        r = client.get_run(logged["run_id"])
        assert r.data.params["data_fingerprint"] == \
            filestore["meta"]["metadata"]["data"]["manifest_sha256"]
        assert client.get_model_version("demo-srv", "1").status == "READY"
        # Artifacts went through the server to its artifact destination, not the client's disk.
        assert list(artifacts.rglob("MLmodel")), "no model under the server's artifact root"
        # What an operator does with a remote registry: download the version, give weir the dir.
        dl = Path(mlflow.artifacts.download_artifacts(artifact_uri="models:/demo-srv/1",
                                                      dst_path=work / "server-dl"))
        a, b = work / "srv-dl.csv", work / "srv-dir.csv"
        extract(a, SCORED, "--model", dl)
        extract(b, SCORED, "--model", out)
        sa, sb = scores(a), scores(b)
        cols = [k for k in sa.columns if k not in ("model_name", "model_version")]
        pd.testing.assert_frame_equal(sa[cols], sb[cols])
        assert (sa["score_status"] == "scored").all()
        # The server's store names artifacts by mlflow-artifacts: URIs weir cannot open: it
        # says how to get the model instead of guessing.
        p = extract(work / "x.csv", SCORED, "--model", "models:/demo-srv/1", ok=False,
                    env={"MLFLOW_TRACKING_URI": backend.as_uri()})
        assert p.returncode != 0
        assert "mlflow artifacts download -u models:/demo-srv/1 -d DIR" in p.stderr, p.stderr
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()


def test_weir_resolves_registry_uris_over_http_against_a_default_server(records, work):
    """MLflow 3's default server (SQLite backend, proxied artifacts, started with no store
    options): weir resolves models:/NAME/VERSION and models:/NAME/latest through its REST API,
    downloads the version into its cache and scores exactly as the directory train.py wrote."""
    server = Path(os.environ.get("WEIR_MLFLOW_SERVER", ROOT / "build/mlflow-server-venv/bin/mlflow"))
    assert server.is_file(), f"{server}: make test-python installs the tracking server's venv"
    home = work / "default-server"
    home.mkdir()
    port = free_port()
    log = open(work / "default-server.log", "w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    proc = subprocess.Popen([server, "server", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], cwd=home, stdout=log, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (work / "default-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer in 120 s"
            time.sleep(0.5)
        assert list(home.glob("*.db")), "the default server has no SQLite store"
        outs = []
        for i in (1, 2):
            out = work / f"http-model-{i}"
            p = train([records], out, "--register", "demo-http", "--seed", str(i),
                      env={"MLFLOW_TRACKING_URI": uri})
            assert f"registered models:/demo-http/{i}" in p.stdout, p.stdout
            outs.append(out)
        cache = work / "weir-cache"
        http = {"MLFLOW_TRACKING_URI": uri, "WEIR_MLFLOW_CACHE": str(cache)}
        for version, out in (("1", outs[0]), ("latest", outs[1])):
            a, b = work / f"http-{version}.csv", work / f"http-{version}-dir.csv"
            extract(a, SCORED, "--model", f"models:/demo-http/{version}", env=http)
            extract(b, SCORED, "--model", out)
            sa, sb = scores(a), scores(b)
            cols = [k for k in sa.columns if k not in ("model_name", "model_version")]
            pd.testing.assert_frame_equal(sa[cols], sb[cols])
            assert (sa["score_status"] == "scored").all()
            assert set(sa["model_name"]) == {"demo-http"}, set(sa["model_name"])
        assert {str(v) for v in scores(work / "http-latest.csv")["model_version"]} == {"2"}
        # Verified cache: the files as the server lists them; a damaged one is fetched again.
        cached = cache / "demo-http" / "1"
        assert (cached / "model.json").is_file() and (cached / "MLmodel").is_file()
        onnx = next(cached.rglob("*.onnx"))
        onnx.write_bytes(b"damaged")
        c = work / "http-again.csv"
        extract(c, SCORED, "--model", "models:/demo-http/1", env=http)
        assert onnx.stat().st_size > len(b"damaged")
        pd.testing.assert_frame_equal(scores(c), scores(work / "http-1.csv"))
        # A version the registry does not have: refused, naming the server and its answer.
        p = extract(work / "x.csv", SCORED, "--model", "models:/demo-http/9", env=http, ok=False)
        assert p.returncode != 0
        assert uri in p.stderr and "demo-http" in p.stderr, p.stderr
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        log.close()

#!/usr/bin/env python3
"""Make the model fixtures of weir's scoring tests, with scikit-learn's own answers.

    python models/testing/make_fixtures.py OUT_DIR RECORDS...

For each of rf, gb, logreg (StandardScaler + LogisticRegression) and iforest, trains on the
records' features, writes OUT_DIR/NAME/{model.onnx, model.json} exactly as train.py does, and
OUT_DIR/NAME/oracle.csv: one row per record (in input order: files as given, rows in file order)
with `source,row` and scikit-learn's `predict_proba` (columns `proba_<class>`) or
`decision_function` (column `anomaly_score`), printed with 17 significant digits. The Rust
test scores the same records through ONNX Runtime and compares.

Also writes the broken model directories every refusal test needs (see `broken()`).
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from train import train  # noqa: E402
from weir_export import classifier_to_onnx  # noqa: E402
from weir_records import DEFAULT_FEATURES, feature_matrix, read_records, write_model_dir  # noqa: E402

MODELS = {"rf": "classification", "gb": "classification", "logreg": "classification",
          "iforest": "anomaly"}


def oracle(est, task: str, X: np.ndarray) -> tuple[list[str], np.ndarray]:
    if task == "anomaly":
        return ["anomaly_score"], est.decision_function(X).reshape(-1, 1)
    return [f"proba_{c}" for c in est.classes_], est.predict_proba(X)


def write_oracle(path: Path, df, cols: list[str], values: np.ndarray) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["source", "row", *cols])
        row_in_file: dict[str, int] = {}
        for src, vals in zip(df["_source"], values):
            i = row_in_file.get(src, 0)
            row_in_file[src] = i + 1
            w.writerow([src, i, *(f"{v:.17g}" for v in vals)])


def self_check(model_dir: Path, X: np.ndarray, expected: np.ndarray) -> float:
    """The same comparison in Python, so a broken export is caught before the Rust test."""
    import onnxruntime as rt

    sess = rt.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"X": X})
    got = outs[1].reshape(len(X), -1)
    return float(np.max(np.abs(got.astype(np.float64) - expected)))


def broken(out: Path, good: Path, X: np.ndarray, df) -> None:
    """Model directories weir must refuse, each named after the reason."""
    meta = json.loads((good / "model.json").read_text())

    def clone(name: str) -> Path:
        d = out / name
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(good, d)
        (d / "oracle.csv").unlink(missing_ok=True)
        return d

    d = clone("no_json")
    (d / "model.json").unlink()

    d = clone("bad_format")
    (d / "model.json").write_text(json.dumps({**meta, "format": "weir-model/9"}))

    d = clone("unknown_feature")
    feats = list(meta["features"])
    feats[-1] = "no_such_feature_anywhere"
    (d / "model.json").write_text(json.dumps({**meta, "features": feats}))

    d = clone("width_mismatch")
    (d / "model.json").write_text(json.dumps({**meta, "features": meta["features"][:-1]}))

    d = clone("not_onnx")
    (d / "model.onnx").write_text("this is not an ONNX protobuf\n")

    # A float64 input: skl2onnx types the graph input after the sample it is given.
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    from weir_export import TARGET_OPSET
    y = df["application_category_name"].astype(str).to_numpy()
    with warnings.catch_warnings():  # convergence does not matter for a refusal fixture
        warnings.simplefilter("ignore")
        est = LogisticRegression(max_iter=50).fit(X[:, :3].astype(np.float64), y)
    onx = to_onnx(est, X[:1, :3].astype(np.float64), options={"zipmap": False},
                  target_opset=TARGET_OPSET)
    shutil.rmtree(out / "double_input", ignore_errors=True)
    write_model_dir(out / "double_input", onx, {
        "name": "double_input", "version": "1", "task": "classification",
        "features": meta["features"][:3], "classes": [str(c) for c in est.classes_],
        "input": "X", "metadata": {}})


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(sys.argv[1])
    paths = [Path(p) for p in sys.argv[2:]]
    df = read_records(paths)
    features = [f for f in DEFAULT_FEATURES if f in df.columns]
    X = feature_matrix(df, features)
    worst = 0.0
    for name, task in MODELS.items():
        est, onx, meta = train(df, features, estimator=name, task=task,
                               label_column="application_category_name", min_class_samples=10,
                               test_size=0.25, seed=0, n_estimators=30)
        meta = {"name": f"fixture-{name}", "version": "1", **meta, "input": "X"}
        if task == "anomaly":
            meta["alert"] = {"max_score": -0.05}
        else:
            meta["alert"] = {"class": "Web", "min_proba": 0.9}
        d = write_model_dir(out / name, onx, meta)
        cols, values = oracle(est, task, X)
        write_oracle(d / "oracle.csv", df, cols, values)
        diff = self_check(d, X, values)
        worst = max(worst, diff)
        print(f"{name}: {len(X)} rows, {len(cols)} score columns, onnxruntime vs sklearn max "
              f"|diff| = {diff:.3g}")
    broken(out, out / "rf", X, df)
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())

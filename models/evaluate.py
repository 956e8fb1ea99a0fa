#!/usr/bin/env python3
"""Evaluate a weir model directory on flow records: precision, recall, F1 per class and the
confusion matrix (classification), or the outlier fraction and score quantiles (anomaly).

    python models/evaluate.py MODEL_DIR RECORDS... [--label-column COL | --labels FILE]
        [--scored]

The model runs through ONNX Runtime exactly as weir runs it (float32 input, the
`probabilities` / `scores` output), so these are the numbers weir's scores would give.
With `--scored` the records are ones weir already scored (a `prediction` column) and the
predictions are taken from them instead of re-running the model.
Labels grouped as "Other" at training (model.json metadata.grouped_as_other) are grouped the
same way here; a label the model never saw counts as a miss for that label.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import OTHER, expand_inputs  # noqa: E402
from weir_records import feature_matrix, join_labels, load_model_json, read_records  # noqa: E402


def run_model(model_dir: Path, meta: dict, X: np.ndarray) -> np.ndarray:
    import onnxruntime as rt

    so = rt.SessionOptions()
    so.intra_op_num_threads = 1
    sess = rt.InferenceSession(str(model_dir / "model.onnx"), so, providers=["CPUExecutionProvider"])
    name = meta.get("input") or sess.get_inputs()[0].name
    outs = {o.name: v for o, v in zip(sess.get_outputs(), sess.run(None, {name: X}))}
    if meta["task"] == "anomaly":
        return outs["scores"].reshape(-1)
    return outs["probabilities"]


def confusion_table(classes: list[str], y_true, y_pred) -> str:
    from sklearn.metrics import confusion_matrix

    labels = list(classes) + sorted(set(y_true) - set(classes))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    w = max(len(c) for c in labels) + 1
    head = " " * w + " ".join(f"{c[:6]:>6}" for c in labels)
    rows = [f"{c:<{w}}" + " ".join(f"{v:>6}" for v in cm[i]) for i, c in enumerate(labels)]
    return "confusion matrix (rows: true, columns: predicted)\n" + "\n".join([head, *rows])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("records", nargs="+")
    ap.add_argument("--label-column", default="application_category_name")
    ap.add_argument("--labels", help="labels file joined on the flow key")
    ap.add_argument("--scored", action="store_true",
                    help="use the records' own `prediction` column (records weir scored)")
    a = ap.parse_args(argv)

    model_dir = Path(a.model_dir)
    meta = load_model_json(model_dir)
    df = read_records(expand_inputs(a.records))
    if a.labels:
        df = join_labels(df, a.labels, a.label_column)

    if meta["task"] == "anomaly":
        scores = run_model(model_dir, meta, feature_matrix(df, meta["features"]))
        q = np.quantile(scores, [0.001, 0.01, 0.5, 0.99])
        print(f"{len(scores)} flows; outliers (score < 0): {np.mean(scores < 0):.4f}; score "
              f"quantiles 0.1%/1%/50%/99%: " + " ".join(f"{v:.4f}" for v in q))
        return 0

    from sklearn.metrics import accuracy_score, classification_report

    classes = meta["classes"]
    if a.label_column not in df.columns:
        raise SystemExit(f"no label column {a.label_column!r} (use --labels FILE)")
    y = df[a.label_column].astype(str).to_numpy()
    grouped = meta.get("metadata", {}).get("grouped_as_other", [])
    if grouped:
        y = np.where(np.isin(y, grouped), OTHER, y)
    if a.scored:
        pred = df["prediction"].astype(str).to_numpy()
    else:
        proba = run_model(model_dir, meta, feature_matrix(df, meta["features"]))
        pred = np.asarray(classes)[np.argmax(proba, axis=1)]
    labels = list(classes) + sorted(set(y) - set(classes))
    print(f"model {meta['name']} v{meta.get('version')} on {len(y)} flows; "
          f"accuracy {accuracy_score(y, pred):.4f}")
    print(classification_report(y, pred, labels=labels, digits=4, zero_division=0))
    print(confusion_table(classes, y, pred))
    return 0


if __name__ == "__main__":
    sys.exit(main())

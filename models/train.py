#!/usr/bin/env python3
"""Train a scikit-learn model on flow records weir extracted and write a weir model directory.

    python models/train.py RECORDS... --out DIR [--estimator rf|gb|logreg|iforest]
        [--task classification|anomaly] [--features a,b,c | --features @file]
        [--label-column application_category_name | --labels LABELS.csv --label-column COL]
        (without --labels the label is a column of the records themselves, e.g. the ndpi
        plugin's text feature application_name or application_category_name)
        [--min-class-samples 10] [--alert-class C --alert-min-proba P | --alert-max-score S]
        [--experiment weir] [--register NAME] [--no-mlflow]
        [--records flow|interval|both]

RECORDS are CSV or Parquet files (or directories of them) as `weir extract` writes them; the
NFStream CSVs in appliance/tests/data/nfstream/expected/ have the same column names. Writes
DIR/model.onnx and DIR/model.json (format `weir-model/1`, see models/README.md).

When MLflow is installed the run is logged too (MLFLOW_TRACKING_URI, else ./mlruns; see
weir_mlflow.py), with the model as an MLflow model (ONNX flavor + model.json); `--register NAME`
registers it. The data fingerprint is the sha256 of the records' data manifests
(`FLOWS.csv.manifest.json`, written by `weir extract`) when they are there.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from weir_export import classifier_to_onnx, isolation_forest_to_onnx  # noqa: E402
import weir_mlflow  # noqa: E402
from weir_records import (  # noqa: E402
    DEFAULT_FEATURES, expand, feature_matrix, fingerprint, join_labels, manifest_of, read_records,
    select_record_kinds,
    write_model_dir)

OTHER = "Other"
ESTIMATORS = ("rf", "gb", "logreg", "iforest")


def make_estimator(name: str, seed: int, n_estimators: int = 100, max_depth: int | None = None):
    from sklearn.ensemble import (GradientBoostingClassifier, IsolationForest,
                                  RandomForestClassifier)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "rf":
        return RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                      random_state=seed, n_jobs=1)
    if name == "gb":
        return GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth or 3,
                                          random_state=seed)
    if name == "logreg":
        return Pipeline([("scale", StandardScaler()),
                         ("logreg", LogisticRegression(max_iter=2000, random_state=seed))])
    if name == "iforest":
        return IsolationForest(n_estimators=n_estimators, random_state=seed)
    raise SystemExit(f"unknown estimator {name!r} (one of {', '.join(ESTIMATORS)})")


def expand_inputs(inputs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for i in inputs:
        p = Path(i)
        if p.is_dir():
            paths.extend(sorted(q for q in p.iterdir()
                                if q.suffix in (".csv", ".parquet", ".pq") or q.name.endswith(".csv.gz")))
        elif p.exists():
            paths.append(p)
        else:
            raise SystemExit(f"{p}: no such records file or directory")
    return paths


def group_rare(y: np.ndarray, min_samples: int) -> tuple[np.ndarray, list[str]]:
    """Classes with fewer than min_samples flows become "Other": a forest cannot learn a class
    from a handful of flows, and a stratified split needs at least two of each."""
    labels, counts = np.unique(y, return_counts=True)
    rare = sorted(str(c) for c, n in zip(labels, counts) if n < min_samples)
    if rare:
        y = np.where(np.isin(y, rare), OTHER, y)
    return y, rare


def choose_features(arg: str | None, columns) -> list[str]:
    if arg:
        if arg.startswith("@"):
            text = Path(arg[1:]).read_text()
            return [f.strip() for f in text.replace(",", "\n").splitlines() if f.strip()]
        return [f.strip() for f in arg.split(",") if f.strip()]
    present = [f for f in DEFAULT_FEATURES if f in columns]
    absent = [f for f in DEFAULT_FEATURES if f not in columns]
    if absent:
        print(f"note: default features not in the records, left out: {absent}", file=sys.stderr)
    if not present:
        raise SystemExit("none of the default features is in the records; pass --features")
    return present


def train(df, features: list[str], *, estimator: str, task: str, label_column: str | None,
          min_class_samples: int, test_size: float, seed: int, n_estimators: int,
          max_depth: int | None = None):
    """Fit on a stratified split; returns (fitted estimator, onnx model, model.json fields)."""
    import sklearn
    import skl2onnx
    from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score,
                                 precision_recall_fscore_support)
    from sklearn.model_selection import train_test_split

    X = feature_matrix(df, features)
    est = make_estimator(estimator, seed, n_estimators, max_depth)
    meta: dict = {"task": task, "features": features}
    info: dict = {"estimator": estimator, "n_estimators": n_estimators, "max_depth": max_depth, "sklearn": sklearn.__version__,
                  "skl2onnx": skl2onnx.__version__, "rows": int(len(X)), "seed": seed}

    if task == "anomaly":
        if estimator != "iforest":
            raise SystemExit("--task anomaly needs --estimator iforest")
        X_tr, X_te = train_test_split(X, test_size=test_size, random_state=seed)
        est.fit(X_tr)
        onx = isolation_forest_to_onnx(est, len(features))
        info["metrics"] = {
            "train_outlier_fraction": float(np.mean(est.predict(X_tr) == -1)),
            "test_outlier_fraction": float(np.mean(est.predict(X_te) == -1)),
            "offset": float(est.offset_)}
        meta["metadata"] = info
        return est, onx, meta

    if estimator == "iforest":
        raise SystemExit("--estimator iforest is an anomaly detector: add --task anomaly")
    if label_column is None or label_column not in df.columns:
        raise SystemExit(f"no label column {label_column!r} in the records (or use --labels FILE)")
    # A text label from weir's own records (the ndpi plugin) is missing where the plugin did not
    # run or its value was refused: those flows carry no label and are left out.
    labelled = df[label_column].notna().to_numpy()
    if not labelled.all():
        print(f"note: {int((~labelled).sum())} records without a {label_column!r} label left out",
              file=sys.stderr)
        X = X[labelled]
        df = df[labelled]
    if len(df) == 0:
        raise SystemExit(f"no record has a {label_column!r} label")
    y = df[label_column].astype(str).to_numpy()
    y, rare = group_rare(y, min_class_samples)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=seed,
                                              stratify=y)
    est.fit(X_tr, y_tr)
    classes = [str(c) for c in est.classes_]
    pred = est.predict(X_te)
    p, r, f, n = precision_recall_fscore_support(y_te, pred, labels=classes, zero_division=0)
    info["label_column"] = label_column
    info["min_class_samples"] = min_class_samples
    info["grouped_as_other"] = rare
    info["metrics"] = {
        "split": f"stratified holdout {test_size} (seed {seed})",
        "accuracy": float(accuracy_score(y_te, pred)),
        "f1_macro": float(f1_score(y_te, pred, average="macro", zero_division=0)),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                          "support": int(n[i])} for i, c in enumerate(classes)},
        # rows: true class, columns: predicted class, both in `classes` order.
        "confusion_matrix": {"labels": classes, "matrix": confusion_matrix(
            y_te, pred, labels=classes).astype(int).tolist()}}
    meta["classes"] = classes
    meta["metadata"] = info
    return est, classifier_to_onnx(est, X_tr), meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="+", help="CSV/Parquet record files or directories")
    ap.add_argument("--out", required=True, help="model directory to write")
    ap.add_argument("--task", choices=("classification", "anomaly"), default="classification")
    ap.add_argument("--estimator", choices=ESTIMATORS, default=None,
                    help="rf (default for classification), gb, logreg (StandardScaler + "
                         "LogisticRegression), iforest (default for anomaly)")
    ap.add_argument("--features", help="comma-separated feature names, or @FILE (one per line)")
    ap.add_argument("--label-column", default="application_category_name")
    ap.add_argument("--labels", help="labels file (CSV/Parquet) joined on the flow key")
    ap.add_argument("--min-class-samples", type=int, default=10,
                    help='classes with fewer flows are relabelled "Other" (default 10)')
    ap.add_argument("--test-size", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-estimators", type=int, default=100)
    ap.add_argument("--max-depth", type=int, default=None,
                    help="tree depth limit (rf: unlimited by default, gb: 3); cheaper to score")
    ap.add_argument("--name", default=None)
    ap.add_argument("--version", default="1")
    ap.add_argument("--alert-class")
    ap.add_argument("--alert-min-proba", type=float, default=0.9)
    ap.add_argument("--alert-max-score", type=float)
    ap.add_argument("--experiment", default="weir", help="MLflow experiment (default weir)")
    ap.add_argument("--register", metavar="NAME",
                    help="register the logged model in MLflow's registry as NAME")
    ap.add_argument("--no-mlflow", action="store_true",
                    help="do not log to MLflow even if it is installed (also WEIR_NO_MLFLOW=1)")
    ap.add_argument("--records", dest="record_kinds", choices=("flow", "interval", "both"),
                    default="flow",
                    help="which records to train on and the model scores (model.json "
                         "\"records\"): flow records at flow end (default), interval records "
                         "([intervals] every_ms), or both")
    a = ap.parse_args(argv)
    use_mlflow = not (a.no_mlflow or os.environ.get("WEIR_NO_MLFLOW") == "1")
    if use_mlflow and not weir_mlflow.available():
        if a.register:
            raise SystemExit("--register needs MLflow: pip install -r models/requirements.txt")
        use_mlflow = False
    if a.register and not use_mlflow:
        raise SystemExit("--register needs MLflow logging (drop --no-mlflow / WEIR_NO_MLFLOW)")

    estimator = a.estimator or ("iforest" if a.task == "anomaly" else "rf")
    paths = expand_inputs(a.records)
    kinds = ["flow", "interval"] if a.record_kinds == "both" else [a.record_kinds]
    df = select_record_kinds(read_records(paths), kinds)
    fp = fingerprint(paths)
    if a.labels:
        df = join_labels(df, a.labels, a.label_column)
        fp["labels_sha256"] = fingerprint([a.labels])["sha256"]
    features = choose_features(a.features, df.columns)
    est, onx, meta = train(df, features, estimator=estimator, task=a.task,
                           label_column=a.label_column, min_class_samples=a.min_class_samples,
                           test_size=a.test_size, seed=a.seed, n_estimators=a.n_estimators,
                           max_depth=a.max_depth)
    # Where the labels came from: a labels file joined on the flow key, or (None) a column of
    # the records themselves (the ndpi plugin's text features).
    meta["metadata"]["labels"] = a.labels
    meta = {"name": a.name or Path(a.out).name, "version": a.version, **meta, "input": "X",
            "records": kinds}
    if a.alert_class is not None:
        if a.alert_class not in meta.get("classes", []):
            raise SystemExit(f"--alert-class {a.alert_class!r} is not a class of the model")
        meta["alert"] = {"class": a.alert_class, "min_proba": a.alert_min_proba}
    elif a.alert_max_score is not None:
        meta["alert"] = {"max_score": a.alert_max_score}
    meta["metadata"]["data"] = fp
    out = write_model_dir(a.out, onx, meta)
    m = meta["metadata"]["metrics"]
    print(f"wrote {out}/model.onnx and model.json: {estimator}, {len(features)} features, "
          f"{len(df)} flows; " + ", ".join(f"{k}={v:.4f}" for k, v in m.items()
                                          if isinstance(v, float)))
    if use_mlflow:
        params = {"estimator": estimator, "task": a.task, "n_estimators": a.n_estimators,
                  "max_depth": a.max_depth, "seed": a.seed, "test_size": a.test_size,
                  "min_class_samples": a.min_class_samples, "label_column": a.label_column,
                  "labels": a.labels}
        manifests = [manifest_of(p) for p in expand(paths) if manifest_of(p).is_file()]
        logged = weir_mlflow.log_run(meta=meta, onnx_model=onx, model_dir=out, params=params,
                                     manifests=manifests, experiment=a.experiment,
                                     register=a.register)
        print(f"MLflow: run {logged['run_id']} at {logged['tracking_uri']}, model "
              f"{logged['model_uri']}" + (f", registered {logged['registered']['uri']}"
                                          if "registered" in logged else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

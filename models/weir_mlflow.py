"""Logging a training run to MLflow, when it is installed (`mlflow-skinny` in requirements.txt).

One run per `train.py` call, in the experiment `--experiment` (default `weir`), at the tracking
URI `MLFLOW_TRACKING_URI`, else a file store `./mlruns`. MLflow 3 refuses file stores unless
`MLFLOW_ALLOW_FILE_STORE=true`; weir's registry reader reads exactly that layout, so this sets
it for a file store. The run holds:

- params: the training options, the feature count, rows, versions, `data_fingerprint`;
- metrics: accuracy, macro F1 and `precision.CLASS`, `recall.CLASS`, `f1.CLASS`,
  `support.CLASS` per class (anomaly models: outlier fractions);
- artifacts: `features.txt` (input order), `confusion_matrix.csv` / `.json`, `model.json`, the
  data manifests under `data/`;
- the model, logged with the ONNX flavor (`MLmodel`, `model.onnx`) plus weir's `model.json`
  in the same directory, so `weir extract --model DIR` reads it; `--register NAME` makes it a
  registered version (`models:/NAME/N`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path


def available() -> bool:
    try:
        import mlflow  # noqa: F401
        import mlflow.onnx  # noqa: F401
    except ImportError:
        return False
    return True


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        uri = Path("mlruns").resolve().as_uri()
    if uri.startswith("file:") or "://" not in uri:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return uri


def _metric_name(s: str) -> str:
    """MLflow metric names allow letters, digits, `_-. /`; `/` would nest in a file store."""
    return re.sub(r"[^A-Za-z0-9_\-. ]", "_", s)


def log_run(*, meta: dict, onnx_model, model_dir: Path, params: dict, manifests: list[Path],
            experiment: str, register: str | None) -> dict:
    """Log one run; returns what was logged (written to `model_dir/mlflow.json`)."""
    import mlflow
    import mlflow.onnx
    from mlflow import MlflowClient

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment)
    info = meta["metadata"]
    data = info.get("data", {})
    fingerprint = data.get("manifest_sha256") or data.get("sha256")
    with mlflow.start_run(run_name=f"{meta['name']}-{meta['version']}") as run:
        mlflow.log_params({**params, "features": len(meta["features"]), "rows": info["rows"],
                           "sklearn": info["sklearn"], "skl2onnx": info["skl2onnx"],
                           "data_fingerprint": fingerprint})
        mlflow.set_tags({"weir.model_name": meta["name"], "weir.model_version": meta["version"],
                         "weir.task": meta["task"], "weir.data_fingerprint": fingerprint,
                         "weir.data_fingerprint_kind":
                             "manifest" if data.get("manifest_sha256") else "records"})
        m = info["metrics"]
        mlflow.log_metrics({k: v for k, v in m.items() if isinstance(v, float)})
        for cls, pc in m.get("per_class", {}).items():
            mlflow.log_metrics({f"{k}.{_metric_name(cls)}": float(v) for k, v in pc.items()})
        mlflow.log_text("\n".join(meta["features"]) + "\n", "features.txt")
        cm = m.get("confusion_matrix")
        if cm:
            labels = cm["labels"]
            rows = ["true\\pred," + ",".join(labels)]
            rows += [f"{t}," + ",".join(str(x) for x in r) for t, r in zip(labels, cm["matrix"])]
            mlflow.log_text("\n".join(rows) + "\n", "confusion_matrix.csv")
            mlflow.log_dict(cm, "confusion_matrix.json")
        mlflow.log_artifact(str(model_dir / "model.json"))
        for mf in manifests:
            mlflow.log_artifact(str(mf), "data")
        logged = mlflow.onnx.log_model(onnx_model, name="model")
        # weir's model.json (the file train.py wrote) beside MLmodel, in the logged model's
        # own directory.
        MlflowClient().log_model_artifact(logged.model_id, str(model_dir / "model.json"))
        out = {"tracking_uri": uri, "experiment": experiment, "run_id": run.info.run_id,
               "model_id": logged.model_id, "model_uri": logged.model_uri,
               "data_fingerprint": fingerprint}
    if register:
        mv = mlflow.register_model(logged.model_uri, register)
        out["registered"] = {"name": register, "version": str(mv.version),
                             "uri": f"models:/{register}/{mv.version}"}
    (model_dir / "mlflow.json").write_text(json.dumps(out, indent=2) + "\n")
    return out

#!/usr/bin/env python3
"""The oracle of appliance/tests/scoring/spark.rs: weir's scores against scikit-learn's.

    python models/testing/spark_oracle.py ESTIMATOR.joblib MODEL_DIR SCORED...

ESTIMATOR is the scikit-learn model models/spark/train_spark.py fitted (--save-estimator),
MODEL_DIR its export, SCORED the Parquet records `weir extract --model MODEL_DIR` wrote (files
or dataset directories). Every record must be scored, each `proba_<class>` must equal
scikit-learn's `predict_proba` on the record's own features within 1e-5, and `prediction` must
be the most probable class. Prints one JSON line; exits non-zero at the first difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from weir_records import feature_matrix, load_model_json  # noqa: E402


def main(est_path: str, model_dir: str, *scored: str) -> int:
    est = joblib.load(est_path)
    meta = load_model_json(model_dir)
    classes = [str(c) for c in est.classes_]
    if meta["classes"] != classes:
        sys.exit(f"model.json classes {meta['classes']} != the estimator's {classes}")
    df = pd.concat([pd.read_parquet(p) for p in scored], ignore_index=True)
    if df.empty:
        sys.exit("no scored records")
    bad = df[df["score_status"] != "scored"]
    if len(bad):
        sys.exit(f"{len(bad)} records not scored: {bad['score_status'].unique()}")
    want = est.predict_proba(feature_matrix(df, meta["features"]))
    got = df[[f"proba_{c}" for c in classes]].to_numpy(dtype=np.float64)
    worst = float(np.max(np.abs(got - want)))
    if worst > 1e-5:
        i = int(np.argmax(np.max(np.abs(got - want), axis=1)))
        sys.exit(f"record {i}: weir {got[i].tolist()}, scikit-learn {want[i].tolist()}")
    argmax = np.array(classes)[np.argmax(got, axis=1)]
    wrong = int(np.sum(df["prediction"].to_numpy() != argmax))
    if wrong:
        sys.exit(f"{wrong} records whose prediction is not their most probable class")
    print(json.dumps({"rows": int(len(df)), "classes": len(classes), "worst": worst,
                      "predicted": sorted(set(df["prediction"]))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

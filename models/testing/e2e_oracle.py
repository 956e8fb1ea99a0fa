#!/usr/bin/env python3
"""The oracle of weir's end-to-end scoring test.

    python models/testing/e2e_oracle.py MODEL_DIR RECORDS_DIR LABELS_DIR

Trains a RandomForest (as train.py does) on the records weir itself extracted (RECORDS_DIR:
one CSV per capture), labelled with nDPI's category from NFStream's records (LABELS_DIR, joined
on the flow key), writes MODEL_DIR/{model.onnx, model.json}, and MODEL_DIR/oracle.csv: for
EVERY record of RECORDS_DIR (labelled or not) its capture (`_source`), flow key and
scikit-learn's `predict_proba`. The Rust test then scores the same captures with
`weir extract --model MODEL_DIR` and compares flow by flow.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from train import train  # noqa: E402
from weir_records import (DEFAULT_FEATURES, feature_matrix, join_labels,  # noqa: E402
                          read_records, write_model_dir)

KEY = ["src_ip", "src_port", "dst_ip", "dst_port", "protocol", "vlan_id", "tunnel_id",
       "bidirectional_first_seen_ms"]


def main(out: str, records: str, labels: str) -> int:
    everything = read_records([records])
    labelled = join_labels(everything.copy(), labels, "application_category_name")
    features = [f for f in DEFAULT_FEATURES if f in labelled.columns]
    est, onx, meta = train(labelled, features, estimator="rf", task="classification",
                           label_column="application_category_name", min_class_samples=5,
                           test_size=0.25, seed=0, n_estimators=20)
    d = write_model_dir(out, onx, {"name": "e2e", "version": "1", **meta, "input": "X"})
    proba = est.predict_proba(feature_matrix(everything, features))
    cols = [f"proba_{c}" for c in est.classes_]
    oracle = everything[["_source", *KEY]].copy()
    for i, c in enumerate(cols):
        oracle[c] = proba[:, i]
    oracle.to_csv(d / "oracle.csv", index=False, float_format="%.17g")
    print(f"{len(labelled)} labelled flows for training, {len(oracle)} flows in the oracle, "
          f"{len(cols)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

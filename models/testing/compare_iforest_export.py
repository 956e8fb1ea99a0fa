#!/usr/bin/env python3
"""skl2onnx's IsolationForest graph against weir_export's merged one: node count, agreement
with sklearn's decision_function, and ONNX Runtime time per row (one intra-op thread).

    python models/testing/compare_iforest_export.py RECORDS...
"""

import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as rt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from train import expand_inputs, make_estimator  # noqa: E402
from weir_export import TARGET_OPSET, isolation_forest_to_onnx  # noqa: E402
from weir_records import DEFAULT_FEATURES, feature_matrix, read_records  # noqa: E402


def timed(onx, X, batch):
    so = rt.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    s = rt.InferenceSession(onx.SerializeToString(), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    out = s.run(None, {name: X})
    scores = [o for o, d in zip(out, s.get_outputs()) if d.name == "scores"][0].reshape(-1)
    t0, rows = time.perf_counter(), 0
    while time.perf_counter() - t0 < 1.0:
        for i in range(0, len(X) - batch + 1, batch):
            s.run(None, {name: X[i:i + batch]})
            rows += batch
            if time.perf_counter() - t0 >= 1.0:
                break
    return scores, (time.perf_counter() - t0) * 1e6 / rows


def main():
    from skl2onnx import to_onnx

    df = read_records(expand_inputs(sys.argv[1:]))
    X = feature_matrix(df, [f for f in DEFAULT_FEATURES if f in df.columns])
    est = make_estimator("iforest", 0).fit(X)
    want = est.decision_function(X)
    graphs = {
        "skl2onnx": to_onnx(est, X[:1], target_opset=TARGET_OPSET),
        "merged": isolation_forest_to_onnx(est, X.shape[1]),
    }
    for name, onx in graphs.items():
        for batch in (1, 256):
            got, us = timed(onx, X, batch)
            print(f"{name:9} nodes={len(onx.graph.node):5} bytes={onx.ByteSize():8} batch={batch:4} "
                  f"max|diff|={np.max(np.abs(got - want)):.2e} us/row={us:.2f}")


if __name__ == "__main__":
    main()

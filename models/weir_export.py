"""Export fitted scikit-learn estimators to ONNX the way weir scores them.

Classifiers go through skl2onnx with `zipmap=False`, so the model has two outputs: `label`
(int64 class index, or the label itself) and `probabilities` (float32 [N, n_classes], in the
order of `estimator.classes_`).

IsolationForest is not exported with skl2onnx's converter: that graph has thousands of nodes
and runs in milliseconds per row. `isolation_forest_to_onnx` writes the whole forest as ONE
`ai.onnx.ml.TreeEnsembleRegressor` whose leaves hold each tree's path length (depth plus the
average path length c(n) of the samples left in the leaf), then the few arithmetic nodes of
Liu, Ting and Zhou, "Isolation Forest" (ICDM 2008): score(x) = 2^(-E[h(x)] / c(psi)), with
scikit-learn's `decision_function` = -score - offset_. Outputs: `label` (int64 [N], -1 outlier,
1 inlier, as sklearn's `predict`) and `scores` (float32 [N, 1], sklearn's `decision_function`).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper

TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}


def classifier_to_onnx(est, X: np.ndarray):
    from skl2onnx import to_onnx

    return to_onnx(est, X[:1].astype(np.float32), options={"zipmap": False},
                   target_opset=TARGET_OPSET)


def _avg_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): average path length of an unsuccessful BST search among n points (Liu et al.)."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    euler = 0.5772156649015329
    out[big] = 2.0 * (np.log(n[big] - 1.0) + euler) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _floor_f32(t: np.ndarray) -> np.ndarray:
    """The largest float32 <= t: with float32 inputs, x <= t  <=>  x <= floor32(t), so the
    ONNX comparison in float32 takes the same branch as scikit-learn's in float64."""
    f = t.astype(np.float32)
    over = f.astype(np.float64) > t
    f[over] = np.nextafter(f[over], np.float32(-np.inf))
    return f


def isolation_forest_to_onnx(forest, n_features: int, input_name: str = "X"):
    tree_ids, node_ids, feat_ids, values, modes, true_ids, false_ids = ([] for _ in range(7))
    t_tree, t_node, t_weight = [], [], []
    for ti, (est, feats) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
        tree = est.tree_
        left, right = tree.children_left, tree.children_right
        depth = np.zeros(tree.node_count, dtype=np.int64)
        for node in range(tree.node_count):  # children always follow their parent
            if left[node] != -1:
                depth[left[node]] = depth[node] + 1
                depth[right[node]] = depth[node] + 1
        leaf_value = depth + _avg_path_length(tree.n_node_samples)
        thresholds = _floor_f32(tree.threshold)
        for node in range(tree.node_count):
            tree_ids.append(ti)
            node_ids.append(node)
            if left[node] == -1:
                feat_ids.append(0)
                values.append(0.0)
                modes.append("LEAF")
                true_ids.append(0)
                false_ids.append(0)
                t_tree.append(ti)
                t_node.append(node)
                t_weight.append(float(leaf_value[node]))
            else:
                feat_ids.append(int(feats[tree.feature[node]]))
                values.append(float(thresholds[node]))
                modes.append("BRANCH_LEQ")
                true_ids.append(int(left[node]))
                false_ids.append(int(right[node]))

    n_trees = len(forest.estimators_)
    scale = -math.log(2.0) / (n_trees * float(_avg_path_length(np.array([forest.max_samples_]))[0]))
    ml = "ai.onnx.ml"
    nodes = [
        helper.make_node(
            "TreeEnsembleRegressor", [input_name], ["path_sum"], domain=ml, n_targets=1,
            nodes_treeids=tree_ids, nodes_nodeids=node_ids, nodes_featureids=feat_ids,
            nodes_values=values, nodes_modes=modes, nodes_truenodeids=true_ids,
            nodes_falsenodeids=false_ids, nodes_missing_value_tracks_true=[0] * len(tree_ids),
            target_treeids=t_tree, target_nodeids=t_node, target_ids=[0] * len(t_tree),
            target_weights=t_weight, aggregate_function="SUM", post_transform="NONE"),
        helper.make_node("Mul", ["path_sum", "scale"], ["exponent"]),
        helper.make_node("Exp", ["exponent"], ["score"]),
        helper.make_node("Neg", ["score"], ["neg_score"]),
        helper.make_node("Sub", ["neg_score", "offset"], ["scores"]),
        helper.make_node("Less", ["scores", "zero"], ["is_outlier2d"]),
        helper.make_node("Where", ["is_outlier2d", "minus_one", "one"], ["label2d"]),
        helper.make_node("Reshape", ["label2d", "flat"], ["label"]),
    ]
    inits = [
        helper.make_tensor("scale", TensorProto.FLOAT, [], [scale]),
        helper.make_tensor("offset", TensorProto.FLOAT, [], [float(forest.offset_)]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
        helper.make_tensor("minus_one", TensorProto.INT64, [], [-1]),
        helper.make_tensor("one", TensorProto.INT64, [], [1]),
        helper.make_tensor("flat", TensorProto.INT64, [1], [-1]),
    ]
    graph = helper.make_graph(
        nodes, "weir_isolation_forest",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 1])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid(d, v) for d, v in TARGET_OPSET.items()])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model

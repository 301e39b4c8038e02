"""A fitted random forest as the few arrays its predictions depend on, losslessly.

A forest grown on the whole Materials Project holds millions of nodes; scikit-learn's own
state (or a pickle of it) keeps for each node two child indices, a float64 threshold,
impurities, sample counts and the class fractions of every node. Prediction needs less,
and each part has a smaller exact form:

- **shape**: trees are laid out depth first (a left child follows its parent), so one bit
  per node (inner or leaf) gives every child index back;
- **split feature**: 16 bits per inner node when the vector is shorter than 65,536;
- **threshold**: scikit-learn compares its inputs as float32 (`X` is cast before any tree
  sees it) against a float64 threshold, and for a float32 `x`, `x <= t` exactly when
  `x <= t32`, the largest float32 not above `t`: 32 bits instead of 64, the same decisions
  for every input;
- **leaf fractions**: with bootstrap weights the fractions are integer counts divided by
  their sum, so the counts are stored and the division redone (checked bit for bit when
  saving; a forest where it does not hold keeps its float64 fractions).

Byte planes of the wide arrays are stored apart (the high bytes of neighbouring values are
alike), which is what lets the store's gzip shrink them. Files of the earlier layout
(`right0`, `feature0`, ... per tree) still load.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

FORMAT = 2


def save_forest(forest, file: Path) -> None:
    """Write `forest` (a fitted `RandomForestClassifier`) to `file` as an npz of arrays."""
    inner_parts, feature_parts, threshold_parts, missing_parts, value_parts, weight_parts = [], [], [], [], [], []
    node_counts, depths = [], []
    for est in forest.estimators_:
        state = est.tree_.__getstate__()
        nodes, values = state["nodes"], state["values"]
        inner = nodes["left_child"] >= 0
        if not np.array_equal(nodes["left_child"][inner], np.flatnonzero(inner) + 1):
            raise NotImplementedError("a tree not laid out depth first")
        node_counts.append(len(nodes))
        depths.append(state["max_depth"])
        inner_parts.append(inner)
        feature_parts.append(nodes["feature"][inner])
        threshold_parts.append(nodes["threshold"][inner])
        missing_parts.append(nodes["missing_go_to_left"][inner].astype(bool))
        value_parts.append(values[~inner][:, 0, :])
        weight_parts.append(nodes["weighted_n_node_samples"][~inner])
    features = np.concatenate(feature_parts)
    n_features = int(forest.n_features_in_)
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT, dtype=np.int64),
        "classes": np.asarray(forest.classes_),
        "n_features": np.array(n_features, dtype=np.int64),
        "node_counts": np.asarray(node_counts, dtype=np.int64),
        "depths": np.asarray(depths, dtype=np.int64),
        "inner": np.packbits(np.concatenate(inner_parts)),
        "missing_left": np.packbits(np.concatenate(missing_parts)),
        "feature": _planes(features.astype(np.uint16 if n_features < 2**16 else np.int32)),
        "threshold": _planes(_float32_at_most(np.concatenate(threshold_parts))),
    }
    values = np.concatenate(value_parts)
    counts = _exact_counts(values, np.concatenate(weight_parts))
    if counts is not None:
        arrays["leaf_counts"] = _planes(counts)
    else:
        arrays["leaf_values"] = values
    with open(file, "wb") as f:
        np.savez(f, **arrays)


def load_forest(file: Path, n_estimators: int, criterion: str, max_depth: int | None, max_features):
    """The `RandomForestClassifier` stored in `file`; raises KeyError, ValueError or
    TypeError on a file that is not one (the caller names the file)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    with np.load(file, allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    classes, n_features = a["classes"], int(a["n_features"])
    n_classes = len(classes)
    trees_arrays = _trees_v2(a, n_classes) if "format" in a else _trees_v1(a, n_classes)
    node_dtype = Tree(n_features, np.array([n_classes], dtype=np.intp), 1).__getstate__()["nodes"].dtype
    trees = []
    for right, feature, threshold, missing_left, leaf_values, depth in trees_arrays:
        inner = right >= 0
        nodes = np.zeros(len(right), dtype=node_dtype)
        nodes["left_child"] = np.where(inner, np.arange(len(right)) + 1, -1)
        nodes["right_child"] = right
        nodes["feature"] = feature
        nodes["threshold"] = -2.0
        nodes["threshold"][inner] = threshold
        nodes["missing_go_to_left"][inner] = missing_left
        values = np.zeros((len(right), 1, n_classes))
        values[~inner, 0, :] = leaf_values
        tree = Tree(n_features, np.array([n_classes], dtype=np.intp), 1)
        tree.__setstate__({"max_depth": depth, "node_count": len(right), "nodes": nodes, "values": values})
        est = DecisionTreeClassifier(criterion=criterion, max_depth=max_depth, max_features=max_features)
        est.tree_, est.n_features_in_, est.n_outputs_ = tree, n_features, 1
        est.classes_, est.n_classes_ = classes, n_classes
        est.max_features_ = _max_features(max_features, n_features)
        trees.append(est)
    forest = RandomForestClassifier(
        n_estimators=n_estimators, criterion=criterion, max_depth=max_depth, max_features=max_features
    )
    forest.estimators_, forest.estimator_ = trees, DecisionTreeClassifier()
    forest.n_features_in_, forest.n_outputs_ = n_features, 1
    forest.classes_, forest.n_classes_ = classes, n_classes
    return forest


def _trees_v2(a: dict[str, np.ndarray], n_classes: int):
    counts = a["node_counts"]
    total = int(counts.sum())
    inner = np.unpackbits(a["inner"], count=total).astype(bool)
    n_inner = int(inner.sum())
    missing = np.unpackbits(a["missing_left"], count=n_inner)
    feature = _unplanes(a["feature"], n_inner).astype(np.intp)
    threshold = _unplanes(a["threshold"], n_inner).astype(np.float64)
    if "leaf_counts" in a:
        leaf_counts = _unplanes(a["leaf_counts"], (total - n_inner) * n_classes).reshape(-1, n_classes)
        leaf_counts = leaf_counts.astype(np.float64)
        leaf_values = leaf_counts / leaf_counts.sum(axis=1, keepdims=True)
    else:
        leaf_values = a["leaf_values"].reshape(-1, n_classes)
    if len(leaf_values) != total - n_inner or len(a["depths"]) != len(counts):
        raise ValueError("arrays of different lengths")
    starts = np.concatenate([[0], np.cumsum(counts)])
    at_inner, at_leaf = np.concatenate([[0], np.cumsum(inner)]), np.concatenate([[0], np.cumsum(~inner)])
    for t in range(len(counts)):
        lo, hi = starts[t], starts[t + 1]
        tree_inner = inner[lo:hi]
        i0, i1, l0, l1 = at_inner[lo], at_inner[hi], at_leaf[lo], at_leaf[hi]
        feature_per_node = np.full(hi - lo, -2, dtype=np.intp)
        feature_per_node[tree_inner] = feature[i0:i1]
        yield (
            _right_children(tree_inner),
            feature_per_node,
            threshold[i0:i1],
            missing[i0:i1],
            leaf_values[l0:l1],
            int(a["depths"][t]),
        )


def _trees_v1(a: dict[str, np.ndarray], n_classes: int):
    """The first array layout (one set of arrays per tree, float64 thresholds)."""
    for i in range(int(a["n_trees"])):
        right = a[f"right{i}"]
        yield (
            right,
            a[f"feature{i}"],
            a[f"threshold{i}"],
            a[f"missing_left{i}"],
            a[f"leaf_values{i}"].reshape(-1, n_classes),
            int(a[f"depth{i}"]),
        )


def _right_children(inner: np.ndarray) -> np.ndarray:
    """Each node's right child (-1 at leaves) in a full binary tree stored depth first.

    With +1 per inner node and -1 per leaf, the running sum `s` first drops below its
    value at a subtree's first node just after that subtree; the right child of inner
    node i is where the subtree starting at i + 1 (its left child) ends, plus one."""
    n = len(inner)
    s = np.concatenate([[0], np.cumsum(np.where(inner, 1, -1))])  # s[k]: sum over nodes before k
    order_key = (s + n + 1) * (n + 2) + np.arange(n + 1)  # sorts by (value, position)
    sorted_keys = np.sort(order_key)
    parents = np.flatnonzero(inner)
    wanted = (s[parents + 1] - 1 + n + 1) * (n + 2) + (parents + 2)
    found = sorted_keys[np.searchsorted(sorted_keys, wanted)] % (n + 2)
    right = np.full(n, -1, dtype=np.intp)
    right[parents] = found
    return right


def _float32_at_most(t: np.ndarray) -> np.ndarray:
    """The largest float32 not above each float64 value."""
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, then the largest float32
        t32 = t.astype(np.float32)
        above = t32.astype(np.float64) > t
        t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
    return t32


def _exact_counts(values: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """Integer class counts whose fractions are `values` bit for bit, or None."""
    counts = np.rint(values * weights[:, None])
    if counts.size and (counts.max() >= 2**32 or counts.min() < 0):
        return None
    totals = counts.sum(axis=1, keepdims=True)
    if np.any(totals == 0):
        return None
    if not np.array_equal(counts / totals, values):
        return None
    return counts.astype(np.uint16 if counts.size == 0 or counts.max() < 2**16 else np.uint32)


def _planes(a: np.ndarray) -> np.ndarray:
    """The array's bytes grouped by position within each value (plane 0 of all, then 1...)."""
    a = np.ascontiguousarray(a)
    code = a.dtype.str.encode()  # e.g. b"<f4": three bytes for every dtype used here
    if len(code) != 3:
        raise TypeError(f"no byte-plane form for {a.dtype}")
    raw = a.view(np.uint8).reshape(-1, a.dtype.itemsize)
    return np.concatenate([np.frombuffer(code, dtype=np.uint8), raw.T.reshape(-1)])


def _unplanes(planes: np.ndarray, count: int) -> np.ndarray:
    dtype = np.dtype(planes[:3].tobytes().decode())
    raw = planes[3:].reshape(dtype.itemsize, count).T
    return np.ascontiguousarray(raw).view(dtype).reshape(count)


def _max_features(max_features, n_features: int) -> int:
    if max_features == "sqrt":
        return max(1, int(np.sqrt(n_features)))
    if max_features == "log2":
        return max(1, int(np.log2(n_features)))
    if isinstance(max_features, float):
        return max(1, int(max_features * n_features))
    if isinstance(max_features, int):
        return max_features
    return n_features

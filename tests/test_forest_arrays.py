"""A fitted random forest is stored as the arrays its predictions depend on: the same
bits from every input after a restore, a fraction of scikit-learn's state, no skops or
torch import, and files of the earlier layout still load."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness import FitContext, Samples, UserError
from harness.execute import persist
from harness.services.registry import load as load_registry
from harness_plugins.models import forest_arrays
from harness_plugins.models.trees import RandomForest

SAVE_IN_A_FRESH_PROCESS = textwrap.dedent("""
    import sys
    import numpy as np
    from harness import FitContext, Samples
    from harness.execute import persist
    from harness_plugins.models.trees import RandomForest
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(200, 5)), rng.integers(0, 2, 200)
    s = Samples(X, y, [str(i) for i in range(200)], None, "vector")
    model = RandomForest(n_estimators=5).fit(s, s, FitContext("cpu", 0, 2, lambda t, p: 0.0))
    fmt, blob = persist.dump(model)
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "skops"))
    print("HEAVY:", len(heavy), heavy[:3])
""")


def test_saving_a_forest_imports_neither_skops_nor_torch():
    done = subprocess.run([sys.executable, "-c", SAVE_IN_A_FRESH_PROCESS], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "HEAVY: 0 []" in done.stdout, done.stdout


def _forest(**fields):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 12))
    y = (X[:, 0] + rng.normal(scale=0.8, size=600) > 0).astype(int) * 2  # classes 0 and 2 of 0..2
    train = Samples(X, y, [str(i) for i in range(600)], None, "vector")
    model = RandomForest(**fields).fit(train, train, FitContext("cpu", 0, 3, lambda t, p: 0.0, threads=2))
    return model, rng.normal(size=(300, 12))


@pytest.mark.parametrize(
    "fields",
    [{}, {"max_depth": 6, "criterion": "entropy", "max_features": None}, {"n_estimators": 50, "max_features": "log2"}],
)
def test_a_stored_forest_predicts_the_same_bits(fields):
    model, X = _forest(**fields)
    X[::5, 3] = np.nan  # the missing-value branch is kept too
    fmt, blob = persist.dump(model)
    restored = persist.restore(load_registry(), (fmt, blob))
    np.testing.assert_array_equal(restored.classes_, model.classes_)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(restored.estimator_.predict(X), model.estimator_.predict(X))


def test_the_stored_forest_is_several_times_smaller_than_its_full_state():
    import io
    import zlib

    model, _ = _forest()
    full = io.BytesIO()
    for est in model.estimator_.estimators_:
        state = est.tree_.__getstate__()
        full.write(state["nodes"].tobytes() + state["values"].tobytes())
    _, blob = persist.dump(model)
    assert len(blob) * 2.5 < len(zlib.compress(full.getvalue(), 6))


def test_a_damaged_forest_file_is_one_clear_error(tmp_path):
    model, _ = _forest(n_estimators=3)
    model.save(tmp_path)
    data = dict(np.load(tmp_path / "forest.npz"))
    data["threshold"] = data["threshold"][:-7]  # a truncated array
    np.savez(tmp_path / "forest.npz", **data)
    with pytest.raises(UserError, match="not a forest harness wrote"):
        RandomForest(n_estimators=3).load(tmp_path)


def test_a_forest_stored_through_skops_still_loads(tmp_path):
    import skops.io

    model, X = _forest(n_estimators=4)
    skops.io.dump(model.estimator_, tmp_path / "forest.skops")
    restored = RandomForest(n_estimators=4).load(tmp_path)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


def test_a_forest_in_the_first_array_layout_still_loads(tmp_path):
    """The layout of the previous release: per tree its right children, features and
    float64 thresholds, and float64 leaf fractions."""
    model, X = _forest(n_estimators=4)
    arrays = {}
    for i, est in enumerate(model.estimator_.estimators_):
        state = est.tree_.__getstate__()
        nodes, inner = state["nodes"], state["nodes"]["left_child"] >= 0
        arrays[f"right{i}"] = nodes["right_child"].astype(np.int32)
        arrays[f"feature{i}"] = nodes["feature"].astype(np.int32)
        arrays[f"threshold{i}"] = nodes["threshold"][inner]
        arrays[f"missing_left{i}"] = nodes["missing_go_to_left"][inner]
        arrays[f"leaf_values{i}"] = state["values"][~inner]
        arrays[f"depth{i}"] = np.array(state["max_depth"])
    np.savez(tmp_path / "forest.npz", classes=model.classes_, n_features=np.array(12), n_trees=np.array(4), **arrays)
    restored = RandomForest(n_estimators=4).load(tmp_path)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


def test_a_float32_threshold_decides_every_float32_input_as_the_float64_one():
    rng = np.random.default_rng(7)
    t = np.concatenate([rng.normal(size=20_000) * 10.0 ** rng.integers(-30, 30, 20_000), [0.0, -0.0, np.inf, 1e300]])
    t32 = forest_arrays._float32_at_most(t)
    assert t32.dtype == np.float32 and np.all(t32.astype(np.float64) <= t)
    # the float32 neighbours of each threshold, where a wrong rounding would show
    with np.errstate(over="ignore"):
        x = np.stack(
            [
                t.astype(np.float32),
                np.nextafter(t.astype(np.float32), np.float32(np.inf)),
                np.nextafter(t.astype(np.float32), np.float32(-np.inf)),
                t32,
                np.nextafter(t32, np.float32(np.inf)),
            ]
        )
    np.testing.assert_array_equal(x.astype(np.float64) <= t, x <= t32.astype(np.float64))


def test_right_children_follow_from_one_bit_per_node():
    model, _ = _forest(n_estimators=5)
    for est in model.estimator_.estimators_:
        nodes = est.tree_.__getstate__()["nodes"]
        expected = np.where(nodes["left_child"] >= 0, nodes["right_child"], -1)
        np.testing.assert_array_equal(forest_arrays._right_children(nodes["left_child"] >= 0), expected)


def test_leaf_fractions_that_are_not_count_ratios_are_kept_as_they_are(tmp_path):
    model, X = _forest(n_estimators=3)
    tree = model.estimator_.estimators_[1].tree_
    state = tree.__getstate__()
    leaf = int(np.flatnonzero(state["nodes"]["left_child"] < 0)[0])
    state["values"][leaf, 0, :] = [0.1, 0.9]  # no integer counts give exactly these fractions
    tree.__setstate__(state)
    model.save(tmp_path)
    assert "leaf_values" in np.load(tmp_path / "forest.npz").files
    restored = RandomForest(n_estimators=3).load(tmp_path)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


def test_the_stored_forest_is_well_under_the_first_array_layout():
    """Counts, not fractions; float32 thresholds; one bit of shape per node (0.61 of the
    first layout here, 0.53 for a forest of 25,716 Materials Project crystals)."""
    import io
    import zlib

    model, _ = _forest()
    first_layout = io.BytesIO()
    for est in model.estimator_.estimators_:
        state = est.tree_.__getstate__()
        nodes, inner = state["nodes"], state["nodes"]["left_child"] >= 0
        for part in (
            nodes["right_child"].astype(np.int32),
            nodes["feature"].astype(np.int32),
            nodes["threshold"][inner],
            state["values"][~inner],
        ):
            first_layout.write(part.tobytes())
    _, blob = persist.dump(model)
    assert len(blob) < 0.7 * len(zlib.compress(first_layout.getvalue(), 6))


def test_trees_that_are_a_single_leaf_round_trip(tmp_path):
    """A bootstrap sample of one class grows a tree of one node and no split."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    forest = RandomForestClassifier(n_estimators=20, random_state=0).fit(rng.normal(size=(6, 3)), [0, 0, 0, 0, 0, 1])
    assert any(est.tree_.node_count == 1 for est in forest.estimators_)
    forest_arrays.save_forest(forest, tmp_path / "forest.npz")
    restored = forest_arrays.load_forest(tmp_path / "forest.npz", 20, "gini", None, "sqrt")
    X = rng.normal(size=(100, 3))
    np.testing.assert_array_equal(restored.predict_proba(X), forest.predict_proba(X))

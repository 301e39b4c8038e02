"""Issue 22, second stop: a forest stored as the arrays it predicts with (compact, and
saved without importing skops, which walks all of scikit-learn and imports torch)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness import FitContext, Samples, UserError, persist
from harness.registry import load as load_registry
from harness_plugins.models.trees import RandomForest

SAVE_IN_A_FRESH_PROCESS = textwrap.dedent("""
    import sys
    import numpy as np
    from harness import FitContext, Samples, persist
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


@pytest.mark.parametrize("fields", [{}, {"max_depth": 6, "criterion": "entropy", "max_features": None},
                                    {"n_estimators": 50, "max_features": "log2"}])
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
    del data["right1"]
    np.savez(tmp_path / "forest.npz", **data)
    with pytest.raises(UserError, match="not a forest harness wrote"):
        RandomForest(n_estimators=3).load(tmp_path)


def test_a_forest_stored_through_skops_still_loads(tmp_path):
    import skops.io

    model, X = _forest(n_estimators=4)
    skops.io.dump(model.estimator_, tmp_path / "forest.skops")
    restored = RandomForest(n_estimators=4).load(tmp_path)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))

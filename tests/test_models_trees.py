"""The built-in tree models under the model contract: fields, padding by the core,
persistence as data."""

import os

import numpy as np
import pytest

from harness import UserError

from harness.execute import tuning
from harness import FitContext, Samples
from harness_plugins.models.trees import RandomForest, XGBoost


@pytest.fixture(scope="module")
def two_of_three():
    """Three-class task whose training split holds classes 0 and 2 only."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (40, 3)), rng.normal(3, 1, (40, 3))])
    y = np.repeat([0, 2], 40)
    return Samples(X, y, [str(i) for i in range(80)], ["a", "b", "c"], "vector")


def ctx():
    return FitContext("cpu", 0, 3, lambda t, p: 0.0)


@pytest.mark.parametrize("cls", [RandomForest, XGBoost])
def test_fields_set_the_estimator_and_the_core_pads_the_missing_class(cls, two_of_three):
    model = cls(n_estimators=7, max_depth=3).fit(two_of_three, two_of_three, ctx())
    assert model.estimator_.n_estimators == 7 and model.estimator_.max_depth == 3
    proba = tuning.class_probabilities(model, two_of_three.X, 3)
    assert proba.shape == (80, 3) and (proba[:, 1] == 0).all() and np.allclose(proba.sum(axis=1), 1)
    assert (np.argmax(proba, axis=1) == two_of_three.y).mean() > 0.95


@pytest.mark.parametrize("cls", [RandomForest, XGBoost])
def test_a_saved_model_predicts_the_same_after_load(cls, two_of_three, tmp_path):
    model = cls(n_estimators=9).fit(two_of_three, two_of_three, ctx())
    model.save(tmp_path)
    assert not list(tmp_path.glob("*.pkl"))
    restored = cls(n_estimators=9).load(tmp_path)
    np.testing.assert_array_equal(restored.classes_, model.classes_)
    np.testing.assert_array_equal(restored.predict_proba(two_of_three.X), model.predict_proba(two_of_three.X))


def test_a_forest_file_holding_other_types_is_refused(tmp_path):
    import skops.io
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    skops.io.dump(make_pipeline(FunctionTransformer(os.getcwd)), tmp_path / "forest.skops")
    with pytest.raises(UserError, match="holds types a random forest does not"):
        RandomForest().load(tmp_path)


def test_the_paper_space_is_declared_over_fields():
    assert set(RandomForest.search_space) == {"n_estimators", "criterion", "max_depth", "max_features"}
    assert set(XGBoost.search_space) <= set(XGBoost.hyperparameters())
    assert RandomForest.search_space["max_depth"].values == (6, 12, None)


def test_forest_probabilities_do_not_depend_on_thread_timing():
    """Fitted with two threads, the forest must predict the same bits every time (the
    stored test predictions are compared exactly by `harness predict`)."""
    from harness import FitContext, Samples
    from harness_plugins.models.trees import RandomForest

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(2000, 8)), rng.integers(0, 3, 2000)
    train = Samples(X, y, [str(i) for i in range(2000)], [f"c{i}" for i in range(8)], "vector")
    ctx = FitContext("cpu", 0, 3, lambda t, p: 0.0, threads=2)
    model = RandomForest(n_estimators=150, max_depth=6).fit(train, train, ctx)
    first = model.predict_proba(X)
    for _ in range(20):
        np.testing.assert_array_equal(model.predict_proba(X), first)

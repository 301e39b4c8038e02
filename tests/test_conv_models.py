"""cnn1d and cnn3d: they learn what a pattern or a voxel grid shows, deterministically,
through the shared training loop (tiny synthetic data, CPU, seconds)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from harness.services import registry
from harness import FitContext, Samples
from harness import UserError
from harness_plugins.models.neural import CNN1D, CNN3D


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float((proba.argmax(1) == y).mean())


def ctx(seed: int = 0) -> FitContext:
    return FitContext(device="cpu", seed=seed, n_classes=2, score=accuracy)


def vectors(X: np.ndarray, y: np.ndarray) -> Samples:
    return Samples(
        X.astype(np.float32), y, [str(i) for i in range(len(y))], [f"c{i}" for i in range(X.shape[1])], "vector"
    )


def patterns(n: int, seed: int, length: int = 200) -> Samples:
    """Class 0: one peak; class 1: two peaks 20-60 apart; anywhere on the axis (position
    says nothing)."""
    rng = np.random.default_rng(seed)
    axis = np.arange(length)
    y = np.arange(n) % 2
    X = np.zeros((n, length))
    for i, c in enumerate(y):
        first = rng.uniform(10, length - 70)
        for centre in [first, first + rng.uniform(20, 60)][: 1 + c]:
            X[i] += np.exp(-0.5 * ((axis - centre) / 2.0) ** 2)
        X[i] += rng.normal(0, 0.02, length)
    return vectors(X, y)


def voxels(n: int, seed: int, g: int = 8) -> Samples:
    """Class 0: a tight blob; class 1: a wide one; centred anywhere in the periodic cell."""
    rng = np.random.default_rng(seed)
    axis = np.arange(g)
    y = np.arange(n) % 2
    X = np.zeros((n, g, g, g))
    for i, c in enumerate(y):
        centre = rng.uniform(0, g, size=3)
        d = [np.minimum(np.abs(axis - x0), g - np.abs(axis - x0)) for x0 in centre]  # periodic distance
        r2 = d[0][:, None, None] ** 2 + d[1][None, :, None] ** 2 + d[2][None, None, :] ** 2
        X[i] = np.exp(-0.5 * r2 / (0.8 if c == 0 else 2.0) ** 2)
    return vectors(X.reshape(n, -1), y)


FAST = {"max_epochs": 15, "patience": 15, "batch_size": 32}


def test_cnn1d_counts_peaks_wherever_they_are():
    model = CNN1D(**FAST, channels=8).fit(patterns(160, 0), patterns(40, 1), ctx())
    test = patterns(60, 2)
    proba = model.predict_proba(test.X)
    assert proba.shape == (60, 2) and np.allclose(proba.sum(1), 1)
    assert accuracy(test.y, proba) >= 0.9


def test_cnn3d_tells_tight_from_wide_density_anywhere_in_the_cell():
    model = CNN3D(**FAST, channels=8, depth=2).fit(voxels(160, 0), voxels(40, 1), ctx())
    test = voxels(60, 2)
    assert accuracy(test.y, model.predict_proba(test.X)) >= 0.9


def test_cnn3d_is_invariant_to_periodic_shifts_by_its_pooling_stride():
    train = voxels(40, 0, g=16)
    model = CNN3D(max_epochs=1, batch_size=16, depth=3, channels=4).fit(train, voxels(10, 1, g=16), ctx())
    grids = np.asarray(voxels(6, 3, g=16).X).reshape(6, 16, 16, 16)
    shifted = np.roll(grids, 8, axis=2)  # 2^3 voxels: the three pools map it onto a whole-voxel shift
    a = model.predict_proba(grids.reshape(6, -1))
    b = model.predict_proba(shifted.reshape(6, -1))
    assert a == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize("make, data", [(CNN1D, patterns), (CNN3D, voxels)])
def test_same_seed_same_model_and_pickling_keeps_predictions(make, data):
    train, valid, test = data(40, 0), data(20, 1), data(10, 2)
    a = make(max_epochs=2).fit(train, valid, ctx(seed=5))
    b = make(max_epochs=2).fit(train, valid, ctx(seed=5))
    c = make(max_epochs=2).fit(train, valid, ctx(seed=6))
    pa = a.predict_proba(test.X)
    assert np.array_equal(pa, b.predict_proba(test.X))
    assert not np.array_equal(pa, c.predict_proba(test.X))
    assert np.array_equal(pa, pickle.loads(pickle.dumps(a)).predict_proba(test.X))


def test_cnn3d_refuses_a_vector_that_is_not_a_voxel_grid():
    with pytest.raises(UserError, match="density_grid"):
        CNN3D(max_epochs=1).fit(patterns(10, 0, length=100), patterns(4, 1, length=100), ctx())


def test_cloud_only_settings_are_refused():
    with pytest.raises(ValueError, match="vectors"):
        CNN1D(augment_rotation=0.5)


def test_both_take_vectors_and_are_listed():
    reg = registry.load()
    for name in ("cnn1d", "cnn3d"):
        entry = reg.get("model", name).cls
        assert entry.accepts == frozenset({"vector"}) and entry.description

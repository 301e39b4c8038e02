"""Behaviour of the neural point-cloud models (pointnet, attention_pool, e3nn) and
their shared training loop, on tiny synthetic clouds (CPU, seconds)."""

from __future__ import annotations

import pickle

import numpy as np
import optuna
import pytest
import torch
from scipy.spatial.transform import Rotation

from harness.execute import tuning
from harness.sdk.api import FitContext, Samples
from harness_plugins.models.neural import E3NN, AttentionPool, PointNet, critical_points
from harness_plugins.models.neural.mlp import ladder

COLUMNS = ["x", "y", "z", "intensity"]
SMALL = {"point_depth": 3, "point_width": 16, "feature_dim": 32, "head_depth": 3, "head_width": 32}


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float((proba.argmax(1) == y).mean())


def ctx(seed: int = 0, device: str = "cpu", report=lambda step, value: None, n_classes: int = 2) -> FitContext:
    return FitContext(device=device, seed=seed, n_classes=n_classes, score=accuracy, report=report)


def lattice_cloud(rng: np.random.Generator, stretch: float, n_max: int = 0) -> np.ndarray:
    """Reciprocal-lattice-like cloud: a randomly rotated (stretched) cubic lattice.

    n_max = 0 gives the 3 basis vectors; n_max = 1 all 27 points h,k,l in [-1, 1]
    (origin included, many equal distances: the hard case for neighbour graphs)."""
    a = rng.uniform(0.3, 0.6)
    basis = np.diag([a, a, a * stretch]) @ Rotation.random(random_state=rng.integers(2**31)).as_matrix().T
    if n_max == 0:
        hkl = np.eye(3)
    else:
        r = np.arange(-n_max, n_max + 1)
        hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    points = hkl @ basis
    intensity = rng.uniform(0, 1, (len(points), 1))
    return np.hstack([points, intensity]).astype(np.float32)


def samples(X: list[np.ndarray], y) -> Samples:
    return Samples(list(X), np.asarray(y), [str(i) for i in range(len(X))], COLUMNS, "cloud")


def geometry_task(n: int, seed: int, n_max: int = 0) -> Samples:
    """Cubic (0) vs tetragonal (1) lattices, randomly rotated: needs geometry, not intensity."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    return samples([lattice_cloud(rng, 1.5 if c else 1.0, n_max) for c in y], y)


def intensity_task(n: int, seed: int) -> Samples:
    """Clouds of 3-12 random points; class 1 has bright points, class 0 dim ones."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = []
    for c in y:
        k = int(rng.integers(3, 13))
        inten = rng.uniform(0.5, 1.0, (k, 1)) if c else rng.uniform(0.0, 0.5, (k, 1))
        X.append(np.hstack([rng.normal(size=(k, 3)), inten]).astype(np.float32))
    return samples(X, y)


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.network.state_dict().items()}


POOLED = [
    (PointNet, SMALL),
    (AttentionPool, {**SMALL, "attention_layers": 2, "heads": 4}),
    (AttentionPool, {**SMALL, "attention_layers": 0, "heads": 1}),
]


@pytest.fixture(scope="module")
def mixed():
    """Train/valid splits whose clouds have 3, 4 and 27 points."""
    rng = np.random.default_rng(1)
    X = [lattice_cloud(rng, 1.0 + 0.5 * (i % 2), n_max=i % 3 // 2) for i in range(60)]
    X = [x if i % 3 != 1 else np.vstack([x, np.array([[0, 0, 0, 1]], np.float32)]) for i, x in enumerate(X)]
    y = np.arange(60) % 2
    return samples(X[:40], y[:40]), samples(X[40:], y[40:])


@pytest.mark.parametrize("cls,params", POOLED, ids=["pointnet", "attention2", "attention0"])
def test_pooled_models_ignore_point_order(cls, params, mixed):
    train, valid = mixed
    model = cls(max_epochs=2, **params).fit(train, valid, ctx())
    rng = np.random.default_rng(5)
    shuffled = [x[rng.permutation(len(x))] for x in valid.X]
    np.testing.assert_allclose(model.predict_proba(shuffled), model.predict_proba(valid.X), atol=1e-5)


@pytest.mark.parametrize("n_max", [0, 1], ids=["3 points", "27 points"])
def test_e3nn_prediction_is_rotation_invariant_and_not_constant(n_max):
    train, valid = geometry_task(24, 0, n_max), geometry_task(12, 1, n_max)
    model = E3NN(max_epochs=2, mul=8, layers=2, lmax=2).fit(train, valid, ctx())
    rng = np.random.default_rng(7)
    rotated = []
    for x in valid.X:
        R = Rotation.random(random_state=rng.integers(2**31)).as_matrix()
        rotated.append(np.hstack([x[:, :3] @ R.T, x[:, 3:]]).astype(np.float32))
    proba = model.predict_proba(valid.X)
    np.testing.assert_allclose(model.predict_proba(rotated), proba, atol=1e-4)
    assert np.ptp(proba[:, 1]) > 1e-3, "the output should depend on the input"


def test_e3nn_sees_geometry_not_just_norms():
    """Same six |g| values, different angles: an invariant of positions alone must differ."""
    model = E3NN(max_epochs=1, mul=8).fit(geometry_task(8, 0), geometry_task(4, 1), ctx())
    cubic = np.hstack([np.eye(3), np.full((3, 1), 0.5)]).astype(np.float32)
    angle = np.deg2rad(60)
    sheared = cubic.copy()
    sheared[1, :3] = [np.cos(angle), np.sin(angle), 0]
    p = model.predict_proba([cubic, sheared])
    assert abs(p[0, 1] - p[1, 1]) > 1e-6


@pytest.mark.parametrize("cls", [PointNet, AttentionPool, E3NN])
def test_same_seed_same_weights_other_seed_other_weights(cls, mixed):
    train, valid = mixed
    params = SMALL if cls is not E3NN else {"mul": 8, "layers": 1}
    a = weights(cls(max_epochs=2, **params).fit(train, valid, ctx(seed=3)))
    b = weights(cls(max_epochs=2, **params).fit(train, valid, ctx(seed=3)))
    c = weights(cls(max_epochs=2, **params).fit(train, valid, ctx(seed=4)))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_fit_does_not_disturb_the_global_torch_rng(mixed):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    PointNet(max_epochs=1, **SMALL).fit(*mixed, ctx())
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("cls", [PointNet, AttentionPool, E3NN])
def test_varying_point_counts_per_sample(cls, mixed):
    train, valid = mixed
    assert len({len(x) for x in train.X}) == 3
    params = SMALL if cls is not E3NN else {"mul": 8, "layers": 1}
    proba = cls(max_epochs=1, **params).fit(train, valid, ctx()).predict_proba(valid.X)
    assert proba.shape == (len(valid), 2)
    np.testing.assert_allclose(proba.sum(1), 1, atol=1e-6)


def test_report_is_called_each_epoch_and_pruning_propagates(mixed):
    seen = []

    def report(step, value):
        seen.append((step, value))
        if step == 2:
            raise optuna.TrialPruned()

    with pytest.raises(optuna.TrialPruned):
        PointNet(max_epochs=10, patience=10, **SMALL).fit(*mixed, ctx(report=report))
    assert [s for s, _ in seen] == [0, 1, 2]
    assert all(0.0 <= v <= 1.0 for _, v in seen)


def test_early_stopping_keeps_the_best_epoch(mixed):
    train, valid = mixed
    model = PointNet(max_epochs=12, patience=2, **SMALL).fit(train, valid, ctx())
    h = model.history_
    assert h.stopped in {"patience", "max_epochs"}
    assert len(h.scores) <= 12
    if h.stopped == "patience":
        assert len(h.scores) == h.best_epoch + 3
    assert accuracy(valid.y, model.predict_proba(valid.X)) == pytest.approx(h.best_score)


def test_pointnet_learns_a_tiny_problem():
    model = PointNet(max_epochs=25, patience=25, **SMALL).fit(intensity_task(300, 0), intensity_task(60, 1), ctx())
    test = intensity_task(100, 2)
    assert accuracy(test.y, model.predict_proba(test.X)) > 0.85


def test_attention_pool_learns_a_tiny_problem():
    params = {**SMALL, "attention_layers": 2, "heads": 4}
    model = AttentionPool(max_epochs=25, patience=25, **params).fit(
        intensity_task(300, 0), intensity_task(60, 1), ctx()
    )
    test = intensity_task(100, 2)
    assert accuracy(test.y, model.predict_proba(test.X)) > 0.85


def test_e3nn_learns_lattice_geometry_from_three_points():
    model = E3NN(max_epochs=15, patience=15, mul=8).fit(geometry_task(200, 0), geometry_task(60, 1), ctx())
    test = geometry_task(100, 2)
    assert accuracy(test.y, model.predict_proba(test.X)) > 0.85


@pytest.mark.parametrize("cls", [PointNet, AttentionPool, E3NN])
def test_pickle_round_trip_predicts_the_same(cls, mixed):
    train, valid = mixed
    params = SMALL if cls is not E3NN else {"mul": 8, "layers": 1}
    model = cls(max_epochs=1, **params).fit(train, valid, ctx())
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(clone.predict_proba(valid.X), model.predict_proba(valid.X), atol=1e-6)
    assert clone.max_epochs == 1 and clone.history_.scores == model.history_.scores


def test_unfitted_model_pickles_and_refuses_to_predict():
    clone = pickle.loads(pickle.dumps(PointNet(batch_size=7)))
    assert clone.batch_size == 7
    with pytest.raises(RuntimeError, match="fit"):
        clone.predict_proba([np.zeros((3, 4), np.float32)])


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"))],
)
@pytest.mark.parametrize("cls", [PointNet, AttentionPool, E3NN])
def test_model_lives_on_the_requested_device(cls, device, mixed):
    train, valid = mixed
    params = SMALL if cls is not E3NN else {"mul": 8, "layers": 1}
    model = cls(max_epochs=1, **params).fit(train, valid, ctx(device=device))
    assert {p.device.type for p in model.network.parameters()} == {device}
    assert model.predict_proba(valid.X).shape == (len(valid), 2)
    clone = pickle.loads(pickle.dumps(model))  # must load on a machine without CUDA
    assert {p.device.type for p in clone.network.parameters()} == {"cpu"}
    np.testing.assert_allclose(clone.predict_proba(valid.X), model.predict_proba(valid.X), atol=1e-4)


def test_critical_points_alone_give_the_same_prediction(mixed):
    train, valid = mixed
    model = PointNet(max_epochs=2, **SMALL).fit(train, valid, ctx())
    x = valid.X[0] if len(valid.X[0]) == 27 else next(v for v in valid.X if len(v) == 27)
    counts = critical_points(model, x)
    assert counts.shape == (len(x),) and counts.dtype.kind == "i"
    assert counts.sum() == ladder(16, 32, 3, model.max_width)[-1]  # one winner per feature
    critical = x[counts > 0]
    assert 0 < len(critical) < len(x)
    np.testing.assert_allclose(model.predict_proba([critical]), model.predict_proba([x]), atol=1e-6)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).point_importance(x), counts)
    assert not hasattr(AttentionPool(), "point_importance")  # `harness explain` checks for it


def test_critical_points_need_a_pointnet(mixed):
    model = AttentionPool(max_epochs=1, attention_layers=0, heads=1, **SMALL).fit(*mixed, ctx())
    with pytest.raises(TypeError, match="pointnet"):
        critical_points(model, mixed[1].X[0])


def test_paper_widths_and_cap():
    assert ladder(64, 1024, 4, 1024) == [64, 128, 512, 1024]  # point-wise MLP of the paper
    assert ladder(512, 128, 3, 1024) == [512, 256, 128]  # its head before the class layer
    assert ladder(64, 1024, 4, 256) == [64, 128, 256, 256]


@pytest.mark.parametrize("cls", [PointNet, AttentionPool, E3NN])
def test_search_space_is_overridable_and_fits(cls, mixed):
    model = cls(max_epochs=1, space={"lr": [0.001], "optimizer": ["sgd"] if cls is not E3NN else ["adam"]})
    if cls is not E3NN:
        model.max_width = 32
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    model = tuning.trial_model(model, trial)
    assert model.lr == 0.001 and set(trial.params) == set(cls.search_space)
    proba = model.fit(*mixed, ctx()).predict_proba(mixed[1].X)
    assert np.isfinite(proba).all()
    if cls is not E3NN:
        net = model.network
        assert max(net.encoder.channel_list + net.head.channel_list[:-1]) <= 32


def test_rotation_augmentation_turns_each_cloud_rigidly_and_reproducibly():
    from torch_geometric.data import Batch

    from harness.torch import make_set, random_rotations, rotate

    rng = np.random.default_rng(0)
    clouds = [rng.normal(size=(k, 4)).astype(np.float32) for k in (3, 5)]
    batch = Batch.from_data_list(make_set(clouds, None, "cpu").data)
    before = batch.x.clone()
    out = rotate(batch, random_rotations(2, 0.785, torch.Generator().manual_seed(1)))
    again = rotate(batch, random_rotations(2, 0.785, torch.Generator().manual_seed(1)))
    assert torch.equal(out.x, again.x)
    assert torch.equal(batch.x, before)  # the input batch is untouched
    for i, x in enumerate(clouds):
        turned = out.x[out.batch == i].numpy()
        gram = lambda p: p[:, :3] @ p[:, :3].T  # noqa: E731 - distances and angles within a cloud
        np.testing.assert_allclose(gram(turned), gram(x), atol=1e-5)
        np.testing.assert_array_equal(turned[:, 3], x[:, 3])  # intensities untouched
    rot = random_rotations(100, 0.3, torch.Generator().manual_seed(2))
    angles = torch.arccos(((rot.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))
    assert float(angles.max()) <= 0.3 + 1e-5
    assert torch.allclose(torch.linalg.det(rot), torch.ones(100), atol=1e-5)


@pytest.mark.parametrize("cls", [PointNet, AttentionPool, E3NN])
def test_normalize_scale_makes_predictions_independent_of_cell_size(cls, mixed):
    params = SMALL if cls is not E3NN else {}
    model = cls(max_epochs=1, normalize_scale=True, **params).fit(*mixed, ctx())
    clouds = mixed[1].X
    scaled = [np.hstack([x[:, :3] * s, x[:, 3:]]) for x, s in zip(clouds, np.linspace(0.2, 5.0, len(clouds)))]
    np.testing.assert_allclose(model.predict_proba(scaled), model.predict_proba(clouds), atol=1e-5)
    plain = cls(max_epochs=1, **params).fit(*mixed, ctx())  # without it, size is information
    assert not np.allclose(plain.predict_proba(scaled), plain.predict_proba(clouds), atol=1e-3)


@pytest.mark.parametrize("dense", [True, False], ids=["dense", "graph"])
def test_normalize_scale_puts_each_cloud_in_the_unit_sphere(dense):
    from harness.torch import make_set

    def points(cloud_set):
        return (cloud_set.points[0] if dense else cloud_set.data[0].x).numpy()

    cloud = np.array([[3.0, 0, 0, 7.0], [0, 4.0, 0, 1.0], [0, 0, -6.0, 2.0]], np.float32)
    x = points(make_set([cloud], None, "cpu", normalize_scale=True, dense=dense))
    np.testing.assert_allclose(np.linalg.norm(x[:, :3], axis=1), [0.5, 2 / 3, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(x[:, 3], cloud[:, 3])  # intensities untouched
    np.testing.assert_array_equal(points(make_set([cloud], None, "cpu", dense=dense)), cloud)  # off by default


@pytest.mark.parametrize("cls", [PointNet, AttentionPool, E3NN])
def test_a_fitted_network_is_stored_as_data_and_predicts_the_same(cls, mixed):
    """No pickle: an architecture JSON and a state_dict read with weights_only=True."""
    from harness.execute import persist
    from harness.services import registry

    train, valid = mixed
    model = cls(max_epochs=2, tune=False).fit(train, valid, ctx())
    fmt, blob = persist.dump(model)
    assert not blob.startswith(b"\x80")
    restored = persist.restore(registry.load(), (fmt, blob))
    assert type(restored) is cls
    np.testing.assert_array_equal(restored.predict_proba(valid.X), model.predict_proba(valid.X))

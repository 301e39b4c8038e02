"""Perturbations: each one's defining property, purity (input untouched), determinism
(same generator state, same output) and the kinds it accepts."""

from __future__ import annotations

import numpy as np
import pytest

from harness import CLOUD, VECTOR
from harness_plugins.perturbations.basic import (
    MaskIntensity,
    NoPerturbation,
    RandomScale,
    Rotate,
    SystematicAbsence,
)

CLOUD_COLUMNS = ["x", "y", "z", "intensity"]
ALL = [NoPerturbation(), RandomScale(), SystematicAbsence(), MaskIntensity(), Rotate(), Rotate(max_angle=np.pi / 4)]


def cloud(seed: int = 0, n: int = 27) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty((n, 4), dtype=np.float32)
    x[:, :3] = rng.normal(size=(n, 3))
    x[:, 3] = rng.uniform(0, 1, n)
    x[::5, 3] = 0.0  # some absent reflections
    x[1::7, 3] = 5e-4  # some below the phi3 threshold
    return x


def vector(seed: int = 0, n: int = 27) -> np.ndarray:
    return cloud(seed, n)[:, 3].copy()


def samples(p):
    out = [(cloud(), CLOUD_COLUMNS)]
    if VECTOR in p.accepts:
        out.append((vector(), [f"I{i}" for i in range(27)]))
    return out


@pytest.mark.parametrize("p", ALL, ids=lambda p: p.title)
def test_pure_and_deterministic(p):
    for x, columns in samples(p):
        before = x.copy()
        a = p.apply(x, np.random.default_rng(7), columns)
        b = p.apply(x, np.random.default_rng(7), columns)
        assert np.array_equal(x, before), "input modified in place"
        assert a is not x and not np.shares_memory(a, x)
        assert np.array_equal(a, b)
        assert a.shape == x.shape and a.dtype == x.dtype


def test_kinds_accepted():
    assert NoPerturbation.accepts == RandomScale.accepts == SystematicAbsence.accepts == frozenset({CLOUD, VECTOR})
    assert MaskIntensity.accepts == frozenset({CLOUD})
    assert Rotate.accepts == frozenset({CLOUD})
    assert not any(p.training_only for p in ALL)


def test_none_is_identity():
    x = cloud()
    assert np.array_equal(NoPerturbation().apply(x, np.random.default_rng(0), CLOUD_COLUMNS), x)


def test_random_scale_multiplies_intensity_by_one_u_in_zero_one():
    x = cloud()
    out = RandomScale().apply(x, np.random.default_rng(3), CLOUD_COLUMNS)
    assert np.array_equal(out[:, :3], x[:, :3])
    nz = x[:, 3] > 0
    ratios = out[nz, 3] / x[nz, 3]
    assert np.allclose(ratios, ratios[0], rtol=1e-6)  # one u for the whole material
    assert 0 < ratios[0] <= 1
    v = vector()
    out_v = RandomScale().apply(v, np.random.default_rng(3), [])
    assert np.allclose(out_v, v * ratios[0], rtol=1e-6)  # the whole bar code, same u for same rng


def test_random_scale_draws_fresh_u_each_time_over_zero_one():
    rng = np.random.default_rng(11)
    x = np.ones((4, 4), dtype=np.float64)
    us = np.array([RandomScale().apply(x, rng, CLOUD_COLUMNS)[0, 3] for _ in range(4000)])
    assert len(np.unique(us)) == len(us)
    assert us.min() > 0 and us.max() <= 1
    assert abs(us.mean() - 0.5) < 0.02 and abs(np.median(us) - 0.5) < 0.03


def test_systematic_absence_keeps_only_which_reflections_exist():
    x = cloud()
    out = SystematicAbsence().apply(x, np.random.default_rng(0), CLOUD_COLUMNS)
    assert np.array_equal(out[:, :3], x[:, :3])
    assert np.array_equal(out[:, 3], (x[:, 3] > 1e-3).astype(np.float32))
    assert set(np.unique(out[:, 3])) == {0.0, 1.0}
    v = vector()
    assert np.array_equal(SystematicAbsence().apply(v, np.random.default_rng(0), []), (v > 1e-3).astype(v.dtype))


def test_mask_intensity_leaves_positions_only():
    x = cloud()
    out = MaskIntensity().apply(x, np.random.default_rng(0), CLOUD_COLUMNS)
    assert np.all(out[:, 3] == 0)
    assert np.array_equal(out[:, :3], x[:, :3])


def test_intensity_found_by_column_name():
    x = cloud()[:, [3, 0, 1, 2]]  # intensity first: positions must still stay put
    columns = ["intensity", "x", "y", "z"]
    out = MaskIntensity().apply(x, np.random.default_rng(0), columns)
    assert np.all(out[:, 0] == 0) and np.array_equal(out[:, 1:], x[:, 1:])
    with pytest.raises(ValueError, match="intensity"):
        MaskIntensity().apply(cloud(), np.random.default_rng(0), ["x", "y", "z", "w"])


@pytest.mark.parametrize("p", [Rotate(), Rotate(max_angle=0.3)], ids=lambda p: p.title)
def test_rotation_preserves_norms_distances_and_intensity(p):
    x = cloud().astype(np.float64)
    out = p.apply(x, np.random.default_rng(5), CLOUD_COLUMNS)
    assert np.array_equal(out[:, 3], x[:, 3])
    assert np.allclose(np.linalg.norm(out[:, :3], axis=1), np.linalg.norm(x[:, :3], axis=1))
    gram_in = x[:, :3] @ x[:, :3].T
    gram_out = out[:, :3] @ out[:, :3].T
    assert np.allclose(gram_in, gram_out)  # a rigid rotation, no reflection needed to tell
    r = p.rotation(np.random.default_rng(5))
    assert np.allclose(r @ r.T, np.eye(3)) and np.linalg.det(r) == pytest.approx(1.0)
    assert not np.allclose(out[:, :3], x[:, :3])


def test_bounded_rotation_angles_stay_within_max_angle():
    from scipy.spatial.transform import Rotation

    p = Rotate(max_angle=np.pi / 4)
    rng = np.random.default_rng(0)
    angles = np.array([Rotation.from_matrix(p.rotation(rng)).magnitude() for _ in range(500)])
    assert angles.max() <= np.pi / 4 + 1e-9
    assert angles.max() > 0.7  # reaches near the bound


def test_haar_rotation_is_uniform_on_so3():
    """Under the Haar measure the rotation angle has density (1 - cos w) / pi: mean pi/2 + 2/pi,
    and a fixed vector is sent uniformly over the sphere (mean 0, each coordinate var 1/3)."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(1)
    mats = np.array([Rotate().rotation(rng) for _ in range(4000)])
    angles = Rotation.from_matrix(mats).magnitude()
    assert abs(angles.mean() - (np.pi / 2 + 2 / np.pi)) < 0.05
    v = mats @ np.array([0.0, 0.0, 1.0])
    assert np.all(np.abs(v.mean(axis=0)) < 0.05)
    assert np.allclose(v.var(axis=0), 1 / 3, atol=0.03)


def test_negative_max_angle_is_refused():
    with pytest.raises(ValueError, match="max_angle"):
        Rotate(max_angle=-1.0)


def test_registered_through_the_plugin_hook():
    from harness.services.registry import load

    registry = load()
    names = {"none", "random_scale", "systematic_absence", "mask_intensity", "rotate"}
    assert names <= set(registry.names("perturbation"))
    p = registry.create("perturbation", "rotate", {"max_angle": 0.785})
    assert p.max_angle == pytest.approx(0.785) and p.title == "rotate(max_angle=0.785)"


def test_an_identity_perturbation_is_left_out_and_the_samples_are_the_same():
    """phi1 declares `identity`: a study does not seed a generator per sample for it, and
    gets the values (fresh float32 copies) that applying it would give."""
    from types import SimpleNamespace

    from harness.execute.study import perturb, samples
    from harness_plugins.perturbations.basic import NoPerturbation

    class Spy(NoPerturbation):
        calls = 0

        def apply(self, x, rng, columns):
            Spy.calls += 1
            return super().apply(x, rng, columns)

    xs = [np.arange(4.0) + i for i in range(5)]
    applied = np.stack(perturb(xs, np.arange(5), [Spy()], seed=0, columns=["intensity"]))
    assert NoPerturbation.identity and Spy.calls == 5
    combo = SimpleNamespace(transforms=(), perturbation=Spy())
    data = SimpleNamespace(
        X=xs, positions=np.arange(5), columns=["intensity"], kind="vector", y=np.zeros(5, int), ids=list("abcde")
    )
    got = samples(combo, 0, data, np.arange(5), training=True)
    assert Spy.calls == 5  # left out
    np.testing.assert_array_equal(got.X, applied)
    assert got.X.dtype == np.float32 and not np.shares_memory(got.X, xs[0])

"""Powder patterns against pymatgen's XRDCalculator; powder perturbations."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure

from harness.services import registry
from harness_plugins.representations.powder import PowderPattern, column_position

CU = 1.5418
STRUCTURES = {
    "NaCl": Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
    "Si": Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]]),
    "TiO2": Structure.from_spacegroup(
        "P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.305, 0.305, 0]]
    ),
    "ZnO": Structure.from_spacegroup(
        "P6_3mc", Lattice.hexagonal(3.25, 5.21), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]
    ),
    "ZnSO": Structure.from_spacegroup(
        "P2_1/c",
        Lattice.from_parameters(5.3, 6.1, 7.4, 90, 101, 90),
        ["Zn", "S", "O"],
        [[0.137, 0.211, 0.083], [0.383, 0.071, 0.331], [0.251, 0.412, 0.177]],
    ),
}


def merged_peaks(rep: PowderPattern, structure: Structure) -> tuple[np.ndarray, np.ndarray]:
    """Our reflections merged as pymatgen merges them (equal 2-theta), scaled to 100."""
    refl = rep.reflections(structure)
    key = np.round(refl.two_theta / XRDCalculator.TWO_THETA_TOL).astype(int)
    _, inverse = np.unique(key, return_inverse=True)
    intensity = np.bincount(inverse, weights=refl.intensity)
    two_theta = np.bincount(inverse, weights=refl.two_theta) / np.bincount(inverse)
    intensity = intensity / intensity.max() * 100
    keep = intensity > XRDCalculator.SCALED_INTENSITY_TOL  # pymatgen's cut, in % of the strongest
    return two_theta[keep], intensity[keep]


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_peak_positions_and_intensities_match_pymatgens_xrd_calculator(name):
    structure = STRUCTURES[name]
    rep = PowderPattern(two_theta_min=5, two_theta_max=90)
    ours_t, ours_i = merged_peaks(rep, structure)
    theirs = XRDCalculator(wavelength=CU).get_pattern(structure, two_theta_range=(5, 90))
    assert len(ours_t) == len(theirs.x) > 3
    assert ours_t == pytest.approx(theirs.x, abs=1e-6)
    assert ours_i == pytest.approx(theirs.y, rel=1e-6, abs=1e-6)


def test_systematic_absences_of_fcc_are_missing_from_the_pattern():
    rep = PowderPattern()
    refl = rep.reflections(STRUCTURES["NaCl"])
    mixed = np.array([len({int(v) % 2 for v in h}) == 2 for h in refl.hkl])
    assert mixed.any() and (refl.intensity[mixed] == 0).all()
    assert (refl.intensity[~mixed] > 0).all()


def test_stick_profile_keeps_each_peak_total_and_centroid_on_the_grid():
    rep = PowderPattern(fwhm=0.0, n_points=8501)  # 0.01 degree steps
    refl = rep.reflections(STRUCTURES["NaCl"])
    profile = rep.profile(refl.two_theta, refl.intensity)
    assert profile.sum() == pytest.approx(refl.intensity.sum())
    centroid = (profile * rep.two_theta).sum() / profile.sum()
    assert centroid == pytest.approx((refl.intensity * refl.two_theta).sum() / refl.intensity.sum())


def test_gaussian_peaks_have_the_requested_width_and_sit_at_the_strongest_reflection():
    rep = PowderPattern(fwhm=0.5, n_points=8501)
    x = rep.featurize(STRUCTURES["Si"])
    theirs = XRDCalculator(wavelength=CU).get_pattern(STRUCTURES["Si"], two_theta_range=(5, 90))
    strongest = theirs.x[np.argmax(theirs.y)]
    grid = rep.two_theta
    assert x.max() == pytest.approx(1.0)
    assert grid[np.argmax(x)] == pytest.approx(strongest, abs=0.01)
    above = grid[(x >= 0.5) & (np.abs(grid - strongest) < 2)]
    assert above.max() - above.min() == pytest.approx(0.5, abs=0.02)


def test_columns_name_two_theta_and_q_of_each_grid_point():
    rep = PowderPattern(n_points=11, two_theta_min=10, two_theta_max=60)
    positions = [column_position(c) for c in rep.columns()]
    assert positions[0]["2theta"] == 10 and positions[-1]["2theta"] == 60
    q = 4 * np.pi * np.sin(np.radians(30)) / CU
    assert positions[-1]["q"] == pytest.approx(q, abs=1e-5)
    assert rep.featurize(STRUCTURES["TiO2"]).shape == (11,)


def test_registered_as_a_vector():
    assert registry.load().get("representation", "powder_pattern").cls.kind == "vector"


# ------------------------------------------------------------------ perturbations

from harness.services.errors import UserError  # noqa: E402
from harness_plugins.perturbations.powder import Noise, PeakBroadening, QRange  # noqa: E402


def sticks() -> tuple[np.ndarray, list[str], PowderPattern]:
    rep = PowderPattern(fwhm=0.0, n_points=1701)  # 0.05 degree steps
    return rep.featurize(STRUCTURES["TiO2"]), rep.columns(), rep


def test_gaussian_broadening_gives_the_drawn_width_and_is_seeded():
    x = np.zeros(1701, dtype=np.float32)
    x[800] = 1.0
    columns = PowderPattern(fwhm=0.0, n_points=1701).columns()
    pert = PeakBroadening(fwhm_min=0.6, fwhm_max=0.6)
    y = pert.apply(x, np.random.default_rng(0), columns)
    assert y.max() == pytest.approx(1.0) and np.argmax(y) == 800
    half = np.flatnonzero(y >= 0.5)
    assert (half.max() - half.min() + 1) * 0.05 == pytest.approx(0.6, abs=0.06)
    varied = PeakBroadening(fwhm_min=0.1, fwhm_max=2.0)
    a = varied.apply(x, np.random.default_rng(3), columns)
    assert np.array_equal(a, varied.apply(x, np.random.default_rng(3), columns))
    assert not np.array_equal(a, varied.apply(x, np.random.default_rng(4), columns))


def test_pseudo_voigt_has_longer_tails_than_a_gaussian_of_equal_width():
    x, columns, _ = sticks()
    gauss = PeakBroadening(0.5, 0.5, "gaussian").apply(x, np.random.default_rng(0), columns)
    voigt = PeakBroadening(0.5, 0.5, "pseudo_voigt", eta=0.5).apply(x, np.random.default_rng(0), columns)
    peak = int(np.argmax(gauss))
    far = peak + 40  # 2 degrees away
    assert voigt[far] > 10 * gauss[far]


def test_poisson_noise_has_the_counting_variance():
    x = np.full(20000, 0.25, dtype=np.float32)
    x[0] = 1.0
    columns = PowderPattern(n_points=20000).columns()
    y = Noise(counts=400).apply(x, np.random.default_rng(0), columns)[1:]
    # 0.25 x 400 = 100 counts: mean 100, variance 100 -> relative std 0.1
    assert y.mean() == pytest.approx(0.25, rel=0.01)
    assert y.std() == pytest.approx(0.025, rel=0.05)
    assert np.allclose(y * 400, np.round(y * 400), atol=1e-3)
    g = Noise(counts=0, sigma=0.1).apply(x, np.random.default_rng(0), columns)[1:]
    assert (g - 0.25).std() == pytest.approx(0.1, rel=0.05)


def test_q_range_zeroes_the_pattern_outside_the_window():
    x, columns, rep = sticks()
    q = 4 * np.pi * np.sin(np.radians(rep.two_theta / 2)) / rep.wavelength
    y = QRange(q_min=1.5, q_max=3.0).apply(x, np.random.default_rng(0), columns)
    inside = (q >= 1.5) & (q <= 3.0)
    assert np.array_equal(y[inside], x[inside])
    assert (y[~inside] == 0).all() and (x[~inside] > 0).any()


def test_powder_perturbations_refuse_other_vectors_with_the_fix():
    columns = [f"I({h},0,0)" for h in range(27)]
    for pert in (PeakBroadening(), Noise(), QRange()):
        with pytest.raises(UserError, match="powder_pattern"):
            pert.apply(np.ones(27, dtype=np.float32), np.random.default_rng(0), columns)


def test_invalid_perturbation_parameters_are_refused():
    with pytest.raises(ValueError, match="fwhm"):
        PeakBroadening(fwhm_min=1.0, fwhm_max=0.5)
    with pytest.raises(ValueError, match="q_max"):
        QRange(q_min=3, q_max=2)

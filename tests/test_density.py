"""Electron density by Fourier synthesis: electron count, maxima on the atoms, sampling."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from harness.services import registry
from harness_plugins.representations.density import (
    POSITION_SCALE,
    DensityCloud,
    DensityGrid,
    electrons,
    encode_density,
)

SALT = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
RUTILE = Structure.from_spacegroup(
    "P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.305, 0.305, 0]]
)
# a low-symmetry crystal whose atoms sit off any grid
MONO = Structure.from_spacegroup(
    "P2_1/c",
    Lattice.from_parameters(5.3, 6.1, 7.4, 90, 101, 90),
    ["Zn", "S", "O"],
    [[0.137, 0.211, 0.083], [0.383, 0.071, 0.331], [0.251, 0.412, 0.177]],
)


def synthesis_of(structure, **params):
    (synth,) = DensityCloud(**params).syntheses([structure])
    return synth


@pytest.mark.parametrize("structure", [SALT, RUTILE, MONO], ids=["NaCl", "TiO2", "ZnSO"])
def test_density_integrates_to_the_electrons_of_the_conventional_cell(structure):
    conventional = SpacegroupAnalyzer(structure, symprec=0.1).get_conventional_standard_structure()
    expected = sum(site.specie.Z for site in conventional)
    synth = synthesis_of(structure)
    assert electrons(synth.cell) == expected
    # a grid finer than the highest order resolves every term: the sum is exact
    m = 2 * int(np.abs(synth.hkl).max()) + 1
    rho = synth.at_grid((m, m, m))
    assert rho.mean() * synth.cell.volume == pytest.approx(expected, rel=1e-10)
    # and Monte Carlo over random points agrees within its statistical error
    rng = np.random.default_rng(0)
    sample = synth.at_points(rng.random((20000, 3))) * synth.cell.volume
    assert abs(sample.mean() - expected) < 4 * sample.std() / np.sqrt(len(sample))


def test_grid_and_pointwise_synthesis_agree():
    synth = synthesis_of(MONO)
    m = (7, 9, 11)
    axes = [np.arange(k) / k for k in m]
    frac = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    assert synth.at_grid(m).reshape(-1) == pytest.approx(synth.at_points(frac), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("structure", [SALT, RUTILE, MONO], ids=["NaCl", "TiO2", "ZnSO"])
def test_the_density_peaks_on_the_atoms_heaviest_highest(structure):
    synth = synthesis_of(structure)
    cell = synth.cell
    z_of_type = np.array([entries[0][1] for entries in cell.species])
    at_atoms = synth.at_points(cell.frac)
    # a peak at each atom: the density 0.3 angstrom away in any direction is lower
    rng = np.random.default_rng(1)
    directions = rng.normal(size=(26, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    inverse = np.linalg.inv(cell.lattice)
    for frac, rho in zip(cell.frac, at_atoms):
        around = synth.at_points(frac + 0.3 * directions @ inverse)
        assert (around < rho).all()
    # the heaviest element's atoms carry the highest peaks
    heaviest = z_of_type[cell.types] == z_of_type.max()
    assert at_atoms[heaviest].min() > at_atoms[~heaviest].max()
    # and the global maximum of a fine grid lies within a grid step of an atom
    m = 48
    rho = synth.at_grid((m, m, m))
    peak = np.array(np.unravel_index(rho.argmax(), rho.shape)) / m
    delta = (cell.frac - peak + 0.5) % 1 - 0.5
    nearest = np.linalg.norm(delta @ cell.lattice, axis=1).min()
    assert nearest <= np.linalg.norm(cell.lattice, axis=1).max() / m


def test_grid_sampling_gives_the_fixed_grid_in_cartesian_nm_with_the_encoded_density():
    rep = DensityCloud(n_points=125, sampling="grid")
    x = rep.featurize(SALT)
    assert x.shape == (125, 4) and rep.columns() == ["x", "y", "z", "density"]
    synth = synthesis_of(SALT)
    axis = np.arange(5) / 5
    frac = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    assert x[:, :3] == pytest.approx(frac @ synth.cell.lattice * POSITION_SCALE, abs=1e-5)
    assert x[:, 3] == pytest.approx(encode_density(synth.at_points(frac)), abs=1e-5)
    assert 0 <= x[:, 3].min() and x[:, 3].max() <= 1


def test_random_sampling_is_seeded_and_density_weighting_prefers_the_atoms():
    a = DensityCloud(n_points=300, sampling="random").featurize(MONO)
    assert np.array_equal(a, DensityCloud(n_points=300, sampling="random").featurize(MONO))
    assert not np.array_equal(a, DensityCloud(n_points=300, sampling="random", seed=1).featurize(MONO))
    weighted = DensityCloud(n_points=300, sampling="density_weighted").featurize(MONO)
    assert weighted.shape == (300, 4)
    assert weighted[:, 3].mean() > 1.5 * a[:, 3].mean()


def test_invalid_parameters_name_the_fix():
    with pytest.raises(ValueError, match="m\\^3"):
        DensityCloud(n_points=100, sampling="grid")
    with pytest.raises(ValueError, match="sampling"):
        DensityCloud(sampling="poisson")
    with pytest.raises(ValueError, match="d_min"):
        DensityGrid(d_min=0)


def test_density_grid_is_a_flat_voxel_vector_of_the_same_density():
    rep = DensityGrid(grid=6)
    x = rep.featurize(RUTILE)
    assert x.shape == (216,) and len(rep.columns()) == 216
    cloud = DensityCloud(n_points=216, sampling="grid").featurize(RUTILE)
    assert x == pytest.approx(cloud[:, 3], abs=1e-6)


def test_both_are_registered_with_their_kinds():
    reg = registry.load()
    assert reg.get("representation", "density_cloud").cls.kind == "cloud"
    assert reg.get("representation", "density_grid").cls.kind == "vector"

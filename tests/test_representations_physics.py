"""Diffraction representations against independent references: pymatgen's 1D XRD and ND
calculators, textbook systematic absences, the (000) value, the limiting sphere, the
Miller sets, the encoding and the parameters users write."""

from __future__ import annotations

import functools
import math
import pickle

import numpy as np
import pytest
from pymatgen.analysis.diffraction.core import AbstractDiffractionPatternCalculator
from pymatgen.analysis.diffraction.neutron import NDCalculator
from pymatgen.analysis.diffraction.xrd import XRDCalculator
from pymatgen.core import Lattice, Structure

from harness import Skip
from harness_plugins.representations import cells
from harness_plugins.representations.diffraction import (
    INTENSITY_FLOOR,
    INTENSITY_SCALE,
    POSITION_SCALE,
    Barcode,
    NdCloud,
    XrdCloud,
    encode_intensity,
)
from harness_plugins.representations.scattering import miller_indices

LAMBDA = 1.5418


def cached(build):
    """Structure.from_spacegroup takes ~1 s for cubic groups: build once, hand out copies."""
    memo = functools.lru_cache(maxsize=1)(build)
    return functools.wraps(build)(lambda: memo().copy())


@cached
def nacl() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@cached
def si() -> Structure:
    return Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.431), ["Si"], [[0, 0, 0]])


@cached
def cscl() -> Structure:
    return Structure(Lattice.cubic(4.123), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@cached
def cu() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.615), ["Cu"], [[0, 0, 0]])


@cached
def fe() -> Structure:
    return Structure.from_spacegroup("Im-3m", Lattice.cubic(2.8665), ["Fe"], [[0, 0, 0]])


@cached
def mg() -> Structure:
    return Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(3.209, 5.211), ["Mg"], [[1 / 3, 2 / 3, 0.25]])


@cached
def zno() -> Structure:
    return Structure.from_spacegroup(
        "P6_3mc", Lattice.hexagonal(3.25, 5.207), ["Zn", "O"], [[1 / 3, 2 / 3, 0], [1 / 3, 2 / 3, 0.382]]
    )


@cached
def monoclinic() -> Structure:
    return Structure.from_spacegroup(
        "P2_1/c", Lattice.monoclinic(5.1, 6.2, 7.3, 101.0), ["Zn", "O"], [[0.11, 0.23, 0.31], [0.37, 0.08, 0.19]]
    )


@cached
def triclinic() -> Structure:
    lattice = Lattice.from_parameters(4.1, 5.3, 6.2, 81.0, 97.0, 109.0)
    return Structure(
        lattice, ["Ti", "O", "O", "Ba"], [[0, 0, 0], [0.21, 0.33, 0.41], [0.71, 0.13, 0.86], [0.45, 0.62, 0.27]]
    )


@cached
def disordered() -> Structure:
    """Cu-Au solid solution on an fcc lattice: each site half Cu, half Au."""
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(3.85), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])


STRUCTURES = {
    "NaCl": nacl,
    "Si": si,
    "CsCl": cscl,
    "Cu": cu,
    "Fe": fe,
    "Mg": mg,
    "ZnO": zno,
    "monoclinic": monoclinic,
    "triclinic": triclinic,
    "CuAu-disordered": disordered,
}


def _lp_xray(theta: np.ndarray) -> np.ndarray:
    return (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))


def _lp_neutron(theta: np.ndarray) -> np.ndarray:
    return 1 / (np.sin(theta) ** 2 * np.cos(theta))


@pytest.mark.parametrize("radiation", ["xray", "neutron"])
@pytest.mark.parametrize("name", list(STRUCTURES))
def test_peaks_match_pymatgen_powder_calculator(name, radiation):
    """Merged by 2-theta as pymatgen merges them and with its Lorentz-polarisation factor
    put back, our |F|^2 of the 343 reflections give pymatgen's peak list: the same peak
    positions and the same intensities, for every peak whose reflections all lie in our
    Miller cube; peaks pymatgen drops as negligible are negligible here too."""
    structure = STRUCTURES[name]()
    conv = cells.reference_standard_structure(structure, "conventional", 0.1)
    rep = (XrdCloud if radiation == "xray" else NdCloud)(n=343, cell="conventional")
    (pattern,) = rep.patterns([structure])
    hkl = rep.point_labels()
    g_norm = np.linalg.norm(pattern.g, axis=1)
    assert np.allclose(pattern.g, hkl @ conv.lattice.reciprocal_lattice_crystallographic.matrix)

    calc = XRDCalculator(wavelength=LAMBDA) if radiation == "xray" else NDCalculator(wavelength=LAMBDA)
    theirs = calc.get_pattern(conv, scaled=False, two_theta_range=None)
    tol = AbstractDiffractionPatternCalculator.TWO_THETA_TOL

    def bins(g: np.ndarray) -> np.ndarray:
        return np.round(np.degrees(2 * np.arcsin(LAMBDA * g / 2)) / tol).astype(int)

    # every reciprocal point inside the limiting sphere, to know which peaks we hold completely
    reach = int(np.ceil(2 / LAMBDA * max(conv.lattice.abc)))  # |h| <= |g| |a| inside the sphere
    big = np.array(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij")).reshape(3, -1).T
    big_g = np.linalg.norm(big @ conv.lattice.reciprocal_lattice_crystallographic.matrix, axis=1)
    inside = (big_g > 1e-9) & (big_g <= 2 / LAMBDA)
    complete = {b for b in set(bins(big_g[inside])) if np.abs(big[inside][bins(big_g[inside]) == b]).max() <= 3}

    mine_mask = (g_norm > 1e-9) & (g_norm <= 2 / LAMBDA)
    theta = np.arcsin(LAMBDA * g_norm[mine_mask] / 2)
    lp = _lp_xray(theta) if radiation == "xray" else _lp_neutron(theta)
    volume = conv.lattice.volume
    weighted = pattern.intensity[mine_mask] * volume**2 * lp
    mine_bins = bins(g_norm[mine_mask])
    mine = {b: weighted[mine_bins == b].sum() for b in complete}
    theirs_by_bin = {int(round(x / tol)): y for x, y in zip(theirs.x, theirs.y)}

    scale = max(theirs.y)
    compared = 0
    for b, value in mine.items():
        if b in theirs_by_bin:
            assert value == pytest.approx(theirs_by_bin[b], abs=1e-6 * scale, rel=1e-6)
            compared += 1
        else:  # pymatgen drops peaks below 1e-3 % of its strongest
            assert value <= 1e-5 * scale * 1.01
    assert compared >= 3, "too few complete peaks to compare"


def test_fcc_conventional_cell_mixed_parity_reflections_are_absent():
    rep = XrdCloud(n=343, cell="conventional", limiting_sphere=False)
    hkl = rep.point_labels()
    mixed = np.array([len({h % 2, k % 2, l % 2}) == 2 for h, k, l in hkl])
    for structure in (cu(), nacl()):
        for pattern in (*rep.patterns([structure]), rep.reference_pattern(structure)):
            peak = pattern.intensity.max()
            # exactly zero, not rounding noise, in the kernel and the reference loop alike:
            # an absence then encodes the same whatever the summation order
            assert np.all(pattern.intensity[mixed] == 0.0)
            assert np.all(pattern.intensity[~mixed] > 1e-4 * peak)  # unmixed present


def test_bcc_conventional_cell_odd_sum_reflections_are_absent():
    rep = XrdCloud(n=343, cell="conventional", limiting_sphere=False)
    hkl = rep.point_labels()
    odd = hkl.sum(axis=1) % 2 == 1
    (pattern,) = rep.patterns([fe()])
    peak = pattern.intensity.max()
    assert np.all(pattern.intensity[odd] == 0.0)
    assert np.all(pattern.intensity[~odd] > 1e-4 * peak)


def test_diamond_adds_its_own_absences_to_fcc():
    """Si: all-even reflections with h + k + l = 4n + 2, e.g. (200), vanish as well."""
    rep = XrdCloud(n=343, cell="conventional", limiting_sphere=False)
    hkl = rep.point_labels()
    (pattern,) = rep.patterns([si()])
    peak = pattern.intensity.max()
    all_even = np.all(hkl % 2 == 0, axis=1)
    forbidden = all_even & (hkl.sum(axis=1) % 4 == 2)
    assert forbidden.sum() > 0
    assert np.all(pattern.intensity[forbidden] == 0.0)
    assert np.all(pattern.intensity[all_even & ~forbidden] > 1e-4 * peak)


@pytest.mark.parametrize("cell", ["primitive", "conventional"])
def test_origin_reflection_is_total_scattering_over_volume_squared(cell):
    for structure in (nacl(), zno(), disordered()):
        std = cells.reference_standard_structure(structure, cell, 0.1)
        z_sum = sum(sp.Z * occ for site in std for sp, occ in site.species.items())
        x = XrdCloud(n=4, cell=cell).patterns([structure])[0]
        assert x.intensity[0] == pytest.approx(z_sum**2 / std.volume**2, rel=1e-12)
        from pymatgen.analysis.diffraction.neutron import ATOMIC_SCATTERING_LEN

        b_sum = sum(ATOMIC_SCATTERING_LEN[sp.symbol] * occ for site in std for sp, occ in site.species.items())
        n = NdCloud(n=4, cell=cell).patterns([structure])[0]
        assert n.intensity[0] == pytest.approx(b_sum**2 / std.volume**2, rel=1e-12)


def test_partial_occupancy_scatters_as_the_average_atom():
    """A half-Cu half-Au site gives F of f = (f_Cu + f_Au) / 2 at every reflection."""
    rep = XrdCloud(n=125, cell="conventional", limiting_sphere=False)
    (mixed,) = rep.patterns([disordered()])
    base = disordered()
    (pure_cu,) = rep.patterns([Structure(base.lattice, ["Cu"] * len(base), base.frac_coords)])
    (pure_au,) = rep.patterns([Structure(base.lattice, ["Au"] * len(base), base.frac_coords)])
    expected = (np.sqrt(pure_cu.intensity) + np.sqrt(pure_au.intensity)) ** 2 / 4  # F real, same sign here
    assert np.allclose(mixed.intensity, expected, rtol=1e-10, atol=1e-12 * expected.max())


def test_limiting_sphere_zeroes_points_beyond_two_over_lambda():
    structure = cu()
    on = XrdCloud(n=343, cell="conventional").patterns([structure])[0]
    off = XrdCloud(n=343, cell="conventional", limiting_sphere=False).patterns([structure])[0]
    g = np.linalg.norm(on.g, axis=1)
    outside = g > 2 / LAMBDA
    assert outside.any() and (~outside).any()
    assert np.all(on.intensity[outside] == 0)
    assert np.array_equal(on.intensity[~outside], off.intensity[~outside])
    assert np.any(off.intensity[outside] > 0)
    # a shorter wavelength takes more points in; the encoded channel is 0 exactly where I = 0
    short = XrdCloud(n=343, cell="conventional", wavelength=0.7).patterns([structure])[0]
    assert np.count_nonzero(short.intensity) > np.count_nonzero(on.intensity)
    cloud = XrdCloud(n=343, cell="conventional").featurize(structure)
    assert np.all(cloud[outside, 3] == 0)


def test_miller_sets():
    assert miller_indices(3).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert miller_indices(4).tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    for n, m in ((27, 1), (125, 2), (343, 3)):
        hkl = miller_indices(n)
        assert hkl.shape == (n, 3)
        assert len({tuple(r) for r in hkl}) == n
        assert hkl.min() == -m and hkl.max() == m
        assert [tuple(r) for r in hkl] == sorted(tuple(r) for r in hkl)  # ordered by (h, k, l)
    for rep in (XrdCloud(n=27), NdCloud(n=27), Barcode(n=27)):
        assert np.array_equal(rep.point_labels(), miller_indices(27))


@pytest.mark.parametrize("cls", [XrdCloud, NdCloud, Barcode])
def test_invalid_parameters_name_the_valid_choices(cls):
    with pytest.raises(ValueError, match="3, 4, 27, 125, 343"):
        cls(n=8)
    with pytest.raises(ValueError, match="primitive"):
        cls(cell="reduced")
    with pytest.raises(ValueError):
        cls(wavelength=0)
    if cls is Barcode:
        with pytest.raises(ValueError, match="xray"):
            cls(radiation="electron")


def test_cloud_layout_and_encoding():
    """Columns x, y, z, intensity; positions are g times the fixed scale; the channel is
    the fixed log map of I, inside [0, 1]."""
    structure = zno()
    rep = XrdCloud(n=27)
    x = rep.featurize(structure)
    assert rep.columns() == ["x", "y", "z", "intensity"]
    assert x.shape == (27, 4) and x.dtype == np.float32
    std = cells.reference_standard_structure(structure, "primitive", 0.1)
    g = rep.point_labels() @ std.lattice.reciprocal_lattice_crystallographic.matrix
    assert np.allclose(x[:, :3], g * POSITION_SCALE, atol=1e-6)
    (pattern,) = rep.patterns([structure])
    expected = (np.log(pattern.intensity + INTENSITY_FLOOR) - np.log(INTENSITY_FLOOR)) / INTENSITY_SCALE
    assert np.allclose(x[:, 3], np.clip(expected, 0, 1), atol=1e-6)
    assert x[:, 3].min() >= 0 and x[:, 3].max() <= 1
    assert encode_intensity(np.array([0.0]))[0] == 0
    assert encode_intensity(np.array([1e3]))[0] == 1  # clipped
    assert INTENSITY_SCALE == pytest.approx(math.log(1e8))


def test_barcode_is_the_intensity_channel_in_hkl_order():
    structure = mg()
    bar = Barcode(n=27).featurize(structure)
    cloud = XrdCloud(n=27).featurize(structure)
    assert Barcode.kind == "vector" and bar.shape == (27,)
    assert np.array_equal(bar, cloud[:, 3])
    cols = Barcode(n=27).columns()
    assert cols[0] == "I(-1,-1,-1)" and cols[13] == "I(0,0,0)" and cols[-1] == "I(1,1,1)"
    assert Barcode(n=3).columns() == ["I(1,0,0)", "I(0,1,0)", "I(0,0,1)"]
    neutron = Barcode(n=27, radiation="neutron").featurize(structure)
    assert np.array_equal(neutron, NdCloud(n=27).featurize(structure)[:, 3])
    assert not np.array_equal(neutron, bar)


def test_missing_scattering_data_is_a_skip_naming_the_element():
    """pymatgen's tables have no X-ray factors for Es and no neutron length for Pu."""
    es = Structure(Lattice.cubic(3.0), ["Es"], [[0, 0, 0]])
    out = XrdCloud(n=27).featurize_many([nacl(), es, cu()])
    assert isinstance(out[1], Skip) and "Es" in str(out[1])
    assert out[0].shape == (27, 4) and out[2].shape == (27, 4)
    pu = Structure(Lattice.cubic(3.0), ["Pu"], [[0, 0, 0]])
    assert XrdCloud(n=27).featurize(pu).shape == (27, 4)
    with pytest.raises(Skip, match="Pu"):
        NdCloud(n=27).featurize(pu)
    with pytest.raises(Skip, match="Pu"):
        Barcode(n=27, radiation="neutron").featurize(pu)


def test_unfeaturisable_structure_is_a_skip_not_a_crash():
    flat = Lattice([[3, 0, 0], [0, 3, 0], [3, 3, 1e-9]])  # a cell of no volume
    crushed = Structure(flat, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    out = XrdCloud(n=27).featurize_many([crushed, nacl()])
    assert isinstance(out[0], Skip) and str(out[0])
    assert out[1].shape == (27, 4)


def test_pickles_small_and_featurises_the_same_after():
    rep = XrdCloud(n=125, cell="conventional")
    blob = pickle.dumps(rep)
    assert len(blob) < 1000
    again = pickle.loads(blob)
    assert again == rep
    assert np.array_equal(again.featurize(nacl()), rep.featurize(nacl()))


def test_registered_through_the_plugin_hook():
    from harness.services.registry import load

    registry = load()
    for name, kind in (("xrd_cloud", "cloud"), ("nd_cloud", "cloud"), ("barcode", "vector")):
        entry = registry.create("representation", name, {"n": 27})
        assert entry.kind == kind and entry.description
    from harness.services.errors import UserError

    with pytest.raises(UserError, match="343"):
        registry.create("representation", "xrd_cloud", {"n": 64})

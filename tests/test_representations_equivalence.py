"""The fast path (one spglib search, pymatgen's convention on arrays, a batched structure
factor kernel) gives the reference's result (pymatgen SpacegroupAnalyzer standard cell and
a per-reflection loop) to 1e-6 of each crystal's strongest intensity."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from pymatgen.core import Structure

from harness import Skip
from harness_plugins.representations import cells
from harness_plugins.representations.diffraction import Barcode, NdCloud, XrdCloud
from test_representations_physics import STRUCTURES

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MP_CSV = DATA / "mp_metallicity_36k.csv.gz"

REPS = [
    XrdCloud(n=343),
    XrdCloud(n=343, cell="conventional"),
    NdCloud(n=343),
    NdCloud(n=125, cell="conventional", limiting_sphere=False),
]


def assert_same(rep, structures, ids):
    fast = rep.patterns(structures)
    for structure, pattern, name in zip(structures, fast, ids):
        assert not isinstance(pattern, Skip), f"{name}: {pattern}"
        ref = rep.reference_pattern(structure)
        scale = ref.intensity.max()
        assert np.abs(pattern.intensity - ref.intensity).max() <= 1e-6 * scale, f"{rep.title} {name}"
        assert np.allclose(pattern.g, ref.g, rtol=0, atol=1e-9), f"{rep.title} {name}: points differ"


@pytest.mark.parametrize("rep", REPS, ids=lambda r: r.title)
def test_fast_path_matches_reference_on_textbook_and_low_symmetry_structures(rep):
    names = list(STRUCTURES)
    assert_same(rep, [STRUCTURES[n]() for n in names], names)


def test_features_match_reference_features():
    structure = STRUCTURES["monoclinic"]()
    for rep in (XrdCloud(n=125), Barcode(n=27, radiation="neutron", cell="conventional")):
        assert np.allclose(rep.featurize(structure), rep.featurize_reference(structure), atol=1e-6)


def test_single_featurize_equals_the_batch():
    structures = [f() for f in STRUCTURES.values()]
    rep = XrdCloud(n=27)
    batch = rep.featurize_many(structures)
    for s, x in zip(structures, batch):
        assert np.array_equal(rep.featurize(s), x)


def test_fast_cell_is_the_reference_cell():
    for name, build in STRUCTURES.items():
        for choice in ("primitive", "conventional"):
            ref = cells.reference_standard_cell(build(), choice, 0.1)
            fast = cells.fast_standard_cell(build(), choice, 0.1)
            assert np.allclose(fast.lattice, ref.lattice, atol=1e-9), (name, choice)
            assert len(fast.frac) == len(ref.frac), (name, choice)


def _real_structures(count: int, stride: int) -> tuple[list[Structure], list[str]]:
    import csv

    with gzip.open(MP_CSV, "rt") as fh:
        reader = csv.DictReader(io.StringIO(fh.read()))
        rows = [row for i, row in zip(range(count * stride), reader) if i % stride == 0]
    return [Structure.from_str(r["cif"], fmt="cif") for r in rows], [r["material_id"] for r in rows]


@pytest.mark.shared_data
@pytest.mark.skipif(not MP_CSV.is_file(), reason=f"shared data not found at {MP_CSV}")
@pytest.mark.parametrize("rep", [XrdCloud(n=343), NdCloud(n=125, cell="conventional")], ids=lambda r: r.title)
def test_fast_path_matches_reference_on_real_crystals(rep):
    structures, ids = _real_structures(count=30, stride=7)
    assert_same(rep, structures, ids)


def test_standard_cells_are_cached_so_a_second_parameter_skips_the_symmetry_search(monkeypatch):
    from pymatgen.core import Lattice, Structure

    from harness_plugins.representations import cells
    from harness_plugins.representations.diffraction import NdCloud, XrdCloud

    structures = [Structure(Lattice.cubic(a), ["Cu"], [[0, 0, 0]]) for a in (3.1, 3.2, 3.3)]
    structures.append(Structure(Lattice.cubic(3.0), ["Es"], [[0, 0, 0]]))  # no X-ray form factor
    first = XrdCloud(n=27).featurize_many(structures)
    calls, real = [], cells.fast_standard_cell
    monkeypatch.setattr(cells, "fast_standard_cell", lambda *a: calls.append(a) or real(*a))
    again = XrdCloud(n=125).featurize_many(structures)  # another n: cells come from the cache
    assert calls == []
    assert [type(x) for x in again] == [type(x) for x in first]
    np.testing.assert_array_equal(
        again[0][np.all(XrdCloud(n=125).point_labels() == 0, axis=1)],
        first[0][np.all(XrdCloud(n=27).point_labels() == 0, axis=1)],
    )
    assert not isinstance(NdCloud(n=27).featurize_many(structures)[0], Exception)
    XrdCloud(n=27, cell="conventional").featurize_many(structures[:1])  # another cell is a miss
    assert len(calls) == 1

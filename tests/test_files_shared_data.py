"""The `file` dataset reads the three shared real-data files unchanged, with the README's counts."""

from __future__ import annotations

import pytest

from conftest import SHARED_DATA as DATA
from harness.sdk.api import LoadContext
from harness_plugins.datasets.files import FileDataset

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}"),
]


def load(tmp_path, name: str, **params):
    ctx = LoadContext(tmp_path / "cache")
    return FileDataset(path=str(DATA / name), **params).load(ctx), ctx


def test_binary_elasticity_json(tmp_path):
    columns = {"k_vrh": "bulk_modulus_vrh", "g_vrh": "shear_modulus_vrh"}
    materials, ctx = load(tmp_path, "mp_binary_elasticity_3953.json.gz", columns=columns)
    assert len(materials) == 3953 and not ctx.skipped
    assert all(m.id.startswith("mp-") for m in materials)
    assert all(isinstance(m.props["k_vrh"], float) for m in materials)
    assert all(len(m.structure.composition.elements) == 2 for m in materials)  # binaries only


def test_mp20_ehull_csv(tmp_path):
    materials, ctx = load(tmp_path, "mp20_subset_ehull_2485.csv.gz", columns={"e_above_hull": "e_above_hull"})
    assert len(materials) == 2485 and not ctx.skipped
    assert all(0.0 <= m.props["e_above_hull"] <= 0.08 + 1e-9 for m in materials)
    assert all(len(m.structure) <= 20 for m in materials)  # the mp_20 cut


@pytest.mark.slow
def test_metallicity_36k_csv_and_its_cache(tmp_path):
    materials, ctx = load(tmp_path, "mp_metallicity_36k.csv.gz")
    assert len(materials) == 36738 and not ctx.skipped
    metals = sum(m.props["band_gap"] == 0.0 for m in materials)
    assert 0.40 < metals / len(materials) < 0.45  # README: 42.5 % are metals
    again, _ = load(tmp_path, "mp_metallicity_36k.csv.gz")
    assert [m.id for m in again] == [m.id for m in materials]
    assert again[-1].structure == materials[-1].structure


@pytest.mark.parametrize("name", ["mp_metallicity_36k.csv.gz", "mp20_subset_ehull_2485.csv.gz"])
def test_fast_p1_reader_gives_the_features_of_pymatgens_parser(name):
    """The gemmi fast path must not change results: same lattice, same sites up to order
    and pymatgen's 1/3 rounding, and diffraction patterns equal to 1e-6 of the strongest."""
    import csv
    import gzip
    import io
    import itertools
    import warnings

    import numpy as np

    from harness_plugins.datasets.files import compact_structure, parse_structure
    from harness_plugins.datasets.p1cif import read_p1_cif
    from harness_plugins.representations.diffraction import XrdCloud
    from pymatgen.core import Lattice, Structure

    with gzip.open(DATA / name, "rt") as fh:
        cifs = [row["cif"] for row in itertools.islice(csv.DictReader(io.StringIO(fh.read())), 0, 6000, 30)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = [parse_structure(c) for c in cifs]
    fast = [read_p1_cif(c) for c in cifs]
    assert all(f is not None for f in fast)  # these files are all P1 and ordered
    rebuilt = []
    for (lattice, frac, species), ref in zip(fast, reference):
        np.testing.assert_array_equal(lattice, compact_structure(ref)[0])
        assert sorted(s[0][0] for s in species) == sorted(site.specie.symbol for site in ref)
        rebuilt.append(Structure(Lattice(lattice), [s[0][0] for s in species], frac))
    rep = XrdCloud(n=343, cell="primitive")
    for a, b in zip(rep.patterns(rebuilt), rep.patterns(reference)):
        np.testing.assert_allclose(a.g, b.g, atol=1e-9)
        assert np.abs(a.intensity - b.intensity).max() <= 1e-6 * b.intensity.max()

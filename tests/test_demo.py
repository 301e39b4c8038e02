"""The embedded demo dataset: deterministic, offline, every crystal system, exact labels."""

from __future__ import annotations

import collections
import time

import numpy as np
import pytest
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from harness import LoadContext

from harness.services import registry
from harness.prepare.grouping import CRYSTAL_SYSTEMS, group_keys
from harness_plugins.datasets import demo as demo_module
from harness_plugins.datasets.demo import SPECIES, Demo

SMALL = 64  # 22 families of 3: every crystal system, about a second to build


def build(tmp_path, **params):
    """Load into a fresh cache folder, so the materials are really generated."""
    start = time.perf_counter()
    materials = Demo(**params).load(LoadContext(tmp_path / f"cache-{len(list(tmp_path.iterdir()))}"))
    print(f"demo {params}: {len(materials)} materials built in {time.perf_counter() - start:.2f} s")
    return materials


def same_crystals(a, b) -> bool:
    return len(a) == len(b) and all(
        x.id == y.id
        and x.group == y.group
        and [str(s.specie) for s in x.structure] == [str(s.specie) for s in y.structure]
        and np.allclose(x.structure.lattice.matrix, y.structure.lattice.matrix)
        and np.allclose(x.structure.frac_coords, y.structure.frac_coords)
        for x, y in zip(a, b)
    )


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return build(tmp_path_factory.mktemp("demo"), size=SMALL)


def test_registered_as_demo():
    assert registry.load().get("dataset", "demo").cls is Demo


def test_size_is_exact_and_ids_unique(small, tmp_path):
    assert len(small) == SMALL
    assert len({m.id for m in small}) == SMALL
    assert len(build(tmp_path, size=5, variants=0)) == 5


def test_same_seed_same_crystals_other_seed_others(small, tmp_path):
    assert same_crystals(small, build(tmp_path, size=SMALL))
    other = build(tmp_path, size=SMALL, seed=1)
    assert not same_crystals(small, other)
    assert {m.props["formula"] for m in small} != {m.props["formula"] for m in other}


def test_process_pool_gives_the_same_crystals(tmp_path, monkeypatch):
    serial = build(tmp_path, size=12)
    monkeypatch.setattr(demo_module, "_PARALLEL_ABOVE", 0)
    assert same_crystals(serial, build(tmp_path, size=12))


def test_all_seven_crystal_systems_present(small):
    counts = collections.Counter(m.props["crystal_system"] for m in small)
    print(dict(counts))
    assert set(counts) == set(CRYSTAL_SYSTEMS)


def test_labels_agree_with_spglib(small):
    """Checked with pymatgen's analyser, independently of the harness's own helper."""
    for m in small:
        sga = SpacegroupAnalyzer(m.structure, symprec=0.1)
        assert m.props["spacegroup"] == sga.get_space_group_number()
        assert m.props["crystal_system"] == sga.get_crystal_system()
        assert m.props["formula"] == m.structure.composition.reduced_formula


def test_families_are_near_copies_of_one_parent(small):
    """Variants keep the parent's arrangement (site count, anonymous formula) and almost
    always its space group, but change its chemistry."""
    families = collections.defaultdict(list)
    for m in small:
        families[m.group].append(m)
    assert all(len(f) == 3 for f in list(families.values())[:-1])
    same_sg = 0
    for members in families.values():
        assert len({len(m.structure) for m in members}) == 1
        assert len({m.structure.composition.anonymized_formula for m in members}) == 1
        assert len({m.props["formula"] for m in members}) == len(members)
        same_sg += len({m.props["spacegroup"] for m in members}) == 1
    assert same_sg >= 0.9 * len(families)


def test_families_are_recognised_as_one_prototype(small):
    """The anonymous structure matcher sees a family as one structure type (allowing
    the rare family whose variant gained symmetry at symprec 0.1)."""
    keys = group_keys(small, "prototype")
    by_family = collections.defaultdict(set)
    for m, key in zip(small, keys):
        by_family[m.group].add(key)
    assert sum(len(k) == 1 for k in by_family.values()) >= 0.85 * len(by_family)
    assert len(set(keys)) > 0.8 * len(by_family)  # but different families stay apart


def test_chemistry_varies_and_densities_are_realistic(small):
    elements = {e.symbol for m in small for e in m.structure.composition}
    assert elements <= set(SPECIES) and len(elements) >= 30
    volume_per_atom = np.array([m.structure.volume / len(m.structure) for m in small])
    assert np.all((volume_per_atom > 2) & (volume_per_atom < 300))


def test_species_have_xray_and_neutron_scattering_data():
    import json
    from pathlib import Path

    import pymatgen.analysis.diffraction as diffraction

    folder = Path(diffraction.__file__).parent
    xray = json.loads((folder / "atomic_scattering_params.json").read_text())
    neutron = json.loads((folder / "neutron_scattering_length.json").read_text())
    assert all(s in xray and s in neutron for s in SPECIES)


def test_second_load_comes_from_the_cache(tmp_path, monkeypatch):
    seen = []
    ctx = LoadContext(tmp_path, progress=lambda it, total, description: seen.append((total, description)) or it)
    first = Demo(size=9).load(ctx)
    assert seen and seen[0][0] == 3  # progress reported once, over the 3 families

    class Rebuilt(Exception):
        pass

    def refuse(self, ctx):
        raise Rebuilt

    monkeypatch.setattr(Demo, "_build", refuse)
    assert same_crystals(first, Demo(size=9).load(LoadContext(tmp_path)))
    assert list((tmp_path / "demo").glob("*.npz"))
    with pytest.raises(Rebuilt):  # other parameters miss the cache
        Demo(size=9, seed=3).load(LoadContext(tmp_path))


def test_a_corrupt_cache_is_rebuilt(tmp_path):
    first = Demo(size=3).load(LoadContext(tmp_path))
    (cached,) = (tmp_path / "demo").glob("*.npz")
    cached.write_bytes(b"not an archive")
    assert same_crystals(first, Demo(size=3).load(LoadContext(tmp_path)))


def test_bad_parameters_are_rejected(tmp_path):
    from harness.services.errors import UserError

    with pytest.raises(UserError, match="size >= 1"):  # one line for the user, not a traceback
        Demo(size=0)


@pytest.mark.slow
def test_full_size_covers_every_system_in_useful_numbers(tmp_path):
    materials = build(tmp_path)
    counts = collections.Counter(m.props["crystal_system"] for m in materials)
    print({k: counts[k] for k in CRYSTAL_SYSTEMS})
    assert len(materials) >= 2000
    assert all(counts[k] >= 0.10 * len(materials) for k in CRYSTAL_SYSTEMS)

"""Split grouping keys: what counts as 'the same material' under each notion."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from harness import Material
from harness.prepare.grouping import GROUPINGS, crystal_system, group_keys, spacegroup_number


def rocksalt(a: float, cation: str = "Na", anion: str = "Cl") -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), [cation, anion], [[0, 0, 0], [0.5, 0.5, 0.5]])


def cesium_chloride(a: float = 4.12) -> Structure:
    return Structure.from_spacegroup("Pm-3m", Lattice.cubic(a), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def zincblende(a: float = 5.41) -> Structure:
    return Structure.from_spacegroup("F-43m", Lattice.cubic(a), ["Zn", "S"], [[0, 0, 0], [0.25, 0.25, 0.25]])


def mats(*structures: Structure, groups=None) -> list[Material]:
    groups = groups or [None] * len(structures)
    return [Material(f"m{i}", s, {}, group=g) for i, (s, g) in enumerate(zip(structures, groups))]


def test_none_keys_are_the_ids():
    ms = mats(rocksalt(5.64), rocksalt(5.64))
    assert group_keys(ms, "none") == ["m0", "m1"]


def test_parent_uses_group_else_id():
    ms = mats(rocksalt(5.64), rocksalt(5.7), rocksalt(6.0), groups=["p", "p", None])
    assert group_keys(ms, "parent") == ["p", "p", "m2"]


def test_formula_spacegroup_groups_duplicates_and_separates_others():
    nacl, nacl_strained, kcl, cscl = rocksalt(5.64), rocksalt(5.70), rocksalt(6.29, "K"), cesium_chloride()
    keys = group_keys(mats(nacl, nacl_strained, kcl, cscl, nacl.copy() * (2, 1, 1)), "formula_spacegroup")
    assert keys[0] == keys[1] == keys[4]  # a supercell is the same compound
    assert len({keys[0], keys[2], keys[3]}) == 3


def test_formula_spacegroup_prefers_props():
    """Props save the spglib call: their values are what the key is made of."""
    m = Material("x", rocksalt(5.64), {"formula": "Foo", "spacegroup": 12})
    assert group_keys([m], "formula_spacegroup") == ["Foo|12"]


def test_prototype_groups_species_swaps_not_other_structure_types():
    nacl, kcl, mgo = rocksalt(5.64), rocksalt(6.29, "K"), rocksalt(4.21, "Mg", "O")
    keys = group_keys(mats(nacl, kcl, cesium_chloride(), zincblende(), mgo, nacl * (1, 1, 2)), "prototype")
    assert keys[0] == keys[1] == keys[4] == keys[5]
    assert len({keys[0], keys[2], keys[3]}) == 3


def test_prototype_separates_same_bucket_different_structures():
    """Same space group, site count and anonymous formula, but different arrangements."""
    lat = Lattice.tetragonal(4.0, 6.0)
    a = Structure(lat, ["Ti", "O"], [[0, 0, 0], [0, 0, 0.5]])
    b = Structure(lat, ["Ti", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    ma, mb = mats(a, b)
    assert spacegroup_number(a) == spacegroup_number(b)
    assert len(set(group_keys([ma, mb], "prototype"))) == 2


def test_same_structure_object_twice_gets_one_key():
    s = rocksalt(5.64)
    assert len(set(group_keys(mats(s, s), "prototype"))) == 1


def test_unknown_grouping_names_the_choices():
    with pytest.raises(ValueError) as err:
        group_keys(mats(rocksalt(5.64)), "species")
    for choice in GROUPINGS:
        assert choice in str(err.value)


@pytest.mark.parametrize(
    "number, system",
    [
        (1, "triclinic"),
        (2, "triclinic"),
        (3, "monoclinic"),
        (15, "monoclinic"),
        (16, "orthorhombic"),
        (74, "orthorhombic"),
        (75, "tetragonal"),
        (142, "tetragonal"),
        (143, "trigonal"),
        (167, "trigonal"),
        (168, "hexagonal"),
        (194, "hexagonal"),
        (195, "cubic"),
        (230, "cubic"),
    ],
)
def test_crystal_system_boundaries(number, system):
    assert crystal_system(number) == system


@pytest.mark.parametrize("number", [0, 231])
def test_crystal_system_rejects_bad_numbers(number):
    with pytest.raises(ValueError):
        crystal_system(number)


def test_spacegroup_number_matches_pymatgen():
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    for s in (rocksalt(5.64), cesium_chloride(), zincblende()):
        assert spacegroup_number(s) == SpacegroupAnalyzer(s, symprec=0.1).get_space_group_number()


def test_noble_gas_formulas_group_without_pymatgen_warnings():
    import warnings

    from pymatgen.core import Lattice, Structure

    helium = Structure(Lattice.cubic(3.0), ["He", "Ne"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="No Pauling electronegativity")
        assert group_keys([Material("he", helium)], "formula_spacegroup") == ["HeNe|221"]

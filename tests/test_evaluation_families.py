"""The pattern language of `hold_out`: which materials a family holds."""

import pytest
from pymatgen.core import Composition, Lattice, Structure

from harness.services import config
from harness.sdk.api import Material
from harness.services.config import HoldOutSpec
from harness.services.errors import UserError
from harness.prepare.families import Family, members, parse_template


def _family(**kw) -> Family:
    return Family(HoldOutSpec(label="f", **kw))


def _material(formula: str, mid: str = "m") -> Material:
    """A crystal of the given composition (sites on a line; only the composition matters)."""
    comp = Composition(formula)
    species = [str(el) for el, n in comp.items() for _ in range(int(n))]
    coords = [[i / len(species), 0, 0] for i in range(len(species))]
    return Material(mid, Structure(Lattice.cubic(3.0 * len(species)), species, coords))


@pytest.mark.parametrize(
    "formula, inside",
    [
        ("SrTiO3", True),
        ("BaTiO3", True),
        ("Ba2Ti2O6", True),
        ("LaAlO3", True),
        ("KNbO3", True),
        ("SrO", False),
        ("Sr2TiO4", False),
        ("SrTiO2N", False),
        ("TiO2", False),
        ("SrTiS3", False),
        ("BaSrTiO3", False),  # three cations: the placeholders take exactly one element each
    ],
)
def test_abo3_with_declared_placeholders_is_the_perovskite_formula(formula, inside):
    family = _family(formula="ABO3", placeholders=["A", "B"])
    assert (_material(formula) in family) is inside


def test_a_letter_that_is_an_element_is_the_element_unless_declared():
    assert _material("BN") in _family(formula="BN")  # boron nitride
    assert _material("AlN") not in _family(formula="BN")
    assert _material("AlN") in _family(formula="BN", placeholders=["B"])  # B = any element here


def test_an_undeclared_letter_that_is_no_element_names_the_fix():
    with pytest.raises(UserError, match="placeholders"):
        _family(formula="ABO3")


def test_templates_reduce_like_formulas():
    assert parse_template("A2B2O6", ["A", "B"]) == parse_template("ABO3", ["A", "B"]) == ({"O": 3.0}, [1.0, 1.0])


def test_anonymized_formula_is_pymatgens():
    family = _family(anonymized="ABC3")
    assert _material("SrTiS3") in family and _material("SrTiO3") in family
    assert _material("SrTiO2N") not in family


def test_space_group_found_by_spglib():
    rocksalt = Material(
        "nacl", Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    )
    cscl = Material("cscl", Structure(Lattice.cubic(4.1), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]))
    assert [m.id for m in (rocksalt, cscl) if m in _family(spacegroup=[225])] == ["nacl"]
    assert [m.id for m in (rocksalt, cscl) if m in _family(spacegroup=[221])] == ["cscl"]


def test_every_criterion_given_must_hold():
    mats = [_material("SrTiO3", "a"), _material("BaTiO3", "b"), _material("SrO", "c")]
    spec = HoldOutSpec(label="f", formula="ABO3", placeholders=["A", "B"], ids=["b", "c"])
    assert members(spec, mats) == [1]


def test_a_family_without_criterion_or_a_label_clash_is_a_config_error():
    base = {"tasks": ["t"], "representations": ["r"], "models": ["m"]}
    with pytest.raises(UserError, match="no criterion"):
        config.parse({**base, "dataset": {"name": "d", "hold_out": {"label": "x"}}})
    with pytest.raises(UserError, match="distinct label"):
        config.parse({**base, "dataset": {"name": "d", "hold_out": {"label": "d", "ids": ["1"]}}})

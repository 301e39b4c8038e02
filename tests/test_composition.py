"""The composition-only baseline: fractions and element-property statistics."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Element, Lattice, Structure

from harness.services import registry
from harness_plugins.representations.composition import PROPERTIES, STATISTICS, Composition

SALT = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
RUTILE = Structure.from_spacegroup(
    "P4_2/mnm", Lattice.tetragonal(4.59, 2.96), ["Ti", "O"], [[0, 0, 0], [0.305, 0.305, 0]]
)


def column(rep: Composition, name: str) -> int:
    return rep.columns().index(name)


def test_fractions_are_the_atomic_fractions_by_atomic_number():
    rep = Composition(stats=False)
    x = rep.featurize(RUTILE)
    assert x.shape == (103,) and x.sum() == pytest.approx(1.0)
    assert x[22 - 1] == pytest.approx(1 / 3) and x[8 - 1] == pytest.approx(2 / 3)
    assert rep.columns()[21] == "x(Ti)"


def test_the_cell_does_not_matter_only_the_composition():
    rep = Composition()
    primitive = SALT.get_primitive_structure()
    assert len(primitive) < len(SALT)
    assert np.array_equal(rep.featurize(primitive), rep.featurize(SALT))


def test_partial_occupancy_counts_as_its_fraction():
    alloy = Structure(Lattice.cubic(3.6), [{"Cu": 0.75, "Au": 0.25}], [[0, 0, 0]])
    x = Composition(stats=False).featurize(alloy)
    assert x[29 - 1] == pytest.approx(0.75) and x[79 - 1] == pytest.approx(0.25)


def test_statistics_are_fraction_weighted_over_pymatgens_element_data():
    rep = Composition()
    x = rep.featurize(RUTILE)
    ti, o = Element("Ti"), Element("O")
    assert x[column(rep, "mean(X)")] == pytest.approx((ti.X + 2 * o.X) / 3, rel=1e-6)
    mean_z = (22 + 2 * 8) / 3
    assert x[column(rep, "std(Z)")] == pytest.approx(
        np.sqrt((22 - mean_z) ** 2 / 3 + 2 * (8 - mean_z) ** 2 / 3), rel=1e-6
    )
    assert x[column(rep, "min(atomic_mass)")] == pytest.approx(float(o.atomic_mass), rel=1e-6)
    assert x[column(rep, "max(row)")] == 4
    assert len(rep.columns()) == 103 + len(PROPERTIES) * len(STATISTICS) == len(x)


def test_an_element_without_a_value_is_left_out_of_that_statistic_not_filled():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(Element("He").X)  # pymatgen has no electronegativity for helium
    helium_fluoride = Structure(Lattice.cubic(6.0), ["He", "F", "F"], [[0, 0, 0], [0.3, 0, 0], [0.7, 0, 0]])
    rep = Composition()
    x = rep.featurize(helium_fluoride)
    assert x[column(rep, "mean(X)")] == pytest.approx(Element("F").X, rel=1e-6)
    assert x[column(rep, "std(X)")] == 0
    assert x[column(rep, "mean(Z)")] == pytest.approx((2 + 2 * 9) / 3, rel=1e-6)
    assert np.isfinite(x).all()


def test_registered_as_a_vector():
    assert registry.load().get("representation", "composition").cls.kind == "vector"

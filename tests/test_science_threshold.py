"""`threshold`: a numeric property below (or above) a value; negative values allowed."""

from __future__ import annotations

import pytest
from pymatgen.core import Lattice, Structure

from harness.services import registry
from harness.sdk.api import Material, Skip
from harness.services.errors import UserError

C = Structure(Lattice.cubic(3.57), ["C"], [[0, 0, 0]])


def _m(**props):
    return Material("c-1", C, props)


def test_below_and_above_with_negative_energies():
    reg = registry.load()
    below = reg.create("task", "threshold", {"column": "energy_per_atom", "threshold": -154.2})
    assert below.label(_m(energy_per_atom=-154.3)) == 1 and below.label(_m(energy_per_atom=-154.1)) == 0
    assert below.label(_m(energy_per_atom="-154.3")) == 1
    assert below.classes == ("energy_per_atom >= -154.2", "energy_per_atom < -154.2")
    above = reg.create("task", "threshold", {"column": "e", "threshold": 1, "below": False})
    assert above.label(_m(e=2)) == 1 and above.label(_m(e=0.5)) == 0
    assert below.reads == ("energy_per_atom",)


def test_missing_is_unlabelled_and_nonsense_is_skipped():
    task = registry.load().create("task", "threshold", {"column": "e", "threshold": 0})
    assert task.label(_m()) is None and task.label(_m(e="")) is None
    with pytest.raises(Skip, match="non-numeric e"):
        task.label(_m(e="n/a"))
    with pytest.raises(Skip, match="non-finite e"):
        task.label(_m(e=float("nan")))


def test_a_column_is_required():
    with pytest.raises(UserError, match="set column"):
        registry.load().create("task", "threshold", {"threshold": 0})

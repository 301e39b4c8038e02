"""Symmetry tasks beyond crystal systems: `space_group` (230 classes), `point_group` (32)
and `extinction_group` (space groups that share their systematic absences).

Labels come from spglib on the material's own structure at the task's `symprec`, so any
dataset works (no `spacegroup` column needed) and every label is at one tolerance.

Extinction groups are derived, not typed in: for each space-group type in its standard
setting (spglib's first Hall setting: unique axis b, hexagonal axes for R), a reflection
h is systematically absent when some operation (R, t) fixes it (h R = h) with a
non-integer phase h . t. Space groups of one crystal system with the same set of absent
reflections (over |h|, |k|, |l| <= ABSENCE_RANGE, enough for the 6_1 screw's l = 6n) form
one extinction group. That gives 112 groups; Kim et al. (npj Comput. Mater. 2024) count
101: see `extinction_groups` for why the counts differ.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from harness import Material, Skip, Task
from harness import SYMPREC, crystal_system, symmetry_of

ABSENCE_RANGE = 6  # Miller indices -6..6 on each axis


@lru_cache(maxsize=1)
def standard_hall_numbers() -> tuple[int, ...]:
    """Hall number of each space-group type's standard setting, index 0 = No. 1."""
    import spglib

    first: dict[int, int] = {}
    for hall in range(1, 531):
        first.setdefault(int(spglib.get_spacegroup_type(hall).number), hall)
    return tuple(first[n] for n in range(1, 231))


@lru_cache(maxsize=1)
def space_group_symbols() -> tuple[str, ...]:
    """Short Hermann-Mauguin symbol of each type, index 0 = No. 1."""
    import spglib

    return tuple(spglib.get_spacegroup_type(h).international_short for h in standard_hall_numbers())


@lru_cache(maxsize=1)
def point_group_symbols() -> tuple[str, ...]:
    """Point group (Hermann-Mauguin) of each space-group type, index 0 = No. 1."""
    import spglib

    return tuple(spglib.get_spacegroup_type(h).pointgroup_international for h in standard_hall_numbers())


@lru_cache(maxsize=1)
def point_group_index() -> tuple[int, ...]:
    """Point-group class index of each space-group type, index 0 = No. 1."""
    symbols = point_group_symbols()
    order = list(dict.fromkeys(symbols))
    return tuple(order.index(s) for s in symbols)


def absent_reflections(number: int, max_index: int = ABSENCE_RANGE) -> frozenset[tuple[int, int, int]]:
    """Systematically absent (h, k, l), |h|, |k|, |l| <= max_index, of space group `number`
    in its standard setting, from its symmetry operations."""
    import spglib

    ops = spglib.get_symmetry_from_database(standard_hall_numbers()[number - 1])
    hkl = np.array(list(itertools.product(range(-max_index, max_index + 1), repeat=3)))
    absent = np.zeros(len(hkl), dtype=bool)
    for rotation, translation in zip(ops["rotations"], ops["translations"]):
        fixed = np.all(hkl @ rotation == hkl, axis=1)
        phase = hkl @ translation
        absent |= fixed & (np.abs(phase - np.rint(phase)) > 1e-6)
    return frozenset(map(tuple, hkl[absent].tolist()))


@lru_cache(maxsize=4)
def extinction_groups(max_index: int = ABSENCE_RANGE) -> tuple[tuple[int, ...], ...]:
    """Space-group numbers of each extinction group, groups in order of their lowest member.

    Two types share a group when they belong to one crystal system (trigonal and hexagonal
    apart) and have the same absent reflections in their standard settings. The count is
    112 (1 triclinic, 6 monoclinic, 44 orthorhombic, 31 tetragonal, 6 trigonal, 7
    hexagonal, 17 cubic). Kim et al. count 101 without listing their groups; no grouping
    tried here gives 101 (trigonal and hexagonal merged: 108; per Laue class: 131; by
    absences alone: 80). Likely differences: their table's settings (ITA lists several
    settings and cell choices, which split or merge symbols) and which merges they made."""
    members: dict[tuple[str, frozenset], list[int]] = {}
    for number in range(1, 231):
        key = (crystal_system(number), absent_reflections(number, max_index))
        members.setdefault(key, []).append(number)
    return tuple(sorted((tuple(m) for m in members.values()), key=lambda m: m[0]))


@lru_cache(maxsize=1)
def extinction_index() -> tuple[int, ...]:
    """Extinction-group index of each space-group type, index 0 = No. 1."""
    out = [0] * 230
    for k, numbers in enumerate(extinction_groups()):
        for n in numbers:
            out[n - 1] = k
    return tuple(out)


@dataclass
class _SpaceGroupBased(Task):
    """Shared: one spglib search per material at `symprec`; accuracy, macro-F1, top-5."""

    metric: ClassVar[str] = "accuracy"
    extra_metrics: ClassVar[tuple[str, ...]] = ("macro_f1", "top5_accuracy")

    symprec: float = SYMPREC  # spglib tolerance (angstrom)

    def __post_init__(self) -> None:
        if not self.symprec > 0:
            raise ValueError(f"symprec must be positive (angstrom); got {self.symprec!r}")

    def space_group(self, material: Material) -> int:
        try:
            return int(symmetry_of(material.structure, self.symprec, digest=material.content_hash).number)
        except (TypeError, ValueError) as exc:
            raise Skip(f"no space group: {exc}") from None

    def representation_defaults(self) -> dict[str, object]:
        # The conventional cell shows the centring (and with it the absences) directly.
        return {"cell": "conventional"}


@dataclass
class SpaceGroupTask(_SpaceGroupBased):
    name: ClassVar[str] = "space_group"
    description: ClassVar[str] = "space-group type, 230 classes; labels from spglib at symprec"

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(f"{n} {s}" for n, s in enumerate(space_group_symbols(), start=1))

    def label(self, material: Material) -> int | None:
        return self.space_group(material) - 1


@dataclass
class PointGroupTask(_SpaceGroupBased):
    name: ClassVar[str] = "point_group"
    description: ClassVar[str] = "crystallographic point group, 32 classes; labels from spglib at symprec"

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(point_group_symbols()))  # the 32, in space-group order

    def label(self, material: Material) -> int | None:
        return point_group_index()[self.space_group(material) - 1]


@dataclass
class ExtinctionGroupTask(_SpaceGroupBased):
    name: ClassVar[str] = "extinction_group"
    description: ClassVar[str] = (
        "extinction group: space groups of one crystal system with equal systematic absences "
        "(112 classes, derived from the symmetry operations); labels from spglib at symprec"
    )

    @property
    def classes(self) -> tuple[str, ...]:
        symbols = space_group_symbols()
        # e.g. "[P4 P-4 P4/m +11]": the first members and how many more
        return tuple(
            "["
            + " ".join(symbols[n - 1] for n in members[:3])
            + (f" +{len(members) - 3}" if len(members) > 3 else "")
            + "]"
            for members in extinction_groups()
        )

    def label(self, material: Material) -> int | None:
        return extinction_index()[self.space_group(material) - 1]

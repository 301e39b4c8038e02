"""Split grouping keys: materials sharing a key stay on one side of a split.

Without grouping, near-duplicates (one parent's variants, the same compound twice, the
same structure type with other species) land on both sides of a split and the score
measures memory, not learning. `group_keys` maps each material to a key under one of
several notions of "the same". The small spglib helpers used for that (space group,
crystal system) live here too, so that tasks and datasets label symmetry the same way.
"""

from __future__ import annotations

import warnings

from collections import defaultdict
from typing import TYPE_CHECKING, Sequence

from harness.sdk.api import Skip
from harness.prepare.symmetry import SYMPREC, Symmetry, analyse_symmetry, check_structure, spglib_cell, symmetry_of

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

    from harness.sdk.api import Material

GROUPINGS = ("none", "parent", "formula_spacegroup", "prototype")

# Highest space-group number of each crystal system (International Tables order).
_SYSTEM_BOUNDS = (
    (2, "triclinic"),
    (15, "monoclinic"),
    (74, "orthorhombic"),
    (142, "tetragonal"),
    (167, "trigonal"),
    (194, "hexagonal"),
    (230, "cubic"),
)
CRYSTAL_SYSTEMS = tuple(name for _, name in _SYSTEM_BOUNDS)


# --------------------------------------------------------------------------- symmetry


def symmetry_dataset(structure: "Structure", symprec: float = SYMPREC):
    """spglib's own dataset at its default angle tolerance, searched anew: for a dataset
    that labels the crystals it makes (the demo's labels must not move). Tasks, grouping
    and standard cells share one search instead (`symmetry_of`, `spacegroup_number`).
    `Skip` for an unusable structure, ValueError when spglib finds no symmetry."""
    import spglib

    check_structure(structure)
    dataset = spglib.get_symmetry_dataset(spglib_cell(structure), symprec=symprec)
    if dataset is None:
        raise ValueError(f"spglib found no symmetry (symprec={symprec}): {spglib.get_error_message()}")
    return dataset


def spacegroup_number(structure: "Structure", symprec: float = SYMPREC) -> int:
    """The space group of the shared analysis (`symmetry_of`); `Skip` when it has none."""
    return int(symmetry_of(structure, symprec).number)


def crystal_system(number: int) -> str:
    """Crystal system of a space-group number (1-230); trigonal and hexagonal kept apart."""
    for upper, name in _SYSTEM_BOUNDS:
        if 1 <= number <= upper:
            return name
    raise ValueError(f"space-group number {number} is outside 1-230")


# --------------------------------------------------------------------------- keys


def group_keys(materials: Sequence["Material"], how: str) -> list[str]:
    """One key per material; equal keys mean 'keep together'.

    how: "none" (its id), "parent" (`material.group`, else its id), "formula_spacegroup"
    (reduced formula + space group, symprec 0.1), "prototype" (same structure type
    whatever the species: pymatgen StructureMatcher, anonymous). A material whose symmetry
    cannot be had (an unusable structure) is its own group."""
    if how == "none":
        return [m.id for m in materials]
    if how == "parent":
        return [m.group if m.group is not None else m.id for m in materials]
    if how == "formula_spacegroup":
        need = [m for m in materials if not m.props.get("spacegroup")]
        _analyse(need)
        return [_formula_spacegroup(m) for m in materials]
    if how == "prototype":
        _analyse(materials)
        return _prototype_keys(materials)
    raise ValueError(f"unknown grouping {how!r}; choose one of: {', '.join(GROUPINGS)}")


def _analyse(materials: Sequence["Material"]) -> None:
    """The shared analysis of these materials, in parallel (a no-op for those known)."""
    from harness.services.content import material_hash

    analyse_symmetry([m.structure for m in materials], SYMPREC, hashes=[material_hash(m) for m in materials])


def _symmetry(material: "Material") -> Symmetry | None:
    try:
        return symmetry_of(material.structure, SYMPREC, digest=material.content_hash)
    except Skip:
        return None


def _formula_spacegroup(material: "Material") -> str:
    props = material.props
    number = props.get("spacegroup")
    if not number:
        found = _symmetry(material)
        if found is None:
            return f"{material.id}|unanalysed"
        number = found.number
    with warnings.catch_warnings():
        # Noble gases have no Pauling electronegativity; pymatgen says so while it orders
        # the formula, which is the same either way.
        warnings.filterwarnings("ignore", message="No Pauling electronegativity")
        formula = props.get("formula") or material.structure.composition.reduced_formula
    return f"{formula}|{int(number)}"


def _prototype_keys(materials: Sequence["Material"]) -> list[str]:
    """Cluster by anonymous structure match, only within cheap-to-compute buckets.

    Two structures of one prototype share space group, primitive-cell size and
    anonymous formula, so matching inside those buckets finds the same groups as
    matching all pairs, at a fraction of the cost."""
    from pymatgen.analysis.structure_matcher import StructureMatcher

    buckets: dict[str, list[int]] = defaultdict(list)
    keys = [""] * len(materials)
    for i, m in enumerate(materials):
        found = _symmetry(m)
        if found is None:
            keys[i] = f"{m.id}|unanalysed"
            continue
        anonymous = m.structure.composition.anonymized_formula
        buckets[f"{found.number}|{found.n_primitive}|{anonymous}"].append(i)

    matcher = StructureMatcher()  # primitive cells, scaled volumes, as pymatgen defaults
    for bucket, members in buckets.items():
        if len(members) == 1:
            keys[members[0]] = f"{bucket}|0"
            continue
        # The matcher returns the objects it was given: tell members apart by identity,
        # copying a structure object that two materials share.
        structures, by_id = [], {}
        for i in members:
            s = materials[i].structure
            s = s.copy() if id(s) in by_id else s
            structures.append(s)
            by_id[id(s)] = i
        clusters = matcher.group_structures(structures, anonymous=True)
        # Number clusters by their first member in input order, so keys do not depend on
        # the matcher's internal ordering.
        ordered = sorted((sorted(by_id[id(s)] for s in c) for c in clusters), key=lambda c: c[0])
        for k, cluster in enumerate(ordered):
            for i in cluster:
                keys[i] = f"{bucket}|{k}"
    return keys

"""A fast path for the commonest CIF in materials data: P1, ordered, one block (what
pymatgen's `CifWriter` writes, as in the Materials Project exports).

gemmi's C++ parser reads such a CIF in ~20 us, against ~3 ms for pymatgen's `CifParser`,
which is most of a cold load of 36k crystals. For these files a structure is just the
cell, the listed sites and their elements: no symmetry to expand, no occupancies to
merge. Anything else (symmetry operations beyond the identity, partial occupancies,
oxidation states, magnetic moments, coincident sites, unknown elements) returns None and
goes to pymatgen. The result matches pymatgen's up to the site order; pymatgen's one
edit of the numbers, coordinates near 1/3 and 2/3 set to those values, is applied the same
way (tests/test_files_shared_data.py pins the features of both paths to each other).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_IDENTITY = {"x,y,z", "+x,+y,+z"}
_SYMOP_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz")
_CELL_TAGS = (
    "_cell_length_a",
    "_cell_length_b",
    "_cell_length_c",
    "_cell_angle_alpha",
    "_cell_angle_beta",
    "_cell_angle_gamma",
)
_COORD_TAGS = ("_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z")
_FALLBACK_PREFIXES = ("_atom_site_moment", "_space_group_magn", "_parent_space_group", "_atom_site_aniso_moment")
_MIN_DISTANCE = 1e-3  # angstrom: closer sites would be merged by pymatgen; leave them to it


def read_p1_cif(text: str) -> tuple[np.ndarray, np.ndarray, tuple] | None:
    """(lattice matrix, fractional coordinates, per-site ((element, 1.0),)) of a P1,
    ordered CIF, in pymatgen's conventions; None when the CIF needs pymatgen."""
    try:
        import gemmi
    except ImportError:  # pragma: no cover - gemmi is a dependency; pymatgen still works
        return None
    try:
        doc = gemmi.cif.read_string(text)
    except Exception:  # noqa: BLE001 - pymatgen gives the user-facing reason
        return None
    if len(doc) != 1:
        return None
    block = doc[0]
    for item in block:
        tag = item.pair[0] if item.pair is not None else (item.loop.tags[0] if item.loop is not None else "")
        if tag.startswith(_FALLBACK_PREFIXES):
            return None
    ops = next((list(block.find_values(tag)) for tag in _SYMOP_TAGS if len(block.find_values(tag))), None)
    if ops is None or len(ops) != 1 or gemmi.cif.as_string(ops[0]).replace(" ", "").lower() not in _IDENTITY:
        return None
    return _sites(block, gemmi)


def _sites(block: Any, gemmi: Any) -> tuple[np.ndarray, np.ndarray, tuple] | None:
    from pymatgen.core import Lattice

    cell = [block.find_value(tag) for tag in _CELL_TAGS]
    if any(v is None for v in cell):
        return None
    table = block.find("_atom_site_", ["type_symbol", "fract_x", "fract_y", "fract_z", "?occupancy"])
    if len(table) == 0:
        return None
    symbols, frac = [], []
    for row in table:
        symbol = gemmi.cif.as_string(row[0])
        if symbol not in _element_symbols():  # oxidation states, labels, dummies
            return None
        if row.has(4) and abs(gemmi.cif.as_number(row[4]) - 1.0) > 1e-9:
            return None
        symbols.append(symbol)
        frac.append([gemmi.cif.as_number(row[k]) for k in (1, 2, 3)])
    coords = _ideal_thirds(np.asarray(frac, dtype=np.float64))
    if not np.isfinite(coords).all():
        return None
    coords -= np.floor(coords)  # pymatgen wraps into [0, 1)
    lattice = Lattice.from_parameters(*(gemmi.cif.as_number(v) for v in cell))
    if _has_coincident_sites(lattice.matrix, coords):
        return None
    species = tuple(((s, 1.0),) for s in symbols)
    return np.array(lattice.matrix, dtype=np.float64), coords, species


def _ideal_thirds(frac: np.ndarray) -> np.ndarray:
    """pymatgen's CifParser sets a coordinate to 1/3 (2/3) when coordinate / (1/3) is within
    `frac_tolerance` of 1 (finite-precision CIFs, e.g. 0.3333); the same here, with its default."""
    tolerance = _pymatgen_frac_tolerance()
    for ideal in (1 / 3, 2 / 3):
        frac = np.where(np.abs(frac / ideal - 1) <= tolerance, ideal, frac)
    return frac


def _pymatgen_frac_tolerance() -> float:
    global _FRAC_TOLERANCE
    if _FRAC_TOLERANCE is None:
        import inspect

        from pymatgen.io.cif import CifParser

        _FRAC_TOLERANCE = float(inspect.signature(CifParser.__init__).parameters["frac_tolerance"].default)
    return _FRAC_TOLERANCE


_FRAC_TOLERANCE: float | None = None


def _element_symbols() -> frozenset[str]:
    global _SYMBOLS
    if _SYMBOLS is None:
        from pymatgen.core import Element

        _SYMBOLS = frozenset(e.symbol for e in Element)
    return _SYMBOLS


_SYMBOLS: frozenset[str] | None = None


def _has_coincident_sites(matrix: np.ndarray, frac: np.ndarray) -> bool:
    if len(frac) < 2:
        return False
    delta = frac[:, None, :] - frac[None, :, :]
    delta -= np.round(delta)
    dist = np.linalg.norm(delta @ matrix, axis=-1)
    np.fill_diagonal(dist, np.inf)
    return bool((dist < _MIN_DISTANCE).any())

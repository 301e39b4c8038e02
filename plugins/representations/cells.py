"""Standard cells: pymatgen's reference and a fast port of the same convention.

The convention is pymatgen's `SpacegroupAnalyzer(structure, symprec).
get_primitive_standard_structure()` / `get_conventional_standard_structure()`
(Setyawan & Curtarolo 2010 on top of spglib's refined cell), as deepKNet used. The
reference calls pymatgen (two spglib searches and many Python objects a crystal); the
fast path runs one spglib search and replays pymatgen's
post-processing on plain arrays. Only the lattice parameters of the refined cell and
positions up to an origin shift reach the output. The rare branches whose output depends
on the refined cell's Cartesian orientation fall back to the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Sequence

import numpy as np

from harness import ANGLE_TOLERANCE, Skip, Symmetry, symmetry_of

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

CellChoice = Literal["primitive", "conventional"]
ANGLE_TOLERANCE_DEG = ANGLE_TOLERANCE  # pymatgen SpacegroupAnalyzer's default, shared by the core
_TOL = 1e-5  # pymatgen's tolerance in get_conventional_standard_structure


@dataclass(frozen=True)
class Cell:
    """A crystal as arrays: what the structure-factor kernels need, and nothing else.

    `species[t]` lists (symbol, Z, occupancy) of the site type t; `types[j]` is site j's type.
    """

    lattice: np.ndarray  # (3, 3), rows are a, b, c in angstrom
    frac: np.ndarray  # (N, 3) fractional coordinates
    types: np.ndarray  # (N,) int
    species: tuple[tuple[tuple[str, int, float], ...], ...]

    @property
    def volume(self) -> float:
        return float(abs(np.linalg.det(self.lattice)))


def cell_from_structure(structure: "Structure") -> Cell:
    """Arrays of a pymatgen structure; one type per distinct site composition."""
    ids: dict = {}
    types = [ids.setdefault(site.species, len(ids)) for site in structure]
    species = tuple(
        tuple((sp.symbol, int(getattr(sp, "Z", 0) or 0), float(occ)) for sp, occ in comp.items()) for comp in ids
    )
    return Cell(
        np.array(structure.lattice.matrix, dtype=float),
        np.array(structure.frac_coords, dtype=float).reshape(-1, 3),
        np.array(types, dtype=np.int64),
        species,
    )


# ----------------------------------------------------------------------------- reference


def reference_standard_structure(structure: "Structure", cell: CellChoice, symprec: float) -> "Structure":
    """pymatgen's standard cell of `structure`, site properties (magnetic moments) ignored:
    X-rays and our neutron model see no magnetic order."""
    from pymatgen.core import Structure
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    bare = Structure(structure.lattice, [site.species for site in structure], structure.frac_coords)
    sga = SpacegroupAnalyzer(bare, symprec=symprec, angle_tolerance=ANGLE_TOLERANCE_DEG)
    if cell == "primitive":
        return sga.get_primitive_standard_structure()
    return sga.get_conventional_standard_structure()


def reference_standard_cell(structure: "Structure", cell: CellChoice, symprec: float) -> Cell:
    return cell_from_structure(reference_standard_structure(structure, cell, symprec))


# ----------------------------------------------------------------------------- fast path


class NeedsReference(Exception):
    """A branch of pymatgen's convention that depends on Cartesian orientation."""


def fast_standard_cell(structure: "Structure", cell: CellChoice, symprec: float) -> Cell:
    """The standard cell of `reference_standard_cell`, identical to it, without pymatgen's
    objects: one spglib search (pymatgen runs two) and the convention on arrays.

    moyopy (10x faster search) was tried and dropped: it picks another, equally standard
    setting for ~3 % of Materials Project crystals (merohedral Laue classes, monoclinic cell
    choices), and moyopy 0.21 aborts the process on an out-of-memory error for at least one
    (a skewed NbS2 cell, symprec 0.1)."""
    raw = cell_from_structure(structure)
    found = symmetry_of(structure, symprec)  # the run's shared search; Skip if unusable
    try:
        lattice, frac, types = _standardize(found, cell)
    except NeedsReference:
        return reference_standard_cell(structure, cell, symprec)
    return Cell(lattice, frac, types, raw.species)


CELL_CACHE_VERSION = "2"  # 2: arrays + JSON, no pickles  # bump when the standard cells change


def standard_cells(structures: Sequence["Structure"], cell: CellChoice, symprec: float) -> list[Cell | Skip]:
    """The fast standard cell of each structure; a `Skip` where one cannot be had."""
    out: list[Cell | Skip] = []
    for structure in structures:
        try:
            out.append(fast_standard_cell(structure, cell, symprec))
        except Skip as exc:
            out.append(exc)
        except Exception as exc:  # a structure that cannot be standardised
            out.append(Skip(f"{type(exc).__name__}: {exc}"))
    return out


def cached_standard_cells(structures: Sequence["Structure"], cell: CellChoice, symprec: float) -> list[Cell | Skip]:
    """`standard_cells`, kept on disk per chunk of structures (keyed by their content).

    The symmetry search is ~95 % of a featurisation: a second representation or parameter
    (n, radiation, wavelength, ...) on the same crystals then costs only the kernel."""
    import hashlib

    from harness import cache_dir, read_arrays, structure_hash

    key = hashlib.blake2b(f"{cell}|{symprec!r}|{CELL_CACHE_VERSION}".encode(), digest_size=16)
    for structure in structures:
        key.update(structure_hash(structure))
    path = cache_dir() / "cells" / f"{key.hexdigest()}.npz"
    got = read_arrays(path)
    if got is not None:
        return _cells_from_arrays(*got)
    cells = standard_cells(structures, cell, symprec)
    _write_cells(path, cells)
    return cells


def _write_cells(path, cells: list[Cell | Skip]) -> None:
    """Cells as arrays and JSON (checksummed, no pickles): lattices, coordinates, types."""
    from harness import write_arrays

    ok = [c for c in cells if isinstance(c, Cell)]
    sizes = [len(c.frac) for c in ok]
    write_arrays(
        path,
        {
            "lattice": np.asarray([c.lattice for c in ok], dtype=float).reshape(-1, 3, 3),
            "frac": np.concatenate([c.frac for c in ok]) if ok else np.zeros((0, 3)),
            "types": np.concatenate([c.types for c in ok]) if ok else np.zeros(0, np.int64),
            "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
        },
        {"entries": [str(c) if isinstance(c, Skip) else [list(map(list, sp)) for sp in c.species] for c in cells]},
    )


def _cells_from_arrays(arrays: dict, meta: dict) -> list[Cell | Skip]:
    out: list[Cell | Skip] = []
    k = 0
    off = arrays["offsets"]
    for entry in meta["entries"]:
        if isinstance(entry, str):
            out.append(Skip(entry))
            continue
        a, b = off[k], off[k + 1]
        species = tuple(tuple((str(sym), int(z), float(occ)) for sym, z, occ in site) for site in entry)
        out.append(Cell(arrays["lattice"][k], arrays["frac"][a:b], arrays["types"][a:b], species))
        k += 1
    return out


def _standardize(found: Symmetry, cell: CellChoice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    number, symbol, lattice, frac, types = _refined(found)
    lattice, frac = _conventional(lattice, frac, number, symbol)
    if cell == "primitive":
        lattice, frac, types = _primitive(lattice, frac, types, symbol, number)
    return lattice, frac, types


def _refined(found: Symmetry) -> tuple[int, str, np.ndarray, np.ndarray, np.ndarray]:
    """spglib's refined (conventional, idealised) cell, as `get_refined_structure` gets it,
    from the shared analysis (spglib at pymatgen's angle tolerance); the types numbered from
    0 in order of first appearance, as `cell_from_structure` numbers them."""
    frac = np.asarray(found.std_positions, dtype=float).reshape(-1, 3)
    return (
        found.number,
        found.international,
        np.asarray(found.std_lattice, dtype=float),
        frac,
        np.asarray(found.std_types) - 1,
    )


def _lattice_type(number: int, symbol: str) -> str:
    if symbol.startswith("R"):
        return "rhombohedral"
    for upper, family in ((3, "triclinic"), (16, "monoclinic"), (75, "orthorhombic"), (143, "tetragonal")):
        if number < upper:
            return family
    return "hexagonal" if number < 195 else "cubic"


def _lengths(m: np.ndarray) -> tuple[float, float, float]:
    return tuple(np.sqrt(np.sum(m**2, axis=1)).tolist())  # type: ignore[return-value]


def _angles(m: np.ndarray) -> tuple[float, float, float]:
    lengths = _lengths(m)
    out = []
    for dim in range(3):
        j, k = (dim + 1) % 3, (dim + 2) % 3
        out.append(np.clip(np.dot(m[j], m[k]) / (lengths[j] * lengths[k]), -1, 1))
    return tuple(np.rad2deg(np.arccos(out)).tolist())  # type: ignore[return-value]


def _from_parameters(a: float, b: float, c: float, alpha: float, beta: float, gamma: float) -> np.ndarray:
    """pymatgen's `Lattice.from_parameters` (vesta=False), without the Lattice object."""
    angles_r = np.radians([alpha, beta, gamma])
    cos_alpha, cos_beta, cos_gamma = np.cos(angles_r)
    sin_alpha, sin_beta, _ = np.sin(angles_r)
    val = np.clip((cos_alpha * cos_beta - cos_gamma) / (sin_alpha * sin_beta), -1, 1)
    gamma_star = np.arccos(val)
    return np.array(
        [
            [a * sin_beta, 0.0, a * cos_beta],
            [-b * sin_alpha * np.cos(gamma_star), b * sin_alpha * np.sin(gamma_star), b * cos_alpha],
            [0.0, 0.0, float(c)],
        ]
    )


def _sorted_axes(lattice: np.ndarray, axes: tuple[int, ...]) -> list[int]:
    lengths = _lengths(lattice)
    return sorted(axes, key=lambda i: lengths[i])  # stable, as pymatgen's sorted()


def _conventional(lattice: np.ndarray, frac: np.ndarray, number: int, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """Port of `SpacegroupAnalyzer.get_conventional_standard_structure` from the refined cell."""
    latt_type = _lattice_type(number, symbol)
    abc = _lengths(lattice)
    transf = np.zeros((3, 3))

    if latt_type in ("orthorhombic", "cubic"):
        if symbol.startswith("C"):
            transf[2] = [0, 0, 1]
            order = _sorted_axes(lattice, (0, 1))
            a, b = sorted(abc[:2])
            c = abc[2]
        elif symbol.startswith("A"):
            transf[2] = [1, 0, 0]
            order = _sorted_axes(lattice, (1, 2))
            a, b = sorted(abc[1:])
            c = abc[0]
        else:
            order = _sorted_axes(lattice, (0, 1, 2))
            a, b, c = sorted(abc)
        for idx, orig in enumerate(order):
            transf[idx][orig] = 1
        new = _from_parameters(a, b, c, 90, 90, 90)

    elif latt_type == "tetragonal":
        order = _sorted_axes(lattice, (0, 1, 2))
        a, b, c = sorted(abc)
        for idx, orig in enumerate(order):
            transf[idx][orig] = 1
        if abs(b - c) < _TOL < abs(a - c):
            a, c = c, a
            transf = np.dot([[0, 0, 1], [0, 1, 0], [1, 0, 0]], transf)
        new = _from_parameters(a, a, c, 90, 90, 90)

    elif latt_type in ("hexagonal", "rhombohedral"):
        angles = _angles(lattice)
        if np.allclose(abc, abc[0], atol=1e-3, rtol=0.0) and np.allclose(angles, angles[0], atol=1e-2, rtol=0.0):
            raise NeedsReference("rhombohedral refined cell")  # pymatgen makes a supercell here
        a, b, c = abc
        if abs(b - c) < 0.001:
            a, c = c, a
        new = np.array([[a / 2, -a * math.sqrt(3) / 2, 0], [a / 2, a * math.sqrt(3) / 2, 0], [0, 0, c]])
        transf = np.eye(3)

    elif latt_type == "monoclinic":
        new, transf = _monoclinic(lattice, symbol)

    else:  # triclinic
        lattice, frac, new, transf = _triclinic(lattice, frac)

    new_frac = frac @ transf.T
    return np.asarray(new, dtype=float), new_frac - np.floor(new_frac)


def _parameters(m: np.ndarray) -> tuple[float, ...]:
    return (*_lengths(m), *_angles(m))


def _monoclinic(lattice: np.ndarray, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    m = lattice
    transf = np.zeros((3, 3))
    new_matrix = None
    if symbol.startswith("C"):
        transf[2] = [0, 0, 1]
        order = _sorted_axes(lattice, (0, 1))
        abc = _lengths(lattice)
        a, b, c = abc[order[0]], abc[order[1]], abc[2]
        for p in ((0, 1), (1, 0)):
            a_, b_, c_, alpha, _, _ = _parameters(np.array([m[p[0]], m[p[1]], m[2]]))
            if math.isclose(alpha, 90, rel_tol=0, abs_tol=1e-10):
                continue
            transf = np.zeros((3, 3))
            transf[2][2] = 1
            if alpha > 90:
                a, b, c, alpha, _, _ = _parameters(np.array([-m[p[0]], -m[p[1]], m[2]]))
                transf[0][p[0]] = -1
                transf[1][p[1]] = -1
            elif alpha < 90:
                transf[0][p[0]] = 1
                transf[1][p[1]] = 1
                a, b, c = a_, b_, c_
            alpha_r = math.radians(alpha)
            new_matrix = [[a, 0, 0], [0, b, 0], [0, c * math.cos(alpha_r), c * math.sin(alpha_r)]]
        if new_matrix is None:
            new_matrix = [[a, 0, 0], [0, b, 0], [0, 0, c]]
            for idx, orig in enumerate(order):
                transf[idx][orig] = 1
    else:
        import itertools

        for p in itertools.permutations(range(3), 3):
            a, b, c, alpha, _, _ = _parameters(np.array([m[p[0]], m[p[1]], m[p[2]]]))
            if math.isclose(alpha, 90, rel_tol=0, abs_tol=1e-10) or b >= c:
                continue
            transf = np.zeros((3, 3))
            transf[2][p[2]] = 1
            if alpha > 90 and b < c:
                a, b, c, alpha, _, _ = _parameters(np.array([-m[p[0]], -m[p[1]], m[p[2]]]))
                transf[0][p[0]] = -1
                transf[1][p[1]] = -1
            elif alpha < 90 and b < c:
                transf[0][p[0]] = 1
                transf[1][p[1]] = 1
            alpha_r = math.radians(alpha)
            new_matrix = [[a, 0, 0], [0, b, 0], [0, c * math.cos(alpha_r), c * math.sin(alpha_r)]]
        if new_matrix is None:
            raise NeedsReference("monoclinic cell with a right angle")  # uses Cartesian vectors
    # international convention: beta is the non-right angle
    op = np.array([[0, 1, 0], [1, 0, 0], [0, 0, -1]])
    transf = op @ transf
    new_matrix = op @ np.asarray(new_matrix, dtype=float)
    if _angles(new_matrix)[1] < 90:
        op = np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]])
        transf = op @ transf
        new_matrix = op @ new_matrix
    return new_matrix, transf


def _triclinic(lattice: np.ndarray, frac: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from pymatgen.core import Lattice

    reduced = Lattice(lattice).get_lll_reduced_lattice().matrix
    frac = (frac @ lattice) @ np.linalg.inv(reduced)
    a, b, c = _lengths(reduced)
    alpha, beta, gamma = (math.radians(x) for x in _angles(reduced))
    ca, cb, cg, sg = math.cos(alpha), math.cos(beta), math.cos(gamma), math.sin(gamma)
    cz = c * math.sqrt(sg**2 - ca**2 - cb**2 + 2 * ca * cb * cg) / sg
    cy = c * (ca - cb * cg) / sg
    va, vb, vc = [a, 0, 0], [b * cg, b * sg, 0.0], [c * cb, cy, cz]
    neg = lambda v: [-x for x in v]  # noqa: E731
    candidates = [
        ([va, vb, vc], np.eye(3)),
        ([neg(va), vb, neg(vc)], np.diag([-1.0, 1, -1])),
        ([neg(va), neg(vb), vc], np.diag([-1.0, -1, 1])),
        ([va, neg(vb), neg(vc)], np.diag([1.0, -1, -1])),
    ]
    new_matrix, transf = None, np.zeros((3, 3))
    for matrix, t in candidates:  # the last that fits wins, as in pymatgen
        recip = np.linalg.inv(np.array(matrix, dtype=float)).T
        angles = np.array(_angles(recip))
        if np.all(angles <= 90) or np.all(angles > 90):
            new_matrix, transf = matrix, t
    if new_matrix is None:
        raise NeedsReference("triclinic cell with mixed reciprocal angles")
    return reduced, frac, np.array(new_matrix, dtype=float), transf


def _primitive_transform(symbol: str, number: int) -> np.ndarray | None:
    """pymatgen's `get_conventional_to_primitive_transformation_matrix`; None for P."""
    if symbol.startswith("P"):
        return None
    if symbol.startswith("R"):
        return np.array([[2, 1, 1], [-1, 1, 1], [-1, -2, 1]], dtype=float) / 3
    if symbol.startswith("I"):
        return np.array([[-1, 1, 1], [1, -1, 1], [1, 1, -1]], dtype=float) / 2
    if symbol.startswith("F"):
        return np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float) / 2
    if symbol.startswith(("C", "A")):
        if 3 <= number < 16:
            return np.array([[1, 1, 0], [-1, 1, 0], [0, 0, 2]], dtype=float) / 2
        return np.array([[1, -1, 0], [1, 1, 0], [0, 0, 2]], dtype=float) / 2
    raise NeedsReference(f"unrecognised space group {symbol}")


def _primitive(
    lattice: np.ndarray, frac: np.ndarray, types: np.ndarray, symbol: str, number: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Port of `get_primitive_standard_structure` from the conventional standard cell."""
    transf = _primitive_transform(symbol, number)
    if transf is None:
        return lattice, frac, types
    prim = transf @ lattice
    pfrac = frac @ np.linalg.inv(transf)
    pfrac = pfrac - np.floor(pfrac)
    keep = _unique_sites(pfrac, types)
    pfrac, types = pfrac[keep], types[keep]
    if symbol.startswith("R"):
        a = _lengths(prim)[0]
        alpha = math.radians(_angles(prim)[0])
        cos_fraction = math.cos(alpha) / math.cos(alpha / 2)
        a_sin = a * math.sin(alpha / 2)
        prim = np.array(
            [
                [a * math.cos(alpha / 2), -a_sin, 0.0],
                [a * math.cos(alpha / 2), a_sin, 0.0],
                [a * cos_fraction, 0.0, a * math.sqrt(1 - cos_fraction**2)],
            ]
        )
    return prim, pfrac, types


def _unique_sites(frac: np.ndarray, types: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Indices of the first of each set of periodic images (same type, same position to
    pymatgen's `is_periodic_image` tolerance)."""
    diff = frac[:, None, :] - frac[None, :, :]
    diff -= np.round(diff)
    same = np.all(np.abs(diff) <= tol, axis=-1) & (types[:, None] == types[None, :])
    first = np.argmax(same, axis=1)  # the earliest equivalent site of each site
    return np.flatnonzero(first == np.arange(len(frac)))

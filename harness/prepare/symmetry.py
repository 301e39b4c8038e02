"""One symmetry analysis per crystal, shared by everything that needs one.

spglib's search is the dearest step of a run on real data (~15 ms a Materials Project
cell). Split grouping, symmetry labels and standard cells all need the same search, so
the core runs it once per (structure content, symprec), in parallel across cores, keeps
the answer in memory (forked workers inherit it) and on disk (content-keyed, checksummed),
and lends it to plugins through `harness.symmetry_of` / `harness.analyse_symmetry`.

It is also the one gate to spglib's C code: a structure with a non-finite or singular
cell never reaches it (spglib dereferences garbage and kills the process on a NaN
lattice); it is a `Skip`, counted by whoever asked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from harness.sdk.api import Skip
from harness.services.content import structure_hash
from harness.services.errors import UserError
from harness.services.workers import cores

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

SYMPREC = 0.1  # the paper's (and deepKNet's) tolerance, in Angstrom
# pymatgen SpacegroupAnalyzer's default: the standard cells follow pymatgen's convention,
# and every other use shares their search.
ANGLE_TOLERANCE = 5.0
ANALYSIS_VERSION = "1"  # bump when what is kept of a search changes
CHUNK = 256
MIN_VOLUME_RATIO = 1e-6  # |det| / (a b c) below this is a degenerate (flat) cell


@dataclass(frozen=True)
class Symmetry:
    """What the harness keeps of spglib's dataset: the space group, the refined
    (conventional, idealised) cell in spglib's setting, and the primitive cell's size.

    `std_types` number the input's site types from 1 in order of first appearance
    (types: distinct site compositions), as `spglib_cell` gives them."""

    number: int
    international: str
    std_lattice: np.ndarray  # (3, 3)
    std_positions: np.ndarray  # (M, 3) fractional
    std_types: np.ndarray  # (M,)
    n_primitive: int  # sites of the primitive cell (distinct `mapping_to_primitive`)


def structure_problem(lattice: np.ndarray, frac_coords: np.ndarray) -> str | None:
    """Why spglib or a featuriser cannot take this cell (non-finite numbers, no sites, a
    singular or flat lattice), or None when it can."""
    lattice = np.asarray(lattice, dtype=float)
    frac = np.asarray(frac_coords, dtype=float)
    if lattice.shape != (3, 3) or not np.all(np.isfinite(lattice)):
        return "lattice has non-finite values (NaN or infinity)"
    if frac.size == 0:
        return "structure has no sites"
    if not np.all(np.isfinite(frac)):
        return "coordinates have non-finite values (NaN or infinity)"
    lengths = np.linalg.norm(lattice, axis=1)
    volume = abs(float(np.linalg.det(lattice)))
    if not np.all(lengths > 0) or not volume > MIN_VOLUME_RATIO * float(np.prod(lengths)):
        return "lattice is singular or degenerate (zero volume)"
    return None


def check_structure(structure: Structure) -> None:
    """Raise `Skip` when `structure_problem` finds one."""
    problem = structure_problem(structure.lattice.matrix, structure.frac_coords)
    if problem is not None:
        raise Skip(f"unusable structure: {problem}")


def spglib_cell(structure: Structure) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The (lattice, fractional positions, types) triple spglib wants.

    Sites with different species (or, if disordered, different occupancies) get
    different types, so a disordered site never merges with an ordered one."""
    types: dict = {}
    numbers = [types.setdefault(site.species, len(types) + 1) for site in structure]
    return np.asarray(structure.lattice.matrix, dtype=float), np.asarray(structure.frac_coords, dtype=float), numbers


# ----------------------------------------------------------------------------- search

SPGLIB_CALLS = 0  # searches run by this process (for tests and benchmarks)


def _search(structure: Structure, symprec: float) -> Symmetry | Skip:
    global SPGLIB_CALLS
    import spglib

    try:
        check_structure(structure)
    except Skip as exc:
        return exc
    SPGLIB_CALLS += 1
    ds = spglib.get_symmetry_dataset(spglib_cell(structure), symprec=symprec, angle_tolerance=ANGLE_TOLERANCE)
    if ds is None:
        return Skip(f"spglib found no symmetry (symprec={symprec}): {spglib.get_error_message()}")
    return Symmetry(
        int(ds.number),
        str(ds.international),
        np.asarray(ds.std_lattice, dtype=float),
        np.asarray(ds.std_positions, dtype=float).reshape(-1, 3),
        np.asarray(ds.std_types, dtype=np.int64),
        len(set(np.asarray(ds.mapping_to_primitive).tolist())),
    )


# ----------------------------------------------------------------------------- memory

_KNOWN: dict[tuple[bytes, float], Symmetry | Skip] = {}


def _key(structure: Structure, symprec: float, digest: bytes | None = None) -> tuple[bytes, float]:
    return (digest if digest is not None else structure_hash(structure), float(symprec))


def symmetry_of(structure: Structure, symprec: float = SYMPREC, digest: bytes | None = None) -> Symmetry:
    """The shared analysis of one structure (searched once per content and symprec);
    `Skip` when the structure is unusable or spglib finds no symmetry.

    `digest`: the structure's content hash when the caller has it (`Material.content_hash`)."""
    key = _key(structure, symprec, digest)
    got = _KNOWN.get(key)
    if got is None:
        got = _KNOWN[key] = _search(structure, symprec)
    if isinstance(got, Skip):
        raise Skip(str(got))
    return got


# ----------------------------------------------------------------------------- batches

_BATCH: Sequence[Structure] = ()  # set before forking: workers read structures from it


def _search_inherited(start: int, stop: int, symprec: float) -> list[Symmetry | Skip]:
    return [_search(s, symprec) for s in _BATCH[start:stop]]


def unknown(hashes: Sequence[bytes], symprec: float) -> int:
    """How many of these structures (by content hash) this process has not analysed yet."""
    return sum((h, float(symprec)) not in _KNOWN for h in hashes)


def analyse_symmetry(
    structures: Sequence[Structure],
    symprec: float = SYMPREC,
    *,
    hashes: Sequence[bytes] | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Symmetry | Skip]:
    """The shared analysis of many structures: from memory, else from the on-disk cache
    (keyed by the structures' content), else searched in `workers` processes (default:
    every core). A `Skip` where a structure cannot be analysed."""
    hashes = list(hashes) if hashes is not None else [structure_hash(s) for s in structures]
    keys = [(h, float(symprec)) for h in hashes]
    missing = [i for i, k in enumerate(keys) if k not in _KNOWN]
    if missing:
        _fill(structures, keys, missing, symprec, workers, progress)
    elif progress:
        progress(len(keys), len(keys))
    return [_KNOWN[k] for k in keys]


def _fill(structures, keys, missing: list[int], symprec: float, workers: int | None, progress) -> None:
    path = _cache_path([keys[i][0] for i in missing], symprec)
    cached = _read(path, len(missing))
    if cached is not None:
        for i, got in zip(missing, cached):
            _KNOWN[keys[i]] = got
        if progress:
            progress(len(keys), len(keys))
        return
    found = _compute([structures[i] for i in missing], symprec, workers, progress, len(keys) - len(missing), len(keys))
    for i, got in zip(missing, found):
        _KNOWN[keys[i]] = got
    _write(path, found)


def _compute(structures, symprec: float, workers: int | None, progress, done: int, total: int) -> list:
    workers = workers or cores()
    starts = list(range(0, len(structures), CHUNK))
    results: dict[int, list] = {}
    if progress:
        progress(done, total)
    if workers > 1 and len(starts) > 1 and os.name == "posix":
        from concurrent.futures import as_completed

        from harness.services.workers import worker_pool

        global _BATCH
        _BATCH = structures
        try:
            with worker_pool(min(workers, len(starts))) as pool:
                futures = {pool.submit(_search_inherited, s, s + CHUNK, symprec): s for s in starts}
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    done += len(results[futures[fut]])
                    if progress:
                        progress(done, total)
        finally:
            _BATCH = ()
    else:
        for s in starts:
            results[s] = [_search(x, symprec) for x in structures[s : s + CHUNK]]
            done += len(results[s])
            if progress:
                progress(done, total)
    return [r for s in starts for r in results[s]]


# ----------------------------------------------------------------------------- disk


def _cache_path(hashes: Sequence[bytes], symprec: float):
    import spglib

    from harness.services.paths import cache_dir

    h = hashlib.blake2b(
        f"{symprec!r}|{ANGLE_TOLERANCE!r}|{spglib.__version__}|{ANALYSIS_VERSION}".encode(), digest_size=16
    )
    for x in hashes:
        h.update(x)
    return cache_dir() / "symmetry" / f"{h.hexdigest()}.npz"


def _write(path, found: list[Symmetry | Skip]) -> None:
    from harness.services.cache import write_arrays

    ok = [f for f in found if isinstance(f, Symmetry)]
    sizes = [len(f.std_positions) for f in ok]
    try:
        write_arrays(
            path,
            {
                "number": np.asarray([f.number for f in ok], dtype=np.int64),
                "n_primitive": np.asarray([f.n_primitive for f in ok], dtype=np.int64),
                "lattice": np.asarray([f.std_lattice for f in ok], dtype=float).reshape(-1, 3, 3),
                "positions": np.concatenate([f.std_positions for f in ok]) if ok else np.zeros((0, 3)),
                "types": np.concatenate([f.std_types for f in ok]) if ok else np.zeros(0, np.int64),
                "offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            },
            {"entries": ["Skip:" + str(f) if isinstance(f, Skip) else f.international for f in found]},
        )
    except UserError:  # a read-only or full cache costs speed, never results
        pass


def _read(path, n: int) -> list[Symmetry | Skip] | None:
    from harness.services.cache import read_arrays

    got = read_arrays(path)
    if got is None:
        return None
    arrays, meta = got
    entries = meta.get("entries") if isinstance(meta, dict) else None
    if not isinstance(entries, list) or len(entries) != n:
        return None
    out: list[Symmetry | Skip] = []
    k, off = 0, arrays["offsets"]
    for entry in entries:
        if not isinstance(entry, str):
            return None
        if entry.startswith("Skip:"):
            out.append(Skip(str(entry)[5:]))
            continue
        a, b = off[k], off[k + 1]
        out.append(
            Symmetry(
                int(arrays["number"][k]),
                entry,
                arrays["lattice"][k],
                arrays["positions"][a:b],
                arrays["types"][a:b],
                int(arrays["n_primitive"][k]),
            )
        )
        k += 1
    return out

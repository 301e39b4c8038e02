"""Featurisation with an on-disk cache keyed by content, in parallel, with progress.

Features are stored in chunks of materials in content-hash order (the same crystals
loaded in another order hit the same chunks). A chunk's key hashes its
structures, the representation's name, parameters, version and code hash (`harness.plan.codeid`)
and `FEATURE_CODE_VERSION`: a changed structure, parameter or code is a miss; finished chunks survive an
interrupted run.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from harness.sdk.api import Material, Representation, Skip
from harness.services.cache import pack_ragged, read_arrays, unpack_ragged, write_arrays
from harness.plan.codeid import code_identity
from harness.services.content import material_hash
from harness.prepare.symmetry import structure_problem
from harness.services.version import FEATURE_CODE_VERSION  # defined beside the version, which keys also carry

CHUNK = 256


@dataclass
class FeatureSet:
    """Features of one representation for a list of materials (None where skipped)."""

    representation: str
    kind: str
    columns: list[str]
    features: list[np.ndarray | None]
    skipped: Counter = field(default_factory=Counter)

    @property
    def n_ok(self) -> int:
        return sum(f is not None for f in self.features)


def representation_key(rep: Representation) -> str:
    blob = json.dumps(
        {
            "name": rep.name,
            "params": rep.params(),
            "version": rep.version,
            "code": code_identity(type(rep)),
            "core": FEATURE_CODE_VERSION,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.blake2b(blob.encode(), digest_size=12).hexdigest()


class FeatureCache:
    def __init__(self, root: Path):
        self.root = Path(root) / "features"

    def _path(self, rep: Representation, chunk_hashes: Sequence[bytes]) -> Path:
        h = hashlib.blake2b(digest_size=16)
        h.update(representation_key(rep).encode())
        for x in chunk_hashes:
            h.update(x)
        return self.root / rep.name / f"{h.hexdigest()}.npz"

    def read(self, path: Path) -> list[np.ndarray | Skip] | None:
        """A chunk, or None when absent or damaged (then recomputed)."""
        got = read_arrays(path)
        if got is None:
            return None
        arrays, meta = got
        return [x if reason is None else Skip(reason) for x, reason in zip(unpack_ragged(arrays), meta["reasons"])]

    def write(self, path: Path, results: list[np.ndarray | Skip]) -> None:
        reasons = [str(r) if isinstance(r, Skip) else None for r in results]
        write_arrays(path, pack_ragged([None if isinstance(r, Skip) else r for r in results]), {"reasons": reasons})


# Set by the parent before it forks the pool: workers read their chunk's structures from
# it instead of receiving them pickled (pickling pymatgen structures costs as much as a
# fast featurisation).
_MATERIALS: Sequence[Material] = ()


def _featurize_chunk(rep: Representation, structures: list) -> list[np.ndarray | Skip]:
    """`featurize_many` on the usable structures; a Skip for the others (a NaN or singular
    cell must never reach a featuriser's C code: spglib kills the process on one)."""
    out: list = [None] * len(structures)
    usable = []
    for i, s in enumerate(structures):
        problem = structure_problem(s.lattice.matrix, s.frac_coords)
        if problem is None:
            usable.append(i)
        else:
            out[i] = Skip(f"unusable structure: {problem}")
    for i, x in zip(usable, rep.featurize_many([structures[i] for i in usable]) if usable else []):
        out[i] = x
    return out


def _featurize_inherited(rep: Representation, indices: list[int]) -> list[np.ndarray | Skip]:
    return _featurize_chunk(rep, [_MATERIALS[i].structure for i in indices])


def content_chunks(hashes: Sequence[bytes]) -> list[list[int]]:
    """Positions of the materials in chunks of `CHUNK`, in content (hash) order: the same
    crystals make the same chunks, and hit the same cache files, in whatever order they
    were loaded."""
    order = sorted(range(len(hashes)), key=hashes.__getitem__)
    return [order[s : s + CHUNK] for s in range(0, len(order), CHUNK)]


def featurize(
    materials: Sequence[Material],
    rep: Representation,
    cache: FeatureCache,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    hashes: Sequence[bytes] | None = None,
) -> FeatureSet:
    """Features for every material, from the cache where present, computed otherwise."""
    hashes = hashes if hashes is not None else [material_hash(m) for m in materials]
    chunks = content_chunks(hashes)
    results: dict[int, list[np.ndarray | Skip]] = {}
    todo = []
    for n, chunk in enumerate(chunks):
        path = cache._path(rep, [hashes[i] for i in chunk])
        cached = cache.read(path)
        if cached is not None and len(cached) == len(chunk):
            results[n] = cached
        else:
            todo.append((n, path))
    done = len(materials) - sum(len(chunks[n]) for n, _ in todo)
    if progress:
        progress(done, len(materials))

    def finish(n: int, path: Path, out: list) -> None:
        nonlocal done
        cache.write(path, out)
        results[n] = out
        done += len(out)
        if progress:
            progress(done, len(materials))

    if workers > 1 and len(todo) > 1:
        from concurrent.futures import as_completed

        from harness.services.workers import worker_pool

        global _MATERIALS
        fork = os.name == "posix"
        _MATERIALS = materials
        try:
            with worker_pool(min(workers, len(todo)), "fork" if fork else "spawn") as pool:
                futures = {
                    (
                        pool.submit(_featurize_inherited, rep, chunks[n])
                        if fork
                        else pool.submit(_featurize_chunk, rep, [materials[i].structure for i in chunks[n]])
                    ): (n, p)
                    for n, p in todo
                }
                for fut in as_completed(futures):
                    n, p = futures[fut]
                    finish(n, p, fut.result())
        finally:
            _MATERIALS = ()
    else:
        for n, p in todo:
            finish(n, p, _featurize_chunk(rep, [materials[i].structure for i in chunks[n]]))

    by_position: list[np.ndarray | Skip | None] = [None] * len(materials)
    for n, chunk in enumerate(chunks):
        for i, r in zip(chunk, results[n]):
            by_position[i] = r
    features: list[np.ndarray | None] = []
    skipped: Counter = Counter()
    for got in by_position:
        if isinstance(got, Skip):
            features.append(None)
            skipped[str(got)] += 1
        else:
            features.append(got)
    return FeatureSet(rep.title, rep.kind, rep.columns(), features, skipped)

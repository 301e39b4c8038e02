"""Structures from CIF text, POSCAR text or pymatgen Structure dicts, many at a time.

Parsing CIFs costs milliseconds per crystal, so a cold load of many rows parses in
`WORKERS` processes; P1 CIFs take gemmi's fast path (`p1cif`)."""

from __future__ import annotations

import json
import os
import re
import warnings
from collections import Counter
from typing import Any, Iterable, Iterator, Sequence

import harness
from harness import LoadContext, iter_chunks

from ..p1cif import read_p1_cif
from .compact import compact_structure
from .rows import RawRow, structure_kind

WORKERS = 2  # processes for a cold parse
PARALLEL_MIN_ROWS = 512  # fewer rows parse in-process: a pool would cost more than it saves
CHUNK_ROWS = 256


class NoStructure(str):
    """A row's structure field when the layout already knows why there is none."""


def parse_rows(
    rows: list[RawRow], ctx: LoadContext, description: str
) -> tuple[list[tuple[str, tuple, dict]], list[tuple[str, str]], Counter]:
    """Parse every row's structure (in `WORKERS` processes when there are many).

    Returns the compact records, the rows left out with their reason and the count of
    each (normalised) parser warning."""
    chunks = list(iter_chunks([(r[0], r[1]) for r in rows], CHUNK_ROWS))
    results: Iterable[tuple[list, Counter]]
    pool = None
    if len(rows) >= PARALLEL_MIN_ROWS and WORKERS > 1:
        pool = harness.worker_pool(min(WORKERS, os.cpu_count() or 1))  # its workers die with the run
        results = pool.map(parse_chunk, chunks)
    else:
        results = map(parse_chunk, chunks)
    warned: Counter = Counter()

    def flatten() -> Iterator[tuple[str, Any, str | None]]:
        for parsed, chunk_warnings in results:
            warned.update(chunk_warnings)
            yield from parsed

    records, skipped = [], []
    try:
        parsed = ctx.progress(flatten(), total=len(rows), description=description)
        for (material_id, compact, error), row in zip(parsed, rows):
            if error is not None:
                skipped.append((material_id, error))
            else:
                records.append((material_id, compact, row[2]))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return records, skipped, warned


def parse_chunk(items: Sequence[tuple[str, Any]]) -> tuple[list[tuple[str, Any, str | None]], Counter]:
    """Parse (id, raw) pairs into compact structures; runs in a worker process."""
    out: list[tuple[str, Any, str | None]] = []
    warned: Counter = Counter()
    for material_id, raw in items:
        if isinstance(raw, NoStructure):
            out.append((material_id, None, str(raw)))
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                compact = read_p1_cif(raw) if isinstance(raw, str) and structure_kind(raw) == "cif" else None
                if compact is None:
                    structure = parse_structure(raw)
                    if len(structure) == 0:
                        raise ValueError("structure has no sites")
                    compact = compact_structure(structure)
                out.append((material_id, compact, None))
            except Exception as exc:  # one bad row never stops the load
                reason = f"unparseable structure ({type(exc).__name__}: {_normalise(str(exc))[:80]})"
                out.append((material_id, None, reason))
        for w in caught:
            warned[f"{w.category.__name__}: {_normalise(str(w.message))}"] += 1
    return out, warned


def parse_structure(raw: Any):
    """A pymatgen Structure from CIF text, POSCAR text or a `Structure.as_dict()` (or its
    JSON text)."""
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifParser
    from pymatgen.io.vasp import Poscar

    if isinstance(raw, dict):
        return Structure.from_dict(raw)
    if not isinstance(raw, str):
        raise TypeError(f"expected CIF or POSCAR text or a Structure dict, got {type(raw).__name__}")
    text = raw.strip()
    if text.startswith("{"):
        return Structure.from_dict(json.loads(text))
    if structure_kind(text) == "poscar":
        return Poscar.from_str(text).structure
    return CifParser.from_str(text).parse_structures(primitive=False)[0]


def _normalise(message: str) -> str:
    """First line with numbers replaced, so that like warnings count together."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return re.sub(r"\d+(\.\d+)?", "#", first)[:200]


def warnings_summary(warned: Counter | dict, source: str) -> str:
    """One line for the log instead of one warning per structure."""
    if not warned:
        return ""
    counts = Counter(warned)
    top = "; ".join(f"{message!r} x{n}" for message, n in counts.most_common(3))
    more = f" (+{len(counts) - 3} other kinds)" if len(counts) > 3 else ""
    return f"file: {sum(counts.values())} parser warnings while reading {source}: {top}{more}"

"""Error and hint text shared by the file layouts: short lists, and the hint for a task
that finds no labelled material."""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Sequence

MAX_LISTED = 10


def capped(items: Iterable[Any], limit: int = MAX_LISTED) -> str:
    """'a, b, c' for a short list; the first `limit` items and 'and N more' for a long one,
    so that a message about a file with 1,000 keys stays one readable line."""
    names = [str(item) for item in items]
    if not names:
        return "none"
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def no_label_message(task: str, reads: Sequence[str], available: Iterable[str]) -> str:
    """The line shown when task `task` labels no material: which property names it reads,
    which the dataset has, and the `columns` mapping that would supply one.

    `available` is every property name the dataset's materials carry (e.g. the union of
    their `props` keys)."""
    names = sorted({str(name) for name in available})
    if not reads:
        return (
            f"task {task!r} labels no material of the dataset; its properties: {capped(names)}; "
            "check the task's parameters or choose another dataset"
        )
    wanted = " or ".join(repr(r) for r in reads)
    guess = _closest(reads, names)
    example = f'columns = {{ {reads[0]} = "{guess or "<your column>"}" }}'
    nested = ' (a key inside a column: "<column>.<key>")'
    return (
        f"task {task!r} labels no material: no material has the property {wanted}; "
        f"map one with [dataset] {example}{'' if guess else nested}; the dataset's properties: {capped(names)}"
    )


def _closest(reads: Sequence[str], names: Sequence[str]) -> str | None:
    """The column most like one of the names a task reads (e.g. 'bulk_modulus' for
    'bulk_modulus_vrh'), if any is close."""
    best: tuple[float, str] | None = None
    for read in reads:
        for name in names:
            score = difflib.SequenceMatcher(None, read.lower(), name.lower()).ratio()
            if score >= 0.6 and (best is None or score > best[0]):
                best = (score, name)
    return best[1] if best else None

"""Scores on extra test sets as leaderboard rows of their own.

A study trained on dataset `mp` and scored on a held-out family or an evaluate dataset
`perovskites` keeps those scores in `UnitResult.evaluations`. For the leaderboards each
becomes a result whose dataset is `mp→perovskites`: its own table, its own intervals
(from its own predictions), compared only with rows scored on the same materials.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

from harness.services.records import UnitResult

ARROW = "→"


def expand(results: Iterable[UnitResult]) -> Iterator[UnitResult]:
    """Each result, followed by one result per extra test set it was scored on."""
    for r in results:
        yield r
        for name, ev in sorted((r.evaluations or {}).items()):
            yield dataclasses.replace(
                r,
                unit=f"{r.unit}{ARROW}{name}",
                key=f"{r.key}{ARROW}{name}",
                dataset=f"{r.dataset}{ARROW}{name}",
                value=float(ev["value"]),
                extra=dict(ev.get("extra", {})),
                n_test=int(ev["n"]),
                predictions=ev.get("predictions"),
                evaluations={},
            )

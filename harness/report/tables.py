"""How leaderboard rows split into tables: shared by the leaderboard and its figures, so
that neither imports the other for it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def by_task(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """One table per task (per task and dataset when a config compares several)."""
    several = len({r["dataset"] for r in rows}) > 1
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[f"{r['task']} on {r['dataset']}" if several else r["task"]].append(r)
    return out

"""`harness plan CONFIG`: the studies a run would do and what they need, computing nothing.

Built on the run's own planner (`harness.plan.plan.make_plan`) over a read-only view of the
store: nothing is written, no results folder is created, nothing is featurised or fitted.
A dataset that cannot name its content cheaply is loaded, as a run's plan loads it.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.services.config import Config
from harness.services.records import COMBINATION_AXES
from harness.services.registry import Registry


class ReadOnlyStore:
    """What the planner asks of a store, answered from an existing one (or an empty one)
    without writing: no tables created, nothing marked superseded."""

    def __init__(self, url: str | None):
        self._store = None
        if url is not None:
            from harness.services.store import Store

            self._store = Store(url)

    def done_keys(self, keys: list[str] | None = None) -> set[str]:
        return self._store.done_keys(keys) if self._store else set()

    def supersede(self, units: dict[str, str]) -> int:
        return 0

    def current(self) -> list:
        return list(self._store.results()) if self._store else []


def store_url(config: Config) -> str | None:
    """The run's store if it exists; None when a run would start from nothing."""
    from harness.services.store import location_of

    if config.run.storage:
        return config.run.storage
    path = config.results_dir() / "results.sqlite"
    return location_of(None, config.results_dir()) if path.is_file() else None


def studies(config: Config, registry: Registry, console: Console, only: list[str] | None = None) -> dict[str, Any]:
    """Every study of the run with its status, and the stored results it would supersede."""
    from harness.plan.plan import make_plan

    store = ReadOnlyStore(store_url(config))
    plan = make_plan(config, registry, store, console, only)
    keys = {s.unit: s.key for s in plan.studies}
    superseded = sorted(r.unit for r in store.current() if r.unit in keys and r.key != keys[r.unit])
    rows = []
    for s in plan.studies:
        combo = s.combination
        rows.append(
            {
                "study": s.unit,
                "key": s.key,
                "status": "done" if s.key in plan.done else "pending",
                "dataset": s.dataset,
                **{a: getattr(combo, a).title for a in COMBINATION_AXES},
                "seed": s.seed,
                "trials": s.trials if combo.model.tune else 1,
            }
        )
    needs = []
    for part in plan.parts:
        todo = [s for s in part.studies if s.key not in plan.done]
        if not todo:
            continue
        reps = sorted({s.combination.representation.title for s in todo})
        models = Counter(s.combination.model.title for s in todo)
        trials = sum(s.trials if s.combination.model.tune else 1 for s in todo)
        needs.append(
            {
                "dataset": part.spec.label,
                "featurise": reps,
                "studies": len(todo),
                "fits": trials,
                "models": dict(models),
            }
        )
    return {
        "config": config.source,
        "results": str(config.results_dir()),
        "studies": rows,
        "superseded": superseded,
        "skipped": [list(x) for x in plan.skipped],
        "needs": needs,
    }


def render(found: dict[str, Any], console: Console) -> None:
    rows = found["studies"]
    table = Table(title=f"{len(rows)} studies of {escape(found['config'] or 'the config')}", title_justify="left")
    table.add_column("study (dataset:task/representation/perturbation/model#seed)", overflow="fold")
    table.add_column("status")
    table.add_column("trials", justify="right")
    for r in rows:
        style = "green" if r["status"] == "done" else None
        table.add_row(escape(r["study"]), r["status"], str(r["trials"]), style=style)
    console.print(table)
    status = Counter(r["status"] for r in rows)
    console.print(
        f"{status['done']} done, {status['pending']} pending"
        + (
            f", {len(found['superseded'])} stored results of older settings or code would be kept as superseded"
            if found["superseded"]
            else ""
        )
        + (f"; {len(found['skipped'])} combinations skipped (kinds do not fit)" if found["skipped"] else "")
    )
    for need in found["needs"]:
        models = ", ".join(f"{m} ({n})" for m, n in need["models"].items())
        console.print(
            f"to compute on [bold]{escape(need['dataset'])}[/]: features "
            f"{escape(', '.join(need['featurise']))}; {need['studies']} studies, {need['fits']} trial fits "
            f"at most (pruned trials stop early): {escape(models)}"
        )
    if not found["needs"]:
        console.print("nothing to compute: `harness run` would only write the leaderboard")
    console.print(f"results: {escape(found['results'])}")


def to_json(found: dict[str, Any]) -> str:
    return json.dumps(found, indent=2, default=str)

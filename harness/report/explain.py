"""`harness explain`: which points a trained model relies on (paper Sec. III D).

Works for any model that offers `point_importance(x) -> (n,)` (e.g. `pointnet`: how many
global features each point wins in the MAX pool). The study's model is read from the
store (as data, never unpickled); its test split and perturbed inputs are rebuilt exactly
as the run built them.

Read-only: explain opens an existing store, plans without applying the plan's store
decisions, and writes nothing there (the feature cache may fill). It shares the run's
plan and prepare stages but not the runner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harness.execute import persist, tuning
from harness.services.config import Config
from harness.services.errors import UserError
from harness.prepare.inputs import read_inputs
from harness.plan.plan import make_plan
from harness.prepare.prepare import prepare
from harness.services.registry import Registry
from harness.services.store import Store, location_of
from harness.execute.study import samples


def explain(
    config: Config,
    registry: Registry,
    console: Console,
    unit_glob: str,
    seed: int | None = None,
    material_ids: list[str] | None = None,
    limit: int = 5,
) -> int:
    seeds = [seed] if seed is not None else config.run.seeds[:1]
    pattern = unit_glob.split("#")[0].split(":", 1)[-1]
    store = _existing_store(config)
    plan = make_plan(config, registry, store, console, only=[pattern])
    shown = 0
    loaded: dict = {}
    for part in plan.parts:
        for planned in part.studies:
            if planned.seed not in seeds:
                continue
            study = planned
            combo = study.combination
            stored = store.model(study.key)
            if stored is None:
                raise UserError(
                    f"no stored model for {study.unit} in {store.url}; run `harness run {config.source}` "
                    "first (with the same settings)"
                )
            model = persist.restore(registry, stored)
            if not hasattr(model, "point_importance"):
                able = sorted(
                    n for n, e in registry.entries.get("model", {}).items() if hasattr(e.cls, "point_importance")
                )
                raise UserError(
                    f"model {combo.model.name!r} offers no point_importance(); explain works for "
                    f"models that do ({', '.join(able) or 'none loaded'})"
                )
            made = prepare(config, part, [study], console, loaded)
            (study,), loaded = made.studies, made.loaded
            data = read_inputs(Path(study.inputs))
            test = samples(combo, study.seed, data, data.splits[study.seed].test, training=False)
            _table(console, study.unit, combo, model, test, material_ids, limit)
            shown += 1
    if not shown:
        raise UserError(f"no unit matches {unit_glob!r}; ids look like task/representation/perturbation/model")
    return 0


def _existing_store(config: Config) -> Store:
    """The run's store, opened only when it is there: explain creates no database."""
    results_dir = config.results_dir()
    if not config.run.storage and not (results_dir / "results.sqlite").is_file():
        raise UserError(
            f"no results in {results_dir} (no results.sqlite); run `harness run {config.source}` first "
            "or give its results folder with --results"
        )
    return Store(location_of(config.run.storage, results_dir))


def _table(console: Console, unit_id: str, combo, model, test, material_ids, limit) -> None:
    hkl = combo.representation.point_labels()
    classes = combo.task.classes
    if material_ids:
        missing = [m for m in material_ids if m not in test.ids]
        if missing:
            raise UserError(
                f"{', '.join(missing)} not in the test split of {unit_id}; pick test materials (see `--limit`)"
            )
        picks = [test.ids.index(m) for m in material_ids]
    else:
        picks = list(range(min(limit, len(test))))
    proba = tuning.class_probabilities(model, [test.X[i] for i in picks], len(classes))
    table = Table(title=f"critical points of {unit_id} (test materials)", title_justify="left")
    for col in ("material", "true", "predicted", "critical points: hkl (features won)"):
        table.add_column(col, overflow="fold")
    for row, i in enumerate(picks):
        counts = np.asarray(model.point_importance(test.X[i]))
        order = [j for j in np.argsort(-counts, kind="stable") if counts[j] > 0]
        points = ", ".join(
            f"({' '.join(str(int(v)) for v in hkl[j])}) {counts[j]}"
            if hkl is not None and j < len(hkl)
            else f"#{j} {counts[j]}"
            for j in order
        )
        table.add_row(test.ids[i], classes[test.y[i]], classes[int(np.argmax(proba[row]))], points)
    console.print(table)

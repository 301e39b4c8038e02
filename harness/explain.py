"""`harness explain`: which points a trained model relies on (paper Sec. III D).

Works for any model that offers `point_importance(x) -> (n,)` (e.g. `pointnet`: how many
global features each point wins in the MAX pool). The unit's model was saved by the run;
its test split and perturbed inputs are rebuilt exactly as the run built them.
"""

from __future__ import annotations

import pickle

import numpy as np
from rich.console import Console
from rich.table import Table

from harness import tuning
from harness.config import Config
from harness.errors import UserError
from harness.registry import Registry
from harness.runner import grids, prepare
from harness.study import Unit, _samples, model_path


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
    models_dir = config.results_dir() / "models"
    shown = 0
    pattern = unit_glob.split("#")[0].split(":", 1)[-1]
    for part, grid in grids(config, registry, only=[pattern]):
        prep = prepare(config, part, grid, registry, console)
        for combo in grid.combinations:
            for s in seeds:
                unit = Unit(combo, s, "", 0, None, "cpu", 1, "", str(models_dir), part.label)
                path = model_path(models_dir, unit.id)
                if not path.exists():
                    raise UserError(f"no trained model for {unit.id} in {models_dir}; "
                                    f"run `harness run {config.source}` first")
                with open(path, "rb") as f:
                    model = pickle.load(f)["model"]
                if not hasattr(model, "point_importance"):
                    raise UserError(f"model {combo.model.name!r} offers no point_importance(); "
                                    "explain works for e.g. pointnet")
                data = prep.unit_data(combo.task.title, combo.representation.title, s)
                test = _samples(unit, data, data.split.test, training=False)
                _table(console, unit.id, combo, model, test, material_ids, limit)
                shown += 1
    if not shown:
        raise UserError(f"no unit matches {unit_glob!r}; ids look like task/representation/perturbation/model")
    return 0


def _table(console: Console, unit_id: str, combo, model, test, material_ids, limit) -> None:
    hkl = combo.representation.point_labels()
    classes = combo.task.classes
    if material_ids:
        missing = [m for m in material_ids if m not in test.ids]
        if missing:
            raise UserError(f"{', '.join(missing)} not in the test split of {unit_id}; pick test materials (see `--limit`)")
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
            f"({' '.join(str(int(v)) for v in hkl[j])}) {counts[j]}" if hkl is not None and j < len(hkl) else f"#{j} {counts[j]}"
            for j in order
        )
        table.add_row(test.ids[i], classes[test.y[i]], classes[int(np.argmax(proba[row]))], points)
    console.print(table)

"""The issue-24 benchmark configs parse and expand into the grids their headers describe
(no data is read: the grid needs only the config and the registry)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.services import config, registry
from harness.plan.grid import expand

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _ids(name: str) -> dict[str, list[str]]:
    conf = config.load(BENCH / name)
    reg = registry.load()
    return {d.label: [c.id for c in expand(conf, reg, None, d).combinations] for d in conf.training_datasets}


def test_carbon24_has_structure_composition_and_both_for_three_tasks():
    ids = _ids("carbon24.toml")["file"]
    assert len(ids) == 9
    for task in ("crystal_system", "space_group", "threshold"):
        reps = sorted(i.split("/")[1] for i in ids if i.startswith(task))
        assert len(reps) == 3 and any(r.startswith("concat(") for r in reps) and "composition" in reps


def test_structure_composition_covers_the_four_property_tasks():
    ids = _ids("structure-composition.toml")
    assert sorted(ids) == ["mp20_ehull", "mp_binary_elasticity", "mp_metallicity"]
    assert sum(len(v) for v in ids.values()) == 4 * 3
    assert config.load(BENCH / "structure-composition.toml").datasets[0].params["stratify"] == "band_gap"


@pytest.mark.parametrize(
    "name, n",
    [
        ("paper-neural-cpu.toml", 8),
        ("learning-curves.toml", 1),
        ("metallicity-neural-10k-cpu.toml", 2),
        ("symmetry-full-cpu.toml", 3),
        ("trigonal-hexagonal-curve-cpu.toml", 1),
    ],
)
def test_other_configs_expand(name, n):
    assert sum(len(v) for v in _ids(name).values()) == n

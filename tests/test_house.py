"""One-way data flow (issue 19): the plan never writes the store, `explain` leaves it as it
was, config resolution and prepare write into nobody's objects, the split seeds have one
source, and an executor is an entry a plugin can add without touching the runner."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import toy_plugin
from rich.console import Console

from harness import hookimpl

from harness.services import config, registry
from harness.cli import main
from harness.services.errors import UserError
from harness.execute.executors import ExecutorEntry, Placed, build
from harness.plan.grid import expand
from harness.prepare.inputs import read_inputs
from harness.plan.plan import make_plan
from harness.prepare.prepare import prepare
from harness.runner import run
from harness.services.store import Store
from harness.execute.study import run_study

CONFIG = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["corners"]
perturbations = ["identity"]
models = ["centroids"]
[dataset]
name = "toy"
size = 60
[run]
trials = {trials}
seeds = [0]
workers = 1
results = "out"
"""

BASE = {
    "tasks": ["toy_system"],
    "representations": ["ratios", "corners"],
    "models": ["centroids"],
    "run": {"trials": 1, "seeds": [0, 1], "workers": 1},
}


def toy_registry(*plugins):
    return registry.load([toy_plugin, *plugins], entry_points=False)


class StoreSpy:
    """A store that records every attribute a caller touches."""

    def __init__(self, store: Store):
        self._store, self.touched = store, []

    def __getattr__(self, name):
        self.touched.append(name)
        return getattr(self._store, name)


def _rows(db: Path) -> list:
    with sqlite3.connect(db) as con:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return [(t, sorted(map(repr, con.execute(f'SELECT * FROM "{t}"')))) for t in tables]


def _checkpoint(db: Path) -> None:
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def test_the_plan_reads_the_store_and_never_writes_it(tmp_path):
    conf = config.parse(BASE)
    spy = StoreSpy(Store(f"sqlite:///{tmp_path}/r.sqlite"))
    plan = make_plan(conf, toy_registry(), spy, Console(quiet=True))
    assert set(spy.touched) == {"done_keys"}  # no supersede, add, claim, ...
    # the store decision is the plan's to return and the runner's to apply
    assert plan.supersede == {s.unit: s.key for s in plan.studies} and len(plan.supersede) == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.parts[0].loaded = None


def test_explain_leaves_the_store_as_it_was(tmp_path, capsys):
    """Results of other settings of the same units are in the store: a plan of the first
    settings would supersede them. The run applies that; explain must not."""
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    first.write_text(CONFIG.format(trials=2))
    second.write_text(CONFIG.format(trials=3))
    assert main(["run", str(first)]) == 0
    assert main(["run", str(second)]) == 0  # new keys: the first run's result is superseded
    db = tmp_path / "out" / "results.sqlite"
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT COUNT(*) FROM harness_results WHERE superseded = 0").fetchone() == (1,)
    _checkpoint(db)
    rows, data = _rows(db), db.read_bytes()
    capsys.readouterr()
    assert main(["explain", str(first), "toy_system/corners/*/centroids", "--limit", "2"]) == 0
    assert "critical points" in capsys.readouterr().out
    assert _rows(db) == rows
    _checkpoint(db)
    assert db.read_bytes() == data


def test_explain_opens_no_new_store_and_does_not_import_the_runner(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(trials=1))
    assert main(["explain", str(cfg), "toy_system/*"]) == 2
    assert "no results" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    code = "import sys, harness.report.explain; print('harness.runner' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_expand_resolves_defaults_into_a_new_config(tmp_path):
    conf = config.parse({k: v for k, v in BASE.items()})  # no dataset, no perturbation: the defaults
    before = conf.model_dump()
    grid = expand(conf, toy_registry())
    assert {c.perturbation.name for c in grid.combinations} == {"identity"}
    assert conf.model_dump() == before and conf.perturbations == [] and conf.datasets[0].name == ""
    plan = make_plan(conf, toy_registry(), Store(f"sqlite:///{tmp_path}/r.sqlite"), Console(quiet=True))
    assert plan.parts[0].spec.name == "toy" and conf.model_dump() == before


def test_prepare_returns_ready_studies_and_splits_by_the_plans_seeds(tmp_path):
    conf = config.parse(BASE)
    console = Console(quiet=True)
    (part,) = make_plan(conf, toy_registry(), Store(f"sqlite:///{tmp_path}/r.sqlite"), console).parts
    other = config.override_run(config.parse(BASE), seeds=[7])  # a config that disagrees on seeds
    made = prepare(other, part, part.studies, console)
    assert all(s.inputs == "" for s in part.studies)  # the plan is left as it was
    assert [dataclasses.replace(s, inputs="") for s in made.studies] == list(part.studies)
    assert made.loaded["toy"].materials  # what it loaded, for a later call to reuse
    for study in made.studies:
        assert set(read_inputs(study.inputs).splits) == {0, 1}  # the plan's seeds, not the other config's
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.studies[0].inputs = "elsewhere"


class Inline:
    """A toy executor: studies one after another in this process."""

    def __init__(self, log: list):
        self.slots, self.log = 1, log

    def run(self, next_study, env):
        while (spec := next_study()) is not None:
            self.log.append((spec.unit, env.device, env.threads))
            yield spec, run_study(spec, env)


class InlinePlugin:
    def __init__(self):
        self.log: list = []

    @hookimpl
    def harness_executors(self):
        def make(run, settings):
            unknown = set(settings) - {"threads"}
            if unknown:
                raise UserError(f"[executors.inline] has no key {sorted(unknown)[0]!r}; valid keys: threads")
            return Placed(Inline(self.log), "cpu", int(settings.get("threads", 1)), "inline")

        return [ExecutorEntry("inline", make, "studies in this process, one at a time")]


def test_a_plugin_executor_runs_a_study_without_touching_the_runner(tmp_path):
    plugin = InlinePlugin()
    conf = config.parse(
        {
            **BASE,
            "representations": ["ratios"],
            "run": {**BASE["run"], "executor": "inline", "results": str(tmp_path / "out")},
            "executors": {"inline": {"threads": 3}},
        }
    )
    assert run(conf, toy_registry(plugin), Console(quiet=True)) == 0
    assert sorted(plugin.log) == [
        ("toy:toy_system/ratios(scale=2)/identity/centroids#0", "cpu", 3),
        ("toy:toy_system/ratios(scale=2)/identity/centroids#1", "cpu", 3),
    ]
    rows = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert [r["n_seeds"] for r in rows] == [2] and np.isfinite(rows[0]["mean"])


def test_executor_tables_are_checked(tmp_path):
    reg = toy_registry(InlinePlugin())
    local = build(reg, config.parse({**BASE, "executors": {"local": {"start": "spawn"}}}))
    assert local.executor.start == "spawn" and local.device in ("cpu", "cuda")
    with pytest.raises(UserError, match=r"\[executors.local\] has no key 'workrs'; valid keys: pack, start"):
        build(reg, config.parse({**BASE, "executors": {"local": {"workrs": 2}}}))
    with pytest.raises(
        UserError, match=r"\[executors.slurm\] names no executor; choose one of: 'inline', 'local', 'ray'"
    ):
        build(reg, config.parse({**BASE, "executors": {"slurm": {}}}))
    with pytest.raises(UserError, match="unknown executor 'slurm'; choose one of: 'inline', 'local', 'ray'"):
        build(reg, config.parse({**BASE, "run": {"executor": "slurm"}}))
    with pytest.raises(UserError, match="duplicate executor 'local'"):
        build(toy_registry(_Named("local")), config.parse(BASE))


class _Named:
    def __init__(self, name):
        self.name = name

    @hookimpl
    def harness_executors(self):
        return [ExecutorEntry(self.name, lambda run, settings: None)]


def _imports(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports, at any depth (in functions too)."""
    import ast

    files = {
        ".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in root.rglob("*.py")
    }
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t not in files and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in files and t != mod:
                    graph[mod].add(t)
    return graph


def test_the_core_has_no_import_circle():
    import graphlib

    import harness

    graph = _imports(Path(harness.__file__).parent)
    assert "harness.report.figures" in graph["harness.report.leaderboard"]  # it sees imports inside functions
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")

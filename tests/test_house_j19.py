"""Issue 19, the house: a typed result record in its own module (structured entry
references, metric directions) that old stored rows still load into; a core that reads
fields and names no built-in plugin; the axes defined once; one plan -> prepare path for
`featurize --config`; a plan that never writes; stages that never import a later stage."""

from __future__ import annotations

import ast
import json
import re
import sqlite3
import sys
from pathlib import Path

import pytest

from harness.services.records import AXES, COMBINATION_AXES, EntryRef, UnitResult
from harness.services.store import RESULTS, Store


def _record(**over) -> UnitResult:
    ident = {a: {"name": f"{a}_entry", "params": {"n": 27}, "version": "3", "code": "abc"} for a in AXES}
    base = dict(
        unit="d:t/r/p/m#0",
        key="k" * 32,
        dataset="d",
        task="t",
        representation="r(n=27)",
        perturbation="p",
        model="m",
        seed=0,
        metric="miss_rate",
        value=0.25,
        identity=ident,
        directions={"miss_rate": False},
        labels={"perturbation": "φ2"},
    )
    return UnitResult(**{**base, **over})


def test_the_record_lives_in_its_own_module_and_the_store_reexports_it():
    import harness.services.store

    assert harness.services.store.UnitResult is UnitResult and UnitResult.__module__ == "harness.services.records"


def test_the_record_carries_entry_references_and_metric_directions(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/r.sqlite")
    store.add(_record())
    (r,) = store.results()
    assert r.entry("representation") == EntryRef("representation_entry", {"n": 27}, "3", "r(n=27)", "")
    assert r.entry("perturbation").label == "φ2" and r.entry("dataset").title == "d"
    assert r.higher_is_better() is False and r.higher_is_better("accuracy") is None
    assert r.combination_id == "t/r(n=27)/p/m" and r.row_key == ("d", "t", "r(n=27)", "p", "m")
    with pytest.raises(KeyError, match="not an axis"):
        r.entry("seed")


def test_an_old_shaped_row_without_the_new_fields_still_loads(tmp_path):
    """A row written before identities, directions and labels: its body has only the
    extra metrics and params. It loads, with empty references (titles kept)."""
    db = tmp_path / "r.sqlite"
    Store(f"sqlite:///{db}")  # creates the tables
    row = {
        "key": "o" * 32,
        "unit": "demo:t/barcode(n=27)/p/m#1",
        "dataset": "demo",
        "task": "t",
        "representation": "barcode(n=27)",
        "perturbation": "p",
        "model": "m",
        "seed": 1,
        "metric": "accuracy",
        "value": 0.5,
        "valid_value": 0.4,
        "n_train": 10,
        "n_valid": 2,
        "n_test": 3,
        "n_trials": 1,
        "fit_seconds": 0.1,
        "device": "cpu",
        "finished": 1.0,
        "superseded": 0,
        "body": json.dumps({"extra": {"roc_auc": 0.6}, "params": {"depth": 3}}),
    }
    assert set(row) == {c.name for c in RESULTS.columns} - {"checksum"}  # old rows have none (NULL)
    with sqlite3.connect(db) as con:
        con.execute(
            f"INSERT INTO harness_results ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
        )
    (r,) = Store(f"sqlite:///{db}").results()
    assert r.labels == {} and r.directions == {} and r.identity == {} and r.extra == {"roc_auc": 0.6}
    assert r.entry("representation") == EntryRef("", {}, "", "barcode(n=27)", "")
    assert r.higher_is_better() is None


def test_the_axes_are_the_records_title_fields_in_order():
    names = [f.name for f in UnitResult.__dataclass_fields__.values()]
    assert AXES == ("dataset", *COMBINATION_AXES) and names[2 : 2 + len(AXES)] == list(AXES)
    assert [c.name for c in RESULTS.columns][2 : 2 + len(AXES)] == list(AXES)


# ----------------------------------------------------------------- the core names no plugin

ROOT = Path(__file__).resolve().parents[1]
# Known exceptions, each with why it is still there (remove the line when it is fixed).
KNOWN_PLUGIN_NAMES: dict[tuple[str, str], str] = {}


def _builtin_names() -> set[str]:
    """Entry names the built-in plugins (`harness_plugins`) register, of every kind."""
    from harness.services import registry

    reg = registry.load([], entry_points=True)
    return {
        n
        for entries in reg.entries.values()
        for n, e in entries.items()
        if e.cls.__module__.split(".")[0] == "harness_plugins"
    }


def _core_vocabulary() -> tuple[set[str], set[str]]:
    """Words the core owns that plugins happen to share: (literal values of the config
    schema, e.g. `group_by = "none"`; names the core defines or imports: public API
    functions such as `crystal_system`, library modules such as `xgboost`)."""
    import importlib.util
    import typing

    import pydantic

    import harness
    import harness.torch
    from harness.services import config

    literals: set[str] = set()

    def walk(tp) -> None:
        if typing.get_origin(tp) is typing.Literal:
            literals.update(a for a in typing.get_args(tp) if isinstance(a, str))
        for a in typing.get_args(tp):
            walk(a)

    for obj in vars(config).values():
        if isinstance(obj, type) and issubclass(obj, pydantic.BaseModel) and obj.__module__ == config.__name__:
            for f in obj.model_fields.values():
                walk(f.annotation)
    own = set(harness.__all__) | set(harness.torch.__all__)
    own |= {n for n in _builtin_names() if importlib.util.find_spec(n) is not None}
    return literals, own


def _strings(tree: ast.AST) -> list[ast.Constant]:
    """String constants that are not docstrings (comments are not in the tree)."""
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs]


def plugin_names_in_core() -> set[tuple[str, str, int]]:
    """(module, name, line) for every place the core (`harness/`) names a built-in plugin.

    Checked, outside docstrings and comments:
    1. a string that IS a built-in entry name (`"random_scale"`, `"pointnet"`, `"mp"`);
    2. a built-in entry name with `_` or a digit (unmistakably an identifier:
       `nd_cloud`, `e3nn`) as a whole word inside a longer string (help texts, messages);
    3. a prefix of an entry name (`"nd_"`, `"xrd_"`) in any string, as `startswith` takes;
    4. a name that is also a literal of the config schema (`"none"`, which `group_by` and
       `store_models` take): only where it is compared with an axis or an entry's name
       (`perturbation == "none"`, `p.name in ("none", ...)`), not as a config value.
    Names the core owns (its public API's `crystal_system`, the `xgboost` library) are
    not plugin references."""
    names = _builtin_names()
    literals, own = _core_vocabulary()
    plain = names - literals - own
    axes = re.compile(r"\b(dataset|task|representation|perturbation|model|name)\b")
    found = set()
    for path in sorted((ROOT / "harness").rglob("*.py")):
        module = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in _strings(tree):
            v = node.value
            hits = {n for n in plain if v == n}
            hits |= {n for n in plain if re.search(r"[_\d]", n) and re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", v)}
            hits |= {n for n in names if len(v) >= 3 and v.endswith("_") and n.startswith(v)}
            found |= {(module, n, node.lineno) for n in hits}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Compare):
                continue
            parts = [node.left, *node.comparators]
            consts = {c.value for p in parts for c in ast.walk(p) if isinstance(c, ast.Constant)}
            others = " ".join(
                ast.unparse(p) for p in parts if not isinstance(p, (ast.Constant, ast.Tuple, ast.List, ast.Set))
            )
            for n in (names & literals) & consts:
                if axes.search(others):
                    found.add((module, n, node.lineno))
    return found


def test_the_core_names_no_builtin_plugin():
    found = plugin_names_in_core()
    unknown = sorted(f for f in found if (f[0], f[1]) not in KNOWN_PLUGIN_NAMES)
    assert not unknown, f"the core names built-in plugins (use entry fields or declarations): {unknown}"


def test_the_plugin_name_check_catches_what_it_says(tmp_path, monkeypatch):
    """The check run on a core that names plugins the ways it looks for."""
    bad = tmp_path / "harness"
    bad.mkdir()
    (bad / "m.py").write_text(
        '"""Docstrings may say random_scale and none."""\n'
        'PHI = {"random_scale": 2}\n'
        "def f(r, group_by):\n"
        '    """none, nd_cloud"""\n'
        '    ok = group_by == "none"  # a config value\n'
        '    return r.perturbation == "none" or r.name.startswith("nd_") or "e.g. xrd_cloud(n=27)"\n'
    )
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert {(n, line) for _, n, line in plugin_names_in_core()} == {
        ("random_scale", 2),
        ("none", 6),
        ("nd_cloud", 6),
        ("xrd_cloud", 6),
    }


def test_the_report_names_variants_by_the_labels_entries_declared():
    """φ1-φ4 come from the entries (`Entry.paper_label`, written into the record at study
    time), never from the core: a label on the representation wins over the perturbation's."""
    from harness.report.html import Names

    xray = _record(labels={"perturbation": "φ2"})
    neutron = _record(representation="q(n=27)", labels={"representation": "φ4", "perturbation": "φ1"})
    plain = _record(representation="s(n=27)", labels={})
    grouped = {r.row_key: [r] for r in (xray, neutron, plain)}
    names = Names(None, grouped)
    row = lambda r: dict(zip(AXES, r.row_key))  # noqa: E731
    assert names.variant(row(xray)) == "φ2: representation_entry / p"
    assert names.variant(row(neutron)).startswith("φ4: ")
    assert names.variant(row(plain)) == "representation_entry / p" and names.n(row(plain)) == 27


def test_builtin_perturbations_and_neutron_representations_declare_the_papers_labels():
    from harness.services import registry

    reg = registry.load([], entry_points=True)
    label = lambda kind, name, **p: reg.create(kind, name, p).paper_label()  # noqa: E731
    assert [label("perturbation", n) for n in ("none", "random_scale", "systematic_absence")] == ["φ1", "φ2", "φ3"]
    assert label("representation", "nd_cloud") == "φ4" and label("representation", "xrd_cloud") == ""
    assert label("representation", "barcode", radiation="neutron") == "φ4"


# ----------------------------------------------------------------- one pipeline for featurize --config

FEATURIZE_CONFIG = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios", "corners"]
perturbations = ["identity"]
models = ["centroids"]
[[datasets]]
name = "toy"
size = 40
[[datasets]]
name = "toy"
label = "more"
role = "evaluate"
size = 24
seed = 3
[run]
trials = 1
seeds = [0, 1]
workers = 1
results = "out"
"""


def _cache_entries(root: Path) -> set[str]:
    """What featurisation leaves in a cache: feature chunks and the studies' inputs files."""
    return {
        str(p.relative_to(root))
        for folder in ("features", "inputs")
        if (root / folder).is_dir()
        for p in (root / folder).rglob("*")
        if p.is_file()
    }


def test_featurize_config_prepares_exactly_what_run_would(tmp_path, monkeypatch, capsys):
    """`featurize --config` is the run's plan -> prepare path: same feature chunks and the
    same inputs files (training and evaluate datasets), and no results folder."""
    from harness.cli import main

    cfg = tmp_path / "bench.toml"
    cfg.write_text(FEATURIZE_CONFIG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "featurize-cache"))
    assert main(["featurize", "--config", str(cfg)]) == 0
    assert not (tmp_path / "out").exists()
    featurized = _cache_entries(tmp_path / "featurize-cache")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "run-cache"))
    assert main(["run", str(cfg)]) == 0
    ran = _cache_entries(tmp_path / "run-cache")
    assert any(e.startswith("inputs") for e in ran) and any(e.startswith("features") for e in ran)
    assert featurized == ran
    # and a run on the featurised cache computes no feature and writes no inputs file
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "featurize-cache"))
    (tmp_path / "out").rename(tmp_path / "first-out")
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 0
    assert "featurised in" not in capsys.readouterr().out
    assert _cache_entries(tmp_path / "featurize-cache") == featurized


# ----------------------------------------------------------------- the plan never writes

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER")


def test_the_plan_never_writes_a_store_that_holds_done_and_superseded_results(tmp_path, monkeypatch):
    """A store spy: every write method of the store raises, and every SQL statement the
    engine runs is recorded; a plan over a store with a done study, a current result of
    other settings and a superseded one runs no write, and returns its store decision."""
    import sqlalchemy as sa
    from rich.console import Console

    from harness.services import config, registry
    from harness.plan.plan import make_plan
    import toy_plugin

    conf = config.parse(
        {
            "tasks": ["toy_system"],
            "representations": ["ratios", "corners"],
            "models": ["centroids"],
            "run": {"trials": 1, "seeds": [0], "workers": 1},
        }
    )
    reg = registry.load([toy_plugin], entry_points=False)
    store = Store(f"sqlite:///{tmp_path}/r.sqlite")
    first = make_plan(conf, reg, store, Console(quiet=True))
    done, other = first.studies
    store.add(_record(unit=done.unit, key=done.key))  # done: its key is the plan's
    store.add(_record(unit=other.unit, key="old" + "0" * 29, finished=1.0))
    store.supersede({other.unit: "older-still"})  # superseded by an earlier run
    store.add(_record(unit=other.unit, key="new" + "0" * 29, finished=2.0))  # current, other settings
    assert store.count_superseded() == 1

    for name in ("add", "_add", "supersede", "claim", "heartbeat", "release", "optuna_storage"):
        monkeypatch.setattr(store, name, lambda *a, _n=name, **k: pytest.fail(f"the plan called store.{_n}"))
    statements: list[str] = []
    sa.event.listen(
        store.engine,
        "before_cursor_execute",
        lambda conn, cursor, sql, *rest: statements.append(sql.strip().split()[0].upper()),
    )
    plan = make_plan(conf, reg, store, Console(quiet=True))
    assert statements and set(statements) <= {"SELECT", "PRAGMA"}, statements
    assert not set(statements) & set(WRITES)
    assert plan.done == {done.key} and [s.key for s in plan.pending] == [other.key]
    assert plan.supersede == {done.unit: done.key, other.unit: other.key}  # the runner's to apply
    with sqlite3.connect(tmp_path / "r.sqlite") as con:
        assert con.execute("SELECT COUNT(*) FROM harness_results WHERE superseded = 1").fetchone() == (1,)


# No upward import: tests/test_house_layers.py (each folder of harness/ is a layer).

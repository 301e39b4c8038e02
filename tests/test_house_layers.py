"""The folders of `harness/` are its architecture: the SDK and the services at the bottom,
then the stages in the order data flows (plan -> prepare -> execute -> report), then the
front doors (command line, Python API, the run path). A module may import its own layer
or a lower one, never a later stage: that is what keeps data flowing one way."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "harness"

# One place for the order; a new folder must be placed here, or the test fails.
LAYERS = {"sdk": 0, "services": 0, "plan": 1, "prepare": 2, "execute": 3, "report": 4}
PUBLIC_TORCH_BASE = 0.5  # harness/torch.py: the SDK's public torch base, over sdk/neural
FRONT_DOORS = 5  # harness/__init__.py, cli.py, user.py, session.py, runner.py, export.py


def _module(path: Path, core: Path = CORE) -> str:
    parts = path.relative_to(core.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> float:
    parts = module.split(".")
    if len(parts) == 1:
        return FRONT_DOORS
    if parts[1] in LAYERS:
        return LAYERS[parts[1]]
    return PUBLIC_TORCH_BASE if parts[1] == "torch" else FRONT_DOORS


def _imports(path: Path, modules: set[str]) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("harness"):
            for alias in node.names:  # `from harness.plan import grid` imports the module harness.plan.grid
                full = f"{node.module}.{alias.name}"
                found.append((node.lineno, full if full in modules else str(node.module)))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("harness")]
    return found


def _upward_imports(core: Path = CORE) -> list[str]:
    files = [p for p in core.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {_module(p, core) for p in files}
    return [
        f"{_module(p, core)} (layer {_layer(_module(p, core))}) imports {target} (layer {_layer(target)}), line {line}"
        for p in files
        for line, target in _imports(p, modules)
        if _layer(target) > _layer(_module(p, core))
    ]


def test_every_folder_of_the_core_has_a_layer():
    folders = {p.name for p in CORE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(LAYERS)


def test_no_module_imports_a_later_stage():
    assert _upward_imports() == []


def test_the_check_sees_an_upward_import(tmp_path):
    for folder in ("plan", "report"):
        (tmp_path / "harness" / folder).mkdir(parents=True)
    (tmp_path / "harness" / "report" / "leaderboard.py").write_text("from harness.plan import grid\n")  # down: fine
    (tmp_path / "harness" / "plan" / "grid.py").write_text("")
    (tmp_path / "harness" / "plan" / "_probe_upward.py").write_text("from harness.report import leaderboard\n")
    hits = _upward_imports(tmp_path / "harness")
    assert hits == ["harness.plan._probe_upward (layer 1) imports harness.report.leaderboard (layer 4), line 1"]

"""Packaging claims that must stay true: the Python it requires, and the Materials Project
client as an extra (`harness[mp]`) that the core and the demo never import."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _sources():
    return [p for d in ("harness", "plugins") for p in (ROOT / d).rglob("*.py")]


def test_requires_python_admits_only_versions_the_code_runs_on():
    spec = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in spec
    if any("import tomllib" in p.read_text() for p in _sources()):  # tomllib is new in 3.11
        assert "3.10" not in spec and "3.9" not in spec


def test_the_materials_project_client_and_mlflow_are_extras():
    deps = " ".join(PYPROJECT["project"]["dependencies"])
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert "mp-api" not in deps and any(d.startswith("mp-api") for d in extras["mp"])
    assert "mlflow" not in deps and any(d.startswith("mlflow-skinny") for d in extras["mlflow"])


BLOCK_MP = """
import sys, importlib.abc
tried = []
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "mp_api" or name.startswith("mp_api."):
            tried.append(name)
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Block())
"""


@pytest.mark.slow
def test_the_demo_runs_without_mp_api(tmp_path):
    """As after `pip install harness` without [mp]: mp_api cannot be imported at all."""
    cfg = tmp_path / "demo.toml"
    cfg.write_text(
        textwrap.dedent(f"""
        tasks = ["crystal_system"]
        representations = [{{name = "barcode", n = 27}}]
        perturbations = ["none"]
        models = ["random_forest"]
        [dataset]
        name = "demo"
        size = 90
        [run]
        trials = 1
        seeds = [0]
        workers = 1
        results = "{tmp_path / "out"}"
    """)
    )
    script = BLOCK_MP + textwrap.dedent(f"""
        from harness.cli import main
        assert main(["list"]) == 0
        assert main(["run", {str(cfg)!r}]) == 0
        assert main(["leaderboard", {str(tmp_path / "out")!r}]) == 0
        assert not tried, tried
        assert not any(m.startswith("mp_api") for m in sys.modules)
        print("OK without mp_api")
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "OK without mp_api" in done.stdout


def test_the_mp_dataset_without_its_client_names_the_extra(monkeypatch):
    from harness_plugins.datasets import mp

    from harness import UserError

    for name in ("mp_api", "mp_api.client", "mp_api.client.core", "mp_api.client.core.exceptions"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"pip install 'harness\[mp\]'"):
        mp._client(mp.MPDataset(api_key="0" * 32))

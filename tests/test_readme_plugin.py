"""The README's plugin section, copied as a user copies it into my_plugin.py: it runs as a
benchmark, and `harness predict` works on its Logistic model (which needs `load`)."""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

from harness.services import config
from harness.cli import main

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def test_the_readme_plugin_runs_and_its_model_predicts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "readme_plugin", None)  # removed again after the test
    del sys.modules["readme_plugin"]
    blocks = re.findall(r"```python\n(.*?)```", _section("Write a plugin"), re.DOTALL)
    code = "\n".join(b for b in blocks if "@hookimpl" not in b)
    code += """
from harness import hookimpl

@hookimpl
def harness_models():
    return [Logistic]

@hookimpl
def harness_tasks():
    return [Compact]

@hookimpl
def harness_representations():
    return [LatticeParameters]

@hookimpl
def harness_datasets():
    return [RandomCells]
"""
    (tmp_path / "readme_plugin.py").write_text(code)
    cfg = tmp_path / "bench.toml"
    cfg.write_text(f"""
tasks = [{{name = "compact", threshold = 60.0}}]
representations = ["lattice"]
perturbations = ["none"]
models = ["logistic"]
[dataset]
name = "random_cells"
size = 80
[run]
trials = 2
seeds = [0]
workers = 1
results = "{tmp_path / "out"}"
""")
    monkeypatch.chdir(tmp_path)
    assert main(["--plugin", "./readme_plugin.py", "-q", "run", str(cfg)]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "--plugin",
                "./readme_plugin.py",
                "predict",
                str(tmp_path / "out"),
                "--dataset",
                "random_cells",
                "--set",
                "size=80",
                "--format",
                "json",
            ]
        )
        == 0
    )
    (study,) = json.loads(capsys.readouterr().out)
    assert len(study["materials"]) == 80 and study["classes"] == ["loose", "compact"]


def test_the_readme_materials_project_example_is_a_valid_config():
    block = re.search(r"```toml\n(.*?)```", README.split("### Materials Project")[1], re.DOTALL).group(1)
    conf = config.parse(tomllib.loads(block))
    assert conf.datasets[0].name == "mp" and conf.tasks

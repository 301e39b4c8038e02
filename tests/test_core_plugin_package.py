"""A third-party package that exposes the `harness` entry point is discovered and usable."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "harness-lattice"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """pip-installs the example plugin into a private folder put on sys.path."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True,
    )
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("harness_lattice")]:
        del sys.modules[name]


def test_installed_package_is_found_through_the_entry_point_group(installed_example):
    from harness import registry

    reg = registry.load()
    entry = reg.get("representation", "lattice")
    assert entry.plugin == "harness-lattice:lattice"


def test_its_representation_runs_in_a_benchmark(installed_example, tmp_path, capsys):
    import json

    from harness.cli import main

    cfg = tmp_path / "b.toml"
    cfg.write_text(
        'plugins = ["toy_plugin"]\ntasks = ["toy_system"]\nrepresentations = ["lattice"]\n'
        'perturbations = ["identity"]\nmodels = ["random_forest"]\n[dataset]\nname = "toy"\n'
        '[run]\ntrials = 1\nseeds = [0]\nworkers = 1\n'
    )
    assert main(["run", str(cfg)]) == 0
    rows = json.loads((tmp_path / "results" / "b" / "leaderboard.json").read_text())
    assert rows[0]["representation"] == "lattice" and rows[0]["mean"] > 0.9
    assert main(["list", "representation"]) == 0
    assert "lattice" in capsys.readouterr().out

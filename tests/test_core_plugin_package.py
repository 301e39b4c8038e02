"""A third-party package that exposes the `harness` entry point is discovered and usable:
the example package's dataset, task, representation and model run a study together."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "harness-lattice"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """pip-installs the example plugin into a private folder put on sys.path."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(EXAMPLE),
        ],
        check=True,
    )
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))
    for name in [m for m in sys.modules if m.startswith("harness_lattice")]:
        del sys.modules[name]


def test_installed_package_is_found_through_the_entry_point_group(installed_example):
    from harness.services import registry

    reg = registry.load()
    for kind, name in [
        ("dataset", "random_cells"),
        ("task", "compact"),
        ("representation", "lattice"),
        ("model", "logistic"),
    ]:
        assert reg.get(kind, name).plugin == "harness-lattice:lattice"
    assert str(installed_example) in sys.modules["harness_lattice"].__file__


def test_its_entries_run_a_benchmark_together(installed_example, tmp_path, capsys):
    from harness.cli import main

    cfg = tmp_path / "b.toml"
    cfg.write_text(
        'tasks = ["compact"]\nrepresentations = ["lattice"]\nmodels = ["logistic"]\n'
        '[dataset]\nname = "random_cells"\nsize = 150\n'
        "[settings.logistic]\nspace = { C = { low = 0.1, high = 10.0, log = true } }\n"
        "[run]\ntrials = 2\nseeds = [0]\nworkers = 1\n"
    )
    assert main(["run", str(cfg)]) == 0
    (row,) = json.loads((tmp_path / "results" / "b" / "leaderboard.json").read_text())
    assert (row["dataset"], row["task"], row["model"]) == ("random_cells", "compact", "logistic")
    assert row["representation"] == "lattice(cell=primitive)"  # the task's preference for its representation
    assert row["perturbation"] == "none"  # the default a built-in plugin declares
    assert row["mean"] > 0.9
    assert main(["list", "model"]) == 0
    assert "logistic" in capsys.readouterr().out


def test_its_model_is_saved_as_json_and_predicts_the_same_after_load(installed_example, tmp_path):
    from harness_lattice.model import Logistic

    from harness import FitContext, Samples

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    s = Samples(X, y, [str(i) for i in range(40)], list("abcdef"), "vector")
    model = Logistic(C=0.5).fit(s, s, FitContext("cpu", 0, 2, lambda t, p: 0.0))
    model.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["logistic.json"]
    np.testing.assert_allclose(Logistic(C=0.5).load(tmp_path).predict_proba(X), model.predict_proba(X))

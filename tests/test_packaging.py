"""The package installs as users install it: the wheel holds every module and the demo
config, and from a fresh environment with no checkout `harness list`, `harness run --demo`
and a one-study neural run work.

Dependencies are not downloaded again: the fresh venv sees this interpreter's
site-packages through a `.pth` line (a plain path, so this checkout's editable-install
hook there is not run)."""

from __future__ import annotations

import csv
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("harness", "plugins", "pyproject.toml", "setup.py", "README.md")


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 600):
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return result


def can_build_offline() -> bool:
    """setuptools >= 70.1 builds wheels by itself; older ones need the `wheel` package."""
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit())
    if version >= (70, 1):
        return True
    try:
        import wheel  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources (an in-tree build/ could hold stale files)."""
    tree = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    isolation = ["--no-build-isolation"] if can_build_offline() else []  # else pip fetches the build backend
    result = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", *isolation, "-w", str(out), str(tree)], tree)
    assert result.returncode == 0, result.stderr[-3000:]
    (built,) = out.glob("harness-*.whl")
    return built


@pytest.fixture(scope="module")
def fresh_env(wheel, tmp_path_factory) -> dict[str, str]:
    """A venv holding only the wheel; its dependencies come from this interpreter's."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    result = run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        venv,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    dependencies = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib) / "_dependencies.pth").write_text("\n".join(dependencies) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["HARNESS_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    env["VENV"] = str(venv)
    return env


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_the_demo_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"harness/{p.relative_to(ROOT / 'harness')}" for p in (ROOT / "harness").rglob("*.py")}
    expected |= {f"harness_plugins/{p.relative_to(ROOT / 'plugins')}" for p in (ROOT / "plugins").rglob("*.py")}
    expected = {name for name in expected if "__pycache__" not in name}
    assert expected - names == set()
    assert "harness/data/demo.toml" in names
    assert not any(name.startswith(("plugins/", "tests/")) for name in names)


def test_the_shipped_demo_is_the_repository_benchmark():
    from harness.cli import demo_config

    shipped = tomllib.loads(Path(demo_config()).read_text())
    assert shipped == tomllib.loads((ROOT / "benchmarks.toml").read_text())


@pytest.mark.parametrize("argv", [["run"], ["run", "benchmarks.toml", "--demo"]])
def test_run_takes_a_config_or_demo(argv, capsys):
    from harness.cli import main

    assert main(argv) == 2
    assert "needs a CONFIG file or --demo" in capsys.readouterr().err


@pytest.mark.slow
def test_installed_harness_runs_without_a_checkout(fresh_env, tmp_path):
    harness = Path(fresh_env["VENV"]) / "bin" / "harness"
    where = run(
        [
            str(Path(fresh_env["VENV"]) / "bin" / "python"),
            "-c",
            "import harness, harness_plugins.models.neural.nets as n; print(harness.__file__, n.__file__)",
        ],
        tmp_path,
        fresh_env,
    )
    assert where.returncode == 0, where.stderr
    assert all(path.startswith(fresh_env["VENV"]) for path in where.stdout.split()), where.stdout

    listed = run([str(harness), "list"], tmp_path, fresh_env)
    assert listed.returncode == 0, listed.stderr[-3000:]
    for name in ("pointnet", "attention_pool", "e3nn", "file", "demo", "xrd_cloud"):
        assert name in listed.stdout

    # The demo config is found inside the package: an --only that matches nothing is
    # the user's mistake (exit 2), not a missing file.
    demo = run([str(harness), "run", "--demo", "--only", "no/such/combination/here"], tmp_path, fresh_env)
    assert demo.returncode == 2 and "demo" in demo.stderr, demo.stderr[-3000:]
    assert "no such file" not in demo.stderr.lower()

    config = write_tiny_neural_benchmark(tmp_path)
    trained = run(
        [str(harness), "run", str(config), "--trials", "1", "--seeds", "0", "--workers", "1"], tmp_path, fresh_env
    )
    assert trained.returncode == 0, (trained.stdout + trained.stderr)[-3000:]
    assert "pointnet" in trained.stdout
    assert (tmp_path / "results" / "tiny" / "results.sqlite").is_file()


def write_tiny_neural_benchmark(folder: Path) -> Path:
    """40 rock-salt-like crystals of random cell sizes with a random binary label, in a
    CSV: enough for one pointnet study of two epochs on a stratified split."""
    from pymatgen.core import Lattice, Structure

    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        structure = Structure(Lattice.cubic(rng.uniform(4.0, 6.0)), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        rows.append([f"m{i}", f"{(i % 2) * 1.5}", structure.to(fmt="cif")])
    with open(folder / "tiny.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["material_id", "band_gap", "cif"])
        writer.writerows(rows)
    config = folder / "tiny.toml"
    config.write_text(
        'tasks = ["metallicity"]\n'
        'representations = [{ name = "xrd_cloud", n = 27 }]\n'
        'perturbations = ["none"]\n'
        'models = ["pointnet"]\n'
        '[dataset]\nname = "file"\npath = "tiny.csv"\n'
        "[settings.pointnet]\ntune = false\nmax_epochs = 2\n"
        '[run]\nresults = "results/tiny"\n'
    )
    return config

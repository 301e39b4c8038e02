"""Issue 22 item 2: a thin engine. A tree-only run never imports torch; a study gets the
cores that no other running study uses."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from types import SimpleNamespace

from harness import runner
from harness.services.store import Store
from harness.execute.study import Environment, StudySpec

DRIVER = textwrap.dedent("""
    import sys
    from harness.cli import main
    rc = main(sys.argv[1:])
    loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
    print("TORCH MODULES:", len(loaded), loaded[:3])
    sys.exit(rc)
""")


def test_a_tree_only_run_with_device_auto_never_imports_torch(tmp_path):
    config = tmp_path / "trees.toml"
    config.write_text(
        textwrap.dedent(f"""
        tasks = ["crystal_system"]
        representations = [{{ name = "barcode", n = 3 }}]
        models = ["random_forest"]
        [run]
        seeds = [0]
        trials = 1
        workers = 2
        device = "auto"
        split = {{ group_by = "none" }}
        results = "{tmp_path / "results"}"
        [dataset]
        name = "demo"
        size = 150
    """)
    )
    env = dict(os.environ, HARNESS_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, "run", str(config)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "device cpu" in done.stdout
    assert "TORCH MODULES: 0 []" in done.stdout, done.stdout[-500:]


class _Recorder:
    """An executor that runs nothing: it records the threads each study was handed."""

    def __init__(self, slots: int):
        self.slots = slots
        self.threads: list[int] = []

    def run(self, next_study, env):
        held = []
        while True:
            while len(held) < self.slots and (spec := next_study()) is not None:
                held.append(spec)
                self.threads.append(spec.threads)
            if not held:
                return
            yield held.pop(0), RuntimeError("not run")


def _specs(n: int, uses_gpu: bool = False) -> list[StudySpec]:
    model = SimpleNamespace(uses_gpu=uses_gpu)
    return [StudySpec(f"k{i}", f"d:t/r/p/m#{i}", "d", SimpleNamespace(model=model), 0, 1, None) for i in range(n)]


def test_threads_follow_the_pending_studies(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "cores", lambda: 4)
    console = SimpleNamespace(print=lambda *a, **k: None)
    from rich.console import Console

    console = Console(quiet=True)
    store = Store(f"sqlite:///{tmp_path}/a.sqlite")
    env = Environment(store.url, "cpu", 2)
    executor = _Recorder(slots=2)
    runner.execute(_specs(3), store, executor, env, console, share_cores=True)
    # two studies share the four cores; the third, handed out when one finished and the
    # other still runs, gets two; alone it would get all four
    assert executor.threads == [2, 2, 2]
    executor = _Recorder(slots=2)
    runner.execute(_specs(1), Store(f"sqlite:///{tmp_path}/b.sqlite"), executor, env, console, share_cores=True)
    assert executor.threads == [4]
    # neural models keep the fixed share (bit-identical resumes), as does a cluster
    executor = _Recorder(slots=2)
    runner.execute(
        _specs(1, uses_gpu=True), Store(f"sqlite:///{tmp_path}/c.sqlite"), executor, env, console, share_cores=True
    )
    assert executor.threads == [0]


def test_store_models_none_keeps_scores_and_predictions_but_no_model(tmp_path, monkeypatch):
    import sqlite3

    from servers import toy_config

    from harness.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    counts = {}
    for how in ("all", "none"):
        text = toy_config(trials=1, workers=1, size=120).replace(
            'results = "out"', f'results = "out-{how}"\nstore_models = "{how}"'
        )
        (tmp_path / f"{how}.toml").write_text(text)
        assert main(["run", str(tmp_path / f"{how}.toml")]) == 0
        db = sqlite3.connect(tmp_path / f"out-{how}" / "results.sqlite")
        counts[how] = (
            db.execute("SELECT COUNT(*) FROM harness_results").fetchone()[0],
            db.execute("SELECT COUNT(*) FROM harness_models").fetchone()[0],
        )
    assert counts["all"] == (6, 6)
    assert counts["none"] == (6, 0)

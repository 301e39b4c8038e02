"""Two drivers on one database: the bar of a run whose studies partly finished in another
run counts every study once, and says nothing is held elsewhere at the end (issue 23, 7)."""

from __future__ import annotations

import io
from types import SimpleNamespace

from rich.console import Console

from harness import runner
from harness.services.store import UnitResult
from harness.execute.study import StudyOutcome


class OneHeldElsewhere:
    """Study "a" is ours; "b" is held by another run, which finishes it after our first poll."""

    def __init__(self):
        self.checks = 0

    def claim(self, key, owner):
        return key == "a"

    def done_keys(self, keys=None):
        if "b" in (keys or []):
            self.checks += 1
            return {"b"} if self.checks >= 3 else set()
        return set()

    def add(self, result, model):
        return True

    def heartbeat(self, owner):
        pass

    def release(self, key, owner):
        pass

    def claims(self):
        return {}


class Serial:
    def run(self, next_study, env):
        while (spec := next_study()) is not None:
            result = UnitResult(
                unit=spec.unit,
                key=spec.key,
                dataset="d",
                task="t",
                representation="r",
                perturbation="p",
                model="m",
                seed=0,
                metric="accuracy",
                value=1.0,
            )
            yield spec, StudyOutcome(result, None)


def test_final_bar_counts_studies_finished_by_another_run(monkeypatch):
    bars = []

    def keep(console):
        bar = runner_progress(console)
        bars.append(bar)
        return bar

    runner_progress = runner.progress_bar
    monkeypatch.setattr(runner, "progress_bar", keep)
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.0)
    specs = [SimpleNamespace(key="a", unit="d:a#0"), SimpleNamespace(key="b", unit="d:b#0")]
    console = Console(file=io.StringIO(), width=120)
    assert runner.execute(specs, OneHeldElsewhere(), Serial(), env=None, console=console) == 0
    (task,) = bars[0].tasks
    assert (task.completed, task.total) == (2, 2)
    assert task.description == "studies"

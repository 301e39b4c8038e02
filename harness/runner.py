"""`harness run`: plan -> prepare -> execute -> store -> report.

Every study is claimed in the store before it runs and written once when it finishes.
Several runs (or machines) on one store divide the studies between them; a study whose
owner died is taken over once its claim expires.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.execute import executors

from harness.report import leaderboard, provenance
from harness.services.config import Config
from harness.services.errors import UserError
from harness.services.paths import writable_folder
from harness.plan.plan import Plan, make_plan
from harness.prepare.prepare import prepare_plan
from harness.services.progress import progress_bar
from harness.services.registry import Registry
from harness.report import curves
from harness.services.store import CLAIM_TTL, Store, location_of, new_owner
from harness.services.workers import cores
from harness.execute.study import Environment, StudyOutcome, StudySpec

POLL_SECONDS = float(os.environ.get("HARNESS_POLL_SECONDS", "5"))


def open_store(config: Config) -> Store:
    results_dir = config.results_dir()
    # Also with a database: the leaderboard files are written into the results folder.
    writable_folder(results_dir, "results folder", "choose another with --results or [run] results")
    return Store(location_of(config.run.storage, results_dir))


def run(config: Config, registry: Registry, console: Console, only: list[str] | None = None) -> int:
    _check_names(config, registry, only)  # an unknown name fails before any folder or store exists
    store = open_store(config)
    try:
        return _run(config, registry, console, store, only)
    finally:
        store.engine.dispose()  # SQLite folds its write-ahead log back now: no -wal/-shm left


def leave(rc: int) -> None:
    """End the process now that every file is written: flush output, run the exit hooks,
    and skip the interpreter's teardown of pymatgen, scikit-learn, optuna... (strace shows
    2-3 s of CPU with no system call between `main` returning and the process exiting)."""
    import atexit
    import sys

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)


def _run(config: Config, registry: Registry, console: Console, store: Store, only: list[str] | None) -> int:
    results_dir = config.results_dir()
    console.rule(f"harness run {escape(config.source)}")
    plan = make_plan(config, registry, store, console, only)
    store.supersede(plan.supersede)  # the plan's store decision, applied here
    _report_skipped(plan, results_dir, console)
    pending = plan.pending
    console.print(
        f"{len(plan.studies)} studies ((combination, seed) pairs): "
        f"{len(plan.studies) - len(pending)} already done, {len(pending)} to run"
    )
    failures = 0
    if pending:
        # Before preparing: a cluster that cannot be reached says so before any featurising.
        placed = executors.build(registry, _placement(config, pending))
        console.print(
            f"device [bold]{placed.device}[/] · {escape(placed.where)} · seeds {config.run.seeds} · "
            f"{config.run.trials} trials per study · results in {escape(str(results_dir))}"
        )
        ready = list(prepare_plan(config, plan, console).studies)
        store.optuna_storage()  # its tables, created once here, not by racing workers
        env = replace(placed.environment(store.url), store_models=config.run.store_models != "none")
        failures = execute(ready, store, placed.executor, env, console, share_cores=placed.share_cores)
    _report(plan, store, results_dir, console, keep_best_models=config.run.store_models == "best")
    provenance.write(config, plan, results_dir)  # version, commit, config hash, dataset ids, time
    if failures:
        console.print(f"[red]{failures} studies failed (see above); rerun to retry them")
        return 1
    return 0


def _check_names(config: Config, registry: Registry, only: list[str] | None) -> None:
    from harness.plan.grid import resolve
    from harness.plan.plan import grids

    grids(config, registry, only)  # tasks, representations, perturbations, models
    for spec in resolve(config, registry).datasets:
        registry.create("dataset", spec.name, spec.params, where=f"{config.source}: ")


def _placement(config: Config, pending: list[StudySpec]) -> Config:
    """`device = "auto"` with no pending model that wants a GPU is the CPU: then nothing
    imports torch to look for one (2 s of every tree-only run)."""
    if config.run.device == "auto" and not any(getattr(s.combination.model, "uses_gpu", False) for s in pending):
        return config.model_copy(update={"run": config.run.model_copy(update={"device": "cpu"})})
    return config


def execute(
    pending: list[StudySpec], store: Store, executor, env: Environment, console: Console, share_cores: bool = False
) -> int:
    """Claim, run and store every pending study; wait for (or take over) those that other
    runs hold. Returns the number of studies that failed here.

    With `share_cores` (this machine's executor), a study handed out gets the cores the
    other running studies leave: with 2 workers and one study left, it fits on both."""
    slots = getattr(executor, "slots", 1)
    owner = new_owner()
    beat = _Heartbeat(store, owner)
    failures = 0
    queue = deque(pending)
    elsewhere: list[StudySpec] = []
    running = 0  # studies handed out and not finished

    def next_study() -> StudySpec | None:
        nonlocal running
        while queue:
            spec = queue.popleft()
            if store.claim(spec.key, owner):
                # The cores no other study of this run is using. Not for models that want a GPU:
                # torch's CPU reductions may round differently on another thread count, and a
                # resumed run must tune as an uncut one (forests and XGBoost are bit-identical).
                if share_cores and not getattr(spec.combination.model, "uses_gpu", False):
                    spec = replace(spec, threads=max(1, cores() // max(1, min(slots, running + 1 + len(queue)))))
                running += 1
                return spec
            if spec.key not in store.done_keys([spec.key]):
                elsewhere.append(spec)  # held by a live run: check again later
            else:
                bar.advance(handle)  # finished by another run since the last check: it counts
        return None

    beat.start()
    try:
        with progress_bar(console) as bar:
            handle = bar.add_task("studies", total=len(pending))
            while True:
                for spec, outcome in executor.run(next_study, env):
                    running -= 1
                    if isinstance(outcome, StudyOutcome):
                        store.add(outcome.result, outcome.model)
                        r = outcome.result
                        bar.console.print(f"  [green]done[/] {escape(r.unit)}: {r.metric} {r.value:.3f}")
                    elif store.taken_over(spec.key, owner):  # stalled past its claim: not a failure
                        bar.console.print(
                            f"  [yellow]taken over[/] {escape(spec.unit)}: another run took this "
                            "study over while this one was stalled (its claim expired)"
                        )
                    else:
                        store.release(spec.key, owner)
                        if isinstance(outcome, UserError):
                            raise outcome
                        failures += 1
                        bar.console.print(
                            f"  [red]failed[/] {escape(spec.unit)}: "
                            f"{escape(type(outcome).__name__)}: {escape(str(outcome))}"
                        )
                    bar.advance(handle)
                done = store.done_keys([s.key for s in elsewhere])
                bar.advance(handle, sum(1 for s in elsewhere if s.key in done))
                waiting = [s for s in elsewhere if s.key not in done]
                elsewhere.clear()
                if not waiting:
                    bar.update(handle, description="studies")  # none held elsewhere any more
                    break
                bar.update(handle, description=f"studies ({len(waiting)} held by other runs)")
                time.sleep(POLL_SECONDS)
                queue.extend(waiting)  # taken over here if their owner stopped beating
    finally:
        beat.stop()
        for key, (who, _) in store.claims().items():
            if who == owner:
                store.release(key, owner)
    return failures


class _Heartbeat:
    """Keeps this run's claims alive while it works."""

    def __init__(self, store: Store, owner: str, every: float = CLAIM_TTL / 4):
        self.store, self.owner, self.every = store, owner, max(0.2, every)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self.store.heartbeat(self.owner)
            except Exception:  # noqa: BLE001 - a missed beat only risks a takeover, retried next time
                pass

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def _report_skipped(plan: Plan, results_dir: Path, console: Console) -> None:
    if not plan.skipped:
        return
    reasons = Counter(why for _, why in plan.skipped)
    console.print(
        f"[yellow]{len(plan.skipped)} combinations skipped, kinds do not fit (listed in skipped.txt): "
        + escape("; ".join(f"{why} ({n})" for why, n in reasons.items()))
    )
    _write(results_dir / "skipped.txt", "".join(f"{cid}\t{why}\n" for cid, why in plan.skipped))


def _report(plan: Plan, store: Store, results_dir: Path, console: Console, keep_best_models: bool = False) -> None:
    results = list(store.results(plan.keys))
    board = leaderboard.build(results)
    if keep_best_models:  # store_models = "best": drop the models of the config's other rows
        best = {tuple(row[k] for k in leaderboard.KEY) for row in board if row["vs_best"] == "best"}
        store.drop_models({r.key for r in results if tuple(getattr(r, k) for k in leaderboard.KEY) not in best})
    leaderboard.render(board, console)
    try:
        leaderboard.write(board, results_dir)
        curves.write(results, results_dir)  # learning curves, when the run has train_fractions
    except OSError as exc:
        raise UserError(
            f"cannot write the leaderboard into {results_dir}: {exc.strerror or exc}; "
            "free space or choose another --results folder"
        ) from None
    superseded = store.count_superseded()
    note = f" ({superseded} results of older settings or code kept as superseded)" if superseded else ""
    console.print(f"leaderboard written to {escape(str(results_dir))}/leaderboard.{{md,csv,json,png}}{note}")


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; choose another --results folder") from None

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
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness import identity, leaderboard
from harness.config import Config
from harness.errors import UserError
from harness.executors import create as create_executor
from harness.paths import writable_folder
from harness.plan import Plan, make_plan
from harness.prepare import prepare
from harness.progress import progress_bar
from harness.registry import Registry
from harness.report import curves
from harness.store import CLAIM_TTL, Store, location_of, new_owner
from harness.study import Environment, StudyOutcome, StudySpec

POLL_SECONDS = float(os.environ.get("HARNESS_POLL_SECONDS", "5"))


def resolve_device(device: str) -> str:
    if device != "auto":
        if device == "cuda":
            import torch

            if not torch.cuda.is_available():
                raise UserError("device = 'cuda' but no CUDA GPU is visible; use device = 'auto' or 'cpu'")
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover
        return "cpu"


def open_store(config: Config) -> Store:
    results_dir = config.results_dir()
    # Also with a database: the leaderboard files are written into the results folder.
    writable_folder(results_dir, "results folder", "choose another with --results or [run] results")
    return Store(location_of(config.run.storage, results_dir))


def run(config: Config, registry: Registry, console: Console, only: list[str] | None = None) -> int:
    results_dir = config.results_dir()
    store = open_store(config)
    console.rule(f"harness run {escape(config.source)}")
    plan = make_plan(config, registry, store, console, only)
    _report_skipped(plan, results_dir, console)
    pending = plan.pending
    console.print(f"{len(plan.studies)} studies ((combination, seed) pairs): "
                  f"{len(plan.studies) - len(pending)} already done, {len(pending)} to run")
    failures = 0
    if pending:
        ray = config.run.executor == "ray"  # the cluster's GPUs decide, not this machine's
        device = config.run.device if ray else resolve_device(config.run.device)
        workers = config.run.workers  # on a GPU: studies that share it, in spawned workers
        where = f"Ray cluster at {config.run.address or 'this machine'}" if ray else f"{workers} worker(s)"
        console.print(f"device [bold]{device}[/] · {escape(where)} · seeds {config.run.seeds} · "
                      f"{config.run.trials} trials per study · results in {escape(str(results_dir))}")
        # Before preparing: a cluster that cannot be reached says so before any featurising.
        executor = create_executor(config.run.executor, workers, config.run.address, config.run.device,
                                   start="spawn" if device == "cuda" else "fork")
        for part in plan.parts:
            todo = [s for s in part.studies if s.key not in plan.done]
            if todo:
                prepare(config, part, todo, console)
        store.optuna_storage()  # its tables, created once here, not by racing workers
        env = Environment(store.url, device, max(1, _cores() // workers), identity.versions(device))
        failures = execute(pending, store, executor, env, console)
    _report(plan, store, results_dir, console)
    if failures:
        console.print(f"[red]{failures} studies failed (see above); rerun to retry them")
        return 1
    return 0


def execute(pending: list[StudySpec], store: Store, executor, env: Environment, console: Console) -> int:
    """Claim, run and store every pending study; wait for (or take over) those that other
    runs hold. Returns the number of studies that failed here."""
    owner = new_owner()
    beat = _Heartbeat(store, owner)
    failures = 0
    queue = deque(pending)
    elsewhere: list[StudySpec] = []

    def next_study() -> StudySpec | None:
        while queue:
            spec = queue.popleft()
            if store.claim(spec.key, owner):
                return spec
            if spec.key not in store.done_keys([spec.key]):
                elsewhere.append(spec)  # held by a live run: check again later
        return None

    beat.start()
    try:
        with progress_bar(console) as bar:
            handle = bar.add_task("studies", total=len(pending))
            while True:
                for spec, outcome in executor.run(next_study, env):
                    if isinstance(outcome, StudyOutcome):
                        store.add(outcome.result, outcome.model)
                        r = outcome.result
                        bar.console.print(f"  [green]done[/] {escape(r.unit)}: {r.metric} {r.value:.3f}")
                    else:
                        store.release(spec.key, owner)
                        if isinstance(outcome, UserError):
                            raise outcome
                        failures += 1
                        bar.console.print(f"  [red]failed[/] {escape(spec.unit)}: "
                                          f"{escape(type(outcome).__name__)}: {escape(str(outcome))}")
                    bar.advance(handle)
                done = store.done_keys([s.key for s in elsewhere])
                bar.advance(handle, sum(1 for s in elsewhere if s.key in done))
                waiting = [s for s in elsewhere if s.key not in done]
                elsewhere.clear()
                if not waiting:
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
    console.print(f"[yellow]{len(plan.skipped)} combinations skipped, kinds do not fit (listed in skipped.txt): "
                  + escape("; ".join(f"{why} ({n})" for why, n in reasons.items())))
    _write(results_dir / "skipped.txt", "".join(f"{cid}\t{why}\n" for cid, why in plan.skipped))


def _report(plan: Plan, store: Store, results_dir: Path, console: Console) -> None:
    results = list(store.results(plan.keys))
    board = leaderboard.build(results)
    leaderboard.render(board, console)
    try:
        leaderboard.write(board, results_dir)
        curves.write(results, results_dir)  # learning curves, when the run has train_fractions
    except OSError as exc:
        raise UserError(f"cannot write the leaderboard into {results_dir}: {exc.strerror or exc}; "
                        "free space or choose another --results folder") from None
    superseded = store.count_superseded()
    note = f" ({superseded} results of older settings or code kept as superseded)" if superseded else ""
    console.print(f"leaderboard written to {escape(str(results_dir))}/leaderboard.{{md,csv,json,png}}{note}")


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; choose another --results folder") from None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

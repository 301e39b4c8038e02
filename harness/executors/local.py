"""Studies in a process pool on this machine; the workers die with their parent
(harness.workers): a `kill -9` of the driver leaves no process behind."""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

from harness.executors.base import Finished
from harness.workers import worker_pool
from harness.study import Environment, StudySpec, run_study


def _run(spec: StudySpec, env: Environment):
    return run_study(spec, env)


class LocalExecutor:
    def __init__(self, workers: int = 2, start: str = "fork"):
        self.slots = max(1, workers)
        # fork: workers start at once; spawn: fresh interpreters, needed on a GPU, where
        # several small studies share the device and a fork cannot reuse CUDA.
        self.start = start

    def run(self, next_study: Callable[[], StudySpec | None], env: Environment) -> Iterator[Finished]:
        if self.slots == 1 or (os.name != "posix" and self.start == "fork"):
            while (spec := next_study()) is not None:
                try:
                    yield spec, run_study(spec, env)
                except Exception as exc:  # noqa: BLE001 - reported by the runner
                    yield spec, exc
            return
        pool = worker_pool(self.slots, self.start)
        running: dict[Future, StudySpec] = {}
        broken = False
        try:
            while True:
                while not broken and len(running) < self.slots and (spec := next_study()) is not None:
                    try:
                        running[pool.submit(_run, spec, env)] = spec
                    except BrokenProcessPool as exc:  # a worker died: take no more work
                        broken = True
                        yield spec, exc
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    spec = running.pop(fut)
                    exc = fut.exception()
                    broken = broken or isinstance(exc, BrokenProcessPool)
                    yield spec, (exc if exc is not None else fut.result())
        finally:
            for fut in running:
                fut.cancel()
            processes = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for p in processes:  # an interrupted run stops its studies now, not after them
                if p.is_alive():
                    p.kill()
            for p in processes:
                p.join(timeout=5)

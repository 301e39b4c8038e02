"""Studies in a process pool on this machine; the workers die with their parent.

Each worker asks the kernel to kill it when its parent dies (Linux `PR_SET_PDEATHSIG`)
and, where that is not available, a watchdog thread exits when the parent is gone: a
`kill -9` of the driver leaves no process behind.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

from harness.executors.base import Finished
from harness.study import Environment, StudySpec, run_study


def _die_with_parent(parent: int) -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


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
        ctx = multiprocessing.get_context(self.start)
        pool = ProcessPoolExecutor(max_workers=self.slots, mp_context=ctx,
                                   initializer=_die_with_parent, initargs=(os.getpid(),))
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

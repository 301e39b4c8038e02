"""Studies in a process pool on this machine; the workers die with their parent
(harness.services.workers): a `kill -9` of the driver leaves no process behind.

Studies of a model that says `batch_studies` run in packs: a combination's pending seeds,
as many as its declared memory per study fits in the device's memory shared by the
workers (at most `pack`), train as one batched fit in one worker (`run_studies`)."""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator

from harness.execute.executors.base import Finished, Packer, device_memory, pack_size
from harness.execute.study import Environment, StudySpec, run_studies, run_study
from harness.services.workers import worker_pool

PACK = 8  # studies per batched fit at most (a combination's seeds: usually 3)


def _run(specs: list[StudySpec], env: Environment) -> list:
    """One outcome (or the exception it raised) per study of the pack."""
    if len(specs) == 1:
        try:
            return [run_study(specs[0], env)]
        except Exception as exc:  # noqa: BLE001 - reported by the runner
            return [exc]
    return run_studies(specs, env)


class LocalExecutor:
    def __init__(self, workers: int = 2, start: str = "fork", pack: int = PACK):
        self.slots = max(1, workers)
        # fork: workers start at once; spawn: fresh interpreters, needed on a GPU, where
        # several small studies share the device and a fork cannot reuse CUDA.
        self.start = start
        self.pack = max(1, int(pack))

    def packs(self, next_study: Callable[[], StudySpec | None], env: Environment) -> Packer:
        memory = device_memory(env.device) if self.pack > 1 else None
        budget = memory // self.slots if memory else None  # the workers share the device
        return Packer(next_study, lambda spec: pack_size(spec, env.device, budget, self.pack))

    def run(self, next_study: Callable[[], StudySpec | None], env: Environment) -> Iterator[Finished]:
        packer = self.packs(next_study, env)
        if self.slots == 1 or (os.name != "posix" and self.start == "fork"):
            while (pack := packer.next_pack()) is not None:
                yield from zip(pack, _run(pack, env))
            return
        pool = worker_pool(self.slots, self.start)
        running: dict[Future, list[StudySpec]] = {}
        broken = False
        try:
            while True:
                while not broken and len(running) < self.slots and (pack := packer.next_pack()) is not None:
                    try:
                        running[pool.submit(_run, pack, env)] = pack
                    except BrokenProcessPool as exc:  # a worker died: take no more work
                        broken = True
                        for spec in pack:
                            yield spec, exc
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in finished:
                    pack = running.pop(fut)
                    exc = fut.exception()
                    broken = broken or isinstance(exc, BrokenProcessPool)
                    yield from zip(pack, [exc] * len(pack) if exc is not None else fut.result())
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

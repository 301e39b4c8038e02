"""Where units of work run. The runner hands out (Unit, UnitData) pairs and receives results.

`LocalExecutor` uses a process pool on this machine. A distributed executor (many workers
sharing one Optuna storage on a database server, or a Ray cluster) implements the same
`map` and needs no other change.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Callable, Iterator, Protocol, Sequence

from harness.store import UnitResult
from harness.study import Unit, UnitData, run_unit

# Filled in by the parent before forking, read by the workers: the features are inherited,
# not pickled once per unit.
_DATA: dict[str, UnitData] = {}


class Executor(Protocol):
    def map(self, units: Sequence[Unit], data_key: Callable[[Unit], str], data: dict[str, UnitData]) -> Iterator[UnitResult | BaseException]:
        """Run the units and yield each result (or the exception it raised) as it finishes."""


def _run(unit: Unit, key: str) -> UnitResult:
    if unit.threads:
        try:
            import torch

            torch.set_num_threads(unit.threads)
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
    return run_unit(unit, _DATA[key])


class LocalExecutor:
    def __init__(self, workers: int = 2):
        self.workers = workers

    def map(self, units, data_key, data):
        _DATA.clear()
        _DATA.update(data)
        if self.workers <= 1 or len(units) <= 1 or os.name != "posix":
            for unit in units:
                try:
                    yield _run(unit, data_key(unit))
                except Exception as exc:  # noqa: BLE001 - reported by the runner
                    exc.unit = unit  # type: ignore[attr-defined]
                    yield exc
            return
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
            pending = {pool.submit(_run, u, data_key(u)): u for u in units}
            try:
                while pending:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        unit = pending.pop(fut)
                        exc = fut.exception()
                        if exc is not None:
                            exc.unit = unit  # type: ignore[attr-defined]
                            yield exc
                        else:
                            yield fut.result()
            finally:
                for fut in pending:
                    fut.cancel()

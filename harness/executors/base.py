"""What an executor is, apart from any one executor (so that executors import this, not
the package that lists them).

An executor pulls specs from `next_study()` whenever it has room and yields each spec
with its outcome (or the exception it raised) as it finishes. An `ExecutorEntry` names
one and builds it from the run settings and its own `[executors.<name>]` table; what it
builds (`Placed`) owns where studies train (the device) and their threads, so the runner
only claims, stores and reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from harness import identity
from harness.config import RunConfig
from harness.study import Environment, StudyOutcome, StudySpec

Finished = tuple[StudySpec, "StudyOutcome | BaseException"]


class Executor(Protocol):
    slots: int  # studies it runs at once

    def run(self, next_study: Callable[[], StudySpec | None], env: Environment) -> Iterator[Finished]:
        """Run studies until `next_study()` returns None and all started ones finished."""


@dataclass(frozen=True)
class Placed:
    """A built executor with the device its studies train on and each study's threads."""

    executor: Executor
    device: str  # "auto" where each node decides (a cluster), else what studies train on
    threads: int  # CPU threads per study
    where: str  # for the run's banner, e.g. "2 worker(s)"
    # a study handed out gets the cores the other running studies leave (this machine's pool)
    share_cores: bool = False

    def environment(self, store_url: str) -> Environment:
        return Environment(store_url, self.device, self.threads, identity.versions(self.device))


@dataclass(frozen=True)
class ExecutorEntry:
    """An executor by name: `build(run, settings)` makes it from `[run]` and the dict of
    its `[executors.<name>]` table (empty when the config has none)."""

    name: str
    build: Callable[[RunConfig, dict[str, Any]], Placed]
    description: str = ""


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

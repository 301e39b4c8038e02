"""Where studies run. An executor pulls specs from `next_study()` whenever it has room and
yields each spec with its outcome (or the exception it raised) as it finishes.

The runner owns claims and the store; an executor only runs `harness.study.run_study`.
`local` is a process pool on this machine (the default).
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol

from harness.study import Environment, StudyOutcome, StudySpec

Finished = tuple[StudySpec, "StudyOutcome | BaseException"]


class Executor(Protocol):
    slots: int  # studies it runs at once

    def run(self, next_study: Callable[[], StudySpec | None], env: Environment) -> Iterator[Finished]:
        """Run studies until `next_study()` returns None and all started ones finished."""


def create(name: str, workers: int, **options) -> Executor:
    from harness.errors import UserError

    if name == "local":
        from harness.executors.local import LocalExecutor

        return LocalExecutor(workers)
    raise UserError(f"unknown executor {name!r}; choose one of: local")

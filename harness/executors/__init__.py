"""Where studies run. An executor pulls specs from `next_study()` whenever it has room and
yields each spec with its outcome (or the exception it raised) as it finishes.

The runner owns claims and the store; an executor only runs `harness.study.run_study`.
`local` is a process pool on this machine (the default); `ray` runs each study as a Ray
task on a cluster (imported only when chosen).
"""

from __future__ import annotations

from typing import Callable, Iterator, Protocol

from harness.study import Environment, StudyOutcome, StudySpec

Finished = tuple[StudySpec, "StudyOutcome | BaseException"]


class Executor(Protocol):
    slots: int  # studies it runs at once

    def run(self, next_study: Callable[[], StudySpec | None], env: Environment) -> Iterator[Finished]:
        """Run studies until `next_study()` returns None and all started ones finished."""


def create(name: str, workers: int, address: str = "", device: str = "auto", start: str = "fork") -> Executor:
    """`workers` sizes the local pool; a Ray cluster's size comes from its resources.

    `start`: how local workers start; "spawn" on a GPU, where a forked child cannot use
    the CUDA state of its parent."""
    from harness.errors import UserError

    if name == "local":
        from harness.executors.local import LocalExecutor

        return LocalExecutor(workers, start)
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UserError("executor 'ray' needs Ray on this machine and every node: "
                            "pip install 'harness[cluster]' (or pip install 'ray[default]')") from None
        from harness.executors.ray import RayExecutor

        return RayExecutor(address, device)
    raise UserError(f"unknown executor {name!r}; choose one of: local, ray")

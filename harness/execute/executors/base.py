"""What an executor is, apart from any one executor (so that executors import this, not
the package that lists them).

An executor pulls specs from `next_study()` whenever it has room and yields each spec
with its outcome (or the exception it raised) as it finishes. An `ExecutorEntry` names
one and builds it from the run settings and its own `[executors.<name>]` table; what it
builds (`Placed`) owns where studies train (the device) and their threads, so the runner
only claims, stores and reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from harness.plan import identity
from harness.services.config import RunConfig
from harness.execute.study import Environment, StudyOutcome, StudySpec
from harness.services.workers import device_memory  # noqa: F401  (executors size packs by it)

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


def pack_key(spec: StudySpec) -> tuple | None:
    """What studies must share to train as one batched fit: the combination (all but the
    seed), the inputs, trials and training share. None where the study trains alone: its
    model does not say `batch_studies` (its numbers would depend on its batch-mates), or
    it has a `timeout` (a deadline cuts one study's fit, not a pack's)."""
    model = spec.combination.model
    if not getattr(model, "batch_studies", False) or not hasattr(model, "fit_many") or spec.timeout:
        return None
    return (spec.unit.rsplit("#", 1)[0], spec.dataset, spec.inputs, spec.trials, spec.train_fraction)


def pack_size(spec: StudySpec, device: str, budget: int | None, most: int) -> int:
    """How many studies like `spec` train as one stack on `device`: at most `most`, and
    as many as the model's declared memory per study (`memory_estimate`) fits in
    `budget` bytes (None: no limit known)."""
    if pack_key(spec) is None:
        return 1
    estimate = getattr(spec.combination.model, "memory_estimate", None)
    need = estimate(device) if budget and callable(estimate) else None
    n = most if not (need and budget) else min(most, budget // need)
    return max(1, int(n))


class Packer:
    """Takes studies from `next_study` in packs: a combination's pending seeds (adjacent
    in the plan) up to `size(spec)` at a time. A study taken that does not fit the pack
    (another combination) starts the next one: every claimed study runs exactly once."""

    def __init__(self, next_study: Callable[[], StudySpec | None], size: Callable[[StudySpec], int]):
        self.next_study, self.size = next_study, size
        self.held: StudySpec | None = None

    def next_pack(self) -> list[StudySpec] | None:
        first, self.held = (self.held or self.next_study()), None
        if first is None:
            return None
        pack, key, most = [first], pack_key(first), self.size(first)
        while key is not None and len(pack) < most:
            spec = self.next_study()
            if spec is None:
                break
            if pack_key(spec) != key:
                self.held = spec
                break
            pack.append(spec)
        return pack

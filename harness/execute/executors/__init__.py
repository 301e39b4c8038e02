"""Where studies run: executors are entries, looked up by name.

The built-ins are in `BUILTIN` (this table); a plugin adds one with the `harness_executors`
hook, returning `ExecutorEntry`s. `build` picks the config's executor, validates its own
`[executors.<name>]` table and builds it; the result owns the device and the threads of
each study, so the runner names no executor. `local` is a process pool on this machine
(the default); `ray` runs each study as a Ray task on a cluster (Ray is imported only
when it is chosen).
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic

from harness.services.config import Config, RunConfig, Strict
from harness.services.errors import UserError
from harness.execute.executors.base import Executor, ExecutorEntry, Finished, Placed
from harness.execute.executors.local import PACK, LocalExecutor
from harness.execute.executors.ray import RayExecutor
from harness.services.registry import Registry
from harness.services.workers import cores

__all__ = ["BUILTIN", "Executor", "ExecutorEntry", "Finished", "Placed", "build", "entries", "resolve_device"]


def resolve_device(device: str) -> str:
    """`auto` -> cuda when this machine sees a GPU, else cpu; `cuda` without one is an error."""
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


class LocalSettings(Strict):
    """[executors.local]"""

    # how workers start; default: fork on a CPU, spawn on a GPU (a forked child cannot
    # use its parent's CUDA state)
    start: Literal["fork", "spawn"] | None = None
    # studies of a `batch_studies` model (a combination's seeds) trained as one batched
    # fit, at most this many (fewer where the model's declared memory says so); 1: never
    pack: int = pydantic.Field(PACK, ge=1)


class RaySettings(Strict):
    """[executors.ray]"""

    address: str = ""  # [run] address (or --address), when given, wins
    cpus_per_study: int = pydantic.Field(1, ge=1)
    pack: int = pydantic.Field(PACK, ge=1)  # as [executors.local] pack; on a GPU, at most 1 / gpu_share


def _local(run: RunConfig, settings: dict[str, Any]) -> Placed:
    opts = _settings(LocalSettings, "local", settings)
    device = resolve_device(run.device)  # this machine's GPU decides
    start = opts.start or ("spawn" if device == "cuda" else "fork")
    return Placed(
        LocalExecutor(run.workers, start, opts.pack),
        device,
        max(1, cores() // run.workers),
        f"{run.workers} worker(s)",
        share_cores=True,
    )


def _ray(run: RunConfig, settings: dict[str, Any]) -> Placed:
    opts = _settings(RaySettings, "ray", settings)
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError(
            "executor 'ray' needs Ray on this machine and every node: "
            "pip install 'harness[cluster]' (or pip install 'ray[default]')"
        ) from None
    address = run.address or opts.address
    # The cluster's GPUs decide, per study (RayExecutor's placement), not this machine's.
    return Placed(
        RayExecutor(address, run.device, opts.cpus_per_study, opts.pack),
        run.device,
        max(1, cores() // run.workers),
        f"Ray cluster at {address or 'this machine'}",
    )


BUILTIN = (
    ExecutorEntry("local", _local, "a process pool on this machine ([run] workers)"),
    ExecutorEntry("ray", _ray, "each study a Ray task on a cluster ([executors.ray] address)"),
)


def entries(registry: Registry) -> dict[str, ExecutorEntry]:
    """The built-in executors and those the plugins registered, by name."""
    out = {e.name: e for e in BUILTIN}
    for entry, plugin in registry.executors.values():
        if entry.name in out:
            raise UserError(
                f"duplicate executor {entry.name!r}: a built-in and one registered by {plugin!r}; rename the plugin's"
            )
        out[entry.name] = entry
    return out


def build(registry: Registry, config: Config) -> Placed:
    """The config's executor, built from `[run]` and its `[executors.<name>]` table."""
    table = entries(registry)
    choices = ", ".join(map(repr, sorted(table)))
    unknown = sorted(set(config.executors) - set(table))
    if unknown:
        raise UserError(
            f"{config.source or 'config'}: [executors.{unknown[0]}] names no executor; choose one of: {choices}"
        )
    name = config.run.executor
    if name not in table:
        raise UserError(f"unknown executor {name!r}; choose one of: {choices}")
    return table[name].build(config.run, dict(config.executors.get(name, {})))


def _settings(model: type[Strict], name: str, settings: dict[str, Any]) -> Any:
    try:
        return model(**settings)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            valid = ", ".join(sorted(model.model_fields))
            raise UserError(f"[executors.{name}] has no key {key!r}; valid keys: {valid}") from None
        raise UserError(f"[executors.{name}] {key}: {err['msg']}") from None

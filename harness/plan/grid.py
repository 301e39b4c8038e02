"""Expanding a config into combinations task x representation x perturbation x model."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, cast

from harness.plan.space import search_space
from harness.sdk.api import Metric, Model, Perturbation, Representation, Task
from harness.services.config import Config, DatasetSpec, EntrySpec
from harness.services.errors import UserError
from harness.services.records import COMBINATION_AXES
from harness.services.registry import Registry


@dataclass(frozen=True)
class Combination:
    task: Task
    representation: Representation
    perturbation: Perturbation
    model: Model
    transforms: tuple[Perturbation, ...] = ()  # the task's own, applied first
    metrics: tuple[Metric, ...] = ()  # the task's metric, then its extra metrics

    @property
    def id(self) -> str:
        return "/".join(getattr(self, axis).title for axis in COMBINATION_AXES)


@dataclass
class Grid:
    combinations: list[Combination] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, why)
    # The dataset's parameters that identify its content (its secrets left out).
    dataset_params: dict[str, Any] = field(default_factory=dict)

    def representations(self) -> list[Representation]:
        """The distinct representations to featurise."""
        seen: dict[str, Representation] = {}
        for c in self.combinations:
            seen.setdefault(c.representation.title, c.representation)
        return list(seen.values())


def _create(registry: Registry, kind: str, spec: EntrySpec, where: str, extra: dict[str, Any] | None = None):
    params = {**(extra or {}), **spec.params}
    return registry.create(kind, spec.name, params, where=where)


def expand(config: Config, registry: Registry, only: list[str] | None = None, part: DatasetSpec | None = None) -> Grid:
    """The grid of one dataset of the config (by default its first)."""
    src = f"{config.source}: " if config.source else ""
    config = resolve(config, registry)  # a new object: the caller's config stays as it was
    part = _named(part, config, registry) if part is not None else config.datasets[0]
    secrets = registry.get("dataset", part.name).cls.secrets()
    tasks = [_create(registry, "task", s, src) for spec in part.tasks for s in spec.expand()]
    rep_specs = [s for spec in config.representations for s in spec.expand()]
    perts = [_create(registry, "perturbation", s, src) for spec in config.perturbations for s in spec.expand()]
    models = [_create(registry, "model", s, src, extra=config.settings.get(s.name)) for s in config.models]
    for name in config.settings:
        if name not in {m.name for m in models}:
            registry.get("model", name)  # unknown names fail here with the choices
    for model in models:
        search_space(model)  # unknown or ill-typed `space` keys fail here
    grid = Grid(dataset_params={k: v for k, v in part.params.items() if k not in secrets})
    for task in tasks:
        scores = task_metrics(registry, task, src)
        transforms = tuple(
            cast(
                Perturbation,
                registry.create("perturbation", name, params, where=f"{src}task {task.name!r} transform: "),
            )
            for name, params in task.transforms()
        )
        for spec in rep_specs:
            rep = _resolve_representation(registry, spec, task, src)
            fitting = tuple(t for t in transforms if not t.misfit(rep))
            for pert in perts:
                for model in models:
                    combo = Combination(task, rep, pert, model, fitting, scores)
                    if not _selected(combo.id, config, only):
                        continue
                    why = _misfit(rep, pert, model)
                    if why:
                        grid.skipped.append((combo.id, why))
                    else:
                        grid.combinations.append(combo)
    return grid


def task_metrics(registry: Registry, task: Task, src: str = "") -> tuple[Metric, ...]:
    """The task's metric and extra metrics, looked up among every plugin's metrics."""
    where = f"{src}task {task.name!r}: "
    return tuple(registry.metric(name, where) for name in (task.metric, *task.extra_metrics))


def _selected(cid: str, config: Config, only: list[str] | None) -> bool:
    def hit(patterns) -> bool:
        return any(fnmatch.fnmatchcase(cid, p) for p in patterns)

    return (not config.only or hit(config.only)) and (not only or hit(only)) and not hit(config.exclude)


def resolve(config: Config, registry: Registry) -> Config:
    """The config with defaults filled in, as a new object (the given one is unchanged):
    a config that names no dataset or no perturbation gets the entry a plugin declares
    as the default of that kind (`default = True`): the core names no plugin."""
    datasets = [_named(part, config, registry) for part in config.datasets]
    perturbations = config.perturbations or [
        EntrySpec(name=registry.default("perturbation", f"{config.source or 'config'} names no perturbation"))
    ]
    return config.model_copy(update={"datasets": datasets, "perturbations": perturbations})


def _named(part: DatasetSpec, config: Config, registry: Registry) -> DatasetSpec:
    if part.name:
        return part
    name = registry.default("dataset", f"{config.source or 'config'} names no dataset")
    return part.model_copy(update={"name": name, "label": part.label or name})


def _resolve_representation(registry: Registry, spec: EntrySpec, task: Task, src: str) -> Representation:
    """The task's preferred parameters for this representation fill in what the config
    leaves unset; a preference for a parameter the representation lacks is an error."""
    cls = registry.get("representation", spec.name).cls
    preferred = dict(task.representation_defaults().get(spec.name, {}))
    known = {p.name for p in cls.parameters()}
    unknown = sorted(set(preferred) - known)
    if unknown:
        raise UserError(
            f"task {task.name!r} prefers {', '.join(map(repr, unknown))} for representation {spec.name!r}, "
            f"which has no such parameter (it has: {', '.join(sorted(known)) or 'none'}); fix the task's "
            "representation_defaults()"
        )
    return _create(registry, "representation", spec, src, extra=preferred)


def _misfit(rep: Representation, pert: Perturbation, model: Model) -> str:
    if rep.kind not in model.accepts:
        return f"{model.name} takes {'/'.join(sorted(model.accepts))}, not {rep.kind}"
    return pert.misfit(rep)

"""Plan: config + registry -> every study with its key, and which of them are done.

Nothing is featurised here, and a dataset is loaded only when it cannot name its content
cheaply (`Dataset.content_id`): a rerun whose studies are all done stops after the plan.

The plan is pure: it reads the store (which studies are done) and never writes it. What
the store should change (older results of the same units superseded) is a decision in
the plan (`Plan.supersede`) that the runner applies; `harness explain` ignores it. Plan
objects are frozen and complete when `make_plan` returns: prepare returns what it makes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Protocol, cast

from rich.console import Console
from rich.markup import escape

from harness.plan import identity
from harness.sdk.api import Dataset, LoadContext, Material
from harness.services.config import Config, DatasetSpec, SplitConfig
from harness.services.errors import UserError
from harness.services.content import material_hash
from harness.plan.grid import Grid, expand, resolve
from harness.services.paths import cache_dir
from harness.services.progress import progress_bar, skip_summary, tracker
from harness.services.registry import Registry
from harness.plan.spec import StudySpec, fraction_label, study_fraction


class DoneKeys(Protocol):
    """All the plan asks of a store: which of these keys have a readable result."""

    def done_keys(self, keys: list[str] | None = None) -> set[str]: ...


@dataclass(frozen=True)
class Loaded:
    """A dataset's materials, their content hashes and what the dataset left out."""

    materials: list[Material]
    hashes: list[bytes]
    skipped: Counter


@dataclass(frozen=True)
class Source:
    """A dataset of the config with its content identity."""

    spec: DatasetSpec
    dataset: Dataset
    content: str = ""
    loaded: Loaded | None = None  # when the content could only be known by loading

    def identity(self) -> dict:
        return {"label": self.spec.label, **identity.entry_identity(self.dataset), "content": self.content}


@dataclass(frozen=True)
class PartPlan:
    """One training dataset of the config: its grid, its content identity, its studies,
    the evaluate datasets its models are also scored on, and how it is split (the seeds
    and fractions, read from the config here once: prepare reads them from the part)."""

    spec: DatasetSpec
    dataset: Dataset
    grid: Grid
    content: str
    studies: tuple[StudySpec, ...] = ()
    loaded: Loaded | None = None  # when the content could only be known by loading
    evaluations: tuple[Source, ...] = ()
    seeds: tuple[int, ...] = ()
    split: SplitConfig = field(default_factory=SplitConfig)

    def split_identity(self) -> dict:
        """The run's split, plus this dataset's split column and held-out families."""
        return {**self.split.model_dump(), **self.spec.split_identity()}


@dataclass(frozen=True)
class Plan:
    parts: tuple[PartPlan, ...]
    done: frozenset[str]
    skipped: tuple[tuple[str, str], ...]  # (combination id, why its kinds do not fit)
    # The store decision the runner applies: unit -> its current key; results of these
    # units under another key are marked superseded.
    supersede: dict[str, str] = field(default_factory=dict)

    @property
    def studies(self) -> list[StudySpec]:
        return [s for p in self.parts for s in p.studies]

    @property
    def pending(self) -> list[StudySpec]:
        return [s for s in self.studies if s.key not in self.done]

    @property
    def keys(self) -> set[str]:
        return {s.key for s in self.studies}


def grids(config: Config, registry: Registry, only: list[str] | None = None) -> list[tuple[DatasetSpec, Grid]]:
    """The grid of each dataset of the config (defaults filled in); an empty selection is
    a user error."""
    config = resolve(config, registry)
    out = [(part, expand(config, registry, only, part)) for part in config.training_datasets]
    if not any(g.combinations for _, g in out):
        raise UserError(
            f"{config.source or 'config'}: no combination to run"
            + (f" matches --only {' '.join(only)}" if only else "")
            + "; check the names and --only patterns (`harness list`)"
        )
    return [(p, g) for p, g in out if g.combinations]


def make_plan(
    config: Config, registry: Registry, store: DoneKeys, console: Console, only: list[str] | None = None
) -> Plan:
    """Every study of the config and which are done; reads the store, never writes it."""
    config = resolve(config, registry)  # a new object: the caller's config stays as it was
    parts, skipped = [], []
    sources: dict[str, Source] = {}
    seeds = tuple(config.run.seeds)
    for spec, grid in grids(config, registry, only):
        dataset = cast(Dataset, registry.create("dataset", spec.name, spec.params, where=f"{config.source}: "))
        loaded = None
        content = dataset.content_id()
        if content is None:
            loaded = load(dataset, spec, console)
            content = materials_digest(loaded)
        evaluations = tuple(_source(sources, registry, config, e, console) for e in config.evaluation_datasets(spec))
        part = PartPlan(
            spec, dataset, grid, content, loaded=loaded, evaluations=evaluations, seeds=seeds, split=config.run.split
        )
        split = part.split_identity()
        evaluate = [e.identity() for e in evaluations]
        skipped += [(f"{spec.label}:{cid}", why) for cid, why in grid.skipped]
        studies = []
        for combo in grid.combinations:
            for seed, fraction in itertools.product(seeds, config.run.train_fractions or [1.0]):
                ident = identity.study_identity(
                    dataset=identity.entry_identity(dataset),
                    dataset_content=content,
                    combination=combo,
                    split=split,
                    seed=seed,
                    trials=config.run.trials,
                    timeout=config.run.timeout,
                )
                if evaluate:  # only then: configs without evaluate datasets keep their keys
                    ident["evaluate"] = evaluate
                share = study_fraction(fraction)
                if share is not None:  # only then: the whole split keeps its key
                    ident["train_fraction"] = share
                label = fraction_label(spec.label, share)
                studies.append(
                    StudySpec(
                        key=identity.key_of(ident),
                        unit=f"{label}:{combo.id}#{seed}",
                        dataset=label,
                        combination=combo,
                        seed=seed,
                        trials=config.run.trials,
                        timeout=config.run.timeout,
                        identity=ident,
                        train_fraction=share,
                        curve=spec.label if share is not None else "",
                    )
                )
        parts.append(replace(part, studies=tuple(studies)))
    keys = sorted({s.key for p in parts for s in p.studies})
    return Plan(
        tuple(parts),
        frozenset(store.done_keys(keys)),
        tuple(skipped),
        supersede={s.unit: s.key for p in parts for s in p.studies},
    )


def split_identity(config: Config, part: PartPlan) -> dict:
    """The run's split, plus this dataset's split column and held-out families (kept for
    callers of the old signature; the part carries its split)."""
    return part.split_identity()


def _source(
    sources: dict[str, Source], registry: Registry, config: Config, spec: DatasetSpec, console: Console
) -> Source:
    """An evaluate dataset, its content named once however many training datasets use it."""
    if spec.label not in sources:
        dataset = cast(Dataset, registry.create("dataset", spec.name, spec.params, where=f"{config.source}: "))
        content = dataset.content_id() or ""
        loaded = None
        if not content:
            loaded = load(dataset, spec, console)
            content = materials_digest(loaded)
        sources[spec.label] = Source(spec, dataset, content, loaded)
    return sources[spec.label]


def load(dataset: Dataset, spec: DatasetSpec, console: Console) -> Loaded:
    """Load a dataset with a progress bar; duplicate ids and an empty dataset are user errors."""
    t0 = time.perf_counter()
    with progress_bar(console) as bar:
        ctx = LoadContext(cache_dir(), progress=tracker(bar, f"loading {dataset.title}"))
        materials = list(dataset.load(ctx))
    ids = Counter(m.id for m in materials)
    dupes = [i for i, c in ids.items() if c > 1]
    if dupes:
        raise UserError(f"dataset {dataset.title!r} has duplicate ids (e.g. {dupes[0]!r}); fix the id column")
    if not materials:
        raise UserError(f"dataset {dataset.title!r} yielded no materials; check its path and parameters")
    console.print(
        f"dataset [bold]{escape(spec.label)}[/] = {escape(dataset.title)}: {len(materials)} materials "
        f"in {time.perf_counter() - t0:.1f} s" + skip_summary(ctx.skipped)
    )
    return Loaded(materials, [material_hash(m) for m in materials], ctx.skipped)


def materials_digest(loaded: Loaded) -> str:
    """Content of a loaded dataset: each material's id, structure hash and properties."""
    h = hashlib.blake2b(digest_size=16)
    for m, sh in zip(loaded.materials, loaded.hashes):
        h.update(m.id.encode())
        h.update(sh)
        h.update(json.dumps(dict(m.props), sort_keys=True, default=str).encode())
        h.update((m.group or "").encode())
    return h.hexdigest()

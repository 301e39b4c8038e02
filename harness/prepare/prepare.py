"""Prepare: load, label, featurise and split only what the pending studies need, and write
each (dataset, task, representation) as one inputs file that the studies read.

Labels come before features: a task that finds no labelled material, or one class only,
fails in seconds, before any featurisation.

Prepare writes into no plan object: it returns the studies with their inputs set (new
`StudySpec`s) and the datasets it loaded, which a later call may reuse.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import TaskID

from harness.prepare import grouping

from harness.plan import identity
from harness.sdk.api import Dataset, Material, Representation, Skip, Task
from harness.services.cache import read_arrays, read_json, write_json
from harness.services.config import Config
from harness.services.errors import UserError
from harness.prepare.features import FeatureCache, FeatureSet, featurize
from harness.prepare.inputs import StudyInputs, write_inputs
from harness.services.paths import cache_dir
from harness.plan.plan import Loaded, PartPlan, Plan, Source, load
from harness.services.progress import progress_bar, skip_summary
from harness.services.workers import cores
from harness.prepare.splits import Split, check_classes, column_split, stratified_split
from harness.plan.spec import StudySpec


@dataclass
class Labels:
    index: np.ndarray  # positions of labelled materials
    y: np.ndarray
    skipped: Counter = field(default_factory=Counter)
    unlabelled: int = 0  # materials for which the task has no value


def label(task: Task, materials: list[Material]) -> Labels:
    index: list[int] = []
    y: list[int] = []
    skipped: Counter[str] = Counter()
    unlabelled = 0
    for i, m in enumerate(materials):
        try:
            value = task.label(m)
        except Skip as exc:
            skipped[str(exc)] += 1
            continue
        if value is None:
            unlabelled += 1
        else:
            index.append(i)
            y.append(int(value))
    return Labels(np.asarray(index, dtype=int), np.asarray(y, dtype=int), skipped, unlabelled)


def inputs_path(config: Config, part: PartPlan, study: StudySpec) -> str:
    """Content-keyed: the same data, task, representation, split, seeds and extra test
    sets give the same file. (`config` is unused: the part carries its split and seeds.)"""
    c = study.combination
    blob = {
        "dataset": part.content,
        "task": identity.entry_identity(c.task),
        "representation": {**identity.entry_identity(c.representation), "feature_code": identity.FEATURE_CODE_VERSION},
        "split": part.split_identity(),
        "seeds": sorted(part.seeds),
        "inputs": 1,
    }
    if part.evaluations:
        blob["evaluate"] = [e.identity() for e in part.evaluations]
    return str(cache_dir() / "inputs" / f"{identity.digest(blob)}.npz")


@dataclass(frozen=True)
class Prepared:
    """What prepare made: the studies, each with its inputs file, and the datasets it
    loaded or reused (label -> materials), for a later call to reuse."""

    studies: tuple[StudySpec, ...]
    loaded: dict[str, Loaded] = field(default_factory=dict)


def prepare(
    config: Config,
    part: PartPlan,
    studies: list[StudySpec] | tuple[StudySpec, ...],
    console: Console,
    loaded: Mapping[str, Loaded] | None = None,
) -> Prepared:
    """The studies with their `inputs` set, writing the files that are not in the cache yet.

    `loaded`: datasets an earlier call loaded (by label), reused instead of loading again."""
    known = dict(loaded or {})
    if part.loaded is not None:
        known.setdefault(part.spec.label, part.loaded)
    ready = tuple(replace(s, inputs=inputs_path(config, part, s)) for s in studies)
    needed: dict[str, tuple[Task, Representation]] = {}
    for s in ready:
        needed.setdefault(s.inputs, (s.combination.task, s.combination.representation))
    missing = {path: pair for path, pair in needed.items() if not _intact(Path(path))}
    if not missing:
        return Prepared(ready, known)
    train = known[part.spec.label] = _loaded(part, known, console)
    sources = [(e, _loaded(e, known, console)) for e in part.evaluations]
    known.update({e.spec.label: el for e, el in sources})
    held = held_out(part, train, sources, console)
    tasks = {t.title: t for t, _ in missing.values()}
    reps = {r.title: r for _, r in missing.values()}
    # One parallel symmetry search per crystal and symprec, shared by labels, grouping and
    # standard cells (forked featurisers inherit it): tasks' before labelling, the rest after.
    analyse_all(config, train, _symprecs(tasks.values()), console)
    grouped = [grouping.SYMPREC] if config.run.split.group_by in ("formula_spacegroup", "prototype") else []
    analyse_all(config, train, {*grouped, *_symprecs(reps.values())}, console)
    labels = {title: _label_task(task, train, part.spec.label, console, part.dataset) for title, task in tasks.items()}
    splits = {title: _splits(config, part, train, labels[title], tasks[title], held.excluded) for title in tasks}
    features = featurize_all(config, train, list(reps.values()), console)
    extra = {
        e.spec.label: (
            el,
            {t: _label_evaluation(task, el, e.spec.label, console) for t, task in tasks.items()},
            featurize_all(config, el, list(reps.values()), console),
        )
        for e, el in sources
    }
    for path, (task, rep) in missing.items():
        data = _inputs(labels[task.title], splits[task.title], features[rep.title], train)
        _add_families(data, held.families)
        for name, (el, lab, fs) in extra.items():
            _add_evaluation(data, name, lab[task.title], fs[rep.title], el)
        write_inputs(Path(path), data)
    return Prepared(ready, known)


def prepare_plan(config: Config, plan: Plan, console: Console, everything: bool = False) -> Prepared:
    """Prepare the plan's pending studies (every study with `everything`), part by part,
    a dataset loaded once for all parts: the one path of `harness run` and `harness
    featurize --config`."""
    ready: list[StudySpec] = []
    loaded: dict[str, Loaded] = {}
    for part in plan.parts:
        todo = [s for s in part.studies if everything or s.key not in plan.done]
        if todo:
            made = prepare(config, part, todo, console, loaded)
            loaded = made.loaded
            ready += made.studies
    return Prepared(tuple(ready), loaded)


@dataclass
class HeldOut:
    """Materials of a training dataset that no train or valid split may hold."""

    excluded: np.ndarray  # bool per material of the dataset
    families: dict[str, np.ndarray]  # family label -> positions of its members


def held_out(part: PartPlan, loaded: Loaded, sources: list, console: Console) -> HeldOut:
    """Family members, and materials an evaluate dataset also holds (same id or structure):
    both are kept out of every split and scored on their own."""
    excluded = np.zeros(len(loaded.materials), dtype=bool)
    families = {}
    for spec in part.spec.hold_out:
        where = np.asarray(_family_members(spec, loaded), dtype=int)
        families[spec.label] = where
        excluded[where] = True
        console.print(
            f"hold_out [bold]{escape(spec.label)}[/]: {where.size} materials of {escape(part.spec.label)} "
            "kept out of training and validation, scored on their own"
        )
    for source, el in sources:
        ids, hashes = {m.id for m in el.materials}, set(el.hashes)
        shared = np.asarray([m.id in ids or h in hashes for m, h in zip(loaded.materials, loaded.hashes)], dtype=bool)
        if shared.any():
            excluded |= shared
            console.print(
                f"evaluate dataset [bold]{escape(source.spec.label)}[/]: {int(shared.sum())} of its materials "
                f"are also in {escape(part.spec.label)} (same id or structure): kept out of its splits"
            )
    return HeldOut(excluded, families)


def _family_members(spec, loaded: Loaded) -> list[int]:
    """Cached by content: formulas and space groups of 36k crystals take a minute."""
    from harness.prepare import families

    tag = identity.digest([spec.criteria(), "families-v1"])
    return _cached_by_content(
        "families", tag, loaded, range(len(loaded.materials)), lambda: families.members(spec, loaded.materials)
    )


def _loaded(source: PartPlan | Source, known: Mapping[str, Loaded], console: Console) -> Loaded:
    """A dataset's materials: from the plan or an earlier call when it has them, else loaded."""
    return source.loaded or known.get(source.spec.label) or load(source.dataset, source.spec, console)


def _label_evaluation(task: Task, loaded: Loaded, dataset: str, console: Console) -> Labels:
    lab = label(task, loaded.materials)
    counts = ", ".join(f"{task.classes[k]} {c}" for k, c in sorted(Counter(lab.y.tolist()).items()))
    console.print(
        f"task [bold]{escape(task.title)}[/] on evaluate dataset {escape(dataset)}: {len(lab.y)} labelled "
        f"({escape(counts)})" + (f"; {lab.unlabelled} unlabelled" if lab.unlabelled else "") + skip_summary(lab.skipped)
    )
    if not lab.y.size:
        reads = tuple(getattr(task, "reads", ()) or ())
        raise UserError(
            f"task {task.title!r} finds no labelled material in evaluate dataset {dataset!r}"
            + (
                f" (it reads {', '.join(map(repr, reads))}); map that column under the dataset"
                if reads
                else "; use a dataset that carries this property"
            )
        )
    return lab


def _add_families(data: StudyInputs, families: dict[str, np.ndarray]) -> None:
    """A family's labelled, featurised members are already in the arrays (positions are
    the dataset's): point at them."""
    place = {int(p): i for i, p in enumerate(data.positions)}
    for name, where in families.items():
        data.evaluations[name] = np.asarray([place[int(p)] for p in where if int(p) in place], dtype=np.int64)


def _add_evaluation(data: StudyInputs, name: str, lab: Labels, fs: FeatureSet, loaded: Loaded) -> None:
    """Append an evaluate dataset's labelled, featurised materials; positions are its own."""
    kept = np.asarray([i for i in lab.index if fs.features[i] is not None], dtype=int)
    y = dict(zip(lab.index.tolist(), lab.y.tolist()))
    start = len(data.X)
    data.X = [*data.X, *(fs.features[i] for i in kept)]
    data.y = np.concatenate([data.y, np.asarray([y[i] for i in kept], dtype=data.y.dtype)])
    data.ids = [*data.ids, *(loaded.materials[i].id for i in kept)]
    data.positions = np.concatenate([data.positions, kept]).astype(np.int64)
    data.evaluations[name] = np.arange(start, start + kept.size, dtype=np.int64)


def _intact(path: Path) -> bool:
    """Present and matching its checksum (a damaged file is removed and rebuilt)."""
    return path.exists() and read_arrays(path) is not None


def _label_task(task: Task, loaded: Loaded, dataset: str, console: Console, source: Dataset | None = None) -> Labels:
    lab = label(task, loaded.materials)
    reads = tuple(getattr(task, "reads", ()) or ())
    unlabelled = (
        f"; {lab.unlabelled} unlabelled" + (f": no {', '.join(reads)}" if reads else "") if lab.unlabelled else ""
    )
    counts = ", ".join(f"{task.classes[k]} {c}" for k, c in sorted(Counter(lab.y.tolist()).items()))
    console.print(
        f"task [bold]{escape(task.title)}[/]: {len(lab.y)} labelled ({escape(counts)}){escape(unlabelled)}"
        + skip_summary(lab.skipped)
    )
    if not lab.y.size:
        fix = (
            f'map the column that holds it with columns = {{ {reads[0]} = "<your column>" }} under [dataset]'
            if reads
            else "use a dataset that carries this property"
        )
        fix = (source.missing_property_hint(reads) if source is not None and reads else None) or fix
        raise UserError(
            f"task {task.title!r} finds no labelled material in dataset {dataset!r}"
            + (f" (it reads {', '.join(map(repr, reads))})" if reads else "")
            + f"; {fix}"
        )
    if len(np.unique(lab.y)) < 2:
        only = task.classes[int(lab.y[0])]
        raise UserError(
            f"task {task.title!r} finds one class only ({only!r}, {lab.y.size} materials) in dataset "
            f"{dataset!r}; use another dataset or threshold"
        )
    return lab


def _splits(
    config: Config, part: PartPlan, loaded: Loaded, lab: Labels, task: Task, excluded: np.ndarray
) -> dict[int, Split]:
    """Per seed, positions into `lab` of train, valid and test: drawn over the labelled
    materials that are not held out, or read from the dataset's split column."""
    s, dataset = part.split, part.spec.label
    pool = np.flatnonzero(~excluded[lab.index]) if lab.index.size else np.zeros(0, dtype=int)
    y = lab.y[pool]
    column = part.spec.split_column
    if column:
        values = [loaded.materials[i].props.get(column) for i in lab.index[pool]]
        if all(v is None for v in values):
            some = sorted({k for m in loaded.materials[:50] for k in m.props})
            raise UserError(
                f"dataset {dataset!r}: no material carries the split column {column!r} (its properties: "
                f"{', '.join(some) or 'none'}); set split_column to one of them"
            )
    else:
        groups = _group_keys(loaded, lab.index, s.group_by)[pool]
    out = {}
    for seed in part.seeds:
        where = f"task {task.title!r} on {dataset!r}, seed {seed}"
        try:
            if column:
                split = column_split(
                    values,
                    part.spec.split_names(),
                    y,
                    seed,
                    (s.train, s.valid, s.test),
                    f"dataset {dataset!r}, split_column {column!r}",
                )
            else:
                split = stratified_split(y, seed, (s.train, s.valid, s.test), groups)
        except ValueError as exc:  # scikit-learn: too few materials for these fractions
            raise UserError(
                f"task {task.title!r} on {dataset!r}: {len(y)} labelled materials cannot be split "
                f"{s.train:g}/{s.valid:g}/{s.test:g} ({exc}); use a larger dataset or limit"
            ) from None
        check_classes(split, y, task.classes, where)
        out[seed] = Split(pool[split.train], pool[split.valid], pool[split.test])
    return out


def _symprecs(entries) -> set[float]:
    """The tolerances at which entries use the shared symmetry analysis: an entry with a
    positive `symprec` attribute declares one."""
    found = {getattr(e, "symprec", None) for e in entries}
    return {float(x) for x in found if isinstance(x, (int, float)) and x > 0}


def analyse_all(config: Config, loaded: Loaded, symprecs, console: Console) -> None:
    """`harness.analyse_symmetry` of every material at each symprec, with progress."""
    from harness.prepare.symmetry import analyse_symmetry, unknown

    for symprec in sorted(symprecs):
        if not unknown(loaded.hashes, symprec):
            continue
        with progress_bar(console) as bar:
            handle = bar.add_task(f"symmetry analysis (symprec {symprec:g})", total=len(loaded.materials))

            def advance(done: int, total: int, h: TaskID = handle) -> None:
                bar.update(h, completed=done)

            analyse_symmetry(
                [m.structure for m in loaded.materials],
                symprec,
                hashes=loaded.hashes,
                workers=cores(),  # every core: [run] workers counts studies, not preparation
                progress=advance,
            )


def featurize_all(
    config: Config, loaded: Loaded, reps: list[Representation], console: Console
) -> dict[str, FeatureSet]:
    features: dict[str, FeatureSet] = {}
    cache = FeatureCache(cache_dir())
    t_all = time.perf_counter()
    with progress_bar(console) as bar:
        for rep in reps:
            t0 = time.perf_counter()
            handle = bar.add_task(f"featurising {escape(rep.title)}", total=len(loaded.materials))

            def progress(done: int, total: int, h: TaskID = handle) -> None:
                bar.update(h, completed=done)

            fs = features[rep.title] = featurize(
                loaded.materials,
                rep,
                cache,
                workers=cores(),  # every core: [run] workers counts studies, not preparation
                progress=progress,
                hashes=loaded.hashes,
            )
            dt = time.perf_counter() - t0
            bar.console.print(
                f"  {escape(rep.title)}: {fs.n_ok} featurised in {dt:.1f} s "
                f"({len(loaded.materials) / max(dt, 1e-9):.0f} crystals/s)" + skip_summary(fs.skipped)
            )
    console.print(f"features ready in {time.perf_counter() - t_all:.1f} s (cache: {escape(str(cache.root))})")
    return features


def _inputs(lab: Labels, splits: dict[int, Split], fs: FeatureSet, loaded: Loaded) -> StudyInputs:
    """The task's labelled materials that have features; splits re-indexed onto them.

    Splits are drawn over all labelled materials, so every representation of a task and
    seed shares them; a material its representation could not featurise drops out."""
    has = np.array([fs.features[i] is not None for i in lab.index], dtype=bool)
    new_place = np.full(len(lab.index), -1)
    new_place[has] = np.arange(has.sum())
    kept = lab.index[has]
    remap = {seed: Split(*(new_place[p][has[p]] for p in (sp.train, sp.valid, sp.test))) for seed, sp in splits.items()}
    return StudyInputs(
        X=[fs.features[i] for i in kept],
        y=lab.y[has],
        ids=[loaded.materials[i].id for i in kept],
        positions=kept,
        columns=list(fs.columns),
        kind=fs.kind,
        splits=remap,
    )


def _group_keys(loaded: Loaded, index: np.ndarray, how: str) -> np.ndarray:
    """Split groups, cached by content: symmetry analysis of 36k crystals takes minutes."""
    chosen = [loaded.materials[i] for i in index]
    if how in ("none", "parent"):
        return np.asarray(grouping.group_keys(chosen, how))
    return np.asarray(
        _cached_by_content(
            "groups",
            f"{how}|{grouping.__name__}|v2",
            loaded,
            index,
            lambda: [str(k) for k in grouping.group_keys(chosen, how)],
        )
    )


def _cached_by_content(folder: str, tag: str, loaded: Loaded, index, compute: Callable[[], list]) -> list:
    """`compute()` for these materials, remembered in the cache under their ids and content."""
    h = hashlib.blake2b(tag.encode(), digest_size=16)
    for i in index:
        h.update(loaded.materials[i].id.encode())
        h.update(loaded.hashes[i])
    path = cache_dir() / folder / f"{h.hexdigest()}.npz"
    cached = read_json(path)
    if cached is None:
        cached = compute()
        write_json(path, cached)
    return cached

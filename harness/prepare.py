"""Prepare: load, label, featurise and split only what the pending studies need, and write
each (dataset, task, representation) as one inputs file that the studies read.

Labels come before features: a task that finds no labelled material, or one class only,
fails in seconds, before any featurisation.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np
from rich.console import Console
from rich.markup import escape

from harness import grouping, identity
from harness.api import Material, Representation, Skip, Task
from harness.cache import read_arrays, read_json, write_json
from harness.config import Config
from harness.errors import UserError
from harness.features import FeatureCache, FeatureSet, featurize
from harness.inputs import StudyInputs, write_inputs
from harness.paths import cache_dir
from harness.plan import Loaded, PartPlan, load
from harness.progress import progress_bar, skip_summary
from harness.splits import Split, check_classes, stratified_split
from harness.study import StudySpec


@dataclass
class Labels:
    index: np.ndarray  # positions of labelled materials
    y: np.ndarray
    skipped: Counter = field(default_factory=Counter)
    unlabelled: int = 0  # materials for which the task has no value


def label(task: Task, materials: list[Material]) -> Labels:
    index, y, skipped, unlabelled = [], [], Counter(), 0
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
    """Content-keyed: the same data, task, representation, split and seeds give the same file."""
    c = study.combination
    key = identity.digest({
        "dataset": part.content, "task": identity.entry_identity(c.task),
        "representation": {**identity.entry_identity(c.representation), "feature_code": identity.FEATURE_CODE_VERSION},
        "split": config.run.split.model_dump(), "seeds": sorted(config.run.seeds), "inputs": 1,
    })
    return str(cache_dir() / "inputs" / f"{key}.npz")


def prepare(config: Config, part: PartPlan, studies: list[StudySpec], console: Console) -> None:
    """Set `inputs` on each study, writing the files that are not in the cache yet."""
    needed: dict[str, tuple[Task, Representation]] = {}
    for s in studies:
        s.inputs = inputs_path(config, part, s)
        needed.setdefault(s.inputs, (s.combination.task, s.combination.representation))
    missing = {path: pair for path, pair in needed.items() if not _intact(Path(path))}
    if not missing:
        return
    loaded = part.loaded or load(part.dataset, part.spec, console)
    part.loaded = loaded
    tasks = {t.title: t for t, _ in missing.values()}
    labels = {title: _label_task(task, loaded, part.spec.label, console) for title, task in tasks.items()}
    splits = {title: _splits(config, loaded, labels[title], tasks[title], part.spec.label) for title in tasks}
    reps = {r.title: r for _, r in missing.values()}
    features = featurize_all(config, loaded, list(reps.values()), console)
    for path, (task, rep) in missing.items():
        write_inputs(Path(path), _inputs(labels[task.title], splits[task.title], features[rep.title], loaded))


def _intact(path: Path) -> bool:
    """Present and matching its checksum (a damaged file is removed and rebuilt)."""
    return path.exists() and read_arrays(path) is not None


def _label_task(task: Task, loaded: Loaded, dataset: str, console: Console) -> Labels:
    lab = label(task, loaded.materials)
    reads = tuple(getattr(task, "reads", ()) or ())
    unlabelled = f"; {lab.unlabelled} unlabelled" + (f": no {', '.join(reads)}" if reads else "") if lab.unlabelled else ""
    counts = ", ".join(f"{task.classes[k]} {c}" for k, c in sorted(Counter(lab.y.tolist()).items()))
    console.print(f"task [bold]{escape(task.title)}[/]: {len(lab.y)} labelled ({escape(counts)}){escape(unlabelled)}"
                  + skip_summary(lab.skipped))
    if not lab.y.size:
        fix = (f"map the column that holds it with columns = {{ {reads[0]} = \"<your column>\" }} under [dataset]"
               if reads else "use a dataset that carries this property")
        raise UserError(f"task {task.title!r} finds no labelled material in dataset {dataset!r}"
                        + (f" (it reads {', '.join(map(repr, reads))})" if reads else "") + f"; {fix}")
    if len(np.unique(lab.y)) < 2:
        only = task.classes[int(lab.y[0])]
        raise UserError(f"task {task.title!r} finds one class only ({only!r}, {lab.y.size} materials) in dataset "
                        f"{dataset!r}; use another dataset or threshold")
    return lab


def _splits(config: Config, loaded: Loaded, lab: Labels, task: Task, dataset: str) -> dict[int, Split]:
    s = config.run.split
    groups = _group_keys(loaded, lab.index, s.group_by)
    out = {}
    for seed in config.run.seeds:
        try:
            split = stratified_split(lab.y, seed, (s.train, s.valid, s.test), groups)
        except ValueError as exc:  # scikit-learn: too few materials for these fractions
            raise UserError(f"task {task.title!r} on {dataset!r}: {len(lab.y)} labelled materials cannot be split "
                            f"{s.train:g}/{s.valid:g}/{s.test:g} ({exc}); use a larger dataset or limit") from None
        check_classes(split, lab.y, task.classes, f"task {task.title!r} on {dataset!r}, seed {seed}")
        out[seed] = split
    return out


def featurize_all(config: Config, loaded: Loaded, reps: list[Representation], console: Console) -> dict[str, FeatureSet]:
    features: dict[str, FeatureSet] = {}
    cache = FeatureCache(cache_dir())
    t_all = time.perf_counter()
    with progress_bar(console) as bar:
        for rep in reps:
            t0 = time.perf_counter()
            handle = bar.add_task(f"featurising {escape(rep.title)}", total=len(loaded.materials))
            fs = features[rep.title] = featurize(
                loaded.materials, rep, cache, workers=config.run.workers,
                progress=lambda done, total, h=handle: bar.update(h, completed=done), hashes=loaded.hashes,
            )
            dt = time.perf_counter() - t0
            bar.console.print(f"  {escape(rep.title)}: {fs.n_ok} featurised in {dt:.1f} s "
                              f"({len(loaded.materials) / max(dt, 1e-9):.0f} crystals/s)" + skip_summary(fs.skipped))
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
        X=[fs.features[i] for i in kept], y=lab.y[has], ids=[loaded.materials[i].id for i in kept],
        positions=kept, columns=list(fs.columns), kind=fs.kind, splits=remap,
    )


def _group_keys(loaded: Loaded, index: np.ndarray, how: str) -> np.ndarray:
    """Split groups, cached by content: symmetry analysis of 36k crystals takes minutes."""
    materials = loaded.materials
    if how in ("none", "parent"):
        return np.asarray(grouping.group_keys([materials[i] for i in index], how))
    h = hashlib.blake2b(f"{how}|{grouping.__name__}|v2".encode(), digest_size=16)
    for i in index:
        h.update(loaded.hashes[i])
        h.update(materials[i].id.encode())
    path = cache_dir() / "groups" / f"{h.hexdigest()}.npz"
    cached = read_json(path)
    if cached is not None:
        return np.asarray(cached)
    keys = [str(k) for k in grouping.group_keys([materials[i] for i in index], how)]
    write_json(path, keys)
    return np.asarray(keys)


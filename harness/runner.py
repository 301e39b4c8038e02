"""`harness run`: the run protocol of DESIGN.md, from config to leaderboard."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness import grouping, leaderboard
from harness.api import Dataset, LoadContext, Material, Skip, Task
from harness.config import Config, DatasetSpec
from harness.errors import UserError
from harness.executors import LocalExecutor
from harness.features import FeatureCache, FeatureSet, featurize, material_hash
from harness.grid import Grid, expand
from harness.paths import cache_dir
from harness.registry import Registry
from harness.splits import Split, check_classes, stratified_split
from harness.store import ResultStore, UnitResult
from harness.study import Unit, UnitData


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def resolve_device(device: str) -> str:
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


def tracker(bar: Progress, default: str):
    """The `progress` callable a `LoadContext` lends to datasets: one bar per description."""
    handles: dict[str, int] = {}

    def track(iterable, total=None, description=""):
        name = description or default
        if name not in handles:
            handles[name] = bar.add_task(name, total=total)
        for item in iterable:
            yield item
            bar.advance(handles[name])

    return track


def load_dataset(dataset: Dataset, console: Console) -> tuple[list[Material], Counter]:
    with progress_bar(console) as bar:
        ctx = LoadContext(cache_dir(), progress=tracker(bar, f"loading {dataset.title}"))
        materials = list(dataset.load(ctx))
    ids = Counter(m.id for m in materials)
    dupes = [i for i, c in ids.items() if c > 1]
    if dupes:
        raise UserError(f"dataset {dataset.title!r} has duplicate ids (e.g. {dupes[0]!r}); fix the id column")
    return materials, ctx.skipped


@dataclass
class Labels:
    index: np.ndarray  # positions of labelled materials
    y: np.ndarray
    skipped: Counter = field(default_factory=Counter)


def label(task: Task, materials: list[Material]) -> Labels:
    index, y, skipped = [], [], Counter()
    for i, m in enumerate(materials):
        try:
            value = task.label(m)
        except Skip as exc:
            skipped[str(exc)] += 1
            continue
        if value is not None:
            index.append(i)
            y.append(int(value))
    return Labels(np.asarray(index, dtype=int), np.asarray(y, dtype=int), skipped)


def fingerprint(config: Config, part: DatasetSpec, unit_parts: dict, dataset_params: dict) -> str:
    blob = json.dumps(
        {
            "dataset": {"name": part.name, **dataset_params},
            "split": config.run.split.model_dump(),
            "trials": config.run.trials,
            "timeout": config.run.timeout,
            **unit_parts,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


@dataclass
class Prepared:
    """One dataset of a config, ready for training: features, labels, splits."""

    part: DatasetSpec
    grid: Grid
    materials: list[Material]
    features: dict[str, FeatureSet]
    labels: dict[str, Labels]
    splits: dict[tuple[str, int], Split]

    def unit_data(self, task_title: str, rep_title: str, seed: int) -> UnitData:
        lab = self.labels[task_title]
        return UnitData(self.features[rep_title], lab.index, lab.y,
                        [self.materials[i].id for i in lab.index], self.splits[(task_title, seed)])


def grids(config: Config, registry: Registry, only: list[str] | None = None) -> list[tuple[DatasetSpec, Grid]]:
    """The grid of each dataset of the config; an empty selection is a user error."""
    out = [(part, expand(config, registry, only, part)) for part in config.datasets]
    if not any(g.combinations for _, g in out):
        raise UserError(
            f"{config.source or 'config'}: no combination to run"
            + (f" matches --only {' '.join(only)}" if only else "")
            + "; check the names and --only patterns (`harness list`)"
        )
    return [(p, g) for p, g in out if g.combinations]


def load_part(config: Config, part: DatasetSpec, registry: Registry, console: Console) -> tuple[list[Material], list[bytes]]:
    """One dataset of the config, loaded, with the content hash of each structure."""
    dataset = registry.create("dataset", part.name, part.params, where=f"{config.source}: ")
    t0 = time.perf_counter()
    materials, load_skips = load_dataset(dataset, console)
    console.print(f"dataset [bold]{part.label}[/] = {dataset.title}: {len(materials)} materials "
                  f"in {time.perf_counter() - t0:.1f} s" + _skips(load_skips))
    if not materials:
        raise UserError(f"dataset {dataset.title!r} yielded no materials; check its path and parameters")
    return materials, [material_hash(m) for m in materials]


def featurize_grid(config: Config, grid: Grid, materials: list[Material], hashes: list[bytes],
                   console: Console) -> dict[str, FeatureSet]:
    """Every representation of the grid, from the cache or computed, with progress and speed."""
    features: dict[str, FeatureSet] = {}
    cache = FeatureCache(cache_dir())
    with progress_bar(console) as bar:
        for rep in grid.representations():
            t0 = time.perf_counter()
            handle = bar.add_task(f"featurising {rep.title}", total=len(materials))
            fs = features[rep.title] = featurize(
                materials, rep, cache, workers=config.run.workers,
                progress=lambda done, total, h=handle: bar.update(h, completed=done), hashes=hashes,
            )
            dt = time.perf_counter() - t0
            bar.console.print(f"  {rep.title}: {fs.n_ok} featurised in {dt:.1f} s "
                              f"({len(materials) / max(dt, 1e-9):.0f} crystals/s)" + _skips(fs.skipped))
    return features


def prepare(config: Config, part: DatasetSpec, grid: Grid, registry: Registry, console: Console) -> Prepared:
    materials, hashes = load_part(config, part, registry, console)
    t0 = time.perf_counter()
    features = featurize_grid(config, grid, materials, hashes, console)
    console.print(f"features ready in {time.perf_counter() - t0:.1f} s (cache: {cache_dir() / 'features'})")

    labels: dict[str, Labels] = {}
    splits: dict[tuple[str, int], Split] = {}
    tasks = {c.task.title: c.task for c in grid.combinations}
    for title, task in tasks.items():
        lab = labels[title] = label(task, materials)
        counts = ", ".join(f"{task.classes[k]} {c}" for k, c in sorted(Counter(lab.y.tolist()).items()))
        console.print(f"task [bold]{title}[/]: {len(lab.y)} labelled ({counts})" + _skips(lab.skipped))
        if len(np.unique(lab.y)) < 2:
            raise UserError(f"task {title!r} finds fewer than two classes in dataset {part.label!r}; "
                            "use another dataset or threshold")
        groups = _group_keys(materials, lab.index, hashes, config.run.split.group_by)
        s = config.run.split
        for seed in config.run.seeds:
            split = stratified_split(lab.y, seed, (s.train, s.valid, s.test), groups)
            check_classes(split, lab.y, task.classes, f"task {title!r} on {part.label!r}, seed {seed}")
            splits[(title, seed)] = split
    return Prepared(part, grid, materials, features, labels, splits)


def _group_keys(materials: list[Material], index: np.ndarray, hashes: list[bytes], how: str) -> np.ndarray:
    """Split groups, cached by content: symmetry analysis of 36k crystals takes minutes."""
    if how in ("none", "parent"):
        return np.asarray(grouping.group_keys([materials[i] for i in index], how))
    h = hashlib.blake2b(f"{how}|{grouping.__name__}|v1".encode(), digest_size=16)
    for i in index:
        h.update(hashes[i])
        h.update(materials[i].id.encode())
    path = cache_dir() / "groups" / f"{h.hexdigest()}.json"
    if path.exists():
        return np.asarray(json.loads(path.read_text()))
    keys = grouping.group_keys([materials[i] for i in index], how)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([str(k) for k in keys]))
    tmp.replace(path)
    return np.asarray([str(k) for k in keys])


def _skips(counter: Counter) -> str:
    if not counter:
        return ""
    total = sum(counter.values())
    top = "; ".join(f"{reason}: {n}" for reason, n in counter.most_common(3))
    more = f"; +{len(counter) - 3} other reasons" if len(counter) > 3 else ""
    return f" [yellow]({total} skipped: {top}{more})[/]"


def run(config: Config, registry: Registry, console: Console, only: list[str] | None = None) -> int:
    results_dir = config.results_dir()
    device = resolve_device(config.run.device)
    workers = 1 if device == "cuda" else config.run.workers
    console.rule(f"harness run {config.source}")
    console.print(f"device [bold]{device}[/] · {workers} worker(s) · seeds {config.run.seeds} · "
                  f"{config.run.trials} trials per study · results in {results_dir}")
    store = ResultStore(results_dir)
    threads = max(1, _cores() // workers)
    units: list[Unit] = []
    data: dict[str, UnitData] = {}
    fingerprints: set[str] = set()
    skipped: list[tuple[str, str]] = []
    total = 0
    for part, grid in grids(config, registry, only):
        prep = prepare(config, part, grid, registry, console)
        skipped += [(f"{part.label}:{cid}", why) for cid, why in grid.skipped]
        for combo in grid.combinations:
            fp = fingerprint(config, part, {
                "combination": combo.id,
                "representation": combo.representation.params(),
                "model": combo.model.params(),
                "transforms": [t.title for t in combo.transforms],
            }, grid.dataset_params)
            fingerprints.add(fp)
            for seed in config.run.seeds:
                total += 1
                unit = Unit(combo, seed, fp, config.run.trials, config.run.timeout, device, threads,
                            str(results_dir / "optuna.journal"), str(results_dir / "models"), part.label)
                if store.done(unit.id, fp):
                    continue
                if unit.data_key not in data:
                    data[unit.data_key] = prep.unit_data(combo.task.title, combo.representation.title, seed)
                units.append(unit)
    if skipped:
        reasons = Counter(why for _, why in skipped)
        console.print(f"[yellow]{len(skipped)} combinations skipped, kinds do not fit "
                      f"(listed in skipped.txt): " + "; ".join(f"{why} ({n})" for why, n in reasons.items()))
        (results_dir / "skipped.txt").write_text("".join(f"{cid}\t{why}\n" for cid, why in skipped))
    console.print(f"{total} studies ((combination, seed) pairs): {total - len(units)} already done, {len(units)} to run")
    failures = 0
    if units:
        executor = LocalExecutor(workers)
        with progress_bar(console) as bar:
            handle = bar.add_task("studies", total=len(units))
            for result in executor.map(units, lambda u: u.data_key, data):
                if isinstance(result, UnitResult):
                    store.add(result)
                    bar.console.print(f"  [green]done[/] {result.unit}: {result.metric} {result.value:.3f}")
                else:
                    failures += 1
                    if isinstance(result, UserError):
                        raise result
                    unit = getattr(result, "unit", None)
                    bar.console.print(f"  [red]failed[/] {unit.id if unit else '?'}: {type(result).__name__}: {result}")
                bar.advance(handle)
    board = leaderboard.build(store.all(fingerprints))
    leaderboard.render(board, console)
    leaderboard.write(board, results_dir)
    console.print(f"leaderboard written to {results_dir}/leaderboard.{{md,csv,json,png}}")
    if failures:
        console.print(f"[red]{failures} studies failed (see above); rerun to retry them")
        return 1
    return 0


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

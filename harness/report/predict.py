"""`harness predict`: stored models applied to new structures, in the layout of the
paper's Table II (material, true label, predicted label, confidence).

A study's result holds its identity (task, representation, perturbation, transforms and
model, each with name and parameters) and the store holds its fitted model as data. The
entries are rebuilt from the registry, the structures featurised as the run featurised
them, and the inputs perturbed as `harness.execute.study.samples` perturbs a test split: each
material's random draws are seeded by (study seed, perturbation, position), where a
material's *position* is its place among the inputs in the order given on the command
line, or its place in a dataset file as the dataset reads it. Predicting the file a study
was trained on therefore reproduces its stored test predictions exactly.

A study run with `store_models = "none"` keeps no model: given the run's config, `refit`
fits it again from its stored best parameters and seed on the same split (the run's own
inputs, prepared again if the cache lost them) and uses it only if it reproduces the
stored test predictions bit for bit.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.execute import persist, tuning
from harness.sdk.api import FitContext, LoadContext, Material, Skip
from harness.services.errors import UserError
from harness.services.content import material_hash
from harness.prepare.features import FeatureCache, featurize
from harness.plan.grid import Combination, task_metrics
from harness.services.paths import cache_dir
from harness.services.progress import progress_bar, skip_summary, tracker
from harness.services.records import COMBINATION_AXES
from harness.services.registry import Registry
from harness.services.store import Store, UnitResult
from harness.execute.study import perturb

# Inputs read through the `file` dataset rather than as one structure each.


@dataclass
class Inputs:
    """Materials to predict and their positions (what seeds their perturbations)."""

    materials: list[Material]
    skipped: Counter


@dataclass
class Predicted:
    result: UnitResult
    classes: tuple[str, ...]
    rows: list[dict[str, Any]]  # material, true, predicted, confidence, proba
    skipped: Counter  # reason -> count: materials that could not be read or featurised


def select(store: Store, only: Sequence[str] | None, seed: int | None) -> list[UnitResult]:
    """Current results whose combination id (task/representation/perturbation/model) or
    unit matches a glob, of the seed asked for."""
    results = list(store.results())
    if not results:
        raise UserError("the results store holds no finished study; run a benchmark first")

    def combo_id(r: UnitResult) -> str:
        return r.combination_id

    chosen = [
        r
        for r in results
        if (not only or any(fnmatch.fnmatchcase(combo_id(r), p) or fnmatch.fnmatchcase(r.unit, p) for p in only))
        and (seed is None or r.seed == seed)
    ]
    if not chosen:
        known = sorted({combo_id(r) for r in results})
        raise UserError(
            f"no stored study matches --only {' '.join(only or ['*'])}"
            + (f" --seed {seed}" if seed is not None else "")
            + f"; stored combinations: {', '.join(known[:5])}{' ...' if len(known) > 5 else ''}"
        )
    return sorted(chosen, key=lambda r: (r.unit, r.seed))


def rebuild(registry: Registry, result: UnitResult) -> Combination:
    """The study's entries, from the names and parameters its identity holds."""
    ident = result.identity
    if not ident:
        raise UserError(f"result {result.unit} stores no identity (written by an older harness); rerun it")
    where = f"stored study {result.unit}: "

    def entry(kind: str, spec: dict[str, Any]):
        made = registry.create(kind, spec["name"], spec.get("params", {}), where=where)
        version = str(getattr(made, "version", "1"))
        if version != str(spec.get("version", "1")):
            raise UserError(
                f"{where}{kind} {spec['name']!r} is version {version} here but the model was trained "
                f"with version {spec.get('version')}; install the version it was trained with, or rerun"
            )
        return made

    made = {axis: entry(axis, ident[axis]) for axis in COMBINATION_AXES}
    return Combination(
        **made,
        transforms=tuple(entry("perturbation", t) for t in ident.get("transforms", [])),
        metrics=task_metrics(registry, made["task"], where),
    )


def read_structures(
    paths: Sequence[str],
    registry: Registry,
    console: Console,
    dataset: str | None = None,
    params: dict[str, Any] | None = None,
) -> Inputs:
    """Structure files (one material each, id = the path as given), or one dataset: a
    dataset file read by the dataset that declares its suffix (`Dataset.reads_paths`), or any
    registered dataset by `--dataset`."""
    reader = _dataset_for(paths[0], registry) if len(paths) == 1 and not dataset else None
    if dataset or reader:
        name = dataset or str(reader)
        args = dict(params or {})
        if not dataset:
            args["path"] = paths[0]
        elif paths:
            raise UserError("give structure files or --dataset, not both")
        made = registry.create("dataset", name, args, where="predict: ")
        with progress_bar(console) as bar:
            ctx = LoadContext(cache_dir(), progress=tracker(bar, f"loading {made.title}"))
            materials = list(made.load(ctx))
        if not materials:
            raise UserError(f"dataset {made.title!r} yielded no materials; check its path and parameters")
        return Inputs(materials, Counter(ctx.skipped))
    if not paths:
        raise UserError("predict needs structure files (CIF, POSCAR, ...), a dataset file, or --dataset NAME")
    if any(_dataset_for(p, registry) for p in paths):
        raise UserError("give one dataset file at a time, and no structure files beside it")
    from pymatgen.core import Structure

    materials = []
    for p in paths:
        try:
            structure = Structure.from_file(p)
        except Exception as exc:  # noqa: BLE001 - any parser failure is the file's fault
            raise UserError(f"cannot read structure {p}: {exc}; give a CIF or POSCAR file") from None
        materials.append(Material(p, structure, {}))
    return Inputs(materials, Counter())


def _dataset_for(path: str, registry: Registry) -> str | None:
    """The dataset that declares it reads files like `path` (`Dataset.reads_paths`); None
    for a structure file (or anything no dataset claims)."""
    p = Path(path)
    suffixes = [s.lower() for s in p.suffixes if s.lower() not in (".gz", ".gzip")]
    wanted = "/" if p.is_dir() else (suffixes[-1] if suffixes else "")
    if not wanted:
        return None
    claims = sorted(n for n in registry.names("dataset") if wanted in registry.get("dataset", n).cls.reads_paths)
    return claims[0] if claims else None


def predict(
    store: Store,
    registry: Registry,
    result: UnitResult,
    inputs: Inputs,
    refit_from: Any = None,
    console: Console | None = None,
) -> Predicted:
    """The stored model of `result` on every material of `inputs` it can featurise; with no
    stored model and `refit_from` (the run's Config), the model refitted by `refit`."""
    stored = store.model(result.key)
    combo = rebuild(registry, result)
    if stored is not None:
        model = persist.restore(registry, stored, what=f"stored model of study {result.unit}")
    elif refit_from is not None:
        model = refit(store, registry, result, refit_from, console or Console(stderr=True))
    else:
        raise UserError(
            f'study {result.unit} has no stored model (run with store_models = "none", or its model '
            "cannot save itself); give the run's config (--config CONFIG) to refit it, or rerun with "
            'store_models = "all" and a new results folder'
        )
    task, rep = combo.task, combo.representation
    materials = inputs.materials
    fs = featurize(materials, rep, FeatureCache(cache_dir()), workers=1, hashes=[material_hash(m) for m in materials])
    kept = np.asarray([i for i, x in enumerate(fs.features) if x is not None], dtype=int)
    # As the run's inputs file stores them: float32, then perturbed like a test split.
    xs = [np.asarray(fs.features[i], dtype=np.float32) for i in kept]
    perts = [p for p in (*combo.transforms, combo.perturbation) if not p.training_only]
    xs = perturb(xs, kept, perts, result.seed, list(fs.columns))
    X: Any = np.stack(xs) if rep.kind == "vector" and xs else xs
    n_classes = len(task.classes)
    try:
        proba = tuning.class_probabilities(model, X, n_classes) if len(kept) else np.zeros((0, n_classes))
    except tuning.BadProbabilities as exc:
        raise UserError(f"stored model of study {result.unit}: {exc}; nothing is predicted from it") from None
    rows = []
    for i, p in zip(kept, proba):
        truth = _true_label(task, materials[i])
        k = int(np.argmax(p))
        rows.append(
            {
                "material": materials[i].id,
                "true": None if truth is None else task.classes[truth],
                "predicted": task.classes[k],
                "confidence": float(p[k]),
                "proba": [float(v) for v in p],
            }
        )
    skipped = Counter(inputs.skipped)  # unreadable in the input, then not featurisable
    skipped.update(fs.skipped)
    return Predicted(result, tuple(task.classes), rows, skipped)


def refit(store: Store, registry: Registry, result: UnitResult, config: Any, console: Console) -> Any:
    """The study's model fitted again as the study refitted its best trial: its stored
    parameters and seed, on its split of the run's inputs. Refused (one line) unless its
    test predictions equal the stored ones exactly."""
    from harness.prepare import fractions
    from harness.prepare.inputs import read_inputs
    from harness.plan.plan import make_plan
    from harness.prepare.prepare import prepare
    from harness.services.workers import cores
    from harness.execute.study import samples

    plan = make_plan(config, registry, store, console)
    found = [(part, s) for part in plan.parts for s in part.studies if s.key == result.key]
    if not found:
        raise UserError(
            f"study {result.unit} is not a study of {config.source} (its key {result.key[:12]} is not in "
            "the config's plan); give the config the results were run with"
        )
    part, spec = found[0]
    (spec,) = prepare(config, part, [spec], console).studies
    combo, n_classes = spec.combination, len(spec.combination.task.classes)
    data = read_inputs(spec.inputs)
    split = fractions.nested_split(data.splits[spec.seed], data.y, spec.train_fraction, spec.seed)
    train = samples(combo, spec.seed, data, split.train, training=True)
    valid = samples(combo, spec.seed, data, split.valid, training=False)
    test = samples(combo, spec.seed, data, split.test, training=False)
    model = tuning.build(combo.model, result.params if combo.model.tune else {})
    score = combo.metrics[0].objective
    console.print(
        f"refitting {escape(result.unit)} (no stored model) from its parameters {result.params} "
        f"and seed {spec.seed} on {len(train)} training materials"
    )
    model.fit(train, valid, FitContext("cpu", spec.seed, n_classes, score, lambda step, value: None, cores()))
    proba = tuning.class_probabilities(model, test.X, n_classes)
    stored = np.asarray((result.predictions or {}).get("proba", []), dtype=float)
    same_ids = list(test.ids) == list((result.predictions or {}).get("ids", []))
    if not same_ids or stored.shape != proba.shape or not np.array_equal(stored, proba):
        diff = float(np.max(np.abs(stored - proba))) if same_ids and stored.shape == proba.shape else float("nan")
        raise UserError(
            f"study {result.unit}: the refitted model does not reproduce the stored test predictions "
            + ("(other test materials)" if not same_ids else f"(largest difference {diff:.3g})")
            + "; its model is not bit-deterministic here (library version, device): rerun the study "
            'with store_models = "all"'
        )
    return model


def _true_label(task, material: Material) -> int | None:
    """The task's label when the input carries what it reads (a CIF has no band gap)."""
    try:
        value = task.label(material)
    except (Skip, KeyError, TypeError, ValueError):
        return None
    return None if value is None else int(value)


# ----------------------------------------------------------------- output


def render(found: list[Predicted], console: Console) -> None:
    for p in found:
        r = p.result
        table = Table(title=f"{r.unit} (test {r.metric} {r.value:.3f})", title_justify="left")
        for col in ("material", "true label", "predicted label", "confidence"):
            table.add_column(col, justify="right" if col == "confidence" else "left")
        for row in p.rows:
            style = None if row["true"] is None else ("green" if row["true"] == row["predicted"] else "red")
            table.add_row(
                escape(row["material"]),
                escape(row["true"] or "—"),
                escape(row["predicted"]),
                f"{row['confidence']:.3f}",
                style=style,
            )
        console.print(table)
        if p.skipped:
            console.print(f"[yellow]{sum(p.skipped.values())} materials not predicted[/]{skip_summary(p.skipped)}")


def to_csv(found: list[Predicted]) -> str:
    buf = io.StringIO()
    classes = list(dict.fromkeys(c for p in found for c in p.classes))
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["study", "seed", "material", "true", "predicted", "confidence", *(f"p_{c}" for c in classes)])
    for p in found:
        for row in p.rows:
            probs = dict(zip(p.classes, row["proba"]))
            writer.writerow(
                [
                    p.result.unit,
                    p.result.seed,
                    row["material"],
                    row["true"] or "",
                    row["predicted"],
                    repr(row["confidence"]),
                    *(repr(probs[c]) if c in probs else "" for c in classes),
                ]
            )
    return buf.getvalue()


def to_json(found: list[Predicted]) -> str:
    return json.dumps(
        [
            {
                "study": p.result.unit,
                "key": p.result.key,
                "seed": p.result.seed,
                "classes": list(p.classes),
                "skipped": p.skipped,
                "materials": p.rows,
            }
            for p in found
        ],
        indent=2,
    )

"""harness from Python: run a benchmark, read its results as pandas tables, apply its models.

    import harness
    res = harness.run("benchmarks.toml", trials=2, seeds=[0])   # the CLI's run, same store
    res.leaderboard()                                          # a DataFrame, best first
    res.model("crystal_system/barcode*/none/random_forest", seed=0).predict(structures)

`harness.run` goes through the command line's own run path (`harness.cli.run_config`):
the same validation, progress bars and results store. `open_results` reads any results
folder or database URL a run wrote, whichever machine wrote it.
"""

from __future__ import annotations

import os
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.services.errors import UserError
from harness.services.records import AXES, COMBINATION_AXES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from harness.services.registry import Registry
    from harness.services.records import UnitResult
    from harness.services.store import Store


def run(
    config: str | os.PathLike[str] | Mapping[str, Any],
    *,
    only: Sequence[str] | None = None,
    plugins: Sequence[str] = (),
    quiet: bool = False,
    **overrides: Any,
) -> Results:
    """Run a benchmark as `harness run` does and return its results.

    `config`: a path to a TOML file, a TOML string, or the same settings as a dict.
    `overrides`: `[run]` settings, validated as the TOML's (`trials=2`, `seeds=[0]`,
    `workers=1`, `results="out"`, `storage=...`, `device=...`, `executor=...`).
    `only`: combination globs as `--only`; `plugins`: plugin modules as `--plugin`.
    A user error (bad config, unknown name) raises `harness.UserError`; studies that fail
    are reported and the finished ones returned (`Results.failed` is then True)."""
    from rich.console import Console

    from harness import session
    from harness.services import config as cfg

    session.prepare_process()
    conf = _config(config)
    if overrides.get("results") is not None:
        overrides["results"] = str(Path(overrides["results"]).resolve())
    cfg.override_run(conf, **overrides)
    if conf.plugins:
        session.add_config_dir_to_path(conf.source or str(Path.cwd() / "config.toml"))
    console = Console(quiet=quiet)
    if console.is_jupyter:  # a notebook shows the output itself
        code = session.run_config(conf, list(plugins), console, only=list(only) if only else None)
    else:
        with session.run_log(conf, console, label="harness.run (Python)") as logged:
            code = session.run_config(conf, list(plugins), logged, only=list(only) if only else None)
    from harness.runner import open_store

    results = Results(open_store(conf).url, conf.results_dir(), plugins=[*plugins, *conf.plugins])
    results.failed = code != 0
    return results


def open_results(path_or_url: str | os.PathLike[str], *, plugins: Sequence[str] = ()) -> Results:
    """The results of earlier runs: a results folder (its results.sqlite) or a database URL
    (`postgresql://...`, `sqlite:///...`). `plugins`: the modules the studies' entries come
    from, when not installed (needed by `model` and for class names)."""
    from harness.services.store import location_of

    text = os.fspath(path_or_url)
    if "://" in text:
        return Results(text, None, plugins=plugins)
    folder = Path(text)
    if folder.is_file() and folder.suffix in (".sqlite", ".db"):
        return Results(f"sqlite:///{folder.resolve()}", folder.resolve().parent, plugins=plugins)
    if not (folder / "results.sqlite").is_file():
        raise UserError(
            f"no results in {folder} (no results.sqlite); give the results folder of a run or a database URL"
        )
    return Results(location_of(None, folder.resolve()), folder.resolve(), plugins=plugins)


def _config(config: Any):
    """A validated `Config` from a path, a TOML string or a dict."""
    from harness.services import config as cfg

    if isinstance(config, Mapping):
        return cfg.parse(dict(config))
    if isinstance(config, os.PathLike):
        return cfg.load(config)
    if not isinstance(config, str):
        raise UserError(f"harness.run(config): give a path, a TOML string or a dict, not {type(config).__name__}")
    if "\n" not in config and (config.endswith(".toml") or Path(config).is_file()):
        return cfg.load(config)
    try:
        data = tomllib.loads(config)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"harness.run(config): neither a file nor valid TOML ({exc})") from None
    return cfg.parse(data)


class Results:
    """The studies of a results store, as pandas tables. Cheap to make: reads on demand."""

    def __init__(self, url: str, folder: Path | None = None, plugins: Sequence[str] = ()):
        from harness.services.store import Store

        self.url = url
        self.folder = folder
        self.plugins = list(dict.fromkeys(plugins))
        self.failed = False
        self._store: Store = Store(url)
        self._registry: Registry | None = None

    # ------------------------------------------------------------------ tables
    def results(self, superseded: bool = False) -> list[UnitResult]:
        """Every finished study as the store holds it (`harness.services.store.UnitResult`)."""
        return list(self._store.results(include_superseded=superseded))

    def leaderboard(self, task: str | None = None, metric: str | None = None, superseded: bool = False) -> pd.DataFrame:
        """The leaderboard `harness leaderboard --format json` prints, as a DataFrame: one row
        per (dataset, task, representation, perturbation, model), best first within a task.

        `task`: only that task's rows. `metric`: rows scored with it (their task's metric
        or an extra one), ordered best first by it (`<metric>_mean` for an extra one)."""
        import pandas as pd

        from harness.report import leaderboard as lb

        rows = [lb.public(r) for r in lb.build(self.results(superseded))]
        if task is not None:
            known = sorted({r["task"] for r in rows})
            rows = [r for r in rows if r["task"] == task]
            if not rows:
                raise UserError(f"no results for task {task!r}; tasks in the store: {', '.join(known) or 'none'}")
        frame = pd.DataFrame(rows)
        if metric is not None and not frame.empty:
            primary = frame["metric"] == metric
            extra = f"{metric}_mean"
            if extra in frame.columns:
                frame = frame[primary | frame[extra].notna()].copy()
                frame["_by"] = frame[extra].where(~primary, frame["mean"])
            else:
                frame = frame[primary].copy()
                frame["_by"] = frame["mean"]
            if frame.empty:
                raise UserError(f"no results scored with metric {metric!r}")
            sign = lb._direction(metric)
            frame = frame.sort_values(["dataset", "task", "_by"], ascending=[True, True, sign < 0], kind="stable")
            frame = frame.drop(columns="_by")
        return frame.reset_index(drop=True)

    def studies(self, superseded: bool = False) -> pd.DataFrame:
        """One row per finished study: its identity columns, test and validation scores,
        sizes, chosen hyperparameters (`param_<name>`) and key."""
        import pandas as pd

        rows = []
        for r in self.results(superseded):
            row = {
                k: getattr(r, k)
                for k in (
                    "key",
                    "unit",
                    *AXES,
                    "seed",
                    "metric",
                    "value",
                    "valid_value",
                    "n_train",
                    "n_valid",
                    "n_test",
                    "n_trials",
                    "fit_seconds",
                    "device",
                    "finished",
                    "superseded",
                )
            }
            row["combination"] = combination_id(r)
            row.update({f"{k}": v for k, v in r.extra.items()})
            row.update({f"param_{k}": v for k, v in r.params.items()})
            rows.append(row)
        return pd.DataFrame(rows)

    def predictions(
        self, task: str | None = None, combination: str | None = None, seed: int | None = None, evaluations: bool = True
    ) -> pd.DataFrame:
        """Stored test predictions, one row per (study, material): the true and predicted
        class, the confidence and one probability column `p_<class>` per class. `set` is
        "test", or the name of an extra test set (held-out family, evaluate dataset)."""
        import numpy as np
        import pandas as pd

        rows = []
        for r in self._select(combination, seed, task, required=False):
            classes = self._classes(r)
            sets = [("test", r.predictions)] if r.predictions else []
            if evaluations:
                sets += [(name, ev.get("predictions")) for name, ev in sorted(r.evaluations.items())]
            for name, pred in sets:
                if not pred:
                    continue
                proba = np.asarray(pred["proba"], dtype=float).reshape(len(pred["ids"]), -1)
                for mid, y, p in zip(pred["ids"], pred["y"], proba):
                    k = int(np.argmax(p)) if len(p) else -1
                    row = {
                        "study": r.unit,
                        "key": r.key,
                        "dataset": r.dataset,
                        "task": r.task,
                        "combination": combination_id(r),
                        "seed": r.seed,
                        "set": name,
                        "material": mid,
                        "true": _name(classes, int(y)),
                        "predicted": _name(classes, k),
                        "confidence": float(p[k]) if k >= 0 else float("nan"),
                    }
                    row.update({f"p_{_name(classes, j)}": float(v) for j, v in enumerate(p)})
                    rows.append(row)
        return pd.DataFrame(rows)

    def provenance(self) -> dict[str, Any] | None:
        """What the last run into this folder recorded: harness version, commit, config hash,
        dataset content ids, time (`leaderboard.provenance.json`); None without one."""
        import json

        from harness.report.provenance import FILE

        path = self.folder / FILE if self.folder else None
        return json.loads(path.read_text()) if path and path.is_file() else None

    # ------------------------------------------------------------------ models
    def model(self, combination: str, seed: int | None = None) -> FittedModel:
        """The fitted model of one study: `combination` is its id task/representation/
        perturbation/model (a glob is fine when it names one study), `seed` the seed."""
        (result,) = self._select(combination, seed, None, required=True, one=True)
        return FittedModel(self, result)

    def _select(
        self, combination: str | None, seed: int | None, task: str | None, required: bool, one: bool = False
    ) -> list[UnitResult]:
        from harness.report import predict

        if not required and combination is None and seed is None:
            chosen = self.results()
        else:
            chosen = predict.select(self._store, [combination] if combination else None, seed)
        if task is not None:
            chosen = [r for r in chosen if r.task == task]
        if one and len(chosen) != 1:
            names = ", ".join(f"{r.unit}" for r in chosen[:6])
            hint = "give seed=" if len({r.seed for r in chosen}) > 1 else "narrow the combination"
            raise UserError(
                f"{combination!r}{'' if seed is None else f' seed {seed}'} matches {len(chosen)} studies "
                f"({names}{' ...' if len(chosen) > 6 else ''}); {hint}"
            )
        return chosen

    def registry(self) -> Registry:
        """The plugins the studies were made with (installed ones, plus `plugins`)."""
        if self._registry is None:
            from harness import session
            from harness.services import registry

            self._registry = registry.load(session.plugin_modules(self.plugins))
        return self._registry

    def _classes(self, r: UnitResult) -> tuple[str, ...] | None:
        spec = r.identity.get("task") if r.identity else None
        if not spec:
            return None
        try:
            task = self.registry().create("task", spec["name"], spec.get("params", {}))
            return tuple(task.classes)
        except Exception:  # noqa: BLE001 - the task's plugin is not loaded: class numbers instead
            return None

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        n = len(self.results())
        where = self.folder or self.url
        return f"<harness.Results: {n} finished studies in {where}>"

    def _repr_html_(self) -> str:
        """Jupyter shows the leaderboard table."""
        from html import escape

        board = self.leaderboard()
        head = (
            f"<p><b>harness results</b> in <code>{escape(str(self.folder or self.url))}</code>: "
            f"{len(self.results())} finished studies</p>"
        )
        if board.empty:
            return head + "<p>no results yet</p>"
        cols = [
            c
            for c in (*AXES, "metric", "mean", "std", "ci_low", "ci_high", "vs_best", "n_seeds", "n_test")
            if c in board.columns
        ]
        return head + board[cols].to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="")


class FittedModel:
    """A study's fitted model with the representation and perturbations it was trained with:
    `predict` featurises structures as the run did."""

    def __init__(self, results: Results, result: UnitResult):
        self.results = results
        self.result = result
        self.study = result.unit
        self.seed = result.seed

    def __repr__(self) -> str:
        return f"<harness.FittedModel {self.study} (test {self.result.metric} {self.result.value:.3f})>"

    def predict(self, structures: Iterable[Any] | Mapping[str, Any] | str | os.PathLike[str]) -> pd.DataFrame:
        """Labels and probabilities for `structures`: pymatgen Structures (ids 0, 1, ...),
        a mapping id -> Structure, `harness.Material`s, structure file paths, or one dataset
        file. One row per material it could featurise: material, true (when the input
        carries the task's property), predicted, confidence, p_<class>."""
        import pandas as pd

        from harness.report import predict

        registry = self.results.registry()
        require_plugins(registry, [self.result])
        inputs = self._inputs(structures, registry)
        found = predict.predict(self.results._store, registry, self.result, inputs)
        rows = []
        for row in found.rows:
            out = {k: row[k] for k in ("material", "true", "predicted", "confidence")}
            out.update({f"p_{c}": v for c, v in zip(found.classes, row["proba"])})
            rows.append(out)
        frame = pd.DataFrame(
            rows, columns=["material", "true", "predicted", "confidence", *(f"p_{c}" for c in found.classes)]
        )
        frame.attrs["skipped"] = dict(found.skipped)  # materials that could not be featurised
        return frame

    def _inputs(self, structures: Any, registry: Registry):
        from rich.console import Console

        from harness.report import predict
        from harness.sdk.api import Material

        if isinstance(structures, (str, os.PathLike)):
            structures = [structures]
        if isinstance(structures, Mapping):
            items = list(structures.items())
        else:
            items = list(enumerate(structures))
        if items and all(isinstance(s, (str, os.PathLike)) for _, s in items):
            return predict.read_structures([os.fspath(s) for _, s in items], registry, Console(quiet=True))
        materials = []
        for key, s in items:
            if isinstance(s, Material):
                materials.append(s)
            elif hasattr(s, "lattice") and hasattr(s, "species"):
                materials.append(Material(str(key), s, {}))
            else:
                raise UserError(
                    f"predict: item {key!r} is a {type(s).__name__}; give pymatgen Structures, "
                    "harness.Material objects or structure file paths"
                )
        if not materials:
            raise UserError("predict: no structures given")
        return predict.Inputs(materials, Counter())


def require_plugins(registry: Registry, results: Iterable[UnitResult]) -> None:
    """A stored study whose entries no loaded plugin offers: say that a plugin is missing
    (not "unknown ...", which reads as a typo) and how to load it."""
    for r in results:
        ident = r.identity or {}
        specs = [(kind, ident.get(kind)) for kind in COMBINATION_AXES]
        specs += [("perturbation", t) for t in ident.get("transforms", [])]
        for kind, spec in specs:
            if spec and spec.get("name") not in registry.entries.get(kind, {}):
                raise UserError(
                    f"stored study {r.unit} was made with {kind} {spec['name']!r}, whose plugin is not loaded; "
                    "load it with --plugin MODULE (harness.open_results(..., plugins=[...]) in Python) "
                    "or install its package"
                )


def combination_id(r: UnitResult) -> str:
    return r.combination_id


def _name(classes: tuple[str, ...] | None, k: int) -> Any:
    if k < 0:
        return None
    return classes[k] if classes and k < len(classes) else k

"""The `harness` command line. User errors: one line on stderr, exit code 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console

from harness.services.errors import UserError
from harness.session import (
    add_config_dir_to_path,
    plugin_modules,
    prepare_process,
    route_logging,
    run_config,
    run_log,
    version,
)

KIND_ALIASES = {
    "datasets": "dataset",
    "tasks": "task",
    "representations": "representation",
    "perturbations": "perturbation",
    "models": "model",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description="Benchmark structure-only crystal property classifiers.")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE", help="load a plugin module (repeatable)")
    p.add_argument("--version", action="version", version=f"harness {version()}")
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="run, fetch, featurize: print only errors (the run log keeps everything)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also print debug messages of harness and its plugins")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run a benchmark config")
    r.add_argument("config", nargs="?", help="the benchmark's TOML file (or --demo)")
    r.add_argument(
        "--demo", action="store_true", help="run the demo benchmark shipped with harness (no config file needed)"
    )
    r.add_argument("--trials", type=int, help="Optuna trials per (combination, seed)")
    r.add_argument(
        "--only",
        action="append",
        metavar="GLOB",
        help="run combinations whose id task/representation/perturbation/model matches",
    )
    r.add_argument("--results", help="results folder")
    r.add_argument("--device", choices=["auto", "cpu", "cuda"])
    r.add_argument("--workers", type=int, help="studies in parallel")
    r.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], help="comma-separated seeds")
    r.add_argument("--storage", help="results database URL shared by many runs (default: SQLite in the results folder)")
    r.add_argument(
        "--executor", help="where studies run: local (default, a process pool), ray, or one a plugin registers"
    )
    r.add_argument("--address", help="Ray cluster address for --executor ray: auto, host:6379 or ray://host:10001")
    r.add_argument("--plugin", action="append", default=[], metavar="MODULE", dest="plugins_sub")

    ls = sub.add_parser("list", help="list registered entries")
    ls.add_argument("kind", nargs="?", choices=sorted([*KIND_ALIASES, *KIND_ALIASES.values()]))
    ls.add_argument("--plugin", action="append", default=[], metavar="MODULE", dest="plugins_sub")

    lb = sub.add_parser("leaderboard", help="show the leaderboard of a results folder")
    lb.add_argument("results", nargs="?", help="results folder of a run")
    lb.add_argument("--storage", help="results database URL (instead of a results folder)")
    lb.add_argument("--superseded", action="store_true", help="also list results of older settings or code")
    lb.add_argument("--format", choices=["table", "markdown", "csv", "json"], default="table")
    lb.add_argument(
        "--metric", help="rank by this metric, computed from the stored predictions (e.g. balanced_accuracy, mcc)"
    )
    lb.add_argument(
        "--per-class", action="store_true", help="per-class recall and head/torso/tail (tasks with >10 classes)"
    )

    cp = sub.add_parser("compare", help="compare two leaderboard rows, paired per seed")
    cp.add_argument("results", help="results folder of a run")
    cp.add_argument(
        "row_a", metavar="ROW_A", help="[dataset:]task/representation/perturbation/model (wildcards allowed)"
    )
    cp.add_argument("row_b", metavar="ROW_B")
    cp.add_argument("--storage", help="results database URL (instead of a results folder)")
    cp.add_argument("--metric", help="compare by this metric, computed from the stored predictions")
    cp.add_argument("--format", choices=["table", "markdown", "csv", "json"], default="table")

    rp = sub.add_parser(
        "report", help="write an HTML report (figures, leaderboards with intervals) of a results folder"
    )
    rp.add_argument("results")
    rp.add_argument("--out", help="HTML file to write (default RESULTS/report/index.html; PNGs beside it)")
    rp.add_argument("--storage", help="results database URL (the results folder then only receives the report)")
    rp.add_argument("--plugin", action="append", default=[], metavar="MODULE", dest="plugins_sub")

    pr = sub.add_parser("predict", help="apply stored models to new structures or a dataset file (Table II layout)")
    pr.add_argument("results", help="results folder of a run")
    pr.add_argument(
        "structures",
        nargs="*",
        help="CIF/POSCAR files, or one dataset file (a table or folder a dataset declares it reads)",
    )
    pr.add_argument(
        "--only", action="append", metavar="GLOB", help="studies whose task/representation/perturbation/model matches"
    )
    pr.add_argument("--seed", type=int, help="the seed's study only (default: every seed)")
    pr.add_argument("--dataset", help="predict every material of a registered dataset instead (e.g. demo)")
    pr.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="parameter of the dataset (e.g. columns mapping of a dataset file)",
    )
    pr.add_argument("--format", choices=["table", "csv", "json"], default="table")
    pr.add_argument("--storage", help="results database URL (instead of a results folder)")
    pr.add_argument("--config", help='the run\'s config: refits studies stored without a model (store_models = "none")')
    pr.add_argument("--plugin", action="append", default=[], metavar="MODULE", dest="plugins_sub")

    f = sub.add_parser(
        "featurize", help="show what a model sees for one structure, or fill the feature cache for a config"
    )
    f.add_argument("structure", nargs="?", help="a structure file (CIF, POSCAR, ...)")
    f.add_argument("--representation", "-r")
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="representation parameter")
    f.add_argument("--format", choices=["table", "json"], default="table")
    f.add_argument("--config", help="fill the feature cache for this config's dataset and representations")
    f.add_argument("--only", action="append", metavar="GLOB")
    f.add_argument("--plugin", action="append", default=[], metavar="MODULE", dest="plugins_sub")

    e = sub.add_parser("explain", help="critical points of a trained model on test materials (paper Sec. III D)")
    e.add_argument("config")
    e.add_argument("unit", help="a combination id or glob, e.g. 'TASK/*/PERTURBATION/MODEL'")
    e.add_argument("--seed", type=int, help="which seed's model (default: the config's first)")
    e.add_argument("--material", action="append", metavar="ID", help="test material(s) to explain")
    e.add_argument("--limit", type=int, default=5, help="how many test materials when none are named")
    e.add_argument("--results", help="results folder of the run")
    e.add_argument("--storage", help="results database URL of the run (as given to harness run --storage)")
    e.add_argument("--plugin", action="append", default=[], metavar="MODULE", dest="plugins_sub")

    fe = sub.add_parser("fetch", help="download a dataset into the cache ahead of a run")
    fe.add_argument("dataset", help="dataset name (`harness list` shows them)")
    fe.add_argument("--fields", help="comma-separated fields to download")
    fe.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="dataset parameter")
    fe.add_argument("--plugin", action="append", default=[], metavar="MODULE", dest="plugins_sub")

    ex = sub.add_parser("export", help="write a results store as tidy tables (Parquet, CSV) or as MLflow runs")
    ex.add_argument("results", nargs="?", help="results folder of a run")
    ex.add_argument(
        "--to",
        required=True,
        metavar="DIR|mlflow:PATH",
        help="a folder for studies/trials/predictions .csv and .parquet, or mlflow:PATH "
        "(a folder: MLflow file store; .db: SQLite; or a tracking URI)",
    )
    ex.add_argument("--storage", help="results database URL (instead of a results folder)")
    ex.add_argument("--experiment", default="harness", help="MLflow experiment name (default harness)")
    ex.add_argument("--plugin", action="append", default=[], metavar="MODULE", dest="plugins_sub")

    ini = sub.add_parser("init", help="write a commented starter config to edit")
    ini.add_argument("path", nargs="?", default="benchmark.toml", help="file to write (default benchmark.toml)")
    ini.add_argument("--force", action="store_true", help="overwrite an existing file")

    pl = sub.add_parser(
        "plan", help="list the studies a run would do (done/pending) and what they need, computing nothing"
    )
    pl.add_argument("config")
    pl.add_argument("--only", action="append", metavar="GLOB")
    pl.add_argument("--results", help="results folder")
    pl.add_argument("--storage", help="results database URL")
    pl.add_argument("--trials", type=int)
    pl.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")])
    pl.add_argument("--format", choices=["table", "json"], default="table")
    pl.add_argument("--plugin", action="append", default=[], metavar="MODULE", dest="plugins_sub")

    c = sub.add_parser("cache", help="inspect or clear the feature cache")
    c.add_argument("action", choices=["info", "clear"])
    c.add_argument("what", nargs="?", help="one cache folder (e.g. features); default: all")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    prepare_process()
    args = _parser().parse_args(argv)
    console = Console()
    if not console.is_terminal:  # logs and pipes: wide enough for the leaderboard
        console = Console(width=max(console.width, 160))
    if getattr(args, "quiet", False) and args.command in ("run", "fetch", "featurize"):
        console.quiet = True  # their steps and bars; commands that print results still print them
    route_logging(console)
    if getattr(args, "verbose", False):
        import logging

        for name in ("harness", "harness_plugins"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        rc = _dispatch(args, console)
        if argv is None and args.command == "run":  # the console script, its files written
            from harness.runner import leave

            leave(rc)
        return rc
    except UserError as exc:
        from rich.text import Text

        # Literal text: a "[dataset]" in a hint or a "[/x]" in a path is not markup.
        Console(stderr=True).print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False, soft_wrap=True)
        return 2
    except OSError as exc:  # a filesystem problem (name too long, read-only, full): one line, exit 2
        from rich.text import Text

        where = f"{exc.filename}: " if exc.filename else ""
        Console(stderr=True).print(
            Text.assemble(
                ("error: ", "bold red"),
                f"{where}{exc.strerror or exc}; check the "
                "path (each name at most 255 bytes), its permissions and free space",
            ),
            highlight=False,
            soft_wrap=True,
        )
        return 2
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted: finished studies are saved; run the same command again to resume")
        return 130


def _registry(args, config_plugins: Sequence[str] = ()):
    from harness.services import registry

    modules = [*args.plugin, *getattr(args, "plugins_sub", []), *config_plugins]
    return registry.load(plugin_modules(modules))


def _dispatch(args, console: Console) -> int:
    commands = {
        "run": _run,
        "list": _list,
        "leaderboard": _leaderboard,
        "featurize": _featurize,
        "cache": _cache,
        "explain": _explain,
        "fetch": _fetch,
        "report": _report,
        "predict": _predict,
        "compare": _compare,
    }
    commands.update(export=_export, init=_init, plan=_plan)
    return commands[args.command](args, console)


def _load_config(path: str, args):
    from harness.services import config as cfg

    conf = cfg.load(path)
    results = getattr(args, "results", None)
    cfg.override_run(
        conf,
        trials=getattr(args, "trials", None),
        device=getattr(args, "device", None),
        workers=getattr(args, "workers", None),
        seeds=getattr(args, "seeds", None),
        results=str(Path(results).resolve()) if results else None,
        storage=getattr(args, "storage", None),
        executor=getattr(args, "executor", None),
        address=getattr(args, "address", None),
    )
    if conf.plugins:
        add_config_dir_to_path(conf.source)
    return conf


def _run(args, console: Console) -> int:
    if args.demo == bool(args.config):
        raise UserError("harness run needs a CONFIG file or --demo (the demo benchmark shipped with harness), not both")
    console.print(
        f"harness {version()}: reading {escape_text(args.config or 'the demo config')}; "
        "loading plugins (torch, pymatgen: some seconds on a first run)",
        highlight=False,
    )
    conf = _load_config(demo_config() if args.demo else args.config, args)
    if args.demo and not args.results:  # never inside the installed package
        conf.run.results = str(Path.cwd() / "results" / Path(demo_config()).stem)
    with run_log(conf, console) as logged:
        return run_config(conf, [*args.plugin, *args.plugins_sub], logged, only=args.only)


def escape_text(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))


def demo_config() -> str:
    """The demo benchmark's TOML, shipped inside the package (`harness/data/demo.toml`)."""
    from importlib.resources import files

    return str(files("harness") / "data" / "demo.toml")


def _list(args, console: Console) -> int:
    from rich.markup import escape
    from rich.table import Table

    registry = _registry(args)
    kinds = [KIND_ALIASES.get(args.kind, args.kind)] if args.kind else list(registry.entries)
    for kind in kinds:
        table = Table(title=f"{kind}s", title_justify="left")
        for col in ("name", "description", "parameters", "plugin"):
            table.add_column(col, overflow="fold")
        for name in registry.names(kind):
            entry = registry.entries[kind][name]
            cls = entry.cls
            params = ", ".join(f"{p.name}={p.default!r}" for p in cls.parameters())
            extra = ""
            accepts = getattr(cls, "accepts", None)
            if kind == "representation":
                extra = f" [{cls.kind}]"
            elif accepts is not None:
                extra = f" [takes {'/'.join(sorted(accepts))}]"
            elif kind == "task":  # the property keys a dataset must supply
                reads = tuple(getattr(cls, "reads", ()) or ())
                extra = f" [reads {', '.join(reads)}]" if reads else " [needs no property: labels from the structure]"
            table.add_row(name, escape((cls.description or "") + extra), escape(params), entry.plugin)
        console.print(table)
    return 0


def _store_url(args, command: str) -> str:
    from harness.services.store import location_of

    if args.storage:
        return args.storage
    if not args.results:
        raise UserError(f"{command} needs a results folder or --storage URL")
    path = Path(args.results)
    if not (path / "results.sqlite").is_file():
        raise UserError(f"no results in {path} (no results.sqlite); give the results folder of a run")
    return location_of(None, path)


def _predict(args, console: Console) -> int:
    from harness.report import predict
    from harness.services.store import Store

    store = Store(_store_url(args, "predict"), readonly=True)
    refit_from = _load_config(args.config, args) if args.config else None
    registry = _registry(args, refit_from.plugins if refit_from else ())
    chosen = predict.select(store, args.only, args.seed)
    from harness.user import require_plugins

    require_plugins(registry, chosen)
    status = console
    if args.format != "table":  # stdout holds the CSV/JSON only; progress and logs go to stderr
        status = Console(stderr=True)
        route_logging(status, replace=True)
    inputs = predict.read_structures(args.structures, registry, status, args.dataset, _parse_sets(args.set))
    found = [predict.predict(store, registry, r, inputs, refit_from, status) for r in chosen]
    if args.format == "table":
        predict.render(found, console)
    elif args.format == "csv":
        print(predict.to_csv(found), end="")
    else:
        print(predict.to_json(found))
    return 0


def _leaderboard(args, console: Console) -> int:
    from harness.report import leaderboard
    from harness.services.store import Store

    url = _store_url(args, "leaderboard")
    results = list(Store(url, readonly=True).results(include_superseded=args.superseded))
    rows = leaderboard.build(results, metric=args.metric)
    if args.per_class:
        from harness.report import perclass

        return perclass.show(results, rows, args.format, console)
    if args.format == "table":
        leaderboard.render(rows, console)
    elif args.format == "markdown":
        print(leaderboard.markdown(rows))
    elif args.format == "csv":
        print(leaderboard.to_csv(rows), end="")
    else:
        print(leaderboard.to_json(rows))
    return 0


def _export(args, console: Console) -> int:
    from harness import export
    from harness.user import Results

    url = _store_url(args, "export")
    results = Results(url, Path(args.results) if args.results else None, plugins=[*args.plugin, *args.plugins_sub])
    if args.to.startswith("mlflow:"):
        logged, there = export.to_mlflow(results, args.to.removeprefix("mlflow:"), args.experiment)
        console.print(
            f"{logged} studies logged as MLflow runs to {args.to.removeprefix('mlflow:')} "
            f"(experiment {args.experiment}; {there} were there already)"
        )
        return 0
    written = export.write_tables(results, Path(args.to))
    console.print(f"wrote {', '.join(p.name for p in written)} to {args.to}")
    return 0


def _init(args, console: Console) -> int:
    from importlib.resources import files

    path = Path(args.path)
    if path.exists() and not args.force:
        raise UserError(f"{path} exists; give another path, or --force to overwrite it")
    try:
        path.write_text((files("harness") / "data" / "starter.toml").read_text())
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; choose another path") from None
    console.print(f"wrote {path}: edit it, then `harness plan {path}` and `harness run {path}`", highlight=False)
    return 0


def _plan(args, console: Console) -> int:
    from harness.plan import preview

    conf = _load_config(args.config, args)
    registry = _registry(args, conf.plugins)
    status = console if args.format == "table" else Console(stderr=True)
    found = preview.studies(conf, registry, status, args.only)
    if args.format == "json":
        print(preview.to_json(found))
    else:
        preview.render(found, console)
    return 0


def _compare(args, console: Console) -> int:
    from harness.report import compare
    from harness.services.store import Store

    found = compare.compare_rows(
        Store(_store_url(args, "compare"), readonly=True).results(), args.row_a, args.row_b, args.metric
    )
    if args.format == "table":
        compare.render(found, console)
    else:
        print(
            {"markdown": compare.markdown, "csv": compare.to_csv, "json": compare.to_json}[args.format](found), end=""
        )
    return 0


def _report(args, console: Console) -> int:
    from harness.report.html import write_report

    path = write_report(Path(args.results), Path(args.out) if args.out else None, _registry(args), storage=args.storage)
    console.print(f"report written to {path} (figures in {path.parent / 'figures'})")
    return 0


def _parse_sets(items: list[str]) -> dict:
    import tomllib

    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set n=27")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare word: a string
    return out


def _featurize(args, console: Console) -> int:
    if args.config:
        return _featurize_config(args, console)
    if not args.structure or not args.representation:
        raise UserError("featurize needs STRUCTURE_FILE --representation NAME, or --config CONFIG")
    import numpy as np
    from pymatgen.core import Structure

    registry = _registry(args)
    rep = registry.create("representation", args.representation, _parse_sets(args.set))
    try:
        structure = Structure.from_file(args.structure)
    except Exception as exc:  # noqa: BLE001 - any parser failure is the file's fault
        raise UserError(f"cannot read structure {args.structure}: {exc}; give a CIF or POSCAR file") from None
    result = rep.featurize_many([structure])[0]
    from harness.sdk.api import Skip

    if isinstance(result, Skip):
        raise UserError(f"{args.structure} cannot be featurised by {rep.title}: {result}")
    x = np.asarray(result)
    hkl = rep.point_labels()
    payload = {
        "representation": rep.title,
        "kind": rep.kind,
        "columns": rep.columns(),
        "hkl": hkl.astype(int).tolist() if hkl is not None else None,
        "features": x.tolist(),
    }
    if args.format == "json":
        print(json.dumps(payload))
        return 0
    from rich.table import Table

    table = Table(title=f"{args.structure}: {rep.title} ({rep.kind})", title_justify="left")
    rows = x if x.ndim == 2 else x[:, None]
    cols = rep.columns() if x.ndim == 2 else ["intensity"]
    if hkl is not None:
        table.add_column("hkl")
    for col in cols:
        table.add_column(col, justify="right")
    for i, row in enumerate(rows):
        label = [f"({' '.join(str(int(v)) for v in hkl[i])})"] if hkl is not None else []
        table.add_row(*label, *(f"{v:.4f}" for v in row))
    console.print(table)
    return 0


def _featurize_config(args, console: Console) -> int:
    """The run's own plan and prepare stages over every study of the config (as on a
    fresh results folder; no store is opened or made): the cache then holds exactly the
    features and inputs files a run needs."""
    import time

    from harness.prepare.features import FeatureCache
    from harness.services.paths import cache_dir
    from harness.plan.plan import make_plan
    from harness.prepare.prepare import prepare_plan
    from harness.plan.preview import ReadOnlyStore

    conf = _load_config(args.config, args)
    registry = _registry(args, conf.plugins)
    t0 = time.perf_counter()
    plan = make_plan(conf, registry, ReadOnlyStore(None), console, args.only)
    prepare_plan(conf, plan, console, everything=True)
    console.print(f"total {time.perf_counter() - t0:.1f} s; cache {FeatureCache(cache_dir()).root}")
    return 0


def _fetch(args, console: Console) -> int:
    from harness.sdk.api import LoadContext
    from harness.services.paths import cache_dir
    from harness.services.progress import progress_bar, tracker

    params = _parse_sets(args.set)
    if args.fields:
        params["fields"] = [f.strip() for f in args.fields.split(",") if f.strip()]
    dataset = _registry(args).create("dataset", args.dataset, params)
    with progress_bar(console) as bar:
        summary = dataset.fetch(LoadContext(cache_dir(), progress=tracker(bar, f"fetching {args.dataset}")))
    if summary is None:
        raise UserError(f"dataset {args.dataset!r} has nothing to fetch (it reads local or embedded data)")
    console.print(summary)
    return 0


def _explain(args, console: Console) -> int:
    from harness.report.explain import explain

    conf = _load_config(args.config, args)
    registry = _registry(args, conf.plugins)
    return explain(conf, registry, console, args.unit, args.seed, args.material, args.limit)


def _cache(args, console: Console) -> int:
    """Every cache the harness writes lives in one folder, one subfolder per kind."""
    import shutil

    from rich.markup import escape

    from harness.services.paths import cache_dir

    root = cache_dir()
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if args.what:
        folders = [p for p in folders if p.name == args.what]
        if not folders:
            names = ", ".join(p.name for p in sorted(root.iterdir()) if p.is_dir()) or "none"
            raise UserError(f"no cache folder {args.what!r} in {root}; choose one of: {names}")
    for folder in folders:
        files = [f for f in folder.rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        if args.action == "clear":
            shutil.rmtree(folder, ignore_errors=True)
            console.print(f"removed {escape(folder.name)}: {len(files)} files, {size / 1e6:.1f} MB")
        else:
            console.print(f"{escape(folder.name)}: {len(files)} files, {size / 1e6:.1f} MB")
    if args.action == "info":
        console.print(f"cache folder {escape(str(root))} (set HARNESS_CACHE_DIR to move it)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

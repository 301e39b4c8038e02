"""One run path for the command line and the Python API: process settings, plugin modules
(by name, beside the config, or from a file), the run log, then plan -> prepare ->
execute -> store -> report through the runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console

from harness.services.errors import UserError


def version() -> str:
    """The installed version, without importing the package's heavy modules."""
    import importlib.metadata

    try:
        return importlib.metadata.version("harness")
    except importlib.metadata.PackageNotFoundError:  # a checkout on PYTHONPATH
        return "unknown"


def prepare_process() -> None:
    """Process settings every run needs, from the command line or from Python."""
    # Idle OpenMP threads must sleep, not spin: with two studies sharing two cores,
    # spinning made XGBoost 40x slower here.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # spglib's C core prints harmless tolerance-search notes to stderr; they would bury
    # the progress bars.
    os.environ.setdefault("SPGLIB_WARNING", "OFF")


def route_logging(console: Console, replace: bool = False) -> None:
    """Plugins report summaries (e.g. parser warnings) through `logging` at INFO."""
    import logging

    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_time=False, show_path=False)
    for name in ("harness", "harness_plugins"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        if replace:
            for old in [h for h in logger.handlers if isinstance(h, RichHandler)]:
                logger.removeHandler(old)
        if not logger.handlers:
            logger.addHandler(handler)


def plugin_modules(names: Sequence[str]) -> list:
    """`--plugin` values as registry.load takes them: a module name, found also in the
    current folder (`--plugin my_plugin` beside my_plugin.py), or a file path
    (`--plugin ./my_plugin.py`), imported from that file."""
    _add_cwd_to_path()
    out: list = []
    for name in dict.fromkeys(names):
        if name.endswith(".py") or os.sep in name or "/" in name:
            out.append(_module_from_file(name))
        else:
            out.append(name)
    return out


def _add_cwd_to_path() -> None:
    """Appended, so an installed package wins over a file of the same name here."""
    cwd = str(Path.cwd())
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)


def _module_from_file(path: str):
    import importlib.util

    file = Path(path)
    if not file.is_file():
        raise UserError(f"--plugin {path}: no such file; give a module name or the path of a .py file")
    name = file.stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(file.resolve()):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, file.resolve())
    if spec is None or spec.loader is None:
        raise UserError(f"--plugin {path}: not a Python module; give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses and pickles resolve the module by name
    sys.path.append(str(file.resolve().parent))  # worker processes import it by name
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - the plugin's own error, named
        sys.modules.pop(name, None)
        raise UserError(f"--plugin {path} failed to import: {type(exc).__name__}: {exc}") from None
    return module


def add_config_dir_to_path(source: str) -> None:
    """`plugins = ["my_plugin"]` finds a module lying next to the config. Appended, so an
    installed package always wins over a file of the same name beside a config."""
    folder = str(Path(source).resolve().parent)
    if folder not in sys.path:
        sys.path.append(folder)


def run_log(conf, console: Console, label: str | None = None):
    """A console that also writes RESULTS/run.log (appended: one section per run)."""
    import contextlib
    import datetime

    from harness.services.progress import TeeConsole

    @contextlib.contextmanager
    def opened():
        from harness.services.progress import FolderLog

        with FolderLog(conf.results_dir() / "run.log") as log:
            tee = TeeConsole(
                file=console.file,
                width=console.width,
                quiet=console.quiet,
                force_terminal=console.is_terminal,
                log_file=log,
            )
            stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
            tee.log_console.rule(f"{stamp} harness {version()} {label or ' '.join(sys.argv[1:]) or 'run'}")
            route_logging(tee, replace=True)
            try:
                yield tee
            except UserError as exc:
                tee.log_console.print(f"error: {exc}", highlight=False, markup=False)
                raise
            finally:
                route_logging(console, replace=True)

    return opened()


def run_config(conf, plugins: Sequence[str], console: Console, only: list[str] | None = None) -> int:
    """The one run path of `harness run` and `harness.run`: a validated config with its
    overrides applied, the plugins loaded, then plan, prepare, execute, store, report."""
    from harness import runner
    from harness.services import registry

    return runner.run(conf, registry.load(plugin_modules([*plugins, *conf.plugins])), console, only=only)

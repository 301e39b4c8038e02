"""Progress bars and the one-line summaries of what was skipped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text


class EtaColumn(ProgressColumn):
    """Time left from the average pace so far: shown once one item has finished. (Rich's
    own estimate needs two finished items within 30 s, so a run of studies that take
    minutes each showed no ETA until far into it.)"""

    def render(self, task) -> Text:
        if task.finished:
            return Text("done", style="progress.remaining")
        if not task.total or not task.completed or task.elapsed is None:
            return Text("eta -:--:--", style="progress.remaining")
        left = int(task.elapsed * (task.total - task.completed) / task.completed)
        return Text(f"eta {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}", style="progress.remaining")


class StepProgress(Progress):
    """Bars that, where they cannot be drawn live (a pipe, a log file, CI), say when each
    one starts: the output shows every phase as it begins, not only when it ends."""

    def add_task(self, description, *args, **kwargs):
        if not self.console.is_terminal and not self.console.is_jupyter:
            total = kwargs.get("total", args[1] if len(args) > 1 else None)
            self.console.print(f"{description}: 0" + (f"/{int(total)}" if total else "") + " ...")
        return super().add_task(description, *args, **kwargs)


def progress_bar(console: Console) -> Progress:
    return StepProgress(
        TextColumn("[bold]{task.description}", markup=True),
        BarColumn(bar_width=24),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        EtaColumn(),
        console=console,
        transient=False,
    )


class FolderLog:
    """The run log's file, opened once its folder exists (the run makes it after the config's
    names are checked): a run that fails before leaves no folder behind; what was printed
    until then is kept and written first."""

    def __init__(self, path: Path):
        self.path = path
        self._file: IO[str] | None = None
        self._early: list[str] = []
        self._broken = False

    def write(self, text: str) -> int:
        if self._file is None and not self._broken and self.path.parent.is_dir():
            try:
                self._file = open(self.path, "a", encoding="utf-8")
                self._file.write("".join(self._early))
            except OSError:  # a read-only results folder: the run reports it; no log then
                self._broken = True
            self._early.clear()
        if self._file is not None:
            return self._file.write(text)
        if not self._broken:
            self._early.append(text)
        return len(text)

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def __enter__(self) -> "FolderLog":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


class TeeConsole(Console):
    """A console that also writes what it prints (lines, rules, tables, log records, never the
    live progress bars) as plain text into a log file: the run log."""

    def __init__(self, *args, log_file=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.log_console = (
            Console(file=log_file, width=160, color_system=None, force_terminal=False, soft_wrap=False)
            if log_file is not None
            else None
        )

    def print(self, *objects, **kwargs) -> None:
        super().print(*objects, **kwargs)
        if self.log_console is not None and objects and not any(_is_live(o) for o in objects):
            self.log_console.print(*objects, **kwargs)
            self.log_console.file.flush()


def _is_live(obj) -> bool:
    from rich.control import Control

    return isinstance(obj, Control) or type(obj).__name__ in ("LiveRender", "Progress")


def tracker(bar: Progress, default: str):
    """The `progress` callable a `LoadContext` lends to datasets: one bar per description."""
    handles: dict[str, int] = {}

    def track(iterable, total=None, description=""):
        name = escape(description or default)
        if name not in handles:
            handles[name] = bar.add_task(name, total=total)
        for item in iterable:
            yield item
            bar.advance(handles[name])

    return track


def skip_summary(counter: Counter) -> str:
    """ " (12 skipped: reason: n; ...)" as Rich markup, the reasons escaped."""
    if not counter:
        return ""
    total = sum(counter.values())
    top = "; ".join(f"{escape(str(reason))}: {n}" for reason, n in counter.most_common(3))
    more = f"; +{len(counter) - 3} other reasons" if len(counter) > 3 else ""
    return f" [yellow]({total} skipped: {top}{more})[/]"

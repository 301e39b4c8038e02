"""Progress bars and the one-line summaries of what was skipped."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}", markup=True),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


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
    """" (12 skipped: reason: n; ...)" as Rich markup, the reasons escaped."""
    if not counter:
        return ""
    total = sum(counter.values())
    top = "; ".join(f"{escape(str(reason))}: {n}" for reason, n in counter.most_common(3))
    more = f"; +{len(counter) - 3} other reasons" if len(counter) > 3 else ""
    return f" [yellow]({total} skipped: {top}{more})[/]"

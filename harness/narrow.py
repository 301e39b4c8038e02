"""The leaderboard on a narrow terminal (under 110 columns, e.g. 80): one row per
combination with the entries stacked in one column and each score with its interval
below it, so nothing is cut to 'representat…'."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

WIDE_ENOUGH = 110  # the full table fits from here on


def render(rows: list[dict[str, Any]], console: Console) -> None:
    from harness import leaderboard as lb

    for task, task_rows in lb.by_task(rows).items():
        names = lb.extras(task_rows)
        metric = task_rows[0]["metric"]
        table = Table(title=escape(lb.title(task, task_rows)), title_justify="left", box=box.SIMPLE_HEAD,
                      padding=(0, 1), expand=False)
        table.add_column("#", style="dim", justify="right")
        table.add_column("representation\nperturbation\nmodel", overflow="fold", min_width=18)
        table.add_column(f"{escape(metric)}\n95% CI", justify="right", no_wrap=True)
        table.add_column("vs best", justify="right", overflow="fold")
        if names:
            table.add_column("\n".join(escape(n) for n in names), justify="right", no_wrap=True)
        table.add_column("seeds\nn_test", justify="right", no_wrap=True)
        for i, r in enumerate(task_rows, 1):
            cells = [str(i), f"{escape(r['representation'])}\n{escape(r['perturbation'])}\n{escape(r['model'])}",
                     f"{lb.fmt_mean(r)}\n{lb.fmt_interval(r)}", lb.fmt_vs_best(r)]
            if names:
                cells.append("\n".join(lb.fmt_mean(r, n) for n in names))
            cells.append(f"{r['n_seeds']}\n{r['n_test']}")
            table.add_row(*cells, style="bold green" if r["vs_best"] in ("best", "tied") else None)
        console.print(table)
    console.print(f"[dim]{escape(lb.LEGEND)}", highlight=False)

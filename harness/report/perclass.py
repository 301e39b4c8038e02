"""Per-class recall and a head / torso / tail summary for tasks with many classes.

Models on the 230-class space-group task do well on common groups and fail on rare ones;
a single accuracy hides it. Classes are ranked by how often they occur and cut into three
groups with equal numbers of classes: head (most frequent third), torso, tail. Frequency
is counted on the stored test sets pooled over seeds: the split is stratified by class,
so test counts are proportional to training counts (a class too rare to stratify is rare
in both). Each group's number is the mean recall of its classes, every seed's test
predictions pooled.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable

import numpy as np

from harness.report import leaderboard
from harness.services.records import UnitResult

MIN_CLASSES = 11  # "more than 10 classes"
GROUPS = ("head", "torso", "tail")


def pooled(rs: list[UnitResult]) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Labels and predicted classes over every seed's test set, and the class count."""
    if not rs or not all(r.predictions for r in rs):
        return None
    y = np.concatenate([np.asarray(r.predictions["y"], dtype=int) for r in rs])
    proba = [np.asarray(r.predictions["proba"], dtype=float) for r in rs]
    width = proba[0].shape[1] if proba[0].ndim == 2 else 0
    return y, np.concatenate([np.argmax(p, axis=1) for p in proba]), width


def per_class(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Support and recall of every class present (recall NaN for an absent class)."""
    support = np.bincount(y, minlength=n_classes)
    hits = np.bincount(y[pred == y], minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = hits / support
    return {"support": support, "recall": recall}


def groups_by_frequency(support: np.ndarray) -> dict[str, np.ndarray]:
    """Present classes, most frequent first (ties by class index), in three equal thirds."""
    present = np.flatnonzero(support > 0)
    order = present[np.lexsort((present, -support[present]))]
    return dict(zip(GROUPS, np.array_split(order, 3)))


def summary(rs: list[UnitResult]) -> dict[str, Any] | None:
    """Head / torso / tail mean recall of one leaderboard row; None below 11 classes."""
    got = pooled(rs)
    if got is None or got[2] < MIN_CLASSES:
        return None
    y, pred, k = got
    pc = per_class(y, pred, k)
    out: dict[str, Any] = {"n_classes_present": int((pc["support"] > 0).sum())}
    for name, members in groups_by_frequency(pc["support"]).items():
        out[f"{name}_classes"] = int(len(members))
        out[f"{name}_materials"] = int(pc["support"][members].sum())
        out[f"{name}_recall"] = float(np.mean(pc["recall"][members])) if len(members) else None
    out["never_right"] = int(np.sum(pc["recall"][pc["support"] > 0] == 0))
    out["per_class_recall"] = {int(c): float(pc["recall"][c]) for c in np.flatnonzero(pc["support"] > 0)}
    out["per_class_support"] = {int(c): int(pc["support"][c]) for c in np.flatnonzero(pc["support"] > 0)}
    return out


def collect(results: Iterable[UnitResult], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per leaderboard row of a many-class task, in leaderboard order."""
    grouped = leaderboard.groups(results)
    out = []
    for row in rows:
        s = summary(grouped.get(tuple(row[k] for k in leaderboard.KEY), []))
        if s is not None:
            out.append({**{k: row[k] for k in leaderboard.KEY}, "mean": row["mean"], "metric": row["metric"], **s})
    return out


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def show(results: Iterable[UnitResult], rows: list[dict[str, Any]], fmt: str, console) -> int:
    from rich.table import Table

    found = collect(list(results), rows)
    if not found:
        console.print("[yellow]no task with more than 10 classes and stored predictions")
        return 0
    if fmt == "json":
        print(json.dumps(found, indent=2))
        return 0
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([*leaderboard.KEY, "class", "support", "recall", "group"])
        for f in found:
            group_of = {
                c: g
                for g, members in groups_by_frequency(
                    np.bincount(list(f["per_class_support"]), weights=list(f["per_class_support"].values())).astype(int)
                ).items()
                for c in members
            }
            for c, rec in f["per_class_recall"].items():
                w.writerow([*(f[k] for k in leaderboard.KEY), c, f["per_class_support"][c], f"{rec:.6f}", group_of[c]])
        print(buf.getvalue(), end="")
        return 0
    head = [*leaderboard.KEY, "metric", "head recall", "torso recall", "tail recall", "classes (h/t/t)", "never right"]
    lines = []
    for f in found:
        lines.append(
            [
                *(f[a] for a in leaderboard.KEY),
                f"{f['mean']:.3f}",
                _fmt(f["head_recall"]),
                _fmt(f["torso_recall"]),
                _fmt(f["tail_recall"]),
                f"{f['head_classes']}/{f['torso_classes']}/{f['tail_classes']}",
                f"{f['never_right']}/{f['n_classes_present']}",
            ]
        )
    note = (
        "Classes ranked by frequency (test sets pooled over seeds; the split is stratified, so "
        "proportional to training frequency), cut into three equal thirds; recall averaged over "
        "each third's classes. Per-class recall: --format csv or json."
    )
    if fmt == "markdown":
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for line in lines:
            print("| " + " | ".join(line) + " |")
        print(f"\n{note}")
        return 0
    table = Table(title="per-class recall: head / torso / tail", title_justify="left")
    for col in head:
        table.add_column(col)
    for line in lines:
        table.add_row(*line)
    console.print(table)
    console.print(f"[dim]{note}", highlight=False)
    return 0

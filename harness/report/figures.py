"""The study's figures with matplotlib: leaderboard bars, metric against n (Fig. 4a),
ROC curves per perturbation (Fig. 4b-e), the crystal-system confusion matrix.

Every function takes leaderboard rows or stored predictions and returns a Figure;
`save` writes it as a PNG with no timestamp, so an unchanged run draws identical bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.services.records import row_label
from harness.report.stats import Predictions


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, dpi: int = 110) -> Path:
    plt = _pyplot()
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    plt.close(fig)
    return Path(path)


def save_cached(data: Any, draw: Any, path: Path, dpi: int = 110) -> Path:
    """`save(draw(), path)`, kept in the cache by the content of `data` (what the figure
    is drawn from), matplotlib's version and this module's code: a rerun whose results did
    not change copies the PNG instead of importing matplotlib and drawing (~1 CPU-s, as
    much as a small study's fit). An unwritable cache only means drawing each time."""
    import hashlib
    import os
    import shutil
    from importlib.metadata import version

    from harness.plan.identity import digest
    from harness.services.paths import cache_dir

    code = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    key = digest({"figure": data, "dpi": dpi, "matplotlib": version("matplotlib"), "code": code})
    cached = cache_dir(writable=False) / "figures" / f"{key}.png"
    try:
        shutil.copyfile(cached, path)
        return Path(path)
    except OSError:
        pass
    save(draw(), path, dpi)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, cached)
    except OSError:
        pass
    return Path(path)


def _by_table(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    from harness.report.tables import by_task

    return by_task(rows)


# What `leaderboard_figure` reads of a row (not its fit time): the key of its cached PNG.
LEADERBOARD_FIELDS = (
    "dataset",
    "task",
    "metric",
    "representation",
    "perturbation",
    "model",
    "mean",
    "ci_low",
    "ci_high",
    "vs_best",
)


def leaderboard_png(rows: list[dict[str, Any]], path: Path) -> Path:
    shown = [{k: r.get(k) for k in LEADERBOARD_FIELDS} for r in rows]
    return save_cached(shown, lambda: leaderboard_figure(shown), path)


def leaderboard_figure(rows: list[dict[str, Any]]):
    """A bar per row: mean with its 95 % interval; the best row and its ties in green."""
    plt = _pyplot()
    tables = _by_table(rows)
    fig, axes = plt.subplots(len(tables), 1, figsize=(9, 0.35 * len(rows) + 1.5 * len(tables)), squeeze=False)
    for ax, (task, task_rows) in zip(axes[:, 0], tables.items()):
        shown = task_rows[::-1]
        labels = [row_label(r) for r in shown]
        means = np.array([r["mean"] for r in shown])
        low = np.array([r["ci_low"] if r["ci_low"] is not None else r["mean"] for r in shown])
        high = np.array([r["ci_high"] if r["ci_high"] is not None else r["mean"] for r in shown])
        err = np.vstack([np.clip(means - low, 0, None), np.clip(high - means, 0, None)])
        colors = ["tab:green" if r["vs_best"] in ("best", "tied") else "tab:blue" for r in shown]
        ax.barh(labels, means, xerr=err, color=colors, alpha=0.8, capsize=3)
        ax.set_title(f"{task}: test {task_rows[0]['metric']}, 95 % CI", loc="left", fontsize=9)
        ax.set_xlim(0, 1)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def metric_vs_n(task: str, series: dict[str, list[tuple[int, float, float]]], metric: str):
    """Fig. 4a: the metric against the Miller set size n, mean ± std over seeds, one line
    per (representation family, perturbation, model)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, points in sorted(series.items()):
        points = sorted(points)
        n, mean, std = (np.array(v) for v in zip(*points))
        ax.errorbar(n, mean, yerr=std, marker="o", capsize=3, label=label)
    ax.set_xscale("log")
    ns = sorted({p[0] for pts in series.values() for p in pts})
    ax.set_xticks(ns, [str(v) for v in ns])
    ax.minorticks_off()
    ax.set_xlabel("Miller set size n")
    ax.set_ylabel(f"test {metric} (mean ± std over seeds)")
    ax.set_title(f"{task}: {metric} against n (Fig. 4a)", loc="left", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _roc_points(preds: Sequence[Predictions]) -> tuple[np.ndarray, np.ndarray]:
    """One ROC curve from the test predictions of all seeds, pooled."""
    from sklearn.metrics import roc_curve

    y = np.concatenate([p.y for p in preds])
    score = np.concatenate([p.proba[:, 1] for p in preds])
    fpr, tpr, _ = roc_curve(y, score)
    return fpr, tpr


def roc_panels(task: str, panels: dict[str, dict[str, tuple[Sequence[Predictions], str]]]):
    """Fig. 4b-e: one panel per model, one ROC curve per perturbation (phi1-phi4) with
    its AUC in the legend, and an inset magnifying the low false-positive corner."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.8), squeeze=False)
    for ax, (model, curves) in zip(axes[0], panels.items()):
        inset = ax.inset_axes([0.56, 0.40, 0.41, 0.30])
        corner = []
        for label, (preds, legend) in curves.items():
            fpr, tpr = _roc_points(preds)
            (line,) = ax.plot(fpr, tpr, label=f"{label}: {legend}", lw=1.4)
            near = fpr <= 0.2
            inset.plot(fpr[near], tpr[near], color=line.get_color(), lw=1.0)
            corner.append(tpr[near])
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        low = min(float(np.min(c)) for c in corner)
        high = max(float(np.max(c)) for c in corner)
        inset.set_xlim(0, 0.2)
        inset.set_ylim(max(0.0, low - 0.02), min(1.0, high + 0.02))
        inset.tick_params(labelsize=6)
        inset.set_title("false positive rate < 0.2", fontsize=6)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{task}\n{model}", loc="left", fontsize=9)
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def confusion(task: str, preds: Sequence[Predictions], classes: Sequence[str], caption: str):
    """Confusion matrix of all seeds' test predictions pooled, rows normalised to recall."""
    from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix

    plt = _pyplot()
    y = np.concatenate([p.y for p in preds])
    pred = np.concatenate([np.argmax(p.proba, axis=1) for p in preds])
    labels = np.arange(len(classes))
    matrix = confusion_matrix(y, pred, labels=labels, normalize="true")
    fig, ax = plt.subplots(figsize=(1.1 * len(classes) + 3, 1.0 * len(classes) + 2))
    ConfusionMatrixDisplay(np.nan_to_num(matrix), display_labels=list(classes)).plot(
        ax=ax, cmap="Blues", values_format=".2f", colorbar=False, xticks_rotation=45
    )
    ax.set_title(f"{task}\n{caption}", loc="left", fontsize=8)
    fig.tight_layout()
    return fig


def reliability(table: str, curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]]):
    """Reliability diagram: observed frequency of class 1 against the predicted probability,
    10 equal-width bins, marker size by bin count; ECE in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="perfectly calibrated")
    for label, (count, conf, freq, ece) in curves.items():
        used = count > 0
        (line,) = ax.plot(conf[used], freq[used], marker="o", ms=3, label=f"{label} (ECE {ece:.3f})")
        ax.scatter(conf[used], freq[used], s=10 + 90 * count[used] / count.max(), color=line.get_color(), alpha=0.4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted probability of class 1 (bin mean)")
    ax.set_ylabel("observed frequency of class 1")
    ax.set_title(f"{table}: reliability", loc="left", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def per_class_recall(table: str, support: np.ndarray, recall: np.ndarray, groups: dict[str, np.ndarray], caption: str):
    """Recall of every class present, classes ordered by frequency (most frequent left),
    head / torso / tail shaded."""
    plt = _pyplot()
    order = np.concatenate([groups[g] for g in ("head", "torso", "tail")])
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.bar(np.arange(len(order)), recall[order], color="tab:blue", width=1.0)
    start = 0
    for g, shade in zip(("head", "torso", "tail"), ("0.95", "0.88", "0.80")):
        size = len(groups[g])
        if size:
            ax.axvspan(start - 0.5, start + size - 0.5, color=shade, zorder=0)
            mean = float(np.mean(recall[groups[g]]))
            ax.text(start + size / 2, 1.02, f"{g}: {mean:.2f}", ha="center", fontsize=8)
        start += size
    ax.set_xlim(-0.5, len(order) - 0.5)
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("classes, most frequent first")
    ax.set_ylabel("recall")
    ax.set_title(f"{table}: per-class recall ({caption})", loc="left", fontsize=9)
    fig.tight_layout()
    return fig


def critical_difference(
    names: Sequence[str], mean_ranks: Sequence[float], cd: float, groups: Sequence[tuple[int, int]], n_tables: int
):
    """Demsar's critical-difference diagram: mean ranks on an axis, the CD bar above, and
    thick lines joining combinations that are not distinguishable."""
    plt = _pyplot()
    k = len(names)
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.28 * k))
    lo, hi = 1, max(k, 2)
    ax.set_xlim(lo - 0.3, hi + 0.3)
    ax.set_ylim(-(k + 1), 2)
    ax.hlines(0, lo, hi, color="k", lw=1)
    for t in range(lo, hi + 1):
        ax.vlines(t, 0, 0.15, color="k", lw=1)
        ax.text(t, 0.3, str(t), ha="center", fontsize=8)
    ax.hlines(1.3, lo, lo + cd, color="tab:red", lw=2)
    ax.text(lo + cd / 2, 1.5, f"CD = {cd:.2f} ({n_tables} tables)", ha="center", fontsize=8, color="tab:red")
    for i, (name, r) in enumerate(zip(names, mean_ranks)):
        y = -(i + 1)
        ax.plot([r, r], [0, y], color="0.5", lw=0.8)
        ax.text(hi + 0.35, y, f"{name}  ({r:.2f})", va="center", fontsize=7)
        ax.plot(r, y, "o", ms=3, color="k")
    for j, (a, b) in enumerate(groups):
        y = -0.3 - 0.15 * j
        ax.hlines(y, mean_ranks[a] - 0.03, mean_ranks[b] + 0.03, color="k", lw=3)
    ax.axis("off")
    ax.set_title("mean rank across tables (1 = best); bars join combinations within CD", loc="left", fontsize=9)
    fig.subplots_adjust(left=0.03, right=0.62, top=0.9, bottom=0.03)
    return fig

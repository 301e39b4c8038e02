"""The built-in classification metrics, registered through the `harness_metrics` hook
like any plugin's (the core loads this module as a plugin)."""

from __future__ import annotations

import numpy as np
import pluggy

from harness.sdk.api import Metric

hookimpl = pluggy.HookimplMarker("harness")


def roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    return float(roc_auc_score(y, proba, multi_class="ovr", labels=np.arange(proba.shape[1])))


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean(np.argmax(proba, axis=1) == y))


def macro_f1(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, np.argmax(proba, axis=1), average="macro", labels=np.unique(y)))


def log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import log_loss as sk_log_loss

    return float(sk_log_loss(y, np.clip(proba, 1e-15, 1), labels=np.arange(proba.shape[1])))


def top5_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Fraction whose true class is among the five most probable (ties by class order)."""
    top = np.argsort(-proba, axis=1, kind="stable")[:, :5]
    return float(np.mean(np.any(top == np.asarray(y)[:, None], axis=1)))


def balanced_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Recall averaged over the classes present. For two classes this is what matbench's
    `mp_is_metal` calls "ROC-AUC" (computed from hard labels: (TPR + TNR) / 2)."""
    from sklearn.metrics import balanced_accuracy_score

    return float(balanced_accuracy_score(y, np.argmax(proba, axis=1)))


def mcc(y: np.ndarray, proba: np.ndarray) -> float:
    """Matthews correlation coefficient (multiclass form of Gorodkin for several classes)."""
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(y, np.argmax(proba, axis=1)))


def _binary_only(name: str, proba: np.ndarray) -> None:
    if proba.shape[1] != 2:
        raise ValueError(f"{name} is defined for two classes, this task has {proba.shape[1]}")


def f1(y: np.ndarray, proba: np.ndarray) -> float:
    """F1 of class 1 (the positive class of a binary task)."""
    from sklearn.metrics import f1_score

    _binary_only("f1", proba)
    return float(f1_score(y, np.argmax(proba, axis=1), pos_label=1, average="binary", zero_division=0))


def brier_per_material(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    """Squared error of the probabilities: (p1 - y)^2 for two classes (scikit-learn's
    binary Brier score), the sum over classes against the one-hot label otherwise."""
    y = np.asarray(y)
    if proba.shape[1] == 2:
        return (proba[:, 1] - (y == 1)) ** 2
    onehot = np.eye(proba.shape[1])[y]
    return ((proba - onehot) ** 2).sum(axis=1)


def brier(y: np.ndarray, proba: np.ndarray) -> float:
    return float(np.mean(brier_per_material(y, proba)))


ECE_BINS = 10


def calibration_bins(
    y: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of confidence: count, mean confidence, observed frequency.

    Two classes: the probability of class 1 against the label (scikit-learn's
    `calibration_curve` with uniform bins). Several classes: the top-label confidence
    against being right (Guo et al. 2017). Empty bins have count 0."""
    y = np.asarray(y)
    if proba.shape[1] == 2:
        conf, hit = proba[:, 1], (y == 1).astype(float)
    else:
        conf, hit = proba.max(axis=1), (np.argmax(proba, axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.searchsorted(edges[1:-1], conf)  # as calibration_curve bins
    count = np.bincount(which, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=n_bins) / count
        freq = np.bincount(which, weights=hit, minlength=n_bins) / count
    return count, mean_conf, freq


def ece(y: np.ndarray, proba: np.ndarray) -> float:
    """Expected calibration error: bin-count-weighted mean |frequency - confidence|."""
    count, conf, freq = calibration_bins(y, proba)
    used = count > 0
    return float(np.sum(count[used] * np.abs(freq[used] - conf[used])) / count.sum())


BUILTIN = (
    Metric("roc_auc", roc_auc, True, "area under the ROC curve (one-vs-rest mean for several classes)"),
    Metric("accuracy", accuracy, True, "fraction of materials whose most probable class is right"),
    Metric("macro_f1", macro_f1, True, "F1 averaged over the classes present, unweighted"),
    Metric("log_loss", log_loss, False, "cross-entropy of the predicted probabilities"),
    Metric("top5_accuracy", top5_accuracy, True, "fraction whose true class is among the five most probable"),
    Metric(
        "balanced_accuracy",
        balanced_accuracy,
        True,
        "recall averaged over classes (binary: matbench mp_is_metal's hard-label 'ROC-AUC')",
    ),
    Metric("mcc", mcc, True, "Matthews correlation coefficient of the most probable class"),
    Metric("f1", f1, True, "F1 of class 1 (binary tasks)"),
    Metric("brier", brier, False, "Brier score: squared error of the probabilities"),
    Metric("ece", ece, False, "expected calibration error, 10 equal-width bins"),
)


# Values a metric can take: an interval is never drawn outside them (a symmetric t
# interval near 0 or 1 would be). Plugin metrics: unbounded.
RANGES: dict[str, tuple[float, float]] = {
    "roc_auc": (0.0, 1.0),
    "accuracy": (0.0, 1.0),
    "macro_f1": (0.0, 1.0),
    "top5_accuracy": (0.0, 1.0),
    "balanced_accuracy": (0.0, 1.0),
    "mcc": (-1.0, 1.0),
    "f1": (0.0, 1.0),
    "brier": (0.0, 2.0),
    "ece": (0.0, 1.0),
    "log_loss": (0.0, float("inf")),
}


@hookimpl
def harness_metrics() -> list[Metric]:
    return list(BUILTIN)


_KNOWN: dict[str, Metric] = {m.name: m for m in BUILTIN}


def remember(metric: Metric) -> None:
    """Metrics of loaded plugins, so leaderboards can recompute them from predictions."""
    _KNOWN[metric.name] = metric


def get(name: str) -> Metric:
    """A metric by name: the core's own, or one a loaded plugin registered."""
    try:
        return _KNOWN[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r} (is the plugin that registers it loaded?)") from None

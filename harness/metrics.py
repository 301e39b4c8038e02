"""The built-in classification metrics, registered through the `harness_metrics` hook
like any plugin's (the core loads this module as a plugin)."""

from __future__ import annotations

import numpy as np
import pluggy

from harness.api import Metric

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


BUILTIN = (
    Metric("roc_auc", roc_auc, True, "area under the ROC curve (one-vs-rest mean for several classes)"),
    Metric("accuracy", accuracy, True, "fraction of materials whose most probable class is right"),
    Metric("macro_f1", macro_f1, True, "F1 averaged over the classes present, unweighted"),
    Metric("log_loss", log_loss, False, "cross-entropy of the predicted probabilities"),
    Metric("top5_accuracy", top5_accuracy, True, "fraction whose true class is among the five most probable"),
)


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

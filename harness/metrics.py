"""Classification metrics by name (higher is better for all)."""

from __future__ import annotations

from typing import Callable

import numpy as np


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


def top5_accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    """Fraction whose true class is among the five most probable (ties by class order)."""
    top = np.argsort(-proba, axis=1, kind="stable")[:, :5]
    return float(np.mean(np.any(top == np.asarray(y)[:, None], axis=1)))


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "roc_auc": roc_auc,
    "accuracy": accuracy,
    "macro_f1": macro_f1,
    "top5_accuracy": top5_accuracy,
}


def get(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None

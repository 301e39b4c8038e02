"""Misbehaving models for the engine's fault tests: NaN or wrongly shaped probabilities,
a fit that outlives the study's timeout, and trials that tie on validation."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from toy_plugin import Centroids

from harness import Choice, hookimpl


@dataclass
class NanModel(Centroids):
    name: ClassVar[str] = "nan_model"
    description: ClassVar[str] = "returns NaN probabilities"

    def predict_proba(self, X):
        return np.full((len(X), 2), np.nan)


@dataclass
class ShortModel(Centroids):
    name: ClassVar[str] = "short_model"
    description: ClassVar[str] = "returns one row too few"

    def predict_proba(self, X):
        return super().predict_proba(X)[:-1]


@dataclass
class Sleepy(Centroids):
    """The first fit is quick; every later one sleeps `seconds` (a fit that never returns
    in practice), in small steps, as Python code does."""

    name: ClassVar[str] = "sleepy"
    description: ClassVar[str] = "a fit that takes `seconds` after the first"
    seconds: float = 600.0
    fits: ClassVar[list] = []

    def fit(self, train, valid, ctx):
        self.fits.append(1)
        if len(self.fits) > 1:
            t0 = time.monotonic()
            while time.monotonic() - t0 < self.seconds:
                time.sleep(0.05)
        return super().fit(train, valid, ctx)


@dataclass
class Tied(Centroids):
    """`label` changes nothing the model computes: every trial has the same value."""

    name: ClassVar[str] = "tied"
    description: ClassVar[str] = "hyperparameter without effect"
    search_space: ClassVar[dict] = {"label": Choice(*range(50))}
    label: int = 0


@dataclass
class Warns(Centroids):
    name: ClassVar[str] = "warns"
    description: ClassVar[str] = "warns as scikit-learn does on a small class"

    def fit(self, train, valid, ctx):
        for _ in range(5):
            warnings.warn(
                "The least populated class in y has only 1 members, which is less than n_splits=3.",
                UserWarning,
                stacklevel=1,
            )
        return super().fit(train, valid, ctx)


@hookimpl
def harness_models():
    return [NanModel, ShortModel, Sleepy, Tied, Warns]

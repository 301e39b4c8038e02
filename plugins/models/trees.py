"""Tree ensembles on fixed-length vectors (the bar code), as in the paper's Table IV."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from harness import VECTOR, FitContext, Model, Samples


def _full_proba(classes: np.ndarray, proba: np.ndarray, n_classes: int) -> np.ndarray:
    """Columns for every class of the task, also those absent from the training split."""
    if proba.ndim == 1:
        proba = np.stack([1 - proba, proba], axis=1)
    out = np.zeros((proba.shape[0], n_classes))
    out[:, np.asarray(classes, dtype=int)] = proba
    return out


@dataclass
class RandomForest(Model):
    name: ClassVar[str] = "random_forest"
    description: ClassVar[str] = "scikit-learn random forest on a vector (paper Table IV search space)"
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})

    def search_space(self, trial) -> dict[str, Any]:
        return {
            "n_estimators": self.choose(trial, "n_estimators", [50, 100, 150]),
            "criterion": self.choose(trial, "criterion", ["gini", "entropy"]),
            "max_depth": self.choose(trial, "max_depth", [6, 12, None]),
            "max_features": self.choose(trial, "max_features", [None, "sqrt", "log2"]),
        }

    def fit(self, train: Samples, valid: Samples, params: dict[str, Any], ctx: FitContext) -> "RandomForest":
        from sklearn.ensemble import RandomForestClassifier

        self.n_classes_ = ctx.n_classes
        self.estimator_ = RandomForestClassifier(**params, random_state=ctx.seed, n_jobs=ctx.threads)
        self.estimator_.fit(np.asarray(train.X), train.y)
        return self

    def predict_proba(self, X) -> np.ndarray:
        proba = self.estimator_.predict_proba(np.asarray(X))
        return _full_proba(self.estimator_.classes_, proba, self.n_classes_)


@dataclass
class XGBoost(Model):
    name: ClassVar[str] = "xgboost"
    description: ClassVar[str] = "XGBoost gradient-boosted trees on a vector (Table IV equivalents)"
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})
    early_stopping_rounds: int = 20

    def search_space(self, trial) -> dict[str, Any]:
        return {
            "n_estimators": self.choose(trial, "n_estimators", [50, 100, 150]),
            "max_depth": self.choose(trial, "max_depth", [3, 6, 12]),
            "learning_rate": self.choose(trial, "learning_rate", [0.03, 0.1, 0.3]),
            "subsample": self.choose(trial, "subsample", [0.8, 1.0]),
            "colsample_bytree": self.choose(trial, "colsample_bytree", [0.5, 1.0]),
        }

    def fit(self, train: Samples, valid: Samples, params: dict[str, Any], ctx: FitContext) -> "XGBoost":
        from xgboost import XGBClassifier

        # XGBoost wants labels 0..k-1 with none missing: map the training classes.
        self.classes_ = np.unique(train.y)
        self.n_classes_ = ctx.n_classes
        lookup = {c: i for i, c in enumerate(self.classes_)}
        y_train = np.array([lookup[c] for c in train.y])
        keep = np.isin(valid.y, self.classes_)
        y_valid = np.array([lookup[c] for c in valid.y[keep]])
        device = "cuda" if ctx.device == "cuda" else "cpu"
        self.estimator_ = XGBClassifier(
            **params, random_state=ctx.seed, n_jobs=ctx.threads, tree_method="hist", device=device,
            early_stopping_rounds=self.early_stopping_rounds if keep.any() else None,
        )
        eval_set = [(np.asarray(valid.X)[keep], y_valid)] if keep.any() else None
        self.estimator_.fit(np.asarray(train.X), y_train, eval_set=eval_set, verbose=False)
        return self

    def predict_proba(self, X) -> np.ndarray:
        return _full_proba(self.classes_, self.estimator_.predict_proba(np.asarray(X)), self.n_classes_)

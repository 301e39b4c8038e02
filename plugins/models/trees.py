"""Tree ensembles on fixed-length vectors (the bar code), as in the paper's Table IV.

Fitted models persist as data: the random forest as the arrays its trees predict with
(`forest.npz`, read without pickle; forests stored by older versions through skops still
load), XGBoost as its JSON model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from harness import VECTOR, Choice, FitContext, Model, Samples

from .forest_arrays import load_forest, save_forest

# The one type in a fitted forest that skops does not trust by itself; `load` refuses a
# file holding any other.
FOREST_TYPES = ("sklearn.tree._tree.Tree",)


@dataclass
class RandomForest(Model):
    name: ClassVar[str] = "random_forest"
    description: ClassVar[str] = "scikit-learn random forest on a vector (paper Table IV search space)"
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})
    search_space: ClassVar[dict] = {
        "n_estimators": Choice(50, 100, 150),
        "criterion": Choice("gini", "entropy"),
        "max_depth": Choice(6, 12, None),
        "max_features": Choice(None, "sqrt", "log2"),
    }
    n_estimators: int = 100
    criterion: Literal["gini", "entropy", "log_loss"] = "gini"
    max_depth: int | None = None
    max_features: Literal["sqrt", "log2"] | None = "sqrt"

    def fit(self, train: Samples, valid: Samples, ctx: FitContext) -> "RandomForest":
        from sklearn.ensemble import RandomForestClassifier

        self.estimator_ = RandomForestClassifier(
            n_estimators=self.n_estimators,
            criterion=self.criterion,
            max_depth=self.max_depth,
            max_features=self.max_features,
            random_state=ctx.seed,
            n_jobs=ctx.threads,
        )
        self.estimator_.fit(np.asarray(train.X), train.y)
        # Trees are fitted in parallel, but predicted on one thread: scikit-learn sums the
        # trees' votes in whatever order threads finish, which moves the last bit.
        self.estimator_.n_jobs = 1
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.estimator_.predict_proba(np.asarray(X))

    def save(self, path: Path) -> None:
        # The arrays prediction reads, not skops: importing skops walks all of
        # scikit-learn (and imports torch), seconds per study.
        save_forest(self.estimator_, path / "forest.npz")

    def load(self, path: Path) -> "RandomForest":
        if (path / "forest.npz").exists():
            self.estimator_ = _load_forest(path / "forest.npz", self)
        else:
            self.estimator_ = _load_skops(path / "forest.skops")
        self.estimator_.n_jobs = 1
        self.classes_ = self.estimator_.classes_
        return self


def _load_forest(file: Path, model: RandomForest):
    from harness import UserError

    try:
        return load_forest(file, model.n_estimators, model.criterion, model.max_depth, model.max_features)
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise UserError(
            f"{file} is not a forest harness wrote ({type(exc).__name__}: {exc}); delete it and rerun"
        ) from None


def _load_skops(file: Path):
    """A forest stored through skops by an older version, with only the tree type trusted."""
    import skops.io

    from harness import UserError

    untrusted = set(skops.io.get_untrusted_types(file=file)) - set(FOREST_TYPES)
    if untrusted:
        raise UserError(
            f"{file} holds types a random forest does not ({', '.join(sorted(untrusted))}); "
            "it was not written by harness: delete it and rerun"
        )
    return skops.io.load(file, trusted=list(FOREST_TYPES))


@dataclass
class XGBoost(Model):
    name: ClassVar[str] = "xgboost"
    description: ClassVar[str] = "XGBoost gradient-boosted trees on a vector (Table IV equivalents)"
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})
    search_space: ClassVar[dict] = {
        "n_estimators": Choice(50, 100, 150),
        "max_depth": Choice(3, 6, 12),
        "learning_rate": Choice(0.03, 0.1, 0.3),
        "subsample": Choice(0.8, 1.0),
        "colsample_bytree": Choice(0.5, 1.0),
    }
    n_estimators: int = 100
    max_depth: int = 6
    learning_rate: float = 0.3
    subsample: float = 1.0
    colsample_bytree: float = 1.0
    early_stopping_rounds: int = 20

    def _estimator(self, seed: int = 0, threads: int = 1, device: str = "cpu", early_stopping: bool = False):
        from xgboost import XGBClassifier

        return XGBClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=self.subsample,
            colsample_bytree=self.colsample_bytree,
            random_state=seed,
            n_jobs=threads,
            tree_method="hist",
            device=device,
            early_stopping_rounds=self.early_stopping_rounds if early_stopping else None,
        )

    def fit(self, train: Samples, valid: Samples, ctx: FitContext) -> "XGBoost":
        # XGBoost wants labels 0..k-1 with none missing: map the training classes.
        self.classes_ = np.unique(train.y)
        lookup = {c: i for i, c in enumerate(self.classes_)}
        y_train = np.array([lookup[c] for c in train.y])
        keep = np.isin(valid.y, self.classes_)
        y_valid = np.array([lookup[c] for c in valid.y[keep]])
        device = "cuda" if ctx.device == "cuda" else "cpu"
        self.estimator_ = self._estimator(ctx.seed, ctx.threads, device, early_stopping=bool(keep.any()))
        eval_set = [(np.asarray(valid.X)[keep], y_valid)] if keep.any() else None
        self.estimator_.fit(np.asarray(train.X), y_train, eval_set=eval_set, verbose=False)
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.estimator_.predict_proba(np.asarray(X))

    def save(self, path: Path) -> None:
        self.estimator_.save_model(path / "xgboost.json")
        (path / "classes.json").write_text(json.dumps([int(c) for c in self.classes_]))

    def load(self, path: Path) -> "XGBoost":
        self.estimator_ = self._estimator()
        self.estimator_.load_model(path / "xgboost.json")
        self.classes_ = np.asarray(json.loads((path / "classes.json").read_text()), dtype=int)
        return self

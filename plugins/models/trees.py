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
        _save_forest(self.estimator_, path / "forest.npz")

    def load(self, path: Path) -> "RandomForest":
        if (path / "forest.npz").exists():
            self.estimator_ = _load_forest(
                path / "forest.npz", self.n_estimators, self.criterion, self.max_depth, self.max_features
            )
        else:
            self.estimator_ = _load_skops(path / "forest.skops")
        self.estimator_.n_jobs = 1
        self.classes_ = self.estimator_.classes_
        return self


def _save_forest(forest, file: Path) -> None:
    """Each tree's nodes in the form prediction needs: children, split feature and
    threshold (float64, exact) and the leaves' class fractions. Impurities and sample
    counts are left out (a restored forest predicts the same bits; its
    `feature_importances_` are not kept). Left children follow their parent, as the
    depth-first builder lays them out; checked here."""
    arrays: dict[str, np.ndarray] = {}
    for i, est in enumerate(forest.estimators_):
        state = est.tree_.__getstate__()
        nodes, values = state["nodes"], state["values"]
        inner = nodes["left_child"] >= 0
        if not np.array_equal(nodes["left_child"][inner], np.flatnonzero(inner) + 1):
            raise NotImplementedError("a tree not laid out depth first")
        arrays[f"right{i}"] = nodes["right_child"].astype(np.int32)
        arrays[f"feature{i}"] = nodes["feature"].astype(np.int32)
        arrays[f"threshold{i}"] = nodes["threshold"][inner]
        arrays[f"missing_left{i}"] = nodes["missing_go_to_left"][inner]
        arrays[f"leaf_values{i}"] = values[~inner]
        arrays[f"depth{i}"] = np.array(state["max_depth"], dtype=np.int64)
    arrays["classes"] = np.asarray(forest.classes_)
    arrays["n_features"] = np.array(forest.n_features_in_, dtype=np.int64)
    arrays["n_trees"] = np.array(len(forest.estimators_), dtype=np.int64)
    with open(file, "wb") as f:
        np.savez(f, **arrays)


def _load_forest(file: Path, n_estimators: int, criterion: str, max_depth: int | None, max_features):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.tree import DecisionTreeClassifier
    from sklearn.tree._tree import Tree

    from harness import UserError

    try:
        with np.load(file, allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        classes, n_features, n_trees = a["classes"], int(a["n_features"]), int(a["n_trees"])
        n_classes = np.array([len(classes)], dtype=np.intp)
        forest = RandomForestClassifier(
            n_estimators=n_estimators, criterion=criterion, max_depth=max_depth, max_features=max_features
        )
        trees = []
        for i in range(n_trees):
            right, feature = a[f"right{i}"], a[f"feature{i}"]
            inner = right >= 0
            nodes = np.zeros(len(right), dtype=Tree(n_features, n_classes, 1).__getstate__()["nodes"].dtype)
            nodes["left_child"] = np.where(inner, np.arange(len(right)) + 1, -1)
            nodes["right_child"] = right
            nodes["feature"] = feature
            nodes["threshold"] = -2.0
            nodes["threshold"][inner] = a[f"threshold{i}"]
            nodes["missing_go_to_left"][inner] = a[f"missing_left{i}"]
            values = np.zeros((len(right), 1, len(classes)))
            values[~inner] = a[f"leaf_values{i}"]
            tree = Tree(n_features, n_classes, 1)
            tree.__setstate__(
                {"max_depth": int(a[f"depth{i}"]), "node_count": len(right), "nodes": nodes, "values": values}
            )
            est = DecisionTreeClassifier(criterion=criterion, max_depth=max_depth, max_features=max_features)
            est.tree_, est.n_features_in_, est.n_outputs_ = tree, n_features, 1
            est.classes_, est.n_classes_ = classes, len(classes)
            est.max_features_ = _max_features(max_features, n_features)
            trees.append(est)
    except (KeyError, ValueError, TypeError, OSError) as exc:
        raise UserError(
            f"{file} is not a forest harness wrote ({type(exc).__name__}: {exc}); delete it and rerun"
        ) from None
    forest.estimators_, forest.estimator_ = trees, DecisionTreeClassifier()
    forest.n_features_in_, forest.n_outputs_ = n_features, 1
    forest.classes_, forest.n_classes_ = classes, len(classes)
    return forest


def _max_features(max_features, n_features: int) -> int:
    if max_features == "sqrt":
        return max(1, int(np.sqrt(n_features)))
    if max_features == "log2":
        return max(1, int(np.log2(n_features)))
    return n_features


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

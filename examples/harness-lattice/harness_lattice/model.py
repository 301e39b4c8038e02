"""`logistic`: standardised logistic regression (scikit-learn), saved as plain JSON."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from harness import VECTOR, Choice, FitContext, Model, Range, Samples


@dataclass
class Logistic(Model):
    name: ClassVar[str] = "logistic"
    description: ClassVar[str] = "logistic regression on standardised vectors"
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})
    search_space: ClassVar[dict] = {"C": Range(1e-3, 1e3, log=True), "balanced": Choice(False, True)}
    C: float = 1.0  # inverse regularisation strength
    balanced: bool = False  # weight classes inversely to their frequency

    def fit(self, train: Samples, valid: Samples, ctx: FitContext) -> "Logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        weight = "balanced" if self.balanced else None
        self.pipeline_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, class_weight=weight))
        self.pipeline_.fit(np.asarray(train.X), train.y)
        self.classes_ = self.pipeline_.classes_  # the core pads classes absent from training
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.pipeline_.predict_proba(np.asarray(X))

    def save(self, path: Path) -> None:
        scaler, logistic = self.pipeline_[0], self.pipeline_[1]
        state = {
            "mean": scaler.mean_,
            "scale": scaler.scale_,
            "coef": logistic.coef_,
            "intercept": logistic.intercept_,
            "classes": logistic.classes_,
        }
        (path / "logistic.json").write_text(json.dumps({k: np.asarray(v).tolist() for k, v in state.items()}))

    def load(self, path: Path) -> "Logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        state = {k: np.asarray(v) for k, v in json.loads((path / "logistic.json").read_text()).items()}
        scaler, logistic = StandardScaler(), LogisticRegression(C=self.C)
        scaler.mean_, scaler.scale_, scaler.n_features_in_ = state["mean"], state["scale"], len(state["mean"])
        logistic.coef_, logistic.intercept_, logistic.classes_ = state["coef"], state["intercept"], state["classes"]
        logistic.n_features_in_ = len(state["mean"])
        self.pipeline_ = make_pipeline(scaler, logistic)
        self.classes_ = state["classes"]
        return self

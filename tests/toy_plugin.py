"""A tiny plugin for testing the core without the built-in plugins: cubic vs tetragonal
crystals told apart by a two-number vector (the lattice ratios), and a numpy model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pymatgen.core import Lattice, Structure

from harness import (
    CLOUD,
    VECTOR,
    Choice,
    Dataset,
    Material,
    Model,
    Perturbation,
    Range,
    Representation,
    Skip,
    Task,
    hookimpl,
)


@dataclass
class ToyDataset(Dataset):
    name: ClassVar[str] = "toy"
    description: ClassVar[str] = "cubic and tetragonal one-atom cells"
    default: ClassVar[bool] = True
    size: int = 120
    seed: int = 0
    bad: int = 0  # structures that cannot be featurised

    def load(self, ctx):
        rng = np.random.default_rng(self.seed)
        out = []
        for i in range(self.size):
            a = rng.uniform(3, 5)
            tetragonal = i % 2 == 1
            c = a * rng.uniform(1.15, 1.4) if tetragonal else a
            s = Structure(Lattice.tetragonal(a, c), ["Fe" if i < self.size - self.bad else "X0+"], [[0, 0, 0]])
            out.append(Material(f"toy-{i}", s, {"system": "tetragonal" if tetragonal else "cubic"}))
        return out


@dataclass
class ToySystem(Task):
    name: ClassVar[str] = "toy_system"
    description: ClassVar[str] = "cubic (0) vs tetragonal (1)"
    metric: ClassVar[str] = "roc_auc"
    extra_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)

    @property
    def classes(self):
        return ("cubic", "tetragonal")

    def label(self, m):
        return self.classes.index(m.props["system"])

    def representation_defaults(self):
        return {"ratios": {"scale": 2.0}}


@dataclass
class Ratios(Representation):
    name: ClassVar[str] = "ratios"
    description: ClassVar[str] = "c/a and b/a"
    kind: ClassVar[str] = VECTOR
    scale: float = 1.0

    def columns(self):
        return ["c/a", "b/a"]

    def featurize(self, structure):
        if any(str(sp) == "X0+" for sp in structure.species):
            raise Skip("dummy species")
        a, b, c = structure.lattice.abc
        return np.array([c / a, b / a]) * self.scale


@dataclass
class Corners(Representation):
    name: ClassVar[str] = "corners"
    description: ClassVar[str] = "lattice vectors as a 3-point cloud"
    kind: ClassVar[str] = CLOUD

    def columns(self):
        return ["x", "y", "z", "intensity"]

    def featurize(self, structure):
        m = structure.lattice.matrix
        return np.hstack([m, np.ones((3, 1))])


@dataclass
class Identity(Perturbation):
    name: ClassVar[str] = "identity"
    description: ClassVar[str] = "leaves the input alone"
    default: ClassVar[bool] = True

    def apply(self, x, rng, columns):
        return x.copy()


@dataclass
class Noise(Perturbation):
    name: ClassVar[str] = "noise"
    description: ClassVar[str] = "adds Gaussian noise"
    sigma: float = 0.01

    def apply(self, x, rng, columns):
        return x + rng.normal(0, self.sigma, size=x.shape)


@dataclass
class Centroids(Model):
    """Nearest centroid with soft assignments: P(k) ~ exp(-|z - c_k|^2 / temperature).

    A cloud is pooled into one vector per crystal (max or mean over its points), as
    PointNet pools; with max pooling `point_importance` counts the features each point wins.
    """

    name: ClassVar[str] = "centroids"
    description: ClassVar[str] = "numpy nearest-centroid classifier (a mock model for tests)"
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR, CLOUD})
    search_space: ClassVar[dict] = {"temperature": Range(0.01, 10.0, log=True), "standardize": Choice(True, False)}
    temperature: float = 1.0
    standardize: bool = True
    pool: str = "max"  # clouds: "max" or "mean" over the points

    def _pooled(self, X) -> np.ndarray:
        if isinstance(X, np.ndarray) and X.ndim == 2:
            return X.astype(np.float64)
        reduce = np.max if self.pool == "max" else np.mean
        return np.stack([reduce(np.asarray(x, dtype=np.float64), axis=0) for x in X])

    def fit(self, train, valid, ctx):
        z = self._pooled(train.X)
        self.mean_ = z.mean(axis=0) if self.standardize else np.zeros(z.shape[1])
        self.scale_ = z.std(axis=0) + 1e-9 if self.standardize else np.ones(z.shape[1])
        z = (z - self.mean_) / self.scale_
        self.classes_ = np.unique(train.y)
        self.centroids_ = np.stack([z[train.y == k].mean(axis=0) for k in self.classes_])
        return self

    def predict_proba(self, X):
        z = (self._pooled(X) - self.mean_) / self.scale_
        logits = -((z[:, None, :] - self.centroids_[None]) ** 2).sum(axis=2) / self.temperature
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def point_importance(self, x):
        """How many features of the pooled vector each point of the cloud supplies."""
        winners = np.argmax(np.asarray(x), axis=0)
        return np.bincount(winners, minlength=len(x))

    def save(self, path):
        np.savez(
            path / "centroids.npz", mean=self.mean_, scale=self.scale_, centroids=self.centroids_, classes=self.classes_
        )

    def load(self, path):
        with np.load(path / "centroids.npz", allow_pickle=False) as z:
            self.mean_, self.scale_, self.centroids_, self.classes_ = (
                z["mean"],
                z["scale"],
                z["centroids"],
                z["classes"],
            )
        return self


@dataclass
class VectorCentroids(Centroids):
    name: ClassVar[str] = "vector_centroids"
    description: ClassVar[str] = "centroids that take vectors only (a mock for kinds that do not fit)"
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})


@hookimpl
def harness_datasets():
    return [ToyDataset]


@hookimpl
def harness_tasks():
    return [ToySystem]


@hookimpl
def harness_representations():
    return [Ratios, Corners]


@hookimpl
def harness_perturbations():
    return [Identity, Noise]


@hookimpl
def harness_models():
    return [Centroids, VectorCentroids]

"""A tiny plugin for testing the core without the built-in physics: cubic vs tetragonal
crystals told apart by a two-number vector (the lattice ratios)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pymatgen.core import Lattice, Structure

from harness import CLOUD, VECTOR, Dataset, Material, Perturbation, Representation, Skip, Task, hookimpl


@dataclass
class ToyDataset(Dataset):
    name: ClassVar[str] = "toy"
    description: ClassVar[str] = "cubic and tetragonal one-atom cells"
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
        return {"scale": 2.0}


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

    def apply(self, x, rng, columns):
        return x.copy()


@dataclass
class Noise(Perturbation):
    name: ClassVar[str] = "noise"
    description: ClassVar[str] = "adds Gaussian noise"
    sigma: float = 0.01

    def apply(self, x, rng, columns):
        return x + rng.normal(0, self.sigma, size=x.shape)


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

"""The study's input perturbations (phi1-phi3) plus intensity masking and rotation.

Each `apply` is a pure function of (x, rng): it returns a new array, leaves `x` alone and
draws its randomness only from `rng`, so the same generator state gives the same output.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from harness import CLOUD, Perturbation


def _intensity(x: np.ndarray, columns: Sequence[str]) -> tuple[slice | int, ...]:
    """Index of the intensity channel: its column in a cloud, the whole of a bar code."""
    index = list(columns).index("intensity") if "intensity" in columns else slice(None)
    if x.ndim == 2:
        if isinstance(index, slice):
            raise ValueError(f"a cloud needs an 'intensity' column to perturb; columns are {list(columns)}")
        return (slice(None), index)
    return (index,)


@dataclass
class NoPerturbation(Perturbation):
    name: ClassVar[str] = "none"
    description: ClassVar[str] = "phi1: the input as it is"
    default: ClassVar[bool] = True  # the perturbation of a config that names none
    identity: ClassVar[bool] = True  # studies skip it: no generator per sample

    def paper_label(self) -> str:
        return "φ1"  # Wang et al. 2022: the paper's name for this input

    def apply(self, x: np.ndarray, rng: np.random.Generator, columns: Sequence[str]) -> np.ndarray:
        return np.array(x, copy=True)


@dataclass
class RandomScale(Perturbation):
    name: ClassVar[str] = "random_scale"
    description: ClassVar[str] = "phi2: intensity channel times u ~ U(0, 1], a fresh u per material per draw"
    needs_columns: ClassVar[dict] = {CLOUD: ("intensity",)}  # a vector is all intensities

    def paper_label(self) -> str:
        return "φ2"  # Wang et al. 2022: the paper's name for this input

    def apply(self, x: np.ndarray, rng: np.random.Generator, columns: Sequence[str]) -> np.ndarray:
        out = np.array(x, copy=True)
        u = 1.0 - rng.random()  # rng.random() is in [0, 1): u in (0, 1]
        out[_intensity(out, columns)] *= u
        return out


@dataclass
class SystematicAbsence(Perturbation):
    name: ClassVar[str] = "systematic_absence"
    description: ClassVar[str] = "phi3: intensity channel -> 1 where above threshold, else 0 (only which peaks exist)"
    needs_columns: ClassVar[dict] = {CLOUD: ("intensity",)}

    threshold: float = 1e-3

    def paper_label(self) -> str:
        return "φ3"  # Wang et al. 2022: the paper's name for this input

    def apply(self, x: np.ndarray, rng: np.random.Generator, columns: Sequence[str]) -> np.ndarray:
        out = np.array(x, copy=True)
        index = _intensity(out, columns)
        out[index] = (out[index] > self.threshold).astype(out.dtype)
        return out


@dataclass
class MaskIntensity(Perturbation):
    name: ClassVar[str] = "mask_intensity"
    needs_columns: ClassVar[dict] = {CLOUD: ("intensity",)}
    description: ClassVar[str] = "Intensity channel set to 0: the model sees point positions only"
    accepts: ClassVar[frozenset[str]] = frozenset({CLOUD})

    def apply(self, x: np.ndarray, rng: np.random.Generator, columns: Sequence[str]) -> np.ndarray:
        out = np.array(x, copy=True)
        out[_intensity(out, columns)] = 0
        return out


@dataclass
class Rotate(Perturbation):
    name: ClassVar[str] = "rotate"
    description: ClassVar[str] = "Rotate x, y, z: Haar-random in SO(3), or by an angle within +/- max_angle (radians)"
    accepts: ClassVar[frozenset[str]] = frozenset({CLOUD})

    max_angle: float = 0.0  # 0: uniform over all rotations

    def __post_init__(self) -> None:
        if not self.max_angle >= 0:
            raise ValueError(f"max_angle must be >= 0 radians (0 = any rotation); got {self.max_angle!r}")

    def rotation(self, rng: np.random.Generator) -> np.ndarray:
        """The 3x3 rotation matrix of one draw."""
        from scipy.spatial.transform import Rotation

        if self.max_angle <= 0:
            return Rotation.random(rng=rng).as_matrix()
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = rng.uniform(-self.max_angle, self.max_angle)
        return Rotation.from_rotvec(angle * axis).as_matrix()

    def apply(self, x: np.ndarray, rng: np.random.Generator, columns: Sequence[str]) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] < 3:
            raise ValueError(f"rotate needs a cloud with x, y, z columns; got shape {x.shape}")
        out = np.array(x, copy=True)
        xyz = np.asarray(x[:, :3], dtype=np.float64)
        out[:, :3] = xyz @ self.rotation(rng).T
        return out

"""Perturbations of a powder pattern (`powder_pattern`), after Guo et al.'s CrystalNet:
the information a real measurement loses: peak width, counting noise, a limited Q range.

Each reads where its entries lie from the pattern's column names ("2theta=...|q=...") and
refuses any other vector with a message naming the fix. Each is a pure function of
(x, rng): same generator state, same output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal, Sequence

import numpy as np

from harness import VECTOR, Perturbation
from harness import UserError

SHAPES = ("gaussian", "pseudo_voigt")


def grid_positions(name: str, columns: Sequence[str], axis: str) -> np.ndarray:
    """The grid's 2-theta (degrees) or q (1/A) from `powder_pattern` column names."""
    try:
        return np.array([float(dict(p.split("=") for p in c.split("|"))[axis]) for c in columns])
    except (KeyError, ValueError):
        shown = ", ".join(list(columns)[:2])
        raise UserError(
            f"perturbation {name!r} applies to powder_pattern only (columns like '2theta=...|q=...'), "
            f"not a vector with columns {shown}, ...: exclude that combination"
        ) from None


@dataclass
class PeakBroadening(Perturbation):
    name: ClassVar[str] = "peak_broadening"
    description: ClassVar[str] = (
        "powder pattern convolved with a Gaussian or pseudo-Voigt peak, FWHM ~ U(fwhm_min, fwhm_max) "
        "degrees per sample; rescaled to max 1"
    )
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})

    fwhm_min: float = 0.1  # degrees 2-theta
    fwhm_max: float = 1.0
    shape: Literal["gaussian", "pseudo_voigt"] = "gaussian"
    eta: float = 0.5  # Lorentzian fraction of the pseudo-Voigt

    def __post_init__(self) -> None:
        if not 0 < self.fwhm_min <= self.fwhm_max:
            raise ValueError(f"need 0 < fwhm_min <= fwhm_max (degrees); got {self.fwhm_min!r}, {self.fwhm_max!r}")
        if self.shape not in SHAPES:
            raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {self.shape!r}")
        if not 0 <= self.eta <= 1:
            raise ValueError(f"eta must be within [0, 1]; got {self.eta!r}")

    def kernel(self, fwhm: float, step: float) -> np.ndarray:
        """The peak shape sampled on the grid step, unit sum, centred."""
        sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
        reach = 4 * sigma if self.shape == "gaussian" else 20 * fwhm  # Lorentzian tails are long
        offsets = np.arange(-math.ceil(reach / step), math.ceil(reach / step) + 1) * step
        shape = np.exp(-0.5 * (offsets / sigma) ** 2)
        if self.shape == "pseudo_voigt":
            gamma = fwhm / 2
            lorentz = 1 / (1 + (offsets / gamma) ** 2)
            shape = (1 - self.eta) * shape / shape.sum() + self.eta * lorentz / lorentz.sum()
        return shape / shape.sum()

    def apply(self, x: np.ndarray, rng: np.random.Generator, columns: Sequence[str]) -> np.ndarray:
        grid = grid_positions(self.name, columns, "2theta")
        fwhm = rng.uniform(self.fwhm_min, self.fwhm_max)
        kernel = self.kernel(fwhm, float(grid[1] - grid[0]))
        from scipy.ndimage import convolve1d

        out = convolve1d(np.asarray(x, dtype=float), kernel, mode="constant")  # zero beyond the grid
        top = out.max(initial=0.0)
        return (out / top if top > 0 else out).astype(np.asarray(x).dtype)


@dataclass
class Noise(Perturbation):
    """Named `powder_noise`, not `noise`: a generic name that third-party plugins (and the
    test suite's toy plugin) already use; a built-in must not take it from them."""

    name: ClassVar[str] = "powder_noise"
    description: ClassVar[str] = (
        "counting noise on a powder pattern: Poisson with `counts` at the strongest point, plus Gaussian "
        "of `sigma` x max"
    )
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})

    counts: float = 1000.0  # expected counts at the maximum; 0: no Poisson noise
    sigma: float = 0.0  # Gaussian noise, as a fraction of the maximum

    def __post_init__(self) -> None:
        if self.counts < 0 or self.sigma < 0:
            raise ValueError(f"counts and sigma must be >= 0; got {self.counts!r}, {self.sigma!r}")

    def apply(self, x: np.ndarray, rng: np.random.Generator, columns: Sequence[str]) -> np.ndarray:
        grid_positions(self.name, columns, "2theta")  # refuses other vectors
        x = np.asarray(x, dtype=float)
        top = x.max(initial=0.0)
        out = x.copy()
        if self.counts > 0 and top > 0:
            out = rng.poisson(np.maximum(x, 0) / top * self.counts) / self.counts * top
        if self.sigma > 0:
            out = out + rng.normal(0.0, self.sigma * top, size=x.shape)
        return out.astype(np.float32)


@dataclass
class QRange(Perturbation):
    name: ClassVar[str] = "q_range"
    description: ClassVar[str] = "powder pattern truncated to q_min <= Q <= q_max (1/A): entries outside set to 0"
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})

    q_min: float = 0.0
    q_max: float = 4.0  # 1/A; Cu K-alpha reaches 5.76 at 2-theta = 90 degrees

    def __post_init__(self) -> None:
        if not 0 <= self.q_min < self.q_max:
            raise ValueError(f"need 0 <= q_min < q_max (1/A); got {self.q_min!r}, {self.q_max!r}")

    def apply(self, x: np.ndarray, rng: np.random.Generator, columns: Sequence[str]) -> np.ndarray:
        q = grid_positions(self.name, columns, "q")
        out = np.array(x, copy=True)
        out[(q < self.q_min) | (q > self.q_max)] = 0
        return out

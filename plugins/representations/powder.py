"""`powder_pattern`: the 1D X-ray powder pattern on a fixed 2-theta grid.

Every reflection inside the limiting sphere is summed separately (h and -h, all members
of a family), so multiplicities enter as pymatgen's XRDCalculator counts them; each gets
|F|^2 from the project's structure factors (`scattering.structure_factors`, the same
X-ray form factors as the diffraction clouds) times the Lorentz-polarisation factor
(1 + cos^2 2t) / (sin^2 t cos t).
The sticks are then put on the grid: split linearly between the two nearest grid points
(`fwhm = 0`: total and centroid kept), or as unit-area Gaussians of that FWHM. The pattern
is scaled to a maximum of 1 (per crystal, no statistic of any data set).

Columns name their grid point: "2theta=12.300|q=0.8737" (q = 4 pi sin(t) / lambda, 1/A),
so perturbations such as `q_range` know where each entry lies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from harness import VECTOR, Representation, Skip

from . import cells as _cells
from . import scattering as _sc

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure


@dataclass(frozen=True)
class Reflections:
    """Every reflection of one crystal in the 2-theta range, unmerged."""

    hkl: np.ndarray  # (M, 3) int
    two_theta: np.ndarray  # (M,) degrees
    intensity: np.ndarray  # (M,) |F|^2 x Lorentz-polarisation (electrons^2, arbitrary scale)


def reflections(cell: _cells.Cell, wavelength: float, two_theta_min: float, two_theta_max: float) -> Reflections:
    """All (h, k, l) with 2-theta in [min, max] and their LP-weighted |F|^2."""
    g_min = 2 * math.sin(math.radians(two_theta_min / 2)) / wavelength
    g_max = 2 * math.sin(math.radians(two_theta_max / 2)) / wavelength
    bound = np.floor(g_max * np.linalg.norm(cell.lattice, axis=1)).astype(int)  # |h| <= g |a|
    axes = [np.arange(-b, b + 1) for b in bound]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    g = np.linalg.norm(hkl @ _sc.reciprocal(cell.lattice), axis=1)
    keep = (g > 0) & (g >= g_min) & (g <= g_max)
    hkl, g = hkl[keep], g[keep]
    if len(hkl) == 0:
        return Reflections(hkl, np.zeros(0), np.zeros(0))
    f = _sc.structure_factors(cell, hkl, "xray")  # in chunks: large cells have ~10^5 reflections
    f2 = f.real**2 + f.imag**2
    f2[f2 < _sc.ABSENT * f2.max()] = 0.0  # systematic absences exactly zero, as in the kernel
    theta = np.arcsin(np.clip(wavelength * g / 2, -1.0, 1.0))
    lorentz = (1 + np.cos(2 * theta) ** 2) / (np.sin(theta) ** 2 * np.cos(theta))
    return Reflections(hkl, np.degrees(2 * theta), f2 * lorentz)


def column_position(column: str) -> dict[str, float]:
    """{"2theta": ..., "q": ...} of a `powder_pattern` column name."""
    return {key: float(value) for key, value in (part.split("=") for part in column.split("|"))}


@dataclass
class PowderPattern(Representation):
    name: ClassVar[str] = "powder_pattern"
    description: ClassVar[str] = (
        "1D X-ray powder pattern on a fixed 2-theta grid: |F|^2 of every reflection x Lorentz-polarisation, "
        "sticks or Gaussian peaks, max 1"
    )
    kind: ClassVar[str] = VECTOR
    version: ClassVar[str] = "1"

    wavelength: float = 1.5418  # angstrom (Cu K-alpha)
    two_theta_min: float = 5.0  # degrees
    two_theta_max: float = 90.0
    n_points: int = 851  # grid points, ends included (0.1 degree steps by default)
    fwhm: float = 0.2  # Gaussian peak width, degrees 2-theta; 0: sticks split between grid points

    def __post_init__(self) -> None:
        if not self.wavelength > 0:
            raise ValueError(f"wavelength must be positive (angstrom); got {self.wavelength!r}")
        if not 0 < self.two_theta_min < self.two_theta_max < 180:
            raise ValueError(
                f"need 0 < two_theta_min < two_theta_max < 180 degrees; got {self.two_theta_min!r}, {self.two_theta_max!r}"
            )
        if self.n_points < 2:
            raise ValueError(f"n_points must be at least 2; got {self.n_points!r}")
        if self.fwhm < 0:
            raise ValueError(f"fwhm must be >= 0 degrees; got {self.fwhm!r}")

    @property
    def two_theta(self) -> np.ndarray:
        return np.linspace(self.two_theta_min, self.two_theta_max, self.n_points)

    def columns(self) -> list[str]:
        q = 4 * np.pi * np.sin(np.radians(self.two_theta / 2)) / self.wavelength
        return [f"2theta={t:.4f}|q={qq:.5f}" for t, qq in zip(self.two_theta, q)]

    def reflections(self, structure: "Structure") -> Reflections:
        cell = _cells.cell_from_structure(structure)
        _sc.check_species(cell, "xray")
        return reflections(cell, self.wavelength, self.two_theta_min, self.two_theta_max)

    def featurize(self, structure: "Structure") -> np.ndarray:
        refl = self.reflections(structure)
        profile = self.profile(refl.two_theta, refl.intensity)
        top = float(profile.max(initial=0.0))
        if not top > 0:
            raise Skip("no reflection in the 2-theta range")
        return (profile / top).astype(np.float32)

    def profile(self, two_theta: np.ndarray, intensity: np.ndarray) -> np.ndarray:
        """Sticks (2-theta, I) on the grid: linear split (fwhm 0) or Gaussian peaks."""
        grid = self.two_theta
        step = grid[1] - grid[0]
        out = np.zeros(len(grid))
        if self.fwhm == 0:
            pos = (two_theta - grid[0]) / step
            lo = np.clip(np.floor(pos).astype(int), 0, len(grid) - 1)
            hi = np.clip(lo + 1, 0, len(grid) - 1)
            frac = pos - lo
            np.add.at(out, lo, intensity * (1 - frac))
            np.add.at(out, hi, intensity * frac)
            return out
        sigma = self.fwhm / (2 * math.sqrt(2 * math.log(2)))
        # merge reflections on one grid step first: the Gaussians cost O(peaks x grid)
        key = np.rint((two_theta - grid[0]) / (step / 10)).astype(np.int64)
        uniq, inverse = np.unique(key, return_inverse=True)
        centres = np.bincount(inverse, weights=two_theta * intensity) / np.maximum(
            np.bincount(inverse, weights=intensity), 1e-300
        )
        weights = np.bincount(inverse, weights=intensity)
        for chunk in range(0, len(uniq), 512):
            c, w = centres[chunk : chunk + 512], weights[chunk : chunk + 512]
            out += (w[:, None] * np.exp(-0.5 * ((grid[None, :] - c[:, None]) / sigma) ** 2)).sum(axis=0)
        return out / (sigma * math.sqrt(2 * math.pi))

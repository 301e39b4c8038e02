"""`density_cloud` and `density_grid`: the X-ray electron density of the cell in real space.

The density is a Fourier synthesis of the structure factors, as VESTA draws it for an
experimental structure: rho(r) = (1/V) sum_h F(h) exp(-B s^2) exp(-2 pi i h.r), over every
reflection with |g| <= 1 / d_min (the (000) term F = sum of Z included), with F from the
project's kernel and X-ray form factors (`scattering.structure_factors`). The Debye-Waller
damping exp(-B s^2), s = |g|/2, softens the truncation ripples; it leaves F(000) and so the
electron count alone. The cell is the standard cell (`cell`, `symprec`) of `cells`.

`density_cloud` (Kim et al., npj Comput. Mater. 2024): `n_points` points x (x, y, z,
density), sampled
- "grid": the regular fractional grid m x m x m, m^3 = n_points (what beat random sampling),
- "random": uniform random positions in the cell,
- "density_weighted": grid points of an 8x finer grid drawn with probability ~ density;
random draws are seeded by `seed` and the crystal's content, so featurisation stays a pure
function of the structure. x, y, z are Cartesian, in nm (angstrom x POSITION_SCALE).

`density_grid`: the density on the g x g x g fractional grid as a flat vector of g^3 (the
core has no voxel kind; the 3D CNN reshapes it), for `cnn3d`.

Density channel: ln(1 + max(rho, 0)) / ln(1 + 1000), rho in e/A^3, clipped to [0, 1]:
truncation ripples below 0 read as empty space; 1000 e/A^3 is beyond any atom at these
resolutions (a mercury atom at d_min 0.77 A, B = 1 A^2 peaks near 200).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, Sequence

import numpy as np

from harness import CLOUD, VECTOR, Representation, Skip

from . import cells as _cells
from . import scattering as _sc

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

POSITION_SCALE = 0.1  # angstrom -> nm
DENSITY_CEILING = 1000.0  # e/A^3 mapped to 1
SAMPLINGS = ("grid", "random", "density_weighted")
_PHASE_CHUNK = 2_000_000  # entries of a (points, reflections) phase block


def encode_density(rho: np.ndarray) -> np.ndarray:
    return np.clip(np.log1p(np.maximum(rho, 0.0)) / math.log1p(DENSITY_CEILING), 0.0, 1.0)


@dataclass(frozen=True)
class Synthesis:
    """Damped structure factors of one cell, ready to be summed at any point."""

    cell: _cells.Cell
    hkl: np.ndarray  # (M, 3) int, (000) included
    f: np.ndarray  # (M,) complex, damped

    def at_grid(self, m: tuple[int, int, int]) -> np.ndarray:
        """rho on the fractional grid (a/m0, b/m1, c/m2): (m0, m1, m2), e/A^3.

        Separable: a dense cube of F contracted one axis at a time."""
        lo = self.hkl.min(axis=0)
        span = self.hkl.max(axis=0) - lo + 1
        dense = np.zeros(tuple(span), dtype=complex)
        dense[tuple((self.hkl - lo).T)] = self.f
        out = dense
        for axis in range(3):
            orders = np.arange(lo[axis], lo[axis] + span[axis])
            x = np.arange(m[axis]) / m[axis]
            kernel = np.exp(-2j * math.pi * np.outer(orders, x))  # (span, m)
            out = np.tensordot(out, kernel, axes=([0], [0]))  # contracted axis moves to the end
        return out.real / self.cell.volume

    def at_points(self, frac: np.ndarray) -> np.ndarray:
        """rho at fractional positions (N, 3): (N,), e/A^3."""
        out = np.empty(len(frac))
        rows = max(1, _PHASE_CHUNK // max(1, len(self.hkl)))
        for start in range(0, len(frac), rows):
            block = frac[start : start + rows]
            phases = _sc._phases(block, self.hkl.astype(float))  # exp(+2 pi i h.r), per-axis products
            out[start : start + rows] = (phases.conj() @ self.f).real
        return out / self.cell.volume


def synthesis(cell: _cells.Cell, d_min: float, b_factor: float) -> Synthesis:
    """Every reflection with |g| <= 1/d_min and its damped structure factor."""
    g_max = 1.0 / d_min
    bound = np.floor(g_max * np.linalg.norm(cell.lattice, axis=1)).astype(int)
    axes = [np.arange(-b, b + 1) for b in bound]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    g = np.linalg.norm(hkl @ _sc.reciprocal(cell.lattice), axis=1)
    keep = g <= g_max
    hkl, g = hkl[keep], g[keep]
    f = _sc.structure_factors(cell, hkl, "xray") * np.exp(-b_factor * (g / 2) ** 2)
    return Synthesis(cell, hkl, f)


def electrons(cell: _cells.Cell) -> float:
    """sum of occupancy x Z over the cell: what the density must integrate to."""
    counts = np.bincount(cell.types, minlength=len(cell.species))
    return float(sum(n * sum(occ * z for _, z, occ in entries) for n, entries in zip(counts, cell.species)))


@dataclass
class _Density(Representation):
    """Shared parameters: cell, resolution, damping."""

    version: ClassVar[str] = "1"

    cell: Literal["primitive", "conventional"] = "conventional"
    symprec: float = 0.1
    d_min: float = 0.7709  # angstrom: the resolution of Cu K-alpha (lambda / 2)
    b_factor: float = 1.0  # angstrom^2, isotropic Debye-Waller damping

    def __post_init__(self) -> None:
        if self.cell not in ("primitive", "conventional"):
            raise ValueError(f"cell must be 'primitive' or 'conventional'; got {self.cell!r}")
        if not self.d_min > 0:
            raise ValueError(f"d_min must be positive (angstrom); got {self.d_min!r}")
        if self.b_factor < 0:
            raise ValueError(f"b_factor must be >= 0 (angstrom^2); got {self.b_factor!r}")
        if not self.symprec > 0:
            raise ValueError(f"symprec must be positive (angstrom); got {self.symprec!r}")

    def syntheses(self, structures: Sequence["Structure"]) -> list[Synthesis | Skip]:
        out: list[Synthesis | Skip] = []
        for cell in _cells.cached_standard_cells(structures, self.cell, self.symprec):
            try:
                if isinstance(cell, Skip):
                    raise cell
                _sc.check_species(cell, "xray")
                out.append(synthesis(cell, self.d_min, self.b_factor))
            except Skip as exc:
                out.append(exc)
        return out

    def encode(self, synth: Synthesis) -> np.ndarray:
        raise NotImplementedError

    def featurize_many(self, structures: Sequence["Structure"]) -> list[np.ndarray | Skip]:
        out: list[np.ndarray | Skip] = []
        for synth in self.syntheses(structures):
            if isinstance(synth, Skip):
                out.append(synth)
                continue
            try:
                out.append(self.encode(synth).astype(np.float32))
            except Exception as exc:  # a bad structure, never a silent drop
                out.append(Skip(f"{type(exc).__name__}: {exc}"))
        return out

    def featurize(self, structure: "Structure") -> np.ndarray:
        (result,) = self.featurize_many([structure])
        if isinstance(result, Skip):
            raise result
        return result


@dataclass
class DensityCloud(_Density):
    name: ClassVar[str] = "density_cloud"
    description: ClassVar[str] = (
        "electron-density point cloud (Kim et al. 2024): Fourier synthesis of the X-ray structure factors, "
        "n_points x (x, y, z, density) sampled on a grid, at random or by density"
    )
    kind: ClassVar[str] = CLOUD

    n_points: int = 512
    sampling: Literal["grid", "random", "density_weighted"] = "grid"
    seed: int = 0  # for random and density_weighted sampling

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {', '.join(SAMPLINGS)}; got {self.sampling!r}")
        if self.n_points < 1:
            raise ValueError(f"n_points must be positive; got {self.n_points!r}")
        if self.sampling == "grid" and round(self.n_points ** (1 / 3)) ** 3 != self.n_points:
            m = round(self.n_points ** (1 / 3))
            raise ValueError(f"grid sampling needs n_points = m^3 (e.g. {m**3}); got {self.n_points!r}")

    def columns(self) -> list[str]:
        return ["x", "y", "z", "density"]

    def sample(self, synth: Synthesis) -> tuple[np.ndarray, np.ndarray]:
        """Fractional positions (n_points, 3) and raw density there (e/A^3)."""
        if self.sampling == "grid":
            m = round(self.n_points ** (1 / 3))
            frac = _grid(m)
            return frac, synth.at_grid((m, m, m)).reshape(-1)
        rng = np.random.default_rng([self.seed, _content_seed(synth.cell)])
        if self.sampling == "random":
            frac = rng.random((self.n_points, 3))
            return frac, synth.at_points(frac)
        m = math.ceil((8 * self.n_points) ** (1 / 3))
        rho = synth.at_grid((m, m, m)).reshape(-1)
        weight = np.maximum(rho, 0.0)
        pick = rng.choice(len(rho), size=self.n_points, replace=False, p=weight / weight.sum())
        return _grid(m)[pick], rho[pick]

    def encode(self, synth: Synthesis) -> np.ndarray:
        frac, rho = self.sample(synth)
        out = np.empty((len(frac), 4))
        out[:, :3] = frac @ synth.cell.lattice * POSITION_SCALE
        out[:, 3] = encode_density(rho)
        return out


@dataclass
class DensityGrid(_Density):
    name: ClassVar[str] = "density_grid"
    description: ClassVar[str] = (
        "electron density on a g x g x g fractional grid of the cell, flattened to a vector of g^3 (voxels for cnn3d)"
    )
    kind: ClassVar[str] = VECTOR

    grid: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grid < 2:
            raise ValueError(f"grid must be at least 2; got {self.grid!r}")

    def columns(self) -> list[str]:
        g = self.grid
        return [f"rho({i}/{g},{j}/{g},{k}/{g})" for i in range(g) for j in range(g) for k in range(g)]

    def encode(self, synth: Synthesis) -> np.ndarray:
        return encode_density(synth.at_grid((self.grid,) * 3).reshape(-1))


def _grid(m: int) -> np.ndarray:
    """The m^3 fractional grid points, a slowest, c fastest (the order of `at_grid`)."""
    axis = np.arange(m) / m
    return np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)


def _content_seed(cell: _cells.Cell) -> int:
    digest = hashlib.blake2b(digest_size=8)
    for array in (np.round(cell.lattice, 6), np.round(cell.frac, 6), cell.types):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(repr(cell.species).encode())
    return int.from_bytes(digest.digest(), "little")

"""The built-in diffraction representations: `xrd_cloud`, `nd_cloud` (point clouds) and
`barcode` (the intensity channel as a fixed-length vector).

Encoding (fixed constants, no statistic of any data set):
- position: g * POSITION_SCALE, POSITION_SCALE = 1.5418 / 2 angstrom, so that the Cu K-alpha
  limiting sphere |g| = 2 / 1.5418 1/angstrom is the unit sphere whatever `wavelength` is;
- intensity channel: (ln(I + 1e-6) - ln(1e-6)) / C with C = ln(1e8), clipped to [0, 1]:
  I = 0 -> 0 and I = 100 (e^2/angstrom^6, or fm^2/angstrom^6 for neutrons) -> 1; the densest
  elements give (000) ~ 30, so real crystals stay inside.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal, Sequence

import numpy as np

from harness import CLOUD, VECTOR, Representation, Skip

from . import cells as _cells
from . import scattering as _sc

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

POSITION_SCALE = 1.5418 / 2  # angstrom; multiplies g (1/angstrom)
INTENSITY_FLOOR = 1e-6
INTENSITY_SCALE = math.log(1e2 / INTENSITY_FLOOR)  # C = ln(1e8)
CLOUD_COLUMNS = ["x", "y", "z", "intensity"]


def encode_intensity(intensity: np.ndarray) -> np.ndarray:
    """The intensity channel: (ln(I + floor) - ln(floor)) / C, clipped to [0, 1]."""
    return np.clip(np.log1p(np.asarray(intensity) / INTENSITY_FLOOR) / INTENSITY_SCALE, 0.0, 1.0)


@dataclass
class _Diffraction(Representation):
    """Shared parameters and the featurisation pipeline; subclasses pick radiation and layout."""

    version: ClassVar[str] = "2"  # 2: systematic absences exactly zero

    n: int = 125
    cell: Literal["primitive", "conventional"] = "primitive"
    limiting_sphere: bool = True
    wavelength: float = 1.5418
    symprec: float = 0.1

    def __post_init__(self) -> None:
        if self.n not in _sc.VALID_N:
            raise ValueError(f"n must be one of {', '.join(map(str, _sc.VALID_N))}; got {self.n!r}")
        if self.cell not in ("primitive", "conventional"):
            raise ValueError(f"cell must be 'primitive' or 'conventional'; got {self.cell!r}")
        if not self.wavelength > 0:
            raise ValueError(f"wavelength must be positive (angstrom); got {self.wavelength!r}")
        if not self.symprec > 0:
            raise ValueError(f"symprec must be positive (angstrom); got {self.symprec!r}")
        if self._radiation() not in ("xray", "neutron"):
            raise ValueError(f"radiation must be 'xray' or 'neutron'; got {self._radiation()!r}")

    def _radiation(self) -> _sc.Radiation:
        raise NotImplementedError

    def paper_label(self) -> str:
        return "φ4" if self._radiation() == "neutron" else ""  # Wang et al. 2022: neutron input

    def point_labels(self) -> np.ndarray:
        return _sc.miller_indices(self.n)

    # -- raw patterns: the fast path and the reference ---------------------------------

    def patterns(self, structures: Sequence["Structure"]) -> list[_sc.Pattern | Skip]:
        """Raw (g, I) of each structure by the fast path; a `Skip` where one fails."""
        out: list[_sc.Pattern | Skip | None] = [None] * len(structures)
        good: list[tuple[int, _cells.Cell]] = []
        for i, cell in enumerate(_cells.cached_standard_cells(structures, self.cell, self.symprec)):
            try:
                if isinstance(cell, Skip):
                    raise cell
                _sc.check_species(cell, self._radiation())
                good.append((i, cell))
            except Skip as exc:
                out[i] = exc
        patterns = _sc.batch_patterns(
            [c for _, c in good], self.point_labels(), self._radiation(), self.wavelength, self.limiting_sphere
        )
        for (i, _), pattern in zip(good, patterns):
            out[i] = pattern
        return out  # type: ignore[return-value]

    def reference_pattern(self, structure: "Structure") -> _sc.Pattern:
        """Raw (g, I) by pymatgen's standard cell and a per-reflection loop: slow, plain."""
        std = _cells.reference_standard_structure(structure, self.cell, self.symprec)
        _sc.check_species(_cells.cell_from_structure(std), self._radiation())
        return _sc.reference_pattern(std, self.point_labels(), self._radiation(), self.wavelength, self.limiting_sphere)

    # -- features --------------------------------------------------------------------

    def encode(self, pattern: _sc.Pattern) -> np.ndarray:
        raise NotImplementedError

    def featurize_many(self, structures: Sequence["Structure"]) -> list[np.ndarray | Skip]:
        return [p if isinstance(p, Skip) else self.encode(p) for p in self.patterns(structures)]

    def featurize(self, structure: "Structure") -> np.ndarray:
        (result,) = self.featurize_many([structure])
        if isinstance(result, Skip):
            raise result
        return result

    def featurize_reference(self, structure: "Structure") -> np.ndarray:
        return self.encode(self.reference_pattern(structure))


@dataclass
class _Cloud(_Diffraction):
    kind: ClassVar[str] = CLOUD

    def columns(self) -> list[str]:
        return list(CLOUD_COLUMNS)

    def encode(self, pattern: _sc.Pattern) -> np.ndarray:
        out = np.empty((len(pattern.intensity), 4), dtype=np.float32)
        out[:, :3] = pattern.g * POSITION_SCALE
        out[:, 3] = encode_intensity(pattern.intensity)
        return out


@dataclass
class XrdCloud(_Cloud):
    name: ClassVar[str] = "xrd_cloud"
    description: ClassVar[str] = "X-ray diffraction point cloud: reciprocal points (h,k,l).B with log |F|^2/V^2"

    def _radiation(self) -> _sc.Radiation:
        return "xray"


@dataclass
class NdCloud(_Cloud):
    name: ClassVar[str] = "nd_cloud"
    description: ClassVar[str] = "Neutron diffraction point cloud: as xrd_cloud with coherent scattering lengths"

    def _radiation(self) -> _sc.Radiation:
        return "neutron"


@dataclass
class Barcode(_Diffraction):
    name: ClassVar[str] = "barcode"
    description: ClassVar[str] = "Diffraction bar code: the intensity channel ordered by (h,k,l), a fixed-length vector"
    kind: ClassVar[str] = VECTOR

    radiation: Literal["xray", "neutron"] = "xray"

    def _radiation(self) -> _sc.Radiation:
        return self.radiation

    def columns(self) -> list[str]:
        return [f"I({h},{k},{l})" for h, k, l in self.point_labels()]

    def encode(self, pattern: _sc.Pattern) -> np.ndarray:
        return encode_intensity(pattern.intensity).astype(np.float32)

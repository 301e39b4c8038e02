"""`composition`: what a crystal is made of, without where the atoms sit.

The opposite of every other representation here: the study asks how far structure alone
goes, and this row answers how far composition alone goes, on the same splits. The vector
is the atomic fraction of each element Z = 1..`max_z` (site occupancies counted), then,
with `stats`, the fraction-weighted mean and standard deviation, minimum and maximum of a
few element properties from pymatgen's periodic table (a Magpie-like summary). An element
lacking a property (e.g. the electronegativity of He) is left out of that property's
statistics, never filled with an invented value.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from harness import VECTOR, Representation, Skip

if TYPE_CHECKING:  # pragma: no cover
    from pymatgen.core import Structure

PROPERTIES = ("Z", "atomic_mass", "X", "row", "group", "atomic_radius", "mendeleev_no", "electron_affinity")
STATISTICS = ("mean", "std", "min", "max")
MAX_Z = 103  # pymatgen's Element covers 1-118; 103 (Lr) ends the elements of any crystal database


@lru_cache(maxsize=4)
def property_table(max_z: int) -> np.ndarray:
    """(max_z, len(PROPERTIES)) element properties; NaN where pymatgen has none."""
    from pymatgen.core import Element

    table = np.full((max_z, len(PROPERTIES)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns about each missing value
        for z in range(1, max_z + 1):
            element = Element.from_Z(z)
            for j, name in enumerate(PROPERTIES):
                value = getattr(element, name, None)
                if value is not None:
                    table[z - 1, j] = float(value)
    return table


@dataclass
class Composition(Representation):
    name: ClassVar[str] = "composition"
    description: ClassVar[str] = (
        "composition only: atomic fractions of Z = 1..max_z, optionally weighted mean/std/min/max of "
        "element properties (pymatgen); the no-structure baseline"
    )
    kind: ClassVar[str] = VECTOR
    version: ClassVar[str] = "1"

    stats: bool = True  # append the element-property statistics
    max_z: int = MAX_Z

    def __post_init__(self) -> None:
        if not 1 <= self.max_z <= 118:
            raise ValueError(f"max_z must be within 1-118; got {self.max_z!r}")

    def columns(self) -> list[str]:
        from pymatgen.core import Element

        names = [f"x({Element.from_Z(z).symbol})" for z in range(1, self.max_z + 1)]
        if self.stats:
            names += [f"{stat}({prop})" for prop in PROPERTIES for stat in STATISTICS]
        return names

    def featurize(self, structure: "Structure") -> np.ndarray:
        fractions = np.zeros(self.max_z)
        for element, amount in structure.composition.element_composition.items():
            z = int(element.Z)
            if not 1 <= z <= self.max_z:
                raise Skip(f"element {element} beyond max_z = {self.max_z}")
            fractions[z - 1] += amount
        total = fractions.sum()
        if not total > 0:
            raise Skip("empty composition")
        fractions /= total
        if not self.stats:
            return fractions.astype(np.float32)
        return np.concatenate([fractions, self._statistics(fractions)]).astype(np.float32)

    def _statistics(self, fractions: np.ndarray) -> np.ndarray:
        table = property_table(self.max_z)
        present = fractions > 0
        out = []
        for j in range(len(PROPERTIES)):
            known = present & ~np.isnan(table[:, j])
            if not known.any():
                out += [0.0] * len(STATISTICS)
                continue
            w, v = fractions[known] / fractions[known].sum(), table[known, j]
            mean = float(w @ v)
            out += [mean, float(np.sqrt(w @ (v - mean) ** 2)), float(v.min()), float(v.max())]
        return np.array(out)

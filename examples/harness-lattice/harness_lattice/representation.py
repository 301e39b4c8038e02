"""`lattice`: a representation made of the six lattice parameters.

A vector of (a, b, c, alpha, beta, gamma) of the standard conventional cell, sorted
lengths first: it carries the lattice geometry and nothing else, a useful baseline for the
crystal-system task next to the diffraction representations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness import VECTOR, Representation, Skip


@dataclass
class LatticeParameters(Representation):
    name: ClassVar[str] = "lattice"
    description: ClassVar[str] = "a, b, c (angstrom) and alpha, beta, gamma (degrees) of the standard cell"
    kind: ClassVar[str] = VECTOR
    cell: str = "conventional"  # or "primitive"
    symprec: float = 0.1

    def columns(self) -> list[str]:
        return ["a", "b", "c", "alpha", "beta", "gamma"]

    def featurize(self, structure) -> np.ndarray:
        from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

        if self.cell not in ("conventional", "primitive"):
            raise ValueError(f"cell must be 'conventional' or 'primitive', not {self.cell!r}")
        try:
            sga = SpacegroupAnalyzer(structure, symprec=self.symprec)
            std = (
                sga.get_conventional_standard_structure()
                if self.cell == "conventional"
                else sga.get_primitive_standard_structure()
            )
        except Exception as exc:  # spglib gives up on some broken cells
            raise Skip(f"no standard cell: {exc}") from None
        return np.array([*std.lattice.abc, *std.lattice.angles], dtype=np.float32)

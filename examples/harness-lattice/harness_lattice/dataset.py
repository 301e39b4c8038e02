"""`random_cells`: one-atom cubic, tetragonal and orthorhombic cells, generated offline."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from pymatgen.core import Lattice, Structure

from harness import Dataset, LoadContext, Material

ELEMENTS = ("Na", "Mg", "Al", "Fe", "Cu", "Ag")


@dataclass
class RandomCells(Dataset):
    name: ClassVar[str] = "random_cells"
    description: ClassVar[str] = "seeded one-atom cells with random edges 3-6 angstrom (offline)"
    size: int = 200
    seed: int = 0

    def load(self, ctx: LoadContext) -> list[Material]:
        rng = np.random.default_rng(self.seed)
        out = []
        for i in range(self.size):
            a, b, c = np.sort(rng.uniform(3.0, 6.0, 3))
            system = ("cubic", "tetragonal", "orthorhombic")[i % 3]
            lengths = {"cubic": (a, a, a), "tetragonal": (a, a, c), "orthorhombic": (a, b, c)}[system]
            structure = Structure(Lattice.orthorhombic(*lengths), [rng.choice(ELEMENTS)], [[0, 0, 0]])
            out.append(Material(f"cell-{i}", structure, {"system": system}))
        return out

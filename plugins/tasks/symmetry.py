"""Symmetry tasks: crystal system (6 classes) and trigonal vs hexagonal, on any dataset.

Labels are exact for any structure: spglib on the structure at the task's `symprec`
(cached by structure content, see `symmetry_labels`). With `source = "auto"` (default) a
material's own `crystal_system` or `spacegroup` prop is used where the dataset gives one
(the demo set and Materials Project both derive theirs with spglib at symprec 0.1);
`source = "structure"` always asks spglib, `"props"` never does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from harness import CRYSTAL_SYSTEMS, SYMPREC, Material, Skip, Task, crystal_system

from .symmetry_labels import spacegroup_cache

# The representations whose Miller set and cell the paper's defaults set (n, cell).
DIFFRACTION_REPRESENTATIONS = ("xrd_cloud", "nd_cloud", "barcode")
SOURCES = ("auto", "structure", "props")


def material_crystal_system(material: Material, symprec: float = SYMPREC, source: str = "auto") -> str | None:
    """One of the seven crystal systems (trigonal and hexagonal apart).

    "auto": props `crystal_system` (a name) or `spacegroup` (a number) where present, else
    spglib on the structure; "structure": spglib only; "props": props only (unlabelled,
    None, without them). Raises Skip when what it reads cannot tell."""
    if source != "structure":
        props = material.props
        name = props.get("crystal_system")
        if name is not None and str(name).strip():
            name = str(name).strip().lower()
            if name not in CRYSTAL_SYSTEMS:
                raise Skip(f"unknown crystal system {name!r}")
            return name
        number = props.get("spacegroup")
        if number is not None and not (isinstance(number, float) and math.isnan(number)):
            try:
                return crystal_system(int(number))
            except (TypeError, ValueError) as exc:
                raise Skip(f"no crystal system: {exc}") from None
        if source == "props":
            return None
    try:
        return crystal_system(spacegroup_cache().number(material, symprec))
    except (TypeError, ValueError) as exc:
        raise Skip(f"no crystal system: {exc}") from None


@dataclass
class _SymmetryTask(Task):
    """Shared parameters: the paper's representation defaults and training transforms."""

    cell: str = "conventional"  # the paper featurises the conventional standard cell
    n: int = 3  # Miller set {(100), (010), (001)}
    mask_intensity: bool = True  # keep only the point positions (lattice geometry)
    max_rotation: float = math.pi / 4  # random rotations within +/- this angle (rad); 0: none
    symprec: float = SYMPREC  # spglib tolerance when a label is computed from the structure
    source: str = "auto"  # auto (props where given, else spglib) | structure (spglib) | props

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if not self.symprec > 0:
            raise ValueError(f"symprec must be a positive tolerance in angstrom, not {self.symprec!r}")

    def representation_defaults(self) -> dict[str, dict[str, Any]]:
        paper = {"cell": self.cell, "n": self.n}
        return {name: dict(paper) for name in DIFFRACTION_REPRESENTATIONS}

    def transforms(self) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        if self.mask_intensity:
            out.append(("mask_intensity", {}))
        if self.max_rotation:
            out.append(("rotate", {"max_angle": self.max_rotation}))
        return out


@dataclass
class CrystalSystemTask(_SymmetryTask):
    """Six crystal systems, trigonal merged into hexagonal (as in the paper).

    Reads props `crystal_system` or `spacegroup`; else spglib on the structure. Defaults
    follow the paper: conventional cell, n = 3, intensity masked, rotations within pi/4."""

    name = "crystal_system"
    description = "crystal system, 6 classes (trigonal merged into hexagonal); labels from spglib"
    metric = "accuracy"
    extra_metrics = ("macro_f1",)

    CLASSES = ("triclinic", "monoclinic", "orthorhombic", "tetragonal", "hexagonal", "cubic")

    @property
    def classes(self) -> tuple[str, ...]:
        return self.CLASSES

    def label(self, material: Material) -> int | None:
        system = material_crystal_system(material, self.symprec, self.source)
        if system is None:
            return None
        return self.CLASSES.index("hexagonal" if system == "trigonal" else system)


@dataclass
class TrigonalVsHexagonalTask(_SymmetryTask):
    """Trigonal (0) vs hexagonal (1); other crystal systems are unlabelled.

    Reads props `crystal_system` or `spacegroup`; else spglib on the structure. Both
    systems share one lattice metric (a = b, gamma = 120 deg), so point positions alone
    cannot tell them apart: the intensities are what carries the answer, hence no
    intensity masking by default (unlike crystal_system)."""

    name = "trigonal_vs_hexagonal"
    description = "trigonal vs hexagonal crystals, binary; others unlabelled"
    metric = "roc_auc"

    mask_intensity: bool = False

    @property
    def classes(self) -> tuple[str, ...]:
        return ("trigonal", "hexagonal")

    def label(self, material: Material) -> int | None:
        system = material_crystal_system(material, self.symprec, self.source)
        return {"trigonal": 0, "hexagonal": 1}.get(system)

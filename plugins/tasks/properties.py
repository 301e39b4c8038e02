"""Property tasks: a DFT quantity above or below a threshold (the paper's binary tasks).

Each reads one numeric prop (first of its accepted names that is present). A missing or
empty value leaves the material unlabelled (None); a present but unphysical value
(negative, NaN, infinite, not a number) raises `Skip`, so the core counts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from harness import Material, Skip, Task


def read_nonnegative(props: Mapping[str, Any], keys: tuple[str, ...], quantity: str) -> float | None:
    """The first of `keys` present in `props` as a finite, non-negative float; None if absent."""
    for key in keys:
        raw = props.get(key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise Skip(f"non-numeric {quantity}") from None
        if math.isnan(value):
            raise Skip(f"NaN {quantity}")
        if math.isinf(value):
            raise Skip(f"infinite {quantity}")
        if value < 0:
            raise Skip(f"negative {quantity}")
        return value
    return None


@dataclass
class _ThresholdTask(Task):
    """Class 1 when the quantity is above `threshold` (below, if `positive_below`)."""

    keys: ClassVar[tuple[str, ...]] = ()
    quantity: ClassVar[str] = ""  # as shown in class names and skip reasons
    unit: ClassVar[str] = ""
    positive_below: ClassVar[bool] = False

    threshold: float = 0.0

    def value(self, material: Material) -> float | None:
        return read_nonnegative(material.props, self.keys, self.quantity)

    @property
    def classes(self) -> tuple[str, ...]:
        t = f"{self.threshold:g} {self.unit}".strip()
        low, high = f"{self.quantity} <= {t}", f"{self.quantity} > {t}"
        if self.positive_below:
            low, high = f"{self.quantity} >= {t}", f"{self.quantity} < {t}"
        return (low, high)

    def label(self, material: Material) -> int | None:
        value = self.value(material)
        if value is None:
            return None
        if self.positive_below:
            return int(value < self.threshold)
        return int(value > self.threshold)


@dataclass
class MetallicityTask(_ThresholdTask):
    """Metal (0) vs insulator (1): band gap > `threshold` eV.

    Reads prop `band_gap` (eV); without it, `is_metal` (bool, or "true"/"false"/1/0)."""

    name = "metallicity"
    description = "metal (gap = 0) vs insulator (gap > 0 eV), from band_gap or is_metal"
    keys = ("band_gap",)
    reads = ("band_gap", "is_metal")
    quantity = "band gap"
    unit = "eV"

    threshold: float = 0.0

    @property
    def classes(self) -> tuple[str, ...]:
        return ("metal", "insulator")

    def value(self, material: Material) -> float | None:
        gap = super().value(material)
        if gap is not None:
            return gap
        is_metal = material.props.get("is_metal")
        if is_metal is None or (isinstance(is_metal, str) and not is_metal.strip()):
            return None
        flag = _as_bool(is_metal)
        # A metal has no gap; an insulator's gap is unknown but above any threshold it
        # was labelled with.
        return 0.0 if flag else math.inf


def _as_bool(raw: Any) -> bool:
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
        raise Skip("unreadable is_metal")
    if isinstance(raw, float) and math.isnan(raw):
        raise Skip("NaN is_metal")
    return bool(raw)


@dataclass
class BulkModulusTask(_ThresholdTask):
    """K_VRH > `threshold` GPa (class 1). Reads prop `k_vrh` or `bulk_modulus_vrh` (GPa)."""

    name = "bulk_modulus"
    description = "bulk modulus K_VRH above 85 GPa or not"
    keys = ("k_vrh", "bulk_modulus_vrh")
    reads = keys
    quantity = "K_VRH"
    unit = "GPa"

    threshold: float = 85.0


@dataclass
class ShearModulusTask(_ThresholdTask):
    """G_VRH > `threshold` GPa (class 1). Reads prop `g_vrh` or `shear_modulus_vrh` (GPa)."""

    name = "shear_modulus"
    description = "shear modulus G_VRH above 34 GPa or not"
    keys = ("g_vrh", "shear_modulus_vrh")
    reads = keys
    quantity = "G_VRH"
    unit = "GPa"

    threshold: float = 34.0


@dataclass
class StabilityTask(_ThresholdTask):
    """Stable (1) when E_hull < `threshold` eV/atom (20 meV/atom). Reads prop
    `e_above_hull` (eV/atom)."""

    name = "stability"
    description = "energy above hull below 20 meV/atom (stable) or not"
    keys = ("e_above_hull",)
    reads = keys
    quantity = "E_hull"
    unit = "eV/atom"
    positive_below = True

    threshold: float = 0.020

    @property
    def classes(self) -> tuple[str, ...]:
        return (f"unstable (E_hull >= {self.threshold:g} eV/atom)", f"stable (E_hull < {self.threshold:g} eV/atom)")

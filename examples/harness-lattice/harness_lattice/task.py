"""`compact`: is the volume per atom below a threshold (a binary task)."""

from dataclasses import dataclass
from typing import ClassVar

from harness import Material, Skip, Task


@dataclass
class Compact(Task):
    name: ClassVar[str] = "compact"
    description: ClassVar[str] = "volume per atom below `threshold` cubic angstrom (1) or not (0)"
    metric: ClassVar[str] = "roc_auc"
    extra_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)
    threshold: float = 60.0

    @property
    def classes(self) -> tuple[str, ...]:
        return ("loose", "compact")

    def label(self, material: Material) -> int | None:
        volume = material.structure.volume / len(material.structure)
        if volume <= 0:
            raise Skip("non-positive cell volume")
        return int(volume < self.threshold)

    def representation_defaults(self) -> dict[str, dict]:
        return {"lattice": {"cell": "primitive"}}  # the cell whose volume is labelled

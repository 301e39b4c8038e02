"""`threshold`: any numeric property of a dataset below (or above) a value, as a binary task.

The paper's property tasks fix their quantity; a new data set (Carbon-24's
`energy_per_atom`, a user's own column) needs no new plugin: name the property (a file
column, or a `columns` alias) and the threshold. Negative values are fine here (energies);
a present value that is not a finite number is counted as skipped, a missing one leaves
the material unlabelled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from harness import Material, Skip, Task


@dataclass
class ThresholdTask(Task):
    name: ClassVar[str] = "threshold"
    description: ClassVar[str] = (
        "a numeric property below `threshold` (class 1; above with below = false): "
        'e.g. column = "energy_per_atom" (ROC-AUC)'
    )

    column: str = ""
    threshold: float = 0.0
    below: bool = True

    def __post_init__(self) -> None:
        if not self.column:
            raise ValueError('set column = "<property>" (a column of the dataset or a `columns` alias)')
        if not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a finite number, not {self.threshold!r}")
        self.reads = (self.column,)  # type: ignore[misc]  # per instance: what `label` reads

    @property
    def classes(self) -> tuple[str, ...]:
        t = f"{self.threshold:g}"
        return (
            (f"{self.column} >= {t}", f"{self.column} < {t}")
            if self.below
            else (f"{self.column} <= {t}", f"{self.column} > {t}")
        )

    def label(self, material: Material) -> int | None:
        raw = material.props.get(self.column)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return None
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise Skip(f"non-numeric {self.column}") from None
        if not math.isfinite(value):
            raise Skip(f"non-finite {self.column}")
        return int(value < self.threshold) if self.below else int(value > self.threshold)

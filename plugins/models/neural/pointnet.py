"""`pointnet`: the paper's network: a shared point-wise MLP, a global MAX pool over the
points of each crystal (order does not matter), a fully connected head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

from .mlp import PointwiseMLP, head_widths, point_widths


SIZES = {"small": 0, "paper": 1024}  # width cap; 0: `max_width`


@dataclass
class PointNet(PointwiseMLP):
    name = "pointnet"
    description = "PointNet (paper): point-wise MLP, global max pool, FC head"

    max_width: int = 256  # caps every layer width; 1024 gives the paper's full-size network
    # "paper": the study's network, uncapped (point MLP 64-128-512-1024, max pool, head
    # 1024-512-256-128-k; its Table III search space), whatever max_width says.
    size: str = "small"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.size not in SIZES:
            raise ValueError(f"size = {self.size!r}: choose one of {', '.join(SIZES)}")

    @property
    def width_cap(self) -> int:
        return SIZES[self.size] or self.max_width

    def point_importance(self, x: np.ndarray) -> np.ndarray:
        """Feature dimensions each point of cloud `x` wins in the MAX pool (used by
        `harness explain`); points with a count > 0 are the critical points."""
        from .interpret import critical_points

        return critical_points(self, x)

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> "torch.nn.Module":
        from .nets.pointnet import PointNetNet

        return PointNetNet(
            in_dim,
            point_widths(params, self.width_cap),
            head_widths(params, self.width_cap),
            n_classes,
            float(params["dropout"]),
        )

"""`pointnet`: the paper's network: a shared point-wise MLP, a global MAX pool over the
points of each crystal (order does not matter), a fully connected head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

from harness.torch import TorchModel
from .mlp import PAPER_DEFAULTS, head_widths, mlp_space, point_widths


@dataclass
class PointNet(TorchModel):
    name = "pointnet"
    description = "PointNet (paper): point-wise MLP, global max pool, FC head"

    max_width: int = 256  # caps every layer width; 1024 gives the paper's full-size network

    def default_params(self) -> dict[str, Any]:
        return dict(PAPER_DEFAULTS)

    def search_space(self, trial) -> dict[str, Any]:
        return mlp_space(self, trial)

    def point_importance(self, x: np.ndarray) -> np.ndarray:
        """Feature dimensions each point of cloud `x` wins in the MAX pool (used by
        `harness explain`); points with a count > 0 are the critical points."""
        from .interpret import critical_points

        return critical_points(self, x)

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> "torch.nn.Module":
        from .nets.pointnet import PointNetNet

        return PointNetNet(
            in_dim, point_widths(params, self.max_width), head_widths(params, self.max_width),
            n_classes, float(params["dropout"]),
        )

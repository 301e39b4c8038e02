"""`pointnet`: the paper's network: a shared point-wise MLP, a global MAX pool over the
points of each crystal (order does not matter), a fully connected head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn import global_max_pool

from .base import TorchModel
from .mlp import PAPER_DEFAULTS, head, head_widths, mlp_space, point_encoder, point_widths


class PointNetNet(torch.nn.Module):
    def __init__(self, in_dim: int, point: list[int], hidden: list[int], n_classes: int, dropout: float):
        super().__init__()
        self.encoder = point_encoder(in_dim, point, dropout)
        self.head = head(point[-1], hidden, n_classes, dropout)

    def point_features(self, batch: Batch) -> Tensor:
        """Per-point feature vectors (num_points, feature_dim), before pooling."""
        return self.encoder(batch.x)

    def forward(self, batch: Batch) -> Tensor:
        pooled = global_max_pool(self.point_features(batch), batch.batch, size=batch.num_graphs)
        return self.head(pooled)


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

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> torch.nn.Module:
        return PointNetNet(
            in_dim, point_widths(params, self.max_width), head_widths(params, self.max_width),
            n_classes, float(params["dropout"]),
        )

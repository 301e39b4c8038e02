"""PointNet's network: shared point-wise MLP, global MAX pool, fully connected head.

One implementation for both batch layouts: the MLP runs on every point of the batch
(`.x`, (sum n_i, d)); the pool reduces over each cloud's points."""

from __future__ import annotations

import torch
from torch import Tensor

from harness.torch import Clouds, max_pool

from .layers import head, point_encoder


class PointNetNet(torch.nn.Module):
    def __init__(self, in_dim: int, point: list[int], hidden: list[int], n_classes: int, dropout: float):
        super().__init__()
        self.encoder = point_encoder(in_dim, point, dropout)
        self.head = head(point[-1], hidden, n_classes, dropout)

    def point_features(self, clouds: Clouds) -> Tensor:
        """Per-point feature vectors (num_points, feature_dim), before pooling."""
        return self.encoder(clouds.x)

    def forward(self, clouds: Clouds) -> Tensor:
        return self.head(max_pool(self.point_features(clouds), clouds))

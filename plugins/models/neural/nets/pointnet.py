"""PointNet's network: shared point-wise MLP, global MAX pool, fully connected head."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn import global_max_pool

from .layers import head, point_encoder


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

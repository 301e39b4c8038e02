"""Point-wise encoder and classifier head shared by `pointnet` and `attention_pool`."""

from __future__ import annotations

from torch_geometric.nn import MLP


def point_encoder(in_dim: int, widths: list[int], dropout: float) -> MLP:
    """Shared point-wise Linear + BatchNorm + ReLU + dropout layers."""
    return MLP([in_dim, *widths], norm="batch_norm", act="relu", dropout=dropout, plain_last=False)


def head(in_dim: int, widths: list[int], n_classes: int, dropout: float) -> MLP:
    """Fully connected classifier on the pooled feature vector; the last layer is plain."""
    return MLP([in_dim, *widths, n_classes], norm="batch_norm", act="relu", dropout=dropout, plain_last=True)

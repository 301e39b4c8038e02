"""Convolutional networks on fixed-length vectors: 1D (powder patterns) and 3D (voxelised
electron density). Each vector arrives as one row of a torch-geometric `Batch`
(`batch.x` is (B, d)) and is reshaped here."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch


def _head(channels: int, hidden: int, n_classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))


class Conv1dNet(nn.Module):
    """The fully convolutional family of powder-XRD classifiers: blocks of Conv1d +
    BatchNorm + ReLU + max-pool (channels doubling), global average and max pool, head."""

    def __init__(self, length: int, n_classes: int, depth: int, channels: int, kernel: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c_out = 1, channels
        for _ in range(depth):
            layers += [
                nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2),
                nn.BatchNorm1d(c_out),
                nn.ReLU(),
                nn.MaxPool1d(2, ceil_mode=True),
            ]
            c_in, c_out = c_out, min(2 * c_out, 512)
        self.features = nn.Sequential(*layers)
        self.length = length
        self.head = _head(2 * c_in, 128, n_classes, dropout)

    def forward(self, batch: Batch) -> Tensor:
        x = self.features(batch.x.view(-1, 1, self.length))
        return self.head(torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1))


class Conv3dNet(nn.Module):
    """Dense 3D CNN on a g x g x g density grid. The grid spans one periodic cell, so the
    convolutions pad circularly: a feature at a face sees its neighbours across it."""

    def __init__(self, grid: int, n_classes: int, depth: int, channels: int, dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c_out = 1, channels
        for i in range(depth):
            layers += [
                nn.Conv3d(c_in, c_out, 3, padding=1, padding_mode="circular"),
                nn.BatchNorm3d(c_out),
                nn.ReLU(),
            ]
            if grid >> (i + 1) >= 2:  # pool while at least 2 voxels remain per side
                layers.append(nn.MaxPool3d(2))
            c_in, c_out = c_out, min(2 * c_out, 256)
        self.features = nn.Sequential(*layers)
        self.grid = grid
        self.head = _head(2 * c_in, 128, n_classes, dropout)

    def forward(self, batch: Batch) -> Tensor:
        g = self.grid
        x = self.features(batch.x.view(-1, 1, g, g, g)).flatten(2)
        return self.head(torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1))

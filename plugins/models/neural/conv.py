"""`cnn1d` (powder patterns) and `cnn3d` (voxelised electron density): convolutional
networks on fixed-length vectors, trained by the shared loop of the neural models.

A vector travels through `TorchModel` as a one-point cloud of d channels, so fitting,
seeding, early stopping, pruning and pickling are the ones of `pointnet`.

`cnn3d` is a dense `Conv3d` on a modest grid (`density_grid`, 16^3 by default), not a
sparse network: the maintained sparse libraries (MinkowskiEngine, spconv, torchsparse)
ship no CPU wheels for this torch, and a Fourier-synthesised density on a coarse grid is
not sparse anyway (every voxel carries a value). Kim et al.'s sparse input comes from
keeping only the dense points of a fine grid; on a GPU raise `grid` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from harness import VECTOR, Choice, FitContext, Samples, UserError

from harness.torch import TorchModel

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _as_rows(samples: Samples) -> Samples:
    """Vectors (N, d) as N one-point clouds (1, d): the shape the torch base expects."""
    X = np.asarray(samples.X, dtype=np.float32)
    return Samples(X[:, None, :], samples.y, samples.ids, samples.columns, samples.kind)


@dataclass
class _VectorConv(TorchModel):
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})

    def __post_init__(self) -> None:
        if self.augment_rotation or self.normalize_scale:
            raise ValueError(f"{self.name} takes vectors: augment_rotation and normalize_scale do not apply")

    def fit(self, train: Samples, valid: Samples, ctx: FitContext) -> "_VectorConv":
        self.check_length(np.asarray(train.X).shape[1])
        return super().fit(_as_rows(train), _as_rows(valid), ctx)

    def predict_proba(self, X) -> np.ndarray:
        return super().predict_proba(np.asarray(X, dtype=np.float32)[:, None, :])

    def check_length(self, length: int) -> None:
        pass


@dataclass
class CNN1D(_VectorConv):
    name: ClassVar[str] = "cnn1d"
    description: ClassVar[str] = (
        "1D fully convolutional network (powder-XRD FCN family): Conv1d blocks, global pooling, head; "
        "for powder_pattern"
    )

    search_space: ClassVar[dict] = {
        "depth": Choice(3, 4, 5),
        "channels": Choice(16, 32, 64),
        "kernel": Choice(5, 9, 15),
        "dropout": Choice(0.0, 0.2, 0.4),
        "optimizer": Choice("adam", "sgd"),
        "lr": Choice(0.003, 0.001),
    }
    depth: int = 4
    channels: int = 16
    kernel: int = 9
    dropout: float = 0.2
    optimizer: str = "adam"
    lr: float = 0.001

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> "torch.nn.Module":
        from .nets.conv import Conv1dNet

        return Conv1dNet(
            in_dim,
            n_classes,
            int(params["depth"]),
            int(params["channels"]),
            int(params["kernel"]),
            float(params["dropout"]),
        )


@dataclass
class CNN3D(_VectorConv):
    name: ClassVar[str] = "cnn3d"
    description: ClassVar[str] = (
        "dense 3D CNN on a voxelised electron density (density_grid, g^3 vector), circular padding"
    )

    search_space: ClassVar[dict] = {
        "depth": Choice(2, 3, 4),
        "channels": Choice(8, 16, 32),
        "dropout": Choice(0.0, 0.2, 0.4),
        "optimizer": Choice("adam", "sgd"),
        "lr": Choice(0.003, 0.001),
    }
    depth: int = 3
    channels: int = 16
    dropout: float = 0.2
    optimizer: str = "adam"
    lr: float = 0.001

    def check_length(self, length: int) -> None:
        grid_size(length)

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> "torch.nn.Module":
        from .nets.conv import Conv3dNet

        return Conv3dNet(
            grid_size(in_dim), n_classes, int(params["depth"]), int(params["channels"]), float(params["dropout"])
        )


def grid_size(length: int) -> int:
    """g of a g^3 voxel vector; a UserError for any other vector."""
    g = round(length ** (1 / 3))
    if g**3 != length:
        raise UserError(
            f"cnn3d takes a voxel grid (density_grid, a vector of g^3 entries), not a vector of {length}: "
            "exclude that combination"
        )
    return g

"""Neural point-cloud models: `pointnet`, `attention_pool`, `e3nn`, sharing one training
loop (`loop.train`); `critical_points` interprets a fitted `pointnet`.

The entries import torch only when they fit, predict or build a network (`nets/`)."""

from typing import Any

from .attention import AttentionPool
from .conv import CNN1D, CNN3D
from .equivariant import E3NN
from .pointnet import PointNet

MODELS = [PointNet, AttentionPool, E3NN, CNN1D, CNN3D]

__all__ = ["AttentionPool", "CNN1D", "CNN3D", "E3NN", "MODELS", "PointNet", "critical_points"]


def __getattr__(name: str) -> Any:
    if name == "critical_points":  # imports torch
        from .interpret import critical_points

        return critical_points
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

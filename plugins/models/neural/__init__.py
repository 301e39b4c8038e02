"""Neural point-cloud models: `pointnet`, `attention_pool`, `e3nn`, sharing one training
loop (`loop.train`); `critical_points` interprets a fitted `pointnet`."""

from .attention import AttentionPool
from .equivariant import E3NN
from .interpret import critical_points
from .pointnet import PointNet

MODELS = [PointNet, AttentionPool, E3NN]

__all__ = ["AttentionPool", "E3NN", "MODELS", "PointNet", "critical_points"]

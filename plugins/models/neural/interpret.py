"""Critical points of a fitted `pointnet` (paper Sec. III D).

The MAX pool picks, for each dimension of the global feature vector, the one point with
the largest activation; a point that wins at least one dimension is a critical point:
only those points shape the prediction."""

from __future__ import annotations

import numpy as np
import torch

from harness.torch import DenseClouds, make_set

from .nets.pointnet import PointNetNet
from .pointnet import PointNet


@torch.no_grad()
def critical_points(model: PointNet, x: np.ndarray) -> np.ndarray:
    """For each point of one cloud `x` (n, d): how many global feature dimensions it wins
    in the MAX pool (int array (n,), summing to the feature dimension)."""
    net = model.network
    if not isinstance(net, PointNetNet):
        raise TypeError(f"critical points need a fitted pointnet, not {type(net).__name__}")
    net.eval()
    device = next(net.parameters()).device
    cloud = make_set([x], None, str(device), model.normalize_scale, dense=True)
    features = net.point_features(DenseClouds(cloud.points))  # (n, feature_dim)
    winners = features.argmax(dim=0).cpu()
    return torch.bincount(winners, minlength=features.shape[0]).numpy()

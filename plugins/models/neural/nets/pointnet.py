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

    def stacked_forward(self, params: dict[str, Tensor], buffers: dict[str, Tensor], points: Tensor) -> Tensor:
        """K networks of this architecture at once, without vmap (`harness.sdk.neural.batched`
        uses it where a network has it): `params` and `buffers` are this network's, each
        stacked along a leading member axis; `points` (K, B, n, d) -> logits (K, B, k).

        Activations stay (K, channels, points): each layer is one grouped product
        (`baddbmm`, weights (K, out, in)) and each BatchNorm one native kernel over the
        (1, K * channels, points) view of the same memory, i.e. per member and channel over
        that member's points, as the member's own BatchNorm: no permutes, no copies."""
        K, B, n, d = points.shape
        h = points.reshape(K, B * n, d).transpose(1, 2)
        h = _stacked_mlp(self.encoder, "encoder", params, buffers, h, plain_last=False)
        # max with indices: its backward scatters to the winners (amax's compares and counts
        # ties: a fifth of the step); ties among positive maxima are rare, ties at 0 get no gradient
        h = h.view(K, h.shape[1], B, n).max(-1).values
        return _stacked_mlp(self.head, "head", params, buffers, h, plain_last=True).transpose(1, 2)


def _stacked_mlp(
    mlp: torch.nn.Module,
    prefix: str,
    params: dict[str, Tensor],
    buffers: dict[str, Tensor],
    h: Tensor,
    plain_last: bool,
) -> Tensor:
    """A torch_geometric MLP (Linear, BatchNorm, ReLU; no dropout) over (K, C, M) activations."""
    depth = len(mlp.lins)
    if mlp.training and any(p > 0 for p in mlp.dropout):
        raise ValueError("stacked_forward draws no dropout: networks with dropout > 0 fit one by one")
    for i in range(depth):
        weight, bias = params[f"{prefix}.lins.{i}.weight"], params[f"{prefix}.lins.{i}.bias"]
        h = torch.baddbmm(bias.unsqueeze(-1), weight, h)
        if i == depth - 1 and plain_last:
            break
        norm = mlp.norms[i].module
        key = f"{prefix}.norms.{i}.module"
        K, C, M = h.shape
        running_mean, running_var = buffers.get(f"{key}.running_mean"), buffers.get(f"{key}.running_var")
        if norm.training and f"{key}.num_batches_tracked" in buffers:
            buffers[f"{key}.num_batches_tracked"].add_(1)
        h = torch.nn.functional.batch_norm(
            h.reshape(1, K * C, M),
            running_mean.view(K * C) if running_mean is not None else None,
            running_var.view(K * C) if running_var is not None else None,
            params[f"{key}.weight"].reshape(K * C),
            params[f"{key}.bias"].reshape(K * C),
            training=norm.training or running_mean is None,
            momentum=norm.momentum,
            eps=norm.eps,
        ).view(K, C, M)
        h = torch.relu(h)
    return h

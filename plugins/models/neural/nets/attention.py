"""The attention_pool network: PointNet encoder, Set Attention Blocks among the points,
pooling by attention to one learnt seed, fully connected head."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn.aggr import SetTransformerAggregation

from harness.torch import Clouds, padded

from .layers import head, point_encoder


class AttentionPoolNet(torch.nn.Module):
    def __init__(
        self,
        in_dim: int,
        point: list[int],
        hidden: list[int],
        n_classes: int,
        dropout: float,
        attention_layers: int,
        heads: int,
    ):
        super().__init__()
        self.encoder = point_encoder(in_dim, point, dropout)
        # Set Attention Blocks among the points, then pooling by attention to one learnt seed.
        self.pool = SetTransformerAggregation(
            point[-1],
            num_seed_points=1,
            num_encoder_blocks=attention_layers,
            num_decoder_blocks=0,
            heads=heads,
            layer_norm=True,
            dropout=dropout,
        )
        self.head = head(point[-1], hidden, n_classes, dropout)

    def forward(self, clouds: Clouds) -> Tensor:
        # The blocks of the Set Transformer aggregation, applied to (B, n, F) directly: a
        # dense batch needs no padding mask, a graph batch is padded to its largest cloud.
        h, mask = padded(self.encoder(clouds.x), clouds)
        for block in self.pool.encoders:
            h = block(h, mask)
        h = self.pool.pma(h, mask)
        for block in self.pool.decoders:
            h = block(h)
        return self.head(h.nan_to_num().mean(dim=1))

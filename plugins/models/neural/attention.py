"""`attention_pool`: the PointNet encoder, then self-attention among the points of each
crystal and attention-based pooling (a Set Transformer read-out) instead of MAX."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn.aggr import SetTransformerAggregation

from .base import TorchModel
from .mlp import PAPER_DEFAULTS, head, head_widths, mlp_space, point_encoder, point_widths


class AttentionPoolNet(torch.nn.Module):
    def __init__(
        self, in_dim: int, point: list[int], hidden: list[int], n_classes: int,
        dropout: float, attention_layers: int, heads: int,
    ):
        super().__init__()
        self.encoder = point_encoder(in_dim, point, dropout)
        # Set Attention Blocks among the points, then pooling by attention to one learnt seed.
        self.pool = SetTransformerAggregation(
            point[-1], num_seed_points=1, num_encoder_blocks=attention_layers,
            num_decoder_blocks=0, heads=heads, layer_norm=True, dropout=dropout,
        )
        self.head = head(point[-1], hidden, n_classes, dropout)

    def forward(self, batch: Batch) -> Tensor:
        h = self.encoder(batch.x)
        return self.head(self.pool(h, batch.batch, dim_size=batch.num_graphs))


@dataclass
class AttentionPool(TorchModel):
    name = "attention_pool"
    description = "PointNet encoder with self-attention over points and attention pooling"

    max_width: int = 256  # caps every layer width (attention cost grows with it)

    def default_params(self) -> dict[str, Any]:
        return {**PAPER_DEFAULTS, "attention_layers": 2, "heads": 4}

    def search_space(self, trial) -> dict[str, Any]:
        return {
            **mlp_space(self, trial),
            "attention_layers": self.choose(trial, "attention_layers", [0, 2, 4]),
            "heads": self.choose(trial, "heads", [1, 4]),
        }

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> torch.nn.Module:
        return AttentionPoolNet(
            in_dim, point_widths(params, self.max_width), head_widths(params, self.max_width),
            n_classes, float(params["dropout"]), int(params["attention_layers"]), int(params["heads"]),
        )

"""`attention_pool`: the PointNet encoder, then self-attention among the points of each
crystal and attention-based pooling (a Set Transformer read-out) instead of MAX."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from harness import Choice

from .mlp import PointwiseMLP, head_widths, point_widths

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class AttentionPool(PointwiseMLP):
    name = "attention_pool"
    description = "PointNet encoder with self-attention over points and attention pooling"

    search_space: ClassVar[dict] = {
        **PointwiseMLP.search_space,
        "attention_layers": Choice(0, 2, 4),
        "heads": Choice(1, 4),
    }
    max_width: int = 256  # caps every layer width (attention cost grows with it)
    attention_layers: int = 2
    heads: int = 4

    def default_params(self) -> dict[str, Any]:
        return {**super().default_params(), "attention_layers": self.attention_layers, "heads": self.heads}

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> "torch.nn.Module":
        from .nets.attention import AttentionPoolNet

        return AttentionPoolNet(
            in_dim,
            point_widths(params, self.max_width),
            head_widths(params, self.max_width),
            n_classes,
            float(params["dropout"]),
            int(params["attention_layers"]),
            int(params["heads"]),
        )

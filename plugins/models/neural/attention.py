"""`attention_pool`: the PointNet encoder, then self-attention among the points of each
crystal and attention-based pooling (a Set Transformer read-out) instead of MAX."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.torch import TorchModel
from .mlp import PAPER_DEFAULTS, head_widths, mlp_space, point_widths

if TYPE_CHECKING:  # pragma: no cover
    import torch


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

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> "torch.nn.Module":
        from .nets.attention import AttentionPoolNet

        return AttentionPoolNet(
            in_dim, point_widths(params, self.max_width), head_widths(params, self.max_width),
            n_classes, float(params["dropout"]), int(params["attention_layers"]), int(params["heads"]),
        )

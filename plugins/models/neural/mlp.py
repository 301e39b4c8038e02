"""The sizes of the point-wise encoder and head shared by `pointnet` and `attention_pool`,
and the hyperparameters and search dimensions that set them (the paper's Table III).
No torch here: the layers themselves are in `nets.layers`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from harness import Choice, FitContext, Samples

from harness.torch import TorchModel

if TYPE_CHECKING:  # pragma: no cover
    import torch

HEAD_LAST = 128  # the paper's head narrows to 128 before the class layer


def ladder(first: int, last: int, depth: int, cap: int) -> list[int]:
    """`depth` widths from `first` to `last`, geometric, rounded to powers of two, capped.

    ladder(64, 1024, 4, 1024) == [64, 128, 512, 1024], the paper's point-wise MLP."""
    lo, hi = math.log2(first), math.log2(last)
    if depth == 1:
        return [min(last, cap)]
    exps = [lo + (hi - lo) * i / (depth - 1) for i in range(depth)]
    return [min(2 ** int(math.floor(e + 0.5)), cap) for e in exps]


def point_widths(params: dict[str, Any], cap: int) -> list[int]:
    return ladder(params["point_width"], params["feature_dim"], params["point_depth"], cap)


def head_widths(params: dict[str, Any], cap: int) -> list[int]:
    """Hidden widths of the head: `head_depth` linear layers counting the class layer."""
    first = params["head_width"]
    return ladder(first, min(first, HEAD_LAST), params["head_depth"] - 1, cap)


@dataclass
class PointwiseMLP(TorchModel):
    """The hyperparameters of a point-wise encoder and head, Table III of the paper:
    depths 3-5, widths 64-1024, feature 256/512/1024; the defaults are the paper's
    network (point-wise [64, 128, 512, 1024], head [1024 -> 512, 256, 128, k])."""

    search_space: ClassVar[dict] = {
        "point_depth": Choice(3, 4, 5),
        "point_width": Choice(64, 128, 256),
        "feature_dim": Choice(256, 512, 1024),
        "head_depth": Choice(3, 4, 5),
        "head_width": Choice(128, 256, 512, 1024),
        "optimizer": Choice("sgd", "adam"),
        "lr": Choice(0.01, 0.001),
        "dropout": Choice(0.0, 0.2, 0.4),
    }
    point_depth: int = 4
    point_width: int = 64
    feature_dim: int = 1024
    head_depth: int = 4
    head_width: int = 512
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = 0.001
    dropout: float = 0.0


def count_parameters(net: "torch.nn.Module") -> int:
    return sum(p.numel() for p in net.parameters())

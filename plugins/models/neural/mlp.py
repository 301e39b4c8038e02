"""The sizes of the point-wise encoder and head shared by `pointnet` and `attention_pool`,
and the search dimensions that set them (the paper's Table III). No torch here: the
layers themselves are in `nets.layers`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import optuna
    import torch

    from harness.api import Model

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




PAPER_DEFAULTS: dict[str, Any] = {
    # point-wise [64, 128, 512, 1024], head [1024 -> 512, 256, 128, k]
    "point_depth": 4, "point_width": 64, "feature_dim": 1024,
    "head_depth": 4, "head_width": 512,
    "optimizer": "adam", "lr": 0.001, "dropout": 0.0,
}


def mlp_space(model: "Model", trial: "optuna.Trial") -> dict[str, Any]:
    """Table III of the paper: depths 3-5, widths 64-1024, feature 256/512/1024, ..."""
    return {
        "point_depth": model.choose(trial, "point_depth", [3, 4, 5]),
        "point_width": model.choose(trial, "point_width", [64, 128, 256]),
        "feature_dim": model.choose(trial, "feature_dim", [256, 512, 1024]),
        "head_depth": model.choose(trial, "head_depth", [3, 4, 5]),
        "head_width": model.choose(trial, "head_width", [128, 256, 512, 1024]),
        "optimizer": model.choose(trial, "optimizer", ["sgd", "adam"]),
        "lr": model.choose(trial, "lr", [0.01, 0.001]),
        "dropout": model.choose(trial, "dropout", [0.0, 0.2, 0.4]),
    }


def count_parameters(net: "torch.nn.Module") -> int:
    return sum(p.numel() for p in net.parameters())

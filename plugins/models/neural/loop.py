"""The one training loop shared by every torch model in this package.

Cross-entropy on mini-batches, each epoch's validation metric reported to the trial
(`ctx.report` may raise `optuna.TrialPruned`, which propagates), early stopping with
the best epoch's weights restored. Callers seed torch beforehand (see `base.seeded`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from harness import FitContext

from .data import batches, rotate_batch

EVAL_BATCH = 256


@dataclass
class History:
    """What happened during one fit: validation metric per epoch, where it peaked."""

    scores: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    stopped: str = ""  # "patience", "max_epochs" or "diverged"


def make_optimizer(net: torch.nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    if name == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr)
    raise ValueError(f"unknown optimizer {name!r}: choose 'sgd' or 'adam'")


@torch.no_grad()
def predict(net: torch.nn.Module, data: Sequence[Data], batch_size: int = EVAL_BATCH) -> np.ndarray:
    """Class probabilities (N, k) in the order of `data`."""
    net.eval()
    out = [torch.softmax(net(b), dim=-1).double().cpu() for b in batches(data, batch_size)]
    return torch.cat(out).numpy()


def train(
    net: torch.nn.Module,
    train_data: Sequence[Data],
    valid_data: Sequence[Data],
    y_valid: np.ndarray,
    optimizer: torch.optim.Optimizer,
    ctx: FitContext,
    *,
    max_epochs: int,
    patience: int,
    batch_size: int,
    generator: torch.Generator,
    augment_rotation: float = 0.0,
    plateau_patience: int = 0,
) -> History:
    """Train `net` in place; on return it holds the weights of its best validation epoch.

    With `plateau_patience` > 0 the learning rate halves after that many epochs without a
    better validation metric."""
    history = History(stopped="max_epochs")
    scheduler = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=plateau_patience)
        if plateau_patience > 0 else None
    )
    best_state = copy.deepcopy(net.state_dict())  # fallback if the first epoch diverges
    for epoch in range(max_epochs):
        net.train()
        diverged = False
        for batch in batches(train_data, batch_size, generator):
            if augment_rotation > 0:
                batch = rotate_batch(batch, augment_rotation, generator)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(batch), batch.y)
            if not torch.isfinite(loss):
                diverged = True
                break
            loss.backward()
            optimizer.step()
        if diverged:
            history.stopped = "diverged"
            break
        proba = predict(net, valid_data)
        if not np.isfinite(proba).all():
            history.stopped = "diverged"
            break
        score = float(ctx.score(y_valid, proba))
        history.scores.append(score)
        ctx.report(epoch, score)  # may raise optuna.TrialPruned: let it propagate
        if scheduler is not None:
            scheduler.step(score)
        if score > history.best_score:
            history.best_score, history.best_epoch = score, epoch
            best_state = copy.deepcopy(net.state_dict())
        elif epoch - history.best_epoch >= patience:
            history.stopped = "patience"
            break
    net.load_state_dict(best_state)
    net.eval()
    return history

"""The one training loop of every torch model, for dense and graph sets alike.

Cross-entropy on mini-batches, each epoch's validation metric reported to the trial
(`ctx.report` may raise `optuna.TrialPruned`, which propagates), early stopping with the
best epoch's weights restored. Callers seed torch beforehand (`harness.torch.seeded`).

Nothing waits for the device inside an epoch: a non-finite loss is flagged on the
device and read once per epoch, together with the validation predictions, which stay on
the device until the whole set is scored. The shuffling order and the augmentation
rotations of an epoch are drawn on the CPU from the fit's generator (the same numbers on
every device) and copied over once per epoch.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

from harness.sdk.api import FitContext

from .clouds import random_rotations, rotate
from .sets import CloudSet, DenseSet, spans


@dataclass
class History:
    """What happened during one fit: validation metric per epoch, where it peaked."""

    scores: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    stopped: str = ""  # "patience", "max_epochs" or "diverged"


def make_optimizer(net: torch.nn.Module, name: str, lr: float) -> torch.optim.Optimizer:
    """SGD with momentum 0.9 or Adam; fused (one kernel for all parameters) on CPU and
    CUDA, where a step of the small networks otherwise costs a launch per tensor."""
    fused = {"fused": True} if next(net.parameters()).device.type in ("cpu", "cuda") else {}
    if name == "sgd":
        return torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, **fused)
    if name == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr, **fused)
    raise ValueError(f"unknown optimizer {name!r}: choose 'sgd' or 'adam'")


@torch.no_grad()
def predict(
    net: Callable,
    data: CloudSet,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    points: int | None = None,
) -> np.ndarray:
    """Class probabilities (N, k) in the order of `data`, evaluated in chunks of at most
    `points` points (default: the device's budget): one copy to the host at the end."""
    if isinstance(net, torch.nn.Module):
        net.eval()
    out = []
    for batch in data.eval_batches(points):
        with autocast():
            logits = net(batch)
        out.append(torch.softmax(logits.float(), dim=-1))
    if not out:
        return np.zeros((0, 0))
    return torch.cat(out).double().cpu().numpy()


def epoch_batches(data: CloudSet, batch_size: int, generator: torch.Generator, augment_rotation: float):
    """The shuffled, optionally rotated mini-batches of one training epoch."""
    n = len(data)
    order = torch.randperm(n, generator=generator)
    rotations = random_rotations(n, augment_rotation, generator) if augment_rotation > 0 else None
    if isinstance(data, DenseSet):
        order = order.to(data.device, non_blocking=True)
        if rotations is not None:
            rotations = rotations.to(data.device, non_blocking=True)
    for start, end in spans(n, batch_size):
        batch = data.take(order[start:end])
        if rotations is not None:
            batch = rotate(batch, rotations[start:end])
        yield batch


def train_epoch(
    forward: Callable,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> torch.Tensor:
    """One pass of cross-entropy steps over `batches`; returns a device flag, False when
    any loss was not finite (read by the caller once, at the end of the epoch)."""
    finite = torch.ones((), dtype=torch.bool, device=device)
    for batch in batches:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = forward(batch)
        loss = F.cross_entropy(logits.float(), batch.y.view(-1))
        finite &= torch.isfinite(loss)
        loss.backward()
        optimizer.step()
    return finite


def train(
    net: torch.nn.Module,
    train_data: CloudSet,
    valid_data: CloudSet,
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
    forward: Callable | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    eval_points: int | None = None,
) -> History:
    """Train `net` in place; on return it holds the weights of its best validation epoch.

    `forward` runs the network (default `net`; e.g. a compiled `net`), `autocast` makes
    the mixed-precision context of each forward pass. With `plateau_patience` > 0 the
    learning rate halves after that many epochs without a better validation metric."""
    forward = net if forward is None else forward
    history = History(stopped="max_epochs")
    scheduler = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=plateau_patience)
        if plateau_patience > 0
        else None
    )
    best_state = _snapshot(net)  # fallback if the first epoch diverges
    device = next(net.parameters()).device
    for epoch in range(max_epochs):
        net.train()
        batches = epoch_batches(train_data, batch_size, generator, augment_rotation)
        finite = train_epoch(forward, batches, optimizer, device, autocast)
        net.eval()
        proba = predict(forward, valid_data, autocast, eval_points)
        if not bool(finite) or not np.isfinite(proba).all():
            history.stopped = "diverged"
            break
        score = float(ctx.score(y_valid, proba))
        history.scores.append(score)
        ctx.report(epoch, score)  # may raise optuna.TrialPruned: let it propagate
        if scheduler is not None:
            scheduler.step(score)
        if score > history.best_score:
            history.best_score, history.best_epoch = score, epoch
            best_state = _snapshot(net)
        elif epoch - history.best_epoch >= patience:
            history.stopped = "patience"
            break
    net.load_state_dict(best_state)
    net.eval()
    return history


def _snapshot(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights on their device (no host transfer)."""
    return {k: v.detach().clone() for k, v in net.state_dict().items()}

"""K networks of one architecture trained as one batched model (`train_batched`).

The seeds of a combination, or trials drawn together, fit networks of the same shape on
clouds of the same shape. Run one after another, each mini-batch step of a small network
is a few hundred tiny kernel launches whose cost is the host's, not the arithmetic's.
Here the K members' parameters, BatchNorm buffers and optimizer states are stacked along
a leading member axis (as `torch.func.stack_module_state` does), and one `vmap`-ed
`functional_call` runs the K forward and backward passes: one launch serves K networks.

Each member is still its own fit, exactly as `loop.train` would run it:

* its own initial weights (built by the caller under its own seed), its own generator
  for the shuffling order and the augmentation rotations (drawn in the same order as
  `loop.epoch_batches` draws them), its own training and validation sets;
* its own BatchNorm running statistics (stacked buffers, updated in place under vmap);
* its own optimizer: Adam or SGD (momentum 0.9), the same fused kernels `loop.make_optimizer`
  uses, over the stacked tensors (the update is elementwise, so a stacked step is K
  member steps), with its own learning rate under `ReduceLROnPlateau`;
* its own validation metric, pruning report, early stopping and best-epoch weights. A
  member that stops is taken out of the stack at the end of the epoch: from then on its
  parameters, buffers and optimizer state never change, and it costs nothing.

Equality with K separate fits: the data order, rotations, initial weights, BatchNorm
statistics, the optimizer arithmetic and the forward pass of the linear layers are
bit-equal on CPU; the backward of BatchNorm under vmap sums in another order (about one
float32 ulp per step), so weights agree to float32 rounding that grows slowly with the
number of steps (tests: `tests/test_neural_batched.py`). `stacked_forward` sums in its
own order too: the same tolerances hold.

A network that defines `stacked_forward(params, buffers, points)` (PointNet: grouped
products over (K, channels, points), one native BatchNorm over the stacked channels) runs
the K members with it instead of vmap, unless the stack must be exact (`batch_studies`).

Exactness across batches (what packing and resume rely on): under vmap a member's
numbers are bit-equal on CPU in any stack of two (beside another member or a twin of
itself), but not at the third stack position on (measured: PointNet weights 1.7e-2 off
after 6 epochs), so `TorchModel.fit_many` with `batch_studies` trains stacks of two.

Members must not draw random numbers in their forward pass (dropout > 0): vmap would
draw one stream for all of them, not each member's own. `batchable` says whether a
network qualifies (a probe under vmap); the caller fits the others one by one.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, vmap
from torch.optim.adam import adam as adam_step
from torch.optim.sgd import sgd as sgd_step

from harness.sdk.api import FitContext

from . import accel
from .clouds import DenseClouds, random_rotations
from .loop import History
from .sets import EVAL_POINTS, DenseSet, spans

ADAM = {"beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weight_decay": 0.0}  # torch.optim.Adam's defaults
SGD_MOMENTUM = 0.9  # as loop.make_optimizer


# On CPU a stack whose training step holds more activations than this runs slower than
# its members one after another (measured: the paper's PointNet at n = 343, 8 members,
# 0.55x): the step is already arithmetic- and memory-bound, so stacking saves no launches
# worth having and K times the activations fall out of the caches. Such members train in
# smaller stacks (down to one each). On CUDA the device's memory decides (packing).
CPU_STACK_BYTES = 64 << 20


def members_per_stack(net: torch.nn.Module, batch_size: int, n_points: int, device: str) -> int | None:
    """How many members of `net`'s architecture train as one stack on `device` (None: no
    limit): on CPU, as many as keep a step's activations (every linear layer's outputs,
    kept for the backward with their normalised and rectified copies, float32) within
    `CPU_STACK_BYTES`."""
    if torch.device(device).type != "cpu":
        return None
    widths = sum(p.shape[0] for name, p in net.named_parameters() if name.endswith("weight") and p.dim() == 2)
    per_member = batch_size * max(1, n_points) * widths * 4 * 3
    return max(1, CPU_STACK_BYTES // max(1, per_member))


def split(indices: list[int], most: int | None) -> list[list[int]]:
    """`indices` in stacks of at most `most` (None: one stack)."""
    if not most or most >= len(indices):
        return [indices]
    return [indices[i : i + most] for i in range(0, len(indices), most)]


@dataclass
class Member:
    """One fit of a batch: a freshly built network (its initial weights), its sets, its
    context (seed, score, report) and its optimizer's learning rate."""

    net: torch.nn.Module
    train: DenseSet
    valid: DenseSet
    y_valid: np.ndarray
    ctx: FitContext
    lr: float


@torch.no_grad()
def batchable(net: torch.nn.Module, points: torch.Tensor) -> bool:
    """True when the network's training forward draws no random numbers (dropout > 0
    does, also where a layer calls `F.dropout` itself): one probe forward under vmap, on
    a copy, over a few of the clouds `points` (B, n, d)."""
    probe = copy.deepcopy(net).train()
    params = {k: v.detach()[None] for k, v in probe.named_parameters()}
    buffers = {k: v.clone()[None] for k, v in probe.named_buffers()}
    run = vmap(lambda p, b, x: functional_call(probe, (p, b), (DenseClouds(x),)), randomness="error")
    try:
        run(params, buffers, points[None, :2])
    except RuntimeError as exc:
        if "random" in str(exc):
            return False
        raise
    return True


class StackedOptimizer:
    """Adam or SGD with momentum over stacked parameters (K, ...), with one learning rate
    per member: members that share a learning rate take one fused step over the stacked
    tensors (or their slices); the arithmetic is that of `torch.optim` for each member."""

    def __init__(self, params: list[torch.Tensor], name: str, lrs: list[float]):
        if name not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {name!r}: choose 'sgd' or 'adam'")
        self.name, self.params, self.lrs = name, params, list(lrs)
        device = params[0].device
        self.fused = True if device.type in ("cpu", "cuda") else None
        if name == "adam":
            self.exp_avg = [torch.zeros_like(p) for p in params]
            self.exp_avg_sq = [torch.zeros_like(p) for p in params]
            dtype = torch.float32 if self.fused else torch.get_default_dtype()
            self.steps = [torch.zeros((), dtype=dtype, device=device if self.fused else "cpu") for _ in params]
        else:
            self.momentum: list[torch.Tensor] | None = None

    def keep(self, positions: list[int], params: list[torch.Tensor]) -> None:
        """Only the members at `positions` go on (the stack was compacted to `params`)."""
        self.params = params
        self.lrs = [self.lrs[i] for i in positions]
        index = torch.tensor(positions, device=params[0].device)
        if self.name == "adam":
            self.exp_avg = [t.index_select(0, index) for t in self.exp_avg]
            self.exp_avg_sq = [t.index_select(0, index) for t in self.exp_avg_sq]
        elif self.momentum is not None:
            self.momentum = [t.index_select(0, index) for t in self.momentum]

    def state(self, position: int) -> dict[str, torch.Tensor]:
        """One member's optimizer state (views), for checks."""
        if self.name == "adam":
            return {
                "exp_avg": [t[position] for t in self.exp_avg],
                "exp_avg_sq": [t[position] for t in self.exp_avg_sq],
            }
        return {"momentum": [t[position] for t in (self.momentum or [])]}

    @torch.no_grad()
    def step(self) -> None:
        grads = [p.grad for p in self.params]
        groups: dict[float, list[int]] = {}
        for position, lr in enumerate(self.lrs):
            groups.setdefault(lr, []).append(position)
        whole = len(groups) == 1
        for lr, positions in groups.items():

            def pick(ts: list[torch.Tensor], positions: list[int] = positions) -> list[torch.Tensor]:
                """The stacked tensors (one step for all), or this learning rate's members'
                slices (contiguous views)."""
                return ts if whole else [t[i] for i in positions for t in ts]

            if self.name == "adam":
                steps = self.steps if whole else [s.clone() for _ in positions for s in self.steps]
                adam_step(
                    pick(self.params),
                    pick(grads),
                    pick(self.exp_avg),
                    pick(self.exp_avg_sq),
                    [],
                    steps,
                    fused=self.fused,
                    foreach=False if not self.fused else None,
                    amsgrad=False,
                    lr=lr,
                    maximize=False,
                    **ADAM,
                )
            else:
                first = self.momentum is None
                buffers: list[torch.Tensor | None] = [None] * len(self.params) if first else pick(self.momentum)
                sgd_step(
                    pick(self.params),
                    pick(grads),
                    buffers,
                    fused=self.fused,
                    foreach=False if not self.fused else None,
                    weight_decay=0.0,
                    momentum=SGD_MOMENTUM,
                    lr=lr,
                    dampening=0.0,
                    nesterov=False,
                    maximize=False,
                )
                if first:  # the first step is taken by every member at once (one learning rate)
                    self.momentum = list(buffers)  # type: ignore[arg-type]
        if self.name == "adam" and not whole:
            for s in self.steps:
                s += 1


class Stack:
    """The active members' networks as stacked parameters and buffers, one functional
    forward over all of them (`logits`), and their optimizer."""

    def __init__(
        self,
        nets: Sequence[torch.nn.Module],
        optimizer: str,
        lrs: list[float],
        compile: bool = False,
        exact: bool = False,
    ):
        self.base = copy.deepcopy(nets[0]).to("meta")
        # as torch.func.stack_module_state, without its one-class rule (a model may define
        # its network class inside `build`): same names and shapes are what vmap needs
        states = [(dict(net.named_parameters()), dict(net.named_buffers())) for net in nets]
        shapes = {(k, tuple(v.shape)) for k, v in {**states[0][0], **states[0][1]}.items()}
        if any({(k, tuple(v.shape)) for k, v in {**p, **b}.items()} != shapes for p, b in states):
            raise ValueError("batched members need networks of one architecture")
        self.params = {k: torch.stack([p[k].detach() for p, _ in states]).requires_grad_() for k in states[0][0]}
        self.buffers = {k: torch.stack([b[k].detach() for _, b in states]) for k in states[0][1]}
        self.optimizer = StackedOptimizer(list(self.params.values()), optimizer, lrs)
        # A network that can run K copies of itself without vmap (`stacked_forward`: grouped
        # products, no permutes) does so unless `exact` (batch_studies): then vmap, whose
        # numbers in a stack of two are bit-equal to the member's fit beside a twin.
        stacked = getattr(self.base, "stacked_forward", None)
        self._forward = stacked if stacked is not None and not exact else vmap(self._member_logits, randomness="error")
        if compile:  # CUDA: CUDA graphs of the K-member forward and backward (accel.compile_mode)
            device = str(next(iter(self.params.values())).device)
            self._forward = torch.compile(self._forward, dynamic=False, mode=accel.compile_mode(device))

    def _member_logits(self, params: dict, buffers: dict, points: torch.Tensor) -> torch.Tensor:
        return functional_call(self.base, (params, buffers), (DenseClouds(points),))

    def __len__(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def logits(self, points: torch.Tensor) -> torch.Tensor:
        """(K, B, n, d) clouds, member k's through network k -> (K, B, classes)."""
        return self._forward(self.params, self.buffers, points)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def member_state(self, position: int) -> dict[str, torch.Tensor]:
        """A copy of one member's state_dict (parameters and buffers) on the device."""
        out = {k: v[position].detach().clone() for k, v in self.params.items()}
        out.update({k: v[position].clone() for k, v in self.buffers.items()})
        return out

    def keep(self, positions: list[int]) -> None:
        """Compact the stack to the members at `positions` (the others stopped)."""
        index = torch.tensor(positions, device=next(iter(self.params.values())).device)
        self.params = {k: v.detach().index_select(0, index).requires_grad_() for k, v in self.params.items()}
        self.buffers = {k: v.index_select(0, index) for k, v in self.buffers.items()}
        self.optimizer.keep(positions, list(self.params.values()))

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None


class StackedSets:
    """The members' training clouds as one tensor: shared when every member trains on the
    same set (trials of one study), else stacked (K, N, n, d) (seeds: their own splits)."""

    def __init__(self, sets: Sequence[DenseSet]):
        if len({len(s) for s in sets}) != 1 or len({tuple(s.points.shape[1:]) for s in sets}) != 1:
            raise ValueError("batched members need training sets of one length and cloud shape")
        self.shared = all(s is sets[0] for s in sets)
        if self.shared:
            self.points, self.y = sets[0].points, sets[0].y
        else:
            self.points, self.y = torch.stack([s.points for s in sets]), torch.stack([s.y for s in sets])

    def keep(self, positions: list[int]) -> None:
        if not self.shared:
            index = torch.tensor(positions, device=self.points.device)
            self.points, self.y = self.points.index_select(0, index), self.y.index_select(0, index)

    def take(self, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Member k's clouds at order[k] (K, B): points (K, B, n, d), labels (K, B)."""
        if self.shared:
            return self.points[order], self.y[order]
        members = torch.arange(order.shape[0], device=order.device)[:, None]
        return self.points[members, order], self.y[members, order]


def epoch_draws(generators: Sequence[torch.Generator], n: int, augment_rotation: float, device: torch.device):
    """Each member's order (K, n) and rotations (K, n, 3, 3) or None, drawn from its own
    generator exactly as `loop.epoch_batches` draws them."""
    orders, rotations = [], []
    for generator in generators:
        orders.append(torch.randperm(n, generator=generator))
        if augment_rotation > 0:
            rotations.append(random_rotations(n, augment_rotation, generator))
    order = torch.stack(orders).to(device, non_blocking=True)
    rotation = torch.stack(rotations).to(device, non_blocking=True) if rotations else None
    return order, rotation


def train_epoch(
    stack: Stack,
    data: StackedSets,
    order: torch.Tensor,
    rotation: torch.Tensor | None,
    batch_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> torch.Tensor:
    """One epoch of every member; returns a (K,) device flag, False where a loss was not finite."""
    stack.train(True)
    finite = torch.ones(len(stack), dtype=torch.bool, device=order.device)
    for start, end in spans(order.shape[1], batch_size):
        points, y = data.take(order[:, start:end])
        if rotation is not None:
            points = points.clone()
            points[..., :3] = points[..., :3] @ rotation[:, start:end].transpose(-1, -2)
        stack.zero_grad()
        with autocast():
            logits = stack.logits(points)
        losses = vmap(F.cross_entropy)(logits.float(), y)
        finite &= torch.isfinite(losses)
        losses.sum().backward()  # members share no parameter: each gets its own gradient
        stack.optimizer.step()
    return finite


@torch.no_grad()
def predict(
    stack: Stack,
    sets: Sequence[DenseSet],
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    points: int | None = None,
) -> list[np.ndarray]:
    """Each member's class probabilities on its own set, in chunks of at most the device's
    evaluation budget of points over all members (shorter sets are padded; in evaluation
    mode a cloud's output depends on that cloud alone)."""
    stack.train(False)
    lengths = [len(s) for s in sets]
    longest = max(lengths)
    shared = all(s is sets[0] for s in sets)
    device = sets[0].points.device
    n_points = sets[0].points.shape[1]
    budget = points or EVAL_POINTS.get(device.type, EVAL_POINTS["cpu"])
    size = max(1, budget // max(1, n_points * len(sets)))
    out = []
    for start in range(0, longest, size):
        if shared:
            chunk = sets[0].points[start : start + size].expand(len(sets), -1, -1, -1)
        else:
            parts = []
            for s in sets:
                part = s.points[start : start + size]
                want = min(size, longest - start)
                if part.shape[0] < want:
                    part = torch.cat([part, part.new_zeros((want - part.shape[0], *part.shape[1:]))])
                parts.append(part)
            chunk = torch.stack(parts)
        with autocast():
            logits = stack.logits(chunk)
        out.append(torch.softmax(logits.float(), dim=-1))
    proba = torch.cat(out, dim=1).double().cpu().numpy()
    return [proba[k, : lengths[k]] for k in range(len(sets))]


def train_batched(
    members: Sequence[Member],
    optimizer: str,
    generators: Sequence[torch.Generator],
    *,
    max_epochs: int,
    patience: int,
    batch_size: int,
    augment_rotation: float = 0.0,
    plateau_patience: int = 0,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    compile: bool = False,
    eval_points: int | None = None,
    exact: bool = False,
) -> list[History | BaseException]:
    """Train every member's network in place, as `loop.train` trains one; on return each
    holds its best validation epoch's weights. A member whose `ctx.report` raised (optuna
    pruning) stops there; its entry is that exception, the others' their History."""
    nets = [m.net for m in members]
    if not batchable(nets[0], members[0].train.points):
        raise ValueError("batched members must not draw random numbers in training (dropout > 0)")
    stack = Stack(nets, optimizer, [m.lr for m in members], compile, exact)
    data = StackedSets([m.train for m in members])
    device = data.points.device
    schedulers = [_plateau(m.lr, plateau_patience) for m in members]
    histories = [History(stopped="max_epochs") for _ in members]
    outcome: list[History | BaseException] = list(histories)
    best = [stack.member_state(k) for k in range(len(members))]  # fallback if the first epoch diverges
    active = list(range(len(members)))  # member index of each stack position
    ghost = [False] * len(members)  # a position that only keeps the stack at K >= 2
    gens = list(generators)  # the generator of each stack position
    if len(members) == 1:
        active, ghost, gens = _with_twin(stack, data, active, gens, 0)
    for epoch in range(max_epochs):
        order, rotation = epoch_draws(gens, len(members[active[0]].train), augment_rotation, device)
        finite = train_epoch(stack, data, order, rotation, batch_size, autocast).cpu()
        probas = predict(stack, [members[i].valid for i in active], autocast, eval_points)
        going = []
        for position, i in enumerate(active):
            if ghost[position]:
                continue
            member, history = members[i], histories[i]
            if not bool(finite[position]) or not np.isfinite(probas[position]).all():
                history.stopped = "diverged"
                continue
            score = float(member.ctx.score(member.y_valid, probas[position]))
            history.scores.append(score)
            try:
                member.ctx.report(epoch, score)
            except Exception as exc:  # noqa: BLE001 - optuna.TrialPruned, handed back to the caller
                outcome[i] = exc
                continue
            if schedulers[i] is not None:
                schedulers[i][1].step(score)
                stack.optimizer.lrs[position] = schedulers[i][0].param_groups[0]["lr"]
            if score > history.best_score:
                history.best_score, history.best_epoch = score, epoch
                best[i] = stack.member_state(position)
            elif epoch - history.best_epoch >= patience:
                history.stopped = "patience"
                continue
            going.append(position)
        if not going:
            break
        if len(going) == 1:
            active, ghost, gens = _with_twin(stack, data, active, gens, going[0])
        elif len(going) < len(active):
            stack.keep(going)
            data.keep(going)
            active, ghost, gens = [active[p] for p in going], [False] * len(going), [gens[p] for p in going]
    for i, member in enumerate(members):
        member.net.load_state_dict(best[i])
        member.net.eval()
    return outcome


def _with_twin(stack: Stack, data: StackedSets, active: list[int], gens: list, position: int):
    """Keep only the member at `position`, beside a twin of itself (a ghost: trained, never
    scored, discarded). On CPU a member's numbers under vmap are the same bits whichever
    members share its stack, as long as there are at least two (with one, vmap's kernels
    differ), so a fit alone equals the same fit in any batch: a resumed or regrouped
    study gives the numbers of an uncut one."""
    stack.keep([position, position])
    data.keep([position, position])
    twin = torch.Generator()
    twin.set_state(gens[position].get_state())  # its own generator: the member's draws stay its own
    return [active[position]] * 2, [False, True], [gens[position], twin]


def _plateau(lr: float, patience: int):
    """A member's ReduceLROnPlateau (the one `loop.train` uses) on a stand-in optimizer
    that only holds its learning rate."""
    if patience <= 0:
        return None
    holder = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    return holder, torch.optim.lr_scheduler.ReduceLROnPlateau(holder, mode="max", factor=0.5, patience=patience)

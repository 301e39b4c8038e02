"""`TorchModel`: the base of every neural point-cloud model, built-in or third-party.

    from harness.torch import TorchModel

A subclass declares its hyperparameters as fields, names the ones the search explores
(`search_space`), and says how to build its network from them (`build`, given
`default_params()`: by default those fields). Fitting, seeding, batching, mixed
precision, prediction and saving as data live here once (the engine: `harness.sdk.neural`).

A network receives a mini-batch of clouds and returns logits (B, k). The batch is either
`DenseClouds` (all clouds of the same size: one (B, n, d) tensor, the fast path) or a
torch-geometric `Batch` (clouds of different sizes); both have `.x` (all points,
(sum n_i, d)), `.batch` and `.num_graphs`. Apply point-wise layers to `.x` and reduce
with `max_pool`, `mean_pool`, `min_pool` or `padded`, and one network serves both.

Determinism: on CPU the same seed gives the same weights, bit for bit. On CUDA (bf16
autocast, TF32) the same seed gives the same validation metric to within 0.02 (the
tolerance `tests/test_neural_engine.py` checks where a GPU is present).

Importing this module does not import torch (listing plugins stays fast): torch loads
when a model fits, predicts or builds its network, and the engine's names (`DenseClouds`,
`max_pool`, ...) load on first use. It needs torch installed.
"""

from __future__ import annotations

from pathlib import Path

import contextlib
import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

import numpy as np

from harness.sdk.api import CLOUD, FitContext, Model, Samples
from harness.services.errors import UserError
from harness.services.precision import PRECISIONS

if importlib.util.find_spec("torch") is None:  # pragma: no cover - torch is a dependency
    raise ImportError("harness.torch needs PyTorch: pip install torch")

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from harness.sdk.neural.clouds import (
        Clouds,
        DenseClouds,
        max_pool,
        mean_pool,
        min_pool,
        padded,
        random_rotations,
        rotate,
    )
    from harness.sdk.neural.loop import History
    from harness.sdk.neural.sets import CloudSet, DenseSet, GraphSet, make_set

__all__ = [
    "CloudSet",
    "Clouds",
    "DenseClouds",
    "DenseSet",
    "GraphSet",
    "History",
    "TorchModel",
    "make_set",
    "max_pool",
    "mean_pool",
    "min_pool",
    "padded",
    "random_rotations",
    "rotate",
    "seeded",
    "threads",
]

_ENGINE = {
    "harness.sdk.neural.clouds": (
        "Clouds",
        "DenseClouds",
        "max_pool",
        "mean_pool",
        "min_pool",
        "padded",
        "random_rotations",
        "rotate",
    ),
    "harness.sdk.neural.loop": ("History",),
    "harness.sdk.neural.sets": ("CloudSet", "DenseSet", "GraphSet", "make_set"),
}


def __getattr__(name: str) -> Any:
    for module, names in _ENGINE.items():
        if name in names:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


LAYOUTS = ("auto", "dense", "graph")
PLACEMENT = ("gpu_share", "memory_mb")  # settings that say where a fit runs, not what it computes


@contextlib.contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch for the block without disturbing the caller's global RNG state."""
    import torch

    devices = [torch.device(device).index or 0] if str(device).startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Use `n` intra-op threads for the block (the core decides how many a unit gets)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


# With `batch_studies`, stacks of at most this many members. Measured on CPU (torch 2.x):
# a member's numbers are bit-equal in a stack of 2 whatever its mate (or a twin of
# itself), but from the third stack position on the batched kernels round differently
# (PointNet weights off by up to 2e-2 after 6 epochs), so a study's numbers would depend
# on which studies shared its pack, and a regrouped or resumed study would not equal an
# uncut one. Without `batch_studies` (benchmarks) a stack takes every member.
EXACT_STACK = 2


def _stacks(indices: list[int], exact: bool) -> list[list[int]]:
    """The members of one batchable group, as the stacks they train in."""
    if not exact:
        return [indices]
    return [indices[i : i + EXACT_STACK] for i in range(0, len(indices), EXACT_STACK)]


@dataclass
class TorchModel(Model):
    """Shared settings: `[settings.<model>]` in the TOML sets any of these fields."""

    accepts: ClassVar[frozenset[str]] = frozenset({CLOUD})
    uses_gpu: ClassVar[bool] = True

    max_epochs: int = 30
    batch_size: int = 64
    patience: int = 8
    # Training-time augmentation: each training cloud is turned by a fresh random rotation
    # within +/- this angle (radians) every epoch; 0 = off. Validation and test are untouched.
    augment_rotation: float = 0.0
    # Halve the learning rate after this many epochs without a better validation metric
    # (0 = constant learning rate).
    plateau_patience: int = 0
    # Scale each cloud into the unit sphere (x, y, z over the largest point norm) before the
    # network sees it: for labels that do not depend on cell size, such as crystal systems.
    normalize_scale: bool = False
    # "auto": bf16 autocast on CUDA (fp32 master weights), fp32 on CPU; "fp32"; "bf16".
    precision: str = "auto"
    # torch.compile the network on the dense path (fixed shapes; graph batches change
    # shape every batch and stay eager). On CUDA in mode "reduce-overhead": each step's
    # forward and backward replay as CUDA graphs, not hundreds of launches from the host.
    # Pays on CUDA for long fits; compiling costs a minute.
    compile: bool = False
    # "auto": one (N, n, d) tensor when every cloud has the same size, else graphs;
    # "dense" or "graph" force one path (for benchmarks and checks).
    layout: str = "auto"
    # The share of one GPU a study of this model needs (its declared memory over the
    # device's): Ray asks for this many GPUs per study (`num_gpus`), so 1/gpu_share studies
    # share one GPU. Placement only: not part of the model's title or identity.
    gpu_share: float = 1.0
    # Declared peak memory of one fit in MiB (0: unknown). The local executor packs as many
    # studies into one batched fit as fit in the device's memory its worker may use; on a
    # GPU without a declaration, a study needs its `gpu_share` of the device.
    # Placement only: not part of the model's title or identity.
    memory_mb: float = 0.0
    # Fit through the batched engine (`fit_many`, `harness.sdk.neural.batched`) even alone: a
    # study's numbers then do not depend on which studies share its batch (CPU: bit-equal),
    # so seeds and trials can be packed together and a resumed study equals an uncut one.
    # They differ from the unbatched engine's in float32 rounding, hence off by default.
    batch_studies: bool = False

    def __post_init__(self) -> None:
        if float(self.memory_mb) < 0:
            raise ValueError(f"memory_mb = {self.memory_mb!r}: give the MiB one fit needs (0: unknown)")
        if not 0 < float(self.gpu_share) <= 1:
            raise ValueError(f"gpu_share = {self.gpu_share!r}: choose a share of one GPU in (0, 1]")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision = {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout = {self.layout!r}: choose one of {', '.join(LAYOUTS)}")

    def params(self) -> dict[str, Any]:
        """The identifying parameters: all but `gpu_share` and `memory_mb` (where a study
        runs, not what it computes)."""
        return {k: v for k, v in super().params().items() if k not in PLACEMENT}

    def _title_ignores(self) -> tuple[str, ...]:
        return (*super()._title_ignores(), *PLACEMENT)

    def memory_estimate(self, device: str) -> int | None:
        """Bytes one fit needs on `device` (packing): the declared `memory_mb`, else on a
        GPU its `gpu_share` of the device; None where nothing says."""
        if self.memory_mb > 0:
            return int(self.memory_mb * 2**20)
        if device.startswith("cuda"):
            from harness.services.workers import device_memory

            total = device_memory(device)
            return int(total * self.gpu_share) if total else None
        return None

    # ---- what a subclass provides

    def default_params(self) -> dict[str, Any]:
        """What `build` and the optimiser read (`optimizer`, `lr`, widths ...): by default
        the hyperparameter fields the model's `search_space` names."""
        return {name: getattr(self, name) for name in type(self).search_space}

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> "torch.nn.Module":
        """A fresh network mapping a batch of clouds to logits (num_graphs, n_classes)."""
        raise NotImplementedError

    # ---- the Model contract

    def fit(self, train: Samples, valid: Samples, ctx: FitContext) -> "TorchModel":
        if self.batch_studies:  # through the batched engine, as in any batch of its combination
            (result,) = self.fit_many([(train, valid, ctx)])
            if isinstance(result, BaseException):
                raise result
            self.history_, self._net, self._arch = result.history_, result._net, result._arch
            return self
        return self._fit_alone(train, valid, ctx)

    def _fit_alone(self, train: Samples, valid: Samples, ctx: FitContext) -> "TorchModel":
        import torch

        from harness.sdk.neural import accel, loop
        from harness.sdk.neural.sets import DenseSet

        params = self.default_params()
        in_dim = int(np.asarray(train.X[0]).shape[1])
        device = ctx.device
        accel.keep_freed_memory()
        with threads(ctx.threads), seeded(ctx.seed, device), accel.fast_matmul(device):
            train_set = self.as_set(train.X, train.y, device)
            valid_set = self.as_set(valid.X, None, device)
            net = self.build(params, in_dim, ctx.n_classes).to(device)
            optimizer = loop.make_optimizer(net, params["optimizer"], float(params["lr"]))
            generator = torch.Generator().manual_seed(ctx.seed)
            self.history_ = loop.train(
                net,
                train_set,
                valid_set,
                np.asarray(valid.y),
                optimizer,
                ctx,
                max_epochs=self.max_epochs,
                patience=self.patience,
                batch_size=self.batch_size,
                generator=generator,
                augment_rotation=self.augment_rotation,
                plateau_patience=self.plateau_patience,
                forward=accel.compiled(net, self.compile and isinstance(train_set, DenseSet), device),
                autocast=lambda: accel.autocast(device, self.precision),
                eval_points=accel.eval_points(device, self.gpu_share),
            )
        self._net = net
        self._arch = (params, in_dim, ctx.n_classes)
        return self

    def fit_many(self, fits: Sequence[tuple[Samples, Samples, FitContext]]) -> list["TorchModel | BaseException"]:
        """One fitted copy of this model per (train, valid, ctx), as `fit` makes each, with
        the fits that can share kernels trained together as one batched model
        (`harness.sdk.neural.batched`): dense clouds of one shape, training sets of one length,
        no dropout. The others fit one by one (with `batch_studies`, a lone batchable fit
        runs batched too, beside a twin). A fit whose `ctx.report` raised (pruning)
        gives that exception in its place. Results equal separate fits to float32 rounding
        (bit-equal data order, draws, initial weights and optimizer arithmetic)."""
        import copy

        from harness.sdk.neural import accel, batched
        from harness.sdk.neural.sets import DenseSet

        if not fits:
            return []
        params = self.default_params()
        in_dim = int(np.asarray(fits[0][0].X[0]).shape[1])
        device, n_threads = fits[0][2].device, fits[0][2].threads
        accel.keep_freed_memory()
        members: list[batched.Member] = []
        groups: dict[tuple, list[int]] = {}
        with threads(n_threads), accel.fast_matmul(device):
            for i, (train, valid, ctx) in enumerate(fits):
                with seeded(ctx.seed, device):
                    train_set = self.as_set(train.X, train.y, device)
                    valid_set = self.as_set(valid.X, None, device)
                    net = self.build(params, in_dim, ctx.n_classes).to(device)
                members.append(batched.Member(net, train_set, valid_set, np.asarray(valid.y), ctx, float(params["lr"])))
                dense = isinstance(train_set, DenseSet) and isinstance(valid_set, DenseSet)
                key = (
                    (ctx.device, ctx.n_classes, len(train_set), tuple(train_set.points.shape[1:]))
                    if dense and batched.batchable(net, train_set.points)
                    else ("alone", i)
                )
                groups.setdefault(key, []).append(i)
            out: list[TorchModel | BaseException | None] = [None] * len(fits)
            for key, indices in groups.items():
                if key[0] == "alone":
                    stacks = [indices]
                elif self.batch_studies:  # pairs: exact, whatever the pack (no split by size)
                    stacks = _stacks(indices, True)
                else:  # on CPU as many as its step's activations allow (batched.members_per_stack)
                    stacks = batched.split(
                        indices,
                        batched.members_per_stack(
                            members[indices[0]].net,
                            self.batch_size,
                            int(members[indices[0]].train.points.shape[1]),
                            device,
                        ),
                    )
                for part in stacks:
                    if len(part) > 1 or (self.batch_studies and key[0] != "alone"):
                        self._train_stack(part, members, fits, out, params, in_dim, device)
                        continue
                    i = part[0]
                    try:
                        out[i] = copy.copy(self)._fit_alone(*fits[i])
                    except Exception as exc:  # noqa: BLE001 - pruning, handed back as for batched members
                        if type(exc).__name__ != "TrialPruned":
                            raise
                        out[i] = exc
        return out  # type: ignore[return-value]

    def _train_stack(
        self,
        indices: list[int],
        members: list,
        fits: Sequence,
        out: list,
        params: dict[str, Any],
        in_dim: int,
        device: str,
    ) -> None:
        """Train the members at `indices` as one stack; their fitted copies go to `out`."""
        import copy

        import torch

        from harness.sdk.neural import accel, batched

        group = [members[i] for i in indices]
        results = batched.train_batched(
            group,
            params["optimizer"],
            [torch.Generator().manual_seed(m.ctx.seed) for m in group],
            max_epochs=self.max_epochs,
            patience=self.patience,
            batch_size=self.batch_size,
            augment_rotation=self.augment_rotation,
            plateau_patience=self.plateau_patience,
            autocast=lambda: accel.autocast(device, self.precision),
            compile=self.compile,
            eval_points=accel.eval_points(device, self.gpu_share),
            exact=self.batch_studies,
        )
        for i, member, result in zip(indices, group, results):
            if isinstance(result, BaseException):
                out[i] = result
                continue
            fitted = copy.copy(self)
            fitted.history_, fitted._net = result, member.net
            fitted._arch = (params, in_dim, member.ctx.n_classes)
            out[i] = fitted

    def predict_proba(self, X: list[np.ndarray] | np.ndarray) -> np.ndarray:
        from harness.sdk.neural import accel, loop

        net = self.network
        device = str(next(net.parameters()).device)
        with accel.fast_matmul(device):
            return loop.predict(
                net,
                self.as_set(X, None, device),
                lambda: accel.autocast(device, self.precision),
                accel.eval_points(device, self.gpu_share),
            )

    def as_set(
        self,
        X: Sequence[np.ndarray] | np.ndarray,
        y: np.ndarray | None = None,
        device: str = "cpu",
    ) -> "CloudSet":
        """The clouds as the network sees them, on `device` (the same in training and
        prediction); made once per list of clouds while it is in use."""
        dense = {"auto": None, "dense": True, "graph": False}[self.layout]
        if dense and len({np.shape(x) for x in X}) > 1:
            sizes = sorted({len(x) for x in X})
            raise UserError(
                f"{self.name}: layout = 'dense' needs clouds of one size, got sizes {sizes[:5]}; use layout = 'auto'"
            )
        from harness.sdk.neural.sets import upload

        return upload(X, y, device, self.normalize_scale, dense)

    @property
    def network(self) -> "torch.nn.Module":
        """The fitted torch module (raises before `fit`)."""
        net = getattr(self, "_net", None)
        if net is None:
            raise RuntimeError(f"{self.name}: call fit() before using the model")
        return net

    # ---- persistence as data: the architecture as JSON, the weights as a state_dict that
    # is read back with `weights_only=True` (tensors only, never code)

    def save(self, path: "Path") -> None:
        import json

        import torch

        params, in_dim, n_classes = self._arch
        (Path(path) / "architecture.json").write_text(
            json.dumps({"params": params, "in_dim": in_dim, "n_classes": n_classes}, sort_keys=True)
        )
        torch.save({k: v.detach().cpu() for k, v in self.network.state_dict().items()}, Path(path) / "weights.pt")

    def load(self, path: "Path") -> "TorchModel":
        import json

        import torch

        arch = json.loads((Path(path) / "architecture.json").read_text())
        self._arch = (arch["params"], int(arch["in_dim"]), int(arch["n_classes"]))
        net = self.build(*self._arch)
        net.load_state_dict(torch.load(Path(path) / "weights.pt", map_location="cpu", weights_only=True))
        self._net = net.eval()
        return self

    # ---- pickling: weights travel as CPU tensors, the network is rebuilt on load

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        net = state.pop("_net", None)
        if net is not None:
            state["_weights"] = {k: v.detach().cpu() for k, v in net.state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop("_weights", None)
        self.__dict__.update(state)
        if weights is not None:
            net = self.build(*self._arch)
            net.load_state_dict(weights)
            self._net = net.eval()

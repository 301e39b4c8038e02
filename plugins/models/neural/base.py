"""`TorchModel`: the Model entry behaviour common to the neural point-cloud models.

Subclasses say how to build their network from a parameter dict (`build`), which
parameters the search explores (`search_space`) and which they use when none are given
(`default_params`). Fitting, seeding, prediction and pickling live here once. torch is
imported where it is used, so that loading the plugin costs no torch import.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

import numpy as np

from harness import CLOUD, FitContext, Model, Samples

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch_geometric.data import Data


@contextlib.contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """Seed torch for the block without disturbing the caller's global RNG state."""
    import torch

    devices = [torch.device(device).index or 0] if device.startswith("cuda") else []
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


@dataclass
class TorchModel(Model):
    """Shared settings: `[settings.<model>]` in the TOML sets any of these fields."""

    accepts: ClassVar[frozenset[str]] = frozenset({CLOUD})

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

    # ---- what a subclass provides

    def default_params(self) -> dict[str, Any]:
        """Parameters used for any the caller leaves out (the paper's choices)."""
        raise NotImplementedError

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> "torch.nn.Module":
        """A fresh network mapping a `Batch` to logits (num_graphs, n_classes)."""
        raise NotImplementedError

    # ---- the Model contract

    def fit(self, train: Samples, valid: Samples, params: dict[str, Any], ctx: FitContext) -> "TorchModel":
        import torch

        from . import loop

        params = {**self.default_params(), **params}
        in_dim = int(np.asarray(train.X[0]).shape[1])
        device = ctx.device
        with threads(ctx.threads), seeded(ctx.seed, device):
            train_data = self.as_data(train.X, train.y, device)
            valid_data = self.as_data(valid.X, None, device)
            net = self.build(params, in_dim, ctx.n_classes).to(device)
            optimizer = loop.make_optimizer(net, params["optimizer"], float(params["lr"]))
            generator = torch.Generator().manual_seed(ctx.seed)
            self.history_ = loop.train(
                net, train_data, valid_data, np.asarray(valid.y), optimizer, ctx,
                max_epochs=self.max_epochs, patience=self.patience,
                batch_size=self.batch_size, generator=generator,
                augment_rotation=self.augment_rotation,
                plateau_patience=self.plateau_patience,
            )
        self._net = net
        self._arch = (params, in_dim, ctx.n_classes)
        return self

    def predict_proba(self, X: list[np.ndarray] | np.ndarray) -> np.ndarray:
        from . import loop

        net = self.network
        device = next(net.parameters()).device
        return loop.predict(net, self.as_data(list(X), None, str(device)))

    def as_data(self, X: Sequence[np.ndarray], y: np.ndarray | None = None, device: str = "cpu") -> list["Data"]:
        """The clouds as the network sees them (the same in training and prediction)."""
        from .data import to_data

        return to_data(X, y, device, normalize_scale=self.normalize_scale)

    @property
    def network(self) -> "torch.nn.Module":
        """The fitted torch module (raises before `fit`)."""
        net = getattr(self, "_net", None)
        if net is None:
            raise RuntimeError(f"{self.name}: call fit() before using the model")
        return net

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

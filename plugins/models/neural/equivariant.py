"""`e3nn`: an E(3)-equivariant network over the diffraction points, whose prediction does
not change when the cloud is rotated (the network and its design: `nets.equivariant`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from harness import Choice, FitContext, Samples

from harness.torch import TorchModel

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class E3NN(TorchModel):
    name = "e3nn"
    description = "E(3)-equivariant tensor-product network; rotation-invariant prediction"

    search_space: ClassVar[dict] = {
        "mul": Choice(8, 16),
        "layers": Choice(1, 2, 3),
        "lmax": Choice(1, 2),
        "optimizer": Choice("adam"),
        "lr": Choice(0.01, 0.001),
    }
    radius: float = 1.5  # edge cutoff in units of the crystal's shortest non-zero |g|
    n_basis: int = 8  # radial basis functions
    # Small for CPU: per-edge tensor-product weights dominate the cost (mul 16 with lmax 2
    # is about 4x slower per epoch than these defaults).
    mul: int = 8
    layers: int = 2
    lmax: int = 1
    optimizer: Literal["sgd", "adam"] = "adam"
    lr: float = 0.01

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> "torch.nn.Module":
        from .nets.equivariant import EquivariantNet

        return EquivariantNet(
            in_dim - 3,
            n_classes,
            mul=int(params["mul"]),
            layers=int(params["layers"]),
            lmax=int(params["lmax"]),
            radius=float(self.radius),
            n_basis=int(self.n_basis),
        )

"""`e3nn`: an E(3)-equivariant network over the diffraction points.

Positions are vectors (1o), the other columns scalars (0e). Three kinds of message:

* from the reciprocal-lattice origin to every point (its vector g_i), which starts the
  features. The origin stays fixed: a diffraction cloud is not translation invariant,
  only rotation invariant about the origin;
* between points of one crystal closer than `radius` x s, where s is the crystal's
  shortest non-zero |g| (for a lattice: its nearest-neighbour distance). Relative to s the
  edge count per point stays bounded whatever the cell size, and a smooth cutoff gives
  edges at the boundary zero weight (messages are summed, not averaged), so the output
  is continuous in the positions: ties at the cutoff cannot break the invariance. The
  absolute scale enters as the scalar log s;
* from a global node, the crystal's mean feature, to every point: with 3 points (the
  reciprocal basis vectors) there may be no edges at all, yet the angles between the
  vectors decide the crystal system, so every point must see every other.

Edges are found per batch from pairwise distances in torch (no torch-cluster). The
read-out keeps only invariant (0e) channels, mean-pooled per crystal, so the prediction
does not change when the cloud is rotated (or inverted).
"""

from __future__ import annotations

import torch
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from e3nn.nn import FullyConnectedNet, Gate
from torch import Tensor
from torch_geometric.utils import scatter

from harness.torch import Clouds, mean_pool, min_pool, padded

NEIGHBOURS = 8.0  # messages are summed and divided by this typical neighbour count
ORIGIN_RANGE = 6.0  # |g| / s covered by the origin basis (n = 343 reaches about 3 sqrt 3)


def gated_irreps(mul: int, lmax: int) -> Gate:
    """Gate nonlinearity for `mul` scalars and `mul // 2` copies of each l = 1..lmax."""
    gated = o3.Irreps([(max(1, mul // 2), (l, (-1) ** l)) for l in range(1, lmax + 1)])
    return Gate(
        o3.Irreps(f"{mul}x0e"),
        [torch.nn.functional.silu],
        o3.Irreps(f"{gated.num_irreps}x0e"),
        [torch.sigmoid],
        gated,
    )


class RadialTP(torch.nn.Module):
    """Tensor product of features with spherical harmonics, weighted by an MLP of distance."""

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, irreps_out: o3.Irreps, n_basis: int):
        super().__init__()
        self.tp = o3.FullyConnectedTensorProduct(irreps_in, irreps_sh, irreps_out, shared_weights=False)
        self.radial = FullyConnectedNet([n_basis, 16, self.tp.weight_numel], torch.nn.functional.silu)

    def forward(self, h: Tensor, sh: Tensor, emb: Tensor) -> Tensor:
        return self.tp(h, sh, self.radial(emb))


class Interaction(torch.nn.Module):
    """One layer: convolution over the point-point edges, a message from the crystal's
    mean feature (a global node: every point sees every other, even with no edges, as
    for 3 basis vectors far apart), self-interaction, gate."""

    def __init__(self, irreps_in: o3.Irreps, irreps_sh: o3.Irreps, gate: Gate, n_basis: int):
        super().__init__()
        self.conv = RadialTP(irreps_in, irreps_sh, gate.irreps_in, n_basis)
        self.context = o3.FullyConnectedTensorProduct(irreps_in, irreps_in, gate.irreps_in)
        self.self_interaction = o3.Linear(irreps_in, gate.irreps_in)
        self.gate = gate

    def forward(self, h: Tensor, clouds: Clouds, src: Tensor, dst: Tensor, sh: Tensor, emb: Tensor) -> Tensor:
        messages = self.conv(h[src], sh, emb)
        # A sum, not a mean: an edge fading out at the cutoff must not change a divisor.
        pooled = scatter(messages, dst, dim=0, dim_size=h.shape[0], reduce="sum") / NEIGHBOURS
        crystal = mean_pool(h, clouds)[clouds.batch]
        return self.gate(self.self_interaction(h) + pooled + self.context(h, crystal))


class EquivariantNet(torch.nn.Module):
    def __init__(
        self,
        n_scalars: int,
        n_classes: int,
        *,
        mul: int,
        layers: int,
        lmax: int,
        radius: float,
        n_basis: int,
    ):
        super().__init__()
        self.radius, self.n_basis = radius, n_basis
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        scalars_in = o3.Irreps(f"{n_scalars + 2}x0e")  # columns + constant 1 + log s
        gate = gated_irreps(mul, lmax)
        self.origin = RadialTP(scalars_in, self.irreps_sh, gate.irreps_in, n_basis)
        self.origin_gate = gate
        self.layers = torch.nn.ModuleList(
            Interaction(gate.irreps_out, self.irreps_sh, gated_irreps(mul, lmax), n_basis) for _ in range(layers)
        )
        self.invariants = o3.Linear(gate.irreps_out, o3.Irreps(f"{mul}x0e"))
        self.head = torch.nn.Sequential(
            torch.nn.Linear(mul, 2 * mul), torch.nn.SiLU(), torch.nn.Linear(2 * mul, n_classes)
        )

    def edges(self, pos: Tensor, clouds: Clouds, scale: Tensor) -> tuple[Tensor, Tensor]:
        """(src, dst) of all ordered pairs in one crystal closer than radius x s."""
        with torch.no_grad():
            dense, mask = padded(pos, clouds)
            dist = torch.cdist(dense, dense)
            n = dense.shape[1]
            keep = dist < self.radius * scale[:, None, None]
            if mask is not None:
                keep &= mask[:, :, None] & mask[:, None, :]
            keep &= ~torch.eye(n, dtype=torch.bool, device=pos.device)
            b, i, j = keep.nonzero(as_tuple=True)
            sizes = mask.sum(1) if mask is not None else torch.full_like(scale, n, dtype=torch.long)
            offset = torch.cumsum(sizes, 0) - sizes
            return j + offset[b], i + offset[b]

    def forward(self, clouds: Clouds) -> Tensor:
        x = clouds.x
        pos, batch = x[:, :3], clouds.batch
        norm = pos.norm(dim=1)
        far = torch.where(norm > 1e-6, norm, torch.full_like(norm, float("inf")))
        scale = min_pool(far[:, None], clouds)[:, 0]
        scale = torch.where(torch.isfinite(scale), scale, torch.ones_like(scale))
        s = scale[batch]

        ones = torch.ones_like(norm)[:, None]
        scalars = torch.cat([x[:, 3:], ones, torch.log(s)[:, None]], dim=1)
        sh = o3.spherical_harmonics(self.irreps_sh, pos, normalize=True, normalization="component")
        emb = soft_one_hot_linspace(norm / s, 0.0, ORIGIN_RANGE, self.n_basis, basis="gaussian", cutoff=False)
        h = self.origin_gate(self.origin(scalars, sh, emb))

        src, dst = self.edges(pos, clouds, scale)
        vec = pos[src] - pos[dst]
        edge_sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        edge_emb = soft_one_hot_linspace(
            vec.norm(dim=1) / s[dst], 0.0, self.radius, self.n_basis, basis="smooth_finite", cutoff=True
        )
        for layer in self.layers:
            h = layer(h, clouds, src, dst, edge_sh, edge_emb)
        return self.head(mean_pool(self.invariants(h), clouds))

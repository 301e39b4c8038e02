"""Mini-batches of point clouds, and the operations networks and the loop apply to them.

Two layouts, one set of networks:

* `DenseClouds`: B clouds of the same n points, one tensor (B, n, d). All diffraction
  clouds of a representation have the same n, so this is the common case.
* a torch-geometric `Batch`: clouds of different sizes concatenated (sum n_i, d), told
  apart by the `batch` vector.

Both expose `.x` (every point of the batch, (sum n_i, d), clouds one after the other),
`.batch` and `.num_graphs`, so a point-wise layer is written once; pooling and padding
go through `max_pool`, `mean_pool` and `padded`, which take the fast path for dense
clouds (a reshape and a reduction over n) and the scatter path for graphs.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn import global_max_pool, global_mean_pool
from torch_geometric.utils import scatter, to_dense_batch


MAX_INDEXED_FROM = 40  # points per cloud from which training max-pools through indices


class DenseClouds:
    """B clouds of n points each: `points` (B, n, d), labels `y` (B,) or None."""

    def __init__(self, points: Tensor, y: Tensor | None = None):
        if points.dim() != 3:
            raise ValueError(f"dense clouds are (B, n, d), got shape {tuple(points.shape)}")
        self.points = points
        self.y = y
        self._batch: Tensor | None = None

    @property
    def x(self) -> Tensor:
        """All points, (B * n, d), cloud after cloud: the layout of a graph batch's `.x`."""
        return self.points.reshape(-1, self.points.shape[-1])

    @property
    def num_graphs(self) -> int:
        return self.points.shape[0]

    @property
    def n_points(self) -> int:
        return self.points.shape[1]

    @property
    def batch(self) -> Tensor:
        """Cloud index of every point (B * n,), as a graph batch has it."""
        if self._batch is None:
            b, n = self.points.shape[:2]
            self._batch = torch.arange(b, device=self.points.device).repeat_interleave(n)
        return self._batch


Clouds = Union[DenseClouds, Batch]


def max_pool(h: Tensor, clouds: Clouds) -> Tensor:
    """Per-cloud maximum of point features h (sum n_i, F) -> (B, F)."""
    if isinstance(clouds, DenseClouds):
        h = h.view(clouds.num_graphs, clouds.n_points, -1)
        # amax is vectorised; its backward compares every point with the maximum, which
        # on large clouds costs more than routing gradients by the indices `max` returns
        # (measured on CPU, 1 thread: amax wins below ~40 points per cloud, max above).
        return h.max(dim=1).values if h.requires_grad and clouds.n_points > MAX_INDEXED_FROM else h.amax(dim=1)
    return global_max_pool(h, clouds.batch, size=clouds.num_graphs)


def mean_pool(h: Tensor, clouds: Clouds) -> Tensor:
    """Per-cloud mean of point features h (sum n_i, F) -> (B, F)."""
    if isinstance(clouds, DenseClouds):
        return h.view(clouds.num_graphs, clouds.n_points, -1).mean(dim=1)
    return global_mean_pool(h, clouds.batch, size=clouds.num_graphs)


def min_pool(h: Tensor, clouds: Clouds) -> Tensor:
    """Per-cloud minimum of point features h (sum n_i, F) -> (B, F)."""
    if isinstance(clouds, DenseClouds):
        return h.view(clouds.num_graphs, clouds.n_points, -1).amin(dim=1)
    return scatter(h, clouds.batch, dim=0, dim_size=clouds.num_graphs, reduce="min")


def padded(h: Tensor, clouds: Clouds) -> tuple[Tensor, Tensor | None]:
    """Point features as (B, n_max, F) and a mask of the real points (None: all real)."""
    if isinstance(clouds, DenseClouds):
        return h.view(clouds.num_graphs, clouds.n_points, -1), None
    return to_dense_batch(h, clouds.batch, batch_size=clouds.num_graphs)


def random_rotations(n: int, max_angle: float, generator: torch.Generator) -> Tensor:
    """n rotation matrices (n, 3, 3) about random axes by angles uniform in +/- max_angle."""
    axis = torch.randn(n, 3, generator=generator)
    axis = axis / axis.norm(dim=1, keepdim=True).clamp_min(1e-12)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * max_angle
    k = torch.zeros(n, 3, 3)
    k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    k = k - k.transpose(1, 2)
    eye = torch.eye(3).expand(n, 3, 3)
    s, c = angle.sin()[:, None, None], angle.cos()[:, None, None]
    return eye + s * k + (1 - c) * (k @ k)


def rotate(clouds: Clouds, rotations: Tensor) -> Clouds:
    """Each cloud turned by its own rotation (B, 3, 3) (columns 0-2 are x, y, z): a new
    batch, the input untouched. Training-time augmentation for models that are not
    rotation-invariant by construction."""
    rotations = rotations.to(clouds.x.device, non_blocking=True)
    if isinstance(clouds, DenseClouds):
        points = clouds.points.clone()
        points[..., :3] = points[..., :3] @ rotations.transpose(1, 2)
        return DenseClouds(points, clouds.y)
    x = clouds.x.clone()
    x[:, :3] = torch.einsum("nij,nj->ni", rotations[clouds.batch], x[:, :3])
    out = clouds.clone()
    out.x = x
    return out


def scale_into_unit_sphere(points: Tensor) -> Tensor:
    """Clouds (..., n, d) with x, y, z divided by each cloud's largest point norm.

    PointNet scales every cloud into the unit sphere: the right input for scale-free
    labels (crystal systems), the wrong one where cell size matters (it hides density)."""
    norms = points[..., :3].norm(dim=-1).amax(dim=-1, keepdim=True).clamp_min(1e-12)
    out = points.clone()
    out[..., :3] = points[..., :3] / norms[..., None]
    return out

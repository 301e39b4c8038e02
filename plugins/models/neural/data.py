"""Point clouds as torch-geometric graphs, and the mini-batches the training loop draws.

Each cloud becomes one `Data(x=(n_i, d))` once per fit; batches are collated by
`Batch.from_data_list`, so clouds of different sizes share a batch and are told apart by
the `batch` vector that the pooling layers use.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch
from torch_geometric.data import Batch, Data


def to_data(
    X: Sequence[np.ndarray], y: np.ndarray | None = None, device: str = "cpu", normalize_scale: bool = False
) -> list[Data]:
    """One `Data` per cloud (labels in `y` when given), already on `device`.

    `normalize_scale` divides each cloud's x, y, z by its largest point norm, as PointNet
    scales every cloud into the unit sphere: the right input for scale-free labels (crystal
    systems), the wrong one where cell size matters (it hides the density)."""
    out = []
    for i, x in enumerate(X):
        x = np.array(x, dtype=np.float32)
        if normalize_scale:
            x[:, :3] /= max(float(np.linalg.norm(x[:, :3], axis=1).max(initial=0.0)), 1e-12)
        d = Data(x=torch.as_tensor(x))
        if y is not None:
            d.y = torch.tensor([int(y[i])], dtype=torch.long)
        out.append(d.to(device))
    return out


def batches(data: Sequence[Data], batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
    """Collated mini-batches, shuffled by `generator` when given (else in order).

    A trailing batch of a single cloud is merged into the one before it: BatchNorm in
    training mode cannot normalise one value per channel."""
    n = len(data)
    order = torch.randperm(n, generator=generator).tolist() if generator is not None else list(range(n))
    starts = list(range(0, n, max(1, batch_size)))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    ends = starts[1:] + [n]
    for start, end in zip(starts, ends):
        yield Batch.from_data_list([data[i] for i in order[start:end]])


def random_rotations(n: int, max_angle: float, generator: torch.Generator) -> torch.Tensor:
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


def rotate_batch(batch: Batch, max_angle: float, generator: torch.Generator) -> Batch:
    """Training-time augmentation: each cloud of the batch turned by its own fresh rotation
    (columns 0-2 are x, y, z). Teaches orientation invariance to models that lack it."""
    rot = random_rotations(batch.num_graphs, max_angle, generator).to(batch.x.device)
    x = batch.x.clone()
    x[:, :3] = torch.einsum("nij,nj->ni", rot[batch.batch], x[:, :3])
    batch.x = x
    return batch

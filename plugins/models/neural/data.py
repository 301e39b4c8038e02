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


def to_data(X: Sequence[np.ndarray], y: np.ndarray | None = None, device: str = "cpu") -> list[Data]:
    """One `Data` per cloud (labels in `y` when given), already on `device`."""
    out = []
    for i, x in enumerate(X):
        d = Data(x=torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32)))
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

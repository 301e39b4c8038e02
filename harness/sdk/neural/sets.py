"""Training and evaluation sets on the device, and the mini-batches drawn from them.

A set whose clouds all have the same number of points (every diffraction cloud of one
representation) is a `DenseSet`: one tensor (N, n, d) with its labels beside it, on the
device; a mini-batch is an index slice of it. Clouds of different sizes make a
`GraphSet`: one torch-geometric `Data` per cloud, collated per batch. Both draw batches
in the same order from the same generator, so the two paths see the same batches.

`upload` keeps the last few sets it made (keyed by the identity of the caller's list of
clouds) so that the trials of one study, which fit on the same splits again and again,
convert and copy their features to the device once.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Iterator, Sequence, Union

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from .clouds import DenseClouds, scale_into_unit_sphere

# Points per evaluation batch. CUDA: large batches, few launches, bounded activations
# (the widest layer of the paper's PointNet holds 1024 values per point). CPU: batches
# whose activations stay in cache (larger ones measured slower).
EVAL_POINTS = {"cpu": 1 << 13, "cuda": 1 << 21}
GRAPH_EVAL_BATCH = 256  # clouds per evaluation batch on the graph path


class DenseSet:
    """N clouds of n points on one device: `points` (N, n, d), labels `y` (N,) or None."""

    def __init__(self, points: Tensor, y: Tensor | None = None):
        self.points, self.y = points, y

    def __len__(self) -> int:
        return self.points.shape[0]

    @property
    def device(self) -> torch.device:
        return self.points.device

    def take(self, index: Tensor) -> DenseClouds:
        """The clouds at `index` (a tensor on the set's device)."""
        y = None if self.y is None else self.y.index_select(0, index)
        return DenseClouds(self.points.index_select(0, index), y)

    def slice(self, start: int, end: int) -> DenseClouds:
        y = None if self.y is None else self.y[start:end]
        return DenseClouds(self.points[start:end], y)

    def eval_batches(self, points: int | None = None) -> Iterator[DenseClouds]:
        """Chunks of at most `points` points (default: the device's `EVAL_POINTS`)."""
        budget = points or EVAL_POINTS.get(self.device.type, EVAL_POINTS["cpu"])
        size = max(1, budget // max(1, self.points.shape[1]))
        for start in range(0, len(self), size):
            yield self.slice(start, start + size)


class GraphSet:
    """Clouds of different sizes: one torch-geometric `Data` per cloud, on one device."""

    def __init__(self, data: list[Data]):
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    @property
    def device(self) -> torch.device:
        return self.data[0].x.device if self.data else torch.device("cpu")

    def take(self, index: Tensor) -> Batch:
        return Batch.from_data_list([self.data[i] for i in index.tolist()])

    def eval_batches(self, points: int | None = None) -> Iterator[Batch]:
        for start in range(0, len(self), GRAPH_EVAL_BATCH):
            yield Batch.from_data_list(self.data[start : start + GRAPH_EVAL_BATCH])


CloudSet = Union[DenseSet, GraphSet]


def spans(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, end) of each mini-batch over n items. A trailing batch of a single cloud is
    merged into the one before it: BatchNorm in training mode cannot normalise one value."""
    starts = list(range(0, n, max(1, batch_size)))
    if len(starts) > 1 and n - starts[-1] < 2:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def is_dense(X: Sequence[np.ndarray]) -> bool:
    return len(X) > 0 and len({np.shape(x) for x in X}) == 1


def make_set(
    X: Sequence[np.ndarray] | np.ndarray,
    y: np.ndarray | None,
    device: str,
    normalize_scale: bool = False,
    dense: bool | None = None,
) -> CloudSet:
    """The clouds on `device`: dense when they all have the same shape (unless `dense`
    says otherwise), else one graph per cloud. `normalize_scale` scales each cloud into
    the unit sphere (see `clouds.scale_into_unit_sphere`)."""
    if dense is None:
        dense = is_dense(X)
    labels = None if y is None else torch.as_tensor(np.asarray(y, dtype=np.int64))
    if dense:
        points = torch.from_numpy(np.ascontiguousarray(np.stack([np.asarray(x, np.float32) for x in X])))
        if normalize_scale:
            points = scale_into_unit_sphere(points)
        return DenseSet(points.to(device), None if labels is None else labels.to(device))
    data = []
    for i, x in enumerate(X):
        points = torch.as_tensor(np.array(x, dtype=np.float32))
        if normalize_scale:
            points = scale_into_unit_sphere(points)
        d = Data(x=points)
        if labels is not None:
            d.y = labels[i : i + 1]
        data.append(d.to(device))
    return GraphSet(data)


class _Uploads:
    """The last few sets made, keyed by (id of the clouds' list, labels, device, options).

    An entry holds the caller's list itself, so its id cannot be reused by another list
    while the entry lives; lists of clouds are never changed in place by the core."""

    def __init__(self, size: int = 4):
        self.size = size
        self.entries: OrderedDict[tuple, tuple[object, object, CloudSet]] = OrderedDict()

    def get(self, X, y, device: str, normalize_scale: bool, dense: bool | None) -> CloudSet:
        key = (id(X), None if y is None else id(y), str(device), normalize_scale, dense)
        hit = self.entries.get(key)
        if hit is not None and hit[0] is X and hit[1] is y:
            self.entries.move_to_end(key)
            return hit[2]
        made = make_set(X, y, device, normalize_scale, dense)
        self.entries[key] = (X, y, made)
        while len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return made

    def clear(self) -> None:
        self.entries.clear()


uploads = _Uploads()


def upload(X, y, device: str, normalize_scale: bool = False, dense: bool | None = None) -> CloudSet:
    """`make_set`, done once per list of clouds while it is among the last few used."""
    return uploads.get(X, y, device, normalize_scale, dense)

"""What a fit changes on an accelerator: mixed precision, TF32 matmuls, compilation.

On CPU nothing changes unless asked (fp32, eager), so CPU runs stay deterministic as
they always were. On CUDA the defaults are bf16 autocast with fp32 master weights (the
optimizer keeps fp32 parameters; only the matmuls run in bf16) and TF32 for the fp32
matmuls that remain. `torch.compile` is opt-in: it pays on CUDA for long fits of the
dense path (fixed shapes), not for short CPU fits, where compiling takes longer than
training.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from harness.torch import PRECISIONS


def autocast_dtype(device: str, precision: str) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None: plain fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "bf16" or (precision == "auto" and torch.device(device).type == "cuda"):
        return torch.bfloat16
    return None


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


@contextlib.contextmanager
def fast_matmul(device: str) -> Iterator[None]:
    """TF32 for fp32 matmuls and convolutions on CUDA for the block; untouched on CPU."""
    if torch.device(device).type != "cuda":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def compiled(net: torch.nn.Module, enabled: bool) -> torch.nn.Module:
    """`net` compiled for training and evaluation when enabled (same parameters: the
    caller keeps `net` for its state_dict)."""
    return torch.compile(net, dynamic=False) if enabled else net


def peak_memory(device: str) -> int | None:
    """Peak bytes allocated on a CUDA device since the last reset (None on CPU)."""
    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None

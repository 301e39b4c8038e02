"""What a fit changes on an accelerator: mixed precision, TF32 matmuls, compilation.

On CPU nothing changes unless asked (fp32, eager), so CPU runs stay deterministic as
they always were. On CUDA the defaults are bf16 autocast with fp32 master weights (the
optimizer keeps fp32 parameters; only the matmuls run in bf16) and TF32 for the fp32
matmuls that remain. `torch.compile` is opt-in: it pays on CUDA for long fits of the
dense path (fixed shapes), not for short CPU fits, where compiling takes longer than
training.

On CPU one thing does change: `keep_freed_memory` stops glibc from handing every freed
activation buffer back to the kernel, which otherwise zero-fills fresh pages for the
next mini-batch (in some processes up to a fifth of a CPU epoch went to page faults; the numbers are identical).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
from typing import Iterator

import torch

from harness.services.precision import PRECISIONS


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


def compile_mode(device: str) -> str:
    """CUDA: "reduce-overhead", CUDA graphs: each fixed-shape forward and backward is
    replayed as one graph, not hundreds of kernel launches from the host (the small
    networks' bottleneck). CPU: the default mode (no graphs to capture)."""
    return "reduce-overhead" if torch.device(device).type == "cuda" else "default"


def compiled(net: torch.nn.Module, enabled: bool, device: str = "cpu") -> torch.nn.Module:
    """`net` compiled for training and evaluation when enabled (same parameters: the
    caller keeps `net` for its state_dict), in `compile_mode(device)`."""
    return torch.compile(net, dynamic=False, mode=compile_mode(device)) if enabled else net


def eval_points(device: str, share: float = 1.0) -> int:
    """Points per evaluation chunk on `device`: the device's budget (`sets.EVAL_POINTS`),
    on CUDA scaled by the share of the GPU a study holds (studies sharing one GPU each
    evaluate in smaller chunks; the outputs do not depend on the chunking)."""
    from .sets import EVAL_POINTS

    kind = torch.device(device).type
    budget = EVAL_POINTS.get(kind, EVAL_POINTS["cpu"])
    return max(1, int(budget * share)) if kind == "cuda" else budget


# glibc's mallopt parameters: blocks up to MMAP_THRESHOLD come from the heap (not one
# mmap each), and up to TRIM_THRESHOLD of free heap is kept for reuse, not trimmed.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 256 << 20  # larger than the activations of the paper's PointNet at n = 343
TRIM_THRESHOLD = 512 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Let this process reuse freed tensor memory instead of returning it to the kernel
    after every mini-batch (glibc only; elsewhere nothing changes). Once per process;
    True when the setting took effect.

    Training allocates and frees the same activation buffers every step. Above glibc's
    default (dynamic, at most 32 MiB) threshold each is a fresh mmap, and below it freed
    memory at the top of the heap is trimmed after 128 KiB; either way the kernel zeroes
    new pages on first touch. The cost: a training process keeps up to TRIM_THRESHOLD of
    freed memory for its next fit."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def peak_memory(device: str) -> int | None:
    """Peak bytes allocated on a CUDA device since the last reset (None on CPU)."""
    if torch.device(device).type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None

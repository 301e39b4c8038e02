"""Process pools whose workers die with their parent.

Each worker asks the kernel to kill it when its parent dies (Linux `PR_SET_PDEATHSIG`)
and, where that is not available, a watchdog thread exits when the parent is gone: a
`kill -9` or SIGTERM of the driver, mid-study or mid-featurisation, leaves no process
behind computing for nobody. `device_memory` says what a device offers, so executors and
models can size packs of studies by it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor


def cores() -> int:
    """CPU cores this process may use (its affinity: `taskset` limits it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def die_with_parent(parent: int) -> None:
    """A pool initializer: end this worker when process `parent` ends."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def worker_pool(workers: int, start: str = "fork") -> ProcessPoolExecutor:
    """A process pool of `workers` that die with this process."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(start),
        initializer=die_with_parent,
        initargs=(os.getpid(),),
    )


def device_memory(device: str) -> int | None:
    """Bytes of memory the studies on `device` may use: the GPU's, or what this machine
    has available (None when unknown)."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return None
        return int(torch.cuda.get_device_properties(torch.device(device).index or 0).total_memory)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not a POSIX system
        return None

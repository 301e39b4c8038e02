"""Where the harness keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`HARNESS_CACHE_DIR`, else the user's cache folder (e.g. ~/.cache/harness)."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("harness"))
    path.mkdir(parents=True, exist_ok=True)
    return path

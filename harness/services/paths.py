"""Where the harness keeps its caches, checked to be usable before anything is computed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from harness.services.errors import UserError


def cache_dir(writable: bool = True) -> Path:
    """`HARNESS_CACHE_DIR`, else the user's cache folder (e.g. ~/.cache/harness).

    `writable=False`: for readers that can do without the cache (the leaderboard's
    remembered statistics): the folder as named, neither created nor probed."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("harness"))
    if not writable:
        return path
    return writable_folder(path, "cache folder", "set HARNESS_CACHE_DIR to a writable folder")


_CHECKED: set[Path] = set()


def writable_folder(path: Path, what: str, fix: str) -> Path:
    """The folder, created if needed; a file in its place or no write permission is a user error."""
    if path in _CHECKED and path.is_dir():
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe"):
            pass
    except FileExistsError:
        raise UserError(f"{what} {path} is a file, not a folder; {fix}") from None
    except OSError as exc:
        raise UserError(f"cannot write {what} {path}: {exc.strerror or exc}; {fix}") from None
    _CHECKED.add(path)
    return path

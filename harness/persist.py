"""Fitted models as data in the store: the folder `tuning.save_fitted` writes (the
model's name and hyperparameters as JSON, the state its `save` writes: JSON, arrays, a
torch state_dict), kept as a tar archive. Nothing in it is code: restoring rebuilds the
model from the registry and reads the state with the model's own `load`, never pickle.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from harness import tuning

FORMAT = "harness-model-folder/1"


def dump(model: Any) -> tuple[str, bytes] | None:
    """(format, bytes) of the fitted model, or None when the model cannot save itself."""
    with tempfile.TemporaryDirectory(prefix="harness-model-") as tmp:
        try:
            tuning.save_fitted(model, Path(tmp))
        except NotImplementedError:
            return None
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for path in sorted(Path(tmp).rglob("*")):
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(tmp)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if path.is_file():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        return FORMAT, buf.getvalue()


def restore(registry: Any, stored: tuple[str, bytes]) -> Any:
    """The fitted model, rebuilt through the registry from what `dump` stored."""
    fmt, blob = stored
    if fmt != FORMAT:
        raise ValueError(f"unknown stored model format {fmt!r}")
    with tempfile.TemporaryDirectory(prefix="harness-model-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")  # plain files only, inside tmp
        return tuning.load_fitted(registry, Path(tmp))

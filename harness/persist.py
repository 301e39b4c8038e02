"""Fitted models as data: a model writes its state into a folder (JSON, arrays, a torch
state_dict), and the store keeps that folder as a tar archive. Nothing in it is code:
restoring reads it back with the model's own `load`, never with pickle.
"""

from __future__ import annotations

import copy
import io
import tarfile
import tempfile
from pathlib import Path
from typing import Any

FORMAT = "harness-model-folder/1"


def dump(model: Any) -> tuple[str, bytes] | None:
    """(format, bytes) of the fitted model, or None when the model cannot save itself."""
    save = getattr(model, "save", None)
    if save is None:
        return None
    with tempfile.TemporaryDirectory(prefix="harness-model-") as tmp:
        try:
            save(Path(tmp))
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


def restore(template: Any, stored: tuple[str, bytes]) -> Any:
    """A fitted copy of `template` (the unfitted model with the study's settings)."""
    fmt, blob = stored
    if fmt != FORMAT:
        raise ValueError(f"unknown stored model format {fmt!r}")
    model = copy.deepcopy(template)
    with tempfile.TemporaryDirectory(prefix="harness-model-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            tar.extractall(tmp, filter="data")  # plain files only, inside tmp
        return model.load(Path(tmp)) or model

"""Fitted models as data in the store: the folder `tuning.save_fitted` writes (the
model's name and hyperparameters as JSON, the state its `save` writes: JSON, arrays, a
torch state_dict), kept as a tar archive. Nothing in it is code: restoring rebuilds the
model from the registry and reads the state with the model's own `load`, never pickle.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
import zlib
from pathlib import Path
from typing import Any

from harness.execute import tuning
from harness.services.errors import UserError

FORMAT = "harness-model-folder/1"


def dump(model: Any) -> tuple[str, bytes] | None:
    """(format, bytes) of the fitted model, or None when the model cannot save itself."""
    with tempfile.TemporaryDirectory(prefix="harness-model-") as tmp:
        try:
            tuning.save_fitted(model, Path(tmp))
        except NotImplementedError:
            return None
        buf = io.BytesIO()
        # gzip's header carries a time unless told otherwise: same model, same bytes;
        # level 6 (9 costs 10x the time for 3 % less)
        with (
            gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as gz,
            tarfile.open(fileobj=gz, mode="w") as tar,
        ):
            for path in sorted(Path(tmp).rglob("*")):
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(tmp)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if path.is_file():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        return FORMAT, buf.getvalue()


# What extracting a stored model may write: a tar bomb (a small blob that inflates to
# gigabytes) stops at these bounds. Generous for real models: the state's own size, many
# times over, and never less than MIN_BYTES.
MAX_MEMBERS = 10_000
MAX_RATIO = 100
MIN_BYTES = 256 * 2**20


def restore(registry: Any, stored: tuple[str, bytes], what: str = "stored model") -> Any:
    """The fitted model, rebuilt through the registry from what `dump` stored. A damaged
    or hostile blob (not a tar, links, paths outside, a tar bomb) is a `UserError`, and
    the temporary folder is gone afterwards."""
    fmt, blob = stored
    fix = "rerun the study to store it again (delete its row or use a fresh --results folder)"
    if fmt != FORMAT:
        raise UserError(f"{what} has unknown format {fmt!r}; {fix}")
    limit = max(MIN_BYTES, MAX_RATIO * len(blob))
    with tempfile.TemporaryDirectory(prefix="harness-model-") as tmp:
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                total = 0
                for members, member in enumerate(tar, start=1):
                    total += max(0, member.size)
                    if members > MAX_MEMBERS or total > limit:
                        raise UserError(
                            f"{what} would extract to more than "
                            f"{MAX_MEMBERS if members > MAX_MEMBERS else limit} "
                            f"{'files' if members > MAX_MEMBERS else 'bytes'} from {len(blob)} bytes "
                            f"(a tar bomb?); refused; {fix}"
                        )
                    tar.extract(member, tmp, filter="data")  # plain files only, inside tmp
        except UserError:
            raise
        except (tarfile.TarError, OSError, EOFError, zlib.error, ValueError) as exc:
            raise UserError(
                f"{what} is damaged or unsafe ({type(exc).__name__}: "
                f"{str(exc).replace(tmp, '<model>') or 'no detail'}); {fix}"
            ) from None
        return tuning.load_fitted(registry, Path(tmp), label=what)

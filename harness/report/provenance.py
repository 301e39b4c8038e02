"""Where a leaderboard came from, in `leaderboard.provenance.json` beside the leaderboard
files: harness version, commit, a hash of the config, each dataset's content id, the time.

A sidecar rather than a header: a comment line breaks CSV readers, a wrapper object would
change the leaderboard JSON's shape, and the leaderboard files stay byte-identical between
identical runs (the provenance holds the time; the leaderboard does not).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.services.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from harness.services.config import Config
    from harness.plan.plan import Plan

FILE = "leaderboard.provenance.json"


def config_hash(config: Config) -> str:
    """The validated config's settings (not its file's comments or layout), hashed."""
    from harness.plan import identity

    return identity.digest(config.model_dump(mode="json", exclude={"source"}), 16)


def record(config: Config, plan: Plan) -> dict[str, Any]:
    from harness.services.version import __version__
    from harness.plan import identity

    return {
        "harness_version": __version__,
        "commit": identity.commit(),
        "config": config.source,
        "config_hash": config_hash(config),
        "datasets": {p.spec.label: {"name": p.spec.name, "content_id": p.content} for p in plan.parts},
        "studies": len(plan.studies),
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write(config: Config, plan: Plan, results_dir: Path) -> Path:
    path = Path(results_dir) / FILE
    try:
        path.write_text(json.dumps(record(config, plan), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(
            f"cannot write {path}: {exc.strerror or exc}; free space or choose another --results folder"
        ) from None
    return path

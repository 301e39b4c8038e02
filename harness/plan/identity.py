"""A study's identity: a key over everything that decides its number.

Dataset content, each entry's name, parameters, version and code hash (`harness.plan.codeid`), the split, the seed, the
tuning budget and the harness version. Secret parameters (`field(metadata={"secret":
True})`) never enter it. Two runs that would compute the same number share a key; any
change that could move the number makes a new one, and the old result is superseded.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.plan.codeid import code_identity
from harness.services.version import FEATURE_CODE_VERSION


def entry_identity(entry: Any) -> dict[str, Any]:
    """Name, non-secret parameters, version and code hash of a registry entry: editing the
    code that computes it (not its comments or docstrings) is a new identity."""
    return {
        "name": entry.name,
        "params": entry.params(),
        "version": str(entry.version),
        "code": code_identity(type(entry)),
    }


def digest(blob: Any, size: int = 16) -> str:
    text = json.dumps(blob, sort_keys=True, default=_plain)
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return sorted(map(str, value)) if isinstance(value, (set, frozenset)) else list(value)
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def study_identity(
    *, dataset: dict, dataset_content: str, combination, split: dict, seed: int, trials: int, timeout: float | None
) -> dict[str, Any]:
    from harness.services.version import __version__

    c = combination
    return {
        "dataset": {**dataset, "content": dataset_content},
        "task": entry_identity(c.task),
        "representation": {**entry_identity(c.representation), "feature_code": FEATURE_CODE_VERSION},
        "perturbation": entry_identity(c.perturbation),
        "transforms": [entry_identity(t) for t in c.transforms],
        "model": entry_identity(c.model),
        "split": split,
        "seed": seed,
        "trials": trials,
        "timeout": timeout,
        "harness": __version__,
    }


def key_of(identity: dict[str, Any]) -> str:
    return digest(identity, 16)


def seed_key(identity: dict[str, Any]) -> str:
    """The key without the entries' code hashes: what a study's random streams (the
    sampler's seed) derive from, so that a code edit that changes nothing else redraws
    nothing (and keys made before code hashes existed keep their numbers)."""
    return key_of(_without_code(identity))


def _without_code(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_code(v) for k, v in value.items() if not (k == "code" and "version" in value)}
    if isinstance(value, list):
        return [_without_code(v) for v in value]
    return value


def versions(device: str) -> dict[str, str]:
    """Library versions, device and commit stored beside every result."""
    out = {"python": platform.python_version(), "device": device, "commit": commit()}
    for module in ("harness", "numpy", "sklearn", "xgboost", "torch", "pymatgen", "spglib", "optuna"):
        out[module] = _version(module)
    if device == "cuda":
        try:
            import torch

            out["device"] = f"cuda:{torch.cuda.get_device_name()}"
        except Exception:  # noqa: BLE001 - a name is nice to have
            pass
    return out


def _version(module: str) -> str:
    import importlib.metadata

    dist = {"sklearn": "scikit-learn", "harness": "harness"}.get(module, module)
    for name in (dist, f"{dist}-cpu"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "absent"


@lru_cache(maxsize=1)
def commit() -> str:
    """The git commit of the harness source, "+dirty" when it has local changes; "" outside git."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return ""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return ""

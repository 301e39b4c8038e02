"""One config, cold, on two versions of harness back to back: CPU seconds and the same
numbers in every row.

    git worktree add ../before a4eee66
    (cd ../before && python -m venv --system-site-packages .venv && .venv/bin/pip install --no-deps -e .)
    python perf/first_rows.py ../shared/data/mp_metallicity_36k.csv.gz 5000 ../results/mp_metallicity_first5000.csv
    python perf/versus.py perf/paper-cpu-fixed.toml --before ../before

Each side runs `harness run CONFIG` from its own checkout (its `harness`, its `python`)
with an empty cache and results folder (relative data paths in the config are resolved
against the folder this script runs from); CPU seconds are those of the whole process tree
(`getrusage` of reaped children), which on a shared machine measure the work where wall
seconds measure the wait. Both sides read the same config file, so they score the same
crystals. Rows are matched by dataset, task, representation, perturbation and model;
mean and standard deviation over seeds must agree to 1e-9. The last line reads
`before / after: N.NNx (CPU), M.MMx (wall); rows equal: K of K`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

from overhead import timed  # perf/ is on the path when a script here runs

KEY = ("dataset", "task", "representation", "perturbation", "model")


def _cold_run(
    checkout: Path, python: str, config: Path, tmp: Path, extra: list[str]
) -> tuple[float, float, list[dict]]:
    env = dict(os.environ, HARNESS_CACHE_DIR=str(tmp / "cache"), COLUMNS="200")
    anchored = tmp / config.name  # each side runs in its own checkout: relative data paths made absolute
    anchored.write_text(_anchored(config.read_text(), Path.cwd()))
    cmd = [python, "-m", "harness.cli", "run", str(anchored), "--results", str(tmp / "results"), *extra]
    cpu, wall, _ = timed(cmd, env, cwd=checkout)
    rows = json.loads((tmp / "results" / "leaderboard.json").read_text())
    if isinstance(rows, dict):
        rows = rows.get("rows", [])
    return cpu, wall, rows


def _anchored(text: str, base: Path) -> str:
    """The config with each relative `path = "..."` made absolute against `base`."""

    def absolute(m: re.Match) -> str:
        path = Path(m.group(2))
        return m.group(1) + json.dumps(str(path if path.is_absolute() else (base / path).resolve()))

    return re.sub(r'^(\s*path\s*=\s*)"([^"]*)"', absolute, text, flags=re.M)


def _by_key(rows: list[dict]) -> dict[tuple, dict]:
    return {tuple(str(r[k]) for k in KEY): r for r in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path, help="read by both sides (resolved here)")
    ap.add_argument("--before", type=Path, required=True, help="checkout of the older version")
    ap.add_argument("--before-python", default=None, help="default: BEFORE/.venv/bin/python")
    ap.add_argument("--after", type=Path, default=Path(__file__).resolve().parents[1])
    ap.add_argument("--after-python", default=sys.executable)
    ap.add_argument("--only", default=None, help="passed to both sides' `harness run --only`")
    ap.add_argument("--rounds", type=int, default=1, help="alternate before/after this many times")
    args = ap.parse_args()
    config = args.config.resolve()
    before_python = args.before_python or str(args.before.resolve() / ".venv" / "bin" / "python")
    sides = {"before": (args.before.resolve(), before_python), "after": (args.after.resolve(), args.after_python)}
    cpu: dict[str, list[float]] = {"before": [], "after": []}
    wall: dict[str, list[float]] = {"before": [], "after": []}
    rows: dict[str, list[dict]] = {}
    extra = ["--only", args.only] if args.only else []
    for r in range(args.rounds):
        for side, (checkout, python) in sides.items():
            with tempfile.TemporaryDirectory(prefix=f"harness-versus-{side}-") as tmp:
                c, w, rows[side] = _cold_run(checkout, python, config, Path(tmp), extra)
            cpu[side].append(c)
            wall[side].append(w)
            print(f"round {r + 1} {side:6s}: {c:8.1f} CPU s {w:8.1f} s wall, load {os.getloadavg()[0]:.1f}", flush=True)
    old, new = _by_key(rows["before"]), _by_key(rows["after"])
    equal = 0
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        same = (
            a is not None
            and b is not None
            and all(abs(float(a[f]) - float(b[f])) <= 1e-9 for f in ("mean", "std") if a.get(f) is not None)
        )
        equal += same
        if not same:
            print(f"differs: {'/'.join(key)}: before {a and a.get('mean')} after {b and b.get('mean')}")
    c_ratio = min(cpu["before"]) / min(cpu["after"])
    w_ratio = min(wall["before"]) / min(wall["after"])
    print(
        f"before / after: {c_ratio:.2f}x (CPU), {w_ratio:.2f}x (wall); rows equal: {equal} of {len(set(old) | set(new))}"
    )


if __name__ == "__main__":
    main()

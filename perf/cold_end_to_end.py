"""Cold end to end against the run's own featurisation: `harness run CONFIG` with an
empty cache and results folder, its output lines stamped as they come, so the phases
(parse, symmetry analysis, featurisation, studies, report) are timed in the same run.

    python perf/cold_end_to_end.py perf/metallicity-36k-forest.toml

Prints each phase's wall and CPU seconds (the run's process tree, sampled at each line:
on a shared machine CPU seconds measure the work, wall seconds the wait) and the last line
`end to end vs featurisation: N.NNx (CPU), M.MMx (wall)`. Featurisation is what
`harness featurize --config` does, CSV to cached features: from the start to "features
ready" (parse, the symmetry analysis it needs, the representation); the representation
stage alone ("featurising" to "features ready") is shown too.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time

import psutil
from pathlib import Path


def _tree_cpu(root) -> float:
    """CPU seconds so far of `root`, its reaped children and its live descendants."""
    try:
        t = root.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in root.children(recursive=True):
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:
                pass
        return total
    except psutil.Error:
        return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--log", type=Path, help="write every output line here, stamped with wall and CPU seconds")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="harness-cold-") as tmp:
        env = dict(os.environ, HARNESS_CACHE_DIR=str(Path(tmp) / "cache"), COLUMNS="200")
        cmd = [sys.executable, "-m", "harness.cli", "run", str(args.config), "--results", str(Path(tmp) / "results")]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        stamped = []
        assert proc.stdout is not None
        tree = psutil.Process(proc.pid)
        for line in proc.stdout:
            stamped.append((time.perf_counter() - t0, line.rstrip(), _tree_cpu(tree)))
        rc = proc.wait()
        total = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        db = Path(tmp) / "results" / "results.sqlite"
        stored = (
            sqlite3.connect(db)
            .execute(
                "SELECT r.unit, r.n_train, length(m.blob) FROM harness_models m JOIN harness_results r USING (key)"
            )
            .fetchall()
            if db.exists()
            else []
        )
    cpu = usage.ru_utime + usage.ru_stime
    if args.log:
        args.log.write_text("".join(f"{t:8.1f} {c:8.1f}  {line}\n" for t, line, c in stamped))
    if rc != 0:
        raise SystemExit("\n".join(line for _, line, _ in stamped[-40:]) + f"\nexit {rc}")

    def first(pattern: str, cpu_time: bool = False) -> float:
        return next(((c if cpu_time else t) for t, line, c in stamped if re.search(pattern, line)), float("nan"))

    patterns = {
        "parsing": r"^parsing ",
        "loaded": r"materials in [\d.]+ s",
        "symmetry": r"^symmetry analysis",
        "labelled": r"^task \w+: \d+ labelled",
        "featurising": r"^featurising ",
        "features ready": r"^features ready",
        "studies": r"^studies: ",
        "leaderboard": r"^leaderboard written",
    }
    marks = {name: first(p) for name, p in patterns.items()}
    cpus = {name: first(p, cpu_time=True) for name, p in patterns.items()}
    for _, line, _ in stamped:
        if re.search(r"materials in|featurised in|features ready|done .*#|roc_auc", line) and "│" not in line:
            print(line)
    for unit, n_train, size in stored:
        print(f"stored model of {unit}: {size / 1e6:.2f} MB (gzipped) at {n_train} training crystals")
    print("    wall s   CPU s  line")
    for name, t in marks.items():
        print(f"{t:10.1f} {cpus[name]:7.1f}  {name}")

    def span(a: str, b: str) -> str:
        return f"{marks[b] - marks[a]:.1f} s wall, {cpus[b] - cpus[a]:.1f} CPU s"

    feat, feat_cpu = marks["features ready"] - marks["featurising"], cpus["features ready"] - cpus["featurising"]
    print(
        f"total {total:.1f} s wall, {cpu:.1f} CPU s (all processes); featurisation {span('featurising', 'features ready')}; "
        f"symmetry analysis {span('symmetry', 'labelled')}; parse {span('parsing', 'loaded')}; "
        f"studies {span('studies', 'leaderboard')}"
    )
    print(f"end to end vs the representation stage alone: {cpu / feat_cpu:.2f}x (CPU), {total / feat:.2f}x (wall)")
    to_features, to_features_cpu = marks["features ready"], cpus["features ready"]
    print(f"end to end vs featurisation: {cpu / to_features_cpu:.2f}x (CPU), {total / to_features:.2f}x (wall)")


if __name__ == "__main__":
    main()

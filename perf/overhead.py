"""What the harness costs on top of the work: one random-forest study (`harness run`, warm
caches) against a bare scikit-learn script fitting the same features on the same split.

Both sides run as subprocesses (interpreter start and imports included) on N crystals of
the shared metallicity file (barcode n = 343, metallicity, seed 0, the forest's default
settings, no tuning). The bare script reads the study's own features and split (from the
inputs file the harness prepared), fits `RandomForestClassifier` with the same settings
and seed on all cores, and prints its test ROC-AUC, which must equal the stored one.
Times are the best of `--repeat`; CPU seconds (user + system of the process and its
children) are the headline, as the machine may be shared; wall seconds are shown too.

    python perf/overhead.py                              # 1k and 4k crystals
    python perf/overhead.py --python /tmp/base/.venv/bin/python   # another checkout's harness

The last line reads `harness vs bare: N.NNx` (CPU seconds, the largest size, warm).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from first_rows import first_rows  # perf/ is on the path when a script here runs

# The shared data folder beside the checkout (or beside the folder of worktrees).
DEFAULT_DATA = next(
    (
        p / "shared" / "data" / "mp_metallicity_36k.csv.gz"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "data" / "mp_metallicity_36k.csv.gz").exists()
    ),
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp_metallicity_36k.csv.gz",
)

CONFIG = """
tasks = ["metallicity"]
representations = [{{ name = "barcode", n = 343 }}]
perturbations = ["none"]
models = ["random_forest"]
[settings.random_forest]
tune = false
[run]
seeds = [0]
trials = 1
results = "{results}"
[dataset]
name = "file"
path = "{data}"
"""

# Run by the harness's interpreter after the warm-up: the study's features and split as
# plain arrays, and its stored test ROC-AUC.
EXTRACT = textwrap.dedent("""
    import json, sqlite3, sys
    from pathlib import Path
    import numpy as np
    from harness.prepare.inputs import read_inputs
    (path,) = list(Path(sys.argv[1]).glob("inputs/*.npz"))
    data = read_inputs(path)
    s = data.splits[0]
    X = np.stack(data.X)
    np.savez(sys.argv[2], X_train=X[s.train], y_train=data.y[s.train], X_test=X[s.test], y_test=data.y[s.test])
    db = sqlite3.connect(sys.argv[3])
    blob = db.execute("SELECT length(blob) FROM harness_models").fetchone()
    print(json.dumps(blob[0] if blob else 0))
    print(json.dumps(db.execute("SELECT value FROM harness_results").fetchone()[0]))
""")

BARE = textwrap.dedent("""
    import sys
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    d = np.load(sys.argv[1])
    forest = RandomForestClassifier(n_estimators=100, max_features="sqrt", random_state=0, n_jobs=-1)
    forest.fit(d["X_train"], d["y_train"])
    forest.n_jobs = 1
    print(repr(float(roc_auc_score(d["y_test"], forest.predict_proba(d["X_test"])[:, 1]))))
""")


def timed(cmd: list[str], env: dict, cwd: Path | None = None) -> tuple[float, float, str]:
    """(CPU seconds of the process and its children, wall seconds, stdout); a failed
    command ends the benchmark with its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, check=False, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd[:4])} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, done.stdout


def measure(python: str, data: Path, n: int, repeat: int, work: Path) -> dict:
    folder = work / f"n{n}"
    folder.mkdir()
    csv_path = first_rows(data, n, folder / "crystals.csv")
    env = dict(os.environ, HARNESS_CACHE_DIR=str(folder / "cache"), OMP_WAIT_POLICY="PASSIVE")
    # Warm means Python's bytecode cache too: a machine that forbids writing it (this one
    # sets PYTHONDONTWRITEBYTECODE) recompiles every harness module in every process.
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def harness(tag: str) -> tuple[float, float, Path]:
        results = folder / f"results-{tag}"
        config = folder / f"{tag}.toml"
        config.write_text(CONFIG.format(results=results, data=csv_path))
        cpu, wall, _ = timed([python, "-m", "harness.cli", "run", str(config)], env)
        return cpu, wall, results

    cold_cpu, cold_wall, results = harness("cold")  # fills every cache: parse, features, inputs
    arrays = folder / "arrays.npz"
    _, _, out = timed([python, "-c", EXTRACT, str(folder / "cache"), str(arrays), str(results / "results.sqlite")], env)
    stored = json.loads(out.strip().splitlines()[-1])
    model_bytes = json.loads(out.strip().splitlines()[-2])
    rows = {"harness": [], "bare": []}
    for k in range(repeat):  # alternate, so that a burst of load hits both sides alike
        cpu, wall, _ = harness(f"warm{k}")
        rows["harness"].append((cpu, wall))
        cpu, wall, out = timed([python, "-c", BARE, str(arrays)], env)
        rows["bare"].append((cpu, wall))
        bare_auc = float(out.strip().splitlines()[-1])
        if abs(bare_auc - stored) > 1e-12:
            raise SystemExit(f"n = {n}: the bare script scores ROC-AUC {bare_auc!r}, the harness stored {stored!r}")
    best = {side: (min(c for c, _ in v), min(w for _, w in v)) for side, v in rows.items()}
    return {"n": n, "roc_auc": stored, "cold": (cold_cpu, cold_wall), "model_bytes": model_bytes, **best}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter whose harness is measured")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found; give --data")
    print(f"{os.cpu_count()} CPUs; {args.python}; best of {args.repeat}; CPU s (wall s)")
    with tempfile.TemporaryDirectory(prefix="harness-overhead-") as tmp:
        results = [measure(args.python, args.data, n, args.repeat, Path(tmp)) for n in args.sizes]
    for r in results:
        (hc, hw), (bc, bw), (cc, cw) = r["harness"], r["bare"], r["cold"]
        print(
            f"n = {r['n']}: ROC-AUC {r['roc_auc']:.6f} on both sides; harness warm {hc:.1f} ({hw:.1f}), "
            f"bare {bc:.1f} ({bw:.1f}): {hc / bc:.2f}x CPU, {hw / bw:.2f}x wall; harness cold {cc:.1f} ({cw:.1f}); "
            f"stored model {r['model_bytes'] / 1e6:.2f} MB"
        )
    last = results[-1]
    print(f"harness vs bare: {last['harness'][0] / last['bare'][0]:.2f}x")


if __name__ == "__main__":
    main()

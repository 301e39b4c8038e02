"""The GPU check, one command: the neural engine's speed, its CUDA determinism, and one
real study, each with its wall time, in one short run (see README.md beside this file).

    python perf/device/check.py --device cuda --data .device/data/mp_metallicity_36k.csv.gz
    python perf/device/check.py --device cpu --tiny --data ../shared/data/mp_metallicity_36k.csv.gz

Stages (each one's output and wall time printed; a failing stage is reported and the
next one still runs; the exit code is 1 if any failed):

1. `perf/neural.py`, the paper's PointNet at n = 343 on 25.7k clouds, dense layout (one
   network), then `--studies K` (K networks batched against K one after another);
2. the CUDA determinism test (`tests/test_neural_engine.py -k cuda`; skipped on CPU);
3. metallicity with the paper's PointNet on the whole shared file (xrd_cloud n = 343,
   phi1, one seed, the settings of benchmarks/metallicity-neural-gpu.toml), through
   `harness run`, its wall time and test score.

`--tiny` shrinks every stage to seconds (a few clouds, one epoch, 150 crystals) so that
the script itself is tested on CPU (`tests/test_neural_batched.py`).
`--record-modules FILE` writes the top-level modules the run imported (prepare.py uses
it to know which wheels the GPU machine needs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONFIG = """\
tasks = ["metallicity"]
representations = [{{ name = "xrd_cloud", n = 343 }}]
perturbations = ["none"]
models = ["pointnet"]

[dataset]
name = "file"
path = "{data}"
{limit}

[settings.pointnet]
size = "{size}"
tune = false
max_epochs = {epochs}
patience = 15
plateau_patience = 5
batch_size = 64

[run]
seeds = [0]
workers = 1
split = {{ train = 0.70, valid = 0.15, test = 0.15, group_by = "formula_spacegroup" }}
device = "{device}"
results = "{results}"
"""


def stage(title: str, fn) -> bool:
    print(f"\n=== {title}", flush=True)
    start = time.perf_counter()
    try:
        ok = fn()
    except Exception as exc:  # noqa: BLE001 - reported, the next stage still runs
        print(f"FAILED: {type(exc).__name__}: {exc}", flush=True)
        ok = False
    print(f"=== {title}: {'ok' if ok else 'FAILED'} in {time.perf_counter() - start:.1f} s wall", flush=True)
    return ok


def run(cmd: list[str]) -> bool:
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--data", required=True, help="the shared metallicity file (mp_metallicity_36k.csv.gz)")
    ap.add_argument("--tiny", action="store_true", help="seconds per stage: a test of this script")
    ap.add_argument("--studies", type=int, default=8, help="K for perf/neural.py --studies")
    ap.add_argument("--epochs", type=int, default=100, help="max_epochs of the metallicity study")
    ap.add_argument("--skip", nargs="*", default=[], choices=["perf", "determinism", "metallicity"])
    ap.add_argument("--record-modules", default="", help="write the top-level modules imported to this file")
    args = ap.parse_args()
    data = Path(args.data).resolve()
    if not data.is_file():
        print(
            f"error: no data file at {data}; pass --data (perf/device/prepare.py copies it to .device/data)",
            file=sys.stderr,
        )
        return 2
    py = sys.executable
    neural = [
        py,
        "perf/neural.py",
        "--device",
        args.device,
        "--models",
        "pointnet",
        "--n",
        "343",
        "--size",
        "paper",
        "--max-points",
        "0",
    ]
    if args.tiny:
        neural += ["--samples", "24", "--epochs", "1"]
        studies = 2
    else:
        neural += ["--samples", "25700", "--epochs", "2"]
        studies = args.studies
    results = []
    if "perf" not in args.skip:
        results.append(
            stage("perf/neural.py: paper PointNet, n = 343, dense", lambda: run(neural + ["--layouts", "dense"]))
        )
        results.append(
            stage(
                f"perf/neural.py --studies {studies}: batched vs sequential",
                lambda: run(neural + ["--studies", str(studies)]),
            )
        )
    if "determinism" not in args.skip:
        results.append(
            stage(
                "CUDA determinism test",
                lambda: (
                    run(
                        [
                            py,
                            "-m",
                            "pytest",
                            "-q",
                            "-p",
                            "no:randomly",
                            "-p",
                            "no:cacheprovider",
                            "-n",
                            "0",
                            "tests/test_neural_engine.py",
                            "-k",
                            "cuda",
                        ]
                    )
                    or args.device == "cpu"
                ),
            )
        )
    if "metallicity" not in args.skip:
        results.append(
            stage("metallicity, paper PointNet, whole shared file, one seed", lambda: metallicity(args, data))
        )
    if args.record_modules:
        Path(args.record_modules).write_text("\n".join(sorted({m.split(".")[0] for m in sys.modules})) + "\n")
    print(f"\n{sum(results)} of {len(results)} stages ok")
    return 0 if all(results) else 1


def metallicity(args, data: Path) -> bool:
    """The study in this process (workers = 1: no pool), so `--record-modules` sees its imports."""
    from harness.cli import main as harness

    work = Path(tempfile.mkdtemp(prefix="device-check-"))
    config = work / "metallicity.toml"
    config.write_text(
        CONFIG.format(
            data=data.as_posix(),
            limit="limit = 150" if args.tiny else "",
            size="small" if args.tiny else "paper",
            epochs=1 if args.tiny else args.epochs,
            device=args.device,
            results=(work / "results").as_posix(),
        )
    )
    print(config.read_text(), flush=True)
    os.environ.setdefault("HARNESS_CACHE_DIR", str(work / "cache"))
    start = time.perf_counter()
    code = harness(["run", str(config)])
    print(
        f"metallicity study: exit {code}, {time.perf_counter() - start:.1f} s wall (featurising included)", flush=True
    )
    return code == 0


if __name__ == "__main__":
    sys.exit(main())

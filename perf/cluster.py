"""Studies per minute and the overhead per study of each way to run one config: the local
process pool (SQLite, then PostgreSQL), a two-node Ray cluster on PostgreSQL, and two plain
drivers on one PostgreSQL database; plus the cost of shipping inputs through Ray's object
store. Every row is measured in this run, on the same toy config, with real servers.

Definitions (two slots everywhere: 2 pool workers, 2 Ray nodes x 1 CPU, 2 drivers x 1):
- wall: `harness run` started to every process finished (imports, plan, prepare included;
  starting the Ray cluster and the database server is not, they are long-lived services).
- studies/min: n / wall.
- overhead/study: slot-seconds a study costs beyond its own work, (2 x wall - n x t) / n,
  where t is a study's work measured in the same run by a serial in-process run
  (workers = 1, SQLite): the spacing of its finish times.

    python perf/cluster.py                 # 12 studies per mode, ~5 min on 2 busy cores
    python perf/cluster.py --seeds 2       # a quicker look
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from servers import Postgres, RayCluster, outcome, run_env, start_run  # noqa: E402

from harness.services.store import Store  # noqa: E402

CONFIG = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios"]
perturbations = ["identity", {{name = "noise", sigma = 0.2}}, {{name = "noise", sigma = 0.4}}]
models = ["random_forest"]
[dataset]
name = "toy"
size = 120
[run]
trials = {trials}
workers = {workers}
seeds = {seeds}
results = "out"
"""


def timed_run(
    folder: Path, tmp: Path, config: str, drivers: int = 1, extra: tuple[str, ...] = (), env: dict | None = None
) -> float:
    t0 = time.perf_counter()
    procs = [start_run(folder / f"d{i}", tmp, *extra, config=config, env=env) for i in range(drivers)]
    for p in procs:
        out, _ = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise SystemExit(out.decode())
    return time.perf_counter() - t0


def sqlite(folder: Path) -> str:
    return f"sqlite:///{folder / 'd0' / 'out' / 'results.sqlite'}"


def finish_spacing(url: str) -> float:
    """Seconds between consecutive results of a serial run: one study's work."""
    times = sorted(r.finished for r in Store(url).results())
    return (times[-1] - times[0]) / (len(times) - 1)


def object_store_cost(cluster: RayCluster, megabytes: int) -> tuple[float, float]:
    """Seconds to ship `megabytes` of inputs to a worker through the object store (put, fetch,
    write into the worker's cache), and to read the same file from a path, on this machine."""
    os.environ.update({k: cluster.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")})
    import ray

    from harness.execute.executors.ray import _write_atomically, connect

    connect(cluster.address)
    folder = Path(tempfile.mkdtemp())
    payload = os.urandom(megabytes << 20)
    (folder / "inputs.npz").write_bytes(payload)

    @ray.remote(num_cpus=1)
    def receive(data: bytes, target: str) -> int:
        _write_atomically(Path(target), data)
        return len(data)

    @ray.remote(num_cpus=1)
    def read(path: str) -> int:
        return len(Path(path).read_bytes())

    ray.get(read.remote(str(folder / "inputs.npz")))  # a warm worker for both
    t0 = time.perf_counter()
    ray.get(read.remote(str(folder / "inputs.npz")))
    by_path = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.get(receive.remote(ray.put(Path(folder / "inputs.npz").read_bytes()), str(folder / "copy.npz")))
    shipped = time.perf_counter() - t0
    ray.shutdown()
    return shipped, by_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=4, help="seeds per combination (3 combinations)")
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--megabytes", type=int, default=64, help="inputs size for the object-store row")
    args = ap.parse_args()
    seeds = list(range(args.seeds))
    n = 3 * len(seeds)
    serial = CONFIG.format(trials=args.trials, workers=1, seeds=seeds)
    pool = CONFIG.format(trials=args.trials, workers=2, seeds=seeds)
    console = Console(width=150)
    tmp = Path(tempfile.mkdtemp(prefix="perf-cluster-"))
    os.environ.setdefault("HARNESS_CACHE_DIR", str(tmp / "cache"))
    env = run_env(tmp)
    rows = []
    postgres = Postgres()
    cluster = None
    try:
        # Features once, so that no mode pays for featurising.
        timed_run(tmp / "warm", tmp, CONFIG.format(trials=1, workers=1, seeds=seeds), env=env)
        wall = timed_run(tmp / "serial", tmp, serial, env=env)
        t_study = finish_spacing(sqlite(tmp / "serial"))
        reference = outcome(sqlite(tmp / "serial"))
        rows.append(("local, 1 worker, SQLite (reference)", 1, wall, sqlite(tmp / "serial")))
        rows.append(
            ("local pool, 2 workers, SQLite", 2, timed_run(tmp / "pool", tmp, pool, env=env), sqlite(tmp / "pool"))
        )
        url = postgres.new_database()
        rows.append(
            (
                "local pool, 2 workers, PostgreSQL",
                2,
                timed_run(tmp / "pool-pg", tmp, pool, extra=("--storage", url), env=env),
                url,
            )
        )
        t0 = time.perf_counter()
        cluster = RayCluster({**os.environ, "HARNESS_CACHE_DIR": str(tmp / "worker-cache")})
        cluster_start = time.perf_counter() - t0
        url = postgres.new_database()
        ray_env = {**env, **{k: cluster.env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}}
        rows.append(
            (
                "Ray, 2 nodes x 1 CPU, PostgreSQL",
                2,
                timed_run(
                    tmp / "ray",
                    tmp,
                    pool,
                    env=ray_env,
                    extra=("--executor", "ray", "--address", cluster.address, "--storage", url),
                ),
                url,
            )
        )
        url = postgres.new_database()
        rows.append(
            (
                "2 plain drivers x 1 worker, PostgreSQL",
                2,
                timed_run(tmp / "drivers", tmp, serial, drivers=2, extra=("--storage", url), env=env),
                url,
            )
        )
        shipped, by_path = object_store_cost(cluster, args.megabytes)
        same = {name: outcome(url) == reference for name, _, _, url in rows}
    finally:
        if cluster is not None:
            cluster.close()
        postgres.close()
        shutil.rmtree(tmp, ignore_errors=True)

    table = Table(
        title=f"{n} studies ({args.trials} trials each, toy random forest); one study's work "
        f"t = {t_study:.2f} s (serial run)",
        title_justify="left",
    )
    for col in ("mode", "slots", "wall s", "studies/min", "overhead/study s", "same numbers"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for name, slots, wall, url in rows:
        table.add_row(
            name,
            str(slots),
            f"{wall:.1f}",
            f"{60 * n / wall:.1f}",
            f"{(slots * wall - n * t_study) / n:.2f}",
            "yes" if same[name] else "NO",
        )
    console.print(table)
    console.print(f"Ray cluster start (head + 1 node, not in the rows): {cluster_start:.1f} s")
    console.print(
        f"inputs of {args.megabytes} MB to a worker: object store (put, fetch, write) {shipped:.2f} s "
        f"= {args.megabytes / shipped:.0f} MB/s; read from a shared path {by_path:.2f} s "
        f"= {args.megabytes / by_path:.0f} MB/s (once per inputs file per node)"
    )


if __name__ == "__main__":
    main()

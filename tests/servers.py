"""Real servers for the cluster tests: a PostgreSQL 15 server in a temporary folder and a
two-node Ray cluster on this machine, both torn down by their fixtures.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest
import sqlalchemy as sa

from harness.services.store import Store

PG_BIN = Path(os.environ.get("HARNESS_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Postgres:
    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="harness-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        self.start()

    def _pg(self, tool: str, *args: str) -> None:
        out = subprocess.run(_as_postgres([str(PG_BIN / tool), *args]), capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"{tool} failed: {out.stdout}{out.stderr}")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._pg(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "-t", "60", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database on this server: its URL."""
        import psycopg2

        name = f"t_{uuid.uuid4().hex[:12]}"
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute(f"CREATE DATABASE {name}")
        conn.close()
        return self.url(name)

    def close(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres():
    server = Postgres()
    yield server
    server.close()


def ray_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`ray ...` with this interpreter, so that the workers run it (and see the harness)."""
    return subprocess.run(
        [sys.executable, "-m", "ray.scripts.scripts", *args], capture_output=True, text=True, env=env, timeout=180
    )


class RayCluster:
    """A head node and a second node, one CPU each, with their own ports, temporary folder
    and authentication token, so that they meet nothing else running on this machine."""

    def __init__(self, env: dict):
        import secrets

        self.env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # Ray's socket paths must be short
        self.worker_port = 0
        self._start(
            "--head",
            f"--port={self.port}",
            f"--ray-client-server-port={free_port()}",
            "--include-dashboard=false",
            f"--dashboard-port={free_port()}",
        )
        self.add_node()

    def _start(self, *args: str) -> None:
        ports = [
            f"--{name}={free_port()}"
            for name in (
                "object-manager-port",
                "dashboard-agent-listen-port",
                "dashboard-agent-grpc-port",
                "runtime-env-agent-port",
                "metrics-export-port",
            )
        ]
        out = ray_cli(
            "start",
            *args,
            "--node-ip-address=127.0.0.1",
            "--num-cpus=1",
            "--num-gpus=0",
            f"--temp-dir={self.temp}",
            "--disable-usage-stats",
            *ports,
            env=self.env,
        )
        if out.returncode != 0:
            self.close()
            raise RuntimeError(f"ray start {' '.join(args)} failed: {out.stdout}{out.stderr}")

    def add_node(self) -> None:
        """The second node; its raylet listens on its own port, so a test can find it."""
        self.worker_port = free_port()
        self._start(f"--address={self.address}", f"--node-manager-port={self.worker_port}")
        self.wait_for_nodes(2)

    def wait_for_nodes(self, n: int, timeout: float = 60) -> None:
        t0 = time.time()
        while time.time() - t0 < timeout:
            if self.alive_nodes() >= n:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the Ray cluster did not reach {n} nodes")

    def alive_nodes(self) -> int:
        code = (
            "import ray; ray.init(address=%r, logging_level='ERROR', log_to_driver=False); "
            "print(sum(1 for n in ray.nodes() if n['Alive']))" % self.address
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=self.env, timeout=120)
        try:
            return int(out.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return 0

    def processes(self) -> list[psutil.Process]:
        """Every process of this cluster: those naming its folder, and their descendants."""
        found: dict[int, psutil.Process] = {}
        for p in psutil.process_iter(["cmdline"]):
            try:
                if str(self.temp) in " ".join(p.info["cmdline"] or []):
                    for q in [p, *p.children(recursive=True)]:
                        found[q.pid] = q
            except psutil.Error:
                continue
        return list(found.values())

    def second_node_processes(self) -> list[psutil.Process]:
        """The second node's raylet and everything it started (its workers, its agents)."""
        for p in psutil.process_iter(["cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if "raylet" in cmd and f"--node_manager_port={self.worker_port}" in cmd:
                return [p, *p.children(recursive=True)]
        return []

    def kill_second_node(self) -> int:
        return _kill(self.second_node_processes())

    def close(self) -> None:
        _kill(self.processes())
        shutil.rmtree(self.temp, ignore_errors=True)


def _kill(procs: list[psutil.Process]) -> int:
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)
    return len(procs)


# ---------------------------------------------------------------- runs on these servers
def toy_config(trials: int, workers: int, size: int) -> str:
    """The toy benchmark the server and fault tests run: 2 combinations x 3 seeds."""
    return f"""
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios"]
perturbations = ["identity", {{name = "noise", sigma = 0.3}}]
models = ["random_forest"]
[dataset]
name = "toy"
size = {size}
[run]
trials = {trials}
workers = {workers}
seeds = [0, 1, 2]
results = "out"
"""


TRIALS = 3
CONFIG = toy_config(TRIALS, workers=1, size=120)
N_STUDIES = 2 * 3
TESTS = Path(__file__).parent


def run_env(tmp_path: Path, claim_ttl: float = 3) -> dict:
    """The environment of a `harness run` subprocess: the toy plugin importable, short
    claim time-to-live and polling, a private cache."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["HARNESS_CLAIM_TTL"] = str(claim_ttl)
    env["HARNESS_POLL_SECONDS"] = "0.5"
    env.setdefault("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    return env


def start_run(
    folder: Path, tmp_path: Path, *extra: str, config: str = CONFIG, env: dict | None = None
) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "bench.toml"
    cfg.write_text(config)
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(cfg), *extra],
        env=env or run_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def outcome(url: str) -> dict:
    """unit -> (test value, validation value, chosen parameters): equal to the digit or not at all."""
    return {r.unit: (r.value, r.valid_value, r.params) for r in Store(url).results()}


def finished_trials(url: str) -> dict:
    with sa.create_engine(Store(url).url).connect() as db:
        rows = db.execute(
            sa.text(
                "SELECT s.study_name, COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
                "WHERE t.state IN ('COMPLETE', 'PRUNED') GROUP BY s.study_name"
            )
        ).fetchall()
    return dict(rows)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'out' / 'results.sqlite'}"


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """One local run on SQLite: the numbers every run on a cluster or database must give."""
    tmp = tmp_path_factory.mktemp("reference")
    finish(start_run(tmp / "local", tmp))
    return tmp / "local"


@pytest.fixture(scope="module")
def reference(reference_run) -> dict:
    got = outcome(sqlite_url(reference_run))
    assert len(got) == N_STUDIES
    return got

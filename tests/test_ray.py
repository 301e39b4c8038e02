"""The Ray executor on a real two-node cluster (one CPU per node) with a real PostgreSQL
store: the same numbers and leaderboard as the local process pool, inputs reaching nodes
that share no cache folder, and a worker node killed mid-study costing nothing but time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from servers import (
    CONFIG,
    N_STUDIES,
    TRIALS,
    RayCluster,
    finish,
    finished_trials,
    free_port,
    outcome,  # noqa: F401
    postgres,
    reference,
    reference_run,
    run_env,
    start_run,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # The nodes keep their own cache folder: inputs must reach them through Ray's object store.
    worker_cache = tmp_path_factory.mktemp("worker-cache")
    env = {**os.environ, "HARNESS_CACHE_DIR": str(worker_cache)}
    ray = RayCluster(env)
    ray.worker_cache = worker_cache
    yield ray
    ray.close()


def _ray_env(tmp_path: Path, cluster: RayCluster) -> dict:
    return {
        **run_env(tmp_path),
        "RAY_AUTH_MODE": cluster.env["RAY_AUTH_MODE"],
        "RAY_AUTH_TOKEN": cluster.env["RAY_AUTH_TOKEN"],
    }


def _board(folder: Path) -> list[dict]:
    """The leaderboard without timings (seconds differ from run to run, scores must not)."""
    rows = json.loads((folder / "out" / "leaderboard.json").read_text())
    return [{k: v for k, v in row.items() if "second" not in k and k != "fit_s"} for row in rows]


def test_a_local_run_never_imports_ray(tmp_path):
    code = (
        "import sys; from harness.cli import main; "
        f"code = main(['run', {str(tmp_path / 'bench.toml')!r}, '--trials', '1', '--seeds', '0']); "
        "print('RAY' if 'ray' in sys.modules else 'NO RAY', code)"
    )
    (tmp_path / "bench.toml").write_text(CONFIG)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=run_env(tmp_path), timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "NO RAY 0", out.stdout + out.stderr


def test_an_unknown_executor_is_one_line_with_the_choices(tmp_path, capsys):
    from harness.cli import main

    (tmp_path / "bench.toml").write_text(CONFIG)
    assert main(["run", str(tmp_path / "bench.toml"), "--executor", "slurm"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'local'" in err and "'ray'" in err, err


def _spec(model: str):
    from harness.services import registry
    from harness.plan.grid import Combination
    from harness.execute.study import StudySpec

    reg = registry.load(["toy_plugin"])
    combo = Combination(
        reg.create("task", "toy_system"),
        reg.create("representation", "ratios"),
        reg.create("perturbation", "identity"),
        reg.create("model", model),
    )
    return StudySpec("k", "u", "toy", combo, 0, 1, None)


@pytest.mark.parametrize(
    "model, device, gpus, asks, trains_on",
    [
        ("pointnet", "auto", 2, 1, "cuda"),  # one GPU per neural study when there are GPUs
        ("pointnet", "auto", 0, 0, "cpu"),  # none in the cluster: a CPU study
        ("pointnet", "cpu", 2, 0, "cpu"),  # the config says CPU
        ("random_forest", "auto", 2, 0, "cpu"),  # trees never hold a GPU
        ("random_forest", "cuda", 0, 0, "cpu"),
    ],
)
def test_a_neural_study_takes_one_gpu_when_the_cluster_has_gpus(model, device, gpus, asks, trains_on):
    from harness.execute.executors.ray import placement

    options, on = placement(_spec(model), device, {"CPU": 8, "GPU": gpus}, cpus=1)
    assert options == {"num_cpus": 1, "num_gpus": asks} and on == trains_on


def test_device_cuda_on_a_cluster_without_gpus_is_a_user_error():
    from harness.services.errors import UserError
    from harness.execute.executors.ray import placement

    with pytest.raises(UserError, match="no GPU"):
        placement(_spec("pointnet"), "cuda", {"CPU": 8}, cpus=1)


@pytest.mark.slow
def test_an_unreachable_ray_cluster_is_one_clear_line(tmp_path):
    port = free_port()
    proc = start_run(
        tmp_path / "run",
        tmp_path,
        "--executor",
        "ray",
        "--address",
        f"127.0.0.1:{port}",
        env={**run_env(tmp_path), "RAY_AUTH_MODE": "disabled"},
    )
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = out.decode()
    assert proc.returncode == 2, text
    assert "cannot reach the Ray cluster at" in text and f"127.0.0.1:{port}" in text and "ray start --head" in text
    assert "Traceback" not in text


@pytest.mark.slow
def test_a_two_node_ray_cluster_on_postgres_gives_the_local_leaderboard(
    tmp_path, cluster, postgres, reference, reference_run
):
    url = postgres.new_database()
    out = finish(
        start_run(
            tmp_path / "ray",
            tmp_path,
            "--executor",
            "ray",
            "--address",
            cluster.address,
            "--storage",
            url,
            env=_ray_env(tmp_path, cluster),
        )
    )
    assert out.count("  done ") == N_STUDIES
    assert outcome(url) == reference
    assert sorted(finished_trials(url).values()) == [TRIALS] * N_STUDIES
    assert _board(tmp_path / "ray") == _board(reference_run)
    # The nodes share no cache with the driver: the inputs came through the object store.
    assert list((cluster.worker_cache / "inputs").glob("*.npz"))


@pytest.mark.slow
def test_a_driver_killed_mid_run_stops_its_tasks_and_a_rerun_finishes_with_the_same_numbers(
    tmp_path, cluster, postgres, reference
):
    url = postgres.new_database()
    args = ("--executor", "ray", "--address", cluster.address, "--storage", url)
    proc = start_run(tmp_path / "ray", tmp_path, *args, env=_ray_env(tmp_path, cluster))
    t0 = time.time()
    while time.time() - t0 < 300 and proc.poll() is None and not _studying(cluster):
        time.sleep(0.1)
    assert _studying(cluster), "no study ever started on the cluster"
    proc.kill()
    proc.communicate(timeout=60)
    t0 = time.time()
    while time.time() - t0 < 60 and _studying(cluster):
        time.sleep(0.5)
    assert not _studying(cluster), "a study kept running after its driver died"
    finish(start_run(tmp_path / "ray", tmp_path, *args, env=_ray_env(tmp_path, cluster)))
    assert outcome(url) == reference
    assert sorted(finished_trials(url).values()) == [TRIALS] * N_STUDIES


def _studying(cluster: RayCluster) -> list[psutil.Process]:
    return [p for p in cluster.processes() if _running_a_study(p)]


@pytest.mark.slow
def test_a_worker_node_killed_mid_study_costs_only_time(tmp_path, cluster, postgres, reference):
    """Ray retries the study elsewhere; it resumes from its stored trials and finishes once,
    with the numbers of an uncut run."""
    url = postgres.new_database()
    proc = start_run(
        tmp_path / "ray",
        tmp_path,
        "--executor",
        "ray",
        "--address",
        cluster.address,
        "--storage",
        url,
        env=_ray_env(tmp_path, cluster),
    )
    t0 = time.time()
    studying = []
    while time.time() - t0 < 300 and proc.poll() is None and not studying:
        studying = [p for p in cluster.second_node_processes() if _running_a_study(p)]
        time.sleep(0.1)
    assert studying, "no study ever ran on the second node"
    assert cluster.kill_second_node() >= 2
    killed_at = time.time()
    out = finish(proc)
    print(f"second node killed {killed_at - t0:.1f} s into the run; run finished {time.time() - killed_at:.1f} s later")
    assert out.count("  done ") == N_STUDIES  # every study finished once
    assert outcome(url) == reference
    assert sorted(finished_trials(url).values()) == [TRIALS] * N_STUDIES
    assert not cluster.second_node_processes()  # the node really is gone


def _running_a_study(p: psutil.Process) -> bool:
    try:
        return "_run_on_worker" in " ".join(p.cmdline())
    except psutil.Error:
        return False

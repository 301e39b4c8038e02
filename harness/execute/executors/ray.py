"""Studies as Ray tasks on a cluster: a neural study asks for its model's `gpu_share` of a
GPU (1 by default; 0.25 puts four on one GPU) when the cluster has GPUs, one CPU per
study otherwise (Ray packs them onto the nodes). Studies of a `batch_studies` model go
as packs (a combination's seeds, at most `pack`, on a GPU at most 1 / gpu_share): one task
trains them as one batched fit and asks for their shares together.

Features travel through Ray's object store: the driver puts each inputs file's bytes once,
and a worker writes them into its own cache folder (`HARNESS_CACHE_DIR`) unless the same
content-keyed file is already there (one machine, or a shared filesystem). So the nodes
need to share nothing but the database; the harness and the plugins must be installed
on every node, as for any Ray program.

The driver holds every claim and beats for it. A task whose node dies is retried by Ray
on another node (`max_retries`); the study resumes from its trials in the store, so it
finishes once, with the numbers an uncut study gives. If the driver dies, Ray stops its
tasks and the claims expire, so another run takes the studies over.

Ray is imported only here, and this module only when `executor = "ray"`.
"""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from harness.services.errors import UserError
from harness.execute.executors.base import Finished, Packer, pack_size
from harness.execute.study import Environment, StudySpec

TASK_RETRIES = 3  # a study whose node dies runs again elsewhere, this many times at most


def wants_gpu(spec: StudySpec) -> bool:
    """Models that say `uses_gpu` (the neural ones) train on a GPU when there is one."""
    return bool(spec.combination.model.uses_gpu)


def placement(spec: StudySpec, device: str, resources: dict[str, float], cpus: int) -> tuple[dict, str]:
    """The Ray resources a study asks for and the device it trains on: its model's
    `gpu_share` of a GPU for a neural study when the config allows one and the cluster has
    one, else `cpus` CPUs."""
    gpu = device in ("auto", "cuda") and wants_gpu(spec) and resources.get("GPU", 0) >= 1
    if device == "cuda" and wants_gpu(spec) and not gpu:
        raise UserError("device = 'cuda' but the Ray cluster has no GPU; add GPU nodes or use device = 'auto'")
    share = float(getattr(spec.combination.model, "gpu_share", 1.0))  # TorchModel.gpu_share: several per GPU
    return {"num_cpus": cpus, "num_gpus": share if gpu else 0}, ("cuda" if gpu else "cpu")


def ray_pack_size(spec: StudySpec, device: str, resources: dict[str, float], cpus: int, most: int) -> int:
    """Studies per pack: at most `most`, and on a GPU at most 1 / gpu_share (a pack fits
    on one GPU)."""
    options, _ = placement(spec, device, resources, cpus)
    share = options["num_gpus"]
    return pack_size(spec, "cuda" if share else "cpu", None, min(most, int(1 / share)) if share else most)


def pack_placement(pack: list[StudySpec], device: str, resources: dict[str, float], cpus: int) -> tuple[dict, str]:
    """A pack's resources: its first study's CPUs, and its studies' GPU shares together."""
    options, on = placement(pack[0], device, resources, cpus)
    return {**options, "num_gpus": min(1.0, options["num_gpus"] * len(pack))}, on


class RayExecutor:
    def __init__(self, address: str = "", device: str = "auto", cpus_per_study: int = 1, pack: int = 8):
        self.address = address
        self.pack = max(1, int(pack))
        self.device = device
        self.cpus_per_study = max(1, int(cpus_per_study))
        self.slots = 1  # known once connected: the cluster's CPUs / cpus_per_study
        self.shipped_bytes = 0  # inputs put into the object store by this driver
        connect(address)  # now: an unreachable cluster is reported before any work

    def run(self, next_study: Callable[[], StudySpec | None], env: Environment) -> Iterator[Finished]:
        ray = connect(self.address)
        remote = ray.remote(max_retries=TASK_RETRIES, retry_exceptions=False)(_run_on_worker)
        shipped: dict[str, object] = {}  # inputs path -> ObjectRef of its bytes
        running: dict[object, list[StudySpec]] = {}
        resources: dict = {}

        packer = Packer(
            next_study, lambda spec: ray_pack_size(spec, self.device, resources, self.cpus_per_study, self.pack)
        )
        try:
            while True:
                resources = ray.cluster_resources()
                self.slots = int(resources.get("CPU", 0) // self.cpus_per_study)
                if self.slots < 1 and not running:
                    raise UserError(
                        f"the Ray cluster at {self.address or 'this machine'} offers "
                        f"{resources.get('CPU', 0):g} CPUs, fewer than the {self.cpus_per_study} a study "
                        "needs; add worker nodes (ray start --address HEAD:6379)"
                    )
                while len(running) < max(1, self.slots) and (pack := packer.next_pack()) is not None:
                    spec = pack[0]
                    if spec.inputs not in shipped:
                        data = Path(spec.inputs).read_bytes()
                        self.shipped_bytes += len(data)
                        shipped[spec.inputs] = ray.put(data)
                    options, device = pack_placement(pack, self.device, resources, self.cpus_per_study)
                    study_env = replace(env, device=device, threads=self.cpus_per_study)
                    running[remote.options(**options).remote(pack, study_env, shipped[spec.inputs])] = pack
                if not running:
                    break
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    pack = running.pop(ref)
                    try:
                        yield from zip(pack, ray.get(ref))
                    except Exception as exc:  # noqa: BLE001 - reported by the runner
                        yield from zip(pack, [_cause(exc)] * len(pack))
        finally:
            for ref in running:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished or gone
                    pass


def connect(address: str):
    """Join the cluster at `address` ("" = the one this machine belongs to, else a private one)."""
    import ray

    if ray.is_initialized():
        return ray
    _check_reachable(address)
    runtime_env = {
        "env_vars": {
            # Modules beside the config (plugins = [...]) and the driver's PYTHONPATH, where
            # they exist on the worker's machine too; idle OpenMP threads sleep, not spin.
            "PYTHONPATH": os.pathsep.join(_code_paths()),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
            "SPGLIB_WARNING": os.environ.get("SPGLIB_WARNING", "OFF"),
        }
    }
    try:
        ray.init(
            address=address or None,
            runtime_env=runtime_env,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            configure_logging=True,
        )
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"cannot reach the Ray cluster at {address!r} ({cause}); start it with "
            "`ray start --head` on the head node and give its address (host:6379, or auto on a "
            "node of the cluster) with --address or [run] address"
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """Ray waits for ever on an address where nothing listens: knock first."""
    import socket

    if not address or address == "auto":
        return  # a local lookup: Ray answers at once
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(
            f"Ray address {address!r} is not host:port; give the head's address, e.g. "
            "10.0.0.1:6379 (or ray://10.0.0.1:10001, or auto on a node of the cluster)"
        )
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise UserError(
            f"cannot reach the Ray cluster at {address!r} ({exc.strerror or exc}); start it with "
            "`ray start --head` on the head node and give its address with --address or "
            "[run] address"
        ) from None


def _code_paths() -> list[str]:
    given = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    ours = [
        p
        for p in sys.path
        if p
        and os.path.isdir(p)
        and "-packages" not in p
        and not p.startswith(sys.base_prefix)
        and not p.startswith(sys.prefix)
    ]
    return list(dict.fromkeys([*given, *ours]))


def _run_on_worker(pack: list[StudySpec], env: Environment, inputs: bytes):
    """A pack of studies (one, or a combination's seeds) on a Ray worker, reading their
    inputs from this node's cache folder; one outcome or exception per study."""
    from harness.plan import identity
    from harness.services.paths import cache_dir
    from harness.execute.study import run_studies

    local = cache_dir() / "inputs" / Path(pack[0].inputs).name  # content-keyed: same name, same bytes
    if not local.exists():
        _write_atomically(local, inputs)
    env = replace(env, versions=identity.versions(env.device))  # this node's libraries and device
    pack = [replace(spec, inputs=str(local)) for spec in pack]
    outcomes = run_studies(pack, env)
    again = [i for i, o in enumerate(outcomes) if isinstance(o, FileNotFoundError)]
    if again:  # damaged (and removed by the checksum check): write it again
        _write_atomically(local, inputs)
        for i, outcome in zip(again, run_studies([pack[i] for i in again], env)):
            outcomes[i] = outcome
    if len(pack) == 1 and isinstance(outcomes[0], BaseException):
        raise outcomes[0]  # as before packing: Ray hands the study's own exception back
    return outcomes


def _write_atomically(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(
            f"cannot write study inputs {path} on a Ray worker: {exc.strerror or exc}; set "
            "HARNESS_CACHE_DIR on the worker nodes to a writable folder"
        ) from None


def _cause(exc: BaseException) -> BaseException:
    """The study's own exception rather than Ray's wrapper (a UserError stays a UserError)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc

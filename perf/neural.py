"""Training and evaluation speed of the neural models: the dense path against the graph path.

For each model and cloud size n, on synthetic reciprocal-lattice clouds (random
lattices, h,k,l grids, random intensities; n = 3 is the three basis vectors, n = 343
all h,k,l in [-3, 3]), every layout in the same run, on the same clouds and initial
weights: `dense` and `graph` (this engine) and `main`, the graph engine before the dense
path (collation and rotation per batch, unfused optimizer, a host sync per batch), as
the reference. `dense` and `graph` run with the engine's allocator setting
(`accel.keep_freed_memory`), `main` without it, as it ran before, in its own process.

Times are CPU seconds of the measuring process on CPU (`--clock cpu`, the default there:
on a machine shared with other jobs it counts the work done, not the waits for a core)
and wall seconds on CUDA, synchronised around each timed region.

* train/s: clouds per second of a training epoch (shuffle, rotation augmentation,
  forward, backward, optimizer step), after one warm-up epoch; the epochs of the layouts measured in one process
  alternate and each keeps its fastest (robust to other load on a shared machine);
* eval/s: clouds per second of `predict` over the evaluation set (15 % as many);
* host %: share of the epoch spent drawing batches outside the network (indexing or
  collating, rotating, copying), timed around the batch iterator;
* peak MB: CUDA: peak allocated memory; CPU: peak RSS growth of a forked child that
  runs one epoch and one evaluation of that layout alone;
* TFLOP/s (pointnet): the epoch's matrix FLOPs (counted from the layer widths: 3 x the
  forward's 2 * in * out per point and per cloud) over its time, against the rate of a
  large matrix product measured in the same run on the same device (`gemm`).

    python perf/neural.py                                  # CPU, 1 thread, all models, n = 3 27 125 343
    python perf/neural.py --models pointnet --n 27 343 --size paper
    python perf/neural.py --device cuda --samples 25700 --max-points 0 --size paper --models pointnet --n 343

`--studies K` measures instead K networks of one (model, n) trained as one batched model
(`harness.sdk.neural.batched`: stacked parameters under vmap, each member with its own
clouds, initial weights, order and rotations) against the same K trained one after
another by the engine's loop, in the same run: train/s and eval/s (clouds of all K
members per second), host % (drawing and assembling the batches, timed in a pass
without the networks, over the epoch), peak MB (as above, for all K), ms/step, the
matrix GFLOP/s and their share of the GEMM rate (pointnet), and the ratio. The batched
side trains as `TorchModel.fit_many` does: networks with `stacked_forward` (PointNet)
without vmap, on CPU in stacks no larger than `batched.members_per_stack` allows (one
each for the paper's network at n = 343). Under each row: the share of a sequential step
that does not shrink with the batch (a step at 2 clouds), the most batching can save.
The last line reads `batched vs sequential: N.NNx` (train/s) for the first row.

    python perf/neural.py --studies 8 --models pointnet --n 3                 # the demo's pointnet
    python perf/neural.py --studies 8 --models pointnet --n 343 --size paper  # the paper's, n = 343
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import resource
import time
from typing import Any

import numpy as np
import torch

from harness import CLOUD
from harness.sdk.neural import accel, batched, loop
from harness.sdk.neural.sets import make_set
from harness.torch import random_rotations, seeded, threads
from harness_plugins.models.neural import MODELS

ROTATION = 0.785  # the demo's augmentation: within +/- pi/4


def clouds(n_samples: int, n_points: int, rng: np.random.Generator) -> list[np.ndarray]:
    r = {3: None, 27: 1, 125: 2, 343: 3}[n_points]
    grid = np.meshgrid(*[np.arange(-(r or 0), (r or 0) + 1)] * 3, indexing="ij")
    hkl = np.eye(3) if r is None else np.stack(grid, -1).reshape(-1, 3)
    out = []
    for _ in range(n_samples):
        basis = rng.uniform(0.2, 0.6, (3, 3)) + np.diag(rng.uniform(0.3, 0.6, 3))
        points = hkl @ basis
        out.append(np.hstack([points, rng.uniform(0, 1, (len(points), 1))]).astype(np.float32))
    return out


def pointnet_flops(net: torch.nn.Module, n_points: int) -> float:
    """Matrix FLOPs of one training step per cloud: 3 x forward (backward is 2 x)."""

    def matmul_flops(module: torch.nn.Module) -> int:  # 2 * in * out per linear layer
        return sum(2 * p.numel() for name, p in module.named_parameters() if name.endswith("weight") and p.dim() == 2)

    point, head = matmul_flops(net.encoder), matmul_flops(net.head)
    return 3.0 * (n_points * point + head)


def gemm_rate(device: str, dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a square matrix product on `device`: the peak this run can compare to."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    sync(device)
    start = clock()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (clock() - start)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = [time.perf_counter]


def clock() -> float:
    """The timer chosen by --clock: wall time, or this process's CPU time (on a shared
    CPU machine the work done, not the time spent waiting for a core)."""
    return _clock[0]()


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_batches(batches, spent: list[float]):
    it = iter(batches)
    while True:
        start = clock()
        try:
            batch = next(it)
        except StopIteration:
            spent[0] += clock() - start
            return
        spent[0] += clock() - start
        yield batch


def main_engine_batches(data, batch_size: int, generator: torch.Generator):
    """The engine before the dense path (main at f69dbf8), as a reference: a permutation
    per epoch, `Batch.from_data_list` per batch, a fresh rotation per cloud per batch,
    applied through the batch vector."""
    from torch_geometric.data import Batch

    from harness.sdk.neural.sets import spans

    order = torch.randperm(len(data), generator=generator).tolist()
    for start, end in spans(len(data), batch_size):
        batch = Batch.from_data_list([data.data[i] for i in order[start:end]])
        rot = random_rotations(batch.num_graphs, ROTATION, generator).to(batch.x.device)
        x = batch.x.clone()
        x[:, :3] = torch.einsum("nij,nj->ni", rot[batch.batch], x[:, :3])
        batch.x = x
        yield batch


class Row:
    """One layout of one (model, n): its set, network and optimizer, and timing helpers.

    Layouts: `dense` and `graph` (this engine), `main` (the graph engine before it:
    per-batch collation and rotation, an unfused optimizer, a host sync per batch to
    check the loss and per evaluation batch to copy its probabilities)."""

    def __init__(
        self,
        model,
        params,
        X,
        y,
        Xv,
        layout: str,
        device: str,
        precision: str,
        compile_net: bool,
        init: dict[str, torch.Tensor] | None,
    ):
        self.model, self.device = model, device
        self.train = make_set(X, y, device, dense=layout == "dense")
        self.valid = make_set(Xv, None, device, dense=layout == "dense")
        self.net = model.build(params, X[0].shape[1], 2).to(device)
        if init is not None:
            self.net.load_state_dict(init)  # both layouts start from the same weights
        # as `TorchModel.fit` does: only the dense path compiles (graph batches change shape)
        self.forward = accel.compiled(self.net, compile_net and layout == "dense", device)
        self.layout = layout
        if layout == "main":
            lr = float(params["lr"])
            self.optimizer = (
                torch.optim.Adam(self.net.parameters(), lr=lr)
                if params["optimizer"] == "adam"
                else torch.optim.SGD(self.net.parameters(), lr=lr, momentum=0.9)
            )
        else:
            self.optimizer = loop.make_optimizer(self.net, params["optimizer"], float(params["lr"]))
        self.generator = torch.Generator().manual_seed(0)
        self.autocast = lambda: accel.autocast(device, precision)
        self.epoch_s: list[float] = []
        self.host_s: list[float] = []
        self.eval_s: list[float] = []

    def epoch(self) -> None:
        self.net.train()
        spent = [0.0]
        sync(self.device)
        start = clock()
        if self.layout == "main":
            self.main_engine_epoch(spent)
        else:
            batches = loop.epoch_batches(self.train, self.model.batch_size, self.generator, ROTATION)
            finite = loop.train_epoch(
                self.forward, timed_batches(batches, spent), self.optimizer, torch.device(self.device), self.autocast
            )
            bool(finite)
        sync(self.device)
        self.epoch_s.append(clock() - start)
        self.host_s.append(spent[0])

    def main_engine_epoch(self, spent: list[float]) -> None:
        batches = main_engine_batches(self.train, self.model.batch_size, self.generator)
        for batch in timed_batches(batches, spent):
            self.optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(self.forward(batch), batch.y)
            if not torch.isfinite(loss):
                break
            loss.backward()
            self.optimizer.step()

    def evaluate(self) -> None:
        start = clock()
        if self.layout == "main":
            self.net.eval()
            with torch.no_grad():
                out = [torch.softmax(self.forward(b), dim=-1).double().cpu() for b in self.valid.eval_batches()]
            torch.cat(out).numpy()
        else:
            loop.predict(self.forward, self.valid, self.autocast)
        self.eval_s.append(clock() - start)


def measure(
    name: str,
    size: str,
    n_points: int,
    samples: int,
    layouts: list[str],
    device: str,
    precision: str,
    compile_net: bool,
    epochs: int,
) -> dict[str, dict[str, Any]]:
    """Speed of each layout on the same clouds and initial weights. Epochs and evaluations
    of the layouts alternate, and each keeps its fastest, so that load from other
    processes on a shared machine falls on both alike."""
    cls = {m.name: m for m in MODELS}[name]
    rng = np.random.default_rng(0)
    X, Xv = clouds(samples, n_points, rng), clouds(max(2, samples * 15 // 70), n_points, rng)
    y = rng.integers(0, 2, len(X))
    model = cls(size=size) if name == "pointnet" else cls()
    params = model.default_params()
    engine_allocator(layouts)
    out: dict[str, dict[str, Any]] = {}
    with seeded(0, device), accel.fast_matmul(device):
        rows: dict[str, Row] = {}
        init = None
        for layout in layouts:
            rows[layout] = Row(model, params, X, y, Xv, layout, device, precision, compile_net, init)
            init = init or {k: v.clone() for k, v in rows[layout].net.state_dict().items()}
        for _ in range(epochs + 1):  # the first round warms up (allocator, kernels, compile)
            for row in rows.values():
                row.epoch()
        for _ in range(3):
            for row in rows.values():
                row.evaluate()
    for layout, row in rows.items():
        timed = range(1, len(row.epoch_s))
        best = min(timed, key=lambda i: row.epoch_s[i])
        epoch, host = row.epoch_s[best], row.host_s[best]
        out[layout] = {
            "train_per_s": samples / epoch,
            "eval_per_s": len(Xv) / min(row.eval_s),
            "host_share": host / epoch,
            "epoch_s": epoch,
            "eval_s": min(row.eval_s),
            "samples": samples,
            "n_valid": len(Xv),
        }
        if name == "pointnet":
            out[layout]["tflops"] = pointnet_flops(row.net, n_points) * samples / epoch / 1e12
    return out


_default_allocator = [False]  # --default-allocator: glibc's default for every layout


def engine_allocator(layouts: list[str]) -> None:
    """This engine's allocator setting for its layouts; `main` keeps glibc's default, as
    the engine before the dense path did (never mixed in one process: it is process-wide)."""
    if "main" in layouts and len(layouts) > 1:
        raise ValueError("measure `main` in a process of its own")
    if "main" not in layouts and not _default_allocator[0]:
        accel.keep_freed_memory()


def peak_memory(name: str, size: str, n_points: int, samples: int, layout: str, device: str, precision: str) -> float:
    """MB: CUDA peak allocation, or on CPU the growth of this process's peak RSS, over one
    training epoch and one evaluation of `layout` alone."""
    cls = {m.name: m for m in MODELS}[name]
    rng = np.random.default_rng(0)
    X, Xv = clouds(samples, n_points, rng), clouds(max(2, samples * 15 // 70), n_points, rng)
    y = rng.integers(0, 2, len(X))
    model = cls(size=size) if name == "pointnet" else cls()
    engine_allocator([layout])
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    before = rss_mb()
    with seeded(0, device), accel.fast_matmul(device):
        row = Row(model, model.default_params(), X, y, Xv, layout, device, precision, False, None)
        row.epoch()
        row.evaluate()
    return torch.cuda.max_memory_allocated() / 2**20 if cuda else rss_mb() - before


def _child(queue, fn, args, n_threads) -> None:
    torch.set_num_threads(n_threads)
    try:
        queue.put(fn(*args))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def isolated(fn, *args, n_threads: int, device: str):
    """`fn(*args)` in a forked child on CPU, so that its peak memory is its own (on CUDA
    in this process: a forked child cannot use CUDA)."""
    if torch.device(device).type == "cuda":
        return fn(*args)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args, n_threads))
    proc.start()
    result = queue.get()
    proc.join()
    if isinstance(result, dict) and "error" in result:
        raise RuntimeError(result["error"])
    return result


def layout_groups(layouts: list[str]) -> list[list[str]]:
    """The layouts measured together in one process: this engine's, then `main` alone."""
    engine = [layout for layout in layouts if layout != "main"]
    return [group for group in (engine, ["main"] if "main" in layouts else []) if group]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cloud_models = [m.name for m in MODELS if CLOUD in m.accepts]  # the conv models take vectors
    ap.add_argument("--models", nargs="*", default=cloud_models, choices=cloud_models)
    ap.add_argument("--n", nargs="*", type=int, default=[3, 27, 125, 343], choices=[3, 27, 125, 343])
    ap.add_argument("--samples", type=int, default=2000, help="training clouds per row (capped by --max-points)")
    ap.add_argument(
        "--max-points", type=int, default=200_000, help="at most this many training points per row (0: no cap)"
    )
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--size", default="small", choices=["small", "paper"], help="pointnet's size setting")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the dense path's networks (as `compile = true` does; graph stays eager)",
    )
    ap.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default=None,
        help="timer: cpu (process CPU time; the default on CPU, robust to other load) or wall",
    )
    ap.add_argument(
        "--layouts",
        nargs="*",
        default=["dense", "graph", "main"],
        choices=["dense", "graph", "main"],
        help="main: the graph engine before the dense path, as a reference",
    )
    ap.add_argument(
        "--studies",
        type=int,
        default=0,
        help="K > 0: K networks batched against K trained one after another (see above)",
    )
    ap.add_argument(
        "--default-allocator",
        action="store_true",
        help="glibc's default allocator for every layout (what `keep_freed_memory` gains)",
    )
    args = ap.parse_args()
    _default_allocator[0] = args.default_allocator
    device = args.device
    clock_name = args.clock or ("wall" if torch.device(device).type == "cuda" else "cpu")
    _clock[0] = CLOCKS[clock_name]
    dtype = accel.autocast_dtype(device, args.precision) or torch.float32
    with threads(args.threads):
        peak = gemm_rate(device, dtype)
    name = torch.cuda.get_device_name() if torch.device(device).type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(
        f"torch {torch.__version__} · {name} · {args.threads} thread(s) · precision {args.precision} "
        f"({dtype}) · compile {args.compile} · pointnet size {args.size} · allocator "
        f"{'default' if args.default_allocator else 'engine'} · load average "
        f"{os.getloadavg()[0]:.1f} · clock {clock_name}"
    )
    print(f"measured {dtype} GEMM (2048^3) on this device: {peak / 1e12:.3f} TFLOP/s")
    if args.studies > 0:
        studies_table(args, device, peak)
        return
    header = (
        f"{'model':15} {'n':>4} {'clouds':>6} {'layout':6} {'train/s':>9} {'eval/s':>9} {'host %':>7} "
        f"{'peak MB':>8} {'TFLOP/s':>8} {'of gemm':>7} {args.layouts[0] + '/x':>11}"
    )
    print(header)
    for model in args.models:
        for n in args.n:
            samples = max(8, min(args.samples, args.max_points // n)) if args.max_points else args.samples
            try:
                speed = {}
                for group in layout_groups(args.layouts):
                    speed.update(
                        isolated(
                            measure,
                            model,
                            args.size,
                            n,
                            samples,
                            group,
                            device,
                            args.precision,
                            args.compile,
                            args.epochs,
                            n_threads=args.threads,
                            device=device,
                        )
                    )
                memory = {
                    layout: isolated(
                        peak_memory,
                        model,
                        args.size,
                        n,
                        samples,
                        layout,
                        device,
                        args.precision,
                        n_threads=args.threads,
                        device=device,
                    )
                    for layout in args.layouts
                }
            except RuntimeError as exc:
                print(f"{model:15} {n:4d} {samples:6d} {exc}", flush=True)
                continue
            for layout in args.layouts:
                r = speed[layout]
                tf = f"{r['tflops']:8.4f} {r['tflops'] * 1e12 / peak:7.1%}" if "tflops" in r else f"{'':8} {'':7}"
                ratio = ""
                if layout != args.layouts[0]:
                    d = speed[args.layouts[0]]
                    ratio = f"{d['train_per_s'] / r['train_per_s']:5.2f}x {d['eval_per_s'] / r['eval_per_s']:4.1f}x"
                print(
                    f"{model:15} {n:4d} {samples:6d} {layout:6} {r['train_per_s']:9.1f} {r['eval_per_s']:9.1f} "
                    f"{r['host_share']:7.1%} {memory[layout]:8.0f} {tf} {ratio:>11}",
                    flush=True,
                )
    first = args.layouts[0]
    print(
        f"{first}/x: train and eval clouds/s of the {first} path over this row's (same clouds, same run); "
        "main: the graph engine before the dense path"
    )


class Studies:
    """K members of one (model, n), each with its own clouds and seed, held twice: as K
    networks for the loop (sequential) and as one stack (batched), from the same weights."""

    def __init__(
        self,
        name: str,
        size: str,
        n_points: int,
        samples: int,
        k: int,
        device: str,
        precision: str,
        compile_net: bool = False,
    ):
        cls = {m.name: m for m in MODELS}[name]
        rng = np.random.default_rng(0)
        self.model = cls(size=size) if name == "pointnet" else cls()
        self.params = params = self.model.default_params()
        self.device, self.k, self.samples = device, k, samples
        self.train_sets, self.valid_sets, nets = [], [], []
        for i in range(k):
            X, Xv = clouds(samples, n_points, rng), clouds(max(2, samples * 15 // 70), n_points, rng)
            self.train_sets.append(make_set(X, rng.integers(0, 2, len(X)), device, dense=True))
            self.valid_sets.append(make_set(Xv, None, device, dense=True))
            with seeded(i, device):
                nets.append(self.model.build(params, X[0].shape[1], 2).to(device))
        self.nets = nets
        self.forwards = [accel.compiled(net, compile_net, device) for net in nets]
        self.optimizers = [loop.make_optimizer(net, params["optimizer"], float(params["lr"])) for net in nets]
        # the batched side as the engine trains it (TorchModel.fit_many): stacks of as many
        # members as `batched.members_per_stack` allows on this device; a member alone
        # trains through the loop, as `fit_many` fits it
        self.most = batched.members_per_stack(nets[0], self.model.batch_size, n_points, device) or k
        self.chunks: list[Any] = []
        for part in batched.split(list(range(k)), self.most):
            gens = [torch.Generator().manual_seed(i) for i in part]
            if len(part) == 1:
                net = copy.deepcopy(nets[part[0]])
                self.chunks.append(
                    (
                        "alone",
                        net,
                        accel.compiled(net, compile_net, device),
                        loop.make_optimizer(net, params["optimizer"], float(params["lr"])),
                        self.train_sets[part[0]],
                        gens[0],
                        [self.valid_sets[part[0]]],
                    )
                )
            else:
                self.chunks.append(
                    (
                        "stack",
                        batched.Stack(
                            [copy.deepcopy(nets[i]) for i in part],
                            params["optimizer"],
                            [float(params["lr"])] * len(part),
                            compile_net,
                        ),
                        batched.StackedSets([self.train_sets[i] for i in part]),
                        gens,
                        [self.valid_sets[i] for i in part],
                    )
                )
        self.seq_generators = [torch.Generator().manual_seed(i) for i in range(k)]
        self.flops = pointnet_flops(nets[0], n_points) if name == "pointnet" else None
        self.autocast = lambda: accel.autocast(device, precision)
        self.batch_size = self.model.batch_size

    def sequential_epoch(self) -> None:
        for net, forward, opt, data, gen in zip(
            self.nets, self.forwards, self.optimizers, self.train_sets, self.seq_generators
        ):
            net.train()
            batches = loop.epoch_batches(data, self.batch_size, gen, ROTATION)
            bool(loop.train_epoch(forward, batches, opt, torch.device(self.device), self.autocast))

    def batched_epoch(self) -> None:
        for chunk in self.chunks:
            if chunk[0] == "alone":
                _, net, forward, opt, data, gen, _ = chunk
                net.train()
                batches = loop.epoch_batches(data, self.batch_size, gen, ROTATION)
                bool(loop.train_epoch(forward, batches, opt, torch.device(self.device), self.autocast))
                continue
            _, stack, data, gens, _ = chunk
            order, rotation = batched.epoch_draws(gens, self.samples, ROTATION, torch.device(self.device))
            bool(batched.train_epoch(stack, data, order, rotation, self.batch_size, self.autocast).all())

    def sequential_host(self) -> None:
        """The sequential epoch's batches alone (drawing, indexing, rotating)."""
        for data, gen in zip(self.train_sets, [torch.Generator().manual_seed(i) for i in range(self.k)]):
            for _ in loop.epoch_batches(data, self.batch_size, gen, ROTATION):
                pass

    def batched_host(self) -> None:
        for chunk in self.chunks:
            if chunk[0] == "alone":
                for _ in loop.epoch_batches(chunk[4], self.batch_size, torch.Generator().manual_seed(0), ROTATION):
                    pass
                continue
            data, k = chunk[2], len(chunk[3])
            gens = [torch.Generator().manual_seed(i) for i in range(k)]
            order, rotation = batched.epoch_draws(gens, self.samples, ROTATION, torch.device(self.device))
            for start, end in loop.spans(self.samples, self.batch_size):
                points, _ = data.take(order[:, start:end])
                points = points.clone()
                points[..., :3] = points[..., :3] @ rotation[:, start:end].transpose(-1, -2)

    def sequential_eval(self) -> None:
        for net, forward, data in zip(self.nets, self.forwards, self.valid_sets):
            net.eval()
            loop.predict(forward, data, self.autocast)

    def batched_eval(self) -> None:
        for chunk in self.chunks:
            if chunk[0] == "alone":
                chunk[1].eval()
                loop.predict(chunk[2], chunk[6][0], self.autocast)
            else:
                batched.predict(chunk[1], chunk[4], self.autocast)


def timed(fn, device: str) -> float:
    sync(device)
    start = clock()
    fn()
    sync(device)
    return clock() - start


def measure_studies(
    name: str,
    size: str,
    n_points: int,
    samples: int,
    k: int,
    device: str,
    precision: str,
    epochs: int,
    compile_net: bool = False,
) -> dict[str, dict[str, float]]:
    """Sequential and batched epochs alternate (each keeps its fastest after a warm-up
    round), then evaluations, then the host passes."""
    accel.keep_freed_memory()
    with accel.fast_matmul(device):
        s = Studies(name, size, n_points, samples, k, device, precision, compile_net)
        times: dict[str, list[float]] = {
            key: [] for key in ("seq", "bat", "seq_eval", "bat_eval", "seq_host", "bat_host")
        }
        for round_ in range(epochs + 1):
            seq, bat = timed(s.sequential_epoch, device), timed(s.batched_epoch, device)
            if round_:
                times["seq"].append(seq)
                times["bat"].append(bat)
        for _ in range(3):
            times["seq_eval"].append(timed(s.sequential_eval, device))
            times["bat_eval"].append(timed(s.batched_eval, device))
        for _ in range(2):
            times["seq_host"].append(timed(s.sequential_host, device))
            times["bat_host"].append(timed(s.batched_host, device))
    n_valid = sum(len(v) for v in s.valid_sets)
    out = {}
    for mode in ("seq", "bat"):
        epoch = min(times[mode])
        out[mode] = {
            "train_per_s": k * samples / epoch,
            "eval_per_s": n_valid / min(times[f"{mode}_eval"]),
            "host_share": min(times[f"{mode}_host"]) / epoch,
            "epoch_s": epoch,
            "steps": k * len(loop.spans(samples, s.batch_size))
            if mode == "seq"
            else sum(len(loop.spans(samples, s.batch_size)) for _ in s.chunks),
            "flop_per_s": (s.flops or 0.0) * k * samples / epoch,
            "stack": s.most,
        }
    return out


def fixed_share(name: str, size: str, n_points: int, device: str, precision: str) -> dict[str, float]:
    """What batching can save at most: one network's training step at 2 clouds (almost
    only the host's per-step cost: the same launches, next to no arithmetic) against a
    step at the model's batch size. Stacking K networks removes at most that fixed part
    of K - 1 of them; the part that grows with the batch stays."""
    accel.keep_freed_memory()
    s = Studies(name, size, n_points, 256, 1, device, precision)
    out = {}
    for batch in (2, s.model.batch_size):
        s.batch_size = batch
        steps = len(loop.spans(256, batch))
        timed(s.sequential_epoch, device)
        out[f"step_{batch}"] = min(timed(s.sequential_epoch, device) for _ in range(3)) / steps
    small, full = out["step_2"], out[f"step_{s.model.batch_size}"]
    return {"fixed_ms": 1e3 * small, "step_ms": 1e3 * full, "bound": full / max(1e-12, full - small)}


def studies_peak(
    name: str, size: str, n_points: int, samples: int, k: int, device: str, precision: str, mode: str
) -> float:
    """MB for one epoch and one evaluation of all K members in `mode` (as `peak_memory`)."""
    accel.keep_freed_memory()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    before = rss_mb()
    with accel.fast_matmul(device):
        s = Studies(name, size, n_points, samples, k, device, precision)
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        if mode == "seq":
            s.sequential_epoch()
            s.sequential_eval()
        else:
            s.batched_epoch()
            s.batched_eval()
    return torch.cuda.max_memory_allocated() / 2**20 if cuda else rss_mb() - before


def studies_table(args, device: str, peak: float) -> None:
    k = args.studies
    print(f"{k} studies per row: batched (one stacked model) against sequential (one after another)")
    print(
        f"{'model':15} {'n':>4} {'clouds':>6} {'mode':10} {'train/s':>9} {'eval/s':>9} {'host %':>7} "
        f"{'peak MB':>8} {'ms/step':>8} {'GFLOP/s':>8} {'of gemm':>7} {'bat/seq':>12}"
    )
    first = None
    for model in args.models:
        for n in args.n:
            samples = max(8, min(args.samples, args.max_points // n)) if args.max_points else args.samples
            try:
                speed = isolated(
                    measure_studies,
                    model,
                    args.size,
                    n,
                    samples,
                    k,
                    device,
                    args.precision,
                    args.epochs,
                    args.compile,
                    n_threads=args.threads,
                    device=device,
                )
                memory = {
                    mode: isolated(
                        studies_peak,
                        model,
                        args.size,
                        n,
                        samples,
                        k,
                        device,
                        args.precision,
                        mode,
                        n_threads=args.threads,
                        device=device,
                    )
                    for mode in ("seq", "bat")
                }
            except RuntimeError as exc:
                print(f"{model:15} {n:4d} {samples:6d} {exc}", flush=True)
                continue
            ratio = speed["bat"]["train_per_s"] / speed["seq"]["train_per_s"]
            eval_ratio = speed["bat"]["eval_per_s"] / speed["seq"]["eval_per_s"]
            first = ratio if first is None else first
            for mode, label in (("seq", "sequential"), ("bat", "batched")):
                r = speed[mode]
                tail = f"{ratio:5.2f}x {eval_ratio:4.1f}x" if mode == "bat" else ""
                flops = (
                    f"{r['flop_per_s'] / 1e9:8.1f} {r['flop_per_s'] / peak:7.1%}"
                    if r["flop_per_s"]
                    else f"{'':8} {'':7}"
                )
                print(
                    f"{model:15} {n:4d} {samples:6d} {label:10} {r['train_per_s']:9.1f} {r['eval_per_s']:9.1f} "
                    f"{r['host_share']:7.1%} {memory[mode]:8.0f} {1e3 * r['epoch_s'] / r['steps']:8.2f} {flops} "
                    f"{tail:>12}",
                    flush=True,
                )
            fixed = isolated(
                fixed_share, model, args.size, n, device, args.precision, n_threads=args.threads, device=device
            )
            print(
                f"{'':15} members per stack on {device}: {min(k, speed['bat']['stack'])} of {k} "
                f"(batched.members_per_stack); a sequential step: {fixed['step_ms']:.2f} ms, of which "
                f"{fixed['fixed_ms']:.2f} ms ({fixed['fixed_ms'] / fixed['step_ms']:.0%}) do not shrink with "
                f"the batch (a step at 2 clouds): batching can reach at most {fixed['bound']:.2f}x",
                flush=True,
            )
    print(
        "bat/seq: train and eval clouds/s of the K batched over the K sequential (same clouds, same run); "
        "ms/step: a training step of one network (sequential) or of one stack (batched); GFLOP/s: the "
        "epoch's matrix FLOPs (pointnet_flops) over its time, of gemm: against the GEMM rate above"
    )
    if first is not None:
        print(f"batched vs sequential: {first:.2f}x")


if __name__ == "__main__":
    main()

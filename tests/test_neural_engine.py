"""The neural training engine (`harness.torch`): dense and graph batches give the same
logits, the same fit, one upload per list of clouds; settings for the paper's network,
mixed precision and compilation; a third-party model written against the public API."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch

from harness.services import registry
from harness.sdk.api import FitContext, Samples
from harness.services.errors import UserError
from harness.torch import DenseClouds, DenseSet, GraphSet, TorchModel, make_set, max_pool
from harness_plugins.models.neural import E3NN, AttentionPool, PointNet

COLUMNS = ["x", "y", "z", "intensity"]
SMALL = {"point_depth": 3, "point_width": 16, "feature_dim": 32, "head_depth": 3, "head_width": 32}
NETWORKS = [
    (PointNet, SMALL),
    (AttentionPool, {**SMALL, "attention_layers": 2, "heads": 4}),
    (E3NN, {"mul": 8, "layers": 2, "lmax": 2}),
]
IDS = ["pointnet", "attention_pool", "e3nn"]


def accuracy(y: np.ndarray, proba: np.ndarray) -> float:
    return float((proba.argmax(1) == y).mean())


def ctx(seed: int = 0, device: str = "cpu") -> FitContext:
    return FitContext(device=device, seed=seed, n_classes=2, score=accuracy)


def lattice_clouds(count: int, n_max: int, seed: int) -> list[np.ndarray]:
    """Reciprocal-lattice-like clouds of (2 n_max + 1)^3 points (3 basis vectors for 0)."""
    rng = np.random.default_rng(seed)
    if n_max == 0:
        hkl = np.eye(3)
    else:
        r = np.arange(-n_max, n_max + 1)
        hkl = np.stack(np.meshgrid(r, r, r, indexing="ij"), -1).reshape(-1, 3)
    out = []
    for i in range(count):
        basis = rng.uniform(0.2, 0.6, (3, 3)) + np.diag([0.4, 0.4, 0.4 * (1 + 0.5 * (i % 2))])
        points = hkl @ basis
        out.append(np.hstack([points, rng.uniform(0, 1, (len(points), 1))]).astype(np.float32))
    return out


def samples(X: list[np.ndarray]) -> Samples:
    return Samples(X, np.arange(len(X)) % 2, [str(i) for i in range(len(X))], COLUMNS, "cloud")


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("n_max", [0, 1], ids=["3 points", "27 points"])
@pytest.mark.parametrize("cls,params", NETWORKS, ids=IDS)
def test_dense_and_graph_batches_give_the_same_logits(cls, params, n_max, training):
    model = cls()
    torch.manual_seed(0)
    net = model.build({**model.default_params(), **params}, 4, 3).train(training)
    X = lattice_clouds(6, n_max, seed=1)
    dense = make_set(X, None, "cpu", dense=True)
    graph = make_set(X, None, "cpu", dense=False)
    assert isinstance(dense, DenseSet) and isinstance(graph, GraphSet)
    with torch.no_grad():
        a = net(DenseClouds(dense.points))
        b = net(Batch.from_data_list(graph.data))
    assert a.shape == (6, 3)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cls,params", NETWORKS, ids=IDS)
def test_a_fit_on_the_dense_path_matches_one_on_the_graph_path(cls, params):
    """Same seed: same initial weights, batch order and augmentation rotations."""
    train, valid = samples(lattice_clouds(24, 1, seed=2)), samples(lattice_clouds(8, 1, seed=3))
    fits = {
        layout: cls(max_epochs=2, batch_size=8, augment_rotation=0.5, layout=layout, **params).fit(train, valid, ctx())
        for layout in ("dense", "graph")
    }
    np.testing.assert_allclose(fits["dense"].predict_proba(valid.X), fits["graph"].predict_proba(valid.X), atol=1e-4)
    assert fits["dense"].history_.scores == fits["graph"].history_.scores


def test_layout_auto_is_dense_for_clouds_of_one_size_and_graph_otherwise():
    same = lattice_clouds(4, 1, seed=0)
    mixed = same[:2] + lattice_clouds(2, 0, seed=0)
    model = PointNet()
    assert isinstance(model.as_set(same), DenseSet)
    assert isinstance(model.as_set(mixed), GraphSet)
    assert isinstance(PointNet(layout="graph").as_set(same), GraphSet)
    with pytest.raises(UserError, match="layout = 'dense' needs clouds of one size"):
        PointNet(layout="dense").as_set(mixed)


def test_a_study_uploads_each_split_once(monkeypatch):
    """Trials refit on the same lists of clouds: converted and copied to the device once."""
    from harness.sdk.neural import sets

    made = []
    real = sets.make_set
    monkeypatch.setattr(sets, "make_set", lambda X, *a, **k: made.append(id(X)) or real(X, *a, **k))
    sets.uploads.clear()
    train, valid = samples(lattice_clouds(16, 0, seed=4)), samples(lattice_clouds(8, 0, seed=5))
    for trial in range(3):
        model = PointNet(max_epochs=1, **SMALL).fit(train, valid, ctx(seed=trial))
        model.predict_proba(valid.X)
    assert sorted(made) == sorted([id(train.X), id(valid.X)])


def test_dense_batches_are_rotated_rigidly_and_scaled_into_the_unit_sphere():
    from harness.torch import random_rotations, rotate

    X = lattice_clouds(5, 1, seed=6)
    cloud_set = make_set(X, None, "cpu", normalize_scale=True, dense=True)
    norms = cloud_set.points[..., :3].norm(dim=-1)
    torch.testing.assert_close(norms.amax(dim=1), torch.ones(5))
    batch = DenseClouds(cloud_set.points)
    turned = rotate(batch, random_rotations(5, 0.785, torch.Generator().manual_seed(0)))
    gram = lambda p: p[..., :3] @ p[..., :3].transpose(-1, -2)  # noqa: E731 - distances and angles
    torch.testing.assert_close(gram(turned.points), gram(batch.points), atol=1e-5, rtol=1e-5)
    assert torch.equal(turned.points[..., 3], batch.points[..., 3])
    assert not torch.allclose(turned.points, batch.points)


def test_a_diverging_fit_stops_and_keeps_finite_weights():
    X = lattice_clouds(16, 0, seed=7)
    X[3][0, 0] = np.nan  # a poisoned training cloud makes the loss NaN in its batch
    model = PointNet(max_epochs=3, **SMALL).fit(samples(X), samples(lattice_clouds(8, 0, seed=8)), ctx())
    assert model.history_.stopped == "diverged"
    assert all(torch.isfinite(p).all() for p in model.network.parameters())


def test_paper_size_is_the_studys_network():
    net = PointNet(size="paper").build(PointNet().default_params(), 4, 2)
    assert net.encoder.channel_list == [4, 64, 128, 512, 1024]
    assert net.head.channel_list == [1024, 512, 256, 128, 2]
    assert PointNet().build(PointNet().default_params(), 4, 2).encoder.channel_list[-1] == 256


@pytest.mark.parametrize("setting", [{"size": "huge"}, {"precision": "fp16"}, {"layout": "sparse"}])
def test_unknown_settings_are_user_errors_naming_the_choices(setting):
    reg = registry.load([])
    key, value = next(iter(setting.items()))
    with pytest.raises(UserError, match=f"{key} = '{value}'.*choose one of"):
        reg.create("model", "pointnet", setting)


def test_bf16_autocast_trains_and_predicts_close_to_fp32():
    """The CUDA default (bf16 autocast, fp32 weights), exercised on the CPU."""
    train, valid = samples(lattice_clouds(32, 1, seed=9)), samples(lattice_clouds(16, 1, seed=10))
    fp32 = PointNet(max_epochs=1, **SMALL).fit(train, valid, ctx())
    bf16 = PointNet(max_epochs=1, precision="bf16", **SMALL).fit(train, valid, ctx())
    assert all(p.dtype == torch.float32 for p in bf16.network.parameters())
    np.testing.assert_allclose(bf16.predict_proba(valid.X), fp32.predict_proba(valid.X), atol=0.05)


@dataclass
class MeanNet(TorchModel):
    """A third-party model written against the public API only."""

    name = "mean_net"
    description = "point-wise linear layer, max pool"

    def default_params(self) -> dict[str, Any]:
        return {"optimizer": "adam", "lr": 0.01}

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> torch.nn.Module:
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.point = torch.nn.Linear(in_dim, 8)
                self.head = torch.nn.Linear(8, n_classes)

            def forward(self, clouds):
                return self.head(max_pool(torch.relu(self.point(clouds.x)), clouds))

        return Net()


def test_a_third_party_model_subclasses_the_public_base_on_both_layouts():
    same = lattice_clouds(12, 1, seed=11)
    mixed = same[:6] + lattice_clouds(6, 0, seed=12)
    for X in (same, mixed):
        proba = MeanNet(max_epochs=2).fit(samples(X), samples(X[:4]), ctx()).predict_proba(X)
        assert proba.shape == (12, 2) and np.isfinite(proba).all()


def test_importing_the_public_base_does_not_import_torch():
    code = "import sys, harness.torch, harness_plugins.models.neural; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_compiled_network_predicts_like_the_eager_one():
    train, valid = samples(lattice_clouds(32, 1, seed=13)), samples(lattice_clouds(16, 1, seed=14))
    eager = PointNet(max_epochs=2, **SMALL).fit(train, valid, ctx())
    compiled = PointNet(max_epochs=2, compile=True, **SMALL).fit(train, valid, ctx())
    np.testing.assert_allclose(compiled.predict_proba(valid.X), eager.predict_proba(valid.X), atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_on_cuda_the_same_seed_gives_the_same_metric_within_tolerance():
    train, valid = samples(lattice_clouds(256, 1, seed=15)), samples(lattice_clouds(64, 1, seed=16))
    scores = [
        PointNet(max_epochs=3, **SMALL).fit(train, valid, ctx(device="cuda")).history_.best_score for _ in range(2)
    ]
    assert abs(scores[0] - scores[1]) <= 0.02


FAULTS_PER_BATCH = """
import resource, sys, torch
from harness.sdk.neural import accel
if sys.argv[1] == "keep":
    assert accel.keep_freed_memory()
torch.set_num_threads(1)
x = torch.randn(10240, 256)
w = torch.randn(256, 1024)
torch.relu(x @ w)  # warm up: the first batch faults in its pages either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):  # a mini-batch's activations (40 MiB), made and freed again
    torch.relu(x @ w)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_cpu_training_reuses_freed_activation_memory_instead_of_faulting_in_fresh_pages():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS_PER_BATCH, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    default, kept = faults("default"), faults("keep")
    # 20 batches of 2 x 40 MiB (20,480 pages a batch): glibc maps blocks above 32 MiB
    # afresh each time by default; kept, they come from the heap again
    assert default > 20 * 10_000
    assert kept < default / 5  # at most the heap growing once

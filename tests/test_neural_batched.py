"""K networks of one combination trained as one batched model (`harness.sdk.neural.batched`,
`TorchModel.fit_many`) against K separate fits.

Tolerance: the data order, rotations, initial weights and optimizer arithmetic are the
separate fit's, bit for bit. The matrix products under vmap are batched products, whose
CPU kernels sometimes sum in another order than the separate fit's (measured: most
steps bit-equal, some off by one float32 ulp), so without BatchNorm weights and
probabilities must agree to 1e-6 and validation histories exactly. BatchNorm's backward under vmap reduces over the batch in another order
(about one float32 ulp in the gradients of its weight and bias); Adam turns such noise
in near-zero gradients into steps of size lr, so the weights of the degenerate
directions (biases ahead of a BatchNorm) drift by up to a few lr while predictions and
validation scores stay put: there the histories must be equal and probabilities agree
to 5e-3."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from harness_plugins.models.neural import PointNet
from test_neural_engine import SMALL, accuracy, lattice_clouds, samples

from harness.sdk.api import FitContext
from harness.torch import TorchModel, max_pool


@dataclass
class PlainNet(TorchModel):
    """Point-wise layers, max pool, head: no BatchNorm, no dropout."""

    name = "plain_net"
    description = "test network without BatchNorm"
    optimizer: str = "adam"
    lr: float = 0.01

    def default_params(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer, "lr": self.lr}

    def build(self, params: dict[str, Any], in_dim: int, n_classes: int) -> torch.nn.Module:
        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.point = torch.nn.Sequential(
                    torch.nn.Linear(in_dim, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16), torch.nn.ReLU()
                )
                self.head = torch.nn.Sequential(
                    torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, n_classes)
                )

            def forward(self, clouds):
                return self.head(max_pool(self.point(clouds.x), clouds))

        return Net()


def fits_of(n_members: int, n_train: int = 40, n_max: int = 1, valid_lengths=None, report=None):
    """One (train, valid, ctx) per seed, each with its own clouds (as the seeds of a
    combination have their own splits); validation sets of different lengths."""
    out = []
    for s in range(n_members):
        X = lattice_clouds(n_train, n_max, seed=10 + s)
        Xv = lattice_clouds((valid_lengths or [13 + s for s in range(n_members)])[s], n_max, seed=20 + s)
        ctx = FitContext("cpu", s, 2, accuracy, report or (lambda step, value: None))
        out.append((samples(X), samples(Xv), ctx))
    return out


def separate(model: TorchModel, fits) -> list[TorchModel]:
    return [copy.copy(model).fit(*f) for f in fits]


def assert_same_fit(a: TorchModel, b: TorchModel, X, weights: float | None, proba: float) -> None:
    """Same validation history; weights (unless None) and probabilities within tolerance
    (0: bit-equal)."""
    assert a.history_ == b.history_
    if weights is not None:
        sa, sb = a.network.state_dict(), b.network.state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], atol=weights, rtol=0)
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), atol=proba, rtol=0)


@pytest.mark.parametrize("optimizer,lr", [("adam", 0.01), ("sgd", 0.05)])
def test_batched_fits_equal_separate_fits_without_batchnorm(optimizer, lr):
    # plateau halves some members' learning rates and not others'; patience stops members
    # at different epochs (they are taken out of the stack, frozen)
    model = PlainNet(
        optimizer=optimizer, lr=lr, max_epochs=12, patience=2, batch_size=8, augment_rotation=0.5, plateau_patience=1
    )
    fits = fits_of(4)
    alone, together = separate(model, fits), model.fit_many(fits)
    X = lattice_clouds(9, 1, seed=99)
    for a, b in zip(alone, together):
        assert_same_fit(a, b, X, weights=1e-6, proba=1e-6)
    assert any(len(a.history_.scores) < model.max_epochs for a in alone)  # stopped early: frozen
    assert len({tuple(a.history_.scores) for a in alone}) > 1


def test_batched_pointnet_matches_separate_fits_with_per_member_batchnorm():
    model = PointNet(
        max_epochs=6, patience=2, batch_size=16, augment_rotation=0.5, plateau_patience=1, normalize_scale=True, **SMALL
    )
    fits = fits_of(3)
    alone, together = separate(model, fits), model.fit_many(fits)
    X = lattice_clouds(9, 1, seed=99)
    for a, b in zip(alone, together):
        assert_same_fit(a, b, X, weights=None, proba=5e-3)
        # running statistics are each member's own: equal to its separate fit's, not another's
        sa, sb = a.network.state_dict(), b.network.state_dict()
        var = "encoder.norms.0.module.running_var"  # (the mean follows the drifting bias before it)
        torch.testing.assert_close(sa[var], sb[var], atol=1e-3, rtol=1e-2)
    other = together[1].network.state_dict()["encoder.norms.0.module.running_var"]
    assert not torch.allclose(alone[0].network.state_dict()["encoder.norms.0.module.running_var"], other, atol=1e-2)


def test_stored_models_of_batched_fits_load_and_predict_as_fitted(tmp_path):
    model = PointNet(max_epochs=2, batch_size=16, **SMALL)
    fits = fits_of(2)
    together, alone = model.fit_many(fits), separate(model, fits)
    X = lattice_clouds(7, 1, seed=98)
    for k, fitted in enumerate(together):
        folder = tmp_path / str(k)
        folder.mkdir()
        fitted.save(folder)
        (tmp_path / "alone").mkdir(exist_ok=True)
        alone[k].save(tmp_path / "alone")
        assert (folder / "architecture.json").read_text() == (tmp_path / "alone" / "architecture.json").read_text()
        loaded = PointNet(**SMALL).load(folder)
        np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))


def test_a_pruned_member_stops_alone_and_the_others_are_untouched():
    class Pruned(Exception):
        pass

    def report_for(seed):
        def report(step, value):
            if seed == 1 and step == 1:
                raise Pruned()

        return report

    model = PlainNet(max_epochs=4, patience=10, batch_size=8)
    fits = fits_of(3)
    fits = [(t, v, FitContext("cpu", c.seed, 2, accuracy, report_for(c.seed))) for t, v, c in fits]
    together = model.fit_many(fits)
    assert isinstance(together[1], Pruned)
    plain = [(t, v, FitContext("cpu", c.seed, 2, accuracy)) for t, v, c in fits]
    X = lattice_clouds(9, 1, seed=99)
    for k in (0, 2):
        assert_same_fit(copy.copy(model).fit(*plain[k]), together[k], X, weights=1e-6, proba=1e-6)


def test_networks_with_dropout_or_other_lengths_fit_one_by_one_and_equal_separate_fits(monkeypatch):
    from harness.sdk.neural import batched

    calls = []
    real = batched.train_batched
    monkeypatch.setattr(
        batched, "train_batched", lambda members, *a, **k: calls.append(len(members)) or real(members, *a, **k)
    )
    dropout = PointNet(max_epochs=2, batch_size=16, **{**SMALL, "dropout": 0.2})
    fits = fits_of(2)
    X = lattice_clouds(5, 1, seed=97)
    for a, b in zip(separate(dropout, fits), dropout.fit_many(fits)):
        assert_same_fit(a, b, X, weights=0, proba=0)  # fitted one by one: bit-equal
    assert calls == []
    plain = PlainNet(max_epochs=3, batch_size=8)
    mixed = fits_of(2, n_train=40) + fits_of(1, n_train=30)  # two of one length, one of another
    for a, b in zip(separate(plain, mixed), plain.fit_many(mixed)):
        assert_same_fit(a, b, X, weights=1e-6, proba=1e-6)
    assert calls == [2]


def test_ray_asks_for_the_models_share_of_a_gpu_and_the_share_is_not_part_of_its_identity():
    from test_ray import _spec

    from harness.execute.executors.ray import placement

    spec = _spec("pointnet")
    plain_title, plain_params = spec.combination.model.title, spec.combination.model.params()
    spec.combination.model.gpu_share = 0.25
    options, on = placement(spec, "auto", {"CPU": 8, "GPU": 1}, cpus=1)
    assert options == {"num_cpus": 1, "num_gpus": 0.25} and on == "cuda"
    assert spec.combination.model.title == plain_title and spec.combination.model.params() == plain_params
    assert placement(spec, "auto", {"CPU": 8, "GPU": 0}, cpus=1)[0]["num_gpus"] == 0
    with pytest.raises(ValueError, match="gpu_share"):
        PointNet(gpu_share=0)


@pytest.mark.slow
def test_the_gpu_check_runs_on_cpu_at_tiny_size(tmp_path):
    """perf/device/check.py, the one command of a GPU window, at tiny size on CPU: every
    stage runs (so a window is spent measuring, not debugging)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from conftest import SHARED_DATA

    data = SHARED_DATA / "mp_metallicity_36k.csv.gz"
    if not data.is_file():
        pytest.skip(f"shared data not found at {data}")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "perf/device/check.py", "--device", "cpu", "--tiny", "--data", str(data)],
        check=False,
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "HARNESS_CACHE_DIR": str(tmp_path)},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "4 of 4 stages ok" in out.stdout
    assert "batched vs sequential: " in out.stdout and "metallicity study: exit 0" in out.stdout


def test_cuda_captures_graphs_and_cpu_falls_back_to_the_default_compile_mode():
    from harness.sdk.neural import accel

    assert accel.compile_mode("cuda") == "reduce-overhead" and accel.compile_mode("cuda:1") == "reduce-overhead"
    assert accel.compile_mode("cpu") == "default"
    # evaluation chunks: a study's share of the GPU scales its budget; CPU keeps its own
    assert accel.eval_points("cuda", 0.25) == accel.eval_points("cuda") // 4
    assert accel.eval_points("cpu", 0.25) == accel.eval_points("cpu")


def test_evaluation_in_chunks_under_a_budget_gives_the_same_probabilities():
    from harness.sdk.neural import batched, loop
    from harness.torch import make_set

    torch.manual_seed(0)
    model = PointNet(**SMALL)
    nets = [model.build(model.default_params(), 4, 2).eval() for _ in range(2)]
    sets = [make_set(lattice_clouds(23, 1, seed=s), None, "cpu") for s in (1, 2)]
    chunks = list(sets[0].eval_batches(27 * 5))  # 27 points per cloud: 5 clouds per chunk
    assert [c.num_graphs for c in chunks] == [5, 5, 5, 5, 3]
    whole = loop.predict(nets[0], sets[0])
    np.testing.assert_allclose(loop.predict(nets[0], sets[0], points=27 * 5), whole, atol=1e-6)
    stack = batched.Stack(nets, "adam", [0.001, 0.001])
    for points in (None, 27 * 2 * 3):  # over both members: 3 clouds each per chunk
        for k, proba in enumerate(batched.predict(stack, sets, points=points)):
            np.testing.assert_allclose(proba, loop.predict(nets[k], sets[k]), atol=1e-5)


@pytest.mark.slow
def test_compiled_batched_fits_equal_eager_ones():
    model = PlainNet(max_epochs=2, batch_size=8)
    fits = fits_of(2)
    eager = model.fit_many(fits)
    compiled = PlainNet(max_epochs=2, batch_size=8, compile=True).fit_many(fits)
    X = lattice_clouds(9, 1, seed=99)
    for a, b in zip(eager, compiled):
        assert_same_fit(a, b, X, weights=1e-5, proba=1e-5)


def test_with_batch_studies_a_fit_alone_is_bit_equal_to_the_same_fit_in_any_batch():
    """What makes packing deterministic and resumable: a study's numbers do not depend on
    its batch-mates (which seeds are left after a cut, how the executor grouped them)."""
    kw = dict(
        max_epochs=8,
        patience=2,
        batch_size=16,
        augment_rotation=0.5,
        plateau_patience=1,
        normalize_scale=True,
        batch_studies=True,
        **SMALL,
    )
    fits = fits_of(3)
    alone = PointNet(**kw).fit(*fits[0])
    in_three = PointNet(**kw).fit_many(fits)[0]
    in_two = PointNet(**kw).fit_many([fits[2], fits[0]])[1]
    X = lattice_clouds(9, 1, seed=99)
    for other in (in_three, in_two):
        assert_same_fit(alone, other, X, weights=0, proba=0)
    # the members stopped at different epochs (the last one then ran beside a twin)
    assert len({len(m.history_.scores) for m in PointNet(**kw).fit_many(fits)}) > 1
    assert PointNet(**kw).params()["batch_studies"] is True  # it changes the numbers: part of the identity

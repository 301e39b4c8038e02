"""Leaderboards in every format carry a 95 % interval and the comparison with the best row;
identical runs write identical files."""

import json

import numpy as np
import pytest
from rich.console import Console

from harness.report import leaderboard

from harness.sdk import metrics
from harness.report import stats
from harness.cli import main
from harness.services.store import Store, UnitResult, location_of


def _result(model, seed, y, proba, task="trigonal_vs_hexagonal", metric="roc_auc", **extra):
    ids = [f"m{i}" for i in range(len(y))]
    return UnitResult(
        unit=f"demo:{task}/xrd_cloud/none/{model}#{seed}",
        key=f"{task}/{model}#{seed}",
        dataset="demo",
        task=task,
        representation="xrd_cloud",
        perturbation="none",
        model=model,
        seed=seed,
        metric=metric,
        value=metrics.get(metric)(np.asarray(y), np.asarray(proba)),
        n_test=len(y),
        fit_seconds=1.0 + seed,
        predictions={"ids": ids, "y": list(map(int, y)), "proba": np.asarray(proba).tolist()},
        **extra,
    )


def _scores(y, quality, rng):
    """Probabilities of class 1 that rank positives above negatives with some noise."""
    s = y * quality + rng.normal(0, 1, len(y))
    p = 1 / (1 + np.exp(-s))
    return np.column_stack([1 - p, p])


@pytest.fixture(scope="module")
def three_models():
    """Three seeds of 135 test crystals: two close models and one clearly worse."""
    rng = np.random.default_rng(0)
    out = []
    for seed in range(3):
        y = rng.permutation(np.r_[np.zeros(70, int), np.ones(65, int)])
        shared = _scores(y, 1.4, rng)[:, 1]
        close = np.clip(shared + rng.normal(0, 0.03, len(y)), 0, 1)
        out.append(_result("pointnet", seed, y, np.column_stack([1 - shared, shared])))
        out.append(_result("e3nn", seed, y, np.column_stack([1 - close, close])))
        out.append(_result("random_forest", seed, y, _scores(y, 0.2, rng)))
    return out


def test_rows_carry_an_interval_and_a_mark_against_the_best(three_models):
    rows = leaderboard.build(three_models)
    best, close, worse = rows
    assert best["vs_best"] == "best" and best["ci_method"] == stats.SEEDS_OWN_TEST
    for r in rows:
        assert r["ci_low"] <= r["mean"] <= r["ci_high"]
    assert close["vs_best"] == "tied" and close["diff_low"] <= 0 <= close["diff_high"] and close["p_vs_best"] > 0.05
    assert worse["vs_best"] == "worse" and worse["diff_low"] > 0 and worse["p_vs_best"] < 0.05


def test_every_format_shows_the_interval_and_the_mark(three_models, tmp_path):
    rows = leaderboard.build(three_models)
    md = leaderboard.markdown(rows)
    assert "| 95% CI | vs best |" in md and md.count("≈ p=") == 1 and "| best |" in md
    assert f"[{rows[0]['ci_low']:.3f}, {rows[0]['ci_high']:.3f}]" in md
    header = leaderboard.to_csv(rows).splitlines()[0].split(",")
    assert (
        header[:10]
        == ["dataset", "task", "representation", "perturbation", "model", "metric", "mean", "std", "ci_low", "ci_high"]
        and "vs_best" in header
        and "p_vs_best" in header
    )
    parsed = json.loads(leaderboard.to_json(rows))
    assert [r["vs_best"] for r in parsed] == ["best", "tied", "worse"] and parsed[0]["p_vs_best"] is None
    console = Console(record=True, width=200)
    leaderboard.render(rows, console)
    text = console.export_text()
    assert "95% CI" in text and "≈ p=" in text and "paired" in text
    leaderboard.write(rows, tmp_path)
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.json"):
        assert "fit_seconds" not in (tmp_path / name).read_text()
    timings = (tmp_path / "timings.csv").read_text().splitlines()
    assert timings[0].endswith("fit_seconds_mean") and len(timings) == 4


def _plain(model, seed, value, metric="roc_auc"):
    """A stored result without predictions: its score only."""
    return UnitResult(
        unit=f"d:t/r/none/{model}#{seed}",
        key=f"{model}#{seed}",
        dataset="d",
        task="t",
        representation="r",
        perturbation="none",
        model=model,
        seed=seed,
        metric=metric,
        value=value,
    )


def test_results_without_predictions_fall_back_to_seeds():

    rows = leaderboard.build(
        [_plain("a", s, v) for s, v in enumerate([0.80, 0.85, 0.90])]
        + [_plain("b", s, v) for s, v in enumerate([0.60, 0.62, 0.61])]
    )
    assert rows[0]["ci_method"] == stats.T_ONLY and rows[0]["ci_low"] == pytest.approx(0.85 - 0.12421, abs=1e-5)
    assert rows[1]["vs_best"] == "worse"  # paired t over the three seeds
    assert "(t)" in leaderboard.markdown(rows)
    one = leaderboard.build([_plain("a", 0, 0.8), _plain("b", 0, 0.7)])
    assert one[0]["ci_low"] is None and one[1]["vs_best"] == "untested"
    assert "n/a" in leaderboard.markdown(one)


CONFIG = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios"]
perturbations = ["identity", {{name = "noise", sigma = 0.3}}]
models = ["vector_centroids", "centroids"]
[dataset]
name = "toy"
[run]
trials = 2
workers = {workers}
seeds = [0, 1]
results = "out"
"""


def test_two_identical_runs_write_byte_identical_leaderboards(tmp_path):
    folders = []
    for name, workers in (("a", 1), ("b", 2)):
        (tmp_path / name).mkdir()
        cfg = tmp_path / name / "bench.toml"
        cfg.write_text(CONFIG.format(workers=workers))
        assert main(["run", str(cfg)]) == 0
        folders.append(tmp_path / name / "out")
    a, b = folders
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "timings.csv").exists()
    stored = next(Store(location_of(None, a)).results())
    assert len(stored.predictions["ids"]) == stored.n_test == len(stored.predictions["proba"])
    assert metrics.get(stored.metric)(
        np.array(stored.predictions["y"]), np.array(stored.predictions["proba"])
    ) == pytest.approx(stored.value)


def test_bootstraps_are_remembered_and_read_back_unchanged(three_models, monkeypatch):
    first = leaderboard.to_json(leaderboard.build(three_models))

    def no_bootstrap(*args, **kwargs):
        raise AssertionError("bootstrapped again for the same finished studies")

    monkeypatch.setattr(leaderboard.stats, "bootstrap_interval", no_bootstrap)
    monkeypatch.setattr(leaderboard.stats, "paired_bootstrap", no_bootstrap)
    assert leaderboard.to_json(leaderboard.build(three_models)) == first


def test_a_loss_ranks_lowest_first():
    def plain(model, seed, value):
        return _plain(model, seed, value, metric="log_loss")

    rows = leaderboard.build([plain("a", s, 0.9) for s in range(2)] + [plain("b", s, 0.3) for s in range(2)])
    assert [r["model"] for r in rows] == ["b", "a"]

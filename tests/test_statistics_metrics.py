"""Issue 21: built-in metrics against scikit-learn, metrics from stored predictions,
directions that travel with the result, the checksummed statistics cache keyed by
prediction content, one-seed rows, `harness compare`, per-class views."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve

from harness.report import leaderboard

from harness.sdk import metrics
from harness.cli import main
from harness.report import perclass, stats
from harness.report.stats import Predictions
from harness.services.store import Store, UnitResult, location_of


def _case(n_classes, n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n // n_classes)
    proba = rng.dirichlet(np.ones(n_classes), len(y))
    proba[np.arange(len(y)), y] += rng.random(len(y))  # better than chance, not perfect
    return y, proba / proba.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("k", [2, 4])
def test_new_metrics_agree_with_scikit_learn(k):
    y, proba = _case(k)
    pred = proba.argmax(axis=1)
    assert metrics.balanced_accuracy(y, proba) == pytest.approx(sk.balanced_accuracy_score(y, pred))
    assert metrics.mcc(y, proba) == pytest.approx(sk.matthews_corrcoef(y, pred))
    assert metrics.macro_f1(y, proba) == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert metrics.log_loss(y, proba) == pytest.approx(sk.log_loss(y, proba))
    assert metrics.brier(y, proba) == pytest.approx(sk.brier_score_loss(y, proba if k > 2 else proba[:, 1]))
    if k == 2:
        assert metrics.f1(y, proba) == pytest.approx(sk.f1_score(y, pred))
        conf, hit = proba[:, 1], y
    else:
        with pytest.raises(ValueError, match="two classes"):
            metrics.f1(y, proba)
        conf, hit = proba.max(axis=1), (pred == y).astype(int)
    # ECE: calibration_curve's bins, weighted by how many materials fall in each
    prob_true, prob_pred = calibration_curve(hit, conf, n_bins=10, strategy="uniform")
    count = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], conf), minlength=10)
    expected = np.sum(count[count > 0] * np.abs(prob_true - prob_pred)) / len(y)
    assert metrics.ece(y, proba) == pytest.approx(expected)


def test_ece_on_a_hand_computed_case():
    # 4 materials at p1 = 0.75, 3 of them positive: calibrated; 2 at 0.25, both positive: off by 0.75
    y = np.array([1, 1, 1, 0, 1, 1])
    p1 = np.array([0.75, 0.75, 0.75, 0.75, 0.25, 0.25])
    assert metrics.ece(y, np.column_stack([1 - p1, p1])) == pytest.approx(2 / 6 * 0.75)


def test_balanced_accuracy_is_matbench_hard_label_roc_auc():
    """matbench's mp_is_metal "ROC-AUC" is roc_auc_score on hard labels = balanced accuracy."""
    y, proba = _case(2, n=80, seed=3)
    assert metrics.balanced_accuracy(y, proba) == pytest.approx(sk.roc_auc_score(y, proba.argmax(axis=1)))


@pytest.mark.parametrize(
    "metric, k",
    [
        ("balanced_accuracy", 2),
        ("balanced_accuracy", 5),
        ("mcc", 2),
        ("mcc", 4),
        ("f1", 2),
        ("brier", 2),
        ("brier", 3),
        ("log_loss", 3),
    ],
)
def test_fast_bootstrap_forms_equal_the_metric_on_redrawn_materials(metric, k):
    y, proba = _case(k, n=40, seed=1)
    counts = stats.stratified_counts(y, 15, np.random.default_rng(0))
    fast = stats.replicate_scores(metric, Predictions([str(i) for i in range(len(y))], y, proba), counts)
    for b, row in enumerate(counts):
        index = np.repeat(np.arange(len(y)), row)
        assert fast[b] == pytest.approx(metrics.get(metric)(y[index], proba[index]), abs=1e-10)


def _result(model, seed, y, proba, metric="roc_auc", task="t", **kw):
    ids = [f"m{i}" for i in range(len(y))]
    return UnitResult(
        unit=f"d:{task}/r/none/{model}#{seed}",
        key=f"{task}/{model}#{seed}",
        dataset="d",
        task=task,
        representation="r",
        perturbation="none",
        model=model,
        seed=seed,
        metric=metric,
        value=float(metrics.get(metric)(y, proba)) if metric in metrics._KNOWN else kw.pop("value"),
        n_test=len(y),
        predictions={"ids": ids, "y": y.tolist(), "proba": proba.tolist()},
        **kw,
    )


def _models(seeds=(0, 1, 2)):
    out = []
    for s in seeds:
        y, good = _case(2, n=100, seed=10 + s)
        rng = np.random.default_rng(50 + s)
        right = rng.random(len(y)) < 0.6  # right on 60 % of materials, the good one on about 90 %
        p1 = np.where(right == (y == 1), 0.7, 0.3)
        bad = np.column_stack([1 - p1, p1])
        out += [_result("good", s, y, good), _result("bad", s, y, bad)]
    return out


def test_any_metric_from_stored_predictions_and_losses_rank_lowest_first():
    results = _models()
    rows = leaderboard.build(results, metric="brier")
    assert [r["model"] for r in rows] == ["good", "bad"] and rows[0]["higher_is_better"] is False
    good = [r for r in results if r.model == "good"]
    expected = np.mean([metrics.brier(np.array(r.predictions["y"]), np.array(r.predictions["proba"])) for r in good])
    assert rows[0]["mean"] == pytest.approx(expected) and rows[0]["metric"] == "brier"
    assert "roc_auc_mean" in rows[0]  # the task's own metric stays beside it
    assert rows[0]["ci_low"] <= rows[0]["mean"] <= rows[0]["ci_high"]
    for r in leaderboard.build(results, metric="ece"):  # never outside the metric's range
        assert 0.0 <= r["ci_low"] <= r["mean"] <= r["ci_high"] <= 1.0
    from harness.services.errors import UserError

    with pytest.raises(UserError, match="no result can be scored by metric 'nope'"):
        leaderboard.build(results, metric="nope")


def test_one_seed_rows_show_no_spread_and_say_test_sampling_only():
    rows = leaderboard.build(_models(seeds=(0,)))
    assert rows[0]["std"] is None and rows[0]["ci_method"] == stats.TEST_ONLY
    md = leaderboard.markdown(rows)
    assert "± 0.000" not in md and "±" not in md.split("\n\n", 2)[2].split("\n")[2]  # the first data line
    assert "(test sampling only)" in md


def _stats_files(cache):
    return sorted((cache / "leaderboard-stats").glob("*.json"))


def test_statistics_cache_is_checksummed_and_keyed_by_prediction_content(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path))
    results = _models()
    first = leaderboard.to_json(leaderboard.build(results))
    files = _stats_files(tmp_path)
    assert files
    calls = []
    real = stats.seed_stats
    monkeypatch.setattr(stats, "seed_stats", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert leaderboard.to_json(leaderboard.build(results)) == first and not calls  # all remembered
    # tamper with one digit of every file, and replace one with JSON garbage: recomputed, same table
    for f in files:
        data = bytearray(f.read_bytes())
        i = data.find(b"0.")
        data[i + 2] = ord("9") if data[i + 2] != ord("9") else ord("1")
        f.write_bytes(bytes(data))
    files[0].write_text('{"a": 1}')
    assert leaderboard.to_json(leaderboard.build(results)) == first
    assert calls
    for r in json.loads(first):
        assert r["ci_low"] <= r["ci_high"]
    # one row's predictions change: only its seeds are recomputed
    calls.clear()
    changed = list(results)
    y = np.array(changed[0].predictions["y"])
    proba = np.array(changed[0].predictions["proba"])[::-1].copy()
    import dataclasses

    changed[0] = dataclasses.replace(
        changed[0],
        predictions={**changed[0].predictions, "proba": proba.tolist()},
        value=metrics.roc_auc(y, proba),
        finished=changed[0].finished + 1,
    )
    leaderboard.build(changed)
    assert len(calls) == 1


def test_a_read_only_statistics_cache_costs_time_not_results(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "ro"))
    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    try:
        rows = leaderboard.build(_models())
    finally:
        os.chmod(tmp_path / "ro", 0o700)
    assert rows[0]["ci_low"] is not None


METRIC_PLUGIN = """
import numpy as np
import pluggy
from harness.sdk.api import Metric
hookimpl = pluggy.HookimplMarker("harness")

def miss_rate(y, proba):
    return float(np.mean(np.argmax(proba, axis=1) != y))

@hookimpl
def harness_metrics():
    return [Metric("miss_rate", miss_rate, False, "a plugin's loss")]
"""


def test_a_plugin_loss_ranks_right_in_a_fresh_leaderboard_process(tmp_path):
    """The direction is written into the result at study time, so `harness leaderboard`
    (which loads no plugin) ranks a lower-is-better plugin metric best-first."""
    store = Store(location_of(None, tmp_path))
    for r in _models():
        y, proba = np.array(r.predictions["y"]), np.array(r.predictions["proba"])
        miss = float(np.mean(proba.argmax(axis=1) != y))
        store.add(
            UnitResult(**{**r.__dict__, "metric": "miss_rate", "value": miss, "directions": {"miss_rate": False}})
        )
    env = {**os.environ, "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "leaderboard", str(tmp_path), "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    rows = json.loads(out)
    assert [r["model"] for r in rows] == ["good", "bad"] and rows[0]["mean"] < rows[1]["mean"]
    assert rows[0]["higher_is_better"] is False


def test_study_writes_the_direction_of_every_task_metric(tmp_path):
    cfg = Path(__file__).parent / "test_leaderboard.py"
    assert cfg.exists()
    (tmp_path / "bench.toml").write_text(CONFIG)
    assert main(["run", str(tmp_path / "bench.toml")]) == 0
    r = next(Store(location_of(None, tmp_path / "out")).results())
    assert r.directions and all(isinstance(v, bool) for v in r.directions.values())
    assert r.directions[r.metric] is metrics.get(r.metric).higher_is_better


CONFIG = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios"]
perturbations = ["identity"]
models = ["centroids"]
[dataset]
name = "toy"
[run]
trials = 1
seeds = [0]
results = "out"
"""


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_compare_two_rows_in_every_format(tmp_path, monkeypatch, capsys, fmt):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    store = Store(location_of(None, tmp_path))
    for r in _models():
        store.add(r)
    assert main(["compare", str(tmp_path), "t/r/none/good", "*/bad", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "good" in out and "bad" in out
    if fmt == "json":
        c = json.loads(out)
        assert c["verdict"] == "A better" and c["diff_low"] > 0 and c["shared_seeds"] == [0, 1, 2]
        assert c["method"].startswith("paired t over seeds")
    assert main(["compare", str(tmp_path), "t/r/none/nothing", "*/bad"]) == 2
    assert "no leaderboard row matches" in capsys.readouterr().err


def test_head_torso_tail_by_frequency():
    """12 classes, class c seen 13 - c times; the model is right on the six most frequent only."""
    y = np.concatenate([np.full(13 - c, c) for c in range(12)])
    pred = np.where(y < 6, y, (y + 1) % 12)
    proba = np.eye(12)[pred]
    r = _result("m", 0, y, proba, metric="accuracy", task="sg")
    s = perclass.summary([r])
    assert (s["head_classes"], s["torso_classes"], s["tail_classes"]) == (4, 4, 4)
    assert s["head_recall"] == 1.0 and s["torso_recall"] == 0.5 and s["tail_recall"] == 0.0
    assert s["never_right"] == 6 and s["per_class_recall"][0] == 1.0 and s["per_class_support"][11] == 2
    assert perclass.summary([_result("m", 0, *_case(2))]) is None  # binary: no per-class view


def _row(task, model, mean, hib=True):
    return {
        "dataset": "d",
        "task": task,
        "representation": "r",
        "perturbation": "p",
        "model": model,
        "mean": mean,
        "higher_is_better": hib,
    }


def test_mean_rank_and_critical_difference_follow_demsar():
    from harness.report import ranks

    rows = []
    for t, scores in enumerate([(0.9, 0.8, 0.7, 0.6), (0.95, 0.7, 0.75, 0.5), (0.85, 0.84, 0.6, 0.61)]):
        rows += [_row(f"t{t}", m, s) for m, s in zip("abcd", scores)]
    rows += [_row("t3", m, s, hib=False) for m, s in zip("abcd", (0.1, 0.2, 0.3, 0.4))]  # a loss: lowest best
    r = ranks.rank_across(rows)
    assert r.names[0] == "r / p / a" and r.mean_ranks[0] == 1.0 and r.n_tables == 4
    assert r.mean_ranks == sorted(r.mean_ranks) and sum(r.mean_ranks) == pytest.approx(10)
    assert r.cd == pytest.approx(2.569 * np.sqrt(4 * 5 / (6 * 4)), abs=2e-3)  # Demsar 2006, Table 5a: q = 2.569
    assert ranks.cliques(r)  # neighbours within CD are joined
    assert ranks.rank_across(rows[:4]) is None  # one table: nothing across tasks


def test_report_shows_per_class_and_ranks(tmp_path):
    from harness.report import html

    y = np.concatenate([np.full(13 - c, c) for c in range(12)])
    proba = np.eye(12)[np.where(y < 6, y, (y + 1) % 12)]
    results = [
        _result(m, s, y, proba * w + (1 - w) / 12, metric="accuracy", task="sg")
        for m, w in (("a", 1.0), ("b", 0.5))
        for s in (0, 1)
    ]
    results += [dataclasses_replace(r, task="sg2", unit=r.unit + "2", key=r.key + "2") for r in results]
    rows = leaderboard.build(results)
    grouped = leaderboard.groups(results)
    sec = html.per_class_section(rows, grouped, tmp_path)
    assert "head recall" in sec.body and len(sec.figures) == 2 and sec.figures[0][0].exists()
    ranked = html.ranks_section(rows, tmp_path)
    assert "critical difference" in ranked.body and ranked.figures[0][0].exists()
    assert html.reliability_section(rows, grouped, tmp_path) is None  # not binary


def dataclasses_replace(r, **kw):
    import dataclasses

    return dataclasses.replace(r, **kw)


def test_leaderboard_cli_per_class_and_metric(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    y = np.concatenate([np.full(13 - c, c) for c in range(12)])
    proba = np.eye(12)[np.where(y < 6, y, (y + 1) % 12)] * 0.9 + 0.1 / 12
    store = Store(location_of(None, tmp_path))
    for s in (0, 1):
        store.add(_result("m", s, y, proba, metric="accuracy", task="sg"))
    assert main(["leaderboard", str(tmp_path), "--per-class", "--format", "json"]) == 0
    (found,) = json.loads(capsys.readouterr().out)
    assert found["tail_recall"] == 0.0 and found["head_recall"] == 1.0
    assert main(["leaderboard", str(tmp_path), "--per-class"]) == 0
    assert "head recall" in capsys.readouterr().out
    assert main(["leaderboard", str(tmp_path), "--metric", "balanced_accuracy", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "balanced_accuracy" in out and "accuracy_mean" in out
    assert main(["leaderboard", str(tmp_path), "--metric", "f1"]) == 2  # binary only: a user error
    assert "no result can be scored by metric 'f1'" in capsys.readouterr().err

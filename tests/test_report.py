"""`harness report`: one self-contained HTML page with the study's figures and tables,
checked in a real headless browser."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.report import leaderboard

from harness.sdk import metrics

from harness.services import registry
from harness.cli import main
from harness.report.html import Names, entry_of
from harness.services.store import Store, UnitResult, location_of

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _store(folder: Path) -> None:
    """A run's results as the store keeps them: metallicity over n and phi1-phi4 for two
    tree models, crystal systems for pointnet; predictions better with larger n."""
    rng = np.random.default_rng(0)
    store = Store(location_of(None, folder))
    combos = [(f"barcode(n={n})" if n != 125 else "barcode", "none", "xgboost", n) for n in (3, 4, 27, 125, 343)]
    combos += [
        ("barcode(n=343)", p, m, 343)
        for p in ("none", "random_scale", "systematic_absence")
        for m in ("xgboost", "random_forest")
    ]
    combos += [("barcode(n=343,radiation=neutron)", "none", m, 343) for m in ("xgboost", "random_forest")]
    combos = list(dict.fromkeys(combos))
    for seed in range(3):
        y = rng.permutation(np.r_[np.zeros(60, int), np.ones(60, int)])
        for rep, pert, model, n in combos:
            s = y * np.log(n) * (0.5 if pert != "none" else 1.0) + rng.normal(0, 1, len(y))
            p = 1 / (1 + np.exp(-s))
            _add(store, "mp", "metallicity", rep, pert, model, seed, y, np.column_stack([1 - p, p]), "roc_auc")
        systems = rng.integers(0, 6, 90)
        logits = rng.normal(0, 1, (90, 6)) + 2.5 * np.eye(6)[systems]
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        _add(
            store,
            "mp",
            "crystal_system",
            "xrd_cloud(cell=conventional,n=3)",
            "none",
            "pointnet",
            seed,
            systems,
            proba,
            "accuracy",
        )


def _add(store, dataset, task, rep, pert, model, seed, y, proba, metric):
    store.add(
        UnitResult(
            unit=f"{dataset}:{task}/{rep}/{pert}/{model}#{seed}",
            key=f"{dataset}:{task}/{rep}/{pert}/{model}#{seed}",
            dataset=dataset,
            task=task,
            representation=rep,
            perturbation=pert,
            model=model,
            seed=seed,
            metric=metric,
            value=metrics.get(metric)(y, proba),
            n_test=len(y),
            identity=_identity(task, rep, pert),
            predictions={"ids": [f"mp-{i}" for i in range(len(y))], "y": y.tolist(), "proba": proba.tolist()},
        )
    )


def _identity(task, rep, pert):
    """What a study records (harness.plan.identity): entry names and parameters. The test
    spells the titles out by hand; the report reads only this."""
    name, _, rest = rep.partition("(")
    params = {}
    for item in filter(None, rest.rstrip(")").split(",")):
        k, v = item.split("=")
        params[k] = int(v) if v.isdigit() else v
    return {
        "task": {"name": task, "params": {}},
        "representation": {"name": name, "params": params},
        "perturbation": {"name": pert, "params": {}},
    }


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("results")
    _store(folder)
    assert main(["report", str(folder)]) == 0
    return folder / "report" / "index.html"


def test_report_draws_every_figure_the_results_hold(report):
    pngs = sorted(p.name for p in (report.parent / "figures").glob("*.png"))
    assert pngs == [
        "confusion_crystal_system.png",
        "leaderboard.png",
        "n_metallicity.png",
        "reliability_metallicity.png",
        "roc_metallicity.png",
    ]
    page = report.read_text()
    assert page.count('<img src="data:image/png;base64,') == len(pngs)  # self-contained
    for heading in (
        "Leaderboards",
        "Fig. 4a",
        "Fig. 4b-e",
        "Confusion matrices",
        "Critical points (Fig. 5)",
        "Calibration (binary tasks)",
        "Across tasks: mean rank",
        "Run identity and versions",
    ):
        assert heading in page
    assert "95% CI" in page and "vs best" in page


def test_the_report_reads_recorded_entries_not_titles():
    """n, variants and class names come from the studies' recorded identity (and registry
    defaults), never from parsing the display title; the core names no plugin."""
    reg = registry.load()

    def row(title, identity):
        r = UnitResult(
            unit="u",
            key="k",
            dataset="d",
            task="crystal_system",
            representation=title,
            perturbation="p",
            model="m",
            seed=0,
            metric="accuracy",
            value=0.5,
            identity=identity,
        )
        return {"dataset": "d", "task": "crystal_system", "representation": title, "perturbation": "p", "model": "m"}, r

    misleading, r1 = row(
        "barcode(n=4)",
        {"representation": {"name": "barcode", "params": {"n": 343}}, "task": {"name": "crystal_system", "params": {}}},
    )
    default, r2 = row("whatever", {"representation": {"name": "barcode", "params": {}}})
    none, r3 = row("xrd_cloud(n=3)", {})
    grouped = {leaderboard_key(x): [r] for x, r in ((misleading, r1), (default, r2), (none, r3))}
    names = Names(reg, grouped)
    assert names.n(misleading) == 343 and names.n(default) == 125 and names.n(none) is None
    assert names.variant(misleading) == "barcode / p"
    assert names.classes(misleading, 6)[4] == "hexagonal" and names.classes(none, 2) == ["class 0", "class 1"]
    assert entry_of([r1], "representation") == ("barcode", {"n": 343})
    import harness.report.html as page

    source = Path(page.__file__).read_text()
    for builtin in ('"none"', "random_scale", "nd_", "parse_title", "pointnet"):
        assert builtin not in source


def leaderboard_key(row):
    return tuple(row[k] for k in leaderboard.KEY)


def test_report_of_a_folder_without_results_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no results" in err and len(err.splitlines()) == 1


# CI installs Chromium and sets CI=1: there the test never skips.
@pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not os.environ.get("CI"),
    reason="needs Chromium (Debian packages chromium, chromium-driver)",
)
def test_report_opens_in_a_real_browser_with_every_figure_and_table(report, tmp_path):
    from playwright import sync_api

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            failed = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.goto(report.as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate(
                "Array.from(document.images).map(i => ({ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, alt: i.alt}))"
            )
            headers = page.evaluate("Array.from(document.querySelectorAll('table thead')).map(t => t.innerText)")
            board_rows = page.evaluate("document.querySelectorAll('#Leaderboards table tbody tr').length")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            browser.close()
    assert not failed
    # leaderboard, score against n, ROC curves, confusion matrix, reliability (binary task)
    assert len(images) == 5 and all(i["ok"] and i["w"] > 300 for i in images)
    assert any("reliability" in i["alt"] for i in images)
    leaderboards = [h for h in headers if "95% CI" in h and "vs best" in h]
    assert len(leaderboards) == 2  # metallicity and crystal_system
    assert board_rows == 12 + 1


def test_results_without_predictions_still_give_tables_and_the_leaderboard_figure(tmp_path):
    store = Store(location_of(None, tmp_path))
    for seed, (a, b) in enumerate([(0.80, 0.70), (0.85, 0.72), (0.90, 0.69)]):
        for model, value in (("xgboost", a), ("random_forest", b)):
            store.add(
                UnitResult(
                    unit=f"d:metallicity/barcode/none/{model}#{seed}",
                    key=f"{model}#{seed}",
                    dataset="d",
                    task="metallicity",
                    representation="barcode",
                    perturbation="none",
                    model=model,
                    seed=seed,
                    metric="roc_auc",
                    value=value,
                )
            )
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report" / "index.html").read_text()
    assert [p.name for p in (tmp_path / "report" / "figures").glob("*.png")] == ["leaderboard.png"]
    assert "(t)" in page and "Fig. 4b-e" not in page

"""`harness report RESULTS`: one self-contained HTML page of a run, figures beside it as PNGs.

Everything is drawn from the stored results and their test predictions; nothing is
refitted. Figures are embedded as data URIs, so the page can be mailed on its own.
"""

from __future__ import annotations

import base64
import html
import platform
import re
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.report import leaderboard
from harness.services.errors import UserError
from harness.report import figures
from harness.report.stats import Predictions
from harness.services.records import AXES, UnitResult, row_label
from harness.services.store import Store, location_of

LIBRARIES = ("harness", "numpy", "scikit-learn", "xgboost", "optuna", "torch", "pymatgen", "spglib", "matplotlib")


@dataclass
class Section:
    title: str
    body: str  # HTML
    figures: list[tuple[Path, str]] = field(default_factory=list)  # (PNG, caption)


def entry_of(rs: list[UnitResult], kind: str) -> tuple[str | None, dict[str, Any]]:
    """The entry name and parameters a study recorded (`UnitResult.entry`), never parsed
    back from a display title; (None, {}) where none is recorded."""
    for r in rs:
        ref = r.entry(kind)
        if ref.name:
            return ref.name, dict(ref.params)
    return None, {}


def label_of(rs: list[UnitResult]) -> str:
    """The row's paper label: the first one its entries declared (`Entry.paper_label`), in
    axis order; "" where none did."""
    for r in rs:
        for axis in AXES:
            if r.entry(axis).label:
                return r.entry(axis).label
    return ""


class Names:
    """What the figures need to know about a row, from the studies' recorded identities
    and, for defaults a study left out, the registered entries."""

    def __init__(self, registry: Any | None, grouped: dict[tuple, list[UnitResult]]):
        self.registry = registry
        self.grouped = grouped

    def entry(self, row: dict[str, Any], kind: str) -> tuple[str | None, dict[str, Any]]:
        return entry_of(self.grouped.get(_key(row), []), kind)

    def n(self, row: dict[str, Any]) -> int | None:
        name, params = self.entry(row, "representation")
        if isinstance(params.get("n"), int):
            return params["n"]
        if name is None or self.registry is None:
            return None
        try:
            cls = self.registry.get("representation", name).cls
        except Exception:  # noqa: BLE001 - an entry of a plugin not loaded here
            return None
        default = {p.name: p.default for p in cls.parameters()}.get("n")
        return default if isinstance(default, int) else None

    def classes(self, row: dict[str, Any], n_classes: int) -> list[str]:
        name, params = self.entry(row, "task")
        if name is not None and self.registry is not None:
            try:
                classes = list(self.registry.create("task", name, params).classes)
                if len(classes) == n_classes:
                    return classes
            except Exception:  # noqa: BLE001 - fall back to class numbers
                pass
        return [f"class {k}" for k in range(n_classes)]

    def series(self, row: dict[str, Any]) -> str:
        """The row without its n: representation name and its other parameters."""
        name, params = self.entry(row, "representation")
        rest = ",".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "n")
        return f"{name or row['representation']}{f'({rest})' if rest else ''}"

    def variant(self, row: dict[str, Any]) -> str:
        """What the model sees, apart from n: the representation (radiation, cell...) and
        the perturbation. The paper's φ1-φ4 are such variants (its perturbations, and the
        neutron representations), named by the label its entries declare."""
        label = label_of(self.grouped.get(_key(row), []))
        return f"{label + ': ' if label else ''}{self.series(row)} / {row['perturbation']}"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _table(head: list[str], body: list[list[str]], classes: list[str] | None = None) -> str:
    rows = "".join(
        f'<tr class="{classes[i] if classes else ""}">' + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
        for i, r in enumerate(body)
    )
    return (
        "<table><thead><tr>"
        + "".join(f"<th>{html.escape(h)}</th>" for h in head)
        + f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def leaderboard_section(rows: list[dict[str, Any]]) -> Section:
    parts = []
    for task, task_rows in leaderboard.by_task(rows).items():
        names = leaderboard.extras(task_rows)
        body = [leaderboard.cells(i, r, names) for i, r in enumerate(task_rows, 1)]
        marks = ["best" if r["vs_best"] in ("best", "tied") else "" for r in task_rows]
        parts.append(f"<h3>{html.escape(leaderboard.title(task, task_rows))}</h3>")
        parts.append(_table(leaderboard.headers(task_rows), body, marks))
    parts.append(f'<p class="legend">{html.escape(leaderboard.LEGEND)}</p>')
    return Section("Leaderboards", "".join(parts))


def identity_section(results: list[UnitResult], results_dir: Path) -> Section:
    studies = sorted(results, key=lambda r: r.unit)
    head = ["study", "key", "device", "trials", "n_train", "n_valid", "n_test", "predictions"]
    body = [
        [
            r.unit,
            r.key,
            r.device,
            str(r.n_trials),
            str(r.n_train),
            str(r.n_valid),
            str(r.n_test),
            "stored" if r.predictions else "—",
        ]
        for r in studies
    ]
    recorded = _recorded_environment(results)
    env = [[name, _version(name)] for name in LIBRARIES] + [["python", platform.python_version()]]
    parts = [f"<p>Results folder <code>{html.escape(str(results_dir.resolve()))}</code>: {len(results)} studies.</p>"]
    if recorded:
        parts.append("<h3>Recorded with the results</h3>" + _table(["field", "value"], recorded))
    parts.append("<h3>Environment that drew this report</h3>" + _table(["library", "version"], env))
    parts.append("<details><summary>Studies and their keys</summary>" + _table(head, body) + "</details>")
    return Section("Run identity and versions", "".join(parts))


def _recorded_environment(results: list[UnitResult]) -> list[list[str]]:
    """Versions, commit and the like, where the store records them with each result."""
    seen: dict[str, set[str]] = defaultdict(set)
    for r in results:
        for name in ("versions", "environment", "commit", "harness_version"):
            value = getattr(r, name, None)
            if isinstance(value, dict):
                for k, v in value.items():
                    seen[k].add(str(v))
            elif value:
                seen[name].add(str(value))
    return [[k, ", ".join(sorted(v))] for k, v in sorted(seen.items())]


def _version(name: str) -> str:
    """The installed version, whichever distribution provides the module (xgboost-cpu...)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
    module = {"scikit-learn": "sklearn"}.get(name, name)
    for dist in metadata.packages_distributions().get(module, []):
        return f"{metadata.version(dist)} ({dist})"
    return "not installed"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")[:80]


def figure_sections(
    rows: list[dict[str, Any]], grouped: dict[tuple, list[UnitResult]], names: Names, folder: Path
) -> list[Section]:
    n_vs: list[tuple[Path, str]] = []
    rocs: list[tuple[Path, str]] = []
    confusions: list[tuple[Path, str]] = []
    for table, task_rows in leaderboard.by_task(rows).items():
        metric = task_rows[0]["metric"]
        # Fig. 4a: every series that was run at two or more n
        series: dict[str, list[tuple[int, float, float]]] = defaultdict(list)
        for r in task_rows:
            n = names.n(r)
            if n is None:
                continue
            series[f"{names.series(r)} / {r['perturbation']} / {r['model']}"].append((n, r["mean"], r["std"] or 0.0))
        series = {k: v for k, v in series.items() if len({p[0] for p in v}) > 1}
        if series:
            n_vs.append(
                (
                    figures.save(figures.metric_vs_n(table, series, metric), folder / f"n_{_slug(table)}.png"),
                    f"{table}: test {metric} against n",
                )
            )

        stored = [r for r in task_rows if all(u.predictions for u in grouped[_key(r)])]
        if not stored:
            continue
        width = len(grouped[_key(stored[0])][0].predictions["proba"][0])
        if width == 2:
            panels = _roc_panels(stored, grouped, names)
            if panels:
                rocs.append(
                    (
                        figures.save(figures.roc_panels(table, panels), folder / f"roc_{_slug(table)}.png"),
                        f"{table}: ROC curves per perturbation, one panel per model",
                    )
                )
        else:
            best = stored[0]
            preds = _preds(grouped[_key(best)])
            caption = f"best row {row_label(best)}, {len(preds)} seeds' test sets pooled, rows normalised"
            path = figures.save(
                figures.confusion(table, preds, names.classes(best, width), caption),
                folder / f"confusion_{_slug(table)}.png",
            )
            confusions.append((path, f"{table}: confusion matrix of the best row"))
    sections = []
    if n_vs:
        sections.append(
            Section(
                "Metric against the Miller set size n (Fig. 4a)",
                "<p>Error bars: standard deviation over seeds.</p>",
                n_vs,
            )
        )
    if rocs:
        sections.append(
            Section(
                "ROC curves, φ1-φ4 side by side (Fig. 4b-e)",
                "<p>All seeds' test predictions pooled into one curve per variant (representation without n, "
                "and perturbation: the paper's φ1-φ4); for each, the one with the largest n. Legend: AUC mean ± std over seeds. Insets: the low "
                "false-positive corner.</p>",
                rocs,
            )
        )
    if confusions:
        sections.append(Section("Confusion matrices (crystal systems)", "", confusions))
    return sections


def _key(row: dict[str, Any]) -> tuple:
    return tuple(row[k] for k in AXES)


def _preds(rs: list[UnitResult]) -> list[Predictions]:
    return [Predictions.from_stored(r.predictions) for r in rs]


def _roc_panels(rows: list[dict[str, Any]], grouped, names: Names) -> dict[str, dict[str, tuple]]:
    """Per model, per perturbation variant: the row with the largest n (then the best mean)."""
    chosen: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in rows:  # best first
        v = names.variant(r)
        current = chosen[r["model"]].get(v)
        if current is None or (names.n(r) or 0) > (names.n(current) or 0):
            chosen[r["model"]][v] = r
    panels: dict[str, dict[str, tuple]] = {}
    for model in sorted(chosen):
        curves = {}
        for v in sorted(chosen[model]):
            r = chosen[model][v]
            curves[v] = (_preds(grouped[_key(r)]), f"AUC {leaderboard.fmt_mean(r)} ({r['representation']})")
        panels[model] = curves
    return panels


def per_class_section(
    rows: list[dict[str, Any]], grouped: dict[tuple, list[UnitResult]], folder: Path
) -> Section | None:
    """Tasks with more than 10 classes: head / torso / tail recall of every row, and the
    per-class recall of each table's best row."""
    from harness.report import perclass

    found = perclass.collect([r for rs in grouped.values() for r in rs], rows)
    if not found:
        return None
    head = [*AXES[1:], "metric", "head recall", "torso recall", "tail recall", "classes (h/t/t)", "never right"]
    body = [
        [
            *(f[a] for a in AXES[1:]),
            f"{f['mean']:.3f}",
            *(perclass._fmt(f[f"{g}_recall"]) for g in perclass.GROUPS),
            f"{f['head_classes']}/{f['torso_classes']}/{f['tail_classes']}",
            f"{f['never_right']}/{f['n_classes_present']}",
        ]
        for f in found
    ]
    sec = Section(
        "Per-class recall: head, torso, tail",
        f"<p>{html.escape(perclass.__doc__.split(chr(10) + chr(10))[1].replace(chr(10), ' '))}</p>"
        + _table(head, body),
    )
    done: set[tuple] = set()
    for f in found:  # leaderboard order: the first of each table is its best row
        table = (f["dataset"], f["task"])
        if table in done:
            continue
        done.add(table)
        y, pred, k = perclass.pooled(grouped[_key(f)])
        pc = perclass.per_class(y, pred, k)
        caption = f"{row_label(f)}, seeds pooled"
        path = figures.save(
            figures.per_class_recall(
                f["task"], pc["support"], pc["recall"], perclass.groups_by_frequency(pc["support"]), caption
            ),
            folder / f"per_class_{_slug(f['dataset'] + '_' + f['task'])}.png",
        )
        sec.figures.append((path, f"{f['task']} on {f['dataset']}: per-class recall of the best row"))
    return sec


RELIABILITY_ROWS = 3


def reliability_section(
    rows: list[dict[str, Any]], grouped: dict[tuple, list[UnitResult]], folder: Path
) -> Section | None:
    """Binary tasks: reliability diagrams of each table's best rows (seeds pooled)."""
    import numpy as np

    from harness.sdk import metrics

    sec = Section(
        "Calibration (binary tasks)",
        "<p>Observed frequency of class 1 against the predicted probability, 10 equal-width bins, "
        "every seed's test predictions pooled; marker size: materials in the bin. ECE: expected "
        "calibration error (bin-count-weighted |frequency - probability|).</p>",
    )
    for table, task_rows in leaderboard.by_task(rows).items():
        curves = {}
        for r in task_rows:
            rs = grouped[_key(r)]
            if not all(u.predictions for u in rs):
                continue
            y = np.concatenate([np.asarray(u.predictions["y"], dtype=int) for u in rs])
            proba = np.concatenate([np.asarray(u.predictions["proba"], dtype=float) for u in rs])
            if proba.ndim != 2 or proba.shape[1] != 2:
                break
            curves[row_label(r)] = (*metrics.calibration_bins(y, proba), metrics.ece(y, proba))
            if len(curves) == RELIABILITY_ROWS:
                break
        if curves:
            sec.figures.append(
                (
                    figures.save(figures.reliability(table, curves), folder / f"reliability_{_slug(table)}.png"),
                    f"{table}: reliability of the {len(curves)} best rows",
                )
            )
    return sec if sec.figures else None


def ranks_section(rows: list[dict[str, Any]], folder: Path) -> Section | None:
    """Mean rank across every table of the run, with Demsar's critical-difference diagram."""
    from harness.report import ranks

    r = ranks.rank_across(rows)
    if r is None:
        return Section(
            "Across tasks: mean rank",
            "<p>Fewer than two tables share two or more combinations: nothing to rank across tasks.</p>",
        )
    p = "n/a (fewer than 3 combinations)" if r.friedman_p != r.friedman_p else f"{r.friedman_p:.3g}"
    body = (
        f"<p>{len(r.names)} combinations present in all {r.n_tables} tables ({html.escape(', '.join(r.tables))}), "
        f"ranked within each table by its metric (1 = best), ranks averaged. Friedman test p = {p}; "
        f"Nemenyi critical difference CD = {r.cd:.2f} at 0.05 (Demsar 2006): combinations joined by a bar "
        "differ by less than CD.</p>"
        + _table(
            ["#", "combination", "mean rank"],
            [[str(i), n, f"{m:.2f}"] for i, (n, m) in enumerate(zip(r.names, r.mean_ranks), 1)],
        )
    )
    path = figures.save(
        figures.critical_difference(r.names, r.mean_ranks, r.cd, ranks.cliques(r), r.n_tables),
        folder / "critical_difference.png",
    )
    return Section("Across tasks: mean rank", body, [(path, "critical-difference diagram")])


def critical_points_section() -> Section:
    return Section(
        "Critical points (Fig. 5)",
        "<p>Not in these results: critical points need a trained point-cloud model and the rebuilt "
        "test inputs. Run <code>harness explain CONFIG 'TASK/REPRESENTATION/PERTURBATION/MODEL' --material ID</code> "
        "for chosen materials.</p>",
    )


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
td:nth-child(2), td:nth-child(3), td:nth-child(4) { text-align: left; }
tr.best td { background: #e8f5e9; }
figure { margin: 1em 0; } img { max-width: 100%; }
figcaption, .legend { font-size: 0.85em; color: #555; }
"""


def write_report(
    results_dir: Path, out: Path | None = None, registry: Any | None = None, storage: str | None = None
) -> Path:
    """Write `out` (default RESULTS/report/index.html) and its PNGs; returns the HTML path.

    Results come from `storage` (a database URL) when given, else RESULTS/results.sqlite."""
    results_dir = Path(results_dir)
    if not storage and not (results_dir / "results.sqlite").exists():
        raise UserError(f"no results in {results_dir} (no results.sqlite); give the results folder of a run")
    results = leaderboard.latest(Store(location_of(storage, results_dir)).results())
    if not results:
        raise UserError(f"{results_dir} holds no finished studies yet; run `harness run CONFIG` first")
    out = Path(out) if out else results_dir / "report" / "index.html"
    folder = out.parent / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    rows = leaderboard.build(results)
    grouped = leaderboard.groups(results)
    names = Names(registry, grouped)

    board_png = figures.save(figures.leaderboard_figure(rows), folder / "leaderboard.png")
    sections = [leaderboard_section(rows)]
    sections[0].figures.append((board_png, "every row: mean and 95 % interval; green: the best and rows tied with it"))
    sections += figure_sections(rows, grouped, names, folder)
    for extra in (
        per_class_section(rows, grouped, folder),
        reliability_section(rows, grouped, folder),
        ranks_section(rows, folder),
    ):
        if extra is not None:
            sections.append(extra)
    sections.append(critical_points_section())
    sections.append(identity_section(results, results_dir))

    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>harness report: '
        f"{html.escape(results_dir.name)}</title><style>{STYLE}</style></head><body>",
        f"<h1>harness report: {html.escape(results_dir.name)}</h1>",
        "<p>Structure-only crystal property classification, after Wang et al., Phys. Rev. Research 4, "
        "023029 (2022). Drawn from stored test predictions, no refitting.</p><nav><ul>",
    ]
    parts += [f'<li><a href="#{_slug(s.title)}">{html.escape(s.title)}</a></li>' for s in sections]
    parts.append("</ul></nav>")
    for s in sections:
        parts.append(f'<section id="{_slug(s.title)}"><h2>{html.escape(s.title)}</h2>{s.body}')
        parts += [_img(p, caption) for p, caption in s.figures]
        parts.append("</section>")
    parts.append("</body></html>")
    out.write_text("\n".join(parts), encoding="utf-8")
    return out

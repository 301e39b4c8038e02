"""`harness export`: a results store as tidy tables (Parquet and CSV) or as MLflow runs.

Tables (one row per ...):
- studies:     finished study: identity columns, test/validation scores, sizes, chosen
               hyperparameters (param_<name>), key, Optuna study name
- trials:      Optuna trial of every study: number, state, value, params_<name>, times,
               with the study's name, key and unit
- predictions: (study, test material): true and predicted class, confidence, p_<class>

MLflow: one run per finished study in the experiment "harness" (or `experiment`), named
after the study, with its identity as tags, its hyperparameters as params and its scores
as metrics. Exporting again adds only studies not exported before (tag harness.key).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.services.errors import UserError
from harness.services.records import AXES

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from harness.user import Results

TABLES = ("studies", "trials", "predictions")


def tables(results: Results) -> dict[str, pd.DataFrame]:
    """The three tidy tables of a results store."""
    studies = results.studies()
    trials = trials_table(results)
    if not studies.empty and not trials.empty:
        names = trials.drop_duplicates("key").set_index("key")["study_name"]
        studies["study_name"] = studies["key"].map(names)
    return {"studies": studies, "trials": trials, "predictions": results.predictions()}


def trials_table(results: Results) -> pd.DataFrame:
    """Every Optuna trial in the store, read with Optuna's own API."""
    import optuna
    import pandas as pd

    storage = results._store.optuna_storage()
    frames = []
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        frame = study.trials_dataframe()
        if frame.empty:
            continue
        attrs = summary.user_attrs
        frame.insert(0, "study_name", summary.study_name)
        frame.insert(1, "key", attrs.get("key", summary.study_name))  # older stores: the name is the key
        frame.insert(2, "unit", attrs.get("unit"))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_tables(results: Results, folder: Path) -> list[Path]:
    """<table>.csv and, with pyarrow installed, <table>.parquet for each table."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {folder}: {exc.strerror or exc}; choose another --to folder") from None
    try:
        import pyarrow  # noqa: F401

        parquet = True
    except ImportError:
        parquet = False
    written = []
    for name, frame in tables(results).items():
        try:
            path = folder / f"{name}.csv"
            frame.to_csv(path, index=False)
            written.append(path)
            if parquet:
                path = folder / f"{name}.parquet"
                _parquet_safe(frame).to_parquet(path, index=False)
                written.append(path)
        except OSError as exc:
            raise UserError(
                f"cannot write {folder / name}: {exc.strerror or exc}; free space or choose another --to folder"
            ) from None
    return written


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet wants one type per column: a column mixing types (a hyperparameter that is
    a number in one model and a word in another) is written as text."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object:
            kinds = {type(v) for v in out[col] if not _missing(v)}
            if len(kinds) > 1 or (kinds and not kinds <= {str, bool, int, float}):
                out[col] = out[col].map(lambda v: None if _missing(v) else str(v))
    return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def to_mlflow(results: Results, target: str, experiment: str = "harness") -> tuple[int, int]:
    """Log each finished study as an MLflow run; (logged, already there)."""
    try:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise UserError("export --to mlflow needs MLflow: pip install 'harness[mlflow]'") from None
    from harness.services.version import __version__

    uri = tracking_uri(target)
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    exp_id = found.experiment_id if found else client.create_experiment(experiment)
    done = {run.data.tags.get("harness.key") for run in _all_runs(client, exp_id)}
    names = {}
    trials = trials_table(results)
    if not trials.empty:
        names = dict(zip(trials["key"], trials["study_name"]))
    logged = skipped = 0
    for r in results.results():
        if r.key in done:
            skipped += 1
            continue
        tags = {
            "harness.key": r.key,
            "harness.unit": r.unit,
            "harness.services.version": __version__,
            **{axis: getattr(r, axis) for axis in AXES},
            "seed": str(r.seed),
            "device": r.device,
            "commit": str(r.versions.get("commit", "")),
        }
        run = client.create_run(exp_id, run_name=names.get(r.key, r.unit), tags=tags, start_time=int(r.finished * 1000))
        metrics = {
            f"test_{r.metric}": r.value,
            f"valid_{r.metric}": r.valid_value,
            **{f"test_{k}": v for k, v in r.extra.items()},
            "fit_seconds": r.fit_seconds,
            "n_train": r.n_train,
            "n_valid": r.n_valid,
            "n_test": r.n_test,
            "n_trials": r.n_trials,
        }
        ts = int(r.finished * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items() if not _missing(v)],
            params=[Param(k, str(v)[:6000]) for k, v in {"seed": r.seed, **r.params}.items()],
            tags=[RunTag("mlflow.note.content", f"harness study {r.unit}")],
        )
        client.set_terminated(run.info.run_id, end_time=ts)
        logged += 1
    return logged, skipped


def tracking_uri(target: str) -> str:
    """`mlflow:PATH`: a folder is MLflow's file store (`mlflow ui --backend-store-uri PATH`),
    PATH ending in .db a SQLite database; a URI with a scheme is used as it is."""
    if "://" in target or target.startswith("file:"):
        return target
    path = Path(target).expanduser().resolve()
    if path.suffix in (".db", ".sqlite"):
        return f"sqlite:///{path}"
    # MLflow 3 keeps the file store in maintenance mode behind this switch; a folder was asked for.
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return path.as_uri()


def _all_runs(client: Any, exp_id: str) -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([exp_id], max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs

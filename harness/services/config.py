"""The benchmark config: a TOML file validated with pydantic.

Unknown keys are errors naming the file, the key and the valid choices. Entry names and
parameters are checked against the registry later, in `harness.plan.grid`.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.services.errors import UserError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitConfig(Strict):
    train: float = 0.70
    valid: float = 0.15
    test: float = 0.15
    # "parent" keeps materials of one parent (Material.group) together; equals "none"
    # for datasets without parents. See harness.prepare.grouping for the other choices.
    group_by: Literal["none", "parent", "formula_spacegroup", "prototype"] = "parent"

    @model_validator(mode="after")
    def _fractions(self) -> "SplitConfig":
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-6 or min(self.train, self.valid, self.test) <= 0:
            raise ValueError(f"split fractions must be positive and add up to 1 (got {total:g})")
        return self


class RunConfig(Strict):
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    split: SplitConfig = Field(default_factory=SplitConfig)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    trials: int = Field(10, ge=1, description="Optuna trials per (combination, seed)")
    timeout: float | None = Field(None, gt=0, description="seconds per Optuna study")
    results: str = ""  # default: results/<config file stem>, relative to the config file
    workers: int = Field(2, ge=1, description="(combination, seed) studies run in parallel")
    # Where results, claims and Optuna's trials live: "" = SQLite in the results folder,
    # or a database URL (postgresql://user@host/db) shared by many runs and machines.
    storage: str = ""
    # Where studies run: the name of an executor (harness.execute.executors): "local" (a process
    # pool on this machine), "ray" (each study a Ray task on a cluster), or one a plugin
    # registers. Its own settings go under [executors.<name>].
    executor: str = "local"
    # Kept for older configs and --address: the same as [executors.ray] address ("auto" =
    # the cluster this machine belongs to, "ray://host:10001" or "host:6379" = a remote
    # head, "" = a private one-machine Ray).
    address: str = ""
    # "all": every study's fitted model goes into the store (what `predict` applies);
    # "none": predictions and scores only (`predict --config` refits); "best": only the
    # models of each table's best row (on the training dataset's test split), pruned after
    # every run; the other rows' studies are refitted by `predict --config` like "none". A forest at 26k training crystals
    # is ~2.3 MB compressed.
    store_models: Literal["all", "best", "none"] = "all"
    # Learning curves: one study per fraction of each training split (harness.prepare.fractions)
    train_fractions: list[float] = Field(default_factory=list)

    @field_validator("train_fractions")
    @classmethod
    def _train_fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in v) or len(set(v)) < len(v):
            raise ValueError(f"train_fractions = {v} must be distinct fractions in (0, 1], e.g. [0.1, 0.3, 1.0]")
        return sorted(v)


class EntrySpec(Strict):
    """One entry of a kind: its name and TOML parameters (lists not yet expanded)."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def expand(self) -> list["EntrySpec"]:
        """A list-valued parameter becomes one entry per value (`n = [3, 27]`)."""
        params = self.params
        keys = [k for k, v in params.items() if isinstance(v, list)]
        if not keys:
            return [self]
        out = []
        for values in itertools.product(*(params[k] for k in keys)):
            p = dict(params)
            p.update(zip(keys, values))
            out.append(EntrySpec(name=self.name, **p))
        return out


def _check_evaluation_dataset(d: "DatasetSpec") -> None:
    for key in ("tasks", "hold_out", "split_column", "evaluate_on"):
        if getattr(d, key):
            raise ValueError(
                f'dataset {d.label!r} has role = "evaluate": it is scored with the tasks of the '
                f"datasets that train on it, so {key} does not apply; remove it"
            )


def _as_spec(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class HoldOutSpec(Strict):
    """A family of materials kept out of training and validation and scored on its own
    (the paper's Table II holds out ABO3 perovskites). A material belongs to the family
    when it meets every criterion given; `harness.prepare.families` defines the pattern language."""

    label: str = Field(min_length=1, description="how tables name the family, e.g. perovskites")
    formula: str = ""  # reduced-formula template, e.g. "ABO3" with placeholders = ["A", "B"]
    placeholders: list[str] = Field(default_factory=list)
    anonymized: str = ""  # pymatgen's Composition.anonymized_formula, e.g. "ABC3"
    spacegroup: list[int] = Field(default_factory=list)  # international numbers (spglib)
    symprec: float = Field(0.1, gt=0)
    ids: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _some_criterion(self) -> "HoldOutSpec":
        if not (self.formula or self.anonymized or self.spacegroup or self.ids):
            raise ValueError(f"hold_out {self.label!r} has no criterion: give formula, anonymized, spacegroup or ids")
        if self.placeholders and not self.formula:
            raise ValueError(f"hold_out {self.label!r}: placeholders need a formula")
        return self

    def criteria(self) -> dict[str, Any]:
        """What decides membership (the label only names it); part of every identity."""
        out = self.model_dump(exclude={"label"}, exclude_defaults=True)
        for key in ("ids", "spacegroup", "placeholders"):  # order never changes membership
            if key in out:
                out[key] = sorted(out[key])
        return out | ({"symprec": self.symprec} if self.spacegroup else {})


# Values of a split column that name each part (compared lower-case, on a path's file name
# without its extensions: "data/Train.csv.gz" reads as "train").
SPLIT_VALUES = {
    "train": ["train", "training"],
    "valid": ["valid", "validation", "val", "dev"],
    "test": ["test", "testing"],
}


class DatasetSpec(EntrySpec):
    """A dataset, optionally with its own tasks (one config may compare several files).

    `role = "evaluate"`: a dataset nothing trains on. The models of every training dataset
    (or of those that list it in `evaluate_on`) are scored on each of its materials that
    their task labels, beside their own test split."""

    label: str = ""  # how tables name it; default: the dataset's name
    tasks: list[EntrySpec] = Field(default_factory=list)
    role: Literal["train", "evaluate"] = "train"
    evaluate_on: list[str] | None = None  # labels of evaluate datasets; None: all of them
    hold_out: list[HoldOutSpec] = Field(default_factory=list)
    split_column: str = ""  # a property holding train/valid/test (e.g. source_file)
    split_values: dict[Literal["train", "valid", "test"], list[str]] = Field(default_factory=dict)

    @field_validator("hold_out", mode="before")
    @classmethod
    def _hold_out(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else v

    @field_validator("split_values", mode="before")
    @classmethod
    def _split_values(cls, v: Any) -> Any:
        return {k: [x] if isinstance(x, str) else x for k, x in v.items()} if isinstance(v, dict) else v

    def split_names(self) -> dict[str, str]:
        """Column value (normalised) -> part. A part named in `split_values` takes exactly
        the values given there, and those values leave the default parts they were in."""
        names = {v: part for part, values in SPLIT_VALUES.items() if part not in self.split_values for v in values}
        names.update({str(v).lower(): part for part, values in self.split_values.items() for v in values})
        return names

    def split_identity(self) -> dict[str, Any]:
        """How this dataset departs from the run's random split; empty when it does not
        (so configs without these options keep their keys)."""
        out: dict[str, Any] = {}
        if self.split_column:
            out["column"] = self.split_column
            out["values"] = {k: sorted(v) for k, v in sorted(self.split_names().items())}
        if self.hold_out:
            out["hold_out"] = [h.criteria() for h in self.hold_out]
        return out

    @field_validator("tasks", mode="before")
    @classmethod
    def _tasks(cls, v: Any) -> Any:
        return [_as_spec(x) for x in ([v] if isinstance(v, (str, dict)) else v)]

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Config(Strict):
    plugins: list[str] = Field(default_factory=list)
    dataset: DatasetSpec | None = None
    datasets: list[DatasetSpec] = Field(default_factory=list)
    tasks: list[EntrySpec] = Field(default_factory=list)
    representations: list[EntrySpec] = Field(min_length=1)
    # empty: the perturbation a plugin declares as the default (harness.plan.grid.resolve)
    perturbations: list[EntrySpec] = Field(default_factory=list)
    models: list[EntrySpec] = Field(min_length=1)
    settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # [executors.<name>]: settings of an executor, checked by the executor when chosen
    executors: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Globs over combination ids (task/representation/perturbation/model) that shape the
    # grid: keep only those matching `only` (when given), drop those matching `exclude`.
    only: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    run: RunConfig = Field(default_factory=RunConfig)
    source: str = Field("", exclude=True)  # the file it came from, for messages and paths

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset(cls, v: Any) -> Any:
        return _as_spec(v)

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets(cls, v: Any) -> Any:
        return [_as_spec(x) for x in ([v] if isinstance(v, (str, dict)) else v)]

    @model_validator(mode="after")
    def _parts(self) -> "Config":
        """`[dataset]` + top-level `tasks` is the common case of `[[datasets]]`."""
        if self.dataset is not None and self.datasets:
            raise ValueError("give either [dataset] or [[datasets]], not both")
        if not self.datasets:
            # no name: the dataset a plugin declares as the default (harness.plan.grid.resolve)
            self.datasets = [self.dataset or DatasetSpec(name="")]
        for d in self.datasets:
            d.label = d.label or d.name
            if d.role == "evaluate":
                _check_evaluation_dataset(d)
                continue
            if not d.tasks:
                d.tasks = list(self.tasks)
            if not d.tasks:
                raise ValueError(f"no tasks for dataset {d.label or d.name or 'default'!r}: add tasks = [...]")
        labels = [d.label for d in self.datasets] + [h.label for d in self.datasets for h in d.hold_out]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(
                f'several datasets or hold_out families are labelled {dupes[0]!r}: give each a distinct label = "..."'
            )
        evaluate = {d.label for d in self.datasets if d.role == "evaluate"}
        if evaluate and not any(d.role == "train" for d in self.datasets):
            raise ValueError('every dataset has role = "evaluate": give at least one dataset to train on')
        for d in self.datasets:
            unknown = sorted(set(d.evaluate_on or ()) - evaluate)
            if unknown:
                raise ValueError(
                    f"dataset {d.label!r}: evaluate_on names {unknown[0]!r}, which is no dataset with "
                    f'role = "evaluate" (those are: {", ".join(sorted(evaluate)) or "none"})'
                )
        return self

    def evaluation_datasets(self, part: DatasetSpec) -> list[DatasetSpec]:
        """The evaluate datasets the models trained on `part` are scored on."""
        wanted = part.evaluate_on
        return [d for d in self.datasets if d.role == "evaluate" and (wanted is None or d.label in wanted)]

    @property
    def training_datasets(self) -> list[DatasetSpec]:
        return [d for d in self.datasets if d.role == "train"]

    @field_validator("tasks", "representations", "perturbations", "models", mode="before")
    @classmethod
    def _entries(cls, v: Any) -> Any:
        if isinstance(v, (str, dict)):
            v = [v]
        return [_as_spec(x) for x in v]

    def results_dir(self) -> Path:
        base = Path(self.source).parent if self.source else Path.cwd()
        name = self.run.results or f"results/{Path(self.source).stem or 'run'}"
        return (base / name).resolve() if not Path(name).is_absolute() else Path(name)


def override_run(config: Config, **values: Any) -> Config:
    """Command-line overrides of `[run]`, validated exactly like the TOML."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return config
    try:
        config.run = RunConfig(**{**config.run.model_dump(exclude_unset=True), **given})
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        raise UserError(
            f"--{name.replace('_', '-')} {given.get(name)!r}: {err['msg'].removeprefix('Value error, ')}"
        ) from None
    return config


def load(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror or exc}; check the path") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: invalid TOML ({exc}); fix the syntax") from None
    return parse(data, source=str(path))


def parse(data: dict[str, Any], source: str = "") -> Config:
    try:
        return Config(**data, source=source)
    except pydantic.ValidationError as exc:
        raise UserError(f"{source or 'config'}: {_describe(exc)}") from None


def _describe(exc: pydantic.ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        parent = err["loc"][:-1]
        valid = _valid_keys(parent)
        hint = f"; valid keys: {', '.join(valid)}" if valid else ""
        return f"unknown key {where!r}{hint}"
    if err["type"] == "missing":
        return f"missing key {where!r}; add it"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}" if err["loc"] else msg


def _valid_keys(loc: tuple) -> list[str]:
    model: type[BaseModel] | None = Config
    for part in loc:
        if model is None:
            return []
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        ann = field.annotation
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return sorted(k for k in model.model_fields if k != "source") if model else []

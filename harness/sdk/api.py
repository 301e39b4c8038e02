"""The five kinds of registry entry and the data they exchange.

Every entry is a dataclass: its fields are its parameters (typed, with defaults), set
from the TOML. Plugins subclass one of `Dataset`, `Task`, `Representation`,
`Perturbation`, `Model`, decorate it with `@dataclass` and return the class from the
matching hook (see `harness.sdk.hookspecs`). The core never imports a particular entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from pymatgen.core import Structure

CLOUD = "cloud"  # features are an (n_points, d) array; columns 0-2 are Cartesian x, y, z
VECTOR = "vector"  # features are a fixed-length (d,) array
KINDS = (CLOUD, VECTOR)


class Skip(Exception):
    """Raised for one material that cannot be used (bad structure, unphysical label).

    The core catches it, skips that material and counts it under `str(exc)`; the run
    header reports the counts. Never used for bugs."""


@dataclass(frozen=True)
class Material:
    id: str
    structure: "Structure"
    props: Mapping[str, Any] = field(default_factory=dict)
    # Materials sharing a group (near-copies of one parent) stay on one side of a split.
    group: str | None = None
    # `harness.prepare.features.structure_hash(structure)`, when the dataset already knows it
    # (e.g. from its compact cache); the core computes it otherwise.
    content_hash: bytes | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def lazy(
        id: str,
        build: Callable[[], "Structure"],
        props: Mapping[str, Any] | None = None,
        group: str | None = None,
        content_hash: bytes | None = None,
    ) -> "Material":
        """A material whose structure is built by `build()` on first use.

        A warm run that finds every feature in the cache never builds the structures
        (a million pymatgen site objects for 36k crystals)."""
        return _LazyMaterial(id, build, dict(props or {}), group, content_hash)


class _LazyMaterial(Material):
    def __init__(
        self,
        id: str,
        build: Callable[[], "Structure"],
        props: Mapping[str, Any],
        group: str | None,
        content_hash: bytes | None,
    ):
        for name, value in (
            ("id", id),
            ("props", props),
            ("group", group),
            ("content_hash", content_hash),
            ("_build", build),
            ("_structure", None),
        ):
            object.__setattr__(self, name, value)

    @property
    def structure(self) -> "Structure":  # type: ignore[override]
        if self._structure is None:
            object.__setattr__(self, "_structure", self._build())
        return self._structure


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any
    # `field(metadata={"secret": True})`: never shown in titles, identities or messages
    secret: bool = False


def secret(default: Any = "") -> Any:
    """A parameter that never appears in titles, result identities or messages (an API key)."""
    return field(default=default, repr=False, metadata={"secret": True})


class Entry:
    """Common behaviour of all entries: name, description, parameters."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Bump when the entry's output changes for the same parameters and code (e.g. new data
    # it downloads): results and caches key on it and on a hash of the entry's code
    # (`harness.plan.codeid`), so older numbers are superseded instead of mixed in.
    version: ClassVar[str] = "1"
    # True: the entry used when a config names none of this kind (one per kind, at most)
    default: ClassVar[bool] = False

    @classmethod
    def parameters(cls) -> list[Parameter]:
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name.startswith("_") or not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = f.default_factory()  # type: ignore[misc]
            else:
                default = None
            type_name = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
            out.append(Parameter(f.name, type_name, default, bool(f.metadata.get("secret", False))))
        return out

    @classmethod
    def secrets(cls) -> tuple[str, ...]:
        return tuple(p.name for p in cls.parameters() if p.secret)

    def params(self) -> dict[str, Any]:
        """The parameters that identify this entry (secrets left out)."""
        return {p.name: getattr(self, p.name) for p in self.parameters() if not p.secret}

    @property
    def title(self) -> str:
        """Name plus the parameters that differ from their defaults, e.g. `xrd_cloud(n=27)`."""
        changed = [
            f"{p.name}={_short(getattr(self, p.name))}"
            for p in self.parameters()
            if getattr(self, p.name) != p.default and not p.secret and p.name not in self._title_ignores()
        ]
        return f"{self.name}({','.join(changed)})" if changed else self.name

    def _title_ignores(self) -> tuple[str, ...]:
        return ()

    def paper_label(self) -> str:
        """A short name a paper or figure gives this entry (e.g. a perturbation's φ2),
        recorded with each result so reports need not know the entry; "" for none."""
        return ""


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# --------------------------------------------------------------------------- datasets


class LoadContext:
    """What the core lends a dataset while it loads: a cache folder, skip counting, progress."""

    def __init__(self, cache_dir, progress: Callable[..., Iterable] | None = None):
        from collections import Counter
        from pathlib import Path

        self.cache_dir = Path(cache_dir)
        self.skipped: Counter[str] = Counter()
        self._progress = progress

    def skip(self, material_id: str, reason: str) -> None:
        self.skipped[reason] += 1

    def progress(self, iterable: Iterable, total: int | None = None, description: str = "") -> Iterable:
        if self._progress is None:
            return iterable
        return self._progress(iterable, total=total, description=description)


@dataclass
class Dataset(Entry):
    # Suffixes of the files this dataset reads from its `path` parameter (".csv"; "/" for a
    # folder): `harness predict FILE` hands FILE to the dataset that declares its suffix.
    reads_paths: ClassVar[tuple[str, ...]] = ()

    def load(self, ctx: LoadContext) -> list[Material]:
        """Return the materials; call `ctx.skip(id, reason)` for each one left out."""
        raise NotImplementedError

    def content_id(self) -> str | None:
        """A cheap identity of what `load` would return (e.g. a hash of the files and
        parameters), so a rerun can tell what is done without loading. None: the core
        loads the dataset and hashes its materials."""
        return None

    def missing_property_hint(self, reads: Sequence[str]) -> str | None:
        """The fix to show when no loaded material carries any of the properties `reads`
        a task labels from (e.g. which file or mapping would supply them); None: the
        core's generic advice."""
        return None

    def fetch(self, ctx: LoadContext) -> str | None:
        """Download into the cache ahead of a run (`harness fetch`); returns a summary line.

        None: this dataset has nothing to download."""
        return None


# --------------------------------------------------------------------------- tasks


@dataclass
class Task(Entry):
    # Names of metrics (from any plugin's `harness_metrics`): the one Optuna optimises and
    # the leaderboard sorts by, and others reported beside it. Checked when the grid is built.
    metric: ClassVar[str] = "roc_auc"
    extra_metrics: ClassVar[tuple[str, ...]] = ()
    # The property names `label` reads, so that a dataset without them is reported (with
    # the `columns` mapping that would supply them) before any featurisation; empty for
    # tasks that label from the structure alone.
    reads: ClassVar[tuple[str, ...]] = ()

    @property
    def classes(self) -> tuple[str, ...]:
        raise NotImplementedError

    def label(self, material: Material) -> int | None:
        """Class index, or None when the material carries no label for this task.

        Raise `Skip(reason)` for a value that is present but unphysical."""
        raise NotImplementedError

    def representation_defaults(self) -> dict[str, dict[str, Any]]:
        """Parameters this task prefers for named representations, where the config sets
        none: {representation name: {parameter: value}} (e.g. the paper's conventional
        cell and n = 3 for crystal systems). Other representations are left alone; a
        parameter the named representation lacks is an error when the grid is built."""
        return {}

    def transforms(self) -> list[tuple[str, dict[str, Any]]]:
        """Perturbations (name, params) applied before the grid's perturbation, e.g. the
        paper's intensity masking for crystal systems. Skipped for kinds they do not accept."""
        return []


# --------------------------------------------------------------------------- representations


@dataclass
class Representation(Entry):
    kind: ClassVar[str] = CLOUD

    def columns(self) -> list[str]:
        """Names of the feature columns (cloud: per point, first three x, y, z)."""
        raise NotImplementedError

    def featurize(self, structure: "Structure") -> np.ndarray:
        raise NotImplementedError

    def featurize_many(self, structures: Sequence["Structure"]) -> list[np.ndarray | Skip]:
        """Featurise a chunk; a structure that fails yields a `Skip` in its place.

        Override for a batched fast path."""
        out: list[np.ndarray | Skip] = []
        for s in structures:
            try:
                out.append(np.asarray(self.featurize(s), dtype=np.float32))
            except Skip as exc:
                out.append(exc)
            except Exception as exc:  # a bad structure, never a silent drop
                out.append(Skip(f"{type(exc).__name__}: {exc}"))
        return out

    def point_labels(self) -> np.ndarray | None:
        """Miller indices (n, 3) of the points (cloud) or entries (bar code), if fixed."""
        return None


# --------------------------------------------------------------------------- perturbations


@dataclass
class Perturbation(Entry):
    accepts: ClassVar[frozenset[str]] = frozenset(KINDS)
    # True for augmentations that only serve training (applied to the training split only).
    training_only: ClassVar[bool] = False
    # True for a perturbation whose `apply` returns the sample unchanged and draws nothing
    # (phi1, "none"): studies leave it out instead of seeding a generator per sample.
    identity: ClassVar[bool] = False
    # Feature columns the perturbation reads, by kind: {CLOUD: ("intensity",)}. A
    # representation without them is skipped for this perturbation, with the reason.
    needs_columns: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    def misfit(self, rep: "Representation") -> str:
        """Why this perturbation cannot apply to the features of `rep` ('' if it can)."""
        if rep.kind not in self.accepts:
            return f"{self.name} applies to {'/'.join(sorted(self.accepts))}, not {rep.kind}"
        columns = rep.columns()
        missing = [c for c in self.needs_columns.get(rep.kind, ()) if c not in columns]
        if missing:
            return f"{self.name} needs column {', '.join(map(repr, missing))}, which {rep.title} lacks"
        return ""

    def apply(self, x: np.ndarray, rng: np.random.Generator, columns: Sequence[str]) -> np.ndarray:
        """Return a perturbed copy of one sample; pure, driven only by `rng`."""
        raise NotImplementedError


# --------------------------------------------------------------------------- models


@dataclass
class Samples:
    """One split as a model sees it."""

    X: list[np.ndarray] | np.ndarray  # cloud: list of (n_i, d); vector: (N, d)
    y: np.ndarray
    ids: list[str]
    columns: list[str]
    kind: str

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: np.ndarray) -> "Samples":
        X = self.X[index] if isinstance(self.X, np.ndarray) else [self.X[i] for i in index]
        return Samples(X, self.y[index], [self.ids[i] for i in index], self.columns, self.kind)


@dataclass
class FitContext:
    device: str  # "cpu" or "cuda"
    seed: int
    n_classes: int  # the task's classes; a network needs one output per class
    # (y_true, proba) -> the task's metric, signed so that higher is always better
    score: Callable[[np.ndarray, np.ndarray], float]
    report: Callable[[int, float], None] = lambda step, value: None  # may raise optuna.TrialPruned
    threads: int = 1  # CPU threads this fit may use (the core divides the cores among studies)


@dataclass(frozen=True)
class Choice:
    """A categorical search dimension: one of `values`."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any):
        if len(values) == 1 and isinstance(values[0], (list, tuple)):
            values = tuple(values[0])
        if not values:
            raise ValueError("a Choice needs at least one value")
        object.__setattr__(self, "values", tuple(values))


@dataclass(frozen=True)
class Range:
    """A numeric search dimension from `low` to `high` (both included); `log` samples
    uniformly in log space. Integer bounds give integers."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"a Range needs low <= high (got {self.low}, {self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log Range needs low > 0 (got {self.low})")

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int) and not isinstance(self.low, bool)


Dimension = Choice | Range


@dataclass
class Model(Entry):
    """A classifier in scikit-learn style.

    Every hyperparameter is a dataclass field with a default (the setting used when the
    model is not tuned). `search_space` names the fields the core tunes and their
    domains; the core samples them with Optuna and builds each trial's model with
    `dataclasses.replace`, so a model never sees Optuna. `fit` learns, `predict_proba`
    returns one column per entry of `self.classes_` (the labels seen in training, sorted),
    or one per class of the task when the model sets no `classes_`: the core pads
    columns for classes absent from training. `save`/`load` persist the fitted state as
    data (JSON, arrays), never as pickled code.
    """

    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})
    # True for models that train much faster on a GPU: executors give them one where the
    # machine or cluster has one (the neural models' base, `harness.torch.TorchModel`, says so).
    uses_gpu: ClassVar[bool] = False
    # Field name -> domain, e.g. {"n_estimators": Choice(50, 100), "lr": Range(1e-4, 1e-1, log=True)}
    search_space: ClassVar[Mapping[str, Dimension]] = {}
    # Search-space overrides from the TOML: {"n_estimators": [100, 200]} or {"lr": {low, high, log}};
    # any hyperparameter field may be named, anything else is an error.
    space: dict[str, Any] = field(default_factory=dict)
    # False: no search; one fit with the fields as set (e.g. the paper's settings).
    tune: bool = True

    def fit(self, train: Samples, valid: Samples, ctx: FitContext) -> "Model":
        """Learn from `train` (`valid`: early stopping, if the model wants it); return self."""
        raise NotImplementedError

    def predict_proba(self, X: list[np.ndarray] | np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def save(self, path: "Path") -> None:
        """Write the fitted state into the folder `path` (it exists) as JSON/arrays."""
        raise NotImplementedError(f"model {self.name!r} does not implement save()")

    def load(self, path: "Path") -> "Model":
        """Restore the fitted state written by `save` into this unfitted model; return self.

        The core constructs the model with the same fields before calling it."""
        raise NotImplementedError(f"model {self.name!r} does not implement load()")

    @classmethod
    def hyperparameters(cls) -> list[str]:
        """The fields a search may set: every parameter but `space` and `tune`."""
        return [p.name for p in cls.parameters() if p.name not in ("space", "tune")]

    def _title_ignores(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters())  # settings do not rename a model


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metric:
    """A score of test predictions: `compute(y_true, proba)` with proba (n, n_classes).

    Returned by the `harness_metrics` hook; tasks name metrics by `name`. Its function
    must be importable (a module-level function), as studies run in other processes."""

    name: str
    compute: Callable[[np.ndarray, np.ndarray], float]
    higher_is_better: bool = True
    description: str = ""

    def __call__(self, y: np.ndarray, proba: np.ndarray) -> float:
        return float(self.compute(y, proba))

    def objective(self, y: np.ndarray, proba: np.ndarray) -> float:
        """The metric signed so that higher is better: what tuning and early stopping use."""
        value = self(y, proba)
        return value if self.higher_is_better else -value


ENTRY_KINDS: dict[str, type[Entry]] = {
    "dataset": Dataset,
    "task": Task,
    "representation": Representation,
    "perturbation": Perturbation,
    "model": Model,
}


def iter_chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]

"""The five kinds of registry entry and the data they exchange.

Every entry is a dataclass: its fields are its parameters (typed, with defaults), set
from the TOML. Plugins subclass one of `Dataset`, `Task`, `Representation`,
`Perturbation`, `Model`, decorate it with `@dataclass` and return the class from the
matching hook (see `harness.hookspecs`). The core never imports a particular entry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import optuna
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
    # `harness.features.structure_hash(structure)`, when the dataset already knows it
    # (e.g. from its compact cache); the core computes it otherwise.
    content_hash: bytes | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def lazy(id: str, build: Callable[[], "Structure"], props: Mapping[str, Any] | None = None,
             group: str | None = None, content_hash: bytes | None = None) -> "Material":
        """A material whose structure is built by `build()` on first use.

        A warm run that finds every feature in the cache never builds the structures
        (a million pymatgen site objects for 36k crystals)."""
        return _LazyMaterial(id, build, dict(props or {}), group, content_hash)


class _LazyMaterial(Material):
    def __init__(self, id: str, build: Callable[[], "Structure"], props: Mapping[str, Any],
                 group: str | None, content_hash: bytes | None):
        for name, value in (("id", id), ("props", props), ("group", group),
                            ("content_hash", content_hash), ("_build", build), ("_structure", None)):
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


class Entry:
    """Common behaviour of all entries: name, description, parameters."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

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
            out.append(Parameter(f.name, type_name, default))
        return out

    def params(self) -> dict[str, Any]:
        return {p.name: getattr(self, p.name) for p in self.parameters()}

    @property
    def title(self) -> str:
        """Name plus the parameters that differ from their defaults, e.g. `xrd_cloud(n=27)`."""
        changed = [
            f"{p.name}={_short(getattr(self, p.name))}"
            for p in self.parameters()
            if getattr(self, p.name) != p.default and p.name not in self._title_ignores()
        ]
        return f"{self.name}({','.join(changed)})" if changed else self.name

    def _title_ignores(self) -> tuple[str, ...]:
        return ()


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
    def load(self, ctx: LoadContext) -> list[Material]:
        """Return the materials; call `ctx.skip(id, reason)` for each one left out."""
        raise NotImplementedError

    def fetch(self, ctx: LoadContext) -> str | None:
        """Download into the cache ahead of a run (`harness fetch`); returns a summary line.

        None: this dataset has nothing to download."""
        return None


# --------------------------------------------------------------------------- tasks


@dataclass
class Task(Entry):
    metric: ClassVar[str] = "roc_auc"  # the one Optuna optimises and the leaderboard sorts by
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

    def representation_defaults(self) -> dict[str, Any]:
        """Representation parameters this task prefers where the config sets none
        (e.g. the paper's conventional cell and n = 3 for crystal systems)."""
        return {}

    def transforms(self) -> list[tuple[str, dict[str, Any]]]:
        """Perturbations (name, params) applied before the grid's perturbation, e.g. the
        paper's intensity masking for crystal systems. Skipped for kinds they do not accept."""
        return []


# --------------------------------------------------------------------------- representations


@dataclass
class Representation(Entry):
    kind: ClassVar[str] = CLOUD
    version: ClassVar[str] = "1"  # bump when the output changes: the feature cache keys on it

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

    def apply(self, x: np.ndarray, rng: np.random.Generator, columns: Sequence[str]) -> np.ndarray:
        """Return a perturbed copy of one sample; pure, driven only by `rng`."""
        raise NotImplementedError


def intensity_index(columns: Sequence[str]) -> int | slice:
    """Where the intensity channel lives: its column in a cloud, the whole of a bar code."""
    return list(columns).index("intensity") if "intensity" in columns else slice(None)


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
    n_classes: int
    score: Callable[[np.ndarray, np.ndarray], float]  # (y_true, proba) -> task metric, higher is better
    report: Callable[[int, float], None] = lambda step, value: None  # may raise optuna.TrialPruned
    threads: int = 1


@dataclass
class Model(Entry):
    accepts: ClassVar[frozenset[str]] = frozenset({VECTOR})
    # Search-space overrides from the TOML: {"n_estimators": [100, 200]}
    space: dict[str, list[Any]] = field(default_factory=dict)
    # False: no search; one fit with the model's own defaults (e.g. the paper's settings).
    tune: bool = True

    def search_space(self, trial: "optuna.Trial") -> dict[str, Any]:
        raise NotImplementedError

    def fit(self, train: Samples, valid: Samples, params: dict[str, Any], ctx: FitContext) -> "Model":
        raise NotImplementedError

    def predict_proba(self, X: list[np.ndarray] | np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def choose(self, trial: "optuna.Trial", name: str, choices: Sequence[Any]) -> Any:
        """A categorical search dimension that the TOML may narrow or replace via `space`."""
        options = list(self.space.get(name, choices))
        return trial.suggest_categorical(name, options)

    def _title_ignores(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters())  # settings do not rename a model


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

"""What a study reads: the labelled, featurised materials of one (dataset, task,
representation) and the split of every seed, as one checksummed file in the cache, with
the extra test sets its models are also scored on (held-out families, evaluate datasets).

`prepare` writes it once; every study of that task and representation, in any process or
on any machine that sees the cache, reads it. Nothing reaches a worker through globals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.services.cache import pack_ragged, read_arrays, unpack_ragged, write_arrays
from harness.prepare.splits import Split


@dataclass
class StudyInputs:
    X: list[np.ndarray]  # one array per material: (n_points, d) cloud or (d,) vector
    y: np.ndarray
    ids: list[str]
    positions: np.ndarray  # each material's place in its dataset: seeds its perturbations
    columns: list[str]
    kind: str
    splits: dict[int, Split]  # seed -> positions into the arrays above
    # name -> positions into the arrays above: materials never in any seed's train or
    # valid split, scored on their own (a held-out family, an evaluate dataset)
    evaluations: dict[str, np.ndarray] = field(default_factory=dict)


def write_inputs(path: Path, inputs: StudyInputs) -> None:
    arrays = {
        **pack_ragged(inputs.X),
        "y": np.asarray(inputs.y, dtype=np.int64),
        "ids": np.asarray(inputs.ids, dtype=str),
        "positions": np.asarray(inputs.positions, dtype=np.int64),
    }
    for seed, split in inputs.splits.items():
        for part in ("train", "valid", "test"):
            arrays[f"split_{seed}_{part}"] = np.asarray(getattr(split, part), dtype=np.int64)
    names = list(inputs.evaluations)
    for i, name in enumerate(names):
        arrays[f"evaluation_{i}"] = np.asarray(inputs.evaluations[name], dtype=np.int64)
    write_arrays(
        path,
        arrays,
        {"columns": inputs.columns, "kind": inputs.kind, "seeds": sorted(inputs.splits), "evaluations": names},
    )


def read_inputs(path: Path) -> StudyInputs:
    got = read_arrays(path)
    if got is None:
        raise FileNotFoundError(f"study inputs {path} are missing or damaged; rerun to prepare them again")
    a, meta = got
    xs = unpack_ragged(a)
    splits = {
        int(seed): Split(a[f"split_{seed}_train"], a[f"split_{seed}_valid"], a[f"split_{seed}_test"])
        for seed in meta["seeds"]
    }
    evaluations = {name: a[f"evaluation_{i}"] for i, name in enumerate(meta.get("evaluations", []))}
    return StudyInputs(
        xs, a["y"], [str(i) for i in a["ids"]], a["positions"], list(meta["columns"]), meta["kind"], splits, evaluations
    )

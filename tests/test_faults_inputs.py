"""Issue 20, inputs: plugin code in identities, loading messages, bad inputs."""

from __future__ import annotations

import importlib
import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from harness.cli import main

PLUGIN = '''
"""A plugin whose code the tests edit: a representation and a model."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from harness import VECTOR, Model, Representation, hookimpl


@dataclass
class Lengths(Representation):
    """The cell's edge lengths relative to a."""

    name: ClassVar[str] = "lengths"
    description: ClassVar[str] = "b/a and c/a"
    kind: ClassVar[str] = VECTOR

    def columns(self):
        return ["b/a", "c/a"]

    def featurize(self, structure):
        a, b, c = structure.lattice.abc
        return np.array([b / a, c / a])  # FEATURE


@dataclass
class Threshold(Model):
    """P(tetragonal) rises with the last feature."""

    name: ClassVar[str] = "threshold"
    description: ClassVar[str] = "a logistic curve on the last column"
    accepts: ClassVar[frozenset] = frozenset({VECTOR})

    def fit(self, train, valid, ctx):
        self.cut_ = float(np.median(train.X[:, -1]))  # FIT
        return self

    def predict_proba(self, X):
        p = 1 / (1 + np.exp(-(np.asarray(X)[:, -1] - self.cut_) * 50))
        return np.stack([1 - p, p], axis=1)


@hookimpl
def harness_representations():
    return [Lengths]


@hookimpl
def harness_models():
    return [Threshold]
'''

CODE_CONFIG = """
plugins = ["toy_plugin", "codeplug"]
tasks = ["toy_system"]
representations = ["lengths", "ratios"]
perturbations = ["identity"]
models = ["threshold", "centroids"]
[dataset]
name = "toy"
size = 40
[settings.centroids]
space = { standardize = [true] }
[run]
trials = 1
seeds = [0]
workers = 1
results = "out"
"""


@pytest.fixture
def code_plugin(tmp_path, monkeypatch):
    """`codeplug` written to a folder on sys.path; `edit(old, new)` changes its source and
    makes the next run import the new text."""
    folder = tmp_path / "plug"
    folder.mkdir()
    source = folder / "codeplug.py"
    source.write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.chdir(tmp_path)

    def edit(old: str, new: str) -> None:
        text = source.read_text()
        assert old in text
        source.write_text(text.replace(old, new))
        sys.modules.pop("codeplug", None)
        importlib.invalidate_caches()

    yield edit
    sys.modules.pop("codeplug", None)


def _run(tmp_path, capsys) -> tuple[str, dict]:
    cfg = tmp_path / "code.toml"
    cfg.write_text(CODE_CONFIG)
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    rows = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    return out, {(r["representation"], r["model"]): r["mean"] for r in rows}


def _feature_files(tmp_path, name: str) -> set[str]:
    import os

    root = Path(os.environ["HARNESS_CACHE_DIR"]) / "features" / name
    return {p.name for p in root.glob("*.npz")}


def test_editing_plugin_code_reruns_exactly_what_it_affects(tmp_path, capsys, code_plugin):
    out, first = _run(tmp_path, capsys)
    assert "0 already done, 4 to run" in out
    lengths = _feature_files(tmp_path, "lengths")

    # A comment, a docstring and formatting: nothing reruns, nothing is featurised again.
    code_plugin("# FEATURE", "# the ratios, as the paper has them")
    code_plugin('"""The cell\'s edge lengths relative to a."""', '"""Edge lengths over a (reworded)."""')
    code_plugin("return np.array([b / a, c / a])", "return np.array( [ b/a,\n                          c/a ] )")
    out, again = _run(tmp_path, capsys)
    assert "4 already done, 0 to run" in out
    assert _feature_files(tmp_path, "lengths") == lengths and again == first

    # featurize returns a constant: the two `lengths` studies rerun on new features.
    code_plugin("return np.array( [ b/a,\n                          c/a ] )", "return np.array([1.0, 1.0])")
    out, edited = _run(tmp_path, capsys)
    assert "2 already done, 2 to run" in out
    assert _feature_files(tmp_path, "lengths") > lengths
    assert edited[("lengths", "threshold")] == pytest.approx(0.5)  # constant features: chance
    assert edited[("ratios(scale=2)", "centroids")] == first[("ratios(scale=2)", "centroids")]

    # fit changes: only the threshold studies rerun.
    code_plugin("self.cut_ = float(np.median(train.X[:, -1]))", "self.cut_ = 0.0")
    out, _ = _run(tmp_path, capsys)
    assert "2 already done, 2 to run" in out


# --- loading: file names and messages -------------------------------------------------

def _salt():
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture
def ctx(tmp_path):
    from harness.api import LoadContext

    return LoadContext(tmp_path / "cache")


def _cif_folder(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        _salt().to(filename=str(folder / f"{name}.cif"))
    return folder


@pytest.mark.skipif(sys.platform == "darwin", reason="macOS refuses file names that are not UTF-8")
def test_a_non_utf8_file_name_in_a_cif_folder_is_read_under_a_printable_id(tmp_path, ctx):
    import os

    from harness_plugins.datasets.files import FileDataset

    folder = _cif_folder(tmp_path / "cifs", ["a", "b"])
    os.rename(folder / "b.cif", os.fsencode(folder) + b"/caf\xe9.cif")  # a Latin-1 name
    materials = FileDataset(path=str(folder)).load(ctx)
    assert sorted(m.id for m in materials) == ["a", "caf\\xe9"]
    json.dumps([m.id for m in materials]).encode()  # no surrogate left to trip an encoder
    # with id_prop.csv naming only the readable file, the other is simply not listed
    (folder / "id_prop.csv").write_text("a,1.0\n")
    (material,) = FileDataset(path=str(folder)).load(ctx)
    assert material.id == "a" and material.props["target"] == 1.0

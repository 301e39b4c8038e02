"""Issue 20, inputs: plugin code in identities, loading messages, bad inputs."""

from __future__ import annotations

import importlib
import json
import re
import sys
import textwrap
from pathlib import Path

import numpy as np
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
    from harness.sdk.api import LoadContext

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


def _error_of_run(tmp_path, capsys, config: str) -> str:
    cfg = tmp_path / "bench.toml"
    cfg.write_text(config)
    assert main(["run", str(cfg)]) == 2
    captured = capsys.readouterr()
    line = [x for x in (captured.out + captured.err).splitlines() if x.startswith("error:")]
    assert len(line) == 1, captured.out + captured.err
    return line[0]


def test_a_cgcnn_root_says_no_cif_matched_and_where_the_cifs_are(tmp_path, ctx):
    from harness_plugins.datasets.files import FileDataset

    from harness.services.errors import UserError

    root = tmp_path / "root"
    _cif_folder(root / "cif_files", ["mp-1", "mp-2", "mp-3"])
    (root / "id_prop.csv").write_text("mp-1,1.0\nmp-2,0.0\nmp-3,1.0\n")
    with pytest.raises(UserError) as info:
        FileDataset(path=str(root)).load(ctx)
    message = str(info.value)
    assert "none of the 3 ids of id_prop.csv" in message and "names a structure file" in message
    assert f"3 structure files are one folder down in {root / 'cif_files'}" in message
    assert f'path = "{root / "cif_files"}"' in message and f'properties = "{root / "id_prop.csv"}"' in message
    # following the advice reads every crystal with its value (id_prop.csv has no header)
    fixed = FileDataset(path=str(root / "cif_files"), properties=str(root / "id_prop.csv")).load(ctx)
    assert sorted((m.id, m.props["target"]) for m in fixed) == [("mp-1", 1.0), ("mp-2", 0.0), ("mp-3", 1.0)]


def test_ids_that_name_no_file_of_the_folder_say_how_files_are_named(tmp_path, ctx):
    from harness_plugins.datasets.files import FileDataset

    from harness.services.errors import UserError

    folder = _cif_folder(tmp_path / "cifs", ["a", "b"])
    (folder / "id_prop.csv").write_text("x,1\ny,0\n")
    with pytest.raises(UserError, match=r"none of the 2 ids of id_prop.csv \(e.g. 'x'\).*a\.cif, b\.cif.*<id>\.cif"):
        FileDataset(path=str(folder)).load(ctx)


TASK_ON_FILES = """
tasks = ["bulk_modulus"]
representations = [{{ name = "barcode", n = 3 }}]
models = ["random_forest"]
[dataset]
name = "file"
path = "{path}"
{extra}
[run]
seeds = [0]
trials = 1
results = "out"
"""


def test_a_cif_folder_without_properties_is_told_to_set_properties(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = _cif_folder(tmp_path / "cifs", ["a", "b", "c"])
    line = _error_of_run(tmp_path, capsys, TASK_ON_FILES.format(path=folder, extra=""))
    assert "finds no labelled material" in line
    assert "cifs has no properties file: add id_prop.csv" in line and "properties = " in line
    assert "map the column" not in line


def _nested_csv(path: Path) -> Path:
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["material_id", "cif", "elasticity"])
        for i in range(6):
            writer.writerow([f"m-{i}", _salt().to(fmt="cif"), str({"voigt": 90.0 + i, "vrh": 80.0 + 2 * i})])
    return path


def test_a_nested_column_mapped_without_its_key_gets_the_column_key_form(tmp_path, ctx):
    from harness_plugins.datasets.files import FileDataset

    from harness.services.errors import UserError

    path = _nested_csv(tmp_path / "elastic.csv")
    with pytest.raises(UserError) as info:
        FileDataset(path=str(path), columns={"k_vrh": "elasticity"}).load(ctx)
    message = str(info.value)
    assert "values in elastic.csv are nested" in message and "its keys: voigt, vrh" in message
    assert 'columns = { k_vrh = "elasticity.vrh" }' in message
    # the form it proposes reads the numbers
    materials = FileDataset(path=str(path), columns={"k_vrh": "elasticity.vrh"}).load(ctx)
    assert sorted(m.props["k_vrh"] for m in materials) == [80.0, 82.0, 84.0, 86.0, 88.0, 90.0]


def test_an_unmapped_nested_column_is_named_when_a_task_finds_no_label(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _nested_csv(tmp_path / "elastic.csv")
    line = _error_of_run(tmp_path, capsys, TASK_ON_FILES.format(path=path, extra=""))
    assert "'elasticity' holds nested values with a key 'vrh'" in line
    assert 'columns = { k_vrh = "elasticity.vrh" }' in line


def test_the_same_crystals_in_another_order_are_not_featurised_again(tmp_path, monkeypatch):
    from toy_plugin import Ratios, ToyDataset

    from harness.prepare import features
    from harness.sdk.api import Material

    monkeypatch.setattr(features, "CHUNK", 4)  # several chunks from a few crystals
    materials = ToyDataset(size=18).load(None)
    calls = []
    rep = Ratios()
    original = Ratios.featurize_many
    monkeypatch.setattr(Ratios, "featurize_many", lambda self, s: calls.append(len(s)) or original(self, s))
    cache = features.FeatureCache(tmp_path / "cache")
    first = features.featurize(materials, rep, cache, workers=1)
    assert sum(calls) == 18
    shuffled = [materials[i] for i in np.random.default_rng(1).permutation(18)]
    again = features.featurize(shuffled, rep, cache, workers=1)
    assert sum(calls) == 18  # every chunk from the cache
    by_id = {m.id: f for m, f in zip(materials, first.features)}
    assert all(np.array_equal(by_id[m.id], f) for m, f in zip(shuffled, again.features))
    # a new crystal only recomputes the chunks it falls in
    extra = Material("new", materials[0].structure.copy(), {})
    extra.structure.scale_lattice(extra.structure.volume * 1.5)
    features.featurize([*shuffled, extra], rep, cache, workers=1)
    assert 18 < sum(calls) < 2 * 18


# --- item 14: smaller input faults -------------------------------------------------------


def test_demo_size_zero_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _error_of_run(
        tmp_path,
        capsys,
        """
tasks = ["crystal_system"]
representations = [{ name = "barcode", n = 3 }]
models = ["random_forest"]
[dataset]
name = "demo"
size = 0
[run]
results = "out"
""",
    )
    assert "size = 0" in line and "size >= 1" in line


def test_a_full_disk_leaves_no_partial_cache_file_and_keeps_the_generated_demo(tmp_path, monkeypatch, caplog):
    import errno

    from harness_plugins.datasets.demo import Demo

    from harness.sdk.api import LoadContext

    real_savez = np.savez

    def full_disk(handle, **arrays):
        real_savez(handle, **arrays)  # bytes on disk, then the device is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    cache = tmp_path / "cache"
    materials = Demo(size=6, variants=2).load(LoadContext(cache))
    assert len(materials) == 6  # the generated set is used, not thrown away
    assert not [p for p in cache.rglob("*") if p.is_file()]  # no .demo-*.npz.tmpPID left
    assert "No space left on device" in caplog.text and "without caching" in caplog.text


def test_a_plugin_that_raises_at_import_is_one_line_naming_it(tmp_path, monkeypatch):
    from harness.services import registry
    from harness.services.errors import UserError

    (tmp_path / "broken_plug.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(UserError, match=r"plugin module 'broken_plug' failed to import: RuntimeError: boom at import"):
        registry.load(["broken_plug"], entry_points=False)
    sys.modules.pop("broken_plug", None)


@pytest.mark.parametrize("name", ["a/b", " padded"])
def test_entry_names_with_a_slash_are_refused_at_load(name):
    from dataclasses import dataclass
    from typing import ClassVar

    from harness import Representation, hookimpl

    from harness.services import registry
    from harness.services.errors import UserError

    @dataclass
    class Slashed(Representation):
        description: ClassVar[str] = "a name the combination ids cannot hold"

        def featurize(self, structure):
            return np.zeros(1)

    Slashed.name = name

    class Plugin:
        @hookimpl
        def harness_representations(self):
            return [Slashed]

    with pytest.raises(UserError, match="rename it") as info:
        registry.load([Plugin()], entry_points=False)
    assert repr(name) in str(info.value)


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write, root included (`chattr +i`); skipped where that cannot be had."""
    import os
    import shutil
    import subprocess

    folder = tmp_path / "ro-cache"
    folder.mkdir()
    immutable = (
        shutil.which("chattr")
        and subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False).returncode == 0
    )
    if not immutable:
        folder.chmod(0o555)
    try:
        (folder / "probe").write_text("x")
        pytest.skip("cannot make a folder read-only here")
    except OSError:
        pass
    yield folder
    if immutable:
        subprocess.run(["chattr", "-i", str(folder)], check=False)
    folder.chmod(0o755)
    assert os.access(folder, os.W_OK)


def test_leaderboard_reads_results_with_a_read_only_cache_folder(tmp_path, capsys, monkeypatch, read_only_folder):
    from servers import toy_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench.toml").write_text(toy_config(trials=1, workers=1, size=40))
    assert main(["run", "bench.toml", "--seeds", "0"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(read_only_folder))
    assert main(["leaderboard", "out"]) == 0
    out = capsys.readouterr().out
    assert "ratios" in out and "cannot write" not in out


def test_code_identity_follows_helper_modules_of_the_plugin_package(tmp_path, monkeypatch):
    """A helper module the entry's module imports (same package) counts; an unrelated
    module of the package does not; the identity is the same in every process."""
    from harness.plan import codeid

    package = tmp_path / "helperpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "maths.py").write_text("def scale(x):\n    return 2 * x\n")
    (package / "other.py").write_text("VALUE = 1\n")
    (package / "rep.py").write_text(
        textwrap.dedent("""
        from dataclasses import dataclass
        from typing import ClassVar

        from harness import Representation
        from .maths import scale


        @dataclass
        class Scaled(Representation):
            name: ClassVar[str] = "scaled"

            def featurize(self, structure):
                return scale(structure.volume)
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)

    def identity() -> str:
        for name in [m for m in sys.modules if m.startswith("helperpkg")]:
            del sys.modules[name]
        importlib.invalidate_caches()
        return codeid.code_identity(importlib.import_module("helperpkg.rep").Scaled)

    first = identity()
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    (package / "other.py").write_text("VALUE = 2\n")
    assert identity() == first
    (package / "maths.py").write_text("def scale(x):\n    # doubled\n    return 2 * x\n")
    assert identity() == first
    (package / "maths.py").write_text("def scale(x):\n    return 3 * x\n")
    assert identity() != first


def test_the_file_and_demo_caches_key_on_their_code(tmp_path, monkeypatch, ctx):
    """An edited reader or generator (another code hash) never reuses its old parse or
    crystals; the dataset's content identity stays that of its data."""
    from harness_plugins.datasets import demo
    from harness_plugins.datasets.files import FileDataset
    from harness_plugins.datasets.files import dataset as file_dataset

    folder = _cif_folder(tmp_path / "cifs", ["a"])
    FileDataset(path=str(folder)).load(ctx)
    before = FileDataset(path=str(folder)).content_id(), demo.Demo(size=3)._cache_file(tmp_path)
    monkeypatch.setattr(file_dataset, "code_identity", lambda cls: "edited0")
    monkeypatch.setattr(demo, "code_identity", lambda cls: "edited0")
    FileDataset(path=str(folder)).load(ctx)
    assert len(list((ctx.cache_dir / "datasets" / "file").glob("*.npz"))) == 2  # parsed again
    assert demo.Demo(size=3)._cache_file(tmp_path) != before[1]
    assert FileDataset(path=str(folder)).content_id() == before[0]

"""`limit` and `fraction` of the file dataset: a seeded, stratified sample, not the first rows."""

from __future__ import annotations

import csv
import io
from collections import Counter

import numpy as np
import pytest
from conftest import SHARED_DATA
from harness_plugins.datasets import sample
from harness_plugins.datasets.files import FileDataset
from pymatgen.core import Lattice, Structure

from harness.sdk.api import LoadContext
from harness.services.errors import UserError


def _sorted_file(tmp_path, n=400, metals=0.3):
    """A file sorted by class (all metals first), like an export ordered by band gap."""
    cif = Structure(Lattice.cubic(3.0), ["Po"], [[0, 0, 0]]).to(fmt="cif")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["material_id", "band_gap", "cif"])
    n_metal = int(n * metals)
    for i in range(n):
        gap = 0.0 if i < n_metal else 0.1 + (i % 37) / 10
        writer.writerow([f"m-{i:04d}", f"{gap}", cif])
    path = tmp_path / "sorted.csv"
    path.write_text(buffer.getvalue())
    return path


def _metal_share(materials) -> float:
    return float(np.mean([m.props["band_gap"] == 0 for m in materials]))


def test_limit_keeps_class_shares_where_the_first_rows_would_not(tmp_path):
    path = _sorted_file(tmp_path)
    ctx = LoadContext(tmp_path / "cache")
    got = FileDataset(path=str(path), limit=100, stratify="band_gap").load(ctx)
    assert len(got) == 100
    assert abs(_metal_share(got) - 0.3) <= 0.01  # the first 100 rows would be 100 % metals
    half = FileDataset(path=str(path), fraction=0.5, stratify="band_gap").load(ctx)
    assert len(half) == 200 and abs(_metal_share(half) - 0.3) <= 0.01


def test_sample_is_seeded(tmp_path):
    path = _sorted_file(tmp_path)
    ctx = LoadContext(tmp_path / "cache")

    def ids(**kw):
        return [m.id for m in FileDataset(path=str(path), limit=50, stratify="band_gap", **kw).load(ctx)]

    assert ids() == ids()  # also through the dataset cache
    assert ids(sample_seed=0) == ids()
    assert set(ids(sample_seed=1)) != set(ids())
    assert (
        FileDataset(path=str(path), limit=50, sample_seed=1).content_id()
        != FileDataset(path=str(path), limit=50).content_id()
    )


def test_unstratified_sample_is_still_random_not_the_head(tmp_path):
    path = _sorted_file(tmp_path)
    got = FileDataset(path=str(path), limit=100).load(LoadContext(tmp_path / "cache"))
    assert 0.1 < _metal_share(got) < 0.5


def test_stratified_sample_keeps_every_stratum_within_one_percent():
    rng = np.random.default_rng(7)
    keys = rng.choice(["a", "b", "c", "d"], size=5000, p=[0.55, 0.3, 0.1, 0.05]).tolist()
    whole = Counter(keys)
    for seed in (0, 1, 2):
        for n in (123, 1000, 4999):
            chosen = sample.stratified_sample(keys, n, seed)
            assert len(chosen) == n == len(set(chosen.tolist()))
            part = Counter(keys[i] for i in chosen)
            for k in whole:
                assert abs(part[k] / n - whole[k] / len(keys)) <= 0.01
    assert not np.array_equal(sample.stratified_sample(keys, 1000, 0), sample.stratified_sample(keys, 1000, 1))
    np.testing.assert_array_equal(sample.stratified_sample(keys, 1000, 3), sample.stratified_sample(keys, 1000, 3))


def test_numbers_are_binned_with_a_tie_at_the_minimum_kept_whole():
    values = [0.0] * 425 + list(np.linspace(0.01, 5, 575))
    keys = sample.strata(values)
    assert len({keys[i] for i in range(425)}) == 1 and keys[425] != keys[0]
    assert sample.strata(["a", None, "b"]) == ["a", sample.MISSING, "b"]


def test_bad_fraction_and_unknown_stratify_column_are_user_errors(tmp_path):
    path = _sorted_file(tmp_path, n=20)
    with pytest.raises(UserError, match="fraction = 1.5 must be in"):
        FileDataset(path=str(path), fraction=1.5)
    with pytest.raises(UserError, match="stratify = 'gap'.*no such column"):
        FileDataset(path=str(path), limit=5, stratify="gap").load(LoadContext(tmp_path / "cache"))


@pytest.mark.skipif(not (SHARED_DATA / "mp_metallicity_36k.csv.gz").exists(), reason="needs ../shared/data")
def test_metallicity_file_sample_keeps_its_metal_share(tmp_path):
    """The whole file is 42.5 % metals; its first 3,000 rows are far from that."""
    from harness_plugins.datasets.files import (
        tabular,  # reads rows only: no CIF is parsed here
    )

    table = tabular.read_table(SHARED_DATA / "mp_metallicity_36k.csv.gz", "csv")
    gaps = [r["band_gap"] for r in table.records]
    whole = np.mean([g == 0 for g in gaps])
    for seed in (0, 1):
        chosen = sample.stratified_sample(sample.strata(gaps), 3000, seed)
        assert abs(np.mean([gaps[i] == 0 for i in chosen]) - whole) <= 0.01
    assert abs(np.mean([g == 0 for g in gaps[:3000]]) - whole) > 0.05

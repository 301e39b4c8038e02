"""Pool workers die with the driver: a run stopped by SIGTERM or `kill -9` while it
featurises leaves no worker computing for nobody (seen with featurisation pools, which
had no such guard, while the study pool had one)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

SCRIPT = textwrap.dedent("""
    import time
    from dataclasses import dataclass
    from typing import ClassVar

    import numpy as np
    from pymatgen.core import Lattice, Structure

    import harness
    from harness.sdk.api import Material
    from harness.prepare.features import FeatureCache, featurize

    @dataclass
    class Slow(harness.Representation):
        name: ClassVar[str] = "slow"
        kind: ClassVar[str] = "vector"

        def columns(self):
            return ["x"]

        def featurize(self, structure):
            time.sleep(120)
            return np.zeros(1)

    materials = [Material(f"m{i}", Structure(Lattice.cubic(3 + i * 1e-3), ["Na"], [[0, 0, 0]]), {})
                 for i in range(600)]
    featurize(materials, Slow(), FeatureCache(__import__("pathlib").Path(r"{cache}")), workers=2)
""")


def _children_of(proc: psutil.Process, want: int, timeout: float = 120) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = proc.children(recursive=True)
        if len(kids) >= want:
            return kids
        time.sleep(0.2)
    pytest.fail(f"the driver started {len(proc.children(recursive=True))} workers, not {want}")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_featurisation_workers_end_with_their_driver(tmp_path, how):
    script = tmp_path / "drive.py"
    script.write_text(SCRIPT.replace("{cache}", str(tmp_path / "cache")))
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers = _children_of(psutil.Process(driver.pid), 2)
        time.sleep(0.5)  # the workers are inside the slow featurisation
        driver.send_signal(how)
        driver.wait(timeout=30)
        gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"{len(alive)} featurisation workers outlived their driver"
    finally:
        for p in psutil.Process().children(recursive=True):
            p.kill()


def test_the_file_datasets_parse_pool_is_one_whose_workers_die_with_the_run(monkeypatch):
    """Seen in a measurement: a SIGTERM'd run left the file dataset's CIF-parsing workers
    running (reparented to init); they now come from harness.worker_pool."""
    import harness
    from harness_plugins.datasets.files import parse

    made = []
    real = harness.worker_pool

    def spy(workers, start="fork"):
        made.append(workers)
        return real(workers, start)

    monkeypatch.setattr(harness, "worker_pool", spy)
    monkeypatch.setattr(parse, "PARALLEL_MIN_ROWS", 2)
    monkeypatch.setattr(parse, "WORKERS", 2)
    cif = "data_x\n_cell_length_a 3\n_cell_length_b 3\n_cell_length_c 3\n_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n_symmetry_space_group_name_H-M 'P 1'\nloop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\nNa1 Na 0 0 0\n"
    rows = [(f"m{i}", cif, {}) for i in range(4)]
    records, left_out, _ = parse.parse_rows(rows, harness.LoadContext(harness.cache_dir()), "test")
    assert made and len(records) == 4 and not left_out

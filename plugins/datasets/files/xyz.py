"""Extended XYZ files (through ASE): one frame per material, the cell from `Lattice=`,
properties from the comment line (`key=value`) and from ASE's stored results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness import UserError

from .parse import NoStructure
from .sources import open_text
from .rows import ID_CANDIDATES, Table
from .values import typed_value


def read_extxyz(path: Path, limit: int | None = None) -> Table:
    try:
        from ase.io import read
        from pymatgen.io.ase import AseAtomsAdaptor
    except ImportError:
        raise UserError(f"cannot read {path}: extended XYZ needs ASE; pip install ase") from None
    index = f":{limit}" if limit else ":"
    try:
        with open_text(path) as handle:
            frames = read(handle, index=index, format="extxyz")
    except Exception as exc:  # noqa: BLE001 - ASE raises many kinds for a bad file
        raise UserError(f"cannot read {path} as extended XYZ: {exc}; check the file or set [dataset] format") from None
    records, structures = [], []
    for atoms in frames:
        record = {key: _scalar(value) for key, value in atoms.info.items()}
        if atoms.calc is not None:
            record.update({key: _scalar(value) for key, value in atoms.calc.results.items()})
        records.append({k: v for k, v in record.items() if v is not None})
        # A frame without a full periodic cell is a molecule: its row is skipped when parsed.
        periodic = bool(atoms.pbc.all()) and atoms.cell.rank == 3
        structures.append(
            AseAtomsAdaptor.get_structure(atoms).as_dict()
            if periodic
            else NoStructure("no periodic cell (a molecule?)")
        )
    columns = list(dict.fromkeys(k for r in records for k in r))
    id_name = next((c for c in ID_CANDIDATES if c in columns), None)
    index = None if id_name else [str(n) for n in range(len(records))]
    return Table(path, "extended XYZ", "", columns, records, index=index, structures=structures)


def _scalar(value: Any) -> Any:
    """Per-frame numbers and text become properties; per-atom arrays do not."""
    value = typed_value(value)
    if isinstance(value, list):
        return value if len(value) <= 9 and all(isinstance(v, (int, float)) for v in value) else None
    return value

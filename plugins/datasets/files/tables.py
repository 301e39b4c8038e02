"""CSV, TSV and Parquet tables (through pandas) with a CIF or POSCAR column."""

from __future__ import annotations

from pathlib import Path

from harness.errors import UserError

from .sources import open_text
from .table import Table
from .values import typed_column, typed_value

SEPARATORS = {"csv": ",", "tsv": "\t"}


def read_table(path: Path, fmt: str, limit: int | None = None) -> Table:
    import pandas as pd

    if fmt == "parquet":
        return _read_parquet(path, limit)
    try:
        with open_text(path) as handle:
            # Every cell as text, typed per column below: ids keep their leading zeros and
            # a column types the same whatever pandas would guess.
            frame = pd.read_csv(handle, sep=SEPARATORS[fmt], dtype=str, keep_default_na=False, nrows=limit,
                                skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"cannot read {path}: the file is empty; point [dataset] path at a {fmt.upper()} with a header") from None
    except pd.errors.ParserError as exc:
        raise UserError(
            f"cannot read {path} as {fmt.upper()}: {str(exc).strip().splitlines()[0]}; "
            f"check its separator or set [dataset] format (csv, tsv)"
        ) from None
    columns = [str(c).strip() for c in frame.columns]
    values = {name: typed_column(frame.iloc[:, i].tolist()) for i, name in enumerate(columns)}
    records = [{name: values[name][n] for name in columns} for n in range(len(frame))]
    return Table(path, fmt.upper(), "", columns, records)


def _read_parquet(path: Path, limit: int | None) -> Table:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except ImportError:
        raise UserError(
            f"cannot read {path}: reading Parquet needs pyarrow; pip install pyarrow, or save the table as CSV"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's
        raise UserError(f"cannot read {path} as Parquet: {exc}; check the file or set [dataset] format") from None
    if limit:
        frame = frame.head(limit)
    columns = [str(c) for c in frame.columns]
    index = None
    if not isinstance(frame.index, pd.RangeIndex):  # a named index (e.g. material ids) saved with the table
        index = [str(i) for i in frame.index]
    records = [
        {name: typed_value(value) for name, value in zip(columns, row)}
        for row in frame.itertuples(index=False, name=None)
    ]
    return Table(path, "Parquet", "", columns, records, index=index)

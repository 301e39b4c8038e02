"""CSV, TSV and Parquet tables (through pandas) with a CIF or POSCAR column."""

from __future__ import annotations

from pathlib import Path

from harness import UserError

from .sources import open_text
from .rows import Table
from .values import typed_column, typed_value

SEPARATORS = {"csv": ",", "tsv": "\t"}
OTHER_SEPARATORS = (";", "\t", ",", "|")
SEPARATOR_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "bar"}


def read_table(path: Path, fmt: str, limit: int | None = None) -> Table:
    import pandas as pd

    if fmt == "parquet":
        return _read_parquet(path, limit)
    separator = _separator(path, fmt)
    try:
        with open_text(path) as handle:
            # Every cell as text, typed per column below: ids keep their leading zeros and
            # a column types the same whatever pandas would guess.
            frame = pd.read_csv(
                handle, sep=separator, dtype=str, keep_default_na=False, nrows=limit, skipinitialspace=True
            )
    except pd.errors.EmptyDataError:
        raise UserError(
            f"cannot read {path}: the file is empty; point [dataset] path at a {fmt.upper()} with a header"
        ) from None
    except pd.errors.ParserError as exc:
        raise UserError(
            f"cannot read {path} as {fmt.upper()}: {str(exc).strip().splitlines()[0]}; "
            f"check its separator or set [dataset] format (csv, tsv)"
        ) from None
    columns = [str(c).strip() for c in frame.columns]
    values = {name: typed_column(frame.iloc[:, i].tolist()) for i, name in enumerate(columns)}
    records = [{name: values[name][n] for name in columns} for n in range(len(frame))]
    layout = f"{fmt.upper()} ({SEPARATOR_NAMES[separator]}-separated)"
    other = "tsv" if fmt == "csv" else "csv"
    return Table(path, layout, f'set [dataset] format = "{other}" or "json"', columns, records)


def _separator(path: Path, fmt: str) -> str:
    """The format's separator, unless the header row has none of it but another (a
    semicolon CSV from a spreadsheet, a tab-separated .csv)."""
    with open_text(path) as handle:
        header = handle.readline()
    default = SEPARATORS[fmt]
    if default in header:
        return default
    counts = {sep: header.count(sep) for sep in OTHER_SEPARATORS}
    best = max(counts, key=counts.get)
    return best if counts[best] else default


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

"""Write an SQL result (Arrow table) as CSV, JSON lines or Parquet, to a file or stdout."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from vzsql.atomic import staged_file, write_text_atomically
from vzsql.errors import ExportError


def write_result(table: pa.Table, fmt: str, output: Path | None) -> None:
    """Write ``table`` in ``fmt`` (csv | json | parquet) to ``output`` or stdout."""
    if fmt == "parquet":
        if output is None:
            raise ExportError("--format parquet needs -o/--output")
        with staged_file(output, overwrite=True) as f:
            pq.write_table(table, f)
        return
    if fmt == "csv":
        table = _binary_to_hex(table)
        buf = io.BytesIO()
        pacsv.write_csv(table, buf)
        text = buf.getvalue().decode()
    elif fmt == "json":
        import polars as pl

        frame = pl.from_arrow(_binary_to_hex(table))
        assert isinstance(frame, pl.DataFrame)
        text = frame.write_ndjson()
    else:
        raise ExportError(f"unknown format {fmt!r}: use table, csv, json or parquet")
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomically(output, text)


def _binary_to_hex(table: pa.Table) -> pa.Table:
    """CSV and JSON cannot hold bytes: inline chunk data is written as hex text."""
    import polars as pl

    for i, field in enumerate(table.schema):
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            hexed = pl.Series(table.column(i)).bin.encode("hex")  # vectorised, lower case
            table = table.set_column(i, field.name, hexed.to_arrow().cast(pa.string()))
    return table

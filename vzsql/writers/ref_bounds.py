"""Refuse to publish references that cannot be served: outside their file, or sourceless.

Every writer that turns references into something users read (Icechunk commits, Zarr
copies) runs this first, so bad input fails before anything is written.
"""

from __future__ import annotations

from typing import Any

from vzsql.catalog import connect, run_named
from vzsql.errors import ExportError
from vzsql.tables import Tables


def check_refs_inside_sources(tables: Tables, con: Any = None) -> None:
    """Raise ``ExportError`` naming the first bad reference (and how many there are).

    ``con``: a connection over the tables (a DuckDB-stored manifest's), else one is made."""
    if con is None:
        con = connect(tables)
    try:
        bad = run_named(con, "export/refs_outside_source")
    finally:
        con.close()
    if bad.num_rows == 0:
        return
    row = bad.slice(0, 1).to_pylist()[0]
    detail = (
        f"bytes [{row['offset']}, {row['offset'] + row['length']}) of a {row['size']}-byte file"
        if row["problem"] == "ends past the end of the file"
        else row["problem"]
    )
    raise ExportError(
        f"{bad.num_rows} chunk reference(s) cannot be served; first: {detail}",
        source=row["uri"],
        array=row["array"],
        chunk=row["index"],
    )

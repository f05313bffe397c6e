"""kerchunk reference JSON (spec version 1) from the manifest tables.

``{"version": 1, "refs": {key: value}}`` with plain references (no templates): metadata
documents as JSON text (Zarr v2 ``.zgroup``/``.zattrs``/``.zarray`` by default, ``zarr.json``
with ``zarr_format=3``), chunk references as ``[url, offset, length]``, inline chunks as text
when ASCII, else ``"base64:..."``.

DuckDB builds every chunk's ``"key":value`` fragment (``queries/export/kerchunk_json_refs.sql``)
and the fragments' Arrow string buffers are written straight into the file: no Python object
per chunk. The file is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from vzsql.atomic import staged_file
from vzsql.catalog import connect, run_named
from vzsql.errors import ExportError, QueryError
from vzsql.queries import load_query
from vzsql.sources import local_path
from vzsql.tables import Tables
from vzsql.writers.kerchunk_extras import EXTRAS_KEY, extras_of
from vzsql.writers.zarr_v2_meta import v2_documents, v3_documents


def reference_urls(tables: Tables) -> pa.Table:
    """``source_id`` -> the URL written in references (and its row number, ``url_row``):
    local files as plain absolute paths.

    fsspec's local filesystem does not percent-decode ``file://`` URLs, so local sources are
    written as paths (as kerchunk and VirtualiZarr do); remote URLs are kept as they are.
    """
    ids = tables.sources.column("source_id")
    urls = [local_path(u) or u for u in tables.sources.column("uri").to_pylist()]  # per file
    rows = pa.array(range(len(urls)), pa.int32())  # position of the URL in this table
    return pa.table({"source_id": ids, "url": pa.array(urls, pa.string()), "url_row": rows})


def metadata_documents(tables: Tables, zarr_format: int) -> dict[str, dict[str, Any]]:
    """The metadata documents of the export (raises ``ExportError`` for what it cannot say)."""
    if zarr_format == 2:
        return v2_documents(tables)
    if zarr_format == 3:
        return v3_documents(tables)
    raise ExportError(f"zarr_format must be 2 or 3, not {zarr_format!r}")


def export_connection(tables: Tables, con: Any = None, ref_urls: pa.Table | None = None) -> Any:
    """A locked-down connection with the manifest tables and ``ref_urls`` registered
    (``con``: a connection that already has the tables, e.g. a DuckDB-stored manifest's;
    ``ref_urls``: ``reference_urls(tables)`` if the caller made it already)."""
    if con is None:
        con = connect(tables)
    con.register("ref_urls", ref_urls if ref_urls is not None else reference_urls(tables))
    return con


def check_resolvable(con: Any, dest: str) -> None:
    """Raise ``ExportError`` naming the first chunk that is neither a reference nor inline."""
    bad = run_named(con, "export/unresolved_chunks", {"limit": 1}).to_pylist()
    if bad:
        row = bad[0]
        raise ExportError(
            f"chunk has no data and no valid reference (source_id {row['source_id']})",
            source=dest,
            array=row["array"],
            chunk=row["index"],
        )


class _Unresolved(Exception):
    """A chunk fragment is null: the chunk has neither data nor a resolvable reference."""


def _write_string_column(f: IO[bytes], col: pa.Array) -> None:
    """Write the concatenated values of a string column: its data buffer, zero copy."""
    if col.type not in (pa.string(), pa.large_string()):
        col = col.cast(pa.large_string())
    if len(col) == 0:
        return
    if col.null_count:
        raise _Unresolved
    offsets_buf, data_buf = col.buffers()[1], col.buffers()[2]
    width = 8 if col.type == pa.large_string() else 4
    offsets = memoryview(offsets_buf).cast("q" if width == 8 else "i")
    start, end = offsets[col.offset], offsets[col.offset + len(col)]
    if data_buf is not None and end > start:
        f.write(memoryview(data_buf)[start:end])


def write_kerchunk_json(
    tables: Tables,
    path: str | os.PathLike[str],
    *,
    con: Any = None,
    zarr_format: int = 2,
    overwrite: bool = False,
) -> Path:
    """Write ``tables`` as a kerchunk reference JSON v1 file at ``path``; return the path.

    ``con``: None, or a connection over the tables (read for the chunk rows; closed here)."""
    dest = Path(path)
    con = export_connection(tables, con)
    try:
        docs = metadata_documents(tables, zarr_format)
        with staged_file(dest, overwrite) as f:
            extras = json.dumps({EXTRAS_KEY: extras_of(tables)}, separators=(",", ":"))
            f.write(b'{"version":1,' + extras[1:-1].encode() + b',"refs":{')
            meta = ",\n".join(
                f"{json.dumps(k)}:{json.dumps(json.dumps(d, separators=(',', ':')))}"
                for k, d in docs.items()
            )
            f.write(meta.encode())
            try:
                # materialised, not streamed: DuckDB's sorted result converts to Arrow
                # faster in one piece (the fragments are about the size of the output file)
                frags = con.sql(
                    load_query("export/kerchunk_json_refs"), params={"v3": zarr_format == 3}
                ).to_arrow_table()
                for col in frags.column(0).chunks:
                    _write_string_column(f, col)
            except _Unresolved:
                check_resolvable(con, str(dest))  # raises, naming the chunk
                raise ExportError(
                    "a chunk has neither data nor a reference", source=str(dest)
                ) from None
            except Exception as e:
                if isinstance(e, ExportError | OSError):
                    raise
                raise QueryError(f"building kerchunk references failed: {e}") from e
            f.write(b"}}\n")
    finally:
        con.close()
    return dest

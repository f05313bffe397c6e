"""Save and load manifests: a folder of Parquet files (one per table) plus ``manifest.json``.

The header carries the format version; loading validates it and every table's schema.
Saving writes into a temporary sibling folder and renames it into place, so an
interrupted save leaves the previous manifest intact.

Version 2 (written now) stores ``chunks`` in the compact layout of
``vzsql.persist_chunks`` (sorted rows, one int32 column per index dimension, offsets as
gaps), split into files of at most ``rows_per_file`` rows under ``chunks/``; the other
tables keep their logical columns, written with encodings that suit them (dictionary
strings, DELTA_BINARY_PACKED integers, zstd). Version 1 folders (one plain Parquet file per
table) are still read. See docs/manifest-format.md.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from vzsql import __version__
from vzsql.atomic import staged_dir
from vzsql.errors import ManifestFormatError
from vzsql.persist_chunks import (
    iter_chunk_files,
    read_chunks,
    write_chunk_parts,
    write_chunks,
    write_parquet,
)
from vzsql.tables import TABLE_NAMES, Tables, conform, empty

if TYPE_CHECKING:
    from vzsql.resident import ResidentChunks

HEADER = "manifest.json"
FORMAT_NAME = "vzsql-manifest"
FORMAT_VERSION = 2  # written
READ_VERSIONS = (1, 2)
CHUNK_FILE = re.compile(r"part-[0-9]{5,}\.parquet")
ROWS_PER_FILE = 16 * 2**20  # chunk rows per Parquet file (version 2)
LOAD_BATCH_ROWS = 2**21  # rows decoded at a time when loading into DuckDB storage


def is_manifest_dir(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return (p / HEADER).is_file()


def write_table(table: pa.Table, path: Path) -> None:
    """One table as Parquet: dictionary strings, DELTA_BINARY_PACKED integers, zstd."""
    write_parquet(table, path, [f.name for f in table.schema if pa.types.is_integer(f.type)])


def save_tables(
    tables: Tables,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    rows_per_file: int = ROWS_PER_FILE,
    resident: ResidentChunks | None = None,
) -> Path:
    """Write ``tables`` to the folder ``path`` atomically (temp folder, then rename).

    ``resident``: the chunk rows of a manifest stored in DuckDB (``tables.chunks`` is then
    ignored), written one file at a time from there."""
    dest = Path(path)
    with staged_dir(dest, overwrite, HEADER, "vzsql manifest") as tmp:
        counts = {}
        for name in TABLE_NAMES:
            table = getattr(tables, name)
            counts[name] = table.num_rows
            if name != "chunks":
                write_table(table, tmp / f"{name}.parquet")
        if resident is None:
            files = write_chunks(tables.chunks, tmp / "chunks", rows_per_file)
        else:
            counts["chunks"] = resident.num_rows()
            parts = resident.storage_parts(rows_per_file)
            files = write_chunk_parts(parts, tmp / "chunks")
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created_by": f"vzsql {__version__}",
            "rows": counts,
            "chunk_files": files,
        }
        (tmp / HEADER).write_text(json.dumps(header, indent=2))
    return dest


def _read_header(src: Path) -> dict[str, Any]:
    """The validated ``manifest.json`` of the folder ``src``."""
    header_path = src / HEADER
    if not header_path.is_file():
        raise ManifestFormatError(f"not a vzsql manifest (no {HEADER})", source=str(src))
    try:
        header = json.loads(header_path.read_text())
    except (OSError, ValueError) as e:
        raise ManifestFormatError(f"unreadable {HEADER}: {e}", source=str(src)) from e
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        found = header.get("format") if isinstance(header, dict) else header
        raise ManifestFormatError(f"not a vzsql manifest: {found!r}", source=str(src))
    version = header.get("format_version")
    if version not in READ_VERSIONS:
        raise ManifestFormatError(
            f"manifest format version {version!r} is not supported (this vzsql reads "
            f"versions {', '.join(map(str, READ_VERSIONS))})",
            source=str(src),
        )
    if version == 2:
        files = header.get("chunk_files")
        if not isinstance(files, list) or not all(
            isinstance(f, str) and CHUNK_FILE.fullmatch(f) for f in files
        ):
            raise ManifestFormatError(f"{HEADER} lacks the list of chunk files", source=str(src))
    return header


def _read_table(src: Path, name: str) -> pa.Table:
    """One table stored whole (every table of version 1, all but ``chunks`` of version 2)."""
    file = src / f"{name}.parquet"
    try:
        table = pq.read_table(file) if file.is_file() else pq.read_table(src / name)
    except (OSError, ValueError) as e:
        raise ManifestFormatError(f"table {name!r} unreadable: {e}", source=str(src)) from e
    return conform(name, table)


def saved_chunk_rows(path: str | os.PathLike[str]) -> int | None:
    """How many chunk rows the saved manifest at ``path`` holds, from its header (None if
    the header does not say)."""
    rows = _read_header(Path(path)).get("rows")
    n = rows.get("chunks") if isinstance(rows, dict) else None
    return n if isinstance(n, int) else None


def load_tables(path: str | os.PathLike[str]) -> Tables:
    """Read a manifest folder written by ``save_tables``, validating version and schemas."""
    src = Path(path)
    header = _read_header(src)
    tables = {}
    for name in TABLE_NAMES:
        if header["format_version"] == 2 and name == "chunks":
            tables[name] = conform(name, read_chunks(src / "chunks", header["chunk_files"]))
        else:
            tables[name] = _read_table(src, name)
    return Tables(**tables)


def load_in_parts(
    path: str | os.PathLike[str],
) -> tuple[Tables, Iterator[tuple[pa.Table, pa.Array | None]]]:
    """The tables of a saved manifest without the chunk rows (an empty ``chunks``), and the
    chunk rows one stored file at a time with their original positions (``None``: in order).

    For loading into DuckDB's storage without ever holding every chunk row as Arrow.
    """
    src = Path(path)
    header = _read_header(src)
    names = [n for n in TABLE_NAMES if n != "chunks"]
    small = Tables(**{n: _read_table(src, n) for n in names}, chunks=empty("chunks"))
    if header["format_version"] == 1:
        return small, iter([(_read_table(src, "chunks"), None)])

    def parts() -> Iterator[tuple[pa.Table, pa.Array | None]]:
        any_rows = False
        for table, row in iter_chunk_files(src / "chunks", header["chunk_files"], LOAD_BATCH_ROWS):
            any_rows = True
            yield conform("chunks", table), None if row is None else pa.array(row)
        if not any_rows:  # no file, or files without rows
            yield empty("chunks"), None

    return small, parts()

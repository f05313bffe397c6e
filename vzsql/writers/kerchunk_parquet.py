"""kerchunk Parquet references: the layout fsspec's ``LazyReferenceMapper`` reads lazily.

::

    refs.parq/
      .zmetadata                 {"metadata": {".zgroup": {...}, "air/.zarray": {...}, ...},
                                  "record_size": N}
      air/refs.0.parq            columns path, offset, size, raw; N rows each
      air/refs.1.parq
      grp/t/refs.0.parq

Row ``i`` of ``refs.R.parq`` is the chunk whose C-order linear index (over the array's chunk
grid, ``ceil(shape / chunks)`` per dimension) is ``R * N + i``: every chunk slot of a record has
a row; missing chunks have a null ``path`` and ``raw`` (fill value), inline chunks carry their
bytes in ``raw``. Every file has ``record_size`` rows (padding after the last slot), as
kerchunk writes them; a record without any chunk is not written (the reader treats the missing
file as missing chunks). Metadata is Zarr v2, the only kind this layout holds.

Rows are placed with numpy scatter and Arrow ``take``; the store is written in a temporary
folder and renamed into place.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vzsql.atomic import staged_dir
from vzsql.catalog import run_named
from vzsql.errors import ExportError
from vzsql.tables import Tables
from vzsql.writers.kerchunk_extras import EXTRAS_KEY, extras_of
from vzsql.writers.kerchunk_json import check_resolvable, export_connection, reference_urls
from vzsql.writers.zarr_v2_meta import v2_documents

ZMETADATA = ".zmetadata"
DEFAULT_RECORD_SIZE = 100_000
# offset and size are REQUIRED columns with statistics: without a null count fastparquet
# (fsspec's default engine) reads integer columns as nullable, which become float64 offsets
REFS_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("raw", pa.binary()),
    ]
)


def chunk_counts(zarray: dict[str, Any]) -> list[int]:
    """Chunks per dimension, as ``LazyReferenceMapper`` computes them (``[1]`` for 0-d)."""
    counts = [math.ceil(s / c) for s, c in zip(zarray["shape"], zarray["chunks"], strict=True)]
    return counts or [1]


def linear_index(index: pa.ChunkedArray | pa.Array, counts: list[int]) -> np.ndarray:
    """C-order linear chunk number of every chunk index (numpy, no Python loop over chunks)."""
    if isinstance(index, pa.ChunkedArray):
        index = index.combine_chunks()
    n = len(index)
    ndim = len(counts)
    flat = pc.list_flatten(index).to_numpy(zero_copy_only=False).astype(np.int64)
    if n == 0:
        return np.zeros(0, np.int64)
    if flat.size == 0:  # 0-d arrays: the single chunk is number 0
        return np.zeros(n, np.int64)
    idx = flat.reshape(n, ndim)
    strides = np.ones(ndim, np.int64)
    for d in range(ndim - 2, -1, -1):
        strides[d] = strides[d + 1] * counts[d + 1]
    return idx @ strides  # type: ignore[no-any-return]


def _url_rows(url_row: np.ndarray, take: np.ndarray) -> pa.Array:
    """For each slot of a record, the row of its URL (null: inline or missing chunk)."""
    missing = take < 0
    rows = np.zeros(len(take), np.int64)
    if not missing.all():
        rows[~missing] = url_row[take[~missing]]
    return pa.array(rows, mask=missing)


def _write_array_records(
    folder: Path,
    array: str,
    chunks: pa.Table,
    counts: list[int],
    record_size: int,
    urls: pa.Array,
) -> int:
    """Write the ``refs.R.parq`` files of one array; returns how many files were written."""
    if chunks.num_rows == 0:
        return 0
    linear = linear_index(chunks.column("index"), counts)
    bad = (linear < 0) | (linear >= math.prod(counts)) if len(counts) else linear != 0
    if np.any(bad):
        first = int(np.flatnonzero(bad)[0])
        raise ExportError(
            "chunk index lies outside the array's chunk grid",
            array=array,
            chunk=chunks.column("index")[first].as_py(),
        )
    order = np.argsort(linear, kind="stable")
    linear_sorted = linear[order]
    if np.any(np.diff(linear_sorted) == 0):
        dup = int(order[int(np.flatnonzero(np.diff(linear_sorted) == 0)[0])])
        raise ExportError(
            "duplicate chunk rows", array=array, chunk=chunks.column("index")[dup].as_py()
        )
    records = linear_sorted // record_size
    bounds = np.flatnonzero(np.diff(records)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(order)]])
    url_row = pc.fill_null(chunks.column("url_row"), -1).to_numpy(zero_copy_only=False)
    data = chunks.column("data").combine_chunks()
    offsets = chunks.column("offset").to_numpy(zero_copy_only=False)
    lengths = chunks.column("length").to_numpy(zero_copy_only=False)
    is_inline = np.asarray(data.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    out_dir = folder / array
    out_dir.mkdir(parents=True, exist_ok=True)
    for s, e in zip(starts, ends, strict=True):  # a loop over record files, not chunks
        rows = order[s:e]
        record = int(records[s])
        slot = linear[rows] - record * record_size
        take_path = np.full(record_size, -1, np.int64)
        take_raw = np.full(record_size, -1, np.int64)
        inline = is_inline[rows]
        take_path[slot[~inline]] = rows[~inline]
        take_raw[slot[inline]] = rows[inline]
        off = np.zeros(record_size, np.int64)
        size = np.zeros(record_size, np.int64)
        off[slot] = offsets[rows]
        size[slot] = lengths[rows]
        table = pa.Table.from_arrays(
            [
                urls.take(_url_rows(url_row, take_path)),
                pa.array(off),
                pa.array(size),
                data.take(pa.array(take_raw, mask=take_raw < 0)).cast(pa.binary()),
            ],
            schema=REFS_SCHEMA,
        )
        pq.write_table(
            table,
            out_dir / f"refs.{record}.parq",
            compression="zstd",
            write_statistics=["offset", "size"],
        )
    return len(starts)


def write_kerchunk_parquet(
    tables: Tables,
    path: str | os.PathLike[str],
    *,
    con: Any = None,
    record_size: int = DEFAULT_RECORD_SIZE,
    overwrite: bool = False,
) -> Path:
    """Write ``tables`` as a kerchunk Parquet reference store (a folder) at ``path``.

    ``con``: None, or a connection over the tables (closed here); the rows are read from it
    one array at a time, so a manifest stored in DuckDB is never held whole as Arrow."""
    dest = Path(path)
    ref_urls = reference_urls(tables)  # row i holds url_row i
    con = export_connection(tables, con, ref_urls)
    try:
        if record_size < 1:
            raise ExportError(f"record_size must be positive, not {record_size}", source=str(dest))
        docs = v2_documents(tables)
        check_resolvable(con, str(dest))
        urls = ref_urls["url"].combine_chunks()
        with staged_dir(dest, overwrite, ZMETADATA, "kerchunk Parquet store") as tmp:
            for key, doc in docs.items():  # a loop over arrays
                if not key.endswith("/.zarray"):
                    continue
                array = key[: -len("/.zarray")]
                chunks = run_named(con, "export/kerchunk_parquet_chunks", {"array": array})
                counts = chunk_counts(doc)
                _write_array_records(tmp, array, chunks, counts, record_size, urls)
                del chunks  # one array's rows at a time
            meta = {"metadata": docs, "record_size": record_size, EXTRAS_KEY: extras_of(tables)}
            (tmp / ZMETADATA).write_text(json.dumps(meta, separators=(",", ":")))
    finally:
        con.close()
    return dest

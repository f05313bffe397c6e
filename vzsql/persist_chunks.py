"""The ``chunks`` table in its compact on-disk layout (manifest format version 2).

A chunk manifest's bytes on disk are dominated by the chunk rows. Version 2 stores the same
rows in a form Parquet's encodings compress to a few bits per column:

- rows sorted by (``array`` in order of first appearance, ``source_id``, ``offset``), so
  references of one array inside one file are neighbours; when this reorders the rows, a
  column ``row`` holds each row's original position and loading restores the order;
- ``index`` as one int32 column per dimension (``index_0``, ``index_1``, ...) plus
  ``index_ndim`` (the list length; null for a null index), DELTA_BINARY_PACKED;
- ``offset`` as ``offset_gap``: the offset minus the end (``offset + length``) of the
  previous row of the same file, or the offset itself after a change of file (contiguous
  chunks give gaps of 0), rebuilt on load with a segmented cumulative sum;
- index columns and ``row`` DELTA_BINARY_PACKED (their deltas are mostly constant); the
  other columns dictionary-encoded (``array``, ``source_id``, gaps and lengths repeat a
  few values; Parquet falls back to plain where a dictionary grows too big); zstd.

Each Parquet file decodes on its own (the first row of a file starts a new run), so a large
manifest is split into several files. Everything here is vectorised (numpy/Arrow).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vzsql.errors import ExportError, ManifestFormatError
from vzsql.tables import CHUNKS_SCHEMA

ZSTD_LEVEL = 9
ROW_GROUP = 1 << 20
INT32 = pa.int32()
LOGICAL = ("array", "index", "source_id", "offset", "length", "data")
STORED = ("array", "index_ndim", "source_id", "offset_gap", "length", "data", "row")


# -- helpers ------------------------------------------------------------------------------------
def _ints(col: pa.ChunkedArray | pa.Array, fill: int) -> np.ndarray:
    """An integer column as int64 numpy, nulls replaced by ``fill``."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if col.null_count:
        col = pc.fill_null(col.cast(pa.int64()), fill)
    return col.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def _valid(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Validity of a column as a numpy bool array."""
    if col.null_count == 0:
        return np.ones(len(col), dtype=bool)
    return pc.is_valid(col).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def run_starts(
    source_id: np.ndarray, sid_valid: np.ndarray, off_valid: np.ndarray, len_valid: np.ndarray
) -> np.ndarray:
    """True where a row does not continue the previous row's byte run.

    A row continues the run when it and the previous row have the same (non-null) file,
    both have an offset, and the previous row has a length.
    """
    n = len(source_id)
    start = np.ones(n, dtype=bool)
    if n > 1:
        cont = (
            (source_id[1:] == source_id[:-1])
            & sid_valid[1:]
            & sid_valid[:-1]
            & off_valid[1:]
            & off_valid[:-1]
            & len_valid[:-1]
        )
        start[1:] = ~cont
    return start


# -- order -----------------------------------------------------------------------------------
BIG = np.iinfo(np.int64).max  # null source ids and offsets sort last (inline chunks)


def sort_keys(
    code: np.ndarray, source_id: pa.ChunkedArray | pa.Array, offset: pa.ChunkedArray | pa.Array
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The storage-order keys of rows: array code (by first appearance), source, offset."""
    return code.astype(np.int64), _ints(source_id, BIG), _ints(offset, BIG)


def keys_ascending(code: np.ndarray, sid: np.ndarray, off: np.ndarray) -> bool:
    """Whether rows with these keys are in storage order (ties allowed)."""
    c0, c1, s0, s1, o0, o1 = code[:-1], code[1:], sid[:-1], sid[1:], off[:-1], off[1:]
    ordered = (c1 > c0) | ((c1 == c0) & ((s1 > s0) | ((s1 == s0) & (o1 >= o0))))
    return bool(ordered.all())


def storage_order(chunks: pa.Table) -> np.ndarray | None:
    """The row order of the stored layout, or None when the rows are in it already."""
    n = chunks.num_rows
    if n < 2:
        return None
    enc = chunks["array"].combine_chunks().dictionary_encode()  # codes by first appearance
    code, sid, off = sort_keys(
        enc.indices.to_numpy(zero_copy_only=False), *(chunks[c] for c in ("source_id", "offset"))
    )
    if keys_ascending(code, sid, off):
        return None
    return np.lexsort((off, sid, code))  # stable: ties keep their order


# -- encode ----------------------------------------------------------------------------------
def encode_chunks(part: pa.Table, row: np.ndarray | None) -> pa.Table:
    """Rows (already in storage order) -> the stored columns; ``row``: original positions."""
    n = part.num_rows
    index = part["index"].combine_chunks()
    ndim_col = pc.list_value_length(index).cast(pa.int16())
    ndim = _ints(ndim_col, 0)
    k = int(ndim.max()) if n else 0
    flat = pc.list_flatten(index).to_numpy(zero_copy_only=False)
    cols: dict[str, pa.Array | pa.ChunkedArray] = {
        "array": part["array"],
        "index_ndim": ndim_col,
    }
    if n and k and flat.size == n * k:  # every index has k entries: a plain reshape
        mat = flat.reshape(n, k)
        for d in range(k):
            cols[f"index_{d}"] = pa.array(np.ascontiguousarray(mat[:, d]))
    else:
        starts = np.concatenate([[0], np.cumsum(ndim)[:-1]]) if n else ndim
        for d in range(k):
            has = ndim > d
            values = np.zeros(n, dtype=np.int32)
            values[has] = flat[starts[has] + d]
            cols[f"index_{d}"] = pa.array(values, mask=~has)
    sid_col, off_col, len_col = part["source_id"], part["offset"], part["length"]
    sid, off, length = _ints(sid_col, 0), _ints(off_col, 0), _ints(len_col, 0)
    off_valid = _valid(off_col)
    start = run_starts(sid, _valid(sid_col), off_valid, _valid(len_col))
    prev_end = np.zeros(n, dtype=np.int64)
    prev_end[1:] = off[:-1] + length[:-1]
    gap = np.where(start, off, off - prev_end)
    cols["source_id"] = sid_col
    cols["offset_gap"] = pa.array(gap, mask=~off_valid) if not off_valid.all() else pa.array(gap)
    cols["length"] = len_col
    cols["data"] = part["data"]
    if row is not None:
        cols["row"] = pa.array(row.astype(np.int64))
    for extra in part.column_names:
        if extra not in LOGICAL:
            if extra in cols or extra.startswith("index_"):
                raise ExportError(
                    f"chunks column {extra!r} clashes with the stored layout's column names"
                )
            cols[extra] = part[extra]
    return pa.table(cols)


def write_parquet(
    table: pa.Table, path: Path, ints: list[str], row_group_size: int | None = None
) -> None:
    """``table`` as zstd Parquet: ``ints`` DELTA_BINARY_PACKED, every other column dictionary."""
    pq.write_table(
        table,
        path,
        compression="zstd",
        compression_level=ZSTD_LEVEL,
        use_dictionary=[c for c in table.column_names if c not in ints],
        column_encoding=dict.fromkeys(ints, "DELTA_BINARY_PACKED"),
        row_group_size=row_group_size,
    )


def write_chunk_file(table: pa.Table, path: Path) -> None:
    """One Parquet file of encoded chunk rows, with the encodings that suit each column."""
    ints = [c for c in table.column_names if c == "row" or c.startswith("index_")]
    write_parquet(table, path, ints, ROW_GROUP)


def storage_parts(
    chunks: pa.Table, rows_per_file: int
) -> Iterator[tuple[pa.Table, np.ndarray | None]]:
    """``chunks`` in storage order, ``rows_per_file`` rows at a time, each part with the
    original positions of its rows (None when the rows are in storage order already)."""
    order = storage_order(chunks)
    n = chunks.num_rows
    for lo in range(0, max(n, 1), rows_per_file):
        hi = min(n, lo + rows_per_file)
        if order is None:
            yield chunks.slice(lo, hi - lo), None
        else:
            row = order[lo:hi]
            yield chunks.take(pa.array(row)), row


def write_chunk_parts(
    parts: Iterable[tuple[pa.Table, np.ndarray | None]], folder: Path
) -> list[str]:
    """Write each part (rows in storage order, with their original positions or None) as
    one Parquet file under ``folder``; return the file names (in order)."""
    folder.mkdir()
    names = []
    for i, (part, row) in enumerate(parts):
        name = f"part-{i:05d}.parquet"
        write_chunk_file(encode_chunks(part, row), folder / name)
        names.append(name)
    return names


def write_chunks(chunks: pa.Table, folder: Path, rows_per_file: int) -> list[str]:
    """Write ``chunks`` as Parquet files under ``folder``; return their names (in order)."""
    return write_chunk_parts(storage_parts(chunks, rows_per_file), folder)


# -- decode ----------------------------------------------------------------------------------
def decode_chunks(
    stored: pa.Table, carry: tuple[int, int] | None = None
) -> tuple[pa.Table, np.ndarray | None]:
    """Stored columns of one file -> chunk rows in the contract schema, and their ``row``.

    ``carry``: when ``stored`` is a later batch of a file, ``(source_id, end)`` of the row
    before it (see ``carried``), whose byte run the batch's first row may continue.
    """
    missing = [c for c in ("array", "index_ndim", "offset_gap") if c not in stored.column_names]
    if missing:
        raise ManifestFormatError(f"chunks file lacks stored column(s) {missing}")
    n = stored.num_rows
    ndim_col = stored["index_ndim"]
    ndim = _ints(ndim_col, 0)
    k = 0
    while f"index_{k}" in stored.column_names:
        k += 1
    if n and int(ndim.max()) > k:
        raise ManifestFormatError("chunks file has fewer index columns than index_ndim says")
    mat = np.zeros((n, k), dtype=np.int32)
    for d in range(k):
        col = stored[f"index_{d}"]
        col = pc.fill_null(col, 0) if col.null_count else col
        lo = 0
        for chunk in col.chunks:
            mat[lo : lo + len(chunk), d] = chunk.to_numpy(zero_copy_only=False)
            lo += len(chunk)
    full = bool(n) and bool((ndim == k).all())  # every index has k entries
    values = mat.ravel() if full else mat[np.arange(k)[None, :] < ndim[:, None]]
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(ndim, out=offsets[1:])
    ndim_valid = _valid(ndim_col)
    index = pa.ListArray.from_arrays(
        pa.array(offsets),
        pa.array(values, type=INT32),
        mask=None if ndim_valid.all() else pa.array(~ndim_valid),
    )
    sid_col, gap_col, len_col = stored["source_id"], stored["offset_gap"], stored["length"]
    sid, gap, length = _ints(sid_col, 0), _ints(gap_col, 0), _ints(len_col, 0)
    sid_valid, gap_valid = _valid(sid_col), _valid(gap_col)
    start = run_starts(sid, sid_valid, gap_valid, _valid(len_col))  # start[0] always
    # offset[i] = gap[i] + (start[i] ? 0 : offset[i-1] + length[i-1]): a cumulative sum of
    # gap[i] + length[i-1] restarted at every run start
    step = gap.copy()
    step[1:] += np.where(start[1:], 0, length[:-1])
    if n and carry is not None and sid_valid[0] and gap_valid[0] and sid[0] == carry[0]:
        step[0] += carry[1]  # continues the previous batch's run: offset = end + gap
    total = np.cumsum(step)
    firsts = np.flatnonzero(start)  # runs are few: one per file and array
    base = total[firsts] - step[firsts]  # the running sum before each run
    offset = total - np.repeat(base, np.diff(np.append(firsts, n)))
    offset_col = pa.array(offset, mask=None if gap_valid.all() else ~gap_valid)
    columns = [
        stored["array"].cast(pa.string()),
        index,
        sid_col.cast(INT32),
        offset_col,
        len_col.cast(pa.int64()),
        stored["data"].cast(pa.binary()),
    ]
    extras = [c for c in stored.column_names if c not in STORED and not c.startswith("index_")]
    out = pa.Table.from_arrays(
        [*columns, *(stored[c] for c in extras)],
        schema=pa.schema([*CHUNKS_SCHEMA, *(stored.schema.field(c) for c in extras)]),
    )
    row = _ints(stored["row"], 0) if "row" in stored.column_names else None
    return out, row


def carried(table: pa.Table) -> tuple[int, int] | None:
    """``(source_id, offset + length)`` of the last decoded row, if a byte run can go on
    from it (file, offset and length all set), else None."""
    if table.num_rows == 0:
        return None
    last = table.slice(table.num_rows - 1, 1).select(["source_id", "offset", "length"])
    sid, off, length = (last[c][0].as_py() for c in ("source_id", "offset", "length"))
    if sid is None or off is None or length is None:
        return None
    return int(sid), int(off) + int(length)


def iter_chunk_files(
    folder: Path, files: list[str], batch_rows: int | None = None
) -> Iterator[tuple[pa.Table, np.ndarray | None]]:
    """Decoded chunk rows, a file (or, with ``batch_rows``, a batch of a file's rows) at a
    time: the rows and their original positions (or None)."""
    for name in files:
        try:
            if batch_rows is None:
                yield decode_chunks(pq.read_table(folder / name))
                continue
            carry = None
            for batch in pq.ParquetFile(folder / name).iter_batches(batch_size=batch_rows):
                table, row = decode_chunks(pa.Table.from_batches([batch]), carry)
                carry = carried(table)
                yield table, row
        except (OSError, ValueError) as e:
            raise ManifestFormatError(
                f"chunks file {name!r} unreadable: {e}", source=str(folder)
            ) from e


def read_chunks(folder: Path, files: list[str]) -> pa.Table:
    """Read and decode the chunk files, restoring the rows' original order."""
    parts, rows = [], []
    for table, row in iter_chunk_files(folder, files):
        parts.append(table)
        rows.append(row)
    if not parts:
        return CHUNKS_SCHEMA.empty_table()
    table = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    if all(r is None for r in rows):
        return table
    row = np.concatenate(
        [r if r is not None else np.full(t.num_rows, -1) for r, t in zip(rows, parts, strict=True)]
    )
    n = len(row)
    if row.min() < 0 or row.max() >= n:
        raise ManifestFormatError("chunks files: the row positions are not a permutation")
    inverse = np.full(n, -1, dtype=np.int64)
    inverse[row] = np.arange(n)
    if (inverse < 0).any():
        raise ManifestFormatError("chunks files: the row positions are not a permutation")
    return table.take(pa.array(inverse))

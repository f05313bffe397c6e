"""Chunk rows in slices and commits, so an Icechunk export streams and respects Icechunk's
per-commit limit.

``chunk_slices`` cuts the chunk rows per array into slices of at most ``SLICE_ROWS`` (only
slice bounds or row numbers: nothing is copied until ``slice_rows`` takes a slice as it is
written), so an export holds one slice of references in numpy at a time, never the whole
table as Python objects. ``commit_batches`` groups the slices into commits of at most
``MAX_REFS_PER_COMMIT`` chunk rows: Icechunk refuses commits changing more references.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.resident import RowWindow

# Icechunk's limit of chunk references changed by one commit; larger writes are split
MAX_REFS_PER_COMMIT = 50_000_000
# memory an export needs per reference of one commit: Icechunk's session holds ~500 B per
# changed reference until the commit (measured: 10M in one commit, +5.2 GB), doubled
SESSION_BYTES_PER_REF = 1000
MIN_REFS_PER_COMMIT = 1_000_000
# chunk rows turned into numpy and handed to Icechunk at a time
SLICE_ROWS = 4_000_000


def default_refs_per_commit(available: int | None = None) -> int:
    """References per commit that fit in memory: ``available`` bytes (default: what the
    system has now) over ``SESSION_BYTES_PER_REF``, between 1M and Icechunk's 50M limit."""
    if available is None:
        from vzsql.memory import available_bytes

        available = available_bytes()
    if available is None:
        return MAX_REFS_PER_COMMIT
    fit = available // SESSION_BYTES_PER_REF
    return int(max(MIN_REFS_PER_COMMIT, min(MAX_REFS_PER_COMMIT, fit)))


def chunk_slices(chunks: pa.Table, rows: int = SLICE_ROWS) -> list[tuple[str, Any]]:
    """The chunk rows per array in slices of at most ``rows``: ``(array, rows)`` where rows is
    a ``slice`` of ``chunks`` (one array) or an index array into it (several arrays).

    Nothing is copied here; ``slice_rows`` takes one slice when it is written, so an
    export holds one slice of references in numpy at a time, never the whole table.
    """
    n = chunks.num_rows
    if n == 0:
        return []
    enc = chunks["array"].combine_chunks().dictionary_encode()
    names = enc.dictionary.to_pylist()
    if len(names) == 1:
        return [(str(names[0]), slice(lo, min(n, lo + rows))) for lo in range(0, n, rows)]
    codes = enc.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    out: list[tuple[str, Any]] = []
    for s, e in zip(np.concatenate([[0], bounds]), np.append(bounds, n), strict=True):
        name = str(names[int(codes[order[s]])])
        out.extend((name, order[lo : min(int(e), lo + rows)]) for lo in range(int(s), int(e), rows))
    return out


def slice_rows(chunks: pa.Table, rows: Any) -> pa.Table:
    """The rows of one ``chunk_slices`` entry (or of a ``RowWindow`` of DuckDB storage)."""
    if isinstance(rows, RowWindow):
        return rows.take()
    if isinstance(rows, slice):
        return chunks.slice(rows.start, rows.stop - rows.start)
    return chunks.take(pa.array(rows))


def commit_batches(slices: list[tuple[str, Any]], max_refs: int) -> list[list[tuple[str, Any]]]:
    """Slices grouped into commits of at most ``max_refs`` chunk rows each (at least one)."""
    batches: list[list[tuple[str, Any]]] = [[]]
    count = 0
    for name, rows in slices:
        size = rows.stop - rows.start if isinstance(rows, slice) else len(rows)
        if count + size > max_refs and batches[-1]:
            batches.append([])
            count = 0
        batches[-1].append((name, rows))
        count += size
    return batches

"""``overlapping_ranges`` at scale: which files hold overlapping byte ranges, in numpy.

Only the reference rows count (no ``data``, a source, an offset, a length > 0). Within one
file, ranges sorted by offset overlap somewhere iff one of them ends after the next one
starts (with no such pair the ends increase too). Sorting every row is what this avoids
when rows come in order:

1. Rows are cut into *blocks* where the source stays the same and offsets do not decrease
   (one block per array and file when rows are sorted by (array, source, offset), as
   scanners emit them and v2 manifests are stored). A block overlaps within itself iff a
   range ends after the next begins: its file is flagged.
2. Blocks of a file are sorted by start; if none ends after the next begins, their ranges
   cannot overlap. Files where some do are only *candidates* (blocks may interleave without
   overlapping): their rows are sorted and compared exactly. With rows out of order (a
   block per few rows) step 2 goes straight to the rows.
3. Only the flagged files' rows go to ``queries/checks/overlapping_ranges.sql``, which
   gives the rows, their culprits and the order the SQL always gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.ops.check_fast import sql_over_rows
from vzsql.ops.checks import PROBLEMS_SCHEMA
from vzsql.tables import Tables

COLUMNS = ["source_id", "offset", "length", "data"]
# record batches of the COLUMNS of every chunk row, in row order; called once per pass
Batches = Callable[[], Iterable[pa.RecordBatch]]
_ROWS_PER_BLOCK = 4  # fewer rows a block on average: sort the rows, not the blocks


def _references(batches: Batches) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per record batch: source, offset and end of its reference rows (in row order)."""
    for batch in batches():
        ref = pc.and_(
            pc.and_(batch["data"].is_null(), batch["source_id"].is_valid()),
            pc.and_(
                batch["offset"].is_valid(), pc.fill_null(pc.greater(batch["length"], 0), False)
            ),
        )
        if ref.false_count:
            batch = batch.filter(ref)
        if batch.num_rows:
            off = batch["offset"].to_numpy()
            yield batch["source_id"].to_numpy(), off, off + batch["length"].to_numpy()


def _order(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """Positions sorting by (major, minor): one argsort of a packed int64 key if it fits."""
    if len(major) == 0:
        return np.empty(0, np.int64)
    m0, n0 = int(major.min()), int(minor.min())
    bits = (int(minor.max()) - n0).bit_length()
    if bits + (int(major.max()) - m0).bit_length() <= 62:
        key = (major.astype(np.int64) - m0) << bits
        key |= minor - n0
        return np.argsort(key)
    return np.lexsort((minor, major))


def _overlapping(src: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> set[int]:
    """Sources among whose ranges ``[lo, hi)`` (all non-empty) two intersect."""
    order = _order(src, lo)
    src, lo, hi = src[order], lo[order], hi[order]
    hit = (src[1:] == src[:-1]) & (hi[:-1] > lo[1:])
    return set(np.unique(src[:-1][hit]).tolist())


def _blocks(batches: Batches) -> tuple[np.ndarray, np.ndarray, np.ndarray, set[int], int]:
    """Blocks (source, first offset, last end), sources overlapping inside a block, row count."""
    srcs, los, his = [], [], []
    flagged: set[int] = set()
    rows = 0
    for src, off, stop in _references(batches):
        rows += len(src)
        same = src[1:] == src[:-1]
        rising = off[1:] >= off[:-1]
        inner = same & rising & (stop[:-1] > off[1:])
        if inner.any():
            flagged.update(np.unique(src[:-1][inner]).tolist())
        breaks = np.flatnonzero(~(same & rising))
        del same, rising, inner
        starts = np.concatenate(([0], breaks + 1))
        ends = np.concatenate((breaks, [len(src) - 1]))
        srcs.append(src[starts])
        los.append(off[starts])
        his.append(stop[ends])
    if not srcs:
        return np.empty(0, np.int32), np.empty(0, np.int64), np.empty(0, np.int64), flagged, 0
    return np.concatenate(srcs), np.concatenate(los), np.concatenate(his), flagged, rows


def overlapping_sources(batches: Batches) -> set[int]:
    """Ids of the sources in which two reference rows' byte ranges overlap.

    ``batches`` gives the rows twice at most (a pass over all, then the candidate files'
    rows), so the rows can stream from storage instead of being held."""
    src, lo, hi, flagged, rows = _blocks(batches)
    if len(src) * _ROWS_PER_BLOCK > rows:  # rows out of order: blocks are no shortcut
        candidates = set(np.unique(src).tolist()) - flagged
    else:
        candidates = _overlapping(src, lo, hi) - flagged
    del src, lo, hi
    if candidates:
        wanted = np.array(sorted(candidates), dtype=np.int32)
        parts = [
            (s[keep], o[keep], e[keep])
            for s, o, e in _references(batches)
            if (keep := np.isin(s, wanted)).any()
        ]
        flagged |= _overlapping(*(np.concatenate(p) for p in zip(*parts, strict=True)))
    return flagged


def overlapping_ranges(tables: Tables) -> pa.Table:
    """``overlapping_ranges``: overlapping files found here, their rows named by the SQL."""
    flagged = overlapping_sources(lambda: tables.chunks.select(COLUMNS).to_batches())
    if not flagged:
        return PROBLEMS_SCHEMA.empty_table()
    ids = pa.array(sorted(flagged), pa.int32())
    hit = pc.is_in(tables.chunks["source_id"], value_set=ids).to_numpy(zero_copy_only=False)
    return sql_over_rows("overlapping_ranges", tables, np.flatnonzero(hit))

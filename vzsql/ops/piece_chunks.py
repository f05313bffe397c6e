"""The chunk rows of many pieces put together with Arrow and numpy, no SQL pass over them.

Concatenating or stacking thousands of manifests moves millions of chunk rows, and every
DuckDB pass over them (a join, a sort, materialising the result) costs seconds and a copy
of the table. Yet what happens to a chunk row depends only on its piece and its array:
whether it is kept, which position of its index is shifted and by how much, whether a
leading index is put in front, and how its source id is renumbered. Those decisions are
made in SQL over small per-(piece, array) relations (``queries/concat_chunk_plan.sql``,
``queries/stack_chunk_plan.sql``, ``queries/union_sources.sql``) and applied here to the
rows with vectorised lookups:

- the pieces' chunk tables are stacked with ``pa.concat_tables`` (zero copy);
- the ``array``, ``offset``, ``length`` and ``data`` columns of kept rows are slices of the
  pieces' own buffers (zero copy) when the kept rows form few runs, else one filter;
- ``index`` is rebuilt from the flattened values of the pieces' lists with one numpy add
  (shift) or scatter (leading index), and ``source_id`` with one table lookup.

The row order is the pieces' order, then each piece's own row order (the order of the
chunks table is not part of the contract; saving a manifest sorts it).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import InconsistentConcatError
from vzsql.ops.relations import concat_tables
from vzsql.tables import CHUNKS_SCHEMA, Tables

Ints = np.ndarray[Any, Any]

# kept rows as slices of the pieces (zero copy) unless they break into more runs than this
# many per piece (then one filter pass is cheaper than thousands of tiny slices)
_MAX_SPANS_PER_PIECE = 8


def assemble_chunks(parts: Sequence[Tables], plan: pa.Table, source_map: pa.Table) -> pa.Table:
    """The chunk rows of ``parts`` transformed as ``plan`` says, sources renumbered.

    ``plan``: one row per kept (``piece``, ``array``) with ``d`` (index position to shift,
    null for none), ``shift`` (added to ``index[d]``) and ``lead`` (a value put in front of
    the index, null for none). Rows of (piece, array) pairs absent from the plan are dropped.
    ``source_map``: (``piece``, ``old_id``, ``source_id``) from ``queries/union_sources.sql``;
    a source id a piece does not list becomes null.
    """
    tables = [p.chunks.select(CHUNKS_SCHEMA.names) for p in parts]
    counts = np.fromiter((t.num_rows for t in tables), dtype=np.int64, count=len(tables))
    if not len(tables) or not counts.sum() or plan.num_rows == 0:
        return CHUNKS_SCHEMA.empty_table()
    runs = Runs.of(concat_tables([t.select(["array"]) for t in tables])["array"], counts, plan)
    kept = keep_rows(tables, runs)  # slices of the pieces: only index and source_id change
    runs = runs.kept()
    kept_counts = np.bincount(runs.piece, weights=runs.length, minlength=len(tables))
    source_id = remap_source_ids(kept["source_id"], kept_counts.astype(np.int64), source_map)
    return kept.set_column(
        1, CHUNKS_SCHEMA.field("index"), rebuild_index(kept["index"], runs)
    ).set_column(2, CHUNKS_SCHEMA.field("source_id"), pa.array(source_id, mask=source_id < 0))


def _ints(column: pa.ChunkedArray | pa.Array, null: int, dtype: Any = np.int64) -> Ints:
    """An integer column as numpy values of ``dtype``, nulls replaced by ``null``."""
    return pc.fill_null(column, null).to_numpy().astype(dtype, copy=False)  # type: ignore[no-any-return]


@dataclass
class Runs:
    """The stacked chunk rows as runs of one piece and one array, with the plan's decision
    for each run: a piece stores an array's chunks together, so there are a few runs per
    piece and everything decided per (piece, array) is computed per run, not per row."""

    start: Ints  # first row of each run
    length: Ints  # rows in each run
    piece: Ints  # the run's piece
    keep: Ints  # bool: the run's rows are kept
    d: Ints  # index position to shift (-1: none)
    shift: Ints  # added to index[d]
    lead: Ints  # value put in front of the index (-1: none)
    piece_rows: Ints  # first row of each piece

    @functools.cached_property
    def kept_spans(self) -> tuple[Ints, Ints, Ints]:
        """(first row, end row, piece) of each span of kept rows inside one piece: kept
        runs that follow each other in a piece are merged."""
        kept = np.flatnonzero(self.keep)
        if not kept.size:
            return kept, kept, kept
        joins = (np.diff(kept) == 1) & (np.diff(self.piece[kept]) == 0)
        first = kept[np.concatenate([[True], ~joins])]
        last = kept[np.concatenate([~joins, [True]])]
        return self.start[first], self.start[last] + self.length[last], self.piece[first]

    def kept(self) -> Runs:
        """The kept runs only (in order: the runs of the rows ``keep_rows`` returns)."""
        k = self.keep
        return Runs(
            start=self.start[k],
            length=self.length[k],
            piece=self.piece[k],
            keep=self.keep[k],
            d=self.d[k],
            shift=self.shift[k],
            lead=self.lead[k],
            piece_rows=self.piece_rows,
        )

    @property
    def few_spans(self) -> bool:
        """Kept rows form few spans: copy them as slices rather than through a row mask."""
        return len(self.kept_spans[0]) <= _MAX_SPANS_PER_PIECE * len(self.piece_rows)

    @classmethod
    def of(cls, array: pa.ChunkedArray, counts: Ints, plan: pa.Table) -> Runs:
        names = pc.unique(plan["array"])
        codes = _ints(pc.index_in(array, value_set=names), -1, np.int32)
        change = np.empty(len(codes), dtype=bool)
        change[0] = True
        np.not_equal(codes[1:], codes[:-1], out=change[1:])
        firsts = (np.cumsum(counts) - counts)[counts > 0]
        change[firsts] = True  # a run never spans two pieces
        start = np.flatnonzero(change)
        del change
        length = np.diff(np.append(start, len(codes)))
        piece_rows = np.cumsum(counts) - counts
        piece = np.searchsorted(piece_rows, start, side="right") - 1  # empty pieces share a row
        code = codes[start].astype(np.int64)
        del codes
        sentinel = len(counts) * len(names)  # the slot of arrays the plan does not name
        slot = np.where(code >= 0, piece * len(names) + code, sentinel)
        plan_slot = _ints(plan["piece"], 0) * len(names) + _ints(
            pc.index_in(plan["array"], value_set=names), 0
        )

        def per_run(values: Ints, default: Any) -> Ints:
            table = np.full(sentinel + 1, default, dtype=values.dtype)
            table[plan_slot] = values
            return table[slot]  # type: ignore[no-any-return]

        return cls(
            start=start,
            length=length,
            piece=piece,
            keep=per_run(np.ones(plan.num_rows, dtype=bool), False),
            d=per_run(_ints(plan["d"], -1), -1),
            shift=per_run(_ints(plan["shift"], 0), 0),
            lead=per_run(_ints(plan["lead"], -1), -1),
            piece_rows=piece_rows,
        )

    def rows(self, per_run: Ints) -> Ints:
        """A per-run value repeated for every row of its run."""
        return np.repeat(per_run, self.length)


def remap_source_ids(column: pa.ChunkedArray, counts: Ints, source_map: pa.Table) -> Ints:
    """The new source id (int32) of every row, -1 where null or not a source of its piece.

    A piece's old ids are small integers: slot ``base[piece] + old_id`` of one dense table
    holds the new id, so millions of rows are renumbered by one lookup instead of a join.
    """
    m_piece = _ints(source_map["piece"], 0)
    m_old = _ints(source_map["old_id"], -1)
    ok = m_old >= 0
    m_piece, m_old = m_piece[ok], m_old[ok]
    width = np.zeros(len(counts), dtype=np.int64)
    np.maximum.at(width, m_piece, m_old + 1)
    base = np.concatenate([[0], np.cumsum(width)])
    if base[-1] >= 2**31:
        raise InconsistentConcatError("more than 2**31 sources in one concatenation")
    table = np.full(int(base[-1]) + 1, -1, dtype=np.int32)
    table[base[m_piece] + m_old] = _ints(source_map["source_id"], -1)[ok]
    slot = _ints(column, -1, np.int32)
    if not slot.flags.writeable:
        slot = slot.copy()
    unknown = slot >= np.repeat(width.astype(np.int32), counts)
    unknown |= slot < 0
    slot += np.repeat(base[:-1].astype(np.int32), counts)
    np.putmask(slot, unknown, np.int32(base[-1]))
    return table[slot]  # type: ignore[no-any-return]


def rebuild_index(column: pa.ChunkedArray, runs: Runs) -> pa.Array:
    """The ``index`` lists of the rows of ``runs`` (``column`` holds exactly those rows, run
    after run), with ``index[d] += shift`` and ``lead`` (where not negative) put in front.

    Works on the flattened list values (int32, as stored): a row's element ``d`` sits at its
    list start plus ``d``, so the shift is one fancy-indexed add over all rows (rows not
    shifted add 0); a leading value moves the elements of its row one slot right (one
    scatter).
    """
    # fresh memory is expensive (page faults cost more than the arithmetic here): the
    # only row-sized arrays are the values, the lengths and the offsets of the result
    values = pc.list_flatten(column).to_numpy()
    if len(values) >= 2**31:
        raise InconsistentConcatError("more than 2**31 chunk index values in one table")
    if not values.flags.writeable:
        values = values.copy()
    lengths_col = pc.list_value_length(column)
    if column.null_count:
        lengths_col = pc.fill_null(lengths_col, 0)
    lengths = lengths_col.to_numpy().astype(np.int32, copy=False)
    del lengths_col
    nulls = column.is_null().to_numpy() if column.null_count else None
    starts = np.empty(len(lengths) + 1, dtype=np.int32)  # list offsets into values
    starts[0] = 0
    np.cumsum(lengths, out=starts[1:])
    shift = np.where(runs.d >= 0, runs.shift, 0)
    if shift.any():
        if shift.min() < 0 or (values.size and int(values.max()) + int(shift.max()) >= 2**31):
            raise InconsistentConcatError("a chunk index does not fit in 32 bits after the shift")
        shift_runs(values, lengths, starts, runs, shift)
    led = runs.lead >= 0
    if led.any():
        if runs.lead.max() >= 2**31 or len(values) + len(lengths) >= 2**31:
            raise InconsistentConcatError("a leading chunk index does not fit in 32 bits")
        has_lead = runs.rows(led) if nulls is None else runs.rows(led) & ~nulls
        new_lengths = lengths + has_lead
        new_starts = np.empty_like(starts)
        new_starts[0] = 0
        np.cumsum(new_lengths, out=new_starts[1:])
        out = np.empty(int(new_starts[-1]), dtype=values.dtype)
        out[new_starts[:-1][has_lead]] = runs.rows(runs.lead.astype(np.int32))[has_lead]
        out[
            np.arange(len(values)) + np.repeat(new_starts[:-1] + has_lead - starts[:-1], lengths)
        ] = values
        values, lengths, starts = out, new_lengths, new_starts
    return pa.ListArray.from_arrays(
        pa.array(starts),
        pa.array(values.astype(np.int32, copy=False)),
        type=CHUNKS_SCHEMA.field("index").type,
        mask=None if nulls is None else pa.array(nulls),
    )


def shift_runs(values: Ints, lengths: Ints, starts: Ints, runs: Runs, shift: Ints) -> None:
    """``index[d] += shift`` in place over the flattened ``values``, run by run.

    In a run every index has the same length L (one array's rank), so its elements ``d``
    are the strided slice ``values[start + d : end : L]``: one add per run, no per-row
    arrays. Runs whose lengths differ (malformed indices) take a per-row path; an index
    shorter than ``d + 1`` is left as it is.
    """
    if not len(lengths):
        return
    first = np.cumsum(runs.length) - runs.length  # the runs partition the rows, in order
    low = np.minimum.reduceat(lengths, first)
    high = np.maximum.reduceat(lengths, first)
    for r in np.flatnonzero(shift != 0).tolist():
        a, n, d, size = int(first[r]), int(runs.length[r]), int(runs.d[r]), int(low[r])
        if size == high[r]:
            if d < size:
                values[int(starts[a]) + d : int(starts[a + n]) : size] += shift[r]
            continue
        rows = np.arange(a, a + n)
        rows = rows[lengths[rows] > d]
        values[starts[rows] + d] += shift[r]


def keep_rows(tables: list[pa.Table], runs: Runs) -> pa.Table:
    """The kept rows of the stacked ``tables``: slices of the pieces' own tables (no copy)
    when the kept runs are few (typically: a run per piece and array), else one filter."""
    if runs.keep.all():
        return concat_tables(tables)
    if not runs.few_spans:
        return concat_tables(tables).filter(pa.array(runs.rows(runs.keep)))
    begin, end, piece = runs.kept_spans
    if not len(begin):
        return tables[0].slice(0, 0)
    bounds = runs.piece_rows
    slices = [
        tables[p].slice(int(a - bounds[p]), int(b - a))
        for p, a, b in zip(piece.tolist(), begin.tolist(), end.tolist(), strict=True)
    ]
    return concat_tables(slices)

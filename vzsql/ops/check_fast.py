"""The four chunk-row checks at scale: numpy over Arrow buffers, SQL only where problems are.

``duplicate_chunk_keys``, ``index_outside_grid``, ``missing_chunks`` and
``overlapping_ranges`` read every chunk row. As DuckDB queries over list columns they cost
seconds per 10M rows; here they share one pass that reads the ``index`` lists' flat int32
buffer with numpy (no list is ever converted) and gives each chunk its *key*: its array's
base plus its C-order position in the array's grid (index x grid strides). Arrays get
their bases in order of first appearance, so a manifest whose rows are in C order per
array (what scanners emit; what a loaded v2 manifest restores) has strictly increasing keys.

Which path runs:

- Keys strictly increasing: no duplicates, and an array's missing chunks are the gaps in
  its keys (none when it has grid-size rows). Otherwise the keys are sorted once (numpy)
  and duplicates are repeated keys.
- The rows that are problems, or may be, are then handed to the reference SQL
  (``queries/checks/<name>.sql``) as a much smaller ``chunks`` table, so kinds, details and
  order are those of the SQL: ``index_outside_grid`` gets the rows whose index does not
  fit (or whose array is unknown), ``duplicate_chunk_keys`` those rows plus the rows of
  repeated keys (a key is never shared by a fitting and a non-fitting row).
- ``missing_chunks`` is built here (its rows may outnumber the chunk rows): missing
  positions turned back into indices by mixed-radix decomposition, in the SQL's order.
- ``overlapping_ranges`` is ``vzsql.ops.check_ranges``: files are found overlapping in
  numpy (no sort when rows are in (source, offset) order per array), and only their rows
  go to the SQL.
- The whole check runs as SQL instead (``fast_chunk_checks`` returns nothing for it) when
  the ``index`` column has nulls, array names repeat or a shape is null, or the grids are
  too large for 64-bit keys.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace as replace_fields
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.ops.checks import PROBLEMS_SCHEMA, check_query
from vzsql.tables import Tables

FAST_CHECKS = ("duplicate_chunk_keys", "index_outside_grid", "missing_chunks", "overlapping_ranges")
KEY_CHECKS = ("duplicate_chunk_keys", "index_outside_grid", "missing_chunks")
_KEY_LIMIT = 2**62  # sum of the arrays' grid sizes must stay below this for int64 keys
_RUN_ROWS = 10_000  # rows are handled run by run (scalar strides) if runs average this many
_FEW_RUNS = 64  # ... or if there are at most this many runs of one array


@dataclass
class Grids:
    """Per array (in ``arrays`` order, plus one slot for unknown arrays): its grid."""

    names: list[str]
    ndim: np.ndarray  # int64; -1 for the unknown slot
    counts: list[list[int]]  # chunks per dimension, by dim (as many as the grid has)
    fits: np.ndarray  # bool: the grid has at least ndim dimensions (indices can fit)
    total: np.ndarray  # int64: product of the first ndim counts (0 if not fits)
    base: np.ndarray  # int64: first key of the array


@dataclass
class Keys:
    """Per chunk row: whether its index fits its array's grid, and its key if so."""

    fits: np.ndarray  # bool per row
    key: np.ndarray  # int64 per row (meaningless where not fits)


def _grids(tables: Tables) -> Grids | None:
    arrays = tables.arrays
    names = arrays["array"].to_pylist()
    shapes = arrays["shape"]
    if len(set(names)) != len(names) or shapes.null_count:
        return None
    ndims = [len(s) for s in shapes.to_pylist()]
    per_dim = (
        tables.grid.select(["array", "dim"])
        .group_by(["array", "dim"])
        .aggregate([("dim", "count")])
        .to_pylist()
    )
    dims: dict[str, list[tuple[int, int]]] = {}
    for row in per_dim:
        dims.setdefault(row["array"], []).append((row["dim"], row["dim_count"]))
    counts = [[n for _, n in sorted(dims.get(name, []))] for name in names]
    fits = [len(c) >= nd for c, nd in zip(counts, ndims, strict=True)]
    totals = [
        int(np.prod(c[:nd], dtype=object)) if ok else 0
        for c, nd, ok in zip(counts, ndims, fits, strict=True)
    ]
    if sum(totals) >= _KEY_LIMIT:
        return None
    return Grids(
        names=names,
        ndim=np.array([*ndims, -1], dtype=np.int64),
        counts=[*counts, []],
        fits=np.array([*fits, False]),
        total=np.array([*totals, 0], dtype=np.int64),
        base=np.zeros(len(names) + 1, dtype=np.int64),
    )


def _array_codes(chunks: pa.Table, g: Grids) -> np.ndarray:
    """Each row's array number (``len(g.names)`` for an array not in ``arrays``)."""
    codes = pc.index_in(chunks["array"], value_set=pa.array(g.names, pa.string()))
    return np.asarray(pc.fill_null(codes, len(g.names)).to_numpy(), dtype=np.int32)


def _assign_bases(codes: np.ndarray, g: Grids) -> None:
    """Bases in order of first appearance, so C-ordered rows get increasing keys."""
    starts = np.flatnonzero(np.diff(codes)) + 1 if len(codes) else np.empty(0, np.int64)
    seen = codes[np.concatenate(([0], starts))] if len(codes) else codes
    _, first = np.unique(seen, return_index=True)
    order = list(dict.fromkeys([*seen[np.sort(first)].tolist(), *range(len(g.names) + 1)]))
    base = 0
    for a in order:
        g.base[a] = base
        base += int(g.total[a])


def _strides(counts: list[int], nd: int) -> list[int]:
    return [int(np.prod(counts[k + 1 : nd], dtype=object)) for k in range(nd)]


def _fill(idx: np.ndarray, codes: np.ndarray, g: Grids, key: np.ndarray, fits: np.ndarray) -> None:
    """Keys and fit of rows with ``idx`` (rows x L int32 indices) and array ``codes``."""
    width = idx.shape[1]
    runs = np.flatnonzero(np.diff(codes)) + 1
    if len(runs) + 1 <= max(_FEW_RUNS, len(codes) // _RUN_ROWS):
        bounds = [0, *runs.tolist(), len(codes)]
        for s, e in pairwise(bounds):
            a = int(codes[s])
            if not g.fits[a] or g.ndim[a] != width:
                fits[s:e] = False
                continue
            key[s:e] = g.base[a]
            fits[s:e] = True
            for k, (n, stride) in enumerate(
                zip(g.counts[a], _strides(g.counts[a], width), strict=False)
            ):
                col = idx[s:e, k]
                fits[s:e] &= (col >= 0) & (col < n)
                key[s:e] += col.astype(np.int64) * np.int64(stride)
        return
    # many short runs: per-row lookups of the counts and strides
    na = len(g.names) + 1
    ns = np.zeros((na, width), dtype=np.int64)
    st = np.zeros((na, width), dtype=np.int64)
    for a in range(na):
        if g.fits[a] and g.ndim[a] == width:
            ns[a] = g.counts[a][:width]
            st[a] = _strides(g.counts[a], width)
    fits[:] = g.fits[codes] & (g.ndim[codes] == width)
    key[:] = g.base[codes]
    for k in range(width):
        col = idx[:, k].astype(np.int64)
        fits &= (col >= 0) & (col < ns[codes, k])
        key += col * st[codes, k]


def chunk_keys(chunks: pa.Table, g: Grids) -> Keys | None:
    """Fit and key of every chunk row, from the ``index`` lists' offsets and flat values."""
    index = chunks["index"]
    if index.null_count or any(c.values.null_count for c in index.chunks):
        return None
    codes = _array_codes(chunks, g)
    _assign_bases(codes, g)
    n = len(codes)
    key = np.empty(n, dtype=np.int64)
    fits = np.empty(n, dtype=bool)
    r0 = 0
    for lists in index.chunks:
        m = len(lists)
        offsets = np.asarray(lists.offsets)
        values = np.asarray(lists.values.to_numpy())
        lens = np.diff(offsets)
        rows = slice(r0, r0 + m)
        if m and lens.min() == lens.max():  # one width: a (rows x width) view, no copy
            width = int(lens[0])
            idx = values[offsets[0] : offsets[0] + m * width].reshape(m, width)
            _fill(idx, codes[rows], g, key[rows], fits[rows])
            r0 += m
            continue
        for width in np.unique(lens).tolist():
            which = np.flatnonzero(lens == width)
            idx = values[offsets[which][:, None] + np.arange(width)]
            k, f = key[rows][which], fits[rows][which]
            _fill(idx, codes[rows][which], g, k, f)
            key[r0 + which], fits[r0 + which] = k, f
        r0 += m
    return Keys(fits=fits, key=key)


def sql_over_rows(name: str, tables: Tables, rows: np.ndarray) -> pa.Table:
    """The reference query over the chunk rows at positions ``rows`` only."""
    if len(rows) == 0:
        return PROBLEMS_SCHEMA.empty_table()
    return check_query(replace_fields(tables, chunks=tables.chunks.take(rows)), name)


def _complement(present: np.ndarray, total: int) -> np.ndarray:
    """Positions in ``[0, total)`` not in ``present`` (sorted, unique), ascending."""
    lo = np.concatenate(([0], present + 1))
    hi = np.concatenate((present, [total]))
    lens = hi - lo
    keep = lens > 0
    lo, lens = lo[keep], lens[keep]
    starts = np.cumsum(lens) - lens
    return np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(lo - starts, lens)


def _missing_rows(name: str, lins: np.ndarray, counts: list[int]) -> pa.Table:
    nd = len(counts)
    flat = np.empty((len(lins), nd), dtype=np.int32)
    for k, stride in enumerate(_strides(counts, nd)):
        flat[:, k] = (lins // stride) % counts[k]
    chunk = pa.ListArray.from_arrays(
        pa.array(np.arange(len(lins) + 1, dtype=np.int32) * nd), pa.array(flat.ravel())
    )
    n = len(lins)
    return pa.table(
        [
            pa.repeat(pa.scalar("missing_chunk"), n),
            pa.repeat(pa.scalar("info"), n),
            pa.repeat(pa.scalar(name), n),
            chunk,
            pa.nulls(n, pa.string()),
            pa.repeat(pa.scalar("no chunk: reads as the fill value"), n),
        ],
        schema=PROBLEMS_SCHEMA,
    )


def _sort_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keys not in increasing order: the distinct keys and the repeated ones, sorted."""
    ordered = np.sort(keys)
    same = ordered[1:] == ordered[:-1]
    return ordered[np.concatenate(([True], ~same))], np.unique(ordered[1:][same])


def key_checks(tables: Tables, names: Sequence[str]) -> dict[str, pa.Table]:
    """Results of those of ``KEY_CHECKS`` in ``names`` the fast path can decide."""
    names = [n for n in names if n in KEY_CHECKS]
    g = _grids(tables) if names else None
    keys = chunk_keys(tables.chunks, g) if g is not None else None
    if g is None or keys is None:
        return {}
    out: dict[str, pa.Table] = {}
    misfits = np.flatnonzero(~keys.fits)
    all_fit = len(misfits) == 0
    fitting = keys.key if all_fit else keys.key[keys.fits]
    increasing = len(fitting) < 2 or bool(np.all(fitting[1:] > fitting[:-1]))
    if increasing:
        present, repeated = fitting, np.empty(0, np.int64)
    else:
        present, repeated = _sort_keys(fitting)
    if "index_outside_grid" in names:
        out["index_outside_grid"] = sql_over_rows("index_outside_grid", tables, misfits)
    if "duplicate_chunk_keys" in names:
        rows = misfits
        if len(repeated):
            hit = np.isin(fitting, repeated)
            hits = np.flatnonzero(hit) if all_fit else np.flatnonzero(keys.fits)[hit]
            rows = np.union1d(misfits, hits)
        out["duplicate_chunk_keys"] = sql_over_rows("duplicate_chunk_keys", tables, rows)
    if "missing_chunks" in names:
        parts = []
        for a in sorted(range(len(g.names)), key=lambda a: g.names[a]):
            nd, counts, base, total = int(g.ndim[a]), g.counts[a], g.base[a], int(g.total[a])
            if len(counts) != nd:
                continue
            lo, hi = np.searchsorted(present, [base, base + total])
            if hi - lo < total:
                lins = _complement(present[lo:hi] - base, total)
                parts.append(_missing_rows(g.names[a], lins, counts))
        out["missing_chunks"] = pa.concat_tables([PROBLEMS_SCHEMA.empty_table(), *parts])
    return out


def fast_chunk_checks(tables: Tables, names: Sequence[str]) -> dict[str, pa.Table]:
    """Problem rows of the ``FAST_CHECKS`` in ``names`` (each as its SQL would give them);
    a check missing from the result could not take the fast path: run its SQL."""
    out = key_checks(tables, names)
    if "overlapping_ranges" in names:
        from vzsql.ops.check_ranges import overlapping_ranges

        out["overlapping_ranges"] = overlapping_ranges(tables)
    return out

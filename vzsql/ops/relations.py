"""Run named queries over arbitrary Arrow tables, and stack several manifests into one relation.

Operations over several manifests (concat, merge) see them as *piece* tables: each
manifest table with a ``piece`` column (its position) and a ``pos`` column (row order in
the piece). Sources are renumbered in SQL (``queries/union_sources.sql``) so every
``source_id`` is unique across pieces, as ``Tables.union`` does for single scans; concat
and stack apply the renumbering to chunk rows in ``vzsql.ops.piece_chunks``, merge with
``queries/remap_chunk_sources.sql``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.catalog import _SAFE_CONFIG, run_named
from vzsql.tables import TABLE_NAMES, Tables, conform

_local = threading.local()


def _thread_connection() -> duckdb.DuckDBPyConnection:
    """One locked-down connection per thread, reused: opening one costs tens of ms."""
    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = duckdb.connect(config=dict(_SAFE_CONFIG))
    return con  # type: ignore[no-any-return]


def query(
    name: str, tables: Mapping[str, pa.Table], params: dict[str, Any] | None = None
) -> pa.Table:
    """Run ``queries/<name>.sql`` over ``tables`` with bound ``params``; an Arrow table.

    The tables are registered on this thread's connection for the duration of the query
    only (and unregistered after), so queries never see each other's relations.
    """
    con = _thread_connection()
    for table_name, table in tables.items():
        con.register(table_name, table)
    try:
        return run_named(con, name, params)
    finally:
        for table_name in tables:
            con.unregister(table_name)


def concat_tables(tables: Sequence[pa.Table]) -> pa.Table:
    """``tables`` as one (zero-copy): equal schemas (the usual case) concatenate without
    unifying each one; schemas that differ (nullability) are unified."""
    try:
        return pa.concat_tables(tables)
    except pa.ArrowInvalid:
        return pa.concat_tables(tables, promote_options="permissive")


def stack_pieces(
    parts: Sequence[Tables], names: Sequence[str] = TABLE_NAMES
) -> dict[str, pa.Table]:
    """``piece_<table>`` relations: every table of every part with ``piece`` and ``pos`` columns.

    Built with one concatenation per table and numpy for the two columns, so stacking
    thousands of pieces costs no Python work per row. Tables other than ``chunks`` are made
    contiguous: DuckDB pays per Arrow batch, and thousands of batches of a few rows each
    cost more to scan than copying them once (chunk rows stay zero-copy).
    """
    out: dict[str, pa.Table] = {}
    for name in names:
        tables = [getattr(part, name) for part in parts]
        counts = np.fromiter((t.num_rows for t in tables), dtype=np.int64, count=len(tables))
        stacked = concat_tables(tables)
        piece = np.repeat(np.arange(len(tables), dtype=np.int32), counts)
        pos = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(
            np.cumsum(counts) - counts, counts
        )
        if name != "chunks":
            stacked = stacked.combine_chunks()
        out[f"piece_{name}"] = stacked.append_column("piece", pa.array(piece)).append_column(
            "pos", pa.array(pos)
        )
    return out


def stack_array_rows(parts: Sequence[Tables], name: str, array: str) -> pa.Table:
    """The rows of array ``array`` in table ``name`` of every part, with ``piece`` and
    ``pos`` as in ``stack_pieces``: one filter over the stacked (zero-copy) table, the two
    columns computed for the matching rows only (not for millions of chunk rows)."""
    tables = [getattr(part, name) for part in parts]
    counts = np.fromiter((t.num_rows for t in tables), dtype=np.int64, count=len(tables))
    stacked = pa.concat_tables(tables, promote_options="permissive")
    hit = pc.equal(stacked["array"], array)
    rows = np.flatnonzero(pc.fill_null(hit, False).to_numpy())
    bounds = np.cumsum(counts) - counts
    piece = np.searchsorted(bounds, rows, side="right") - 1  # empty pieces share a bound
    out = stacked.take(pa.array(rows))  # a take gathers across batches at once: a
    # filter would make thousands of one-row batches
    return out.append_column("piece", pa.array(piece.astype(np.int32))).append_column(
        "pos", pa.array(rows - bounds[piece])
    )


def renumber_sources(pieces: dict[str, pa.Table]) -> tuple[pa.Table, pa.Table]:
    """Renumbered ``sources`` (one row per distinct URI) and the map from each piece's old
    ids to the new ones (``piece``, ``old_id``, ``source_id``): SQL over ``piece_sources``
    only, a few rows per piece."""
    mapping = query("union_sources", {"piece_sources": pieces["piece_sources"]})
    sources = conform(
        "sources", mapping.filter(mapping["is_first"]).drop_columns(["piece", "old_id", "is_first"])
    )
    return sources, mapping.select(["piece", "old_id", "source_id"])


def union_sources(pieces: dict[str, pa.Table]) -> tuple[pa.Table, pa.Table]:
    """Renumbered ``sources`` (one row per distinct URI) and ``piece_chunks`` with new ids."""
    sources, mapping = renumber_sources(pieces)
    chunks = query("remap_chunk_sources", {**pieces, "source_map": mapping})
    return sources, chunks


def conform_all(tables: dict[str, pa.Table]) -> Tables:
    """``Tables`` from query results, dropping helper columns and conforming the schemas."""
    out = {}
    for name in TABLE_NAMES:
        t = tables[name]
        keep = [c for c in t.column_names if c not in ("piece", "pos")]
        out[name] = conform(name, t.select(keep))
    return Tables(**out)

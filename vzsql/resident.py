"""Chunk rows held in DuckDB's compressed storage instead of Arrow buffers.

Held as Arrow with the contract's types (string ``array``, list<int32> ``index``, int64
``offset``/``length``, binary ``data``), a chunk reference costs ~48 B of memory; 100M of
them ~5 GB. The same rows in a table of an in-memory DuckDB database attached with
``COMPRESS`` cost ~11 B per reference once checkpointed (DuckDB compresses each column
segment: dictionary, bit-packing, frame-of-reference), queries read them without an Arrow
conversion per query, and with a memory limit DuckDB moves the table's blocks to its
temporary directory instead of failing. The table keeps the contract's column names and
logical types, so SQL written for Arrow manifests runs unchanged.

Operations written for Arrow tables get the chunk rows from ``to_arrow``: materialised for
the caller and kept only while somebody holds them (a weak reference), so a resident
manifest costs Arrow memory only while an operation runs.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import QueryError, StorageError
from vzsql.tables import conform

DATABASE: Final = "resident"
TABLE: Final = f"{DATABASE}.chunks"
SLICE_ROWS: Final = 8 * 2**20  # rows copied (then compressed) at a time
BATCH_ROWS: Final = 2**20  # rows per record batch when streaming rows out
ROW: Final = "__vzsql_row"  # original row position while loading reordered files
READ_STATEMENTS: Final = frozenset(
    {
        duckdb.StatementType.SELECT,
        duckdb.StatementType.EXPLAIN,
        duckdb.StatementType.PRAGMA,
    }
)


def attach(con: duckdb.DuckDBPyConnection) -> None:
    """Attach the compressed in-memory database that holds the chunk rows."""
    con.execute(f"ATTACH ':memory:' AS {DATABASE} (COMPRESS)").fetchall()


class ResidentChunks:
    """The ``chunks`` table of one manifest, stored in ``con``'s ``resident`` database."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._arrow: weakref.ref[pa.Table] | None = None

    @classmethod
    def fill(
        cls, con: duckdb.DuckDBPyConnection, parts: Iterable[tuple[pa.Table, pa.Array | None]]
    ) -> ResidentChunks:
        """Store chunk rows given as parts (Arrow tables in the contract schema).

        Each part may come with the original row positions of its rows (``None``: rows are
        in order; a saved folder has positions for all files or for none). Positions
        restore that order once, when the table is made. Each part is released after it
        is copied, so loading costs one part of Arrow memory.
        """
        try:
            return cls._fill(con, parts)
        except duckdb.Error as e:
            raise StorageError(f"DuckDB could not store the chunk rows: {e}") from e

    @classmethod
    def _fill(
        cls, con: duckdb.DuckDBPyConnection, parts: Iterable[tuple[pa.Table, pa.Array | None]]
    ) -> ResidentChunks:
        parts = iter(parts)
        first = next(parts, None)
        if first is None:
            raise ValueError("ResidentChunks.fill needs at least one part (an empty table)")
        reordered = first[1] is not None
        target = f"{DATABASE}.chunks_staging" if reordered else TABLE
        created = False
        for table, rows in itertools.chain([first], parts):
            part = table
            if reordered:
                if rows is None:
                    rows = pa.nulls(table.num_rows, pa.int64())
                part = table.append_column(ROW, rows.cast(pa.int64()))
            for lo in range(0, max(part.num_rows, 1), SLICE_ROWS):
                con.register("__vzsql_part", part.slice(lo, SLICE_ROWS))
                try:
                    verb = f"INSERT INTO {target}" if created else f"CREATE TABLE {target} AS"
                    con.execute(f"{verb} SELECT * FROM __vzsql_part").fetchall()
                finally:
                    con.unregister("__vzsql_part")
                created = True
                # compress what came so far: uncompressed rows cost ~60 B each
                con.execute(f"CHECKPOINT {DATABASE}").fetchall()
            del part, table
            pa.default_memory_pool().release_unused()  # the decoded file's buffers
        if reordered:
            con.execute(
                f"CREATE TABLE {TABLE} AS SELECT * EXCLUDE ({ROW}) FROM {target} ORDER BY {ROW}"
            ).fetchall()
            con.execute(f"DROP TABLE {target}").fetchall()
        con.execute(f"CHECKPOINT {DATABASE}").fetchall()
        con.execute(f"CREATE VIEW chunks AS SELECT * FROM {TABLE}").fetchall()
        return cls(con)

    def memory_bytes(self) -> tuple[int, int]:
        """Bytes of the table in memory and in DuckDB's temporary files (spilled)."""
        rows = self._con.sql(
            "SELECT memory_usage_bytes, temporary_storage_bytes FROM duckdb_memory() "
            "WHERE tag = 'IN_MEMORY_TABLE'"
        ).fetchall()
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def _fetch(self, query: str, params: list[Any] | None = None) -> pa.Table:
        cursor = self._con.cursor()
        try:
            return cursor.sql(query, params=params).to_arrow_table()
        finally:
            cursor.close()

    def rows_per_array(self) -> dict[str, int]:
        """Number of chunk rows of each array name found in the rows."""
        t = self._fetch(f'SELECT "array", count(*) AS n FROM {TABLE} GROUP BY 1')
        return dict(zip(t["array"].to_pylist(), t["n"].to_pylist(), strict=True))

    def _rows(self, where: str, params: list[Any] | None = None) -> pa.Table:
        """The rows matching ``where`` (bound ``params``), in stored order (a filtered scan
        keeps insertion order under DuckDB's default ``preserve_insertion_order``), as
        Arrow in the contract schema."""
        return conform("chunks", self._fetch(f"SELECT * FROM {TABLE} WHERE {where}", params))

    def rows_of_arrays(self, names: Sequence[str]) -> pa.Table:
        """The rows of the arrays ``names``, in stored order (contract schema)."""
        return self._rows('list_contains(?, "array")', [list(names)])

    def rows_of_sources(self, source_ids: Sequence[int]) -> pa.Table:
        """The rows referencing the sources ``source_ids``, in stored order (contract schema)."""
        return self._rows("list_contains(?, source_id)", [[int(i) for i in source_ids]])

    def num_rows(self) -> int:
        """How many chunk rows are stored."""
        return int(self._fetch(f"SELECT count(*) AS n FROM {TABLE}")["n"][0].as_py())

    def _in_storage_order(self, names: pa.Array) -> bool:
        """Whether the stored rows are in the saved layout's order (one streamed pass;
        ``names``: the arrays in order of first appearance)."""
        from vzsql.persist_chunks import keys_ascending, sort_keys

        last: tuple[np.ndarray, ...] = ()
        for batch in self.batches(["array", "source_id", "offset"]):
            code = pc.index_in(batch["array"], value_set=names).to_numpy(zero_copy_only=False)
            keys: tuple[np.ndarray, ...] = sort_keys(code, batch["source_id"], batch["offset"])
            if last:
                keys = tuple(np.concatenate([k0, k]) for k0, k in zip(last, keys, strict=True))
            if not keys_ascending(*keys):
                return False
            last = tuple(k[-1:] for k in keys)
        return True

    def storage_parts(self, rows_per_file: int) -> Iterator[tuple[pa.Table, np.ndarray | None]]:
        """The rows in the saved layout's order (``vzsql.persist_chunks``: arrays by first
        appearance, then source, then offset), ``rows_per_file`` at a time, each part with
        its rows' stored positions (None when the stored order is that order already). Only
        one part is held as Arrow; a reordering is DuckDB's sort (which spills)."""
        firsts = self._fetch(
            f'SELECT "array", min(rowid) AS first FROM {TABLE} GROUP BY 1 ORDER BY 2'
        )
        ordered = self._in_storage_order(firsts["array"].combine_chunks())
        query = (
            f"SELECT * FROM {TABLE}"  # a plain scan keeps the stored order
            if ordered
            else f"SELECT c.*, c.rowid AS {ROW} FROM {TABLE} c "
            'JOIN __vzsql_firsts f USING ("array") '
            'ORDER BY f.first, c.source_id NULLS LAST, c."offset" NULLS LAST, c.rowid'
        )
        cursor = self._con.cursor()
        try:
            cursor.register("__vzsql_firsts", firsts)
            any_rows = False
            # DuckDB's reader gives batches of exactly rows_per_file rows (the last: the rest)
            for batch in cursor.sql(query).to_arrow_reader(rows_per_file):
                any_rows = True
                part = pa.Table.from_batches([batch])
                if ordered:
                    yield conform("chunks", part), None
                else:
                    row = part[ROW].to_numpy(zero_copy_only=False)
                    yield conform("chunks", part.drop_columns([ROW])), row
            if not any_rows:
                yield self._rows("false"), None
        finally:
            cursor.close()

    def windows(self, rows: int) -> list[tuple[str, RowWindow]]:
        """The rows cut into windows of ``rows`` stored positions, per array (``(array,
        window)`` pairs in array order; each window holds at most ``rows`` rows). Only
        counts are computed here; a window's rows are read when ``RowWindow.take`` runs."""
        t = self._fetch(
            f'SELECT "array", rowid // ? AS w, count(*) AS n FROM {TABLE} '
            "GROUP BY ALL ORDER BY ALL",
            [rows],
        )
        return [
            (a, RowWindow(self, a, w * rows, (w + 1) * rows, n))
            for a, w, n in zip(
                t["array"].to_pylist(), t["w"].to_pylist(), t["n"].to_pylist(), strict=True
            )
        ]

    def rows_in_window(self, array: str, lo: int, hi: int) -> pa.Table:
        """Rows of ``array`` at stored positions ``[lo, hi)``, in stored order."""
        return self._rows('rowid >= ? AND rowid < ? AND "array" = ?', [lo, hi, array])

    def inline_arrays(self) -> set[str]:
        """Names of the arrays that have at least one inline chunk (``data``)."""
        t = self._fetch(f'SELECT DISTINCT "array" FROM {TABLE} WHERE data IS NOT NULL')
        return set(t["array"].to_pylist())

    def rows_in_chunk_ranges(self, ranges: Sequence[pa.Table]) -> pa.Table:
        """The rows (in no particular order) except those of an array in one of ``ranges``
        (each a table with at most one row per array: ``array``, ``d``: 0-based index
        position, ``c0``/``c1``: chunk numbers) whose index at ``d`` lies outside
        ``[c0, c1]``."""
        cursor = self._con.cursor()
        try:
            joins, keep = [], []
            for i, table in enumerate(ranges):  # one small hash join per selected dimension
                cursor.register(f"__vzsql_ranges{i}", table)
                joins.append(f'LEFT JOIN __vzsql_ranges{i} r{i} ON r{i}."array" = c."array"')
                keep.append(
                    f"(r{i}.d IS NULL OR "
                    f"coalesce(c.index[r{i}.d + 1] BETWEEN r{i}.c0 AND r{i}.c1, true))"
                )
            where = " AND ".join(keep) or "true"
            query = f"SELECT c.* FROM {TABLE} c {' '.join(joins)} WHERE {where}"
            return conform("chunks", cursor.sql(query).to_arrow_table())
        finally:
            cursor.close()

    def source_ids(self) -> list[int]:
        """The distinct non-null ``source_id`` values of the rows."""
        t = self._fetch(f"SELECT DISTINCT source_id FROM {TABLE} WHERE source_id IS NOT NULL")
        return [int(v) for v in t["source_id"].to_pylist()]

    def batches(self, columns: Sequence[str], rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """``columns`` of every row, in stored order, ``rows`` at a time (never all at once)."""
        cursor = self._con.cursor()
        try:
            cols = ", ".join(f'"{c}"' for c in columns)
            yield from cursor.sql(f"SELECT {cols} FROM {TABLE}").to_arrow_reader(rows)
        finally:
            cursor.close()

    def to_arrow(self) -> pa.Table:
        """The chunk rows as an Arrow table in the contract schema (shared while held)."""
        held = self._arrow() if self._arrow is not None else None
        if held is not None:
            return held
        table = self._rows("true")
        self._arrow = weakref.ref(table)
        return table


@dataclass(frozen=True)
class RowWindow:
    """The rows of one array at stored positions ``[lo, hi)``: ``size`` of them, read from
    DuckDB only when taken (an export holds one window of rows at a time)."""

    chunks: ResidentChunks
    array: str
    lo: int
    hi: int
    size: int

    def __len__(self) -> int:
        return self.size

    def take(self) -> pa.Table:
        return self.chunks.rows_in_window(self.array, self.lo, self.hi)


def refuse_writes(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Raise ``QueryError`` unless every statement of ``query`` only reads.

    A resident manifest's rows live in a database the user's SQL could otherwise change;
    manifests are immutable, so statements other than SELECT/EXPLAIN/PRAGMA are refused.
    """
    try:
        statements = con.extract_statements(query)
    except duckdb.Error as e:
        raise QueryError(f"query failed: {e}") from e
    for statement in statements:
        if statement.type not in READ_STATEMENTS:
            raise QueryError(
                f"a manifest stored in DuckDB is read-only: {statement.type.name} statements "
                "are refused (run it on m.with_storage('arrow') or your own connection)"
            )

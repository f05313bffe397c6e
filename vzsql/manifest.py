"""``Manifest``: the user-facing object, five Arrow tables with one DuckDB connection.

A Manifest is immutable: operations return new manifests. ``sql()`` runs user queries on a
locked-down connection; ``table()``/``to_polars()`` hand the tables out zero-copy.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from dataclasses import replace as replace_fields
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import pyarrow as pa

from vzsql.catalog import connect
from vzsql.errors import QueryError
from vzsql.resident import refuse_writes
from vzsql.sql_dialect import quote_array_column
from vzsql.tables import TABLE_NAMES, Tables

if TYPE_CHECKING:
    import polars as pl
    import xarray as xr

    from vzsql.resident import ResidentChunks
    from vzsql.store import ManifestStore

Storage = Literal["arrow", "duckdb"]
# open_manifest(storage="auto"): saved manifests with more chunk rows than this are held in
# DuckDB storage (~15 B per reference instead of ~49 B as Arrow)
AUTO_DUCKDB_ROWS = 20_000_000


def _check_storage(storage: str) -> None:
    if storage not in ("arrow", "duckdb"):
        raise ValueError(f"storage must be 'arrow' or 'duckdb', not {storage!r}")


class Manifest:
    """A chunk manifest: ``sources``, ``arrays``, ``grid``, ``chunks`` and ``groups`` tables."""

    # files a scan could not read (uri, kind, error, reason; see vzsql.isolation), or None
    failures: pa.Table | None = None
    # locations reads may touch (vzsql.allowlist.AllowList); None: built here, URL rules only
    allow: Any = None

    def __init__(
        self,
        tables: Tables,
        *,
        storage: Storage = "arrow",
        memory_limit: str | None = None,
        temp_directory: str | None = None,
    ) -> None:
        """``storage="duckdb"`` keeps the chunk rows in DuckDB's compressed storage (12-15 B
        per reference instead of ~49 B as Arrow; see ``vzsql.resident``), spilling to
        ``temp_directory`` beyond ``memory_limit`` (DuckDB settings, e.g. ``"4GB"``)."""
        self._resident: ResidentChunks | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        _check_storage(storage)
        if storage == "arrow":
            self._tables = tables
            return
        self._fill_resident(tables, [(tables.chunks, None)], memory_limit, temp_directory)

    def _fill_resident(
        self,
        tables: Tables,
        parts: Iterable[tuple[pa.Table, pa.Array | None]],
        memory_limit: str | None,
        temp_directory: str | None,
    ) -> None:
        from vzsql.resident import ResidentChunks

        self._tables = replace_fields(tables, chunks=tables.chunks.schema.empty_table())
        self._con = connect(
            self._tables, resident=True, memory_limit=memory_limit, temp_directory=temp_directory
        )
        self._resident = ResidentChunks.fill(self._con, parts)

    @classmethod
    def _resident_from_parts(
        cls,
        tables: Tables,
        parts: Iterable[tuple[pa.Table, pa.Array | None]],
        memory_limit: str | None = None,
        temp_directory: str | None = None,
    ) -> Manifest:
        """A ``storage="duckdb"`` manifest whose chunk rows arrive in parts (a saved folder's
        files), so loading never holds all of them as Arrow."""
        m = cls.__new__(cls)
        m._fill_resident(tables, parts, memory_limit, temp_directory)
        return m

    # -- pickling (dask workers, process pools): tables travel as Arrow, connections don't --
    def __getstate__(self) -> dict[str, Any]:
        return {
            "tables": self.tables,
            "storage": self.storage,
            "failures": self.failures,
            "allow": self.allow,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Manifest.__init__(self, state["tables"], storage=state["storage"])
        self.failures, self.allow = state["failures"], state["allow"]

    # -- tables ---------------------------------------------------------------------------
    @property
    def storage(self) -> Storage:
        """Where the chunk rows live: ``"arrow"`` (Arrow buffers) or ``"duckdb"``."""
        return "arrow" if self._resident is None else "duckdb"

    def with_storage(self, storage: Storage, **options: Any) -> Manifest:
        """The same manifest with its chunk rows in ``storage`` (``"arrow"``/``"duckdb"``).

        Options: ``memory_limit``, ``temp_directory`` (``"duckdb"`` only).
        """
        if storage == self.storage and not options:
            return self
        out = Manifest(self.tables, storage=storage, **options)
        out.failures = self.failures  # the allow-list is carried by derives_allow
        return out

    @property
    def tables(self) -> Tables:
        """The five tables as Arrow (chunk rows of a ``"duckdb"`` manifest are materialised
        for the caller and shared while held)."""
        if self._resident is None:
            return self._tables
        return replace_fields(self._tables, chunks=self._resident.to_arrow())

    @property
    def resident(self) -> ResidentChunks | None:
        """The chunk rows of a ``storage="duckdb"`` manifest (None for Arrow storage):
        operations that can work an array or a batch at a time read them from here."""
        return self._resident

    def tables_without_chunks(self) -> Tables:
        """The tables with an empty ``chunks`` table (no chunk rows materialised)."""
        if self._resident is None:
            return replace_fields(self._tables, chunks=self._tables.chunks.schema.empty_table())
        return self._tables

    def memory_bytes(self) -> int:
        """Bytes this manifest holds in memory (Arrow buffers, DuckDB's resident table)."""
        small = sum(getattr(self._tables, n).nbytes for n in TABLE_NAMES if n != "chunks")
        if self._resident is None:
            return small + self._tables.chunks.nbytes
        return small + self._resident.memory_bytes()[0]

    def table(self, name: str) -> pa.Table:
        """The table ``name`` as a ``pyarrow.Table``."""
        if name not in TABLE_NAMES:
            raise KeyError(f"no table {name!r}; tables are {', '.join(TABLE_NAMES)}")
        if name == "chunks" and self._resident is not None:
            return self._resident.to_arrow()
        return getattr(self._tables, name)  # type: ignore[no-any-return]

    to_arrow = table

    def to_polars(self, name: str) -> pl.DataFrame:
        """The table ``name`` as a ``polars.DataFrame`` (zero copy where Arrow allows)."""
        import polars as pl

        return pl.from_arrow(self.table(name))  # type: ignore[return-value]

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The manifest's DuckDB connection (tables registered, file access disabled)."""
        if self._con is None:
            self._con = connect(self._tables)
        return self._con

    def query_connection(self) -> duckdb.DuckDBPyConnection:
        """A new connection over this manifest's five tables, for one operation (the caller
        closes it). With DuckDB storage it is a cursor on the manifest's database, where
        ``chunks`` is the stored table: queries read it there, nothing is materialised."""
        if self._resident is None:
            return connect(self._tables)
        cursor = self.connection.cursor()
        for name in TABLE_NAMES:
            if name != "chunks":
                cursor.register(name, getattr(self._tables, name))
        return cursor

    def sql(
        self, query: str, params: dict[str, Any] | list[Any] | None = None
    ) -> duckdb.DuckDBPyRelation:
        """Run ``query`` over the manifest tables; parameters are bound (``$name`` or ``?``).

        Returns a DuckDB relation: ``.show()``, ``.to_arrow_table()``, ``.pl()``, ``.df()``.
        The column ``array`` may be written unquoted (see ``vzsql.sql_dialect``).
        """
        query = quote_array_column(query)
        if self._resident is not None:
            refuse_writes(self.connection, query)
        try:
            if params:
                return self.connection.sql(query, params=params)
            return self.connection.sql(query)
        except duckdb.Error as e:
            raise QueryError(f"query failed: {e}") from e

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the manifest as a folder of Parquet files (see docs/manifest-format.md)."""
        from vzsql.persist import save_tables

        # DuckDB storage: written a file at a time from there, never whole as Arrow
        save_tables(self._tables, path, overwrite=overwrite, resident=self._resident)

    # -- reading --------------------------------------------------------------------------
    def to_store(self, **storage_options: Any) -> ManifestStore:
        """A read-only zarr v3 ``Store`` serving the manifest (original bytes, range reads)."""
        from vzsql.store import ManifestStore

        return ManifestStore(self, **storage_options)

    def to_xarray(self, **kwargs: Any) -> xr.Dataset:
        """A lazy ``xarray.Dataset`` over the original bytes, CF-decoded like the originals."""
        from vzsql.xarray_backend import open_manifest_dataset

        return open_manifest_dataset(self, **kwargs)

    # -- publishing: Icechunk and native Zarr --------------------------------------------
    def to_icechunk(self, target: Any, **kwargs: Any) -> str:
        """Commit the manifest to an Icechunk repository (path, Storage or Repository).

        Keywords: ``branch``, ``message``, ``tag``, ``append_dim``, ``overwrite``,
        ``checksum``, ``storage_options``, ``retries``, ``refs_per_manifest`` (manifest
        splitting of a new repository), ``max_refs_per_commit`` (writes larger than
        Icechunk's per-commit limit become several commits; see
        ``vzsql.writers.icechunk.to_icechunk``). Returns the (last) snapshot id.
        """
        from vzsql.writers.icechunk import to_icechunk

        # DuckDB storage: rows read a window at a time, never the whole table as Arrow
        con = self._stored_rows_connection()
        return to_icechunk(self._tables, target, resident=self._resident, con=con, **kwargs)

    def to_zarr(self, dest: Any, **kwargs: Any) -> None:
        """Copy the referenced bytes into a native Zarr v3 store (directory or zarr Store).

        Keywords: ``overwrite``, ``progress``, ``storage_options`` (see
        ``vzsql.writers.zarr_copy.to_zarr``). Chunks keep their codecs: nothing is re-encoded.
        """
        from vzsql.writers.zarr_copy import to_zarr

        kwargs.setdefault("allow", self.allow)  # reads checked like the store's
        to_zarr(self.tables, dest, **kwargs)

    # -- publishing: kerchunk -------------------------------------------------------------
    def _stored_rows_connection(self) -> duckdb.DuckDBPyConnection | None:
        """For DuckDB storage, a connection where ``chunks`` is the stored table, so a writer
        built on SQL never sees the rows as Arrow; None for Arrow storage (the writer
        registers the tables itself)."""
        return None if self._resident is None else self.query_connection()

    def to_kerchunk(
        self,
        path: str | os.PathLike[str],
        format: str = "json",
        *,
        zarr_format: int = 2,
        record_size: int = 100_000,
        overwrite: bool = False,
    ) -> None:
        """Write kerchunk references: reference JSON v1 (``format="json"``) or the Parquet
        layout fsspec reads lazily (``format="parquet"``, Zarr v2 metadata, ``record_size``
        references per file). ``zarr_format=3`` writes ``zarr.json`` documents (JSON only).
        Variable-length chunks and codecs without a numcodecs equivalent are an ``ExportError``.
        """
        from vzsql.errors import ExportError

        if format == "json":
            from vzsql.writers.kerchunk_json import write_kerchunk_json

            write_kerchunk_json(
                self._tables,
                path,
                con=self._stored_rows_connection(),
                zarr_format=zarr_format,
                overwrite=overwrite,
            )
        elif format == "parquet":
            if zarr_format != 2:
                raise ExportError("kerchunk Parquet references hold Zarr v2 metadata only")
            from vzsql.writers.kerchunk_parquet import write_kerchunk_parquet

            write_kerchunk_parquet(
                self._tables,
                path,
                con=self._stored_rows_connection(),
                record_size=record_size,
                overwrite=overwrite,
            )
        else:
            raise ExportError(f"unknown kerchunk format {format!r} (json or parquet)")

    # -- algebra (vzsql.ops) ---------------------------------------------------------------
    def isel(self, **indexers: slice) -> Manifest:
        """Subset by position on chunk boundaries (``time=slice(0, 365)``); see vzsql.ops.subset."""
        from vzsql.ops.subset import isel

        return isel(self, **indexers)

    def sel(self, **indexers: Any) -> Manifest:
        """Subset by coordinate labels (``time=slice("2020-01-01", "2020-12-31")``, inclusive)."""
        from vzsql.ops.subset import sel

        return sel(self, **indexers)

    def rechunk(self, array: str | None, dim: str, n: int) -> Manifest:
        """Chunks of ``n`` elements along ``dim`` for ``array`` (every array having ``dim``
        when None), split or merged by byte arithmetic; see ``vzsql.ops.rechunk``."""
        from vzsql.ops.rechunk import rechunk

        return rechunk(self, {dim: n}, arrays=None if array is None else [array])

    def check(self, *, strict: bool = False, **kwargs: Any) -> pa.Table:
        """Consistency problems, one row each (kind, severity, array, chunk, source, detail).

        ``strict=True`` raises ``CheckFailedError`` if any has severity ``error``.
        """
        from vzsql.ops.checks import check

        return check(self, strict=strict, **kwargs)

    def stats(self) -> dict[str, pa.Table]:
        """Archive analytics: per array, per source, chunk sizes, coverage gaps (Arrow tables)."""
        from vzsql.ops.stats import stats

        return stats(self)

    def replace(self, *, validate: bool = True, **tables: Any) -> Manifest:
        """A manifest with some tables replaced (Arrow or polars), schema- and check()-validated."""
        from vzsql.ops.edit import replace

        return replace(self, validate=validate, **tables)

    def rename_sources(self, old_prefix: str, new_prefix: str) -> Manifest:
        """A manifest whose source URIs starting with ``old_prefix`` start with ``new_prefix``."""
        from vzsql.ops.edit import rename_sources

        return rename_sources(self, old_prefix, new_prefix)

    def report(self, path: str | os.PathLike[str]) -> None:
        """Write a self-contained HTML page describing the archive's layout (plots + numbers)."""
        from vzsql.ops.report import write_report

        write_report(self, path)

    # -- description ----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """Counts of sources, arrays, chunks and referenced bytes."""
        row = self.connection.execute(
            """
            SELECT (SELECT count(*) FROM sources) AS sources,
                   (SELECT count(*) FROM arrays) AS arrays,
                   (SELECT count(*) FROM chunks) AS chunks,
                   (SELECT count(*) FROM chunks WHERE data IS NOT NULL) AS inline_chunks,
                   (SELECT coalesce(sum(length), 0) FROM chunks WHERE data IS NULL)
                       AS referenced_bytes,
                   (SELECT count(*) FROM groups) AS groups
            """
        ).fetchall()[0]
        keys = ("sources", "arrays", "chunks", "inline_chunks", "referenced_bytes", "groups")
        return dict(zip(keys, (int(v) for v in row), strict=True))

    def __repr__(self) -> str:
        i = self.info()
        return (
            f"<vzsql.Manifest: {i['sources']} sources, {i['arrays']} arrays, "
            f"{i['chunks']} chunks ({i['inline_chunks']} inline), {i['referenced_bytes']} bytes>"
        )


def open_manifest(
    path: str | os.PathLike[str],
    *,
    allow: Any = None,
    storage: Storage | Literal["auto"] = "auto",
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> Manifest:
    """Open a manifest saved with ``Manifest.save``.

    Reads of its sources are limited to ``allow`` (URL prefixes, or ``"recorded"`` to confirm
    the sources it records), ``VZSQL_ALLOW`` and the folder holding the manifest; see
    ``vzsql.allowlist``. ``storage="duckdb"`` loads the chunk rows a batch at a time into
    DuckDB's compressed storage (see ``Manifest``), for manifests too large for Arrow;
    ``"auto"`` (the default) does so above ``AUTO_DUCKDB_ROWS`` chunk rows (20M).
    """
    from vzsql.allowlist import for_opened_manifest
    from vzsql.persist import load_in_parts, load_tables, saved_chunk_rows

    if storage == "auto":
        rows = saved_chunk_rows(path)
        storage = "duckdb" if rows is not None and rows > AUTO_DUCKDB_ROWS else "arrow"
    _check_storage(storage)
    if storage == "duckdb":
        small, parts = load_in_parts(path)
        m = Manifest._resident_from_parts(small, parts, memory_limit, temp_directory)
    else:
        m = Manifest(load_tables(path))
    m.allow = for_opened_manifest(path, allow, m.table("sources"))
    return m


# -- allow-lists of derived manifests (vzsql.allowlist, rule 4) --------------------------------
def _manifests_in(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Manifest]:
    """The manifests an operation was given: arguments, or items of list/tuple arguments."""
    out: list[Manifest] = []
    for a in (*args, *kwargs.values()):
        if isinstance(a, Manifest):
            out.append(a)
        elif isinstance(a, list | tuple):
            out.extend(x for x in a if isinstance(x, Manifest))
    return out


def _uris(m: Manifest) -> list[str]:
    return m.table("sources")["uri"].to_pylist()  # type: ignore[no-any-return]


def derives_allow[**P, R](op: Callable[P, R]) -> Callable[P, R]:
    """Wrap an operation on manifests so the allow-list travels with its result.

    While ``op`` runs, bytes it reads itself (coordinate values) must pass its inputs'
    lists; the manifest it returns gets ``allowlist.derived`` of them (``renamed`` for
    ``rename_sources``, which keeps source ids). Results that are one of the inputs are
    left alone; operations given no manifest (paths to scan), or a manifest without a
    list (built in the program), are run as they are.
    """
    from vzsql.allowlist import derived, reading_under, renamed

    @functools.wraps(op)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        inputs = _manifests_in(args, kwargs)
        if not inputs or any(m.allow is None for m in inputs):
            # no list to carry (result: None); reads stay under any enclosing operation's
            return op(*args, **kwargs)
        given = [(m.allow, _uris(m)) for m in inputs]
        with reading_under(derived(given, {u for _, us in given for u in us})):
            out = op(*args, **kwargs)
        if not isinstance(out, Manifest) or any(out is m for m in inputs):
            return out
        if op.__name__ == "rename_sources":
            ids = inputs[0].table("sources")["source_id"].to_pylist()
            before = dict(zip(ids, given[0][1], strict=True))
            after = zip(out.table("sources")["source_id"].to_pylist(), _uris(out), strict=True)
            out.allow = renamed(inputs[0].allow, ((before[i], u) for i, u in after if i in before))
        else:
            out.allow = derived(given, _uris(out))
        return out

    return run


# every Manifest method returning a Manifest is an operation deriving one (isel, sel, ...)
for _name, _method in list(vars(Manifest).items()):
    if callable(_method) and getattr(_method, "__annotations__", {}).get("return") == "Manifest":
        setattr(Manifest, _name, derives_allow(_method))

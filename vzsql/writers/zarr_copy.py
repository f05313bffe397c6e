"""Manifest tables -> a native Zarr v3 store: the referenced bytes copied, never re-encoded.

Every chunk is written under its Zarr key exactly as stored in the source (the array keeps
the manifest's codecs, so decoding is unchanged); inline chunks are written from
``chunks.data``. Reads are batched per source: rows are ordered by (source, offset) and
each batch is one ``os.pread`` sweep over one open file (local) or one
``obstore.get_ranges`` call (object stores), never one open per chunk.

A local destination is built in a temporary directory next to it and renamed into place,
so a crash leaves no half-written store at the destination. For a ``zarr`` Store object
chunks are written first and metadata last, and what was written is deleted on failure.
Sources are checked against the manifest's allow-list (``vzsql.allowlist.check_read``, as
the store checks them) and their scan record (size, ETag) before copying.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.allowlist import check_read
from vzsql.atomic import move_into_place
from vzsql.byte_ranges import s3_config
from vzsql.errors import ChunkReadError, ExportError, StaleSourceError, VzsqlError
from vzsql.sources import local_path, stat_source
from vzsql.tables import Tables
from vzsql.writers.icechunk import documents
from vzsql.writers.icechunk_batches import chunk_slices, slice_rows
from vzsql.writers.icechunk_refs import array_ndims, chunk_keys, first_line, index_matrix, set_all
from vzsql.writers.ref_bounds import check_refs_inside_sources
from vzsql.zarr_meta import hierarchy

BATCH_BYTES = 64 * 2**20  # bytes read (and held) per batch
WRITE_CONCURRENCY = 256


def check_sources_unchanged(
    sources: pa.Table, storage_options: dict[str, Any] | None = None
) -> None:
    """Raise ``StaleSourceError`` if a source's size or ETag differs from its scan record."""
    for uri, size, etag in zip(
        sources["uri"].to_pylist(),
        sources["size"].to_pylist(),
        sources["etag"].to_pylist(),
        strict=True,
    ):
        now = stat_source(uri, storage_options)
        if (size is not None and now.size != size) or (
            etag and now.etag and now.etag.strip('"') != etag.strip('"')
        ):
            raise StaleSourceError(
                f"source changed since it was scanned (size {size} -> {now.size}, "
                f"etag {etag} -> {now.etag})",
                source=uri,
            )


def _virtual_batches(tables: Tables) -> Iterator[tuple[str, pa.Table]]:
    """Virtual chunk rows grouped by source, ordered by offset, cut at ``BATCH_BYTES``."""
    chunks = tables.chunks.filter(pc.is_null(tables.chunks["data"]))
    if chunks.num_rows == 0:
        return
    chunks = chunks.sort_by([("source_id", "ascending"), ("offset", "ascending")])
    sid = chunks["source_id"].to_numpy()
    length = chunks["length"].to_numpy()
    uri_of = dict(
        zip(tables.sources["source_id"].to_pylist(), tables.sources["uri"].to_pylist(), strict=True)
    )
    new_source = np.concatenate([[True], sid[1:] != sid[:-1]])
    bucket = (np.cumsum(length) - length) // BATCH_BYTES  # by bytes read before the row
    cut = new_source | np.concatenate([[True], bucket[1:] != bucket[:-1]])
    starts = np.flatnonzero(cut)
    ends = np.concatenate([starts[1:], [len(sid)]])
    for s, e in zip(starts, ends, strict=True):
        yield uri_of[int(sid[s])], chunks.slice(int(s), int(e - s))


def read_ranges(
    uri: str,
    offsets: np.ndarray,
    lengths: np.ndarray,
    storage_options: dict[str, Any] | None = None,
) -> list[bytes]:
    """The bytes of many ranges of one source, in one sweep (short reads are errors)."""
    path = local_path(uri)
    try:
        if path is not None:
            fd = os.open(path, os.O_RDONLY)
            try:
                out = [os.pread(fd, int(n), int(o)) for o, n in zip(offsets, lengths, strict=True)]
            finally:
                os.close(fd)
        else:
            import obstore

            store, key = _object_store(uri, storage_options or {})
            out = [
                bytes(b)
                for b in obstore.get_ranges(
                    store, key, starts=offsets.tolist(), lengths=lengths.tolist()
                )
            ]
    except OSError as e:
        raise ChunkReadError(f"cannot read source: {e.strerror or e}", source=uri) from e
    except Exception as e:
        raise ChunkReadError(f"cannot read source: {first_line(e)}", source=uri) from e
    short = [i for i, (b, n) in enumerate(zip(out, lengths, strict=True)) if len(b) != n]
    if short:
        i = short[0]
        raise ChunkReadError(
            f"short read: {len(out[i])} of {int(lengths[i])} bytes at offset {int(offsets[i])}",
            source=uri,
        )
    return out


def _object_store(uri: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    """The obstore store and key for a remote ``uri`` (S3 options as ``byte_ranges`` reads them)."""
    from obstore.store import S3Store, from_url

    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme in ("s3", "s3a"):
        config, client = s3_config(storage_options)
        store = S3Store(parsed.netloc, config=config or None, client_options=client or None)  # type: ignore[arg-type]
        return store, key
    return from_url(f"{parsed.scheme}://{parsed.netloc}"), key


def check_sources_allowed(tables: Tables, allow: Any = None) -> None:
    """Refuse (``SourceNotAllowedError``) before anything is read or stat'ed if a referenced
    source is not allowed (``vzsql.allowlist.check_read``, the store's check)."""
    used = pc.unique(tables.chunks.filter(pc.is_null(tables.chunks["data"]))["source_id"])
    sources = tables.sources.filter(pc.is_in(tables.sources["source_id"], used))
    for uri in sources["uri"].to_pylist():
        check_read(allow, uri)


def copy_into(
    store: Any,
    tables: Tables,
    *,
    progress: bool = True,
    storage_options: dict[str, Any] | None = None,
    allow: Any = None,
) -> list[str]:
    """Write every chunk, then the metadata, into a zarr ``Store``; return the keys written.

    Each source is checked against ``allow`` (``vzsql.allowlist``) before it is read.
    """
    from tqdm.auto import tqdm
    from zarr.core.sync import sync

    ndims = array_ndims(tables.arrays)
    written: list[str] = []
    with tqdm(
        total=tables.chunks.num_rows, unit="chunk", desc="zarr copy", disable=not progress
    ) as bar:
        inline = tables.chunks.filter(pc.is_valid(tables.chunks["data"]))
        for name, rows in chunk_slices(inline):
            part = slice_rows(inline, rows)
            keys = chunk_keys(name, index_matrix(part["index"], ndims[name]))
            sync(set_all(store, keys, part["data"].to_pylist(), WRITE_CONCURRENCY))
            written += keys
            bar.update(len(keys))
        for uri, batch in _virtual_batches(tables):
            check_read(allow, uri)  # security: the store's check (vzsql.allowlist)
            data = read_ranges(
                uri, batch["offset"].to_numpy(), batch["length"].to_numpy(), storage_options
            )
            flat_keys = _batch_keys(batch, ndims)
            sync(set_all(store, flat_keys, data, WRITE_CONCURRENCY))
            written += flat_keys
            bar.update(len(flat_keys))
    docs = documents(hierarchy(tables))
    root = docs.pop("zarr.json", None)
    sync(set_all(store, list(docs), list(docs.values()), WRITE_CONCURRENCY))
    if root is not None:  # the root document last: until it exists there is no store
        sync(set_all(store, ["zarr.json"], [root], WRITE_CONCURRENCY))
    return written + list(docs) + ["zarr.json"]


def _batch_keys(batch: pa.Table, ndims: dict[str, int]) -> list[str]:
    """Chunk keys of a batch's rows, in row order (one Arrow pass per array)."""
    names = batch["array"].to_numpy(zero_copy_only=False)
    keys = np.empty(batch.num_rows, dtype=object)
    for name in np.unique(names):
        rows = np.flatnonzero(names == name)
        keys[rows] = chunk_keys(
            str(name), index_matrix(batch["index"].take(pa.array(rows)), ndims[str(name)])
        )
    return keys.tolist()  # type: ignore[no-any-return]


def to_zarr(
    tables: Tables,
    dest: Any,
    *,
    overwrite: bool = False,
    progress: bool = True,
    storage_options: dict[str, Any] | None = None,
    check_sources: bool = True,
    allow: Any = None,
) -> None:
    """Copy the manifest into a Zarr v3 store at ``dest`` (a directory path or a zarr Store).

    ``allow``: the manifest's ``vzsql.allowlist.AllowList`` (None: URL rules and
    ``VZSQL_ALLOW``); a disallowed source is refused before anything is read or written.
    """
    check_sources_allowed(tables, allow)
    check_refs_inside_sources(tables)
    if check_sources:
        check_sources_unchanged(tables.sources, storage_options)
    if not isinstance(dest, str | os.PathLike):
        _to_store_object(
            tables,
            dest,
            overwrite=overwrite,
            progress=progress,
            storage_options=storage_options,
            allow=allow,
        )
        return
    target = Path(os.fspath(dest)).expanduser().absolute()
    if target.exists() and not overwrite:
        raise ExportError(
            "destination exists; pass overwrite=True to replace it", source=str(target)
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".vzsql-tmp", dir=target.parent)
        )
    except OSError as e:
        raise ExportError(
            f"cannot write next to the destination: {e.strerror or e}", source=str(target)
        ) from e
    try:
        from zarr.storage import LocalStore

        copy_into(
            LocalStore(tmp),
            tables,
            progress=progress,
            storage_options=storage_options,
            allow=allow,
        )
        _replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, target: Path) -> None:
    """Move the finished copy into place; an old store is only removed once it is replaced."""
    try:
        move_into_place(tmp, target)
    except OSError as e:
        raise ExportError(
            f"cannot move the copy into place: {e.strerror or e}", source=str(target)
        ) from e


def _to_store_object(
    tables: Tables,
    store: Any,
    *,
    overwrite: bool,
    progress: bool,
    storage_options: dict[str, Any] | None,
    allow: Any = None,
) -> None:
    from zarr.core.sync import sync

    try:
        empty = sync(store.is_empty(""))
    except Exception as e:
        raise ExportError(f"destination is not a usable zarr Store: {e}") from e
    if not empty:
        if not overwrite:
            raise ExportError("destination store is not empty; pass overwrite=True to replace it")
        sync(store.clear())
    try:
        copy_into(store, tables, progress=progress, storage_options=storage_options, allow=allow)
    except BaseException as e:
        with contextlib.suppress(Exception):  # best effort: the error below matters more
            sync(store.clear())
        if isinstance(e, VzsqlError | KeyboardInterrupt):
            raise
        raise ExportError(f"copy into the store failed: {e}") from e

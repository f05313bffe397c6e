"""Chunk rows of one array -> Icechunk references and native chunks, in bulk.

Icechunk's vectorised ``set_virtual_refs_arr`` takes a dense block of the chunk grid (flat
C-order arrays of locations, offsets and lengths; an empty location leaves a position
untouched) and **one** checksum for the whole block. Each reference must carry the checksum
of its own source as recorded at scan time, so rows are grouped by checksum value (one
group per source, or a single group when no checksums are written) and each group is sent
as the bounding box of its chunk indices. Files of an archive usually own a contiguous slab
of the grid, so the boxes hold few or no holes; a group whose box would be mostly holes
(sources interleaved chunk by chunk) is sent with ``set_virtual_refs`` instead.

Inline chunks (``chunks.data``) are written as native chunks through the store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import ExportError

if TYPE_CHECKING:
    from icechunk import IcechunkStore

Checksum = str | dt.datetime | None

# a group's bounding box may hold this many times its rows before the per-chunk API is used
MAX_BOX_FILL = 8
MIN_BOX_SLACK = 4096
# native chunk writes awaited together
NATIVE_BATCH = 2048


@dataclass(frozen=True)
class SourceRefs:
    """Per source id: its URI and the checksum its references carry (aligned arrays)."""

    uri: list[str]
    checksum: list[Checksum]
    index_of: dict[int, int]  # source_id -> position in the lists


def index_matrix(index: pa.ChunkedArray | pa.Array, ndim: int) -> np.ndarray:
    """The ``chunks.index`` lists as an ``(n, ndim)`` int64 matrix (no per-row Python)."""
    if isinstance(index, pa.ChunkedArray):
        index = index.combine_chunks()
    n = len(index)
    if ndim == 0:
        return np.zeros((n, 0), dtype=np.int64)
    values = pc.list_flatten(index).to_numpy(zero_copy_only=False).astype(np.int64)
    if values.size != n * ndim:
        raise ExportError(f"chunk indices do not all have {ndim} entries")
    return values.reshape(n, ndim)


def array_ndims(arrays: pa.Table) -> dict[str, int]:
    """Dimensions of every array of an ``arrays`` table (the width ``index_matrix`` needs)."""
    return {
        r["array"]: len(r["shape"] or []) for r in arrays.select(["array", "shape"]).to_pylist()
    }


def chunk_keys(array: str, index: np.ndarray) -> list[str]:
    """Zarr v3 default chunk keys (``array/c/i/j``) for an index matrix, built by Arrow."""
    n, ndim = index.shape
    if ndim == 0:
        return [f"{array}/c"] * n
    parts = pa.ListArray.from_arrays(
        pa.array(np.arange(0, n * ndim + 1, ndim, dtype=np.int32)),
        pa.array(index.ravel()).cast(pa.string()),
    )
    joined = pc.binary_join(parts, "/")
    return pc.binary_join_element_wise(pa.scalar(f"{array}/c"), joined, "/").to_pylist()  # type: ignore[no-any-return]


def write_virtual_refs(
    store: IcechunkStore,
    array: str,
    index: np.ndarray,
    source_id: np.ndarray,
    offset: np.ndarray,
    length: np.ndarray,
    sources: SourceRefs,
) -> int:
    """Write the references of one array; return how many. Any rejected reference raises.

    ``index`` is the ``(n, ndim)`` chunk index matrix, already shifted for appends.
    """
    n = len(source_id)
    if n == 0:
        return 0
    uniq_sid, row_src = np.unique(source_id, return_inverse=True)
    try:
        pos = [sources.index_of[int(s)] for s in uniq_sid]
    except KeyError as e:
        raise ExportError(
            f"chunks refer to source_id {e.args[0]}, absent from sources", array=array
        ) from e
    src_uri = np.array([sources.uri[p] for p in pos], dtype=object)
    src_checksum = [sources.checksum[p] for p in pos]
    # group rows by checksum value: sources with equal checksums (e.g. none) share a call
    group_ids: dict[Any, int] = {}
    src_group = np.array(
        [group_ids.setdefault(_checksum_key(c), len(group_ids)) for c in src_checksum],
        dtype=np.int64,
    )
    group_checksum = {int(g): src_checksum[i] for i, g in reversed(list(enumerate(src_group)))}
    row_group = src_group[row_src]
    order = np.argsort(row_group, kind="stable")
    bounds = np.flatnonzero(np.diff(row_group[order])) + 1
    for rows in np.split(order, bounds):
        srcs = row_src[rows]
        one_source = srcs[0] == srcs[-1] and (srcs == srcs[0]).all()
        _write_group(
            store,
            array,
            index[rows],
            str(src_uri[srcs[0]]) if one_source else src_uri[srcs],
            offset[rows],
            length[rows],
            group_checksum[int(row_group[rows[0]])],
        )
    return n


def _checksum_key(c: Checksum) -> Any:
    return ("t", c.timestamp()) if isinstance(c, dt.datetime) else ("s", c)


def _write_group(
    store: IcechunkStore,
    array: str,
    index: np.ndarray,
    uris: str | np.ndarray,
    offset: np.ndarray,
    length: np.ndarray,
    checksum: Checksum,
) -> None:
    """One ``set_virtual_refs_arr`` call over the bounding box of ``index`` (``uris``: one
    URI for the whole group, or one per row)."""
    ndim = index.shape[1]
    lo = index.min(axis=0) if ndim else np.zeros(0, dtype=np.int64)
    box = (index.max(axis=0) + 1 - lo) if ndim else np.zeros(0, dtype=np.int64)
    size = int(math.prod(int(b) for b in box))
    if size > MAX_BOX_FILL * len(index) + MIN_BOX_SLACK:
        per_row = np.full(len(index), uris, dtype=object) if isinstance(uris, str) else uris
        _write_sparse(store, array, index, per_row, offset, length, checksum)
        return
    flat = np.ravel_multi_index(tuple((index - lo).T), tuple(int(b) for b in box)) if ndim else 0
    in_order = size == len(index) and np.array_equal(flat, np.arange(size))
    if in_order and isinstance(uris, str):  # a full box in C order: the common case
        locations: list[str] = [uris] * size
        offs, lens = offset, length
    else:
        loc = np.full(size, "", dtype=object)
        loc[flat] = uris
        locations = loc.tolist()
        offs = np.zeros(size, dtype=np.uint64)
        lens = np.zeros(size, dtype=np.uint64)
        offs[flat] = offset
        lens[flat] = length
    try:
        failed = store.set_virtual_refs_arr(
            array,
            tuple(int(b) for b in box),
            locations,
            np.ascontiguousarray(offs, dtype=np.uint64),
            np.ascontiguousarray(lens, dtype=np.uint64),
            validate_containers=True,
            arr_offset=tuple(int(v) for v in lo) if ndim and lo.any() else None,
            checksum=checksum,
        )
    except Exception as e:  # icechunk raises for indices outside the grid, bad URLs...
        raise ExportError(
            f"Icechunk rejected references: {first_line(e)}",
            array=array,
            source=uris if isinstance(uris, str) else str(uris[0]),
        ) from e
    if failed:
        raise ExportError(
            f"{len(failed)} references match no virtual chunk container",
            array=array,
            chunk=list(failed[0]),
            source=uris if isinstance(uris, str) else str(uris[0]),
        )


def _write_sparse(
    store: IcechunkStore,
    array: str,
    index: np.ndarray,
    uris: np.ndarray,
    offset: np.ndarray,
    length: np.ndarray,
    checksum: Checksum,
) -> None:
    """Scattered chunks (interleaved sources): one spec object per chunk, as Icechunk needs."""
    from icechunk import VirtualChunkSpec

    etag = checksum if isinstance(checksum, str) else None
    modified = checksum if isinstance(checksum, dt.datetime) else None
    specs = [
        VirtualChunkSpec(
            idx, uri, int(o), int(n), etag_checksum=etag, last_updated_at_checksum=modified
        )
        for idx, uri, o, n in zip(index.tolist(), uris.tolist(), offset, length, strict=True)
    ]
    try:
        failed = store.set_virtual_refs(array, specs, validate_containers=True)
    except Exception as e:
        raise ExportError(f"Icechunk rejected references: {first_line(e)}", array=array) from e
    if failed:
        raise ExportError(
            f"{len(failed)} references match no virtual chunk container",
            array=array,
            chunk=list(failed[0]),
        )


async def set_all(
    store: Any, keys: Sequence[str], values: Sequence[bytes], batch: int = NATIVE_BATCH
) -> None:
    """Write ``values`` under ``keys`` to a zarr ``Store``, ``batch`` writes awaited together."""
    from zarr.core.buffer import default_buffer_prototype

    buf = default_buffer_prototype().buffer
    for start in range(0, len(keys), batch):
        await asyncio.gather(
            *(
                store.set(k, buf.from_bytes(v))
                for k, v in zip(
                    keys[start : start + batch], values[start : start + batch], strict=True
                )
            )
        )


def write_native_chunks(store: IcechunkStore, array: str, index: np.ndarray, data: pa.Array) -> int:
    """Write inline chunk bytes as native Icechunk chunks; return how many."""
    if len(data) == 0:
        return 0
    from zarr.core.sync import sync

    keys = chunk_keys(array, index)
    values = data.to_pylist()
    try:
        sync(set_all(store, keys, values))
    except Exception as e:
        raise ExportError(f"writing inline chunks failed: {first_line(e)}", array=array) from e
    return len(keys)


def write_documents(store: IcechunkStore, docs: dict[str, bytes]) -> None:
    """Write ``zarr.json`` documents (key -> bytes) to the store."""
    from zarr.core.sync import sync

    try:
        sync(set_all(store, list(docs), list(docs.values())))
    except Exception as e:
        raise ExportError(f"writing Zarr metadata to Icechunk failed: {first_line(e)}") from e


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__

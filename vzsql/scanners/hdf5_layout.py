"""Where a dataset's chunks are: HDF5 storage layouts -> chunk references or inline bytes.

- chunked: every allocated chunk from ``DatasetID.chunk_iter`` (one callback per chunk is
  what h5py offers; it only fills preallocated numpy arrays). Chunks whose filter mask
  skipped a filter are read through HDF5, padded and re-encoded with the full pipeline,
  and stored inline, so every chunk decodes with the array's one codec list.
- contiguous: one chunk covering the array (``get_offset``/``get_storage_size``); no chunk
  at all when the space allocation status says the data was never written (fill value).
- external storage: the raw files' byte ranges, each file a ``raw`` source, split along
  dimension 0 into chunks of whole rows that never straddle two files.
- compact: the bytes live in the object header; they are read and inlined.
- virtual: ``UnsupportedLayoutError``.
"""

from __future__ import annotations

import math
import os
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vzsql.errors import UnsupportedLayoutError
from vzsql.sources import SourceList, local_path, normalize_uri, stat_source


@dataclass
class StoredChunks:
    """Chunk rows of one array: references (numpy columns) plus inline chunks."""

    chunk_shape: list[int]
    index: np.ndarray[Any, np.dtype[np.int64]]  # (n, ndim)
    source_id: np.ndarray[Any, np.dtype[np.int32]]
    offset: np.ndarray[Any, np.dtype[np.int64]]
    length: np.ndarray[Any, np.dtype[np.int64]]
    inline_index: list[tuple[int, ...]] = field(default_factory=list)
    inline_data: list[bytes] = field(default_factory=list)

    @classmethod
    def empty(cls, chunk_shape: list[int]) -> StoredChunks:
        nd = len(chunk_shape)
        return cls(
            chunk_shape,
            np.zeros((0, nd), np.int64),
            np.zeros(0, np.int32),
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
        )


Encoder = Callable[[np.ndarray[Any, Any]], bytes]


def chunk_records(dsid: Any, ndim: int) -> tuple[np.ndarray[Any, Any], ...]:
    """``(chunk_offsets (n, ndim), filter_masks, byte_offsets, sizes)`` of allocated chunks."""
    n = int(dsid.get_num_chunks())
    offsets = np.empty((n, ndim), np.int64)
    masks = np.empty(n, np.uint32)
    addrs = np.empty(n, np.int64)
    sizes = np.empty(n, np.int64)
    pos = 0

    def record(info: Any) -> None:
        nonlocal pos
        offsets[pos] = info.chunk_offset
        masks[pos] = info.filter_mask
        addrs[pos] = info.byte_offset
        sizes[pos] = info.size
        pos += 1

    try:
        dsid.chunk_iter(record)
    except (AttributeError, NotImplementedError):  # HDF5 without H5Dchunk_iter
        pos = 0
        for i in range(n):
            record(dsid.get_chunk_info(i))
    return offsets[:pos], masks[:pos], addrs[:pos], sizes[:pos]


def chunked(dset: Any, source_id: int, fill: Any, encode: Encoder) -> StoredChunks:
    """References to every allocated chunk; filter-skipping chunks re-encoded inline."""
    chunk_shape = [int(c) for c in dset.chunks]
    offsets, masks, addrs, sizes = chunk_records(dset.id, dset.ndim)
    index = offsets // np.asarray(chunk_shape, np.int64)
    keep = masks == 0
    out = StoredChunks(
        chunk_shape,
        index[keep],
        np.full(int(keep.sum()), source_id, np.int32),
        addrs[keep],
        sizes[keep],
    )
    for row in np.flatnonzero(~keep):  # rare: chunks stored with a filter skipped
        start = offsets[row]
        sel = tuple(
            slice(int(s), min(int(s) + c, n))
            for s, c, n in zip(start, chunk_shape, dset.shape, strict=True)
        )
        values = dset[sel]
        padded = np.full(chunk_shape, fill, dtype=values.dtype)
        padded[tuple(slice(0, v) for v in values.shape)] = values
        out.inline_index.append(tuple(int(i) for i in index[row]))
        out.inline_data.append(encode(padded))
    return out


def whole_array_chunk(shape: list[int]) -> list[int]:
    """The chunk shape of a layout stored as one piece (Zarr needs lengths >= 1)."""
    return [max(1, s) for s in shape]


def contiguous(dset: Any, source_id: int, *, uri: str, array: str) -> StoredChunks:
    """One chunk at ``get_offset()``, or none when the space was never allocated."""
    from h5py import h5d

    shape = [int(s) for s in dset.shape]
    out = StoredChunks.empty(whole_array_chunk(shape))
    if math.prod(shape) == 0 or dset.id.get_space_status() == h5d.SPACE_STATUS_NOT_ALLOCATED:
        return out
    offset = dset.id.get_offset()
    if offset is None:
        raise UnsupportedLayoutError(
            "contiguous dataset is allocated but HDF5 reports no address", source=uri, array=array
        )
    out.index = np.zeros((1, len(shape)), np.int64)
    out.source_id = np.array([source_id], np.int32)
    out.offset = np.array([offset], np.int64)
    out.length = np.array([dset.id.get_storage_size()], np.int64)
    return out


def compact(dset: Any, encode: Encoder) -> StoredChunks:
    """The dataset's bytes (kept in its object header) as one inline chunk."""
    shape = [int(s) for s in dset.shape]
    out = StoredChunks.empty(whole_array_chunk(shape))
    if math.prod(shape) == 0:
        return out
    out.inline_index.append(tuple(0 for _ in shape))
    out.inline_data.append(encode(np.asarray(dset[()])))
    return out


def external_uri(uri: str, name: str) -> str:
    """The URI of an external raw file, relative names resolved beside the HDF5 file."""
    path = local_path(uri)
    if path is not None:
        full = name if os.path.isabs(name) else os.path.join(os.path.dirname(path), name)
        return normalize_uri(full)
    base, _, _ = uri.rpartition("/")
    return name if "://" in name else posixpath.join(base, name)


def external(
    dset: Any,
    dcpl: Any,
    *,
    uri: str,
    array: str,
    sources: SourceList,
    storage_options: dict[str, Any] | None,
) -> StoredChunks:
    """Chunks of whole rows along dim 0 in the external raw files that hold the data."""
    shape = [int(s) for s in dset.shape]
    itemsize = dset.dtype.itemsize
    total = math.prod(shape) * itemsize
    row_bytes = math.prod(shape[1:]) * itemsize if shape else itemsize
    segments = []  # (source_id, file offset, bytes used)
    covered = 0
    for i in range(dcpl.get_external_count()):
        if covered >= total:
            break
        name, file_offset, size = dcpl.get_external(i)
        name = name.decode() if isinstance(name, bytes) else name
        used = min(int(size), total - covered)
        sid = sources.add(stat_source(external_uri(uri, name), storage_options), "raw")
        segments.append((sid, int(file_offset), used))
        covered += used
    if covered < total:
        raise UnsupportedLayoutError(
            f"external files hold {covered} of the {total} bytes of the data",
            source=uri,
            array=array,
        )
    if total == 0:
        return StoredChunks.empty(whole_array_chunk(shape))
    if len(segments) == 1:
        sid, off, used = segments[0]
        return StoredChunks(
            whole_array_chunk(shape),
            np.zeros((1, len(shape)), np.int64),
            np.array([sid], np.int32),
            np.array([off], np.int64),
            np.array([used], np.int64),
        )
    if not shape or any(used % row_bytes for _, _, used in segments):
        raise UnsupportedLayoutError(
            "data spans several external files at boundaries that are not whole rows of "
            "dimension 0",
            source=uri,
            array=array,
        )
    rows = [used // row_bytes for _, _, used in segments]
    step = math.gcd(*rows)  # chunks of `step` rows never straddle two files
    counts = np.asarray(rows, np.int64) // step
    seg = np.repeat(np.arange(len(segments)), counts)
    within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    seg_sid = np.array([s for s, _, _ in segments], np.int32)
    seg_off = np.array([o for _, o, _ in segments], np.int64)
    n = int(counts.sum())
    index = np.zeros((n, len(shape)), np.int64)
    index[:, 0] = np.arange(n)
    return StoredChunks(
        [step, *shape[1:]],
        index,
        seg_sid[seg],
        seg_off[seg] + within * step * row_bytes,
        np.full(n, step * row_bytes, np.int64),
    )


def virtual_error(uri: str, array: str) -> UnsupportedLayoutError:
    return UnsupportedLayoutError(
        "HDF5 virtual datasets (VDS) map other datasets and cannot be referenced chunk by chunk",
        source=uri,
        array=array,
    )

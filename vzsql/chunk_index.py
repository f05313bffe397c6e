"""Per-array chunk lookup built once from the ``chunks`` table with Arrow and numpy.

Each array's chunk rows become sorted numpy arrays keyed by the chunk's linear (C-order)
index in its chunk grid, so finding a chunk is one ``searchsorted`` and no per-chunk Python
objects are made. A chunk with no row is absent: zarr then fills it with the fill value.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import ManifestFormatError
from vzsql.tables import Tables

INLINE = -1  # source id of chunks whose bytes are in ``data``


@dataclass(frozen=True)
class ArrayChunks:
    """The stored chunks of one array, sorted by linear chunk index."""

    array: str
    ndim: int
    extents: tuple[int, ...]  # chunks along each dimension (covers every row's index)
    linear: np.ndarray  # int64, sorted, unique
    source_id: np.ndarray  # int32, INLINE for inline chunks
    offset: np.ndarray  # int64
    length: np.ndarray  # int64
    data: pa.Array  # binary, aligned with ``linear`` (null for referenced chunks)

    def __len__(self) -> int:
        return len(self.linear)

    def find(self, index: tuple[int, ...]) -> int | None:
        """Position of chunk ``index``, or None when the manifest has no row for it."""
        if len(index) != self.ndim:
            return None
        lin = 0  # C-order linear index in plain ints: numpy's ravel costs more for one tuple
        for i, n in zip(index, self.extents, strict=True):
            if i < 0 or i >= n:
                return None
            lin = lin * n + i
        pos = int(self.linear.searchsorted(lin))
        if pos < len(self.linear) and int(self.linear[pos]) == lin:
            return pos
        return None

    def indices(self) -> np.ndarray:
        """All chunk indices as an ``(n, ndim)`` int64 array, in linear order."""
        if not self.ndim:
            return np.zeros((len(self.linear), 0), dtype=np.int64)
        return np.stack(np.unravel_index(self.linear, self.extents), axis=1).astype(np.int64)

    def keys(self, prefix: str) -> pa.Array:
        """Store keys (``prefix + "c/0/1"``) of every stored chunk, built with Arrow."""
        n = len(self.linear)
        if not self.ndim:
            return pa.array([prefix + "c"] * n, type=pa.string())
        idx = self.indices()
        values = pa.array(idx.reshape(-1)).cast(pa.string())
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * self.ndim)
        joined = pc.binary_join(pa.ListArray.from_arrays(offsets, values), "/")
        return pc.binary_join_element_wise(pa.scalar(prefix + "c/"), joined, "")


class ChunkIndex:
    """Lazily built ``ArrayChunks`` for every array of a manifest (thread-safe)."""

    def __init__(self, tables: Tables) -> None:
        self._ndim: dict[str, int] = {}
        self._grid_extents: dict[str, list[int]] = {}
        for row in tables.arrays.select(["array", "shape", "chunk_shape"]).to_pylist():
            shape = list(row["shape"] or [])
            self._ndim[row["array"]] = len(shape)
            cs = list(row["chunk_shape"] or [])
            if len(cs) == len(shape):
                self._grid_extents[row["array"]] = [
                    -(-s // c) if c > 0 else 1 for s, c in zip(shape, cs, strict=True)
                ]
        grid = tables.grid
        if grid.num_rows:
            counts = grid.group_by(["array", "dim"]).aggregate([("chunk", "max")]).to_pylist()
            for row in counts:  # one row per (array, dimension)
                ext = self._grid_extents.setdefault(
                    row["array"], [1] * self._ndim.get(row["array"], 0)
                )
                d = int(row["dim"])
                if d < len(ext):
                    ext[d] = int(row["chunk_max"]) + 1
        self._parts = _split_by_array(tables.chunks)
        self._built: dict[str, ArrayChunks] = {}
        self._lock = threading.Lock()

    def arrays(self) -> list[str]:
        return list(self._ndim)

    def ndim(self, array: str) -> int | None:
        return self._ndim.get(array)

    def get(self, array: str) -> ArrayChunks | None:
        built = self._built.get(array)  # built ones are never replaced: no lock needed
        if built is not None or array not in self._ndim:
            return built
        with self._lock:
            built = self._built.get(array)
            if built is None:
                built = self._built[array] = _build(
                    array,
                    self._ndim[array],
                    self._grid_extents.get(array, [1] * self._ndim[array]),
                    self._parts.get(array),
                )
            return built


def _split_by_array(chunks: pa.Table) -> dict[str, pa.Table]:
    """The chunks table cut into one slice per array (one sort, runs found with numpy)."""
    if not chunks.num_rows:
        return {}
    t = chunks.sort_by("array")
    enc = pc.dictionary_encode(t["array"].combine_chunks())
    codes = enc.indices.to_numpy(zero_copy_only=False)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1, [len(codes)]])
    names = enc.dictionary.to_pylist()
    return {names[codes[s]]: t.slice(int(s), int(e - s)) for s, e in itertools.pairwise(bounds)}


def _build(array: str, ndim: int, grid_extents: list[int], t: pa.Table | None) -> ArrayChunks:
    empty64 = np.zeros(0, dtype=np.int64)
    if t is None or not t.num_rows:
        return ArrayChunks(
            array,
            ndim,
            tuple(max(1, e) for e in grid_extents),
            empty64,
            np.zeros(0, dtype=np.int32),
            empty64,
            empty64,
            pa.array([], type=pa.binary()),
        )
    index = t["index"].combine_chunks()
    lens = pc.fill_null(pc.list_value_length(index), 0).to_numpy(zero_copy_only=False)
    keep = lens == ndim
    if not keep.all():
        t = t.filter(pa.array(keep))
        index = t["index"].combine_chunks()
    n = t.num_rows
    if ndim:
        flat = pc.list_flatten(index).to_numpy(zero_copy_only=False).astype(np.int64)
        idx = flat.reshape(n, ndim)
        ok = (idx >= 0).all(axis=1)
        if not ok.all():
            t = t.filter(pa.array(ok))
            idx = idx[ok]
            n = t.num_rows
        top = idx.max(axis=0) + 1 if n else np.zeros(ndim, dtype=np.int64)
        extents = tuple(max(int(a), int(b), 1) for a, b in zip(grid_extents, top, strict=True))
        if float(np.prod([float(e) for e in extents])) >= 2.0**62:
            raise ManifestFormatError(f"chunk grid {extents} is too large to index", array=array)
        linear = np.ravel_multi_index(tuple(idx.T), extents).astype(np.int64)
    else:
        extents = ()
        linear = np.zeros(n, dtype=np.int64)
    order = np.argsort(linear, kind="stable")
    linear = linear[order]
    first = np.ones(len(linear), dtype=bool)  # duplicate rows: the first one wins
    first[1:] = linear[1:] != linear[:-1]
    order = order[first]
    linear = linear[first]
    take = pa.array(order)
    source = _np(t["source_id"].take(take), np.int32, INLINE)
    offset = _np(t["offset"].take(take), np.int64, 0)
    length = _np(t["length"].take(take), np.int64, 0)
    data = t["data"].take(take).combine_chunks()
    has_data = pc.is_valid(data).to_numpy(zero_copy_only=False)
    source = np.where(has_data, INLINE, source).astype(np.int32)
    return ArrayChunks(array, ndim, extents, linear, source, offset, length, data)


def _np(col: Any, dtype: Any, null: int) -> np.ndarray:
    return np.asarray(pc.fill_null(col, null).to_numpy(), dtype=dtype)

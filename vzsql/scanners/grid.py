"""Grid rows of a regular chunk grid and chunk index columns, shared by the scanners.

In a regular grid every chunk slot has the chunk length except the last one of a dimension,
which the extent cuts. Rows and columns are built with numpy, never one Python object per chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.tables import GRID_SCHEMA


def regular_grid(
    name: str, shape: list[int] | tuple[int, ...], chunk_shape: list[int] | tuple[int, ...]
) -> pa.Table:
    """Grid rows of array ``name``: per dimension, chunk slots clipped to the extent."""
    return regular_grids([name], [shape], [chunk_shape])


def regular_grids(
    names: list[str],
    shapes: Sequence[list[int] | tuple[int, ...]],
    chunk_shapes: Sequence[list[int] | tuple[int, ...]],
) -> pa.Table:
    """``regular_grid`` of several arrays as one table (in the order given).

    One Arrow table for a file's arrays instead of one per array: building a small Arrow
    table costs ~0.1 ms, which dominated scanning files of a few small arrays.
    """
    dims, chunk, start, length, rows = [], [], [], [], []
    for shape, chunk_shape in zip(shapes, chunk_shapes, strict=True):
        total = 0
        for d, (n, c) in enumerate(zip(shape, chunk_shape, strict=True)):
            k = -(-n // c) if c else 0
            s = np.arange(k, dtype=np.int64) * c
            dims.append(np.full(k, d, np.int16))
            chunk.append(np.arange(k, dtype=np.int32))
            start.append(s)
            length.append(np.minimum(c, n - s))
            total += k
        rows.append(total)
    if not dims:
        return GRID_SCHEMA.empty_table()
    return pa.table(
        {
            "array": repeated_names(list(names), rows),
            "dim": np.concatenate(dims),
            "chunk": np.concatenate(chunk),
            "start": np.concatenate(start),
            "length": np.concatenate(length),
        },
        schema=GRID_SCHEMA,
    )


def repeated_names(names: list[str], counts: Any) -> pa.Array:
    """``names[i]`` repeated ``counts[i]`` times, as an Arrow string column (a take, not
    a per-row Python object)."""
    which = np.repeat(np.arange(len(names), dtype=np.int32), counts)
    return pa.array(names, pa.string()).take(pa.array(which))


def index_column(index: np.ndarray[Any, Any]) -> pa.ListArray:
    """The ``chunks.index`` column (``list<int32>``) of an ``(n, ndim)`` array of chunk indices."""
    n, ndim = index.shape
    flat = pa.array(index.reshape(-1).astype(np.int32), type=pa.int32())
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * ndim, type=pa.int32())
    return pa.ListArray.from_arrays(offsets, flat, type=pa.list_(pa.int32()))

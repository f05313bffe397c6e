"""Grid rows of a regular chunk grid, shared by the scanners whose arrays are regularly chunked.

Every chunk slot has the chunk length except the last one of a dimension, which the extent
cuts. The rows are built with numpy per dimension, never one Python object per chunk.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from vzsql.tables import GRID_SCHEMA


def regular_grid(
    name: str, shape: list[int] | tuple[int, ...], chunk_shape: list[int] | tuple[int, ...]
) -> pa.Table:
    """Grid rows of array ``name``: per dimension, chunk slots clipped to the extent."""
    dims, chunk, start, length = [], [], [], []
    for d, (n, c) in enumerate(zip(shape, chunk_shape, strict=True)):
        k = -(-n // c) if c else 0
        s = np.arange(k, dtype=np.int64) * c
        dims.append(np.full(k, d, np.int16))
        chunk.append(np.arange(k, dtype=np.int32))
        start.append(s)
        length.append(np.minimum(c, n - s))
    if not dims:
        return GRID_SCHEMA.empty_table()
    total = sum(len(x) for x in dims)
    return pa.table(
        {
            "array": pa.array([name] * total, pa.string()),
            "dim": np.concatenate(dims),
            "chunk": np.concatenate(chunk),
            "start": np.concatenate(start),
            "length": np.concatenate(length),
        },
        schema=GRID_SCHEMA,
    )

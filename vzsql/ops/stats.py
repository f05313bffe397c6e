"""Archive analytics, one query each in ``queries/stats/``.

``stats(m)`` returns Arrow tables: ``per_array`` (chunks, stored and decoded bytes,
compression ratio, chunk size spread), ``per_source`` (chunks and bytes referenced per
file), ``chunk_sizes`` (power-of-two histogram), ``coverage`` (chunks present per grid slot
along every dimension), ``coverage_gaps`` (runs of slots with no chunk at all) and
``coordinate_gaps`` (jumps in dimension coordinate values, such as missing days).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from vzsql.ops.coords import (
    array_row,
    attrs_of,
    decode_times,
    inline_arrays,
    is_dimension_coordinate,
    is_time_units,
    numeric_positions,
    read_array,
)
from vzsql.ops.relations import query
from vzsql.zarr_meta import numpy_dtype

if TYPE_CHECKING:
    from vzsql.manifest import Manifest
    from vzsql.tables import Tables


def itemsizes(tables: Tables) -> pa.Table:
    """Bytes per element of each array (0 where the dtype has no fixed size)."""
    names, sizes = [], []
    for name, dtype in zip(
        tables.arrays["array"].to_pylist(), tables.arrays["dtype"].to_pylist(), strict=True
    ):
        try:
            size = numpy_dtype(dtype).itemsize
        except Exception:  # a dtype zarr does not know: no decoded size
            size = 0
        names.append(name)
        sizes.append(size if size else None)
    return pa.table(
        {"array": pa.array(names, pa.string()), "itemsize": pa.array(sizes, pa.int64())}
    )


def coordinate_values(
    tables: Tables, *, decode: bool = True, inline_only: bool = False
) -> pa.Table:
    """Values of every 1-D dimension coordinate as (dim, i, value, label); times decoded.

    ``decode=False`` keeps raw numbers (CF times of any calendar stay comparable within
    one array); ``inline_only`` skips coordinates with chunks in source files (no reads).
    """
    inline = inline_arrays(tables) if inline_only else set()
    dims: list[str] = []
    idx: list[int] = []
    values: list[float] = []
    labels: list[str] = []
    for name, ds in zip(
        tables.arrays["array"].to_pylist(), tables.arrays["dims"].to_pylist(), strict=True
    ):
        if not is_dimension_coordinate(name, ds):
            continue
        if inline_only and name not in inline:
            continue
        try:
            raw = read_array(tables, name)
            attrs = attrs_of(array_row(tables, name))
            vals = raw
            if decode and is_time_units(attrs.get("units")):
                vals = np.asarray(decode_times(raw, attrs["units"], attrs.get("calendar")))
            numeric = numeric_positions(vals) if vals.dtype.kind in "iufbM" else None
        except Exception:  # an unreadable coordinate has no gaps to report
            continue
        if numeric is None:
            continue
        dims.extend([name] * vals.size)
        idx.extend(range(vals.size))
        values.extend(numeric.tolist())
        if vals.dtype.kind == "M":
            labels.extend(np.datetime_as_string(vals).tolist())
        else:
            labels.extend(str(v) for v in vals.tolist())
    return pa.table(
        {
            "dim": pa.array(dims, pa.string()),
            "i": pa.array(idx, pa.int64()),
            "value": pa.array(values, pa.float64()),
            "label": pa.array(labels, pa.string()),
        }
    )


def stats(m: Manifest, *, coordinates: bool = True) -> dict[str, pa.Table]:
    """All analytics tables of ``m`` (see the module doc)."""
    tables = m.tables.as_dict()
    out: dict[str, Any] = {
        "per_array": query("stats/per_array", {**tables, "itemsizes": itemsizes(m.tables)}),
        "per_source": query("stats/per_source", tables),
        "chunk_sizes": query("stats/chunk_sizes", tables),
    }
    out["coverage"] = query("stats/coverage", tables)
    out["coverage_gaps"] = query("stats/coverage_gaps", {"coverage": out["coverage"]})
    coords = coordinate_values(m.tables) if coordinates else None
    if coords is not None:
        out["coordinate_gaps"] = query("stats/coordinate_gaps", {"coord_values": coords})
    return out

"""``isel`` / ``sel``: subsets of a manifest along dimensions, as a WHERE plus re-based indices.

A selection that starts and ends on chunk boundaries keeps whole chunks: grid rows and
chunk rows outside it are dropped and indices re-based (``queries/subset_*.sql``). A finer
selection of *uncompressed* chunks is still exact: C-order chunks whose earlier dimensions
have chunk extent 1 hold each element-row along the dimension as one contiguous byte run,
so the cut chunks are narrowed by byte arithmetic (their arrays switch to the trimming
codec, which accepts the shorter chunks). Anything else raises ``UnalignedSelectionError``
naming the nearest chunk boundary. ``sel`` turns coordinate labels (CF times included) into
positions and calls ``isel``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.codecs.padded import CODEC_NAME, padded_codecs
from vzsql.errors import UnalignedSelectionError, VzsqlError
from vzsql.ops.concat import dimension_coordinate
from vzsql.ops.coords import (
    array_row,
    attrs_of,
    decode_times,
    inline_array,
    inline_arrays,
    is_time_units,
    read_array,
)
from vzsql.ops.relations import query
from vzsql.tables import Tables
from vzsql.zarr_meta import numpy_dtype

if TYPE_CHECKING:
    from vzsql.manifest import Manifest


def isel(m: Manifest, **indexers: slice) -> Manifest:
    """The manifest restricted to ``indexers`` (``dim=slice(start, stop)``, step 1)."""
    from vzsql.manifest import Manifest

    tables = m.tables if m.resident is None else preselected(m, indexers)
    for dim, sl in indexers.items():
        tables = isel_tables(tables, dim, sl)
    return Manifest(tables)


def preselected(m: Manifest, indexers: dict[str, slice]) -> Tables:
    """The tables of a manifest stored in DuckDB with only the chunk rows ``isel`` can keep:
    rows of chunks outside the selected chunk range are dropped in DuckDB, so the selection
    never holds the whole table as Arrow. Coordinates of the selected dimensions and arrays
    with inline chunks keep all their rows (isel may rewrite them whole), so the result
    equals ``isel`` over Arrow."""
    assert m.resident is not None
    if not indexers:
        return m.tables
    small = m.tables_without_chunks()
    whole = m.resident.inline_arrays()
    ranges = []
    for dim, sl in indexers.items():
        whole.add(dimension_coordinate(small, dim) or "")
        a, b = selected_range(small, dim, sl)
        plan = query(
            "subset_plan",
            {"arrays": small.arrays, "grid": small.grid},
            {"dim": dim, "a": a, "b": b},
        )
        ranges.append(plan.select(["array", "d", "c0", "c1"]))
    kept = pa.array(sorted(whole), pa.string())
    cuts = [r.filter(pc.invert(pc.is_in(r["array"], value_set=kept))) for r in ranges]
    return small.with_tables(chunks=m.resident.rows_in_chunk_ranges(cuts))


def sel(m: Manifest, **indexers: Any) -> Manifest:
    """The manifest restricted by coordinate labels (``dim=slice(lo, hi)``, both inclusive)."""
    positions = {}
    for dim, sl in indexers.items():
        if not isinstance(sl, slice) or sl.step not in (None, 1):
            raise VzsqlError(f"sel({dim}=...) takes a slice of labels with step 1")
        positions[dim] = label_positions(_coordinate_tables(m, dim), dim, sl.start, sl.stop)
    return isel(m, **positions)


def _coordinate_tables(m: Manifest, dim: str) -> Tables:
    """Tables enough to read the coordinate of ``dim`` (DuckDB storage: its rows only)."""
    if m.resident is None:
        return m.tables
    small = m.tables_without_chunks()
    coord = dimension_coordinate(small, dim)
    return small.with_tables(chunks=m.resident.rows_of_arrays([coord] if coord else []))


def label_positions(tables: Tables, dim: str, lo: Any, hi: Any) -> slice:
    """Positions [start, stop) of the coordinate values of ``dim`` between ``lo`` and ``hi``."""
    coord = dimension_coordinate(tables, dim)
    if coord is None:
        raise VzsqlError(f"dimension {dim!r} has no coordinate array to select labels from")
    values = read_array(tables, coord)
    attrs = attrs_of(array_row(tables, coord))
    if is_time_units(attrs.get("units")):
        values = np.asarray(decode_times(values, attrs["units"], attrs.get("calendar")))
        conv = _as_time_label(values)
    else:
        conv = _as_plain_label
    if values.size > 1 and np.any(values[1:] == values[:-1]):
        raise VzsqlError(
            f"coordinate {coord!r} repeats values (a duplicated index, reported by check()); "
            "cannot select by label: select by position with isel",
            array=coord,
        )
    if values.size > 1 and not np.all(values[1:] > values[:-1]):
        raise VzsqlError(
            f"coordinate {coord!r} is not increasing; cannot select by label", array=coord
        )
    start = 0 if lo is None else int(np.searchsorted(values, conv(lo), side="left"))
    stop = values.size if hi is None else int(np.searchsorted(values, conv(hi), side="right"))
    return slice(start, stop)


def _as_time_label(values: np.ndarray[Any, Any]) -> Any:
    if values.dtype.kind == "M":
        return lambda label: np.datetime64(label).astype(values.dtype)
    import cftime  # non-standard calendars decode to cftime objects

    sample = values.flat[0]
    return lambda label: (
        label
        if isinstance(label, cftime.datetime)
        else type(sample)(
            *[int(x) for x in str(label).replace("T", "-").replace(":", "-").split("-")],
            calendar=sample.calendar,
        )
    )


def _as_plain_label(label: Any) -> Any:
    return label


def selected_range(tables: Tables, dim: str, sl: slice) -> tuple[int, int]:
    """Element positions ``[a, b)`` that ``sl`` selects along ``dim`` (errors if none)."""
    extents = {
        shape[list(dims).index(dim)]
        for dims, shape in zip(
            tables.arrays["dims"].to_pylist(), tables.arrays["shape"].to_pylist(), strict=True
        )
        if dims and dim in dims
    }
    if not extents:
        raise VzsqlError(f"no array has dimension {dim!r}")
    if len(extents) > 1:
        raise VzsqlError(
            f"dimension {dim!r} has different lengths {sorted(extents)} in different arrays"
        )
    if not isinstance(sl, slice) or sl.step not in (None, 1):
        raise VzsqlError(f"isel({dim}=...) takes a slice with step 1, not {sl!r}")
    a, b, _ = sl.indices(extents.pop())
    if b <= a:
        raise VzsqlError(f"isel({dim}={sl!r}) selects nothing")
    return a, b


def isel_tables(tables: Tables, dim: str, sl: slice) -> Tables:
    """``tables`` restricted to positions ``sl`` along ``dim`` (see the module doc)."""
    a, b = selected_range(tables, dim, sl)
    # small arrays the selection cuts (the coordinate, and arrays held inline such as the
    # auxiliary coordinates concat rebuilt) are rewritten as plain bytes first, then sliced
    for name in _small_along(tables, dim):
        tables = _inline_if_cut(tables, name, dim, a, b)
    arrays = tables.arrays.append_column("pos", pa.array(range(tables.arrays.num_rows), pa.int64()))
    base = {"arrays": arrays, "grid": tables.grid, "chunks": tables.chunks}
    params = {"dim": dim, "a": a, "b": b}
    plan = query("subset_plan", base, params)
    sliceable = _sliceable(tables, plan)
    _refuse_unaligned(plan, sliceable, dim, a, b)
    inputs = {**base, "plan": plan, "sliceable": sliceable}
    ab = {"a": a, "b": b}
    new_arrays = query("subset_arrays", inputs, ab)
    grid = query("subset_grid", inputs, ab)
    chunks = query("subset_chunks", inputs, ab)
    out = tables.with_tables(arrays=new_arrays, grid=grid, chunks=chunks)
    return _pad_narrowed(out, plan, sliceable, a, b)


def _small_along(tables: Tables, dim: str) -> list[str]:
    """The coordinate of ``dim`` and the arrays along ``dim`` whose chunks are all inline."""
    coord = dimension_coordinate(tables, dim)
    inline = inline_arrays(tables)
    along = [
        name
        for name, dims in zip(
            tables.arrays["array"].to_pylist(), tables.arrays["dims"].to_pylist(), strict=True
        )
        if dims and dim in dims and (name == coord or name in inline)
    ]
    return sorted(along)


def _inline_if_cut(tables: Tables, coord: str, dim: str, a: int, b: int) -> Tables:
    """``tables`` with ``coord`` re-inlined as plain bytes if ``[a, b)`` along ``dim`` cuts
    one of its chunks (so the selection can then be taken by byte arithmetic)."""
    plan = query(
        "subset_plan", {"arrays": tables.arrays, "grid": tables.grid}, {"dim": dim, "a": a, "b": b}
    )
    row = next(r for r in plan.to_pylist() if r["array"] == coord)
    if row["start_aligned"] and row["end_aligned"]:
        return tables
    return inline_array(tables, coord, read_array(tables, coord), plain=True)


def _sliceable(tables: Tables, plan: pa.Table) -> pa.Table:
    """Arrays along the dimension whose chunks can be cut by byte arithmetic, and row size."""
    names, row_bytes = [], []
    rows = {r["array"]: r for r in tables.arrays.to_pylist()}
    for name, d in zip(plan["array"].to_pylist(), plan["d"].to_pylist(), strict=True):
        row = rows[name]
        codecs = json.loads(row["codecs"]) if row["codecs"] else [{"name": "bytes"}]
        if len(codecs) != 1 or codecs[0].get("name") not in ("bytes", CODEC_NAME):
            continue
        cs = list(row["chunk_shape"] or row["shape"])
        if any(n != 1 for n in cs[:d]):
            continue
        try:
            itemsize = numpy_dtype(row["dtype"]).itemsize
        except Exception:  # pragma: no cover - exotic dtypes are never sliced
            continue
        names.append(name)
        row_bytes.append(math.prod(cs[d + 1 :]) * itemsize)
    return pa.table(
        {"array": pa.array(names, pa.string()), "row_bytes": pa.array(row_bytes, pa.int64())}
    )


def _refuse_unaligned(plan: pa.Table, sliceable: pa.Table, dim: str, a: int, b: int) -> None:
    ok = set(sliceable["array"].to_pylist())
    for r in plan.to_pylist():
        if r["array"] in ok:
            continue
        if not r["start_aligned"]:
            raise UnalignedSelectionError(
                f"isel({dim}=slice({a}, {b})) does not start on a chunk boundary: chunk {r['c0']} "
                f"spans {r['s0']}..{r['e0']}; the nearest boundary is {r['nearest_to_start']} "
                "(only uncompressed chunks can be cut)",
                array=r["array"],
            )
        if not r["end_aligned"]:
            raise UnalignedSelectionError(
                f"isel({dim}=slice({a}, {b})) does not end on a chunk boundary: chunk {r['c1']} "
                f"spans {r['s1']}..{r['e1']}; the nearest boundary is {r['nearest_to_end']} "
                "(only uncompressed chunks can be cut)",
                array=r["array"],
            )


def _pad_narrowed(tables: Tables, plan: pa.Table, sliceable: pa.Table, a: int, b: int) -> Tables:
    """Arrays whose chunks may have been narrowed accept chunks of any length along the dim.

    A sliceable array is left alone only if the selection is aligned at both ends and the
    last chunk kept is full (not a padded edge chunk, which the byte arithmetic trims).
    """
    from vzsql.codecs.encode import codecs_json

    can_cut = set(sliceable["array"].to_pylist())
    rows = tables.arrays.to_pylist()
    by_name = {r["array"]: r for r in rows}
    cut: dict[str, int] = {}
    for r in plan.to_pylist():
        if r["array"] not in can_cut:
            continue
        row = by_name[r["array"]]
        stored = list(row["chunk_shape"] or row["shape"])[r["d"]]
        full_last = r["e1"] - r["s1"] == stored
        if not (r["start_aligned"] and r["end_aligned"] and full_last) or CODEC_NAME in (
            row["codecs"] or ""
        ):
            cut[r["array"]] = r["d"]
    for name, d in cut.items():
        row = by_name[name]
        if row["codecs"]:
            open_shape: list[int | None] = list(row["chunk_shape"] or row["shape"])
            open_shape[d] = None
            row["codecs"] = codecs_json(padded_codecs(json.loads(row["codecs"]), [open_shape]))
    if not cut:
        return tables
    return tables.with_tables(arrays=pa.Table.from_pylist(rows, schema=tables.arrays.schema))

"""cfgrib's layout of GRIB fields as manifest rows: names, dimensions, coordinates, attributes.

vzsql does not re-implement cfgrib's mapping of GRIB keys to the netCDF data model; it feeds
cfgrib's own index and dataset builder (``cfgrib.messages.FieldsetIndex`` and
``cfgrib.dataset.open_from_index``, with the options ``xr.open_dataset(engine="cfgrib")``
uses by default) a fieldset of the fields vzsql found, keyed by field number. cfgrib then
says which field fills which position of which variable (``OnDiskArray.field_id_index``);
vzsql turns that into chunk rows pointing at the message's byte range.

- Coordinates (latitude, longitude, time, step, valid_time, level, number...) are small
  and stored inline, with the dtypes cfgrib gives them and its attributes (so xarray's CF
  decoding turns ``time`` into datetimes and ``step`` into timedeltas just as for cfgrib).
- Data variables: float32 (cfgrib's ``values_dtype``), fill value NaN, one chunk per field:
  1 along each leading (header) dimension, the full field along the grid dimensions.
- A variable cfgrib drops from the dataset (its coordinates clash with an earlier
  variable's; cfgrib only logs this) becomes a group ``paramId=N``, equal to cfgrib's
  dataset with ``filter_by_keys={"paramId": N}``: nothing in the file is left out.
- A file cfgrib cannot open as one dataset (several editions, level types, step types...)
  is split the way ``cfgrib.open_datasets`` explains it: cfgrib's ``DatasetBuildError``
  names a key and the ``filter_by_keys`` that separate the values; each becomes a group
  ``key=value`` (nested when needed), each equal to
  ``xr.open_dataset(f, engine="cfgrib", backend_kwargs={"filter_by_keys": ...})``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.errors import UnsupportedFormatError, UnsupportedLayoutError
from vzsql.scanners.attr_json import json_number
from vzsql.scanners.grid import regular_grid

# cfgrib logs each variable it drops with a traceback; vzsql serves those as groups instead
_CFGRIB_LOG = logging.getLogger("vzsql.grib.cfgrib")
_CFGRIB_LOG.addHandler(logging.NullHandler())
_CFGRIB_LOG.propagate = False
GRIB_CODEC = "vzsql.grib"
INLINE_CODECS = json.dumps([{"name": "bytes", "configuration": {"endian": "little"}}])


class FieldSet(Mapping[int, Any]):
    """Field number -> cfgrib ``Message``, built from bytes on demand (never all at once).

    ``open_field(i)`` returns the standalone message bytes of field ``i``; a field ecCodes
    cannot read goes to ``on_error(i, exc)``, which raises or (lenient scans) returns to
    skip it while cfgrib iterates the fieldset.
    """

    def __init__(
        self,
        count: int,
        open_field: Callable[[int], bytes],
        on_error: Callable[[int, Exception], None],
    ) -> None:
        self._count = count
        self._open_field = open_field
        self._on_error = on_error
        self.skipped: set[int] = set()

    def _message(self, i: int) -> Any:
        import eccodes
        from cfgrib.messages import Message

        handle = eccodes.codes_new_from_message(self._open_field(i))
        return Message(codes_id=handle)

    def __getitem__(self, i: int) -> Any:
        return self._message(i)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self._count))

    def __len__(self) -> int:
        return self._count

    def items(self) -> Iterator[tuple[int, Any]]:  # type: ignore[override]
        for i in range(self._count):
            try:
                message = self._message(i)
            except Exception as e:
                self._on_error(i, e)
                self.skipped.add(i)
                continue
            yield i, message


def build_index(fieldset: FieldSet) -> Any:
    """cfgrib's index of the fieldset with the keys ``xr.open_dataset(engine="cfgrib")`` uses."""
    from cfgrib import cfmessage, dataset, messages

    keys = dataset.compute_index_keys(("time", "step"), {}, {})
    return messages.FieldsetIndex.from_fieldset(fieldset, keys, cfmessage.COMPUTED_KEYS)


@dataclass
class LaidOutGroup:
    """One cfgrib dataset: its group path, filter and cfgrib ``Dataset``."""

    path: str
    filter_by_keys: dict[str, Any]
    dataset: Any


def lay_out(index: Any, filter_by_keys: dict[str, Any] | None = None) -> list[LaidOutGroup]:
    """cfgrib datasets of the index: one at the root, or one per group when cfgrib must split."""
    return _lay_out(index, dict(filter_by_keys or {}), "")


def _lay_out(index: Any, fbk: dict[str, Any], path: str) -> list[LaidOutGroup]:
    from cfgrib import dataset

    sub = index.subindex(fbk)
    if not sub.field_ids_index:
        return []
    try:
        ds = dataset.open_from_index(sub, errors="warn", log=_CFGRIB_LOG)
    except dataset.DatasetBuildError as e:
        if len(e.args) < 3:  # pragma: no cover - cfgrib raises these with errors="raise" only
            raise UnsupportedLayoutError(
                f"cfgrib cannot lay these GRIB fields out as one dataset: {e}"
            ) from e
        key = e.args[1]
        out: list[LaidOutGroup] = []
        for choice in e.args[2]:
            value = choice[key]
            out.extend(_lay_out(index, {**fbk, key: value}, _child(path, key, value)))
        return out
    out = [LaidOutGroup(path, fbk, ds)]
    # cfgrib drops (logs) a variable whose coordinates clash with an earlier one's; vzsql
    # keeps the dataset as cfgrib builds it and serves each dropped parameter as a group
    kept = {
        v.attributes.get("GRIB_paramId")
        for v in ds.variables.values()
        if isinstance(v.data, dataset.OnDiskArray)
    }
    for param in sub["paramId"]:
        if param not in kept:
            out.extend(_lay_out(index, {**fbk, "paramId": param}, _child(path, "paramId", param)))
    return out


def _child(path: str, key: str, value: Any) -> str:
    name = f"{key}={value}".replace("/", "_")
    return f"{path}/{name}" if path else name


def json_value(value: Any) -> Any:
    """An attribute value as plain JSON data (numpy scalars and tuples unwrapped; non-finite
    floats as the Zarr v3 strings, as every scanner writes them)."""
    if isinstance(value, np.generic):
        return json_number(value.item())
    if isinstance(value, np.ndarray):
        return [json_value(v) for v in value.tolist()]
    if isinstance(value, tuple | list):
        return [json_value(v) for v in value]
    return json_number(value)


def attrs_json(attrs: Mapping[str, Any]) -> str:
    """An ``attrs`` column text: strict JSON (``allow_nan=False``, see ``attr_json``)."""
    return json.dumps({k: json_value(v) for k, v in attrs.items()}, allow_nan=False)


@dataclass
class ArrayRows:
    """Rows of the ``arrays``, ``grid`` and ``chunks`` tables for one group (as columns)."""

    arrays: list[dict[str, Any]]
    grid: list[pa.Table]  # one table of grid rows per array
    inline_chunks: list[dict[str, Any]]
    # referenced chunks: array path per block, chunk indices and field numbers as numpy
    field_blocks: list[tuple[str, np.ndarray, np.ndarray]]


def group_rows(
    group: LaidOutGroup,
    field_in_message: np.ndarray,
    value_count: Callable[[int], int],
    source: str,
) -> ArrayRows:
    """Manifest rows for one cfgrib dataset.

    ``field_in_message[i]`` is the position of field ``i`` inside its GRIB message (0 unless
    the message holds several fields); ``value_count(i)`` the number of values ecCodes
    decodes for field ``i`` (to refuse grids whose values do not fill cfgrib's shape).
    """
    from cfgrib.dataset import OnDiskArray

    prefix = f"{group.path}/" if group.path else ""
    out = ArrayRows([], [], [], [])
    for name, var in group.dataset.variables.items():
        path = prefix + name
        dims = list(var.dimensions)
        if isinstance(var.data, OnDiskArray):
            out.field_blocks.append(
                _data_var_rows(path, dims, var, field_in_message, value_count, source, out)
            )
            continue
        data = np.asarray(var.data)
        shape = tuple(int(s) for s in data.shape)
        out.arrays.append(
            {
                "array": path,
                "dims": dims,
                "shape": list(shape),
                "chunk_shape": list(shape),
                "dtype": data.dtype.name,
                "fill_value": json.dumps("NaN" if data.dtype.kind == "f" else 0),
                "codecs": INLINE_CODECS,
                "attrs": attrs_json(var.attributes),
                "attr_dtypes": None,
            }
        )
        out.grid.append(regular_grid(path, shape, shape))
        raw = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<")).tobytes()
        out.inline_chunks.append(
            {"array": path, "index": [0] * len(shape), "length": len(raw), "data": raw}
        )
    return out


def _data_var_rows(
    path: str,
    dims: list[str],
    var: Any,
    field_in_message: np.ndarray,
    value_count: Callable[[int], int],
    source: str,
    out: ArrayRows,
) -> tuple[str, np.ndarray, np.ndarray]:
    arr = var.data
    shape = tuple(int(s) for s in arr.shape)
    n_head = len(shape) - arr.geo_ndim
    chunk_shape = (1,) * n_head + shape[n_head:]
    items = list(arr.field_id_index.items())
    heads = np.array([h for h, _ in items], dtype=np.int32).reshape(len(items), n_head)
    fields = np.array([ids[0] for _, ids in items], dtype=np.int64)
    index = np.concatenate([heads, np.zeros((len(items), arr.geo_ndim), np.int32)], axis=1)
    positions = np.unique(field_in_message[fields])
    if positions.size > 1:
        raise UnsupportedLayoutError(
            f"fields of this variable sit at different positions ({positions.tolist()}) of "
            "multi-field GRIB messages; the vzsql.grib codec needs one position per array",
            source=source,
            array=path,
        )
    n_values = value_count(int(fields[0]))
    if n_values != int(np.prod(shape[n_head:])):
        grid_type = var.attributes.get("GRIB_gridType", "unknown")
        raise UnsupportedFormatError(
            f"GRIB gridType {grid_type!r}: a field decodes to {n_values} values but cfgrib "
            f"lays it out as {shape[n_head:]}",
            source=source,
            array=path,
        )
    out.arrays.append(
        {
            "array": path,
            "dims": dims,
            "shape": list(shape),
            "chunk_shape": list(chunk_shape),
            "dtype": np.dtype(arr.dtype).name,
            "fill_value": json.dumps("NaN"),
            "codecs": json.dumps(
                [{"name": GRIB_CODEC, "configuration": {"field": int(positions[0])}}]
            ),
            "attrs": attrs_json(var.attributes),
            "attr_dtypes": None,
        }
    )
    out.grid.append(regular_grid(path, shape, chunk_shape))
    return path, index, fields


def dataset_attrs(group: LaidOutGroup) -> dict[str, Any]:
    """cfgrib's global attributes, without its ``history`` (it names cfgrib and a time)."""
    attrs = {k: json_value(v) for k, v in group.dataset.attributes.items() if k != "history"}
    if group.filter_by_keys:
        attrs["GRIB_filter_by_keys"] = json.dumps(
            {k: json_value(v) for k, v in group.filter_by_keys.items()}
        )
    return attrs

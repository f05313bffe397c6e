"""HDF5 attributes -> the ``attrs`` / ``attr_dtypes`` JSON columns.

Values are kept as stored (no CF decoding), in JSON as documented in
docs/manifest-format.md ("Attribute values"):

- numbers -> JSON numbers; NaN and infinities -> the strings ``"NaN"``, ``"Infinity"``,
  ``"-Infinity"`` (as Zarr v3 writes float fill values); ``attr_dtypes`` keeps the numpy
  dtype (``"<f4"``) so readers restore the exact type;
- one-element arrays -> a scalar (netCDF stores every attribute as a 1-D array; netCDF4-python
  and xarray show them as scalars); longer arrays -> JSON lists;
- fixed-length byte strings (netCDF ``NC_CHAR``) and variable-length strings -> JSON strings
  (bytes decoded as UTF-8, undecodable bytes as latin-1); string arrays -> lists of strings;
- empty (null dataspace) attributes -> ``null``; object references and other types that
  JSON cannot carry are left out.

HDF5 and netCDF-4 bookkeeping attributes (dimension-scale links, netCDF's hidden
properties) describe structure the tables already hold and are dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vzsql.scanners.attr_json import attrs_texts, decode_text, json_number

BOOKKEEPING = frozenset(
    {
        "CLASS",
        "NAME",
        "DIMENSION_LIST",
        "REFERENCE_LIST",
        "DIMENSION_LABELS",
        "_Netcdf4Dimid",
        "_Netcdf4Coordinates",
        "_nc3_strict",
        "_NCProperties",
        "_SuperblockVersion",
        "_IsNetcdf4",
    }
)


class _Skip(Exception):
    """An attribute value JSON cannot carry."""


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes | np.bytes_):
        return decode_text(bytes(value))
    if isinstance(value, str):
        return value
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        return json_number(float(value))
    if isinstance(value, np.complexfloating | complex):
        return [_scalar(value.real), _scalar(value.imag)]
    raise _Skip


def attr_value(value: Any) -> tuple[Any, str | None]:
    """``(json_value, numpy_dtype_or_None)`` for one h5py attribute value; ``_Skip`` if none."""
    import h5py

    if isinstance(value, h5py.Empty):
        return None, None
    if isinstance(value, np.ndarray):
        kind = value.dtype.kind
        if kind == "V" or value.dtype.fields is not None:
            raise _Skip
        dtype = value.dtype.newbyteorder("=").str if kind in "biufc" else None
        flat = value.reshape(-1)
        if flat.size == 1:
            return _scalar(flat[0]), dtype
        if kind == "S" and value.dtype.itemsize == 1 and value.ndim == 1:
            return _scalar(flat.tobytes().rstrip(b"\0")), None  # char array attribute
        return [_scalar(v) for v in flat.tolist()], dtype
    if isinstance(value, np.generic):
        kind = value.dtype.kind
        dtype = value.dtype.newbyteorder("=").str if kind in "biufc" else None
        return _scalar(value), dtype
    return _scalar(value), None


def attrs_json(attrs: Any) -> tuple[str, str]:
    """``(attrs, attr_dtypes)`` JSON texts for an h5py ``AttributeManager``."""
    values: dict[str, Any] = {}
    dtypes: dict[str, str] = {}
    for name in attrs:
        if name in BOOKKEEPING:
            continue
        try:
            raw = attrs[name]
        except (OSError, TypeError, ValueError):
            continue  # a type h5py cannot read (e.g. some references): not JSON-able either
        try:
            value, dtype = attr_value(raw)
        except _Skip:
            continue
        values[name] = value
        if dtype is not None:
            dtypes[name] = dtype
    return attrs_texts(values, dtypes)

"""HDF5 datatypes -> ``arrays.dtype``, the array->bytes codec and the storage fill value.

Supported: integers, floats, complex (h5py's ``r``/``i`` compound), booleans (h5py's
``FALSE``/``TRUE`` enum), other enums (as their base integer type; the member names are not
kept), fixed-length strings (Zarr ``null_terminated_bytes``), variable-length strings
(``string`` with ``vlen-utf8``; their bytes are not addressable in the file so they are
always inlined). Compound, opaque, reference, array and non-string variable-length types
raise ``UnsupportedDtypeError`` naming the file and dataset.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from vzsql.errors import UnsupportedDtypeError
from vzsql.zarr_meta import dtype_to_text, zarr_data_type


@dataclass(frozen=True)
class ArrayType:
    """How one dataset's elements are described and serialised."""

    dtype_text: str  # arrays.dtype
    native: np.dtype[Any]  # numpy dtype of decoded values (native byte order)
    serializer: dict[str, Any]  # the array->bytes codec
    vlen_string: bool  # values must be inlined with vlen-utf8

    def fill_value_json(self, value: Any) -> str:
        """``arrays.fill_value`` text for an HDF5 fill value (numpy scalar or None)."""
        if self.vlen_string:
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            return json.dumps(value if isinstance(value, str) else "")
        # the same few fill values recur in every file of an archive: zarr's conversion
        # (under catch_warnings) costs ~70 us, so the text is kept per (dtype, value bytes)
        try:
            key = (self.native.str, None if value is None else _value_bytes(value, self.native))
        except (TypeError, ValueError, OverflowError):
            key = None
        text = _FILL_JSON.get(key) if key is not None else None
        if text is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                zdtype = zarr_data_type(self.native)
                scalar = zdtype.default_scalar() if value is None else zdtype.cast_scalar(value)
                text = json.dumps(zdtype.to_json_scalar(scalar, zarr_format=3))
            if key is not None and len(_FILL_JSON) < 4096:
                _FILL_JSON[key] = text
        return text


_FILL_JSON: dict[tuple[str, bytes | None], str] = {}


def _value_bytes(value: Any, native: np.dtype[Any]) -> bytes:
    """The bytes of ``value`` as one ``native`` element (a cache key exact for NaN payloads)."""
    return bytes(type(value).__name__, "ascii") + b":" + np.asarray(value, native).tobytes()


def _endian(dtype: np.dtype[Any]) -> str:
    if dtype.byteorder == ">":
        return "big"
    if dtype.byteorder == "=" and np.dtype("=i2").str.startswith(">"):  # pragma: no cover
        return "big"
    return "little"


def array_type(dtype: np.dtype[Any], *, uri: str, array: str) -> ArrayType:
    """The ``ArrayType`` of an h5py dataset dtype, or ``UnsupportedDtypeError``."""
    import h5py

    string = h5py.check_string_dtype(dtype)
    if string is not None and string.length is None:
        return ArrayType(
            "string", np.dtype(object), {"name": "vlen-utf8", "configuration": {}}, True
        )
    if h5py.check_vlen_dtype(dtype) is not None:
        raise UnsupportedDtypeError(
            f"variable-length sequences of {h5py.check_vlen_dtype(dtype)} are not supported",
            source=uri,
            array=array,
        )
    if h5py.check_ref_dtype(dtype) is not None:
        raise UnsupportedDtypeError("object/region reference datasets", source=uri, array=array)
    enum = h5py.check_enum_dtype(dtype)
    base = np.dtype(dtype.str) if enum is not None else dtype
    if enum is not None and dict(enum) == {"FALSE": 0, "TRUE": 1} and base.itemsize == 1:
        native: np.dtype[Any] = np.dtype(bool)
    elif base.kind in "biufc":
        native = base.newbyteorder("=")
    elif base.kind == "S":
        native = np.dtype(f"S{base.itemsize}")
    else:
        what = "compound" if base.fields else f"HDF5 type {dtype}"
        raise UnsupportedDtypeError(f"{what} datasets are not supported", source=uri, array=array)
    serializer = {"name": "bytes", "configuration": {"endian": _endian(base)}}
    return ArrayType(dtype_to_text(native), native, serializer, False)

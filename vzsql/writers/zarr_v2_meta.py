"""Zarr v2 metadata (``.zgroup``, ``.zattrs``, ``.zarray``) from the tables, and back.

kerchunk references carry Zarr v2 metadata by default, while the manifest stores Zarr v3
(``dtype``, ``fill_value``, ``codecs``). This module translates between the two, one array at
a time, starting from ``vzsql.zarr_meta`` so every output describes an array the same way:

- the ``bytes`` codec's ``endian`` becomes the byte-order character of the v2 ``dtype``
  (``<f4`` / ``>f4``), ``vlen-utf8`` becomes ``|O`` with the ``vlen-utf8`` object codec;
- a ``transpose`` that reverses the axes becomes ``order: "F"``;
- the other codecs become numcodecs configurations (``numcodecs.zlib`` -> ``{"id": "zlib"}``;
  the core v3 ``gzip``/``zstd``/``blosc``/``crc32c`` -> their numcodecs twins); the last one is
  the ``compressor`` when it is a compressor, the rest are ``filters``, in order;
- dimension names go to ``_ARRAY_DIMENSIONS`` in ``.zattrs``.

Arrays Zarr v2 cannot describe (rectilinear chunk grids, codecs without a numcodecs
equivalent) are an ``ExportError`` naming the array.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from typing import Any

import numpy as np

from vzsql.codecs.v2_names import NUMCODECS_PREFIX, v3_codec
from vzsql.errors import ExportError, ReferenceFormatError
from vzsql.tables import Tables
from vzsql.zarr_meta import ZARR_JSON, dtype_to_text, hierarchy, is_rectilinear, parse_dtype

DIMENSION_KEY = "_ARRAY_DIMENSIONS"
# numcodecs ids that compress: the last codec of a chain becomes ``compressor`` if it is one
COMPRESSOR_IDS = frozenset({"zlib", "gzip", "zstd", "blosc", "lz4", "bz2", "lzma"})
_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def _zdtype(text: str) -> Any:
    from zarr.core.dtype import parse_data_type

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_data_type(parse_dtype(text), zarr_format=3)


def _numcodecs_config(array: str, codec: dict[str, Any]) -> dict[str, Any]:
    """The numcodecs configuration (``{"id": ...}``) of one Zarr v3 codec."""
    name = str(codec.get("name", ""))
    cfg = dict(codec.get("configuration") or {})
    if name.startswith(NUMCODECS_PREFIX):
        config = {"id": name[len(NUMCODECS_PREFIX) :], **cfg}
    elif name == "gzip":
        config = {"id": "gzip", "level": cfg.get("level", 5)}
    elif name == "zstd":
        config = {"id": "zstd", "level": cfg.get("level", 0), "checksum": bool(cfg.get("checksum"))}
    elif name == "blosc":
        config = {
            "id": "blosc",
            "cname": cfg.get("cname", "lz4"),
            "clevel": cfg.get("clevel", 5),
            "shuffle": _BLOSC_SHUFFLE.get(cfg.get("shuffle", "noshuffle"), 0),
            "blocksize": cfg.get("blocksize", 0),
        }
        if cfg.get("typesize"):
            config["typesize"] = cfg["typesize"]
    elif name == "crc32c":
        config = {"id": "crc32c"}
    else:
        raise ExportError(
            f"codec {name!r} has no Zarr v2 (numcodecs) equivalent; export with zarr_format=3",
            array=array,
        )
    import numcodecs

    try:
        numcodecs.get_codec(dict(config))
    except Exception as e:
        raise ExportError(
            f"codec {name!r} is not a numcodecs codec this environment knows ({e}); "
            "export with zarr_format=3",
            array=array,
        ) from e
    return config


def refuse_rectilinear(array: str, doc: dict[str, Any]) -> None:
    """Raise ``ExportError`` if the array document has a rectilinear chunk grid."""
    if is_rectilinear(doc):
        raise ExportError(
            "variable-length (rectilinear) chunks cannot be expressed in kerchunk references",
            array=array,
        )


def zarray(array: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The ``.zarray`` document of an array, from its Zarr v3 ``zarr.json`` document."""
    refuse_rectilinear(array, doc)
    ndim = len(doc["shape"])
    zdtype = _zdtype(
        json.dumps(doc["data_type"]) if isinstance(doc["data_type"], dict) else doc["data_type"]
    )
    order = "C"
    object_codec: dict[str, Any] | None = None
    filters: list[dict[str, Any]] = []
    seen_bytes = False
    for codec in doc["codecs"]:
        name = codec.get("name")
        cfg = codec.get("configuration") or {}
        if name == "transpose" and not seen_bytes:
            perm = list(cfg.get("order", []))
            if perm == list(range(ndim))[::-1]:
                order = "F"
            elif perm != list(range(ndim)):
                raise ExportError(f"transpose order {perm} has no Zarr v2 equivalent", array=array)
        elif name == "bytes":
            seen_bytes = True
            if cfg.get("endian") == "big" and hasattr(zdtype, "endianness"):
                zdtype = dataclasses.replace(zdtype, endianness="big")
        elif name == "vlen-utf8":
            seen_bytes = True
            object_codec = {"id": "vlen-utf8"}
        elif name == "sharding_indexed":
            raise ExportError("sharded arrays cannot be expressed in Zarr v2", array=array)
        else:
            filters.append(_numcodecs_config(array, codec))
    if not seen_bytes:
        raise ExportError("codec pipeline has no array-to-bytes codec", array=array)
    compressor = None
    if filters and filters[-1]["id"] in COMPRESSOR_IDS:
        compressor = filters.pop()
    if object_codec is not None:
        filters.insert(0, object_codec)
        dtype_v2: Any = "|O"
    else:
        dtype_v2 = zdtype.to_json(zarr_format=2)["name"]
    fill = doc["fill_value"]
    try:
        fill_v2 = zdtype.to_json_scalar(zdtype.from_json_scalar(fill, zarr_format=3), zarr_format=2)
    except Exception as e:
        raise ExportError(
            f"fill value {fill!r} cannot be written for Zarr v2: {e}", array=array
        ) from e
    chunks = doc["chunk_grid"]["configuration"]["chunk_shape"]
    return {
        "chunks": [int(c) for c in chunks],
        "compressor": compressor,
        "dimension_separator": ".",
        "dtype": dtype_v2,
        "fill_value": fill_v2,
        "filters": filters or None,
        "order": order,
        "shape": [int(s) for s in doc["shape"]],
        "zarr_format": 2,
    }


def zattrs(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``.zattrs`` of a node; arrays get their dimension names as ``_ARRAY_DIMENSIONS``."""
    attrs = dict(doc.get("attributes") or {})
    if doc["node_type"] == "array":
        names = doc.get("dimension_names")
        attrs[DIMENSION_KEY] = (
            list(names)
            if names is not None
            else [f"phony_dim_{i}" for i in range(len(doc["shape"]))]
        )
    return attrs


def v2_documents(tables: Tables) -> dict[str, dict[str, Any]]:
    """Every ``.zgroup``/``.zattrs``/``.zarray`` document keyed by its store key, sorted."""
    out: dict[str, dict[str, Any]] = {}
    for key, doc in hierarchy(tables).items():
        path = key[: -len(ZARR_JSON)]  # "" or "grp/air/"
        if doc["node_type"] == "group":
            out[f"{path}.zgroup"] = {"zarr_format": 2}
        else:
            out[f"{path}.zarray"] = zarray(path.rstrip("/"), doc)
        out[f"{path}.zattrs"] = zattrs(doc)
    return dict(sorted(out.items()))


def v3_documents(tables: Tables) -> dict[str, dict[str, Any]]:
    """Every ``zarr.json`` document keyed by its store key, sorted; rectilinear is an error."""
    docs = hierarchy(tables)
    for key, doc in docs.items():
        if doc["node_type"] == "array":
            refuse_rectilinear(key[: -len(ZARR_JSON) - 1], doc)
    return dict(sorted(docs.items()))


# -- import: Zarr v2 -> the manifest's Zarr v3 columns ----------------------------------------
def arrays_row_from_v2(
    array: str,
    zarray_doc: dict[str, Any],
    zattrs_doc: dict[str, Any] | None,
    source: str,
    *,
    fill_value_is_cf: bool = True,
) -> dict[str, Any]:
    """An ``arrays`` row (v3 dtype, fill_value, codecs) for a ``.zarray`` and its ``.zattrs``.

    With ``fill_value_is_cf`` (Zarr v2 reading rules, as xarray applies them) a
    ``fill_value`` becomes the CF ``_FillValue`` when ``.zattrs`` has none.
    """
    try:
        shape = [int(s) for s in zarray_doc["shape"]]
        chunks = [int(c) for c in zarray_doc["chunks"]]
        dtype_spec = zarray_doc["dtype"]
    except (KeyError, TypeError, ValueError) as e:
        raise ReferenceFormatError(f"malformed .zarray: {e!r}", source=source, array=array) from e
    if not isinstance(dtype_spec, str):
        raise ReferenceFormatError(
            f"structured dtype {dtype_spec!r} is not supported", source=source, array=array
        )
    filters = [dict(f) for f in (zarray_doc.get("filters") or [])]
    compressor = zarray_doc.get("compressor")
    codecs: list[dict[str, Any]] = []
    if zarray_doc.get("order", "C") == "F" and len(shape) > 1:
        codecs.append(
            {"name": "transpose", "configuration": {"order": list(range(len(shape)))[::-1]}}
        )
    if dtype_spec == "|O":
        if not filters or filters[0].get("id") != "vlen-utf8":
            raise ReferenceFormatError(
                "object dtype without a vlen-utf8 filter is not supported",
                source=source,
                array=array,
            )
        filters.pop(0)
        dtype_text = "string"
        codecs.append({"name": "vlen-utf8"})
        fill_text = json.dumps("")
    else:
        try:
            native = np.dtype(dtype_spec)
        except TypeError as e:
            raise ReferenceFormatError(
                f"unknown dtype {dtype_spec!r}", source=source, array=array
            ) from e
        dtype_text = dtype_to_text(native.newbyteorder("<") if native.byteorder == ">" else native)
        if (native.itemsize > 1 and native.kind not in "SVU") or native.kind == "U":
            endian = "big" if native.byteorder == ">" else "little"
            codecs.append({"name": "bytes", "configuration": {"endian": endian}})
        else:
            codecs.append({"name": "bytes"})
        zdtype = _zdtype(dtype_text)
        fill = zarray_doc.get("fill_value")
        try:
            value = (
                zdtype.default_scalar()
                if fill is None
                else zdtype.from_json_scalar(fill, zarr_format=2)
            )
            fill_text = json.dumps(zdtype.to_json_scalar(value, zarr_format=3))
        except Exception as e:
            raise ReferenceFormatError(
                f"fill value {fill!r} is not valid for {dtype_spec}", source=source, array=array
            ) from e
    itemsize = np.dtype(dtype_spec).itemsize if dtype_spec != "|O" else 1
    for f in [*filters, *([compressor] if compressor else [])]:
        if not isinstance(f, dict) or "id" not in f:
            raise ReferenceFormatError(f"malformed codec {f!r}", source=source, array=array)
        codecs.append(v3_codec(f, itemsize))
    attrs = dict(zattrs_doc or {})
    dims = attrs.pop(DIMENSION_KEY, None)
    if dims is None:
        dims = [f"phony_dim_{i}" for i in range(len(shape))]
    attr_dtypes = None
    fill = zarray_doc.get("fill_value")
    if fill_value_is_cf and fill is not None and "_FillValue" not in attrs and dtype_spec != "|O":
        # Zarr v2 readers (xarray) mask with .zarray's fill_value when .zattrs has no
        # _FillValue; kerchunk moves netCDF's _FillValue there, so carry it back as CF
        native = np.dtype(dtype_spec)
        if native.kind in "biuf":
            attrs["_FillValue"] = fill
            attr_dtypes = json.dumps({"_FillValue": native.newbyteorder("=").str})
    return {
        "array": array,
        "dims": [str(d) for d in dims],
        "shape": shape,
        "chunk_shape": chunks,
        "dtype": dtype_text,
        "fill_value": fill_text,
        "codecs": json.dumps(codecs, separators=(",", ":")),
        "attrs": json.dumps(attrs, ensure_ascii=False),
        "attr_dtypes": attr_dtypes,
    }


def arrays_row_from_v3(array: str, doc: dict[str, Any], source: str) -> dict[str, Any]:
    """An ``arrays`` row for a Zarr v3 ``zarr.json`` array document (regular grid only)."""
    try:
        grid = doc["chunk_grid"]
        if grid.get("name") != "regular":
            raise ReferenceFormatError(
                f"chunk grid {grid.get('name')!r} is not supported", source=source, array=array
            )
        dtype = doc["data_type"]
        return {
            "array": array,
            "dims": [str(d) for d in doc.get("dimension_names") or []]
            or [f"phony_dim_{i}" for i in range(len(doc["shape"]))],
            "shape": [int(s) for s in doc["shape"]],
            "chunk_shape": [int(c) for c in grid["configuration"]["chunk_shape"]],
            "dtype": json.dumps(dtype, sort_keys=True) if isinstance(dtype, dict) else dtype,
            "fill_value": json.dumps(doc["fill_value"]),
            "codecs": json.dumps(doc["codecs"]),
            "attrs": json.dumps(doc.get("attributes") or {}),
            "attr_dtypes": None,
        }
    except (KeyError, TypeError, ValueError) as e:
        raise ReferenceFormatError(f"malformed zarr.json: {e!r}", source=source, array=array) from e

"""Zarr v3 metadata (``zarr.json`` documents) from the ``arrays``, ``grid`` and ``groups`` tables.

Shared by the store and every writer, so all outputs describe an array the same way. A
grid whose chunks all have the stored chunk length (the last may be cut by the extent) is a
regular grid; anything else is Zarr's rectilinear grid.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.tables import Tables

ZARR_JSON = "zarr.json"


def parse_dtype(text: str) -> Any:
    """The Zarr v3 ``data_type`` JSON value stored in ``arrays.dtype``."""
    return json.loads(text) if text.startswith("{") else text


@lru_cache(maxsize=256)
def zarr_data_type(dtype: np.dtype[Any]) -> Any:
    """zarr's data type object for a numpy dtype (cached: zarr's lookup is slow per call)."""
    from zarr.core.dtype import get_data_type_from_native_dtype

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return get_data_type_from_native_dtype(dtype)


@lru_cache(maxsize=256)
def dtype_to_text(dtype: np.dtype[Any] | str) -> str:
    """``arrays.dtype`` text for a numpy dtype (``"string"`` for variable-length strings)."""
    if isinstance(dtype, str):
        return dtype
    if dtype.kind == "O":
        return "string"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        js = zarr_data_type(dtype).to_json(zarr_format=3)
    return js if isinstance(js, str) else json.dumps(js, sort_keys=True)


def numpy_dtype(text: str) -> np.dtype[Any]:
    """The native numpy dtype for ``arrays.dtype`` text."""
    from zarr.core.dtype import parse_data_type

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_data_type(parse_dtype(text), zarr_format=3).to_native_dtype()  # type: ignore[no-any-return]


def chunk_key(index: Iterable[int]) -> str:
    """The default Zarr v3 chunk key (``c/0/1/2``; ``c`` for 0-d arrays)."""
    return "/".join(["c", *(str(i) for i in index)])


def grid_lengths(tables: Tables) -> dict[str, list[list[int]]]:
    """Per array: for each dimension, the list of chunk lengths in chunk order."""
    grid = tables.grid.sort_by(
        [("array", "ascending"), ("dim", "ascending"), ("chunk", "ascending")]
    )
    out: dict[str, list[list[int]]] = {}
    if not grid.num_rows:
        return out
    # array names as integer codes (Arrow, no per-row Python objects)
    encoded = pc.dictionary_encode(grid.column("array").combine_chunks())
    names = encoded.dictionary.to_pylist()
    codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    dims = grid.column("dim").to_numpy().astype(np.int64)
    lengths = grid.column("length").to_numpy()
    # split into runs of (array, dim); a loop over dimensions, not chunks
    keys = codes * 65536 + dims
    bounds = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(keys)]])
    for s, e in zip(starts, ends, strict=True):
        out.setdefault(names[codes[s]], []).append(lengths[s:e].tolist())
    return out


def chunk_grid_json(
    shape: list[int], chunk_shape: list[int] | None, lengths: list[list[int]] | None
) -> dict[str, Any]:
    """The ``chunk_grid`` of an array: regular if the grid allows it, else rectilinear."""
    ndim = len(shape)
    if ndim == 0:
        return {"name": "regular", "configuration": {"chunk_shape": []}}
    if not lengths or len(lengths) != ndim:
        cs = list(chunk_shape) if chunk_shape else [max(1, s) for s in shape]
        return {"name": "regular", "configuration": {"chunk_shape": cs}}
    stored = list(chunk_shape) if chunk_shape else [max(ls) if ls else 1 for ls in lengths]
    regular = all(
        all(n == stored[d] for n in ls[:-1]) and (not ls or ls[-1] <= stored[d])
        for d, ls in enumerate(lengths)
    )
    if regular:
        return {"name": "regular", "configuration": {"chunk_shape": stored}}
    edges: list[Any] = []
    for d, ls in enumerate(lengths):
        dim_edges = list(ls) if ls else [1]
        # the last chunk may hold padding past the extent, as in a regular grid
        dim_edges[-1] = (
            max(dim_edges[-1], stored[d])
            if ls and ls[-1] < stored[d] and all(n == stored[d] for n in ls[:-1])
            else dim_edges[-1]
        )
        if len(set(dim_edges)) == 1 and sum(dim_edges) >= shape[d] and len(dim_edges) > 1:
            edges.append(dim_edges[0])
        else:
            edges.append(dim_edges)
    return {"name": "rectilinear", "configuration": {"kind": "inline", "chunk_shapes": edges}}


def is_rectilinear(meta: dict[str, Any]) -> bool:
    return bool(meta["chunk_grid"]["name"] == "rectilinear")


def array_json(row: dict[str, Any], lengths: list[list[int]] | None) -> dict[str, Any]:
    """The ``zarr.json`` document of one ``arrays`` row."""
    shape = [int(s) for s in (row["shape"] or [])]
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": shape,
        "data_type": parse_dtype(row["dtype"]),
        "chunk_grid": chunk_grid_json(shape, row.get("chunk_shape"), lengths),
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": json.loads(row["fill_value"]) if row["fill_value"] is not None else 0,
        "codecs": json.loads(row["codecs"]) if row["codecs"] else [{"name": "bytes"}],
        "attributes": json.loads(row["attrs"]) if row["attrs"] else {},
        "dimension_names": list(row["dims"]) if row["dims"] is not None else None,
        "storage_transformers": [],
    }


def group_json(attrs: str | None) -> dict[str, Any]:
    return {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": json.loads(attrs) if attrs else {},
    }


def hierarchy(tables: Tables) -> dict[str, dict[str, Any]]:
    """Every node's ``zarr.json`` keyed by its store key (``zarr.json``, ``grp/air/zarr.json``).

    Groups that hold arrays but have no ``groups`` row are created without attributes.
    """
    docs: dict[str, dict[str, Any]] = {}
    group_rows = {r["group"]: r for r in tables.groups.to_pylist()}
    lengths = grid_lengths(tables)
    for row in tables.arrays.to_pylist():
        docs[_node_key(row["array"])] = array_json(row, lengths.get(row["array"]))
        parts = row["array"].split("/")[:-1]
        for i in range(len(parts) + 1):
            g = "/".join(parts[:i])
            group_rows.setdefault(g, {"group": g, "attrs": None})
    group_rows.setdefault("", {"group": "", "attrs": None})
    for g, grow in group_rows.items():
        for i in range(len(g.split("/")) if g else 0):
            parent = "/".join(g.split("/")[:i])
            if _node_key(parent) not in docs:
                docs.setdefault(
                    _node_key(parent), group_json(group_rows.get(parent, {}).get("attrs"))
                )
        docs[_node_key(g)] = group_json(grow.get("attrs"))
    return docs


def _node_key(path: str) -> str:
    return f"{path}/{ZARR_JSON}" if path else ZARR_JSON


def arrays_by_name(tables: Tables) -> dict[str, dict[str, Any]]:
    return {r["array"]: r for r in tables.arrays.to_pylist()}


def table_of_docs(docs: dict[str, dict[str, Any]]) -> pa.Table:
    """The documents as a two-column Arrow table (``key``, ``json``) for writers that stream."""
    return pa.table({"key": list(docs), "json": [json.dumps(d) for d in docs.values()]})

"""Existing Zarr v2/v3 stores (local folders, S3 prefixes) -> manifest tables.

Every chunk object becomes a reference to the whole object (offset 0, length = its size),
and the ``sources`` table gets one row per chunk object. Objects are found with one bulk
listing of the store (a directory walk, or one paginated ``find`` on object stores), never
one request per chunk; chunk keys are parsed to indices with Arrow string kernels.

- Zarr v2 metadata is translated to a Zarr v3 codec pipeline: ``order: F`` -> ``transpose``,
  filters -> ``numcodecs.<id>`` codecs (``vlen-utf8``/``vlen-bytes`` become the array->bytes
  codec), dtype endianness -> the ``bytes`` codec, compressor -> ``blosc``/``gzip``/``zstd`` or
  ``numcodecs.<id>``; ``_ARRAY_DIMENSIONS`` becomes the dimension names.
- Zarr v3 arrays keep their codecs as written. A sharded array is referenced shard by shard:
  the manifest's chunks are the shard objects and the ``sharding_indexed`` codec stays in the
  pipeline, so readers decode inner chunks (partial reads of a shard need a store that serves
  byte ranges of a chunk, as zarr's sharding codec asks for them).
- Chunk objects beyond the array's grid (left over after a resize) are ignored, as zarr does.
- Consolidated metadata is used when present (zarr reads it), else the hierarchy is listed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.codecs.encode import bytes_codec
from vzsql.codecs.v2_names import v3_codec
from vzsql.errors import CorruptSourceError, SourceError, UnsupportedFormatError
from vzsql.scanners.grid import regular_grid, repeated_names
from vzsql.sources import fsspec_fs, local_etag, local_path, normalize_uri, stat_from_info
from vzsql.tables import (
    ARRAYS_SCHEMA,
    CHUNKS_SCHEMA,
    GRID_SCHEMA,
    GROUPS_SCHEMA,
    SOURCES_SCHEMA,
    Tables,
)

FORMAT = "zarr"
METADATA_FILES = frozenset({".zarray", ".zattrs", ".zgroup", ".zmetadata", "zarr.json"})


def scan_zarr(uri: str, *, storage_options: dict[str, Any] | None = None) -> Tables:
    """Manifest tables referencing every chunk object of the Zarr store at ``uri``."""
    import zarr

    uri = normalize_uri(uri).rstrip("/")
    store = _open_store(uri, storage_options)
    try:
        root = zarr.open(store=store, mode="r")
        nodes: list[tuple[str, Any]] = [("", root)]
        if isinstance(root, zarr.Group):
            nodes += sorted(root.members(max_depth=None), key=lambda kv: kv[0])
    except Exception as e:  # zarr raises many kinds for missing/garbled metadata
        raise CorruptSourceError(
            f"cannot read Zarr metadata: {type(e).__name__}: {e}", source=uri
        ) from e
    listing = list_objects(uri, storage_options)
    array_rows, group_rows, grids, chunk_parts = [], [], [], []
    for path, node in nodes:
        if isinstance(node, zarr.Group):
            group_rows.append({"group": path, "attrs": json.dumps(dict(node.attrs))})
            continue
        name = path or "data"  # a store whose root is an array
        row = array_row(name, node.metadata, uri)
        array_rows.append(row)
        grids.append(regular_grid(name, row["shape"], row["chunk_shape"]))
        chunk_parts.append(_chunk_objects(path, node.metadata, row, listing, uri))
    chunks, sources = _chunks_and_sources(chunk_parts, listing, uri)
    return Tables.from_mapping(
        {
            "sources": sources,
            "arrays": pa.Table.from_pylist(array_rows, schema=ARRAYS_SCHEMA),
            "grid": pa.concat_tables(grids) if grids else GRID_SCHEMA.empty_table(),
            "chunks": chunks,
            "groups": pa.Table.from_pylist(group_rows, schema=GROUPS_SCHEMA),
        }
    )


def _open_store(uri: str, storage_options: dict[str, Any] | None) -> Any:
    from zarr.storage import FsspecStore, LocalStore

    path = local_path(uri)
    if path is not None:
        if not os.path.isdir(path):
            raise SourceError("Zarr store folder not found", source=uri)
        return LocalStore(path, read_only=True)
    return FsspecStore.from_url(uri, storage_options=storage_options, read_only=True)


def list_objects(uri: str, storage_options: dict[str, Any] | None) -> pa.Table:
    """Every object under the store: ``key`` (relative), ``size``, ``mtime`` (ns), ``etag``."""
    keys: list[str] = []
    sizes: list[int] = []
    mtimes: list[int | None] = []
    etags: list[str | None] = []
    path = local_path(uri)
    if path is not None:
        for dirpath, _dirs, files in os.walk(path):
            rel = os.path.relpath(dirpath, path)
            for f in files:
                st = os.stat(os.path.join(dirpath, f))
                keys.append(f if rel == "." else f"{rel.replace(os.sep, '/')}/{f}")
                sizes.append(st.st_size)
                mtimes.append(st.st_mtime_ns)
                etags.append(local_etag(st))
    else:
        fs, root = fsspec_fs(uri, storage_options)
        try:
            found = fs.find(root, detail=True)
        except OSError as e:
            raise SourceError(f"cannot list Zarr store: {e}", source=uri) from e
        root = root.rstrip("/")
        for name, info in found.items():
            stat = stat_from_info(name, info)
            keys.append(name[len(root) + 1 :])
            sizes.append(stat.size)
            mtimes.append(stat.mtime_ns)
            etags.append(stat.etag)
    return pa.table(
        {
            "key": pa.array(keys, pa.string()),
            "size": pa.array(sizes, pa.int64()),
            "mtime": pa.array(mtimes, pa.int64()),
            "etag": pa.array(etags, pa.string()),
        }
    )


def array_row(name: str, meta: Any, uri: str) -> dict[str, Any]:
    """The ``arrays`` row of one zarr array (v2 metadata translated to v3 codecs)."""
    attrs = dict(meta.attributes)
    if meta.zarr_format == 2:
        dims = attrs.pop("_ARRAY_DIMENSIONS", None)
        codecs = v2_codecs(meta, uri, name)
        chunk_shape = list(meta.chunks)
    else:
        dims = list(meta.dimension_names) if meta.dimension_names is not None else None
        doc = meta.to_dict()
        codecs = doc["codecs"]
        grid = doc["chunk_grid"]
        if grid.get("name") != "regular":
            raise UnsupportedFormatError(
                f"Zarr chunk grid {grid.get('name')!r} is not supported", source=uri, array=name
            )
        chunk_shape = list(grid["configuration"]["chunk_shape"])
    zdtype = meta.dtype
    fill = meta.fill_value if meta.fill_value is not None else zdtype.default_scalar()
    data_type = zdtype.to_json(zarr_format=3)
    return {
        "array": name,
        "dims": dims,
        "shape": list(meta.shape),
        "chunk_shape": chunk_shape,
        "dtype": data_type if isinstance(data_type, str) else json.dumps(data_type, sort_keys=True),
        "fill_value": json.dumps(zdtype.to_json_scalar(fill, zarr_format=3)),
        "codecs": json.dumps(codecs),
        "attrs": json.dumps(attrs),
        "attr_dtypes": "{}",
    }


def v2_codecs(meta: Any, uri: str, name: str) -> list[dict[str, Any]]:
    """The Zarr v3 codec pipeline equivalent to a v2 array's order/filters/dtype/compressor."""
    native = meta.dtype.to_native_dtype()
    codecs: list[dict[str, Any]] = []
    if meta.order == "F" and len(meta.shape) > 1:
        codecs.append(
            {"name": "transpose", "configuration": {"order": list(range(len(meta.shape)))[::-1]}}
        )
    serializer: dict[str, Any] | None = None  # vlen-utf8 / vlen-bytes replace ``bytes``
    for f in meta.filters or ():
        config = f.get_config()
        codec_id = config.pop("id")
        if codec_id in ("vlen-utf8", "vlen-bytes"):
            serializer = {"name": codec_id}
        elif codec_id == "vlen-array":
            raise UnsupportedFormatError(
                "Zarr v2 vlen-array filter has no Zarr v3 codec", source=uri, array=name
            )
        else:
            codecs.append({"name": f"numcodecs.{codec_id}", "configuration": config})
    codecs.append(serializer or bytes_codec(native))
    if meta.compressor is not None:
        codecs.append(v3_codec(meta.compressor.get_config(), native.itemsize))
    return codecs


def _key_pattern(meta: Any, ndim: int) -> tuple[str, str, str]:
    """``(regex, prefix to strip, separator)`` of the chunk keys of an array."""
    if meta.zarr_format == 2:
        sep, prefix = meta.dimension_separator, ""
        v2_style = True
    else:
        enc = meta.chunk_key_encoding
        sep = enc.separator
        v2_style = enc.name == "v2"
        prefix = "" if v2_style else "c"
    s = re.escape(sep)
    if v2_style:
        regex = r"^0$" if ndim == 0 else rf"^\d+({s}\d+){{{ndim - 1}}}$"
        return regex, "", sep
    return rf"^c({s}\d+){{{ndim}}}$", prefix + (sep if ndim else ""), sep


def _chunk_objects(
    path: str, meta: Any, row: dict[str, Any], listing: pa.Table, uri: str
) -> dict[str, Any]:
    """Positions in ``listing`` of the array's chunk objects and their chunk indices."""
    ndim = len(row["shape"])
    prefix = f"{path}/" if path else ""
    keys = listing["key"]
    positions = np.arange(listing.num_rows)
    if prefix:
        mask = pc.starts_with(keys, prefix)
        keys, positions = keys.filter(mask), positions[np.asarray(mask, dtype=bool)]
    rel = pc.utf8_slice_codeunits(keys, len(prefix))
    regex, strip, sep = _key_pattern(meta, ndim)
    mask = pc.match_substring_regex(rel, regex)
    rel, positions = rel.filter(mask), positions[np.asarray(mask, dtype=bool)]
    n = len(rel)
    if ndim == 0:
        flat = np.zeros(0, np.int32)
    else:
        parts = pc.split_pattern(pc.utf8_slice_codeunits(rel, len(strip)), sep)
        flat = np.asarray(pc.list_flatten(parts).cast(pa.int64()))
    idx = flat.reshape(n, ndim)
    grid_counts = [
        -(-s // c) if c else 0 for s, c in zip(row["shape"], row["chunk_shape"], strict=True)
    ]
    keep = (idx < np.array(grid_counts, np.int64)).all(axis=1) if ndim else np.ones(n, bool)
    return {"array": row["array"], "ndim": ndim, "index": idx[keep], "pos": positions[keep]}


def _chunks_and_sources(
    parts: list[dict[str, Any]], listing: pa.Table, uri: str
) -> tuple[pa.Table, pa.Table]:
    """The chunks table (each a whole object) and one ``sources`` row per chunk object."""
    parts = [p for p in parts if len(p["pos"])]
    if not parts:
        return CHUNKS_SCHEMA.empty_table(), SOURCES_SCHEMA.empty_table()
    counts = np.array([len(p["pos"]) for p in parts], np.int64)
    pos = np.concatenate([p["pos"] for p in parts])
    total = len(pos)
    objects = listing.take(pa.array(pos))
    sizes = objects["size"]
    flat = np.concatenate([p["index"].ravel() for p in parts]).astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(np.repeat([p["ndim"] for p in parts], counts))])
    keys = objects["key"]
    if pc.any(pc.match_substring_regex(keys, r"[^A-Za-z0-9._~/-]")).as_py():
        keys = pa.array([quote(k, safe="/") for k in keys.to_pylist()], pa.string())
    sources = pa.table(
        {
            "source_id": pa.array(np.arange(total, dtype=np.int32)),
            "uri": pc.binary_join_element_wise(pa.scalar(uri), keys, "/"),
            "format": repeated_names([FORMAT], [total]),
            "size": sizes,
            "mtime": objects["mtime"],
            "etag": objects["etag"],
            "scanned_at": pa.repeat(
                pa.scalar(dt.datetime.now(dt.UTC), pa.timestamp("us", "UTC")), total
            ),
        },
        schema=SOURCES_SCHEMA,
    )
    chunks = pa.table(
        {
            "array": repeated_names([p["array"] for p in parts], counts),
            "index": pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat)),
            "source_id": pa.array(np.arange(total, dtype=np.int32)),
            "offset": pa.array(np.zeros(total, np.int64)),
            "length": sizes,
            "data": pa.nulls(total, pa.binary()),
        },
        schema=CHUNKS_SCHEMA,
    )
    return chunks, sources

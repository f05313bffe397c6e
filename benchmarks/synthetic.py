"""Synthetic manifests of any size, generated vectorised (numpy -> Arrow, no Python per chunk).

The shape is that of a typical reanalysis archive: ``n_arrays`` variables ``(time, lat,
lon)``, each time step split into ``tiles`` x ``tiles`` spatial chunks, one file per
``steps_per_file`` time steps (so files hold every variable of a day, like hourly
netCDF files). Chunk lengths vary (compressed data); offsets run through each file.

``synthetic_tables(n)`` gives the five tables in the manifest contract's schema (``array``
as plain strings, ``index`` as ``list<int32>``); ``compact_chunks`` gives the same chunk
rows in a compact layout (dictionary ``array``, fixed-size index list, no ``data``
column), to measure what a schema change would save. ``virtualizarr_manifests`` builds the
same references as VirtualiZarr ``ChunkManifest``s from numpy arrays.

``one_array_manifest`` is the export benchmarks' manifest (one array, ``nt`` x 100
references) with the same references as numpy arrays; ``one_array_dataset`` makes the
VirtualiZarr Dataset of them.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.tables import Tables, conform

VARS = ("air", "rh", "uwnd", "vwnd", "hgt", "tmin", "tmax", "prate")
TILE = 64  # elements per spatial chunk edge
HEADER = 4096  # bytes before the first chunk of a file


def layout(n: int, n_arrays: int = 4, tiles: int = 4, steps_per_file: int = 24) -> dict[str, int]:
    """Sizes of a synthetic archive with about ``n`` chunk references."""
    per_step = tiles * tiles
    steps = max(1, n // (n_arrays * per_step))
    files = -(-steps // steps_per_file)
    return {
        "n_arrays": n_arrays,
        "tiles": tiles,
        "steps": steps,
        "steps_per_file": steps_per_file,
        "files": files,
        "refs": steps * per_step * n_arrays,
    }


def _lengths(m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(8_000, 16_000, size=m, dtype=np.int64)


def chunk_columns(n: int, **kw: Any) -> dict[str, Any]:
    """The chunk references as numpy columns (per array: t, y, x, source_id, offset, length)."""
    lay = layout(n, **kw)
    a, tiles, steps, spf = lay["n_arrays"], lay["tiles"], lay["steps"], lay["steps_per_file"]
    per_step = tiles * tiles
    m = steps * per_step  # refs per array
    t = np.repeat(np.arange(steps, dtype=np.int32), per_step)
    y = np.tile(np.repeat(np.arange(tiles, dtype=np.int32), tiles), steps)
    x = np.tile(np.arange(tiles, dtype=np.int32), steps * tiles)
    sid = (t // spf).astype(np.int32)
    slot = (t % spf).astype(np.int64) * per_step + y.astype(np.int64) * tiles + x
    lengths = [_lengths(m, seed=k) for k in range(a)]
    # offsets: each file holds every array's chunks of its steps, one after another, so a
    # chunk's offset is the header plus the lengths of the chunks before it in its file
    per_file = np.zeros((lay["files"], a, spf * per_step), dtype=np.int64)
    for k in range(a):
        per_file[sid, k, slot] = lengths[k]
    flat = per_file.reshape(lay["files"], -1)
    before = np.cumsum(flat, axis=1) - flat
    del per_file, flat
    out = []
    for k in range(a):
        offset = HEADER + before[sid, k * spf * per_step + slot]
        out.append(
            {
                "array": VARS[k],
                "t": t,
                "y": y,
                "x": x,
                "sid": sid,
                "offset": offset,
                "length": lengths[k],
            }
        )
    return {"layout": lay, "arrays": out}


def _chunks_table(cols: dict[str, Any]) -> pa.Table:
    batches = []
    for c in cols["arrays"]:
        m = len(c["t"])
        values = np.empty(3 * m, dtype=np.int32)
        values[0::3], values[1::3], values[2::3] = c["t"], c["y"], c["x"]
        index = pa.ListArray.from_arrays(
            pa.array(np.arange(0, 3 * m + 1, 3, dtype=np.int32)), pa.array(values)
        )
        names = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(m, dtype=np.int8)), pa.array([c["array"]])
        ).cast(pa.string())
        batches.append(
            pa.record_batch(
                [
                    names,
                    index,
                    pa.array(c["sid"]),
                    pa.array(c["offset"]),
                    pa.array(c["length"]),
                    pa.nulls(m, pa.binary()),
                ],
                names=["array", "index", "source_id", "offset", "length", "data"],
            )
        )
    return conform("chunks", pa.Table.from_batches(batches))


def compact_chunks(cols: dict[str, Any]) -> pa.Table:
    """The same rows in a compact layout: dictionary array, fixed_size_list<int32,3>, no data."""
    batches = []
    names = [c["array"] for c in cols["arrays"]]
    for k, c in enumerate(cols["arrays"]):
        m = len(c["t"])
        values = np.empty(3 * m, dtype=np.int32)
        values[0::3], values[1::3], values[2::3] = c["t"], c["y"], c["x"]
        batches.append(
            pa.record_batch(
                [
                    pa.DictionaryArray.from_arrays(
                        pa.array(np.full(m, k, dtype=np.int8)), pa.array(names)
                    ),
                    pa.FixedSizeListArray.from_arrays(pa.array(values), 3),
                    pa.array(c["sid"]),
                    pa.array(c["offset"]),
                    pa.array(c["length"].astype(np.int32)),
                ],
                names=["array", "index", "source_id", "offset", "length"],
            )
        )
    return pa.Table.from_batches(batches)


def synthetic_tables(n: int, tag: str = "a", **kw: Any) -> Tables:
    """Five manifest tables (contract schema) with about ``n`` chunk references.

    ``tag`` goes into the file names, so manifests with different tags name different files.
    """
    cols = chunk_columns(n, **kw)
    lay = cols["layout"]
    tiles, steps, files = lay["tiles"], lay["steps"], lay["files"]
    now = dt.datetime.now(dt.UTC)
    fid = np.arange(files)
    sources = pa.table(
        {
            "source_id": pa.array(fid.astype(np.int32)),
            "uri": pa.array(
                [f"s3://archive/reanalysis/{tag}/day-{i:07d}.nc" for i in range(files)]
            ),
            "format": pa.array(["hdf5"] * files),
            "size": pa.array(np.full(files, 2**30, dtype=np.int64)),
            "mtime": pa.array(np.full(files, 1_700_000_000 * 10**9, dtype=np.int64)),
            "etag": pa.array([f"etag-{i:x}" for i in range(files)]),
            "scanned_at": pa.array([now] * files, pa.timestamp("us", tz="UTC")),
        }
    )
    shape = [steps, tiles * TILE, tiles * TILE]
    codecs = json.dumps(
        [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "numcodecs.zlib", "configuration": {"level": 4}},
        ]
    )
    names = [c["array"] for c in cols["arrays"]]
    arrays = pa.table(
        {
            "array": names,
            "dims": [["time", "lat", "lon"]] * len(names),
            "shape": [shape] * len(names),
            "chunk_shape": [[1, TILE, TILE]] * len(names),
            "dtype": ["float32"] * len(names),
            "fill_value": ['"NaN"'] * len(names),
            "codecs": [codecs] * len(names),
            "attrs": ["{}"] * len(names),
            "attr_dtypes": ["{}"] * len(names),
        }
    )
    grid_parts = []
    for name in names:
        for dim, (count, size) in enumerate([(steps, 1), (tiles, TILE), (tiles, TILE)]):
            chunk = np.arange(count, dtype=np.int32)
            grid_parts.append(
                pa.table(
                    {
                        "array": pa.array([name] * count)
                        if count < 1000
                        else pa.DictionaryArray.from_arrays(
                            pa.array(np.zeros(count, dtype=np.int8)), pa.array([name])
                        ).cast(pa.string()),
                        "dim": pa.array(np.full(count, dim, dtype=np.int16)),
                        "chunk": pa.array(chunk),
                        "start": pa.array(chunk.astype(np.int64) * size),
                        "length": pa.array(np.full(count, size, dtype=np.int64)),
                    }
                )
            )
    grid = pa.concat_tables(grid_parts)
    groups = pa.table({"group": [""], "attrs": ["{}"], "attr_dtypes": ["{}"]})
    return Tables(
        sources=conform("sources", sources),
        arrays=conform("arrays", arrays),
        grid=conform("grid", grid),
        chunks=_chunks_table(cols),
        groups=conform("groups", groups),
    )


def virtualizarr_manifests(n: int, **kw: Any) -> dict[str, Any]:
    """The same references as VirtualiZarr ``ChunkManifest``s (one per array), from numpy."""
    from virtualizarr.manifests import ChunkManifest

    cols = chunk_columns(n, **kw)
    lay = cols["layout"]
    tiles, steps = lay["tiles"], lay["steps"]
    uris = np.array(
        [f"s3://archive/reanalysis/a/day-{i:07d}.nc" for i in range(lay["files"])],
        dtype=np.dtypes.StringDType(),
    )
    out = {}
    for c in cols["arrays"]:
        shape = (steps, tiles, tiles)
        paths = uris[c["sid"]].reshape(shape)
        out[c["array"]] = ChunkManifest.from_arrays(
            paths=paths,
            offsets=c["offset"].astype(np.uint64).reshape(shape),
            lengths=c["length"].astype(np.uint64).reshape(shape),
        )
    return out


# -- one array of ~1M references: the kerchunk and Icechunk export benchmarks ---------------------
ONE_ARRAY_CHUNK = (1, 100, 100)
ZLIB_CODECS: tuple[dict[str, Any], ...] = (
    {"name": "bytes", "configuration": {"endian": "little"}},
    {"name": "numcodecs.zlib", "configuration": {"level": 4}},
)


def one_array_manifest(
    nt: int,
    uri_prefix: str = "s3://bucket/era/",
    n_files: int = 100,
    codecs: tuple[dict[str, Any], ...] = ZLIB_CODECS,
    *,
    with_etags: bool = False,
) -> tuple[Tables, dict[str, Any]]:
    """One float32 array ``data`` of shape ``(nt, 1000, 1000)`` in chunks of (1, 100, 100):
    ``nt`` x 10 x 10 references, built vectorised.

    The references are spread over about ``n_files`` files ``{uri_prefix}file_NNNN.nc``,
    whole time steps to a file, laid out one after another after a 4096-byte header.
    ``with_etags`` gives each source a size and an ETag, as a scan records them (otherwise
    the sources have only URI and format).

    Returns the tables and the same references as numpy arrays in C order of chunk index,
    shaped like the chunk grid (``paths``, ``offsets``, ``lengths``: what VirtualiZarr's
    ``ChunkManifest.from_arrays`` takes), with ``grid_shape``, ``per_file`` (time steps a
    file), ``etags``, ``codecs`` and ``meta`` (the ``arrays`` row).
    """
    grid_shape = (nt, 10, 10)
    n = int(np.prod(grid_shape))
    rng = np.random.default_rng(0)
    t, y, x = (a.ravel() for a in np.indices(grid_shape, dtype=np.int32))
    per_file = max(1, nt // n_files)
    source_id = (t // per_file).astype(np.int32)
    lengths = rng.integers(20_000, 40_000, n, dtype=np.int64)
    # chunks laid out one after another inside each file
    offsets = np.cumsum(lengths) - lengths
    first = np.searchsorted(source_id, np.arange(source_id.max() + 1))
    offsets = offsets - offsets[first][source_id] + 4096
    n_src = int(source_id.max()) + 1
    uris = [f"{uri_prefix}file_{i:04d}.nc" for i in range(n_src)]
    etags = [f'"{i:032x}"' for i in range(n_src)]
    index = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32)),
        pa.array(np.stack([t, y, x], axis=1).ravel()),
    )
    chunks = pa.table(
        {
            "array": pa.array(np.full(n, "data", dtype=object), pa.string()),
            "index": index,
            "source_id": source_id,
            "offset": offsets,
            "length": lengths,
            "data": pa.nulls(n, pa.binary()),
        }
    )
    grid = pa.concat_tables(
        pa.table(
            {
                "array": ["data"] * k,
                "dim": np.full(k, d, np.int16),
                "chunk": np.arange(k, dtype=np.int32),
                "start": np.arange(k, dtype=np.int64) * ONE_ARRAY_CHUNK[d],
                "length": np.full(k, ONE_ARRAY_CHUNK[d], np.int64),
            }
        )
        for d, k in enumerate(grid_shape)
    )
    array_row = {
        "array": "data",
        "dims": ["time", "y", "x"],
        "shape": [nt, 1000, 1000],
        "chunk_shape": list(ONE_ARRAY_CHUNK),
        "dtype": "float32",
        "fill_value": '"NaN"',
        "codecs": json.dumps(list(codecs)),
        "attrs": json.dumps({"units": "K"}),
        "attr_dtypes": "{}",
    }
    sources: dict[str, Any] = {
        "source_id": np.arange(n_src, dtype=np.int32),
        "uri": uris,
        "format": ["hdf5"] * n_src,
    }
    if with_etags:
        sources["size"] = np.bincount(source_id, weights=lengths).astype(np.int64) + 8192
        sources["etag"] = etags
    tables = Tables.from_mapping(
        {
            "sources": pa.table(sources),
            "arrays": pa.Table.from_pylist([array_row]),
            "grid": grid,
            "chunks": chunks,
            "groups": pa.Table.from_pylist([{"group": "", "attrs": "{}"}]),
        }
    )
    refs = {
        "grid_shape": grid_shape,
        "paths": np.asarray(uris, dtype=np.dtypes.StringDType())[source_id].reshape(grid_shape),
        "offsets": offsets.astype(np.uint64).reshape(grid_shape),
        "lengths": lengths.astype(np.uint64).reshape(grid_shape),
        "per_file": per_file,
        "etags": etags,
        "codecs": list(codecs),
        "meta": array_row,
    }
    return tables, refs


def one_array_dataset(refs: dict[str, Any]) -> Any:
    """The references of ``one_array_manifest`` as a VirtualiZarr ``ManifestArray`` Dataset."""
    import xarray as xr
    from virtualizarr.manifests import ChunkManifest, ManifestArray
    from virtualizarr.manifests.utils import create_v3_array_metadata

    manifest = ChunkManifest.from_arrays(
        paths=refs["paths"], offsets=refs["offsets"], lengths=refs["lengths"]
    )
    meta = create_v3_array_metadata(
        shape=tuple(refs["meta"]["shape"]),
        data_type=np.dtype("float32"),
        chunk_shape=ONE_ARRAY_CHUNK,
        fill_value=np.float32("nan"),
        codecs=refs["codecs"][1:],  # VirtualiZarr adds the bytes codec itself
        attributes={"units": "K"},
        dimension_names=("time", "y", "x"),
    )
    marr = ManifestArray(metadata=meta, chunkmanifest=manifest)
    return xr.Dataset({"data": xr.Variable(("time", "y", "x"), marr)})

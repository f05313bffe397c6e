"""An Icechunk repository -> manifest tables: ``from_icechunk(repo, branch=...)``.

Zarr metadata becomes ``arrays``/``grid``/``groups`` rows; virtual references become
``sources`` + ``chunks`` rows; inline and native chunks become ``chunks.data`` with their
bytes. References are read with Icechunk's columnar ``array_chunk_iterator`` (no Python
object per chunk). What Zarr metadata cannot hold (the scan record of each source, the
stored chunk shape of variable-length grids, attribute dtypes) is taken from the commit
metadata vzsql writes (``metadata["vzsql"]``) when present, so a repository written by
``to_icechunk`` imports back to the same manifest.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import SourceError
from vzsql.icechunk_logs import quiet_icechunk_logs
from vzsql.manifest import Manifest
from vzsql.scanners.grid import index_column
from vzsql.tables import SOURCES_SCHEMA, Tables
from vzsql.writers.icechunk_refs import first_line

SIDECAR_KEY = "vzsql"
NATIVE = 1
VIRTUAL = 2
INLINE = 3


# -- Zarr metadata -> table rows --------------------------------------------------------------
def _grid(doc: dict[str, Any]) -> Any:
    import zarr
    from zarr.core.chunk_grids import ChunkGrid
    from zarr.core.metadata.v3 import ArrayV3Metadata

    with zarr.config.set({"array.rectilinear_chunks": True}):
        return ChunkGrid.from_metadata(ArrayV3Metadata.from_dict(dict(doc)))


def clipped_lengths(doc: dict[str, Any]) -> list[list[int]]:
    """Per dimension, the number of array elements in each chunk (cut by the extent)."""
    shape = [int(s) for s in doc["shape"]]
    grid = doc["chunk_grid"]
    if grid["name"] == "regular":
        out = []
        for n, c in zip(shape, grid["configuration"]["chunk_shape"], strict=True):
            starts = np.arange(0, n, max(int(c), 1), dtype=np.int64)
            out.append(np.minimum(int(c), n - starts).tolist())
        return out
    return [list(s) for s in _grid(doc).chunk_sizes]


def stored_chunk_shape(doc: dict[str, Any]) -> list[int]:
    """The shape a stored chunk decodes to (regular), or the largest chunk per dimension."""
    grid = doc["chunk_grid"]
    if grid["name"] == "regular":
        return [int(c) for c in grid["configuration"]["chunk_shape"]]
    g = _grid(doc)
    lengths = clipped_lengths(doc)
    out = []
    for d, dim in enumerate(g.dimensions):
        n = dim.nchunks
        # codec shape of the last chunk covers padding past the extent
        sizes = (
            [g[tuple(i if k == d else 0 for k in range(g.ndim))].codec_shape[d] for i in (0, n - 1)]
            if n
            else [0]
        )
        out.append(max(max(lengths[d] or [0]), *sizes))
    return out


def array_row(
    name: str, doc: dict[str, Any], extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ``arrays`` row of an array's ``zarr.json`` (``extra``: vzsql's commit metadata)."""
    extra = extra or {}
    dtype = doc["data_type"]
    dims = doc.get("dimension_names")
    return {
        "array": name,
        "dims": list(dims) if dims is not None else None,
        "shape": [int(s) for s in doc["shape"]],
        "chunk_shape": extra.get("chunk_shape") or stored_chunk_shape(doc),
        "dtype": dtype if isinstance(dtype, str) else json.dumps(dtype, sort_keys=True),
        "fill_value": json.dumps(doc.get("fill_value")),
        "codecs": json.dumps(doc.get("codecs") or []),
        "attrs": json.dumps(doc.get("attributes") or {}),
        "attr_dtypes": extra.get("attr_dtypes"),
    }


def grid_rows(name: str, doc: dict[str, Any]) -> dict[str, np.ndarray]:
    """The ``grid`` rows of an array as columns (one row per chunk along each dimension)."""
    cols: dict[str, list[np.ndarray]] = {"dim": [], "chunk": [], "start": [], "length": []}
    for d, lengths in enumerate(clipped_lengths(doc)):
        ls = np.asarray(lengths, dtype=np.int64)
        cols["dim"].append(np.full(len(ls), d, dtype=np.int16))
        cols["chunk"].append(np.arange(len(ls), dtype=np.int32))
        cols["start"].append(
            np.concatenate([[0], np.cumsum(ls)[:-1]]).astype(np.int64) if len(ls) else ls
        )
        cols["length"].append(ls)
    out = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in cols.items()}
    out["array"] = np.full(len(out["dim"]), name, dtype=object)
    return out


# -- repository access -----------------------------------------------------------------------
def read_documents(store: Any) -> dict[str, dict[str, Any]]:
    """Every node's ``zarr.json`` keyed by node path (``""`` for the root)."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    proto = default_buffer_prototype()

    async def walk() -> dict[str, dict[str, Any]]:
        docs: dict[str, dict[str, Any]] = {}
        pending = [""]
        while pending:
            path = pending.pop()
            raw = await store.get(f"{path}/zarr.json" if path else "zarr.json", proto)
            if raw is None:
                continue
            doc = json.loads(raw.to_bytes())
            docs[path] = doc
            if doc.get("node_type") == "group":
                prefix = f"{path}/" if path else ""
                async for child in store.list_dir(prefix):
                    name = child.rstrip("/")
                    if name and name != "zarr.json" and name != "c":
                        pending.append(f"{prefix}{name}")
        return docs

    return sync(walk())


def read_refs(store: Any, array: str) -> dict[str, Any]:
    """The chunk refs of one array as columns; native chunk bytes fetched in one batch."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    from vzsql.writers.icechunk_refs import chunk_keys

    async def collect() -> list[Any]:
        out = []
        async for batch in store.array_chunk_iterator(array):
            out.append(batch)
        return out

    batches = sync(collect())
    coords, kinds, paths, offsets, lengths = [], [], [], [], []
    held_rows: list[int] = []  # rows whose bytes the repository holds (inline or native)
    held: list[bytes] = []
    base = 0  # rows before this batch
    for c, k, p, o, n, inl in batches:
        coords.append(np.asarray(c, dtype=np.int64))
        kinds.append(np.asarray(k))
        paths.extend(p)
        offsets.append(np.asarray(o, dtype=np.int64))
        lengths.append(np.asarray(n, dtype=np.int64))
        for i, b in inl.items():  # inline rows only: a handful of small chunks
            held_rows.append(base + i)
            held.append(bytes(b))
        base += len(k)
    if not batches:
        return {
            "index": np.zeros((0, 0), np.int64),
            "kind": np.zeros(0, np.uint8),
            "path": pa.array([], pa.string()),
            "offset": np.zeros(0, np.int64),
            "length": np.zeros(0, np.int64),
            "data": pa.array([], pa.binary()),
        }
    index = np.concatenate(coords)
    kind = np.concatenate(kinds)
    native = np.flatnonzero(kind == NATIVE)
    if len(native):
        keys = chunk_keys(array, index[native])
        proto = default_buffer_prototype()

        async def fetch() -> list[Any]:
            import asyncio

            return await asyncio.gather(*(store.get(k, proto) for k in keys))

        held_rows += native.tolist()
        held += [buf.to_bytes() for buf in sync(fetch())]
    take = np.full(len(kind), -1, dtype=np.int64)
    take[held_rows] = np.arange(len(held_rows))
    return {
        "index": index,
        "kind": kind,
        "path": pa.array(paths, pa.string()),
        "offset": np.concatenate(offsets),
        "length": np.concatenate(lengths),
        "data": pa.array(held, pa.binary()).take(pa.array(take, mask=take < 0)),
    }


def sidecar(
    repo: Any, *, branch: str | None, tag: str | None, snapshot_id: str | None
) -> dict[str, Any]:
    """vzsql's commit metadata merged along the ancestry (newest wins per source/array)."""
    sources: dict[str, dict[str, Any]] = {}
    arrays: dict[str, dict[str, Any]] = {}
    groups: dict[str, Any] = {}
    for info in repo.ancestry(branch=branch, tag=tag, snapshot_id=snapshot_id):
        meta = (info.metadata or {}).get(SIDECAR_KEY)
        if not meta:
            continue
        for s in meta.get("sources", []):
            sources.setdefault(s["uri"], s)
        for name, a in (meta.get("arrays") or {}).items():
            arrays.setdefault(name, a)
        for name, g in (meta.get("groups") or {}).items():
            groups.setdefault(name, g)
    return {"sources": sources, "arrays": arrays, "groups": groups}


def _open(repo_or_path: Any) -> Any:
    import icechunk as ic

    quiet_icechunk_logs()

    if isinstance(repo_or_path, ic.Repository):
        return repo_or_path
    if isinstance(repo_or_path, ic.Storage):
        storage = repo_or_path
    else:
        path = os.fspath(repo_or_path)
        if not os.path.isdir(path):
            raise SourceError("no Icechunk repository here", source=path)
        storage = ic.local_filesystem_storage(os.path.abspath(path))
    try:
        return ic.Repository.open(storage)
    except Exception as e:
        raise SourceError(
            f"cannot open Icechunk repository: {first_line(e)}", source=str(repo_or_path)
        ) from e


def from_icechunk(
    repo_or_path: Any,
    branch: str | None = "main",
    *,
    tag: str | None = None,
    snapshot_id: str | None = None,
    allow: Any = None,
) -> Manifest:
    """The references of an Icechunk snapshot (branch tip, tag or snapshot id) as a Manifest.

    Which referenced locations may be read follows ``vzsql.allowlist`` (``allow=`` prefixes).
    """
    if tag is not None or snapshot_id is not None:
        branch = None
    repo = _open(repo_or_path)
    try:
        session = repo.readonly_session(branch=branch, tag=tag, snapshot_id=snapshot_id)
    except Exception as e:
        raise SourceError(f"cannot read snapshot: {first_line(e)}", source=str(repo_or_path)) from e
    store = session.store
    extra = sidecar(repo, branch=branch, tag=tag, snapshot_id=snapshot_id)
    docs = read_documents(store)
    tables = tables_from(store, docs, extra)
    from vzsql.allowlist import check_imported_sources

    m = Manifest(tables)
    where = repo_or_path if isinstance(repo_or_path, str | os.PathLike) else "/nonexistent-repo"
    m.allow = check_imported_sources(
        tables.sources["uri"].to_pylist(), allow, reference=os.path.join(where, "repo")
    )
    return m


def tables_from(store: Any, docs: dict[str, dict[str, Any]], extra: dict[str, Any]) -> Tables:
    """Build the five tables from node documents and the chunk refs in ``store``."""
    array_rows, grid_parts, group_rows = [], [], []
    chunk_parts: list[dict[str, Any]] = []
    for path, doc in sorted(docs.items()):
        if doc.get("node_type") == "group":
            group_rows.append(
                {
                    "group": path,
                    "attrs": json.dumps(doc.get("attributes") or {}),
                    "attr_dtypes": extra["groups"].get(path),
                }
            )
            continue
        array_rows.append(array_row(path, doc, extra["arrays"].get(path)))
        grid_parts.append(grid_rows(path, doc))
        refs = read_refs(store, path)
        refs["array"] = path
        chunk_parts.append(refs)
    uris = sorted(  # a loop over arrays: each array's distinct virtual paths from Arrow
        {
            u
            for part in chunk_parts
            for u in pc.unique(part["path"].filter(pa.array(part["kind"] == VIRTUAL))).to_pylist()
        }
    )
    sid_of = {u: i for i, u in enumerate(uris)}
    tables = {
        "sources": _sources_table(uris, extra["sources"]),
        "arrays": pa.Table.from_pylist(array_rows) if array_rows else None,
        "grid": grid_table(grid_parts) if grid_parts else None,
        "chunks": _chunks_table(chunk_parts, sid_of),
        "groups": pa.Table.from_pylist(group_rows) if group_rows else None,
    }
    return Tables.from_mapping({k: v for k, v in tables.items() if v is not None})


def _sources_table(uris: Iterable[str], recorded: dict[str, dict[str, Any]]) -> pa.Table:
    rows = []
    for i, uri in enumerate(uris):
        r = recorded.get(uri, {})
        scanned = r.get("scanned_at")
        rows.append(
            {
                "source_id": i,
                "uri": uri,
                "format": r.get("format") or "unknown",
                "size": r.get("size"),
                "mtime": r.get("mtime"),
                "etag": r.get("etag"),
                "scanned_at": dt.datetime.fromisoformat(scanned) if scanned else None,
            }
        )
    return pa.Table.from_pylist(rows, schema=SOURCES_SCHEMA)


def grid_table(parts: list[dict[str, np.ndarray]]) -> pa.Table:
    """The ``grid`` table of ``grid_rows`` parts (at least one)."""
    return pa.table(
        {
            "array": pa.array(np.concatenate([p["array"] for p in parts]), pa.string()),
            "dim": pa.array(np.concatenate([p["dim"] for p in parts]).astype(np.int16)),
            "chunk": pa.array(np.concatenate([p["chunk"] for p in parts]).astype(np.int32)),
            "start": pa.array(np.concatenate([p["start"] for p in parts]).astype(np.int64)),
            "length": pa.array(np.concatenate([p["length"] for p in parts]).astype(np.int64)),
        }
    )


def _chunks_table(parts: list[dict[str, Any]], sid_of: dict[str, int]) -> pa.Table | None:
    tables = []
    for p in parts:
        n = len(p["index"])
        if n == 0:
            continue
        virtual = p["kind"] == VIRTUAL
        # map each row's path to its source id through a dictionary encoding (no per-row dict)
        enc = p["path"].dictionary_encode()
        dict_ids = np.asarray(
            [sid_of.get(u, -1) for u in enc.dictionary.to_pylist()], dtype=np.int32
        )
        sid = dict_ids[enc.indices.to_numpy(zero_copy_only=False)]
        data = p["data"]
        length = pc.coalesce(pc.binary_length(data).cast(pa.int64()), pa.array(p["length"]))
        index = index_column(p["index"])
        tables.append(
            pa.table(
                {
                    "array": pa.repeat(pa.scalar(p["array"], pa.string()), n),
                    "index": index,
                    "source_id": pa.array(
                        np.where(virtual, sid, 0).astype(np.int32), mask=~virtual
                    ),
                    "offset": pa.array(p["offset"], mask=~virtual),
                    "length": length,
                    "data": data,
                }
            )
        )
    if not tables:
        return None
    return pa.concat_tables(tables)

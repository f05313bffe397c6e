"""Import kerchunk references (JSON spec v0/v1, Parquet stores) into the five manifest tables.

Existing kerchunk users migrate with ``vzsql.from_kerchunk("refs.json")``. The reference set
is taken apart by DuckDB (``json_each`` over the file's text, then key parsing and value
decoding in ``queries/import/``) or, for Parquet stores, by numpy over each ``refs.N.parq``
file; no Python object is made per chunk. Zarr v2 metadata becomes the manifest's Zarr v3
columns (``vzsql.writers.zarr_v2_meta``), sources are deduplicated by URL, and byte ranges
are checked against the size of every source that can be reached.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vzsql.catalog import _SAFE_CONFIG, connect
from vzsql.errors import ReferenceFormatError, SourceError, VzsqlError
from vzsql.manifest import Manifest
from vzsql.queries import load_query
from vzsql.scanners.grid import index_column, regular_grids
from vzsql.sources import local_path, normalize_uri, stat_source
from vzsql.tables import ARRAYS_SCHEMA, GROUPS_SCHEMA, SOURCES_SCHEMA, Tables
from vzsql.writers.kerchunk_extras import EXTRAS_KEY, parse_extras
from vzsql.writers.zarr_v2_meta import arrays_row_from_v2, arrays_row_from_v3

META_KEY = re.compile(r"(^|/)(\.zarray|\.zattrs|\.zgroup|\.zmetadata|zarr\.json)$")
TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def from_kerchunk(
    path: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    check_sources: bool = True,
    allow: Any = None,
) -> Manifest:
    """A Manifest of a kerchunk reference set: a JSON file (v0 or v1) or a Parquet store.

    With ``check_sources`` every referenced file that can be reached is stat'ed: its size,
    mtime and etag go into ``sources`` and references past its end are an error. Which
    referenced locations may be read follows ``vzsql.allowlist`` (``allow=`` prefixes).
    """
    from vzsql.allowlist import check_imported_sources

    tables = read_kerchunk(path, storage_options=storage_options, check_sources=check_sources)
    m = Manifest(tables)
    m.allow = check_imported_sources(tables.sources["uri"].to_pylist(), allow, reference=path)
    return m


def read_kerchunk(
    path: str | os.PathLike[str],
    *,
    storage_options: dict[str, Any] | None = None,
    check_sources: bool = True,
) -> Tables:
    """The manifest tables of a kerchunk reference set (see ``from_kerchunk``)."""
    text = os.fspath(path)
    fs, fpath = _fs(text, storage_options)
    con = duckdb.connect(config=dict(_SAFE_CONFIG))
    con.execute("SET enable_progress_bar = false")
    try:
        templates: dict[str, str] = {}
        if fs.isdir(fpath):
            meta, refs, extras = _read_parquet(fs, fpath, text)
            rows = _metadata(meta, text, extras)[1]
        else:
            meta, entries, templates, extras = _read_json(con, fs, fpath, text)
            array_keys, rows = _metadata(meta, text, extras)
            refs = _chunk_refs_from_entries(con, entries, array_keys, text)
        _apply_attr_dtypes(rows, extras)
        return _finish(con, rows, meta, refs, templates, text, storage_options, check_sources)

    finally:
        con.close()


def _apply_attr_dtypes(
    rows: dict[str, list[dict[str, Any]]], extras: dict[str, Any] | None
) -> None:
    """Restore the attribute dtypes a vzsql export recorded (JSON alone loses them)."""
    if extras is None:
        return
    for kind, key in (("arrays", "array"), ("groups", "group")):
        dtypes = extras.get(f"{key}_attr_dtypes") or {}
        for row in rows[kind]:
            if row[key] in dtypes:
                row["attr_dtypes"] = json.dumps(dtypes[row[key]])


def _fs(path: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    import fsspec

    try:
        return fsspec.core.url_to_fs(path, **(storage_options or {}))  # type: ignore[no-any-return]
    except (ValueError, ImportError) as e:
        raise ReferenceFormatError(f"cannot open reference set: {e}", source=path) from e


def _query(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> pa.Table:
    """Run ``queries/<name>.sql``; a DuckDB failure means the reference set is malformed."""
    try:
        table: pa.Table = con.sql(load_query(name), params=params or {}).to_arrow_table()
    except duckdb.Error as e:
        raise ReferenceFormatError(f"reading references failed ({name}): {e}") from e
    return table


def _doc(key: str, value: str, type_: str, source: str) -> dict[str, Any]:
    """A metadata entry's document: kerchunk stores them as JSON text, fsspec also as objects."""
    try:
        doc = json.loads(value)
        if type_ == "VARCHAR":
            doc = json.loads(doc)
    except json.JSONDecodeError as e:
        raise ReferenceFormatError(f"metadata {key!r} is not valid JSON: {e}", source=source) from e
    if not isinstance(doc, dict):
        raise ReferenceFormatError(f"metadata {key!r} is not a JSON object", source=source)
    return doc


# -- JSON -------------------------------------------------------------------------------------
def _read_json(
    con: duckdb.DuckDBPyConnection, fs: Any, fpath: str, source: str
) -> tuple[dict[str, dict[str, Any]], pa.Table, dict[str, str], dict[str, Any] | None]:
    """Metadata documents, chunk entries (key, value, type), templates and vzsql extras."""
    try:
        with fs.open(fpath, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ReferenceFormatError(f"cannot read reference file: {e}", source=source) from e
    try:
        doc = raw.decode("utf-8")
        head = con.execute(load_query("import/kerchunk_json_head"), {"d": doc}).fetchall()[0]
    except (UnicodeDecodeError, duckdb.Error) as e:
        raise ReferenceFormatError(f"reference file is not valid JSON: {e}", source=source) from e
    ok, top, refs_type, version, tpl, gen, extras = head
    if not ok or top != "OBJECT":
        raise ReferenceFormatError("reference file is not a valid JSON object", source=source)
    if version is None:
        path = "$"
    elif version == "1":
        if refs_type != "OBJECT":
            raise ReferenceFormatError(
                "version 1 reference set has no 'refs' object", source=source
            )
        path = "$.refs"
    else:
        raise ReferenceFormatError(f"unknown kerchunk reference version {version}", source=source)
    table = _query(con, "import/kerchunk_json_entries", {"doc": doc, "path": path})
    if version is None:  # v0: the top-level object is the refs; drop a stray "version" key
        table = table.filter(pc.invert(pc.equal(table["key"], "version")))
    templates = json.loads(tpl) if tpl else {}
    if not isinstance(templates, dict) or not all(isinstance(v, str) for v in templates.values()):
        raise ReferenceFormatError("'templates' must map names to strings", source=source)
    if gen:
        table = pa.concat_tables([table, _gen_entries(con, json.loads(gen), templates, source)])
    is_meta = pc.match_substring_regex(table["key"], META_KEY.pattern)
    meta = {
        r["key"]: _doc(r["key"], r["value"], r["type"], source)
        for r in table.filter(is_meta).to_pylist()  # metadata only: a few rows per array
        if not r["key"].endswith(".zmetadata")
    }
    return meta, table.filter(pc.invert(is_meta)), templates, parse_extras(extras)


def _render(template: str, columns: dict[str, pa.Array], n: int, source: str) -> pa.Array:
    """A ``{{name}}`` template rendered for every row (vectorised string joins)."""
    parts: list[Any] = []
    pos = 0
    for m in TEMPLATE.finditer(template):
        parts.append(template[pos : m.start()])
        if m.group(1) not in columns:
            raise ReferenceFormatError(f"unknown template name {m.group(1)!r}", source=source)
        parts.append(columns[m.group(1)])
        pos = m.end()
    parts.append(template[pos:])
    if "{{" in template[pos:] or "{%" in template:
        raise ReferenceFormatError(
            f"unsupported template expression in {template!r}", source=source
        )
    arrays = [p if isinstance(p, pa.Array) else pa.array([p] * n, pa.string()) for p in parts]
    return pc.binary_join_element_wise(*arrays, "")


def _gen_entries(
    con: duckdb.DuckDBPyConnection, gens: Any, templates: dict[str, str], source: str
) -> pa.Table:
    """Expand kerchunk ``gen`` generators (plain ``{{name}}`` substitutions) into entries."""
    out = []
    if not isinstance(gens, list):
        raise ReferenceFormatError("'gen' must be a list", source=source)
    for gen in gens:  # a loop over generators
        try:
            dims = {
                k: np.asarray(
                    v
                    if isinstance(v, list)
                    else range(v.get("start", 0), v["stop"], v.get("step", 1))
                )
                for k, v in gen["dimensions"].items()
            }
            grids = np.meshgrid(*dims.values(), indexing="ij") if dims else []
            n = int(grids[0].size) if grids else 1
            cols = {k: pa.array(g.ravel().astype(str)) for k, g in zip(dims, grids, strict=True)}
            cols.update({k: pa.array([v] * n) for k, v in templates.items() if k not in cols})
            t = {
                "key": _render(gen["key"], cols, n, source),
                "url": _render(gen["url"], cols, n, source),
            }
            for f in ("offset", "length"):
                t[f] = (
                    _render(str(gen[f]), cols, n, source).cast(pa.int64())
                    if f in gen
                    else pa.nulls(n, pa.int64())
                )
        except (KeyError, TypeError, AttributeError, pa.ArrowInvalid) as e:
            raise ReferenceFormatError(f"malformed 'gen' entry: {e!r}", source=source) from e
        con.register("gen_refs", pa.table(t))
        out.append(_query(con, "import/kerchunk_gen_entries"))
        con.unregister("gen_refs")
    schema = pa.schema([("key", pa.string()), ("value", pa.string()), ("type", pa.string())])
    return pa.concat_tables([t.cast(schema) for t in out]) if out else schema.empty_table()


def _chunk_refs_from_entries(
    con: duckdb.DuckDBPyConnection, entries: pa.Table, array_keys: pa.Table, source: str
) -> pa.Table:
    con.register("entries", entries)
    con.register("array_keys", array_keys)
    orphans = con.execute(load_query("import/kerchunk_orphan_keys"), {"limit": 1}).fetchall()
    if orphans:
        raise ReferenceFormatError(
            f"reference {orphans[0][0]!r} belongs to no array with metadata", source=source
        )
    refs = _query(con, "import/kerchunk_json_chunk_refs")
    bad = refs.filter(pc.is_valid(refs["problem"])).slice(0, 1).to_pylist()
    if bad:
        b = bad[0]
        raise ReferenceFormatError(
            f"{b['problem']} (key {b['key']!r})",
            source=source,
            array=b["array"],
            chunk=b["index"] or [],
        )
    return refs.drop_columns(["key", "problem"])


# -- Parquet ----------------------------------------------------------------------------------
def _read_parquet(
    fs: Any, root: str, source: str
) -> tuple[dict[str, dict[str, Any]], pa.Table, dict[str, Any] | None]:
    """Metadata documents, chunk references and vzsql extras of a kerchunk Parquet store."""
    try:
        zmeta = json.loads(fs.cat_file(f"{root}/.zmetadata"))
        meta: dict[str, dict[str, Any]] = zmeta["metadata"]
        record_size = int(zmeta["record_size"])
    except (OSError, KeyError, TypeError, ValueError) as e:
        raise ReferenceFormatError(f"not a kerchunk Parquet store: {e!r}", source=source) from e
    meta = {k: (json.loads(v) if isinstance(v, str | bytes) else v) for k, v in meta.items()}
    parts = []
    for key, zarray in meta.items():  # a loop over arrays
        if not key.endswith("/.zarray"):
            continue
        array = key[: -len("/.zarray")]
        counts = [math.ceil(s / c) for s, c in zip(zarray["shape"], zarray["chunks"], strict=True)]
        nslots = math.prod(counts)
        for fname in sorted(fs.glob(f"{root}/{array}/refs.*.parq")):  # a loop over files
            record = int(fname.rsplit("/", 1)[1].split(".")[1])
            try:
                with fs.open(fname, "rb") as f:
                    t = pq.read_table(f)
            except (OSError, pa.ArrowInvalid) as e:
                raise ReferenceFormatError(
                    f"unreadable reference file {fname}: {e}", source=source, array=array
                ) from e
            parts.append(_records_to_refs(t, array, counts, record * record_size, nslots, source))
    extras = parse_extras(zmeta.get(EXTRAS_KEY))
    if parts:
        return meta, pa.concat_tables(parts), extras
    return meta, _refs_schema().empty_table(), extras


def _refs_schema() -> pa.Schema:
    return pa.schema(
        [("array", pa.string()), ("index", pa.list_(pa.int32())), ("url", pa.string()),
         ("offset", pa.int64()), ("length", pa.int64()), ("whole_file", pa.bool_()),
         ("data", pa.binary())]
    )  # fmt: skip


def _records_to_refs(
    t: pa.Table, array: str, counts: list[int], first: int, nslots: int, source: str
) -> pa.Table:
    """The chunk rows of one ``refs.N.parq`` file: row ``i`` is chunk number ``first + i``."""
    n = t.num_rows
    path = t["path"] if "path" in t.column_names else pa.nulls(n, pa.string())
    raw = t["raw"] if "raw" in t.column_names else pa.nulls(n, pa.binary())
    raw = pa.chunked_array(raw).cast(pa.binary()) if not isinstance(raw, pa.Array) else raw
    zero = pa.array(np.zeros(n, np.int64))
    offset = t["offset"] if "offset" in t.column_names else zero
    size = t["size"] if "size" in t.column_names else zero
    present = pc.or_(pc.is_valid(path), pc.is_valid(raw)).to_numpy(zero_copy_only=False)
    linear = first + np.flatnonzero(present)
    if linear.size and linear.max() >= max(nslots, 1):
        raise ReferenceFormatError(
            "reference beyond the array's chunk grid", source=source, array=array
        )
    keep = pa.array(present)
    ndim = len(counts)
    if ndim:
        idx = np.stack(np.unravel_index(linear, counts), axis=1).astype(np.int32)
    else:
        idx = np.zeros((linear.size, 0), np.int32)
    index = index_column(idx)
    off = pc.filter(offset, keep).cast(pa.int64())
    ln = pc.filter(size, keep).cast(pa.int64())
    url = pc.filter(path, keep).cast(pa.string())
    data = pc.filter(raw, keep)
    whole = pc.and_(pc.is_valid(url), pc.and_(pc.equal(off, 0), pc.equal(ln, 0)))
    return pa.Table.from_arrays(
        [pa.repeat(pa.scalar(array, pa.string()), linear.size), index, url, off, ln, whole, data],
        schema=_refs_schema(),
    )


# -- metadata, sources, tables ----------------------------------------------------------------
def _metadata(
    meta: dict[str, dict[str, Any]], source: str, extras: dict[str, Any] | None
) -> tuple[pa.Table, dict[str, list[dict[str, Any]]]]:
    """``array_keys`` (array, v3, ndim) and the ``arrays``/``groups`` rows of the metadata."""
    arrays: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    keys: list[dict[str, Any]] = []
    for key, doc in sorted(meta.items()):  # a loop over metadata documents
        node, _, leaf = key.rpartition("/")
        if leaf == ".zarray":
            if doc.get("dimension_separator", ".") != ".":
                raise ReferenceFormatError(
                    "only '.' dimension separators are supported", source=source, array=node
                )
            arrays.append(
                arrays_row_from_v2(
                    node,
                    doc,
                    meta.get(f"{node}/.zattrs"),
                    source,
                    fill_value_is_cf=extras is None or bool(extras.get("fill_value_is_cf")),
                )
            )
            keys.append({"array": node, "v3": False, "ndim": len(doc["shape"])})
        elif leaf == ".zgroup":
            attrs = meta.get(f"{node}/.zattrs" if node else ".zattrs", {})
            groups.append({"group": node, "attrs": json.dumps(attrs), "attr_dtypes": None})
        elif leaf == "zarr.json" and doc.get("node_type") == "array":
            enc = doc.get("chunk_key_encoding") or {"name": "default"}
            sep = (enc.get("configuration") or {}).get(
                "separator", "/" if enc.get("name") == "default" else "."
            )
            if (enc.get("name"), sep) not in (("default", "/"), ("v2", ".")):
                raise ReferenceFormatError(
                    f"chunk key encoding {enc} is not supported", source=source, array=node
                )
            arrays.append(arrays_row_from_v3(node, doc, source))
            keys.append(
                {"array": node, "v3": enc.get("name") == "default", "ndim": len(doc["shape"])}
            )
        elif leaf == "zarr.json":
            groups.append(
                {
                    "group": node,
                    "attrs": json.dumps(doc.get("attributes") or {}),
                    "attr_dtypes": None,
                }
            )
    if any(not a["array"] for a in arrays):
        raise ReferenceFormatError(
            "an array at the root of the hierarchy is not supported", source=source
        )
    schema = pa.schema([("array", pa.string()), ("v3", pa.bool_()), ("ndim", pa.int32())])
    return pa.Table.from_pylist(keys, schema=schema), {"arrays": arrays, "groups": groups}


def _sources(
    urls: list[str], templates: dict[str, str], source: str,
    storage_options: dict[str, Any] | None, check: bool,
) -> tuple[pa.Table, pa.Table]:  # fmt: skip
    """``sources`` (deduplicated by normalised URI) and ``url_map`` (url, source_id, size)."""
    from vzsql.scanners import detect_format

    by_uri: dict[str, dict[str, Any]] = {}
    mapping = []
    now = dt.datetime.now(dt.UTC)
    for url in urls:  # a loop over referenced files
        try:
            full = TEMPLATE.sub(lambda m: templates[m.group(1)], url)
        except KeyError as e:
            raise ReferenceFormatError(f"unknown template {e} in {url!r}", source=source) from e
        try:
            uri = normalize_uri(full)
        except SourceError as e:
            raise ReferenceFormatError(
                f"unsupported reference URL {full!r}: {e.detail}", source=source
            ) from e
        if uri not in by_uri:
            row: dict[str, Any] = dict(
                source_id=len(by_uri), uri=uri, format="unknown", size=None, mtime=None,
                etag=None, scanned_at=now,
            )  # fmt: skip
            if check:
                try:
                    st = stat_source(uri, storage_options)
                    row.update(size=st.size, mtime=st.mtime_ns, etag=st.etag)
                    if local_path(uri) is not None:
                        row["format"] = detect_format(uri, storage_options)
                except VzsqlError:
                    pass  # unreachable or unrecognised: no size check, format unknown
            by_uri[uri] = row
        mapping.append(
            {"url": url, "source_id": by_uri[uri]["source_id"], "size": by_uri[uri]["size"]}
        )
    url_map = pa.Table.from_pylist(
        mapping,
        schema=pa.schema([("url", pa.string()), ("source_id", pa.int32()), ("size", pa.int64())]),
    )
    return pa.Table.from_pylist(list(by_uri.values()), schema=SOURCES_SCHEMA), url_map


def _finish(
    con: duckdb.DuckDBPyConnection, rows: dict[str, list[dict[str, Any]]],
    meta: dict[str, Any], refs: pa.Table, templates: dict[str, str], source: str,
    storage_options: dict[str, Any] | None, check: bool,
) -> Tables:  # fmt: skip
    """Assemble and check the five tables."""
    urls = pc.unique(pc.drop_null(refs["url"])).to_pylist() if refs.num_rows else []
    sources, url_map = _sources(urls, templates, source, storage_options, check)
    con.register("refs", refs)
    con.register("url_map", url_map)
    chunks = _query(con, "import/kerchunk_chunks")
    if not any(g["group"] == "" for g in rows["groups"]):
        root_attrs = meta.get(".zattrs", {})
        rows["groups"].append({"group": "", "attrs": json.dumps(root_attrs), "attr_dtypes": None})
    tables = Tables.from_mapping(
        {
            "sources": sources,
            "arrays": pa.Table.from_pylist(rows["arrays"], schema=ARRAYS_SCHEMA),
            "grid": regular_grids(
                [a["array"] for a in rows["arrays"]],
                [a["shape"] for a in rows["arrays"]],
                [a["chunk_shape"] for a in rows["arrays"]],
            ),
            "chunks": chunks,
            "groups": pa.Table.from_pylist(
                sorted(rows["groups"], key=lambda g: g["group"]), schema=GROUPS_SCHEMA
            ),
        }
    )
    check_con = connect(tables)
    try:
        bad = check_con.execute(load_query("import/kerchunk_bad_refs"), {"limit": 1}).fetchall()
    finally:
        check_con.close()
    if bad:
        array, index, uri, off, ln, size, problem = bad[0]
        raise ReferenceFormatError(
            f"{problem}: offset {off}, length {ln}, file size {size}",
            source=uri,
            array=array,
            chunk=index,
        )
    return tables

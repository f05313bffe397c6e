"""``rechunk``: other chunk sizes along a dimension for uncompressed arrays, by byte arithmetic.

Legacy files often store data in chunks nobody would choose: a netCDF3 record variable is
one chunk per record (a few hundred bytes), an HDF5 contiguous dataset or a netCDF3 fixed
variable is one chunk of the whole array. When the bytes are not compressed, other chunk
sizes along a dimension need no copying:

- **split**: a chunk is cut at multiples of ``n`` along the dimension; each piece is one
  byte run of the chunk, because C-order chunks whose extent is 1 on every earlier
  dimension store each element-row along the dimension contiguously;
- **merge**: the pieces that fall into one new chunk become one reference when they follow
  each other in one file (netCDF3's single record variable, an HDF5 contiguous split back
  together, files written chunk after chunk).

The new grid along the dimension is regular (``n``, the last chunk cut by the extent).
Chunks storing fewer than ``n`` elements (the last one, or the end of a padded stored chunk)
switch the array to the ``vzsql.padded_bytes`` codec, which pads them with the fill value.
Everything else is refused with a ``RechunkError`` naming the array and why: compressed or
variable-length data, chunks wider than 1 on an earlier dimension, pieces of a new chunk
that are not adjacent in one file (e.g. netCDF3 records interleaved with other record
variables), merged chunks with missing (fill) parts. The work per chunk is SQL:
``queries/rechunk_chunks.sql`` and ``queries/rechunk_grid.sql``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from vzsql.codecs.padded import CODEC_NAME, padded_codecs
from vzsql.errors import RechunkError
from vzsql.ops.coords import source_uris
from vzsql.ops.relations import query
from vzsql.tables import Tables, conform
from vzsql.zarr_meta import numpy_dtype

if TYPE_CHECKING:
    from vzsql.manifest import Manifest

_PLAN_SCHEMA = pa.schema(
    [
        ("array", pa.string()),
        ("d", pa.int16()),
        ("n", pa.int64()),
        ("row_bytes", pa.int64()),
        ("extent", pa.int64()),
    ]
)


def rechunk(
    m: Manifest, chunks: Mapping[str, int], *, arrays: Sequence[str] | None = None
) -> Manifest:
    """The manifest with chunks of ``n`` elements along each ``dim`` of ``chunks``.

    ``arrays`` limits the change to those arrays; by default every array having the
    dimension is rechunked (and every one must allow it).
    """
    from vzsql.manifest import Manifest

    tables = m.tables
    for dim, n in chunks.items():
        tables = rechunk_tables(tables, dim, n, arrays=arrays)
    return Manifest(tables)


def rechunk_tables(
    tables: Tables, dim: str, n: int, *, arrays: Sequence[str] | None = None
) -> Tables:
    """``tables`` with the chosen arrays rechunked to ``n`` elements along ``dim``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise RechunkError(f"the chunk length along {dim!r} must be a positive integer, not {n!r}")
    rows = tables.arrays.to_pylist()
    known = {r["array"] for r in rows}
    if arrays is not None:
        unknown = sorted(set(arrays) - known)
        if unknown:
            raise RechunkError(f"no array {unknown[0]!r} in the manifest", array=unknown[0])
    chosen = [
        r for r in rows if dim in (r["dims"] or []) and (arrays is None or r["array"] in arrays)
    ]
    if not chosen:
        which = f" among {sorted(arrays)}" if arrays is not None else ""
        raise RechunkError(f"no array{which} has dimension {dim!r}")
    plan = pa.Table.from_pylist([_plan_row(r, dim, n) for r in chosen], schema=_PLAN_SCHEMA)
    inputs = {"chunks": tables.chunks, "grid": tables.grid, "rechunk_arrays": plan}
    new_chunks = query("rechunk_chunks", inputs)
    _raise_problems(new_chunks, tables, dim, n)
    short = _arrays_with_short_chunks(new_chunks)
    grid = query("rechunk_grid", inputs)
    by_name = {r["array"]: r for r in rows}
    for p in plan.to_pylist():
        row = by_name[p["array"]]
        d = p["d"]
        chunk_shape = list(row["chunk_shape"] or row["shape"])
        chunk_shape[d] = n
        row["chunk_shape"] = chunk_shape
        codecs = _plain_bytes(json.loads(row["codecs"]) if row["codecs"] else [{"name": "bytes"}])
        if p["array"] in short:
            open_shape: list[int | None] = list(chunk_shape)
            open_shape[d] = None
            codecs = padded_codecs(codecs, [open_shape])
        row["codecs"] = json.dumps(codecs)
    return tables.with_tables(
        arrays=pa.Table.from_pylist(rows, schema=tables.arrays.schema),
        grid=conform("grid", grid),
        chunks=conform("chunks", new_chunks.drop_columns(["rows", "n", "problem"])),
    )


def _plan_row(row: dict[str, Any], dim: str, n: int) -> dict[str, Any]:
    """``rechunk_arrays`` row of one array, or a ``RechunkError`` saying why it cannot be."""
    name = row["array"]
    dims = list(row["dims"])
    d = dims.index(dim)
    shape = list(row["shape"])
    chunk_shape = list(row["chunk_shape"] or shape)
    codecs: list[dict[str, Any]] = json.loads(row["codecs"]) if row["codecs"] else []
    others = [c.get("name") for c in codecs if c.get("name") not in ("bytes", CODEC_NAME)]
    if others or not codecs:
        raise RechunkError(
            f"cannot rechunk along {dim!r}: the chunks are encoded with {others or 'no'} "
            "codec(s); only uncompressed chunks (the bytes codec alone) can be split or merged "
            "by byte arithmetic",
            array=name,
        )
    wide = [dims[i] for i in range(d) if chunk_shape[i] != 1]
    if wide:
        raise RechunkError(
            f"cannot rechunk along {dim!r}: chunks span {chunk_shape[dims.index(wide[0])]} "
            f"elements of the earlier dimension {wide[0]!r}, so a run along {dim!r} is not "
            "one byte range",
            array=name,
        )
    for codec in codecs:
        for stored in (codec.get("configuration") or {}).get("chunk_shapes", []):
            if any(s != c for s, c in zip(stored[d + 1 :], chunk_shape[d + 1 :], strict=True)):
                raise RechunkError(
                    f"cannot rechunk along {dim!r}: stored chunks of shape {stored} differ from "
                    f"{chunk_shape} after the dimension, so their rows have different sizes",
                    array=name,
                )
    try:
        itemsize = numpy_dtype(row["dtype"]).itemsize
    except Exception as e:
        raise RechunkError(f"cannot rechunk data of type {row['dtype']}: {e}", array=name) from e
    if numpy_dtype(row["dtype"]).kind == "O" or not itemsize:
        raise RechunkError(
            f"cannot rechunk variable-length data ({row['dtype']}) by byte arithmetic", array=name
        )
    return {
        "array": name,
        "d": d,
        "n": n,
        "row_bytes": math.prod(chunk_shape[d + 1 :]) * itemsize,
        "extent": shape[d],
    }


def _plain_bytes(codecs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``codecs`` with a ``vzsql.padded_bytes`` codec turned back into ``bytes``.

    The stored shapes it listed describe the old chunks; the new ones are exact byte runs.
    """
    out = []
    for c in codecs:
        if c.get("name") == CODEC_NAME:
            endian = (c.get("configuration") or {}).get("endian")
            c = {"name": "bytes", **({"configuration": {"endian": endian}} if endian else {})}
        out.append(c)
    return out


def _arrays_with_short_chunks(chunks: pa.Table) -> set[str]:
    """Rechunked arrays with a new chunk storing fewer than ``n`` elements (the last chunk
    of the grid, cut by the extent): served through the padding codec."""
    short = chunks.filter(pc.less(chunks["rows"], chunks["n"]))
    return set(short["array"].to_pylist())


def _raise_problems(chunks: pa.Table, tables: Tables, dim: str, n: int) -> None:
    bad = chunks.filter(pc.is_valid(chunks["problem"]))
    if not bad.num_rows:
        return
    row = bad.slice(0, 1).to_pylist()[0]
    uris = source_uris(tables)
    more = f" ({bad.num_rows} new chunks affected)" if bad.num_rows > 1 else ""
    raise RechunkError(
        f"cannot rechunk to {n} along {dim!r}: {row['problem']}{more}",
        source=uris.get(row["source_id"]),
        array=row["array"],
        chunk=row["index"],
    )

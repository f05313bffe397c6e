"""The manifest data model: five Arrow tables and their schemas (see docs/manifest-format.md).

A ``Tables`` value is what every scanner returns and every writer reads. Scanners number
their sources locally from 0; ``Tables.union`` renumbers when results of several files are
combined, so paths are stored once and chunk rows refer to them by id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import ManifestFormatError

TABLE_NAMES = ("sources", "arrays", "grid", "chunks", "groups")

SOURCES_SCHEMA = pa.schema(
    [
        pa.field("source_id", pa.int32(), nullable=False),
        pa.field("uri", pa.string(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
        pa.field("size", pa.int64()),
        pa.field("mtime", pa.int64()),  # nanoseconds since the epoch
        pa.field("etag", pa.string()),
        pa.field("scanned_at", pa.timestamp("us", tz="UTC")),
    ]
)

ARRAYS_SCHEMA = pa.schema(
    [
        pa.field("array", pa.string(), nullable=False),
        pa.field("dims", pa.list_(pa.string())),
        pa.field("shape", pa.list_(pa.int64())),
        pa.field("chunk_shape", pa.list_(pa.int64())),  # shape of a stored (encoded) chunk
        pa.field("dtype", pa.string()),  # Zarr v3 data_type JSON ("float32" or an object)
        pa.field("fill_value", pa.string()),  # Zarr v3 fill_value JSON
        pa.field("codecs", pa.string()),  # Zarr v3 codec pipeline JSON list
        pa.field("attrs", pa.string()),  # JSON object, values as stored
        pa.field("attr_dtypes", pa.string()),  # JSON object: numeric attribute -> numpy dtype
    ]
)

GRID_SCHEMA = pa.schema(
    [
        pa.field("array", pa.string(), nullable=False),
        pa.field("dim", pa.int16(), nullable=False),
        pa.field("chunk", pa.int32(), nullable=False),
        pa.field("start", pa.int64(), nullable=False),
        pa.field("length", pa.int64(), nullable=False),
    ]
)

CHUNKS_SCHEMA = pa.schema(
    [
        pa.field("array", pa.string(), nullable=False),
        pa.field("index", pa.list_(pa.int32())),
        pa.field("source_id", pa.int32()),
        pa.field("offset", pa.int64()),
        pa.field("length", pa.int64()),
        pa.field("data", pa.binary()),
    ]
)

GROUPS_SCHEMA = pa.schema(
    [
        pa.field("group", pa.string(), nullable=False),  # "" is the root group
        pa.field("attrs", pa.string()),
        pa.field("attr_dtypes", pa.string()),
    ]
)

SCHEMAS: dict[str, pa.Schema] = {
    "sources": SOURCES_SCHEMA,
    "arrays": ARRAYS_SCHEMA,
    "grid": GRID_SCHEMA,
    "chunks": CHUNKS_SCHEMA,
    "groups": GROUPS_SCHEMA,
}


def empty(name: str) -> pa.Table:
    """An empty table with the schema of ``name``."""
    return SCHEMAS[name].empty_table()


def conform(name: str, table: Any) -> pa.Table:
    """Cast ``table`` (Arrow, polars or pandas) to the schema of ``name``, or raise.

    Extra columns are kept (users may add columns); missing required columns and
    uncastable types are a ``ManifestFormatError`` naming the table and column.
    """
    schema = SCHEMAS[name]
    if not isinstance(table, pa.Table):
        if hasattr(table, "to_arrow"):
            table = table.to_arrow()
        else:
            try:
                table = pa.table(table)
            except Exception as e:  # pragma: no cover - depends on the foreign type
                raise ManifestFormatError(f"table {name!r}: cannot convert to Arrow: {e}") from e
    columns = []
    names = []
    out_fields = []
    for field in schema:
        if field.name not in table.column_names:
            if field.nullable:
                columns.append(pa.nulls(table.num_rows, field.type))
                names.append(field.name)
                out_fields.append(field)
                continue
            raise ManifestFormatError(f"table {name!r} lacks required column {field.name!r}")
        col = table.column(field.name)
        if col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise ManifestFormatError(
                    f"table {name!r} column {field.name!r}: type {col.type} is not {field.type}"
                ) from e
        if not field.nullable and col.null_count:
            raise ManifestFormatError(f"table {name!r} column {field.name!r} has null values")
        columns.append(col)
        names.append(field.name)
        out_fields.append(field)
    for extra in table.column_names:
        if extra not in schema.names:
            columns.append(table.column(extra))
            names.append(extra)
            out_fields.append(table.schema.field(extra))
    return pa.Table.from_arrays(columns, schema=pa.schema(out_fields))


@dataclass(frozen=True)
class Tables:
    """The five manifest tables; what scanners produce and writers consume."""

    sources: pa.Table
    arrays: pa.Table
    grid: pa.Table
    chunks: pa.Table
    groups: pa.Table

    @classmethod
    def empty(cls) -> Tables:
        return cls(**{n: empty(n) for n in TABLE_NAMES})

    @classmethod
    def from_mapping(cls, tables: dict[str, Any]) -> Tables:
        """Build from a mapping of table name -> table, conforming each to its schema."""
        return cls(**{n: conform(n, tables[n]) if n in tables else empty(n) for n in TABLE_NAMES})

    def as_dict(self) -> dict[str, pa.Table]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def with_tables(self, **changes: pa.Table) -> Tables:
        return replace(self, **{k: conform(k, v) for k, v in changes.items()})

    @staticmethod
    def union(parts: Iterable[Tables]) -> Tables:
        """Concatenate tables of several scans, renumbering ``source_id`` so ids stay unique.

        Only valid when the parts hold different arrays or the caller rewrites array paths;
        combining along a dimension is the job of ``vzsql.ops``.
        """
        parts = list(parts)
        if not parts:
            return Tables.empty()
        out: dict[str, list[pa.Table]] = {n: [] for n in TABLE_NAMES}
        next_id = 0
        for part in parts:
            n_src = part.sources.num_rows
            if n_src:
                out["sources"].append(
                    part.sources.set_column(
                        0, "source_id", pc.add(part.sources["source_id"], next_id).cast(pa.int32())
                    )
                )
                idx = part.chunks.schema.get_field_index("source_id")
                out["chunks"].append(
                    part.chunks.set_column(
                        idx, "source_id", pc.add(part.chunks["source_id"], next_id).cast(pa.int32())
                    )
                )
                next_id += int(pc.max(part.sources["source_id"]).as_py()) + 1
            else:
                out["chunks"].append(part.chunks)
            for n in ("arrays", "grid", "groups"):
                out[n].append(getattr(part, n))
        return Tables(
            **{
                n: pa.concat_tables(ts, promote_options="permissive") if ts else empty(n)
                for n, ts in out.items()
            }
        )

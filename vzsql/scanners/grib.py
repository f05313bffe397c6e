"""GRIB1/GRIB2 scanner: one file -> manifest tables laid out as cfgrib lays it out.

1. ``grib_ranges.walk_messages`` finds message boundaries itself (section 0 of each
   message, a jump by its length, a ``7777`` check; a bounded search for the next ``GRIB``
   across padding, WMO bulletin headers, junk), with mixed editions, and reads only what
   ecCodes needs: sections 0-6 of most GRIB2 messages, whole messages otherwise. Local
   files are memory-mapped; remote ones are read by coalesced byte ranges, never whole.
2. GRIB2 messages holding several fields are split into fields (``split_field``); an array
   whose fields all sit at the same position of their messages references them with the
   codec's ``field`` setting; otherwise ``UnsupportedLayoutError``.
3. cfgrib's own index/dataset code (``grib_layout``) decides names, dimensions, coordinates
   and attributes; every data chunk is one message's byte range, decoded by ``vzsql.grib``.

Failures (a ``GRIB`` that starts no valid message: bad edition, bad length, truncated,
missing ``7777``; or a message ecCodes cannot read) raise ``CorruptSourceError`` naming the
file and byte offset. With ``strict=False`` they are skipped *and recorded*: the root group
attribute ``vzsql_grib_failures`` lists ``{"offset", "reason"}``, and
``scan_grib_report`` returns them as an Arrow table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.errors import CorruptSourceError, UnsupportedFormatError, VzsqlError
from vzsql.scanners.grib_layout import (
    FieldSet,
    attrs_json,
    build_index,
    dataset_attrs,
    group_rows,
    lay_out,
)
from vzsql.scanners.grib_messages import (
    FieldSplitError,
    MessageFailure,
    field_count,
    split_field,
)
from vzsql.scanners.grib_ranges import GribMessages, open_window, walk_messages
from vzsql.scanners.grid import index_column, repeated_names
from vzsql.sources import SourceList, stat_source
from vzsql.tables import CHUNKS_SCHEMA, GRID_SCHEMA, Tables

FAILURES_SCHEMA = pa.schema(
    [pa.field("offset", pa.int64(), nullable=False), pa.field("reason", pa.string())]
)


@dataclass(frozen=True)
class GribScan:
    """A scan's tables and the failures it recorded (empty unless ``strict=False``)."""

    tables: Tables
    failures: pa.Table


def scan_grib(
    uri: str,
    *,
    storage_options: dict[str, Any] | None = None,
    strict: bool = True,
    filter_by_keys: dict[str, Any] | None = None,
) -> Tables:
    """Scan one GRIB file (GRIB1, GRIB2 or both) into manifest tables.

    ``filter_by_keys`` selects fields as cfgrib's option of the same name does.
    """
    return scan_grib_report(
        uri, storage_options=storage_options, strict=strict, filter_by_keys=filter_by_keys
    ).tables


def _fail(uri: str, failure: MessageFailure) -> CorruptSourceError:
    return CorruptSourceError(
        f"corrupt GRIB message at byte offset {failure.offset}: {failure.reason}", source=uri
    )


def scan_grib_report(
    uri: str,
    *,
    storage_options: dict[str, Any] | None = None,
    strict: bool = True,
    filter_by_keys: dict[str, Any] | None = None,
    heads_only: bool = True,
) -> GribScan:
    """``scan_grib``, also returning the failures table (``offset``, ``reason``).

    ``heads_only=False`` gives ecCodes every message whole (the reference the tests compare
    the default, metadata-sections-only reading with).
    """
    stat = stat_source(uri, storage_options)
    sources = SourceList()
    sid = sources.add(stat, "grib")
    with open_window(uri, storage_options) as window:
        found = walk_messages(window, heads_only=heads_only)
        messages = found.index
        failures = list(messages.failures)
        if failures and strict:
            raise _fail(uri, failures[0])
        field_msg, field_pos, field_bad = _enumerate_fields(found)
        for m, reason in field_bad:
            failure = MessageFailure(int(messages.offsets[m]), reason)
            if strict:
                raise _fail(uri, failure)
            failures.append(failure)
        if field_msg.size == 0:
            raise CorruptSourceError(
                "no readable GRIB message found" if len(messages) else "no GRIB message found",
                source=uri,
            )
        tables, decode_failures = _lay_out_tables(
            uri, found, field_msg, field_pos, sid, strict, filter_by_keys
        )
    failures.extend(decode_failures)
    failures.sort(key=lambda f: f.offset)
    failure_table = pa.Table.from_pylist(
        [{"offset": f.offset, "reason": f.reason} for f in failures], schema=FAILURES_SCHEMA
    )
    if failures:
        groups = tables.groups.to_pylist()
        root = next(g for g in groups if g["group"] == "")
        attrs = json.loads(root["attrs"] or "{}")
        attrs["vzsql_grib_failures"] = failure_table.to_pylist()
        root["attrs"] = attrs_json(attrs)
        tables = tables.with_tables(groups=pa.Table.from_pylist(groups))
    return GribScan(tables.with_tables(sources=sources.table()), failure_table)


@contextmanager
def _inconsistent_fields_are_corrupt(uri: str) -> Iterator[None]:
    """ecCodes/cfgrib failures while laying fields out (a message whose grid description
    contradicts its size, a key that cannot be computed or has a garbled value, as a bit
    flip in a section leaves it) -> ``CorruptSourceError``."""
    import eccodes

    try:
        yield
    except VzsqlError:
        raise
    except (eccodes.CodesInternalError, KeyError, TypeError, ValueError) as e:
        raise CorruptSourceError(
            f"ecCodes cannot read the GRIB fields' metadata: {type(e).__name__}: {e}", source=uri
        ) from e


def _enumerate_fields(
    found: GribMessages,
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Per field: its message number and position in the message; messages that fail.

    A message read without its data holds one field (``grib_ranges`` checked its sections).
    """
    messages = found.index
    counts = np.ones(len(messages), dtype=np.int64)
    bad: list[tuple[int, str]] = []
    for m in np.flatnonzero(messages.editions == 2):  # a loop over messages: section walk
        if found.heads[m] is not None:
            continue
        try:
            counts[m] = field_count(found.message(int(m)))
        except FieldSplitError as e:
            counts[m] = 0
            bad.append((int(m), f"GRIB2 sections are inconsistent: {e}"))
    field_msg = np.repeat(np.arange(len(messages)), counts)
    starts = np.cumsum(counts) - counts
    field_pos = np.arange(field_msg.size) - np.repeat(starts, counts)
    return field_msg, field_pos, bad


def _lay_out_tables(
    uri: str,
    found: GribMessages,
    field_msg: np.ndarray,
    field_pos: np.ndarray,
    sid: int,
    strict: bool,
    filter_by_keys: dict[str, Any] | None,
) -> tuple[Tables, list[MessageFailure]]:
    offsets, lengths = found.index.offsets, found.index.lengths
    multi = np.bincount(field_msg, minlength=len(found.index)) > 1
    decode_failures: list[MessageFailure] = []

    def open_field(i: int) -> bytes:
        m = int(field_msg[i])
        raw = found.message(m)
        return split_field(raw, int(field_pos[i])) if multi[m] else raw

    def on_error(i: int, e: Exception) -> None:
        failure = MessageFailure(
            int(offsets[field_msg[i]]),
            f"ecCodes cannot read field {int(field_pos[i])} of the message: {e}",
        )
        if strict:
            raise _fail(uri, failure) from e
        decode_failures.append(failure)

    def value_count(i: int) -> int:
        import eccodes

        handle = eccodes.codes_new_from_message(open_field(i))
        try:
            return int(eccodes.codes_get_size(handle, "values"))
        finally:
            eccodes.codes_release(handle)

    fieldset = FieldSet(int(field_msg.size), open_field, on_error)
    with _inconsistent_fields_are_corrupt(uri):
        index = build_index(fieldset)
        if not index.field_ids_index:
            raise CorruptSourceError("no readable GRIB field found", source=uri)
        groups = lay_out(index, filter_by_keys)
        laid_out = [group_rows(group, field_pos, value_count, uri) for group in groups]
    if not groups:
        raise UnsupportedFormatError(
            f"no GRIB field matches filter_by_keys={filter_by_keys!r}", source=uri
        )
    arrays: list[dict[str, Any]] = []
    grid: list[pa.Table] = []
    inline: list[dict[str, Any]] = []
    referenced: list[pa.Table] = []
    group_table: list[dict[str, Any]] = []
    for group, rows in zip(groups, laid_out, strict=True):
        arrays.extend(rows.arrays)
        grid.extend(rows.grid)
        inline.extend(rows.inline_chunks)
        for path, idx, fields in rows.field_blocks:
            msgs = field_msg[fields]
            referenced.append(
                pa.table(
                    {
                        "array": repeated_names([path], [len(fields)]),
                        "index": index_column(idx),
                        "source_id": pa.array(np.full(len(fields), sid, np.int32)),
                        "offset": pa.array(offsets[msgs]),
                        "length": pa.array(lengths[msgs]),
                        "data": pa.nulls(len(fields), pa.binary()),
                    },
                    schema=CHUNKS_SCHEMA,
                )
            )
        group_table.append(
            {"group": group.path, "attrs": attrs_json(dataset_attrs(group)), "attr_dtypes": None}
        )
    if all(g["group"] for g in group_table):
        group_table.insert(0, {"group": "", "attrs": "{}", "attr_dtypes": None})
    chunks = pa.concat_tables([pa.Table.from_pylist(inline, schema=CHUNKS_SCHEMA), *referenced])
    tables = Tables.from_mapping(
        {
            "arrays": pa.Table.from_pylist(arrays),
            "grid": pa.concat_tables(grid) if grid else GRID_SCHEMA.empty_table(),
            "chunks": chunks,
            "groups": pa.Table.from_pylist(group_table),
        }
    )
    return tables, decode_failures

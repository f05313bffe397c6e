"""GRIB1/GRIB2 scanner: one file -> manifest tables laid out as cfgrib lays it out.

1. ``grib_messages.find_messages`` finds message boundaries itself (numpy search of a
   memory map for ``GRIB``, vectorised length/edition/``7777`` checks), tolerating padding,
   WMO bulletin headers, junk and mixed editions.
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
import mmap
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.errors import CorruptSourceError, UnsupportedFormatError, VzsqlError
from vzsql.scanners.grib_layout import (
    FieldSet,
    build_index,
    dataset_attrs,
    group_rows,
    lay_out,
)
from vzsql.scanners.grib_messages import (
    FieldSplitError,
    MessageFailure,
    MessageIndex,
    field_count,
    find_messages,
    split_field,
)
from vzsql.scanners.grid import index_column, repeated_names
from vzsql.sources import SourceList, local_path, open_source, stat_source
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


@contextmanager
def _file_bytes(uri: str, storage_options: dict[str, Any] | None) -> Iterator[np.ndarray]:
    """The file as a uint8 array: a memory map for local files, read whole otherwise."""
    with open_source(uri, storage_options) as f:
        if local_path(uri) is None:
            yield np.frombuffer(f.read(), dtype=np.uint8)
            return
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            yield np.zeros(0, dtype=np.uint8)
            return
        arr = np.frombuffer(mm, dtype=np.uint8)
        try:
            yield arr
        finally:
            del arr
            with suppress(BufferError):  # a view still lives: the map closes when it is freed
                mm.close()


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
) -> GribScan:
    """``scan_grib``, also returning the failures table (``offset``, ``reason``)."""
    stat = stat_source(uri, storage_options)
    sources = SourceList()
    sid = sources.add(stat, "grib")
    with _file_bytes(uri, storage_options) as data:
        messages = find_messages(data)
        failures = list(messages.failures)
        if failures and strict:
            raise _fail(uri, failures[0])
        field_msg, field_pos, field_bad = _enumerate_fields(data, messages)
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
            uri, data, messages, field_msg, field_pos, sid, strict, filter_by_keys
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
        root["attrs"] = json.dumps(attrs)
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
    data: np.ndarray, messages: MessageIndex
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Per field: its message number and position in the message; messages that fail."""
    counts = np.ones(len(messages), dtype=np.int64)
    bad: list[tuple[int, str]] = []
    for m in np.flatnonzero(messages.editions == 2):  # a loop over messages: section walk
        o, n = int(messages.offsets[m]), int(messages.lengths[m])
        try:
            counts[m] = field_count(memoryview(data[o : o + n]))
        except FieldSplitError as e:
            counts[m] = 0
            bad.append((int(m), f"GRIB2 sections are inconsistent: {e}"))
    field_msg = np.repeat(np.arange(len(messages)), counts)
    starts = np.cumsum(counts) - counts
    field_pos = np.arange(field_msg.size) - np.repeat(starts, counts)
    return field_msg, field_pos, bad


def _lay_out_tables(
    uri: str,
    data: np.ndarray,
    messages: MessageIndex,
    field_msg: np.ndarray,
    field_pos: np.ndarray,
    sid: int,
    strict: bool,
    filter_by_keys: dict[str, Any] | None,
) -> tuple[Tables, list[MessageFailure]]:
    offsets, lengths = messages.offsets, messages.lengths
    multi = np.bincount(field_msg, minlength=len(messages)) > 1
    decode_failures: list[MessageFailure] = []

    def open_field(i: int) -> bytes:
        m = int(field_msg[i])
        raw = data[int(offsets[m]) : int(offsets[m] + lengths[m])]
        return split_field(memoryview(raw), int(field_pos[i])) if multi[m] else raw.tobytes()

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
            {"group": group.path, "attrs": json.dumps(dataset_attrs(group)), "attr_dtypes": None}
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

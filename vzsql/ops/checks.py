"""``check``: consistency checks of a manifest, one query each in ``queries/checks/``.

Every check returns rows of the same shape: ``kind``, ``severity`` (``error``, ``warning``
or ``info``), ``array``, ``chunk`` (index), ``source`` (URI or piece label) and ``detail``.
Checks of sources compare what a stat finds now (done in Python, one stat per source, in
threads) with what the scan recorded, in SQL. Missing chunks are listed with severity
``info``: they are legal (read as the fill value) but worth knowing. Dimension coordinates
whose values repeat are a ``warning`` (legal, but selecting labels along them is
ambiguous): their values are decoded in Python, the duplicates found in SQL. Disagreements
between pieces about to be concatenated are checked by ``check_pieces`` (``concat``
refuses on them).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import CheckFailedError, SourceError
from vzsql.ops.relations import query
from vzsql.sources import stat_source

if TYPE_CHECKING:
    from vzsql.manifest import Manifest
    from vzsql.tables import Tables

SOURCE_CHECKS = ("source_missing", "source_changed")
TABLE_CHECKS = (
    "unknown_source",
    "range_past_eof",
    "nonpositive_length",
    "duplicate_chunk_keys",
    "index_outside_grid",
    "grid_inconsistent",
    "overlapping_ranges",
    "missing_chunks",
    "duplicate_coordinate_values",
)
ALL_CHECKS = SOURCE_CHECKS + TABLE_CHECKS

PROBLEMS_SCHEMA = pa.schema(
    [
        pa.field("kind", pa.string()),
        pa.field("severity", pa.string()),
        pa.field("array", pa.string()),
        pa.field("chunk", pa.list_(pa.int32())),
        pa.field("source", pa.string()),
        pa.field("detail", pa.string()),
    ]
)

STAT_SCHEMA = pa.schema(
    [
        pa.field("source_id", pa.int32()),
        pa.field("found", pa.bool_()),
        pa.field("size", pa.int64()),
        pa.field("mtime", pa.int64()),
        pa.field("etag", pa.string()),
        pa.field("error", pa.string()),
    ]
)


def stat_sources(
    sources: pa.Table, storage_options: dict[str, Any] | None = None, workers: int = 8
) -> pa.Table:
    """What a stat of every source finds now: one row per source (``found`` false if gone)."""

    def one(sid_uri: tuple[int, str]) -> dict[str, Any]:
        sid, uri = sid_uri
        try:
            st = stat_source(uri, storage_options)
        except SourceError as e:
            return {"source_id": sid, "found": False, "error": e.detail}
        except Exception as e:  # credentials, network: the source cannot be reached
            return {"source_id": sid, "found": False, "error": f"{type(e).__name__}: {e}"}
        return {
            "source_id": sid,
            "found": True,
            "size": st.size,
            "mtime": st.mtime_ns,
            "etag": st.etag,
        }

    pairs = list(zip(sources["source_id"].to_pylist(), sources["uri"].to_pylist(), strict=True))
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pairs)))) as pool:
        rows = list(pool.map(one, pairs))
    return pa.Table.from_pylist(rows, schema=STAT_SCHEMA)


COORD_SCHEMA = pa.schema(
    [
        pa.field("dim", pa.string()),
        pa.field("i", pa.int64()),
        pa.field("value", pa.float64()),
        pa.field("label", pa.string()),
    ]
)


def check_query(
    tables: Tables,
    name: str,
    source_stats: pa.Table | None = None,
    coord_values: pa.Table | None = None,
) -> pa.Table:
    """Run one check query (``queries/checks/<name>.sql``) over ``tables``; its problem rows."""
    relations = tables.as_dict()
    relations["source_stats"] = (
        source_stats if source_stats is not None else STAT_SCHEMA.empty_table()
    )
    relations["coord_values"] = (
        coord_values if coord_values is not None else COORD_SCHEMA.empty_table()
    )
    return query(f"checks/{name}", relations).cast(PROBLEMS_SCHEMA)


def run_check(
    m: Manifest,
    name: str,
    source_stats: pa.Table | None = None,
    coord_values: pa.Table | None = None,
) -> pa.Table:
    """Run one check query (``queries/checks/<name>.sql``) over ``m`` and return its problem
    rows.

    This is the reference: ``check`` answers the chunk-row checks of
    ``vzsql.ops.check_fast.FAST_CHECKS`` without these queries where it can."""
    return check_query(m.tables, name, source_stats, coord_values)


def table_problems(
    tables: Tables, names: Sequence[str], stats: pa.Table | None, *, stat: bool
) -> dict[str, pa.Table]:
    """Problem rows of each check in ``names`` over ``tables`` (source checks only if ``stat``)."""
    coords = None
    if "duplicate_coordinate_values" in names:
        from vzsql.ops.stats import coordinate_values

        # raw values (any calendar); without stat, only inline coordinates (no file reads)
        coords = coordinate_values(tables, decode=False, inline_only=not stat)
    from vzsql.ops.check_fast import FAST_CHECKS, fast_chunk_checks

    # the chunk-row checks at scale (vzsql/ops/check_fast.py); their SQL where it cannot
    fast = fast_chunk_checks(tables, names) if set(names) & set(FAST_CHECKS) else {}
    return {
        name: fast[name] if name in fast else check_query(tables, name, stats, coords)
        for name in names
        if stat or name not in SOURCE_CHECKS
    }


def check(
    m: Manifest,
    *,
    strict: bool = False,
    stat: bool = True,
    checks: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> pa.Table:
    """All problems of ``m`` as one Arrow table; ``strict`` raises ``CheckFailedError`` on errors.

    ``stat=False`` skips looking at the source files (no missing/changed checks; byte
    ranges are compared with the sizes recorded at scan). A manifest stored in DuckDB is
    checked a batch of arrays at a time (``vzsql.ops.check_resident``), never whole as Arrow.
    """
    names = list(checks) if checks is not None else list(ALL_CHECKS)
    unknown = set(names) - set(ALL_CHECKS)
    if unknown:
        raise KeyError(f"unknown checks {sorted(unknown)}; checks are {', '.join(ALL_CHECKS)}")
    sources = m.tables_without_chunks().sources
    stats = stat_sources(sources, storage_options) if stat else None
    if m.resident is not None:
        from vzsql.ops.check_resident import resident_problems

        found = resident_problems(m, names, stats, stat=stat)
    else:
        found = table_problems(m.tables, names, stats, stat=stat)
    results = [found[name] for name in names if name in found]
    problems = pa.concat_tables(results) if results else PROBLEMS_SCHEMA.empty_table()
    if strict:
        raise_on_errors(problems)
    return problems


def raise_on_errors(problems: pa.Table) -> None:
    """Raise ``CheckFailedError`` (with the table) if ``problems`` has error rows."""
    # only the error rows become Python dicts: info rows (missing chunks) may number millions
    errors = problems.filter(pc.equal(problems["severity"], "error")).to_pylist()
    if not errors:
        return
    kinds: dict[str, int] = {}
    for r in errors:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    first = errors[0]
    where = ", ".join(
        x
        for x in (
            first["array"] and f"array {first['array']!r}",
            first["source"] and f"file {first['source']!r}",
        )
        if x
    )
    raise CheckFailedError(
        f"{len(errors)} problem(s): "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + f"; first: {first['detail']}"
        + (f" ({where})" if where else ""),
        problems,
    )


def check_pieces(manifests: Sequence[Manifest], dim: str | None = None) -> pa.Table:
    """Disagreements between manifests to be concatenated along ``dim`` (or merged)."""
    from vzsql.ops.concat import check_pieces as _check_pieces

    return _check_pieces([m.tables for m in manifests], dim).cast(PROBLEMS_SCHEMA)

"""``check`` of a manifest stored in DuckDB: a batch of arrays at a time, never all rows.

Materialising 100M chunk rows as Arrow costs ~5 GB on top of the ~1.5 GB DuckDB holds them
in, which is what ``storage="duckdb"`` exists to avoid. The checks do not need every row
at once:

- The chunk-row checks of one array (unknown source, range past EOF, non-positive length,
  duplicate keys, index outside the grid, missing chunks) look at that array's rows and
  its ``arrays``/``grid`` rows only, and their SQL orders by array first. Arrays are taken
  in name order, in batches of about ``BATCH_ROWS`` rows (a larger array alone), each
  batch checked as a manifest of its own by the same code as an Arrow manifest
  (``table_problems``); concatenated, the results are the rows, in the order, of the check
  of the whole.
- ``overlapping_ranges`` compares rows of different arrays in one file: its numpy pass
  streams four columns from DuckDB in record batches, and only the rows of the files it
  flags are fetched for its SQL.
- ``duplicate_coordinate_values`` gets the rows of the dimension coordinates only; the
  checks that read no chunk rows (sources, grid) run once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace as replace_fields
from typing import TYPE_CHECKING, Final

import pyarrow as pa
import pyarrow.compute as pc

from vzsql.ops.check_ranges import COLUMNS, overlapping_sources
from vzsql.ops.checks import PROBLEMS_SCHEMA, check_query, table_problems
from vzsql.ops.coords import is_dimension_coordinate
from vzsql.tables import Tables

if TYPE_CHECKING:
    from vzsql.manifest import Manifest
    from vzsql.resident import ResidentChunks

BATCH_ROWS: Final = 8 * 2**20
PER_ARRAY_CHECKS: Final = (
    "unknown_source",
    "range_past_eof",
    "nonpositive_length",
    "duplicate_chunk_keys",
    "index_outside_grid",
    "missing_chunks",
)


def array_batches(
    rows_per_array: dict[str, int], known: Sequence[str], budget: int = BATCH_ROWS
) -> list[list[str]]:
    """Every array name (in ``arrays`` or in the rows), in name order, grouped in runs of
    at most ``budget`` rows (an array with more rows is a batch of its own)."""
    batches: list[list[str]] = []
    current: list[str] = []
    rows = 0
    for name in sorted(set(rows_per_array) | set(known)):
        n = rows_per_array.get(name, 0)
        if current and rows + n > budget:
            batches.append(current)
            current, rows = [], 0
        current.append(name)
        rows += n
    if current:
        batches.append(current)
    return batches


def restricted(tables: Tables, names: Sequence[str], chunks: pa.Table) -> Tables:
    """``tables`` cut down to the arrays ``names``, with ``chunks`` as their rows."""
    value_set = pa.array(list(names), pa.string())
    return replace_fields(
        tables,
        arrays=tables.arrays.filter(pc.is_in(tables.arrays["array"], value_set=value_set)),
        grid=tables.grid.filter(pc.is_in(tables.grid["array"], value_set=value_set)),
        chunks=chunks,
    )


def overlapping_ranges(small: Tables, resident: ResidentChunks) -> pa.Table:
    """``overlapping_ranges`` with the rows streamed from DuckDB (see ``check_ranges``)."""
    flagged = overlapping_sources(lambda: resident.batches(COLUMNS))
    if not flagged:
        return PROBLEMS_SCHEMA.empty_table()
    rows = resident.rows_of_sources(sorted(flagged))
    return check_query(replace_fields(small, chunks=rows), "overlapping_ranges")


def dimension_coordinates(small: Tables) -> list[str]:
    """Names of the arrays that are 1-D dimension coordinates."""
    return [
        name
        for name, dims in zip(
            small.arrays["array"].to_pylist(), small.arrays["dims"].to_pylist(), strict=True
        )
        if is_dimension_coordinate(name, dims)
    ]


def resident_problems(
    m: Manifest,
    names: Sequence[str],
    stats: pa.Table | None,
    *,
    stat: bool,
    batch_rows: int = BATCH_ROWS,
) -> dict[str, pa.Table]:
    """Problem rows of each check in ``names`` for a manifest stored in DuckDB; the same
    rows as ``table_problems(m.tables, ...)`` without holding ``m``'s rows as Arrow."""
    resident = m.resident
    assert resident is not None
    small = m.tables_without_chunks()
    found: dict[str, list[pa.Table]] = {}

    def add(results: dict[str, pa.Table]) -> None:
        for name, table in results.items():
            found.setdefault(name, []).append(table)

    per_array = [n for n in names if n in PER_ARRAY_CHECKS]
    if per_array:
        known = small.arrays["array"].to_pylist()
        for batch in array_batches(resident.rows_per_array(), known, batch_rows):
            part = restricted(small, batch, resident.rows_of_arrays(batch))
            add(table_problems(part, per_array, stats, stat=stat))
            del part
    if "overlapping_ranges" in names:
        add({"overlapping_ranges": overlapping_ranges(small, resident)})
    if "duplicate_coordinate_values" in names:
        coords = replace_fields(small, chunks=resident.rows_of_arrays(dimension_coordinates(small)))
        add(table_problems(coords, ["duplicate_coordinate_values"], stats, stat=stat))
    streamed = (*PER_ARRAY_CHECKS, "overlapping_ranges", "duplicate_coordinate_values")
    rest = [n for n in names if n not in streamed]
    if rest:
        add(table_problems(small, rest, stats, stat=stat))
    return {name: pa.concat_tables(found[name]) for name in names if name in found}

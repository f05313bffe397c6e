"""Planning an append along a dimension to arrays already in an Icechunk branch.

The stored arrays (their ``zarr.json`` documents, no chunk refs) and the appended manifest
are handed to ``vzsql.ops.concat`` as two pieces: its checks refuse what disagrees (dtype,
codecs, fill value, units, chunking across the dimension, ...), its queries give the
combined shape and chunk grid, and its ``apply_padding`` switches an array to the
``vzsql.padded_bytes`` codec when a stored chunk no longer fits its slot (e.g. the last,
padded chunk of a month of 31 days chunked by 10, now followed by the next month). The
arrays' ``zarr.json`` are rewritten in the same commit as the new references, which are
written at chunk indices shifted by the number of chunks already stored (``concat_offsets``).
Existing chunks are untouched: the trimming codec decodes them to their (unchanged) slots.
Arrays without the dimension (e.g. ``lat``/``lon``) are kept as stored after the checks.
What the trimming codec cannot express (a pipeline without a ``bytes`` serializer, stored
shapes it could not tell apart) is refused with ``InconsistentConcatError``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.codecs.padded import CODEC_NAME
from vzsql.errors import DuplicateSourceError, ExportError, InconsistentConcatError
from vzsql.importers.icechunk import array_row, grid_rows, grid_table, read_documents
from vzsql.ops.concat import apply_padding, describe_pieces, piece_problems, raise_problems
from vzsql.ops.ordering import piece_label
from vzsql.ops.relations import query
from vzsql.tables import Tables
from vzsql.zarr_meta import array_json, grid_lengths


@dataclass
class AppendPlan:
    """What an append writes: new array documents, index shifts, arrays left alone."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)  # store key -> zarr.json
    shifts: dict[str, np.ndarray] = field(default_factory=dict)  # array -> index offset
    skip: set[str] = field(default_factory=set)  # arrays kept as stored


def read_array_docs(store: Any) -> dict[str, dict[str, Any]]:
    """The ``zarr.json`` of every array in the session, keyed by array path."""
    return {p: d for p, d in read_documents(store).items() if d.get("node_type") == "array"}


def check_new_sources(session: Any, repo: Any, branch: str, tables: Tables, key: str) -> None:
    """Refuse sources the branch already references (virtual refs, or vzsql's commit record)."""
    new = set(tables.sources["uri"].to_pylist())
    present = set(session.all_virtual_chunk_locations())
    for info in repo.ancestry(branch=branch):
        for s in ((info.metadata or {}).get(key) or {}).get("sources", []):
            present.add(s["uri"])
    dup = sorted(new & present)
    if dup:
        raise DuplicateSourceError(
            f"{len(dup)} source file(s) are already in branch {branch!r}; appending them "
            "again would duplicate their data",
            source=dup[0],
        )


def repository_piece(existing: dict[str, dict[str, Any]], names: set[str]) -> Tables:
    """The stored arrays ``names`` as a piece without chunks: ``arrays`` and ``grid`` rows.

    Built from the ``zarr.json`` documents alone (``vzsql.importers.icechunk``), so planning
    an append costs nothing per stored chunk however large the repository is.
    """
    rows = [array_row(p, existing[p]) for p in sorted(names)]
    grids = [grid_rows(p, existing[p]) for p in sorted(names)]
    return Tables.from_mapping({"arrays": pa.Table.from_pylist(rows), "grid": grid_table(grids)})


def plan_append(tables: Tables, existing: dict[str, dict[str, Any]], append_dim: str) -> AppendPlan:
    """Check the new arrays against the stored ones and work out what to write.

    The stored arrays (metadata only) and the new manifest are the two pieces of
    ``vzsql.ops.concat``: its disagreement checks, its offset/arrays/grid queries and its
    ``apply_padding`` give the combined metadata, so an append describes an array exactly
    as ``vzsql.concat`` of the same pieces would (rectilinear grid, ``vzsql.padded_bytes``
    where a padded chunk is no longer last). Only arrays with ``append_dim`` are rewritten.
    """
    rows = {r["array"]: r for r in tables.arrays.to_pylist()}
    stale = sorted(
        p
        for p, d in existing.items()
        if append_dim in (d.get("dimension_names") or []) and p not in rows
    )
    if stale:
        raise InconsistentConcatError(
            f"array grows along {append_dim!r} in the repository but is missing from the "
            "appended manifest",
            array=stale[0],
        )
    if not any(append_dim in (r["dims"] or []) for r in rows.values()):
        raise ExportError(f"no array of the manifest has the dimension {append_dim!r}")
    missing = sorted(set(rows) - set(existing))
    if missing:
        raise ExportError(
            "array is not in the repository; an append cannot add arrays", array=missing[0]
        )
    empty_grid = [n for n, r in rows.items() if r["shape"] and not _has_grid(tables, n)]
    if empty_grid:
        raise ExportError("array has no chunk grid rows", array=empty_grid[0])
    pieces = describe_pieces([repository_piece(existing, set(rows)), tables])
    # the stored piece has no sources: call it what it is in messages
    labels = ["the repository", piece_label(tables)]
    pieces["piece_labels"] = pa.table(
        {"piece": pa.array([0, 1], pa.int32()), "label": pa.array(labels, pa.string())}
    )
    arrays = pieces["piece_arrays"]
    label = pa.array([labels[p] for p in arrays["piece"].to_pylist()], pa.string())
    pieces["piece_arrays"] = arrays.set_column(
        arrays.schema.get_field_index("label"), "label", label
    )
    raise_problems(piece_problems(pieces, append_dim), f"append along {append_dim!r}")
    offsets = query("concat_offsets", pieces, {"dim": append_dim})
    inputs = {**pieces, "offsets": offsets}
    combined = Tables.from_mapping(
        {"arrays": query("concat_arrays", inputs), "grid": query("concat_grid", inputs)}
    )
    combined = apply_padding(combined, pieces)
    _refuse_unpaddable(combined, pieces)
    lengths = grid_lengths(combined)
    plan = AppendPlan()
    grows = set(offsets["array"].to_pylist())
    for row in combined.arrays.to_pylist():
        if row["array"] not in grows:
            plan.skip.add(row["array"])
            continue
        plan.docs[f"{row['array']}/zarr.json"] = array_json(row, lengths.get(row["array"]))
    for r in offsets.filter(pc.equal(offsets["piece"], 1)).to_pylist():
        shift = np.zeros(len(rows[r["array"]]["dims"]), dtype=np.int64)
        shift[r["d"]] = r["chunk_offset"]
        plan.shifts[r["array"]] = shift
    return plan


def _has_grid(tables: Tables, name: str) -> bool:
    return bool(pc.any(pc.equal(tables.grid["array"], name)).as_py())


def _refuse_unpaddable(combined: Tables, pieces: dict[str, pa.Table]) -> None:
    """Refuse arrays whose chunks need trimming but whose pipeline cannot be given the
    trimming codec (no top-level ``bytes`` serializer, e.g. sharding or vlen strings)."""
    needed = query(
        "padding_needed",
        {"piece_arrays": pieces["piece_arrays"], "grid": combined.grid, "arrays": combined.arrays},
    )
    codecs = dict(
        zip(
            combined.arrays["array"].to_pylist(), combined.arrays["codecs"].to_pylist(), strict=True
        )
    )
    for name in needed["array"].to_pylist():
        if CODEC_NAME not in (codecs.get(name) or ""):
            raise InconsistentConcatError(
                "after this append some stored chunks would be padded or shaped unlike their "
                "place in the chunk grid, and the array's codec pipeline has no 'bytes' "
                f"serializer the {CODEC_NAME} codec could replace to trim them; write the "
                "combined manifest instead (vzsql.concat, then to_icechunk(overwrite=True))",
                array=name,
            )

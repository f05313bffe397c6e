"""Planning an append along a dimension to arrays already in an Icechunk branch.

For every array of the new manifest that has the append dimension, the stored array grows:
its ``zarr.json`` is rewritten (shape, and a chunk grid built by ``vzsql.zarr_meta`` from
the stored chunk lengths followed by the new ones: regular if they still fit one chunk
size, rectilinear otherwise) and the new chunks are written at indices shifted by the
number of chunks already stored along that dimension. Arrays without the dimension (e.g.
``lat``/``lon``) are kept as stored after checking they agree. Encodings must match, and a
stored last chunk that is padded past the array's end cannot be followed by more chunks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vzsql.errors import DuplicateSourceError, ExportError, InconsistentConcatError
from vzsql.importers.icechunk import (
    clipped_lengths,
    last_chunk_is_padded,
    read_documents,
    stored_chunk_shape,
)
from vzsql.tables import Tables
from vzsql.zarr_meta import array_json, grid_lengths, parse_dtype


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


def plan_append(tables: Tables, existing: dict[str, dict[str, Any]], append_dim: str) -> AppendPlan:
    """Check the new arrays against the stored ones and work out what to write."""
    rows = {r["array"]: r for r in tables.arrays.to_pylist()}
    new_lengths = grid_lengths(tables)
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
    plan = AppendPlan()
    for name, row in rows.items():
        old = existing.get(name)
        if old is None:
            raise ExportError(
                "array is not in the repository; an append cannot add arrays", array=name
            )
        dims = list(row["dims"] or [])
        if append_dim not in dims:
            if [int(s) for s in old["shape"]] != list(row["shape"] or []) or old[
                "data_type"
            ] != parse_dtype(row["dtype"]):
                raise InconsistentConcatError(
                    f"array without {append_dim!r} differs from the repository's (shape or dtype)",
                    array=name,
                )
            plan.skip.add(name)
            continue
        _check_same_encoding(name, row, old, dims)
        axis = dims.index(append_dim)
        old_lengths = clipped_lengths(old)
        add = new_lengths.get(name)
        if not add or len(add) != len(dims):
            raise ExportError("array has no chunk grid rows", array=name)
        old_stored = stored_chunk_shape(old)
        for d in range(len(dims)):
            if d != axis and (
                old_lengths[d] != add[d] or old_stored[d] != int(row["chunk_shape"][d])
            ):
                raise InconsistentConcatError(
                    f"chunking along {dims[d]!r} differs from the repository's", array=name
                )
        if last_chunk_is_padded(old, axis):
            raise InconsistentConcatError(
                f"the stored last chunk along {append_dim!r} is padded past the array's end "
                f"(length {old['shape'][axis]}); no chunks can follow it",
                array=name,
            )
        lengths = [old_lengths[d] + add[d] if d == axis else add[d] for d in range(len(dims))]
        shape = [int(s) for s in old["shape"]]
        shape[axis] += int(row["shape"][axis])
        merged = dict(row, shape=shape, attrs=json.dumps(old.get("attributes") or {}))
        doc = array_json(merged, lengths)
        _check_padding_expressible(name, row, doc, add, axis)
        plan.docs[f"{name}/zarr.json"] = doc
        plan.shifts[name] = np.array(
            [len(old_lengths[axis]) if d == axis else 0 for d in range(len(dims))], dtype=np.int64
        )
    return plan


def _check_same_encoding(
    name: str, row: dict[str, Any], old: dict[str, Any], dims: list[str]
) -> None:
    wanted = {
        "dimension_names": dims,
        "data_type": parse_dtype(row["dtype"]),
        "codecs": json.loads(row["codecs"]) if row["codecs"] else [{"name": "bytes"}],
        "fill_value": json.loads(row["fill_value"]) if row["fill_value"] is not None else 0,
    }
    for key, value in wanted.items():
        stored = old.get(key)
        if key == "dimension_names":
            stored = list(stored or [])
        if stored != value:
            raise InconsistentConcatError(
                f"{key} differs from the repository's ({stored!r} there, {value!r} appended)",
                array=name,
            )


def _check_padding_expressible(
    name: str, row: dict[str, Any], doc: dict[str, Any], add: list[list[int]], axis: int
) -> None:
    """A padded last chunk needs its full length as the last edge of a rectilinear grid."""
    grid = doc["chunk_grid"]
    if grid["name"] != "rectilinear":
        return
    stored = int(row["chunk_shape"][axis])
    if add[axis] and add[axis][-1] < stored:
        edges = grid["configuration"]["chunk_shapes"][axis]
        last = edges if isinstance(edges, int) else edges[-1]
        if last != stored:
            raise InconsistentConcatError(
                "the appended last chunk is padded and the grid became variable-length: "
                "Zarr's rectilinear grid cannot express that padding",
                array=name,
            )

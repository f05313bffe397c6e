"""``concat``: join manifests along an existing dimension, or stack them along a new one.

Along an existing dimension the pieces are first put in the order of their coordinate
values, never of file names (``vzsql.ops.ordering``: the index coordinate, else an
auxiliary coordinate along the dimension when the index repeats in every file, as NEMO's
``time_counter`` does); overlapping values, gaps and files given twice are errors. Then
the decisions are SQL over the per-piece tables (``queries/concat_*.sql``): a window over
the pieces' extents gives each piece its chunk and element offset, grid rows are shifted
by it, sources are unioned and renumbered, and a plan says per (piece, array) which chunk
rows are kept and how their index shifts; ``vzsql.ops.piece_chunks`` applies that plan to
the millions of chunk rows with Arrow and numpy (zero-copy slices, no sort, no join).
Pieces must agree on dtype, codecs, fill value, dims and CF packing
(``queries/checks/piece_disagreement.sql``, ``vzsql.ops.pieces``); the one disagreement that is
repaired instead of refused is time ``units`` of the coordinates along the dimension (and
their bounds), which are re-encoded to common units. The coordinate along the dimension
(and the auxiliary one that ordered the pieces) becomes one inline array.
Slots shorter than stored chunks (padded HDF5 edge chunks now in the middle) switch the
array to the ``vzsql.padded_bytes`` codec, which trims each chunk to its slot.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.codecs.padded import CODEC_NAME, padded_codecs
from vzsql.errors import InconsistentConcatError
from vzsql.ops.coords import (
    array_row,
    attrs_of,
    inline_array,
    is_dimension_coordinate,
    is_time_units,
    numeric_positions,
    one_chunk_rows,
    read_array,
    read_arrays,
    reencode_times,
)
from vzsql.ops.ordering import CoordValues, choose_order, coordinate_values, emit, piece_label
from vzsql.ops.piece_chunks import assemble_chunks
from vzsql.ops.pieces import (
    SMALL_TABLES,
    check_pieces,
    codecs_key,
    describe_pieces,
    labels_of,
    piece_disagreement,
    piece_labels,
    piece_problems,
    raise_problems,
    refuse_same_file,
)
from vzsql.ops.relations import conform_all, query, renumber_sources, stack_pieces
from vzsql.tables import CHUNKS_SCHEMA, Tables

if TYPE_CHECKING:
    from vzsql.manifest import Manifest

# disagreements repaired by rebuilding an array from decoded values (coordinate, bounds)
_REBUILT_KINDS = {
    "disagree_dtype",
    "disagree_codecs",
    "disagree_fill_value",
    "disagree_chunk_grid",
}

__all__ = [  # the piece helpers merge and checks import from here
    "check_pieces",
    "codecs_key",
    "concat",
    "describe_pieces",
    "labels_of",
    "piece_disagreement",
    "piece_labels",
    "piece_problems",
    "raise_problems",
    "refuse_same_file",
    "stack",
]


def concat(
    manifests: Sequence[Manifest],
    dim: str,
    *,
    order_by_coords: bool = True,
    allow_gaps: bool = False,
    coords: Sequence[Any] | None = None,
) -> Manifest:
    """Concatenate manifests along ``dim`` (existing dimension) or stack them (new ``dim``).

    ``order_by_coords`` sorts pieces by their ``dim`` coordinate values; ``allow_gaps``
    accepts jumps in those values. For a new dimension ``coords`` optionally gives its
    coordinate values (one per piece, stored as an inline array).
    """
    from vzsql.manifest import Manifest

    parts = [m.tables for m in manifests]
    if not parts:
        raise InconsistentConcatError("nothing to concatenate: no manifests given")
    coords_of = dimension_coordinates(parts, dim)
    has_dim = [d is not None for d in coords_of]
    if any(has_dim) and not all(has_dim):
        missing = [piece_label(p) for p, h in zip(parts, has_dim, strict=True) if not h]
        raise InconsistentConcatError(
            f"dimension {dim!r} is missing from {len(missing)} piece(s), e.g. {missing[0]}",
            source=missing[0],
        )
    if not any(has_dim):
        if order_by_coords and coords is None:
            parts = order_by_scalar_coordinate(parts, dim)
        return Manifest(stack(parts, dim, coords=coords))
    if len(parts) == 1:
        return Manifest(parts[0])
    return Manifest(
        concat_existing(
            parts, dim, coords_of, order_by_coords=order_by_coords, allow_gaps=allow_gaps
        )
    )


def dimension_coordinates(parts: Sequence[Tables], dim: str) -> list[str | None]:
    """Per piece: None if no array has ``dim``, else its 1-D coordinate's name ("" if it
    has none); one pass over the stacked arrays tables."""
    arrays = stack_pieces(parts, ("arrays",))["piece_arrays"]
    out: list[str | None] = [None] * len(parts)
    for piece, name, dims in zip(
        arrays["piece"].to_pylist(),
        arrays["array"].to_pylist(),
        arrays["dims"].to_pylist(),
        strict=True,
    ):
        if dims and dim in dims:
            if out[piece] is None:
                out[piece] = ""
            if not out[piece] and name.split("/")[-1] == dim and list(dims) == [dim]:
                out[piece] = name
    return out


def dimension_coordinate(tables: Tables, dim: str) -> str | None:
    """The 1-D coordinate array of ``dim`` (the array named like it), if there is one."""
    for name, dims in zip(
        tables.arrays["array"].to_pylist(), tables.arrays["dims"].to_pylist(), strict=True
    ):
        if name.split("/")[-1] == dim and list(dims or []) == [dim]:
            return name  # type: ignore[no-any-return]
    return None


def scalar_coordinate(tables: Tables, name: str) -> str | None:
    """The 0-d array called ``name`` (e.g. the forecast reference ``time`` of a GRIB run)."""
    for array, dims in zip(
        tables.arrays["array"].to_pylist(), tables.arrays["dims"].to_pylist(), strict=True
    ):
        if array.split("/")[-1] == name and not dims:
            return array  # type: ignore[no-any-return]
    return None


def scalar_values(parts: Sequence[Tables], coord: str) -> np.ndarray[Any, Any]:
    """One value of the 0-d array ``coord`` per piece, times in the first piece's units."""
    values = [read_array(p, coord).reshape(1) for p in parts]
    units = [attrs_of(array_row(p, coord)).get("units") for p in parts]
    if all(is_time_units(u) for u in units) and len(set(units)) > 1:
        calendar = attrs_of(array_row(parts[0], coord)).get("calendar")
        dtype = np.dtype("float64")
        values = [
            reencode_times(v, str(u), calendar, str(units[0]), dtype, label=piece_label(p))
            for v, u, p in zip(values, units, parts, strict=True)
        ]
    return np.concatenate([numeric_positions(v) for v in values])


def order_by_scalar_coordinate(parts: list[Tables], dim: str) -> list[Tables]:
    """``parts`` ordered by their 0-d coordinate ``dim`` (as stacked along new ``dim``).

    Each GRIB forecast run holds its reference ``time`` as a scalar; stacking runs along
    ``time`` puts them in time order, and two runs with the same time are refused.
    Pieces without such a coordinate keep the order given.
    """
    coord = scalar_coordinate(parts[0], dim)
    if coord is None or any(scalar_coordinate(p, dim) != coord for p in parts):
        return parts
    keys = scalar_values(parts, coord)
    order = np.argsort(keys, kind="stable")
    same = np.flatnonzero(keys[order][1:] == keys[order][:-1])
    if same.size:
        first, second = parts[int(order[same[0]])], parts[int(order[same[0] + 1])]
        raise InconsistentConcatError(
            f"{dim!r} is the same in two pieces ({piece_label(first)} and "
            f"{piece_label(second)}); cannot stack them along {dim!r}",
            source=piece_label(second),
            array=coord,
        )
    return [parts[int(i)] for i in order]


def concat_existing(
    parts: list[Tables],
    dim: str,
    coords: list[str | None],
    *,
    order_by_coords: bool = True,
    allow_gaps: bool = False,
) -> Tables:
    """Concatenate ``parts`` along their existing dimension ``dim`` (see the module doc).

    ``coords``: ``dimension_coordinates(parts, dim)``, which the caller already computed.
    """
    sources = stack_pieces(parts, ("sources",))
    labels = labels_of(sources["piece_sources"], len(parts))
    refuse_same_file({**sources, "piece_labels": piece_labels(parts, labels)})
    coord = coords[0] or None
    if coord is not None and any(c != coord for c in coords):
        coord = None
    index = coordinate_values(parts, coord, labels) if coord is not None else None
    ordered_by: CoordValues | None = None
    if order_by_coords:
        plan = choose_order(parts, dim, index, labels, allow_gaps=allow_gaps)
        emit(plan)
        parts = [parts[i] for i in plan.order]
        index = index.reordered(plan.order) if index is not None else None
        ordered_by = plan.key if plan.key is not None and plan.key.name != coord else None
    # coordinates along dim become inline arrays (in common time units, with their bounds)
    rebuilt: dict[str, np.ndarray[Any, Any]] = {}
    rebuilt_attrs: dict[str, dict[str, Any]] = {}
    units_repaired: set[str] = set()
    for cv in (c for c in (index, ordered_by) if c is not None):
        rebuilt[cv.name] = np.concatenate(cv.values)
        attrs = attrs_of(array_row(parts[0], cv.name))
        if cv.target_units is not None:
            attrs["units"] = cv.target_units
            units_repaired.add(cv.name)
        rebuilt_attrs[cv.name] = attrs
        for name, pieces_values in cv.bounds.items():
            axis = list(array_row(parts[0], name)["dims"]).index(dim)
            rebuilt[name] = np.concatenate(pieces_values, axis=axis)
            b_attrs = attrs_of(array_row(parts[0], name))
            if "units" in b_attrs:
                b_attrs["units"] = cv.target_units
            rebuilt_attrs[name] = b_attrs
            units_repaired.add(name)
    pieces = describe_pieces(parts, SMALL_TABLES)
    problems = _drop_repaired(piece_problems(pieces, dim), rebuilt, units_repaired)
    raise_problems(problems, f"concatenate along {dim!r}")
    sources, source_map = renumber_sources(pieces)
    offsets = query("concat_offsets", pieces, {"dim": dim})
    inputs = {**pieces, "offsets": offsets}
    plan = query("concat_chunk_plan", inputs)
    if rebuilt:  # their chunk rows are replaced by one inline chunk below
        plan = plan.filter(pc.invert(pc.is_in(plan["array"], pa.array(list(rebuilt), pa.string()))))
    chunks = assemble_chunks(parts, plan, source_map)
    out = {
        "sources": sources,
        "arrays": query("concat_arrays", inputs),
        "grid": query("concat_grid", inputs),
        "chunks": CHUNKS_SCHEMA.empty_table(),  # the small tables are finished without them
        "groups": parts[0].groups,
    }
    tables = conform_all(out)
    tables = apply_padding(tables, pieces, rebuilt=set(rebuilt))
    for name, vals in rebuilt.items():
        tables = inline_array(tables, name, vals, attrs=rebuilt_attrs[name])
    return tables.with_tables(chunks=pa.concat_tables([chunks, tables.chunks]))


def _drop_repaired(
    problems: pa.Table, rebuilt: dict[str, Any], units_repaired: set[str]
) -> pa.Table:
    """Problems minus those fixed by rebuilding arrays from decoded (and re-encoded) values.

    Arrays rebuilt inline no longer depend on their pieces' dtype, codecs or fill value;
    ``units`` disagreements are repaired only for the time arrays re-encoded to common units.
    """
    if problems.num_rows == 0 or not rebuilt:
        return problems
    in_rebuilt = pc.is_in(problems["array"], pa.array(list(rebuilt), pa.string()))
    repaired = pc.and_(in_rebuilt, pc.is_in(problems["kind"], pa.array(sorted(_REBUILT_KINDS))))
    units = pc.and_(
        pc.is_in(problems["array"], pa.array(sorted(units_repaired), pa.string())),
        pc.equal(problems["kind"], "disagree_units"),
    )
    return problems.filter(pc.invert(pc.or_(repaired, units)))


def apply_padding(
    tables: Tables, pieces: dict[str, pa.Table], *, rebuilt: set[str] | None = None
) -> Tables:
    """Switch arrays whose slots differ from stored chunks to the trimming codec.

    The codec tells a chunk's stored shape from its decoded byte count, so stored shapes
    it could not tell apart (same element count) are refused here, before any read
    (``refuse_ambiguous_shapes``). ``rebuilt`` arrays are re-inlined later: not checked.
    """
    needed = query(
        "padding_needed",
        {"piece_arrays": pieces["piece_arrays"], "grid": tables.grid, "arrays": tables.arrays},
    )
    shapes: dict[str, list[list[int | None]]] = {
        r["array"]: r["chunk_shapes"] for r in needed.to_pylist()
    }
    # shapes already recorded by a padded codec in any piece stay valid
    distinct = dict.fromkeys(
        zip(
            pieces["piece_arrays"]["array"].to_pylist(),
            pieces["piece_arrays"]["codecs"].to_pylist(),
            strict=True,
        )
    )
    for name, codecs in distinct:
        if not codecs or CODEC_NAME not in codecs:
            continue
        for c in json.loads(codecs) if codecs else []:
            if c.get("name") == CODEC_NAME:
                extra = (c.get("configuration") or {}).get("chunk_shapes", [])
                shapes.setdefault(name, []).extend(s for s in extra if s not in shapes[name])
    if not shapes:
        return tables
    refuse_ambiguous_shapes(
        {k: v for k, v in shapes.items() if k not in (rebuilt or set())}, pieces
    )
    from vzsql.codecs.encode import codecs_json

    rows = tables.arrays.to_pylist()
    for row in rows:
        if row["array"] in shapes and row["codecs"]:
            row["codecs"] = codecs_json(
                padded_codecs(json.loads(row["codecs"]), shapes[row["array"]])
            )
    return tables.with_tables(arrays=pa.Table.from_pylist(rows, schema=tables.arrays.schema))


def refuse_ambiguous_shapes(
    shapes: dict[str, list[list[int | None]]], pieces: dict[str, pa.Table]
) -> None:
    """Raise ``InconsistentConcatError`` if an array's stored chunk shapes collide in size.

    The message names the array, the colliding shapes and a file storing each of them.
    """
    from vzsql.codecs.padded import ambiguous_shapes

    arrays = pieces["piece_arrays"]
    for name in sorted(shapes):
        clashes = ambiguous_shapes(shapes[name])
        if not clashes:
            continue
        shape, matches = clashes[0]
        where = {
            json.dumps(cs): label
            for n, cs, label in zip(
                arrays["array"].to_pylist(),
                arrays["chunk_shape"].to_pylist(),
                arrays["label"].to_pylist(),
                strict=True,
            )
            if n == name
        }
        files = "; ".join(f"{m} in {where.get(json.dumps(m), '(a subset)')}" for m in matches)
        raise InconsistentConcatError(
            f"stored chunk shapes {matches} hold the same number of elements ({math.prod(shape)}),"
            " so a chunk's shape could not be told from its size when reading (the "
            f"vzsql.padded_bytes codec infers it that way): {files}. Rechunk one of the "
            "series, or concatenate pieces with the same chunk shape",
            source=where.get(json.dumps(shape)),
            array=name,
        )


def stack(parts: list[Tables], dim: str, *, coords: Sequence[Any] | None = None) -> Tables:
    """Stack ``parts`` along a new leading dimension ``dim``, in the order given.

    Every array is stacked except 1-D dimension coordinates, which must be equal in all
    pieces (compared by value) and are kept once, and auxiliary (CF ``coordinates``)
    arrays equal in all pieces, also kept once (see ``equal_auxiliary_coordinates``).
    """
    keep_once = {
        name
        for name, dims in zip(
            parts[0].arrays["array"].to_pylist(), parts[0].arrays["dims"].to_pylist(), strict=True
        )
        if is_dimension_coordinate(name, dims)
    }
    pieces = describe_pieces(parts, SMALL_TABLES)
    problems = piece_disagreement(pieces, None)
    raise_problems(problems, f"stack along new dimension {dim!r}")
    names = [set(p.arrays["array"].to_pylist()) for p in parts]
    if any(n != names[0] for n in names):
        bad = next(i for i, n in enumerate(names) if n != names[0])
        raise InconsistentConcatError(
            f"pieces hold different arrays: {sorted(names[bad] ^ names[0])}",
            source=piece_label(parts[bad]),
        )
    for name in sorted(keep_once):
        first, *others = read_arrays(parts, name)
        for p, other in zip(parts[1:], others, strict=True):
            if not np.array_equal(other, first, equal_nan=first.dtype.kind == "f"):
                raise InconsistentConcatError(
                    f"coordinate {name!r} differs between pieces; cannot stack along {dim!r}",
                    source=piece_label(p),
                    array=name,
                )
    keep_once |= equal_auxiliary_coordinates(parts, exclude=keep_once | {dim})
    stacked = pa.table({"array": pa.array(sorted(names[0] - keep_once), pa.string())})
    refuse_same_file(pieces)
    sources, source_map = renumber_sources(pieces)
    inputs = {**pieces, "stacked": stacked}
    params = {"dim": dim, "n_pieces": len(parts)}
    out = {
        "sources": sources,
        "arrays": query("stack_arrays", inputs, params),
        "grid": query("stack_grid", inputs),
        "chunks": assemble_chunks(parts, query("stack_chunk_plan", inputs), source_map),
        "groups": parts[0].groups,
    }
    tables = conform_all(out)
    if coords is not None:
        values = np.asarray(coords)
        if values.shape != (len(parts),):
            raise InconsistentConcatError(
                f"{len(values)} coordinate values given for {len(parts)} pieces", array=dim
            )
        tables = _add_coordinate(tables, dim, values)
    return tables


def auxiliary_coordinates(tables: Tables) -> set[str]:
    """Arrays named in another array's CF ``coordinates`` attribute (same group)."""
    out: set[str] = set()
    names = set(tables.arrays["array"].to_pylist())
    for name, attrs in zip(
        tables.arrays["array"].to_pylist(), tables.arrays["attrs"].to_pylist(), strict=True
    ):
        listed = json.loads(attrs).get("coordinates") if attrs else None
        if not isinstance(listed, str):
            continue
        prefix = name.rsplit("/", 1)[0] + "/" if "/" in name else ""
        out.update(prefix + c for c in listed.split() if prefix + c in names)
    return out


def equal_auxiliary_coordinates(parts: Sequence[Tables], *, exclude: set[str]) -> set[str]:
    """Auxiliary coordinates whose values are equal in every piece: kept once when stacking.

    This is ``xarray.concat``'s ``coords="different"``: a coordinate such as GRIB's
    ``surface`` level or the 2-D latitudes of a projected grid is not stacked when no
    piece differs (``valid_time`` of forecast runs differs, and is stacked).
    """
    out = set()
    for name in sorted(auxiliary_coordinates(parts[0]) - exclude):
        first, *others = read_arrays(parts, name)
        if all(np.array_equal(o, first, equal_nan=first.dtype.kind in "fc") for o in others):
            out.add(name)
    return out


def _add_coordinate(tables: Tables, dim: str, values: np.ndarray[Any, Any]) -> Tables:
    """Add an inline 1-D coordinate array ``dim`` holding ``values``."""
    from vzsql.codecs.encode import codecs_json, encode_chunk
    from vzsql.ops.coords import PLAIN_BYTES
    from vzsql.tables import conform
    from vzsql.zarr_meta import dtype_to_text

    if values.dtype.kind == "U":
        raise InconsistentConcatError(
            "string coordinates for a new dimension are not supported", array=dim
        )
    row: dict[str, Any] = {
        "array": dim,
        "dims": [dim],
        "shape": [len(values)],
        "chunk_shape": [len(values)],
        "dtype": dtype_to_text(values.dtype),
        "fill_value": json.dumps(0 if values.dtype.kind in "iub" else 0.0),
        "codecs": codecs_json(PLAIN_BYTES),
        "attrs": "{}",
        "attr_dtypes": "{}",
    }
    grid, chunk = one_chunk_rows(dim, [len(values)], encode_chunk(values, row))
    arrays = pa.concat_tables([tables.arrays, conform("arrays", pa.Table.from_pylist([row]))])
    return tables.with_tables(
        arrays=arrays,
        grid=pa.concat_tables([tables.grid, grid]),
        chunks=pa.concat_tables([tables.chunks, chunk]),
    )

"""The order of pieces along a concatenated dimension, and the coordinate that decides it.

Pieces are ordered by the values of the dimension's index coordinate (the 1-D array named
like the dimension) when those values are distinct across pieces. Some real series repeat
the index in every file: NEMO/XIOS output writes ``time_counter = [0.]`` in each monthly
file and carries the real instant in an *auxiliary* coordinate ``time_centered`` along
``time_counter``. When the index values are duplicated or overlap, the pieces are ordered
by the first auxiliary 1-D coordinate along the dimension whose values are distinct and
increasing across pieces (those that say they are time, ``standard_name: time`` or
``axis: T``, are tried first); the duplicated index is kept as it is (as xarray's nested
combine keeps it) and reported as a warning. Nothing is ever ordered by file name: pieces
without any coordinate along the dimension stay in the order given, with a
warning. Reasons: docs/decisions.md, "Algebra".

Time coordinates are compared as instants: values in different ``units`` are re-encoded to
the earliest piece's units first (``coordinate_values``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.errors import ConcatWarning, InconsistentConcatError
from vzsql.ops.coords import (
    array_row,
    array_rows,
    attrs_of,
    is_time_units,
    numeric_positions,
    read_arrays,
)
from vzsql.ops.relations import query
from vzsql.tables import Tables
from vzsql.zarr_meta import numpy_dtype

Values = np.ndarray[Any, Any]


def piece_label(tables: Tables) -> str:
    """A short name for a piece in messages: its first file, and how many more."""
    uris = tables.sources["uri"].to_pylist()
    if not uris:
        return "(inline data)"
    return uris[0] if len(uris) == 1 else f"{uris[0]} (+{len(uris) - 1} more files)"


def label_table(labels: Sequence[str]) -> pa.Table:
    """``piece_labels(piece, label)``: each piece's position and its name in messages."""
    return pa.table(
        {"piece": pa.array(range(len(labels)), pa.int32()), "label": pa.array(labels, pa.string())}
    )


@dataclass
class CoordValues:
    """One coordinate's values in every piece (in piece order), in common time units.

    ``target_units`` is None for non-time coordinates; ``bounds`` holds the re-encoded
    values of the coordinate's bounds arrays, only when their units needed converting.
    """

    name: str
    values: list[Values]
    target_units: str | None
    bounds: dict[str, list[Values]] = field(default_factory=dict)

    def reordered(self, order: list[int]) -> CoordValues:
        return CoordValues(
            self.name,
            [self.values[i] for i in order],
            self.target_units,
            {k: [v[i] for i in order] for k, v in self.bounds.items()},
        )


@dataclass
class PieceOrder:
    """How pieces are put in order: their new order, the coordinate used, what to warn."""

    order: list[int]
    key: CoordValues | None
    warnings: list[str] = field(default_factory=list)


def time_bounds(tables: Tables, coord: str) -> list[str]:
    """Arrays holding bounds of ``coord`` (CF ``bounds`` / ``climatology``): same units."""
    attrs = attrs_of(array_row(tables, coord))
    names = set(tables.arrays["array"].to_pylist())
    prefix = coord.rsplit("/", 1)[0] + "/" if "/" in coord else ""
    out = []
    for key in ("bounds", "climatology"):
        target = attrs.get(key)
        if isinstance(target, str) and prefix + target in names:
            out.append(prefix + target)
    return out


def coordinate_values(parts: list[Tables], coord: str, labels: Sequence[str]) -> CoordValues:
    """Each piece's values of ``coord`` (and bounds), time values in one set of units.

    ``labels``: each piece's ``piece_label``, for messages (computed once by the caller).
    """
    from vzsql.ops.coords import reencode_times

    attrs = [attrs_of(r or {}) for r in array_rows(parts, coord)]
    units = [a.get("units") for a in attrs]
    values = read_arrays(parts, coord)
    if not all(is_time_units(u) for u in units):
        return CoordValues(coord, values, None)
    calendars = {str(a.get("calendar", "standard")).lower() for a in attrs}
    calendars = {"standard" if c == "gregorian" else c for c in calendars}
    if len(calendars) > 1:
        raise InconsistentConcatError(
            f"time coordinate {coord!r} uses different calendars {sorted(calendars)} across "
            f"files ({labels[0]} ...)",
            array=coord,
        )
    calendar = attrs[0].get("calendar")
    # order on instants: convert everything to the first piece's units first
    ref = str(units[0])
    dtype = np.result_type(*[v.dtype for v in values])
    converted = [
        reencode_times(v, str(u), calendar, ref, dtype, label=label)
        for v, u, label in zip(values, units, labels, strict=True)
    ]
    if len(set(units)) == 1:
        return CoordValues(coord, converted, ref)
    # the earliest piece's units are the natural choice for the combined coordinate
    starts = [float(np.min(c)) if c.size else np.inf for c in converted]
    target = str(units[int(np.argmin(starts))])
    converted = [
        reencode_times(v, str(u), calendar, target, dtype, label=label)
        for v, u, label in zip(values, units, labels, strict=True)
    ]
    bounds = {
        name: [
            reencode_times(v, str(u), calendar, target, dtype, label=label)
            for v, label, u in zip(read_arrays(parts, name), labels, units, strict=True)
        ]
        for name in time_bounds(parts[0], coord)
    }
    return CoordValues(coord, converted, target, bounds)


def order_plan(labels: pa.Table, values: list[Values]) -> list[dict[str, Any]]:
    """One row per non-empty piece, in value order, from ``queries/concat_order.sql``;
    ``labels`` is the ``label_table`` of the pieces."""
    piece_ids = np.concatenate([np.full(v.size, i, dtype=np.int32) for i, v in enumerate(values)])
    positions = np.concatenate([np.arange(v.size, dtype=np.int64) for v in values])
    numeric = np.concatenate([numeric_positions(np.asarray(v)) for v in values])
    coord_values = pa.table({"piece": piece_ids, "i": positions, "value": numeric})
    return query("concat_order", {"coord_values": coord_values, "piece_labels": labels}).to_pylist()


def ordering_problem(rows: list[dict[str, Any]], name: str) -> tuple[str, str] | None:
    """The first reason ``rows`` cannot order pieces: (piece label, message), or None.

    Gaps are not a reason here (see ``gap_problem``): a coordinate with gaps still orders.
    """
    for r in rows:
        if r["duplicates"]:
            return r["label"], f"{r['duplicates']} duplicated {name!r} value(s) inside the file"
        if r["not_increasing"]:
            return r["label"], f"{name!r} values are not increasing"
        if r["overlaps_previous"]:
            return r["label"], (
                f"{name!r} values {r['lo']}..{r['hi']} overlap or repeat those of {r['prev_label']}"
            )
    return None


def gap_problem(rows: list[dict[str, Any]], name: str) -> tuple[str, str] | None:
    """The first gap in ``rows`` (a jump of more than 1.5 typical steps), or None."""
    for r in rows:
        if r["gap_before"]:
            return r["label"], (
                f"gap in {name!r} before this file: a jump of {r['jump']} after "
                f"{r['prev_label']} where steps are {r['typical_step']} "
                "(pass allow_gaps=True to accept)"
            )
    return None


def auxiliary_coordinates(tables: Tables, dim: str, index: str | None) -> list[str]:
    """1-D numeric arrays along ``dim`` other than its index, best ordering candidates first.

    Arrays that say they are time (``standard_name: time``, ``axis: T``, CF time units) come
    first, then those some variable lists in its ``coordinates`` attribute, then the rest;
    ties by name.
    """
    listed: set[str] = set()
    rows = tables.arrays.to_pylist()
    for r in rows:
        listed.update(str(attrs_of(r).get("coordinates", "")).split())
    ranked = []
    for r in rows:
        name, dims = r["array"], list(r["dims"] or [])
        if name == index or dims != [dim]:
            continue
        try:
            if numpy_dtype(r["dtype"]).kind not in "iuf":
                continue
        except Exception:  # a dtype numpy cannot hold cannot order anything
            continue
        a = attrs_of(r)
        is_time = (
            a.get("standard_name") == "time"
            or str(a.get("axis", "")).upper() == "T"
            or is_time_units(a.get("units"))
        )
        ranked.append((not is_time, name.split("/")[-1] not in listed, name))
    return [name for *_, name in sorted(ranked)]


def choose_order(
    parts: list[Tables],
    dim: str,
    index: CoordValues | None,
    labels: Sequence[str],
    *,
    allow_gaps: bool,
) -> PieceOrder:
    """The order of ``parts`` along ``dim`` (see the module doc); raises when none is sound.

    ``labels``: each piece's ``piece_label``, for messages.

    Refused: an index coordinate that repeats or overlaps across pieces when no auxiliary
    coordinate orders them, and gaps (unless ``allow_gaps``). Kept in the order given, with
    a warning: pieces without any coordinate along ``dim``.
    """
    refusal: tuple[str, str] | None = None
    table = label_table(labels)
    if index is not None:
        rows = order_plan(table, index.values)
        refusal = ordering_problem(rows, index.name)
        if refusal is None:
            return _ordered(rows, parts, index, allow_gaps)
    candidates = auxiliary_coordinates(parts[0], dim, index.name if index else None)
    tried: list[tuple[str, str]] = []
    for name in (a for a in candidates if _in_all(parts, a)):
        aux = coordinate_values(parts, name, labels)
        rows = order_plan(table, aux.values) if all(v.size for v in aux.values) else []
        problem = ordering_problem(rows, name) if rows else ("", f"{name!r} is empty in a piece")
        if problem is not None:
            tried.append(problem)
            continue
        chosen = _ordered(rows, parts, aux, allow_gaps)
        if index is not None and refusal is not None:
            chosen.warnings.append(
                f"index coordinate {index.name!r} repeats values across pieces "
                f"({refusal[0]}: {refusal[1]}); the pieces are ordered by the auxiliary "
                f"coordinate {name!r} instead, and {index.name!r} is kept as it is, with "
                "duplicated values"
            )
        return chosen
    if refusal is not None or tried:
        label, message = refusal or tried[0]
        if tried:
            message += f"; no auxiliary coordinate along {dim!r} orders the pieces either (" + (
                "; ".join(m for _, m in tried) + ")"
            )
        else:
            message += f"; and no auxiliary coordinate along {dim!r} could order the pieces"
        raise InconsistentConcatError(
            message, source=label or None, array=index.name if index else None
        )
    message = (
        f"no coordinate along {dim!r} says in which order the pieces go; they are kept in "
        "the order given"
    )
    return PieceOrder(list(range(len(parts))), None, [message])


def _in_all(parts: list[Tables], name: str) -> bool:
    """Whether every piece holds ``name`` with the first piece's dims (one filter)."""
    first = array_row(parts[0], name)["dims"]
    return all(r is not None and r["dims"] == first for r in array_rows(parts, name)[1:])


def _ordered(
    rows: list[dict[str, Any]], parts: list[Tables], key: CoordValues, allow_gaps: bool
) -> PieceOrder:
    """The order ``rows`` give (pieces without values last); refuses gaps unless allowed."""
    gap = gap_problem(rows, key.name)
    if gap is not None and not allow_gaps:
        raise InconsistentConcatError(gap[1], source=gap[0], array=key.name)
    order = [int(r["piece"]) for r in rows]
    order += [i for i, v in enumerate(key.values) if v.size == 0]
    return PieceOrder(order, key.reordered(order))


def emit(order: PieceOrder) -> None:
    """Issue the warnings of ``order`` as ``ConcatWarning`` (a ``UserWarning``)."""
    for message in order.warnings:
        warnings.warn(message, ConcatWarning, stacklevel=4)

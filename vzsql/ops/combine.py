"""``combine``: scan many files and put them together the way ``xarray.combine_by_coords`` does.

Pieces holding the same variables are concatenated along the one dimension whose 1-D
coordinate values differ between them (ordered by those values); groups of pieces holding
different variables are then merged. ``vzsql.scan`` calls ``combine_parts`` whenever it is
given several files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import numpy as np

from vzsql.errors import InconsistentConcatError, VzsqlError
from vzsql.ops.concat import (
    concat,
    dimension_coordinate,
    piece_label,
    scalar_coordinate,
    scalar_values,
)
from vzsql.ops.coords import is_dimension_coordinate, read_arrays
from vzsql.ops.merge import merge

if TYPE_CHECKING:
    from vzsql.manifest import Manifest


def combine(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Sequence[Manifest],
    concat_dim: str | None = None,
    *,
    allow_gaps: bool = False,
    executor: Executor | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Manifest:
    """Scan ``paths`` (files, globs, URLs) or take manifests, and combine them by coordinates."""
    from vzsql.manifest import Manifest
    from vzsql.scan import scan_files
    from vzsql.sources import expand

    if (
        isinstance(paths, Sequence)
        and not isinstance(paths, str)
        and paths
        and all(isinstance(p, Manifest) for p in paths)
    ):
        manifests = list(paths)  # type: ignore[arg-type]
    else:
        items = paths if isinstance(paths, str | os.PathLike) else list(paths)  # type: ignore[arg-type]
        uris = expand(items, storage_options)  # type: ignore[arg-type]
        manifests = [
            Manifest(t)
            for t in scan_files(uris, executor=executor, storage_options=storage_options)
        ]
    if len(manifests) == 1:
        return manifests[0]  # type: ignore[return-value]
    return combine_parts(manifests, concat_dim=concat_dim, allow_gaps=allow_gaps)  # type: ignore[arg-type]


def data_variables(m: Manifest) -> frozenset[str]:
    """Arrays that are not 1-D dimension coordinates."""
    t = m.tables.arrays
    return frozenset(
        name
        for name, dims in zip(t["array"].to_pylist(), t["dims"].to_pylist(), strict=True)
        if not is_dimension_coordinate(name, dims)
    )


def combine_parts(
    manifests: list[Manifest], concat_dim: str | None = None, *, allow_gaps: bool = False
) -> Manifest:
    """Combine scanned pieces: concat within groups of equal variables, then merge groups."""
    if not manifests:
        raise InconsistentConcatError("nothing to combine: no manifests given")
    groups: dict[frozenset[str], list[Manifest]] = {}
    for m in manifests:
        groups.setdefault(data_variables(m), []).append(m)
    combined = []
    for members in groups.values():
        if len(members) == 1:
            combined.append(members[0])
            continue
        dim = concat_dim if concat_dim is not None else infer_concat_dim(members)
        combined.append(concat(members, dim, allow_gaps=allow_gaps))
    return combined[0] if len(combined) == 1 else merge(combined)


def differing_scalar_coordinates(members: list[Manifest]) -> list[str]:
    """Root 0-d arrays whose values differ between ``members``: a new dimension to stack.

    GRIB forecast runs keep their reference ``time`` as a scalar coordinate; runs of one
    model are combined by stacking along it (ordered by value, as ``concat`` does).
    """
    first = members[0].tables
    names = [
        name
        for name, dims in zip(
            first.arrays["array"].to_pylist(), first.arrays["dims"].to_pylist(), strict=True
        )
        if not dims and "/" not in name
    ]
    out = []
    for name in names:
        if any(scalar_coordinate(m.tables, name) != name for m in members):
            continue
        values = scalar_values([m.tables for m in members], name)
        if np.unique(values).size > 1:
            out.append(name)
    return out


def differing_auxiliary_coordinate(
    members: list[Manifest], dims: list[str]
) -> tuple[str, str] | None:
    """(dim, array): a 1-D auxiliary coordinate along ``dim`` whose values differ between
    ``members`` (NEMO's ``time_centered`` along ``time_counter``), for a helpful refusal."""
    from vzsql.ops.ordering import auxiliary_coordinates

    first = members[0].tables
    for dim in dims:
        for aux in auxiliary_coordinates(first, dim, dimension_coordinate(first, dim)):
            try:
                ref, *others = read_arrays([m.tables for m in members], aux)
                if any(not np.array_equal(o, ref) for o in others):
                    return dim, aux
            except VzsqlError:  # absent or unreadable in a piece: no hint from it
                continue
    return None


def infer_concat_dim(members: list[Manifest]) -> str:
    """The one dimension whose coordinate values differ between ``members``."""
    first = members[0].tables
    dims = sorted({d for ds in first.arrays["dims"].to_pylist() for d in (ds or [])})
    differing = []
    for dim in dims:
        coord = dimension_coordinate(first, dim)
        if coord is None or any(dimension_coordinate(m.tables, dim) != coord for m in members):
            continue
        # the first two pieces usually tell the concatenated dimension already; reading its
        # coordinate from every file (one open each) is left to concat, which needs it
        probe = members[:2] if len(members) > 2 else members
        ref, *others = read_arrays([m.tables for m in probe], coord)
        if len(probe) < len(members) and not any(_differs(o, ref) for o in others):
            ref, *others = read_arrays([m.tables for m in members], coord)
        if any(_differs(o, ref) for o in others):
            differing.append(dim)
    if len(differing) == 1:
        return differing[0]
    labels = ", ".join(piece_label(m.tables) for m in members[:3])
    if not differing:
        scalars = differing_scalar_coordinates(members)
        if len(scalars) == 1:
            return scalars[0]
        if scalars:
            raise InconsistentConcatError(
                f"cannot combine: scalar coordinates {scalars} all differ between files; "
                f"give concat_dim to stack along one of them ({labels})"
            )
        hint = differing_auxiliary_coordinate(members, dims)
        if hint is not None:
            dim, aux = hint
            raise InconsistentConcatError(
                f"cannot combine by coordinates: the index coordinate of {dim!r} is the same in "
                f"every file, but the auxiliary coordinate {aux!r} along it differs; pass "
                f"concat_dim={dim!r} to concatenate along {dim!r} ordered by {aux!r} "
                f"({labels})",
                source=piece_label(members[1].tables),
            )
        raise InconsistentConcatError(
            f"cannot combine: {len(members)} files hold the same variables and identical "
            f"coordinates (the same file given twice?): {labels}",
            source=piece_label(members[1].tables),
        )
    raise InconsistentConcatError(
        f"cannot combine: coordinates differ along several dimensions {differing}; "
        f"give concat_dim ({labels})"
    )


def _differs(values: np.ndarray[Any, Any], ref: np.ndarray[Any, Any]) -> bool:
    """Whether coordinate ``values`` of a piece differ from the first piece's ``ref``."""
    return values.shape != ref.shape or not np.array_equal(
        values, ref, equal_nan=ref.dtype.kind == "f"
    )

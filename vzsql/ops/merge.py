"""``merge``: put different variables that share dimensions into one manifest.

Pieces are unioned (sources deduplicated by URI, renumbered). A dimension with different
lengths in different pieces is an error (``queries/merge_dim_conflicts.sql``). An array
present in several pieces (typically the coordinates every file carries) is kept once if
the pieces agree on its metadata and its values: identical chunk references are accepted
without reading; otherwise the decoded values are compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.compute as pc

from vzsql.errors import InconsistentConcatError
from vzsql.ops.concat import describe_pieces, raise_problems
from vzsql.ops.coords import read_array
from vzsql.ops.relations import conform_all, query, union_sources
from vzsql.tables import Tables

if TYPE_CHECKING:
    from vzsql.manifest import Manifest


def merge(manifests: Sequence[Manifest]) -> Manifest:
    """One manifest holding the arrays of all ``manifests`` (see the module doc)."""
    from vzsql.manifest import Manifest

    return Manifest(merge_tables([m.tables for m in manifests]))


def merge_tables(parts: list[Tables]) -> Tables:
    if not parts:
        raise InconsistentConcatError("nothing to merge: no manifests given")
    if len(parts) == 1:
        return parts[0]
    pieces = describe_pieces(parts)
    conflicts = query("merge_dim_conflicts", pieces)
    if conflicts.num_rows:
        r = conflicts.to_pylist()[0]
        where = "; ".join(r["where_"])
        dim = f"{r['grp']}/{r['dim']}" if r["grp"] else r["dim"]
        raise InconsistentConcatError(
            f"dimension {dim!r} has different lengths {r['lengths']}: {where}"
        )
    raise_problems(query("checks/piece_disagreement", pieces, {"dim": None}), "merge")
    shared = query("merge_shared_arrays", pieces)
    for r in shared.filter(pc.invert(shared["identical"])).to_pylist():
        mine = read_array(parts[r["piece"]], r["array"])
        first = read_array(parts[r["first_piece"]], r["array"])
        if mine.shape != first.shape or not np.array_equal(
            mine, first, equal_nan=mine.dtype.kind in "fc"
        ):
            raise InconsistentConcatError(
                f"array has different values here than in {r['first_label']}",
                source=r["label"],
                array=r["array"],
            )
    sources, chunks = union_sources(pieces)
    pieces["piece_chunks"] = chunks
    offsets = query("concat_offsets", pieces, {"dim": None})
    inputs = {**pieces, "offsets": offsets}
    return conform_all(
        {
            "sources": sources,
            "arrays": query("concat_arrays", inputs),
            "grid": query("concat_grid", inputs),
            "chunks": query("concat_chunks", inputs),
            "groups": query("merge_groups", pieces),
        }
    )

"""Pieces about to be concatenated, stacked or merged, described and compared.

Every manifest table of every piece stacked into one ``piece_<table>`` relation, each
piece's label for messages, and the checks that pieces agree (dtype, codecs, fill value,
dims, CF packing, chunk grids outside the concatenated dimension) and that no file is
given twice. These relations hold a few rows per piece: thousands of pieces cost
milliseconds here; their chunk rows are put together by ``vzsql.ops.piece_chunks``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.codecs.padded import CODEC_NAME
from vzsql.errors import InconsistentConcatError
from vzsql.ops.ordering import label_table, piece_label
from vzsql.ops.relations import query, stack_pieces
from vzsql.tables import TABLE_NAMES, Tables

_MAX_LISTED = 8
# the per-piece tables concat and stack describe in SQL; chunk rows never go through SQL
# there (vzsql.ops.piece_chunks)
SMALL_TABLES = ("sources", "arrays", "grid", "groups")


def codecs_key(codecs: str | None) -> str:
    """Codec pipeline text for comparing pieces: levels and padding shapes do not matter."""
    out = []
    pipeline: list[dict[str, Any]] = json.loads(codecs) if codecs else [{"name": "bytes"}]
    for c in pipeline:
        name = "bytes" if c.get("name") == CODEC_NAME else c.get("name")
        config = {
            k: v
            for k, v in (c.get("configuration") or {}).items()
            if k not in ("level", "clevel", "chunk_shapes", "acceleration")
        }
        out.append({"name": name, "configuration": config})
    return json.dumps(out, sort_keys=True)


def describe_pieces(
    parts: Sequence[Tables], names: Sequence[str] = TABLE_NAMES
) -> dict[str, pa.Table]:
    """The ``piece_*`` tables (of ``names``) plus ``piece_labels`` and the comparison columns
    of arrays."""
    pieces = stack_pieces(parts, names)
    labels = (
        labels_of(pieces["piece_sources"], len(parts))
        if "sources" in names
        else [piece_label(p) for p in parts]
    )
    arrays = pieces["piece_arrays"]
    codecs = arrays["codecs"].to_pylist()
    keys = {c: codecs_key(c) for c in set(codecs)}  # a few distinct pipelines: parse each once
    arrays = arrays.append_column("codecs_key", pa.array([keys[c] for c in codecs], pa.string()))
    arrays = arrays.append_column("label", pa.array(labels, pa.string()).take(arrays["piece"]))
    pieces["piece_arrays"] = arrays
    pieces["piece_labels"] = piece_labels(parts, labels)
    return pieces


def labels_of(piece_sources: pa.Table, n_pieces: int) -> list[str]:
    """``piece_label`` of every piece from the stacked ``piece_sources`` (one pass, not a
    table conversion per piece)."""
    uris = piece_sources["uri"].to_pylist()
    counts = np.bincount(piece_sources["piece"].to_numpy(), minlength=n_pieces).tolist()
    firsts = (np.cumsum(counts) - counts).tolist()
    return [
        "(inline data)"
        if n == 0
        else uris[first]
        if n == 1
        else f"{uris[first]} (+{n - 1} more files)"
        for n, first in zip(counts, firsts, strict=True)
    ]


def piece_labels(parts: Sequence[Tables], labels: list[str] | None = None) -> pa.Table:
    """``piece_labels(piece, label)``: each piece's position and its name in messages."""
    return label_table(labels if labels is not None else [piece_label(p) for p in parts])


def check_pieces(parts: Sequence[Tables], dim: str | None) -> pa.Table:
    """Disagreements between pieces (one row per array, piece and property); see the query."""
    return piece_problems(describe_pieces(parts), dim)


def piece_problems(pieces: dict[str, pa.Table], dim: str | None) -> pa.Table:
    """``checks/piece_disagreement`` rows, plus (along ``dim``) chunk grids that differ
    outside the concatenated dimension (``checks/piece_grid_disagreement``)."""
    problems = piece_disagreement(pieces, dim)
    if dim is None:
        return problems
    grids = query("checks/piece_grid_disagreement", pieces, {"dim": dim})
    return pa.concat_tables([problems, grids.cast(problems.schema)])


def piece_disagreement(pieces: dict[str, pa.Table], dim: str | None) -> pa.Table:
    """``checks/piece_disagreement`` over ``pieces``, run first over each array's distinct
    variants (``concat_piece_variants``): thousands of pieces of one series hold a variant
    or two, and when the variants agree the pieces do. Only if they do not (or an array is
    missing from a piece) is the check run over every piece, for the exact rows."""
    arrays, labels = pieces["piece_arrays"], pieces["piece_labels"]
    small = {"piece_arrays": arrays, "piece_labels": labels}
    variants = query("concat_piece_variants", small, {"dim": dim})
    if variants.num_rows < arrays.num_rows and not pc.any(variants["incomplete"]).as_py():
        reps = labels.filter(pc.is_in(labels["piece"], pc.unique(variants["piece"])))
        problems = query(
            "checks/piece_disagreement",
            {"piece_arrays": variants.drop_columns(["incomplete"]), "piece_labels": reps},
            {"dim": dim},
        )
        if problems.num_rows == 0:
            return problems
    return query("checks/piece_disagreement", small, {"dim": dim})


def raise_problems(problems: pa.Table, what: str) -> None:
    """Raise ``InconsistentConcatError`` listing ``problems`` rows (if any)."""
    if problems.num_rows == 0:
        return
    rows = problems.to_pylist()
    lines = [f"{r['array']}: {r['detail']} [{r['source']}]" for r in rows[:_MAX_LISTED]]
    more = f"\n  ... and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    first = rows[0]
    raise InconsistentConcatError(
        f"cannot {what}: pieces disagree:\n  " + "\n  ".join(lines) + more,
        source=first["source"],
        array=first["array"],
    )


def refuse_same_file(pieces: dict[str, pa.Table]) -> None:
    """Raise if one file is referenced by more than one piece (given twice)."""
    same = query("concat_same_file", pieces)
    if same.num_rows:
        row = same.to_pylist()[0]
        raise InconsistentConcatError(
            f"the same file is given {row['n']} times: pieces {row['pieces']}", source=row["uri"]
        )

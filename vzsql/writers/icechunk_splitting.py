"""Icechunk manifest splitting for large arrays of a repository vzsql creates.

Without splitting, Icechunk keeps one manifest per array, and every commit that adds
references to an array rewrites its whole manifest: an export split into several commits
(``max_refs_per_commit``) then re-reads and re-writes the array's earlier references at
every part, and holds them in memory. Splitting each large array's manifest along its
first dimension into pieces of about ``refs_per_manifest`` chunks keeps a commit to the
pieces its references fall in. Measured on a synthetic 20M-reference export in commits of
2.5M (benchmarks/synthetic.py): 191 s, +5.05 GB without splitting; 53 s, +3.79 GB with
pieces of 1M references.

Only repositories vzsql creates are configured (an existing repository keeps its owner's
configuration). Readers need nothing: splitting is part of the repository's config.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pyarrow as pa

# chunk references per manifest piece; Icechunk's default is one manifest per array
REFS_PER_MANIFEST = 1_000_000


def chunks_per_dim(grid: pa.Table) -> dict[str, list[int]]:
    """Number of chunks along each dimension of every array (from the ``grid`` table)."""
    counts = grid.group_by(["array", "dim"]).aggregate([("chunk", "count")]).to_pylist()
    out: dict[str, dict[int, int]] = {}
    for row in counts:
        out.setdefault(row["array"], {})[int(row["dim"])] = int(row["chunk_count"])
    return {a: [dims[d] for d in sorted(dims)] for a, dims in out.items()}


def split_sizes(grid: pa.Table, refs_per_manifest: int) -> dict[str, int]:
    """For each array with more than ``refs_per_manifest`` chunks: the number of chunks
    along its first dimension per manifest piece."""
    sizes: dict[str, int] = {}
    for array, counts in chunks_per_dim(grid).items():
        if not counts or math.prod(counts) <= refs_per_manifest:
            continue
        per_step = math.prod(counts[1:])
        sizes[array] = max(1, refs_per_manifest // max(per_step, 1))
    return sizes


def manifest_splitting(grid: pa.Table, refs_per_manifest: int | None) -> Any:
    """An ``icechunk.ManifestSplittingConfig`` for the large arrays, or None if none is."""
    import icechunk as ic

    if not refs_per_manifest:
        return None
    sizes = split_sizes(grid, refs_per_manifest)
    if not sizes:
        return None
    return ic.ManifestSplittingConfig.from_dict(
        {
            ic.ManifestSplitCondition.path_matches(f"^/{re.escape(array)}$"): {
                ic.ManifestSplitDimCondition.Axis(0): size
            }
            for array, size in sizes.items()
        }
    )

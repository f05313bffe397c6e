"""Relational operations on manifests: concat, combine, merge, subset, checks, stats, edits.

Every operation is SQL in the top-level ``queries/`` folder run by DuckDB over the manifest
tables; the modules here only register tables, bind parameters and compose the queries.
The functions below import their module on first use, so ``import vzsql`` stays light.
Their results keep the allow-lists of the manifests given (``Manifest.derives_allow``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vzsql.manifest import derives_allow

if TYPE_CHECKING:
    from vzsql.manifest import Manifest


@derives_allow
def concat(manifests: Sequence[Manifest], dim: str, **kwargs: Any) -> Manifest:
    """Concatenate along ``dim`` (existing) or stack along a new ``dim``: ``vzsql.ops.concat``."""
    from vzsql.ops.concat import concat as _concat

    return _concat(manifests, dim, **kwargs)


@derives_allow
def combine(paths: Any, concat_dim: str | None = None, **kwargs: Any) -> Manifest:
    """Scan and combine files by their coordinates: ``vzsql.ops.combine``."""
    from vzsql.ops.combine import combine as _combine

    return _combine(paths, concat_dim, **kwargs)


@derives_allow
def combine_parts(
    manifests: list[Manifest], concat_dim: str | None = None, **kwargs: Any
) -> Manifest:
    """Combine already scanned pieces by their coordinates: ``vzsql.ops.combine``."""
    from vzsql.ops.combine import combine_parts as _combine_parts

    return _combine_parts(manifests, concat_dim, **kwargs)


@derives_allow
def merge(manifests: Sequence[Manifest]) -> Manifest:
    """Merge manifests holding different variables on the same grid: ``vzsql.ops.merge``."""
    from vzsql.ops.merge import merge as _merge

    return _merge(manifests)


@derives_allow
def rechunk(m: Manifest, chunks: dict[str, int], **kwargs: Any) -> Manifest:
    """Split or merge uncompressed chunks by byte arithmetic: ``vzsql.ops.rechunk``."""
    from vzsql.ops.rechunk import rechunk as _rechunk

    return _rechunk(m, chunks, **kwargs)


__all__ = ["combine", "combine_parts", "concat", "merge", "rechunk"]

"""Dataframe round trip: tables edited in polars or Arrow come back as a validated manifest.

``replace`` conforms each new table to the manifest schema (``vzsql.tables.conform``: a
missing column or an uncastable type is a ``ManifestFormatError``), then runs ``check()``
strictly, so a manifest that points past the end of a file or at a missing source is
refused on the way in. ``rename_sources`` is the common edit (archive moved to a bucket),
one query (``queries/rename_sources.sql``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from vzsql.ops.relations import query
from vzsql.tables import TABLE_NAMES

if TYPE_CHECKING:
    from vzsql.manifest import Manifest


def replace(m: Manifest, *, validate: bool = True, stat: bool = True, **tables: Any) -> Manifest:
    """``m`` with the given tables replaced; validated unless ``validate=False``.

    ``stat=False`` validates without looking at the source files (e.g. before the files
    have been uploaded to the new location).
    """
    from vzsql.manifest import Manifest
    from vzsql.ops.checks import check

    unknown = set(tables) - set(TABLE_NAMES)
    if unknown:
        raise KeyError(f"no table(s) {sorted(unknown)}; tables are {', '.join(TABLE_NAMES)}")
    out = Manifest(m.tables.with_tables(**tables))
    if validate:
        check(out, strict=True, stat=stat)
    return out


def rename_sources(m: Manifest, old_prefix: str, new_prefix: str) -> Manifest:
    """``m`` with source URIs starting with ``old_prefix`` re-rooted at ``new_prefix``."""
    from vzsql.manifest import Manifest

    sources = query(
        "rename_sources", {"sources": m.tables.sources}, {"old": old_prefix, "new": new_prefix}
    )
    return Manifest(m.tables.with_tables(sources=sources))

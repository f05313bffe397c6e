"""vzsql: virtual Zarr chunk manifests as Arrow tables, every operation SQL run by DuckDB."""

from __future__ import annotations

__version__ = "0.1.0"

from vzsql.errors import (
    ChunkReadError,
    CorruptSourceError,
    ManifestFormatError,
    SourceError,
    UnsupportedFilterError,
    UnsupportedFormatError,
    UnsupportedLayoutError,
    VzsqlError,
)
from vzsql.importers.icechunk import from_icechunk
from vzsql.importers.kerchunk import from_kerchunk
from vzsql.manifest import Manifest, open_manifest
from vzsql.ops import combine, concat, merge
from vzsql.scan import scan
from vzsql.tables import Tables

__all__ = [
    "ChunkReadError",
    "CorruptSourceError",
    "Manifest",
    "ManifestFormatError",
    "SourceError",
    "Tables",
    "UnsupportedFilterError",
    "UnsupportedFormatError",
    "UnsupportedLayoutError",
    "VzsqlError",
    "__version__",
    "combine",
    "concat",
    "merge",
    "from_icechunk",
    "from_kerchunk",
    "open_manifest",
    "scan",
]

"""vzsql: virtual Zarr chunk manifests as Arrow tables, every operation SQL run by DuckDB."""

from __future__ import annotations

__version__ = "0.1.0"

from vzsql.errors import (
    CheckFailedError,
    ChunkReadError,
    ConcatWarning,
    ConcurrentWriteError,
    CorruptSourceError,
    DuplicateSourceError,
    ExportError,
    InconsistentConcatError,
    ManifestFormatError,
    QueryError,
    ReadOnlyStoreError,
    RechunkError,
    ReferenceFormatError,
    RemoteReadError,
    SourceError,
    SourceNotAllowedError,
    StaleSourceError,
    UnalignedSelectionError,
    UnsupportedDtypeError,
    UnsupportedFilterError,
    UnsupportedFormatError,
    UnsupportedLayoutError,
    VzsqlError,
)
from vzsql.importers.icechunk import from_icechunk
from vzsql.importers.kerchunk import from_kerchunk
from vzsql.manifest import Manifest, open_manifest
from vzsql.ops import combine, concat, merge, rechunk
from vzsql.scan import scan
from vzsql.tables import Tables

__all__ = [
    "CheckFailedError",
    "ChunkReadError",
    "ConcatWarning",
    "ConcurrentWriteError",
    "CorruptSourceError",
    "DuplicateSourceError",
    "ExportError",
    "InconsistentConcatError",
    "Manifest",
    "ManifestFormatError",
    "ManifestStore",
    "QueryError",
    "ReadOnlyStoreError",
    "RechunkError",
    "ReferenceFormatError",
    "RemoteReadError",
    "SourceError",
    "SourceNotAllowedError",
    "StaleSourceError",
    "Tables",
    "UnalignedSelectionError",
    "UnsupportedDtypeError",
    "UnsupportedFilterError",
    "UnsupportedFormatError",
    "UnsupportedLayoutError",
    "VzsqlError",
    "__version__",
    "combine",
    "concat",
    "from_icechunk",
    "from_kerchunk",
    "merge",
    "open_manifest",
    "open_manifest_dataset",
    "rechunk",
    "scan",
]


def __getattr__(name: str) -> object:
    """Import the zarr store and xarray reader only when used (they load zarr and xarray)."""
    if name == "ManifestStore":
        from vzsql.store import ManifestStore

        return ManifestStore
    if name == "open_manifest_dataset":
        from vzsql.xarray_backend import open_manifest_dataset

        return open_manifest_dataset
    raise AttributeError(f"module 'vzsql' has no attribute {name!r}")

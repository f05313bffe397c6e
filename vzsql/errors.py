"""Typed errors: every failure vzsql reports names the file, array and chunk involved.

Library exceptions (h5py, eccodes, DuckDB, obstore) are caught at the layer that knows the
context and re-raised as one of these with ``raise ... from e``.
"""

from __future__ import annotations

from collections.abc import Sequence


class VzsqlError(Exception):
    """Base of all vzsql errors. ``source``, ``array`` and ``chunk`` say where it happened."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        array: str | None = None,
        chunk: Sequence[int] | None = None,
    ) -> None:
        self.source = source
        self.array = array
        self.chunk = tuple(chunk) if chunk is not None else None
        where = []
        if source is not None:
            where.append(f"file {source!r}")
        if array is not None:
            where.append(f"array {array!r}")
        if chunk is not None:
            where.append(f"chunk {list(self.chunk or ())}")
        self.detail = message
        super().__init__(f"{message} ({', '.join(where)})" if where else message)

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with every field (file, array, chunk, subclass extras such as
        ``filter_id``), so an error raised in a scanner child process arrives whole."""
        return (_rebuilt, (type(self), self.args, dict(self.__dict__)))


def _rebuilt(
    cls: type[VzsqlError], args: tuple[object, ...], state: dict[str, object]
) -> VzsqlError:
    """A ``VzsqlError`` of class ``cls`` with ``args`` and attributes ``state`` (unpickling)."""
    e = cls.__new__(cls)
    e.args = args
    e.__dict__.update(state)
    return e


class SourceError(VzsqlError):
    """A source file cannot be opened, is missing, truncated or not of the expected format."""


class CorruptSourceError(SourceError):
    """A source file is damaged: truncated, bit-flipped, or structurally invalid."""


class UnsupportedFormatError(SourceError):
    """No scanner recognises the file (a foreign format)."""


class UnsupportedFilterError(VzsqlError):
    """An HDF5 filter has no Zarr v3 codec vzsql can express; ``filter_id`` names it."""

    def __init__(self, message: str, *, filter_id: int, **where: object) -> None:
        self.filter_id = filter_id
        super().__init__(message, **where)  # type: ignore[arg-type]


class UnsupportedLayoutError(VzsqlError):
    """A storage layout (e.g. HDF5 virtual datasets) that cannot be referenced chunk by chunk."""


class ManifestFormatError(VzsqlError):
    """A saved manifest or table does not match the manifest schema or format version."""


class ChunkReadError(VzsqlError):
    """Reading a referenced byte range failed (offset past end of file, missing object...)."""


class StaleSourceError(VzsqlError):
    """A source changed (size, mtime or etag) since it was scanned."""


class InconsistentConcatError(VzsqlError):
    """Pieces of a concatenation or merge disagree (dtype, codecs, units, overlapping coords...)."""


class UnalignedSelectionError(VzsqlError):
    """A subset does not fall on chunk boundaries and cannot be expressed by byte arithmetic."""


class QueryError(VzsqlError):
    """A user query or parameter was rejected by DuckDB."""


class ExportError(VzsqlError):
    """Writing an export failed; the destination was left as it was."""


class CheckFailedError(VzsqlError):
    """``check(strict=True)`` found problems; ``problems`` is the pyarrow table of them."""

    def __init__(self, message: str, problems: object) -> None:
        self.problems = problems
        super().__init__(message)


class UnsupportedDtypeError(VzsqlError):
    """A source data type with no Zarr v3 equivalent vzsql can reference (e.g. HDF5 compound)."""


class ReferenceFormatError(VzsqlError):
    """A kerchunk reference set is malformed, points outside its files, or cannot be imported."""


class ReadOnlyStoreError(VzsqlError, ValueError):
    """A write to a read-only ``ManifestStore`` (a ``ValueError`` too, as zarr's stores raise)."""


class ConcurrentWriteError(ExportError):
    """Another writer committed to the same Icechunk branch first; this write was not committed."""


class DuplicateSourceError(ExportError):
    """An append names source files the destination already references (data would repeat)."""


class RemoteReadError(SourceError):
    """Ranged reads of a remote source kept failing or timing out after the allowed retries."""


class SourceNotAllowedError(SourceError):
    """A manifest or reference set points at a location the user did not allow (see allowlist)."""


class ConcatWarning(UserWarning):
    """A concatenation went ahead but did something worth knowing (e.g. ordered pieces by an
    auxiliary coordinate because the index coordinate repeats; kept pieces in the order given)."""


class RechunkError(VzsqlError):
    """Chunks cannot be split or merged by byte arithmetic (compressed, not contiguous...)."""


class StorageError(VzsqlError):
    """DuckDB could not hold a manifest's chunk rows (``storage="duckdb"``), e.g. a memory
    limit too small for DuckDB to work within."""

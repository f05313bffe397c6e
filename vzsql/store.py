"""``ManifestStore``: a read-only zarr v3 ``Store`` serving a manifest's arrays.

Metadata keys (``zarr.json`` of every group and array) come from ``vzsql.zarr_meta``;
chunk keys (``grp/air/c/0/1/2``) come from the ``chunks`` table: inline chunks are served
from their ``data`` bytes, referenced chunks are read from ``(uri, offset, length)`` of
their source through a ``CoalescingRangeReader``, which merges the concurrent per-chunk
reads zarr makes into one read per file. A chunk without a row does not exist, and zarr
fills it with the array's fill value.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import zarr
from zarr.abc.store import (
    ByteRequest,
    OffsetByteRequest,
    RangeByteRequest,
    Store,
    SuffixByteRequest,
)

from vzsql.byte_ranges import CoalescingRangeReader, ReadStats
from vzsql.chunk_index import INLINE, ArrayChunks, ChunkIndex
from vzsql.errors import ChunkReadError, ReadOnlyStoreError
from vzsql.tables import Tables
from vzsql.zarr_meta import ZARR_JSON, hierarchy

if TYPE_CHECKING:
    from zarr.core.buffer import Buffer, BufferPrototype

    from vzsql.manifest import Manifest

# vzsql serves variable-length chunk grids as Zarr's rectilinear grid
zarr.config.set({"array.rectilinear_chunks": True})


def _resolve_range(byte_range: ByteRequest | None, size: int) -> tuple[int, int]:
    """``(start, stop)`` within a value of ``size`` bytes, as zarr's stores interpret it."""
    if byte_range is None:
        return 0, size
    if isinstance(byte_range, RangeByteRequest):
        return min(byte_range.start, size), min(max(byte_range.end, byte_range.start), size)
    if isinstance(byte_range, OffsetByteRequest):
        return min(byte_range.offset, size), size
    if isinstance(byte_range, SuffixByteRequest):
        return max(0, size - byte_range.suffix), size
    raise ValueError(f"Unexpected byte_range, got {byte_range}.")


class ManifestStore(Store):
    """Read-only zarr v3 store over a ``Manifest`` (or ``Tables``).

    ``storage_options`` configure access to the sources: for S3, obstore's names
    (``endpoint``, ``access_key_id``, ``secret_access_key``, ``region``, ...) or s3fs's
    (``key``, ``secret``, ``endpoint_url``, ``client_kwargs``); unset values come from the
    ``AWS_*`` environment variables.
    """

    supports_writes: bool = False
    supports_deletes: bool = False
    supports_listing: bool = True

    def __init__(
        self, manifest: Manifest | Tables, *, read_only: bool = True, **storage_options: Any
    ) -> None:
        if not read_only:
            raise ReadOnlyStoreError(
                "store was opened in read-only mode and does not support writing: "
                "a ManifestStore is always read-only"
            )
        super().__init__(read_only=True)
        tables = manifest if isinstance(manifest, Tables) else manifest.tables
        self._tables = tables
        self.storage_options = dict(storage_options)
        self.allow = getattr(manifest, "allow", None)  # vzsql.allowlist (Manifest only)
        self._setup()

    def _setup(self) -> None:
        tables = self._tables
        self._docs: dict[str, bytes] = {
            k: json.dumps(v).encode() for k, v in hierarchy(tables).items()
        }
        self._chunks = ChunkIndex(tables)
        self._uris: dict[int, str] = dict(
            zip(
                tables.sources["source_id"].to_pylist(),
                tables.sources["uri"].to_pylist(),
                strict=True,
            )
        )
        self.reader = CoalescingRangeReader(self.storage_options, allow=self.allow)

    # -- identity -------------------------------------------------------------------------
    @property
    def tables(self) -> Tables:
        return self._tables

    @property
    def stats(self) -> ReadStats:
        """Counts of chunk requests and underlying reads (see ``CoalescingRangeReader``)."""
        return self.reader.stats

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ManifestStore):
            return False
        if self.storage_options != other.storage_options:
            return False
        if self._tables is other._tables:
            return True
        return all(
            a.equals(b)
            for a, b in zip(
                self._tables.as_dict().values(), other._tables.as_dict().values(), strict=True
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"ManifestStore({len(self._chunks.arrays())} arrays, "
            f"{self._tables.chunks.num_rows} chunks, {len(self._uris)} sources)"
        )

    def __getstate__(self) -> dict[str, Any]:
        return {
            "tables": self._tables.as_dict(),
            "storage_options": self.storage_options,
            "is_open": self._is_open,
            "allow": self.allow,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        Store.__init__(self, read_only=True)
        self._tables = Tables(**state["tables"])
        self.storage_options = state["storage_options"]
        self._is_open = state["is_open"]
        self.allow = state.get("allow")
        self._setup()

    # -- reading --------------------------------------------------------------------------
    def _locate_chunk(self, key: str) -> tuple[str, tuple[int, ...]] | None:
        """``(array, chunk index)`` of a chunk key, or None if it is no chunk key."""
        parts = key.split("/")
        for i, part in enumerate(parts):
            if part != "c":
                continue
            array = "/".join(parts[:i])
            ndim = self._chunks.ndim(array)
            rest = parts[i + 1 :]
            if ndim is None or len(rest) != ndim:
                continue
            if all(p.isdigit() and p.isascii() for p in rest):
                return array, tuple(int(p) for p in rest)
        return None

    def _find(self, key: str) -> tuple[str, tuple[int, ...], ArrayChunks, int] | None:
        """``(array, chunk index, its ArrayChunks, row position)`` of a stored chunk key."""
        found = self._locate_chunk(key)
        if found is None:
            return None
        array, index = found
        chunks = self._chunks.get(array)
        pos = chunks.find(index) if chunks is not None else None
        if chunks is None or pos is None:
            return None
        return array, index, chunks, pos

    async def get(
        self,
        key: str,
        prototype: BufferPrototype,
        byte_range: ByteRequest | None = None,
    ) -> Buffer | None:
        if byte_range is not None and not isinstance(
            byte_range, RangeByteRequest | OffsetByteRequest | SuffixByteRequest
        ):
            raise ValueError(f"Unexpected byte_range, got {byte_range}.")
        doc = self._docs.get(key)
        if doc is not None:
            lo, hi = _resolve_range(byte_range, len(doc))
            return prototype.buffer.from_bytes(doc[lo:hi])
        found = self._find(key)
        if found is None:
            return None
        array, index, chunks, pos = found
        sid = int(chunks.source_id[pos])
        if sid == INLINE:
            data = chunks.data[pos].as_py()
            if data is None:
                return None
            lo, hi = _resolve_range(byte_range, len(data))
            return prototype.buffer.from_bytes(data[lo:hi])
        uri = self._uris.get(sid)
        if uri is None:
            raise ChunkReadError(
                f"chunk refers to source_id {sid}, which is not in the sources table",
                array=array,
                chunk=index,
            )
        offset = int(chunks.offset[pos])
        lo, hi = _resolve_range(byte_range, int(chunks.length[pos]))
        data = await self.reader.read(uri, offset + lo, offset + hi, array=array, chunk=index)
        return prototype.buffer.from_bytes(data)

    async def get_partial_values(
        self,
        prototype: BufferPrototype,
        key_ranges: Iterable[tuple[str, ByteRequest | None]],
    ) -> list[Buffer | None]:
        import asyncio

        return list(await asyncio.gather(*(self.get(k, prototype, r) for k, r in list(key_ranges))))

    async def exists(self, key: str) -> bool:
        if key in self._docs:
            return True
        found = self._find(key)
        if found is None:
            return False
        _, _, chunks, pos = found
        return not (int(chunks.source_id[pos]) == INLINE and not chunks.data[pos].is_valid)

    async def getsize(self, key: str) -> int:
        doc = self._docs.get(key)
        if doc is not None:
            return len(doc)
        found = self._find(key)
        if found is None:
            raise FileNotFoundError(key)
        _, _, chunks, pos = found
        if int(chunks.source_id[pos]) == INLINE:
            data = chunks.data[pos]
            if not data.is_valid:
                raise FileNotFoundError(key)
            return len(data.as_py())
        return int(chunks.length[pos])

    # -- refusing writes ------------------------------------------------------------------
    def _refuse(self, what: str, key: str) -> ReadOnlyStoreError:
        return ReadOnlyStoreError(
            "store was opened in read-only mode and does not support writing: "
            f"a ManifestStore serves a manifest and cannot {what} {key!r}; "
            "change the manifest (vzsql operations) and open a new store"
        )

    async def set(self, key: str, value: Buffer) -> None:
        raise self._refuse("set", key)

    async def set_if_not_exists(self, key: str, value: Buffer) -> None:
        raise self._refuse("set", key)

    async def delete(self, key: str) -> None:
        raise self._refuse("delete", key)

    async def clear(self) -> None:
        raise self._refuse("clear", "")

    # -- listing --------------------------------------------------------------------------
    def _listed(self, array: str) -> np.ndarray | None:
        """Which stored chunks of ``array`` exist as keys (inline rows without bytes do not);
        None when all do."""
        chunks = self._chunks.get(array)
        if chunks is None or not (chunks.source_id == INLINE).any():
            return None
        return chunks.data.is_valid().to_numpy(zero_copy_only=False) | (chunks.source_id != INLINE)

    def _chunk_keys(self, array: str) -> list[str]:
        chunks = self._chunks.get(array)
        if chunks is None or not len(chunks):
            return []
        keys = chunks.keys(f"{array}/")
        listed = self._listed(array)
        if listed is not None:
            keys = keys.filter(pa.array(listed))
        return keys.to_pylist()

    def _has_chunk_keys(self, array: str) -> bool:
        chunks = self._chunks.get(array)
        if chunks is None or not len(chunks):
            return False
        listed = self._listed(array)
        return listed is None or bool(listed.any())

    async def list(self) -> AsyncIterator[str]:
        for key in self._docs:
            yield key
        for array in self._chunks.arrays():
            for key in self._chunk_keys(array):
                yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        for key in self._docs:
            if key.startswith(prefix):
                yield key
        for array in self._chunks.arrays():
            base = f"{array}/c"
            if not (base.startswith(prefix) or prefix.startswith(base)):
                continue
            for key in self._chunk_keys(array):
                if key.startswith(prefix):
                    yield key

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        prefix = prefix.rstrip("/")
        base = f"{prefix}/" if prefix else ""
        seen: builtins.set[str] = builtins.set()
        for key in self._docs:
            if key.startswith(base):
                seen.add(key[len(base) :].split("/")[0])
        for array in self._chunks.arrays():
            chunk_dir = f"{array}/c"
            if chunk_dir.startswith(base) and not base.startswith(chunk_dir + "/"):
                if self._has_chunk_keys(array):
                    seen.add(chunk_dir[len(base) :].split("/")[0])
            elif base.startswith(chunk_dir + "/"):
                seen.update(self._chunk_children(array, base[len(chunk_dir) + 1 :]))
        for name in sorted(seen):
            yield name

    def _chunk_children(self, array: str, sub: str) -> frozenset[str]:
        """Names directly below ``array/c/<sub>`` (``sub`` like ``"0/"``)."""
        chunks = self._chunks.get(array)
        if chunks is None or not len(chunks):
            return frozenset()
        head = [p for p in sub.split("/") if p]
        if not all(p.isdigit() for p in head) or len(head) >= chunks.ndim:
            return frozenset()
        idx = chunks.indices()
        mask = np.ones(len(idx), dtype=bool)
        for d, p in enumerate(head):
            mask &= idx[:, d] == int(p)
        return frozenset(str(v) for v in np.unique(idx[mask, len(head)]).tolist())

    # -- conveniences ---------------------------------------------------------------------
    def metadata(self, path: str = "") -> dict[str, Any]:
        """The ``zarr.json`` document of the node at ``path`` (``""`` for the root)."""
        key = f"{path}/{ZARR_JSON}" if path else ZARR_JSON
        return json.loads(self._docs[key])  # type: ignore[no-any-return]

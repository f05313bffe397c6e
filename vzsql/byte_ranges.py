"""Coalescing byte-range reads from source files (local or S3) through obstore.

zarr reads an array by issuing one ``Store.get`` per chunk, concurrently. Chunks of a
legacy file usually sit next to each other, so reading them one request each wastes round
trips. ``CoalescingRangeReader.read`` therefore does not read at once: it queues the
request, lets the event loop run until no further request arrives (the other chunk tasks
of the same ``gather``), then groups the queue by file, merges adjacent or nearby ranges
and issues one ``obstore.get_ranges_async`` call per file. Each caller gets its own slice.

Failures become ``ChunkReadError`` naming file, array and chunk; a range past the end of
its file is detected from the length of what came back (obstore returns short reads).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from vzsql.allowlist import check_read
from vzsql.errors import ChunkReadError
from vzsql.sources import local_path

# ranges of one file closer than this are read as one block (the bytes between are dropped)
DEFAULT_MAX_GAP = 256 * 1024
# a merged block is split once it would grow beyond this
DEFAULT_MAX_BLOCK = 32 * 1024 * 1024
# event-loop iterations a batch may wait for further requests before it is read
MAX_SETTLE_ROUNDS = 8

# s3fs / fsspec option names -> obstore S3Config names
_S3FS_ALIASES = {
    "key": "access_key_id",
    "secret": "secret_access_key",
    "token": "session_token",
    "endpoint_url": "endpoint",
    "region_name": "region",
    "aws_access_key_id": "access_key_id",
    "aws_secret_access_key": "secret_access_key",
    "aws_session_token": "session_token",
    "aws_endpoint_url": "endpoint",
    "aws_region": "region",
}
_S3_CONFIG_KEYS = {
    "access_key_id",
    "secret_access_key",
    "session_token",
    "endpoint",
    "region",
    "default_region",
    "skip_signature",
    "virtual_hosted_style_request",
    "request_payer",
    "unsigned_payload",
    "imdsv1_fallback",
    "metadata_endpoint",
    "container_credentials_relative_uri",
    "web_identity_token_file",
    "role_arn",
    "role_session_name",
    "sts_endpoint",
}


@dataclass
class ReadStats:
    """Counts kept by a reader, so tests and benchmarks can see coalescing at work."""

    requests: int = 0  # ranges asked for by callers
    reads: int = 0  # get_ranges calls (one per file per batch)
    blocks: int = 0  # merged ranges fetched
    bytes: int = 0  # bytes fetched, gaps included

    def reset(self) -> None:
        self.requests = self.reads = self.blocks = self.bytes = 0


@dataclass
class _Request:
    uri: str
    start: int
    end: int
    array: str | None
    chunk: tuple[int, ...] | None
    future: asyncio.Future[bytes]


@dataclass
class _Batch:
    requests: list[_Request] = field(default_factory=list)


def s3_config(storage_options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """obstore ``S3Store`` config and client options from s3fs- or obstore-style options.

    Accepts obstore's names (``endpoint``, ``access_key_id``, ...), s3fs's (``key``,
    ``secret``, ``endpoint_url``, ``client_kwargs={"endpoint_url", "region_name"}``,
    ``anon``) and ``client_options``; anything else (fsspec-only tuning) is ignored.
    Unset values fall back to ``AWS_*`` environment variables, which obstore reads.
    """
    config: dict[str, Any] = {}
    client: dict[str, Any] = dict(storage_options.get("client_options") or {})
    flat = dict(storage_options)
    for k, v in (storage_options.get("client_kwargs") or {}).items():
        flat.setdefault(k, v)
    for k, v in flat.items():
        if v is None:
            continue
        name = _S3FS_ALIASES.get(k, k)
        if name in _S3_CONFIG_KEYS:
            config[name] = v
        elif k == "anon" and v:
            config["skip_signature"] = True
    endpoint = config.get("endpoint") or os.environ.get("AWS_ENDPOINT_URL_S3")
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT")
    if endpoint and str(endpoint).startswith("http://"):
        client.setdefault("allow_http", True)
    if endpoint and "endpoint" not in config:
        config["endpoint"] = endpoint
    return config, client


def merge_ranges(
    starts: np.ndarray, ends: np.ndarray, max_gap: int, max_block: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge ranges closer than ``max_gap`` into blocks of about ``max_block`` at most.

    Returns ``(block_starts, block_ends, block_of)``: ``block_of[i]`` is the block that
    holds range ``i``. Sorted by start, a new block begins where a start lies beyond the
    running maximum end plus the gap (vectorised), or, inside such a run, at the first
    start ``max_block`` or more past the current block's start where no earlier range
    reaches over it (so blocks never overlap). The size splits are found one block at a
    time with ``searchsorted``: a loop over merged blocks of ``max_block`` bytes, not ranges.
    """
    n = len(starts)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    order = np.argsort(starts, kind="stable")
    s = starts[order]
    e = ends[order]
    reach = np.maximum.accumulate(e)
    new = np.ones(n, dtype=bool)
    new[1:] = s[1:] > reach[:-1] + max_gap
    limit = max(1, max_block)
    runs = np.flatnonzero(new)
    run_ends = np.append(runs[1:], n)
    long_runs = s[run_ends - 1] - s[runs] >= limit
    if long_runs.any():
        # next_ok[k]: first position >= k where a block may begin (nothing reaches over it)
        ok = np.ones(n, dtype=bool)
        ok[1:] = s[1:] >= reach[:-1]
        next_ok = np.minimum.accumulate(np.where(ok, np.arange(n), n)[::-1])[::-1]
        for first, stop in zip(runs[long_runs].tolist(), run_ends[long_runs].tolist(), strict=True):
            k = first
            while True:
                k = int(np.searchsorted(s, s[k] + limit, side="left"))
                k = int(next_ok[k]) if k < stop else stop
                if k >= stop:
                    break
                new[k] = True
    block2 = np.cumsum(new) - 1
    nblocks = int(block2[-1]) + 1
    bstart = np.full(nblocks, np.iinfo(np.int64).max, dtype=np.int64)
    bend = np.zeros(nblocks, dtype=np.int64)
    np.minimum.at(bstart, block2, s)
    np.maximum.at(bend, block2, e)
    block_of = np.empty(n, dtype=np.int64)
    block_of[order] = block2
    return bstart, bend, block_of


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class CoalescingRangeReader:
    """Reads byte ranges of local files and S3 objects, merging concurrent requests.

    One reader serves any number of event loops (zarr's sync API runs its own); requests
    are batched per loop. ``stats`` counts requests, underlying reads and bytes.
    """

    def __init__(
        self,
        storage_options: Mapping[str, Any] | None = None,
        *,
        max_gap: int = DEFAULT_MAX_GAP,
        max_block: int = DEFAULT_MAX_BLOCK,
        allow: Any = None,
    ) -> None:
        self.storage_options = dict(storage_options or {})
        self.allow = allow  # vzsql.allowlist.AllowList or None (URL rules only)
        self.max_gap = max_gap
        self.max_block = max_block
        self.stats = ReadStats()
        self._stores: dict[tuple[str, str], Any] = {}
        self._batches: dict[asyncio.AbstractEventLoop, _Batch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    # -- object stores --------------------------------------------------------------------
    def _locate(self, uri: str) -> tuple[Any, str]:
        """The obstore store and path within it for ``uri``."""
        from obstore.store import LocalStore, S3Store, from_url

        path = local_path(uri)
        with self._lock:
            if path is not None:
                store = self._stores.get(("file", ""))
                if store is None:
                    store = self._stores[("file", "")] = LocalStore()
                return store, path
            parsed = urlparse(uri)
            cache_key = (parsed.scheme, parsed.netloc)
            store = self._stores.get(cache_key)
            if store is None:
                if parsed.scheme in ("s3", "s3a"):
                    config, client = s3_config(self.storage_options)
                    options: dict[str, Any] = {
                        "config": config or None,
                        "client_options": client or None,
                    }
                    store = S3Store(parsed.netloc, **options)
                else:
                    store = from_url(f"{parsed.scheme}://{parsed.netloc}")
                self._stores[cache_key] = store
            return store, parsed.path.lstrip("/")

    # -- the public call ------------------------------------------------------------------
    async def read(
        self,
        uri: str,
        start: int,
        end: int,
        *,
        array: str | None = None,
        chunk: tuple[int, ...] | None = None,
    ) -> bytes | memoryview:
        """Bytes ``[start, end)`` of ``uri``; ``array``/``chunk`` name the caller in errors."""
        check_read(self.allow, uri)  # security: only allowed locations (vzsql.allowlist)
        if end <= start:
            return b""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bytes] = loop.create_future()
        batch = self._batches.get(loop)
        if batch is None:
            batch = self._batches[loop] = _Batch()
            loop.call_soon(self._settle, loop, batch, 0, 0)
        batch.requests.append(_Request(uri, start, end, array, chunk, fut))
        self.stats.requests += 1
        return await fut

    def _settle(
        self, loop: asyncio.AbstractEventLoop, batch: _Batch, seen: int, rounds: int
    ) -> None:
        """Wait while requests keep arriving, then start reading the batch."""
        n = len(batch.requests)
        if n > seen and rounds < MAX_SETTLE_ROUNDS:
            loop.call_soon(self._settle, loop, batch, n, rounds + 1)
            return
        if self._batches.get(loop) is batch:
            del self._batches[loop]
        task = loop.create_task(self._flush(batch.requests))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, requests: list[_Request]) -> None:
        by_file: dict[str, list[_Request]] = {}
        for r in requests:
            by_file.setdefault(r.uri, []).append(r)
        await asyncio.gather(*(self._read_file(uri, reqs) for uri, reqs in by_file.items()))

    async def _read_file(self, uri: str, requests: list[_Request]) -> None:
        """One ``get_ranges`` call for all requests of one file; hand out the slices."""
        import obstore

        try:
            starts = np.fromiter((r.start for r in requests), dtype=np.int64, count=len(requests))
            ends = np.fromiter((r.end for r in requests), dtype=np.int64, count=len(requests))
            bstart, bend, block_of = merge_ranges(starts, ends, self.max_gap, self.max_block)
            try:
                store, path = self._locate(uri)
            except Exception as e:
                self._fail(requests, f"cannot open source: {_first_line(e)}", e)
                return
            self.stats.reads += 1
            self.stats.blocks += len(bstart)
            self.stats.bytes += int((bend - bstart).sum())
            try:
                blocks: list[Any] = await obstore.get_ranges_async(
                    store, path, starts=bstart.tolist(), ends=bend.tolist(), coalesce=0
                )
            except Exception as e:
                if _is_not_found(e):
                    self._fail(requests, "source file not found", e)
                    return
                blocks = await self._read_blocks_one_by_one(store, path, bstart, bend)
            for i, r in enumerate(requests):
                if r.future.done():
                    continue
                b = int(block_of[i])
                got = blocks[b]
                if isinstance(got, BaseException):
                    self._fail([r], _describe(got, r), got)
                    continue
                view = memoryview(got)
                lo = r.start - int(bstart[b])
                hi = r.end - int(bstart[b])
                if len(view) < hi:
                    avail = int(bstart[b]) + len(view)
                    self._fail(
                        [r],
                        f"byte range lies past the end of the file (the file ends at {avail})",
                        None,
                    )
                    continue
                r.future.set_result(view[lo:hi])  # type: ignore[arg-type]
        except BaseException as e:  # never leave a caller waiting forever
            self._fail(requests, f"reading failed: {type(e).__name__}: {_first_line(e)}", e)
            if not isinstance(e, Exception):
                raise

    async def _read_blocks_one_by_one(
        self, store: Any, path: str, bstart: np.ndarray, bend: np.ndarray
    ) -> list[Any]:
        """After a failed batch: read each block alone to tell which ranges are bad."""
        import obstore

        async def one(s: int, e: int) -> Any:
            try:
                return await obstore.get_range_async(store, path, start=s, end=e)
            except Exception as err:
                return err

        return list(
            await asyncio.gather(*(one(int(s), int(e)) for s, e in zip(bstart, bend, strict=True)))
        )

    @staticmethod
    def _fail(requests: list[_Request], message: str, cause: BaseException | None) -> None:
        for r in requests:
            if r.future.done():
                continue
            err = ChunkReadError(
                f"{message}; chunk bytes [{r.start}, {r.end})",
                source=r.uri,
                array=r.array,
                chunk=r.chunk,
            )
            if cause is not None:
                err.__cause__ = cause
            r.future.set_exception(err)


def _is_not_found(e: BaseException) -> bool:
    from obstore.exceptions import NotFoundError

    return isinstance(e, NotFoundError | FileNotFoundError)


def _describe(e: BaseException, r: _Request) -> str:
    if _is_not_found(e):
        return "source file not found"
    text = _first_line(e)
    if "range" in text.lower():
        return f"byte range lies past the end of the file ({text})"
    return f"reading failed: {text}"

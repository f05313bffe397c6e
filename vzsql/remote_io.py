"""Remote source files (S3, GCS, HTTP...) as seekable file objects made of ranged reads.

Scanners read a file's metadata (an HDF5 superblock and B-trees, a netCDF3 header), not
its data, so a remote scan must never download whole objects. ``RemoteFile`` serves
``read``/``seek`` from fixed-size blocks fetched with one ranged GET each (``fs.cat_file``
with ``start``/``end``), keeps a few in an LRU cache, and fetches runs of missing blocks
in one request.

Every request goes through ``ReadPolicy``: slow requests time out, failing ones are
retried with exponential backoff up to a limit, and a read that still fails is a
``RemoteReadError`` naming the file and byte range. ``FaultPlan`` injects failures and
delays into the requests (for tests and drills: it is a real component of the read path,
selected by the policy, not a monkeypatch). Counters of requests, bytes, retries and
failures per URI are kept in ``read_stats()``.

The policy in force is per thread (``reading_with``), so ``scan(read_policy=...)`` applies
to the files it scans wherever they are scanned (threads, processes, dask workers).
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from vzsql.errors import RemoteReadError, SourceError

DEFAULT_BLOCK = 256 * 1024


@dataclass(frozen=True)
class FaultPlan:
    """Faults injected into each file's requests, counted per file (1-based request numbers).

    ``fail_first``: the first N requests raise ``ConnectionError``; ``fail_every``: every
    k-th request does; ``fail_always``: all do; ``slow_first`` requests sleep ``slow_seconds``
    before answering (so a ``ReadPolicy.timeout`` below it makes them time out).
    """

    fail_first: int = 0
    fail_every: int = 0
    fail_always: bool = False
    slow_first: int = 0
    slow_seconds: float = 0.0

    def before(self, n: int) -> None:
        """Apply the plan to request number ``n`` of a file: sleep and/or raise."""
        if n <= self.slow_first and self.slow_seconds > 0:
            time.sleep(self.slow_seconds)
        if (
            self.fail_always
            or n <= self.fail_first
            or (self.fail_every and n % self.fail_every == 0)
        ):
            raise ConnectionError(f"injected fault on request {n}")


@dataclass(frozen=True)
class ReadPolicy:
    """Limits of remote reads: attempts, backoff, per-request timeout, block size, faults."""

    retries: int = 3  # attempts after the first
    backoff: float = 0.1  # seconds before the first retry, doubled each time (max 5 s)
    timeout: float | None = 60.0  # seconds a request may take before it counts as failed
    block_size: int = DEFAULT_BLOCK
    cache_blocks: int = 64
    faults: FaultPlan | None = None


DEFAULT_POLICY = ReadPolicy()


@dataclass
class ReadCounters:
    """What reading one URI cost: requests made, bytes fetched, retries, failed attempts."""

    requests: int = 0
    bytes: int = 0
    retries: int = 0
    failures: int = 0
    max_request: int = 0
    errors: list[str] = field(default_factory=list)


_stats: dict[str, ReadCounters] = {}
_stats_lock = threading.Lock()
_local = threading.local()
_timer_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="vzsql-remote-read")


def read_stats() -> dict[str, ReadCounters]:
    """Counters per URI of remote reads made in this process since the last reset."""
    with _stats_lock:
        return {k: ReadCounters(**vars(v)) for k, v in _stats.items()}


def reset_read_stats() -> None:
    with _stats_lock:
        _stats.clear()


def _count(uri: str) -> ReadCounters:
    with _stats_lock:
        c = _stats.get(uri)
        if c is None:
            c = _stats[uri] = ReadCounters()
        return c


def current_policy() -> ReadPolicy:
    """The read policy of this thread (``DEFAULT_POLICY`` unless ``reading_with`` set one)."""
    return getattr(_local, "policy", None) or DEFAULT_POLICY


@contextlib.contextmanager
def reading_with(policy: ReadPolicy | None) -> Iterator[None]:
    """Use ``policy`` for remote reads made by this thread inside the block."""
    old = getattr(_local, "policy", None)
    _local.policy = policy or old
    try:
        yield
    finally:
        _local.policy = old


class RangeFetcher:
    """Ranged GETs of one object with the policy's retries, timeouts and injected faults."""

    def __init__(self, uri: str, fs: Any, path: str, policy: ReadPolicy) -> None:
        self.uri = uri
        self.fs = fs
        self.path = path
        self.policy = policy
        self.counters = _count(uri)
        self._n = 0
        self._lock = threading.Lock()

    def _attempt(self, start: int, end: int) -> bytes:
        with self._lock:
            self._n += 1
            n = self._n
        if self.policy.faults is not None:
            self.policy.faults.before(n)
        data = self.fs.cat_file(self.path, start=start, end=end)
        return bytes(data)

    def fetch(self, start: int, end: int) -> bytes:
        """Bytes ``[start, end)``; retried up to ``policy.retries`` times, then an error."""
        p = self.policy
        delay = p.backoff
        last: BaseException | None = None
        for attempt in range(p.retries + 1):
            if attempt:
                self.counters.retries += 1
                time.sleep(min(delay, 5.0))
                delay *= 2
            self.counters.requests += 1
            try:
                if p.timeout is None:
                    data = self._attempt(start, end)
                else:
                    data = _timer_pool.submit(self._attempt, start, end).result(p.timeout)
            except FileNotFoundError as e:  # not transient: no retry
                raise SourceError("object not found", source=self.uri) from e
            except FutureTimeout as e:
                last = TimeoutError(f"request took longer than {p.timeout:g} s")
                last.__cause__ = e
            except Exception as e:
                last = e
            else:
                self.counters.bytes += len(data)
                self.counters.max_request = max(self.counters.max_request, end - start)
                return data
            self.counters.failures += 1
            self.counters.errors.append(f"[{start}, {end}): {type(last).__name__}: {last}")
        raise RemoteReadError(
            f"reading bytes [{start}, {end}) failed after {p.retries + 1} attempts: "
            f"{type(last).__name__}: {last}",
            source=self.uri,
        ) from last


class RemoteFile(io.RawIOBase):
    """A read-only, seekable file over ranged reads, cached in blocks (see module doc)."""

    def __init__(self, fetcher: RangeFetcher, size: int) -> None:
        super().__init__()
        self.fetcher = fetcher
        self.size = size
        self.block = max(4096, fetcher.policy.block_size)
        self.pos = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self.pos = offset
        elif whence == io.SEEK_CUR:
            self.pos += offset
        elif whence == io.SEEK_END:
            self.pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        self.pos = max(0, self.pos)
        return self.pos

    def _blocks(self, first: int, last: int) -> list[bytes]:
        """Blocks ``first..last``: cached ones reused, each run of missing ones one request."""
        out: dict[int, bytes] = {}
        run: list[int] = []

        def flush() -> None:
            if not run:
                return
            lo = run[0] * self.block
            hi = min(self.size, (run[-1] + 1) * self.block)
            data = self.fetcher.fetch(lo, hi)
            for b in run:
                piece = data[(b - run[0]) * self.block : (b - run[0] + 1) * self.block]
                out[b] = piece
                self._cache[b] = piece
            run.clear()

        for b in range(first, last + 1):
            if b in self._cache:
                self._cache.move_to_end(b)
                out[b] = self._cache[b]
                flush()
            else:
                run.append(b)
        flush()
        while len(self._cache) > max(self.fetcher.policy.cache_blocks, last - first + 1):
            self._cache.popitem(last=False)
        return [out[b] for b in range(first, last + 1)]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        n = min(len(view), max(0, self.size - self.pos))
        if n == 0:
            return 0
        first, last = self.pos // self.block, (self.pos + n - 1) // self.block
        data = b"".join(self._blocks(first, last))
        lo = self.pos - first * self.block
        view[:n] = data[lo : lo + n]
        self.pos += n
        return n

    def readall(self) -> bytes:
        return self.read(max(0, self.size - self.pos)) or b""


def open_remote(uri: str, storage_options: dict[str, Any] | None = None) -> RemoteFile:
    """A ``RemoteFile`` for ``uri`` (any fsspec protocol) under this thread's read policy."""
    from vzsql.sources import fsspec_fs, stat_source

    try:
        fs, path = fsspec_fs(uri, storage_options)
        size = stat_source(uri, storage_options).size  # shared with the scan's stat
    except FileNotFoundError as e:
        raise SourceError("cannot open source: object not found", source=uri) from e
    except OSError as e:
        raise SourceError(f"cannot open source: {e}", source=uri) from e
    return RemoteFile(RangeFetcher(uri, fs, path, current_policy()), size)

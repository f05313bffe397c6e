"""Scanning one file in a child process with a timeout, and recording scan failures.

libhdf5 can segfault on some valid-looking files and a read from a stalled mount (or a
FIFO) can block forever; run in the scanning process, either kills or stalls the whole
batch. ``scan_isolated`` runs the scanner of one file in a child process (forked from a
``forkserver`` that has the scanners imported, and reused for up to ``FILES_PER_CHILD``
files) and waits at most ``timeout`` seconds: a child that dies by a signal is a
``crash`` (and is replaced), one that does not answer in time is killed and is a
``timeout``, a ``VzsqlError`` (or any exception) inside it is an ``error``. The tables come back as
Arrow IPC bytes over a pipe, never as pickled Python objects per chunk.

Every outcome is a ``ScanOutcome``: the file's tables or a ``ScanFailure``, so a batch
can record failures (``on_error="record"``) in a ``failures`` table (``FAILURES_SCHEMA``).
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc

from vzsql import errors
from vzsql.errors import VzsqlError
from vzsql.tables import TABLE_NAMES, Tables

FAILURES_SCHEMA = pa.schema(
    [
        pa.field("uri", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # error | crash | timeout
        pa.field("error", pa.string()),  # exception class, e.g. CorruptSourceError
        pa.field("reason", pa.string()),  # one line saying what went wrong
    ]
)

# modules the forkserver imports once, so each forked scanner child starts warm
_PRELOAD = [
    "vzsql.scan",
    "vzsql.scanners.hdf5",
    "vzsql.scanners.netcdf3",
    "vzsql.scanners.grib",
    "h5py",
    "hdf5plugin",
    "numcodecs",
    "zarr",
    "pandas",
    # imported lazily by a scan or by packing its tables: else every child imports them
    "vzsql.remote_io",
    "h5py._hl.dims",
    "pyarrow.pandas_compat",
    "vzsql.isolation_warmup",  # last: scans a tiny file once, so children start warm
]

Scanner = Callable[..., Tables]


@dataclass(frozen=True)
class ScanFailure:
    """Why one file could not be scanned."""

    uri: str
    kind: str
    error: str
    reason: str
    # the error itself, when it was a VzsqlError (raised again by on_error="raise")
    exception: VzsqlError | None = field(default=None, compare=False, repr=False)

    def as_error(self) -> VzsqlError:
        """The failure as the typed error it was (``VzsqlError`` for crashes and timeouts)."""
        if self.exception is not None:
            return self.exception
        cls = getattr(errors, self.error, None)
        if isinstance(cls, type) and issubclass(cls, VzsqlError):
            try:
                return cls(self.reason, source=self.uri)
            except TypeError:  # subclasses with extra required arguments
                pass
        prefix = {"crash": "scanner crashed: ", "timeout": "scan timed out: "}.get(self.kind, "")
        return VzsqlError(f"{prefix}{self.reason}", source=self.uri)


@dataclass(frozen=True)
class ScanOutcome:
    """The tables of one scanned file, or why it failed (exactly one is set)."""

    uri: str
    tables: Tables | None = None
    failure: ScanFailure | None = None


def failures_table(failures: list[ScanFailure]) -> pa.Table:
    """The ``failures`` table: one row per file that could not be scanned."""
    rows = [{"uri": f.uri, "kind": f.kind, "error": f.error, "reason": f.reason} for f in failures]
    return pa.Table.from_pylist(rows, schema=FAILURES_SCHEMA)


# -- tables <-> bytes (Arrow IPC) -------------------------------------------------------------
def pack_tables(tables: Tables) -> bytes:
    """The five tables as one byte string: a JSON length header, then five IPC streams."""
    blobs = []
    for name in TABLE_NAMES:
        sink = io.BytesIO()
        table = getattr(tables, name)
        with ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        blobs.append(sink.getvalue())
    header = json.dumps({"tables": list(TABLE_NAMES), "sizes": [len(b) for b in blobs]}).encode()
    return len(header).to_bytes(4, "little") + header + b"".join(blobs)


def unpack_tables(data: bytes | memoryview) -> Tables:
    """Inverse of ``pack_tables`` (zero copy: the tables view ``data``)."""
    buf = pa.py_buffer(data)
    n = int.from_bytes(bytes(buf[:4]), "little")
    header = json.loads(bytes(buf[4 : 4 + n]))
    pos = 4 + n
    out = {}
    for name, size in zip(header["tables"], header["sizes"], strict=True):
        out[name] = ipc.open_stream(buf.slice(pos, size)).read_all()
        pos += size
    return Tables(**out)


# -- in-process ------------------------------------------------------------------------------
def describe(e: BaseException) -> str:
    """One line: the message of ``e`` (its class if it has none), without the file name."""
    text = (e.detail if isinstance(e, VzsqlError) else str(e)).strip().splitlines()
    return text[0] if text else type(e).__name__


def scan_one(
    uri: str,
    storage_options: dict[str, Any] | None = None,
    fmt: str | None = None,
    scanner: Scanner | None = None,
    read_policy: Any = None,
) -> ScanOutcome:
    """Scan ``uri`` in this process; any exception becomes a recorded ``error`` outcome."""
    from vzsql.scan import scan_file

    try:
        tables = scan_file(uri, storage_options, fmt, scanner=scanner, read_policy=read_policy)
    except Exception as e:
        typed = e if isinstance(e, VzsqlError) else None
        failure = ScanFailure(uri, "error", type(e).__name__, describe(e), exception=typed)
        return ScanOutcome(uri, failure=failure)
    return ScanOutcome(uri, tables=tables)


# -- in a child process ----------------------------------------------------------------------
# A child scans many files, one at a time, until it crashes, hangs or has served
# FILES_PER_CHILD files; a fresh fork per file cost ~6 ms per file (fork, exit, pipes).
FILES_PER_CHILD = 500
MAX_IDLE_CHILDREN = 16


def _send_error(conn: Connection, error: str, reason: str, exception: Any = None) -> None:
    """Send ``E`` + the pickled (error name, reason, the typed error itself or None)."""
    try:  # the typed error whole (file, array, chunk, extras)
        body = ForkingPickler.dumps((error, reason, exception))
    except Exception:  # pragma: no cover - an extra field that does not pickle
        body = ForkingPickler.dumps((error, reason, None))
    conn.send_bytes(b"E" + body)


def _answer(conn: Connection, request: tuple[Any, ...]) -> None:
    """Scan one requested file and send ``T`` + packed tables or ``E`` + its error."""
    try:
        outcome = scan_one(*request)
        if outcome.tables is not None:
            conn.send_bytes(b"T" + pack_tables(outcome.tables))
        else:
            f = outcome.failure
            assert f is not None
            _send_error(conn, f.error, f.reason, f.exception)
    except BaseException as e:  # pragma: no cover - packing failed; still answer
        _send_error(conn, type(e).__name__, describe(e) or traceback.format_exc(limit=1))


def _child_loop(conn: Connection) -> None:
    """Body of a scanner child: answer requests ``(uri, storage_options, fmt, scanner,
    read_policy)`` until ``None`` or the parent goes away."""
    try:
        while True:
            try:
                request = conn.recv()
            except (EOFError, OSError):
                return
            if request is None:
                return
            _answer(conn, request)
    finally:
        conn.close()


def _context() -> multiprocessing.context.BaseContext:
    """The forkserver context (fork is unsafe in a threaded parent; spawn is slow)."""
    try:
        ctx = multiprocessing.get_context("forkserver")
    except ValueError:  # pragma: no cover - platforms without forkserver
        return multiprocessing.get_context("spawn")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _signal_name(exitcode: int) -> str:
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


class _Child:
    """One scanner child process and the parent's end of its pipe."""

    def __init__(self) -> None:
        ctx = _context()
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(  # type: ignore[attr-defined]
            target=_child_loop, args=(child_conn,), name="vzsql-scanner", daemon=True
        )
        self.proc.start()
        child_conn.close()
        self.served = 0

    def kill(self) -> None:
        """Stop the child now (it crashed, hung, or is not wanted)."""
        with contextlib.suppress(Exception):
            self.proc.kill()
        self.proc.join()
        self.conn.close()

    def retire(self) -> None:
        """Ask the child to exit, and make sure it does."""
        with contextlib.suppress(Exception):
            self.conn.send(None)
        self.proc.join(5)
        if self.proc.is_alive():  # pragma: no cover - a child that will not exit
            self.kill()
        self.conn.close()


class _Children:
    """Idle scanner children, shared by the threads of this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.idle: list[_Child] = []

    def borrow(self) -> _Child:
        with self.lock:
            while self.idle:
                child = self.idle.pop()
                if child.proc.is_alive():
                    return child
                child.kill()
        return _Child()

    def give_back(self, child: _Child) -> None:
        child.served += 1
        with self.lock:
            if child.served < FILES_PER_CHILD and len(self.idle) < MAX_IDLE_CHILDREN:
                self.idle.append(child)
                return
        child.retire()

    def close(self) -> None:
        with self.lock:
            idle, self.idle = self.idle, []
        for child in idle:
            child.retire()

    def forget(self) -> None:
        """In a forked process: the children belong to the parent, not to us."""
        self.lock = threading.Lock()
        self.idle = []


_CHILDREN = _Children()
atexit.register(_CHILDREN.close)
os.register_at_fork(after_in_child=_CHILDREN.forget)


def scan_isolated(
    uri: str,
    storage_options: dict[str, Any] | None = None,
    fmt: str | None = None,
    scanner: Scanner | None = None,
    timeout: float | None = None,
    read_policy: Any = None,
) -> ScanOutcome:
    """Scan ``uri`` in a child process; a crash or a stall beyond ``timeout`` s is recorded.

    Children are reused from file to file (a crashed or killed one is replaced), so the
    isolation costs a round trip over a pipe, not a process per file. Picklable and
    top-level, so it can itself be submitted to any executor (threads in the parent are
    the usual choice: each waits on its child).
    """
    request = ForkingPickler.dumps((uri, storage_options, fmt, scanner, read_policy))
    child = _CHILDREN.borrow()
    try:
        child.conn.send_bytes(request)
    except OSError:  # an idle child died (OOM killer, operator): use a new one
        child.kill()
        child = _Child()
        child.conn.send_bytes(request)
    try:
        if not child.conn.poll(timeout):
            child.kill()
            reason = f"no answer within {timeout:g} s (stalled read or hung reader); child killed"
            return ScanOutcome(uri, failure=ScanFailure(uri, "timeout", "TimeoutError", reason))
        message = child.conn.recv_bytes()
    except (EOFError, OSError):  # the child died (BrokenPipeError is an OSError)
        child.proc.join(5)
        code = child.proc.exitcode
        child.kill()
        if code is not None and code < 0:
            reason = f"scanner process killed by {_signal_name(code)}"
        else:
            reason = f"scanner process exited with code {code} without an answer"
        return ScanOutcome(uri, failure=ScanFailure(uri, "crash", "ScannerCrash", reason))
    except BaseException:
        child.kill()  # interrupted while the child works: it cannot be reused
        raise
    _CHILDREN.give_back(child)
    kind, body = message[:1], message[1:]
    if kind == b"T":
        return ScanOutcome(uri, tables=unpack_tables(body))
    error, reason, exception = ForkingPickler.loads(body)
    return ScanOutcome(uri, failure=ScanFailure(uri, "error", error, reason, exception=exception))

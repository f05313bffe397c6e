"""``scan()``: paths, globs and URLs in, one Manifest out; files scanned in parallel.

Each file is scanned by a picklable top-level function, so any
``concurrent.futures.Executor`` runs it: threads (default), processes, or a
``dask.distributed`` client's executor. Results come back as Arrow tables.

Robustness (see ``vzsql.isolation`` and ``vzsql.resume``):

- ``on_error="record"`` keeps going past files that fail and lists them in
  ``Manifest.failures`` (uri, kind, error, reason); ``"raise"`` (default) stops at the first.
- ``isolate=True`` or a ``timeout`` scans each file in a child process, so a reader that
  segfaults or hangs becomes a ``crash`` / ``timeout`` failure instead of killing the batch.
  Without an executor, 200 files or more are scanned that way by default (faster: child
  processes do not share a GIL); ``isolate=False`` keeps them in threads.
- ``resume=`` skips files whose earlier scan (kept in a journal beside the manifest) still
  matches their size, mtime and etag.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Literal

from vzsql.errors import VzsqlError
from vzsql.isolation import (
    ScanFailure,
    Scanner,
    ScanOutcome,
    failures_table,
    scan_isolated,
    scan_one,
)
from vzsql.manifest import Manifest
from vzsql.scanners import detect_format, get_scanner
from vzsql.sources import expand, remembering_stats
from vzsql.tables import Tables

PathLike = str | os.PathLike[str]
OnError = Literal["raise", "record"]


def scan_file(
    uri: str,
    storage_options: dict[str, Any] | None = None,
    fmt: str | None = None,
    *,
    scanner: Scanner | None = None,
    read_policy: Any = None,
) -> Tables:
    """Scan one file into manifest tables (sources numbered from 0).

    ``scanner`` replaces the format's scanner (any function with the scanner signature);
    ``read_policy`` (a ``vzsql.remote_io.ReadPolicy``) sets retries/timeouts of remote reads.
    """
    from vzsql.remote_io import reading_with

    with reading_with(read_policy), remembering_stats():
        if scanner is None:
            scanner = get_scanner(fmt or detect_format(uri, storage_options))
        return scanner(uri, storage_options=storage_options)


def _scan_raising(
    uri: str,
    storage_options: dict[str, Any] | None,
    fmt: str | None,
    scanner: Scanner | None,
    read_policy: Any,
) -> ScanOutcome:
    """Like ``scan_one`` but lets the scanner's exception through (``on_error="raise"``)."""
    return ScanOutcome(
        uri, tables=scan_file(uri, storage_options, fmt, scanner=scanner, read_policy=read_policy)
    )


# with no executor given, at least this many files are scanned in reused child processes
# (vzsql.isolation): they scan in parallel where threads contend for the GIL (2,000 small
# netCDF-4 files on 2 cores: 259 files/s against 103 with threads), and a crash is a failure
AUTO_ISOLATE_FILES = 200


def _isolating(
    isolate: bool | None,
    timeout: float | None,
    uris: Sequence[str],
    executor: Executor | None,
    scanner: Scanner | None,
    storage_options: dict[str, Any] | None,
    read_policy: Any,
) -> bool:
    """Whether files are scanned in child processes: ``isolate`` if given (``timeout``
    implies it); by default when vzsql chooses the executor, the scanners are its own and
    there are ``AUTO_ISOLATE_FILES`` files or more (options must pickle to reach children)."""
    if timeout is not None or isolate:
        return True
    if isolate is not None or executor is not None or scanner is not None:
        return False
    if len(uris) < AUTO_ISOLATE_FILES:
        return False
    import pickle

    try:
        pickle.dumps((storage_options, read_policy))
    except Exception:
        return False
    return True


def scan_outcomes(
    uris: Sequence[str],
    *,
    executor: Executor | None = None,
    storage_options: dict[str, Any] | None = None,
    fmt: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_error: OnError = "raise",
    isolate: bool | None = None,
    timeout: float | None = None,
    scanner: Scanner | None = None,
    read_policy: Any = None,
    on_outcome: Callable[[ScanOutcome], None] | None = None,
) -> list[ScanOutcome]:
    """Scan ``uris`` through ``executor``: one ``ScanOutcome`` per file, in input order.

    With ``on_error="raise"`` the first failure is raised (as its typed ``VzsqlError``);
    with ``"record"`` failures are returned as outcomes. ``isolate`` (implied by
    ``timeout``) runs each file's scanner in a child process; None (default) does so for
    ``AUTO_ISOLATE_FILES`` files or more when no executor or scanner is given.
    ``on_outcome`` sees every outcome as soon as it is collected (the resume journal
    writes parts there).
    """
    if on_error not in ("raise", "record"):
        raise ValueError(f"on_error must be 'raise' or 'record', not {on_error!r}")
    if not uris:
        return []
    isolate = _isolating(isolate, timeout, uris, executor, scanner, storage_options, read_policy)
    own = executor is None
    pool: Executor = executor or ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2))
    try:
        futures: list[Future[ScanOutcome]]
        if isolate:
            futures = [
                pool.submit(scan_isolated, u, storage_options, fmt, scanner, timeout, read_policy)
                for u in uris
            ]
        else:
            body = scan_one if on_error == "record" else _scan_raising
            futures = [
                pool.submit(body, u, storage_options, fmt, scanner, read_policy) for u in uris
            ]
        results: list[ScanOutcome] = []
        for i, fut in enumerate(futures):
            try:
                outcome = fut.result()
            except VzsqlError:
                raise
            except Exception as e:  # a scanner bug, a library crash or a broken worker
                if on_error == "raise":
                    raise VzsqlError(
                        f"scanning failed: {type(e).__name__}: {e}", source=uris[i]
                    ) from e
                outcome = ScanOutcome(
                    uris[i], failure=ScanFailure(uris[i], "error", type(e).__name__, str(e))
                )
            if outcome.failure is not None and on_error == "raise":
                raise outcome.failure.as_error()
            if on_outcome is not None:
                on_outcome(outcome)
            results.append(outcome)
            if progress is not None:
                progress(i + 1, len(uris))
        return results
    finally:
        if own:
            pool.shutdown(cancel_futures=True)


def scan_files(
    uris: Sequence[str],
    *,
    executor: Executor | None = None,
    storage_options: dict[str, Any] | None = None,
    fmt: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_error: OnError = "raise",
    isolate: bool | None = None,
    timeout: float | None = None,
    scanner: Scanner | None = None,
    read_policy: Any = None,
) -> list[Tables]:
    """Scan ``uris`` and return one ``Tables`` per file, in input order.

    With ``on_error="record"`` files that fail are left out (``scan_outcomes`` says why).
    """
    outcomes = scan_outcomes(
        uris,
        executor=executor,
        storage_options=storage_options,
        fmt=fmt,
        progress=progress,
        on_error=on_error,
        isolate=isolate,
        timeout=timeout,
        scanner=scanner,
        read_policy=read_policy,
    )
    return [o.tables for o in outcomes if o.tables is not None]


def scan(
    paths: PathLike | Sequence[PathLike],
    *,
    executor: Executor | None = None,
    storage_options: dict[str, Any] | None = None,
    format: str | None = None,
    concat_dim: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_error: OnError = "raise",
    isolate: bool | None = None,
    timeout: float | None = None,
    resume: PathLike | None = None,
    scanner: Scanner | None = None,
    read_policy: Any = None,
) -> Manifest:
    """Scan files (paths, globs, ``file://`` and ``s3://`` URLs) into one Manifest.

    One file gives its own manifest. Several files are combined along the dimension whose
    coordinate values differ between them (``concat_dim`` to name it), ordered by those
    values, as ``xarray.combine_by_coords`` would.

    ``on_error="record"``: files that fail are listed in ``Manifest.failures`` and the rest
    are scanned. ``timeout`` (seconds per file) or ``isolate=True``: each file is scanned in
    a child process, so crashes and hangs are failures too; by default (``isolate=None``)
    that is how 200 files or more are scanned when no executor is given. ``resume``: a
    manifest folder (or journal folder); files whose earlier result is still valid are not
    rescanned, see ``vzsql.resume``. ``read_policy``: retries and timeouts of remote reads.
    """
    from vzsql.allowlist import AllowList

    uris = expand(paths if isinstance(paths, str | os.PathLike) else list(paths), storage_options)
    journal = None
    reused: dict[str, Tables] = {}
    if resume is not None:
        from vzsql.resume import ScanJournal

        journal = ScanJournal.for_target(resume)
        reused = journal.reusable(uris, storage_options)
    todo = [u for u in uris if u not in reused]
    outcomes = scan_outcomes(
        todo,
        executor=executor,
        storage_options=storage_options,
        fmt=format,
        progress=progress,
        on_error=on_error,
        isolate=isolate,
        timeout=timeout,
        scanner=scanner,
        read_policy=read_policy,
        on_outcome=journal.record if journal is not None else None,
    )
    by_uri = {o.uri: o for o in outcomes}
    parts: list[Tables] = []
    failures: list[ScanFailure] = []
    for u in uris:
        if u in reused:
            parts.append(reused[u])
            continue
        o = by_uri[u]
        if o.tables is not None:
            parts.append(o.tables)
        elif o.failure is not None:
            failures.append(o.failure)
    if not parts:
        m = Manifest(Tables.empty())
    elif len(parts) == 1:
        m = Manifest(parts[0])
    else:
        from vzsql.ops.combine import combine_parts

        m = combine_parts([Manifest(p) for p in parts], concat_dim=concat_dim)
    m.failures = failures_table(failures)
    m.allow = AllowList.of_sources(m.tables.sources, origin="scan")
    return m

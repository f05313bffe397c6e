"""``scan()``: paths, globs and URLs in, one Manifest out; files scanned in parallel.

Each file is scanned in isolation by a picklable top-level function, so any
``concurrent.futures.Executor`` runs it: threads (default), processes, or a
``dask.distributed`` client's executor. Results come back as Arrow tables.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from vzsql.errors import VzsqlError
from vzsql.manifest import Manifest
from vzsql.scanners import detect_format, get_scanner
from vzsql.sources import expand
from vzsql.tables import Tables

PathLike = str | os.PathLike[str]


def scan_file(
    uri: str, storage_options: dict[str, Any] | None = None, fmt: str | None = None
) -> Tables:
    """Scan one file into manifest tables (sources numbered from 0)."""
    fmt = fmt or detect_format(uri, storage_options)
    scanner = get_scanner(fmt)
    return scanner(uri, storage_options=storage_options)


def scan_files(
    uris: Sequence[str],
    *,
    executor: Executor | None = None,
    storage_options: dict[str, Any] | None = None,
    fmt: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[Tables]:
    """Scan ``uris`` through ``executor`` and return one ``Tables`` per file, in input order."""
    if not uris:
        return []
    own = executor is None
    pool: Executor = executor or ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2))
    try:
        futures: list[Future[Tables]] = [
            pool.submit(scan_file, uri, storage_options, fmt) for uri in uris
        ]
        results: list[Tables] = []
        for i, fut in enumerate(futures):
            try:
                results.append(fut.result())
            except VzsqlError:
                raise
            except Exception as e:  # a scanner bug or a library crash: say which file
                raise VzsqlError(f"scanning failed: {type(e).__name__}: {e}", source=uris[i]) from e
            if progress is not None:
                progress(i + 1, len(uris))
        return results
    finally:
        if own:
            pool.shutdown(cancel_futures=True)


def scan(
    paths: PathLike | Sequence[PathLike],
    *,
    executor: Executor | None = None,
    storage_options: dict[str, Any] | None = None,
    format: str | None = None,
    concat_dim: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Manifest:
    """Scan files (paths, globs, ``file://`` and ``s3://`` URLs) into one Manifest.

    One file gives its own manifest. Several files are combined along the dimension whose
    coordinate values differ between them (``concat_dim`` to name it), ordered by those
    values, as ``xarray.combine_by_coords`` would.
    """
    uris = expand(paths if isinstance(paths, str | os.PathLike) else list(paths), storage_options)
    parts = scan_files(
        uris, executor=executor, storage_options=storage_options, fmt=format, progress=progress
    )
    if len(parts) == 1:
        return Manifest(parts[0])
    from vzsql.ops.combine import combine_parts

    return combine_parts([Manifest(p) for p in parts], concat_dim=concat_dim)

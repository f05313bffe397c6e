"""Where source files live: URI normalisation, globbing, stat (size, mtime, etag), opening.

Local paths become ``file:///abs/path`` URLs; ``s3://bucket/key`` stays as it is. The etag
of a local file is computed exactly as Icechunk's (Rust ``object_store``) local store does,
``{inode:x}-{mtime_us:x}-{size:x}``, so references carry the checksum Icechunk will check.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import glob
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

import pyarrow as pa

from vzsql.errors import SourceError
from vzsql.tables import SOURCES_SCHEMA

REMOTE_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "http", "https")


def normalize_uri(path: str | os.PathLike[str]) -> str:
    """``file:///abs/path`` for local paths and file URLs, the URL itself for remote ones."""
    text = os.fspath(path)
    parsed = urlparse(text)
    if parsed.scheme in REMOTE_SCHEMES:
        return text
    if parsed.scheme == "file":
        return Path(unquote(parsed.path)).resolve().as_uri()
    if parsed.scheme and len(parsed.scheme) > 1:
        raise SourceError(f"unsupported URL scheme {parsed.scheme!r}", source=text)
    return Path(text).expanduser().resolve().as_uri()


def local_path(uri: str) -> str | None:
    """The filesystem path of a ``file://`` URI, else None."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    if not parsed.scheme:
        return uri
    return None


def expand(
    paths: str | os.PathLike[str] | list[str | os.PathLike[str]],
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Expand globs in local paths and S3 URLs; return normalised URIs in sorted order."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out: list[str] = []
    for item in items:
        text = os.fspath(item)
        has_magic = glob.has_magic(text)
        scheme = urlparse(text).scheme
        if scheme in REMOTE_SCHEMES:
            if has_magic:
                fs, _ = fsspec_fs(text, storage_options)
                protocol = scheme
                matches = sorted(fs.glob(text))
                out.extend(f"{protocol}://{m}" for m in matches)
                if not matches:
                    raise SourceError("no files match", source=text)
            else:
                out.append(text)
            continue
        local = local_path(normalize_uri(text)) if scheme == "file" else os.path.expanduser(text)
        assert local is not None
        if has_magic:
            matches = sorted(glob.glob(local, recursive=True))
            if not matches:
                raise SourceError("no files match", source=text)
            out.extend(normalize_uri(m) for m in matches)
        else:
            out.append(normalize_uri(local))
    return out


def fsspec_fs(uri: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    """The fsspec filesystem of ``uri`` and the path within it (fsspec is imported here)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri, **(storage_options or {}))
    return fs, path


@dataclass(frozen=True)
class SourceStat:
    """What a scan records of a source to detect later change."""

    uri: str
    size: int
    mtime_ns: int | None
    etag: str | None


def local_etag(st: os.stat_result) -> str:
    """The etag object_store (and therefore Icechunk) computes for a local file."""
    mtime_us = st.st_mtime_ns // 1000
    return f"{st.st_ino:x}-{mtime_us:x}-{st.st_size:x}"


_memo = threading.local()


@contextlib.contextmanager
def remembering_stats() -> Iterator[None]:
    """Within the block, a remote source is asked for its metadata once: format detection,
    the scanner's stat and every open of the same URI share one answer (one HEAD request
    per object instead of one per step). Used around the scan of one file."""
    outer = getattr(_memo, "stats", None)
    _memo.stats = {} if outer is None else outer
    try:
        yield
    finally:
        _memo.stats = outer


def stat_source(uri: str, storage_options: dict[str, Any] | None = None) -> SourceStat:
    """Size, mtime (ns) and etag of ``uri``; a missing file is a ``SourceError``."""
    path = local_path(uri)
    if path is not None:
        try:
            st = os.stat(path)
        except OSError as e:
            raise SourceError(f"cannot stat source: {e.strerror or e}", source=uri) from e
        return SourceStat(uri, st.st_size, st.st_mtime_ns, local_etag(st))
    remembered: dict[str, SourceStat] | None = getattr(_memo, "stats", None)
    if remembered is not None and uri in remembered:
        return remembered[uri]
    stat = _stat_remote(uri, storage_options)
    if remembered is not None:
        remembered[uri] = stat
    return stat


def _stat_remote(uri: str, storage_options: dict[str, Any] | None) -> SourceStat:
    fs, p = fsspec_fs(uri, storage_options)
    try:
        info = fs.info(p)
    except OSError as e:  # FileNotFoundError included
        raise SourceError(f"cannot stat source: {e}", source=uri) from e
    return stat_from_info(uri, info)


def stat_from_info(uri: str, info: dict[str, Any]) -> SourceStat:
    """A ``SourceStat`` from an fsspec ``info``/``find(detail=True)`` entry (S3 names its
    fields ``LastModified``/``ETag``, other filesystems ``mtime``/``etag``)."""
    mtime = info.get("LastModified") or info.get("mtime")
    mtime_ns: int | None = None
    if isinstance(mtime, dt.datetime):
        mtime_ns = int(mtime.timestamp() * 1e9)
    elif isinstance(mtime, int | float):
        mtime_ns = int(mtime * 1e9)
    etag = info.get("ETag") or info.get("etag")
    return SourceStat(uri, int(info["size"]), mtime_ns, str(etag) if etag else None)


def open_source(uri: str, storage_options: dict[str, Any] | None = None) -> IO[bytes]:
    """A seekable binary file object for ``uri`` (remote files use ranged reads)."""
    path = local_path(uri)
    try:
        if path is not None:
            return open(path, "rb")
        # ranged reads only, with retries/timeouts of the thread's ReadPolicy (remote_io)
        from vzsql.remote_io import open_remote

        return open_remote(uri, storage_options)  # type: ignore[return-value]
    except OSError as e:
        raise SourceError(f"cannot open source: {e.strerror or e}", source=uri) from e


@dataclass
class SourceList:
    """Builds a ``sources`` table, numbering each distinct URI once."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, stat: SourceStat, fmt: str) -> int:
        if stat.uri in self.rows:
            return int(self.rows[stat.uri]["source_id"])
        sid = len(self.rows)
        self.rows[stat.uri] = {
            "source_id": sid,
            "uri": stat.uri,
            "format": fmt,
            "size": stat.size,
            "mtime": stat.mtime_ns,
            "etag": stat.etag,
            "scanned_at": dt.datetime.now(dt.UTC),
        }
        return sid

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(list(self.rows.values()), schema=SOURCES_SCHEMA)

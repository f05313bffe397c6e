"""Opening an Icechunk repository for vzsql's writers: checksums, containers, commits.

Every reference carries its source's checksum as recorded at scan time
(``source_checksums``; the ETag and mtime rules are in ``vzsql.writers.icechunk``'s
docstring). ``container_prefixes`` gives one virtual chunk container per directory or
bucket the sources live under; ``open_repository`` opens or creates a repository with them
authorised (saved only after a commit succeeds), ``open_repo_readonly`` authorises every
container of a trusted repository, and ``commit_session`` turns a lost commit race into
``ConcurrentWriteError``.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow as pa

from vzsql.errors import ConcurrentWriteError, ExportError, VzsqlError
from vzsql.icechunk_logs import quiet_icechunk_logs
from vzsql.sources import local_path
from vzsql.writers.icechunk_refs import Checksum
from vzsql.writers.icechunk_refs import first_line as _first_line

if TYPE_CHECKING:
    import icechunk as ic

CHECKSUM_MODES = ("auto", "etag", "last_modified", "none")


# -- checksums -------------------------------------------------------------------------------
def source_checksums(sources: pa.Table, mode: str = "auto") -> list[Checksum]:
    """The checksum each source's references carry, from what the scan recorded."""
    if mode not in CHECKSUM_MODES:
        raise ExportError(f"checksum must be one of {', '.join(CHECKSUM_MODES)}, not {mode!r}")
    out: list[Checksum] = []
    for uri, etag, mtime in zip(
        sources["uri"].to_pylist(),
        sources["etag"].to_pylist(),
        sources["mtime"].to_pylist(),
        strict=True,
    ):
        if mode == "none":
            out.append(None)
        elif etag and mode in ("auto", "etag"):
            out.append(_icechunk_etag(uri, etag))
        elif mtime is not None and mode in ("auto", "last_modified"):
            seconds = math.ceil(int(mtime) / 1e9)
            out.append(dt.datetime.fromtimestamp(seconds, dt.UTC))
        elif mode != "auto":
            raise ExportError(f"no {mode} was recorded for this source at scan time", source=uri)
        else:
            out.append(None)
    return out


def _icechunk_etag(uri: str, etag: str) -> str:
    bare = etag.strip('"')
    # local files: object_store quotes its ETag and Icechunk strips one pair
    # (``vzsql.writers.icechunk``'s docstring)
    return f'""{bare}""' if local_path(uri) is not None else etag


# -- virtual chunk containers ----------------------------------------------------------------
def container_prefixes(uris: list[str]) -> list[str]:
    """One URL prefix per directory (local) or bucket (object stores), nested ones merged."""
    prefixes = set()
    for uri in uris:
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            prefixes.add(f"file://{PurePosixPath(parsed.path).parent.as_posix().rstrip('/')}/")
        elif parsed.scheme and parsed.netloc:
            prefixes.add(f"{parsed.scheme}://{parsed.netloc}/")
        else:
            raise ExportError("source URI has no scheme Icechunk can reference", source=uri)
    ordered = sorted(prefixes, key=len)
    kept: list[str] = []
    for p in ordered:
        if not any(p.startswith(k) for k in kept):
            kept.append(p)
    return sorted(kept)


def _container(prefix: str, storage_options: dict[str, Any]) -> tuple[Any, Any]:
    """The ``VirtualChunkContainer`` and the credential that authorises reading from it."""
    import icechunk as ic

    quiet_icechunk_logs()

    scheme = prefix.split("://", 1)[0]
    if scheme == "file":
        root = prefix[len("file://") :]
        return (
            ic.VirtualChunkContainer(prefix, ic.local_filesystem_store(root)),
            ic.credentials.LocalFileSystemAccess,
        )
    if scheme in ("s3", "s3a"):
        opts = dict(storage_options)
        opts.update(opts.pop("client_kwargs", None) or {})
        endpoint = opts.get("endpoint_url") or opts.get("endpoint")
        store = ic.s3_store(
            region=opts.get("region_name") or opts.get("region"),
            endpoint_url=endpoint,
            allow_http=bool(endpoint and str(endpoint).startswith("http://")),
            anonymous=bool(opts.get("anon")),
            s3_compatible=bool(endpoint),
            force_path_style=bool(endpoint),
        )
        key, secret = opts.get("key"), opts.get("secret")
        if key and secret:
            cred: Any = ic.s3_static_credentials(
                access_key_id=key, secret_access_key=secret, session_token=opts.get("token")
            )
        elif opts.get("anon"):
            cred = ic.s3_anonymous_credentials()
        else:
            cred = ic.s3_from_env_credentials()
        return ic.VirtualChunkContainer(prefix, store), ic.Credentials.S3(cred)
    if scheme in ("http", "https"):
        return ic.VirtualChunkContainer(prefix, ic.http_store()), ic.credentials.HttpAccess
    raise ExportError(f"vzsql cannot configure Icechunk containers for {scheme}:// sources")


# -- repository ------------------------------------------------------------------------------
@dataclass
class _Target:
    storage: Any
    local_dir: str | None  # set for local paths
    repo: Any = None  # an already open Repository passed by the caller


def repository_target(target: Any) -> _Target:
    """Where ``target`` (a path, ``icechunk.Storage`` or ``Repository``) keeps the repository."""
    import icechunk as ic

    quiet_icechunk_logs()

    if isinstance(target, ic.Repository):
        return _Target(target.storage, None, target)
    if isinstance(target, ic.Storage):
        return _Target(target, None)
    text = os.fspath(target)
    if urlparse(text).scheme not in ("", "file"):
        raise ExportError(
            "pass an icechunk Storage (e.g. icechunk.s3_storage(...)) for remote repositories",
            source=text,
        )
    path = os.path.abspath(local_path(text) or text)
    return _Target(ic.local_filesystem_storage(path), path)


def open_repository(
    target: Any,
    prefixes: list[str],
    storage_options: dict[str, Any] | None = None,
    splitting: Any = None,
) -> tuple[Any, bool]:
    """Open (or create) the repository with containers for ``prefixes`` authorised.

    Returns the repository and whether this call created it. The new containers are in the
    repository's config but not saved yet (``save_config`` after the commit). A repository
    created here gets the manifest ``splitting`` (``vzsql.writers.icechunk_splitting``).
    """
    import icechunk as ic

    quiet_icechunk_logs()

    t = repository_target(target)
    created = False
    try:
        exists = t.repo is not None or ic.Repository.exists(t.storage)
        config = (t.repo.config if t.repo is not None else None) or (
            ic.Repository.fetch_config(t.storage) if exists else None
        )
        config = config or ic.RepositoryConfig.default()
        known = set((config.virtual_chunk_containers or {}).keys())
        creds: dict[str, Any] = {}
        for prefix in prefixes:
            cont, cred = _container(prefix, storage_options or {})
            covering = [k for k in known if prefix.startswith(k)]
            if not covering:
                config.set_virtual_chunk_container(cont)
            creds[covering[0] if covering else prefix] = cred
        if t.repo is not None:
            return t.repo.reopen(config=config, authorize_virtual_chunk_access=creds), False
        if exists:
            repo = ic.Repository.open(
                t.storage, config=config, authorize_virtual_chunk_access=creds
            )
            return repo, False
        if t.local_dir is not None:
            if os.path.exists(t.local_dir) and os.listdir(t.local_dir):
                raise ExportError(
                    "destination exists and is not an Icechunk repository", source=t.local_dir
                )
            created = not os.path.exists(t.local_dir)
            os.makedirs(t.local_dir, exist_ok=True)
        if splitting is not None:
            config.manifest = ic.ManifestConfig(splitting=splitting)
        repo = ic.Repository.create(t.storage, config=config, authorize_virtual_chunk_access=creds)
        return repo, True
    except VzsqlError:
        raise
    except Exception as e:
        if created and t.local_dir is not None:
            shutil.rmtree(t.local_dir, ignore_errors=True)
        raise ExportError(
            f"cannot open or create the Icechunk repository: {_first_line(e)}",
            source=t.local_dir or str(target),
        ) from e


def open_repo_readonly(target: Any, storage_options: dict[str, Any] | None = None) -> ic.Repository:
    """Open a repository with **every** virtual chunk container in its config authorised.

    Use for repositories you trust (e.g. written by ``to_icechunk``):
    ``open_repo_readonly(path).readonly_session("main").store`` then reads through
    ``xr.open_zarr(store, consolidated=False)``. The same as passing
    ``authorize_virtual_chunk_access={prefix: credential}`` to ``icechunk.Repository.open``.
    """
    import icechunk as ic

    quiet_icechunk_logs()

    t = repository_target(target)
    config = ic.Repository.fetch_config(t.storage)
    if config is None and not ic.Repository.exists(t.storage):
        raise ExportError("no Icechunk repository here", source=t.local_dir or str(target))
    prefixes = list(((config.virtual_chunk_containers if config else None) or {}).keys())
    creds = {p: _container(p, storage_options or {})[1] for p in prefixes}
    try:
        return ic.Repository.open(t.storage, authorize_virtual_chunk_access=creds)
    except Exception as e:
        raise ExportError(
            f"cannot open Icechunk repository: {_first_line(e)}", source=str(target)
        ) from e


def commit_session(session: Any, message: str, metadata: dict[str, Any] | None = None) -> str:
    """Commit; another writer's commit to the branch becomes a ``ConcurrentWriteError``."""
    import icechunk as ic

    quiet_icechunk_logs()

    try:
        return str(session.commit(message, metadata=metadata))
    except ic.ConflictError as e:
        raise ConcurrentWriteError(
            f"another writer committed to branch {session.branch!r} first "
            f"(expected parent {e.expected_parent}, found {e.actual_parent}); nothing was "
            "committed: reopen and write again"
        ) from e
    except Exception as e:
        raise ExportError(f"Icechunk commit failed: {_first_line(e)}") from e

"""Manifest tables -> one Icechunk commit (new repository, overwrite, or append along a dim).

``to_icechunk`` creates or opens the repository, registers a virtual chunk container for
every URL prefix the sources live under (``file:///dir/``, ``s3://bucket/``), writes the
``zarr.json`` documents built by ``vzsql.zarr_meta``, the references in bulk
(``icechunk_refs``) and the inline chunks as native chunks, and commits once. The container
configuration is saved only after the commit succeeded, and a repository created by a call
that then fails is removed again, so bad input leaves the destination as it was.

Checksums: every reference carries its source's checksum *as recorded at scan time*, so a
file changed after scanning fails loudly when read through Icechunk:

- ``etag`` (default when recorded). Icechunk 2.3 strips one pair of quotes from an ETag
  before comparing it with object_store's, and object_store quotes the ETags it computes
  for local files (``"inode-mtime_us-size"``); local ETags are therefore handed over
  quoted twice. ``tests/test_icechunk_export.py`` pins this behaviour.
- ``last_modified``: ``sources.mtime`` rounded *up* to the whole second (Icechunk stores
  seconds and reads with If-Unmodified-Since).

Reading a repository back needs its containers authorised: ``open_repo_readonly``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import ConcurrentWriteError, ExportError, VzsqlError
from vzsql.icechunk_logs import quiet_icechunk_logs
from vzsql.sources import local_path
from vzsql.tables import Tables
from vzsql.writers.icechunk_batches import (
    MAX_REFS_PER_COMMIT,
    SLICE_ROWS,
    chunk_slices,
    commit_batches,
    slice_rows,
)
from vzsql.writers.icechunk_refs import (
    Checksum,
    SourceRefs,
    index_matrix,
    write_documents,
    write_native_chunks,
    write_virtual_refs,
)
from vzsql.writers.ref_bounds import check_refs_inside_sources
from vzsql.zarr_meta import hierarchy

if TYPE_CHECKING:
    import icechunk as ic

    quiet_icechunk_logs()

CHECKSUM_MODES = ("auto", "etag", "last_modified", "none")
SIDECAR_KEY = "vzsql"


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
    # local files: object_store quotes its ETag and Icechunk strips one pair (module docstring)
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


def _target(target: Any) -> _Target:
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
    target: Any, prefixes: list[str], storage_options: dict[str, Any] | None = None
) -> tuple[Any, bool]:
    """Open (or create) the repository with containers for ``prefixes`` authorised.

    Returns the repository and whether this call created it. The new containers are in the
    repository's config but not saved yet (``save_config`` after the commit).
    """
    import icechunk as ic

    quiet_icechunk_logs()

    t = _target(target)
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

    t = _target(target)
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


# -- writing ---------------------------------------------------------------------------------
def arrays_in_order(chunks: pa.Table) -> list[tuple[str, pa.Table]]:
    """``chunks`` split per array (one stable sort, no per-row Python)."""
    if chunks.num_rows == 0:
        return []
    enc = chunks["array"].combine_chunks().dictionary_encode()
    if len(enc.dictionary) == 1:
        return [(str(enc.dictionary[0]), chunks)]
    codes = enc.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    sorted_chunks = chunks.take(pa.array(order))
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(order)]])
    names = enc.dictionary.to_pylist()
    return [
        (names[int(codes[order[s]])], sorted_chunks.slice(int(s), int(e - s)))
        for s, e in zip(starts, ends, strict=True)
    ]


def write_chunks(
    store: Any,
    tables: Tables,
    refs: SourceRefs,
    shifts: dict[str, np.ndarray] | None = None,
    skip: set[str] | None = None,
    slices: list[tuple[str, Any]] | None = None,
) -> tuple[int, int]:
    """Write references and inline chunks (every array's, or those of ``slices``, see
    ``chunk_slices``); return the (virtual, native) counts."""
    ndims = {
        r["array"]: len(r["shape"] or [])
        for r in tables.arrays.select(["array", "shape"]).to_pylist()
    }
    n_virtual = n_native = 0
    for name, rows in chunk_slices(tables.chunks) if slices is None else slices:
        if skip and name in skip:
            continue
        if name not in ndims:
            raise ExportError("chunks of an array missing from the arrays table", array=name)
        part = slice_rows(tables.chunks, rows)
        index = index_matrix(part["index"], ndims[name])
        if shifts and name in shifts:
            index = index + shifts[name]
        inline = pc.is_valid(part["data"]).to_numpy(zero_copy_only=False)
        if inline.any():
            n_native += write_native_chunks(
                store, name, index[inline], part["data"].filter(pa.array(inline)).combine_chunks()
            )
        virtual = ~inline
        if virtual.any():
            sel = pa.array(virtual)
            n_virtual += write_virtual_refs(
                store,
                name,
                index[virtual],
                part["source_id"].filter(sel).to_numpy(zero_copy_only=False),
                part["offset"].filter(sel).to_numpy(zero_copy_only=False).astype(np.uint64),
                part["length"].filter(sel).to_numpy(zero_copy_only=False).astype(np.uint64),
                refs,
            )
    return n_virtual, n_native


def sidecar(tables: Tables) -> dict[str, Any]:
    """What Zarr metadata cannot hold, kept in the commit metadata for ``from_icechunk``."""
    sources = tables.sources.select(
        ["uri", "format", "size", "mtime", "etag", "scanned_at"]
    ).to_pylist()
    for s in sources:
        if s["scanned_at"] is not None:
            s["scanned_at"] = s["scanned_at"].isoformat()
    arrays = {
        r["array"]: {"chunk_shape": r["chunk_shape"], "attr_dtypes": r["attr_dtypes"]}
        for r in tables.arrays.select(["array", "chunk_shape", "attr_dtypes"]).to_pylist()
    }
    groups = {
        r["group"]: r["attr_dtypes"]
        for r in tables.groups.select(["group", "attr_dtypes"]).to_pylist()
    }
    return {"format_version": 1, "sources": sources, "arrays": arrays, "groups": groups}


def documents(docs: dict[str, dict[str, Any]]) -> dict[str, bytes]:
    """The documents as the bytes written to a store."""
    return {k: json.dumps(v).encode() for k, v in docs.items()}


def icechunk_documents(docs: dict[str, dict[str, Any]]) -> dict[str, bytes]:
    """``documents`` with rectilinear grids spelled the way Icechunk 2.3 parses them.

    Zarr allows a bare integer for a uniform dimension of a rectilinear grid; Icechunk
    only parses lists, so such a dimension is written run-length encoded (``[[c, n]]``),
    which Zarr reads identically.
    """
    out = {}
    for key, doc in docs.items():
        grid = doc.get("chunk_grid") or {}
        if grid.get("name") == "rectilinear":
            shapes = grid["configuration"]["chunk_shapes"]
            spelled = [
                [[int(c), max(1, -(-int(n) // int(c)))]] if isinstance(c, int) else c
                for c, n in zip(shapes, doc["shape"], strict=True)
            ]
            config = dict(grid["configuration"], chunk_shapes=spelled)
            doc = dict(doc, chunk_grid=dict(grid, configuration=config))
        out[key] = json.dumps(doc).encode()
    return out


def to_icechunk(
    tables: Tables,
    target: Any,
    *,
    branch: str = "main",
    message: str | None = None,
    tag: str | None = None,
    append_dim: str | None = None,
    overwrite: bool = False,
    checksum: str = "auto",
    storage_options: dict[str, Any] | None = None,
    retries: int = 0,
    max_refs_per_commit: int = MAX_REFS_PER_COMMIT,
) -> str:
    """Write ``tables`` to an Icechunk repository as one commit; return the snapshot id.

    ``target``: a local path, an ``icechunk.Storage`` or an open ``icechunk.Repository``.
    Without ``append_dim`` arrays already in the branch are an error unless ``overwrite``
    (which replaces the branch's whole hierarchy). With ``append_dim`` arrays having that
    dimension grow along it (an empty branch is simply written); sources the branch already
    references are refused (``DuplicateSourceError``). If another writer commits first,
    ``ConcurrentWriteError`` is raised, or with ``retries`` the write is redone on the new tip.
    ``checksum``: ``auto`` | ``etag`` | ``last_modified`` | ``none`` (module docstring).

    More than ``max_refs_per_commit`` chunk rows (Icechunk's per-commit limit) are written
    as several commits: the first writes every ``zarr.json`` and the first references,
    each next one more references (messages end in ``(part i/k)``). Every commit is a valid
    repository (chunks not written yet read as the fill value). If a later part fails, the
    branch is reset to where it was before the export (only if nobody else committed since),
    and a repository this call created is removed; the last snapshot id is returned.
    """
    check_refs_inside_sources(tables)
    refs = source_refs(tables, checksum)
    used = pc.unique(tables.chunks["source_id"].drop_null()).to_pylist()
    prefixes = container_prefixes(
        [refs.uri[refs.index_of[int(s)]] for s in used if int(s) in refs.index_of]
    )
    batches = commit_batches(
        chunk_slices(tables.chunks, min(SLICE_ROWS, max_refs_per_commit)), max_refs_per_commit
    )
    local_dir = _target(target).local_dir
    dir_existed = local_dir is not None and os.path.exists(local_dir)
    repo, created = open_repository(target, prefixes, storage_options)
    start: str | None = None  # the branch tip before the export
    snap: str | None = None
    try:
        if tag is not None and tag in repo.list_tags():
            raise ExportError(f"tag {tag!r} already exists")
        if branch not in repo.list_branches():
            repo.create_branch(branch, repo.lookup_branch("main"))
        start = repo.lookup_branch(branch)
        what = f"append along {append_dim}" if append_dim else "write"
        message = message or f"vzsql: {what} of {tables.sources.num_rows} sources"
        meta = {SIDECAR_KEY: sidecar(tables)}
        k = len(batches)
        for attempt in range(retries + 1):
            session = repo.writable_session(branch)
            plan = write_into(
                session,
                repo,
                tables,
                refs,
                append_dim=append_dim,
                overwrite=overwrite,
                slices=batches[0],
            )
            try:
                snap = commit_session(session, message + (f" (part 1/{k})" if k > 1 else ""), meta)
                break
            except ConcurrentWriteError:
                if attempt == retries:
                    raise
                start = repo.lookup_branch(branch)
        for i, batch in enumerate(batches[1:], start=2):
            session = repo.writable_session(branch)
            write_chunks(session.store, tables, refs, plan[0], plan[1], slices=batch)
            snap = commit_session(session, f"{message} (part {i}/{k})", meta)
        repo.save_config()
        assert snap is not None
        if tag is not None:
            repo.create_tag(tag, snap)
        return snap
    except BaseException:
        if created and local_dir is not None:  # leave no half-made repository behind
            _remove_new_repository(local_dir, keep_dir=dir_existed)
        elif snap is not None and start is not None and snap != start:
            _undo_parts(repo, branch, start, snap)
        raise


def _undo_parts(repo: Any, branch: str, start: str, last: str) -> None:
    """Point ``branch`` back at ``start`` if its tip is still our commit ``last``."""
    with contextlib.suppress(Exception):  # someone else committed on top: keep their work
        repo.reset_branch(branch, start, from_snapshot_id=last)


def _remove_new_repository(path: str, *, keep_dir: bool) -> None:
    if not keep_dir:
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in os.listdir(path):
        full = os.path.join(path, child)
        shutil.rmtree(full, ignore_errors=True) if os.path.isdir(full) else os.unlink(full)


def source_refs(tables: Tables, checksum: str = "auto") -> SourceRefs:
    """URIs and per-source checksums in the form ``write_virtual_refs`` takes."""
    return SourceRefs(
        uri=tables.sources["uri"].to_pylist(),
        checksum=source_checksums(tables.sources, checksum),
        index_of={int(s): i for i, s in enumerate(tables.sources["source_id"].to_pylist())},
    )


def write_into(
    session: Any,
    repo: Any,
    tables: Tables,
    refs: SourceRefs,
    *,
    append_dim: str | None = None,
    overwrite: bool = False,
    slices: list[tuple[str, Any]] | None = None,
) -> tuple[dict[str, np.ndarray] | None, set[str] | None]:
    """Write the tables (or the chunk ``slices`` of them) into a writable session, no commit:
    fresh, overwrite or append. Returns the index shifts and skipped arrays of an append
    (``None, None`` otherwise), which later parts of a split write reuse."""
    from vzsql.writers.icechunk_append import check_new_sources, plan_append, read_array_docs

    store = session.store
    existing = read_array_docs(store)
    if append_dim is not None and existing:
        check_new_sources(session, repo, session.branch, tables, SIDECAR_KEY)
        plan = plan_append(tables, existing, append_dim)
        write_documents(store, icechunk_documents(plan.docs))
        write_chunks(store, tables, refs, shifts=plan.shifts, skip=plan.skip, slices=slices)
        return plan.shifts, plan.skip
    _write_fresh(store, tables, refs, existing, overwrite, slices)
    return None, None


def _write_fresh(
    store: Any,
    tables: Tables,
    refs: SourceRefs,
    existing: dict[str, Any],
    overwrite: bool,
    slices: list[tuple[str, Any]] | None = None,
) -> None:
    from zarr.core.sync import sync

    clash = sorted(set(existing) & set(tables.arrays["array"].to_pylist()))
    if existing and overwrite:
        sync(store.clear())
    elif clash:
        raise ExportError(
            f"{len(clash)} array(s) already in the repository (first: {clash[0]!r}); "
            "pass append_dim= to append or overwrite=True to replace",
            array=clash[0],
        )
    write_documents(store, icechunk_documents(hierarchy(tables)))
    write_chunks(store, tables, refs, slices=slices)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__

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
Checksums, containers, opening and committing live in ``icechunk_repo``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.errors import ConcurrentWriteError, ExportError
from vzsql.tables import Tables
from vzsql.writers.icechunk_batches import (
    SLICE_ROWS,
    chunk_slices,
    commit_batches,
    default_refs_per_commit,
    slice_rows,
)
from vzsql.writers.icechunk_refs import (
    SourceRefs,
    array_ndims,
    index_matrix,
    write_documents,
    write_native_chunks,
    write_virtual_refs,
)
from vzsql.writers.icechunk_repo import (
    commit_session,
    container_prefixes,
    open_repository,
    repository_target,
    source_checksums,
)
from vzsql.writers.icechunk_repo import (
    open_repo_readonly as open_repo_readonly,  # re-exported: README and tests import it here
)
from vzsql.writers.icechunk_splitting import REFS_PER_MANIFEST, manifest_splitting
from vzsql.writers.ref_bounds import check_refs_inside_sources
from vzsql.zarr_meta import hierarchy

if TYPE_CHECKING:
    from vzsql.resident import ResidentChunks

SIDECAR_KEY = "vzsql"


# -- writing ---------------------------------------------------------------------------------
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
    ndims = array_ndims(tables.arrays)
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
    max_refs_per_commit: int | None = None,
    refs_per_manifest: int | None = REFS_PER_MANIFEST,
    resident: ResidentChunks | None = None,
    con: Any = None,
) -> str:
    """Write ``tables`` to an Icechunk repository as one commit; return the snapshot id.

    ``target``: a local path, an ``icechunk.Storage`` or an open ``icechunk.Repository``.
    Without ``append_dim`` arrays already in the branch are an error unless ``overwrite``
    (which replaces the branch's whole hierarchy). With ``append_dim`` arrays having that
    dimension grow along it (an empty branch is simply written); sources the branch already
    references are refused (``DuplicateSourceError``). If another writer commits first,
    ``ConcurrentWriteError`` is raised, or with ``retries`` the write is redone on the new tip.
    ``checksum``: ``auto`` | ``etag`` | ``last_modified`` | ``none`` (module docstring).

    More than ``max_refs_per_commit`` chunk rows are written as several commits (None: as
    many as Icechunk's session can hold in the memory available now, ~1 KB each, at most
    Icechunk's per-commit limit of 50M; see ``default_refs_per_commit``): the first writes
    every ``zarr.json`` and the first references, each next one more references (messages
    end in ``(part i/k)``). Every commit is a valid
    repository (chunks not written yet read as the fill value). If a later part fails, the
    branch is reset to where it was before the export (only if nobody else committed since),
    and a repository this call created is removed; the last snapshot id is returned.

    A repository created here splits the manifest of every array with more than
    ``refs_per_manifest`` chunks along its first dimension (None: one manifest per array,
    Icechunk's default), so later commits and appends rewrite only the pieces they touch.

    ``resident``/``con``: the chunk rows of a manifest stored in DuckDB and a connection
    over its tables; the rows are then read a window at a time as they are written.
    """
    if max_refs_per_commit is None:
        max_refs_per_commit = default_refs_per_commit()
    check_refs_inside_sources(tables, con)
    refs = source_refs(tables, checksum)
    slice_size = min(SLICE_ROWS, max_refs_per_commit)
    if resident is None:
        used = pc.unique(tables.chunks["source_id"].drop_null()).to_pylist()
        slices = chunk_slices(tables.chunks, slice_size)
    else:
        used, slices = resident.source_ids(), resident.windows(slice_size)
    prefixes = container_prefixes(
        [refs.uri[refs.index_of[int(s)]] for s in used if int(s) in refs.index_of]
    )
    batches = commit_batches(slices, max_refs_per_commit)
    local_dir = repository_target(target).local_dir
    dir_existed = local_dir is not None and os.path.exists(local_dir)
    splitting = manifest_splitting(tables.grid, refs_per_manifest)
    repo, created = open_repository(target, prefixes, storage_options, splitting)
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

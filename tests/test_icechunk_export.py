"""``Manifest.to_icechunk``: values read back through Icechunk equal the netCDF originals,
checksums recorded at scan time make changed sources fail, bad input leaves nothing behind."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import icechunk as ic
import numpy as np
import pyarrow as pa
import pytest
import xarray as xr
from fixtures_icechunk import concat_time, scanned, write_day
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync

import vzsql
from vzsql.errors import ExportError
from vzsql.writers.icechunk import open_repo_readonly, source_checksums


def read_back(repo_path: Path) -> xr.Dataset:
    repo = open_repo_readonly(repo_path)
    return xr.open_zarr(repo.readonly_session("main").store, consolidated=False)


def assert_same(ds: xr.Dataset, ref: xr.Dataset) -> None:
    assert set(ds.variables) == set(ref.variables)
    for name in ref.variables:
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)
        assert ds[name].dims == ref[name].dims
    assert ds.attrs == ref.attrs
    assert ds["t2m"].attrs["units"] == ref["t2m"].attrs["units"]


@pytest.fixture()
def day(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    return write_day(tmp_path / "src" / "day0.nc", 0)


def test_values_read_back_through_icechunk_equal_the_originals(tmp_path: Path, day: Path) -> None:
    m = scanned(day)
    snap = m.to_icechunk(tmp_path / "repo", branch="main", message="ERA5 2020")
    with xr.open_dataset(day) as ref:
        assert_same(read_back(tmp_path / "repo").load(), ref.load())
    repo = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo")))
    assert next(repo.ancestry(branch="main")).message == "ERA5 2020"
    assert repo.lookup_branch("main") == snap
    # the container configuration is saved in the repository
    config = ic.Repository.fetch_config(ic.local_filesystem_storage(str(tmp_path / "repo")))
    assert config is not None
    assert list(config.virtual_chunk_containers or {}) == [f"file://{day.parent}/"]


def test_documented_icechunk_calls_read_the_repository(tmp_path: Path, day: Path) -> None:
    """The plain Icechunk calls a user writes (no vzsql on the reading side)."""
    scanned(day).to_icechunk(str(tmp_path / "repo"))
    repo = ic.Repository.open(
        ic.local_filesystem_storage(str(tmp_path / "repo")),
        authorize_virtual_chunk_access=ic.containers_credentials(
            {f"file://{day.parent}/": ic.credentials.LocalFileSystemAccess}
        ),
    )
    ds = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    with xr.open_dataset(day) as ref:
        np.testing.assert_array_equal(ds.t2m.values, ref.t2m.values)


def test_inline_chunks_are_native_and_refs_are_virtual(tmp_path: Path, day: Path) -> None:
    scanned(day).to_icechunk(tmp_path / "repo")
    session = open_repo_readonly(tmp_path / "repo").readonly_session("main")
    assert session.chunk_type("/time", [0]) != ic.ChunkType.virtual  # inline -> native/inline
    assert session.chunk_type("/t2m", [1, 1, 1]) == ic.ChunkType.virtual
    assert session.chunk_type("/lat", [0]) == ic.ChunkType.virtual


@pytest.mark.parametrize("checksum", ["auto", "last_modified"])
def test_modified_source_fails_the_read_with_the_checksum_error(
    tmp_path: Path, day: Path, checksum: str
) -> None:
    scanned(day).to_icechunk(tmp_path / "repo", checksum=checksum)
    assert read_back(tmp_path / "repo").t2m.values.size  # readable while the file is unchanged
    st = os.stat(day)
    write_day(day, 0)  # rewritten with the same content, later
    os.utime(day, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    with pytest.raises(
        ic.IcechunkError, match="checksum of the object owning the virtual chunk has changed"
    ):
        read_back(tmp_path / "repo").t2m.load()


def test_touch_alone_fails_the_read(tmp_path: Path, day: Path) -> None:
    scanned(day).to_icechunk(tmp_path / "repo")
    st = os.stat(day)
    os.utime(day, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(ic.IcechunkError, match="checksum"):
        read_back(tmp_path / "repo").t2m.load()


def test_checksums_come_from_the_scan_record_not_the_write_time(day: Path) -> None:
    m = scanned(day)
    etag = m.table("sources")["etag"][0].as_py()
    assert source_checksums(m.table("sources")) == [f'""{etag}""']
    mtime_ns = m.table("sources")["mtime"][0].as_py()
    (modified,) = source_checksums(m.table("sources"), "last_modified")
    assert isinstance(modified, dt.datetime)
    assert 0 < modified.timestamp() * 1e9 - mtime_ns <= 1e9  # rounded up to the second
    assert source_checksums(m.table("sources"), "none") == [None]


def test_tag_branch_and_one_commit_per_call(tmp_path: Path, day: Path) -> None:
    m = scanned(day)
    snap = m.to_icechunk(tmp_path / "repo", message="v1", tag="v1")
    repo = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo")))
    assert repo.lookup_tag("v1") == snap
    assert len(list(repo.ancestry(branch="main"))) == 2  # the repository's root + our commit
    dev = m.to_icechunk(tmp_path / "repo", branch="dev", message="on dev", overwrite=True)
    repo = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo")))
    assert repo.lookup_branch("dev") == dev and repo.lookup_branch("main") == snap
    with pytest.raises(ExportError, match="tag 'v1' already exists"):
        m.to_icechunk(tmp_path / "repo", branch="dev", tag="v1", overwrite=True)
    assert (
        ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo"))).lookup_branch("dev")
        == dev
    )


def test_existing_arrays_need_overwrite_or_append(tmp_path: Path, day: Path) -> None:
    m = scanned(day)
    snap = m.to_icechunk(tmp_path / "repo")
    with pytest.raises(ExportError, match="already in the repository"):
        m.to_icechunk(tmp_path / "repo")
    storage = ic.local_filesystem_storage(str(tmp_path / "repo"))
    assert ic.Repository.open(storage).lookup_branch("main") == snap
    other = write_day(day.parent / "day5.nc", 5)
    m.to_icechunk(tmp_path / "repo", overwrite=True)  # same content again: allowed
    scanned(other).to_icechunk(tmp_path / "repo", overwrite=True)
    with xr.open_dataset(other) as ref:
        assert_same(read_back(tmp_path / "repo").load(), ref.load())


def test_rectilinear_arrays_round_trip(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    files = [
        write_day(tmp_path / "src" / "a.nc", 0, nt=2, chunks=(2, 2, 3)),
        write_day(tmp_path / "src" / "b.nc", 2, nt=3, chunks=(3, 2, 3)),
        write_day(tmp_path / "src" / "c.nc", 5, nt=1, chunks=(1, 2, 3)),
    ]
    m = concat_time([scanned(f) for f in files])
    m.to_icechunk(tmp_path / "repo")
    session = open_repo_readonly(tmp_path / "repo").readonly_session("main")
    raw = sync(session.store.get("t2m/zarr.json", default_buffer_prototype()))
    assert raw is not None
    doc = json.loads(raw.to_bytes())
    assert doc["chunk_grid"]["name"] == "rectilinear"
    refs = [xr.open_dataset(f) for f in files]
    try:
        expected = xr.concat(refs, dim="time", data_vars="minimal", coords="minimal")
        assert_same(read_back(tmp_path / "repo").load(), expected.load())
    finally:
        for r in refs:
            r.close()


def test_destination_under_a_file_is_a_clear_error(tmp_path: Path, day: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ExportError, match="cannot open or create the Icechunk repository"):
        scanned(day).to_icechunk(blocker / "repo")
    assert blocker.read_text() == "not a directory"


def test_read_only_directory_is_a_clear_error(tmp_path: Path, day: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(ExportError, match="cannot open or create the Icechunk repository"):
            scanned(day).to_icechunk(locked / "repo")
        assert not (locked / "repo").exists()
    finally:
        locked.chmod(0o700)


def test_non_repository_directory_is_refused(tmp_path: Path, day: Path) -> None:
    dest = tmp_path / "notes"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an Icechunk repository"):
        scanned(day).to_icechunk(dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_refs_outside_their_file_are_refused_before_writing(tmp_path: Path, day: Path) -> None:
    m = scanned(day)
    chunks = m.table("chunks").to_pylist()
    bad = next(c for c in chunks if c["array"] == "t2m" and c["index"] == [1, 1, 1])
    bad["offset"] = m.table("sources")["size"][0].as_py() - 2
    table = pa.Table.from_pylist(chunks, schema=m.table("chunks").schema)
    broken = vzsql.Manifest(m.tables.with_tables(chunks=table))
    with pytest.raises(ExportError, match=r"ends past|cannot be served") as e:
        broken.to_icechunk(tmp_path / "repo")
    assert e.value.array == "t2m" and e.value.chunk == (1, 1, 1) and e.value.source is not None
    assert not (tmp_path / "repo").exists()
    # an existing repository is left at its snapshot
    snap = m.to_icechunk(tmp_path / "repo2")
    with pytest.raises(ExportError):
        broken.to_icechunk(tmp_path / "repo2", overwrite=True)
    assert (
        ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo2"))).lookup_branch(
            "main"
        )
        == snap
    )


def test_s3_sources_get_an_s3_container_with_the_endpoint(
    tmp_path: Path, day: Path, s3: Any
) -> None:
    """Sources on S3 (moto): the container carries the endpoint; the ETag guards the object."""
    key = f"icechunk/{tmp_path.name}/day0.nc"
    uri = s3.upload(day, key)
    m = vzsql.scan(uri, storage_options=s3.storage_options)
    m.to_icechunk(tmp_path / "repo", storage_options=s3.storage_options)
    config = ic.Repository.fetch_config(ic.local_filesystem_storage(str(tmp_path / "repo")))
    assert config is not None
    assert list(config.virtual_chunk_containers or {}) == [f"s3://{s3.bucket}/"]
    repo = open_repo_readonly(tmp_path / "repo", storage_options=s3.storage_options)
    ds = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    with xr.open_dataset(day) as ref:
        np.testing.assert_array_equal(ds.t2m.values, ref.t2m.values)
    other = write_day(tmp_path / "other.nc", 7)  # the object is replaced by different bytes
    s3.upload(other, key)
    repo = open_repo_readonly(tmp_path / "repo", storage_options=s3.storage_options)
    with pytest.raises(ic.IcechunkError, match="checksum"):
        xr.open_zarr(repo.readonly_session("main").store, consolidated=False).t2m.load()


def test_interleaved_sources_take_the_per_chunk_path(
    tmp_path: Path, day: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group whose bounding box is mostly holes is written chunk by chunk, still correct."""
    from vzsql.writers import icechunk_refs

    m = scanned(day)
    calls: list[int] = []
    real = icechunk_refs._write_sparse

    def spy(store: Any, array: str, index: Any, *args: Any) -> None:
        calls.append(len(index))
        real(store, array, index, *args)

    monkeypatch.setattr(icechunk_refs, "MAX_BOX_FILL", 0)
    monkeypatch.setattr(icechunk_refs, "MIN_BOX_SLACK", 0)
    monkeypatch.setattr(icechunk_refs, "_write_sparse", spy)
    m.to_icechunk(tmp_path / "repo")
    assert sum(calls) == m.sql("SELECT count(*) FROM chunks WHERE data IS NULL").fetchall()[0][0]
    with xr.open_dataset(day) as ref:
        assert_same(read_back(tmp_path / "repo").load(), ref.load())

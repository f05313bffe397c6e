"""Sources on S3 (moto on 127.0.0.1): scanned with ranged reads only, etags recorded,
changes found by check, values read back; slow and failing reads retried within limits."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

import vzsql
from vzsql.errors import RemoteReadError
from vzsql.remote_io import FaultPlan, ReadPolicy, read_stats, reset_read_stats


def _write(path: Path, fmt: str, seed: int) -> Path:
    """A netCDF file of about 4 MB of incompressible data (so whole downloads would show)."""
    rng = np.random.default_rng(seed)
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", 64)
        ds.createDimension("x", 16384)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = np.arange(64)
        kw = {"chunksizes": (8, 16384)} if fmt == "NETCDF4" else {}
        v = ds.createVariable("v", "f4", ("time", "x"), **kw)
        v.units = "K"
        v[:] = rng.random((64, 16384), dtype=np.float32)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("s3src")
    return {
        "nc4": _write(d / "a.nc", "NETCDF4", 1),
        "nc3": _write(d / "b.nc", "NETCDF3_64BIT_OFFSET", 2),
    }


@pytest.mark.parametrize("kind", ["nc4", "nc3"])
def test_scan_ranged_reads_etag_and_read(s3, files, kind, tmp_path) -> None:
    local = files[kind]
    uri = s3.upload(local)
    reset_read_stats()
    m = vzsql.scan(uri, storage_options=s3.storage_options)

    stats = read_stats()[uri]
    size = local.stat().st_size
    assert stats.requests >= 1
    assert stats.bytes < size // 4, (stats.bytes, size)  # metadata only, never the whole file
    assert stats.max_request < size // 4

    src = m.table("sources").to_pylist()
    assert [r["uri"] for r in src] == [uri]
    key = uri.split("/", 3)[3]
    head = s3.client.head_object(Bucket=s3.bucket, Key=key)
    assert src[0]["etag"] == head["ETag"] and src[0]["size"] == size

    got = m.to_xarray(storage_options=s3.storage_options).load()
    xr.testing.assert_identical(got, xr.open_dataset(local).load())

    # the object is replaced: check finds the changed etag; the recorded manifest is stale
    assert m.check(storage_options=s3.storage_options, checks=["source_changed"]).num_rows == 0
    other = _write(
        tmp_path / f"other-{kind}.nc", "NETCDF4" if kind == "nc4" else "NETCDF3_64BIT_OFFSET", 99
    )
    s3.upload(other, key=key)
    problems = m.check(storage_options=s3.storage_options, checks=["source_changed"])
    assert problems.num_rows == 1
    row = problems.to_pylist()[0]
    assert row["source"] == uri and "etag" in row["detail"]


def test_failing_reads_are_retried_then_reported(s3, files) -> None:
    uri = s3.upload(files["nc4"])
    reset_read_stats()
    flaky = ReadPolicy(retries=3, backoff=0.01, faults=FaultPlan(fail_first=2))
    m = vzsql.scan(uri, storage_options=s3.storage_options, read_policy=flaky)
    assert m.info()["chunks"] > 0
    stats = read_stats()[uri]
    assert stats.retries >= 2 and stats.failures >= 2
    assert all("injected fault" in e for e in stats.errors)

    dead = ReadPolicy(retries=2, backoff=0.01, faults=FaultPlan(fail_always=True))
    with pytest.raises(RemoteReadError, match="after 3 attempts"):
        vzsql.scan(uri, storage_options=s3.storage_options, read_policy=dead)
    good = s3.upload(files["nc3"])
    rec = vzsql.scan([uri], storage_options=s3.storage_options, read_policy=dead, on_error="record")
    failure = rec.failures.to_pylist()
    assert [f["uri"] for f in failure] == [uri]
    assert failure[0]["error"] == "RemoteReadError" and "injected fault" in failure[0]["reason"]
    assert vzsql.scan(good, storage_options=s3.storage_options).info()["sources"] == 1


def test_slow_reads_time_out_and_are_retried(s3, files) -> None:
    uri = s3.upload(files["nc3"])
    reset_read_stats()
    slow = ReadPolicy(
        retries=2, backoff=0.01, timeout=0.3, faults=FaultPlan(slow_first=1, slow_seconds=1.0)
    )
    m = vzsql.scan(uri, storage_options=s3.storage_options, read_policy=slow)
    assert m.info()["arrays"] == 2
    stats = read_stats()[uri]
    assert stats.failures >= 1 and any("TimeoutError" in e for e in stats.errors)

    always_slow = ReadPolicy(
        retries=1, backoff=0.01, timeout=0.2, faults=FaultPlan(slow_first=100, slow_seconds=0.5)
    )
    with pytest.raises(RemoteReadError, match=r"longer than 0\.2 s"):
        vzsql.scan(uri, storage_options=s3.storage_options, read_policy=always_slow)


def test_isolated_remote_scan(s3, files) -> None:
    """Child-process scans reach S3 too (options and policy travel to the child)."""
    uri = s3.upload(files["nc4"])
    m = vzsql.scan(
        [uri],
        storage_options=s3.storage_options,
        timeout=60,
        read_policy=ReadPolicy(retries=3, backoff=0.01, faults=FaultPlan(fail_first=1)),
    )
    assert m.failures.num_rows == 0 and m.info()["chunks"] > 0


@pytest.mark.parametrize("kind", ["nc4", "nc3"])
def test_one_metadata_request_per_object(s3, files, kind, monkeypatch) -> None:
    """Format detection, the scanner's stat and its open share one HEAD of the object."""
    import s3fs

    uri = s3.upload(files[kind], key=f"heads-{kind}.nc")
    asked: list[str] = []
    real_info = s3fs.S3FileSystem._info

    async def counting_info(self, path, *args, **kwargs):  # a spy: the server still answers
        asked.append(path)
        return await real_info(self, path, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_info", counting_info)
    s3fs.S3FileSystem.clear_instance_cache()  # new instances mirror the spy into .info()
    m = vzsql.scan(uri, storage_options=s3.storage_options)
    assert m.info()["sources"] == 1
    assert len(asked) == 1, asked
    s3fs.S3FileSystem.clear_instance_cache()

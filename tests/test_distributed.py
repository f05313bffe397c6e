"""Distributed scanning: a real dask.distributed LocalCluster (2 worker processes) scans 20
files through ``client.get_executor()``; results come back as Arrow tables and are merged."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pyarrow as pa
import pytest
import xarray as xr

import vzsql
from vzsql.scan import scan_outcomes
from vzsql.scanners import detect_format, get_scanner
from vzsql.tables import Tables

distributed = pytest.importorskip("distributed")

N_FILES = 20


def pid_scanner(uri: str, *, storage_options: dict[str, Any] | None = None) -> Tables:
    """The real scanner, noting the scanning process's id in an extra ``sources`` column."""
    t = get_scanner(detect_format(uri))(uri, storage_options=storage_options)
    pid = pa.array([os.getpid()] * t.sources.num_rows, pa.int64())
    return Tables(**{**t.as_dict(), "sources": t.sources.append_column("pid", pid)})


def _series(folder: Path) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    paths = []
    for day in range(N_FILES):
        path = folder / f"day-{day:02d}.nc"
        with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
            ds.createDimension("time", None)
            ds.createDimension("x", 50)
            t = ds.createVariable("time", "f8", ("time",))
            t.units = "hours since 2021-01-01"
            t[:] = np.arange(day * 24, day * 24 + 24)
            v = ds.createVariable("v", "f4", ("time", "x"), chunksizes=(6, 50), zlib=True)
            v[:] = rng.random((24, 50), dtype=np.float32)
        paths.append(path)
    return paths


def test_local_cluster_scan(tmp_path: Path) -> None:
    paths = _series(tmp_path / "series")
    uris = [p.as_uri() for p in paths]
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        executor = client.get_executor()
        outcomes = scan_outcomes(uris, executor=executor, scanner=pid_scanner)
        m = vzsql.scan(paths, executor=executor)

    assert [o.uri for o in outcomes] == uris and all(o.failure is None for o in outcomes)
    pids = {o.tables.sources["pid"][0].as_py() for o in outcomes if o.tables is not None}
    assert len(pids) == 2 and os.getpid() not in pids  # both worker processes did work
    assert all(isinstance(o.tables.chunks, pa.Table) for o in outcomes if o.tables is not None)

    local = vzsql.scan(paths)
    for name, table in m.tables.as_dict().items():
        other = local.table(name)
        if name == "sources":
            table, other = table.drop_columns(["scanned_at"]), other.drop_columns(["scanned_at"])
        assert table.equals(other), name
    assert m.info()["sources"] == N_FILES
    expected = xr.open_mfdataset(paths, combine="by_coords")
    xr.testing.assert_identical(m.to_xarray().load(), expected.load())

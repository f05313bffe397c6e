"""Scanning through any concurrent.futures.Executor gives the same manifest."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pyarrow as pa
import pytest

from tests.fixtures_archive import monthly_archive  # noqa: F401
from vzsql.scan import scan_files
from vzsql.tables import Tables


def _without_scan_time(t: Tables) -> dict[str, pa.Table]:
    d = t.as_dict()
    d["sources"] = d["sources"].drop_columns(["scanned_at"])
    return d


def test_threads_processes_and_dask_agree(monthly_archive):  # noqa: F811
    uris = [p.as_uri() for p in monthly_archive]
    seen: list[tuple[int, int]] = []
    with ThreadPoolExecutor(2) as pool:
        threads = scan_files(uris, executor=pool, progress=lambda d, n: seen.append((d, n)))
    assert seen[-1] == (3, 3)
    with ProcessPoolExecutor(2) as pool:
        procs = scan_files(uris, executor=pool)
    for a, b in zip(threads, procs, strict=True):
        for name, table in _without_scan_time(a).items():
            assert table.equals(_without_scan_time(b)[name]), name


def test_dask_distributed_executor(monthly_archive):  # noqa: F811
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        parts = scan_files([p.as_uri() for p in monthly_archive], executor=client.get_executor())
    assert [p.sources.column("uri")[0].as_py() for p in parts] == [
        p.as_uri() for p in monthly_archive
    ]
    assert all(p.chunks.num_rows > 0 for p in parts)


def test_many_files_are_scanned_in_reused_children_by_default(tmp_path, monkeypatch):
    """With no executor, ``AUTO_ISOLATE_FILES`` files or more are scanned in reused child
    processes (faster than threads, crash-proof); the manifest equals a threaded scan."""
    import importlib

    import netCDF4
    import numpy as np

    import vzsql
    from vzsql import isolation

    scan_module = importlib.import_module("vzsql.scan")  # vzsql.scan is also the function

    monkeypatch.setattr(scan_module, "AUTO_ISOLATE_FILES", 12)
    paths = []
    for i in range(12):
        p = tmp_path / f"f{i:02d}.nc"
        with netCDF4.Dataset(p, "w") as ds:
            ds.createDimension("time", 1)
            ds.createDimension("x", 4)
            t = ds.createVariable("time", "f8", ("time",))
            t.units = "days since 2000-01-01"
            t[:] = [i]
            v = ds.createVariable("v", "f4", ("time", "x"), zlib=True)
            v[:] = np.full((1, 4), i, "f4")
        paths.append(str(p))
    threaded = vzsql.scan(paths, isolate=False)
    isolation._CHILDREN.close()
    assert not isolation._CHILDREN.idle
    default = vzsql.scan(paths)
    assert isolation._CHILDREN.idle  # children served the files and wait for more
    for name, table in threaded.tables.as_dict().items():
        if name == "sources":  # scanned_at differs
            table = table.drop_columns(["scanned_at"])
        assert default.table(name).select(table.column_names).equals(table), name
    isolation._CHILDREN.close()
    vzsql.scan(paths[:11])  # below the threshold: threads, no child
    assert not isolation._CHILDREN.idle

"""Real netCDF4 files (written by netCDF4.Dataset) and manifests of them for publish tests.

``scanned`` is ``vzsql.scan`` of one file with the ``time`` coordinate inlined (its bytes
copied into ``chunks.data``), so writers see inline chunks and references side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pyarrow as pa

import vzsql
from vzsql.manifest import Manifest

NY, NX = 4, 5


def write_day(
    path: Path,
    day: int,
    *,
    nt: int = 2,
    chunks: tuple[int, int, int] = (1, 2, 3),
    zlib: bool = True,
) -> Path:
    """One file of ``nt`` time steps starting at ``day`` (days since 2020-01-01)."""
    rng = np.random.default_rng(day)
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", nt)
        ds.createDimension("lat", NY)
        ds.createDimension("lon", NX)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2020-01-01"
        t.calendar = "standard"
        t[:] = day + np.arange(nt) / nt
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-60, 60, NY)
        lon = ds.createVariable("lon", "f4", ("lon",))
        lon[:] = np.linspace(0, 300, NX)
        v = ds.createVariable(
            "t2m", "f4", ("time", "lat", "lon"), chunksizes=chunks, zlib=zlib, shuffle=zlib
        )
        v.units = "K"
        v.scale_hint = np.float32(0.5)
        v[:] = (250 + 40 * rng.random((nt, NY, NX))).astype("f4")
        ds.title = "vzsql publish test"
    return path


def scanned(path: Path, inline: tuple[str, ...] = ("time",)) -> Manifest:
    """``vzsql.scan`` of one file, with the chunks of ``inline`` arrays turned into inline
    bytes (read from the file at their references) so writers see both kinds of chunk."""
    m = vzsql.scan(path)
    chunks = m.table("chunks")
    raw = path.read_bytes()
    rows = chunks.to_pylist()
    for r in rows:  # a handful of coordinate chunks in a test fixture
        if r["array"] in inline:
            r["data"] = raw[r["offset"] : r["offset"] + r["length"]]
            r["source_id"] = r["offset"] = None
    return Manifest(m.tables.with_tables(chunks=pa.Table.from_pylist(rows, schema=chunks.schema)))


def concat_time(parts: list[Manifest]) -> Manifest:
    """Manifests of consecutive files joined along ``time`` by hand (index/grid shifts).

    Stands in for ``vzsql.ops.concat`` in tests of the writers; arrays without ``time``
    are taken from the first part.
    """
    sources: list[dict[str, Any]] = []
    arrays: list[dict[str, Any]] = []
    grid: list[dict[str, Any]] = []
    chunks: list[dict[str, Any]] = []
    shift_chunks: dict[str, int] = {}
    shift_elems: dict[str, int] = {}
    first = parts[0]
    time_arrays = {
        r["array"] for r in first.table("arrays").to_pylist() if "time" in (r["dims"] or [])
    }
    for k, part in enumerate(parts):
        sid_base = len(sources)
        for s in part.table("sources").to_pylist():
            sources.append(dict(s, source_id=sid_base + s["source_id"]))
        for r in part.table("chunks").to_pylist():
            if k and r["array"] not in time_arrays:
                continue
            if r["array"] in time_arrays:
                r["index"] = [r["index"][0] + shift_chunks.get(r["array"], 0), *r["index"][1:]]
            if r["source_id"] is not None:
                r["source_id"] += sid_base
            chunks.append(r)
        for g in part.table("grid").to_pylist():
            if g["array"] in time_arrays and g["dim"] == 0:
                grid.append(
                    dict(
                        g,
                        chunk=g["chunk"] + shift_chunks.get(g["array"], 0),
                        start=g["start"] + shift_elems.get(g["array"], 0),
                    )
                )
            elif k == 0:
                grid.append(g)
        for a in part.table("arrays").to_pylist():
            if a["array"] in time_arrays:
                n_chunks = sum(
                    1
                    for g in part.table("grid").to_pylist()
                    if g["array"] == a["array"] and g["dim"] == 0
                )
                shift_chunks[a["array"]] = shift_chunks.get(a["array"], 0) + n_chunks
                shift_elems[a["array"]] = shift_elems.get(a["array"], 0) + a["shape"][0]
    for a in first.table("arrays").to_pylist():
        if a["array"] in time_arrays:
            a["shape"] = [shift_elems[a["array"]], *a["shape"][1:]]
        arrays.append(a)
    t = first.tables
    return Manifest(
        t.with_tables(
            sources=pa.Table.from_pylist(sources, schema=t.sources.schema),
            arrays=pa.Table.from_pylist(arrays, schema=t.arrays.schema),
            grid=pa.Table.from_pylist(grid, schema=t.grid.schema),
            chunks=pa.Table.from_pylist(chunks, schema=t.chunks.schema),
        )
    )

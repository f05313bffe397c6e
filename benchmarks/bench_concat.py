"""Concatenation at scale: vzsql's scan+combine and concat vs VirtualiZarr 2.8, same run.

    .venv/bin/python benchmarks/bench_concat.py                     # 365 files, 10,000 pieces
    .venv/bin/python benchmarks/bench_concat.py --files 60 --pieces 1000 --refs-per-piece 256

Part 1, real files: ``--files`` daily netCDF4 files (several compressed variables, one
chunk per variable and day, written with netCDF4-python) are scanned and combined along
time by vzsql (``scan_files`` then ``combine_parts``, and ``vzsql.scan`` in one call) and
by VirtualiZarr (``open_virtual_mfdataset`` with the HDF parser, ``combine="by_coords"``,
and ``open_virtual_dataset`` per file + ``xr.concat``). ``check()`` and ``stats()`` of the
combined manifest are timed too (VirtualiZarr has neither). The combined time coordinate
of both is compared, so a wrong result cannot look fast.

Part 2, a synthetic archive: ``--pieces`` single-file manifests of ``--refs-per-piece``
references each (4 variables, 4 time steps, a square of spatial chunks; a day per piece),
built vectorised (numpy -> one Arrow table of all references, sliced per piece: no Python
per chunk), given in shuffled order, concatenated along time by ``vzsql.concat`` (ordered
by each piece's inline time coordinate, checked, sources renumbered) and by VirtualiZarr's
``xr.concat`` of the same ManifestArray datasets (in time order: it does not order). Then
``check(stat=False)`` over the result. Times, ratios and the peak RSS of each step.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.common import virtualizarr_each_then_concat, virtualizarr_mfdataset  # noqa: E402
from vzsql.memory import PeakRSS  # noqa: E402

VARS = ("tas", "pr", "uas", "vas")
TIME_UNITS = "days since 2000-01-01"


def timed(label: str, fn: Callable[[], Any]) -> tuple[float, Any]:
    """Run ``fn`` once; print and return its wall time (and result), with its peak RSS."""
    gc.collect()
    with PeakRSS() as peak:
        t0 = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t0
    print(f"  {label:<58} {elapsed:9.3f} s   peak +{peak.added / 2**20:7.0f} MiB", flush=True)
    return elapsed, out


def ratio(label: str, theirs: float, ours: float) -> None:
    if theirs >= ours:
        print(f"  -> {label}: vzsql is {theirs / ours:.1f}x faster", flush=True)
    else:
        print(f"  -> {label}: vzsql is {ours / theirs:.1f}x SLOWER", flush=True)


# -- part 1: real netCDF4 files ---------------------------------------------------------------
def write_daily_files(folder: Path, n: int, ny: int = 32, nx: int = 64) -> list[Path]:
    """``n`` netCDF4 files, one day each: 4 compressed variables (time, lat, lon)."""
    import netCDF4

    rng = np.random.default_rng(0)
    paths = []
    for day in range(n):
        path = folder / f"day_{day:04d}.nc"
        with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
            ds.createDimension("time", None)
            ds.createDimension("lat", ny)
            ds.createDimension("lon", nx)
            t = ds.createVariable("time", "f8", ("time",))
            t.units, t.calendar = TIME_UNITS, "standard"
            t[:] = [day]
            ds.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-80, 80, ny)
            ds.createVariable("lon", "f4", ("lon",))[:] = np.linspace(0, 355, nx)
            for name in VARS:
                v = ds.createVariable(
                    name, "f4", ("time", "lat", "lon"), zlib=True, chunksizes=(1, ny, nx)
                )
                v.units = "1"
                v[:] = rng.random((1, ny, nx), dtype="float32")
        paths.append(path)
    return paths


def bench_files(n_files: int) -> None:
    import xarray as xr

    import vzsql
    from vzsql.ops.combine import combine_parts
    from vzsql.scan import scan_files

    print(f"\n== part 1: {n_files} daily netCDF4 files, {len(VARS)} variables ==", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_daily_files(Path(tmp), n_files)
        uris = [p.as_uri() for p in paths[::-1]]  # given in reverse: ordering is real work
        t_scan, parts = timed("vzsql: scan files (thread pool)", lambda: scan_files(uris))
        manifests = [vzsql.Manifest(p) for p in parts]
        t_comb, m = timed("vzsql: combine scanned pieces", lambda: combine_parts(manifests))
        t_both, m2 = timed("vzsql: vzsql.scan(files) (scan + combine)", lambda: vzsql.scan(uris))
        refs = m.tables.chunks.num_rows
        print(f"  ({refs} chunk references, {m.tables.sources.num_rows} sources)")
        t_check, problems = timed("vzsql: check() (stat every file)", m.check)
        timed("vzsql: check(stat=False)", lambda: m.check(stat=False))
        t_stats, _ = timed("vzsql: stats()", m.stats)
        assert problems.num_rows == 0, problems.to_pylist()[:3]

        t_vz_mf, vds = timed(
            "VirtualiZarr: open_virtual_mfdataset (by_coords)",
            lambda: virtualizarr_mfdataset(uris),
        )
        t_vz_each, _ = timed(
            "VirtualiZarr: open_virtual_dataset x N + xr.concat",
            lambda: virtualizarr_each_then_concat(uris[::-1]),  # in date order
        )
        ours = m2.to_xarray()["time"].values
        assert np.array_equal(ours, vds["time"].values), "combined time coordinates differ"
        assert np.array_equal(m.to_xarray()["tas"][-1].values, xr.open_dataset(paths[-1])["tas"][0])
        ratio("scan + combine vs open_virtual_mfdataset", t_vz_mf, t_both)
        ratio("scan + combine vs open_virtual_dataset + xr.concat", t_vz_each, t_both)
        print(
            f"  summary: vzsql scan {t_scan:.2f} s + combine {t_comb:.2f} s, check {t_check:.2f} s,"
            f" stats {t_stats:.2f} s; VirtualiZarr {t_vz_mf:.2f} s (mf) / {t_vz_each:.2f} s"
        )


# -- part 2: synthetic 10,000-piece archive -----------------------------------------------------
def synthetic_pieces(n_pieces: int, refs_per_piece: int) -> tuple[list[Any], dict[str, Any]]:
    """``n_pieces`` single-file manifests (a day each), built from numpy columns at once.

    Each piece: ``VARS`` arrays ``(time, lat, lon)`` of 4 time steps and a square of
    ``tiles x tiles`` spatial chunks (64 x 64 elements), compressed lengths, offsets
    running through its file, and an inline ``time`` coordinate. Returns the Manifests and
    the numpy columns (for building VirtualiZarr's ChunkManifests from the same refs).
    """
    import pyarrow as pa

    import vzsql
    from vzsql.codecs.encode import codecs_json
    from vzsql.tables import Tables, conform

    steps = 4
    tiles = max(1, round((refs_per_piece / (len(VARS) * steps)) ** 0.5))
    per_var = steps * tiles * tiles
    per_piece = per_var * len(VARS)
    total = per_piece * n_pieces
    rng = np.random.default_rng(1)
    length = rng.integers(8_000, 16_000, size=total, dtype=np.int64)
    piece = np.repeat(np.arange(n_pieces, dtype=np.int32), per_piece)
    within = np.tile(np.arange(per_piece, dtype=np.int64), n_pieces)
    var = (within // per_var).astype(np.int32)
    k = within % per_var
    t = (k // (tiles * tiles)).astype(np.int32)
    y = ((k // tiles) % tiles).astype(np.int32)
    x = (k % tiles).astype(np.int32)
    # offsets: a 4 KiB header, then the piece's chunks back to back
    ends = np.cumsum(length)
    piece_start = np.repeat(ends[::per_piece] - length[::per_piece], per_piece)
    offset = 4096 + (ends - length - piece_start)
    flat_index = np.stack([t, y, x], axis=1).ravel()
    index = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 3 * total + 1, 3, dtype=np.int32)), pa.array(flat_index)
    )
    names = pa.DictionaryArray.from_arrays(pa.array(var), pa.array(list(VARS)))
    chunks_all = conform(
        "chunks",
        pa.table(
            {
                "array": names.cast(pa.string()),
                "index": index,
                "source_id": pa.array(np.zeros(total, dtype=np.int32)),
                "offset": pa.array(offset),
                "length": pa.array(length),
            }
        ),
    )
    codecs = codecs_json(
        [
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "numcodecs.zlib", "configuration": {"level": 4}},
        ]
    )
    shape = [steps, tiles * 64, tiles * 64]
    plain = codecs_json([{"name": "bytes", "configuration": {"endian": "little"}}])
    time_attrs = json.dumps({"units": TIME_UNITS, "calendar": "standard"})
    arrays = conform(
        "arrays",
        pa.table(
            {
                "array": [*VARS, "time"],
                "dims": [["time", "lat", "lon"]] * len(VARS) + [["time"]],
                "shape": [shape] * len(VARS) + [[steps]],
                "chunk_shape": [[1, 64, 64]] * len(VARS) + [[steps]],
                "dtype": ["float32"] * len(VARS) + ["float64"],
                "fill_value": ['"NaN"'] * len(VARS) + ["0.0"],
                "codecs": [codecs] * len(VARS) + [plain],
                "attrs": ["{}"] * len(VARS) + [time_attrs],
                "attr_dtypes": ["{}"] * (len(VARS) + 1),
            }
        ),
    )
    grid_rows = []
    for name in VARS:
        for d, (count, size) in enumerate([(steps, 1), (tiles, 64), (tiles, 64)]):
            for c in range(count):
                grid_rows.append(
                    {"array": name, "dim": d, "chunk": c, "start": c * size, "length": size}
                )
    grid_rows.append({"array": "time", "dim": 0, "chunk": 0, "start": 0, "length": steps})
    grid = conform("grid", pa.Table.from_pylist(grid_rows))
    groups = conform("groups", pa.table({"group": [""], "attrs": ["{}"], "attr_dtypes": ["{}"]}))
    now = dt.datetime.now(dt.UTC)
    uris = [f"s3://archive/daily/{i:05d}.nc" for i in range(n_pieces)]
    sizes = ends[per_piece - 1 :: per_piece] - np.concatenate(
        [[0], ends[per_piece - 1 :: per_piece][:-1]]
    )
    manifests = []
    for i in range(n_pieces):  # a loop over files, not chunks
        times = (i + np.arange(steps) / steps).astype("float64")
        time_chunk = conform(
            "chunks",
            pa.table(
                {
                    "array": ["time"],
                    "index": [[0]],
                    "length": [8 * steps],
                    "data": [times.tobytes()],
                }
            ),
        )
        sources = conform(
            "sources",
            pa.table(
                {
                    "source_id": pa.array([0], pa.int32()),
                    "uri": [uris[i]],
                    "format": ["hdf5"],
                    "size": [int(sizes[i]) + 4096],
                    "mtime": [1_700_000_000 * 10**9],
                    "etag": [f"etag-{i:x}"],
                    "scanned_at": pa.array([now], pa.timestamp("us", tz="UTC")),
                }
            ),
        )
        chunks = pa.concat_tables([chunks_all.slice(i * per_piece, per_piece), time_chunk])
        manifests.append(
            vzsql.Manifest(
                Tables(sources=sources, arrays=arrays, grid=grid, chunks=chunks, groups=groups)
            )
        )
    cols = {
        "var": var,
        "t": t,
        "y": y,
        "x": x,
        "offset": offset,
        "length": length,
        "piece": piece,
        "uris": uris,
        "steps": steps,
        "tiles": tiles,
    }
    return manifests, cols


def virtualizarr_pieces(cols: dict[str, Any], n_pieces: int) -> list[Any]:
    """The same references as VirtualiZarr datasets (ManifestArrays + numpy time coordinate)."""
    import xarray as xr
    from virtualizarr.manifests import ChunkManifest, ManifestArray
    from virtualizarr.manifests.utils import create_v3_array_metadata

    steps, tiles = cols["steps"], cols["tiles"]
    shape = (steps, tiles, tiles)
    per_var = steps * tiles * tiles
    per_piece = per_var * len(VARS)
    meta = create_v3_array_metadata(
        shape=(steps, tiles * 64, tiles * 64),
        data_type=np.dtype("float32"),
        chunk_shape=(1, 64, 64),
        codecs=[
            {"name": "bytes", "configuration": {"endian": "little"}},
            {"name": "numcodecs.zlib", "configuration": {"level": 4}},
        ],
        fill_value=np.float32("nan"),
        dimension_names=("time", "lat", "lon"),
    )
    offsets = cols["offset"].astype(np.uint64)
    lengths = cols["length"].astype(np.uint64)
    out = []
    for i in range(n_pieces):
        paths = np.full(shape, cols["uris"][i], dtype=np.dtypes.StringDType())
        variables = {}
        for v, name in enumerate(VARS):
            lo = i * per_piece + v * per_var
            cm = ChunkManifest.from_arrays(
                paths=paths,
                offsets=offsets[lo : lo + per_var].reshape(shape),
                lengths=lengths[lo : lo + per_var].reshape(shape),
            )
            variables[name] = xr.Variable(
                ("time", "lat", "lon"), ManifestArray(metadata=meta, chunkmanifest=cm)
            )
        times = (i + np.arange(steps) / steps).astype("float64")
        out.append(xr.Dataset(variables, coords={"time": ("time", times)}))
    return out


def bench_pieces(n_pieces: int, refs_per_piece: int) -> None:
    import random

    import xarray as xr

    import vzsql

    print(
        f"\n== part 2: synthetic archive, {n_pieces} pieces x ~{refs_per_piece} refs ==",
        flush=True,
    )
    _, (manifests, cols) = timed(
        "build vzsql pieces (vectorised)", lambda: synthetic_pieces(n_pieces, refs_per_piece)
    )
    refs = sum(m.tables.chunks.num_rows for m in manifests)
    print(f"  ({refs} chunk references incl. {n_pieces} inline time chunks)")
    # load concat's modules (zarr, codecs) before timing, as VirtualiZarr's are loaded by
    # building its datasets: the timings compare the work, not one-off imports
    import vzsql.ops.concat

    shuffled = manifests[:]
    random.Random(2).shuffle(shuffled)
    t_concat, m = timed(
        "vzsql.concat (shuffled; ordered by time, checked)",
        lambda: vzsql.concat(shuffled, "time"),
    )
    assert m.tables.chunks.num_rows == refs - n_pieces + 1
    t_time = m.to_xarray()["time"].values
    assert np.all(np.diff(t_time).astype("int64") > 0), "time not in order"
    t_given, _ = timed(
        "vzsql.concat (given order, order_by_coords=False)",
        lambda: vzsql.concat(manifests, "time", order_by_coords=False),
    )
    t_check, problems = timed("vzsql: check(stat=False) of the result", lambda: m.check(stat=False))
    print(f"  ({problems.num_rows} problems)")
    manifests.clear()
    shuffled.clear()
    gc.collect()

    _, datasets = timed(
        "build VirtualiZarr datasets (same refs)", lambda: virtualizarr_pieces(cols, n_pieces)
    )

    def vz_concat() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return xr.concat(
                datasets, dim="time", data_vars="minimal", coords="minimal", compat="override"
            )

    t_vz, vds = timed("VirtualiZarr: xr.concat (in time order)", vz_concat)
    n_vz = sum(int(v.data.manifest._lengths.size) for v in vds.data_vars.values())
    assert n_vz == refs - n_pieces, (n_vz, refs)
    ratio("concat (shuffled, ordered + checked) vs xr.concat", t_vz, t_concat)
    ratio("concat (given order) vs xr.concat", t_vz, t_given)
    print(
        f"  summary: vzsql concat {t_concat:.2f} s, check {t_check:.2f} s; "
        f"VirtualiZarr xr.concat {t_vz:.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=365)
    parser.add_argument("--pieces", type=int, default=10_000)
    parser.add_argument("--refs-per-piece", type=int, default=1024)
    parser.add_argument("--skip-files", action="store_true")
    parser.add_argument("--skip-pieces", action="store_true")
    args = parser.parse_args()
    if not args.skip_files:
        bench_files(args.files)
    if not args.skip_pieces:
        bench_pieces(args.pieces, args.refs_per_piece)
    return 0


if __name__ == "__main__":
    sys.exit(main())

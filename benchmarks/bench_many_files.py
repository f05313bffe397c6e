"""A 100,000-file archive: vzsql's scan and combine per file, vs VirtualiZarr and kerchunk.

    .venv/bin/python benchmarks/bench_many_files.py                 # 100,000 files (long)
    .venv/bin/python benchmarks/bench_many_files.py --files 2000    # a quick run
    .venv/bin/python benchmarks/bench_many_files.py --files 2000 --profile 2000

The archive: daily netCDF4 files written by netCDF4-python (netCDF-C), each with ``time``
(1 step), ``lat`` and ``lon`` coordinates and two compressed, chunked data variables
(``tas``, ``pr``). Writing 100,000 files with netCDF-C takes long, so ``--distinct`` files
are written and the rest are byte copies of them (``shutil.copyfile``: own inode and mtime,
not hard links) with the 8 bytes of their ``time`` value patched in place (the ``time``
variable is contiguous and uncompressed, its offset read with h5py), so every file holds
its own day and the archive combines along time. The archive is cached under
``--cache/<N>`` and reused when it holds N files.

Each step prints wall time, files/s and peak RSS (the process's peak while the step runs,
and what the step added). The competitors run on ``--subset`` files; a figure for all N
files derived from them is labelled as an extrapolation.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import shutil
import struct
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import h5py  # noqa: E402  (before netCDF4: see tests/conftest.py, two libhdf5 copies)
import hdf5plugin  # noqa: E402,F401

from benchmarks.common import virtualizarr_each_then_concat, virtualizarr_mfdataset  # noqa: E402
from vzsql.memory import PeakRSS  # noqa: E402

TIME_UNITS = "days since 1800-01-01"
NY, NX = 36, 72
MARKER = "archive.json"


# -- the archive -------------------------------------------------------------------------------
def write_template(path: Path, day: int, rng: np.random.Generator) -> None:
    """One daily netCDF4 file: time, lat, lon and two zlib-compressed (1, 36, 72) chunked vars."""
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("time", 1)
        ds.createDimension("lat", NY)
        ds.createDimension("lon", NX)
        t = ds.createVariable("time", "f8", ("time",))  # contiguous, uncompressed
        t.units, t.calendar = TIME_UNITS, "standard"
        t[:] = [day]
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-87.5, 87.5, NY)
        lon = ds.createVariable("lon", "f4", ("lon",))
        lon.units = "degrees_east"
        lon[:] = np.linspace(0, 355, NX)
        base = np.cos(np.deg2rad(lat[:]))[:, None] * 30 + 250
        for name, units, values in (
            ("tas", "K", base + rng.normal(0, 2, (NY, NX))),
            ("pr", "kg m-2 s-1", rng.gamma(0.5, 1e-5, (NY, NX))),
        ):
            v = ds.createVariable(
                name, "f4", ("time", "lat", "lon"), zlib=True, complevel=4, chunksizes=(1, NY, NX)
            )
            v.units = units
            v[:] = values[None].astype("f4")


def time_offset(path: Path) -> int:
    """Byte offset of the (contiguous, 8-byte) ``time`` value in ``path``."""
    with h5py.File(path, "r") as f:
        offset = f["time"].id.get_offset()
    if offset is None:
        raise RuntimeError(f"time of {path} has no contiguous storage")
    return int(offset)


def build_archive(folder: Path, n: int, distinct: int) -> tuple[list[Path], str]:
    """``n`` files in ``folder`` (reused when complete); returns them and how they were made."""
    marker = folder / MARKER
    if marker.exists():
        info = json.loads(marker.read_text())
        paths = sorted(folder.glob("day_*.nc"))
        if info.get("files") == n and len(paths) == n:
            return paths, info["how"] + " (cached)"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    distinct = min(distinct, n)
    templates = []
    for k in range(distinct):
        path = folder / f"day_{k:06d}.nc"
        write_template(path, k, rng)
        templates.append((path, time_offset(path)))
    t_write = time.perf_counter() - t0
    for day in range(distinct, n):
        src, offset = templates[day % distinct]
        dst = folder / f"day_{day:06d}.nc"
        shutil.copyfile(src, dst)
        with open(dst, "r+b") as f:
            f.seek(offset)
            f.write(struct.pack("<d", float(day)))
    paths = sorted(folder.glob("day_*.nc"))
    size = sum(p.stat().st_size for p in paths[:distinct]) / distinct
    how = (
        f"{distinct} files written by netCDF4 ({t_write:.1f} s), {n - distinct} byte copies "
        f"of them (shutil.copyfile, own inode/mtime, the 8-byte time value patched); "
        f"~{size / 1024:.0f} KiB each, {size * n / 2**30:.2f} GiB in all, in "
        f"{time.perf_counter() - t0:.1f} s"
    )
    marker.write_text(json.dumps({"files": n, "how": how}))
    return paths, how


# -- reporting ---------------------------------------------------------------------------------
RESULTS: dict[str, tuple[float, int]] = {}


def timed(label: str, n_files: int, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` once; print wall time, files/s and peak RSS; remember (seconds, files)."""
    gc.collect()
    with PeakRSS() as peak:
        t0 = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - t0
    RESULTS[label] = (elapsed, n_files)
    print(
        f"  {label:<52} {n_files:>7} files {elapsed:9.2f} s {n_files / elapsed:9.0f} files/s"
        f"   peak RSS {peak.peak / 2**20:6.0f} MiB (+{peak.added / 2**20:.0f})",
        flush=True,
    )
    return out


def per_file_ms(label: str) -> float:
    secs, n = RESULTS[label]
    return 1000 * secs / n


def ratio(theirs: str, ours: str) -> None:
    a, b = per_file_ms(theirs), per_file_ms(ours)
    word = "faster" if a >= b else "SLOWER"
    print(
        f"  per file: {theirs} {a:.2f} ms vs {ours} {b:.2f} ms -> vzsql "
        f"{max(a, b) / min(a, b):.1f}x {word}",
        flush=True,
    )


# -- steps -------------------------------------------------------------------------------------
class ScanClock:
    """A ``progress`` callback that notes when the last file was scanned (scan vs combine)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.scanned = 0.0

    def __call__(self, done: int, total: int) -> None:
        if done == total:
            self.scanned = time.perf_counter() - self.t0


DEFAULT_SCAN = "vzsql.scan (default: reused children; scan + combine)"


def bench_vzsql(uris: list[str], subset: int, out: Path) -> Any:
    """vzsql.scan of all files (its default: reused child processes from 200 files on; then
    a ProcessPoolExecutor(2)); the variants (threads, ...) on ``subset`` files."""
    import vzsql

    n = len(uris)
    print(f"\n== vzsql on {n} files ==", flush=True)
    clock = ScanClock()
    m = timed(
        DEFAULT_SCAN,
        n,
        lambda: vzsql.scan(uris, progress=clock),
    )
    total = RESULTS[DEFAULT_SCAN][0]
    print(
        f"    of which scanning {clock.scanned:.1f} s ({1000 * clock.scanned / n:.2f} ms/file), "
        f"combining along time {total - clock.scanned:.1f} s "
        f"({1000 * (total - clock.scanned) / n:.2f} ms/file)"
    )
    assert m.tables.sources.num_rows == n, m.tables.sources.num_rows
    times = m.to_xarray()["time"].values
    assert times.size == n and bool(np.all(np.diff(times).astype("int64") > 0)), "time order"
    print(f"    combined: {m.tables.chunks.num_rows} chunk rows, time has {times.size} steps")
    timed("Manifest.save (the combined manifest)", n, partial(m.save, out / "manifest"))
    del m
    gc.collect()
    with ProcessPoolExecutor(2) as pool:
        pool.submit(int, 0).result()  # workers started outside the timing
        clock = ScanClock()
        timed(
            "vzsql.scan (ProcessPoolExecutor(2))",
            n,
            lambda: vzsql.scan(uris, executor=pool, progress=clock),
        )
        total = RESULTS["vzsql.scan (ProcessPoolExecutor(2))"][0]
        print(
            f"    of which scanning {clock.scanned:.1f} s, combining {total - clock.scanned:.1f} s"
        )
    sub = uris[:subset]
    k = len(sub)
    note = "" if k == n else f" [first {k}]"
    timed(f"vzsql.scan isolate=False (threads){note}", k, lambda: vzsql.scan(sub, isolate=False))
    timed(f"vzsql.scan concat_dim='time'{note}", k, lambda: vzsql.scan(sub, concat_dim="time"))
    rec = timed(
        f"vzsql.scan on_error='record'{note}", k, lambda: vzsql.scan(sub, on_error="record")
    )
    assert rec.failures.num_rows == 0
    iso = timed(
        f"vzsql.scan on_error='record', timeout=60{note}",
        k,
        lambda: vzsql.scan(sub, on_error="record", timeout=60),
    )
    assert iso.failures.num_rows == 0, iso.failures.to_pylist()[:2]
    print("    (timeout= scans each file in a child process; children are reused)")
    if k < n:
        print(f"    (the variants ran on the first {k} files only)")


def bench_competitors(paths: list[Path], uris: list[str]) -> tuple[Any, Any]:

    n = len(uris)
    print(f"\n== competitors on a subset of {n} files ==", flush=True)
    import vzsql

    mine = timed("vzsql.scan (subset)", n, lambda: vzsql.scan(uris))
    assert mine.tables.chunks.num_rows >= n

    vds = timed(
        "VirtualiZarr open_virtual_mfdataset (by_coords)", n, lambda: virtualizarr_mfdataset(uris)
    )
    timed(
        "VirtualiZarr open_virtual_dataset x N + xr.concat",
        n,
        lambda: virtualizarr_each_then_concat(uris),
    )

    def kerchunk() -> Any:
        from kerchunk.combine import MultiZarrToZarr
        from kerchunk.hdf import SingleHdf5ToZarr

        refs = [SingleHdf5ToZarr(str(p)).translate() for p in paths]
        return MultiZarrToZarr(
            refs, concat_dims=["time"], identical_dims=["lat", "lon"]
        ).translate()

    kc = timed("kerchunk SingleHdf5ToZarr x N + MultiZarrToZarr", n, kerchunk)
    ours = mine.to_xarray()["time"].values
    assert np.array_equal(ours, vds["time"].values), "combined time coordinates differ"
    n_kc = sum(1 for k in kc["refs"] if k.startswith("tas/") and not k.startswith("tas/."))
    assert n_kc == n, (n_kc, n)  # one tas chunk per file
    return mine, vds


# -- profile -----------------------------------------------------------------------------------
def profile_scan(uris: list[str], top: int) -> None:
    """cProfile of scanning ``uris`` and combining them, in this thread (profiled)."""
    import vzsql
    from vzsql.isolation import scan_one
    from vzsql.manifest import Manifest
    from vzsql.ops.combine import combine_parts

    print(f"\n== cProfile: scan + combine of {len(uris)} files, one thread ==", flush=True)
    vzsql.scan(uris[:50])  # imports and caches outside the profile
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    parts = [scan_one(u).tables for u in uris]
    t_scan = time.perf_counter() - t0
    combine_parts([Manifest(p) for p in parts if p is not None])
    prof.disable()
    total = time.perf_counter() - t0
    print(
        f"  scan {1000 * t_scan / len(uris):.2f} ms/file, combine "
        f"{1000 * (total - t_scan) / len(uris):.2f} ms/file (under the profiler)"
    )
    for order in ("tottime", "cumulative"):
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats(order).print_stats(top)
        print(s.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000, help="files in the archive")
    parser.add_argument("--distinct", type=int, default=300, help="files written by netCDF4")
    parser.add_argument(
        "--subset", type=int, default=2000, help="files for competitors and scan variants"
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/vzsql-bench-many"))
    parser.add_argument("--profile", type=int, default=0, help="cProfile a scan of this many")
    parser.add_argument("--profile-only", action="store_true")
    parser.add_argument("--skip-competitors", action="store_true")
    args = parser.parse_args()

    folder = args.cache / str(args.files)
    paths, how = build_archive(folder, args.files, args.distinct)
    print(f"archive: {len(paths)} netCDF4 files in {folder}: {how}", flush=True)
    uris = [p.as_uri() for p in paths]
    if args.profile:
        profile_scan(uris[: args.profile], 40)
    if args.profile_only:
        return 0
    work = args.cache / f"out-{args.files}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        bench_vzsql(uris, args.subset, work)
        if not args.skip_competitors:
            k = min(args.subset, len(uris))
            bench_competitors(paths[:k], uris[:k])
            print(f"\n== ratios (per file, on {k} files) ==")
            ratio("VirtualiZarr open_virtual_mfdataset (by_coords)", "vzsql.scan (subset)")
            ratio("VirtualiZarr open_virtual_dataset x N + xr.concat", "vzsql.scan (subset)")
            ratio("kerchunk SingleHdf5ToZarr x N + MultiZarrToZarr", "vzsql.scan (subset)")
            if k < len(uris):
                full = len(uris)
                for label in (
                    "VirtualiZarr open_virtual_mfdataset (by_coords)",
                    "kerchunk SingleHdf5ToZarr x N + MultiZarrToZarr",
                ):
                    est = per_file_ms(label) * full / 1000
                    print(
                        f"  EXTRAPOLATED (linear from {k} files, not measured): {label} on "
                        f"{full} files ~ {est:.0f} s; vzsql.scan measured "
                        f"{RESULTS[DEFAULT_SCAN][0]:.0f} s"
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

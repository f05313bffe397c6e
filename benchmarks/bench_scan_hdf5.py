"""Scanning netCDF4 files: vzsql vs VirtualiZarr's HDFParser vs kerchunk's SingleHdf5ToZarr.

All three read the same generated archive in the same run; the figures are wall-clock
seconds of the best of ``--repeat`` runs, and ratios are relative to vzsql (one thread,
so the comparison is like for like; vzsql's default thread pool is shown as well).

    .venv/bin/python benchmarks/bench_scan_hdf5.py [--files 20] [--days 365]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import best_of


def write_archive(folder: Path, files: int, days: int) -> list[Path]:
    import netCDF4

    paths = []
    for i in range(files):
        path = folder / f"f{i:04d}.nc"
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension("time", days)
            ds.createDimension("lat", 45)
            ds.createDimension("lon", 90)
            t = ds.createVariable("time", "f8", ("time",))
            t.units = "days since 2000-01-01"
            t[:] = np.arange(days) + i * days
            for name in ("t2m", "u10", "v10", "msl"):
                v = ds.createVariable(
                    name,
                    "f4",
                    ("time", "lat", "lon"),
                    zlib=True,
                    complevel=1,
                    chunksizes=(1, 45, 90),
                )
                v[:] = np.broadcast_to(np.arange(days, dtype="f4")[:, None, None], (days, 45, 90))
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from vzsql.scan import scan_files

    with tempfile.TemporaryDirectory() as tmp:
        paths = write_archive(Path(tmp), args.files, args.days)
        uris = [p.as_uri() for p in paths]
        refs = sum(p.chunks.num_rows for p in scan_files(uris))
        print(f"archive: {len(paths)} netCDF4 files, {refs} chunk references")

        def vzsql_one_thread() -> None:
            with ThreadPoolExecutor(1) as pool:
                scan_files(uris, executor=pool)

        def vzsql_default() -> None:
            scan_files(uris)

        def virtualizarr() -> None:
            from obstore.store import LocalStore
            from virtualizarr import open_virtual_dataset
            from virtualizarr.parsers import HDFParser
            from virtualizarr.registry import ObjectStoreRegistry

            registry = ObjectStoreRegistry({"file://": LocalStore()})
            for uri in uris:
                open_virtual_dataset(
                    uri, registry=registry, parser=HDFParser(), loadable_variables=[]
                )

        def kerchunk() -> None:
            from kerchunk.hdf import SingleHdf5ToZarr

            for p in paths:
                SingleHdf5ToZarr(str(p), inline_threshold=0).translate()

        results = {
            "vzsql (1 thread)": best_of(args.repeat, vzsql_one_thread)[0],
            "vzsql (thread pool)": best_of(args.repeat, vzsql_default)[0],
        }
        for name, fn in (
            ("VirtualiZarr HDFParser", virtualizarr),
            ("kerchunk SingleHdf5ToZarr", kerchunk),
        ):
            try:
                results[name], _ = best_of(args.repeat, fn)
            except Exception as e:  # a competitor failing is reported, not fatal
                print(f"{name}: failed: {type(e).__name__}: {e}")
        base = results["vzsql (1 thread)"]
        print(f"{'tool':<28}{'seconds':>10}{'refs/s':>12}{'vs vzsql':>10}")
        for name, secs in results.items():
            print(f"{name:<28}{secs:>10.3f}{refs / secs:>12.0f}{secs / base:>9.1f}x")


if __name__ == "__main__":
    main()

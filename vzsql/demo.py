"""The demo run by README command 1: generate a small netCDF4 archive, scan it, query it, read it.

``python -m vzsql.demo [--out DIR]`` writes daily files (one per month, chunked by 10 days,
compressed, packed int16 with a float32 scale_factor), scans them in parallel into one
manifest, runs SQL over the manifest, saves it as Parquet, opens it with xarray through
vzsql's zarr store and checks every value against ``xarray.open_mfdataset``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def write_archive(folder: Path, months: int = 3) -> list[Path]:
    """Daily netCDF4 files, one per month of 2020, written by netCDF-C through netCDF4."""
    import netCDF4

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    days_in_month = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    paths = []
    day0 = 0
    for month in range(months):
        ndays = days_in_month[month]
        path = folder / f"2020-{month + 1:02d}.nc"
        with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
            ds.title = "vzsql demo archive"
            ds.createDimension("time", None)
            ds.createDimension("lat", 18)
            ds.createDimension("lon", 36)
            t = ds.createVariable("time", "f8", ("time",))
            t.units = "days since 2020-01-01"
            t.calendar = "standard"
            t[:] = np.arange(day0, day0 + ndays)
            lat = ds.createVariable("lat", "f4", ("lat",))
            lat.units = "degrees_north"
            lat[:] = np.linspace(-85, 85, 18)
            lon = ds.createVariable("lon", "f4", ("lon",))
            lon.units = "degrees_east"
            lon[:] = np.linspace(0, 350, 36)
            air = ds.createVariable(
                "air",
                "i2",
                ("time", "lat", "lon"),
                zlib=True,
                shuffle=True,
                chunksizes=(10, 18, 36),
                fill_value=np.int16(-32767),
            )
            air.scale_factor = np.float32(0.01)
            air.add_offset = np.float32(273.15)
            air.units = "K"
            values = 15 * np.sin(np.arange(ndays)[:, None, None] / 10) + rng.normal(
                0, 3, (ndays, 18, 36)
            )
            values[0, 0, :5] = np.nan  # a few missing values
            kelvin = values + 273.15
            air[:] = np.ma.masked_array(np.nan_to_num(kelvin, nan=273.15), mask=np.isnan(kelvin))
        paths.append(path)
        day0 += ndays
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output", help="folder for generated files")
    parser.add_argument("--months", type=int, default=3)
    args = parser.parse_args(argv)

    import xarray as xr

    import vzsql

    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    archive = out / "archive"
    paths = write_archive(archive, args.months)
    print(f"1. wrote {len(paths)} netCDF4 files to {archive}/ (daily data, chunked by 10 days)")

    t0 = time.perf_counter()
    m = vzsql.scan(str(archive / "2020-*.nc"))
    print(f"2. scanned them in {time.perf_counter() - t0:.2f} s: {m}")

    print("3. SQL over the manifest: chunks and bytes per array")
    m.sql(
        "SELECT array, count(*) AS n, sum(length) AS bytes "
        "FROM chunks GROUP BY array ORDER BY array"
    ).show()
    print("   the time grid: variable-length chunks (31 days of Jan in 10+10+10+1, ...)")
    m.sql(
        "SELECT array, list(length ORDER BY chunk) AS chunk_lengths FROM grid "
        "WHERE array = 'air' AND dim = 0 GROUP BY array"
    ).show()

    saved = out / "archive.vzm"
    m.save(saved)
    print(
        f"4. saved the manifest as Parquet in {saved}/: {sorted(p.name for p in saved.iterdir())}"
    )

    ds = xr.open_dataset(saved, engine="vzsql")
    expected = xr.open_mfdataset(paths, combine="by_coords")
    print("5. opened with xarray (engine='vzsql'):")
    print(ds)
    xr.testing.assert_identical(ds.load(), expected.load())
    assert ds["air"].dtype == expected["air"].dtype == np.float32
    print(
        "6. every value equals xarray.open_mfdataset of the original files "
        f"(air: {ds['air'].dtype}, mean {float(ds['air'].mean()):.3f} K, "
        f"{int(ds['air'].isnull().sum())} missing)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

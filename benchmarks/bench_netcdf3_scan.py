"""Scanning a 6,000-record netCDF3 file: vzsql vs VirtualiZarr 2.8's ``NetCDF3Parser``.

Both read the same generated file in the same run (CDF-2, 64-bit offset, written with
netCDF4-python: a ``time`` coordinate and ``--variables`` record variables on a 20 x 30 grid,
plus fixed coordinates), so each variable has one chunk per record: about 6,000 x (1 +
variables) references. Figures are wall-clock seconds, best of ``--repeat`` runs:

- ``vzsql scan_netcdf3``: the scanner alone (file -> the five Arrow tables);
- ``vzsql.scan``: the public call (format sniffing, scan, Manifest);
- ``VirtualiZarr NetCDF3Parser``: the parser alone (file -> ``ManifestStore``), with an
  obstore ``LocalStore`` registry;
- ``VirtualiZarr open_virtual_dataset``: the parser plus the virtual ``xarray.Dataset``, with
  ``loadable_variables=[]`` (no chunk is read, like vzsql), and with its defaults (which also
  read the coordinate variables' values, 6,000 chunk reads for ``time``).

The target is vzsql >= 3x faster than VirtualiZarr's parser.

    .venv/bin/python benchmarks/bench_netcdf3_scan.py [--records 6000] [--variables 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import best_of


def write_file(path: Path, records: int, variables: int) -> int:
    """A CDF-2 file with ``records`` records of ``variables`` float32 (20, 30) fields."""
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.title = "netCDF3 scan benchmark"
        ds.createDimension("time", None)
        ds.createDimension("lat", 20)
        ds.createDimension("lon", 30)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "hours since 2000-01-01"
        t[:] = np.arange(records, dtype="f8")
        ds.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-45, 45, 20)
        ds.createVariable("lon", "f4", ("lon",))[:] = np.linspace(0, 290, 30)
        block = np.arange(20 * 30, dtype="f4").reshape(20, 30)
        for i in range(variables):
            v = ds.createVariable(f"var{i}", "f4", ("time", "lat", "lon"))
            v.units = "K"
            v.long_name = f"variable {i}"
            for start in range(0, records, 1000):  # written in slabs: bounded memory
                n = min(1000, records - start)
                v[start : start + n] = np.broadcast_to(block + i, (n, 20, 30))
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=6000)
    parser.add_argument("--variables", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import LocalStore
    from virtualizarr import open_virtual_dataset
    from virtualizarr.parsers import NetCDF3Parser

    import vzsql
    from vzsql.scanners.netcdf3 import scan_netcdf3

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.nc"
        size = write_file(path, args.records, args.variables)
        url = path.as_uri()
        print(
            f"file: {args.records} records x {args.variables + 1} record variables, "
            f"CDF-2, {size / 2**20:.1f} MiB"
        )

        t_scanner, tables = best_of(args.repeat, lambda: scan_netcdf3(url))
        refs = tables.chunks.num_rows
        print(f"vzsql scan_netcdf3:                      {t_scanner:8.4f} s  ({refs} chunk rows)")
        t_scan, _ = best_of(args.repeat, lambda: vzsql.scan(str(path)))
        print(f"vzsql.scan:                              {t_scan:8.4f} s")

        def registry() -> ObjectStoreRegistry:
            return ObjectStoreRegistry({"file://": LocalStore()})

        vz_parser = NetCDF3Parser()
        t_vz, _store = best_of(args.repeat, lambda: vz_parser(url, registry()))
        print(f"VirtualiZarr NetCDF3Parser:              {t_vz:8.4f} s")

        def open_vds(**kw: object) -> object:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return open_virtual_dataset(url, registry(), vz_parser, **kw)  # type: ignore[arg-type]

        t_vds, vds = best_of(args.repeat, lambda: open_vds(loadable_variables=[]))
        print(f"VirtualiZarr open_virtual_dataset (lazy): {t_vds:8.4f} s")
        t_vds_default, _ = best_of(args.repeat, open_vds)
        print(
            f"VirtualiZarr open_virtual_dataset:        {t_vds_default:8.4f} s  "
            "(defaults: loads coordinates)"
        )

        # the two agree on what they reference
        virtual: Any = vds
        vz_refs = sum(
            int(np.count_nonzero(v.data.manifest._lengths)) for v in virtual.variables.values()
        )
        assert vz_refs == refs, (vz_refs, refs)

        print(f"speed-up vzsql scan_netcdf3 vs NetCDF3Parser:        {t_vz / t_scanner:6.1f}x")
        print(f"speed-up vzsql.scan vs NetCDF3Parser:                {t_vz / t_scan:6.1f}x")
        print(f"speed-up vzsql.scan vs open_virtual_dataset (lazy):  {t_vds / t_scan:6.1f}x")
        print("(target >= 3x)")


if __name__ == "__main__":
    main()

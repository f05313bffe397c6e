"""Scanning a GRIB2 file: vzsql's ``scan_grib`` vs kerchunk's ``kerchunk.grib2.scan_grib``.

Both read the same generated file (``--messages`` fields: 4 variables x levels x steps on a
0.5-degree global grid, CCSDS-packed) in the same run; figures are wall-clock seconds of the
best of ``--repeat`` runs. The target is vzsql >= 3x faster.

    .venv/bin/python benchmarks/bench_grib_scan.py [--messages 1000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import best_of


def write_file(path: Path, messages: int) -> int:
    """Write ``messages`` GRIB2 fields; returns the file size."""
    import eccodes

    names = ("t", "u", "v", "q")
    levels = (1000, 925, 850, 700, 600, 500, 400, 300, 250, 200)
    steps = max(1, -(-messages // (len(names) * len(levels))))
    base = eccodes.codes_grib_new_from_samples("regular_ll_pl_grib2")
    grid = {"Ni": 720, "Nj": 361, "iDirectionIncrementInDegrees": 0.5}
    grid.update(jDirectionIncrementInDegrees=0.5, latitudeOfFirstGridPointInDegrees=90.0)
    grid.update(latitudeOfLastGridPointInDegrees=-90.0, longitudeOfFirstGridPointInDegrees=0.0)
    grid.update(longitudeOfLastGridPointInDegrees=359.5)
    for k, v in grid.items():
        eccodes.codes_set(base, k, v)
    eccodes.codes_set_string(base, "packingType", "grid_ccsds")
    values = 250 + 30 * np.sin(np.linspace(0, 40, 720 * 361))
    eccodes.codes_set_values(base, values)
    n = 0
    with open(path, "wb") as f:
        for step in range(steps):
            for name in names:
                for level in levels:
                    if n == messages:
                        break
                    h = eccodes.codes_clone(base)
                    eccodes.codes_set(h, "shortName", name)
                    eccodes.codes_set(h, "level", level)
                    eccodes.codes_set(h, "step", step * 6)
                    eccodes.codes_write(h, f)
                    eccodes.codes_release(h)
                    n += 1
    eccodes.codes_release(base)
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from kerchunk.grib2 import scan_grib as kerchunk_scan

    from vzsql.scanners.grib import scan_grib

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.grib2"
        size = write_file(path, args.messages)
        print(f"file: {args.messages} GRIB2 messages, {size / 2**20:.1f} MiB")
        t_vz, tables = best_of(args.repeat, lambda: scan_grib(str(path)))
        chunks = tables.chunks.num_rows
        print(f"vzsql scan_grib:           {t_vz:8.3f} s  ({chunks} chunk rows)")
        t_kc, refs = best_of(args.repeat, lambda: kerchunk_scan(str(path)))
        print(f"kerchunk grib2.scan_grib:  {t_kc:8.3f} s  ({len(refs)} reference sets)")
        print(f"speed-up vzsql vs kerchunk: {t_kc / t_vz:.1f}x (target >= 3x)")


if __name__ == "__main__":
    main()

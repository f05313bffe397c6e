"""Warms the forkserver of isolated scans: importing this module scans one tiny HDF5 file.

``vzsql.isolation`` forks its scanner children from a forkserver that imported the scanners.
Imports are not all: the first scan in a process also fills lazy caches (h5py's dimension
scale and attribute machinery, zarr's data type registry, fill value texts, pyarrow's schema
metadata) and costs about twice a warm scan. The forkserver never scans, so every new child
(one per ``FILES_PER_CHILD`` files, and after each crash) paid that first-scan cost
again. Listed in ``isolation._PRELOAD``, this module makes the forkserver
scan (and pack) a small netCDF-like HDF5 file once, so each forked child starts warm.

Only the forkserver imports it. A failure here is ignored: it only costs speed.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path


def warm_up() -> None:
    """Scan and pack a small HDF5 file with dimension scales, attributes and a filter."""
    import h5py
    import numpy as np

    from vzsql.isolation import pack_tables, scan_one

    with tempfile.TemporaryDirectory(prefix="vzsql-warm-") as tmp:
        path = Path(tmp) / "warm.h5"
        with h5py.File(path, "w") as f:
            t = f.create_dataset("time", data=np.arange(2.0))
            t.attrs["units"] = "days since 2000-01-01"
            t.make_scale("time")
            v = f.create_dataset(
                "v", data=np.zeros((2, 3), "f4"), chunks=(1, 3), compression="gzip", fillvalue=0
            )
            v.attrs["units"] = "K"
            v.dims[0].attach_scale(t)
        outcome = scan_one(path.as_uri())
        if outcome.tables is not None:
            pack_tables(outcome.tables)


with contextlib.suppress(Exception):  # warming is an optimisation only
    warm_up()

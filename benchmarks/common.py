"""Timing shared by the benchmark scripts.

The scripts run as ``python benchmarks/bench_x.py`` (``benchmarks/run.py`` runs them so, from
the repository root); each puts the repository root on ``sys.path`` first, so that
``from benchmarks.common import best_of`` works that way and as ``python -m`` too.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any


def best_of[T](
    repeat: int, fn: Callable[[], T], cleanup: Callable[[], object] | None = None
) -> tuple[float, T]:
    """The best wall-clock seconds of ``repeat`` calls of ``fn`` and the last call's result.

    ``cleanup``, when given, runs before each call and outside its timing (to remove what
    the previous call wrote, say).
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, not {repeat}")
    best = float("inf")
    for _ in range(repeat):
        if cleanup is not None:
            cleanup()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def virtualizarr_mfdataset(uris: list[str]) -> Any:
    """VirtualiZarr's ``open_virtual_mfdataset`` of local netCDF4 files combined by coordinates
    (HDFParser, minimal data_vars/coords): the competitor the scan benchmarks time."""
    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import LocalStore
    from virtualizarr import open_virtual_mfdataset
    from virtualizarr.parsers import HDFParser

    registry = ObjectStoreRegistry({"file://": LocalStore()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_virtual_mfdataset(
            uris,
            registry=registry,
            parser=HDFParser(),
            combine="by_coords",
            data_vars="minimal",
            coords="minimal",
            compat="override",
        )


def virtualizarr_each_then_concat(uris: list[str], dim: str = "time") -> Any:
    """VirtualiZarr's ``open_virtual_dataset`` of each file, then ``xr.concat`` along ``dim``
    in the order given."""
    import xarray as xr
    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import LocalStore
    from virtualizarr import open_virtual_dataset
    from virtualizarr.parsers import HDFParser

    registry = ObjectStoreRegistry({"file://": LocalStore()})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dss = [open_virtual_dataset(u, registry=registry, parser=HDFParser()) for u in uris]
        return xr.concat(dss, dim=dim, data_vars="minimal", coords="minimal", compat="override")

"""One scanner per format, all with the same signature: ``scan(uri, storage_options) -> Tables``.

Scanners know formats, not SQL. Each returns the five manifest tables for one file with
its sources numbered from 0 (the file itself first; external raw files after it).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any, Protocol

from vzsql.errors import UnsupportedFormatError
from vzsql.sources import open_source
from vzsql.tables import Tables


class Scanner(Protocol):
    def __call__(self, uri: str, *, storage_options: dict[str, Any] | None = None) -> Tables: ...


# format name -> "module:function"; imported lazily so a format's library loads only when used
_SCANNERS: dict[str, str] = {
    "hdf5": "vzsql.scanners.hdf5:scan_hdf5",
    "netcdf3": "vzsql.scanners.netcdf3:scan_netcdf3",
    "grib": "vzsql.scanners.grib:scan_grib",
    "zarr": "vzsql.scanners.zarr:scan_zarr",
    "dmrpp": "vzsql.scanners.dmrpp:scan_dmrpp",
}

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def sniff_format(head: bytes, uri: str) -> str:
    """The format of a file from its first bytes (and name, for sidecars and stores)."""
    if uri.rstrip("/").endswith((".zarr", ".zarr/")):
        return "zarr"
    if uri.endswith(".dmrpp"):
        return "dmrpp"
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if head[:3] == b"CDF" and head[3:4] in (b"\x01", b"\x02", b"\x05"):
        return "netcdf3"
    if b"GRIB" in head:
        return "grib"
    # HDF5 allows a user block: the signature may sit at 512, 1024, 2048, ... bytes
    for pos in (512, 1024, 2048, 4096):
        if head[pos : pos + 8] == HDF5_SIGNATURE:
            return "hdf5"
    raise UnsupportedFormatError(
        "unrecognised file format (not HDF5/netCDF4, netCDF3, GRIB, Zarr or DMR++)", source=uri
    )


def detect_format(uri: str, storage_options: dict[str, Any] | None = None) -> str:
    if uri.rstrip("/").endswith(".zarr") or uri.endswith(".dmrpp"):
        return sniff_format(b"", uri)
    with open_source(uri, storage_options) as f:
        head = f.read(4104)
    return sniff_format(head, uri)


def get_scanner(fmt: str) -> Callable[..., Tables]:
    try:
        target = _SCANNERS[fmt]
    except KeyError:
        raise UnsupportedFormatError(f"no scanner for format {fmt!r}") from None
    module_name, func = target.split(":")
    try:
        module = import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise UnsupportedFormatError(f"format {fmt!r} is not supported yet") from e
        raise
    return getattr(module, func)  # type: ignore[no-any-return]

"""One scanner per format, all with the same signature: ``scan(uri, storage_options) -> Tables``.

Scanners know formats, not SQL. Each returns the five manifest tables for one file with
its sources numbered from 0 (the file itself first; external raw files after it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib import import_module
from typing import Any, Protocol

from vzsql.errors import RemoteReadError, SourceError, UnsupportedFormatError
from vzsql.sources import fsspec_fs, local_path, open_source
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
    # kerchunk reference sets (JSON v0/v1, Parquet folders) are imported, not scanned
    "kerchunk": "vzsql.importers.kerchunk:read_kerchunk",
}

# a folder holding one of these is a Zarr store (v3 root / v2 group / v2 array)
ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")
# JSON keys that make a JSON document a kerchunk reference set (v1 "refs", or v0 Zarr keys)
_KERCHUNK_KEYS = (b'"refs"', b'.zgroup"', b'.zarray"', b'.zattrs"', b'zarr.json"')

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 allows a user block: the signature may sit at 512, 1024, 2048, ... bytes
HDF5_SIGNATURE_OFFSETS = (0, 512, 1024, 2048, 4096)


def has_hdf5_signature(head: bytes) -> bool:
    """True if the HDF5 signature sits at the start or after a user block of ``head``."""
    return any(head[p : p + 8] == HDF5_SIGNATURE for p in HDF5_SIGNATURE_OFFSETS)


def sniff_format(head: bytes, uri: str) -> str:
    """The format of a file from its first bytes (and name, for sidecars and stores)."""
    if uri.rstrip("/").endswith(".zarr"):
        return "zarr"
    if uri.endswith(".dmrpp"):
        return "dmrpp"
    if head.startswith(HDF5_SIGNATURE):
        return "hdf5"
    if head[:3] == b"CDF" and head[3:4] in (b"\x01", b"\x02", b"\x05"):
        return "netcdf3"
    if head.lstrip()[:1] == b"{" and any(k in head for k in _KERCHUNK_KEYS):
        return "kerchunk"
    if head.lstrip()[:1] == b"<" and b"dmrpp" in head:  # a DMR++ sidecar not named .dmrpp
        return "dmrpp"
    if b"GRIB" in head:
        return "grib"
    if has_hdf5_signature(head):  # after a user block
        return "hdf5"
    raise UnsupportedFormatError(
        "unrecognised file format (not HDF5/netCDF4, netCDF3, GRIB, Zarr or DMR++)", source=uri
    )


def detect_format(uri: str, storage_options: dict[str, Any] | None = None) -> str:
    """The format of ``uri``: by name for ``.zarr``/``.dmrpp``, a folder by its contents
    (Zarr store, kerchunk Parquet references), a file by its first bytes."""
    if uri.rstrip("/").endswith(".zarr") or uri.endswith(".dmrpp"):
        return sniff_format(b"", uri)
    path = local_path(uri)
    if path is not None and os.path.isdir(path):
        return folder_format(os.listdir(path), path, uri)
    try:
        with open_source(uri, storage_options) as f:
            head = f.read(4104)
    except SourceError as e:
        if path is not None or isinstance(e, RemoteReadError):  # reads failed: not a folder
            raise
        names = _remote_listing(uri, storage_options)  # an object-store prefix, not an object
        if names is None:
            raise
        return folder_format(names, None, uri)
    if not head and path is None:
        # object stores answer for a prefix with an empty "directory" entry (s3fs, memory)
        names = _remote_listing(uri, storage_options)
        if names is not None:
            return folder_format(names, None, uri)
    return sniff_format(head, uri)


def folder_format(names: list[str], path: str | None, uri: str) -> str:
    """``zarr`` or ``kerchunk`` (Parquet references) for a folder holding ``names``.

    fsspec's Parquet reference layout has a ``.zmetadata`` with ``record_size``; a
    consolidated Zarr v2 store has a ``.zmetadata`` too, but also ``.zgroup``.
    """
    present = set(names)
    if ".zmetadata" in present and not present & set(ZARR_MARKERS) and path is not None:
        try:
            with open(os.path.join(path, ".zmetadata"), "rb") as f:
                if b'"record_size"' in f.read(1 << 20):
                    return "kerchunk"
        except OSError:
            pass
    if present & set(ZARR_MARKERS):
        return "zarr"
    raise UnsupportedFormatError(
        "a folder that is neither a Zarr store (zarr.json, .zgroup or .zarray) nor a kerchunk "
        "Parquet reference set",
        source=uri,
    )


def _remote_listing(uri: str, storage_options: dict[str, Any] | None) -> list[str] | None:
    """Names directly under an object-store prefix, or None if there are none."""
    try:
        fs, root = fsspec_fs(uri, storage_options)
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root.rstrip("/"), detail=False)]
    except (OSError, ValueError):
        return None
    return names or None


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

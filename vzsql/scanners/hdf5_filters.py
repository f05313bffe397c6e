"""HDF5 filter pipelines -> Zarr v3 codec lists.

HDF5 applies a dataset's filters in pipeline order when writing and in reverse order when
reading; a Zarr v3 ``codecs`` list is also written in encode order, so the bytes->bytes
codecs follow the HDF5 pipeline one to one, after the array->bytes ``bytes`` codec.

| HDF5 filter (id) | Zarr v3 codec |
|---|---|
| deflate (1) | ``numcodecs.zlib`` (HDF5 deflate is a zlib stream, not gzip) |
| shuffle (2) | ``numcodecs.shuffle`` with ``elementsize`` |
| fletcher32 (3) | ``numcodecs.fletcher32`` (same checksum and byte order as HDF5) |
| szip (4) | ``vzsql.hdf5_szip`` |
| lzf (32000) | ``vzsql.hdf5_lzf`` |
| blosc (32001) | ``blosc`` (Zarr core; decodes any blosc1 buffer) |
| lz4 (32004) | ``vzsql.hdf5_lz4`` (the filter's own block framing) |
| zstd (32015) | ``zstd`` (Zarr core) |
| bzip2 (307) | ``numcodecs.bz2`` |

Anything else (nbit, scaleoffset, unregistered plugins) is an ``UnsupportedFilterError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vzsql.codecs.v2_names import BLOSC_SHUFFLE_NAMES
from vzsql.errors import UnsupportedFilterError

FILTER_NAMES = {
    1: "deflate",
    2: "shuffle",
    3: "fletcher32",
    4: "szip",
    5: "nbit",
    6: "scaleoffset",
    307: "bzip2",
    32000: "lzf",
    32001: "blosc",
    32004: "lz4",
    32015: "zstd",
}

_BLOSC_CNAMES = {0: "blosclz", 1: "lz4", 2: "lz4hc", 3: "snappy", 4: "zlib", 5: "zstd"}


def _cd(values: tuple[int, ...], i: int, default: int) -> int:
    return int(values[i]) if len(values) > i else default


def filter_codec(
    filter_id: int, cd_values: tuple[int, ...], dtype: np.dtype[Any], *, uri: str, array: str
) -> dict[str, Any]:
    """The Zarr v3 codec (JSON object) that decodes one HDF5 filter's output."""
    cd = tuple(int(v) for v in cd_values)
    if filter_id == 1:
        return {"name": "numcodecs.zlib", "configuration": {"level": _cd(cd, 0, 6)}}
    if filter_id == 2:
        size = _cd(cd, 0, dtype.itemsize)
        return {"name": "numcodecs.shuffle", "configuration": {"elementsize": size}}
    if filter_id == 3:
        return {"name": "numcodecs.fletcher32", "configuration": {}}
    if filter_id == 4:
        if len(cd) < 4:
            raise UnsupportedFilterError(
                f"szip filter without its 4 parameters (got {list(cd)})",
                filter_id=filter_id,
                source=uri,
                array=array,
            )
        return {
            "name": "vzsql.hdf5_szip",
            "configuration": {
                "options_mask": cd[0],
                "pixels_per_block": cd[1],
                "bits_per_pixel": cd[2],
                "pixels_per_scanline": cd[3],
            },
        }
    if filter_id == 32000:
        return {"name": "vzsql.hdf5_lzf", "configuration": {"size": _cd(cd, 2, 0)}}
    if filter_id == 32001:
        compressor = _cd(cd, 6, 0)
        shuffle = _cd(cd, 5, 1)
        if compressor not in _BLOSC_CNAMES or shuffle not in BLOSC_SHUFFLE_NAMES:
            raise UnsupportedFilterError(
                f"blosc filter with unknown compressor {compressor} or shuffle {shuffle}",
                filter_id=filter_id,
                source=uri,
                array=array,
            )
        return {
            "name": "blosc",
            "configuration": {
                "cname": _BLOSC_CNAMES[compressor],
                "clevel": _cd(cd, 4, 5),
                "shuffle": BLOSC_SHUFFLE_NAMES[shuffle],  # HDF5 blosc cd_values[5]
                "typesize": _cd(cd, 2, dtype.itemsize) or 1,
                "blocksize": 0,
            },
        }
    if filter_id == 32004:
        return {"name": "vzsql.hdf5_lz4", "configuration": {"blocksize": _cd(cd, 0, 0)}}
    if filter_id == 32015:
        return {"name": "zstd", "configuration": {"level": _cd(cd, 0, 3), "checksum": False}}
    if filter_id == 307:
        return {"name": "numcodecs.bz2", "configuration": {"level": _cd(cd, 0, 9) or 9}}
    name = FILTER_NAMES.get(filter_id, "unknown")
    raise UnsupportedFilterError(
        f"HDF5 filter {filter_id} ({name}) has no Zarr codec in vzsql",
        filter_id=filter_id,
        source=uri,
        array=array,
    )


def pipeline_filters(dcpl: Any) -> list[tuple[int, tuple[int, ...]]]:
    """The dataset's filter pipeline as ``(filter_id, cd_values)`` in HDF5 (encode) order."""
    out = []
    for i in range(dcpl.get_nfilters()):
        filter_id, _flags, cd_values, _name = dcpl.get_filter(i)
        out.append((int(filter_id), tuple(int(v) for v in cd_values)))
    return out


def pipeline_codecs(
    filters: list[tuple[int, tuple[int, ...]]], dtype: np.dtype[Any], *, uri: str, array: str
) -> list[dict[str, Any]]:
    """The bytes->bytes codecs for an HDF5 filter pipeline, in Zarr (encode) order."""
    return [filter_codec(fid, cd, dtype, uri=uri, array=array) for fid, cd in filters]

"""Zarr v2 (numcodecs) compressor and filter configurations as Zarr v3 codecs.

One translation for every reader of v2 metadata (existing Zarr v2 stores, kerchunk
references), so the same v2 array gets the same ``codecs`` whichever way it arrives:

- ``zstd``, ``blosc`` and ``gzip`` become Zarr's core codecs (what the HDF5 scanner writes
  for the same filters); blosc's AUTOSHUFFLE (-1) is resolved as numcodecs does (bit
  shuffle for 1-byte items, byte shuffle otherwise) and ``typesize`` defaults to the item
  size;
- every other codec becomes ``numcodecs.<id>`` with its configuration unchanged.
"""

from __future__ import annotations

from typing import Any, Final

NUMCODECS_PREFIX: Final = "numcodecs."
BLOSC_SHUFFLE_NAMES: Final = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle"}


def v3_codec(config: dict[str, Any], itemsize: int) -> dict[str, Any]:
    """The Zarr v3 codec of the numcodecs configuration ``config`` (``{"id": ..., ...}``)."""
    cfg = {k: v for k, v in config.items() if k != "id"}
    codec_id = config["id"]
    if codec_id == "zstd":
        level, checksum = cfg.get("level", 0), bool(cfg.get("checksum", False))
        return {"name": "zstd", "configuration": {"level": level, "checksum": checksum}}
    if codec_id == "gzip":
        return {"name": "gzip", "configuration": {"level": cfg.get("level", 1)}}
    if codec_id == "blosc":
        shuffle = int(cfg.get("shuffle", 1))
        if shuffle == -1:  # AUTOSHUFFLE
            shuffle = 2 if itemsize == 1 else 1
        return {
            "name": "blosc",
            "configuration": {
                "cname": cfg.get("cname", "lz4"),
                "clevel": cfg.get("clevel", 5),
                "shuffle": BLOSC_SHUFFLE_NAMES.get(shuffle, "shuffle"),
                "typesize": cfg.get("typesize") or itemsize,
                "blocksize": cfg.get("blocksize", 0),
            },
        }
    return {"name": f"{NUMCODECS_PREFIX}{codec_id}", "configuration": cfg}

"""A Zarr v2 array gets the same v3 codecs whether vzsql reads the store itself or reads
kerchunk references to it (one translation, ``vzsql.codecs.v2_names``), and the values
read back equal zarr-python's."""

from __future__ import annotations

import json
from pathlib import Path

import numcodecs
import numpy as np
import pytest
import zarr

import vzsql
from vzsql.codecs.v2_names import v3_codec


@pytest.mark.parametrize(
    ("dtype", "compressor"),
    [
        ("u1", numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.AUTOSHUFFLE)),
        ("f4", numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.AUTOSHUFFLE)),
        ("i2", numcodecs.GZip(level=6)),
        ("f8", numcodecs.Zstd(level=2)),
        ("i4", numcodecs.Zlib(level=4)),
    ],
)
def test_store_and_kerchunk_paths_agree(tmp_path: Path, dtype: str, compressor) -> None:
    path = tmp_path / "v2.zarr"
    g = zarr.open_group(path, mode="w", zarr_format=2)
    values = (np.arange(60).reshape(6, 10) % 50).astype(dtype)
    a = g.create_array("v", shape=values.shape, chunks=(4, 4), dtype=dtype, compressors=compressor)
    a[:] = values
    scanned = vzsql.scan(str(path))
    scanned.to_kerchunk(tmp_path / "refs.json")
    refs = json.loads((tmp_path / "refs.json").read_text())
    refs.pop("vzsql", None)  # read them as a foreign kerchunk file (Zarr v2 rules only)
    (tmp_path / "foreign.json").write_text(json.dumps(refs))
    imported = vzsql.from_kerchunk(tmp_path / "foreign.json", allow=[str(tmp_path)])
    codecs = [json.loads(m.table("arrays")["codecs"][0].as_py()) for m in (scanned, imported)]
    assert codecs[0] == codecs[1]
    for m in (scanned, imported):
        np.testing.assert_array_equal(m.to_xarray(mask_and_scale=False)["v"].values, values)


def test_autoshuffle_and_defaults() -> None:
    blosc = {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": -1}
    assert v3_codec(blosc, 1)["configuration"]["shuffle"] == "bitshuffle"
    assert v3_codec(blosc, 4)["configuration"]["shuffle"] == "shuffle"
    assert v3_codec(blosc, 4)["configuration"]["typesize"] == 4
    assert v3_codec({"id": "gzip"}, 2) == {"name": "gzip", "configuration": {"level": 1}}
    assert v3_codec({"id": "zlib", "level": 3}, 2) == {
        "name": "numcodecs.zlib",
        "configuration": {"level": 3},
    }

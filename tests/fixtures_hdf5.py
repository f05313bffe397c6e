"""Writers of small real HDF5/netCDF-4 files (netCDF4 and h5py) and a reference checker.

Each ``write_*`` function writes one file into a folder and returns its path. The checker
materialises scanned tables into a zarr ``MemoryStore`` (every node's ``zarr.json`` from
``vzsql.zarr_meta.hierarchy`` and every chunk's bytes, read from the file at offset/length
or taken from ``chunks.data``) and compares each array with h5py's values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import netCDF4
import numpy as np
import zarr
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from vzsql.sources import local_path
from vzsql.tables import Tables
from vzsql.zarr_meta import chunk_key, hierarchy

RNG = np.random.default_rng(42)


# -- netCDF4 writers ------------------------------------------------------------------------
def write_nc_basic(folder: Path) -> Path:
    """Dims with an unlimited one, coordinate vars, zlib/shuffle/fletcher32, packed int16,
    contiguous, big-endian, char arrays, vlen strings, a group, times, attributes."""
    path = folder / "basic.nc"
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.title = "vzsql fixture"
        ds.history = "written by tests"
        ds.version = np.float32(1.5)
        ds.levels = np.array([1, 2, 3], dtype="i4")
        ds.missing = np.float64(np.nan)
        ds.createDimension("time", None)
        ds.createDimension("lat", 5)
        ds.createDimension("lon", 7)
        ds.createDimension("strlen", 4)
        ds.createDimension("station", 3)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "standard"
        t[:] = np.arange(6) * 0.5
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-40, 40, 5)
        lon = ds.createVariable("lon", "f4", ("lon",))
        lon[:] = np.linspace(0, 300, 7)
        temp = ds.createVariable(
            "temp",
            "f4",
            ("time", "lat", "lon"),
            zlib=True,
            shuffle=True,
            fletcher32=True,
            chunksizes=(2, 3, 4),
            fill_value=np.float32(-999.0),
        )
        temp.units = "K"
        temp[:] = RNG.normal(280, 10, (6, 5, 7)).astype("f4")
        temp[0, 0, 0] = np.ma.masked
        packed = ds.createVariable(
            "packed",
            "i2",
            ("time", "lat"),
            zlib=True,
            chunksizes=(3, 5),
            fill_value=np.int16(-32767),
        )
        packed.scale_factor = np.float32(0.01)
        packed.add_offset = np.float32(273.15)
        packed.set_auto_maskandscale(True)
        vals = np.ma.masked_array(RNG.normal(280, 5, (6, 5)), mask=np.zeros((6, 5), bool))
        vals.mask[1, 2] = True
        packed[:] = vals
        cont = ds.createVariable("contig", "f8", ("lat", "lon"), contiguous=True)
        cont[:] = np.arange(35.0).reshape(5, 7)
        big = ds.createVariable("bigend", "i4", ("lat", "lon"), endian="big", zlib=True)
        big[:] = np.arange(35, dtype="i4").reshape(5, 7) - 10
        names = ds.createVariable("names", "S1", ("station", "strlen"))
        names[:] = netCDF4.stringtochar(np.array(["ab", "cdef", "g"], dtype="S4"))
        labels = ds.createVariable("labels", str, ("station",))
        labels[:] = np.array(["alpha", "β-beta", ""], dtype=object)
        unwritten = ds.createVariable("unwritten", "f4", ("lat",), contiguous=True)
        unwritten.long_name = "never written: fill value"
        g = ds.createGroup("grp")
        g.description = "a group"
        g.createDimension("depth", 4)
        d = g.createVariable("depth", "f8", ("depth",))
        d[:] = [0.0, 10.0, 20.0, 50.0]
        sal = g.createVariable(
            "salinity", "f4", ("time", "depth", "lat"), zlib=True, chunksizes=(1, 4, 5)
        )
        sal[:] = RNG.uniform(30, 40, (6, 4, 5)).astype("f4")
        sub = g.createGroup("sub")
        s = sub.createVariable("flag", "u1", ("depth",))
        s[:] = [1, 2, 3, 255]
    return path


def write_nc_compression(folder: Path) -> Path:
    """Variables compressed with szip, zstd, bzip2 and blosc as the netCDF-C library does."""
    path = folder / "compression.nc"
    data = np.arange(20 * 30, dtype="f4").reshape(20, 30) / 7
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("y", 20)
        ds.createDimension("x", 30)
        for name, kw in [
            ("szip", {"szip_coding": "nn", "szip_pixels_per_block": 8, "compression": "szip"}),
            ("zstd", {"compression": "zstd", "complevel": 4}),
            ("bzip2", {"compression": "bzip2"}),
            ("blosc_lz4", {"compression": "blosc_lz4", "blosc_shuffle": 1}),
            ("blosc_zstd", {"compression": "blosc_zstd", "blosc_shuffle": 2}),
        ]:
            v = ds.createVariable(name, "f4", ("y", "x"), chunksizes=(8, 16), **kw)
            v[:] = data
    return path


# -- h5py writers ---------------------------------------------------------------------------
def write_h5_layouts(folder: Path) -> Path:
    """Compact, contiguous (written and unallocated), chunk > shape, zero-length, 0-d,
    bool, enum, fixed and vlen strings, big-endian, plain datasets without scales."""
    path = folder / "layouts.h5"
    with h5py.File(path, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple((3, 4))
        dsid = h5py.h5d.create(f.id, b"compact", h5py.h5t.NATIVE_INT32, space, dcpl=dcpl)
        dsid.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(12, dtype="i4").reshape(3, 4))
        f["compact"].attrs["note"] = "compact layout"
        f.create_dataset("contiguous", data=np.linspace(0, 1, 24).reshape(4, 6))
        f.create_dataset("unallocated", shape=(10,), dtype="f4", fillvalue=np.float32(-1.5))
        f.create_dataset("big_contig", data=np.arange(10, dtype=">f8"))
        f.create_dataset(
            "big_chunked", data=np.arange(40, dtype=">i2").reshape(4, 10), chunks=(3, 4)
        )
        f.create_dataset(
            "chunk_gt_shape", data=np.arange(5, dtype="i8"), chunks=(8,), maxshape=(None,)
        )
        f.create_dataset("zero_len", shape=(0, 4), dtype="f4", chunks=(2, 4), maxshape=(None, 4))
        f.create_dataset("zero_contig", shape=(0,), dtype="i4")
        f.create_dataset("scalar", data=np.float64(3.25))
        f.create_dataset("scalar_int", data=np.int16(-7))
        f.create_dataset("flags", data=np.array([True, False, True]))
        enum = h5py.enum_dtype({"RED": 0, "GREEN": 1, "BLUE": 2}, basetype="u1")
        f.create_dataset("colour", data=np.array([0, 2, 1, 1], dtype="u1"), dtype=enum)
        f.create_dataset("fixed_str", data=np.array([b"one", b"three", b""], dtype="S5"))
        f.create_dataset(
            "vlen_str",
            data=np.array(["x", "yy", "zzz", "üñí"], dtype=object),
            dtype=h5py.string_dtype(),
        )
        f.create_dataset("fill_chunked", shape=(6, 6), chunks=(4, 4), dtype="i4", fillvalue=9)
        f["fill_chunked"][:2, :2] = 1
        f.create_dataset("square", data=np.eye(3, dtype="f4"))
        g = f.create_group("nested/deeper")
        g.attrs["level"] = np.int64(2)
        g.create_dataset("v", data=np.arange(6, dtype="u2").reshape(2, 3), chunks=(1, 2))
    return path


def write_h5_filters(folder: Path) -> Path:
    """Chunked datasets with each filter h5py + hdf5plugin can write."""
    path = folder / "filters.h5"
    data = (np.arange(50 * 40, dtype="f4").reshape(50, 40) / 3).astype("f4")
    ints = (np.arange(50 * 40, dtype="i4").reshape(50, 40) % 97) - 40
    with h5py.File(path, "w") as f:
        kw: dict[str, dict[str, Any]] = {
            "gzip_shuffle_fletcher": {"compression": "gzip", "shuffle": True, "fletcher32": True},
            "lzf": {"compression": "lzf"},
            "szip": {"compression": "szip"},
            "lz4": dict(hdf5plugin.LZ4()),
            "blosc": dict(hdf5plugin.Blosc(cname="zstd", shuffle=hdf5plugin.Blosc.BITSHUFFLE)),
            "blosc_lz4": dict(hdf5plugin.Blosc(cname="lz4", shuffle=hdf5plugin.Blosc.SHUFFLE)),
            "zstd": dict(hdf5plugin.Zstd(clevel=5)),
            "bzip2": dict(hdf5plugin.BZip2()),
            "lzf_fletcher": {"compression": "lzf", "fletcher32": True, "shuffle": True},
        }
        for name, options in kw.items():
            f.create_dataset(name, data=data, chunks=(16, 16), **options)
            f.create_dataset(name + "_int", data=ints, chunks=(16, 16), **options)
    return path


def write_h5_external(folder: Path) -> Path:
    """Datasets in external raw files: one file, and three files split on whole rows."""
    path = folder / "external.h5"
    one = np.arange(12, dtype="<f8").reshape(3, 4)
    (folder / "ext_one.bin").write_bytes(b"HEADER!!" + one.tobytes())
    multi = np.arange(7 * 5, dtype="<i4").reshape(7, 5)
    rows_bytes = 5 * 4
    (folder / "ext_a.bin").write_bytes(multi[:2].tobytes())
    (folder / "ext_b.bin").write_bytes(b"pad" + multi[2:6].tobytes())
    (folder / "ext_c.bin").write_bytes(multi[6:].tobytes() + b"trailing junk")
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "ext_one", shape=(3, 4), dtype="<f8", external=[("ext_one.bin", 8, one.nbytes)]
        )
        f.create_dataset(
            "ext_multi",
            shape=(7, 5),
            dtype="<i4",
            external=[
                ("ext_a.bin", 0, 2 * rows_bytes),
                ("ext_b.bin", 3, 4 * rows_bytes),
                ("ext_c.bin", 0, h5py.h5f.UNLIMITED),
            ],
        )
    return path


def write_h5_external_unaligned(folder: Path) -> Path:
    path = folder / "external_bad.h5"
    (folder / "ext_x.bin").write_bytes(np.arange(6, dtype="<i4").tobytes())
    (folder / "ext_y.bin").write_bytes(np.arange(6, 12, dtype="<i4").tobytes())
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "bad", shape=(3, 4), dtype="<i4", external=[("ext_x.bin", 0, 24), ("ext_y.bin", 0, 24)]
        )
    return path


def write_h5_virtual(folder: Path) -> Path:
    path = folder / "virtual.h5"
    src = folder / "vsource.h5"
    with h5py.File(src, "w") as f:
        f.create_dataset("data", data=np.arange(10.0))
    layout = h5py.VirtualLayout(shape=(10,), dtype="f8")
    layout[:] = h5py.VirtualSource(str(src), "data", shape=(10,))
    with h5py.File(path, "w") as f:
        f.create_dataset("plain", data=np.arange(3))
        f.create_virtual_dataset("vds", layout)
    return path


def write_h5_scaleoffset(folder: Path) -> Path:
    path = folder / "scaleoffset.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("so", data=np.arange(100, dtype="i4"), chunks=(10,), scaleoffset=0)
    return path


def write_h5_compound(folder: Path) -> Path:
    path = folder / "compound.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("rec", data=np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]))
    return path


def write_h5_filter_mask(folder: Path) -> Path:
    """Chunks written directly with filters skipped (filter_mask), next to normal ones."""
    import zlib

    path = folder / "filter_mask.h5"
    data = np.arange(8 * 6, dtype="<i4").reshape(8, 6)
    with h5py.File(path, "w") as f:
        d = f.create_dataset(
            "masked", shape=(8, 6), dtype="<i4", chunks=(3, 4), shuffle=True, compression="gzip"
        )
        d[:] = data  # every chunk through the full pipeline first
        block = np.zeros((3, 4), "<i4")
        block[:2, :2] = data[6:8, 4:6]
        # chunk (2, 1): shuffle (filter 0) skipped, only deflate applied
        d.id.write_direct_chunk((6, 4), zlib.compress(block.tobytes()), filter_mask=0b01)
        # chunk (0, 0): both filters skipped, raw bytes
        d.id.write_direct_chunk(
            (0, 0), (data[0:3, 0:4] * 10).astype("<i4").tobytes(), filter_mask=0b11
        )
    return path


# -- checking -------------------------------------------------------------------------------
def read_chunk(tables: Tables, row: dict[str, Any]) -> bytes:
    """The bytes of one chunk row: inline data, or the referenced range of its source."""
    if row["data"] is not None:
        return bytes(row["data"])
    uris = dict(
        zip(tables.sources["source_id"].to_pylist(), tables.sources["uri"].to_pylist(), strict=True)
    )
    path = local_path(uris[row["source_id"]])
    assert path is not None
    with open(path, "rb") as fh:
        fh.seek(row["offset"])
        data = fh.read(row["length"])
    assert len(data) == row["length"]
    return data


def materialize(tables: Tables) -> zarr.Group:
    """A zarr group in memory holding exactly what the tables describe."""
    proto = default_buffer_prototype()
    store_dict: dict[str, Any] = {}
    for key, doc in hierarchy(tables).items():
        store_dict[key] = proto.buffer.from_bytes(json.dumps(doc).encode())
    for row in tables.chunks.to_pylist():
        key = f"{row['array']}/{chunk_key(row['index'])}"
        store_dict[key] = proto.buffer.from_bytes(read_chunk(tables, row))
    return zarr.open_group(MemoryStore(store_dict=store_dict), mode="r", zarr_format=3)


def h5_values(dset: h5py.Dataset) -> np.ndarray[Any, Any]:
    """A dataset's values as the Zarr array should return them."""
    string = h5py.check_string_dtype(dset.dtype)
    if string is not None and string.length is None:
        return np.asarray(dset.asstr()[()], dtype=object)
    return np.asarray(dset[()])


def assert_matches_h5py(tables: Tables, path: Path) -> list[str]:
    """Assert every array of ``tables`` equals h5py's values; return the array paths."""
    group = materialize(tables)
    checked = []
    with h5py.File(path, "r") as f:
        for name in tables.arrays["array"].to_pylist():
            expected = h5_values(f[name])
            got = np.asarray(group[name][...])
            assert got.shape == expected.shape, name
            if expected.dtype.kind == "O":
                assert got.tolist() == expected.tolist(), name
            else:
                np.testing.assert_array_equal(got, expected.astype(got.dtype), err_msg=name)
            checked.append(name)
    return checked

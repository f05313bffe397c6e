"""open_manifest_dataset / engine="vzsql": lazy Datasets equal to reading the originals."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

import vzsql
from tests.handmade import RawArchive
from vzsql.store import ManifestStore
from vzsql.xarray_backend import VzsqlBackendEntrypoint, open_manifest_dataset, restore_attrs

# -- hand-built manifests -------------------------------------------------------------------


def _packed_archive(tmp_path: Path) -> tuple[RawArchive, np.ndarray]:
    raw_values = np.arange(-20, 20, dtype="<i2").reshape(8, 5)
    raw_values[0, 0] = -999
    raw = RawArchive(tmp_path / "raw.bin")
    raw.add(
        "packed",
        raw_values,
        [4, 5],
        dims=["time", "x"],
        compress=True,
        fill_value=-999,
        attrs={"_FillValue": -999, "scale_factor": 0.1, "add_offset": 5.0, "units": "K"},
        attr_dtypes={"_FillValue": "<i2", "scale_factor": "<f4", "add_offset": "<f4"},
        skip={(1, 0)},  # never written: the storage fill value, hence masked
    )
    raw.add(
        "time",
        np.arange(8, dtype="<f8"),
        [8],
        dims=["time"],
        attrs={"units": "days since 2000-01-01", "calendar": "standard"},
    )
    raw.add("x", np.arange(5, dtype="<i4") * 10, [5], dims=["x"], inline={(0,)})
    raw.add(
        "label_x",
        np.array([1.5, 2.5, 3.5, 4.5, 5.5], dtype=">f8"),
        [2],
        dims=["x"],
        endian="big",
    )
    raw.add(
        "scalar",
        np.array(7, dtype="<i4"),
        [],
        attrs={"coordinates": "label_x", "valid_range": [0, 10]},
        attr_dtypes={"valid_range": "<i4"},
    )
    raw.add_group("", {"title": "hand made", "version": 2})
    raw.add_group("grp", {"kind": "inner"})
    raw.add("grp/depth", np.array([1, 2, 3], dtype="<i8"), [2], dims=["depth"])
    return raw, raw_values


def test_packed_data_decodes_to_float32_with_mask(tmp_path: Path) -> None:
    raw, raw_values = _packed_archive(tmp_path)
    ds = open_manifest_dataset(vzsql.Manifest(raw.tables()))
    packed = ds["packed"]
    assert packed.dtype == np.float32  # float32 scale_factor survives the JSON round trip
    expected = raw_values.astype(np.float32) * np.float32(0.1) + np.float32(5.0)
    expected[4:8, :] = np.nan  # the missing chunk is filled with -999 = _FillValue
    expected[0, 0] = np.nan
    np.testing.assert_array_equal(packed.values, expected)
    assert packed.encoding["_FillValue"] == -999 and packed.encoding["dtype"] == np.int16
    assert packed.attrs == {"units": "K"}
    # undecoded: raw int16 values, attributes typed as stored
    plain = open_manifest_dataset(raw.tables(), mask_and_scale=False, decode_times=False)
    assert plain["packed"].dtype == np.int16
    assert plain["packed"].attrs["scale_factor"].dtype == np.float32
    assert plain["time"].dtype == np.float64
    assert isinstance(plain["packed"].attrs["_FillValue"], np.int16)


def test_coordinates_times_groups_and_lazy_reads(tmp_path: Path) -> None:
    raw, _ = _packed_archive(tmp_path)
    store = ManifestStore(raw.tables())
    ds = open_manifest_dataset(store)
    assert store.stats.requests <= 4  # index coordinates only: data stay lazy
    assert ds.indexes.keys() == {"time", "x"}
    assert "label_x" in ds.coords and "label_x" not in ds.indexes
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    assert ds["time"].values[3] == np.datetime64("2000-01-04")
    np.testing.assert_array_equal(ds["x"].values, np.arange(5) * 10)
    assert ds["label_x"].dtype == np.float64 and ds["label_x"].values[-1] == 5.5
    assert ds["scalar"].shape == () and int(ds["scalar"]) == 7
    assert ds.attrs == {"title": "hand made", "version": 2}
    np.testing.assert_array_equal(ds["scalar"].attrs["valid_range"], [0, 10])
    grp = open_manifest_dataset(raw.tables(), group="/grp")
    assert grp.attrs == {"kind": "inner"} and list(grp.variables) == ["depth"]
    np.testing.assert_array_equal(grp["depth"].values, [1, 2, 3])
    dropped = open_manifest_dataset(raw.tables(), drop_variables=["packed", "scalar"])
    assert "packed" not in dropped and "scalar" not in dropped and "time" in dropped
    with pytest.raises(ValueError, match="no group 'nope'"):
        open_manifest_dataset(raw.tables(), group="nope")
    with pytest.raises(TypeError, match="unexpected keyword"):
        open_manifest_dataset(raw.tables(), decode_everything=True)


def test_rectilinear_variable_and_dask_chunks(tmp_path: Path) -> None:
    pytest.importorskip("dask")
    data = np.arange(10 * 4, dtype="<f4").reshape(10, 4)
    raw = RawArchive(tmp_path / "raw.bin")
    raw.add("v", data, [[3, 1, 4, 2], 2], dims=["t", "y"], compress=True)
    ds = open_manifest_dataset(raw.tables())
    assert ds["v"].encoding["chunks"] == ((3, 1, 4, 2), 2)
    np.testing.assert_array_equal(ds["v"].values, data)
    np.testing.assert_array_equal(ds["v"][2:5, 1:3].values, data[2:5, 1:3])
    lazy = ds.chunk({"t": ds["v"].encoding["preferred_chunks"]["t"]})
    assert lazy["v"].chunks == ((3, 1, 4, 2), (4,))
    np.testing.assert_array_equal(lazy["v"].sum("t").values, data.sum(0))


def test_restore_attrs() -> None:
    attrs = restore_attrs(
        '{"a": 0.1, "b": [1, 2], "c": "text", "d": [3], "e": "NaN"}',
        '{"a": "<f4", "b": "<i2", "d": ">u1", "e": "<f8", "missing": "<f4"}',
    )
    assert attrs["a"] == np.float32(0.1) and attrs["a"].dtype == np.float32
    assert attrs["b"].dtype == np.int16 and attrs["b"].tolist() == [1, 2]
    assert attrs["c"] == "text" and attrs["d"] == 3 and attrs["d"].dtype == np.uint8
    assert np.isnan(attrs["e"])


# -- the backend ----------------------------------------------------------------------------


def test_engine_opens_saved_manifest(tmp_path: Path) -> None:
    raw, _ = _packed_archive(tmp_path)
    folder = tmp_path / "archive.vzm"
    vzsql.Manifest(raw.tables()).save(folder)
    entry = VzsqlBackendEntrypoint()
    assert entry.guess_can_open(folder) and entry.guess_can_open(str(folder))
    assert not entry.guess_can_open(tmp_path) and not entry.guess_can_open(raw.path)
    assert {"drop_variables", "group", "mask_and_scale"} <= set(entry.open_dataset_parameters)
    assert entry.description and entry.url
    assert "vzsql" in xr.backends.list_engines()
    expected = open_manifest_dataset(raw.tables())
    with xr.open_dataset(folder, engine="vzsql") as got:
        xr.testing.assert_identical(got, expected)
        assert got["packed"].dtype == np.float32
    with xr.open_dataset(folder) as guessed:  # the engine is found from the folder
        xr.testing.assert_identical(guessed, expected)
    with xr.open_dataset(
        folder, engine="vzsql", group="grp", drop_variables="depth", decode_cf=False
    ) as sub:
        assert sub.attrs == {"kind": "inner"} and not sub.variables
    with xr.open_dataset(folder, engine="vzsql", chunks={}) as lazy:
        assert lazy["packed"].chunks == ((4, 4), (5,))
        # a lazy dataset pickles (store and all) for dask workers
        xr.testing.assert_identical(pickle.loads(pickle.dumps(lazy)).load(), expected)
        xr.testing.assert_identical(lazy.load(), expected)
    with xr.open_dataset(vzsql.Manifest(raw.tables()), engine="vzsql") as from_object:
        xr.testing.assert_identical(from_object, expected)


# -- real netCDF4 files through vzsql.scan --------------------------------------------------


def write_netcdf4(path: Path) -> Path:
    """Packing, times, groups, char and vlen strings, big-endian, unwritten chunks."""
    rng = np.random.default_rng(1)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.title = "vzsql xarray test"
        ds.gain = np.float32(2.5)
        ds.createDimension("time", None)
        ds.createDimension("lat", 4)
        ds.createDimension("lon", 6)
        ds.createDimension("station", 3)
        ds.createDimension("nchar", 5)
        t = ds.createVariable("time", "i4", ("time",))
        t.units = "hours since 2001-02-03 04:00"
        t.calendar = "proleptic_gregorian"
        t[:] = np.arange(5) * 6
        ds.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-60, 60, 4)
        ds.createVariable("lon", "f8", ("lon",))[:] = np.linspace(0, 300, 6)
        packed = ds.createVariable(
            "packed",
            "i2",
            ("time", "lat", "lon"),
            zlib=True,
            chunksizes=(2, 2, 3),
            fill_value=-32767,
        )
        packed.scale_factor = np.float32(0.01)
        packed.add_offset = np.float32(273.15)
        packed.units = "K"
        vals = np.ma.masked_array(rng.normal(280, 5, (5, 4, 6)), mask=False)
        vals.mask[1, 2, 3] = True
        packed[:] = vals
        temp = ds.createVariable(
            "temp", "f4", ("time", "lat"), chunksizes=(1, 4), fill_value=np.float32(1e20)
        )
        temp.coordinates = "station_name"
        temp[4, :] = rng.normal(size=4).astype("f4")  # chunks of time 0..3 never written
        big = ds.createVariable("big", ">i4", ("lat", "lon"), endian="big", zlib=True)
        big[:] = np.arange(24, dtype="i4").reshape(4, 6) - 5
        names = ds.createVariable("station_name", "S1", ("station", "nchar"))
        names[:] = netCDF4.stringtochar(np.array(["ab", "cdefg", "h"], dtype="S5"))
        labels = ds.createVariable("labels", str, ("station",))
        labels[:] = np.array(["alpha", "β-beta", ""], dtype=object)
        days = ds.createVariable("noleap_day", "f8", ("station",))
        days.units = "days since 0001-01-01"
        days.calendar = "noleap"
        days[:] = [0.0, 365.0, 800.5]
        ds.createVariable("scalar", "f8", ())[...] = 3.25
        g = ds.createGroup("grp")
        g.note = "inner"
        g.createDimension("z", 3)
        z = g.createVariable("z", "f4", ("z",))
        z.positive = "down"
        z[:] = [1.0, 5.0, 10.0]
        gv = g.createVariable("gv", "u2", ("z",), fill_value=np.uint16(65535))
        gv[:] = np.ma.masked_array([7, 8, 9], mask=[False, True, False])
    return path


@pytest.fixture(scope="module")
def nc_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_netcdf4(tmp_path_factory.mktemp("nc") / "real.nc")


def _assert_same(ours: xr.Dataset, ref: xr.Dataset) -> None:
    xr.testing.assert_identical(ours, ref)
    for name, var in ref.variables.items():
        assert ours[name].dtype == var.dtype, name
        for key in ("_FillValue", "scale_factor", "add_offset", "units", "calendar"):
            if key in var.encoding:
                assert np.array_equal(ours[name].encoding[key], var.encoding[key]), (name, key)
                assert (
                    np.asarray(ours[name].encoding[key]).dtype
                    == np.asarray(var.encoding[key]).dtype
                ), (name, key)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"mask_and_scale": False},
        {"decode_times": False},
        {"decode_times": xr.coders.CFDatetimeCoder(use_cftime=True)},
        {"concat_characters": False, "decode_coords": False},
    ],
)
def test_scan_to_xarray_equals_open_dataset(nc_file: Path, kwargs: dict[str, Any]) -> None:
    manifest = vzsql.scan(nc_file)
    with xr.open_dataset(nc_file, **kwargs) as ref:
        ours = manifest.to_xarray(**kwargs)
        _assert_same(ours, ref)
    if not kwargs:
        assert ours["packed"].dtype == np.float32
        assert ours["labels"].values.tolist() == ["alpha", "β-beta", ""]
        assert ours["station_name"].values.tolist() == [b"ab", b"cdefg", b"h"]
        assert np.isnan(ours["temp"].values[:4]).all()  # unwritten chunks: fill -> masked
        assert not np.isnan(ours["temp"].values[4]).any()


def test_record_variable_shorter_than_unlimited_dim(tmp_path: Path) -> None:
    path = tmp_path / "short.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createVariable("time", "f8", ("time",))[:] = np.arange(4.0)
        ds.createVariable("short", "f4", ("time",), fill_value=np.float32(-1))[0:2] = [1, 2]
    with xr.open_dataset(path) as ref:
        _assert_same(vzsql.scan(path).to_xarray(), ref)


def test_scan_to_xarray_group(nc_file: Path) -> None:
    with xr.open_dataset(nc_file, group="grp") as ref:
        _assert_same(vzsql.scan(nc_file).to_xarray(group="grp"), ref)


def test_s3_source_read_through_store(
    s3: Any, nc_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = s3.upload(nc_file)
    manifest = vzsql.scan(uri, storage_options=s3.storage_options)
    assert manifest.table("sources")["uri"].to_pylist() == [uri]
    with xr.open_dataset(nc_file) as ref:
        for options in (s3.storage_options, s3.obstore_options):
            store = manifest.to_store(**options)
            _assert_same(open_manifest_dataset(store).load(), ref.load())
            assert store.stats.reads < store.stats.requests
        for key, value in s3.env.items():  # configuration by AWS_* environment variables
            monkeypatch.setenv(key, value)
        _assert_same(manifest.to_xarray().load(), ref)

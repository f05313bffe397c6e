"""GRIB scanner tests: vzsql's arrays equal cfgrib's, boundaries equal where messages were written.

Every file is written with ecCodes (or is a small real GRIB file shipped by xarray /
VirtualiZarr, Apache-2.0, copied to tests/data). The scan is materialised into a Zarr v3
store (documents from ``vzsql.zarr_meta`` + chunk bytes) and opened with xarray, which finds
the ``vzsql.grib`` codec through zarr's entry points; the result must be identical to
``xr.open_dataset(f, engine="cfgrib")`` except cfgrib's ``history`` attribute.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import eccodes
import numpy as np
import pytest
import xarray as xr
from fixtures_grib import (
    PACKINGS_GRIB1,
    PACKINGS_GRIB2,
    Field,
    encode,
    grid_fields,
    materialise_dir,
    materialise_memory,
    multi_field_message,
    write_grib,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from vzsql.errors import CorruptSourceError, UnsupportedLayoutError
from vzsql.scanners.grib import scan_grib, scan_grib_report
from vzsql.scanners.grib_messages import find_messages, split_field
from vzsql.tables import Tables

DATA = Path(__file__).parent / "data"
CFGRIB = {"engine": "cfgrib", "indexpath": ""}


def open_vzsql(tables: Tables, group: str | None = None) -> xr.Dataset:
    return xr.open_zarr(
        materialise_memory(tables), group=group, consolidated=False, zarr_format=3
    ).load()


def open_cfgrib(path: Path, **filter_by_keys: object) -> xr.Dataset:
    ds = xr.open_dataset(path, backend_kwargs={"filter_by_keys": filter_by_keys}, **CFGRIB)
    ds = ds.load()
    ds.attrs.pop("history", None)
    return ds


def assert_same_as_cfgrib(path: Path, tables: Tables | None = None) -> xr.Dataset:
    ours = open_vzsql(tables if tables is not None else scan_grib(str(path)))
    ref = open_cfgrib(path)
    xr.testing.assert_identical(ours, ref)
    return ours


# -- boundaries -------------------------------------------------------------------------


def test_boundaries_with_junk_padding_wmo_headers_and_mixed_editions(tmp_path: Path) -> None:
    msgs = [
        encode(Field("regular_ll_sfc_grib2")),
        encode(Field("regular_ll_sfc_grib1")),
        encode(Field("reduced_gg_pl_32_grib2")),
        encode(Field("regular_ll_pl_grib1")),
    ]
    path, offsets = write_grib(
        tmp_path / "mixed.grib",
        msgs,
        before=b"leading junk \x00\xff",
        between=[b"\x00" * 13, b"", b"padding\n"],
        after=b"trailing junk 7777",
        wmo=True,
    )
    found = find_messages(np.fromfile(path, dtype=np.uint8))
    assert found.offsets.tolist() == offsets
    assert found.lengths.tolist() == [len(m) for m in msgs]
    assert found.editions.tolist() == [2, 1, 2, 1]
    assert found.failures == []
    # ecCodes' own reader agrees on offsets
    with open(path, "rb") as f:
        ref = []
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            ref.append(int(eccodes.codes_get(h, "offset")))
            eccodes.codes_release(h)
    assert ref == offsets


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0, 1, 2]), st.binary(max_size=40).filter(lambda b: b"GRIB" not in b)
        ),
        min_size=1,
        max_size=6,
    ),
    st.binary(max_size=30).filter(lambda b: b"GRIB" not in b),
)
def test_boundaries_property(parts: list[tuple[int, bytes]], tail: bytes) -> None:
    """Any sequence of messages and junk without 'GRIB': exactly the written offsets."""
    pool = [_MESSAGES[k] for k, _ in parts]
    buf, offsets = bytearray(), []
    for (_k, junk), msg in zip(parts, pool, strict=True):
        buf += junk
        offsets.append(len(buf))
        buf += msg
    buf += tail
    found = find_messages(np.frombuffer(bytes(buf), dtype=np.uint8))
    assert found.offsets.tolist() == offsets
    assert found.failures == []


_MESSAGES = [
    encode(Field("regular_ll_sfc_grib2", packing="grid_ccsds")),
    encode(Field("regular_ll_sfc_grib1")),
    encode(Field("regular_ll_pl_grib2", packing="grid_ieee")),
]


def test_large_grib1_message_length_convention(tmp_path: Path) -> None:
    """GRIB1 over 8 MB: the 24-bit length carries 0x800000 and counts 120-byte blocks."""
    keys = {"Ni": 1500, "Nj": 1500, "iDirectionIncrement": 100, "jDirectionIncrement": 100}
    keys.update(latitudeOfLastGridPoint=-59900, longitudeOfLastGridPoint=149900)
    big = Field("regular_ll_sfc_grib1", keys=keys)
    big.values = np.linspace(0, 1, 1500 * 1500)
    h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
    for k, v in keys.items():
        eccodes.codes_set(h, k, v)
    eccodes.codes_set(h, "bitsPerValue", 32)
    eccodes.codes_set_values(h, big.values)
    raw = bytes(eccodes.codes_get_message(h))
    eccodes.codes_release(h)
    assert len(raw) > 8 * 2**20 and raw[4] & 0x80
    path, offsets = write_grib(
        tmp_path / "big.grib1", [raw, encode(Field("regular_ll_sfc_grib1"))], between=b"\0" * 5
    )
    found = find_messages(np.fromfile(path, dtype=np.uint8))
    assert found.offsets.tolist() == offsets
    assert found.lengths[0] == len(raw)
    assert found.failures == []


# -- layout and values equal cfgrib's ------------------------------------------------------


@pytest.mark.parametrize("packing", PACKINGS_GRIB2)
def test_grib2_packings_equal_cfgrib(tmp_path: Path, packing: str) -> None:
    # the bundled libpng refuses to encode fields with a bitmap: PNG gets none
    missing = 0 if packing == "grid_png" else 7
    fields = grid_fields(packing=packing, missing_every=missing)
    path, _ = write_grib(tmp_path / f"{packing}.grib2", fields, between=b"\0\0\0")
    ours = assert_same_as_cfgrib(path)
    assert ours["t"].dims == ("step", "isobaricInhPa", "latitude", "longitude")
    assert np.isnan(ours["t"].values[..., 0, 0]).all() == bool(missing)  # bitmap -> NaN
    assert ours["t"].dtype == np.float32


@pytest.mark.parametrize("packing", PACKINGS_GRIB1)
def test_grib1_with_ensemble_equals_cfgrib(tmp_path: Path, packing: str) -> None:
    fields = grid_fields(
        sample="regular_ll_pl_grib1", numbers=[0, 1, 2], levels=[850, 500], packing=packing
    )
    path, _ = write_grib(tmp_path / f"ens_{packing}.grib1", fields)
    ours = assert_same_as_cfgrib(path)
    assert ours["t"].dims == ("number", "step", "isobaricInhPa", "latitude", "longitude")


@pytest.mark.parametrize(
    "sample",
    [
        "regular_gg_sfc_grib2",
        "reduced_gg_pl_32_grib2",
        "reduced_gg_pl_32_grib1",
        "rotated_ll_sfc_grib2",
        "polar_stereographic_pl_grib2",
        "sh_ml_grib2",
    ],
)
def test_grids_equal_cfgrib(tmp_path: Path, sample: str) -> None:
    fields = [Field(sample, {"step": s}, seed=s) for s in (0, 12)]
    if sample.startswith("sh"):  # spectral coefficients: keep the sample's packing/values
        fields = [Field(sample, {"step": s}, values=_sample_values(sample)) for s in (0, 12)]
    path, _ = write_grib(tmp_path / f"{sample}.grib", fields)
    assert_same_as_cfgrib(path)


def _sample_values(sample: str) -> np.ndarray:
    h = eccodes.codes_grib_new_from_samples(sample)
    try:
        return np.asarray(eccodes.codes_get_values(h))
    finally:
        eccodes.codes_release(h)


def test_missing_fields_are_nan_chunks(tmp_path: Path) -> None:
    """A hole in the hypercube is an absent chunk row: NaN, as in cfgrib."""
    fields = grid_fields(names=["t"], levels=[850, 500], steps=[0, 6])[:-1]
    path, _ = write_grib(tmp_path / "holes.grib2", fields)
    tables = scan_grib(str(path))
    assert sum(1 for a in tables.chunks.column("array").to_pylist() if a == "t") == 3
    ours = assert_same_as_cfgrib(path, tables)
    assert np.isnan(ours["t"].values[1, 1]).all()


@pytest.mark.parametrize("name", ["xarray_example.grib", "ecmwf_soil_8vars_tiny.grib1"])
def test_real_files_equal_cfgrib(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes((DATA / name).read_bytes())
    assert_same_as_cfgrib(path)


def test_chunks_reference_each_message(tmp_path: Path) -> None:
    fields = grid_fields(names=["t"], levels=[850, 500], steps=[0, 6, 12])
    path, offsets = write_grib(tmp_path / "refs.grib2", fields, between=b"\0" * 3, wmo=True)
    tables = scan_grib(str(path))
    t = tables.chunks.filter(np.array(tables.chunks.column("array").to_pylist()) == "t")
    assert sorted(t.column("offset").to_pylist()) == offsets
    arr = {r["array"]: r for r in tables.arrays.to_pylist()}["t"]
    assert arr["chunk_shape"] == [1, 1, 31, 16]
    assert json.loads(arr["codecs"]) == [{"name": "vzsql.grib", "configuration": {"field": 0}}]
    assert tables.sources.column("format").to_pylist() == ["grib"]


def test_mixed_editions_become_groups_matching_cfgrib_filters(tmp_path: Path) -> None:
    fields = grid_fields(names=["t"], levels=[850], steps=[0, 6]) + grid_fields(
        sample="regular_ll_pl_grib1", names=["z"], levels=[850], steps=[0, 6]
    )
    path, _ = write_grib(tmp_path / "editions.grib", fields, between=b"\n")
    tables = scan_grib(str(path))
    groups = sorted(g for g in tables.groups.column("group").to_pylist() if g)
    assert groups == ["edition=1", "edition=2"]
    for edition in (1, 2):
        ours = open_vzsql(tables, group=f"edition={edition}")
        ref = open_cfgrib(path, edition=edition)
        ours.attrs.pop("GRIB_filter_by_keys")
        xr.testing.assert_identical(ours, ref)


def test_multi_field_messages_use_the_field_position(tmp_path: Path) -> None:
    msgs = [
        multi_field_message(
            [
                Field("regular_ll_pl_grib2", {"shortName": "u", "step": s}, seed=s),
                Field("regular_ll_pl_grib2", {"shortName": "v", "step": s}, seed=10 + s),
            ]
        )
        for s in (0, 6)
    ]
    assert len(split_field(msgs[0], 1)) < len(msgs[0])
    path, _ = write_grib(tmp_path / "uv.grib2", msgs)
    tables = scan_grib(str(path))
    codecs = {r["array"]: json.loads(r["codecs"]) for r in tables.arrays.to_pylist()}
    assert codecs["u"][0]["configuration"]["field"] == 0
    assert codecs["v"][0]["configuration"]["field"] == 1
    assert_same_as_cfgrib(path, tables)


def test_multi_field_positions_differ_is_a_clear_error(tmp_path: Path) -> None:
    u0 = Field("regular_ll_pl_grib2", {"shortName": "u", "step": 0})
    v0 = Field("regular_ll_pl_grib2", {"shortName": "v", "step": 0})
    u6 = Field("regular_ll_pl_grib2", {"shortName": "u", "step": 6})
    v6 = Field("regular_ll_pl_grib2", {"shortName": "v", "step": 6})
    path, _ = write_grib(
        tmp_path / "uv_swapped.grib2",
        [multi_field_message([u0, v0]), multi_field_message([v6, u6])],
    )
    with pytest.raises(UnsupportedLayoutError, match="different positions") as e:
        scan_grib(str(path))
    assert e.value.array in ("u", "v")


def test_codec_found_through_entry_points_in_a_fresh_process(tmp_path: Path) -> None:
    path, _ = write_grib(tmp_path / "ep.grib2", grid_fields(names=["t"], steps=[0]))
    store = materialise_dir(scan_grib(str(path)), tmp_path / "store.zarr")
    code = (
        "import sys, xarray as xr; assert 'vzsql' not in sys.modules; "
        "ds = xr.open_zarr(sys.argv[1], consolidated=False); print(float(ds.t.sum())); "
        "assert 'vzsql.codecs.grib' in sys.modules"  # loaded by zarr's entry point
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(store)], capture_output=True, text=True, check=True
    )
    assert float(out.stdout.strip()) == pytest.approx(float(open_cfgrib(path).t.sum()), rel=1e-6)


# -- corrupt input -----------------------------------------------------------------------


def _three_messages(tmp_path: Path) -> tuple[bytes, list[int], list[bytes]]:
    msgs = [encode(f) for f in grid_fields(names=["t"], levels=[850], steps=[0, 6, 12])]
    path, offsets = write_grib(tmp_path / "ok.grib2", msgs, between=b"\0\0")
    return path.read_bytes(), offsets, msgs


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncate", "runs past the end of the file"),
        ("length", "does not end with '7777'"),
        ("end", "does not end with '7777'"),
        ("edition", "edition byte"),
        ("section", "sections are inconsistent"),
    ],
)
def test_corruption_is_a_typed_error_naming_the_offset(
    tmp_path: Path, damage: str, reason: str
) -> None:
    raw, offsets, msgs = _three_messages(tmp_path)
    buf = bytearray(raw)
    o = offsets[1]
    if damage == "truncate":
        buf = buf[: offsets[2] + len(msgs[2]) // 2]
        o = offsets[2]
    elif damage == "length":
        buf[o + 15] ^= 0x10
    elif damage == "end":
        buf[o + len(msgs[1]) - 1] = ord("x")
    elif damage == "edition":
        buf[o + 7] = 9
    elif damage == "section":
        buf[o + 16 + 3] ^= 0x04  # section 1 length
    path = tmp_path / f"bad_{damage}.grib2"
    path.write_bytes(bytes(buf))
    with pytest.raises(CorruptSourceError, match=reason) as e:
        scan_grib(str(path))
    assert f"byte offset {o}" in str(e.value)
    assert e.value.source == str(path) or str(path) in str(e.value)
    # lenient: the failure is recorded, the other messages are served
    report = scan_grib_report(str(path), strict=False)
    assert report.failures.column("offset").to_pylist() == [o]
    root = next(g for g in report.tables.groups.to_pylist() if g["group"] == "")
    assert json.loads(root["attrs"])["vzsql_grib_failures"][0]["offset"] == o
    ours = open_vzsql(report.tables)
    assert ours.sizes["step"] == 2


def test_ecccodes_decode_failure_is_reported(tmp_path: Path) -> None:
    raw, offsets, _ = _three_messages(tmp_path)
    buf = bytearray(raw)
    o = offsets[0]
    buf[o + 16 + 4] = 3  # section 1 becomes section 3: ecCodes refuses the message
    path = tmp_path / "undecodable.grib2"
    path.write_bytes(bytes(buf))
    with pytest.raises(CorruptSourceError, match=f"byte offset {o}"):
        scan_grib(str(path))


def test_no_grib_message_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.grib"
    path.write_bytes(b"nothing to see here" * 10)
    with pytest.raises(CorruptSourceError, match="no GRIB message"):
        scan_grib(str(path))


def test_variables_cfgrib_drops_are_kept_as_groups(tmp_path: Path) -> None:
    """The soil file: cfgrib keeps one variable per clashing level, vzsql keeps all."""
    path = tmp_path / "soil.grib1"
    path.write_bytes((DATA / "ecmwf_soil_8vars_tiny.grib1").read_bytes())
    tables = scan_grib(str(path))
    xr.testing.assert_identical(open_vzsql(tables), open_cfgrib(path))
    groups = [g for g in tables.groups.column("group").to_pylist() if g]
    assert groups and all(g.startswith("paramId=") for g in groups)
    ref_all = xr.open_dataset(path, **CFGRIB)
    n_vars = len(ref_all.data_vars)
    for g in groups:
        ours = open_vzsql(tables, group=g)
        ref = open_cfgrib(path, paramId=int(g.split("=")[1]))
        ours.attrs.pop("GRIB_filter_by_keys")
        xr.testing.assert_identical(ours, ref)
        n_vars += len(ours.data_vars)
    with open(path, "rb") as f:
        n_params = set()
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            n_params.add(eccodes.codes_get(h, "paramId"))
            eccodes.codes_release(h)
    assert n_vars == len(n_params)


def test_manifest_to_xarray_equals_cfgrib(tmp_path: Path) -> None:
    """End to end: format sniffing, scan, the manifest store and codec through xarray."""
    pytest.importorskip("vzsql.xarray_backend")
    import vzsql

    fields = grid_fields(numbers=[0, 1], steps=[0, 6], packing="grid_ccsds", missing_every=5)
    path, _ = write_grib(tmp_path / "e2e.grib2", fields, before=b"junk", wmo=True)
    ours = vzsql.scan(str(path)).to_xarray().load()
    xr.testing.assert_identical(ours, open_cfgrib(path))

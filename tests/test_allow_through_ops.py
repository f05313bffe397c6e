"""The allow-list survives operations: a manifest derived from an opened one (concat, isel, sel,
rename_sources, merge...) still refuses a disallowed source when read; the coordinate reads
operations make and the Zarr copy go through the same check as the store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xarray as xr
from fixtures_icechunk import scanned
from fixtures_series import write_nc_month
from hypothesis import given
from hypothesis import strategies as st

import vzsql
from vzsql.allowlist import AllowList, _covers, covered, derived
from vzsql.errors import SourceNotAllowedError


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """``data/`` (jan.nc, feb.nc: shared), ``private/secret.nc`` (not shared), manifests in
    ``downloads/``: ``feb.vzm`` honest, ``evil.vzm`` and ``evil_inline.vzm`` pointing at the
    private file (the latter with its coordinates inline, so concat reads nothing of it)."""
    monkeypatch.delenv("VZSQL_ALLOW", raising=False)
    data, private, downloads = tmp_path / "data", tmp_path / "private", tmp_path / "downloads"
    for d in (data, private, downloads):
        d.mkdir()
    write_nc_month(data / "jan.nc", 0, 31)
    write_nc_month(data / "feb.nc", 31, 28)
    shutil.copy(data / "jan.nc", private / "secret.nc")  # any file the user did not share
    vzsql.scan(data / "feb.nc").save(downloads / "feb.vzm")
    for name, inline in (("evil", ()), ("evil_inline", ("time", "lat", "lon"))):
        m = scanned(data / "jan.nc", inline=inline)
        uri = pa.array([(private / "secret.nc").as_uri()] * m.table("sources").num_rows)
        evil = vzsql.Manifest(
            m.tables.with_tables(sources=m.table("sources").set_column(1, "uri", uri))
        )
        evil.save(downloads / f"{name}.vzm")
    return {"data": data, "private": private, "downloads": downloads}


def strict(layout: dict[str, Path], name: str) -> vzsql.Manifest:
    return vzsql.open_manifest(layout["downloads"] / f"{name}.vzm", allow=[layout["data"]])


def refused(m: vzsql.Manifest, layout: dict[str, Path]) -> None:
    with pytest.raises(SourceNotAllowedError, match="not allowed") as e:
        m.to_xarray()["tas"].load()
    assert (layout["private"] / "secret.nc").as_uri() in str(e.value)


def test_isel_and_concat_keep_refusing(layout: dict[str, Path]) -> None:
    evil = strict(layout, "evil_inline")
    refused(evil, layout)
    refused(evil.isel(time=slice(0, 10)), layout)
    both = vzsql.concat([evil, strict(layout, "feb")], "time")
    assert both.allow is not None
    refused(both, layout)
    refused(both.isel(time=slice(0, 20)), layout)
    # what the inputs allowed is still readable
    with xr.open_dataset(layout["data"] / "feb.nc") as feb:
        got = both.isel(time=slice(31, 59)).to_xarray()["tas"].values
        np.testing.assert_array_equal(got, feb["tas"].values)


def test_merge_and_combine_keep_refusing(layout: dict[str, Path]) -> None:
    evil, feb = strict(layout, "evil_inline"), strict(layout, "feb")
    refused(vzsql.combine([evil, feb]), layout)
    only_tas = evil.replace(
        arrays=evil.table("arrays").filter(pa.compute.equal(evil.table("arrays")["array"], "tas")),
        validate=False,
    )
    assert only_tas.allow is not None
    refused(vzsql.merge([only_tas, evil.isel(time=slice(0, 31))]), layout)


def test_coordinate_reads_of_operations_are_checked(layout: dict[str, Path]) -> None:
    """concat and sel read ``time`` values from the sources: those reads are refused too."""
    evil, feb = strict(layout, "evil"), strict(layout, "feb")
    with pytest.raises(SourceNotAllowedError, match="not allowed"):
        vzsql.concat([evil, feb], "time")
    with pytest.raises(SourceNotAllowedError, match="not allowed"):
        evil.sel(time=slice(0, 10))
    # allowed reads go ahead
    assert feb.sel(time=slice("2001-02-11", "2001-02-20")).to_xarray().sizes["time"] == 10


def test_zarr_copy_of_a_disallowed_source_is_refused(
    layout: dict[str, Path], tmp_path: Path
) -> None:
    evil = strict(layout, "evil_inline")
    for m in (evil, evil.isel(time=slice(0, 10))):
        with pytest.raises(SourceNotAllowedError, match="not allowed"):
            m.to_zarr(tmp_path / "copy.zarr", progress=False)
        assert not (tmp_path / "copy.zarr").exists()
    # URL rules apply to manifests built in the program (no list)
    bad = evil.tables.with_tables(
        sources=evil.table("sources").set_column(1, "uri", pa.array(["ftp://host/x.nc"]))
    )
    with pytest.raises(SourceNotAllowedError, match="scheme 'ftp'"):
        vzsql.Manifest(bad).to_zarr(tmp_path / "copy.zarr", progress=False)
    # an allowed manifest copies
    strict(layout, "feb").to_zarr(tmp_path / "copy.zarr", progress=False)
    with xr.open_dataset(layout["data"] / "feb.nc") as feb:
        np.testing.assert_array_equal(
            xr.open_zarr(tmp_path / "copy.zarr")["tas"].values, feb["tas"].values
        )


def test_rename_sources_carries_each_permission(layout: dict[str, Path], tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(layout["data"], moved)
    feb = strict(layout, "feb").rename_sources(layout["data"].as_uri(), moved.as_uri())
    assert feb.table("sources")["uri"][0].as_py().startswith(moved.as_uri())
    with xr.open_dataset(moved / "feb.nc") as ref:
        np.testing.assert_array_equal(feb.to_xarray()["tas"].values, ref["tas"].values)
    # a disallowed source stays disallowed wherever it is renamed to (outside the list)
    evil = strict(layout, "evil_inline").rename_sources(
        layout["private"].as_uri(), moved.as_uri() + "/p"
    )
    with pytest.raises(SourceNotAllowedError, match="not allowed"):
        evil.to_xarray()["tas"].load()


def test_lists_never_grow_and_none_stays_none(layout: dict[str, Path]) -> None:
    scan_a = vzsql.scan(layout["data"] / "jan.nc")
    scan_b = vzsql.scan(layout["data"] / "feb.nc")
    # each input allows only its own sources: the union does not cover the other's
    assert scan_a.allow is not None and scan_b.allow is not None
    a, b = scan_a.table("sources")["uri"][0].as_py(), scan_b.table("sources")["uri"][0].as_py()
    folder = AllowList.of([layout["data"]])
    narrow = derived([(folder, [a]), (AllowList.of([]), [b])], [a, b])
    assert narrow is not None and narrow.allows(a) and not narrow.allows(b)
    both = vzsql.concat([scan_a, scan_b], "time")
    assert both.allow is not None and both.allow.allows(a) and both.allow.allows(b)
    built = vzsql.Manifest(scan_b.tables)  # built in the program: no list
    assert vzsql.concat([scan_a, built], "time").allow is None
    assert built.isel(time=slice(0, 10)).allow is None


segment = st.sampled_from(["a", "b", "ab", "", "x.nc"])
urls = st.lists(segment, min_size=0, max_size=4).map(lambda p: "s3://bkt/" + "/".join(p))


@given(st.lists(st.one_of(urls, urls.map(lambda u: u + "/"), st.just("*")), max_size=5), urls)
def test_covered_is_the_prefix_rule(prefixes: list[str], uri: str) -> None:
    assert covered(frozenset(prefixes), uri) == any(_covers(p, uri) for p in prefixes)

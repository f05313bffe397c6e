"""Appending along a dimension: daily appends equal one combined write; appends after a padded
last chunk (a month of 31 days chunked by 10) equal vzsql.concat and open_mfdataset;
duplicates, encoding or units mismatches, stored shapes the trimming codec cannot tell apart
and concurrent appenders are refused with clear errors, the branch unchanged."""

from __future__ import annotations

from pathlib import Path

import icechunk as ic
import numpy as np
import pytest
import xarray as xr
from fixtures_icechunk import scanned, write_day
from fixtures_series import Var, write_nc_month, write_piece

import vzsql
from vzsql.errors import ConcurrentWriteError, DuplicateSourceError, InconsistentConcatError
from vzsql.importers.icechunk import read_documents
from vzsql.writers import icechunk as writer
from vzsql.writers.icechunk import open_repo_readonly

DAYS = 30


def repo_at(repo_path: Path) -> ic.Repository:
    return ic.Repository.open(ic.local_filesystem_storage(str(repo_path)))


def tip(repo_path: Path, branch: str = "main") -> str:
    return str(repo_at(repo_path).lookup_branch(branch))


def read_back(repo_path: Path) -> xr.Dataset:
    store = open_repo_readonly(repo_path).readonly_session("main").store
    return xr.open_zarr(store, consolidated=False).load()


def assert_values_as_xarray_concat(got: xr.Dataset, files: list[Path]) -> None:
    """Every variable of ``got`` holds the values of xarray's concat of ``files`` along time."""
    refs = [xr.open_dataset(f) for f in files]
    try:
        expected = xr.concat(refs, dim="time", data_vars="minimal", coords="minimal").load()
    finally:
        for r in refs:
            r.close()
    for name in expected.variables:
        np.testing.assert_array_equal(got[name].values, expected[name].values, err_msg=name)


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("daily")
    return [write_day(root / f"2020-01-{d + 1:02d}.nc", d) for d in range(DAYS)]


def test_thirty_daily_appends_equal_one_combined_write(tmp_path: Path, daily: list[Path]) -> None:
    manifests = [scanned(f) for f in daily]
    for d, m in enumerate(manifests):
        m.to_icechunk(tmp_path / "daily", append_dim="time", message=f"day {d + 1}")
    vzsql.concat(manifests, "time").to_icechunk(tmp_path / "combined", message="all days")

    appended, combined = read_back(tmp_path / "daily"), read_back(tmp_path / "combined")
    xr.testing.assert_identical(appended, combined)
    assert_values_as_xarray_concat(appended, daily)
    assert appended.sizes["time"] == 2 * DAYS
    # the same references, chunk for chunk (vzsql.concat may re-chunk the inline coordinate)
    query = (
        "SELECT c.array, c.index, s.uri, c.offset, c.length FROM chunks c "
        "JOIN sources s USING (source_id)"
    )
    a = vzsql.from_icechunk(tmp_path / "daily").sql(query).to_arrow_table()
    b = vzsql.from_icechunk(tmp_path / "combined").sql(query).to_arrow_table()
    assert a.num_rows == b.num_rows == 2 * DAYS * 4 + 2
    assert sorted(map(str, a.to_pylist())) == sorted(map(str, b.to_pylist()))
    history = list(repo_at(tmp_path / "daily").ancestry(branch="main"))
    assert [h.message for h in history[:2]] == [f"day {DAYS}", f"day {DAYS - 1}"]


def test_appending_the_same_file_twice_is_refused(tmp_path: Path, daily: list[Path]) -> None:
    scanned(daily[0]).to_icechunk(tmp_path / "repo", append_dim="time")
    scanned(daily[1]).to_icechunk(tmp_path / "repo", append_dim="time")
    before = tip(tmp_path / "repo")
    with pytest.raises(DuplicateSourceError, match="already in branch") as e:
        scanned(daily[1]).to_icechunk(tmp_path / "repo", append_dim="time")
    assert e.value.source == daily[1].resolve().as_uri()
    assert tip(tmp_path / "repo") == before
    assert read_back(tmp_path / "repo").sizes["time"] == 4


def test_inline_only_source_is_still_recognised(tmp_path: Path, daily: list[Path]) -> None:
    """A source whose chunks were all inlined leaves no virtual ref; vzsql's record catches it."""
    everything = ("time", "lat", "lon", "t2m")
    scanned(daily[0], inline=everything).to_icechunk(tmp_path / "repo", append_dim="time")
    with pytest.raises(DuplicateSourceError):
        scanned(daily[0], inline=everything).to_icechunk(tmp_path / "repo", append_dim="time")


def test_different_encoding_is_refused(tmp_path: Path, daily: list[Path]) -> None:
    scanned(daily[0]).to_icechunk(tmp_path / "repo", append_dim="time")
    before = tip(tmp_path / "repo")
    plain = write_day(tmp_path / "plain.nc", 40, zlib=False)
    with pytest.raises(InconsistentConcatError, match=r"codecs is .* in the repository") as e:
        scanned(plain).to_icechunk(tmp_path / "repo", append_dim="time")
    assert e.value.array == "t2m"
    assert tip(tmp_path / "repo") == before


def months(root: Path) -> list[Path]:
    """January (31 days), February (29) and March (31) 2001, daily, chunked 10 along time:
    each month's last chunk is padded (1, 9 and 1 of 10 steps used)."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for name, first, n in (("jan", 0, 31), ("feb", 31, 29), ("mar", 60, 31)):
        write_nc_month(root / f"{name}.nc", first, n, chunk=10)
        out.append(root / f"{name}.nc")
    return out


def refs_of(repo_path: Path) -> set[tuple[object, ...]]:
    """(array, index, uri, offset, length) of every virtual reference in the branch."""
    rows = (
        vzsql.from_icechunk(repo_path)
        .sql(
            "SELECT c.array, c.index, s.uri, c.offset, c.length FROM chunks c "
            "JOIN sources s USING (source_id)"
        )
        .fetchall()
    )
    return {(a, tuple(i), u, o, n) for a, i, u, o, n in rows}


def test_append_after_a_padded_month(tmp_path: Path) -> None:
    files = months(tmp_path / "src")
    repo = tmp_path / "repo"
    vzsql.scan(files[0]).to_icechunk(repo)
    before = refs_of(repo)
    for f in files[1:]:
        vzsql.scan(f).to_icechunk(repo, append_dim="time", message=f.name)
    got = read_back(repo)
    with xr.open_mfdataset(files, combine="by_coords") as ds:
        expected = ds.load()
    xr.testing.assert_equal(got, expected)
    assert got.sizes["time"] == 91

    # the same dataset as one write of vzsql.concat of the three months
    vzsql.concat([vzsql.scan(f) for f in files], "time").to_icechunk(tmp_path / "combined")
    xr.testing.assert_identical(got, read_back(tmp_path / "combined"))

    # described as concat describes it: slots of the padded chunks, trimming codec
    lengths = (
        vzsql.from_icechunk(repo)
        .sql("SELECT length FROM grid WHERE array = 'tas' AND dim = 0 ORDER BY chunk")
        .fetchall()
    )
    assert [n for (n,) in lengths] == [10, 10, 10, 1, 10, 10, 9, 10, 10, 10, 1]
    doc = read_documents(open_repo_readonly(repo).readonly_session("main").store)["tas"]
    assert doc["chunk_grid"]["name"] == "rectilinear"
    assert doc["codecs"][0]["name"] == "vzsql.padded_bytes"
    assert doc["codecs"][0]["configuration"]["chunk_shapes"] == [[10, 4, 5]]
    # January's references are untouched, the new ones shifted past them
    after = refs_of(repo)
    assert before <= after
    tas = sorted(r[1][0] for r in after if r[0] == "tas")
    assert tas == list(range(11))


def test_readme_daily_files_after_a_padded_month(tmp_path: Path) -> None:
    """``m.to_icechunk("repo/")`` then ``vzsql.scan("new/2021-01-*.nc").to_icechunk("repo/",
    append_dim="time")`` when the first month's last chunk is padded."""
    (tmp_path / "new").mkdir()
    december = tmp_path / "2020-12.nc"
    write_nc_month(december, 0, 31, chunk=10)
    days = [tmp_path / "new" / f"2021-01-{d + 1:02d}.nc" for d in range(6)]
    for d, f in enumerate(days):
        write_nc_month(f, 31 + d, 1, chunk=1)
    repo = tmp_path / "repo"
    vzsql.scan(december).to_icechunk(repo)
    vzsql.scan(str(tmp_path / "new" / "2021-01-*.nc")).to_icechunk(repo, append_dim="time")
    got = read_back(repo)
    with xr.open_mfdataset([december, *days], combine="by_coords") as ds:
        expected = ds.load()
    xr.testing.assert_equal(got, expected)
    doc = read_documents(open_repo_readonly(repo).readonly_session("main").store)["tas"]
    # stored chunks of 10 and of 1 steps: the codec tells them apart by size
    assert sorted(doc["codecs"][0]["configuration"]["chunk_shapes"]) == [[1, 4, 5], [10, 4, 5]]


def test_stored_shapes_the_codec_cannot_tell_apart_are_refused(tmp_path: Path) -> None:
    """[2, 6] and [3, 4] hold 12 elements each: after the append a padded chunk could not be
    told from a full one by its size, so the append is refused and the branch unchanged."""
    parts = []
    for name, t0, chunks in (("a", 0, (2, 6)), ("b", 2, (3, 4))):
        nt = chunks[0]
        temp = np.arange(nt * 3, dtype="float32").reshape(nt, 3) + 100 * t0
        tables = write_piece(
            tmp_path / f"{name}.raw",
            {
                "time": Var(("time",), np.arange(t0, t0 + nt, dtype="float64"), (nt,)),
                "temp": Var(("time", "x"), temp, chunks, compress=True),
            },
        )
        parts.append(vzsql.Manifest(tables))
    parts[0].to_icechunk(tmp_path / "repo")
    before = tip(tmp_path / "repo")
    with pytest.raises(InconsistentConcatError, match=r"\[2, 6\].*\[3, 4\]") as e:
        parts[1].to_icechunk(tmp_path / "repo", append_dim="time")
    assert e.value.array == "temp"
    assert tip(tmp_path / "repo") == before


def test_different_time_units_are_refused(tmp_path: Path) -> None:
    """vzsql.concat re-encodes the new times into common units; an append cannot rewrite
    the stored ones, so it refuses instead of storing wrong instants."""
    write_nc_month(tmp_path / "jan.nc", 0, 31)
    write_nc_month(tmp_path / "feb.nc", 31, 28, units="days since 2001-02-01", unit_offset=31)
    vzsql.scan(tmp_path / "jan.nc").to_icechunk(tmp_path / "repo")
    before = tip(tmp_path / "repo")
    with pytest.raises(InconsistentConcatError, match=r"units is .* in the repository") as e:
        vzsql.scan(tmp_path / "feb.nc").to_icechunk(tmp_path / "repo", append_dim="time")
    assert e.value.array == "time"
    assert tip(tmp_path / "repo") == before


def test_variable_length_appends_make_a_rectilinear_grid(tmp_path: Path) -> None:
    files = [
        write_day(tmp_path / "a.nc", 0, nt=2, chunks=(2, 2, 3)),
        write_day(tmp_path / "b.nc", 2, nt=3, chunks=(3, 2, 3)),
        write_day(tmp_path / "c.nc", 5, nt=1, chunks=(1, 2, 3)),
    ]
    for f in files:
        scanned(f).to_icechunk(tmp_path / "repo", append_dim="time")
    assert_values_as_xarray_concat(read_back(tmp_path / "repo"), files)
    grid = (
        vzsql.from_icechunk(tmp_path / "repo")
        .sql("SELECT length FROM grid WHERE array = 't2m' AND dim = 0 ORDER BY chunk")
        .fetchall()
    )
    assert [g[0] for g in grid] == [2, 3, 1]


def test_concurrent_appenders_get_a_clear_error(tmp_path: Path, daily: list[Path]) -> None:
    scanned(daily[0]).to_icechunk(tmp_path / "repo", append_dim="time")
    repo = repo_at(tmp_path / "repo")
    first, second = scanned(daily[1]).tables, scanned(daily[2]).tables
    s1, s2 = repo.writable_session("main"), repo.writable_session("main")
    writer.write_into(s1, repo, first, writer.source_refs(first), append_dim="time")
    writer.write_into(s2, repo, second, writer.source_refs(second), append_dim="time")
    won = writer.commit_session(s1, "day 2")
    with pytest.raises(
        ConcurrentWriteError, match="another writer committed to branch 'main' first"
    ):
        writer.commit_session(s2, "day 3")
    assert tip(tmp_path / "repo") == won
    assert read_back(tmp_path / "repo").sizes["time"] == 4


def test_retries_redo_the_append_on_the_new_tip(
    tmp_path: Path, daily: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    scanned(daily[0]).to_icechunk(tmp_path / "repo", append_dim="time")
    real_commit = writer.commit_session
    raced: list[bool] = []

    def commit_after_a_rival(session: object, message: str, metadata: object = None) -> str:
        if not raced:  # another process appends day 2 while we were writing day 3
            raced.append(True)
            monkeypatch.setattr(writer, "commit_session", real_commit)
            scanned(daily[1]).to_icechunk(tmp_path / "repo", append_dim="time")
            monkeypatch.setattr(writer, "commit_session", commit_after_a_rival)
        return real_commit(session, message, metadata)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "commit_session", commit_after_a_rival)
    scanned(daily[2]).to_icechunk(tmp_path / "repo", append_dim="time", retries=1)
    assert raced
    got = read_back(tmp_path / "repo")
    with xr.open_dataset(daily[1]) as d1, xr.open_dataset(daily[2]) as d2:
        np.testing.assert_array_equal(got.t2m.values[2:4], d1.t2m.values)
        np.testing.assert_array_equal(got.t2m.values[4:6], d2.t2m.values)

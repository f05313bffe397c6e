"""Appending along a dimension: daily appends equal one combined write; duplicates, encoding
mismatches and concurrent appenders are refused with clear errors, the branch unchanged."""

from __future__ import annotations

from pathlib import Path

import icechunk as ic
import numpy as np
import pytest
import xarray as xr
from fixtures_icechunk import scanned, write_day

import vzsql
from vzsql.errors import ConcurrentWriteError, DuplicateSourceError, InconsistentConcatError
from vzsql.writers import icechunk as writer
from vzsql.writers.icechunk import open_repo_readonly

DAYS = 30


def tip(repo_path: Path, branch: str = "main") -> str:
    return str(
        ic.Repository.open(ic.local_filesystem_storage(str(repo_path))).lookup_branch(branch)
    )


def read_back(repo_path: Path) -> xr.Dataset:
    store = open_repo_readonly(repo_path).readonly_session("main").store
    return xr.open_zarr(store, consolidated=False).load()


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
    refs = [xr.open_dataset(f) for f in daily]
    try:
        expected = xr.concat(refs, dim="time", data_vars="minimal", coords="minimal").load()
    finally:
        for r in refs:
            r.close()
    for name in expected.variables:
        np.testing.assert_array_equal(appended[name].values, expected[name].values, err_msg=name)
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
    history = list(
        ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "daily"))).ancestry(
            branch="main"
        )
    )
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
    with pytest.raises(InconsistentConcatError, match="codecs differ") as e:
        scanned(plain).to_icechunk(tmp_path / "repo", append_dim="time")
    assert e.value.array == "t2m"
    assert tip(tmp_path / "repo") == before


def test_padded_last_chunk_cannot_be_followed(tmp_path: Path, daily: list[Path]) -> None:
    odd = write_day(tmp_path / "odd.nc", 50, nt=3, chunks=(2, 2, 3))  # last time chunk padded
    scanned(odd).to_icechunk(tmp_path / "repo", append_dim="time")
    with pytest.raises(InconsistentConcatError, match="padded"):
        scanned(daily[0]).to_icechunk(tmp_path / "repo", append_dim="time")


def test_variable_length_appends_make_a_rectilinear_grid(tmp_path: Path) -> None:
    files = [
        write_day(tmp_path / "a.nc", 0, nt=2, chunks=(2, 2, 3)),
        write_day(tmp_path / "b.nc", 2, nt=3, chunks=(3, 2, 3)),
        write_day(tmp_path / "c.nc", 5, nt=1, chunks=(1, 2, 3)),
    ]
    for f in files:
        scanned(f).to_icechunk(tmp_path / "repo", append_dim="time")
    refs = [xr.open_dataset(f) for f in files]
    try:
        expected = xr.concat(refs, dim="time", data_vars="minimal", coords="minimal").load()
    finally:
        for r in refs:
            r.close()
    got = read_back(tmp_path / "repo")
    for name in expected.variables:
        np.testing.assert_array_equal(got[name].values, expected[name].values, err_msg=name)
    grid = (
        vzsql.from_icechunk(tmp_path / "repo")
        .sql("SELECT length FROM grid WHERE array = 't2m' AND dim = 0 ORDER BY chunk")
        .fetchall()
    )
    assert [g[0] for g in grid] == [2, 3, 1]


def test_concurrent_appenders_get_a_clear_error(tmp_path: Path, daily: list[Path]) -> None:
    scanned(daily[0]).to_icechunk(tmp_path / "repo", append_dim="time")
    repo = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo")))
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

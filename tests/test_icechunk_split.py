"""Icechunk exports above the per-commit limit: split into several commits (a small limit
stands in for Icechunk's 50M references), values equal the originals after the split
export, every intermediate commit is a readable repository, a failing later part leaves the
branch where it was."""

from __future__ import annotations

from pathlib import Path

import icechunk as ic
import numpy as np
import pytest
import xarray as xr
from fixtures_icechunk import concat_time, scanned, write_day

from vzsql.errors import ExportError
from vzsql.writers import icechunk as writer
from vzsql.writers.icechunk import open_repo_readonly
from vzsql.writers.icechunk_batches import chunk_slices, commit_batches


def read_back(repo_path: Path, snapshot: str | None = None) -> xr.Dataset:
    repo = open_repo_readonly(repo_path)
    session = (
        repo.readonly_session(snapshot_id=snapshot) if snapshot else repo.readonly_session("main")
    )
    return xr.open_zarr(session.store, consolidated=False).load()


@pytest.fixture()
def days(tmp_path: Path) -> list[Path]:
    (tmp_path / "src").mkdir()
    return [write_day(tmp_path / "src" / f"day{d}.nc", 2 * d) for d in range(3)]


def test_split_export_equals_the_originals(tmp_path: Path, days: list[Path]) -> None:
    m = concat_time([scanned(p) for p in days])
    n = m.table("chunks").num_rows
    m.to_icechunk(tmp_path / "repo", message="three days", max_refs_per_commit=7)
    repo = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo")))
    history = list(repo.ancestry(branch="main"))[:-1]  # the last is the repository's creation
    assert len(history) == -(-n // 7) > 1
    assert history[0].message == f"three days (part {len(history)}/{len(history)})"
    with xr.open_mfdataset(days, combine="by_coords") as ref:
        ref = ref.load()
    ds = read_back(tmp_path / "repo")
    for name in ref.variables:
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)
    # the first commit already holds every array (a valid, partly filled repository)
    first = read_back(tmp_path / "repo", history[-1].id)
    assert set(first.variables) == set(ref.variables)


def test_split_append_equals_the_originals(tmp_path: Path, days: list[Path]) -> None:
    for p in days:
        scanned(p).to_icechunk(tmp_path / "repo", append_dim="time", max_refs_per_commit=5)
    with xr.open_mfdataset(days, combine="by_coords") as ref:
        ref = ref.load()
    ds = read_back(tmp_path / "repo")
    for name in ref.variables:
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)


def test_failing_later_part_resets_the_branch(
    tmp_path: Path, days: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    scanned(days[0]).to_icechunk(tmp_path / "repo")
    repo = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo")))
    before = repo.lookup_branch("main")
    calls = {"n": 0}
    real = writer.write_chunks

    def fail_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise ExportError("injected failure in part 3")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer, "write_chunks", fail_third)
    m = concat_time([scanned(p) for p in days])
    with pytest.raises(ExportError, match="injected"):
        m.to_icechunk(tmp_path / "repo", overwrite=True, max_refs_per_commit=6)
    repo = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo")))
    assert repo.lookup_branch("main") == before


def test_slices_and_batches_cover_every_row_once(days: list[Path]) -> None:
    chunks = concat_time([scanned(p) for p in days]).table("chunks")
    slices = chunk_slices(chunks, 4)
    rows = np.concatenate(
        [np.arange(r.start, r.stop) if isinstance(r, slice) else r for _, r in slices]
    )
    assert sorted(rows.tolist()) == list(range(chunks.num_rows))
    names = chunks["array"].to_pylist()
    for name, r in slices:
        idx = np.arange(r.start, r.stop) if isinstance(r, slice) else r
        assert {names[i] for i in idx} == {name} and len(idx) <= 4
    for batch in commit_batches(slices, 9):
        assert sum(len(r) if not isinstance(r, slice) else r.stop - r.start for _, r in batch) <= 9


def test_manifest_splitting_of_a_new_repository(tmp_path: Path, days: list[Path]) -> None:
    """Arrays with more chunks than ``refs_per_manifest`` get split manifests (along their
    first dimension); values read back are the originals, also after an append."""
    m = concat_time([scanned(p) for p in days[:2]])
    m.to_icechunk(tmp_path / "repo", refs_per_manifest=2, max_refs_per_commit=5)
    repo = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo")))
    splitting = repo.config.manifest.splitting
    assert splitting is not None
    rules = {str(k): v for k, v in splitting.to_dict().items()}
    assert rules and all("^/" in k for k in rules)
    scanned(days[2]).to_icechunk(tmp_path / "repo", append_dim="time", refs_per_manifest=2)
    with xr.open_mfdataset(days, combine="by_coords") as ref:
        ref = ref.load()
    ds = read_back(tmp_path / "repo")
    for name in ref.variables:
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)
    manifests = list((tmp_path / "repo" / "manifests").iterdir())
    plain = tmp_path / "plain"
    m.to_icechunk(plain, refs_per_manifest=None)
    again = ic.Repository.open(ic.local_filesystem_storage(str(plain)))
    assert again.config.manifest is None or again.config.manifest.splitting is None
    assert len(manifests) > len(list((plain / "manifests").iterdir()))


def test_split_sizes_follow_the_grid() -> None:
    import pyarrow as pa

    from vzsql.writers.icechunk_splitting import split_sizes

    rows = [("a", 0, c) for c in range(100)] + [("a", 1, c) for c in range(10)]
    rows += [("small", 0, 0)]
    grid = pa.table({k: [r[i] for r in rows] for i, k in enumerate(("array", "dim", "chunk"))})
    assert split_sizes(grid, 250) == {"a": 25}  # 25 steps x 10 chunks per manifest
    assert split_sizes(grid, 5) == {"a": 1}
    assert split_sizes(grid, 10_000) == {}


@pytest.mark.parametrize("max_refs", [7, 1_000_000])
def test_export_and_append_from_duckdb_storage(
    tmp_path: Path, days: list[Path], monkeypatch: pytest.MonkeyPatch, max_refs: int
) -> None:
    """A manifest stored in DuckDB is exported a window of rows at a time, never whole as
    Arrow: written in parts or at once, then appended to, values equal the originals."""
    from vzsql.resident import ResidentChunks

    first = concat_time([scanned(p) for p in days[:2]]).with_storage("duckdb")
    last = scanned(days[2]).with_storage("duckdb")

    def refuse(self: ResidentChunks) -> None:
        raise AssertionError("the export materialised every chunk row as Arrow")

    monkeypatch.setattr(ResidentChunks, "to_arrow", refuse)
    first.to_icechunk(tmp_path / "repo", message="two days", max_refs_per_commit=max_refs)
    last.to_icechunk(tmp_path / "repo", append_dim="time", max_refs_per_commit=max_refs)
    monkeypatch.undo()
    repo = ic.Repository.open(ic.local_filesystem_storage(str(tmp_path / "repo")))
    commits = len(list(repo.ancestry(branch="main"))) - 1
    assert (commits > 2) == (max_refs == 7)
    with xr.open_mfdataset(days, combine="by_coords") as ref:
        ref = ref.load()
    ds = read_back(tmp_path / "repo")
    for name in ref.variables:
        np.testing.assert_array_equal(ds[name].values, ref[name].values, err_msg=name)


def test_default_commit_size_follows_available_memory() -> None:
    """Without ``max_refs_per_commit`` an export sizes its commits to the memory Icechunk's
    session will need (~1 KB per reference), between 1M and Icechunk's 50M limit."""
    from vzsql.memory import available_bytes
    from vzsql.writers.icechunk_batches import (
        MAX_REFS_PER_COMMIT,
        MIN_REFS_PER_COMMIT,
        default_refs_per_commit,
    )

    assert default_refs_per_commit(16 * 10**9) == 16_000_000
    assert default_refs_per_commit(10**12) == MAX_REFS_PER_COMMIT
    assert default_refs_per_commit(10**8) == MIN_REFS_PER_COMMIT
    now = available_bytes()
    assert now is not None and now > 0  # Linux: /proc/meminfo
    assert MIN_REFS_PER_COMMIT <= default_refs_per_commit() <= MAX_REFS_PER_COMMIT

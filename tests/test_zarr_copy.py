"""``Manifest.to_zarr``: a native Zarr v3 copy whose chunks are the source bytes unchanged;
bad input and crashes leave the destination as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import xarray as xr
import zarr
from fixtures_icechunk import concat_time, scanned, write_day

import vzsql
from vzsql.errors import ChunkReadError, ExportError, StaleSourceError
from vzsql.writers import zarr_copy


@pytest.fixture()
def days(tmp_path: Path) -> list[Path]:
    src = tmp_path / "src"
    src.mkdir()
    return [write_day(src / f"d{d}.nc", d, nt=2 + d, chunks=(2 + d, 2, 3)) for d in range(3)]


def originals(files: list[Path]) -> xr.Dataset:
    refs = [xr.open_dataset(f) for f in files]
    try:
        return xr.concat(refs, dim="time", data_vars="minimal", coords="minimal").load()
    finally:
        for r in refs:
            r.close()


def test_copy_reads_back_equal_and_bytes_are_not_reencoded(
    tmp_path: Path, days: list[Path]
) -> None:
    m = concat_time([scanned(f) for f in days])  # rectilinear along time
    m.to_zarr(tmp_path / "copy.zarr", progress=False)
    got = xr.open_zarr(tmp_path / "copy.zarr", consolidated=False).load()
    expected = originals(days)
    for name in expected.variables:
        np.testing.assert_array_equal(got[name].values, expected[name].values, err_msg=name)
    assert got.attrs == expected.attrs
    meta = json.loads((tmp_path / "copy.zarr" / "t2m" / "zarr.json").read_text())
    assert meta["codecs"] == json.loads(m.table("arrays").to_pylist()[-1]["codecs"])
    assert meta["chunk_grid"]["name"] == "rectilinear"
    # every chunk file holds exactly the bytes the manifest points at
    rows = m.sql(
        "SELECT c.index, s.uri, c.offset, c.length FROM chunks c JOIN sources s USING (source_id) "
        "WHERE c.array = 't2m'"
    ).fetchall()
    assert len(rows) == 3 * 4  # one chunk along time per file, 2 x 2 across lat/lon
    for index, uri, offset, length in rows[:: max(1, len(rows) // 7)]:
        path = uri.removeprefix("file://")
        with open(path, "rb") as f:
            f.seek(offset)
            source_bytes = f.read(length)
        chunk_file = tmp_path / "copy.zarr" / "t2m" / "c" / "/".join(map(str, index))
        assert chunk_file.read_bytes() == source_bytes


def test_inline_chunks_are_copied(tmp_path: Path, days: list[Path]) -> None:
    m = scanned(days[0], inline=("time", "lat"))
    m.to_zarr(tmp_path / "copy.zarr", progress=False)
    inline = m.table("chunks").filter(pa.compute.equal(m.table("chunks")["array"], "lat"))["data"][
        0
    ]
    assert (tmp_path / "copy.zarr" / "lat" / "c" / "0").read_bytes() == inline.as_py()
    with xr.open_dataset(days[0]) as ref:
        np.testing.assert_array_equal(
            xr.open_zarr(tmp_path / "copy.zarr").lat.values, ref.lat.values
        )


def test_progress_bar_counts_chunks(
    tmp_path: Path, days: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    m = scanned(days[1])
    m.to_zarr(tmp_path / "copy.zarr", progress=True)
    err = capsys.readouterr().err
    assert "zarr copy" in err and f"{m.info()['chunks']}/{m.info()['chunks']}" in err


def test_copy_into_a_zarr_store_object(tmp_path: Path, days: list[Path]) -> None:
    store = zarr.storage.MemoryStore()
    scanned(days[0]).to_zarr(store, progress=False)
    with xr.open_dataset(days[0]) as ref:
        np.testing.assert_array_equal(zarr.open_array(store, path="t2m")[:], ref.t2m.values)
    with pytest.raises(ExportError, match="not empty"):
        scanned(days[1]).to_zarr(store, progress=False)
    scanned(days[1]).to_zarr(store, overwrite=True, progress=False)
    with xr.open_dataset(days[1]) as ref:
        np.testing.assert_array_equal(zarr.open_array(store, path="t2m")[:], ref.t2m.values)


def test_existing_destination_needs_overwrite(tmp_path: Path, days: list[Path]) -> None:
    dest = tmp_path / "copy.zarr"
    scanned(days[0]).to_zarr(dest, progress=False)
    before = sorted(p.relative_to(dest) for p in dest.rglob("*"))
    with pytest.raises(ExportError, match="destination exists"):
        scanned(days[1]).to_zarr(dest, progress=False)
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == before
    scanned(days[1]).to_zarr(dest, overwrite=True, progress=False)
    with xr.open_dataset(days[1]) as ref:
        np.testing.assert_array_equal(xr.open_zarr(dest).t2m.values, ref.t2m.values)
    leftovers = [p.name for p in tmp_path.iterdir() if "vzsql-tmp" in p.name]
    leftovers += [p.name for p in tmp_path.iterdir() if p.name.startswith(".copy.zarr")]
    assert leftovers == []


def test_unwritable_destination(tmp_path: Path, days: list[Path]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="cannot write next to the destination"):
        scanned(days[0]).to_zarr(blocker / "copy.zarr", progress=False)
    assert blocker.read_text() == "x"


def test_refs_outside_their_file_leave_nothing(tmp_path: Path, days: list[Path]) -> None:
    m = scanned(days[0])
    rows = m.table("chunks").to_pylist()
    rows[-1]["length"] = m.table("sources")["size"][0].as_py()
    broken = vzsql.Manifest(
        m.tables.with_tables(chunks=pa.Table.from_pylist(rows, schema=m.table("chunks").schema))
    )
    with pytest.raises(ExportError, match="cannot be served") as e:
        broken.to_zarr(tmp_path / "copy.zarr", progress=False)
    assert e.value.array == rows[-1]["array"] and e.value.chunk == tuple(rows[-1]["index"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_changed_source_is_refused(tmp_path: Path, days: list[Path]) -> None:
    m = scanned(days[0])
    st = os.stat(days[0])
    os.utime(days[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(StaleSourceError, match="changed since it was scanned"):
        m.to_zarr(tmp_path / "copy.zarr", progress=False)
    assert not (tmp_path / "copy.zarr").exists()


def test_a_crash_mid_copy_leaves_no_half_written_store(
    tmp_path: Path, days: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = concat_time([scanned(f) for f in days])
    real = zarr_copy.read_ranges
    calls = []

    def failing(
        uri: str, offsets: np.ndarray, lengths: np.ndarray, storage_options: object = None
    ) -> list[bytes]:
        calls.append(uri)
        if len(calls) == 2:
            raise ChunkReadError("disk vanished", source=uri)
        return real(uri, offsets, lengths)

    monkeypatch.setattr(zarr_copy, "read_ranges", failing)
    with pytest.raises(ChunkReadError, match="disk vanished"):
        m.to_zarr(tmp_path / "copy.zarr", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    # an existing store survives a crashed overwrite untouched
    monkeypatch.setattr(zarr_copy, "read_ranges", real)
    m.to_zarr(tmp_path / "copy.zarr", progress=False)
    calls.clear()
    monkeypatch.setattr(zarr_copy, "read_ranges", failing)
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    with pytest.raises(ChunkReadError):
        m.to_zarr(tmp_path / "copy.zarr", overwrite=True, progress=False)
    assert (
        sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
        == before
    )
    np.testing.assert_array_equal(
        xr.open_zarr(tmp_path / "copy.zarr").t2m.values, originals(days).t2m.values
    )


def test_reads_are_batched_per_source(
    tmp_path: Path, days: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    m = concat_time([scanned(f) for f in days])
    calls: list[int] = []
    real = zarr_copy.read_ranges

    def counting(
        uri: str, offsets: np.ndarray, lengths: np.ndarray, storage_options: object = None
    ) -> list[bytes]:
        calls.append(len(offsets))
        return real(uri, offsets, lengths)

    monkeypatch.setattr(zarr_copy, "read_ranges", counting)
    m.to_zarr(tmp_path / "copy.zarr", progress=False)
    assert len(calls) == len(days)  # one sweep per source file
    assert sum(calls) == m.sql("SELECT count(*) FROM chunks WHERE data IS NULL").fetchall()[0][0]


def test_short_read_is_a_chunk_read_error(tmp_path: Path, days: list[Path]) -> None:
    path = days[0]
    size = path.stat().st_size
    with pytest.raises(ChunkReadError, match="short read") as e:
        zarr_copy.read_ranges(path.resolve().as_uri(), np.array([size - 4]), np.array([16]))
    assert e.value.source == path.resolve().as_uri()


def test_s3_sources_are_copied(tmp_path: Path, days: list[Path], s3: Any) -> None:
    uri = s3.upload(days[1], f"zarr-copy/{tmp_path.name}/d1.nc")
    m = vzsql.scan(uri, storage_options=s3.storage_options)
    m.to_zarr(tmp_path / "copy.zarr", progress=False, storage_options=s3.storage_options)
    with xr.open_dataset(days[1]) as ref:
        np.testing.assert_array_equal(
            xr.open_zarr(tmp_path / "copy.zarr").t2m.values, ref.t2m.values
        )

"""ManifestStore: zarr reads through it equal the arrays whose bytes were written by hand."""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import cpu, default_buffer_prototype
from zarr.core.sync import sync
from zarr.testing.store import StoreTests

import vzsql
from tests.handmade import RawArchive
from vzsql.byte_ranges import CoalescingRangeReader, merge_ranges
from vzsql.errors import ChunkReadError, ReadOnlyStoreError
from vzsql.store import ManifestStore
from vzsql.tables import Tables

PROTO = default_buffer_prototype()


def _collect(aiter):
    async def run():
        return [x async for x in aiter]

    return sync(run())


def _get(store: ManifestStore, key: str, byte_range=None) -> bytes | None:
    buf = sync(store.get(key, PROTO, byte_range))
    return None if buf is None else buf.to_bytes()


@pytest.fixture
def archive(tmp_path: Path) -> tuple[RawArchive, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    arrays = {
        "le": rng.normal(size=(7, 5)).astype("<f4"),
        "be": rng.integers(-1000, 1000, size=(6, 9)).astype(">i2"),
        "z": rng.integers(0, 2**40, size=(10, 3)).astype("<i8"),
    }
    raw = RawArchive(tmp_path / "raw.bin")
    raw.add("le", arrays["le"], [3, 2])
    raw.add("be", arrays["be"], [4, 4], endian="big")
    raw.add("z", arrays["z"], [4, 3], compress=True, gap=17)
    raw.add_group("grp", {"title": "sub"})
    arrays["grp/inner"] = np.arange(12, dtype="<u2")
    raw.add("grp/inner", arrays["grp/inner"], [5], inline={(1,)})
    return raw, arrays


def test_zarr_reads_equal_written_arrays(archive) -> None:
    raw, arrays = archive
    store = ManifestStore(vzsql.Manifest(raw.tables()))
    for name, expected in arrays.items():
        got = zarr.open_array(store, path=name, mode="r")[...]
        assert got.dtype == expected.dtype.newbyteorder("=")
        np.testing.assert_array_equal(got, expected, err_msg=name)
    # a partial selection reads only the chunks it touches
    store.stats.reset()
    part = zarr.open_array(store, path="le", mode="r")[1:4, 3:]
    np.testing.assert_array_equal(part, arrays["le"][1:4, 3:])
    assert store.stats.requests == 4  # rows 0-2 and 3-5 x cols 2-3 and 4


def test_group_hierarchy_and_metadata(archive) -> None:
    raw, _ = archive
    store = ManifestStore(raw.tables())
    root = zarr.open_group(store, mode="r")
    assert sorted(root.array_keys()) == ["be", "le", "z"]
    assert list(root.group_keys()) == ["grp"]
    assert root["grp"].attrs["title"] == "sub"
    meta = store.metadata("be")
    assert meta["codecs"][0]["configuration"]["endian"] == "big"
    assert meta["chunk_grid"] == {"name": "regular", "configuration": {"chunk_shape": [4, 4]}}


def test_inline_and_missing_chunks(tmp_path: Path) -> None:
    data = np.arange(20, dtype="<i4").reshape(4, 5)
    raw = RawArchive(tmp_path / "raw.bin")
    raw.add("a", data, [2, 2], fill_value=-7, inline={(0, 1), (1, 2)}, skip={(1, 0)})
    store = ManifestStore(raw.tables())
    got = zarr.open_array(store, path="a", mode="r")[...]
    expected = data.copy()
    expected[2:4, 0:2] = -7  # the chunk without a row is the fill value
    np.testing.assert_array_equal(got, expected)
    assert sync(store.exists("a/c/0/1"))  # inline
    assert sync(store.exists("a/c/0/0"))  # referenced
    assert not sync(store.exists("a/c/1/0"))  # missing
    assert not sync(store.exists("a/c/9/9"))  # outside the grid
    assert _get(store, "a/c/1/0") is None
    assert sync(store.getsize("a/c/0/1")) == 16
    # inline chunks are served from the table, not from the file
    store.stats.reset()
    zarr.open_array(store, path="a", mode="r")[0:2, 2:4]
    assert store.stats.requests == 0


def test_zero_d_arrays(tmp_path: Path) -> None:
    raw = RawArchive(tmp_path / "raw.bin")
    raw.add("ref", np.array(2.5, dtype="<f8"), [])
    raw.add("inl", np.array(-3, dtype=">i4"), [], endian="big", inline={()})
    raw.add("gone", np.array(0, dtype="<i2"), [], fill_value=42, skip={()})
    store = ManifestStore(raw.tables())
    assert zarr.open_array(store, path="ref", mode="r")[()] == 2.5
    assert zarr.open_array(store, path="inl", mode="r")[()] == -3
    assert zarr.open_array(store, path="gone", mode="r")[()] == 42
    assert sync(store.exists("ref/c"))
    assert not sync(store.exists("gone/c"))
    assert "ref/c" in _collect(store.list())


def test_rectilinear_grid(tmp_path: Path) -> None:
    """Variable-length chunks (e.g. months of daily data) are a rectilinear grid."""
    data = np.arange(12 * 3, dtype="<f4").reshape(12, 3)
    raw = RawArchive(tmp_path / "raw.bin")
    raw.add("monthly", data, [[3, 1, 4, 2, 2], 2], compress=True, skip={(2, 1)}, fill_value=-1)
    store = ManifestStore(raw.tables())
    meta = store.metadata("monthly")
    assert meta["chunk_grid"]["name"] == "rectilinear"
    assert meta["chunk_grid"]["configuration"]["chunk_shapes"][0] == [3, 1, 4, 2, 2]
    arr = zarr.open_array(store, path="monthly", mode="r")
    expected = data.copy()
    expected[4:8, 2] = -1  # chunk (2, 1) has no row
    np.testing.assert_array_equal(arr[...], expected)
    np.testing.assert_array_equal(arr[3:9, 1:], expected[3:9, 1:])


# -- coalescing -----------------------------------------------------------------------------


def test_concurrent_chunk_reads_are_coalesced(tmp_path: Path) -> None:
    data = np.arange(64 * 8, dtype="<f8").reshape(64, 8)
    raw = RawArchive(tmp_path / "raw.bin")
    raw.add("a", data, [4, 8])  # 16 chunks, back to back in the file
    store = ManifestStore(raw.tables())
    keys = [f"a/c/{i}/0" for i in range(16)]

    async def read_all() -> list[bytes | None]:
        bufs = await asyncio.gather(*(store.get(k, PROTO) for k in keys))
        return [b.to_bytes() if b is not None else None for b in bufs]

    got = sync(read_all())
    assert store.stats.requests == 16
    assert store.stats.reads == 1  # one get_ranges call for the one file
    assert store.stats.blocks == 1  # adjacent ranges merged into one block
    assert b"".join(x or b"" for x in got) == data.tobytes()

    # through zarr: its concurrent per-chunk gets are batched (async.concurrency at a time)
    store.stats.reset()
    with zarr.config.set({"async.concurrency": 64}):
        np.testing.assert_array_equal(zarr.open_array(store, path="a", mode="r")[...], data)
    assert store.stats.requests == 16
    assert store.stats.reads < 16
    assert store.stats.reads <= 2


def test_distant_ranges_and_several_files(tmp_path: Path) -> None:
    a = tmp_path / "a.bin"
    b = tmp_path / "b.bin"
    a.write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    b.write_bytes(bytes(reversed(range(256))) * 16)
    reader = CoalescingRangeReader(max_gap=1024)

    async def go() -> list[bytes]:
        reqs = [
            (a.as_uri(), 0, 10),
            (a.as_uri(), 10, 20),  # adjacent: same block
            (a.as_uri(), 500_000, 500_004),  # far away: another block, same read call
            (b.as_uri(), 5, 9),
        ]
        out = await asyncio.gather(*(reader.read(u, s, e) for u, s, e in reqs))
        return [bytes(x) for x in out]

    got = asyncio.run(go())
    raw_a = a.read_bytes()
    assert got == [raw_a[0:10], raw_a[10:20], raw_a[500_000:500_004], b.read_bytes()[5:9]]
    assert reader.stats.reads == 2  # one per file
    assert reader.stats.blocks == 3
    assert reader.stats.bytes == 20 + 4 + 4


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 300)), min_size=1, max_size=40),
    st.integers(0, 200),
    st.integers(1, 2000),
)
def test_merge_ranges_properties(spans, max_gap, max_block) -> None:
    starts = np.array([s for s, _ in spans], dtype=np.int64)
    ends = starts + np.array([n for _, n in spans], dtype=np.int64)
    bstart, bend, block_of = merge_ranges(starts, ends, max_gap, max_block)
    # every range lies inside its block
    assert (bstart[block_of] <= starts).all() and (ends <= bend[block_of]).all()
    # blocks are sorted and do not overlap
    assert (bstart[1:] >= bstart[:-1]).all()
    assert (bstart[1:] >= bend[:-1]).all()
    # every block is used and is exactly the hull of its ranges
    assert set(block_of.tolist()) == set(range(len(bstart)))
    for b in range(len(bstart)):
        assert bstart[b] == starts[block_of == b].min() and bend[b] == ends[block_of == b].max()
    # a new block starts only beyond the gap, or where the block reached max_block
    order = np.argsort(starts, kind="stable")
    reach = np.maximum.accumulate(ends[order])
    for k in range(1, len(order)):
        prev, cur = order[k - 1], order[k]
        if block_of[prev] != block_of[cur]:
            far = starts[cur] > reach[k - 1] + max_gap
            assert far or starts[cur] - bstart[block_of[prev]] >= max_block


# -- errors ---------------------------------------------------------------------------------


def _shifted(tables: Tables, by: int) -> Tables:
    col = tables.chunks.schema.get_field_index("offset")
    return tables.with_tables(
        chunks=tables.chunks.set_column(col, "offset", pc.add(tables.chunks["offset"], by))
    )


def test_range_past_end_of_file_names_file_array_chunk(tmp_path: Path) -> None:
    raw = RawArchive(tmp_path / "raw.bin")
    raw.add("a", np.arange(16, dtype="<i4"), [4])
    size = raw.path.stat().st_size
    store = ManifestStore(_shifted(raw.tables(), 10))  # the last chunk now ends past EOF
    with pytest.raises(ChunkReadError) as info:
        zarr.open_array(store, path="a", mode="r")[...]
    err = info.value
    assert err.source == raw.uri and err.array == "a" and err.chunk == (3,)
    assert "past the end of the file" in str(err) and str(size) in str(err)
    # a chunk starting beyond the end (obstore refuses the range) is reported the same way
    far = ManifestStore(_shifted(raw.tables(), 10_000))
    with pytest.raises(ChunkReadError, match="past the end") as info:
        zarr.open_array(far, path="a", mode="r")[0:4]
    assert info.value.chunk == (0,) and "Traceback" not in str(info.value)


def test_missing_source_and_unknown_source_id(tmp_path: Path) -> None:
    raw = RawArchive(tmp_path / "raw.bin")
    raw.add("a", np.arange(8, dtype="<i4"), [4])
    gone = tmp_path / "gone.bin"
    store = ManifestStore(raw.tables(uri=gone.as_uri()))
    with pytest.raises(ChunkReadError, match="not found") as info:
        zarr.open_array(store, path="a", mode="r")[...]
    assert info.value.source == gone.as_uri() and info.value.array == "a"
    t = raw.tables()
    col = t.chunks.schema.get_field_index("source_id")
    orphan = t.with_tables(
        chunks=t.chunks.set_column(col, "source_id", pa.array([5, 5], pa.int32()))
    )
    with pytest.raises(ChunkReadError, match="source_id 5"):
        zarr.open_array(ManifestStore(orphan), path="a", mode="r")[...]


def test_writes_are_refused(archive) -> None:
    store = ManifestStore(archive[0].tables())
    assert not store.supports_writes and not store.supports_deletes and store.read_only
    buf = cpu.Buffer.from_bytes(b"x")
    for call in (store.set("le/c/0/0", buf), store.delete("le/zarr.json"), store.clear()):
        with pytest.raises(ReadOnlyStoreError, match="read-only"):
            sync(call)
    with pytest.raises(ValueError, match="read-only"):
        ManifestStore(archive[0].tables(), read_only=False)


# -- the Store contract (mirrors zarr.testing.store.StoreTests for a read-only store) ---------


def test_get_byte_ranges_listing_and_sizes(archive) -> None:
    raw, _ = archive
    store = ManifestStore(raw.tables())
    full = _get(store, "le/c/1/1")
    assert full is not None and len(full) == 3 * 2 * 4
    inline = _get(store, "grp/inner/c/1")
    assert inline is not None and len(inline) == 10
    for key, value in (("le/c/1/1", full), ("grp/inner/c/1", inline), ("zarr.json", None)):
        value = value if value is not None else _get(store, key)
        assert value is not None
        for br, expected in (
            (RangeByteRequest(1, 4), value[1:4]),
            (OffsetByteRequest(3), value[3:]),
            (SuffixByteRequest(2), value[-2:]),
            (None, value),
        ):
            assert _get(store, key, br) == expected, (key, br)
        assert sync(store.getsize(key)) == len(value)
    with pytest.raises((ValueError, TypeError), match=r"Unexpected byte_range, got.*"):
        _get(store, "le/c/0/0", (0, 2))
    with pytest.raises(FileNotFoundError):
        sync(store.getsize("c/1000"))
    assert _get(store, "nope/zarr.json") is None and _get(store, "le/c/0") is None

    keys = _collect(store.list())
    assert len(keys) == len(set(keys))
    docs = {"zarr.json", "le/zarr.json", "be/zarr.json", "z/zarr.json", "grp/zarr.json"}
    assert docs | {"grp/inner/zarr.json"} <= set(keys)
    assert len([k for k in keys if "/c/" in k]) == raw.tables().chunks.num_rows
    for prefix in ("", "le/", "le/c/", "grp/", "grp/inner/c/"):
        assert sorted(_collect(store.list_prefix(prefix))) == sorted(
            k for k in keys if k.startswith(prefix)
        )
    assert _collect(store.list_dir("")) == ["be", "grp", "le", "z", "zarr.json"]
    assert _collect(store.list_dir("grp/")) == ["inner", "zarr.json"]
    assert _collect(store.list_dir("le")) == ["c", "zarr.json"]
    assert _collect(store.list_dir("le/c")) == ["0", "1", "2"]
    assert _collect(store.list_dir("le/c/2/")) == ["0", "1", "2"]
    assert _collect(store.list_dir("nope")) == []
    assert not sync(store.is_empty("")) and sync(store.is_empty("nope/"))
    assert sync(store.getsize_prefix("grp/inner")) == sum(
        sync(store.getsize(k)) for k in keys if k.startswith("grp/inner/")
    )

    ranges = [("le/c/0/0", RangeByteRequest(0, 2)), ("zarr.json", None), ("nope", None)]
    got = sync(store.get_partial_values(PROTO, (r for r in ranges)))
    assert [g.to_bytes() if g is not None else None for g in got] == [
        _get(store, k, r) for k, r in ranges
    ]


class _ZarrStoreSuite(StoreTests[ManifestStore, cpu.Buffer]):  # type: ignore[type-var]
    """zarr's own store tests; only the ones that apply to a read-only store are run."""

    store_cls = ManifestStore
    buffer_cls = cpu.Buffer

    async def set(self, store, key, value):
        raise NotImplementedError("a ManifestStore cannot be written")

    async def get(self, store, key):
        return await store.get(key, PROTO)

    def test_store_repr(self, store) -> None:
        assert "ManifestStore(" in repr(store)

    def test_store_supports_writes(self, store) -> None:
        assert not store.supports_writes

    def test_store_supports_listing(self, store) -> None:
        assert store.supports_listing


def test_zarr_store_suite_read_only_parts(archive) -> None:
    suite = _ZarrStoreSuite()
    kwargs = {"manifest": archive[0].tables()}
    store = sync(ManifestStore.open(**kwargs))
    suite.test_store_type(store)
    suite.test_store_eq(store, kwargs)
    suite.test_store_repr(store)
    suite.test_store_supports_writes(store)
    suite.test_store_supports_listing(store)
    suite.test_store_supports_partial_writes(store)
    sync(suite.test_getsize_raises(store))
    sync(suite.test_read_only_store_raises(dict(kwargs)))
    sync(suite.test_with_read_only_store(dict(kwargs)))
    sync(suite.test_store_context_manager(dict(kwargs)))
    sync(suite.test_store_open_read_only(dict(kwargs), True))
    # a round trip through pickle gives an equal store that reads the same bytes
    again = pickle.loads(pickle.dumps(store))
    assert again == store and again.read_only
    assert _get(again, "le/c/0/0") == _get(store, "le/c/0/0") is not None
    assert store != ManifestStore(archive[0].tables(), endpoint="http://elsewhere")


# -- S3 ------------------------------------------------------------------------------------


def test_s3_sources_with_each_kind_of_options(s3, tmp_path: Path, monkeypatch) -> None:
    data = np.arange(30, dtype=">f8").reshape(5, 6)
    raw = RawArchive(tmp_path / "raw.bin")
    raw.add("a", data, [2, 4], endian="big", compress=True, inline={(0, 0)})
    uri = s3.upload(raw.path)
    tables = raw.tables(uri=uri)
    for options in (s3.storage_options, s3.obstore_options):
        store = ManifestStore(tables, **options)
        np.testing.assert_array_equal(zarr.open_array(store, path="a", mode="r")[...], data)
        assert store.stats.requests == 5 and store.stats.reads < 5
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    store = ManifestStore(tables)  # endpoint and credentials from AWS_* variables
    np.testing.assert_array_equal(zarr.open_array(store, path="a", mode="r")[2:, 1:], data[2:, 1:])
    gone = ManifestStore(raw.tables(uri=s3.url("no/such/object.bin")))
    with pytest.raises(ChunkReadError, match="not found") as info:
        zarr.open_array(gone, path="a", mode="r")[...]
    assert info.value.source == s3.url("no/such/object.bin") and info.value.array == "a"

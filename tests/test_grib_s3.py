"""GRIB sources on S3 (moto on 127.0.0.1): scanned by byte ranges, never read whole.

Requests are counted by a logging HTTP proxy between s3fs and the moto server (``proxy``),
independently of vzsql's own counters: the scan of a file of many large messages must read
a small fraction of the object, in at most about one request per message, none of them the
whole object. Values read back equal cfgrib's on the local copy; damaged objects give the
same typed errors and failure tables as the same bytes on disk. Locally, the range walk
(``grib_ranges``) must find what the whole-buffer search (``find_messages``) finds, and the
metadata-only reading must give the same tables as giving ecCodes whole messages.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pyarrow as pa
import pytest
import xarray as xr
from fixtures_grib import PACKINGS_GRIB2, WMO_HEADER, Field, encode, grid_fields, write_grib
from hypothesis import given, settings
from hypothesis import strategies as st

import vzsql
from vzsql.errors import CorruptSourceError, StaleSourceError
from vzsql.remote_io import read_stats, reset_read_stats
from vzsql.scanners.grib import scan_grib, scan_grib_report
from vzsql.scanners.grib_messages import find_messages
from vzsql.scanners.grib_ranges import _Window, walk_messages
from vzsql.tables import Tables

DATA = Path(__file__).parent / "data"
CFGRIB = {"engine": "cfgrib", "indexpath": ""}
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass
class Logged:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int


@dataclass
class CountingProxy:
    """An HTTP proxy that forwards to the S3 server and logs every request it serves."""

    endpoint_url: str
    storage_options: dict[str, Any]
    log: list[Logged] = field(default_factory=list)

    def gets(self, key: str) -> list[Logged]:
        return [r for r in self.log if r.method == "GET" and r.path.endswith(key)]


@pytest.fixture(scope="module")
def proxy(s3: Any) -> Iterator[CountingProxy]:
    upstream = urlparse(s3.endpoint_url)
    log: list[Logged] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            conn = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if body:
                    headers["Content-Length"] = str(len(body))
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            finally:
                conn.close()
            with lock:
                log.append(
                    Logged(
                        self.command, self.path, self.headers.get("Range"), resp.status, len(data)
                    )
                )
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            declared = resp.getheader("Content-Length")
            self.send_header(
                "Content-Length", declared if self.command == "HEAD" else str(len(data))
            )
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield CountingProxy(url, {**s3.storage_options, "endpoint_url": url}, log)
    finally:
        server.shutdown()
        server.server_close()


def open_cfgrib(path: Path) -> xr.Dataset:
    ds = xr.open_dataset(path, **CFGRIB).load()
    ds.attrs.pop("history", None)
    return ds


def _many_messages(path: Path) -> tuple[Path, int]:
    """120 GRIB2 messages of a 1-degree global grid (~130 KB of data each), mixed packings,
    some with bitmaps, WMO bulletin headers around each message."""
    keys = {
        "Ni": 360,
        "Nj": 181,
        "iDirectionIncrementInDegrees": 1.0,
        "jDirectionIncrementInDegrees": 1.0,
        "latitudeOfFirstGridPointInDegrees": 90.0,
        "latitudeOfLastGridPointInDegrees": -90.0,
        "longitudeOfFirstGridPointInDegrees": 0.0,
        "longitudeOfLastGridPointInDegrees": 359.0,
    }
    fields = grid_fields(
        names=["t", "u", "v"], levels=[1000, 850, 700, 500, 300], steps=range(0, 48, 6)
    )
    packings = ["grid_simple", "grid_ccsds", "grid_complex", "grid_ieee"]
    rng = np.random.default_rng(7)
    for i, f in enumerate(fields):
        f.keys = {**keys, **f.keys}
        f.values = 250.0 + 40.0 * rng.random(360 * 181)
        f.packing = packings[i % len(packings)]
        f.missing_every = 7 if i % 5 == 0 else 0
    path, _ = write_grib(path, fields, wmo=True)
    return path, len(fields)


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    return _many_messages(tmp_path_factory.mktemp("grib_s3") / "many.grib2")


def test_scan_on_s3_reads_metadata_only(s3: Any, proxy: CountingProxy, many: Any) -> None:
    local, n_messages = many
    size = local.stat().st_size
    uri = s3.upload(local)
    key = urlparse(uri).path
    proxy.log.clear()
    reset_read_stats()
    m = vzsql.scan(uri, storage_options=proxy.storage_options)

    gets = proxy.gets(key)
    read = sum(r.body_bytes for r in gets)
    assert all(r.range and r.range.startswith("bytes=") for r in gets), gets  # ranged only
    assert max(r.body_bytes for r in gets) < size // 20  # no request reads (near) the object
    print(f"\n{n_messages} messages, object {size} B: {len(gets)} GETs, {read} B read")
    assert read < size // 8, (read, size)  # data sections skipped
    assert len(gets) <= n_messages + 2, len(gets)  # at most about one request per message
    ours = read_stats()[uri]  # vzsql's own counters agree with the proxy
    assert (ours.requests, ours.bytes) == (len(gets), read)
    print(f"\n{n_messages} messages, object {size} B: {len(gets)} GETs, {read} B read")

    chunks = m.table("chunks").filter(pa.compute.is_null(m.table("chunks").column("data")))
    local_tables = scan_grib(str(local))
    ref = local_tables.chunks.filter(pa.compute.is_null(local_tables.chunks.column("data")))
    assert chunks.select(["array", "index", "offset", "length"]).sort_by(
        [("offset", "ascending")]
    ) == ref.select(["array", "index", "offset", "length"]).sort_by([("offset", "ascending")])

    got = m.to_xarray(storage_options=s3.storage_options).load()
    xr.testing.assert_identical(got, open_cfgrib(local))


def _error_text(err: CorruptSourceError, source: str) -> str:
    return str(err).replace(source, "<source>")


@pytest.mark.parametrize("damage", ["junk_grib", "truncate", "length", "end", "section"])
def test_damaged_objects_fail_as_local_files_do(
    s3: Any, proxy: CountingProxy, tmp_path: Path, damage: str
) -> None:
    msgs = [encode(f) for f in grid_fields(names=["t"], levels=[850], steps=[0, 6, 12])]
    junk = [b"\0\0padding\n", WMO_HEADER]
    if damage == "junk_grib":  # a 'GRIB' that starts no message, between messages
        junk = [b"\0\0padding GRIB\x07 not a message\n", WMO_HEADER + b"GRIB"]
    path, offsets = write_grib(tmp_path / "ok.grib2", msgs, between=junk)
    buf = bytearray(path.read_bytes())
    o = offsets[1]
    if damage == "truncate":
        buf = buf[: offsets[2] + len(msgs[2]) // 2]
    elif damage == "length":
        buf[o + 15] ^= 0x10
    elif damage == "end":
        buf[o + len(msgs[1]) - 1] = ord("x")
    elif damage == "section":
        buf[o + 16 + 3] ^= 0x04
    local = tmp_path / f"bad_{damage}.grib2"
    local.write_bytes(bytes(buf))
    uri = s3.put_bytes(f"damaged/{damage}.grib2", bytes(buf))
    opts = proxy.storage_options

    errors = []
    for source, so in ((str(local), None), (uri, opts)):
        with pytest.raises(CorruptSourceError) as e:
            scan_grib(source, storage_options=so)
        errors.append(_error_text(e.value, source))
    assert errors[0] == errors[1]
    assert "byte offset" in errors[0]

    local_report = scan_grib_report(str(local), strict=False)
    remote_report = scan_grib_report(uri, storage_options=opts, strict=False)
    assert local_report.failures.num_rows >= 1
    assert remote_report.failures.equals(local_report.failures)
    assert remote_report.tables.chunks.select(["array", "offset", "length"]).equals(
        local_report.tables.chunks.select(["array", "offset", "length"])
    )


# -- local: the range walk against the whole-buffer search and the whole-message path ------

_POOL = [
    encode(Field("regular_ll_sfc_grib2", packing="grid_ccsds")),
    encode(Field("regular_ll_sfc_grib1")),
    encode(Field("regular_ll_pl_grib2", packing="grid_second_order")),
    encode(Field("reduced_gg_pl_32_grib2", missing_every=3)),
]
_JUNK = st.one_of(
    st.binary(max_size=40),
    st.binary(max_size=12).map(lambda b: b"GRIB" + b),
    st.tuples(st.sampled_from(range(len(_POOL))), st.integers(1, 400)).map(
        lambda t: _POOL[t[0]][: t[1]]
    ),
)


def _walk(raw: bytes) -> Any:
    return walk_messages(_Window(len(raw), None, raw)).index


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_JUNK, st.sampled_from(range(len(_POOL)))), max_size=5), _JUNK)
def test_walk_finds_what_the_buffer_search_finds(
    parts: list[tuple[bytes, int]], tail: bytes
) -> None:
    raw = b"".join(junk + _POOL[k] for junk, k in parts) + tail
    walked, searched = _walk(raw), find_messages(np.frombuffer(raw, dtype=np.uint8))
    assert walked.offsets.tolist() == searched.offsets.tolist()
    assert walked.lengths.tolist() == searched.lengths.tolist()
    assert walked.editions.tolist() == searched.editions.tolist()
    assert walked.failures == searched.failures


def _fields_file(tmp_path: Path, name: str, fields: list[Field]) -> Path:
    return write_grib(tmp_path / name, fields, before=b"junk", between=b"\0" * 5)[0]


def _same_tables(a: Tables, b: Tables) -> None:
    for name in ("arrays", "grid", "chunks", "groups"):
        assert getattr(a, name).equals(getattr(b, name)), name


@pytest.mark.parametrize("packing", PACKINGS_GRIB2)
@pytest.mark.parametrize("sample", ["regular_ll_pl_grib2", "reduced_gg_pl_32_grib2"])
def test_metadata_sections_give_the_tables_of_whole_messages(
    tmp_path: Path, sample: str, packing: str
) -> None:
    fields = grid_fields(sample=sample, packing=packing, numbers=[0, 1], steps=[0, 6])
    if packing != "grid_png":  # the bundled libpng cannot write PNG with a bitmap
        for f in fields[::3]:
            f.missing_every = 4
    path = _fields_file(tmp_path, f"{packing}.grib2", fields)
    heads = scan_grib_report(str(path))
    _same_tables(heads.tables, scan_grib_report(str(path), heads_only=False).tables)
    found = walk_messages(_Window(path.stat().st_size, None, path.read_bytes()))
    read_without_data = sum(h is not None for h in found.heads)
    assert read_without_data == (0 if packing == "grid_second_order" else len(fields))


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.grib*")))
def test_real_files_give_the_tables_of_whole_messages(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes((DATA / name).read_bytes())
    _same_tables(scan_grib(str(path)), scan_grib_report(str(path), heads_only=False).tables)


def test_an_object_that_shrinks_while_scanned_is_stale() -> None:
    raw = b"".join(_POOL)
    window = _Window(len(raw) + 1000, lambda a, b: raw[a:b], uri="s3://b/shrunk.grib")
    with pytest.raises(StaleSourceError, match="changed while it was scanned"):
        walk_messages(window)


def test_small_messages_are_read_many_per_request(tmp_path: Path) -> None:
    """Messages of a few KB: read through in 1 MiB requests, not one request each."""
    fields = grid_fields(names=["t"], levels=list(range(100, 1000, 10)), steps=[0, 6, 12])
    raw = _fields_file(tmp_path, "small.grib2", fields).read_bytes()
    requests: list[tuple[int, int]] = []

    def fetch(a: int, b: int) -> bytes:
        requests.append((a, b))
        return raw[a:b]

    found = walk_messages(_Window(len(raw), fetch))
    assert len(found.index) == len(fields) == 270
    assert len(requests) <= len(raw) // 2**20 + 3, requests
    assert sum(b - a for a, b in requests) <= len(raw) + 2**20

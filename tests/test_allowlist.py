"""Security: a manifest from someone else can only make vzsql read allowed locations; user SQL
cannot write files, read files or load extensions."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import xarray as xr

import vzsql
from tests.fixtures_archive import monthly_archive  # noqa: F401
from vzsql.allowlist import AllowList, check_imported_sources, check_url
from vzsql.errors import QueryError, SourceNotAllowedError


@pytest.mark.parametrize(
    "uri, why",
    [
        ("ftp://host/file.nc", "scheme 'ftp'"),
        ("data/file.nc", "relative path"),
        ("file://otherhost/etc/passwd", "another host"),
        ("file:///data/../etc/passwd", "'..'"),
        ("s3://bucket/a/%2e%2e/secret", "'..'"),
        ("https://host/x/../../admin", "'..'"),
        ("file:///data/x\x00.nc", "NUL"),
        ("memory://x", "scheme 'memory'"),
    ],
)
def test_url_rules(uri: str, why: str) -> None:
    with pytest.raises(SourceNotAllowedError, match=why if why != "'..'" else r"'\.\.'"):
        check_url(uri)


def test_url_rules_accept_ordinary_urls() -> None:
    for uri in ("file:///data/a.nc", "s3://b/k/a.nc", "gs://b/a", "az://c/a", "https://h/a.nc"):
        check_url(uri)


def test_prefixes_match_at_segment_boundaries() -> None:
    allow = AllowList.of(["s3://bucket/data"])
    assert allow.allows("s3://bucket/data/x.nc") and allow.allows("s3://bucket/data")
    assert not allow.allows("s3://bucket/data-evil/x.nc")
    assert not allow.allows("s3://other/data/x.nc")


def _evil_manifest(good: Path, secret: Path, folder: Path) -> Path:
    """A manifest (as someone might send) whose source points at ``secret``."""
    m = vzsql.scan(good)
    sources = m.table("sources").set_column(
        1, "uri", pa.array([secret.as_uri()] * m.table("sources").num_rows)
    )
    vzsql.Manifest(m.tables.with_tables(sources=sources)).save(folder)
    return folder


def test_disk_manifest_strict_allow_list(monthly_archive, tmp_path, monkeypatch) -> None:  # noqa: F811
    monkeypatch.delenv("VZSQL_ALLOW", raising=False)
    secret_dir = tmp_path / "home" / "private"
    secret_dir.mkdir(parents=True)
    secret = secret_dir / "secret.nc"
    shutil.copy(monthly_archive[0], secret)  # stands in for any file the user did not share
    folder = _evil_manifest(monthly_archive[0], secret, tmp_path / "downloads" / "evil.vzm")

    # strict mode: with an allow-list (or VZSQL_ALLOW) only its prefixes may be read
    m = vzsql.open_manifest(folder, allow=[tmp_path / "downloads" / "data"])
    with pytest.raises(SourceNotAllowedError, match="not allowed") as err:
        m.to_xarray()["air"].load()
    assert secret.as_uri() in str(err.value) and "VZSQL_ALLOW" in str(err.value)
    monkeypatch.setenv("VZSQL_ALLOW", "s3://elsewhere/")
    with pytest.raises(SourceNotAllowedError, match="not allowed"):
        vzsql.open_manifest(folder).to_xarray()["air"].load()
    monkeypatch.delenv("VZSQL_ALLOW")

    expected = xr.open_dataset(monthly_archive[0]).load()
    for allowed in (
        vzsql.open_manifest(folder, allow=[secret_dir]),
        vzsql.open_manifest(folder, allow="recorded"),
    ):
        np.testing.assert_array_equal(allowed.to_xarray()["air"].values, expected["air"].values)
    monkeypatch.setenv("VZSQL_ALLOW", f"s3://elsewhere/,{secret_dir.as_uri()}/")
    np.testing.assert_array_equal(
        vzsql.open_manifest(folder).to_xarray()["air"].values, expected["air"].values
    )


def test_manifest_beside_its_data_is_allowed(monthly_archive, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.delenv("VZSQL_ALLOW", raising=False)
    data = tmp_path / "share" / "data.nc"
    data.parent.mkdir()
    shutil.copy(monthly_archive[0], data)
    vzsql.scan(data).save(tmp_path / "share" / "m.vzm")
    got = vzsql.open_manifest(tmp_path / "share" / "m.vzm").to_xarray().load()
    xr.testing.assert_identical(got, xr.open_dataset(data).load())


def test_dotdot_and_odd_schemes_refused_at_read(monthly_archive, tmp_path) -> None:  # noqa: F811
    m = vzsql.scan(monthly_archive[0])
    for bad in (
        monthly_archive[0].parent.as_uri()
        + "/../"
        + monthly_archive[0].parent.name
        + "/"
        + monthly_archive[0].name,
        "ftp://example.org/file.nc",
    ):
        sources = m.table("sources").set_column(1, "uri", pa.array([bad]))
        built = vzsql.Manifest(m.tables.with_tables(sources=sources))
        with pytest.raises(SourceNotAllowedError):
            built.to_xarray()["air"].load()


def test_scanned_manifest_reads_only_what_it_scanned(monthly_archive, tmp_path) -> None:  # noqa: F811
    m = vzsql.scan(monthly_archive[0])
    assert m.allow is not None and m.allow.allows(monthly_archive[0].as_uri())
    assert not m.allow.allows(monthly_archive[1].as_uri())


def test_imported_references_to_local_files_must_be_data_files(
    monthly_archive,  # noqa: F811
    tmp_path,
    monkeypatch,
) -> None:
    monkeypatch.delenv("VZSQL_ALLOW", raising=False)
    refs = tmp_path / "refs" / "refs.json"
    check_imported_sources(["s3://bucket/a.nc", "https://host/b.nc"], reference=refs)
    secret = tmp_path / "id_rsa"
    secret.write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    with pytest.raises(SourceNotAllowedError, match="not allowed"):
        check_imported_sources(["s3://bucket/a.nc", secret.as_uri()], reference=refs)
    # a real netCDF file elsewhere is a data file: allowed by default
    check_imported_sources([monthly_archive[0].as_uri()], reference=refs)
    # a file next to the reference set is allowed whatever it holds
    (tmp_path / "refs").mkdir()
    beside = tmp_path / "refs" / "raw.bin"
    beside.write_bytes(b"raw external data")
    check_imported_sources([beside.as_uri()], reference=refs)
    # an explicit allow-list is strict: only its prefixes and the reference's folder
    with pytest.raises(SourceNotAllowedError):
        check_imported_sources(
            [monthly_archive[0].as_uri()], allow=[tmp_path / "other"], reference=refs
        )
    check_imported_sources([secret.as_uri()], allow=[tmp_path], reference=refs)
    with pytest.raises(SourceNotAllowedError, match="scheme"):
        check_imported_sources(["gopher://x/y"], reference=refs)


def test_opened_manifest_refuses_a_recorded_secret(monthly_archive, tmp_path, monkeypatch) -> None:  # noqa: F811
    """A crafted manifest listing a non-data local file cannot make vzsql serve its bytes."""
    monkeypatch.delenv("VZSQL_ALLOW", raising=False)
    secret = tmp_path / "secret" / "id_rsa"
    secret.parent.mkdir()
    secret.write_bytes(b"\x00" * 100_000)
    m = vzsql.scan(monthly_archive[0])
    sources = m.table("sources").set_column(1, "uri", pa.array([secret.as_uri()]))
    vzsql.Manifest(m.tables.with_tables(sources=sources)).save(tmp_path / "m" / "evil.vzm")
    opened = vzsql.open_manifest(tmp_path / "m" / "evil.vzm")
    with pytest.raises(SourceNotAllowedError):
        opened.to_xarray()["air"].load()
    # the same manifest pointing at the real file (outside its folder) opens by default
    vzsql.scan(monthly_archive[0]).save(tmp_path / "m" / "good.vzm")
    vzsql.open_manifest(tmp_path / "m" / "good.vzm").to_xarray()["air"].load()


@pytest.mark.parametrize(
    "query",
    [
        "INSTALL httpfs",
        "LOAD httpfs",
        "LOAD '/tmp/evil.duckdb_extension'",
        "COPY chunks TO '{out}'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "ATTACH '{out}.db' AS x",
        "SET enable_external_access = true",
    ],
)
def test_user_sql_cannot_touch_files_or_extensions(monthly_archive, tmp_path, query) -> None:  # noqa: F811
    m = vzsql.scan(monthly_archive[0])
    out = tmp_path / "leak.csv"
    with pytest.raises(QueryError):
        m.sql(query.format(out=out)).fetchall()
    assert not out.exists() and not Path(f"{out}.db").exists()

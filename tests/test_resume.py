"""Resumable scans: unchanged files are not read again, changed and new ones are, and the
result equals a full scan."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import netCDF4
import pyarrow as pa
import xarray as xr

import vzsql
from tests.fixtures_cli import run_vzsql
from vzsql.demo import write_archive
from vzsql.scanners import detect_format, get_scanner
from vzsql.tables import Tables


class CountingScanner:
    """The real scanners, counting which files they were asked to scan (threads only)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, uri: str, *, storage_options: dict[str, Any] | None = None) -> Tables:
        with self._lock:
            self.seen.append(uri.rsplit("/", 1)[-1])
        return get_scanner(detect_format(uri))(uri, storage_options=storage_options)


def rescanned(files: list[Path], target: Path) -> list[str]:
    """The names of the files a resumed scan of ``files`` against ``target`` reads again."""
    counter = CountingScanner()
    vzsql.scan(files, resume=target, scanner=counter)
    return counter.seen


def _tables(m: vzsql.Manifest, *, drop_scan_time: bool) -> dict[str, pa.Table]:
    d = m.tables.as_dict()
    if drop_scan_time:
        d["sources"] = d["sources"].drop_columns(["scanned_at"])
    return d


def _same(a: vzsql.Manifest, b: vzsql.Manifest, *, drop_scan_time: bool = True) -> None:
    ta, tb = _tables(a, drop_scan_time=drop_scan_time), _tables(b, drop_scan_time=drop_scan_time)
    for name in ta:
        assert ta[name].equals(tb[name]), name


def test_resume_skips_unchanged_rescans_changed_and_new(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "archive", months=5)
    target = tmp_path / "out.vzm"

    first = CountingScanner()
    m1 = vzsql.scan(files[:4], resume=target, scanner=first)
    m1.save(target)
    assert sorted(first.seen) == sorted(p.name for p in files[:4])
    assert (tmp_path / "out.vzm.parts").is_dir()

    again = CountingScanner()
    m2 = vzsql.scan(files[:4], resume=target, scanner=again)
    assert again.seen == []
    _same(m1, m2, drop_scan_time=False)  # the very same parts, scan times included

    # change one file's data in place (new mtime), add a fifth month
    time.sleep(0.01)
    with netCDF4.Dataset(files[1], "a") as ds:
        ds["air"][0, 0, 0] = 123
    third = CountingScanner()
    m3 = vzsql.scan(files, resume=target, scanner=third)
    assert sorted(third.seen) == sorted([files[1].name, files[4].name])
    _same(m3, vzsql.scan(files))
    expected = xr.open_mfdataset(files, combine="by_coords")
    xr.testing.assert_identical(m3.to_xarray().load(), expected.load())


def test_resume_after_interrupted_scan_uses_journal_alone(tmp_path: Path) -> None:
    """No manifest was saved (the scan died): parts already written are reused."""
    files = write_archive(tmp_path / "archive", months=3)
    target = tmp_path / "never-saved.vzm"
    vzsql.scan(files[:2], resume=target)  # "interrupted" before the save
    assert not target.exists()
    counter = CountingScanner()
    m = vzsql.scan(files, resume=target, scanner=counter)
    assert counter.seen == [files[2].name]
    _same(m, vzsql.scan(files))


def test_previous_manifest_must_vouch_for_a_part(tmp_path: Path) -> None:
    """A saved manifest that no longer lists a file (or lists another version) is trusted
    over the journal: that file is scanned again."""
    files = write_archive(tmp_path / "archive", months=3)
    target = tmp_path / "out.vzm"
    vzsql.scan(files, resume=target)  # journal has all three
    vzsql.scan(files[:2]).save(target)  # the manifest only two
    assert rescanned(files, target) == [files[2].name]


def test_replaced_file_same_size_is_rescanned(tmp_path: Path) -> None:
    """Replacing a file by a copy (new inode and mtime, same size) changes its etag."""
    files = write_archive(tmp_path / "archive", months=2)
    target = tmp_path / "out.vzm"
    vzsql.scan(files, resume=target).save(target)
    data = files[0].read_bytes()
    files[0].unlink()
    files[0].write_bytes(data)
    os.utime(files[0], ns=(time.time_ns(), time.time_ns()))
    assert rescanned(files, target) == [files[0].name]


def test_cli_resume(tmp_path: Path) -> None:
    files = write_archive(tmp_path / "archive", months=3)
    out = tmp_path / "cli.vzm"
    args = ["scan", *map(str, files), "-o", str(out), "-q", "--resume"]

    r1 = run_vzsql(*args)
    assert r1.returncode == 0, r1.stderr
    first = vzsql.open_manifest(out)
    parts = sorted((tmp_path / "cli.vzm.parts").rglob("*.vzp"))
    mtimes = [p.stat().st_mtime_ns for p in parts]
    assert len(parts) == 3
    r2 = run_vzsql(*args)  # everything reused; the output is replaced by an identical manifest
    assert r2.returncode == 0, r2.stderr
    assert [p.stat().st_mtime_ns for p in parts] == mtimes  # no part rewritten
    _same(first, vzsql.open_manifest(out), drop_scan_time=False)

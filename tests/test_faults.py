"""Fault tolerance: a batch of good files with damaged, missing, unreadable, hanging and
crashing ones; every good file is scanned, every bad one is recorded with a reason.
Also: an interrupted save leaves the previous manifest intact.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import xarray as xr

import vzsql
from tests.fixtures_archive import monthly_archive  # noqa: F401
from tests.fixtures_cli import run_vzsql
from vzsql.errors import CorruptSourceError, SourceError, UnsupportedFormatError, VzsqlError
from vzsql.isolation import scan_isolated
from vzsql.scanners import detect_format, get_scanner
from vzsql.sources import expand
from vzsql.tables import Tables

TIMEOUT = 4.0


def crashing_scanner(uri: str, *, storage_options: dict[str, Any] | None = None) -> Tables:
    """A scanner that segfaults (a real SIGSEGV, like libhdf5 on a bad file) on ``crash*``."""
    if "crash" in uri.rsplit("/", 1)[-1]:
        ctypes.string_at(0)  # reads address 0: the process dies by SIGSEGV
    return get_scanner(detect_format(uri, storage_options))(uri, storage_options=storage_options)


def _corpus(good: list[Path], folder: Path) -> dict[str, Path]:
    """Bad sources next to copies of the good ones; name -> path."""
    folder.mkdir()
    data = good[0].read_bytes()
    bad: dict[str, Path] = {}
    bad["truncated"] = folder / "truncated.nc"
    bad["truncated"].write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[40] ^= 0xFF  # inside the superblock: its checksum no longer matches
    bad["bitflip"] = folder / "bitflip.nc"
    bad["bitflip"].write_bytes(bytes(flipped))
    bad["zero"] = folder / "zero.nc"
    bad["zero"].write_bytes(b"")
    if os.geteuid() == 0:  # root reads chmod-000 files: a directory is unreadable as a file
        bad["denied"] = folder / "denied.nc"
        bad["denied"].mkdir()
    else:
        bad["denied"] = folder / "denied.nc"
        bad["denied"].write_bytes(data)
        bad["denied"].chmod(0)
    bad["vanished"] = folder / "vanished.nc"
    bad["vanished"].write_bytes(data)
    bad["hanging"] = folder / "hanging.nc"
    os.mkfifo(bad["hanging"])  # opening it for reading blocks: a stalled mount
    return bad


def test_fault_corpus_with_crash(monthly_archive, tmp_path):  # noqa: F811
    bad = _corpus(monthly_archive, tmp_path / "bad")
    crash = tmp_path / "bad" / "crash.nc"
    shutil.copy(monthly_archive[0], crash)
    listing = expand([str(p) for p in [*monthly_archive, *bad.values(), crash]])
    bad["vanished"].unlink()  # deleted between listing and scanning

    t0 = time.perf_counter()
    m = vzsql.scan(listing, on_error="record", timeout=TIMEOUT, scanner=crashing_scanner)
    assert time.perf_counter() - t0 < 30

    assert sorted(m.table("sources")["uri"].to_pylist()) == sorted(
        p.as_uri() for p in monthly_archive
    )
    failures = {r["uri"]: r for r in m.failures.to_pylist()}
    expected = {p.resolve().as_uri() for p in [*bad.values(), crash]}
    assert set(failures) == expected
    assert all(r["reason"] for r in failures.values())
    by_name = {u.rsplit("/", 1)[-1]: r for u, r in failures.items()}
    assert by_name["hanging.nc"]["kind"] == "timeout"
    assert by_name["crash.nc"]["kind"] == "crash"
    assert "SIGSEGV" in by_name["crash.nc"]["reason"]
    assert by_name["truncated.nc"]["error"] == "CorruptSourceError"
    assert "truncated" in by_name["truncated.nc"]["reason"]
    assert by_name["bitflip.nc"]["error"] == "CorruptSourceError"
    assert by_name["zero.nc"]["error"] == "UnsupportedFormatError"
    assert by_name["vanished.nc"]["kind"] == by_name["denied.nc"]["kind"] == "error"
    assert "No such file" in by_name["vanished.nc"]["reason"]

    # the good files are all there, with the values the reference reader gives
    expected_ds = xr.open_mfdataset(monthly_archive, combine="by_coords")
    xr.testing.assert_identical(m.to_xarray().load(), expected_ds.load())


def test_cli_records_failures_and_exits_1(monthly_archive, tmp_path):  # noqa: F811
    bad = _corpus(monthly_archive, tmp_path / "bad")
    bad["vanished"].unlink()
    out = tmp_path / "out.vzm"
    args = [str(p) for p in [*monthly_archive, *bad.values()]]
    r = run_vzsql(
        "scan", *args, "-o", str(out), "-q", "--on-error", "record", "--timeout", str(TIMEOUT)
    )
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"{len(bad)} file(s) failed" in r.stderr
    for p in bad.values():
        line = next(x for x in r.stderr.splitlines() if p.name in x)
        assert ": error: " in line or ": timeout: " in line
    saved = vzsql.open_manifest(out)
    assert saved.info()["sources"] == len(monthly_archive)

    # without --on-error record the first bad file stops the scan: exit 2, nothing written
    r = run_vzsql("scan", *args[:4], "-o", str(tmp_path / "x.vzm"), "-q")
    assert r.returncode == 2 and "truncated.nc" in r.stderr
    assert not (tmp_path / "x.vzm").exists()


def test_raise_mode_keeps_typed_errors(monthly_archive, tmp_path):  # noqa: F811
    bad = _corpus(monthly_archive, tmp_path / "bad")
    for isolate in (False, True):
        with pytest.raises(CorruptSourceError, match="truncated"):
            vzsql.scan([monthly_archive[0], bad["truncated"]], isolate=isolate)
        with pytest.raises(UnsupportedFormatError):
            vzsql.scan([bad["zero"]], isolate=isolate)
        with pytest.raises(SourceError):
            vzsql.scan([bad["vanished"].with_name("gone.nc")], isolate=isolate)
    with pytest.raises(VzsqlError, match=r"timed out|no answer"):
        vzsql.scan([bad["hanging"]], timeout=1.0)


def test_isolated_child_killed_by_signal(monthly_archive, tmp_path):  # noqa: F811
    """A child killed from outside (OOM killer, operator) is a crash, named by its signal."""
    crash = tmp_path / "crash-kill.nc"
    shutil.copy(monthly_archive[0], crash)
    out = scan_isolated(crash.as_uri(), scanner=killed_scanner, timeout=20)
    assert out.failure is not None and out.failure.kind == "crash"
    assert "SIGKILL" in out.failure.reason
    ok = scan_isolated(monthly_archive[0].as_uri(), timeout=20)
    assert ok.failure is None and ok.tables is not None and ok.tables.chunks.num_rows > 0


def killed_scanner(uri: str, *, storage_options: dict[str, Any] | None = None) -> Tables:
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable")


def test_interrupted_save_keeps_previous_manifest(tmp_path):
    """A process killed while saving over a manifest leaves the old one whole and readable."""
    dest = tmp_path / "big.vzm"
    small = vzsql.Manifest(_synthetic(200_000))
    small.save(dest)
    before = vzsql.open_manifest(dest).table("chunks")
    script = textwrap.dedent(
        f"""
        import vzsql
        from benchmarks.synthetic import synthetic_tables
        m = vzsql.Manifest(synthetic_tables(6_000_000))
        print("saving", flush=True)
        m.save({str(dest)!r}, overwrite=True)
        print("saved", flush=True)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=Path(__file__).parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "saving"
        deadline = time.monotonic() + 60
        while not list(tmp_path.glob(".big.vzm.tmp-*/*.parquet")):  # writing has begun
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.01)
        proc.kill()
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    after = vzsql.open_manifest(dest)
    assert after.table("chunks").equals(before)
    assert after.info()["chunks"] == before.num_rows


def _synthetic(n: int) -> Tables:
    from benchmarks.synthetic import synthetic_tables

    return synthetic_tables(n)


def pid_scanner(uri: str, *, storage_options: dict[str, Any] | None = None) -> Tables:
    """Fails on purpose, saying which process ran it."""
    if "crash" in uri.rsplit("/", 1)[-1]:
        ctypes.string_at(0)
    raise VzsqlError(f"pid {os.getpid()}")


def test_isolated_children_are_reused_until_one_crashes(tmp_path):
    """Files are scanned by reused children (a pipe round trip, not a process per file);
    a crashed child is replaced and the next file is scanned by a new one."""
    ok, crash = (tmp_path / "a.nc").as_uri(), (tmp_path / "crash.nc").as_uri()
    first = scan_isolated(ok, scanner=pid_scanner, timeout=20)
    again = scan_isolated(ok, scanner=pid_scanner, timeout=20)
    assert first.failure is not None and again.failure is not None
    assert first.failure.reason == again.failure.reason != f"pid {os.getpid()}"
    dead = scan_isolated(crash, scanner=pid_scanner, timeout=20)
    assert dead.failure is not None and dead.failure.kind == "crash"
    assert "SIGSEGV" in dead.failure.reason
    after = scan_isolated(ok, scanner=pid_scanner, timeout=20)
    assert after.failure is not None and after.failure.kind == "error"
    assert after.failure.reason != first.failure.reason  # a new child

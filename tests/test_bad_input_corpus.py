"""Bad input corpus per format: truncations, bit flips, zero-length files and junk.

For HDF5/netCDF-4, netCDF3, GRIB, Zarr (v2 and v3 metadata) and DMR++ a small good file is
written with the real writer, then damaged. Every damaged file must either still scan (only
allowed for bit flips: a flipped bit in data or in an unused byte changes nothing vzsql can
see) or raise a typed ``VzsqlError`` subclass whose message names the file; never another
exception type, never a hang. Truncations, empty files and junk must always fail.

The formats vzsql parses itself (netCDF3, GRIB boundaries, Zarr, DMR++) are scanned in this
process under a watchdog. HDF5 goes through libhdf5, which loops forever on some damaged
files (a global-heap object whose size field is flipped: reading ``DIMENSION_LIST`` never
returns, HDF5 2.0); those files are scanned the way batches should scan untrusted files,
each in a child process with a timeout (``vzsql.scan(..., timeout=)``), and a hang must come
back as a ``timeout`` failure naming the file. The CLI leaves no output behind.
"""

from __future__ import annotations

import faulthandler
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import vzsql.errors as errors
from tests.fixtures_cli import run_vzsql
from tests.fixtures_grib import Field, encode, write_grib
from tests.fixtures_hdf5 import write_nc_compression
from tests.fixtures_netcdf3 import write_mixed
from vzsql.errors import VzsqlError
from vzsql.scan import scan_outcomes
from vzsql.scanners import detect_format, get_scanner

WATCHDOG = 60  # seconds one in-process scan may take before the test process is killed
HDF5_TIMEOUT = 8.0


def damaged(data: bytes, seed: int, *, text: bool = False) -> Iterator[tuple[str, bytes, bool]]:
    """``(name, bytes, must_fail)`` variants of ``data`` (``text``: trailing whitespace of an
    XML/JSON document is not content, so truncations cut before it)."""
    n = len(data)
    end = len(data.rstrip()) if text else n
    for cut in sorted({1, 4, 8, 16, 64, end // 4, end // 2, 3 * end // 4, end - 1}):
        if 0 < cut < end:
            yield f"trunc{cut}", data[:cut], True
    rng = np.random.default_rng(seed)
    positions = {0, 5, 8, 20, 64, n // 2, n - 2} | {int(p) for p in rng.integers(0, n, 8)}
    for pos in sorted(p for p in positions if p < n):
        for bit in (0x80, 0x01):
            flipped = bytearray(data)
            flipped[pos] ^= bit
            yield f"flip{pos}x{bit:02x}", bytes(flipped), False
    yield "zero", b"", True
    yield "junk", rng.bytes(4096), True
    yield "magicjunk", data[:8] + rng.bytes(4096), True


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("good")
    (d / "h5").mkdir()
    out = {
        "hdf5": write_nc_compression(d / "h5"),
        "netcdf3": write_mixed(d / "mixed.nc", "NETCDF3_64BIT_OFFSET", nrec=3),
        "grib": write_grib(
            d / "three.grib",
            [
                encode(Field("regular_ll_sfc_grib2")),
                encode(Field("regular_ll_sfc_grib1")),
                encode(Field("regular_ll_pl_grib2", packing="grid_ccsds")),
            ],
        )[0],
    }
    ds = xr.Dataset({"a": (("t", "x"), np.arange(20.0).reshape(4, 5))}, coords={"t": np.arange(4)})
    for zf in (2, 3):
        ds.to_zarr(d / f"v{zf}", zarr_format=zf, consolidated=False)
        out[f"zarr{zf}"] = d / f"v{zf}"
    from tests.test_scan_dmrpp import DIMS, write_dmrpp, write_h5

    h5 = write_h5(d / "data.h5")
    out["dmrpp"] = write_dmrpp(h5, DIMS, href=h5.as_uri())
    return out


def corpus(good: dict[str, Path], fmt: str, dest: Path) -> list[tuple[Path, bool]]:
    """Damaged copies of the good file of ``fmt`` in ``dest``: ``(path, must_fail)``."""
    dest.mkdir()
    src = good[fmt]
    out = []
    if fmt.startswith("zarr"):  # damage the metadata documents of a copy of the store
        docs = ["zarr.json", "a/zarr.json"] if fmt == "zarr3" else [".zgroup", "a/.zarray"]
        for k, doc in enumerate(docs):
            for name, blob, must_fail in damaged((src / doc).read_bytes(), seed=k, text=True):
                store = dest / f"{doc.replace('/', '_')}_{name}"
                shutil.copytree(src, store)
                (store / doc).write_bytes(blob)
                out.append((store, must_fail))
        return out
    for name, blob, must_fail in damaged(src.read_bytes(), seed=len(fmt), text=fmt == "dmrpp"):
        path = dest / f"{name}{src.suffix}"
        path.write_bytes(blob)
        out.append((path, must_fail))
    return out


def scan_in_process(path: Path) -> BaseException | None:
    uri = path.as_uri()
    faulthandler.dump_traceback_later(WATCHDOG, exit=True)  # a hang kills the run, loudly
    try:
        get_scanner(detect_format(uri))(uri)
    except BaseException as e:
        return e
    finally:
        faulthandler.cancel_dump_traceback_later()
    return None


def assert_typed(error: BaseException | None, path: Path, must_fail: bool) -> None:
    if error is None:
        assert not must_fail, f"{path.name}: damaged input scanned without an error"
        return
    assert isinstance(error, VzsqlError), f"{path.name}: {type(error).__name__}: {error}"
    assert type(error) is not VzsqlError, f"{path.name}: untyped VzsqlError: {error}"
    assert path.name in str(error), f"{path.name}: message does not name the file: {error}"


@pytest.mark.parametrize("fmt", ["netcdf3", "grib", "zarr2", "zarr3", "dmrpp"])
def test_damaged_files_give_typed_errors(good: dict[str, Path], tmp_path: Path, fmt: str) -> None:
    cases = corpus(good, fmt, tmp_path / "bad")
    failed = 0
    for path, must_fail in cases:
        error = scan_in_process(path)
        assert_typed(error, path, must_fail)
        failed += error is not None
    assert failed >= sum(m for _, m in cases)


def test_damaged_hdf5_files_give_typed_errors_or_time_out(
    good: dict[str, Path], tmp_path: Path
) -> None:
    cases = corpus(good, "hdf5", tmp_path / "bad")
    data = good["hdf5"].read_bytes()
    heap = data.find(b"GCOL")
    assert heap > 0, "the netCDF-4 fixture keeps DIMENSION_LIST references in a global heap"
    hang = tmp_path / "bad" / "heap_object_size.nc"
    flipped = bytearray(data)
    flipped[heap + 48] ^= 0x80  # size field of the collection's second object
    hang.write_bytes(bytes(flipped))
    cases.append((hang, True))
    must = {p.as_uri(): m for p, m in cases}
    outcomes = scan_outcomes(list(must), on_error="record", timeout=HDF5_TIMEOUT)
    for o in outcomes:
        name = o.uri.rsplit("/", 1)[-1]
        if o.failure is None:
            assert not must[o.uri], f"{name}: damaged input scanned without an error"
            continue
        f = o.failure
        assert f.kind in ("error", "timeout"), f"{name}: {f.kind}: {f.error}: {f.reason}"
        if f.kind == "error":
            cls = getattr(errors, f.error, None)
            assert isinstance(cls, type) and issubclass(cls, VzsqlError), f"{name}: {f.error}"
            assert cls is not VzsqlError, f"{name}: untyped: {f.reason}"
            assert name in str(f.as_error()), f"{name}: {f.as_error()}"
        else:
            assert name == hang.name, f"{name} hung: only the damaged heap should"
            assert name in str(f.as_error())
    assert sum(o.failure is not None for o in outcomes) >= sum(must.values())


@pytest.mark.parametrize("fmt", ["hdf5", "netcdf3", "grib", "zarr3", "dmrpp"])
def test_cli_scan_of_bad_input_writes_nothing(
    good: dict[str, Path], tmp_path: Path, fmt: str
) -> None:
    src = good[fmt]
    if fmt == "zarr3":
        bad = tmp_path / "bad_store"
        shutil.copytree(src, bad)
        (bad / "a" / "zarr.json").write_bytes((src / "a" / "zarr.json").read_bytes()[:40])
    else:
        bad = tmp_path / f"bad{src.suffix}"
        bad.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    copy = tmp_path / f"good_copy{src.suffix}"  # a good file in the same run changes nothing
    if src.is_dir():
        shutil.copytree(src, copy)
    else:
        shutil.copy(src, copy)
    out = tmp_path / "out.vzm"
    r = run_vzsql("scan", str(copy), str(bad), "-o", str(out), "-q", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert bad.name in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["bad_store" if fmt == "zarr3" else bad.name, copy.name]
    )

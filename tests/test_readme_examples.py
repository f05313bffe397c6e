"""The README's Python examples run as written (in a fresh folder with the demo archive)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> dict[str, str]:
    """README ```python blocks keyed by the heading they sit under."""
    blocks: dict[str, str] = {}
    heading = ""
    for part in re.split(
        r"(^## [^\n]*$|^```python\n.*?^```$)", README.read_text(), flags=re.M | re.S
    ):
        if part.startswith("## "):
            heading = part[3:].strip()
        elif part.startswith("```python"):
            code = part.split("\n", 1)[1].rsplit("```", 1)[0]
            blocks[heading] = blocks.get(heading, "") + code
    return blocks


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_using_it_and_combining_examples_run(in_tmp: Path) -> None:
    blocks = python_blocks()
    namespace: dict[str, object] = {}
    # the combining example writes the archive the first example reads
    combining = blocks["Combining, subsetting and checking"]
    exec(compile(combining, "README-combining", "exec"), namespace)
    assert (in_tmp / "layout.html").is_file() and (in_tmp / "archive.vzm").is_dir()
    using_it = blocks["Using it"].replace(
        'm.save("archive.vzm")', 'm.save("archive.vzm", overwrite=True)'
    )
    exec(compile(using_it, "README-using-it", "exec"), namespace)
    ds = namespace["ds"]
    assert ds["air"].dtype == "float32" and ds.sizes["time"] == 91  # type: ignore[attr-defined]


def test_larger_than_memory_example_runs(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocks = python_blocks()
    namespace: dict[str, object] = {}
    exec(
        compile(blocks["Combining, subsetting and checking"], "README-combining", "exec"), namespace
    )
    capsys.readouterr()
    exec(compile(blocks["Manifests larger than memory"], "README-larger", "exec"), namespace)
    out = capsys.readouterr().out
    assert "duckdb" in out and "bytes held" in out and "problems" in out
    m = namespace["m"]
    assert m.storage == "duckdb"  # type: ignore[attr-defined]


def _daily_files(folder: Path, first_day: int, days: int, name: str) -> list[Path]:
    """One netCDF4 file per day (time chunked by 1), named ``{name}-DD.nc``."""
    import netCDF4
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(days):
        path = folder / f"{name}-{i + 1:02d}.nc"
        with netCDF4.Dataset(path, "w") as ds:
            ds.createDimension("time", None)
            ds.createDimension("x", 4)
            t = ds.createVariable("time", "f8", ("time",))
            t.units = "days since 2020-01-01"
            t[:] = [first_day + i]
            v = ds.createVariable("air", "f4", ("time", "x"), zlib=True, chunksizes=(1, 4))
            v[:] = np.full((1, 4), first_day + i, "f4")
        paths.append(path)
    return paths


def test_publishing_example_runs(in_tmp: Path) -> None:
    import xarray as xr
    from kerchunk.hdf import SingleHdf5ToZarr

    import vzsql
    from vzsql.writers.icechunk import open_repo_readonly

    originals = _daily_files(in_tmp / "archive", 0, 5, "2020-01")
    new = _daily_files(in_tmp / "new", 366, 3, "2021-01")
    (in_tmp / "old_refs.json").write_text(
        __import__("json").dumps(SingleHdf5ToZarr(str(originals[0])).translate())
    )
    namespace: dict[str, object] = {"vzsql": vzsql, "m": vzsql.scan("archive/2020-*.nc")}
    publishing = python_blocks()["Publishing and importing"]
    exec(compile(publishing, "README-publishing", "exec"), namespace)

    expected = xr.open_mfdataset([*originals, *new], combine="by_coords").load()
    session = open_repo_readonly("repo/").readonly_session("main")
    xr.testing.assert_identical(xr.open_zarr(session.store, consolidated=False).load(), expected)
    m3 = namespace["m3"]
    air = m3.sql("SELECT count(*) FROM chunks WHERE array = 'air'").fetchall()  # type: ignore[attr-defined]
    assert air == [(8,)]
    xr.testing.assert_identical(
        namespace["m2"].to_xarray().load(),  # type: ignore[attr-defined]
        xr.open_dataset(originals[0]).load(),
    )

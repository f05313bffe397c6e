"""The command line: scan, sql (table/csv/json/parquet), info; errors are one line, exit 2."""

from __future__ import annotations

import json
import subprocess

import pyarrow.parquet as pq

from tests.fixtures_archive import monthly_archive  # noqa: F401
from tests.fixtures_cli import run_vzsql


def vzsql(*args: str) -> subprocess.CompletedProcess[str]:
    return run_vzsql(*args, timeout=300)


def test_scan_sql_info(monthly_archive, tmp_path):  # noqa: F811
    out = tmp_path / "a.vzm"
    r = vzsql("scan", str(monthly_archive[0]), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "manifest.json").is_file()

    r = vzsql("sql", str(out), "SELECT array, count(*) AS n FROM chunks GROUP BY array ORDER BY 1")
    assert r.returncode == 0, r.stderr
    assert "air" in r.stdout

    r = vzsql(
        "sql",
        str(out),
        "SELECT array, count(*) AS n FROM chunks GROUP BY array ORDER BY 1",
        "--format",
        "csv",
    )
    lines = r.stdout.strip().splitlines()
    assert lines[0] == '"array","n"'
    assert '"air",4' in lines

    r = vzsql(
        "sql", str(out), "SELECT * FROM chunks WHERE array = $a", "-p", "a=air", "--format", "json"
    )
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert len(rows) == 4 and all(row["array"] == "air" for row in rows)

    r = vzsql(
        "sql",
        str(out),
        "SELECT * FROM sources",
        "--format",
        "parquet",
        "-o",
        str(tmp_path / "s.parquet"),
    )
    assert r.returncode == 0, r.stderr
    assert pq.read_table(tmp_path / "s.parquet").num_rows == 1

    r = vzsql("info", str(out), "--json")
    info = json.loads(r.stdout)
    assert info["sources"] == 1 and info["chunks"] >= 4


def test_errors_are_one_line(tmp_path):
    (tmp_path / "junk.nc").write_bytes(b"this is not a netCDF file" * 10)
    r = vzsql("scan", str(tmp_path / "junk.nc"), "-o", str(tmp_path / "x.vzm"))
    assert r.returncode == 2
    assert "junk.nc" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.vzm").exists()
    r = vzsql("info", str(tmp_path / "nothing.vzm"))
    assert r.returncode == 2 and "Traceback" not in r.stderr

"""Analytics (queries/stats/), the HTML report and the algebra CLI commands."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from typer.testing import CliRunner

import vzsql
from tests.fixtures_series import MONTHS, daily_piece
from vzsql.cli import app, load_commands


def archive(tmp_path, gap=False):
    parts, start = [], 0
    for i, n in enumerate(MONTHS):
        t, _ = daily_piece(tmp_path / f"p{i}.raw", start, n)
        parts.append(vzsql.Manifest(t))
        start += n + (5 if gap and i == 0 else 0)
    return vzsql.concat(parts, "time", allow_gaps=gap)


def test_per_array_and_per_source(tmp_path):
    m = archive(tmp_path)
    s = m.stats()
    temp = s["per_array"].filter(pc.equal(s["per_array"]["array"], "temp")).to_pylist()[0]
    ch = m.table("chunks").filter(pc.equal(m.table("chunks")["array"], "temp"))
    assert temp["chunks"] == ch.num_rows == 11
    assert temp["stored_bytes"] == pc.sum(ch["length"]).as_py()
    assert temp["decoded_bytes"] == 11 * 10 * 3 * 4  # stored chunks decode to 10 x 3 float32
    assert temp["compression_ratio"] == temp["decoded_bytes"] / temp["stored_bytes"]
    src = s["per_source"]
    assert src.num_rows == 3
    assert pc.sum(src["referenced_bytes"]).as_py() == m.info()["referenced_bytes"]
    hist = s["chunk_sizes"]
    assert pc.sum(hist["chunks"]).as_py() == m.table("chunks").num_rows


def test_coverage_gaps_and_coordinate_gaps(tmp_path):
    m = archive(tmp_path, gap=True)
    s = m.stats()
    assert s["coverage_gaps"].num_rows == 0
    gaps = s["coordinate_gaps"].to_pylist()
    assert (
        len(gaps) == 1
        and gaps[0]["missing_steps"] == 5
        and gaps[0]["after"].startswith("2000-01-31")
    )
    ch = m.table("chunks")
    keep = pc.invert(
        pc.and_(
            pc.equal(ch["array"], "temp"),
            pc.is_in(pc.list_element(ch["index"], 0), pa.array([5, 6], pa.int32())),
        )
    )
    holed = m.replace(chunks=ch.filter(keep), validate=False)
    gap = holed.stats()["coverage_gaps"].to_pylist()
    assert [
        (g["array"], g["first_chunk"], g["last_chunk"], g["start"], g["stop"]) for g in gap
    ] == [("temp", 5, 6, 41, 59)]


def test_report_html(tmp_path):
    m = archive(tmp_path, gap=True)
    out = tmp_path / "layout.html"
    m.report(out)
    text = out.read_text()
    assert text.count("data:image/png;base64,") >= 5
    assert "Bytes per source" in text and "p1.raw" in text and "temp" in text
    assert not list(tmp_path.glob(".layout.html.*"))  # temp file renamed away


def test_cli_combine_check_stats_report(tmp_path):
    load_commands()
    import sys

    sys.path.insert(0, str(tmp_path))
    from tests.fixtures_series import write_nc_month

    start = 0
    for i, n in enumerate(MONTHS):
        write_nc_month(tmp_path / f"m{i}.nc", start, n)
        start += n
    runner = CliRunner()
    out = tmp_path / "out.vzm"
    r = runner.invoke(
        app, ["combine", str(tmp_path / "m*.nc"), "--concat-dim", "time", "-o", str(out)]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["check", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["stats", str(out)])
    assert r.exit_code == 0 and "per_array" in r.output and "tas" in r.output
    r = runner.invoke(app, ["report", str(out), "-o", str(tmp_path / "layout.html")])
    assert r.exit_code == 0 and (tmp_path / "layout.html").stat().st_size > 10_000
    (tmp_path / "m1.nc").unlink()
    r = runner.invoke(app, ["check", str(out)])
    assert r.exit_code == 1 and "source_missing" in r.output

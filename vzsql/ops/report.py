"""``vzsql report``: one self-contained HTML page describing an archive's layout.

Plots (matplotlib, embedded as base64 PNG) with the numbers beside them: coverage of each
array along each dimension (gaps visible as holes), chunk-size distribution, bytes per
source, compression ratio per array. All numbers come from ``vzsql.ops.stats``. The page
is written to a temporary file next to the target and renamed into place.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from vzsql.atomic import write_text_atomically
from vzsql.ops.stats import stats

if TYPE_CHECKING:
    from vzsql.manifest import Manifest

_MAX_ROWS = 50


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _table_html(table: pa.Table, columns: list[str] | None = None) -> str:
    cols = columns or table.column_names
    rows = table.select(cols).slice(0, _MAX_ROWS).to_pylist()
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    more = (
        f"<p class=more>{table.num_rows - _MAX_ROWS} more rows not shown</p>"
        if table.num_rows > _MAX_ROWS
        else ""
    )
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v)


def _coverage_plot(coverage: pa.Table, array: str, dim: int) -> str:
    import matplotlib.pyplot as plt

    rows = coverage.filter(
        pc.and_(pc.equal(coverage["array"], array), pc.equal(coverage["dim"], dim))
    )
    starts = rows["start"].to_numpy()
    lengths = rows["length"].to_numpy()
    frac = rows["fraction"].to_numpy()
    fig, ax = plt.subplots(figsize=(8, 0.9))
    colors = [(0.2, 0.5, 0.8, max(0.15, float(f))) if f > 0 else (0.9, 0.2, 0.2, 1.0) for f in frac]
    ax.broken_barh(
        list(zip(starts.tolist(), lengths.tolist(), strict=True)),
        (0, 1),
        facecolors=colors,
        edgecolor="white",
        linewidth=0.3,
    )
    ax.set_yticks([])
    name = rows["dim_name"][0].as_py() if rows.num_rows else str(dim)
    ax.set_xlabel(f"{name} (red: no chunks)")
    ax.set_xlim(0, max(1, int((starts + lengths).max()) if len(starts) else 1))
    return _png(fig)


def _bar_plot(labels: list[str], values: list[float], xlabel: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, max(1.2, 0.25 * len(labels) + 0.6)))
    ax.barh(range(len(labels)), values, color=(0.2, 0.5, 0.8))
    ax.set_yticks(range(len(labels)), [lbl[-60:] for lbl in labels], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    return _png(fig)


def _hist_plot(chunk_sizes: pa.Table) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3))
    for array in sorted(set(chunk_sizes["array"].to_pylist())):
        rows = [r for r in chunk_sizes.to_pylist() if r["array"] == array]
        ax.plot(
            [max(1, r["bucket"]) for r in rows],
            [r["chunks"] for r in rows],
            marker="o",
            label=array,
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("stored chunk size (bytes, power-of-two buckets)")
    ax.set_ylabel("chunks")
    if chunk_sizes.num_rows:
        ax.legend(fontsize=7)
    return _png(fig)


def render_report(m: Manifest, title: str = "vzsql archive report") -> str:
    """The HTML text of the report (see the module doc)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    s = stats(m)
    info = m.info()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
        ".row{display:flex;gap:2em;align-items:flex-start;flex-wrap:wrap}"
        "table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:820px}.more{color:#777;font-size:12px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>" + ", ".join(f"{html.escape(k)}: {v}" for k, v in info.items()) + "</p>",
        "<h2>Coverage along each dimension</h2>",
    ]
    coverage = s["coverage"]
    seen: set[tuple[str, int]] = set()
    for array, dim in zip(coverage["array"].to_pylist(), coverage["dim"].to_pylist(), strict=True):
        if (array, dim) in seen:
            continue
        seen.add((array, dim))
        gaps = s["coverage_gaps"].filter(
            pc.and_(
                pc.equal(s["coverage_gaps"]["array"], array),
                pc.equal(s["coverage_gaps"]["dim"], dim),
            )
        )
        parts.append(f"<h3>{html.escape(array)}, dimension {dim}</h3><div class=row>")
        img = _coverage_plot(coverage, array, dim)
        parts.append(f"<img alt='coverage of {html.escape(array)}' src='{img}'>")
        parts.append(
            _table_html(gaps, ["first_chunk", "last_chunk", "start", "stop", "slots"])
            if gaps.num_rows
            else "<p>no gaps</p>"
        )
        parts.append("</div>")
    if "coordinate_gaps" in s:
        parts.append("<h2>Gaps in coordinate values</h2>")
        cg = s["coordinate_gaps"]
        parts.append(_table_html(cg) if cg.num_rows else "<p>no gaps</p>")
    per_array = s["per_array"]
    parts.append("<h2>Compression ratio per array</h2><div class=row>")
    ratios = [r if r is not None else 0.0 for r in per_array["compression_ratio"].to_pylist()]
    img = _bar_plot(per_array["array"].to_pylist(), ratios, "decoded / stored bytes")
    parts.append(f"<img alt='compression ratio' src='{img}'>")
    parts.append(
        _table_html(
            per_array,
            ["array", "dtype", "chunks", "stored_bytes", "decoded_bytes", "compression_ratio"],
        )
    )
    parts.append("</div><h2>Chunk-size distribution</h2><div class=row>")
    parts.append(f"<img alt='chunk sizes' src='{_hist_plot(s['chunk_sizes'])}'>")
    parts.append(_table_html(s["chunk_sizes"]))
    per_source = s["per_source"]
    top = per_source.slice(0, 40)
    parts.append("</div><h2>Bytes per source</h2><div class=row>")
    sizes = [float(v) for v in top["referenced_bytes"].to_pylist()]
    img = _bar_plot(top["uri"].to_pylist(), sizes, "referenced bytes")
    parts.append(f"<img alt='bytes per source' src='{img}'>")
    parts.append(
        _table_html(
            per_source, ["uri", "format", "size", "chunks", "referenced_bytes", "referenced_share"]
        )
    )
    parts.append("</div></body></html>")
    return "\n".join(parts)


def write_report(m: Manifest, path: str | os.PathLike[str]) -> None:
    """Write the report to ``path`` atomically (temporary file, then rename)."""
    write_text_atomically(Path(path), render_report(m))

"""``vzsql combine | concat | check | stats | report``: the manifest algebra on the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vzsql.cli import app, echo_written, reports_errors


@app.command()
@reports_errors
def combine(
    paths: Annotated[
        list[str], typer.Argument(help="files, globs, URLs or manifest folders (.vzm)")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="manifest folder to write")],
    concat_dim: Annotated[
        str | None, typer.Option("--concat-dim", help="dimension to concatenate along")
    ] = None,
    allow_gaps: Annotated[
        bool, typer.Option("--allow-gaps", help="accept gaps in the coordinate values")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace an existing output")
    ] = False,
) -> None:
    """Scan files (or open manifests) and combine them by their coordinates into one manifest."""
    import vzsql

    if all(Path(p).is_dir() and (Path(p) / "manifest.json").is_file() for p in paths):
        pieces = [vzsql.open_manifest(p) for p in paths]
        m = vzsql.combine(pieces, concat_dim, allow_gaps=allow_gaps)
    else:
        m = vzsql.combine(paths, concat_dim, allow_gaps=allow_gaps)
    m.save(output, overwrite=overwrite)
    echo_written(output, m)


@app.command()
@reports_errors
def check(
    manifest: Annotated[Path, typer.Argument(help="manifest folder")],
    no_stat: Annotated[
        bool, typer.Option("--no-stat", help="do not look at the source files")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print problems as JSON lines")] = False,
) -> None:
    """Check a manifest; exit 1 if any problem has severity error (missing chunks are info)."""
    import vzsql

    problems = vzsql.open_manifest(manifest).check(stat=not no_stat)
    rows = problems.to_pylist()
    for r in rows:
        if as_json:
            typer.echo(json.dumps(r))
        else:
            where = " ".join(
                x
                for x in (
                    r["array"] and f"array={r['array']}",
                    r["chunk"] is not None and f"chunk={r['chunk']}",
                    r["source"] and f"source={r['source']}",
                )
                if x
            )
            typer.echo(f"{r['severity']:5} {r['kind']}: {r['detail']} ({where})")
    errors = sum(1 for r in rows if r["severity"] == "error")
    typer.echo(f"{errors} error(s), {len(rows) - errors} note(s)", err=True)
    if errors:
        raise typer.Exit(1)


@app.command()
@reports_errors
def stats(
    manifest: Annotated[Path, typer.Argument(help="manifest folder")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Bytes, chunks and compression ratio per array and per source; gaps in coverage."""
    import vzsql

    tables = vzsql.open_manifest(manifest).stats()
    shown = ("per_array", "per_source", "coverage_gaps", "coordinate_gaps")
    if as_json:
        typer.echo(
            json.dumps(
                {k: tables[k].to_pylist() for k in shown if k in tables}, default=str, indent=2
            )
        )
        return
    for key in shown:
        if key not in tables:
            continue
        typer.echo(f"== {key} ({tables[key].num_rows} rows)")
        typer.echo(tables[key].to_pandas().to_string(max_rows=50, max_colwidth=60))


@app.command()
@reports_errors
def report(
    manifest: Annotated[Path, typer.Argument(help="manifest folder")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write")],
) -> None:
    """Write one self-contained HTML page: coverage, chunk sizes, bytes per source, ratios."""
    import vzsql

    vzsql.open_manifest(manifest).report(output)
    typer.echo(f"wrote {output}")

"""The ``vzsql`` command line: scan, sql, info (and the commands of ``vzsql/cli_*.py``).

Every command turns a ``VzsqlError`` into a one-line message and exit code 2, never a
traceback; other exit codes are command-specific (``check`` exits 1 on problems).
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from vzsql.errors import VzsqlError

app = typer.Typer(
    name="vzsql",
    help="Virtual Zarr chunk manifests as tables: scan legacy files, query with SQL, publish.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def reports_errors[F: Callable[..., Any]](func: F) -> F:
    """Turn ``VzsqlError`` into a message on stderr and exit code 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except VzsqlError as e:
            typer.echo(f"vzsql: error: {e}", err=True)
            raise typer.Exit(2) from e

    return wrapper  # type: ignore[return-value]


def echo_written(output: Path, m: Any) -> None:
    """The line a command prints after saving manifest ``m`` to ``output``."""
    info = m.info()
    typer.echo(
        f"wrote {output}: {info['sources']} sources, {info['arrays']} arrays, "
        f"{info['chunks']} chunks, {info['referenced_bytes']} referenced bytes"
    )


@app.command()
@reports_errors
def scan(
    paths: Annotated[list[str], typer.Argument(help="files, globs, file:// or s3:// URLs")],
    output: Annotated[Path, typer.Option("-o", "--output", help="manifest folder to write")],
    concat_dim: Annotated[
        str | None, typer.Option("--concat-dim", help="dimension to combine files along")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", help="parallel scanning threads (default: vzsql's choice, see README)"
        ),
    ] = None,
    processes: Annotated[bool, typer.Option("--processes", help="scan in processes")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="replace an existing output")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    on_error: Annotated[
        str, typer.Option("--on-error", help="raise: stop at the first bad file; record: list it")
    ] = "raise",
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", help="seconds per file; scans each file in a child process"),
    ] = None,
    isolate: Annotated[
        bool, typer.Option("--isolate", help="scan each file in a child process (crash-proof)")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="reuse results of unchanged files (OUTPUT.parts/)")
    ] = False,
) -> None:
    """Scan files into a manifest folder.

    Exit code 1 when files failed and were recorded (``--on-error record``; they are listed
    on stderr), 2 on errors.
    """
    from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

    from tqdm import tqdm

    import vzsql

    if on_error not in ("raise", "record"):
        raise typer.BadParameter("--on-error must be 'raise' or 'record'")
    # no executor: vzsql's own choice (threads, or reused child processes for many files)
    pool: Executor | None = (
        ProcessPoolExecutor(max_workers=workers)
        if processes
        else ThreadPoolExecutor(workers)
        if workers
        else None
    )
    bar = None if quiet else tqdm(total=0, unit="file", desc="scanning", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()

    with pool if pool is not None else contextlib.nullcontext():
        m = vzsql.scan(
            paths,
            executor=pool,
            concat_dim=concat_dim,
            progress=progress,
            on_error=on_error,  # type: ignore[arg-type]
            timeout=timeout,
            isolate=True if isolate else None,
            resume=output if resume else None,
        )
    if bar is not None:
        bar.close()
    m.save(output, overwrite=overwrite or resume)
    echo_written(output, m)
    failures = m.failures.to_pylist() if m.failures is not None else []
    if failures:
        typer.echo(f"vzsql: {len(failures)} file(s) failed:", err=True)
        for f in failures:
            typer.echo(f"  {f['uri']}: {f['kind']}: {f['error']}: {f['reason']}", err=True)
        raise typer.Exit(1)


@app.command()
@reports_errors
def sql(
    manifest: Annotated[Path, typer.Argument(help="manifest folder")],
    query: Annotated[str, typer.Argument(help="SQL over sources, arrays, grid, chunks, groups")],
    fmt: Annotated[
        str, typer.Option("--format", "-f", help="table | csv | json | parquet")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="file to write (parquet needs it)")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="bound parameter NAME=VALUE")
    ] = None,
    storage: Annotated[
        str,
        typer.Option(
            "--storage",
            help="auto | arrow | duckdb (chunk rows in DuckDB's compressed storage; "
            "auto: duckdb above 20M chunk rows)",
        ),
    ] = "auto",
    memory_limit: Annotated[
        str | None, typer.Option("--memory-limit", help="DuckDB memory limit, e.g. 4GB")
    ] = None,
) -> None:
    """Run SQL over a manifest and print (or export) the result."""
    import vzsql
    from vzsql.result_export import write_result

    if storage not in ("auto", "arrow", "duckdb"):
        raise typer.BadParameter("--storage must be auto, arrow or duckdb")
    m = vzsql.open_manifest(manifest, storage=storage, memory_limit=memory_limit)  # type: ignore[arg-type]
    params: dict[str, Any] = {}
    for item in param or []:
        name, _, value = item.partition("=")
        params[name] = value
    rel = m.sql(query, params or None)
    if fmt == "table":
        rel.show(max_rows=200, max_width=200)
        return
    write_result(rel.to_arrow_table(), fmt, output)


@app.command()
@reports_errors
def info(
    manifest: Annotated[Path, typer.Argument(help="manifest folder")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Summarise a manifest: sources, arrays, chunks, bytes."""
    import vzsql

    m = vzsql.open_manifest(manifest)
    summary = m.info()
    arrays = m.sql(
        'SELECT "array", dims, shape, chunk_shape, dtype FROM arrays ORDER BY "array"'
    ).fetchall()
    if as_json:
        summary["arrays_detail"] = [
            {"array": a, "dims": d, "shape": s, "chunk_shape": c, "dtype": t}
            for a, d, s, c, t in arrays
        ]
        typer.echo(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        typer.echo(f"{key:>17}: {value}")
    for a, d, s, c, t in arrays:
        typer.echo(f"  {a}: {t} dims={d} shape={s} chunks={c}")


# modules whose commands register on ``app`` when imported (one per area)
COMMAND_MODULES = ("vzsql.cli_algebra", "vzsql.cli_publish")


def load_commands() -> typer.Typer:
    """Import every command module present, so their ``@app.command()``s register."""
    import importlib

    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
    return app


def main() -> None:  # pragma: no cover - console entry point
    load_commands()()

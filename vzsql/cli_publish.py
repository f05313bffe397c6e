"""``vzsql export`` and ``vzsql import``: publish manifests, and bring existing references in."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vzsql.cli import app, reports_errors
from vzsql.errors import VzsqlError

TARGETS = ("icechunk", "kerchunk-json", "kerchunk-parquet", "zarr")


@app.command()
@reports_errors
def export(
    manifest: Annotated[Path, typer.Argument(help="manifest folder")],
    dest: Annotated[str, typer.Argument(help="destination path (or URL for icechunk)")],
    to: Annotated[str, typer.Option("--to", help=" | ".join(TARGETS))],
    append_dim: Annotated[
        str | None, typer.Option("--append-dim", help="icechunk: append along this dimension")
    ] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="commit message")] = None,
    branch: Annotated[str, typer.Option("--branch", help="icechunk branch")] = "main",
    tag: Annotated[str | None, typer.Option("--tag", help="icechunk: tag the commit")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace the destination")] = False,
) -> None:
    """Publish a manifest as an Icechunk commit, kerchunk JSON/Parquet refs or a Zarr copy."""
    import vzsql

    m = vzsql.open_manifest(manifest)
    if to == "icechunk":
        snap = m.to_icechunk(
            dest,
            branch=branch,
            message=message or f"vzsql export of {manifest.name}",
            append_dim=append_dim,
            tag=tag,
        )
        typer.echo(f"committed snapshot {snap} to {dest} (branch {branch})")
    elif to in ("kerchunk-json", "kerchunk-parquet"):
        m.to_kerchunk(dest, format=to.split("-")[1], overwrite=overwrite)
        typer.echo(f"wrote {to} references to {dest}")
    elif to == "zarr":
        m.to_zarr(dest, overwrite=overwrite)
        typer.echo(f"wrote a Zarr v3 copy to {dest}")
    else:
        raise VzsqlError(f"unknown export target {to!r}: use one of {', '.join(TARGETS)}")


@app.command("import")
@reports_errors
def import_(
    source: Annotated[str, typer.Argument(help="kerchunk JSON/Parquet refs or an Icechunk repo")],
    output: Annotated[Path, typer.Option("-o", "--output", help="manifest folder to write")],
    branch: Annotated[str, typer.Option("--branch", help="icechunk branch")] = "main",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace the output")] = False,
) -> None:
    """Read kerchunk references or an Icechunk repository into a manifest folder."""
    import vzsql

    if _is_icechunk_repo(source):
        m = vzsql.from_icechunk(source, branch=branch)
    else:
        m = vzsql.from_kerchunk(source)
    m.save(output, overwrite=overwrite)
    typer.echo(f"wrote {output}: {m}")


def _is_icechunk_repo(source: str) -> bool:
    p = Path(source)
    return p.is_dir() and ((p / "repo").exists() or (p / "snapshots").is_dir())

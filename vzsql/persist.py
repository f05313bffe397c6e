"""Save and load manifests: a folder of Parquet files (one per table) plus ``manifest.json``.

The header carries the format version; loading validates it and every table's schema.
Saving writes into a temporary sibling folder and renames it into place, so an
interrupted save leaves the previous manifest intact.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow.parquet as pq

from vzsql import __version__
from vzsql.errors import ExportError, ManifestFormatError
from vzsql.tables import FORMAT_VERSION, TABLE_NAMES, Tables, conform

HEADER = "manifest.json"
FORMAT_NAME = "vzsql-manifest"


def is_manifest_dir(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return (p / HEADER).is_file()


def save_tables(tables: Tables, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``tables`` to the folder ``path`` atomically (temp folder, then rename)."""
    dest = Path(path)
    if dest.exists() and not overwrite:
        raise ExportError(f"destination exists (pass overwrite=True): {dest}", source=str(dest))
    if dest.exists() and not is_manifest_dir(dest):
        raise ExportError(f"refusing to overwrite a folder that is not a manifest: {dest}")
    parent = dest.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as e:
        raise ExportError(f"cannot write manifest: {e}", source=str(dest)) from e
    try:
        counts = {}
        for name in TABLE_NAMES:
            table = getattr(tables, name)
            counts[name] = table.num_rows
            pq.write_table(table, tmp / f"{name}.parquet", compression="zstd")
        header = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "created_by": f"vzsql {__version__}",
            "rows": counts,
        }
        (tmp / HEADER).write_text(json.dumps(header, indent=2))
        if dest.exists():
            old = parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise ExportError(f"cannot write manifest: {e}", source=str(dest)) from e
        raise
    return dest


def load_tables(path: str | os.PathLike[str]) -> Tables:
    """Read a manifest folder written by ``save_tables``, validating version and schemas."""
    src = Path(path)
    header_path = src / HEADER
    if not header_path.is_file():
        raise ManifestFormatError(f"not a vzsql manifest (no {HEADER})", source=str(src))
    try:
        header = json.loads(header_path.read_text())
    except (OSError, ValueError) as e:
        raise ManifestFormatError(f"unreadable {HEADER}: {e}", source=str(src)) from e
    if header.get("format") != FORMAT_NAME:
        raise ManifestFormatError(
            f"not a vzsql manifest: {header.get('format')!r}", source=str(src)
        )
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ManifestFormatError(
            f"manifest format version {version!r} is not supported (this vzsql reads "
            f"version {FORMAT_VERSION})",
            source=str(src),
        )
    tables = {}
    for name in TABLE_NAMES:
        file = src / f"{name}.parquet"
        try:
            table = pq.read_table(file) if file.is_file() else pq.read_table(src / name)
        except (OSError, ValueError) as e:
            raise ManifestFormatError(f"table {name!r} unreadable: {e}", source=str(src)) from e
        tables[name] = conform(name, table)
    return Tables(**tables)

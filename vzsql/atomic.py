"""Write outputs so a failure leaves the destination as it was: build beside it, then rename.

Every writer of a file or folder (saved manifests, kerchunk references, Zarr copies, HTML
reports, SQL results) stages its output here. An existing destination is replaced only
with ``overwrite``; a folder only if it holds the ``marker`` file of that kind of output,
so a folder that is not a previous output is never deleted.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from vzsql.errors import ExportError


def _temporary_name(dest: Path, kind: str) -> Path:
    return dest.parent / f".{dest.name}.{kind}-{uuid.uuid4().hex[:8]}"


def _refuse_existing(dest: Path, overwrite: bool) -> None:
    if dest.exists() and not overwrite:
        raise ExportError("destination exists (pass overwrite=True)", source=str(dest))


@contextmanager
def staged_file(dest: Path, overwrite: bool) -> Iterator[IO[bytes]]:
    """A temporary file beside ``dest``, renamed onto it when the block succeeds."""
    _refuse_existing(dest, overwrite)
    if dest.is_dir():
        raise ExportError("destination is a directory", source=str(dest))
    tmp = _temporary_name(dest, "tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        f = open(tmp, "wb")  # noqa: SIM115 - closed below, renamed on success
    except OSError as e:
        raise ExportError(f"cannot write: {e.strerror or e}", source=str(dest)) from e
    try:
        with f:
            yield f
        os.replace(tmp, dest)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise ExportError(f"cannot write: {e.strerror or e}", source=str(dest)) from e
        raise


@contextmanager
def staged_dir(dest: Path, overwrite: bool, marker: str, what: str) -> Iterator[Path]:
    """A temporary folder beside ``dest``, moved onto it when the block succeeds.

    An existing ``dest`` is replaced only with ``overwrite`` and only if it holds
    ``marker`` (``what`` names that kind of output in the error). The previous folder is
    removed only once the new one is in place, and put back if the final rename fails.
    """
    _refuse_existing(dest, overwrite)
    if dest.exists() and not (dest / marker).is_file():
        raise ExportError(
            f"refusing to overwrite a path that is not a {what} (no {marker})", source=str(dest)
        )
    tmp = _temporary_name(dest, "tmp")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise ExportError(f"cannot write: {e.strerror or e}", source=str(dest)) from e
    try:
        yield tmp
        move_into_place(tmp, dest)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise ExportError(f"cannot write: {e.strerror or e}", source=str(dest)) from e
        raise


def move_into_place(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` onto ``dest``; a previous ``dest`` (folder or file) is removed only once
    the new one is in place, and put back if that rename fails."""
    if not dest.exists():
        tmp.rename(dest)
        return
    old = _temporary_name(dest, "old")
    dest.rename(old)
    try:
        tmp.rename(dest)
    except OSError:
        old.rename(dest)
        raise
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def write_text_atomically(dest: Path, text: str) -> None:
    """Replace the file ``dest`` with ``text`` (temporary file, then rename)."""
    with staged_file(dest, overwrite=True) as f:
        f.write(text.encode("utf-8"))

"""Resumable scans: a journal of per-file results beside the manifest, reused when still valid.

A scan of 100,000 files that dies at file 60,000 (or is run again next month, when 200
files changed and 500 were added) should not read 60,000 files again. A manifest alone
cannot give back one file's scan result (combining files shifts chunk indices and merges
arrays), so ``scan(..., resume=target)`` keeps a journal: one file per scanned source in
``<target>.parts/`` (``ab/abcdef....vzp``: the five tables as Arrow IPC, written to a
temporary name and renamed, so a killed scan leaves only whole parts). Every part is
written as soon as its file is scanned.

On the next ``scan(..., resume=target)`` a file's part is reused when

- the part exists and every source it records (the file itself, HDF5 external raw files)
  still has the recorded size, mtime and etag, and
- if ``target`` is a saved manifest, the file is among its sources with that same size,
  mtime and etag (the previous manifest vouches for it);

every other file is scanned again. The combined result equals a full scan's (the same
parts, combined the same way); reused parts keep their original ``scanned_at``.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vzsql.errors import ManifestFormatError, SourceError
from vzsql.isolation import ScanOutcome, pack_tables, unpack_tables
from vzsql.sources import stat_source
from vzsql.tables import Tables

JOURNAL_SUFFIX = ".parts"
PART_SUFFIX = ".vzp"

Fingerprint = tuple[int | None, int | None, str | None]  # size, mtime (ns), etag


def _fingerprints(sources: Any) -> dict[str, Fingerprint]:
    cols = [sources[c].to_pylist() for c in ("uri", "size", "mtime", "etag")]
    return {u: (s, m, e) for u, s, m, e in zip(*cols, strict=True)}


@dataclass
class ScanJournal:
    """Per-file scan results kept in ``folder``; ``manifest`` is the previous result, if any."""

    folder: Path
    manifest: Path | None = None

    @classmethod
    def for_target(cls, target: str | os.PathLike[str]) -> ScanJournal:
        """The journal of a manifest folder (``x.vzm`` -> ``x.vzm.parts``), or a journal folder."""
        p = Path(target).expanduser().resolve()
        if p.name.endswith(JOURNAL_SUFFIX):
            return cls(p, None)
        return cls(p.with_name(p.name + JOURNAL_SUFFIX), p)

    def part_path(self, uri: str) -> Path:
        digest = hashlib.sha1(uri.encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest}{PART_SUFFIX}"

    def record(self, outcome: ScanOutcome) -> None:
        """Keep the tables of a scanned file (atomically: temporary name, then rename)."""
        if outcome.tables is None:
            return
        path = self.part_path(outcome.uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(pack_tables(outcome.tables))
        os.replace(tmp, path)

    def load(self, uri: str) -> Tables | None:
        path = self.part_path(uri)
        try:
            return unpack_tables(path.read_bytes())
        except Exception:  # missing, or damaged: rescanned, never trusted
            return None

    def _vouched(self) -> dict[str, Fingerprint] | None:
        """Fingerprints of the previous manifest's sources (None when there is none)."""
        if self.manifest is None or not (self.manifest / "manifest.json").is_file():
            return None
        try:
            return _fingerprints(pq.read_table(self.manifest / "sources.parquet"))
        except (OSError, ValueError, KeyError) as e:
            raise ManifestFormatError(
                f"cannot resume: sources of the previous manifest unreadable: {e}",
                source=str(self.manifest),
            ) from e

    def reusable(
        self, uris: list[str], storage_options: dict[str, Any] | None = None
    ) -> dict[str, Tables]:
        """The parts of ``uris`` that are still valid (see the module doc), by URI."""
        vouched = self._vouched()
        candidates = [u for u in uris if self.part_path(u).is_file()]
        if vouched is not None:
            candidates = [u for u in candidates if u in vouched]

        def check(uri: str) -> tuple[str, Tables | None]:
            part = self.load(uri)
            if part is None:
                return uri, None
            recorded = _fingerprints(part.sources)
            if vouched is not None and vouched.get(uri) != recorded.get(uri):
                return uri, None
            for src, fp in recorded.items():
                try:
                    st = stat_source(src, storage_options)
                except SourceError:
                    return uri, None
                if (st.size, st.mtime_ns, st.etag) != fp:
                    return uri, None
            return uri, part

        if not candidates:
            return {}
        with ThreadPoolExecutor(max_workers=min(16, len(candidates))) as pool:
            found = dict(pool.map(check, candidates))
        return {u: t for u, t in found.items() if t is not None}

"""kerchunk export of a 1M-reference manifest: vzsql vs VirtualiZarr 2.8, in the same run.

The manifest is synthetic and built vectorised: one float32 array of shape (10000, 1000, 1000)
in chunks of (1, 100, 100) -> 10000 x 10 x 10 = 1,000,000 references spread over 100 source
URLs. VirtualiZarr gets the same references as a ``ChunkManifest`` built from numpy arrays
inside a ``ManifestArray``-backed Dataset and writes with ``.vz.to_kerchunk``.

    .venv/bin/python benchmarks/bench_kerchunk_export.py [--nt 10000] [--repeat 1]

Prints each writer's time (best of ``--repeat``) and vzsql's speed-up; the target is >= 10x
for both formats.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import best_of
from benchmarks.synthetic import one_array_dataset, one_array_manifest
from vzsql.manifest import Manifest


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nt", type=int, default=10_000, help="chunks along time (x100 refs)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    t0 = time.perf_counter()
    tables, refs = one_array_manifest(args.nt)
    m = Manifest(tables)
    print(f"synthetic manifest: {tables.chunks.num_rows:,} references "
          f"({time.perf_counter() - t0:.2f} s to build)")  # fmt: skip
    ds = one_array_dataset(refs)
    root = Path(tempfile.mkdtemp(prefix="bench_kerchunk_"))
    try:
        for fmt, suffix in (("json", "json"), ("parquet", "parq")):
            ours, theirs = root / f"vzsql.{suffix}", root / f"vz.{suffix}"
            t_ours, _ = best_of(
                args.repeat, partial(m.to_kerchunk, ours, format=fmt), partial(remove, ours)
            )
            t_vz, _ = best_of(
                args.repeat,
                partial(ds.vz.to_kerchunk, str(theirs), format=fmt),
                partial(remove, theirs),
            )
            print(
                f"kerchunk {fmt:8s} vzsql {t_ours:7.3f} s   VirtualiZarr {t_vz:7.3f} s   "
                f"speed-up {t_vz / t_ours:5.1f}x (target >= 10x)"
            )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

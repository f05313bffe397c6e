"""kerchunk export of a 1M-reference manifest: vzsql vs VirtualiZarr 2.8, in the same run.

The manifest is synthetic and built vectorised: one float32 array of shape (10000, 1000, 1000)
in chunks of (1, 100, 100) -> 10000 x 10 x 10 = 1,000,000 references spread over 100 source
URLs. VirtualiZarr gets the same references as a ``ChunkManifest`` built from numpy arrays
inside a ``ManifestArray``-backed Dataset and writes with ``.vz.to_kerchunk``.

    .venv/bin/python benchmarks/bench_kerchunk_export.py [--refs-per-dim-time 10000] [--repeat 1]

Prints each writer's time (best of ``--repeat``) and vzsql's speed-up; the target is >= 10x
for both formats.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa

from vzsql.manifest import Manifest
from vzsql.tables import Tables

CHUNK = (1, 100, 100)
N_FILES = 100
CODECS = [
    {"name": "bytes", "configuration": {"endian": "little"}},
    {"name": "numcodecs.zlib", "configuration": {"level": 4}},
]


def synthetic(nt: int) -> tuple[Tables, dict[str, np.ndarray]]:
    """The manifest tables and the same references as numpy arrays (C order of chunk index)."""
    grid_shape = (nt, 10, 10)
    n = int(np.prod(grid_shape))
    rng = np.random.default_rng(0)
    t, y, x = (a.ravel() for a in np.indices(grid_shape, dtype=np.int32))
    per_file = max(1, nt // N_FILES)
    source_id = (t // per_file).astype(np.int32)
    lengths = rng.integers(20_000, 40_000, n, dtype=np.int64)
    # chunks laid out one after another inside each file
    offsets = np.cumsum(lengths) - lengths
    first = np.searchsorted(source_id, np.arange(source_id.max() + 1))
    offsets = offsets - offsets[first][source_id] + 4096
    uris = [f"s3://bucket/era/file_{i:04d}.nc" for i in range(int(source_id.max()) + 1)]
    index = pa.ListArray.from_arrays(
        pa.array(np.arange(0, 3 * n + 1, 3, dtype=np.int32)),
        pa.array(np.stack([t, y, x], axis=1).ravel()),
    )
    chunks = pa.table(
        {
            "array": pa.array(np.full(n, "data", dtype=object), pa.string()),
            "index": index,
            "source_id": source_id,
            "offset": offsets,
            "length": lengths,
            "data": pa.nulls(n, pa.binary()),
        }
    )
    shape = [nt, 1000, 1000]
    grid_rows = [
        pa.table(
            {
                "array": ["data"] * k,
                "dim": np.full(k, d, np.int16),
                "chunk": np.arange(k, dtype=np.int32),
                "start": np.arange(k, dtype=np.int64) * CHUNK[d],
                "length": np.full(k, CHUNK[d], np.int64),
            }
        )
        for d, k in enumerate(grid_shape)
    ]
    tables = Tables.from_mapping(
        {
            "sources": pa.table(
                {
                    "source_id": np.arange(len(uris), dtype=np.int32),
                    "uri": uris,
                    "format": ["hdf5"] * len(uris),
                }
            ),
            "arrays": pa.Table.from_pylist(
                [
                    {
                        "array": "data",
                        "dims": ["time", "y", "x"],
                        "shape": shape,
                        "chunk_shape": list(CHUNK),
                        "dtype": "float32",
                        "fill_value": '"NaN"',
                        "codecs": json.dumps(CODECS),
                        "attrs": json.dumps({"units": "K"}),
                        "attr_dtypes": "{}",
                    }
                ]
            ),
            "grid": pa.concat_tables(grid_rows),
            "chunks": chunks,
            "groups": pa.Table.from_pylist([{"group": "", "attrs": "{}"}]),
        }
    )
    paths = np.asarray(uris, dtype=np.dtypes.StringDType())[source_id].reshape(grid_shape)
    arrays = {
        "paths": paths,
        "offsets": offsets.astype(np.uint64).reshape(grid_shape),
        "lengths": lengths.astype(np.uint64).reshape(grid_shape),
    }
    return tables, arrays


def virtualizarr_dataset(nt: int, arrays: dict[str, np.ndarray]) -> object:
    import xarray as xr
    from virtualizarr.manifests import ChunkManifest, ManifestArray
    from virtualizarr.manifests.utils import create_v3_array_metadata

    manifest = ChunkManifest.from_arrays(
        paths=arrays["paths"],  # type: ignore[arg-type]
        offsets=arrays["offsets"],
        lengths=arrays["lengths"],
    )
    meta = create_v3_array_metadata(
        shape=(nt, 1000, 1000),
        data_type=np.dtype("float32"),
        chunk_shape=CHUNK,
        fill_value=np.float32("nan"),
        codecs=CODECS[1:],
        attributes={"units": "K"},
        dimension_names=("time", "y", "x"),
    )
    marr = ManifestArray(metadata=meta, chunkmanifest=manifest)
    return xr.Dataset({"data": xr.Variable(("time", "y", "x"), marr)})


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def best_of(repeat: int, fn: Callable[[], object], cleanup: Callable[[], None]) -> float:
    times = []
    for _ in range(repeat):
        cleanup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nt", type=int, default=10_000, help="chunks along time (x100 refs)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    t0 = time.perf_counter()
    tables, arrays = synthetic(args.nt)
    m = Manifest(tables)
    print(f"synthetic manifest: {tables.chunks.num_rows:,} references "
          f"({time.perf_counter() - t0:.2f} s to build)")  # fmt: skip
    ds = virtualizarr_dataset(args.nt, arrays)
    root = Path(tempfile.mkdtemp(prefix="bench_kerchunk_"))
    try:
        for fmt, suffix in (("json", "json"), ("parquet", "parq")):
            ours, theirs = root / f"vzsql.{suffix}", root / f"vz.{suffix}"
            t_ours = best_of(
                args.repeat, partial(m.to_kerchunk, ours, format=fmt), partial(remove, ours)
            )
            t_vz = best_of(
                args.repeat,
                partial(ds.vz.to_kerchunk, str(theirs), format=fmt),  # type: ignore[attr-defined]
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

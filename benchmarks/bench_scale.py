"""Scale suite: synthetic manifests of 1M, 10M and 100M references, vzsql vs VirtualiZarr.

    .venv/bin/python benchmarks/bench_scale.py                  # 1e6, 1e7, 1e8 references
    .venv/bin/python benchmarks/bench_scale.py --sizes 1e6,1e7  # quicker

Steps (each timed, with the RSS it added at its peak, sampled by ``vzsql.memory.PeakRSS``):
build (numpy -> Arrow tables), save (Parquet folder), load, two analytics queries (bytes
per array; the ten sources holding most bytes), concat (the manifest with itself along
time), check (table checks), kerchunk Parquet export and Icechunk export. The same steps
run with VirtualiZarr where it has them (ChunkManifest from numpy arrays, numpy for the
"queries", xarray.concat, ``.vz.to_kerchunk(format="parquet")``, ``.vz.to_icechunk``).

Memory per reference is reported three ways for vzsql: the Arrow buffers of the five
tables in the contract schema, a compact layout of the chunks table (dictionary
``array``, ``fixed_size_list<int32>`` index, int32 length, no ``data`` column), and
DuckDB's own compressed in-memory table; with the manifest held in DuckDB storage the
queries, check, isel, save and both exports run again (they read the rows from DuckDB, a
batch at a time). Each (tool, size) runs in its own process, so
peaks do not leak between them. A step that fails or is not available is reported with
its reason, not hidden.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from vzsql.memory import PeakRSS, max_rss_bytes  # noqa: E402

TOOLS = ("vzsql", "virtualizarr")
HEAVY_MAX = [1e8]  # set from --heavy-max in a worker
COMMIT_REFS: list[int | None] = [None]  # set from --icechunk-commit-refs in a worker
# references per Icechunk commit above AUTO_SPLIT_ABOVE references, unless given: Icechunk's
# session holds ~500 B per reference of a commit (100M in one 50M commit: ~25 GB)
AUTO_COMMIT_REFS = 5_000_000
AUTO_SPLIT_ABOVE = 20_000_000


def commit_refs(n: int) -> dict[str, int]:
    """``max_refs_per_commit`` for an Icechunk export of ``n`` references (empty: vzsql's)."""
    per = COMMIT_REFS[0] or (AUTO_COMMIT_REFS if n > AUTO_SPLIT_ABOVE else None)
    return {"max_refs_per_commit": per} if per else {}


def heavy(name: str, n: int, per_ref: int) -> bool:
    """False (and a reported skip) when a memory-hungry step would not fit at size ``n``."""
    if n <= HEAVY_MAX[0]:
        return True
    emit(
        step=name,
        n=n,
        error=f"skipped above --heavy-max: ~{per_ref} B/ref peak measured at "
        f"1e7 would need ~{n * per_ref / 2**30:.0f} GB",
    )
    return False


def emit(**row: Any) -> None:
    print("RESULT " + json.dumps(row), flush=True)


def step(name: str, n: int, fn: Callable[[], Any], **extra: Any) -> Any:
    """Run ``fn`` as one measured step; print its figures; return its value (None if failed)."""
    gc.collect()
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # so freed Arrow memory does not hide a peak
    try:
        with PeakRSS() as p:
            value = fn()
    except Exception as e:
        emit(step=name, n=n, error=f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")
        return None
    emit(
        step=name,
        n=n,
        seconds=round(p.seconds, 3),
        added_mb=round(p.added / 2**20, 1),
        peak_mb=round(p.peak / 2**20, 1),
        **extra,
    )
    return value


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- vzsql ------------------------------------------------------------------------------------
def proposal_parquet_bytes(chunks: Any, path: Path) -> float:
    """B/ref of the chunks table written as proposed: index split into int32 columns,
    rows sorted by (source, offset), DELTA_BINARY_PACKED integers, zstd."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ndim = 3
    flat = pc.list_flatten(chunks["index"]).to_numpy().reshape(-1, ndim)
    cols = {"array": chunks["array"].dictionary_encode()}
    cols.update({f"i{d}": pa.array(flat[:, d]) for d in range(ndim)})
    for c in ("source_id", "offset", "length"):
        cols[c] = chunks[c]
    table = pa.table(cols).sort_by([("source_id", "ascending"), ("offset", "ascending")])
    ints = [c for c in table.column_names if c != "array"]
    pq.write_table(
        table,
        path,
        compression="zstd",
        use_dictionary=["array"],
        column_encoding=dict.fromkeys(ints, "DELTA_BINARY_PACKED"),
    )
    return path.stat().st_size / chunks.num_rows


def tenth(m: Any) -> Any:
    """``m.isel`` of the first tenth of its time axis."""
    steps = m.table("arrays")["shape"][0].as_py()[0]
    return m.isel(time=slice(0, max(1, steps // 10)))


def run_vzsql(n: int, work: Path) -> None:
    import duckdb
    import pyarrow.parquet as pq

    import vzsql
    from benchmarks.synthetic import chunk_columns, compact_chunks, synthetic_tables

    holder: dict[str, Any] = {}

    def build() -> None:
        holder["m"] = vzsql.Manifest(synthetic_tables(n))

    step("build", n, build)
    refs = holder["m"].tables.chunks.num_rows
    arrow = sum(t.nbytes for t in holder["m"].tables.as_dict().values())
    emit(
        step="memory: Arrow tables (contract schema)",
        n=n,
        bytes_per_ref=round(arrow / refs, 2),
        chunks_bytes_per_ref=round(holder["m"].tables.chunks.nbytes / refs, 2),
    )
    for name in holder["m"].tables.chunks.column_names:
        emit(
            step=f"memory: chunks.{name}",
            n=n,
            bytes_per_ref=round(holder["m"].tables.chunks[name].nbytes / refs, 2),
        )

    b = step(
        "compact chunks layout (proposal)",
        n,
        lambda: compact_chunks(chunk_columns(n)).nbytes / refs,
    )
    if b is not None:
        emit(step="memory: compact chunks layout (proposal)", n=n, bytes_per_ref=round(b, 2))

    def duck_file() -> float:
        con = duckdb.connect(str(work / "chunks.duckdb"))
        con.register("chunks_arrow", holder["m"].tables.chunks)
        con.execute("CREATE TABLE chunks AS SELECT * EXCLUDE (data) FROM chunks_arrow")
        con.execute("CHECKPOINT")
        con.close()
        size = disk_bytes(work / "chunks.duckdb") / refs
        (work / "chunks.duckdb").unlink()
        return size

    b = step("DuckDB database file (chunks table)", n, duck_file)
    if b is not None:
        emit(step="disk: DuckDB database file (chunks)", n=n, bytes_per_ref=round(b, 3))

    dest = work / "m.vzm"
    step("save", n, lambda: holder["m"].save(dest))
    emit(step="disk: Parquet folder", n=n, bytes_per_ref=round(disk_bytes(dest) / refs, 3))
    per_column: dict[str, int] = {}
    for file in sorted((dest / "chunks").glob("*.parquet")):  # format v2: chunks/part-*.parquet
        meta = pq.ParquetFile(file).metadata
        for g in range(meta.num_row_groups):
            for c in range(meta.num_columns):
                col = meta.row_group(g).column(c)
                key = col.path_in_schema
                per_column[key] = per_column.get(key, 0) + col.total_compressed_size
    for name, size in per_column.items():
        emit(step=f"disk: chunks.{name}", n=n, bytes_per_ref=round(size / refs, 3))
    b = step(
        "chunks Parquet, proposed layout",
        n,
        lambda: proposal_parquet_bytes(holder["m"].tables.chunks, work / "p.parquet"),
    )
    if b is not None:
        emit(step="disk: chunks Parquet, proposed layout", n=n, bytes_per_ref=round(b, 3))
    holder.clear()

    holder["m"] = step("load", n, lambda: vzsql.open_manifest(dest, storage="arrow"))
    if holder["m"] is None:
        return
    per_array = 'SELECT "array", count(*) AS n, sum(length) AS bytes FROM chunks GROUP BY 1'
    per_source = (
        "SELECT s.uri, sum(c.length) AS bytes FROM chunks c JOIN sources s USING (source_id) "
        "GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
    )
    step("query: bytes per array", n, lambda: holder["m"].sql(per_array).fetchall())
    step("query: top 10 sources by bytes", n, lambda: holder["m"].sql(per_source).fetchall())
    step("check (tables, no stat)", n, lambda: holder["m"].check(stat=False).num_rows)
    step("isel: a tenth of time", n, lambda: tenth(holder["m"]).info()["chunks"])
    step(
        "export: kerchunk Parquet",
        n,
        lambda: holder["m"].to_kerchunk(work / "k.parq", format="parquet"),
    )
    if (work / "k.parq").exists():
        emit(
            step="disk: kerchunk Parquet",
            n=n,
            bytes_per_ref=round(disk_bytes(work / "k.parq") / refs, 3),
        )
    if heavy("export: Icechunk", n, 510):
        step(
            "export: Icechunk",
            n,
            lambda: holder["m"].to_icechunk(str(work / "ic"), checksum="none", **commit_refs(n)),
            **commit_refs(n),
        )
    holder.clear()

    # the same manifest with its chunk rows in DuckDB's compressed storage (vzsql.resident)
    holder["m"] = step(
        "load (storage=duckdb)", n, lambda: vzsql.open_manifest(dest, storage="duckdb")
    )
    if holder["m"] is not None:
        emit(
            step="memory: DuckDB storage (held manifest)",
            n=n,
            bytes_per_ref=round(holder["m"].memory_bytes() / refs, 2),
        )
        step("query: bytes per array (duckdb)", n, lambda: holder["m"].sql(per_array).fetchall())
        step(
            "query: top 10 sources by bytes (duckdb)",
            n,
            lambda: holder["m"].sql(per_source).fetchall(),
        )
        step("check (duckdb storage, no stat)", n, lambda: holder["m"].check(stat=False).num_rows)
        step(
            "isel: a tenth of time (duckdb storage)", n, lambda: tenth(holder["m"]).info()["chunks"]
        )
        step("save (duckdb storage)", n, lambda: holder["m"].save(work / "m2.vzm"))
        step(
            "export: kerchunk Parquet (duckdb storage)",
            n,
            lambda: holder["m"].to_kerchunk(work / "k2.parq", format="parquet"),
        )
        if heavy("export: Icechunk (duckdb storage)", n, 510):
            step(
                "export: Icechunk (duckdb storage)",
                n,
                lambda: holder["m"].to_icechunk(
                    str(work / "ic2"), checksum="none", **commit_refs(n)
                ),
                **commit_refs(n),
            )
    holder.clear()

    holder["halves"] = [vzsql.Manifest(synthetic_tables(n // 2, tag=t)) for t in "ab"]

    def concat() -> int:
        from vzsql.ops.concat import concat as vconcat

        out = vconcat(holder["halves"], "time", order_by_coords=False)
        return int(out.tables.chunks.num_rows)

    step("concat (two halves along time)", n, concat)


# -- VirtualiZarr -----------------------------------------------------------------------------
def vz_dataset(k: int) -> Any:
    """An xarray Dataset of ManifestArrays holding the synthetic references."""
    import numpy as np
    import xarray as xr
    from virtualizarr.manifests import ManifestArray
    from virtualizarr.manifests.utils import create_v3_array_metadata

    from benchmarks.synthetic import TILE, layout, virtualizarr_manifests

    lay = layout(k)
    shape = (lay["steps"], lay["tiles"] * TILE, lay["tiles"] * TILE)
    variables = {}
    for name, cm in virtualizarr_manifests(k).items():
        meta = create_v3_array_metadata(
            shape=shape,
            data_type=np.dtype("float32"),
            chunk_shape=(1, TILE, TILE),
            codecs=[
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "numcodecs.zlib", "configuration": {"level": 4}},
            ],
            fill_value=np.float32("nan"),
            dimension_names=("time", "lat", "lon"),
        )
        variables[name] = xr.Variable(
            ("time", "lat", "lon"), ManifestArray(metadata=meta, chunkmanifest=cm)
        )
    return xr.Dataset(variables)


def run_virtualizarr(n: int, work: Path) -> None:
    import numpy as np
    import xarray as xr

    from benchmarks.synthetic import layout

    refs = layout(n)["refs"]
    holder: dict[str, Any] = {}
    before = max_rss_bytes()
    step("build", n, lambda: holder.__setitem__("ds", vz_dataset(n)))
    if "ds" not in holder:
        return
    emit(
        step="memory: RSS added by build",
        n=n,
        bytes_per_ref=round((max_rss_bytes() - before) / refs, 2),
    )

    def per_array() -> dict[str, int]:
        return {k: int(v.data.manifest._lengths.sum()) for k, v in holder["ds"].variables.items()}

    def per_source() -> Any:
        # np.unique over StringDType paths died with SIGSEGV at 1e7 refs: group with pandas
        import pandas as pd

        manifests = [v.data.manifest for v in holder["ds"].variables.values()]
        paths = np.concatenate([m._paths.ravel().astype(object) for m in manifests])
        lengths = np.concatenate([m._lengths.ravel() for m in manifests])
        return pd.Series(lengths).groupby(paths).sum().nlargest(10)

    step("query: bytes per array", n, per_array)
    step("query: top 10 sources by bytes", n, per_source)
    step(
        "export: kerchunk Parquet",
        n,
        lambda: holder["ds"].vz.to_kerchunk(str(work / "k.parq"), format="parquet"),
    )
    if (work / "k.parq").exists():
        emit(
            step="disk: kerchunk Parquet",
            n=n,
            bytes_per_ref=round(disk_bytes(work / "k.parq") / refs, 3),
        )

    def icechunk() -> None:
        import icechunk

        config = icechunk.RepositoryConfig.default()
        config.set_virtual_chunk_container(
            icechunk.VirtualChunkContainer("s3://archive/", icechunk.s3_store(region="us-east-1"))
        )
        storage = icechunk.local_filesystem_storage(str(work / "ic"))
        repo = icechunk.Repository.create(storage, config)
        session = repo.writable_session("main")
        holder["ds"].vz.to_icechunk(session.store)
        session.commit("bench")

    step("export: Icechunk", n, icechunk)
    holder.clear()
    holder["halves"] = [vz_dataset(n // 2), vz_dataset(n // 2)]
    step(
        "concat (two halves along time)",
        n,
        lambda: xr.concat(holder["halves"], dim="time", coords="minimal", compat="override"),
    )


# -- driver -----------------------------------------------------------------------------------
def worker(tool: str, n: int, work: Path) -> None:
    {"vzsql": run_vzsql, "virtualizarr": run_virtualizarr}[tool](n, work)


def fmt_row(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    if "error" in r:
        return "n/a (" + r["error"][:60] + ")"
    if "bytes_per_ref" in r:
        return f"{r['bytes_per_ref']} B/ref"
    return f"{r['seconds']:.2f} s, +{r['added_mb']:.0f} MB"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e6,1e7,1e8", help="comma-separated reference counts")
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per tool and size")
    ap.add_argument(
        "--vz-max",
        type=float,
        default=1e7,
        help="largest size run with VirtualiZarr (~160 B/ref: 1e8 needs ~16 GB + "
        "~1 h of kerchunk export on this machine)",
    )
    ap.add_argument(
        "--heavy-max",
        type=float,
        default=1e8,
        help="largest size for vzsql's Icechunk export: Icechunk's session holds ~500 B "
        "per reference of a commit (1e8 in commits of 5e6, see --icechunk-commit-refs: "
        "+8.3 GB)",
    )
    ap.add_argument(
        "--icechunk-commit-refs",
        type=float,
        default=0,
        help="references per Icechunk commit (default: vzsql's, Icechunk's limit of 50M, "
        "up to 2e7 references, 5e6 above); smaller commits bound Icechunk's session memory",
    )
    ap.add_argument("--worker", nargs=2, metavar=("TOOL", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        HEAVY_MAX[0] = args.heavy_max
        COMMIT_REFS[0] = int(args.icechunk_commit_refs) or None
        worker(args.worker[0], int(float(args.worker[1])), args.work)
        return 0
    sizes = [int(float(s)) for s in args.sizes.split(",") if s]
    tools = [t for t in args.tools.split(",") if t]
    results: dict[tuple[str, int, str], dict[str, Any]] = {}
    order: list[str] = []
    for n in sizes:
        for tool in tools:
            if tool == "virtualizarr" and n > args.vz_max:
                print(
                    f"{tool:>12} {n:>11,} not run: above --vz-max {args.vz_max:g} "
                    f"(estimated {n * 160 / 2**30:.0f} GB for the references alone)"
                )
                continue
            work = Path(tempfile.mkdtemp(prefix=f"vzsql-scale-{tool}-"))
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        tool,
                        str(n),
                        "--work",
                        str(work),
                        "--heavy-max",
                        str(args.heavy_max),
                        "--icechunk-commit-refs",
                        str(args.icechunk_commit_refs),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=args.timeout,
                    cwd=HERE.parent,
                )
                out, err, rc = proc.stdout, proc.stderr, proc.returncode
            except subprocess.TimeoutExpired as e:
                out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
                err, rc = f"timed out after {args.timeout:g} s", -1
            finally:
                shutil.rmtree(work, ignore_errors=True)
            for line in out.splitlines():
                if line.startswith("RESULT "):
                    r = json.loads(line[7:])
                    results[(tool, n, r["step"])] = r
                    if r["step"] not in order:
                        order.append(r["step"])
                    print(f"{tool:>12} {n:>11,} {r['step']:<42} {fmt_row(r)}", flush=True)
            if rc != 0:
                tail = err.strip().splitlines()[-1:] or [""]
                print(f"{tool:>12} {n:>11,} worker exit {rc}: {tail[0][:200]}", flush=True)
            print(f"{tool:>12} {n:>11,} total {time.perf_counter() - t0:.1f} s", flush=True)
    print("\nsummary (vzsql | VirtualiZarr | time ratio VZ/vzsql, memory ratio VZ/vzsql)")
    for n in sizes:
        print(f"\n{n:,} references")
        for s in order:
            a, b = results.get(("vzsql", n, s)), results.get(("virtualizarr", n, s))
            ratio = ""
            if a and b and "seconds" in a and "seconds" in b and a["seconds"] > 0:
                ratio = f"  x{b['seconds'] / a['seconds']:.1f} time"
                if a["added_mb"] >= 8:
                    ratio += f", x{b['added_mb'] / a['added_mb']:.1f} memory"
            print(f"  {s:<42} {fmt_row(a):<34} {fmt_row(b):<34}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

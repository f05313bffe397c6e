"""Small real GRIB files written with ecCodes from its bundled samples, for scanner tests.

``Field`` describes one message (sample, keys, values, packing); ``encode`` turns it into
message bytes with ecCodes; ``write_grib`` writes messages with optional junk, padding and
WMO bulletin headers around them and returns the path and each message's byte offset.
``materialise_memory`` / ``materialise_dir`` copy a scan's tables into a plain Zarr v3 store
(zarr.json documents from ``vzsql.zarr_meta`` + each chunk's bytes) so zarr/xarray can read
it without the manifest store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import eccodes
import numpy as np
from zarr.core.buffer import default_buffer_prototype
from zarr.storage import MemoryStore

from vzsql import zarr_meta
from vzsql.sources import local_path
from vzsql.tables import Tables

PACKINGS_GRIB2 = (
    "grid_simple",
    "grid_complex",
    "grid_complex_spatial_differencing",
    "grid_jpeg",
    "grid_ccsds",
    "grid_png",
    "grid_ieee",
    "grid_second_order",
)
PACKINGS_GRIB1 = ("grid_simple", "grid_ieee", "grid_second_order")
WMO_HEADER = b"\x01\r\r\n123\r\r\nHTXA50 KWBC 010000\r\r\n"
WMO_TRAILER = b"\r\r\n\x03"


@dataclass
class Field:
    """One GRIB message to write: sample name, keys to set (in order), values, packing."""

    sample: str = "regular_ll_pl_grib2"
    keys: dict[str, Any] = field(default_factory=dict)
    values: np.ndarray | None = None  # None: seeded random values of the grid's size
    packing: str | None = None
    missing_every: int = 0  # > 0: every n-th point is missing (bitmap)
    seed: int = 0


def encode(f: Field) -> bytes:
    """The message bytes of ``f`` written by ecCodes."""
    h = eccodes.codes_grib_new_from_samples(f.sample)
    try:
        for k, v in f.keys.items():
            if isinstance(v, str):
                eccodes.codes_set_string(h, k, v)
            else:
                eccodes.codes_set(h, k, v)
        n = int(eccodes.codes_get(h, "numberOfPoints"))
        if f.packing:
            # the bundled libpng fails on noisy 16-bit fields ("Failed to write PNG data")
            eccodes.codes_set(h, "bitsPerValue", 12 if f.packing == "grid_png" else 16)
            eccodes.codes_set_string(h, "packingType", f.packing)
        values = f.values
        if values is None:
            rng = np.random.default_rng(f.seed)
            values = 250.0 + 40.0 * rng.random(n)
        values = np.asarray(values, dtype=np.float64).copy()
        if f.missing_every:
            eccodes.codes_set(h, "bitmapPresent", 1)
            missing = float(eccodes.codes_get(h, "missingValue"))
            values[:: f.missing_every] = missing
        eccodes.codes_set_values(h, values)
        return bytes(eccodes.codes_get_message(h))
    finally:
        eccodes.codes_release(h)


def multi_field_message(fields: Sequence[Field]) -> bytes:
    """One GRIB2 message holding several fields (sections 4-7 repeated) via ecCodes multi."""
    import os
    import tempfile

    mh = eccodes.codes_grib_multi_new()
    try:
        for f in fields:
            h = eccodes.codes_new_from_message(encode(f))
            eccodes.codes_grib_multi_append(h, 4, mh)
            eccodes.codes_release(h)
        fd, tmp = tempfile.mkstemp(suffix=".grib2")
        try:
            with os.fdopen(fd, "wb") as out:
                eccodes.codes_grib_multi_write(mh, out)
            return Path(tmp).read_bytes()
        finally:
            os.unlink(tmp)
    finally:
        eccodes.codes_grib_multi_release(mh)


def write_grib(
    path: Path,
    messages: Sequence[bytes | Field],
    *,
    before: bytes = b"",
    between: bytes | Sequence[bytes] = b"",
    after: bytes = b"",
    wmo: bool = False,
) -> tuple[Path, list[int]]:
    """Write messages (with junk/padding/WMO headers) and return the path and their offsets."""
    offsets: list[int] = []
    buf = bytearray(before)
    for i, m in enumerate(messages):
        raw = encode(m) if isinstance(m, Field) else m
        if wmo:
            buf += WMO_HEADER
        offsets.append(len(buf))
        buf += raw
        if wmo:
            buf += WMO_TRAILER
        if i < len(messages) - 1:
            buf += between if isinstance(between, bytes) else between[i % len(between)]
    buf += after
    path.write_bytes(bytes(buf))
    return path, offsets


def grid_fields(
    *,
    sample: str = "regular_ll_pl_grib2",
    names: Sequence[str] = ("t", "u"),
    levels: Sequence[int] = (850, 500),
    steps: Sequence[int] = (0, 6),
    numbers: Sequence[int] | None = None,
    packing: str | None = None,
    missing_every: int = 0,
    extra: dict[str, Any] | None = None,
) -> list[Field]:
    """A hypercube of fields: names x levels x steps (x ensemble numbers)."""
    out: list[Field] = []
    seed = 0
    for name in names:
        for level in levels:
            for step in steps:
                for number in numbers if numbers is not None else [None]:
                    keys: dict[str, Any] = dict(extra or {})
                    if number is not None:
                        if "grib2" in sample:
                            keys["productDefinitionTemplateNumber"] = 1
                        else:
                            keys.update(setLocalDefinition=1, localDefinitionNumber=1)
                        keys["number"] = number
                    keys.update(shortName=name, level=level, step=step)
                    seed += 1
                    out.append(
                        Field(sample, keys, packing=packing, missing_every=missing_every, seed=seed)
                    )
    return out


def chunk_payloads(tables: Tables) -> dict[str, bytes]:
    """Store key -> encoded chunk bytes (inline data or the referenced file range)."""
    uris = dict(
        zip(
            tables.sources.column("source_id").to_pylist(),
            tables.sources.column("uri").to_pylist(),
            strict=True,
        )
    )
    files: dict[int, bytes] = {}
    out: dict[str, bytes] = {}
    for row in tables.chunks.to_pylist():
        key = f"{row['array']}/{zarr_meta.chunk_key(row['index'])}"
        if row["data"] is not None:
            out[key] = row["data"]
            continue
        sid = row["source_id"]
        if sid not in files:
            files[sid] = Path(local_path(uris[sid]) or "").read_bytes()
        out[key] = files[sid][row["offset"] : row["offset"] + row["length"]]
    return out


def materialise_memory(tables: Tables) -> MemoryStore:
    """A zarr MemoryStore holding the manifest's documents and chunk bytes."""
    store = MemoryStore()
    items = {k: json.dumps(v).encode() for k, v in zarr_meta.hierarchy(tables).items()}
    items.update(chunk_payloads(tables))
    proto = default_buffer_prototype()

    async def put() -> None:
        for k, v in items.items():
            await store.set(k, proto.buffer.from_bytes(v))

    asyncio.run(put())
    return store


def materialise_dir(tables: Tables, root: Path) -> Path:
    """The same as a folder (a local Zarr v3 store readable by any process)."""
    items = {k: json.dumps(v).encode() for k, v in zarr_meta.hierarchy(tables).items()}
    items.update(chunk_payloads(tables))
    for k, v in items.items():
        p = root / k
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(v)
    return root

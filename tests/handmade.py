"""Hand-built manifests for store and xarray tests: real bytes written to a raw file.

``RawArchive`` writes the chunks of numpy arrays (little/big-endian, optionally zlib
compressed) one after another into a file and records the manifest rows that describe
them, so tests can check the store against the numpy arrays without any scanner.
"""

from __future__ import annotations

import itertools
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.tables import CHUNKS_SCHEMA, GRID_SCHEMA, GROUPS_SCHEMA, Tables
from vzsql.zarr_meta import dtype_to_text

ChunkSpec = int | list[int]  # a regular chunk length, or explicit (rectilinear) lengths


def _edges(extent: int, spec: ChunkSpec) -> tuple[list[int], list[int], int]:
    """(starts, slot lengths, stored length of a regular dim or -1) of one dimension."""
    if isinstance(spec, int):
        n = max(1, -(-extent // spec))
        starts = [i * spec for i in range(n)]
        return starts, [min(spec, extent - s) for s in starts], spec
    starts = list(itertools.accumulate([0, *spec[:-1]]))
    return starts, list(spec), -1


@dataclass
class RawArchive:
    """Writes chunks into ``path`` and collects ``arrays``/``grid``/``chunks`` rows."""

    path: Path
    source_id: int = 0
    arrays: list[dict[str, Any]] = field(default_factory=list)
    grid: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.path.write_bytes(b"VZSQLRAW")  # a header, so no chunk starts at 0

    @property
    def uri(self) -> str:
        return self.path.resolve().as_uri()

    def add(
        self,
        name: str,
        data: np.ndarray,
        chunks: list[ChunkSpec] | None = None,
        *,
        dims: list[str] | None = None,
        endian: str = "little",
        compress: bool = False,
        fill_value: Any = 0,
        attrs: dict[str, Any] | None = None,
        attr_dtypes: dict[str, str] | None = None,
        inline: set[tuple[int, ...]] | frozenset[tuple[int, ...]] = frozenset(),
        skip: set[tuple[int, ...]] | frozenset[tuple[int, ...]] = frozenset(),
        gap: int = 0,
    ) -> None:
        """Add array ``name``; ``chunks`` per dim is a length (regular) or list of lengths."""
        data = np.asarray(data)
        specs: list[ChunkSpec] = list(chunks) if chunks is not None else list(data.shape)
        per_dim = [_edges(n, s) for n, s in zip(data.shape, specs, strict=True)]
        stored_shape = [st if st > 0 else max(ls) for _, ls, st in per_dim]
        for d, (starts, lengths, _) in enumerate(per_dim):
            for c, (s, n) in enumerate(zip(starts, lengths, strict=True)):
                self.grid.append(dict(array=name, dim=d, chunk=c, start=s, length=n))
        order = ">" if endian == "big" else "<"
        dt = data.dtype.newbyteorder(order) if data.dtype.itemsize > 1 else data.dtype
        codecs: list[dict[str, Any]] = [{"name": "bytes", "configuration": {"endian": endian}}]
        if compress:
            codecs.append({"name": "numcodecs.zlib", "configuration": {"level": 6}})
        ranges = [range(len(p[0])) for p in per_dim]
        with self.path.open("ab") as f:
            for index in itertools.product(*ranges):
                if index in skip:
                    continue
                sl = []
                shape = []
                for d, i in enumerate(index):
                    starts, lengths, stored = per_dim[d]
                    sl.append(slice(starts[i], starts[i] + lengths[i]))
                    shape.append(stored if stored > 0 else lengths[i])
                block = np.full(shape, fill_value, dtype=data.dtype)
                part = data[tuple(sl)]
                block[tuple(slice(0, n) for n in part.shape)] = part
                raw = block.astype(dt).tobytes()
                if compress:
                    raw = zlib.compress(raw, 6)
                row: dict[str, Any] = dict(array=name, index=list(index))
                if index in inline:
                    row.update(source_id=None, offset=None, length=len(raw), data=raw)
                else:
                    f.write(b"\xee" * gap)
                    row.update(source_id=self.source_id, offset=f.tell(), length=len(raw))
                    f.write(raw)
                self.chunks.append(row)
        self.arrays.append(
            dict(
                array=name,
                dims=dims if dims is not None else [f"{name}_d{i}" for i in range(data.ndim)],
                shape=list(data.shape),
                chunk_shape=stored_shape,
                dtype=dtype_to_text(data.dtype),
                fill_value=json.dumps(
                    fill_value.item() if hasattr(fill_value, "item") else fill_value
                ),
                codecs=json.dumps(codecs),
                attrs=json.dumps(attrs or {}),
                attr_dtypes=json.dumps(attr_dtypes or {}),
            )
        )

    def add_group(self, group: str, attrs: dict[str, Any] | None = None) -> None:
        self.groups.append(dict(group=group, attrs=json.dumps(attrs or {}), attr_dtypes="{}"))

    def tables(self, uri: str | None = None) -> Tables:
        """The manifest tables (``uri`` overrides the source URI, e.g. an ``s3://`` copy)."""
        chunk_rows = [{"data": None, **r} if "data" not in r else r for r in self.chunks]
        return Tables.from_mapping(
            {
                "sources": pa.table(
                    {
                        "source_id": [self.source_id],
                        "uri": [uri or self.uri],
                        "format": ["raw"],
                        "size": [self.path.stat().st_size],
                    }
                ),
                "arrays": pa.Table.from_pylist(self.arrays),
                "grid": pa.Table.from_pylist(self.grid, schema=GRID_SCHEMA),
                "chunks": pa.Table.from_pylist(chunk_rows, schema=CHUNKS_SCHEMA),
                "groups": pa.Table.from_pylist(self.groups, schema=GROUPS_SCHEMA),
            }
        )

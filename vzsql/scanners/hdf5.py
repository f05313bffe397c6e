"""The HDF5 / netCDF-4 scanner: one file -> the five manifest tables.

Walks the group tree with h5py, one ``arrays`` row per dataset (netCDF dimension-only
datasets excepted), ``groups`` rows for every group, a ``grid`` built with numpy per array,
and ``chunks`` from the dataset's storage layout (see ``hdf5_layout``). Filters become
Zarr codecs (``hdf5_filters``), datatypes Zarr data types (``hdf5_types``), attributes
JSON (``hdf5_attrs``), dimension scales dimension names (``hdf5_netcdf``).

Local files are opened by path; remote ones through ``vzsql.sources.open_source``'s file
object. Failures of h5py on damaged files become ``CorruptSourceError``; files that are not
HDF5 at all ``UnsupportedFormatError``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from vzsql.codecs.encode import codecs_json, encode_chunk
from vzsql.errors import CorruptSourceError, UnsupportedFormatError, VzsqlError
from vzsql.scanners import has_hdf5_signature
from vzsql.scanners import hdf5_layout as layout
from vzsql.scanners.grid import index_column, regular_grids, repeated_names
from vzsql.scanners.hdf5_attrs import attrs_json
from vzsql.scanners.hdf5_filters import pipeline_codecs, pipeline_filters
from vzsql.scanners.hdf5_netcdf import (
    PhonyDims,
    is_dimension_only,
    scale_names,
    unlimited_axes,
)
from vzsql.scanners.hdf5_types import ArrayType, array_type
from vzsql.sources import SourceList, local_path, normalize_uri, open_source, stat_source
from vzsql.tables import ARRAYS_SCHEMA, CHUNKS_SCHEMA, GROUPS_SCHEMA, Tables


def scan_hdf5(uri: str, *, storage_options: dict[str, Any] | None = None) -> Tables:
    """Scan one HDF5/netCDF-4 file into manifest tables (the file is source 0)."""
    uri = normalize_uri(uri)
    sources = SourceList()
    stat = stat_source(uri, storage_options)
    source_id = sources.add(stat, "hdf5")
    with _open_hdf5(uri, storage_options) as f:
        scan = _Scan(uri, source_id, sources, storage_options)
        try:
            scan.walk(f, "")
        except VzsqlError:
            raise
        except (OSError, RuntimeError, ValueError, KeyError, TypeError, OverflowError) as e:
            raise CorruptSourceError(
                f"cannot read HDF5 structure: {type(e).__name__}: {e}",
                source=uri,
                array=scan.current,
            ) from e
    tables = scan.tables(sources)
    _refuse_ranges_past_eof(tables.chunks, source_id, stat.size, uri)
    return tables


def _refuse_ranges_past_eof(chunks: pa.Table, source_id: int, size: int, uri: str) -> None:
    """A chunk address that a damaged file points past its end is a ``CorruptSourceError``."""
    if not chunks.num_rows:
        return
    # numpy, not pyarrow.compute: a compute call costs ~50 us, this runs once per file
    sids = chunks["source_id"].to_numpy()  # inline chunks (null source) come out as NaN
    rows = np.flatnonzero(sids == source_id)
    if not rows.size:
        return
    offsets = chunks["offset"].to_numpy()[rows].astype(np.int64)
    ends = offsets + chunks["length"].to_numpy()[rows].astype(np.int64)
    bad = np.flatnonzero((offsets < 0) | (ends > size))
    if bad.size:
        row = chunks.slice(int(rows[bad[0]]), 1).to_pylist()[0]
        raise CorruptSourceError(
            f"HDF5 chunk at byte {row['offset']} of {row['length']} bytes lies past the end of "
            f"the file ({size} bytes); {bad.size} chunk(s) affected",
            source=uri,
            array=row["array"],
            chunk=row["index"],
        )


@contextlib.contextmanager
def _open_hdf5(uri: str, storage_options: dict[str, Any] | None) -> Iterator[Any]:
    import h5py

    with open_source(uri, storage_options) as fobj:
        head = fobj.read(4104)
        if not has_hdf5_signature(head):
            raise UnsupportedFormatError(
                "not an HDF5/netCDF-4 file (no HDF5 signature)", source=uri
            )
        fobj.seek(0)
        path = local_path(uri)
        try:
            f = h5py.File(path, "r") if path is not None else h5py.File(fobj, "r")
        except (OSError, RuntimeError, ValueError) as e:
            raise CorruptSourceError(f"HDF5 library cannot open the file: {e}", source=uri) from e
        try:
            yield f
        finally:
            f.close()


class _Scan:
    """Accumulates the rows of one file's tables while walking its groups."""

    def __init__(
        self, uri: str, source_id: int, sources: SourceList, storage_options: dict[str, Any] | None
    ) -> None:
        self.uri = uri
        self.source_id = source_id
        self.sources = sources
        self.storage_options = storage_options
        self.phony = PhonyDims()
        self.current: str | None = None
        self.arrays: list[dict[str, Any]] = []
        self.groups: list[dict[str, Any]] = []
        self.refs: list[tuple[str, layout.StoredChunks]] = []
        # per array: (axis, scale path) of its unlimited axes, to pad to the dimension's length
        self.unlimited: dict[str, list[tuple[int, str]]] = {}

    # -- hierarchy ----------------------------------------------------------------------
    def walk(self, group: Any, path: str) -> None:
        import h5py

        attrs, attr_dtypes = attrs_json(group.attrs)
        self.groups.append({"group": path, "attrs": attrs, "attr_dtypes": attr_dtypes})
        datasets, subgroups = [], []
        for name in group:
            link = group.get(name, getlink=True)
            if not isinstance(link, h5py.HardLink):
                continue  # soft/external links: objects listed elsewhere or in other files
            obj = group[name]
            if isinstance(obj, h5py.Group):
                subgroups.append(name)
            elif isinstance(obj, h5py.Dataset) and not is_dimension_only(obj):
                datasets.append(obj)
        labels = [(tuple(int(s) for s in d.shape), scale_names(d)) for d in datasets]
        for dset, dims in zip(datasets, self.phony.name_group(labels), strict=True):
            self.add_array(dset, _join(path, dset.name.split("/")[-1]), dims)
        for name in subgroups:
            self.walk(group[name], _join(path, name))

    # -- one dataset --------------------------------------------------------------------
    def add_array(self, dset: Any, path: str, dims: list[str]) -> None:
        from h5py import h5d

        self.current = path
        atype = array_type(dset.dtype, uri=self.uri, array=path)
        dcpl = dset.id.get_create_plist()
        shape = [int(s) for s in dset.shape]
        self.unlimited[path] = unlimited_axes(dset)
        codecs = [atype.serializer]
        if not atype.vlen_string:
            codecs += pipeline_codecs(pipeline_filters(dcpl), dset.dtype, uri=self.uri, array=path)
        fill = _fill_value(dset, atype)
        attrs, attr_dtypes = attrs_json(dset.attrs)
        row: dict[str, Any] = {
            "array": path,
            "dims": dims,
            "shape": shape,
            "chunk_shape": None,
            "dtype": atype.dtype_text,
            "fill_value": atype.fill_value_json(fill),
            "codecs": codecs_json(codecs),
            "attrs": attrs,
            "attr_dtypes": attr_dtypes,
        }

        def encode(values: np.ndarray[Any, Any]) -> bytes:
            return encode_chunk(_to_native(values, atype), row)

        kind = dcpl.get_layout()
        if kind == h5d.VIRTUAL:
            raise layout.virtual_error(self.uri, path)
        if atype.vlen_string:
            stored = layout.compact(dset, encode)  # vlen bytes live in the global heap: inline
        elif kind == h5d.CHUNKED:
            fill_native = fill if fill is not None else atype.native.type(0)
            stored = layout.chunked(dset, self.source_id, fill_native, encode)
        elif kind == h5d.COMPACT:
            stored = layout.compact(dset, encode)
        elif dcpl.get_external_count() > 0:
            stored = layout.external(
                dset,
                dcpl,
                uri=self.uri,
                array=path,
                sources=self.sources,
                storage_options=self.storage_options,
            )
        else:
            stored = layout.contiguous(dset, self.source_id, uri=self.uri, array=path)
        row["chunk_shape"] = stored.chunk_shape
        self.arrays.append(row)
        self.refs.append((path, stored))
        self.current = None

    # -- output -------------------------------------------------------------------------
    def pad_unlimited(self) -> None:
        """Give variables on an unlimited dimension the dimension's length (netCDF-4 semantics).

        netCDF reports such a variable with the longest extent of any variable on that
        dimension, padded with fill; HDF5 keeps each dataset's own extent.
        """
        lengths: dict[str, int] = {}
        by_path = {row["array"]: row for row in self.arrays}
        for path, axes in self.unlimited.items():
            for axis, scale in axes:
                lengths[scale] = max(lengths.get(scale, 0), by_path[path]["shape"][axis])
        for row in self.arrays:
            shape = list(row["shape"])
            for axis, scale in self.unlimited.get(row["array"], []):
                shape[axis] = max(shape[axis], lengths[scale])
            row["shape"] = shape

    def tables(self, sources: SourceList) -> Tables:
        self.pad_unlimited()
        grid = regular_grids(  # one table for all arrays: a small Arrow table costs ~0.1 ms
            [r["array"] for r in self.arrays],
            [r["shape"] for r in self.arrays],
            [r["chunk_shape"] for r in self.arrays],
        )
        return Tables(
            sources=sources.table(),
            arrays=pa.Table.from_pylist(self.arrays, schema=ARRAYS_SCHEMA),
            grid=grid,
            chunks=_chunks_table(self.refs),
            groups=pa.Table.from_pylist(self.groups, schema=GROUPS_SCHEMA),
        )


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _fill_value(dset: Any, atype: ArrayType) -> Any:
    """The dataset's HDF5 fill value as a native scalar (None for variable-length strings)."""
    if atype.vlen_string:
        return None
    value = dset.fillvalue
    if atype.native.kind == "b":
        return bool(value)
    scalar = np.asarray(value).astype(atype.native).reshape(())[()]
    return scalar if atype.native.kind == "S" else scalar.item()  # bytes stay numpy bytes


def _to_native(values: np.ndarray[Any, Any], atype: ArrayType) -> np.ndarray[Any, Any]:
    """Values read by h5py in the dtype the codec pipeline expects."""
    if atype.vlen_string:
        flat = [
            v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v
            for v in values.reshape(-1)
        ]
        return np.array(flat, dtype=object).reshape(values.shape)
    return np.asarray(values).astype(atype.native, copy=False)


def _chunks_table(refs: list[tuple[str, layout.StoredChunks]]) -> pa.Table:
    """The ``chunks`` table: every array's references, then its inline chunks, in ``refs`` order.

    The references of all arrays become one Arrow table (a small table costs ~0.1 ms, which
    counted when scanning files of a few small arrays); inline chunks (rare) one per array.
    """
    pieces = []
    pending: list[tuple[str, layout.StoredChunks]] = []  # references not yet in a table
    for path, s in refs:
        if len(s.offset):
            pending.append((path, s))
        if s.inline_data:
            if pending:  # keep each array's references before its inline chunks
                pieces.append(_refs_table(pending))
                pending = []
            m = len(s.inline_data)
            ndim = len(s.chunk_shape)
            inline_index = np.asarray(s.inline_index, np.int64).reshape(m, ndim)
            pieces.append(
                pa.table(
                    {
                        "array": repeated_names([path], [m]),
                        "index": index_column(inline_index),
                        "source_id": pa.nulls(m, pa.int32()),
                        "offset": pa.nulls(m, pa.int64()),
                        "length": pa.array([len(b) for b in s.inline_data], pa.int64()),
                        "data": pa.array(s.inline_data, pa.binary()),
                    },
                    schema=CHUNKS_SCHEMA,
                )
            )
    if pending:
        pieces.append(_refs_table(pending))
    return pa.concat_tables(pieces) if pieces else CHUNKS_SCHEMA.empty_table()


def _refs_table(refs: list[tuple[str, layout.StoredChunks]]) -> pa.Table:
    """The chunk references of several arrays (each with at least one) as one table."""
    index = [index_column(s.index) for _, s in refs]
    counts = [len(s.offset) for _, s in refs]
    return pa.table(
        {
            "array": repeated_names([path for path, _ in refs], counts),
            "index": pa.concat_arrays(index) if len(index) > 1 else index[0],
            "source_id": pa.array(np.concatenate([s.source_id for _, s in refs]), pa.int32()),
            "offset": pa.array(np.concatenate([s.offset for _, s in refs]), pa.int64()),
            "length": pa.array(np.concatenate([s.length for _, s in refs]), pa.int64()),
            "data": pa.nulls(sum(counts), pa.binary()),
        },
        schema=CHUNKS_SCHEMA,
    )

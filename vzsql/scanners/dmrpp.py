"""DMR++ sidecars (OPeNDAP's XML chunk maps of HDF5/netCDF-4 files) -> manifest tables.

The data file is never opened: shapes, types, attributes and every chunk's byte range come
from the XML. What is read:

- ``Dataset``/``Group`` nesting -> array paths and ``groups`` rows; ``Dimension`` elements
  give sizes, a variable's ``Dim name="/fqn"`` its dimension names (``Dim size=N`` without a
  name -> ``phony_dim_<i>``);
- DAP4 atomic variables (``Int8`` ... ``Float64``; ``Byte`` is uint8) -> arrays; ``String``
  and structure variables are skipped with a warning (no byte-range encoding to refer to);
- ``dmrpp:chunks``: ``compressionType`` (``deflate``, ``shuffle``, ``fletcher32`` in HDF5
  pipeline order) and ``deflateLevel`` -> codecs, ``byteOrder`` (``LE``/``BE``) -> the
  ``bytes`` codec, ``fillValue`` -> ``fill_value``, ``dmrpp:chunkDimensionSizes`` -> chunk
  shape (absent: one contiguous chunk), each ``dmrpp:chunk`` ``offset``/``nBytes``/
  ``chunkPositionInArray`` (element position, divided by the chunk shape) -> a chunk row;
  a chunk's own ``href`` -> another source row;
- ``dmrpp:compact`` (base64 of the raw values) -> an inline chunk;
- ``Attribute`` elements with their DAP types (``HDF5_GLOBAL`` containers unwrapped,
  ``build_dmrpp_metadata`` dropped).

The data file is ``dmrpp:href`` on the root element (relative hrefs resolved against the
sidecar; the ``OPeNDAP_DMRpp_DATA_ACCESS_URL`` placeholder is ignored), else the sidecar's
own name without ``.dmrpp``. Its size/mtime/etag are recorded when it can be stat'ed.
"""

from __future__ import annotations

import base64
import json
import posixpath
import warnings
from typing import Any
from urllib.parse import urljoin, urlparse
from xml.etree import ElementTree as ET

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vzsql.codecs.encode import bytes_codec
from vzsql.errors import CorruptSourceError, SourceError, UnsupportedFilterError
from vzsql.scanners.attr_json import attrs_texts, json_number
from vzsql.scanners.grid import index_column, regular_grids, repeated_names
from vzsql.scanners.hdf5_filters import pipeline_codecs
from vzsql.scanners.netcdf3 import fill_json
from vzsql.sources import SourceList, SourceStat, normalize_uri, open_source, stat_source
from vzsql.tables import ARRAYS_SCHEMA, CHUNKS_SCHEMA, GROUPS_SCHEMA, Tables
from vzsql.zarr_meta import dtype_to_text

FORMAT = "hdf5"  # the referenced file's format; the sidecar itself is not a source
DAP = "{http://xml.opendap.org/ns/DAP/4.0#}"
DMRPP = "{http://xml.opendap.org/dap/dmrpp/1.0.0#}"
PLACEHOLDER_HREF = "OPeNDAP_DMRpp_DATA_ACCESS_URL"

DAP_TYPES: dict[str, str] = {
    "Byte": "u1",
    "UByte": "u1",
    "Int8": "i1",
    "UInt8": "u1",
    "Int16": "i2",
    "UInt16": "u2",
    "Int32": "i4",
    "UInt32": "u4",
    "Int64": "i8",
    "UInt64": "u8",
    "Float32": "f4",
    "Float64": "f8",
}
SKIPPED_TYPES = frozenset({"String", "Url", "Structure", "Sequence", "Opaque", "Enum"})
# compressionType token -> HDF5 filter id; hdf5_filters maps ids to Zarr codecs
FILTER_IDS = {"deflate": 1, "shuffle": 2, "fletcher32": 3, "szip": 4}


def scan_dmrpp(uri: str, *, storage_options: dict[str, Any] | None = None) -> Tables:
    """Manifest tables for the data file a DMR++ sidecar describes, from the sidecar alone."""
    uri = normalize_uri(uri)
    try:
        with open_source(uri, storage_options) as f:
            root = ET.parse(f).getroot()
    except ET.ParseError as e:
        raise CorruptSourceError(f"DMR++ is not well-formed XML: {e}", source=uri) from e
    except OSError as e:
        raise SourceError(f"cannot read DMR++: {e}", source=uri) from e
    if root.tag != f"{DAP}Dataset":
        raise CorruptSourceError(
            f"DMR++ root element is {root.tag!r}, not a DAP4 Dataset", source=uri
        )
    scan = _Scan(uri, data_uri(uri, root), storage_options)
    scan.group(root, "")
    return scan.tables()


def data_uri(sidecar: str, root: ET.Element) -> str:
    """The data file: ``dmrpp:href`` (resolved), else the sidecar name minus ``.dmrpp``."""
    href = root.get(f"{DMRPP}href")
    if not href or PLACEHOLDER_HREF in href:
        return sidecar.removesuffix(".dmrpp")
    return resolve_href(sidecar, href)


def resolve_href(sidecar: str, href: str) -> str:
    if urlparse(href).scheme:
        return normalize_uri(href)
    if href.startswith("/"):
        return normalize_uri(href)
    return normalize_uri(urljoin(sidecar, href))


class _Scan:
    """Walks the XML once, collecting rows; chunk attributes are parsed with Arrow kernels."""

    def __init__(self, uri: str, data: str, storage_options: dict[str, Any] | None) -> None:
        self.uri = uri
        self.storage_options = storage_options
        self.sources = SourceList()
        self.data_id = self._source(data)
        self.dims: dict[str, int] = {}  # dimension FQN -> size
        self.arrays: list[dict[str, Any]] = []
        self.groups: list[dict[str, Any]] = []
        self.chunk_parts: list[pa.Table] = []

    def _source(self, uri: str) -> int:
        try:
            stat = stat_source(uri, self.storage_options)
        except SourceError:  # the data file need not be reachable to describe it
            stat = SourceStat(uri, 0, None, None)
            sid = self.sources.add(stat, FORMAT)
            self.sources.rows[uri]["size"] = None
            return sid
        return self.sources.add(stat, FORMAT)

    def group(self, el: ET.Element, path: str) -> None:
        for d in el.iterfind(f"{DAP}Dimension"):
            name, size = d.get("name"), d.get("size")
            if name is None or size is None or not size.isdigit():
                raise CorruptSourceError(
                    f"DMR++ Dimension without name/size in group {path or '/'!r}", source=self.uri
                )
            self.dims[f"{path}/{name}" if path else f"/{name}"] = int(size)
        attrs, dtypes = attributes_json(el, self.uri)
        self.groups.append({"group": path.strip("/"), "attrs": attrs, "attr_dtypes": dtypes})
        for child in el:
            tag = child.tag.removeprefix(DAP)
            name = child.get("name")
            if tag == "Group" and name:
                self.group(child, f"{path}/{name}")
            elif tag in DAP_TYPES and name:
                self.variable(child, f"{path}/{name}".strip("/"), tag)
            elif tag in SKIPPED_TYPES and name:
                warnings.warn(
                    f"DMR++ {self.uri}: {tag} variable {name!r} skipped (no chunk references)",
                    stacklevel=3,
                )

    def _dims(self, el: ET.Element, array: str) -> tuple[list[str], list[int]]:
        names, sizes = [], []
        for i, d in enumerate(el.iterfind(f"{DAP}Dim")):
            fqn, size = d.get("name"), d.get("size")
            if fqn is not None:
                key = fqn if fqn.startswith("/") else f"/{fqn}"
                if key not in self.dims:
                    raise CorruptSourceError(
                        f"DMR++ dimension {fqn!r} is not declared", source=self.uri, array=array
                    )
                names.append(posixpath.basename(key))
                sizes.append(self.dims[key])
            elif size is not None and size.isdigit():
                names.append(f"phony_dim_{i}")
                sizes.append(int(size))
            else:
                raise CorruptSourceError(
                    "DMR++ Dim without name or size", source=self.uri, array=array
                )
        return names, sizes

    def variable(self, el: ET.Element, array: str, dap_type: str) -> None:
        dims, shape = self._dims(el, array)
        chunks_el = el.find(f"{DMRPP}chunks")
        compact = el.find(f"{DMRPP}compact")
        order = (chunks_el.get("byteOrder") if chunks_el is not None else None) or "LE"
        dtype = np.dtype(DAP_TYPES[dap_type]).newbyteorder(">" if order == "BE" else "<")
        codecs = [bytes_codec(dtype)]
        chunk_shape = list(shape)
        fill: Any = 0
        if chunks_el is not None:
            codecs += self._codecs(chunks_el, dtype, array)
            sizes = chunks_el.findtext(f"{DMRPP}chunkDimensionSizes")
            if sizes:
                chunk_shape = [int(s) for s in sizes.split()]
                if len(chunk_shape) != len(shape):
                    raise CorruptSourceError(
                        f"chunkDimensionSizes {sizes!r} do not match {len(shape)} dimensions",
                        source=self.uri,
                        array=array,
                    )
            fill_text = chunks_el.get("fillValue")
            if fill_text is not None:
                fill = _parse_numbers([fill_text], dtype, self.uri, array)[0]
            self.chunk_parts.append(self._chunks(chunks_el, array, chunk_shape))
        elif compact is not None:
            raw = base64.b64decode((compact.text or "").strip())
            if len(raw) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
                raise CorruptSourceError(
                    f"dmrpp:compact holds {len(raw)} bytes, not {shape} of {dtype}",
                    source=self.uri,
                    array=array,
                )
            self.chunk_parts.append(_inline_chunk(array, len(shape), raw))
        attrs, attr_dtypes = attributes_json(el, self.uri)
        self.arrays.append(
            {
                "array": array,
                "dims": dims,
                "shape": shape,
                "chunk_shape": chunk_shape,
                "dtype": dtype_to_text(dtype.newbyteorder("=")),
                "fill_value": json.dumps(fill_json(fill, dtype)),
                "codecs": json.dumps(codecs),
                "attrs": attrs,
                "attr_dtypes": attr_dtypes,
            }
        )

    def _codecs(
        self, chunks_el: ET.Element, dtype: np.dtype[Any], array: str
    ) -> list[dict[str, Any]]:
        """Bytes->bytes codecs for ``compressionType``, mapped as the HDF5 scanner maps filters."""
        filters: list[tuple[int, tuple[int, ...]]] = []
        for token in (chunks_el.get("compressionType") or "").split():
            if token not in FILTER_IDS:
                raise UnsupportedFilterError(
                    f"DMR++ compressionType {token!r} has no Zarr codec in vzsql",
                    filter_id=-1,
                    source=self.uri,
                    array=array,
                )
            level = chunks_el.get("deflateLevel")
            params = (int(level),) if token == "deflate" and level and level.isdigit() else ()
            filters.append((FILTER_IDS[token], params))
        return pipeline_codecs(filters, dtype, uri=self.uri, array=array)

    def _chunks(self, chunks_el: ET.Element, array: str, chunk_shape: list[int]) -> pa.Table:
        elements = list(chunks_el.iterfind(f"{DMRPP}chunk"))
        ndim = len(chunk_shape)
        try:
            offsets = pa.array([c.get("offset") for c in elements], pa.string()).cast(pa.int64())
            lengths = pa.array([c.get("nBytes") for c in elements], pa.string()).cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise CorruptSourceError(
                f"bad dmrpp:chunk offset/nBytes: {e}", source=self.uri, array=array
            ) from e
        if offsets.null_count or lengths.null_count:
            raise CorruptSourceError(
                "dmrpp:chunk without offset or nBytes", source=self.uri, array=array
            )
        n = len(elements)
        positions = [c.get("chunkPositionInArray") for c in elements]
        if ndim == 0 or all(p is None for p in positions):
            if n > 1:
                raise CorruptSourceError(
                    f"{n} dmrpp:chunk elements without chunkPositionInArray",
                    source=self.uri,
                    array=array,
                )
            idx = np.zeros((n, ndim), np.int64)
        else:
            text = pc.replace_substring_regex(pa.array(positions, pa.string()), r"[\[\]\s]", "")
            try:
                flat = pc.list_flatten(pc.split_pattern(text, ",")).cast(pa.int64())
                idx = np.asarray(flat).reshape(n, ndim) // np.array(chunk_shape, np.int64)
            except (pa.ArrowInvalid, ValueError, TypeError) as e:
                raise CorruptSourceError(
                    f"bad chunkPositionInArray for {ndim} dimensions: {e}",
                    source=self.uri,
                    array=array,
                ) from e
        source_ids = np.full(n, self.data_id, np.int32)
        hrefs = [c.get("href") for c in elements]
        if any(hrefs):  # chunks stored in other files
            for i, h in enumerate(hrefs):
                if h:
                    source_ids[i] = self._source(resolve_href(self.uri, h))
        return pa.table(
            {
                "array": repeated_names([array], [n]),
                "index": index_column(idx),
                "source_id": pa.array(source_ids),
                "offset": offsets,
                "length": lengths,
                "data": pa.nulls(n, pa.binary()),
            },
            schema=CHUNKS_SCHEMA,
        )

    def tables(self) -> Tables:
        chunks = (
            pa.concat_tables(self.chunk_parts) if self.chunk_parts else CHUNKS_SCHEMA.empty_table()
        )
        arrays = pa.Table.from_pylist(self.arrays, schema=ARRAYS_SCHEMA)
        return Tables.from_mapping(
            {
                "sources": self.sources.table(),
                "arrays": arrays,
                "grid": _grids(self.arrays),
                "chunks": chunks,
                "groups": pa.Table.from_pylist(self.groups, schema=GROUPS_SCHEMA),
            }
        )


def _grids(arrays: list[dict[str, Any]]) -> pa.Table:
    return regular_grids(
        [a["array"] for a in arrays],
        [a["shape"] for a in arrays],
        [a["chunk_shape"] for a in arrays],
    )


def _inline_chunk(array: str, ndim: int, raw: bytes) -> pa.Table:
    return pa.table(
        {
            "array": [array],
            "index": pa.array([[0] * ndim], pa.list_(pa.int32())),
            "source_id": pa.array([None], pa.int32()),
            "offset": pa.array([None], pa.int64()),
            "length": [len(raw)],
            "data": pa.array([raw], pa.binary()),
        },
        schema=CHUNKS_SCHEMA,
    )


def _parse_numbers(
    texts: list[str], dtype: np.dtype[Any], uri: str, array: str | None
) -> list[Any]:
    native = dtype.newbyteorder("=")
    try:
        if native.kind == "f":
            return np.array([t.strip() for t in texts], dtype=np.float64).astype(native).tolist()  # type: ignore[no-any-return]
        return [native.type(int(t.strip())).item() for t in texts]
    except (ValueError, OverflowError) as e:
        raise CorruptSourceError(
            f"bad {native} value in {texts!r}: {e}", source=uri, array=array
        ) from e


def attributes_json(el: ET.Element, uri: str) -> tuple[str, str]:
    """``(attrs, attr_dtypes)`` JSON texts of an element's ``Attribute`` children.

    Same encoding as the other scanners (docs/manifest-format.md): strings as JSON strings,
    one value as a scalar, several as a list, non-finite floats as ``"NaN"``/``"Infinity"``,
    ``attr_dtypes`` holding the numpy dtype of numeric attributes.
    """
    values: dict[str, Any] = {}
    dtypes: dict[str, str] = {}
    items = list(el.iterfind(f"{DAP}Attribute"))
    while items:
        a = items.pop(0)
        name, dap_type = a.get("name"), a.get("type")
        if not name or not dap_type:
            continue
        if dap_type == "Container":
            if name == "HDF5_GLOBAL":
                items.extend(a.iterfind(f"{DAP}Attribute"))
            continue  # build_dmrpp_metadata and other nested containers have no flat form
        texts = [v.text or "" for v in a.iterfind(f"{DAP}Value")]
        if dap_type in DAP_TYPES:
            dtype = np.dtype(DAP_TYPES[dap_type])
            nums = [json_number(v) for v in _parse_numbers(texts, dtype, uri, el.get("name"))]
            dtypes[name] = dtype.str
            values[name] = nums[0] if len(nums) == 1 else nums
        else:
            values[name] = texts[0] if len(texts) == 1 else texts
    return attrs_texts(values, dtypes)

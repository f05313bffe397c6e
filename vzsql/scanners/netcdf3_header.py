"""The netCDF classic header (CDF-1, CDF-2 and CDF-5), parsed without netCDF-C.

Follows Unidata's "netCDF file format specifications": a magic ``CDF`` + version byte,
``numrecs``, then the dimension, global attribute and variable lists. CDF-5 widens every
count, dimension length, dimension id and ``vsize`` to 64 bits; CDF-2 and CDF-5 use 64-bit
``begin`` offsets. All numbers are big-endian. Anything that does not fit the grammar (a
truncated header, an unknown tag or type, an out-of-range dimension id) raises
``CorruptSourceError`` naming the file, and the variable where one is being read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from vzsql.errors import CorruptSourceError

MAGIC = b"CDF"
NC_DIMENSION = 10
NC_VARIABLE = 11
NC_ATTRIBUTE = 12
STREAMING = -1  # numrecs all ones: the writer did not record the count

# nc_type -> big-endian numpy dtype
NC_TYPES: dict[int, np.dtype[Any]] = {
    1: np.dtype("i1"),  # NC_BYTE
    2: np.dtype("S1"),  # NC_CHAR
    3: np.dtype(">i2"),  # NC_SHORT
    4: np.dtype(">i4"),  # NC_INT
    5: np.dtype(">f4"),  # NC_FLOAT
    6: np.dtype(">f8"),  # NC_DOUBLE
    7: np.dtype("u1"),  # NC_UBYTE   (CDF-5)
    8: np.dtype(">u2"),  # NC_USHORT  (CDF-5)
    9: np.dtype(">u4"),  # NC_UINT    (CDF-5)
    10: np.dtype(">i8"),  # NC_INT64  (CDF-5)
    11: np.dtype(">u8"),  # NC_UINT64 (CDF-5)
}
CDF5_ONLY_TYPES = frozenset({7, 8, 9, 10, 11})

# what netCDF-C writes for data never written (netcdf.h NC_FILL_*), per nc_type
DEFAULT_FILL: dict[int, Any] = {
    1: -127,
    2: b"\x00",
    3: -32767,
    4: -2147483647,
    5: 9.9692099683868690e36,
    6: 9.9692099683868690e36,
    7: 255,
    8: 65535,
    9: 4294967295,
    10: -9223372036854775806,
    11: 18446744073709551614,
}

_READ_STEP = 1 << 16


@dataclass
class Attribute:
    name: str
    nc_type: int
    values: np.ndarray[Any, Any]  # big-endian numbers, or S1 chars for NC_CHAR


@dataclass
class Variable:
    name: str
    dimids: list[int]
    attrs: list[Attribute]
    nc_type: int
    vsize: int  # as written (padded to 4; may be clipped for >4 GiB variables)
    begin: int
    dims: list[str] = field(default_factory=list)
    shape: list[int] = field(default_factory=list)
    is_record: bool = False

    @property
    def dtype(self) -> np.dtype[Any]:
        return NC_TYPES[self.nc_type]

    @property
    def nbytes(self) -> int:
        """Bytes of the variable (of one record, for record variables), without padding."""
        n = int(np.prod(self.shape[1:] if self.is_record else self.shape, dtype=np.int64))
        return n * self.dtype.itemsize


@dataclass
class Header:
    version: int  # 1, 2 or 5
    numrecs: int  # STREAMING if not recorded
    dims: list[tuple[str, int]]  # (name, length); length 0 marks the record dimension
    attrs: list[Attribute]
    variables: list[Variable]
    header_size: int

    @property
    def record_dim(self) -> str | None:
        return next((n for n, length in self.dims if length == 0), None)


class _Cursor:
    """Reads big-endian header fields, fetching more of the file when the buffer runs out."""

    def __init__(self, f: IO[bytes], uri: str, version: int) -> None:
        self.f = f
        self.uri = uri
        self.buf = b""
        self.pos = 0
        self.eof = False
        self.wide = version == 5  # 64-bit counts
        self.context: str | None = None  # the variable being read, for error messages

    def need(self, n: int) -> None:
        while len(self.buf) - self.pos < n:
            if self.eof:
                raise CorruptSourceError(
                    f"netCDF3 header truncated at byte {len(self.buf)}",
                    source=self.uri,
                    array=self.context,
                )
            more = self.f.read(max(_READ_STEP, n))
            if not more:
                self.eof = True
            self.buf += more

    def take(self, n: int) -> bytes:
        self.need(n)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def int32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def uint32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def count(self, what: str) -> int:
        """A NON_NEG field: 32-bit, or 64-bit in CDF-5."""
        n = self.int64() if self.wide else self.int32()
        if n < 0:
            self.fail(f"negative {what} {n}")
        return n

    def fail(self, message: str) -> None:
        raise CorruptSourceError(
            f"netCDF3 header: {message} at byte {self.pos}", source=self.uri, array=self.context
        )

    def name(self) -> str:
        n = self.count("name length")
        if n == 0 or n > 1 << 16:
            self.fail(f"implausible name length {n}")
        raw = self.take(n)
        self.take(-n % 4)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"name {raw!r} is not UTF-8")
            raise  # unreachable, for type checkers

    def list_header(self, tag: int, what: str) -> int:
        """The element count of a list, 0 for ABSENT; any other tag is corruption."""
        got = self.int32()
        n = self.count(f"{what} count")
        if got == 0:
            if n != 0:
                self.fail(f"ABSENT {what} list with count {n}")
            return 0
        if got != tag:
            self.fail(f"expected {what} list tag {tag}, found {got}")
        return n


def _attributes(cur: _Cursor, version: int) -> list[Attribute]:
    out = []
    for _ in range(cur.list_header(NC_ATTRIBUTE, "attribute")):
        name = cur.name()
        nc_type = cur.int32()
        if nc_type not in NC_TYPES or (nc_type in CDF5_ONLY_TYPES and version != 5):
            cur.fail(f"attribute {name!r} has invalid type {nc_type}")
        dtype = NC_TYPES[nc_type]
        n = cur.count(f"attribute {name!r} length")
        size = n * dtype.itemsize
        if size > 1 << 30:
            cur.fail(f"attribute {name!r} implausibly long ({n} values)")
        raw = cur.take(size)
        cur.take(-size % 4)
        out.append(Attribute(name, nc_type, np.frombuffer(raw, dtype=dtype)))
    return out


def read_header(f: IO[bytes], uri: str, file_size: int) -> Header:
    """Parse the header of the netCDF classic file open as ``f`` (positioned anywhere)."""
    f.seek(0)
    head = f.read(4)
    if len(head) < 4 or head[:3] != MAGIC or head[3] not in (1, 2, 5):
        raise CorruptSourceError(f"not a netCDF3 file (magic {head!r})", source=uri)
    version = head[3]
    cur = _Cursor(f, uri, version)
    cur.buf, cur.pos = head, 4
    if version == 5:
        raw = cur.take(8)
        numrecs = STREAMING if raw == b"\xff" * 8 else int(struct.unpack(">q", raw)[0])
    else:
        raw = cur.take(4)
        numrecs = STREAMING if raw == b"\xff" * 4 else int(struct.unpack(">i", raw)[0])
    if numrecs < STREAMING:
        cur.fail(f"negative numrecs {numrecs}")

    dims: list[tuple[str, int]] = []
    for _ in range(cur.list_header(NC_DIMENSION, "dimension")):
        name = cur.name()
        dims.append((name, cur.count(f"dimension {name!r} length")))
    if sum(1 for _, n in dims if n == 0) > 1:
        cur.fail("more than one record (unlimited) dimension")
    gattrs = _attributes(cur, version)

    variables: list[Variable] = []
    for _ in range(cur.list_header(NC_VARIABLE, "variable")):
        cur.context = None
        name = cur.name()
        cur.context = name
        ndims = cur.count("dimension count")
        if ndims > 1024:
            cur.fail(f"implausible dimension count {ndims}")
        dimids = [cur.count("dimension id") for _ in range(ndims)]
        for d in dimids:
            if d >= len(dims):
                cur.fail(f"dimension id {d} out of range ({len(dims)} dimensions)")
        vattrs = _attributes(cur, version)
        nc_type = cur.int32()
        if nc_type not in NC_TYPES or (nc_type in CDF5_ONLY_TYPES and version != 5):
            cur.fail(f"invalid type {nc_type}")
        vsize = cur.count("vsize")
        begin = cur.int64() if version in (2, 5) else cur.int32()
        if begin < 0:
            cur.fail(f"negative begin offset {begin}")
        var = Variable(name, dimids, vattrs, nc_type, vsize, begin)
        var.dims = [dims[d][0] for d in dimids]
        var.shape = [dims[d][1] for d in dimids]
        var.is_record = bool(dimids) and dims[dimids[0]][1] == 0
        if any(dims[d][1] == 0 for d in dimids[1:]):
            cur.fail("record dimension is not the first dimension")
        variables.append(var)
    cur.context = None
    header_size = cur.pos
    for var in variables:
        if var.begin < header_size:
            raise CorruptSourceError(
                f"netCDF3 data offset {var.begin} lies inside the {header_size}-byte header",
                source=uri,
                array=var.name,
            )
        padded = var.nbytes + (-var.nbytes % 4)
        # vsize is clipped to 2**32-1 for huge variables; otherwise it must match the shape
        if var.vsize not in (padded, var.nbytes) and not (
            version != 5 and var.vsize == 0xFFFFFFFF and padded >= 0xFFFFFFFF
        ):
            raise CorruptSourceError(
                f"netCDF3 vsize {var.vsize} does not match shape {var.shape} of {var.dtype}",
                source=uri,
                array=var.name,
            )
    return Header(version, numrecs, dims, gattrs, variables, header_size)

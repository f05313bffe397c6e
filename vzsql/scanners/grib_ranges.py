"""GRIB messages found and read by byte range: headers and metadata sections, not the data.

A GRIB file is walked message by message, as ecCodes' own reader walks it: at a message
start, section 0 gives the edition and the total length (GRIB1: 3 bytes, with the WMO
large-message convention; GRIB2: 8 bytes), the ``7777`` at its end is checked, and the walk
jumps to the end of the message. Between messages, junk (WMO bulletin headers, padding) is
searched for the next ``GRIB`` through a bounded window. A ``GRIB`` that starts no valid
message is a *failure* (same reasons and offsets as ``grib_messages.find_messages``, which
searches a whole buffer instead) and the search resumes right after it.

What ecCodes is given per message:

- a GRIB2 message holding one field whose data representation template is one of
  ``HEAD_ONLY_TEMPLATES`` (simple, complex, IEEE, JPEG, PNG, CCSDS packing): only
  sections 0-6 are read, and ecCodes gets a copy with an empty section 7 and the total
  length fixed up. For these templates every key the scanner records (cfgrib's index keys,
  attributes, coordinates, the value count) comes from sections 1-6; the tests check the
  tables against the whole-message path;
- any other message (GRIB1, whose section 4 holds packing parameters and data together;
  second-order and other packings, which need section 7 for the value count; multi-field
  GRIB2; a message whose sections do not chain up) is read whole.

Requests: everything goes through one ``_Window`` over the file: the bytes last fetched,
extended or moved by one ranged request when a read falls outside them, always fetching a
read-ahead beyond what was asked. The ``7777`` check of one message and the metadata
sections of the next are one request; small messages are read many per request; the
read-ahead follows the metadata size of the previous message (a large bitmap). A local file
is one memory map and costs no request at all.
"""

from __future__ import annotations

import mmap
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import numpy as np

from vzsql.errors import StaleSourceError
from vzsql.remote_io import open_remote
from vzsql.scanners.grib_messages import (
    END_MAGIC,
    GRIB1_LARGE_FLAG,
    GRIB1_MIN_LENGTH,
    GRIB2_MIN_LENGTH,
    GRIB_MAGIC,
    MessageFailure,
    MessageIndex,
    describe_failure,
    grib1_large_length,
)
from vzsql.sources import local_path, open_source

# data representation templates (GRIB2 code table 5.0) whose keys ecCodes computes from
# sections 1-6 alone: 0 simple, 2/3 complex (+ spatial differencing), 4 IEEE, 40 JPEG 2000,
# 41 PNG, 42 CCSDS. Second-order packing (50001/50002...) needs section 7 for the value count.
HEAD_ONLY_TEMPLATES = frozenset({0, 2, 3, 4, 40, 41, 42})
HEAD_AHEAD = 4096  # bytes fetched beyond a read at least (a message's metadata sections)
SEARCH_WINDOW = 64 * 1024  # bytes searched for ``GRIB`` per request across junk
SMALL_MESSAGE = 64 * 1024  # messages up to this size are read through, ...
BATCH = 2**20  # ... this many bytes per request
MAX_AHEAD = 16 * 2**20
RECENT = 8  # messages whose metadata size sets the read-ahead
EMPTY_SECTION_7 = (5).to_bytes(4, "big") + b"\x07"

Fetch = Callable[[int, int], bytes]


class _Window:
    """Bytes ``[base, base + len(buf))`` of a file of ``size`` bytes, fetched on demand.

    ``fetch`` is ``None`` for a memory-mapped local file (``buf`` is the whole map).
    ``keep_from``: bytes at or after this offset are kept when the window is extended
    (the start of the message being read, so its metadata can be sliced out at the end).
    """

    def __init__(self, size: int, fetch: Fetch | None, buf: Any = b"", uri: str = "") -> None:
        self.uri = uri
        self.size = size
        self.fetch = fetch
        self.buf: Any = buf
        self.base = 0
        self.keep_from = 0
        self.ahead = HEAD_AHEAD

    @property
    def end(self) -> int:
        return self.base + len(self.buf)

    def holds(self, start: int, end: int) -> bool:
        """Whether ``[start, end)`` is in the window (no request needed)."""
        return self.base <= start and end <= self.base + len(self.buf)

    def get(self, start: int, end: int, ahead: int | None = None) -> bytes:
        """Bytes ``[start, min(end, size))``: from the window, else one request fetching
        also ``ahead`` (default ``self.ahead``) bytes from ``start``."""
        if self.fetch is None:  # the whole memory map
            return self.buf[start:end]  # type: ignore[no-any-return]
        end = min(end, self.size)
        if not self.holds(start, end):
            hi = min(self.size, max(end, start + (self.ahead if ahead is None else ahead)))
            if self.base <= start <= self.end:  # extend: keep what is still needed
                lo = max(self.base, min(start, self.keep_from))
                self.buf = self.buf[lo - self.base :] + self._fetch(self.end, hi)
                self.base = lo
            else:
                self.buf = self._fetch(start, hi)
                self.base = start
        return bytes(self.buf[start - self.base : end - self.base])

    def _fetch(self, start: int, end: int) -> bytes:
        assert self.fetch is not None
        data = self.fetch(start, end)
        if len(data) != end - start:  # the object shrank since its size was read
            raise StaleSourceError(
                f"ranged read of bytes [{start}, {end}) returned {len(data)} bytes: the "
                f"object changed while it was scanned (size was {self.size})",
                source=self.uri,
            )
        return data

    def find(self, start: int) -> int:
        """Offset of the first ``GRIB`` at or after ``start``, or -1 (searched window by window)."""
        pos = start
        self.keep_from = start  # junk before a message is not kept
        while pos + 4 <= self.size:
            if not (self.base <= pos and pos + 4 <= self.end):
                self.get(pos, pos + 4, max(self.ahead, SEARCH_WINDOW))
            hit = self.buf.find(GRIB_MAGIC, pos - self.base)
            if hit >= 0:
                return self.base + int(hit)
            pos = self.end - 3
        return -1


@dataclass
class GribMessages:
    """The valid messages of a file and what ecCodes is given for each.

    ``heads[m]``: a standalone copy of message ``m`` without its data (sections 0-6, empty
    section 7) or ``None`` when the whole message is needed: ``message(m)`` returns it,
    from the bytes kept during the walk (remote) or the memory map (local).
    """

    index: MessageIndex
    heads: list[bytes | None]
    wholes: dict[int, bytes]
    window: _Window

    def message(self, m: int) -> bytes:
        """The bytes ecCodes reads for message ``m`` (see class doc)."""
        head = self.heads[m]
        if head is not None:
            return head
        if m in self.wholes:
            return self.wholes[m]
        o, n = int(self.index.offsets[m]), int(self.index.lengths[m])
        return self.window.get(o, o + n)


def walk_messages(window: _Window, *, heads_only: bool = True) -> GribMessages:
    """Find every valid message of the window's file and read what ecCodes needs of each.

    ``heads_only=False`` reads every message whole (the reference path the tests compare).
    """
    offsets: list[int] = []
    lengths: list[int] = []
    editions: list[int] = []
    heads: list[bytes | None] = []
    wholes: dict[int, bytes] = {}
    failures: list[MessageFailure] = []
    recent_heads: deque[int] = deque(maxlen=RECENT)
    pos = 0
    while (c := window.find(pos)) >= 0:
        window.keep_from = c
        checked = _section0(window, c)
        if isinstance(checked, MessageFailure):
            failures.append(checked)
            pos = c + 1
            continue
        edition, length = checked
        head = _grib2_head(window, c, length) if edition == 2 and heads_only else None
        window.ahead = _read_ahead(head, length, recent_heads)
        # a whole message: read through to the next message's header in the same request
        whole = None if head is not None else window.get(c, c + length, length + window.ahead)
        tail = window.get(c + length - 4, c + length)  # same request as the next header
        if tail != END_MAGIC:
            failures.append(describe_failure(c, edition, length, window.size, window.get))
            pos = c + 1
            continue
        if whole is not None and window.fetch is not None:
            wholes[len(offsets)] = whole
        offsets.append(c)
        lengths.append(length)
        editions.append(edition)
        heads.append(head)
        pos = c + length
    index = MessageIndex(
        np.array(offsets, dtype=np.int64),
        np.array(lengths, dtype=np.int64),
        np.array(editions, dtype=np.uint8),
        failures,
    )
    return GribMessages(index, heads, wholes, window)


def _read_ahead(head: bytes | None, length: int, recent_heads: deque[int]) -> int:
    """Bytes to fetch from the next message's start, judged by the messages just read.

    After a small message, or one read whole, the next ones are likely alike: read through
    (``BATCH`` bytes, or the message length, per request). After a large message read
    without its data: the largest metadata size of the last few such messages (some have
    a bitmap, some not) and a margin, to skip the next one's data too.
    """
    if head is None or length <= SMALL_MESSAGE:
        return min(MAX_AHEAD, max(BATCH, length + length // 4))
    recent_heads.append(len(head))
    largest = max(recent_heads)
    return min(MAX_AHEAD, largest + largest // 4 + HEAD_AHEAD)


def _section0(window: _Window, c: int) -> tuple[int, int] | MessageFailure:
    """Edition and total length of the message at ``c``, or why it is not a message."""
    size = window.size
    indicator = window.get(c, c + 16)
    edition = indicator[7] if c + 8 <= size else 0
    length = 0
    if edition == 1:
        length = int.from_bytes(indicator[4:7], "big")
        if length & GRIB1_LARGE_FLAG:
            length = grib1_large_length(window.get, size, c, length)
    elif edition == 2 and c + 16 <= size:
        length = min(int.from_bytes(indicator[8:16], "big"), 2**62)
    minimum = GRIB1_MIN_LENGTH if edition == 1 else GRIB2_MIN_LENGTH
    header_ok = edition == 1 or (edition == 2 and c + 16 <= size)
    if not header_ok or length < minimum or c + length > size:
        return describe_failure(c, edition, length, size, window.get)
    return edition, length


def _grib2_head(window: _Window, c: int, length: int) -> bytes | None:
    """Message ``c`` without its data as a standalone message, if ecCodes needs no more.

    Only a single-field message whose sections chain 1, (2), 3, 4, 5, 6, 7 up to the
    ``7777`` and whose packing is in ``HEAD_ONLY_TEMPLATES`` qualifies; else ``None``.
    """
    end = c + length - 4
    pos = c + 16
    numbers: list[int] = []
    starts: dict[int, int] = {}
    while True:
        if pos + 5 > end:
            return None
        if not window.holds(pos, pos + 5):
            # read from the message start: a section beyond the window extends it (the
            # bytes in between are the metadata being read), never replaces it
            window.get(c, pos + 5)
        i = pos - window.base
        n, number = int.from_bytes(window.buf[i : i + 4], "big"), window.buf[i + 4]
        if n < 5 or pos + n > end:
            return None
        if number == 7:
            break
        numbers.append(number)
        starts[number] = pos - c
        pos += n
    if pos + n != end or numbers not in ([1, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6]):
        return None
    head = window.get(c, pos)
    s5, s6 = starts[5], starts[6]
    if s6 - s5 < 11 or int.from_bytes(head[s5 + 9 : s5 + 11], "big") not in HEAD_ONLY_TEMPLATES:
        return None
    if len(head) - s6 < 6 or head[s6 + 5] not in (0, 255):  # own bitmap or none
        return None
    total = len(head) + len(EMPTY_SECTION_7) + len(END_MAGIC)
    return head[:8] + total.to_bytes(8, "big") + head[16:] + EMPTY_SECTION_7 + END_MAGIC


@contextmanager
def open_window(uri: str, storage_options: dict[str, Any] | None) -> Iterator[_Window]:
    """A ``_Window`` over ``uri``: a memory map of a local file, ranged reads otherwise."""
    if local_path(uri) is None:
        # the thread's read policy (retries, timeouts) and read counters apply to each range
        remote = open_remote(uri, storage_options)
        yield _Window(remote.size, remote.fetcher.fetch, uri=uri)
        return
    with open_source(uri, storage_options) as f:
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            yield _Window(0, None)
            return
        window = _Window(len(mm), None, mm)
        try:
            yield window
        finally:
            window.buf = b""
            with suppress(BufferError):
                mm.close()

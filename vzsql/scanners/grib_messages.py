"""GRIB message boundaries, found by vzsql itself (not by ecCodes' reader).

A GRIB file is a run of messages, each ``GRIB`` + length + edition ... ``7777``, possibly with
padding, WMO bulletin headers, or other junk before, between and after them, and GRIB1 and
GRIB2 may be mixed. ``find_messages`` searches a byte buffer (a memory map of the file) for
every ``GRIB`` with numpy, reads each candidate's edition byte and length field in one
vectorised gather, and keeps the candidates that end in ``7777`` inside the file and do not
sit inside an earlier message. Any other ``GRIB`` outside a message is a *failure* (bad
edition, bad length, truncated, missing ``7777``) reported with its byte offset; junk that
does not contain ``GRIB`` is ignored.

The scanner itself walks messages by byte range (``grib_ranges.walk_messages``), which
shares this module's length rules and failure reasons (``grib1_large_length``,
``describe_failure``); ``find_messages``, a whole-buffer search written independently of
that walk, is the reference the tests check the walk against.

GRIB2 messages may hold several fields (sections 2-7, or 3-7, or 4-7 repeated).
``split_fields`` walks the sections of one message and rebuilds each field as a standalone
single-field GRIB2 message (section 0 with a new length, section 1, the section 2/3 in force,
4, 5, the bitmap in force, 7, ``7777``), which ecCodes then decodes without its global
multi-field mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

GRIB_MAGIC = b"GRIB"
END_MAGIC = b"7777"
_BLOCK = 64 * 2**20  # bytes searched per numpy pass (bounds temporary memory)
GRIB1_LARGE_FLAG = 0x800000
GRIB1_MIN_LENGTH = 8 + 28 + 11 + 4  # section 0, shortest section 1, section 4 header, 7777
GRIB2_MIN_LENGTH = 16 + 21 + 4


@dataclass(frozen=True)
class MessageFailure:
    """A ``GRIB`` occurrence that does not begin a valid message."""

    offset: int
    reason: str


@dataclass
class MessageIndex:
    """Valid messages of a buffer (sorted by offset) and the failures seen between them."""

    offsets: np.ndarray  # int64
    lengths: np.ndarray  # int64
    editions: np.ndarray  # uint8
    failures: list[MessageFailure] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.offsets.size)


def find_candidates(data: np.ndarray) -> np.ndarray:
    """Byte offsets of every ``GRIB`` in ``data`` (uint8 array), in order, as int64."""
    n = data.size
    found: list[np.ndarray] = []
    for start in range(0, max(n - 3, 0), _BLOCK):
        stop = min(n, start + _BLOCK + 3)
        window = data[start:stop]
        g = np.flatnonzero(window[: window.size - 3] == 0x47)  # 'G'
        if g.size == 0:
            continue
        hit = (window[g + 1] == 0x52) & (window[g + 2] == 0x49) & (window[g + 3] == 0x42)
        found.append(g[hit].astype(np.int64) + start)
    return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def _gather_uint(data: np.ndarray, at: np.ndarray, nbytes: int) -> np.ndarray:
    """Big-endian unsigned integers of ``nbytes`` at offsets ``at`` (all in bounds)."""
    out = np.zeros(at.size, dtype=np.uint64)
    for k in range(nbytes):
        out = (out << np.uint64(8)) | data[at + k].astype(np.uint64)
    return out


def grib1_large_length(read: Callable[[int, int], bytes], size: int, pos: int, coded: int) -> int:
    """True length of a GRIB1 message whose 24-bit length has the large-message flag set.

    The WMO convention (as read by ecCodes): if the section 4 length is below 120, the
    length is ``(coded & 0x7FFFFF) * 120 - sec4len + 4``; otherwise the coded value holds.
    ``read(start, end)`` returns the file's bytes ``[start, end)`` (all within ``size``).
    """
    p = pos + 8
    if p + 8 > size:
        return coded
    sec1_head = read(p, p + 8)
    sec1 = int.from_bytes(sec1_head[0:3], "big")
    flags = sec1_head[7]
    p += sec1
    for present in (flags & 0x80, flags & 0x40):  # section 2 (grid), section 3 (bitmap)
        if present:
            if p + 3 > size:
                return coded
            p += int.from_bytes(read(p, p + 3), "big")
    if p + 3 > size:
        return coded
    sec4 = int.from_bytes(read(p, p + 3), "big")
    if sec4 < 120:
        return (coded & 0x7FFFFF) * 120 - sec4 + 4
    return coded


def find_messages(data: np.ndarray) -> MessageIndex:
    """Locate and validate every GRIB message in ``data`` (a uint8 array, e.g. a memory map)."""
    n = int(data.size)
    cand = find_candidates(data)
    if cand.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return MessageIndex(empty, empty.copy(), np.zeros(0, dtype=np.uint8))
    head_ok = cand + 16 <= n
    edition = np.zeros(cand.size, dtype=np.uint8)
    edition[cand + 8 <= n] = data[cand[cand + 8 <= n] + 7]
    length = np.zeros(cand.size, dtype=np.int64)
    is1 = (edition == 1) & (cand + 8 <= n)
    is2 = (edition == 2) & head_ok
    length[is1] = _gather_uint(data, cand[is1] + 4, 3).astype(np.int64)
    length[is2] = np.minimum(_gather_uint(data, cand[is2] + 8, 8), np.uint64(2**62)).astype(
        np.int64
    )
    # GRIB1 messages over 8 MB: rare, resolved one by one
    for i in np.flatnonzero(is1 & ((length & GRIB1_LARGE_FLAG) != 0)):
        length[i] = grib1_large_length(
            lambda a, b: bytes(data[a:b]), n, int(cand[i]), int(length[i])
        )
    min_len = np.where(is1, GRIB1_MIN_LENGTH, GRIB2_MIN_LENGTH)
    end = cand + length
    fits = (is1 | is2) & (length >= min_len) & (end <= n)
    tail = np.where(fits, end - 4, 0)
    has_end = fits.copy()
    for k, byte in enumerate(END_MAGIC):
        has_end &= data[tail + k] == byte
    valid = np.flatnonzero(has_end)
    # keep a valid candidate unless it starts inside an earlier valid one (then it is data)
    v_off, v_end = cand[valid], end[valid]
    prev_end = np.concatenate([[-1], np.maximum.accumulate(v_end)[:-1]])
    keep = valid[v_off >= prev_end]
    offsets, lengths, editions = cand[keep], length[keep], edition[keep]
    # every other GRIB outside the kept messages is a failure
    bad = np.setdiff1d(np.arange(cand.size), keep, assume_unique=True)
    if bad.size and offsets.size:
        j = np.searchsorted(offsets, cand[bad], side="right") - 1
        inside = (j >= 0) & (cand[bad] < (offsets[np.maximum(j, 0)] + lengths[np.maximum(j, 0)]))
        bad = bad[~inside]
    failures = [
        describe_failure(
            int(cand[i]), int(edition[i]), int(length[i]), n, lambda a, b: bytes(data[a:b])
        )
        for i in bad
    ]
    return MessageIndex(offsets, lengths, editions, failures)


def describe_failure(
    pos: int, edition: int, length: int, size: int, read: Callable[[int, int], bytes]
) -> MessageFailure:
    """Why the ``GRIB`` at ``pos`` is not a valid message (``read(start, end)``: file bytes)."""
    if pos + 8 > size or (edition == 2 and pos + 16 > size):
        return MessageFailure(pos, "truncated GRIB header at end of file")
    if edition not in (1, 2):
        return MessageFailure(pos, f"unsupported or corrupt GRIB edition byte {edition}")
    if pos + length > size:
        return MessageFailure(
            pos,
            f"GRIB{edition} message length {length} runs past the end of the file "
            f"(file size {size}): truncated or bad length field",
        )
    minimum = GRIB1_MIN_LENGTH if edition == 1 else GRIB2_MIN_LENGTH
    if length < minimum:
        return MessageFailure(pos, f"GRIB{edition} message length {length} is too small")
    found = read(pos + length - 4, pos + length)
    return MessageFailure(
        pos,
        f"GRIB{edition} message of length {length} does not end with '7777' "
        f"(found {found!r} at byte {pos + length - 4}): bad length field or corrupt message",
    )


class FieldSplitError(ValueError):
    """The sections of a GRIB2 message do not chain up to its ``7777``."""


def _section_header(msg: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    if pos + 5 > end:
        raise FieldSplitError(f"section header at message byte {pos} runs past the message end")
    length = int.from_bytes(msg[pos : pos + 4], "big")
    number = msg[pos + 4]
    if length < 5 or pos + length > end or number not in (1, 2, 3, 4, 5, 6, 7):
        raise FieldSplitError(
            f"bad section (number {number}, length {length}) at message byte {pos}"
        )
    return length, number


def field_count(msg: bytes | memoryview) -> int:
    """Number of fields in one GRIB message (GRIB1: always 1); validates GRIB2 sections."""
    if msg[7] != 2:
        return 1
    return len(_grib2_field_sections(msg))


def _grib2_field_sections(msg: bytes | memoryview) -> list[list[tuple[int, int]]]:
    """Per field, the (start, length) of its sections 1..7 in force (bitmap 254 resolved)."""
    end = len(msg) - 4
    if bytes(msg[end:]) != END_MAGIC:
        raise FieldSplitError("message does not end with '7777'")
    pos = 16
    current: dict[int, tuple[int, int]] = {}
    last_bitmap: tuple[int, int] | None = None
    fields: list[list[tuple[int, int]]] = []
    while pos < end:
        length, number = _section_header(msg, pos, end)
        if number == 1 and current:
            raise FieldSplitError(f"second section 1 at message byte {pos}")
        if number == 6:
            indicator = msg[pos + 5] if length > 5 else 255
            if indicator == 0:
                last_bitmap = (pos, length)
                current[6] = (pos, length)
            elif indicator == 254:
                if last_bitmap is None:
                    raise FieldSplitError(f"bitmap 254 without earlier bitmap at byte {pos}")
                current[6] = last_bitmap
            else:
                current[6] = (pos, length)
        else:
            current[number] = (pos, length)
        if number == 7:
            missing = [s for s in (1, 3, 4, 5, 6) if s not in current]
            if missing:
                raise FieldSplitError(
                    f"field ending at byte {pos + length} lacks sections {missing}"
                )
            fields.append([current[s] for s in (1, 2, 3, 4, 5, 6, 7) if s in current])
            for s in (4, 5, 6, 7):
                current.pop(s, None)
        pos += length
    if pos != end:
        raise FieldSplitError("sections overrun the final '7777'")
    if not fields:
        raise FieldSplitError("message holds no data section (section 7)")
    return fields


def split_field(msg: bytes | memoryview, index: int) -> bytes:
    """Field ``index`` of a GRIB message as a standalone single-field message.

    GRIB1 messages and single-field GRIB2 messages come back unchanged (``index`` must be 0).
    """
    if msg[7] != 2:
        if index != 0:
            raise FieldSplitError(f"GRIB1 message has no field {index}")
        return bytes(msg)
    fields = _grib2_field_sections(msg)
    if index >= len(fields):
        raise FieldSplitError(f"message holds {len(fields)} fields, not field {index}")
    if len(fields) == 1:
        return bytes(msg)
    body = b"".join(bytes(msg[s : s + n]) for s, n in fields[index])
    total = 16 + len(body) + 4
    return bytes(msg[0:8]) + total.to_bytes(8, "big") + body + END_MAGIC

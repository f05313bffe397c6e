"""Attribute values -> the ``attrs`` / ``attr_dtypes`` JSON texts, as every scanner writes them.

The encoding is the contract of docs/manifest-format.md ("Attribute values"): non-finite
floats as the Zarr v3 strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; byte strings decoded
as UTF-8, or latin-1 when they are not UTF-8; ``attrs`` is strict JSON (no bare NaN).
"""

from __future__ import annotations

import json
import math
from typing import Any


def json_number(v: Any) -> Any:
    """A JSON value for one number: non-finite floats as the Zarr v3 strings."""
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def decode_text(raw: bytes) -> str:
    """Attribute bytes as text: UTF-8, else latin-1 (which decodes any byte)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def attrs_texts(values: dict[str, Any], dtypes: dict[str, str]) -> tuple[str, str]:
    """The ``(attrs, attr_dtypes)`` column texts of one node's attribute values and dtypes."""
    return json.dumps(values, ensure_ascii=False, allow_nan=False), json.dumps(dtypes)

"""What kerchunk's format cannot say, carried in a top-level ``"vzsql"`` key of the refs.

kerchunk JSON (``{"version": 1, "refs": ...}``) and the Parquet ``.zmetadata`` both allow
extra top-level keys, which fsspec ignores. vzsql writes the attribute dtypes there (JSON
loses them: a float32 ``scale_factor`` would decode to float64) and notes that a Zarr v2
``fill_value`` is the storage fill, not CF ``_FillValue``. Importing a vzsql export thus
gives back the same manifest; refs written by other tools follow Zarr v2 reading rules.
"""

from __future__ import annotations

import json
from typing import Any

from vzsql.tables import Tables

EXTRAS_KEY = "vzsql"
EXTRAS_VERSION = 1


def extras_of(tables: Tables) -> dict[str, Any]:
    """The ``"vzsql"`` block for ``tables`` (one entry per array and group with dtypes)."""

    def dtypes(rows: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return {r[key]: json.loads(r["attr_dtypes"]) for r in rows if r.get("attr_dtypes")}

    return {
        "format_version": EXTRAS_VERSION,
        "fill_value_is_cf": False,
        "array_attr_dtypes": dtypes(
            tables.arrays.select(["array", "attr_dtypes"]).to_pylist(), "array"
        ),
        "group_attr_dtypes": dtypes(
            tables.groups.select(["group", "attr_dtypes"]).to_pylist(), "group"
        ),
    }


def parse_extras(value: Any) -> dict[str, Any] | None:
    """The ``"vzsql"`` block read back (None when absent or of an unknown version)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict) or value.get("format_version") != EXTRAS_VERSION:
        return None
    return value

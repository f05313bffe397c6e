"""A DuckDB connection with the manifest tables registered as views over Arrow (zero copy).

User SQL runs on a locked-down connection: no file access, no extension loading, so a
query cannot write files or reach the network unless the caller asks for it.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa

from vzsql.errors import QueryError
from vzsql.queries import load_query
from vzsql.tables import TABLE_NAMES, Tables

_SAFE_CONFIG = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
}


def connect(
    tables: Tables,
    *,
    allow_external_access: bool = False,
    resident: bool = False,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection with ``tables`` registered under their names.

    ``resident``: the ``chunks`` table is not registered; a compressed in-memory database
    is attached to hold it (``vzsql.resident``). ``memory_limit`` and ``temp_directory``
    are DuckDB's settings (where tables and intermediates spill beyond the limit).
    """
    config: dict[str, Any] = {} if allow_external_access else dict(_SAFE_CONFIG)
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if temp_directory is not None:
        config["temp_directory"] = temp_directory
    con = duckdb.connect(config=config)
    for name in TABLE_NAMES:
        if not (resident and name == "chunks"):
            con.register(name, getattr(tables, name))
    if resident:
        from vzsql.resident import attach

        attach(con)
    if not allow_external_access:
        con.execute("SET lock_configuration = true")
    return con


def run_named(
    con: duckdb.DuckDBPyConnection, name: str, params: dict[str, Any] | None = None
) -> pa.Table:
    """Execute the query file ``queries/<name>.sql`` with bound ``params``."""
    try:
        return con.sql(load_query(name), params=params or None).to_arrow_table()
    except duckdb.Error as e:
        raise QueryError(f"query {name!r} failed: {e}") from e

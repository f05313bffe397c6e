"""Load the SQL of an operation by name from the top-level ``queries/`` folder.

Each ``.sql`` file starts with a comment saying what it returns and which parameters it
takes; parameters are bound by DuckDB (``$name``), never formatted into the text.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_CANDIDATES = (
    Path(__file__).resolve().parent.parent / "queries",  # source checkout / editable install
    Path(__file__).resolve().parent / "_queries",  # wheel install
)


def queries_dir() -> Path:
    for candidate in _CANDIDATES:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("vzsql's queries/ folder is missing from this installation")


@cache
def load_query(name: str) -> str:
    """The text of ``queries/<name>.sql`` (``name`` may contain a sub-folder, e.g. ``checks/x``)."""
    path = queries_dir() / f"{name}.sql"
    if not path.is_file():
        raise KeyError(f"no query named {name!r} in {queries_dir()}")
    return path.read_text()


def all_query_names() -> list[str]:
    """Every query shipped, as names ``load_query`` accepts."""
    root = queries_dir()
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.sql"))

"""Let users write the manifest's column ``array`` unquoted in DuckDB SQL.

``ARRAY`` is a DuckDB keyword (the ``ARRAY[...]`` constructor), so a bare ``array``
column reference is a syntax error. Users' queries are re-spelled token by token: an
``array`` keyword not followed by ``[`` or ``(`` is the column and becomes ``"array"``.
String literals and comments are never touched (DuckDB's own tokenizer finds them).
"""

from __future__ import annotations

import duckdb


def quote_array_column(query: str) -> str:
    """``query`` with bare ``array`` column references double-quoted."""
    if "array" not in query.lower():
        return query
    try:
        tokens = duckdb.tokenize(query)
    except duckdb.Error:
        return query
    starts = [pos for pos, _ in tokens] + [len(query)]
    edits: list[tuple[int, int]] = []
    for i, (pos, kind) in enumerate(tokens):
        if kind != duckdb.token_type.keyword:
            continue
        text = query[pos : starts[i + 1]].rstrip()
        if text.lower() != "array" or query[pos - 1 : pos] in ("$", ":"):
            continue  # not the column: a bound parameter named $array
        following = next(
            (
                query[p : starts[j + 1]].strip()
                for j, (p, k) in enumerate(tokens[i + 1 :], start=i + 1)
                if k != duckdb.token_type.comment
            ),
            "",
        )
        if following[:1] in ("[", "("):
            continue
        edits.append((pos, pos + len(text)))
    for start, end in reversed(edits):
        query = f'{query[:start]}"{query[start:end]}"{query[end:]}'
    return query

"""Quieten Icechunk's Rust log output to errors unless the user set ``ICECHUNK_LOG``.

Icechunk warns on every open of a local repository that local storage is unsafe for
concurrent commits; vzsql's appenders handle conflicts, so the warning is noise to users.
"""

from __future__ import annotations

import os
from functools import cache


@cache
def quiet_icechunk_logs() -> None:
    if "ICECHUNK_LOG" in os.environ:
        return
    import icechunk

    icechunk.set_logs_filter("error")

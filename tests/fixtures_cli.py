"""Running the ``vzsql`` command line in a child process, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_vzsql(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m vzsql *args`` with stdout and stderr captured as text (never raises on a
    non-zero exit: tests assert on ``returncode``)."""
    return subprocess.run(
        [sys.executable, "-m", "vzsql", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
    )

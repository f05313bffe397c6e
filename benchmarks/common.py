"""Timing shared by the benchmark scripts.

The scripts run as ``python benchmarks/bench_x.py`` (``benchmarks/run.py`` runs them so, from
the repository root); each puts the repository root on ``sys.path`` first, so that
``from benchmarks.common import best_of`` works that way and as ``python -m`` too.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of[T](
    repeat: int, fn: Callable[[], T], cleanup: Callable[[], object] | None = None
) -> tuple[float, T]:
    """The best wall-clock seconds of ``repeat`` calls of ``fn`` and the last call's result.

    ``cleanup``, when given, runs before each call and outside its timing (to remove what
    the previous call wrote, say).
    """
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, not {repeat}")
    best = float("inf")
    for _ in range(repeat):
        if cleanup is not None:
            cleanup()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out

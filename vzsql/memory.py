"""Peak memory of a block of code: a sampler of this process's resident set size (RSS).

``resource.getrusage`` gives the high-water mark of the whole process, which cannot say
what one step of a benchmark cost once an earlier step peaked higher. ``PeakRSS`` samples
``/proc/self/statm`` in a background thread every few milliseconds while the block runs
and reports the peak, and the peak above the RSS at entry (what the step added).
"""

from __future__ import annotations

import os
import resource
import threading
import time
from types import TracebackType

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes() -> int:
    """Resident set size of this process now (bytes); the high-water mark where /proc is absent."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:  # pragma: no cover - no procfs
        return max_rss_bytes()


def available_bytes() -> int | None:
    """Memory the system can still give processes (``MemAvailable``), None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * _PAGE
    except (AttributeError, ValueError, OSError):  # pragma: no cover - exotic platforms
        return None


def max_rss_bytes() -> int:
    """High-water mark of this process's RSS since it started (bytes, Linux units)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakRSS:
    """``with PeakRSS() as p: ...`` then ``p.peak`` (bytes) and ``p.added`` (peak - start)."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = 0
        self.peak = 0
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def added(self) -> int:
        return max(0, self.peak - self.start)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = rss_bytes()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="vzsql-peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.seconds = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())

"""Run every benchmark in this folder (and the slow-marked tests) in one go, printing each report.

.venv/bin/python benchmarks/run.py            # all benchmarks
.venv/bin/python benchmarks/run.py scan grib  # only those whose file name contains a word
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(words: list[str]) -> int:
    scripts = sorted(
        p for p in HERE.glob("bench_*.py") if not words or any(w in p.name for w in words)
    )
    failed = 0
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"--- {script.name}: exit {rc}, {time.perf_counter() - t0:.1f} s", flush=True)
        failed += rc != 0
    if not words:
        print("\n=== slow tests (pytest -m slow) ===", flush=True)
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "slow"], cwd=HERE.parent)
        failed += rc not in (0, 5)  # 5: no slow tests collected
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Run every benchmark in this folder (and the slow-marked tests) in one go, printing each report.

.venv/bin/python benchmarks/run.py            # all benchmarks
.venv/bin/python benchmarks/run.py scan grib  # only those whose file name contains a word
.venv/bin/python benchmarks/run.py --full many  # scripts in SMALL at their full size

Scripts listed in ``SMALL`` run with the arguments given there (a smaller archive: their
full run takes long on a shared 2-core machine) unless ``--full`` is given.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# arguments for a short run of long benchmarks (dropped by --full)
SMALL = {
    "bench_many_files.py": ["--files", "2000", "--subset", "500"],  # full: 100,000 files
}


def main(words: list[str]) -> int:
    full = "--full" in words
    words = [w for w in words if w != "--full"]
    scripts = sorted(
        p for p in HERE.glob("bench_*.py") if not words or any(w in p.name for w in words)
    )
    failed = 0
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.perf_counter()
        extra = [] if full else SMALL.get(script.name, [])
        rc = subprocess.call([sys.executable, str(script), *extra], cwd=HERE.parent)
        print(f"--- {script.name}: exit {rc}, {time.perf_counter() - t0:.1f} s", flush=True)
        failed += rc != 0
    if not words:
        print("\n=== slow tests (pytest -m slow) ===", flush=True)
        rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-m", "slow"], cwd=HERE.parent)
        failed += rc not in (0, 5)  # 5: no slow tests collected
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

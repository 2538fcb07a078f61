"""`python -m bench`: run every benchmark script in this folder, one after another.

`python -m bench --quick` passes `--quick` to the scripts that have it (a short run each).
Modules named `*_harness.py` hold code shared by benchmarks and are not run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).parent
    failed = 0
    quick = "--quick" in sys.argv[1:]
    for script in sorted(here.glob("bench_*.py")):
        if script.stem.endswith("_harness"):
            continue
        extra = ["--quick"] if quick and "--quick" in script.read_text() else []
        print(f"\n== {script.name} {' '.join(extra)}", flush=True)
        failed += subprocess.call([sys.executable, str(script), *extra]) != 0
    sys.exit(1 if failed else 0)

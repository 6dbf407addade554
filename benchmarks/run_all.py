"""Run every benchmark script in this folder (``make bench``), each in its own process.

Each ``bench_*.py`` measures wall time and peak memory against a peer implementation run in the same session
and writes its table to ``benchmarks/results/<name>.md``; ``benchmarks/README.md`` collects the tables.
"""

import subprocess
import sys
from pathlib import Path

here = Path(__file__).parent
scripts = sorted(here.glob("bench_*.py"))
failed = []
for script in scripts:
    print(f"== {script.name}", flush=True)
    if subprocess.run([sys.executable, str(script)], cwd=here.parent).returncode != 0:
        failed.append(script.name)
if failed:
    sys.exit(f"benchmarks failed: {', '.join(failed)}")

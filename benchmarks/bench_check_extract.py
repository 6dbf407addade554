"""Benchmark of ``prosperity.link.check_extract`` on a population-sized extract (issue 16: a 300M-row extract
checked in under a minute and under 2 GB).

The workshop England is written to Parquet; its ``jobs`` table is then tiled by DuckDB to ``--rows`` rows (each
tile gets fresh person ids, so the table is as wide and as varied per row group as the real one would be) and
written as one Parquet file with 1M-row row groups, beside the other (small) tables. ``check_extract`` runs on that
folder in a fresh child process, so its wall time, CPU time and peak resident memory are its own.

Usage: ``nice -n 10 .venv/bin/python benchmarks/bench_check_extract.py [--rows 300000000]``.
Writes ``benchmarks/results/check_extract.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "check_extract.md"


def _vm_hwm() -> int:
    """This process's peak resident memory (bytes) since its ``exec`` (``VmHWM``). Not ``ru_maxrss``: Linux keeps
    that across ``execve``, so a child spawned by a large parent would report the parent's resident size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def child(folder: str) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from prosperity import link

    t0, c0 = time.perf_counter(), time.process_time()
    chk = link.check_extract(folder)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    jobs = chk.tables.set_index("table").loc["jobs"]
    return dict(wall_s=round(wall, 2), cpu_s=round(cpu, 2),
                peak_mib=round(_vm_hwm() / 2**20),
                jobs_rows=int(jobs["rows"]), verdict=chk.verdict)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=300_000_000)
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    sys.path.insert(0, str(ROOT / "src"))
    import duckdb

    from prosperity import synthetic

    with tempfile.TemporaryDirectory(prefix="bench_check_extract_") as tmp:
        src = Path(tmp) / "workshop"
        synthetic.england(size="workshop", seed=0).to_parquet(src)
        tables = next(p for p in (src / "tables", src) if (p / "jobs.parquet").exists() or (p / "jobs").exists())
        big = Path(tmp) / "extract"
        shutil.copytree(tables, big)
        jobs_src = tables / "jobs.parquet" if (tables / "jobs.parquet").exists() else tables / "jobs" / "*.parquet"
        (big / "jobs.parquet").unlink(missing_ok=True)
        shutil.rmtree(big / "jobs", ignore_errors=True)
        con = duckdb.connect()
        n0 = con.execute(f"SELECT count(*) FROM read_parquet('{jobs_src}')").fetchone()[0]
        tiles = -(-args.rows // n0)
        t0 = time.perf_counter()
        con.execute(f"""COPY (SELECT * REPLACE (piden + t.range * 100000000 AS piden)
                              FROM read_parquet('{jobs_src}') CROSS JOIN range({tiles}) t LIMIT {args.rows})
                        TO '{big / "jobs.parquet"}' (FORMAT parquet, ROW_GROUP_SIZE 1000000)""")
        write_s = time.perf_counter() - t0
        con.close()
        size_gib = (big / "jobs.parquet").stat().st_size / 2**30
        p = subprocess.run([sys.executable, __file__, "--child", str(big)], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"bench_check_extract: check_extract failed:\n{p.stderr[-4000:]}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    text = f"""# `link.check_extract` on a population-sized extract (benchmarks/bench_check_extract.py)

Measured {stamp} on {platform.machine()}, 2 cores (shared machine; run niced), Python {platform.python_version()}.
The workshop England's `jobs` table tiled by DuckDB to {r["jobs_rows"]:,} rows (fresh person ids per tile), one
Parquet file of {size_gib:.2f} GiB with 1M-row row groups, written in {write_s:.0f} s; the other tables as written.
`check_extract` ran in a fresh process (peak: its `VmHWM`).

| jobs rows | wall s | CPU s | peak MiB | verdict | target |
|---|---|---|---|---|---|
| {r["jobs_rows"]:,} | {r["wall_s"]} | {r["cpu_s"]} | {r["peak_mib"]:,} | {r["verdict"]} | < 60 s, < 2,048 MiB |
"""
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

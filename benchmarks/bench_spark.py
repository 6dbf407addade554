"""Benchmark of the linker on its two engines: DuckDB (embedded) vs Spark local mode (issue 15).

The synthetic England of each size is written once to Parquet; each engine then links the same Parquet files in
its own Python process (``build_panel(dir, output=..., engine=...)``) and fits AKM on the panel it wrote
(``akm.fit`` on DuckDB's side, ``akm_spark.fit`` on Spark's: ``akm_s``, and the largest difference of the firm
effects between the two), so the peak memory of a run is its own:
``VmHWM`` of the Python process (not ``ru_maxrss``, which Linux keeps across ``execve``, so a child would report
the parent's peak), plus for Spark the high-water mark (``VmHWM``) of the JVM, which in local
mode is the driver and the executors at once, and of Spark's Python workers (``pyspark.daemon`` and its forks, the
pandas UDF of ``ln``; they come and go, so a thread samples them every half second: the largest ``VmHWM`` of one
worker and the largest sum of their resident memory at one sample). CPU seconds: the Python process's own, and
the JVM's with its reaped children (the Python workers), from ``/proc``. Spark's time includes starting the
session (reported apart). The panels written by the two engines are then read back and compared exactly
(sorted), with the ledgers.

Run with ``nice -n 10 .venv/bin/python benchmarks/bench_spark.py [--sizes workshop research] [--fraction 0.1]``;
``--fraction F`` adds an extract of the England-sized population (``synthetic.write_population(fraction=F)``:
the first F of its 27 million workers against the full business register; 0.1 gives about 31 million job rows).
Writes ``benchmarks/results/spark.md``. Needs the spark extra (``make spark``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
#: the session of every Spark run; --driver-memory (passed to the child runs through the environment) sets the heap
SESSION = dict(master="local[2]", shuffle_partitions=4,
               driver_memory=os.environ.get("BENCH_SPARK_DRIVER_MEMORY", "2g"))


def spark_session(master="local[2]", shuffle_partitions=4, driver_memory="2g"):
    """A local-mode session like the tests' (UI off, loopback only), as on a laptop or CI. Its Python workers run
    this interpreter (the venv with pyarrow, which the linker's pandas UDF needs), as in tests/test_spark.py."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    spark = (SparkSession.builder.master(master).appName("prosperity-bench")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
             .config("spark.driver.memory", driver_memory)
             .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _vm_hwm(pid: int) -> int:
    """Peak resident memory (bytes) of a live process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _cpu_s(pid: int, children: bool = True) -> float:
    """CPU seconds of a live process (user + system), with those of its reaped children, from /proc."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in f[11:15 if children else 13])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its descendants, living (their own) and reaped (their parents' ``cutime``)."""
    total = _cpu_s(pid)
    for p in _descendants(pid):
        try:
            total += _cpu_s(p)
        except OSError:  # ended since the listing; its time is in its parent's cutime once reaped
            pass
    return total


def _descendants(pid: int) -> list[int]:
    kids, out = {}, []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    todo = list(kids.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


class _WorkerSampler(threading.Thread):
    """Samples the JVM's descendant processes (Spark's Python workers) every ``every`` seconds: the largest
    ``VmHWM`` of one of them and the largest sum of their ``VmRSS`` at one sample (bytes)."""

    def __init__(self, jvm: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.jvm, self.every, self.hwm, self.rss_sum, self._halt = jvm, every, 0, 0, threading.Event()

    def run(self):
        while not self._halt.wait(self.every):
            total = 0
            for p in _descendants(self.jvm):
                try:
                    st = {k: int(v.split()[0]) * 1024 for k, v in (
                        line.split(":", 1) for line in Path(f"/proc/{p}/status").read_text().splitlines()
                        if line.startswith(("VmHWM:", "VmRSS:")))}
                except (OSError, ValueError):
                    continue
                self.hwm = max(self.hwm, st.get("VmHWM", 0))
                total += st.get("VmRSS", 0)
            self.rss_sum = max(self.rss_sum, total)

    def stop(self):
        self._halt.set()
        self.join()


def child(engine: str, src: str, out: str) -> dict:
    """One run, in this process: link ``src`` into ``out`` on ``engine``; returns times and peak memory."""
    import warnings

    sys.path.insert(0, str(ROOT / "src"))
    from prosperity import link

    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    kw, jvm, sampler = {}, None, None
    if engine == "spark":
        spark = spark_session(**SESSION)
        kw = dict(engine="spark", spark=spark)
        jvm = spark.sparkContext._gateway.proc.pid
        sampler = _WorkerSampler(jvm)
        sampler.start()
    else:  # DuckDB within a memory limit (the population-scale setting; one pass below 15M job rows)
        kw = dict(memory_limit="6GB")
    t1 = time.perf_counter()
    c1 = _own_cpu() + (_tree_cpu_s(jvm) if jvm else 0.0)
    ld = link.build_panel(src, output=out, **kw)
    t2 = time.perf_counter()
    c2 = _own_cpu() + (_tree_cpu_s(jvm) if jvm else 0.0)
    # AKM on the linked panel, on the same engine: akm.fit (sparse) or akm_spark.fit (statistics on Spark)
    if engine == "spark":
        from prosperity import akm_spark

        fit = akm_spark.fit(spark.read.parquet(str(Path(out) / "workers.parquet")), "lhw", "piden", "entref")
        akm_extra = dict(akm_matches=fit.diagnostics["matches"], akm_nonzeros=fit.diagnostics["nonzeros"])
    else:
        from prosperity import akm

        fit = akm.fit(pd.read_parquet(Path(out) / "workers.parquet", columns=["piden", "entref", "lhw"]), "lhw",
                      "piden", "entref")
        akm_extra = {}
    fit.firm_effects.to_parquet(str(out) + "_psi.parquet", index=False)
    t3 = time.perf_counter()
    c3 = _own_cpu() + (_tree_cpu_s(jvm) if jvm else 0.0)
    res = dict(engine=engine, start_s=round(t1 - t0, 1), link_s=round(t2 - t1, 1),
               link_cpu_s=round(c2 - c1, 1), akm_s=round(t3 - t2, 1), akm_cpu_s=round(c3 - c2, 1), **akm_extra,
               workers=int(ld.ledger[ld.ledger["table"] == "jobs"]["rows_out"].iloc[-1]),
               raw_jobs=int(ld.ledger[ld.ledger["table"] == "jobs"]["rows_in"].iloc[0]),
               python_peak_mib=round(_vm_hwm(os.getpid()) / 2**20))  # not ru_maxrss: kept across exec
    res["jvm_peak_mib"] = round(_vm_hwm(jvm) / 2**20) if jvm else 0
    if sampler is not None:
        sampler.stop()
        res["pyworker_peak_mib"] = round(sampler.hwm / 2**20)
        res["pyworkers_sum_mib"] = round(sampler.rss_sum / 2**20)
        res["driver_memory"] = spark.conf.get("spark.driver.memory")
    return res


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def identical(a: Path, b: Path) -> bool:
    """The two output folders hold the same panels and the same ledger: the same column names and types, and the
    same rows as multisets (``EXCEPT ALL`` both ways in DuckDB, which compares doubles exactly and NULLs as equal,
    within a memory limit, so a 30-million-row panel need not fit in pandas twice)."""
    import duckdb
    import pyarrow.parquet as pq

    con = duckdb.connect(config={"memory_limit": "3GB", "threads": 2})
    for name in ("workers", "firms", "places", "sites", "ledger"):
        x, y = a / f"{name}.parquet", b / f"{name}.parquet"
        sx, sy = pq.read_schema(x), pq.read_schema(y)
        if [(f.name, f.type) for f in sx] != [(f.name, f.type) for f in sy]:
            print(f"{name}: DIFFERENT columns or types", file=sys.stderr)
            return False
        n = con.execute(f"SELECT (SELECT count(*) FROM '{x}'), (SELECT count(*) FROM '{y}'), "
                    f"(SELECT count(*) FROM (FROM '{x}' EXCEPT ALL FROM '{y}')), "
                    f"(SELECT count(*) FROM (FROM '{y}' EXCEPT ALL FROM '{x}'))").fetchone()
        if n[0] != n[1] or n[2] or n[3]:
            print(f"{name}: DIFFERENT rows {n}", file=sys.stderr)
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="*", default=["workshop", "research"])
    ap.add_argument("--fraction", type=float, default=None,
                    help="also an extract of the population: write_population(fraction=F)")
    ap.add_argument("--extract", type=Path, default=None,
                    help="with --fraction: a folder write_population(seed=0, fraction=F) already wrote (reused)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "spark.md",
                    help="the results file (default benchmarks/results/spark.md)")
    ap.add_argument("--driver-memory", default=None, help="spark.driver.memory of the Spark runs (default 2g)")
    ap.add_argument("--child", nargs=3, metavar=("ENGINE", "SRC", "OUT"))
    args = ap.parse_args()
    if args.driver_memory:  # the child runs read it from the environment
        os.environ["BENCH_SPARK_DRIVER_MEMORY"] = SESSION["driver_memory"] = args.driver_memory
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    sys.path.insert(0, str(ROOT / "src"))
    from prosperity import synthetic

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_spark_") as tmp:
        sizes = list(args.sizes) + ([f"population x {args.fraction:g}"] if args.fraction else [])
        for size in sizes:
            src = Path(tmp) / size.replace(" ", "_") / "source"
            g0 = time.perf_counter()
            if size.startswith("population") and args.extract is not None:
                src = args.extract
                (Path(tmp) / size.replace(" ", "_")).mkdir(parents=True)
            elif size.startswith("population"):
                synthetic.write_population(src, seed=0, fraction=args.fraction, quiet=True)
            else:
                synthetic.england(size=size, seed=0).to_parquet(src)
            print(f"{size}: generated in {time.perf_counter() - g0:.0f} s", flush=True)
            outs = {}
            for engine in ("duckdb", "spark"):
                outs[engine] = Path(tmp) / size.replace(" ", "_") / engine
                p = subprocess.run([sys.executable, __file__, "--child", engine, str(src), str(outs[engine])],
                                   capture_output=True, text=True)
                if p.returncode != 0:  # say why: the child's own traceback, not only its exit status
                    err = p.stderr[p.stderr.rfind("Traceback"):] if "Traceback" in p.stderr else p.stderr
                    jvm = [ln for ln in p.stderr.splitlines() if "OutOfMemoryError" in ln or " ERROR " in ln][:8]
                    err = "\n".join(["JVM log (first ERROR lines):", *jvm, ""]) + err if jvm else err
                    sys.exit(f"bench_spark: the {engine} run on {size} failed:\n{err[:6000]}")
                r = json.loads(p.stdout.strip().splitlines()[-1])
                rows.append({"size": size, **r})
                print(rows[-1], flush=True)
            rows[-1]["identical"] = rows[-2]["identical"] = identical(outs["duckdb"], outs["spark"])
            psi = [pd.read_parquet(str(outs[e]) + "_psi.parquet") for e in ("duckdb", "spark")]
            same_firms = psi[0]["entref"].tolist() == psi[1]["entref"].tolist()
            rows[-1]["akm_max_psi_diff"] = rows[-2]["akm_max_psi_diff"] = (
                float((psi[0]["psi"] - psi[1]["psi"]).abs().max()) if same_firms else float("nan"))
    table = pd.DataFrame(rows)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    import pyspark

    text = (f"# Linker: DuckDB vs Spark local mode\n\nMeasured {stamp} on {platform.node()} "
            f"({platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the end), "
            f"command `{' '.join(['benchmarks/bench_spark.py', *sys.argv[1:]])}`, pyspark "
            f"{pyspark.__version__} `{SESSION['master']}` ({SESSION['shuffle_partitions']} shuffle partitions), "
            "synthetic England seed 0 read from Parquet, panels written with `output=`. `start_s`: Spark session "
            "start; `link_s`: `build_panel`; `akm_s`: AKM on the linked panel; `*_cpu_s`: CPU seconds of the "
            "Python process and (Spark) the JVM with its Python workers; peak memory: Python process "
            "(`VmHWM`), the JVM (`VmHWM`; in local mode driver and executors are one JVM, "
            f"`spark.driver.memory` {SESSION['driver_memory']}), Spark's Python workers (`pyworker_peak_mib`: the "
            "largest `VmHWM` of one; `pyworkers_sum_mib`: the largest sum of their resident memory at one "
            "half-second sample). `identical`: the "
            "panels and ledgers of the two engines compared exactly after sorting; `akm_max_psi_diff`: the largest "
            "difference of the firm effects.\n\n<!-- spark-table -->\n\n" + table.to_markdown(index=False) +
            "\n\n<!-- end spark-table -->\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()

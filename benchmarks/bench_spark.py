"""Benchmark of the linker on its two engines: DuckDB (embedded) vs Spark local mode (issue 15).

The synthetic England of each size is written once to Parquet; each engine then links the same Parquet files in
its own Python process (``build_panel(dir, output=..., engine=...)``) and fits AKM on the panel it wrote
(``akm.fit`` on DuckDB's side, ``akm_spark.fit`` on Spark's: ``akm_s``, and the largest difference of the firm
effects between the two), so the peak memory of a run is its own:
``VmHWM`` of the Python process (not ``ru_maxrss``, which Linux keeps across ``execve``, so a child would report
the parent's peak), plus for Spark the high-water mark (``VmHWM``) of the JVM, which in local
mode is the driver and the executors at once. Spark's time includes starting the session (reported apart). The
panels written by the two engines are then read back and compared exactly (sorted), with the ledgers.

Run with ``nice -n 10 .venv/bin/python benchmarks/bench_spark.py [--sizes workshop research]``; writes
``benchmarks/results/spark.md``. Needs the spark extra (``make spark``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SESSION = dict(master="local[2]", shuffle_partitions=4)


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


def child(engine: str, src: str, out: str) -> dict:
    """One run, in this process: link ``src`` into ``out`` on ``engine``; returns times and peak memory."""
    import warnings

    sys.path.insert(0, str(ROOT / "src"))
    from prosperity import link

    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    kw, jvm = {}, None
    if engine == "spark":
        spark = spark_session(**SESSION)
        kw = dict(engine="spark", spark=spark)
        jvm = spark.sparkContext._gateway.proc.pid
    t1 = time.perf_counter()
    ld = link.build_panel(src, output=out, **kw)
    t2 = time.perf_counter()
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
    res = dict(engine=engine, start_s=round(t1 - t0, 1), link_s=round(t2 - t1, 1), akm_s=round(t3 - t2, 1),
               **akm_extra,
               workers=int(ld.ledger[ld.ledger["table"] == "jobs"]["rows_out"].iloc[-1]),
               raw_jobs=int(ld.ledger[ld.ledger["table"] == "jobs"]["rows_in"].iloc[0]),
               python_peak_mib=round(_vm_hwm(os.getpid()) / 2**20))  # not ru_maxrss: kept across exec
    res["jvm_peak_mib"] = round(_vm_hwm(jvm) / 2**20) if jvm else 0
    return res


def identical(a: Path, b: Path) -> bool:
    """The two output folders hold the same panels (sorted by their keys) and the same ledger."""
    keys = {"workers": ["piden", "year"], "firms": ["entref", "year"], "sites": ["luref", "year"]}
    for name in ("workers", "firms", "places", "sites", "ledger"):
        x, y = pd.read_parquet(a / f"{name}.parquet"), pd.read_parquet(b / f"{name}.parquet")
        if name in keys:
            x, y = (t.sort_values(keys[name]).reset_index(drop=True) for t in (x, y))
        if not x.equals(y):
            print(f"{name}: DIFFERENT", file=sys.stderr)
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["workshop", "research"])
    ap.add_argument("--child", nargs=3, metavar=("ENGINE", "SRC", "OUT"))
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    sys.path.insert(0, str(ROOT / "src"))
    from prosperity import synthetic

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_spark_") as tmp:
        for size in args.sizes:
            src = Path(tmp) / size / "source"
            synthetic.england(size=size, seed=0).to_parquet(src)
            outs = {}
            for engine in ("duckdb", "spark"):
                outs[engine] = Path(tmp) / size / engine
                p = subprocess.run([sys.executable, __file__, "--child", engine, str(src), str(outs[engine])],
                                   capture_output=True, text=True)
                if p.returncode != 0:  # say why: the child's own traceback, not only its exit status
                    err = p.stderr[p.stderr.rfind("Traceback"):] if "Traceback" in p.stderr else p.stderr
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
    import pyspark

    text = (f"# Linker: DuckDB vs Spark local mode\n\nMeasured {stamp} on {platform.node()} "
            f"({platform.machine()}, shared 2-core machine, other jobs running), `nice -n 10`, pyspark "
            f"{pyspark.__version__} `{SESSION['master']}` ({SESSION['shuffle_partitions']} shuffle partitions), "
            "synthetic England seed 0 read from Parquet, panels written with `output=`. `start_s`: Spark session "
            "start; `link_s`: `build_panel`; `akm_s`: AKM on the linked panel; peak memory: Python process "
            "(`VmHWM`) and the JVM (`VmHWM`; in local mode driver and executors are one JVM). `identical`: the "
            "panels and ledgers of the two engines compared exactly after sorting; `akm_max_psi_diff`: the largest "
            "difference of the firm effects.\n\n" + table.to_markdown(index=False) + "\n")
    (ROOT / "benchmarks" / "results" / "spark.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()

"""Benchmark of prosperity.link.build_panel (DuckDB) against a plain pandas implementation of the same joins.

Each run happens in its own child process (so peak memory is that run's own maximum resident set size), on
the same Parquet files, one after the other in this session:

* ``research``: ``synthetic.england(size="research")`` written to Parquet; DuckDB and pandas both link it, and
  the two worker panels are checked to be identical.
* ``population``: a population-sized Parquet set (from ``synthetic``'s population writer when it exists;
  otherwise the research tables tiled ``--tiles`` times with fresh person ids, the size stated in the table).
  DuckDB links it with ``memory_limit`` (default 6GB) spilling to a temporary directory; pandas is run
  under an address-space cap (``--pandas-cap-gb``, default 14) so that it fails cleanly instead of
  exhausting the shared machine.

Usage: ``nice -n 10 .venv/bin/python benchmarks/bench_link.py [--tiles 40] [--skip-population]``.
Writes ``benchmarks/results/link.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "link.md"


# ------------------------------------------------------------------------------------------------------
# The pandas reference: the same rules as prosperity.link.build_panel (default options), in plain pandas.
def pandas_link(directory: Path, trim=(0.005, 0.995), max_hours=100.0) -> dict:
    from prosperity.classifications import sic_section

    t = {name: pd.read_parquet(directory / f"{name}.parquet") if (directory / f"{name}.parquet").exists()
         else pd.read_parquet(directory / name)
         for name in ("jobs", "local_units", "enterprises", "accounts", "postcode_lookup",
                      "entref_continuity", "place_characteristics", "cpi")}
    jobs = t["jobs"]
    y0, y1 = int(jobs.year.min()), int(jobs.year.max())
    j = jobs.drop_duplicates()
    j = j[(j.gpay > 0) & (j.hours > 0) & (j.hours <= max_hours)]
    j = j.sort_values(["piden", "year", "gpay", "hours", "luref", "entref"],
                      ascending=[True, True, False, False, True, True], na_position="last")
    j = j.drop_duplicates(["piden", "year"], keep="first")
    cpi = t["cpi"].set_index("year")["cpih"]
    base = cpi.index[np.isclose(cpi.to_numpy(), 100.0)]  # the index reference year (2015), as build_panel
    ratio = cpi[base[0] if len(base) else y1] / j.year.map(cpi)
    j = j.assign(hw=j.gpay / j.hours * ratio, ww=j.gpay * ratio)
    lu = t["local_units"][["luref", "entref", "year", "postcode", "employment"]]
    j = j.merge(lu[["luref", "year", "entref", "postcode"]].rename(columns={"entref": "lu_entref"}),
                on=["luref", "year"], how="inner")
    j = j.merge(t["postcode_lookup"], on="postcode", how="inner")
    q = j.groupby("year")["hw"].quantile(list(trim)).unstack()
    lo, hi = j.year.map(q[trim[0]]), j.year.map(q[trim[1]])
    j = j[(j.hw >= lo) & (j.hw <= hi)]
    # continuity chains resolved to their last reference
    step = dict(zip(t["entref_continuity"].old_entref, t["entref_continuity"].new_entref))
    final = {}
    for old in step:
        cur = old
        while cur in step:
            cur = step[cur]
        final[old] = cur
    resolve = lambda s: s.map(final).fillna(s).astype(s.dtype)  # noqa: E731
    j["entref"] = resolve(j.entref.fillna(j.lu_entref))
    ent = t["enterprises"].assign(entref=lambda d: resolve(d.entref))
    ent = ent.drop_duplicates(["entref", "year"], keep="last")
    acc = t["accounts"].assign(entref=lambda d: resolve(d.entref)).drop_duplicates(["entref", "year"])
    j = j.merge(ent[["entref", "year", "sic07", "employment"]].rename(columns={"employment": "firm_size"}),
                on=["entref", "year"], how="left")
    j["industry"] = sic_section(j.sic07).to_numpy()
    j["lhw"] = np.log(j.hw)
    workers = j.sort_values(["piden", "year"]).reset_index(drop=True)
    # firms: sites and largest site, accounts, workers in the panel
    lur = lu.assign(entref=lambda d: resolve(d.entref)).merge(t["postcode_lookup"], on="postcode", how="left")
    lur = lur.sort_values(["entref", "year", "employment", "luref"], ascending=[True, True, False, True])
    sites = lur.groupby(["entref", "year"]).agg(sites=("luref", "size"), hq_luref=("luref", "first"),
                                                 lad=("lad", "first"))
    wagg = workers.groupby(["entref", "year"]).agg(n_workers=("piden", "size"), mean_lhw=("lhw", "mean"))
    firms = (ent.merge(sites.reset_index(), on=["entref", "year"], how="left")
             .merge(acc[["entref", "year", "gva"]], on=["entref", "year"], how="left")
             .merge(wagg.reset_index(), on=["entref", "year"], how="left"))
    firms["gva_per_worker"] = firms.gva / firms.employment.where(firms.employment > 0)
    # places: district-year employment and workers
    emp = lur.groupby(["lad", "year"]).agg(employment=("employment", "sum"), sites=("luref", "size"))
    pw = workers.groupby(["lad", "year"]).agg(n_workers=("piden", "size"), mean_lhw=("lhw", "mean"))
    places = (t["place_characteristics"].set_index(["lad", "year"]).join(emp, how="outer")
              .join(pw, how="outer").reset_index())
    return {"workers": workers, "firms": firms, "places": places}


# ------------------------------------------------------------------------------------------------------
def _child(kind: str, directory: str, out: str, memory_limit: str | None, cap_gb: float | None,
           log_file: str | None = None):
    """Run one implementation and print a JSON line with its time, CPU time, peak memory and panel sizes."""
    if log_file:  # per-query timings of build_panel (logger prosperity.link at DEBUG)
        import logging

        logging.basicConfig(filename=log_file, level=logging.WARNING, format="%(asctime)s %(message)s")
        logging.getLogger("prosperity.link").setLevel(logging.DEBUG)
    if cap_gb:
        cap = int(cap_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    t0 = time.perf_counter()
    status = "ok"
    sizes = {}
    try:
        if kind == "duckdb":
            from prosperity import link

            linked = link.build_panel(Path(directory), memory_limit=memory_limit, threads=2,
                                      output=Path(out) if out else None)
            if out:
                import pyarrow.parquet as pq

                sizes = {k: pq.ParquetFile(linked.paths[k]).metadata.num_rows for k in ("workers", "firms")}
            else:
                sizes = {"workers": len(linked.workers), "firms": len(linked.firms)}
                linked.workers.to_parquet(Path(directory).parent / "workers_duckdb.parquet")
        else:
            res = pandas_link(Path(directory))
            sizes = {"workers": len(res["workers"]), "firms": len(res["firms"])}
            res["workers"].to_parquet(Path(directory).parent / "workers_pandas.parquet")
    except MemoryError:
        status = "MemoryError"
    except Exception as exc:  # report, do not hide
        status = f"{type(exc).__name__}: {str(exc)[:200]}"
    seconds = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    peak = ru.ru_maxrss / 2**20  # KiB -> GiB
    print(json.dumps({"status": status, "seconds": seconds, "cpu_seconds": ru.ru_utime + ru.ru_stime,
                      "peak_gb": peak, **sizes}), flush=True)


def run_child(kind, directory, out=None, memory_limit=None, cap_gb=None, log_file=None):
    cmd = [sys.executable, __file__, "--child", kind, str(directory), "--out", str(out or ""),
           "--memory-limit", str(memory_limit or ""), "--cap", str(cap_gb or 0),
           "--log-file", str(log_file or "")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        status = "killed" if proc.returncode < 0 else f"exit {proc.returncode}"
        return {"status": f"{status}: {proc.stderr.strip().splitlines()[-1:] }", "seconds": float("nan"),
                "peak_gb": float("nan")}
    return json.loads(lines[-1])


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def dir_size_gb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**30


def parquet_rows(path: Path) -> int:
    import pyarrow.dataset as ds

    return ds.dataset(path, format="parquet").count_rows()


def tile(src: Path, dst: Path, tiles: int):
    """A population-sized set: the firm, place and lookup tables of ``src`` (linked, not copied) and its jobs
    table repeated ``tiles`` times, each copy with person ids shifted by ``k * 10**10`` (a new set of people in
    the same firms; the last two digits, and so the ASHE rule, are kept), written as one Parquet part per copy."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.parquet"):
        if f.stem != "jobs" and not (dst / f.name).exists():
            os.symlink(f.resolve(), dst / f.name)
    (dst / "jobs").mkdir(exist_ok=True)
    pf = pq.ParquetFile(src / "jobs.parquet")
    for k in range(tiles):
        out = dst / "jobs" / f"part-{k:04d}.parquet"
        if out.exists():
            continue
        writer = None
        for i in range(pf.num_row_groups):
            rg = pf.read_row_group(i)
            piden = pc.add(rg.column("piden"), pa.scalar(k * 10**10, type=pa.int64()))
            rg = rg.set_column(rg.schema.get_field_index("piden"), "piden", piden)
            if writer is None:
                writer = pq.ParquetWriter(out, rg.schema)
            writer.write_table(rg)
        writer.close()


def tables_dir(path: Path) -> Path:
    return path / "tables" if (path / "tables").is_dir() else path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child", nargs=2)
    ap.add_argument("--out", default="")
    ap.add_argument("--memory-limit", default="")
    ap.add_argument("--cap", type=float, default=0)
    ap.add_argument("--fraction", type=float, default=0.01,
                    help="share of the population's workers simulated by synthetic.write_population")
    ap.add_argument("--tiles", type=int, default=100, help="copies of those jobs in the population set")
    ap.add_argument("--memory-limit-population", default="6GB")
    ap.add_argument("--pandas-cap-gb", type=float, default=14.0)
    ap.add_argument("--skip-research", action="store_true")
    ap.add_argument("--skip-population", action="store_true")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--log-file", default="")
    ap.add_argument("--population-dir", default=None,
                    help="link this population set (e.g. synthetic.write_population at fraction 1) instead of "
                         "building one from --fraction and --tiles")
    args = ap.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.out, args.memory_limit or None, args.cap or None,
               args.log_file or None)
        return

    from prosperity import synthetic

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_link_"))
    work.mkdir(parents=True, exist_ok=True)
    rows, notes = [], []
    # research ----------------------------------------------------------------------------------------
    if not args.skip_research:
        research = work / "research"
        if not (research / "tables" / "jobs.parquet").exists():
            t0 = time.perf_counter()
            synthetic.england(size="research", seed=0).to_parquet(research)
            print(f"research set written in {time.perf_counter() - t0:.0f}s", flush=True)
        src = tables_dir(research)
        n_jobs = parquet_rows(src / "jobs.parquet")
        for kind in ("duckdb", "pandas"):
            r = run_child(kind, src)
            print(kind, r, flush=True)
            rows.append(dict(data="research", jobs_rows=n_jobs, parquet_gb=dir_size_gb(src), impl=kind,
                             load=os.getloadavg()[0], when=_now(), **r))
        a = pd.read_parquet(work / "research" / "workers_duckdb.parquet")
        b = pd.read_parquet(work / "research" / "workers_pandas.parquet")
        cols = ["piden", "year", "entref", "luref", "lad"]
        same = (len(a) == len(b) and bool((a[cols].to_numpy() == b[cols].to_numpy()).all())
                and bool(np.allclose(a.hw.to_numpy(), b.hw.to_numpy())))
        print("identical worker panels:", same, flush=True)
        notes.append(f"Research size: the DuckDB and pandas worker panels are identical (piden, year, entref, "
                     f"luref, lad, hw): {same}.")

    # population ----------------------------------------------------------------------------------------
    if args.population_dir:
        path = tables_dir(Path(args.population_dir))
        meta_file = Path(args.population_dir) / "meta.json"
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        name = (f"full population, {meta.get('workers', 0):,} workers" if meta.get("fraction") == 1
                else f"population set {Path(args.population_dir).name}")
        n_rows = parquet_rows(path / "jobs" if (path / "jobs").is_dir() else path / "jobs.parquet")
        for kind in ("duckdb", "pandas"):
            print(time.strftime("%H:%M:%S"), kind, name, "...", flush=True)
            r = run_child(kind, path, out=(work / "panel_full") if kind == "duckdb" else None,
                          memory_limit=args.memory_limit_population if kind == "duckdb" else None,
                          cap_gb=None if kind == "duckdb" else args.pandas_cap_gb,
                          log_file=(args.log_file or None) if kind == "duckdb" else None)
            print(time.strftime("%H:%M:%S"), kind, name, r, flush=True)
            rows.append(dict(data=name, jobs_rows=n_rows, parquet_gb=dir_size_gb(path), impl=kind,
                             load=os.getloadavg()[0], when=_now(), **r))
        notes.append(f"Full population: `synthetic.write_population(seed=0)` at fraction 1 "
                     f"({meta.get('workers', 0):,} workers, {n_rows:,} job rows), linked as written.")
    if not args.skip_population and not args.population_dir:
        base = work / f"population_base_{args.fraction:g}"
        if not (base / "tables" / "jobs.parquet").exists():
            t0 = time.perf_counter()
            synthetic.write_population(base, seed=0, fraction=args.fraction, quiet=True)
            print(f"population base written in {time.perf_counter() - t0:.0f}s", flush=True)
        src = tables_dir(base)
        n_base = parquet_rows(src / "jobs.parquet")
        sizes = {t: parquet_rows(src / f"{t}.parquet") for t in ("local_units", "enterprises", "accounts")}
        notes.append(
            f"Population firms: `synthetic.write_population(fraction={args.fraction:g})` writes the whole "
            f"population's register ({sizes['local_units']:,} local-unit-years, {sizes['enterprises']:,} "
            f"enterprise-years, {sizes['accounts']:,} accounts) with {args.fraction:.0%} of its workers "
            f"({n_base:,} job rows). The population set repeats those job rows {args.tiles} times with new "
            "person ids (same firms), since simulating all 27 million workers takes hours on this machine.")
        runs = []
        if args.tiles > 1:
            pop = work / f"population_x{args.tiles}"
            t0 = time.perf_counter()
            tile(src, pop, args.tiles)
            print(f"population set ready in {time.perf_counter() - t0:.0f}s", flush=True)
            pop_name = f"population ({args.tiles} x the {args.fraction:.0%} jobs)"
            runs += [(pop_name, pop, "duckdb"), (pop_name, pop, "pandas")]
        base_name = f"population firms, {args.fraction:.0%} of workers"
        runs += [(base_name, src, "duckdb"), (base_name, src, "pandas")]
        for name, path, kind in runs:
            n_rows = parquet_rows(path / "jobs" if (path / "jobs").is_dir() else path / "jobs.parquet")
            r = run_child(kind, path, out=(work / f"panel_{path.name}") if kind == "duckdb" else None,
                          memory_limit=args.memory_limit_population if kind == "duckdb" else None,
                          cap_gb=None if kind == "duckdb" else args.pandas_cap_gb)
            print(kind, name, r, flush=True)
            rows.append(dict(data=name, jobs_rows=n_rows, parquet_gb=dir_size_gb(path), impl=kind,
                             load=os.getloadavg()[0], when=_now(), **r))

    # keep the rows of earlier runs in the same work directory (e.g. --skip-research after a research run)
    cache = work / "results.json"
    old = json.loads(cache.read_text()) if cache.exists() else {"rows": [], "notes": []}
    keys = {(r["data"], r["impl"]) for r in rows}
    rows = [r for r in old["rows"] if (r["data"], r["impl"]) not in keys] + rows
    notes = [n for n in old["notes"] if n.split(":")[0] not in {m.split(":")[0] for m in notes}] + notes
    cache.write_text(json.dumps({"rows": rows, "notes": notes}, default=float))
    df = pd.DataFrame(rows)
    write_results(df, notes, args)
    print(df.to_string(index=False))


def write_results(df, notes, args):
    import platform

    import duckdb
    import psutil

    load = os.getloadavg()
    lines = [
        "## Linking (`prosperity.link.build_panel`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, shared with other jobs (load average "
        f"{load[0]:.1f} at the end), Python {platform.python_version()}, DuckDB {duckdb.__version__}, "
        f"pandas {pd.__version__}; `nice -n 10`. Each run is its own process reading the same Parquet files; "
        "peak memory is that process's maximum resident set size; wall time includes reading the Parquet files "
        "and returning (research) or writing (population) the panels. DuckDB: `threads=2`; the population runs "
        f"use `memory_limit=\"{args.memory_limit_population}\"`, spill to a temporary directory and write the "
        "panels to Parquet (`output=`). pandas: the same rules in plain pandas (`benchmarks/bench_link.py`), "
        f"capped at {args.pandas_cap_gb:g} GiB of address space so that it fails cleanly.",
        "",
        "| data | job rows | Parquet (GiB) | implementation | wall time (s) | CPU time (s) | peak memory (GiB) "
        "| worker-years | status | measured (load average) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in df.to_dict("records"):
        wy = r.get("workers", float("nan"))
        cpu = r.get("cpu_seconds", float("nan"))
        when = r.get("when", float("nan"))
        load = r.get("load", float("nan"))
        lines.append(
            f"| {r['data']} | {r['jobs_rows']:,} | {r['parquet_gb']:.2f} | {r['impl']} | {r['seconds']:.1f} | "
            f"{'' if pd.isna(cpu) else f'{cpu:.0f}'} | {r['peak_gb']:.2f} | "
            f"{'' if pd.isna(wy) else f'{int(wy):,}'} | {r['status']} | "
            f"{'' if not isinstance(when, str) else f'{when} ({load:.1f})'} |")
    lines += [""] + notes
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

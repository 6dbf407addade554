"""Benchmark: the worker + firm + place model on the "research" synthetic England, against pyfixest.

The panel is built once (``synthetic.england(size="research", seed=0)`` then ``link.build_panel``) and saved to
``/tmp/bench_places/workers.parquet``. Every step runs in its own fresh process, so its peak resident memory
(``VmHWM``, which includes loading the panel; the ``load`` row is that baseline) is its own. Reported per step:
wall time, CPU time and peak memory (``VmHWM`` of the step's process).

Steps
-----
- ``load``: read the panel (baseline memory).
- ``ours_b``: ``places.place_effects(model="worker+firm+place")``: identification checks (worker-establishment
  and firm-place connected sets) + the three-way fit (``akm.fit_fixed_effects``) + all effects by id.
- ``ours_a`` / ``ours_c``: the worker + place and worker + place x industry models.
- ``ours_decompose``: ``places.decompose_gaps`` with the split-sample correction (the full fit plus two half fits).
- ``ours_se``: ``place_effects(..., se=True, folds=10)``: jackknife standard errors (eleven fits).
- ``pf_b``: ``pyfixest.feols("lhw ~ agesq | piden + entref + lad + year", demeaner=LsmrDemeaner())`` on the same
  identified sample (coefficient only) and ``pf_b_fixef``: the same plus ``fixef()`` to get the place effects.

Checks: the ``agesq`` coefficient and, for ``pf_b_fixef``, the place effects (re-normalised to person-year mean
zero) agree with ours.

Usage: ``nice -n 10 .venv/bin/python benchmarks/bench_places.py [--size research] [--skip pf_b_fixef]
[--out benchmarks/results/places.md]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = Path("/tmp/bench_places")
STEPS = ["load", "ours_b", "ours_a", "ours_c", "ours_decompose", "ours_se", "pf_b", "pf_b_fixef"]


def make_data(size: str) -> Path:
    p = DATA / f"workers_{size}.parquet"
    if p.exists():
        return p
    from prosperity import link, synthetic

    DATA.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    se = synthetic.england(size=size, seed=0)
    linked = link.build_panel(se)
    w = linked.workers[["piden", "year", "entref", "lad", "itl3", "region", "industry", "age", "lhw"]].copy()
    w["agesq"] = ((w["age"] - 40) / 10) ** 2
    w.to_parquet(p, index=False)
    print(f"built {size} panel: {len(w):,} person-years in {time.perf_counter() - t0:.1f} s", flush=True)
    return p


def _peak_mb() -> float:
    """Peak resident memory of this process image (VmHWM: reset at exec, unlike ru_maxrss, which on Linux
    carries the parent's high-water mark into a child)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_step(step: str, path: str) -> dict:
    import numpy as np
    import pandas as pd

    w = pd.read_parquet(path)
    out = {"rows": len(w)}
    t0, c0 = time.perf_counter(), _cpu()
    if step == "load":
        pass
    elif step.startswith("ours"):
        from prosperity import places

        if step == "ours_b":
            pe = places.place_effects(w, model="worker+firm+place", controls=["agesq"])
            out["coef_agesq"] = float(pe.fit.coef["agesq"])
            out["n_obs"] = pe.identification["n_obs"]
            out["n_places"] = pe.identification["n_places"]
            out["iterations"] = pe.identification["solver"]["iterations"]
            pe.table.to_parquet(DATA / "ours_b_effects.parquet", index=False)
            pe.rows[["piden", "year"]].to_parquet(DATA / "ours_b_sample.parquet", index=False)
        elif step == "ours_a":
            places.place_effects(w, model="worker+place", controls=["agesq"])
        elif step == "ours_c":
            places.place_effects(w, model="worker+place×industry", controls=["agesq"])
        elif step == "ours_decompose":
            dec = places.decompose_gaps(w, controls=["agesq"], seed=0)
            out["shares"] = {r.component: round(float(r.share), 4) for r in dec.shares().itertuples()}
        elif step == "ours_se":
            pe = places.place_effects(w, controls=["agesq"], se=True, folds=10)
            out["median_se"] = float(pe.table["se"].median())
    elif step.startswith("pf_b"):
        import pyfixest as pf

        s = pd.read_parquet(DATA / "ours_b_sample.parquet")
        d = w.merge(s, on=["piden", "year"])
        t0, c0 = time.perf_counter(), _cpu()
        fit = pf.feols("lhw ~ agesq | piden + entref + lad + year", data=d, demeaner=pf.LsmrDemeaner())
        out["coef_agesq"] = float(fit.coef()["agesq"])
        if step == "pf_b_fixef":
            fe = fit.fixef()
            key = [k for k in fe if "lad" in k][0]
            lad = pd.Series(fe[key]).rename("pf").rename_axis("lad").reset_index()
            ours = pd.read_parquet(DATA / "ours_b_effects.parquet").merge(lad, on="lad")
            wts = ours["n_obs"].to_numpy(float)
            pfn = ours["pf"] - np.average(ours["pf"], weights=wts)
            out["max_abs_diff_place_effects"] = float(np.max(np.abs(pfn - ours["effect"])))
    else:
        raise ValueError(step)
    out["seconds"] = time.perf_counter() - t0
    out["cpu_seconds"] = _cpu() - c0
    out["peak_mb"] = _peak_mb()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="research")
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--out", default=str(HERE / "results" / "places.md"))
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.step:
        print(json.dumps(run_step(a.step, a.path)))
        return
    path = make_data(a.size)
    results = {}
    for step in STEPS:
        if step in a.skip:
            continue
        print(f"-- {step}", flush=True)
        r = subprocess.run([sys.executable, __file__, "--step", step, "--path", str(path)],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        if r.returncode != 0:
            print(r.stderr[-3000:])
            results[step] = {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
            continue
        results[step] = json.loads(r.stdout.strip().splitlines()[-1])
        print(results[step], flush=True)
    lines = [f"# Benchmark: place effects (`benchmarks/bench_places.py`, size `{a.size}`)", "",
             f"Machine: {os.cpu_count()} cores shared with other jobs (run under `nice -n 10`, so wall time can exceed "
             "CPU time); each step in a fresh process; peak = VmHWM of the step's process (includes the panel, "
             "see `load`).", "",
             "| step | rows | wall s | CPU s | peak MB | notes |", "|---|---|---|---|---|---|"]
    for step, r in results.items():
        if "error" in r:
            lines.append(f"| {step} | | | | | error: {r['error']} |")
            continue
        notes = {k: v for k, v in r.items() if k not in ("rows", "seconds", "cpu_seconds", "peak_mb")}
        lines.append(f"| {step} | {r['rows']:,} | {r['seconds']:.1f} | {r['cpu_seconds']:.1f} | "
                     f"{r['peak_mb']:.0f} | {json.dumps(notes) if notes else ''} |")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

"""Benchmark: synthetic England from raw Parquet to the KSS-corrected AKM decomposition and the place decomposition.

The whole chain a researcher runs on one machine, each step in its own fresh process (so its peak is its own
``VmHWM``, which starts afresh at ``exec``; not ``ru_maxrss``, which Linux carries over from the parent: see the
caveat in ``benchmarks/README.md``), reading only what the previous step left on disk:

1. ``write``: ``synthetic.write_population(pop, seed, fraction=f)`` streams the raw tables (jobs, local units,
   enterprises, accounts, postcodes, places) and the truth to Parquet;
2. ``link``: ``link.build_panel(pop, output=panel, memory_limit=...)`` links them to the worker-year panel;
3. ``fit``: ``akm.fit_panel(panel, connected="leave_one_out")``: DuckDB collapses the person-years to worker-firm
   matches, the leave-one-out connected set is found on the matches, weighted least squares on the match means;
   the result is pickled for the next step. The truth (var(alpha), var(psi), cov on the same sample) is computed
   after the timer stops, from ``truth/person_years`` joined to the kept matches;
4. ``kss``: ``fit.decompose("kss", se=True)`` (leave-one-observation-out, JLA leverages, trace draws and standard
   errors at their defaults) and the plug-in decomposition;
5. ``places``: ``places.collapse_panel`` (DuckDB collapses the panel folder to worker x enterprise x district x
   industry cells, with the age-squared control as an SQL expression) then ``places.decompose_gaps`` on the cells
   (worker + firm + place + year effects, the split-sample correction); the truth shares (``truth/person_years`` on
   the same identified person-years, through ``places.gap_components`` and ``places.variance_across_places``)
   after the timer stops;
6. ``places_rows``: the same decomposition on the person-year panel read into pandas (the in-memory path, for the
   comparison: same answer, several times the memory).

Per step: wall seconds, CPU seconds of the step's process (user + system, DuckDB's threads included) and its peak
resident memory (``VmHWM``). The answers and the truth go to ``benchmarks/results/england.json``; the Markdown
table to ``benchmarks/results/england.md``.

Usage: ``nice -n 10 .venv/bin/python benchmarks/bench_england.py --fraction 0.1 [--data data/england]
[--steps write link fit kss places] [--keep]``. Data live under ``--data`` (git-ignored); without ``--keep``
the folders are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = ["baseline", "write", "link", "fit", "kss", "kss_se", "places", "places_rows"]
AGESQ = {"agesq": "((age - 40) / 10) ^ 2"}
_COMPS = ("var_y", "var_alpha", "var_psi", "cov_alpha_psi", "var_resid")
RESULTS = HERE / "results"
#: worker-years of the full synthetic population linked (benchmarks/results/link.md, 27 November 2026)
FULL_PERSON_YEARS = 294_963_703


def _vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _truth_akm(pop: Path, fit) -> dict:
    """var(alpha), var(psi), var(psi + phi) and the covariances of the true components, person-year weighted, on
    the person-years of the kept matches (DuckDB join of ``truth/person_years`` with the matches)."""
    import duckdb
    import pandas as pd

    t = fit.table
    nm = fit.names
    m = pd.DataFrame({"piden": t[nm["worker"]].to_numpy(), "entref": t[nm["firm"]].to_numpy()})
    con = duckdb.connect(config={"memory_limit": "3GB", "preserve_insertion_order": False})
    con.register("m", m)
    py = str(pop / "truth" / "person_years.parquet")
    r = con.execute(f"""
        SELECT count(*), var_pop(alpha), var_pop(psi), var_pop(psi + phi), covar_pop(alpha, psi),
               covar_pop(alpha, psi + phi), var_pop(xb)
        FROM read_parquet('{py}') p JOIN m USING (piden, entref)""").fetchone()
    con.close()
    keys = ["n", "var_alpha", "var_psi", "var_psi_plus_phi", "cov_alpha_psi", "cov_alpha_psi_plus_phi", "var_xb"]
    return dict(zip(keys, [int(r[0])] + [float(v) for v in r[1:]]))


def _truth_places(truth) -> dict:
    """The shares of the variance of district gaps in the truth of the same person-years: ``truth``, what the
    split-sample corrected shares estimate (the population district means of the true components,
    ``places.population_variance_across_places``), and ``truth_realised`` (the realised district means, which
    also carry which workers happen to be where)."""
    from prosperity import places

    pop = places.population_variance_across_places(truth, "lad", y="lhw", people=["alpha", "xb"])
    comp = places.gap_components(truth, "lad", y="lhw", people=["alpha", "xb"], firm_premium="psi", place="phi",
                                 industry="industry", worker="piden", firm=None)
    real = places.variance_across_places(comp, level="lad")
    return {"truth": {k: float(v) for k, v in pop["share"].items()},
            "truth_realised": {k: float(v) for k, v in real["share"].items()}}


def run_step(step: str, data: Path, fraction: float, seed: int, memory_limit: str) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    pop, panel, fitp = data / "pop", data / "panel", data / "fit.pkl"
    out: dict = {}
    t0, c0 = time.perf_counter(), _cpu()
    if step == "baseline":  # the interpreter with every library the steps import: the floor of every peak
        import duckdb  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        from prosperity import akm, link, places, synthetic, variance  # noqa: F401
    elif step == "write":
        from prosperity import synthetic

        w = synthetic.write_population(pop, seed=seed, fraction=fraction, quiet=True)
        out.update(workers=w.workers, job_rows=int(w.rows.get("jobs", 0)))
    elif step == "link":
        from prosperity import link

        lk = link.build_panel(pop, output=panel, memory_limit=memory_limit, temp_directory=str(data / "tmp"))
        import pyarrow.parquet as pq

        out["person_years"] = int(pq.ParquetFile(panel / "workers.parquet").metadata.num_rows)
        del lk
    elif step == "fit":
        from prosperity import akm

        fit = akm.fit_panel(panel, connected="leave_one_out", memory_limit=memory_limit,
                            temp_directory=str(data / "tmp"))
        with open(fitp, "wb") as f:
            pickle.dump(fit, f, protocol=pickle.HIGHEST_PROTOCOL)
        s = fit.sample["kept"]
        out.update(rows=int(s["rows"]), rows_in=int(fit.sample["input"]["rows"]), workers=int(s["workers"]),
                   firms=int(s["firms"]), movers=int(s["movers"]),
                   matches=int(fit.diagnostics["matches"]), dropped=int(fit.ledger["dropped"].sum()),
                   collapse_s=round(fit.diagnostics["collapse_seconds"], 1),
                   network_s=round(fit.diagnostics["network_seconds"], 1),
                   cg_iterations=int(fit.diagnostics["iterations"]), converged=bool(fit.diagnostics["converged"]))
        out["seconds"], out["cpu_seconds"], out["peak_mib"] = (time.perf_counter() - t0, _cpu() - c0,
                                                               _vm_hwm_mib())
        out["truth"] = _truth_akm(pop, fit)
        return out
    elif step == "kss":
        with open(fitp, "rb") as f:
            fit = pickle.load(f)
        t0, c0 = time.perf_counter(), _cpu()  # loading the pickled fit is not the estimator's time
        d = fit.decompose("kss")
        p = fit.decompose("plugin")
        out["plugin"] = {k: float(getattr(p, k)) for k in _COMPS}
        out["kss"] = {k: float(getattr(d, k)) for k in _COMPS}
        out["mc_se"] = {k: float(v) for k, v in (d.mc_se or {}).items()}
        out["leverage"], out["draws"] = str(d.leverage), int(d.draws) if d.draws is not None else None
    elif step == "kss_se":
        from prosperity import akm

        fit = akm.fit_panel(panel, connected="leave_one_out", leave_out="match_movers", memory_limit=memory_limit,
                            temp_directory=str(data / "tmp"))
        out["fit_seconds"], out["fit_cpu_seconds"] = time.perf_counter() - t0, _cpu() - c0
        s = fit.sample["kept"]
        out.update(rows=int(s["rows"]), matches=int(fit.diagnostics["matches"]), firms=int(s["firms"]))
        t1, c1 = time.perf_counter(), _cpu()
        d = fit.decompose("kss", leave_out="match_movers", se=True)
        out["kss_seconds"], out["kss_cpu_seconds"] = time.perf_counter() - t1, _cpu() - c1
        p = fit.decompose("plugin")
        out["plugin"] = {k: float(getattr(p, k)) for k in _COMPS}
        out["kss"] = {k: float(getattr(d, k)) for k in _COMPS}
        out["kss_se"] = {k: float(v) for k, v in dict(d.se).items()} if d.se is not None else {}
        out["seconds"], out["cpu_seconds"], out["peak_mib"] = (time.perf_counter() - t0, _cpu() - c0,
                                                               _vm_hwm_mib())
        out["truth"] = _truth_akm(pop, fit)
        return out
    elif step == "places":
        import duckdb

        from prosperity import places

        cells = places.collapse_panel(panel, controls=AGESQ, memory_limit=memory_limit,
                                      temp_directory=str(data / "tmp"))
        out.update(collapse_seconds=round(cells.seconds, 1), cells=int(len(cells.table)),
                   person_years=int(cells.n_obs))
        dec = places.decompose_gaps(cells, seed=seed)
        out["plugin"] = {k: float(v) for k, v in dec.variance["share"].items()}
        out["corrected"] = {k: float(v) for k, v in dec.variance_corrected["share"].items()}
        out["n_places"] = int(len(dec.table))
        out["identified_person_years"] = int(dec.effects.identification["n_obs"])
        out["seconds"], out["cpu_seconds"], out["peak_mib"] = (time.perf_counter() - t0, _cpu() - c0,
                                                               _vm_hwm_mib())
        # the truth on the same identified person-years: the panel's rows in the kept cells, joined to the truth
        keys = ["piden", "entref", "lad", "industry"]
        kept = dec.effects.rows[keys].copy()
        for c in keys:
            kept[c] = kept[c].astype(kept[c].cat.categories.dtype)
        del dec, cells
        con = duckdb.connect(config={"memory_limit": memory_limit, "preserve_insertion_order": False})
        con.register("kept", kept)
        truth = con.execute(f"""
            SELECT t.piden, t.year, t.lad, t.industry, t.alpha, t.psi, t.phi, t.xb, t.lhw
            FROM read_parquet('{panel / "workers.parquet"}') w SEMI JOIN kept USING (piden, entref, lad, industry)
            JOIN read_parquet('{pop / "truth" / "person_years.parquet"}') t USING (piden, year)""").df()
        con.close()
        out["truth_rows"] = len(truth)
        out.update(_truth_places(truth))
        return out
    elif step == "places_rows":
        import pandas as pd

        from prosperity import places

        cols = ["piden", "year", "entref", "lad", "itl3", "region", "industry", "age", "lhw"]
        w = pd.read_parquet(panel / "workers.parquet", columns=cols)
        for c in ("lad", "itl3", "region", "industry"):
            w[c] = w[c].astype("category")
        w["agesq"] = ((w["age"] - 40) / 10) ** 2
        out["person_years"] = len(w)
        dec = places.decompose_gaps(w, controls=["agesq"], seed=seed)
        out["plugin"] = {k: float(v) for k, v in dec.variance["share"].items()}
        out["corrected"] = ({k: float(v) for k, v in dec.variance_corrected["share"].items()}
                            if dec.variance_corrected is not None else {})
        out["n_places"] = int(len(dec.table))
        out["seconds"], out["cpu_seconds"], out["peak_mib"] = (time.perf_counter() - t0, _cpu() - c0,
                                                               _vm_hwm_mib())
        # the truth on the same identified sample: the true components of the same person-years
        rows = dec.effects.rows[["piden", "year"]]
        del w, dec
        truth = pd.read_parquet(pop / "truth" / "person_years.parquet",
                                columns=["piden", "year", "lad", "industry", "alpha", "psi", "phi", "xb", "lhw"])
        truth = rows.merge(truth, on=["piden", "year"], how="inner")
        out["truth_rows"] = len(truth)
        out.update(_truth_places(truth))
        return out
    else:
        raise ValueError(step)
    out["seconds"], out["cpu_seconds"], out["peak_mib"] = time.perf_counter() - t0, _cpu() - c0, _vm_hwm_mib()
    return out


def _md(res: dict) -> str:
    m = res["meta"]
    lines = [f"# Synthetic England, raw Parquet to the KSS and place decompositions (`bench_england.py`)", "",
             f"Measured {m['date']} on {m['machine']}, {m['cores']} cores, {m['memory_gib']} GiB, Python "
             f"{m['python']}; shared machine, every step run with `nice -n 10` while other jobs ran "
             f"(load average at the start {m['load_start']}, at the end {m['load_end']}).", "",
             f"Command (the last run): `{m['command']}`. Steps kept from earlier runs of the same fraction and seed "
             "show their own date in the column `measured`.", "",
             f"Population fraction **{m['fraction']}** (seed {m['seed']}): this run is NOT the full population "
             f"unless the fraction is 1. DuckDB memory limit {m['memory_limit']}.", "",
             "Each step ran in a fresh process; peak = that process's `VmHWM`.", "",
             "<!-- england-steps -->", "",
             "| step | what | wall s | CPU s | peak MiB | size | measured |", "|---|---|---|---|---|---|---|"]
    what = {"baseline": "imports only", "write": "`synthetic.write_population`", "link": "`link.build_panel(output=)`",
            "fit": "`akm.fit_panel(connected='leave_one_out')`", "kss": "`decompose('kss')` + plug-in",
            "kss_se": "`fit_panel(leave_out='match_movers')` + `decompose('kss', se=True)`",
            "places": "`places.collapse_panel` + `places.decompose_gaps` (split-sample correction)",
            "places_rows": "`places.decompose_gaps` on the person-year panel in pandas"}
    for s in STEPS:
        r = res["steps"].get(s)
        if r is None:
            continue
        if "error" in r:
            lines.append(f"| {s} | {what[s]} | failed | | | {r['error'][:120]} |")
            continue
        size = {"baseline": lambda r: "Python, numpy, scipy, pandas, pyarrow, DuckDB, prosperity",
                "write": lambda r: f"{r['workers']:,} workers, {r['job_rows']:,} job rows",
                "link": lambda r: f"{r['person_years']:,} person-years",
                "fit": lambda r: f"{r['rows']:,} person-years, {r['matches']:,} matches, {r['firms']:,} firms kept",
                "kss": lambda r: f"leverage {r['leverage']}",
                "kss_se": lambda r: (f"{r['rows']:,} person-years, {r['matches']:,} matches; fit "
                                     f"{r['fit_seconds']:.0f} s, KSS {r['kss_seconds']:.0f} s wall"),
                "places": lambda r: (f"{r['person_years']:,} person-years in {r['cells']:,} cells (collapse "
                                     f"{r['collapse_seconds']:.0f} s), {r['n_places']} districts"),
                "places_rows": lambda r: f"{r['person_years']:,} person-years, {r['n_places']} districts"}[s](r)
        lines.append(f"| {s} | {what[s]} | {r['seconds']:.0f} | {r['cpu_seconds']:.0f} | {r['peak_mib']:,.0f} | "
                     f"{size} | {r.get('measured', '')} |")
    est = [(st, r) for st, r in ((st, res["steps"].get(st)) for st in ("fit", "kss", "kss_se", "places",
                                                                         "places_rows"))
           if r is not None and "error" not in r]
    base = res["steps"].get("baseline", {}).get("peak_mib", 300.0)
    if est and 0.02 <= res["meta"]["fraction"] < 1:
        lines += ["", f"**Extrapolation, not a measurement.** The estimation steps at the full population's "
                  f"{FULL_PERSON_YEARS:,} worker-years (benchmarks/results/link.md), assuming wall time, CPU time "
                  f"and memory above the interpreter's baseline ({base:,.0f} MiB, step `baseline`) grow linearly with the person-years a step "
                  "works on, and that the leave-one-out set keeps every worker-year (an upper bound on the rows: "
                  "at a fraction of the workers against all the firms most firms have too few movers, so the set "
                  "keeps far fewer). Linear growth is what the batching of the random projections aims at; the "
                  "earlier KSS measurements (benchmarks/results/akm_kss_scaling.md) grew faster than linearly in "
                  "CPU, so for `kss` this is optimistic.", "",
                  "| step | rows measured | factor | wall s (extrapolated) | peak MiB (extrapolated) |",
                  "|---|---|---|---|---|"]
        for st, r in est:
            n = r.get("rows_in") or r.get("rows") or r.get("person_years")  # fit: it reads every worker-year
            if st == "kss":
                n = res["steps"]["fit"].get("rows")
            if not n:
                continue
            fac = FULL_PERSON_YEARS / n
            lines.append(f"| {st} | {n:,} | {fac:.0f} | ~{r['seconds'] * fac:,.0f} | "
                         f"~{base + max(r['peak_mib'] - base, 0) * fac:,.0f} |")
    lines += ["", "<!-- end england-steps -->"]
    k, f, e = res["steps"].get("kss"), res["steps"].get("fit"), res["steps"].get("kss_se")
    ok = lambda r: r is not None and "error" not in r  # noqa: E731
    lines += ["", "<!-- england-answers -->"]
    if ok(k) and ok(f):
        lines += ["", "AKM on the leave-one-out connected sets (person-year weighted), beside the truth of the "
                  "same person-years (`truth/person_years` joined to the kept matches). The two-way model has no "
                  "year effects or age profile, which vary within a match in the synthetic world (var(xb) of the "
                  "truth below), and its firm effect absorbs the place effect of the firm's sites: so the truth "
                  "shown for var(psi) is var(psi + phi) and for the covariance cov(alpha, psi + phi). "
                  "`obs`: leave-one-observation-out (the default; KSS standard errors need the person-year "
                  "outcomes, which a fit collapsed to matches does not keep, so none here); `match_movers`: "
                  "movers' matches left out whole, on the movers-only sample, with standard errors.", "",
                  "| sample | quantity | plug-in | KSS | KSS s.e. | truth |", "|---|---|---|---|---|---|"]
        for lab, kk, tt in (("obs", k, f["truth"]), ("match_movers", e, e["truth"] if ok(e) else None)):
            if not ok(kk):
                continue
            for q, tq in (("var_alpha", "var_alpha"), ("var_psi", "var_psi_plus_phi"),
                          ("cov_alpha_psi", "cov_alpha_psi_plus_phi")):
                se = kk.get("kss_se", {}).get(q)
                lines.append(f"| {lab} | {q} | {kk['plugin'][q]:.4f} | {kk['kss'][q]:.4f} | "
                             f"{'' if se is None else f'{se:.4f}'} | {tt[tq]:.4f} |")
            lines.append(f"| {lab} | var_psi, firm part only / var_xb (not in the model) | | | | "
                         f"{tt['var_psi']:.4f} / {tt['var_xb']:.4f} |")
    p = res["steps"].get("places")
    if not ok(p):
        p = res["steps"].get("places_rows")
    if ok(p):
        real = "truth_realised" in p
        lines += ["", "Shares of the variance of district gaps (person-year weighted across districts), plug-in and "
                  "split-sample corrected, beside the truth on the same identified person-years"
                  + (": `truth` is what the corrected shares estimate (the population district means of the true "
                     "components, `places.population_variance_across_places`), `truth (realised)` the variance of "
                     "the realised district means." if real else
                     " (the variance of the realised district means of the true components: this run predates the "
                     "population truth that the corrected shares estimate, `places.population_variance_across_places`, "
                     "in this benchmark)."), "",
                  "| term | plug-in | corrected | truth |" + (" truth (realised) |" if real else ""),
                  "|---|---|---|---|" + ("---|" if real else "")]
        for term in p["plugin"]:
            if term.startswith("Var(") and term != "Var(gap)" or term.startswith("2Cov(people"):
                lines.append(f"| {term} | {p['plugin'][term]:.3f} | {p['corrected'].get(term, float('nan')):.3f} | "
                             f"{p['truth'].get(term, float('nan')):.3f} |"
                             + (f" {p['truth_realised'].get(term, float('nan')):.3f} |" if real else ""))
        q = res["steps"].get("places_rows")
        if p is res["steps"].get("places") and ok(q):
            gap = max(abs(p[k][t] - q[k][t]) for k in ("plugin", "corrected") for t in p[k])
            lines += ["", f"The person-year path (`places_rows`) gives the same shares: largest difference "
                      f"{gap:.1e} (CG tolerance), at {q['peak_mib'] / p['peak_mib']:.1f}x the peak memory."]
    lines += ["", "<!-- end england-answers -->"]
    lines += ["", "Full-size (fraction 1) measurements of `write` and `link` are those of `bench_synthetic` and "
              "`bench_link` (benchmarks/results/synthetic.md, link.md); the estimation steps were run at full size "
              "only if the fraction above is 1.", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fraction", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=str(ROOT / "data" / "england"))
    ap.add_argument("--steps", nargs="*", default=STEPS)
    ap.add_argument("--memory-limit", default="6GB")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--out", default=str(RESULTS / "england"))
    ap.add_argument("--step", help=argparse.SUPPRESS)
    a = ap.parse_args()
    data = Path(a.data)
    if a.step:
        print("JSON" + json.dumps(run_step(a.step, data, a.fraction, a.seed, a.memory_limit)))
        return
    data.mkdir(parents=True, exist_ok=True)
    out = Path(a.out)
    out = out.parent / out.name.replace(".", "_")  # with_suffix below must not eat a dot of the name (england_0.2)
    prev = json.loads(out.with_suffix(".json").read_text()) if out.with_suffix(".json").exists() else {}
    same = prev.get("meta", {}).get("fraction") == a.fraction and prev.get("meta", {}).get("seed") == a.seed
    res = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.machine(),
                    "cores": os.cpu_count(), "python": platform.python_version(),
                    "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
                    "fraction": a.fraction, "seed": a.seed, "memory_limit": a.memory_limit,
                    "load_start": round(os.getloadavg()[0], 1),
                    "command": "nice -n 10 .venv/bin/python benchmarks/bench_england.py " + " ".join(sys.argv[1:])},
           # earlier results of the same fraction and seed are kept, except for the steps re-run now
           "steps": {k: v for k, v in prev.get("steps", {}).items() if k not in a.steps} if same else {}}
    for step in a.steps:
        print(f"-- {step}", flush=True)
        r = subprocess.run([sys.executable, __file__, "--step", step, "--data", str(data), "--fraction",
                            str(a.fraction), "--seed", str(a.seed), "--memory-limit", a.memory_limit],
                           capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        line = [ln for ln in r.stdout.splitlines() if ln.startswith("JSON")]
        if r.returncode != 0 or not line:
            print(r.stderr[-3000:], flush=True)
            res["steps"][step] = {"error": (r.stderr.strip().splitlines() or ["failed"])[-1]}
            break
        res["steps"][step] = {**json.loads(line[-1][4:]), "measured": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                     time.gmtime())}
        print(json.dumps(res["steps"][step]), flush=True)
        res["meta"]["load_end"] = round(os.getloadavg()[0], 1)
        out.with_suffix(".json").write_text(json.dumps(res, indent=1))
        out.with_suffix(".md").write_text(_md(res))
    res["meta"]["load_end"] = round(os.getloadavg()[0], 1)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    out.with_suffix(".md").write_text(_md(res))
    if not a.keep:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark: AKM plug-in fit, leave-one-out connected set and KSS correction against pyfixest and pytwoway.

Every measurement runs in its own fresh process (so peak memory is that step's own high-water mark), on the same
simulated panel (``prosperity.testing.simulate``: 10 years, about 10 workers per firm-year, 10% of workers moving
each year, heteroskedastic errors), saved once per size to ``/tmp/bench_akm`` as ``.npz``. Reported per step:
wall time, CPU time (user + system, children included) and peak resident memory (``ru_maxrss``; the panel
itself is included: see the ``load`` row for the baseline of loading it).

Steps
-----
- ``ours_fit``: ``akm.fit`` (largest connected set, sparse backend): connected set + fit + both sets of effects.
- ``ours_loo``: ``network.connected_set(..., leave_out="obs")``: the leave-one-out connected set.
- ``ours_kss``: ``AKMResult.decompose("kss", leverage="jla", draws=200)`` on the leave-one-out set (the fit on
  that set is timed separately as ``ours_fit_loo`` and excluded).
- ``ours_kss_se``: the same with standard errors and 95% intervals (``se=True``; KSS q = 0).
- ``ours_kss_match``: ``decompose("kss", leverage="jla", draws=200)`` on the leave-match-out set
  (``connected="leave_one_out", leave_out="match"``; the fit excluded): movers' matches left out whole, so more
  leverages near 1 and exact recomputations (``exact_leverages``; ``pilot_draws``: the draws of the pilot that
  chose them).
- ``ours_fit_collapsed``: ``akm.fit(..., connected="leave_one_out", collapse="matches")``: the same sample and
  effects as ``ours_fit_loo``, fitted on worker-firm match means with person-year weights.
- ``pf_lsmr``: ``pf.feols("y ~ 1 | w + f", demeaner=pf.LsmrDemeaner())`` then ``fixef()`` (pyfixest's fastest).
- ``pf_default``: the same with pyfixest's default demeaner.
- ``tw_loo``: pytwoway 0.3.21 / bipartitepandas ``clean(connectedness="leave_out_observation")``.
- ``tw_fit``: pytwoway: clean to the connected set, collapse to spells, ``FEEstimator`` plug-in only
  (``feonly=True``): the same work as ``ours_fit``.
- ``tw_kss``: pytwoway ``FEEstimator`` with ``he=True`` (heteroskedastic correction, 200 leverage draws) on its
  leave-out set (cleaning excluded).

pytwoway runs in its own virtual environment (``--tw-python``, default ``/tmp/tw/bin/python``) with the old pins it
needs: ``python3.11 -m venv /tmp/tw && /tmp/tw/bin/pip install pytwoway==0.3.21 pandas==2.0.3 'numpy<2'
'scipy<1.14' 'pyamg<5.3'``.

Panels above 20M rows are simulated in blocks of a million workers with the same firms
(``prosperity.testing.simulate_blocks``) and stored with int32 ids, so that generating them needs no more memory
than the panel itself.

Usage: ``nice -n 10 .venv/bin/python benchmarks/bench_akm.py --rows 1000000 5000000 [--skip pf_default]
[--out benchmarks/results/akm.md]``; the largest sizes, ours only:
``... --rows 20000000 100000000 --steps load ours_fit ours_loo ours_fit_loo ours_kss --out
benchmarks/results/akm_largest.md``.
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
DATA = Path("/tmp/bench_akm")
BLOCKS_FROM = 20_000_000  # larger panels are simulated in blocks of workers (prosperity.testing.simulate_blocks)
OURS = ["ours_fit", "ours_loo", "ours_fit_loo", "ours_kss", "ours_kss_se", "ours_kss_match", "ours_fit_collapsed"]
PYFIXEST = ["pf_lsmr", "pf_default"]
PYTWOWAY = ["tw_fit", "tw_loo", "tw_kss"]


def data_path(rows: int) -> Path:
    return DATA / f"panel_{rows}.npz"


def make_data(rows: int) -> Path:
    import numpy as np

    from prosperity.testing import simulate

    p = data_path(rows)
    if p.exists():
        return p
    DATA.mkdir(parents=True, exist_ok=True)
    years = 10
    n_workers, n_firms = rows // years, max(rows // 100, 50)
    if rows <= BLOCKS_FROM:
        df = simulate(n_workers=n_workers, years=years, n_firms=n_firms, move=0.1, seed=0)
        np.savez(p, w=df["worker"].to_numpy(np.int64), f=df["firm"].to_numpy(np.int64),
                 t=df["year"].to_numpy(np.int64), y=df["y"].to_numpy())
        return p
    # very large panels: the same DGP in blocks of a million workers (same firms), ids stored as int32, so that
    # generating them does not need several copies of the panel in memory
    from prosperity.testing import simulate_blocks

    w, f = np.empty(rows, np.int32), np.empty(rows, np.int32)
    t, y = np.empty(rows, np.int32), np.empty(rows)
    at = 0
    for blk in simulate_blocks(n_workers, years, n_firms, block_workers=1_000_000, move=0.1, seed=0):
        k = len(blk)
        w[at:at + k], f[at:at + k] = blk["worker"].to_numpy(), blk["firm"].to_numpy()
        t[at:at + k], y[at:at + k] = blk["year"].to_numpy(), blk["y"].to_numpy()
        at += k
    np.savez(p, w=w, f=f, t=t, y=y)
    return p


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def run_step(step: str, rows: int) -> dict:
    """Executed inside the child process."""
    import numpy as np

    z = np.load(data_path(rows))
    out = {"step": step, "rows": rows}
    if step.startswith("tw_"):
        import bipartitepandas as bpd
        import pandas as pd
        import pytwoway as tw

        t0, c0 = time.perf_counter(), _cpu()  # tw_fit: cleaning (connected set) + collapse + fit, like ours_fit
        bdf = bpd.BipartiteDataFrame(i=z["w"], j=z["f"], y=z["y"], t=z["t"])
        if step == "tw_loo":
            t0, c0 = time.perf_counter(), _cpu()
            clean = bdf.clean(bpd.clean_params({"connectedness": "leave_out_observation", "verbose": False}))
            out.update(wall=time.perf_counter() - t0, cpu=_cpu() - c0, kept_rows=int(len(clean)))
        else:
            conn = "connected" if step == "tw_fit" else "leave_out_observation"
            clean = bdf.clean(bpd.clean_params({"connectedness": conn, "drop_single_stayers": True,
                                                "verbose": False})).collapse()
            params = {"he": step == "tw_kss", "ho": step == "tw_kss", "progress_bars": False, "verbose": False,
                      "ncore": 1}
            if step == "tw_fit":
                params["feonly"] = True
            else:  # tw_kss: exclude the leave-out cleaning (timed as tw_loo), like ours_kss excludes the fit
                t0, c0 = time.perf_counter(), _cpu()
            fe = tw.FEEstimator(clean, tw.fe_params(params))
            fe.fit(np.random.default_rng(0))
            out.update(wall=time.perf_counter() - t0, cpu=_cpu() - c0)
            res = fe.summary if isinstance(getattr(fe, "summary", None), dict) else {}
            for k in ("var(psi)_fe", "var(psi)_he", "cov(psi, alpha)_he", "var(psi)_ho"):
                if k in res:
                    out[k] = float(res[k])
        del pd
    elif step.startswith("pf_"):
        import pandas as pd
        import pyfixest as pf

        df = pd.DataFrame({"y": z["y"], "w": z["w"], "f": z["f"]})
        t0, c0 = time.perf_counter(), _cpu()
        kw = {"demeaner": pf.LsmrDemeaner()} if step == "pf_lsmr" else {}
        m = pf.feols("y ~ 1 | w + f", data=df, **kw)
        m.fixef()
        out.update(wall=time.perf_counter() - t0, cpu=_cpu() - c0)
    else:
        import pandas as pd

        sys.path.insert(0, str(ROOT / "src"))
        if step in ("ours_loo", "ours_fit_loo", "ours_kss", "ours_kss_match", "ours_fit_collapsed"):
            # the leave-one-out set uses igraph (which loads matplotlib): imported before timing, as pytwoway
            # imports it at import time. The plug-in fit on the largest connected set never loads it.
            import igraph  # noqa: F401
        from prosperity import akm, network

        df = pd.DataFrame({"w": z["w"], "f": z["f"], "t": z["t"], "y": z["y"]})
        t0, c0 = time.perf_counter(), _cpu()
        if step == "ours_fit":
            r = akm.fit(df, "y", "w", "f")
            out.update(iterations=r.diagnostics["iterations"])
        elif step == "ours_loo":
            cs = network.connected_set(df, "w", "f", leave_out="obs")
            out.update(kept_rows=int(len(cs.data)))
        elif step == "ours_fit_loo":
            r = akm.fit(df, "y", "w", "f", connected="leave_one_out")
        elif step == "ours_fit_collapsed":
            r = akm.fit(df, "y", "w", "f", connected="leave_one_out", collapse="matches")
            out.update(matches=r.diagnostics["matches"])
        elif step == "ours_kss_match":
            r = akm.fit(df, "y", "w", "f", connected="leave_one_out", leave_out="match")
            t0, c0 = time.perf_counter(), _cpu()
            d = r.decompose("kss", leverage="jla", draws=200)
            info = r._cache[next(k for k in r._cache if k[0] == "jla")][1]
            out.update({"var(psi)_kss": d.var_psi, "mc_se": d.mc_se["var_psi"],
                        "exact_leverages": d.details["exact_leverages"], "pilot_draws": info.get("pilot_draws"),
                        "trace_draws": d.details["trace_draws"]})
        elif step in ("ours_kss", "ours_kss_se"):
            r = akm.fit(df, "y", "w", "f", connected="leave_one_out")
            t0, c0 = time.perf_counter(), _cpu()
            d = r.decompose("kss", leverage="jla", draws=200, se=step == "ours_kss_se")
            out.update({"var(psi)_pi": float(r.decompose("plugin").var_psi), "var(psi)_kss": d.var_psi,
                        "mc_se": d.mc_se["var_psi"]})
            if d.se:
                out.update({"se(var(psi))": d.se["var_psi"], "se(share_psi)": d.se["share_psi"]})
        elif step == "load":
            pass
        out.update(wall=time.perf_counter() - t0, cpu=_cpu() - c0)
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def measure(step: str, rows: int, python: str, timeout: float) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "--child", step, "--rows", str(rows)]
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               RAYON_NUM_THREADS="2")
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"step": step, "rows": rows, "error": f"timeout after {timeout:.0f} s"}
    if p.returncode != 0:
        return {"step": step, "rows": rows, "error": (p.stderr or p.stdout).strip().splitlines()[-1][:200]}
    res = json.loads(p.stdout.strip().splitlines()[-1])
    res["process_wall"] = time.perf_counter() - t0
    return res


def table(results: list[dict]) -> str:
    lines = ["| rows | step | wall s | CPU s | peak MB | notes |", "|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['rows']:,} | {r['step']} | – | – | – | {r['error']} |")
            continue
        notes = ", ".join(f"{k} {v:.5g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
                          if k not in ("step", "rows", "wall", "cpu", "peak_mb", "process_wall"))
        lines.append(f"| {r['rows']:,} | {r['step']} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['peak_mb']:.0f} | {notes} |")
    return "\n".join(lines)


def ratios(results: list[dict]) -> str:
    by = {(r["rows"], r["step"]): r for r in results if "error" not in r}
    lines = ["| rows | comparison | ratio |", "|---|---|---|"]
    pairs = [("pf_lsmr", "ours_fit", "wall", "plug-in fit: pyfixest LSMR / ours (wall)"),
             ("pf_default", "ours_fit", "wall", "plug-in fit: pyfixest default / ours (wall)"),
             ("pf_lsmr", "ours_fit", "peak_mb", "plug-in fit: pyfixest LSMR / ours (peak memory)"),
             ("tw_fit", "ours_fit", "wall", "plug-in fit: pytwoway / ours (wall)"),
             ("tw_loo", "ours_loo", "cpu", "leave-one-out set: pytwoway / ours (CPU)"),
             ("tw_kss", "ours_kss", "cpu", "KSS: pytwoway / ours (CPU)")]
    for rows in sorted({r for r, _ in by}):
        for a, b, key, label in pairs:
            if (rows, a) in by and (rows, b) in by and by[(rows, b)][key] > 0:
                lines.append(f"| {rows:,} | {label} | {by[(rows, a)][key] / by[(rows, b)][key]:.1f}x |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    ap.add_argument("--steps", nargs="+", default=["load"] + OURS + PYFIXEST + PYTWOWAY)
    ap.add_argument("--skip", nargs="*", default=[])
    ap.add_argument("--tw-python", default="/tmp/tw/bin/python")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--out", default=str(HERE / "results" / "akm.md"))
    ap.add_argument("--child", default=None)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(run_step(a.child, a.rows[0])))
        return
    results = []
    for rows in a.rows:
        make_data(rows)
        for step in a.steps:
            if step in a.skip:
                continue
            py = a.tw_python if step.startswith("tw_") else sys.executable
            r = measure(step, rows, py, a.timeout)
            print(json.dumps(r), flush=True)
            results.append(r)
    import platform

    head = (f"# AKM benchmark (benchmarks/bench_akm.py)\n\nMeasured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
            f"on {platform.machine()}, {os.cpu_count()} cores (shared machine; run with `nice -n 10`), Python "
            f"{platform.python_version()}. Each step in a fresh process; peak MB includes the loaded panel "
            "(see the `load` row). Ratios are from the same run.\n\n")
    text = head + table(results) + "\n\n## Ratios (same run)\n\n" + ratios(results) + "\n"
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()

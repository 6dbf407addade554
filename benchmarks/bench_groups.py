"""Benchmark: the group estimators (firm classes, static BLM, CRE) of ``prosperity.groups`` against pytwoway 0.3.21.

Both run on identical data, two two-period designs (saved to ``/tmp/bench_groups`` as ``.npz``): ``blm``, the BLM
design of ``prosperity.groups.simulate`` (4 worker types, 4 firm classes, within-class firm effects of s.d. 0.1,
sorting; both estimators with 4 classes and 4 types), and ``akm``, the AKM design of ``prosperity.testing.simulate``
(normal worker and firm effects, sorting, heteroskedastic errors: no finite classes, so BLM is an approximation;
both estimators with pytwoway's default 6 types and 10 classes), and on the same movers and stayers: our
:func:`prosperity.groups.events` table is handed to pytwoway as its event-study frame
(``bipartitepandas.BipartiteDataFrame(i, j1, j2, y1, y2, t1, t2, g1, g2)``), so that only the estimators differ.
Each side runs in its own fresh process and reports its CPU time (user + system, children included):

- ``ours``: ``groups.firm_classes`` (k-means, 10 starts) + ``groups.events`` + ``groups.blm`` (``--starts``
  EM starts) + ``groups.cre``.
- ``tw``: bipartitepandas ``clean`` + ``cluster`` (``measures.CDFs()``, ``grouping.KMeans(n_clusters=k,
  n_init=10)``, firm-size weights) on the long panel; pytwoway ``BLMEstimator.fit(n_init=--starts, n_best=5)`` then
  ``BLMVarianceDecomposition.fit(n_samples=5)`` (shares: the mean over its 5 simulations) and ``CREEstimator``.
- ``ours_twclasses``: our BLM and CRE on pytwoway's firm classes (``firm_classes(labels=...)``): the estimator
  comparison with the classes held identical (not timed against pytwoway).

Reported: the adjusted Rand index of our classes against pytwoway's and against the true classes, the shares of
var(y) of both BLM and CRE side by side with the truth, and CPU time. Targets (issue 13): shares within 0.01 of
pytwoway; at least 2x less CPU time.

pytwoway runs in its own virtual environment (``--tw-python``, default ``/tmp/tw/bin/python``), with the pins of
``benchmarks/bench_akm.py``: ``python3.11 -m venv /tmp/tw && /tmp/tw/bin/pip install pytwoway==0.3.21
pandas==2.0.3 'numpy<2' 'scipy<1.14' 'pyamg<5.3'``. This file is run by both interpreters: at module level it
imports only the standard library, numpy and pandas.

Usage: ``nice -n 10 .venv/bin/python benchmarks/bench_groups.py [--designs blm akm --workers 40000 --firms 400
--starts 10 --out benchmarks/results/groups.md]`` (the defaults; about 10 minutes on a loaded 2-core machine).
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

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = Path("/tmp/bench_groups")
DESIGNS = {"blm": (4, 4), "akm": (10, 6)}  # firm classes and worker types of both estimators, by design
COMPONENTS = ("share_psi", "share_sorting")


def _cpu() -> float:
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def make_data(design: str, workers: int, firms: int, seed: int) -> dict:
    """The panel, its event table and the truth (our interpreter only)."""
    sys.path.insert(0, str(ROOT / "src"))
    from prosperity import groups, testing

    DATA.mkdir(parents=True, exist_ok=True)
    stem = DATA / f"{design}_{workers}_{firms}_{seed}"
    K, L = DESIGNS[design]
    if design == "blm":
        df = groups.simulate(n_workers=workers, n_firms=firms, years=2, n_types=L, n_classes=K, within_psi=0.1,
                             seed=seed)
    else:
        df = testing.simulate(n_workers=workers, years=2, n_firms=firms, move=0.3, seed=seed)
    np.savez(f"{stem}_panel.npz", w=df["worker"].to_numpy(), f=df["firm"].to_numpy(), t=df["year"].to_numpy(),
             y=df["y"].to_numpy())
    true_cls = df.groupby("firm")["cls"].first() if "cls" in df else None
    ev = groups.events(df, groups.firm_classes(df, k=K, seed=seed)).table
    fids = np.unique(df["firm"].to_numpy())  # events codes firms in sorted id order
    np.savez(f"{stem}_events.npz", i=ev["worker"].to_numpy(), j1=fids[ev["j1"].to_numpy()],
             j2=fids[ev["j2"].to_numpy()], y1=ev["y1"].to_numpy(), y2=ev["y2"].to_numpy(),
             m=ev["mover"].to_numpy())
    first = df[df["year"] == df["year"].min()]
    a, p, vy = first["alpha_true"].to_numpy(), first["psi_true"].to_numpy(), float(first["y"].var(ddof=0))
    truth = {"share_psi": float(np.var(p) / vy), "share_sorting": float(2 * np.cov(a, p, ddof=0)[0, 1] / vy)}
    if true_cls is not None:
        truth["share_psi_classes"] = float(np.var(first["cls"].map(df.groupby("cls")["psi_true"].mean())) / vy)
    return {"stem": str(stem), "true_cls": true_cls, "truth": truth, "rows": len(df), "K": K, "L": L}


def step_ours(stem: str, K: int, L: int, starts: int, seed: int, labels: str | None = None) -> dict:
    sys.path.insert(0, str(ROOT / "src"))
    from prosperity import groups

    d = np.load(f"{stem}_panel.npz")
    df = pd.DataFrame({"worker": d["w"], "firm": d["f"], "year": d["t"], "y": d["y"]})
    c0 = _cpu()
    lab = None
    if labels is not None:
        z = np.load(labels)
        lab = pd.Series(z["g"], index=z["j"])
    fc = groups.firm_classes(df, k=K, seed=seed, labels=lab)
    c1 = _cpu()
    ev = groups.events(df, fc)
    b = groups.blm(ev, n_types=L, n_starts=starts, seed=seed)
    c2 = _cpu()
    r = groups.cre(ev)
    c3 = _cpu()
    return {"cls": fc.table["cls"].tolist(), "firm": fc.table["firm"].tolist(), "inertia": fc.inertia,
            "blm": {c: getattr(b.decomposition, c) for c in COMPONENTS}, "blm_loglik": b.loglik / b.n_movers,
            "blm_converged": int(b.starts["converged"].sum()),
            "cre": {c: getattr(r.decomposition, c) for c in COMPONENTS},
            "cpu": {"classes": c1 - c0, "blm": c2 - c1, "cre": c3 - c2, "total": c3 - c0}}


def step_tw(stem: str, K: int, L: int, starts: int, seed: int) -> dict:
    import warnings

    warnings.filterwarnings("ignore")
    import bipartitepandas as bpd
    import pytwoway as tw

    rng = np.random.default_rng(seed)
    d = np.load(f"{stem}_panel.npz")
    e = np.load(f"{stem}_events.npz")
    c0 = _cpu()
    bdf = bpd.BipartiteDataFrame(i=d["w"], j=d["f"], y=d["y"], t=d["t"], track_id_changes=True)
    bdf = bdf.clean(bpd.clean_params({"verbose": False}))
    bdf = bdf.cluster(bpd.cluster_params({"measures": bpd.measures.CDFs(),
                                          "grouping": bpd.grouping.KMeans(n_clusters=K, n_init=10),
                                          "is_sorted": True, "copy": False}), rng=rng)
    oi = bdf.original_ids()
    jcol = "original_j" if "original_j" in oi.columns else "j"
    cls = oi.groupby(jcol)["g"].first()
    c1 = _cpu()
    g1, g2 = cls.reindex(e["j1"]).to_numpy(), cls.reindex(e["j2"]).to_numpy()
    t1 = np.zeros(len(e["i"]), dtype=int)
    es = bpd.BipartiteDataFrame(i=e["i"], j1=e["j1"], j2=e["j2"], y1=e["y1"], y2=np.where(e["m"], e["y2"], e["y1"]),
                                t1=t1, t2=t1 + 1, g1=g1, g2=g2).clean(bpd.clean_params({"verbose": False}))
    movers = es.loc[:, "m"].to_numpy() > 0
    jdata, sdata = es.loc[movers, :], es.loc[~movers, :]
    p = tw.blm_params({"nl": L, "nk": K, "verbose": 0})
    est = tw.BLMEstimator(p)
    est.fit(jdata=jdata, sdata=sdata, n_init=starts, n_best=min(5, starts), rng=rng)
    vd = tw.BLMVarianceDecomposition(p)
    vd.fit(jdata=jdata, sdata=sdata, blm_model=est.model, n_samples=5, rng=rng)
    vy = vd.res["var(y)"]
    blm = {"share_psi": float(np.mean(vd.res["var(psi)"] / vy)),
           "share_sorting": float(np.mean(2 * vd.res["cov(psi, alpha)"] / vy))}
    c2 = _cpu()
    ce = tw.CREEstimator(es.get_cs(copy=False), tw.cre_params())
    ce.fit(rng=rng)
    s = ce.summary
    cre = {"share_psi": float(s["var_tot"] / s["var_y"]), "share_sorting": float(2 * s["cov_tot"] / s["var_y"])}
    c3 = _cpu()
    return {"cls": cls.tolist(), "firm": cls.index.tolist(), "blm": blm, "blm_loglik": float(est.model.lik1),
            "cre": cre, "n_rows_es": int(len(es)),
            "cpu": {"classes": c1 - c0, "blm": c2 - c1, "cre": c3 - c2, "total": c3 - c0}}


def run(python: str, step: str, stem: str, K: int, L: int, starts: int, seed: int,
        labels: str | None = None) -> dict:
    cmd = [python, __file__, "--step", step, "--stem", stem, "--k", str(K), "--types", str(L),
           "--starts", str(starts), "--seed", str(seed)]
    if labels:
        cmd += ["--labels", labels]
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                              "MKL_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"{step} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall"] = time.perf_counter() - t
    return res


def section(design: str, workers: int, firms: int, starts: int, seed: int, tw_python: str) -> tuple[list, float]:
    """Run both implementations on one design; the markdown lines of its section and the largest share gap."""
    from prosperity.groups import adjusted_rand_index

    info = make_data(design, workers, firms, seed)
    stem, K, L = info["stem"], info["K"], info["L"]
    ours = run(sys.executable, "ours", stem, K, L, starts, seed)
    tw = run(tw_python, "tw", stem, K, L, starts, seed)
    lab_path = f"{stem}_twclasses.npz"
    np.savez(lab_path, j=np.asarray(tw["firm"]), g=np.asarray(tw["cls"]))
    fixed = run(sys.executable, "ours", stem, K, L, starts, seed, labels=lab_path)
    o = pd.Series(ours["cls"], index=ours["firm"])
    t = pd.Series(tw["cls"], index=tw["firm"]).reindex(o.index)
    ari = {"ours vs pytwoway": adjusted_rand_index(o, t)}
    if info["true_cls"] is not None:
        tc = info["true_cls"].reindex(o.index)
        ari |= {"ours vs truth": adjusted_rand_index(o, tc), "pytwoway vs truth": adjusted_rand_index(t, tc)}
    rows = []
    for est in ("blm", "cre"):
        for c in COMPONENTS:
            key = "share_psi_classes" if (est == "blm" and c == "share_psi" and design == "blm") else c
            rows.append({"estimator": est.upper(), "share": c.removeprefix("share_"), "truth": info["truth"][key],
                         "ours": ours[est][c], "pytwoway": tw[est][c], "ours − pytwoway": ours[est][c] - tw[est][c],
                         "ours on pytwoway's classes": fixed[est][c],
                         "difference (same classes)": fixed[est][c] - tw[est][c]})
    shares = pd.DataFrame(rows)
    cpu = pd.DataFrame({"ours (CPU s)": ours["cpu"], "pytwoway (CPU s)": tw["cpu"]})
    cpu["ratio"] = cpu["pytwoway (CPU s)"] / cpu["ours (CPU s)"]
    what = {"blm": "BLM design (`groups.simulate`: class effects plus within-class firm effects of s.d. 0.1)",
            "akm": "AKM design (`testing.simulate`: normal worker and firm effects, no finite classes)"}[design]
    md = [
        f"## Design `{design}`: {what}",
        "",
        f"{info['rows']:,} rows ({workers:,} workers x 2 periods, {firms:,} firms); {K} firm classes and {L} worker "
        f"types for both; {starts} BLM starts each ({ours['blm_converged']} of ours converged). Movers' "
        f"log-likelihood per mover: ours {ours['blm_loglik']:.4f}, pytwoway {tw['blm_loglik']:.4f} (its `lik1`). "
        f"k-means objective (firm-size weighted within-class sum of squares of the CDFs): ours {ours['inertia']:.3f}, "
        f"pytwoway's classes {fixed['inertia']:.3f}.",
        "",
        pd.Series(ari, name="adjusted Rand index").to_frame().to_markdown(floatfmt=".4f"),
        "",
        shares.to_markdown(index=False, floatfmt=".4f"),
        "",
        cpu.to_markdown(floatfmt=".2f"),
        "",
        f"Wall time (loaded 2-core machine, start-up and loading included): ours {ours['wall']:.1f} s, pytwoway "
        f"{tw['wall']:.1f} s.",
        "",
    ]
    return md, float(shares["ours − pytwoway"].abs().max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", nargs="+", default=["blm", "akm"], choices=sorted(DESIGNS))
    ap.add_argument("--workers", type=int, default=40_000)
    ap.add_argument("--firms", type=int, default=400)
    ap.add_argument("--starts", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tw-python", default="/tmp/tw/bin/python")
    ap.add_argument("--out", default=str(HERE / "results" / "groups.md"))
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--stem", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--types", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--labels", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.step:
        fn = {"ours": step_ours, "tw": step_tw}[a.step]
        kw = {"labels": a.labels} if a.step == "ours" else {}
        print(json.dumps(fn(a.stem, a.k, a.types, a.starts, a.seed, **kw)))
        return
    sys.path.insert(0, str(ROOT / "src"))
    md = [
        "# Group estimators against pytwoway 0.3.21",
        "",
        f"Generated by `benchmarks/bench_groups.py --designs {' '.join(a.designs)} --workers {a.workers} --firms "
        f"{a.firms} --starts {a.starts} --seed {a.seed}` on {time.strftime('%Y-%m-%d')}. Identical movers and "
        "stayers for both (our event table is pytwoway's event-study frame); each side clusters firms itself "
        "(k-means on firm wage CDFs at 10 pooled quantiles, firm-size weights, 10 starts). BLM: pytwoway keeps the "
        "most connected of its 5 best starts and reports its decomposition as the mean of 5 simulations; ours keeps "
        "the highest likelihood and computes the decomposition exactly. Truth: firm share = variance of psi on the "
        "period-1 cross-section (for BLM on the BLM design: of the class means of psi, as BLM has class effects "
        "only); sorting = 2 cov(alpha, psi) / var(y). CPU time: user + system of one fresh process per side, "
        "single-threaded BLAS; pytwoway's `classes` row includes bipartitepandas' `clean`, its `blm` row the "
        "simulation-based decomposition.",
        "",
    ]
    gaps = {}
    for design in a.designs:
        lines, gaps[design] = section(design, a.workers, a.firms, a.starts, a.seed, a.tw_python)
        md += lines
        Path(a.out).write_text("\n".join(md))  # after each design, so that a finished section is kept
    print("\n".join(md))
    print("max |share difference| by design:", {d: round(g, 4) for d, g in gaps.items()})


if __name__ == "__main__":
    main()

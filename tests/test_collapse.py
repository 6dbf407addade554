"""Collapsing worker-years to worker-firm matches (akm.fit(..., collapse="matches")): what it leaves unchanged.

The two-way model without time effects or controls has regressors that are constant within a match, so weighted
least squares on match means (weights: person-years) gives the same effects, and every statistic the KSS
correction uses depends on the person-years only through each match's count, means and within-match sum of
squares (``variance._Matches``). Checked here on small panels with stayers and movers, against the person-year fit.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from prosperity import _checks, akm, variance
from prosperity.testing import simulate


@pytest.fixture(scope="module")
def panel():
    df = simulate(n_workers=1500, years=6, n_firms=80, move=0.15, seed=11)
    # unbalanced: drop a fifth of the person-years at random, so matches have 1 to 6 years
    rng = np.random.default_rng(4)
    return df[rng.random(len(df)) > 0.2].reset_index(drop=True)


def _pair(panel, **kw):
    return (akm.fit(panel, "y", "worker", "firm", **kw),
            akm.fit(panel, "y", "worker", "firm", collapse="matches", **kw))


def _match_rows(res):
    """The per-row arrays ``variance._Matches`` takes, for a fit collapsed to matches."""
    r = res._rows
    a, p = res._effect("alpha"), res._effect("psi")
    return {"g": r["wcode"], "j": r["fcode"], "y": r["y_mean"], "alpha": a, "psi": p,
            "xb": r["y_mean"] - a - p - r["resid_mean"], "resid": r["resid_mean"], "w": r["weights"],
            "ss": r["y_ss"]}


@pytest.mark.parametrize("kw", [{}, {"connected": "leave_one_out", "leave_out": "obs"},
                                {"connected": "leave_one_out", "leave_out": "match"}])
def test_collapsed_fit_has_the_same_effects_sample_and_fit_statistics(panel, kw):
    full, coll = _pair(panel, **kw)
    assert coll.diagnostics["collapse"] == "matches" and coll.diagnostics["converged"]
    n_matches = coll.diagnostics["matches"]
    assert n_matches < 0.6 * full.n_obs  # it is a real collapse
    for a, b, col in ((full.worker_effects, coll.worker_effects, "alpha"),
                      (full.firm_effects, coll.firm_effects, "psi")):
        assert a.iloc[:, 0].equals(b.iloc[:, 0]) and (a["n_obs"].to_numpy() == b["n_obs"].to_numpy()).all()
        assert np.abs(a[col].to_numpy() - b[col].to_numpy()).max() < 1e-8
    assert coll.n_obs == full.n_obs and coll.n_params == full.n_params
    assert abs(coll.r2 - full.r2) < 1e-10 and abs(coll.rmse - full.rmse) < 1e-10
    assert coll.ledger.equals(full.ledger) and coll.sample.equals(full.sample)
    # the table: one row per match, person-years adding up, match means of y and of the residual
    t, ft = coll.table, full.table
    assert len(t) == n_matches and int(t["n_obs"].sum()) == full.n_obs
    g = ft.groupby(["worker", "firm"])[["y", "resid"]].mean().reset_index()
    assert np.abs(g["y"].to_numpy() - t["y"].to_numpy()).max() < 1e-12
    assert np.abs(g["resid"].to_numpy() - t["resid"].to_numpy()).max() < 1e-8
    assert np.abs(t["xb"]).max() < 1e-8
    assert "collapsed to" in coll.summary()
    assert coll.summary().split("\n")[3] == full.summary().split("\n")[3]  # R2, RMSE, person-year sd of effects


def test_collapsed_rows_give_the_same_kss_ingredients(panel):
    """``variance._Matches`` from match rows equals the one from person-year rows: same counts, centred match means
    of y and e, sum of (y - ybar) e per match, residual sum of squares and firm Laplacian, hence the same leverages,
    weights B and KSS estimates (leave-match-out and leave-one-observation-out)."""
    full, coll = _pair(panel, connected="leave_one_out", leave_out="match")
    m1, m2 = variance._Matches(variance._row_arrays(full)), variance._Matches(_match_rows(coll))
    assert (m1.mi == m2.mi).all() and (m1.mj == m2.mj).all() and (m1.c == m2.c).all() and m1.n == m2.n
    assert (m1.mover_match == m2.mover_match).all() and m1.mover_match.any() and (~m1.mover_match).any()
    for k in ("ybar", "ebar", "ye"):
        assert np.abs(getattr(m1, k) - getattr(m2, k)).max() < 1e-10, k
    assert abs(m1.ymean - m2.ymean) < 1e-12 and abs(m1.rss - m2.rss) < 1e-8 * m1.rss
    assert abs(m1.sys.L - m2.sys.L).max() < 1e-10
    # the exact leverages and weights follow from these alone; and the leave-out sums are non-trivial
    P1, *B1, _ = variance._exact(m1)
    P2, *B2, _ = variance._exact(m2)
    assert np.abs(P1 - P2).max() < 1e-10 and max(np.abs(a - b).max() for a, b in zip(B1, B2)) < 1e-12
    # the within-match sum of squares is what makes ye of a stayer's match right: without it, it would differ
    rows = _match_rows(coll)
    rows["ss"] = np.zeros_like(rows["ss"])
    assert np.abs(variance._Matches(rows).ye - m1.ye).max() > 1e-3


def test_collapse_refuses_what_it_cannot_do(panel):
    with pytest.raises(_checks.InputError, match="time effects and controls vary within"):
        akm.fit(panel, "y", "worker", "firm", time="year", collapse="matches")
    p2 = panel.assign(x=np.arange(len(panel)) % 3)
    with pytest.raises(_checks.InputError, match="constant within a match"):
        akm.fit(p2, "y", "worker", "firm", controls=["x"], collapse="matches")
    with pytest.raises(_checks.InputError, match="backend='sparse'"):
        akm.fit(panel, "y", "worker", "firm", backend="pyfixest", collapse="matches")
    with pytest.raises(ValueError, match="collapse"):
        akm.fit(panel, "y", "worker", "firm", collapse="spells")
    coll = akm.fit(panel, "y", "worker", "firm", collapse="matches")
    with pytest.raises(_checks.InputError, match="person-year residuals"):
        akm.residual_grid(coll)
    # no code reads a match mean as a person-year: asking for one names the collapse
    with pytest.raises(_checks.InputError, match="collapsed to worker-firm matches"):
        coll._rows["resid"]
    assert sp.issparse(variance._Matches(_match_rows(coll)).sys.L)


# ---------------------------------------------------------------------------------------------------------------
# JLA leverages of the unit left out: under leave_out="match" a mover's match is left out whole (collapsed), its
# leverage c (1/T + P2) is near 1 far more often, and the noisy ones are recomputed exactly (variance._jla_P)


def _true_scores(mt, lo, draws=200):
    """Exact relative Monte Carlo variance of 1 / (1 - P) of every unit left out, for ``draws`` Rademacher draws:
    the JLA draw of P2_m is (r'a_m)^2 with a_m = Y L^+ x_m, whose variance is 2 (||a_m||^4 - sum_k a_mk^4)."""
    coll = variance._collapsed(mt, lo)
    c = np.where(coll, mt.c, 1.0)
    mov = np.flatnonzero(mt.mover_match)
    X = mt.x_rows(mov).toarray()
    A = (np.sqrt(mt.c[mov])[:, None] * X) @ np.linalg.pinv(mt.sys.L.toarray()) @ X.T
    P2, v = np.zeros(len(mt.c)), np.zeros(len(mt.c))
    P2[mov] = np.square(A).sum(0)
    v[mov] = 2 * (P2[mov] ** 2 - np.power(A, 4).sum(0)) / draws
    return coll, c ** 2 * v / np.square(1 - np.minimum(c * (1 / mt.T[mt.mi] + P2), 0.99))


def test_jla_pilot_flags_the_noisy_units_and_reports_a_cap():
    df = simulate(n_workers=3000, years=3, n_firms=400, move=0.1, seed=3)  # low mobility: many noisy leverages
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="match")
    mt = variance._Matches(variance._row_arrays(r))
    thr = variance._JLA_EXACT_SCORE
    for lo in ("obs", "match"):
        coll, score = _true_scores(mt, lo)
        true = score > thr
        p2, info = variance._jla_P(mt, 200, 5, 1e-8, None, True, 5000, coll if coll.any() else None)
        redone = (info["var_P2"] == 0) & mt.mover_match
        assert info["exact_target_met"] and redone.sum() == info["exact_leverages"] == info["noisy_leverages"]
        # the pilot (independent draws, grown to at most draws // 2) finds the noisy units, and few others
        assert 0 < true.sum() and (redone & true).sum() >= 0.95 * true.sum(), (lo, true.sum(), redone.sum())
        assert (redone & ~true).sum() <= 0.05 * redone.sum(), (lo, (redone & ~true).sum())
        assert info["pilot_draws"] <= 100
    # a cap below the number of noisy units: the worst are recomputed, and it says so
    with pytest.warns(RuntimeWarning, match="raise jla_exact"):
        _, info = variance._jla_P(mt, 200, 5, 1e-8, None, True, 3, variance._collapsed(mt, "match"))
    assert info["exact_leverages"] == 3 and info["noisy_leverages"] > 3 and info["exact_target_met"] is False
    _, info = variance._jla_P(mt, 200, 5, 1e-8, None, True, 0)  # recomputation off: no pilot either
    assert info["pilot_draws"] == 0 and info["exact_leverages"] == 0


def test_jla_pilot_does_not_over_select_where_no_leverage_is_noisy():
    """The fixed 20-draw pilot of version 0.4 flagged 12-34 units here (all false positives, each one exact solve);
    the pilot grows while it flags more units than it has draws, and stops well before its cap."""
    df = simulate(n_workers=6000, years=10, n_firms=600, move=0.1, seed=3)
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="match")
    mt = variance._Matches(variance._row_arrays(r))
    coll = variance._collapsed(mt, "match")
    c = np.where(coll, mt.c, 1.0)
    P2 = variance._exact(mt)[0]
    # an upper bound of the true score (the variance of a draw is at most 2 P2^2): no unit is noisy
    bound = c ** 2 * 2 * P2 ** 2 / 200 / np.square(1 - np.minimum(c * (1 / mt.T[mt.mi] + P2), 0.99))
    assert bound.max() < variance._JLA_EXACT_SCORE
    for seed in range(3):
        _, info = variance._jla_P(mt, 200, seed, 1e-8, None, True, 1000, coll)
        assert info["exact_leverages"] <= info["pilot_draws"] < 100, info


_THREADS = r"""
import hashlib, sys
import numpy as np
from prosperity import akm, variance as V
from prosperity.testing import simulate
df = simulate(n_workers=40000, years=5, n_firms=1500, move=0.1, seed=3)
r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="match")
mt = V._Matches(V._row_arrays(r))
P2, info = V._jla_P(mt, 40, 1, 1e-8, None, True, 1000, V._collapsed(mt, "match"))
res = V._trace_bias(mt, mt.ye / (1 - np.minimum(1 / mt.T[mt.mi] + P2, 0.99)), 10, 0, 1e-8)[0]
blocks = int(mt.mover_match.sum() > 20000)
print(blocks, hashlib.sha256(P2.tobytes() + info["var_P2"].tobytes() + np.array(
    [v for r_ in res.values() for v in r_]).tobytes() + np.array([mt.rss, mt.ymean]).tobytes()).hexdigest())
"""


def test_jla_and_trace_do_not_depend_on_the_thread_count():
    """The random-projection leverages (in blocks of mover matches) and the trace estimate use no threaded BLAS
    reduction: the same bytes with one and with two threads."""
    import os
    import subprocess
    import sys

    out = []
    for t in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t)
        p = subprocess.run([sys.executable, "-c", _THREADS], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        out.append(p.stdout.split())
    assert out[0][0] == "1"  # more mover matches than one block holds
    assert out[0] == out[1]


# --- tests that need the variance.py patch (/tmp/c_patch/apply_variance_patch.py): append to tests/test_collapse.py


@pytest.mark.parametrize("lo", ["match", "obs"])
def test_collapsed_and_person_year_kss_agree(panel, lo):
    """variance.decompose on the collapsed fit: plug-in, homoskedastic and KSS (exact leverages, leave-match-out
    with stayers, and leave-one-observation-out) equal to the person-year fit's to 1e-8, var_y and var_resid too."""
    full, coll = _pair(panel, connected="leave_one_out", leave_out=lo)
    for method in ("plugin", "homoskedastic", "kss"):
        kw = {"leave_out": lo, "leverage": "exact"} if method == "kss" else {}
        a, b = variance.decompose(full, method, **kw), variance.decompose(coll, method, **kw)
        assert a.n_obs == b.n_obs
        for k in ("var_y", "var_alpha", "var_psi", "cov_alpha_psi", "var_xb", "cov_xb_effects", "var_resid"):
            assert abs(getattr(a, k) - getattr(b, k)) < 1e-8, (method, k)
    kss = variance.decompose(full, "kss", leave_out=lo, leverage="exact")
    assert abs(kss.var_psi - variance.decompose(full, "plugin").var_psi) > 1e-4  # the correction is not trivial
    # the JLA path sees the same design and the same random draws: the same estimate to CG accuracy
    a = variance.decompose(full, "kss", leave_out=lo, leverage="jla", draws=40, trace_draws=20)
    b = variance.decompose(coll, "kss", leave_out=lo, leverage="jla", draws=40, trace_draws=20)
    assert abs(a.var_psi - b.var_psi) < 1e-6 and abs(a.cov_alpha_psi - b.cov_alpha_psi) < 1e-6


def test_collapsed_standard_errors_only_where_every_unit_is_a_match(panel):
    full, coll = _pair(panel, connected="leave_one_out", leave_out="match_movers")
    a = variance.decompose(full, "kss", leverage="exact", se=True, se_draws=0)
    b = variance.decompose(coll, "kss", leverage="exact", se=True, se_draws=0)
    for k in ("var_psi", "var_alpha", "cov_alpha_psi"):
        assert abs(a.se[k] - b.se[k]) < 1e-8 * max(1.0, a.se[k])
    coll2 = akm.fit(panel, "y", "worker", "firm", connected="leave_one_out", leave_out="match", collapse="matches")
    with pytest.raises(ValueError, match="person-year units"):
        variance.decompose(coll2, "kss", se=True)

"""The KSS leave-out estimator against a brute-force implementation of its definition (Kline, Saggio and Solvsten
2020): every unit is actually left out and the model refit, on small panels with stayers.

Units: person-years (``leave_out="obs"``); under ``"match"`` a mover's worker-firm match is one unit (all its
person-years left out together) and a stayer's person-years are units of their own (as LeaveOutTwoWay's
``sigma_for_stayers.m`` and bipartitepandas); under ``"match_movers"`` every match is one unit. For a unit of
``c`` person-years sharing the design row ``z``, ``B_uu = c z'S^-1 A S^-1 z`` and
``sigma_u = c (ybar_u - ybar)(ybar_u - z' beta_{-u})`` with ``beta_{-u}`` the fit without the unit, and the
estimate is ``theta_PI - sum_u B_uu sigma_u``. The samples are checked against a brute-force pruning, and the
random-projection (JLA) estimate against the exact one over seeds.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from prosperity import akm, network, variance
from prosperity.testing import simulate

COMPS = ("var_alpha", "var_psi", "cov_alpha_psi")


def _panel():
    """A sparse panel (150 workers, 40 firms, 3 years) where the leave-one-out pruning drops most rows and the
    leave-match-out sample keeps stayers."""
    return simulate(n_workers=150, years=3, n_firms=40, move=0.1, seed=11)


def _brute_force(fr, lo):
    """KSS leave-out estimates by refitting without each unit (dense least squares; tiny data only)."""
    w = fr["worker"].factorize(sort=True)[0]
    f = fr["firm"].factorize(sort=True)[0]
    nw, nf, n = w.max() + 1, f.max() + 1, len(fr)
    y = fr["y"].to_numpy(float)
    Z = np.zeros((n, nw + nf))
    Z[np.arange(n), w] = 1
    Z[np.arange(n), nw + f] = 1
    beta = np.linalg.lstsq(Z, y, rcond=None)[0]
    S = np.linalg.pinv(Z.T @ Z)
    Dc, Fc = Z[:, :nw] - Z[:, :nw].mean(0), Z[:, nw:] - Z[:, nw:].mean(0)
    A = {"var_alpha": np.zeros((nw + nf, nw + nf)), "var_psi": np.zeros((nw + nf, nw + nf)),
         "cov_alpha_psi": np.zeros((nw + nf, nw + nf))}
    A["var_alpha"][:nw, :nw] = Dc.T @ Dc / n
    A["var_psi"][nw:, nw:] = Fc.T @ Fc / n
    A["cov_alpha_psi"][:nw, nw:] = Dc.T @ Fc / (2 * n)
    A["cov_alpha_psi"][nw:, :nw] = Fc.T @ Dc / (2 * n)
    plug = {k: beta @ A[k] @ beta for k in COMPS}
    SAS = {k: S @ A[k] @ S for k in COMPS}
    match = w * nf + f
    movers = np.bincount(np.unique(match) // nf, minlength=nw) > 1
    units = []
    for m in np.unique(match):
        idx = np.flatnonzero(match == m)
        whole = lo == "match_movers" or (lo == "match" and movers[m // nf])
        units += [idx] if whole else [[i] for i in idx]
    ybar = y.mean()
    bias = dict.fromkeys(COMPS, 0.0)
    Zn = Z[:, :-1]  # normalised design (last firm effect 0): full rank, also without any one unit
    ZZ, Zy = Zn.T @ Zn, Zn.T @ y
    for idx in units:
        # the least-squares fit without the unit (normal equations of the remaining rows)
        b_out = np.append(np.linalg.solve(ZZ - Zn[idx].T @ Zn[idx], Zy - Zn[idx].T @ y[idx]), 0.0)
        z = Z[idx[0]]
        c = len(idx)
        sigma = c * (y[idx].mean() - ybar) * (y[idx].mean() - z @ b_out)
        for k in COMPS:
            bias[k] += c * (z @ SAS[k] @ z) * sigma
    return {k: plug[k] - bias[k] for k in COMPS}, len(units)


def _brute_sample(df, lo):
    """The KSS leave-one-out connected set by brute force: largest connected set; drop every mover whose removal
    disconnects the firms (checked one worker at a time), retake the largest set, repeat; then drop workers with a
    single person-year (their leverage is 1 leaving it out) or, for "match_movers", with a single match."""
    d = df[["worker", "firm"]].copy()

    def largest(d):
        w = d["worker"].factorize()[0]
        f = d["firm"].factorize()[0]
        g = sp.coo_matrix((np.ones(len(d)), (w, w.max() + 1 + f)), shape=(w.max() + f.max() + 2,) * 2)
        _, lab = connected_components(g, directed=False)
        big = np.bincount(lab[w]).argmax()
        return d[lab[w] == big]

    def n_comp_without(d, worker):
        rest = d[d["worker"] != worker]
        w = rest["worker"].factorize()[0]
        f = rest["firm"].factorize()[0]
        g = sp.coo_matrix((np.ones(len(rest)), (w, w.max() + 1 + f)), shape=(w.max() + f.max() + 2,) * 2)
        return connected_components(g, directed=False)[0], rest["firm"].nunique() < d["firm"].nunique()

    d = largest(d)
    while True:
        k0 = n_comp_without(d, -1)[0]
        movers = d.groupby("worker")["firm"].nunique()
        cut = []
        for wk in movers.index[movers > 1]:
            k, lost = n_comp_without(d, wk)
            if k > k0 or lost:
                cut.append(wk)
        if not cut:
            break
        d = largest(d[~d["worker"].isin(cut)])
    if lo == "match_movers":
        keep = d.groupby("worker")["firm"].transform("nunique") > 1
    else:
        keep = d.groupby("worker")["firm"].transform("size") > 1
    return d[keep]


@pytest.mark.parametrize("lo", ["obs", "match", "match_movers"])
def test_leave_out_estimates_equal_brute_force(lo):
    df = _panel()
    df["y"] += 3.0  # a level far from zero: the estimate must not depend on it
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out=lo)
    fr = r.to_frame()
    stayers = (fr.groupby("worker")["firm"].nunique() == 1).sum()
    assert (stayers > 0) == (lo != "match_movers")
    d = r.decompose("kss", leverage="exact", leave_out=lo)
    ref, n_units = _brute_force(fr, lo)
    for k in COMPS:
        assert getattr(d, k) == pytest.approx(ref[k], rel=1e-9, abs=1e-12), (lo, k)
    if lo == "match":  # fewer units than person-years (movers' matches), more than matches (stayers' rows)
        assert len(fr.groupby(["worker", "firm"])) < n_units < len(fr)


@pytest.mark.parametrize("lo", ["obs", "match", "match_movers"])
def test_leave_out_sample_equals_brute_force(lo):
    df = _panel()
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out=lo)
    ref = _brute_sample(df, lo)
    assert len(ref) < len(df)  # the pruning bites on this panel
    assert sorted(r.to_frame().index) == sorted(ref.index)
    assert sorted(network.connected_set(df, "worker", "firm", leave_out=lo).data.index) == sorted(ref.index)


@pytest.mark.slow
def test_jla_unbiased_against_exact_across_seeds(monkeypatch):
    """Mean over seeds of the JLA estimate vs the exact one on a low-mobility panel (movers' leverages up to 0.9),
    where the plain JLA estimate (no non-linear correction, no exact recomputation of the noisiest leverages: the
    estimator of version 0.3) is biased because 1 / (1 - P_hat) is biased upwards."""
    df = simulate(n_workers=3000, years=3, n_firms=400, move=0.1, seed=3)
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="obs")
    ex = r.decompose("kss", leverage="exact")

    def diffs():
        return np.array([[getattr(akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="obs")
                                  .decompose("kss", leverage="jla", draws=200, seed=100 + s, trace_draws=200), k)
                          - getattr(ex, k) for k in COMPS] for s in range(20)])

    def mean_se(d):
        return d.mean(0), d.std(0, ddof=1) / np.sqrt(len(d))

    d = diffs()
    m, se = mean_se(d)
    assert np.all(np.abs(m) < se), (m, se)  # measured: 0.00046 0.00053 -0.00048 (s.e. 0.00039 0.00037 0.00037)
    # the source of the bias, without the trace noise: the leave-out weights K_m = sum (y - ybar) e / (1 - P_hat)
    # against exact B (the exact bias term is K' B with exact leverages), over seeds
    mt = variance._Matches(variance._row_arrays(r))
    P2, Bp, Ba, Bc, _ = variance._exact(mt)
    B = np.column_stack([Ba, Bp, Bc])
    exact = mt.ye / (1 - (1 / mt.T[mt.mi] + P2)) @ B

    def weight_bias():
        out = []
        for s in range(30):
            p2, info = variance._jla_P(mt, 200, 100 + s, 1e-8, None, True)
            P = np.minimum(1 / mt.T[mt.mi] + p2, 0.99)
            out.append(mt.ye / (1 - P) * variance._jla_fix(P, info["var_P2"]) @ B - exact)
        return mean_se(np.array(out))

    m1, se1 = weight_bias()
    assert np.all(np.abs(m1) < se1), (m1, se1)  # measured: -2.2e-5 (s.e. 6.8e-5); ~440 of 950 recomputed
    monkeypatch.setattr(variance, "_jla_fix", lambda P, V: np.ones_like(P))
    monkeypatch.setattr(variance, "_JLA_EXACT_SCORE", np.inf)
    m0, se0 = weight_bias()  # the plain JLA leverages (version 0.3): bias terms too large, variances too small
    sign = np.array([1, 1, -1])  # the bias term of cov(alpha, psi) is negative
    assert np.all(sign * m0 > 3 * se0), (m0, se0)  # measured: 0.0026, 0.0025, -0.0025 (s.e. 0.00077)


def test_jla_recomputes_leverages_noisy_for_the_unit_left_out():
    """The JLA leverages recomputed exactly are those whose 1 / (1 - P) is noisy for the unit actually left out: a
    person-year under ``"obs"`` (leverage 1/T + P2), the whole match under ``"match"`` (c times that, so noisier).
    Judging every match collapsed (the rule before) recomputed as many under ``"obs"`` as under ``"match"``."""
    df = simulate(n_workers=3000, years=3, n_firms=400, move=0.1, seed=3)
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="match")
    kw = dict(leverage="jla", draws=200, seed=5, trace_draws=20)
    n_obs = r.decompose("kss", leave_out="obs", **kw).details["exact_leverages"]
    n_match = r.decompose("kss", leave_out="match", **kw).details["exact_leverages"]
    assert 0 < n_obs < n_match, (n_obs, n_match)
    # under "obs" the recomputed leverages are exact (no Monte Carlo variance left) and only those
    mt = variance._Matches(variance._row_arrays(r))
    p2, info = variance._jla_P(mt, 200, 5, 1e-8, None, True)
    done = info["var_P2"][mt.mover_match] == 0
    assert done.sum() == n_obs
    exact = variance._exact(mt)[0][mt.mover_match]
    np.testing.assert_allclose(p2[mt.mover_match][done], exact[done], rtol=1e-4)

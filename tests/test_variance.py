"""Variance decompositions: the plug-in adds up; the corrections remove limited-mobility bias; exact and JLA
leverages agree within their Monte Carlo error."""

import numpy as np
import pytest

from _twoway_dgp import simulate, truth
from prosperity import akm, variance

# Stated tolerances (calibrated on seeds 0-5 of this design: KSS errors at most 0.0031, plug-in errors at least
# 0.034 / 0.011 / 0.011 for var(alpha) / var(psi) / cov(alpha, psi); about 10 movers per firm, 4 years).
TOL = 0.005


@pytest.fixture(scope="module")
def fitted():
    df = simulate(n_workers=12_000, years=4, n_firms=800, move=0.12, seed=0)
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="obs")
    return df, r


def test_plugin_adds_up(fitted):
    df, r = fitted
    d = r.decompose("plugin")
    assert abs(d.var_y - d.sum_of_parts) < 1e-10
    t = d.to_frame()
    assert list(t.columns) == ["plugin"] and "share_sorting" in t.index
    assert abs(d.share_alpha + d.share_psi + d.share_sorting + d.share_xb + d.share_resid - 1) < 1e-10


def test_corrections_fix_limited_mobility_bias(fitted):
    df, r = fitted
    tr = truth(df.loc[r.to_frame().index])
    pi = r.decompose("plugin")
    kss = r.decompose("kss", leverage="exact")
    ho = r.decompose("homoskedastic", leverage="exact")
    for comp, bias_sign in (("var_alpha", 1), ("var_psi", 1), ("cov_alpha_psi", -1)):
        plug_err = getattr(pi, comp) - tr[comp]
        assert bias_sign * plug_err > 2 * TOL, (comp, plug_err)  # the plug-in is off, in the known direction
        assert abs(getattr(kss, comp) - tr[comp]) < TOL, (comp, getattr(kss, comp), tr[comp])
        assert abs(getattr(ho, comp) - tr[comp]) < 2 * TOL
    assert kss.corr_alpha_psi > pi.corr_alpha_psi + 0.1
    # corrected parts add up to var(y) approximately (their residual variance is estimated)
    assert abs(kss.sum_of_parts - kss.var_y) < 0.01 * kss.var_y
    tab = variance.table(pi, ho, kss)
    assert list(tab.columns) == ["plugin", "homoskedastic", "kss"]


def test_exact_and_jla_agree(fitted):
    df, r = fitted
    ex = variance.leverages(r, leverage="exact")
    jl = variance.leverages(r, leverage="jla", draws=200, seed=1)
    mov = ex["P"] > 1 / 3  # compare where the random part matters; relative s.e. of a JLA estimate is sqrt(2/200)
    rel = (jl["P"] - ex["P"]).abs() / ex["P"]
    assert rel.mean() < 0.1 and mov.any()
    assert np.corrcoef(ex["B_psi"], jl["B_psi"])[0, 1] > 0.95
    e = r.decompose("kss", leverage="exact")
    j = r.decompose("kss", leverage="jla", draws=200, seed=1)
    for comp in ("var_alpha", "var_psi", "cov_alpha_psi"):
        se = j.mc_se[comp]
        assert 0 < se < 1e-3
        # Monte Carlo error of the bias term, plus the (smaller) effect of noisy leverages in sigma_l^2
        assert abs(getattr(e, comp) - getattr(j, comp)) < 5 * se + 2e-4, comp


def test_leave_match_out_and_requirements(fitted):
    df, r = fitted
    with pytest.raises(ValueError, match="leave-one-out connected set"):
        akm.fit(df, "y", "worker", "firm").decompose("kss")
    rm = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="match")
    d = rm.decompose("kss", leverage="exact")
    tr = truth(df.loc[rm.to_frame().index])
    assert abs(d.var_psi - tr["var_psi"]) < 2 * TOL
    with pytest.raises(ValueError, match="method"):
        r.decompose("bootstrap")

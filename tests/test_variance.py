"""Variance decompositions: the plug-in adds up; the corrections remove limited-mobility bias; exact and JLA
leverages agree within their Monte Carlo error."""

import numpy as np
import pytest

from prosperity.testing import simulate, truth
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
    j = r.decompose("kss", leverage="jla", draws=200, seed=1, max_trace_draws=2000)
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


def test_kss_invariant_to_the_level_of_y(fitted):
    """Issue 13, defect 1: the leave-out sigma_l^2 use (y_l - ybar) e_l / (1 - P_ll), so adding a constant to y
    moves no estimate (exact, and JLA with the same seed). Version 0.3 used y_l e_l / (1 - P_ll)."""
    df, r = fitted
    shifted = df.assign(y=df["y"] + 5.0)
    r5 = akm.fit(shifted, "y", "worker", "firm", connected="leave_one_out", leave_out="obs")
    for opts in ({"leverage": "exact"}, {"leverage": "jla", "draws": 50, "seed": 3, "trace_draws": 20},
                 {"leverage": "exact", "leave_out": "match"}):
        a, b = r.decompose("kss", **opts), r5.decompose("kss", **opts)
        for comp in ("var_alpha", "var_psi", "cov_alpha_psi", "var_resid"):
            assert abs(getattr(a, comp) - getattr(b, comp)) < 1e-10, (opts, comp)


def test_trace_draws_report_whether_their_target_was_met(fitted):
    df, r = fitted
    with pytest.warns(RuntimeWarning, match="max_trace_draws"):
        d = r.decompose("kss", leverage="jla", draws=20, seed=2, mc_tol=1e-7, max_trace_draws=20)
    assert d.details["trace_target_met"] is False and d.details["trace_draws"] == 20
    assert "warning: the trace draws stopped at their cap" in d.summary()
    ok = r.decompose("kss", leverage="jla", draws=20, seed=2, mc_tol=1e-3)
    assert ok.details["trace_target_met"] is True
    assert max(ok.mc_se.values()) <= 1e-3 * ok.var_y and "warning" not in ok.summary()
    fixed = r.decompose("kss", leverage="jla", draws=20, seed=2, trace_draws=30)
    assert fixed.details["trace_target_met"] is None and fixed.details["trace_draws"] == 30


def test_result_pattern_and_shares(fitted):
    from prosperity._results import Result

    df, r = fitted
    d = r.decompose("kss", leverage="exact")
    assert isinstance(d, Result) and repr(d).splitlines()[1] == d.summary().splitlines()[0]
    assert d.to_frame().equals(d.table) and d.to_frame() is not d.table
    sh = d.shares()
    assert list(sh.columns) == ["component", "share"]
    assert sh.set_index("component")["share"].to_dict() == pytest.approx(
        {"alpha": d.share_alpha, "psi": d.share_psi, "sorting": d.share_sorting, "xb": d.share_xb,
         "resid": d.share_resid})
    small = simulate(n_workers=600, years=4, n_firms=60, move=0.2, seed=1)
    rs = akm.fit(small, "y", "worker", "firm", connected="leave_one_out", leave_out="obs")
    s = rs.decompose("kss", leverage="exact", se=True).shares().set_index("component")
    assert list(s.columns) == ["share", "se", "lower", "upper"]
    assert s.loc["psi", "lower"] < s.loc["psi", "share"] < s.loc["psi", "upper"] and np.isnan(s.loc["xb", "se"])


def test_of_effects_is_the_truth_on_the_rows_given(fitted):
    df, r = fitted
    rows = df.loc[r.to_frame().index]
    t = variance.of_effects(rows, "y", "alpha_true", "psi_true")
    assert t.method == "truth" and t.n_obs == len(rows)
    for comp, v in truth(rows).items():
        assert getattr(t, comp) == pytest.approx(v, rel=1e-12)
    assert t.var_resid == pytest.approx(rows["eps"].var(ddof=0), rel=1e-12)
    assert abs(t.sum_of_parts - t.var_y) < 0.01 * t.var_y
    tab = variance.table(t, r.decompose("kss", leverage="exact"))
    assert list(tab.columns) == ["truth", "kss"]
    with_xb = variance.of_effects(rows.assign(x=0.1 * rows["alpha_true"]), "y", "alpha_true", "psi_true", xb="x")
    assert with_xb.var_xb == pytest.approx(0.01 * t.var_alpha) and with_xb.cov_xb_effects > 0
    with pytest.raises(KeyError, match="table 'frame', column 'alpha'"):
        variance.of_effects(rows, "y", "alpha", "psi_true")
    with pytest.raises(TypeError, match="column 'w'"):
        variance.of_effects(rows.assign(w=rows["worker"].astype(str)), "y", "w", "psi_true")
    bad = rows.copy()
    bad.iloc[[3, 5], bad.columns.get_loc("psi_true")] = np.nan
    with pytest.raises(ValueError, match="2 missing"):
        variance.of_effects(bad, "y", "alpha_true", "psi_true", table="truth")

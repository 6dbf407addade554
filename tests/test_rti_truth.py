"""The PAYE RTI path recovers the truth (issue 16): synthetic England in the RTI format, linked with
``build_panel(profile="paye_rti")``, gives AKM / KSS variance components and a place decomposition of log pay per
day (``ldw``) that match the truth of the same world within the tolerances of the ASHE path.

The truth of the RTI outcome. Pay per day is hourly pay times hours per day paid, so
``ldw = lhw + log(hours) + log(52 / days)`` exactly (to the penny of the annual pay), where ``lhw`` is the true log
hourly wage (``truth.person_years``: alpha + psi + phi + xb + eps). In synthetic England a part-time worker's weekly
hours are drawn each year from U(8, 29.9), a full-time worker's from N(38, 3) clipped to [30, 60]
(``synthetic._person_years``; hours band D, the full-time proxy ``ft == 1``, is exactly the full-time workers). So on
this outcome the true worker effect is ``alpha + E[log hours | ft]`` (part-time work lowers it), the year term is
``xb + log(52 / days)`` (days: 365 or 366 in a tax year), the firm and place effects are unchanged and the yearly
deviation of log hours from its mean joins the error (heteroskedastic: large for part-time workers). The expected log
hours come from ``synthetic.expected_log_hours()``; they are checked here against an independent integral and
against the data.

Tolerances are those of the ASHE path on the same ("workshop") size:

- KSS variance components (``var_alpha``, ``var_psi``, ``2cov_alpha_psi``) within 0.004 of the truth on the
  estimation sample, on pay net of the true place effect and year term (chapter 06's check of the workshop
  population, where AKM is the true model);
- the split-sample corrected headline shares of the variance of district gaps (people, firms, place, sorting) within
  0.03 of the truth on the same person-years (``tests/test_places.py::test_shares_recover_the_truth``), on the
  full-time sample: measured on all workers the people share misses by 0.037 (0.314 against 0.352; seed 0), because
  the hours of part-time workers add between-worker noise to the district means that the split-sample correction
  removes and the in-sample truth keeps.

The panel is built with ``trim=None``: trimming the 0.5% tails of pay per day selects on hours (the years with
the fewest hours of part-time workers), so the kept rows' mean log hours is no longer ``E[log hours | ft]`` and the
truth above would not hold (measured with 10,000 workers: the KSS ``var_alpha`` of all workers is then 0.007 below
it). Measured (seed 0, workshop size): KSS errors at most 0.0003 on all workers and 0.0002 on full-time workers (the
plug-in ``var_alpha`` of all workers is 0.007 above the truth); corrected place shares at most 0.021 off on
full-time workers (people 0.287 against 0.307).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

from prosperity import akm, link, places, synthetic, variance

KSS_TOL = 0.004  # chapter 06: KSS on the workshop population
SHARE_TOL = 0.03  # tests/test_places.py: corrected shares of the variance of district gaps
HEADLINE = ("people", "firms", "place", "sorting")


def test_expected_log_hours_is_the_integral_of_the_hours_distributions():
    """synthetic.expected_log_hours (exact on the 0.1 h grid) against the continuous integrals of the same
    distributions, computed here independently: part time U(8, 29.9), full time N(38, 3) clipped to [30, 60]
    (the rounding to 0.1 h moves the mean log by about 1e-6)."""
    a, b = 8.0, 29.9
    part = (b * np.log(b) - a * np.log(a)) / (b - a) - 1.0
    full = (integrate.quad(lambda x: np.log(x) * stats.norm.pdf(x, 38, 3), 30, 60)[0]
            + np.log(30) * stats.norm.cdf(30, 38, 3) + np.log(60) * stats.norm.sf(60, 38, 3))
    mu = synthetic.expected_log_hours()
    assert mu[1] == pytest.approx(full, abs=1e-5) and mu[2] == pytest.approx(part, abs=1e-5)
    assert synthetic.PART_TIME_HOURS == (a, b) and synthetic.FULL_TIME_HOURS == (38.0, 3.0, 30.0, 60.0)


@pytest.fixture(scope="module")
def world():
    se = synthetic.england(size="workshop", seed=0, source="paye_rti")
    linked = link.build_panel(se, profile="paye_rti", trim=None)
    truth = se.truth.person_years[["piden", "year", "industry", "alpha", "psi", "phi", "xb", "lhw"]].rename(
        columns={"industry": "industry_true"})
    w = linked.workers.drop(columns=["lhw"]).merge(truth, on=["piden", "year"], how="left", validate="one_to_one")
    assert w["alpha"].notna().all()  # every linked person-year is a true one
    mu = synthetic.expected_log_hours()
    w["days_term"] = np.log(52 / w["days"])
    w["log_hours"] = w["ldw"] - w["lhw"] - w["days_term"]  # exact: pay per day = hourly pay x hours x 52 / days
    w["alpha_rti"] = w["alpha"] + w["ft"].map(mu)
    w["xb_rti"] = w["xb"] + w["days_term"]
    w["y_net"] = w["ldw"] - w["phi"] - w["xb_rti"]  # AKM is the true model of this outcome
    w["agesq"] = ((w["age"] - 40) / 10) ** 2
    return se, linked, w


def test_outcome_is_hourly_pay_times_hours(world):
    """The expected log hours by the full-time proxy, from the DGP, agree with the data within 4 standard errors;
    pay per day is hourly pay times hours (the band is the proxy: full-time hours are 30 or more)."""
    _, _, w = world
    mu = synthetic.expected_log_hours()
    g = w.groupby("ft")["log_hours"].agg(["mean", "std", "count", "min", "max"])
    for ft in (1, 2):
        se = g.loc[ft, "std"] / np.sqrt(g.loc[ft, "count"])
        assert abs(g.loc[ft, "mean"] - mu[ft]) < 4 * se, (ft, g.loc[ft, "mean"], mu[ft], se)
    assert g.loc[1, "min"] > np.log(30) - 1e-3 and g.loc[1, "max"] < np.log(60) + 1e-3
    assert g.loc[2, "min"] > np.log(7.95) - 1e-3 and g.loc[2, "max"] < np.log(30) + 1e-3
    assert set(w["ft"]) == {1, 2} and 0.15 < (w["ft"] == 2).mean() < 0.4


@pytest.mark.parametrize("sample", ["all workers", "full time"])
def test_kss_recovers_the_truth(world, sample):
    """AKM on log pay per day net of the true place and year terms, leave-one-out connected set: KSS within
    0.004 of the truth on the estimation sample; the plug-in overstates the variance of worker effects (the noisy
    hours of part-time workers) by more than the tolerance when part-timers are in."""
    _, _, w = world
    d = w if sample == "all workers" else w[w["ft"] == 1]
    r = akm.fit(d, "y_net", "piden", "entref", connected="leave_one_out")
    rows = d.loc[r.to_frame().index]
    true = variance.of_effects(rows, "y_net", "alpha_rti", "psi")
    kss, plug = r.decompose("kss"), r.decompose("plugin")
    assert true.n_obs == kss.n_obs and r.n_obs > 0.95 * len(d)
    for comp in ("var_alpha", "var_psi", "cov_alpha_psi"):
        assert abs(getattr(kss, comp) - getattr(true, comp)) < KSS_TOL, (comp, getattr(kss, comp),
                                                                         getattr(true, comp))
    if sample == "all workers":
        assert plug.var_alpha - true.var_alpha > KSS_TOL, (plug.var_alpha, true.var_alpha)
    # the firm share of var(y): hours differences dilute it on all workers, the full-time proxy restores it
    assert abs(kss.share_psi - true.share_psi) < 0.01


def test_full_time_restores_the_firm_share(world):
    """Hours differences dilute the firm share of the variance of log pay per day; on full-time workers it is that
    of hourly pay (the truth: the same true psi over a var(y) with and without hours)."""
    _, _, w = world
    shares = {}
    for name, d in (("all", w), ("ft", w[w["ft"] == 1])):
        r = akm.fit(d, "y_net", "piden", "entref", connected="leave_one_out")
        shares[name] = r.decompose("plugin").share_psi
        rows = d.loc[r.to_frame().index]
        hourly = variance.of_effects(rows.assign(y=rows["lhw"] - rows["phi"] - rows["xb"]), "y", "alpha", "psi")
        shares[name + "_hourly_truth"] = hourly.share_psi
    assert shares["all"] < shares["ft"] - 0.03, shares
    assert abs(shares["ft"] - shares["ft_hourly_truth"]) < 0.01, shares


def test_place_decomposition_recovers_the_truth(world):
    """places.decompose_gaps on the full-time RTI panel: the corrected headline shares within 0.03 of the truth on
    the same person-years (grouped by the panel's district, as the ASHE test does: central-payroll workers are
    placed at the head office, with the true place effect of where they work)."""
    _, _, w = world
    ft = w[w["ft"] == 1]
    dec = places.decompose_gaps(ft, level="lad", y="ldw", controls=["agesq"], seed=0)
    rows = dec.effects.rows[["piden", "year", "lad"]].merge(
        ft[["piden", "year", "industry_true", "alpha_rti", "xb_rti", "psi", "phi", "ldw"]], on=["piden", "year"],
        validate="one_to_one").rename(columns={"industry_true": "industry"})
    tg = places.gap_components(rows, "lad", y="ldw", people=["alpha_rti", "xb_rti"], firm_premium="psi",
                               place="phi")
    true = places.gap_shares(places.variance_across_places(tg, level="lad")).set_index("component")["share"]
    est = dec.shares(corrected=True).set_index("component")["share"]
    for k in HEADLINE:
        assert abs(est[k] - true[k]) < SHARE_TOL, (k, est[k], true[k])
    m = dec.table.merge(tg, on="lad", suffixes=("", "_t"))
    assert np.corrcoef(m["people"], m["people_t"])[0, 1] > 0.98
    assert np.corrcoef(m["industry_mix"], m["industry_mix_t"])[0, 1] > 0.97


def test_sex_is_coded_as_in_ashe(world):
    """The FPS gender 'M' / 'F' becomes the ASHE coding 1 / 2 (the same person-years carry the same code in both
    formats of one world); another code is missing and counted on the ledger."""
    se, linked, w = world
    emp = se.tables["employees"].set_index("person_id")["sex"]
    expect = w["piden"].map(emp).map({"M": 1, "F": 2})
    assert str(w["sex"].dtype) in ("int64", "Int64") and (w["sex"] == expect).all()
    tiny = synthetic.england(seed=3, source="paye_rti", n_workers=1_200, n_enterprises=150)
    ashe = link.build_panel(synthetic.england(seed=3, n_workers=1_200, n_enterprises=150), trim=None).workers
    t = dict(tiny.tables)
    e = t["employees"].copy()
    odd = e["person_id"].iloc[:4].tolist()
    e.loc[e.index[:4], "sex"] = ["U", "x", None, "2"]
    got = link.build_panel({**t, "employees": e}, profile="paye_rti", trim=None)
    m = got.workers.merge(ashe[["piden", "year", "sex"]], on=["piden", "year"], suffixes=("", "_a"))
    ok = ~m["piden"].isin(odd)
    assert len(m) > 0.9 * len(got.workers) and (m.loc[ok, "sex"] == m.loc[ok, "sex_a"]).all()
    assert m.loc[m["piden"] == odd[3], "sex"].eq(2).all()
    assert m.loc[m["piden"].isin(odd[:3]), "sex"].isna().all()
    line = got.ledger.set_index("step").loc["attach_employee"]
    n_bad = int(got.workers["piden"].isin(odd[:2]).sum())  # 'U' and 'x'; a missing value is not a code
    assert f"{n_bad:,} other code(s) set missing" in line["reason"] and line["dropped"] == 0

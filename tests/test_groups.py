"""Group estimators (prosperity.groups): firm classes by k-means, static BLM, CRE.

Tolerances. BLM: on the BLM design of ``groups.simulate`` (20,000 workers, 200 firms, two periods, 4 types x 4
classes, no within-class firm effects) the classes are recovered (adjusted Rand index >= 0.9; 1.0 on this seed)
and the shares of var(y) of worker types, firm classes and sorting lie within 0.02 of the truth (measured
differences at most 0.005). CRE: on ``prosperity.testing.simulate`` (continuous firm effects, 40,000 workers x 5
years, 1,000 firms, 10 k-means classes) the firm-effect and sorting shares lie within 0.01 of the truth on the
same cross-section (measured differences 0.001-0.003 over seeds 0-2 while writing the test; the implied worker
share within 0.02, measured at most 0.007); on the workshop
synthetic England (log pay net of the true age and year profile ``xb``; firm effect = enterprise + place effect)
within 0.015 (measured 0.0003 and 0.007).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from prosperity import akm, groups, synthetic, testing, variance
from prosperity._results import Result


@pytest.fixture(scope="module")
def blm_panel():
    return groups.simulate(n_workers=20_000, n_firms=200, seed=1)


@pytest.fixture(scope="module")
def blm_fit(blm_panel):
    classes = groups.firm_classes(blm_panel, k=4, seed=0)
    return groups.blm(blm_panel, classes=classes, n_types=4, n_starts=4, seed=0)


@pytest.fixture(scope="module")
def cre_panel():
    return testing.simulate(n_workers=40_000, years=5, n_firms=1_000, move=0.2, seed=0)


def _truth_on_events(df: pd.DataFrame, ev: groups.Events) -> dict:
    """True shares on the period-1 cross-section of the events (the rows the estimators describe)."""
    t = ev.table
    alpha = df.groupby("worker")["alpha_true"].first().reindex(t["worker"]).to_numpy()
    psi = df.groupby("firm")["psi_true"].first().reindex(ev.firm_ids[t["j1"].to_numpy()]).to_numpy()
    vy = float(t["y1"].var(ddof=0))
    return {"share_alpha": float(np.var(alpha) / vy), "share_psi": float(np.var(psi) / vy),
            "share_sorting": float(2 * np.cov(alpha, psi, ddof=0)[0, 1] / vy)}


def test_blm_recovers_true_classes(blm_panel, blm_fit):
    true = blm_panel.groupby("firm")["cls"].first().reindex(blm_fit.classes.table["firm"]).to_numpy()
    assert groups.adjusted_rand_index(true, blm_fit.classes.table["cls"]) >= 0.9


def test_blm_shares_close_to_truth(blm_panel, blm_fit):
    ev = groups.events(blm_panel, blm_fit.classes)
    truth = _truth_on_events(blm_panel, ev)
    d = blm_fit.decomposition
    for c in ("share_alpha", "share_psi", "share_sorting"):
        assert abs(getattr(d, c) - truth[c]) < 0.02, (c, getattr(d, c), truth[c])


def test_blm_result_pattern(blm_fit):
    r = blm_fit
    assert isinstance(r, Result) and isinstance(r.decomposition, variance.VarianceDecomposition)
    assert r.decomposition.method == "blm"
    assert r.converged and r.iterations > 1 and len(r.starts) == 4
    # the start with the highest penalised log-likelihood (the objective) is kept; loglik is its plain one
    best = r.starts.loc[r.starts["objective"].idxmax()]
    assert r.loglik == pytest.approx(best["loglik"]) and r.var_prior == 1.0
    assert "variance prior: 1 pseudo-mover" in r.summary()


def test_blm_objective_is_loglik_plus_log_prior(blm_panel, blm_fit):
    """The objective of the kept start is the movers' log-likelihood plus the log prior
    ``-(nu / 2) sum (log s^2 + v0 / s^2)`` over the 2 L K cells, ``v0`` the pooled within-class variance of the
    period's movers' wages over ``L^2`` (recomputed here from the event table; at convergence, to 1e-6)."""
    r = blm_fit
    m = groups.events(blm_panel, r.classes).movers
    L = r.pk_stayers.shape[1]
    log_prior = 0.0
    for per in ("1", "2"):
        g = m.groupby("g" + per)["y" + per]
        v0 = float(((m["y" + per] - g.transform("mean")) ** 2).sum() / (len(m) - g.ngroups)) / L ** 2
        v = r.table["s" + per].to_numpy() ** 2
        log_prior += float(-0.5 * r.var_prior * (np.log(v) + v0 / v).sum())
    best = r.starts.loc[r.starts["objective"].idxmax()]
    assert best["objective"] == pytest.approx(best["loglik"] + log_prior, rel=1e-6)
    assert log_prior != 0
    assert set(r.table.columns) >= {"type", "cls", "a1", "s1", "a2", "s2", "share", "alpha", "psi"}
    assert r.table["share"].sum() == pytest.approx(1.0)
    # types are numbered by their mean wage; the stayers' type shares are distributions
    assert np.all(np.diff(r.table.groupby("type")["a1"].mean().to_numpy()) > 0)
    np.testing.assert_allclose(r.pk_stayers.sum(1), 1.0)
    d = r.decomposition
    assert d.var_alpha + d.var_psi + 2 * d.cov_alpha_psi + d.var_resid == pytest.approx(d.var_y)
    assert d.details["interaction"] >= 0 and d.details["within_cell"] > 0
    sh = r.shares()
    assert list(sh.columns[:2]) == ["component", "share"] and "sorting" in set(sh["component"])
    assert "converged" in r.summary() and "worker types" in repr(r)


def test_blm_deterministic_and_more_starts_never_lower_likelihood(blm_panel, blm_fit):
    one = groups.blm(groups.events(blm_panel, blm_fit.classes), n_types=4, n_starts=1, seed=0)
    # the first start of a run draws the same starting values whatever the number of starts: same seed, same fit
    assert one.loglik == blm_fit.starts["loglik"].iloc[0] and one.iterations == blm_fit.starts["iterations"].iloc[0]
    assert blm_fit.loglik >= one.loglik


def test_cre_shares_close_to_truth(cre_panel):
    r = groups.cre(cre_panel, k=10, seed=0)
    truth = _truth_on_events(cre_panel, groups.events(cre_panel, r.classes))
    d = r.decomposition
    assert d.method == "cre"
    for c in ("share_psi", "share_sorting"):
        assert abs(getattr(d, c) - truth[c]) < 0.01, (c, getattr(d, c), truth[c])
    assert abs(d.share_alpha - truth["share_alpha"]) < 0.02
    # total = between + within, and var_resid from stayers' wage changes is the simulated error variance
    t = r.table.set_index("component")
    np.testing.assert_allclose(t["total"], t["between"] + t["within"])
    first = cre_panel.sort_values(["worker", "year"]).groupby("worker").head(2)
    assert d.var_resid == pytest.approx(float((first["eps"] ** 2).mean()), rel=0.1)


def test_cre_shares_close_to_truth_on_synthetic_england():
    py = synthetic.england(size="workshop", seed=0).truth.person_years
    py = py.assign(y=py["lhw"] - py["xb"], fe=py["psi"] + py["phi"])
    r = groups.cre(py, y="y", worker="piden", firm="entref", time="year", k=10, seed=0)
    ev = groups.events(py, r.classes, y="y", worker="piden", firm="entref", time="year").table
    rows = ev[["piden", "t1"]].merge(py[["piden", "year", "alpha", "fe"]], left_on=["piden", "t1"],
                                     right_on=["piden", "year"], how="left", validate="one_to_one")
    vy = float(ev["y1"].var(ddof=0))
    d = r.decomposition
    assert abs(d.share_psi - rows["fe"].var(ddof=0) / vy) < 0.015
    assert abs(d.share_sorting - 2 * np.cov(rows["alpha"], rows["fe"], ddof=0)[0, 1] / vy) < 0.015


def test_cre_invariant_to_level_of_y(cre_panel):
    classes = groups.firm_classes(cre_panel, k=10, seed=0)
    a = groups.cre(cre_panel, classes=classes)
    b = groups.cre(cre_panel.assign(y=cre_panel["y"] + 3.0), classes=classes)
    for f in ("var_psi", "cov_alpha_psi", "var_resid", "var_y"):
        assert getattr(a.decomposition, f) == pytest.approx(getattr(b.decomposition, f), abs=1e-10)


def test_four_estimators_in_one_table(blm_panel, blm_fit):
    fe = akm.fit(blm_panel, y="y", worker="worker", firm="firm")
    c = groups.cre(groups.events(blm_panel, blm_fit.classes))
    tab = variance.table(fe.decompose("plugin"), blm_fit.decomposition, c.decomposition)
    assert list(tab.columns) == ["plugin", "blm", "cre"]
    assert np.isfinite(tab.loc["share_psi"]).all()


def test_firm_classes_deterministic_and_labels(blm_panel):
    a = groups.firm_classes(blm_panel, k=4, seed=3)
    b = groups.firm_classes(blm_panel, k=4, seed=3)
    assert a.table.equals(b.table) and a.inertia == b.inertia
    assert a.centers.shape == (4, 10) and np.all(np.diff(a.centers[:, 4]) <= 0)  # class 0: lowest wages
    # classes from given labels: same partition (renumbered by mean wage), no k-means
    given = pd.Series((a.labels().to_numpy() + 1) % 4 * 10, index=a.labels().index)
    c = groups.firm_classes(blm_panel, labels=given)
    assert c.k == 4 and groups.adjusted_rand_index(c.table["cls"], a.table["cls"]) == 1.0
    assert c.inertia == pytest.approx(a.inertia)


def test_adjusted_rand_index():
    assert groups.adjusted_rand_index([0, 0, 1, 1], [5, 5, 2, 2]) == 1.0
    # contingency (2, 1, 1): index 1, expected 1/3, maximum 3/2 -> (1 - 1/3) / (3/2 - 1/3) = 4/7
    assert groups.adjusted_rand_index([0, 0, 1, 1], [0, 0, 1, 2]) == pytest.approx(4 / 7)
    rng = np.random.default_rng(0)
    assert abs(groups.adjusted_rand_index(rng.integers(4, size=5000), rng.integers(4, size=5000))) < 0.01


def test_events_by_hand():
    df = pd.DataFrame({"worker": [1, 1, 1, 2, 2, 3], "year": [1, 2, 3, 1, 2, 1],
                       "firm": ["A", "A", "B", "A", "A", "B"], "y": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    fc = groups.firm_classes(df, k=2, seed=0)
    t = groups.events(df, fc).table.set_index("worker")
    assert t.loc[1, "mover"] and t.loc[1, "y1"] == 2.0 and t.loc[1, "y2"] == 3.0
    assert not t.loc[2, "mover"] and t.loc[2, "y1"] == 4.0 and t.loc[2, "y2"] == 5.0
    assert np.isnan(t.loc[3, "y2"]) and t.loc[3, "j1"] == t.loc[3, "j2"]


def test_bad_inputs(blm_panel, blm_fit):
    small = blm_panel.head(400)
    with pytest.raises(KeyError, match="'wage'"):
        groups.blm(small, y="wage")
    dup = pd.concat([small, small.head(3)])
    with pytest.raises(ValueError, match=r"table 'data'.*share a key.*\(e\.g\. \(worker, year\)"):
        groups.cre(dup, classes=blm_fit.classes)
    with pytest.raises(TypeError, match="column 'y': must be numeric"):
        groups.firm_classes(small.assign(y=small["y"].astype(str)))
    with pytest.raises(ValueError, match="column 'y': 1 missing"):
        groups.cre(small.assign(y=small["y"].where(small.index != 5)), classes=blm_fit.classes)
    with pytest.raises(ValueError, match="classes must be a FirmClasses"):
        groups.blm(small, classes={"a": 1})
    with pytest.raises(ValueError, match="classes must be a FirmClasses"):
        groups.events(small, blm_fit.classes.labels())
    with pytest.raises(ValueError, match="its own classes"):
        groups.cre(groups.events(small, blm_fit.classes), classes=groups.firm_classes(small, k=2))
    with pytest.raises(ValueError, match="column 'firm'.*without a class"):
        groups.events(small.assign(firm=small["firm"] + 10_000), blm_fit.classes)
    with pytest.raises(ValueError, match="table 'labels', column 'firm': .* no label"):
        groups.firm_classes(small, labels=pd.Series([0], index=[small["firm"].iloc[0]]))
    with pytest.raises(ValueError, match="BLM needs many movers"):
        groups.blm(small.head(40), k=2, n_types=6)
    with pytest.raises(ValueError, match="var_prior must be a finite number >= 0"):
        groups.blm(small, classes=blm_fit.classes, n_types=2, var_prior=-1.0)
    with pytest.raises(ValueError, match="k must be between 1"):
        groups.firm_classes(small, k=0)


def test_blm_variance_prior_fixes_a_degenerate_component():
    """A Gaussian mixture's likelihood is unbounded as a variance goes to zero. On the 1% ASHE-style sample (1,528
    movers for 4 types x 10 classes) maximum-likelihood EM (``var_prior=0``) ends with wage s.d.s at the floor
    ``sd_min`` (4 of 80 while writing this test; the movers' log-likelihood per mover +0.18, against -0.48 on the
    population): a warning and a summary line, never a silent number. With the default variance prior none is at
    the floor, and the smallest s.d. is hundreds of times the floor (measured 0.046)."""
    se = synthetic.england(size="research", seed=0, sample="ashe")
    py = se.truth.person_years.copy()
    py["y"] = py["lhw"] - py["phi"] - py["xb"]
    classes = groups.firm_classes(py, "y", "entref", seed=0)
    ev = groups.events(py, classes, "y", "piden", "entref", "year")
    with pytest.warns(RuntimeWarning, match="floor sd_min"):
        ml = groups.blm(ev, n_types=4, n_starts=3, seed=0, var_prior=0)
    assert ml.degenerate_cells > 0
    assert (ml.table[["s1", "s2"]].to_numpy() <= 1e-4 * (1 + 1e-9)).sum() == ml.degenerate_cells
    assert "WARNING" in ml.summary() and "floor sd_min" in ml.summary() and "maximum likelihood" in ml.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit = groups.blm(ev, n_types=4, n_starts=3, seed=0)
    assert fit.degenerate_cells == 0 and "WARNING" not in fit.summary() and "variance prior" in fit.summary()
    assert fit.table[["s1", "s2"]].to_numpy().min() > 0.02


def test_blm_variance_prior_on_small_samples():
    """Small samples of the BLM design (300 workers, 40 firms, 4 types x 4 classes, about 90 movers for 16 cells):
    without the prior every fit of seeds 0-9 ends with s.d.s at the floor, with it none does, and the sorting
    share is nearer the truth (root mean squared error over the ten seeds 0.055 without and 0.021 with the prior
    while writing this test; over 20 seeds 0.054 and 0.022)."""
    err = {0.0: [], 1.0: []}
    floored = {0.0: 0, 1.0: 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for seed in range(10):
            df = groups.simulate(n_workers=300, n_firms=40, seed=seed)
            ev = groups.events(df, groups.firm_classes(df, k=4, seed=0))
            truth = _truth_on_events(df, ev)["share_sorting"]
            for nu in err:
                r = groups.blm(ev, n_types=4, n_starts=3, seed=0, var_prior=nu)
                err[nu].append(r.decomposition.share_sorting - truth)
                floored[nu] += r.degenerate_cells > 0
    assert floored == {0.0: 10, 1.0: 0}
    rmse = {nu: float(np.sqrt(np.mean(np.square(e)))) for nu, e in err.items()}
    assert rmse[1.0] < 0.6 * rmse[0.0], rmse


def test_blm_variance_prior_one_type_by_hand(blm_panel):
    """With one worker type EM has a closed form: the mean of each class and period is the movers' mean, the
    variance the posterior mode ``(W + nu v0) / (n + nu)`` (``W``: sum of squared deviations, ``v0``: the pooled
    within-class variance, ``L = 1``), computed here from the event table with pandas."""
    small = blm_panel[blm_panel["worker"] < 3000]
    ev = groups.events(small, groups.firm_classes(small, k=4, seed=0))
    m = ev.movers
    for nu in (0.0, 1.0, 50.0):
        r = groups.blm(ev, n_types=1, n_starts=1, seed=0, var_prior=nu)
        tab = r.table.set_index("cls")
        for per in ("1", "2"):
            g = m.groupby("g" + per)["y" + per]
            n, mean = g.size(), g.mean()
            W = g.apply(lambda v: float(((v - v.mean()) ** 2).sum()))
            v0 = W.sum() / (len(m) - len(n))
            var = (W + nu * v0) / (n + nu)
            np.testing.assert_allclose(tab["a" + per].to_numpy(), mean.to_numpy(), rtol=1e-9)
            np.testing.assert_allclose(tab["s" + per].to_numpy() ** 2, var.to_numpy(), rtol=1e-8)


def test_blm_well_identified_fit_has_no_degenerate_component(blm_fit):
    assert blm_fit.degenerate_cells == 0
    assert "WARNING" not in blm_fit.summary()

"""Tests of prosperity.productivity: exact adding-up, agreement with direct computations, recovery of known
parameters on small simulated data, and errors that name the table, column and ids."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest

from prosperity import classifications, productivity as pr
from prosperity._checks import InputError, MissingColumnError
from prosperity._results import Result

RTOL = 1e-12


# ---------------------------------------------------------------------------------------------------------------
# small data


def toy_units():
    """Two places, two industries, five firm units; industry B is absent from place 'north'."""
    return pd.DataFrame(
        {
            "entref": [1, 2, 3, 4, 5],
            "region": ["north", "north", "south", "south", "south"],
            "industry": ["A", "A", "A", "B", "B"],
            "gva": [100.0, 300.0, 200.0, 900.0, 100.0],
            "employment": [10.0, 10.0, 5.0, 10.0, 5.0],
        }
    )


def random_world(seed=0, n_firms=300, regions=("r1", "r2", "r3", "r4"), industries=("A", "B", "C"), years=(2018, 2019)):
    """Register, accounts and located sites of a random business population with multi-site enterprises."""
    rng = np.random.default_rng(seed)
    ent_rows, site_rows, acc_rows = [], [], []
    for e in range(n_firms):
        ind = industries[rng.integers(len(industries))]
        n_sites = 1 + (rng.random() < 0.3) * rng.integers(1, 4)
        places = rng.choice(regions, size=n_sites)
        for y in years:
            emps = rng.integers(0 if rng.random() < 0.05 else 1, 60, size=n_sites)
            for k in range(n_sites):
                site_rows.append((1000 * e + k, 10_000 + e, y, places[k], int(emps[k])))
            tot = int(emps.sum())
            ent_rows.append((10_000 + e, y, ind, tot))
            if tot > 0 and (tot >= 50 or rng.random() < 0.4):
                acc_rows.append((10_000 + e, y, float(np.exp(rng.normal(3.5, 0.5))) * tot))
    register = pd.DataFrame(ent_rows, columns=["entref", "year", "industry", "employment"])
    sites = pd.DataFrame(site_rows, columns=["luref", "entref", "year", "region", "employment"])
    accounts = pd.DataFrame(acc_rows, columns=["entref", "year", "gva"])
    return register, sites, accounts


def direct_place_productivity(register, sites, accounts, weights):
    """GVA per worker by place-year, computed firm by firm with plain loops (the check on the pipeline)."""
    w = {(r.entref, r.year): r.weight for r in weights.itertuples()}
    emp_e = sites.groupby(["entref", "year"])["employment"].sum().to_dict()
    gva_e = {(r.entref, r.year): r.gva for r in accounts.itertuples()}
    num, den = {}, {}
    for s in sites.itertuples():
        key = (s.entref, s.year)
        if key not in gva_e or key not in w or emp_e[key] <= 0 or s.employment <= 0:
            continue
        share = s.employment / emp_e[key]
        k = (s.year, s.region)
        num[k] = num.get(k, 0.0) + w[key] * gva_e[key] * share
        den[k] = den.get(k, 0.0) + w[key] * s.employment
    return pd.Series({k: num[k] / den[k] for k in num}, name="direct")


# ---------------------------------------------------------------------------------------------------------------
# shift-share and Olley-Pakes


def test_shift_share_by_hand():
    u = toy_units()
    ss = pr.shift_share(u, weight=None)
    t = ss.table.set_index("region")
    # national: A: gva 600 / emp 25 = 24; B: 1000 / 15; total 1600 / 40 = 40
    P, PA, PB, sA, sB = 40.0, 24.0, 1000 / 15, 25 / 40, 15 / 40
    # north: only A, P_rA = 400 / 20 = 20; B absent: P_rB := P_B
    mix_n = (1 - sA) * PA + (0 - sB) * PB
    within_n = sA * (20 - PA)
    inter_n = (1 - sA) * (20 - PA)
    assert t.loc["north", "productivity"] == pytest.approx(20.0, rel=RTOL)
    assert t.loc["north", "gap"] == pytest.approx(20.0 - P, rel=RTOL)
    assert t.loc["north", "industry_mix"] == pytest.approx(mix_n, rel=RTOL)
    assert t.loc["north", "within_industry"] == pytest.approx(within_n, rel=RTOL)
    assert t.loc["north", "interaction"] == pytest.approx(inter_n, rel=RTOL)
    parts = t[["industry_mix", "within_industry", "interaction"]].sum(axis=1)
    np.testing.assert_allclose(parts, t["gap"], rtol=0, atol=1e-12)
    assert t.loc["south", "n_firms"] == 3 and t.loc["north", "n_firms"] == 2
    cells = ss.cells.set_index(["region", "industry"])
    assert cells.loc[("north", "B"), "n_firms"] == 0
    assert cells.loc[("south", "A"), "n_firms"] == 1


def test_olley_pakes_identity_and_by_hand():
    u = toy_units()
    op = pr.olley_pakes(u, by="region", weight=None).table.set_index("region")
    # south: p = [40, 90, 20], s = [0.25, 0.5, 0.25]
    p = np.array([40.0, 90.0, 20.0])
    s = np.array([5.0, 10.0, 5.0]) / 20
    assert op.loc["south", "productivity"] == pytest.approx((s * p).sum(), rel=RTOL)
    assert op.loc["south", "mean_firm"] == pytest.approx(p.mean(), rel=RTOL)
    assert op.loc["south", "allocation"] == pytest.approx(((s - 1 / 3) * (p - p.mean())).sum(), rel=RTOL)
    np.testing.assert_allclose(op["productivity"], op["mean_firm"] + op["allocation"], rtol=RTOL)


def test_olley_pakes_weights_equal_replicated_firms():
    """A firm with survey weight 3 counts as three identical firms."""
    rng = np.random.default_rng(1)
    n = 40
    u = pd.DataFrame({"entref": np.arange(n), "region": rng.choice(["a", "b"], n),
                      "gva": rng.lognormal(3, 0.6, n) * 10, "employment": rng.integers(1, 30, n).astype(float),
                      "weight": rng.integers(1, 4, n).astype(float)})
    rep = u.loc[u.index.repeat(u["weight"].astype(int))].assign(weight=1.0)
    rep["entref"] = np.arange(len(rep))
    a = pr.olley_pakes(u, by="region").table.set_index("region")
    b = pr.olley_pakes(rep, by="region").table.set_index("region")
    for c in ("productivity", "mean_firm", "allocation"):
        np.testing.assert_allclose(a[c], b[c], rtol=1e-12)
    np.testing.assert_allclose(a["n_weighted"], b["n_units"], rtol=1e-12)


def test_decompose_productivity_adds_up_and_matches_direct_computation():
    register, sites, accounts = random_world(seed=3)
    dw = pr.design_weights(register, accounts, industry="industry")
    assert (dw.table["weight"] >= 1).all()
    ap = pr.apportion_gva(accounts, sites, register, level="region", design=dw)
    dec = pr.decompose_productivity(ap.table, level="region", by="year")
    t = dec.table
    parts = t[list(dec.components)].sum(axis=1)
    np.testing.assert_allclose(parts, t["gap"], rtol=0, atol=1e-9 * t["national"].abs().max())
    np.testing.assert_allclose(t[[f"relative_{c}" for c in dec.components]].sum(axis=1), t["relative_gap"],
                               rtol=0, atol=1e-12)
    # place productivity = the direct firm-by-firm computation
    direct = direct_place_productivity(register, sites, accounts, dw.table)
    got = t.set_index(["year", "region"])["productivity"]
    assert set(got.index) == set(direct.index)
    np.testing.assert_allclose(got.loc[direct.index].to_numpy(), direct.to_numpy(), rtol=1e-12)
    # national = total weighted GVA / total weighted employment of the apportioned units
    u = ap.table
    nat = (u.weight * u.gva).groupby(u.year).sum() / (u.weight * u.employment).groupby(u.year).sum()
    np.testing.assert_allclose(t.groupby("year")["national"].first().to_numpy(), nat.to_numpy(), rtol=1e-12)
    # the within-industry term of shift_share = firm_within + allocation
    ss = pr.shift_share(ap.table, level="region", by="year").table
    np.testing.assert_allclose(ss["within_industry"], t["firm_within"] + t["allocation"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ss["industry_mix"], t["industry_mix"], rtol=1e-12)
    # the Olley-Pakes table by place adds up too, and its productivity is the place productivity
    op = dec.op
    np.testing.assert_allclose(op["productivity"], op["mean_firm"] + op["allocation"], rtol=1e-12)
    np.testing.assert_allclose(op.set_index(["year", "region"])["productivity"].loc[got.index], got, rtol=1e-12)
    # employment-weighted mean gap across places is zero, and so is the industry-mix term's
    for c in ("gap", "industry_mix"):
        m = (t[c] * t["employment"]).groupby(t["year"]).sum() / t.groupby("year")["employment"].sum()
        np.testing.assert_allclose(m, 0, atol=1e-9 * t["national"].max())
    assert "industry mix" in dec.summary()
    assert dec.shares()["share"].sum() == pytest.approx(1.0)


def test_apportion_conserves_gva_and_lists_exclusions():
    register, sites, accounts = random_world(seed=5)
    # an account of an enterprise-year with no site employment, and one not on the register
    zero = register.loc[register["employment"] == 0, ["entref", "year"]].head(1)
    extra = pd.DataFrame({"entref": list(zero["entref"]) + [999_999], "year": list(zero["year"]) + [2019],
                          "gva": [50.0] * (len(zero) + 1)})
    acc = pd.concat([accounts, extra], ignore_index=True)
    ap = pr.apportion_gva(acc, sites, register, level="region")
    placed = ap.table.groupby(["entref", "year"])["gva"].sum()
    src = acc.set_index(["entref", "year"])["gva"]
    np.testing.assert_allclose(placed.to_numpy(), src.loc[placed.index].to_numpy(), rtol=1e-12)
    assert len(placed) + len(ap.excluded) == len(acc)
    reasons = set(ap.excluded["reason"])
    assert "not on the enterprise register" in reasons
    if len(zero):
        assert "no local-unit employment to apportion GVA to" in reasons
    # a multi-site enterprise's sites all get its GVA per worker
    u = ap.table.assign(p=ap.table.gva / ap.table.employment)
    spread = u.groupby(["entref", "year"])["p"].agg(lambda s: s.max() - s.min())
    assert spread.max() < 1e-9 * u["p"].max()
    cov = ap.coverage
    assert ((cov["coverage"] >= 0) & (cov["coverage"] <= 1)).all()


def test_design_weights():
    register, _, accounts = random_world(seed=7)
    dw = pr.design_weights(register, accounts, industry="industry")
    s = dw.strata
    assert (s.loc[s.n_sample > 0, "weight"] == s.loc[s.n_sample > 0, "n_register"] / s.loc[s.n_sample > 0, "n_sample"]).all()
    # weighted count of surveyed firms reproduces the in-scope register in every represented stratum
    w = dw.table.merge(register, on=["entref", "year"])
    tot = w.groupby("year")["weight"].sum()
    in_scope = register[register.employment >= 1].groupby("year").size()
    unrep = dw.unrepresented.groupby("year").size().reindex(tot.index, fill_value=0)
    np.testing.assert_allclose(tot.to_numpy(), (in_scope - unrep).to_numpy(), rtol=1e-12)
    # firms with 50+ employees are all surveyed in random_world: weight one
    big = w[w.employment >= 50]
    assert np.allclose(big["weight"], 1.0)
    assert len(dw.out_of_scope) == int((register.employment < 1).sum())
    none = pr.design_weights(register, accounts, industry="industry", method="none")
    assert (none.table["weight"] == 1).all()
    assert "survey holds" in dw.summary()


def test_decomposition_exact_with_negative_gva_and_single_industry():
    u = toy_units()
    u.loc[0, "gva"] = -50.0  # real aGVA can be negative
    dec = pr.decompose_productivity(u, weight=None)
    t = dec.table
    np.testing.assert_allclose(t[list(dec.components)].sum(axis=1), t["gap"], atol=1e-12)
    one = u.assign(industry="A")
    t1 = pr.decompose_productivity(one, weight=None).table
    np.testing.assert_allclose(t1["industry_mix"], 0.0, atol=1e-12)
    np.testing.assert_allclose(t1["interaction"], 0.0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------------------
# skill


def skill_world(seed=0, theta=0.8, sort=1.5, n_firms=400, years=6):
    """Firm-year panel where log VA/L = mu_k + omega_j + theta * abar_jt + noise, and skilled workers sort into
    high-omega firms (so the cross-sectional regression is biased, the within-firm one is not)."""
    rng = np.random.default_rng(seed)
    omega = rng.normal(0, 0.4, n_firms)
    ind = rng.choice(["A", "B", "C"], n_firms)
    mu = pd.Series({"A": 0.0, "B": 0.3, "C": -0.2})[ind].to_numpy()
    region = rng.choice(["r1", "r2", "r3"], n_firms)
    rows = []
    for t in range(years):
        abar = 0.25 * sort * omega + rng.normal(0, 0.15, n_firms)
        emp = rng.integers(5, 80, n_firms).astype(float)
        lva = mu + omega + theta * abar + rng.normal(0, 0.02, n_firms)
        rows.append(pd.DataFrame({"entref": np.arange(n_firms), "year": 2010 + t, "industry": ind,
                                  "region": region, "skill": abar, "employment": emp,
                                  "gva": np.exp(lva + 3) * emp}))
    return pd.concat(rows, ignore_index=True)


def test_skill_elasticity_within_recovers_theta_and_between_is_biased():
    p = skill_world()
    within = pr.skill_elasticity(p, method="within")
    between = pr.skill_elasticity(p, method="between")
    assert abs(within.theta - 0.8) < 3 * within.se + 0.02
    assert between.theta > within.theta + 0.5  # sorting on omega inflates the cross-section
    assert "within" in within.summary()


def test_skill_decomposition_adds_up():
    p = skill_world(seed=2)
    u = p[p.year == 2012].assign(weight=1.0)
    for theta in (None, 0.8, 1.0):
        sd = pr.skill_decomposition(u, theta=theta)
        t = sd.table
        np.testing.assert_allclose(t[list(sd.components)].sum(axis=1), t["gap"], atol=1e-12)
        w = t["employment"] / t["employment"].sum()
        assert abs((w * t["gap"]).sum()) < 1e-12
        if theta is not None:
            assert sd.theta == theta
            np.testing.assert_allclose(t["skill"], theta * (t["mean_skill"] - (w * t["mean_skill"]).sum()), atol=1e-12)
    assert sd.shares()["share"].sum() == pytest.approx(1.0)


def test_firm_skill_counts_missing_effects():
    workers = pd.DataFrame({"piden": [1, 2, 3, 4], "entref": [10, 10, 20, 20], "year": 2019})
    effects = pd.DataFrame({"piden": [1, 2, 3], "alpha": [0.1, 0.3, -0.2]})
    fs = pr.firm_skill(workers, effects).set_index("entref")
    assert fs.loc[10, "skill"] == pytest.approx(0.2)
    assert fs.loc[20, "n_missing"] == 1 and fs.loc[20, "n_obs"] == 1


# ---------------------------------------------------------------------------------------------------------------
# rent sharing


def test_rent_sharing_recovers_elasticity():
    rng = np.random.default_rng(4)
    n = 3000
    lva = rng.normal(4, 0.6, n)
    ind = rng.choice(list("ABCDE"), n)
    eta = pd.Series(dict(zip("ABCDE", [0.1, -0.1, 0.05, 0.0, -0.2])))[ind].to_numpy()
    psi = eta + 0.12 * lva + rng.normal(0, 0.05, n)
    d = pd.DataFrame({"entref": np.arange(n), "psi": psi, "lva": lva, "industry": ind,
                      "n": rng.integers(2, 50, n).astype(float)})
    d.loc[:4, "psi"] = np.nan  # outside the connected set
    rs = pr.rent_sharing(d, fixed_effects="industry", weight="n")
    assert abs(rs.elasticity - 0.12) < 3 * rs.se
    assert rs.n_firms == n - 5 and len(rs.excluded) == 5
    assert set(rs.excluded["entref"]) == set(range(5))
    # noise in psi (left-hand side) widens the interval but does not bias the slope
    d2 = d.assign(psi=d["psi"] + rng.normal(0, 0.3, n))
    rs2 = pr.rent_sharing(d2, fixed_effects="industry")
    assert rs2.se > rs.se and abs(rs2.elasticity - 0.12) < 3 * rs2.se
    assert rs2.corr < rs.corr  # ... but it attenuates the correlation
    assert "elasticity" in rs.summary()


def test_firm_log_productivity_averages_years():
    f = pd.DataFrame({"entref": [1, 1, 2], "year": [2018, 2019, 2019], "gva": [100.0, 400.0, 50.0],
                      "employment": [10.0, 10.0, 5.0]})
    out = pr.firm_log_productivity(f).set_index("entref")
    assert out.loc[1, "lva"] == pytest.approx((np.log(10) + np.log(40)) / 2)
    assert out.loc[1, "n_years"] == 2


# ---------------------------------------------------------------------------------------------------------------
# functions within firms


def test_function_concentration_by_hand():
    # enterprise 1: London 4 jobs (3 top), Leeds 4 jobs (1 top); enterprise 2: single site (ignored)
    workers = pd.DataFrame({
        "entref": [1] * 8 + [2] * 3,
        "year": 2019,
        "region": ["L"] * 4 + ["Y"] * 4 + ["L"] * 3,
        "soc": [1, 2, 1, 5, 2, 9, 9, 9, 1, 1, 1],
    })
    ho = pd.DataFrame({"entref": [1, 2], "year": [2019, 2019], "region": ["L", "L"]})
    fc = pr.function_concentration(workers, head_office=ho)
    t = fc.table.set_index("region")
    assert fc.n_multi_site == 1
    assert t.loc["L", "share"] == pytest.approx(0.75)
    assert t.loc["L", "expected"] == pytest.approx(0.25)  # the enterprise's other site
    assert t.loc["L", "lq"] == pytest.approx(3.0)
    assert t.loc["Y", "lq"] == pytest.approx(0.25 / 0.75)
    np.testing.assert_allclose(t["excess"], t["share"] - t["expected"], atol=1e-15)
    h = fc.head_office.set_index("site")
    assert h.loc["head office", "share"] == pytest.approx(0.75) and h.loc["branch", "share"] == pytest.approx(0.25)
    assert t.loc["L", "head_office_share"] == pytest.approx(1.0)


def test_account_for():
    rng = np.random.default_rng(0)
    n = 50
    m = rng.normal(size=n)
    c = 0.5 * m + rng.normal(0, 0.5, n)
    tab = pd.DataFrame({"region": np.arange(n), "firm_within": c, "lq": m, "emp": rng.integers(1, 9, n).astype(float)})
    res = pr.account_for(tab, "firm_within", "lq")
    assert res.share == pytest.approx(np.corrcoef(c, m)[0, 1] ** 2, rel=1e-10)
    t = res.table
    np.testing.assert_allclose(t["explained"] + t["unexplained"], t["firm_within"] - t["mean"], atol=1e-12)
    resw = pr.account_for(tab, "firm_within", "lq", weight="emp")
    assert 0 <= resw.share <= 1


# ---------------------------------------------------------------------------------------------------------------
# errors name the table, column and ids


def test_errors_name_table_column_and_ids():
    u = toy_units()
    with pytest.raises(KeyError, match=r"^table 'units', column 'gva': no column\(s\) \['gva'\]"):
        pr.decompose_productivity(u.drop(columns="gva"), weight=None)
    bad = u.copy()
    bad.loc[3, "employment"] = 0
    with pytest.raises(ValueError, match=r"^table 'units', column 'employment': 1 zero or negative value\(s\) "
                                         r"\(e\.g\. \(entref, region, industry\) \[\(4, 'south', 'B'\)\]\)$"):
        pr.shift_share(bad, weight=None)
    bad = u.copy()
    bad.loc[1, "industry"] = None
    with pytest.raises(ValueError, match=r"^table 'units', column 'industry': 1 missing.*\(entref, region\) "
                                         r"\[\(2, 'north'\)\]"):
        pr.olley_pakes(bad.assign(weight=1.0), by=["region", "industry"])
    register, sites, accounts = random_world(seed=9)
    dup = pd.concat([accounts, accounts.iloc[:1]])
    key = tuple(accounts.iloc[0][["entref", "year"]].astype(int))
    with pytest.raises(ValueError, match=rf"^table 'accounts': 2 rows share a key \['entref', 'year'\].*"
                                         rf"\({key[0]}, {key[1]}\)"):
        pr.apportion_gva(dup, sites, register)
    stray = pd.concat([accounts, pd.DataFrame({"entref": [777], "year": [2019], "gva": [1.0]})])
    with pytest.raises(ValueError, match=r"^table 'survey', column 'entref': 1 enterprise-year\(s\) not on the "
                                         r"register.*\(entref, year\) \[\(777, 2019\)\]"):
        pr.design_weights(register, stray, industry="industry")
    neg = u.assign(weight=1.0)
    neg.loc[2, "gva"] = -1.0
    with pytest.raises(ValueError, match=r"^table 'units', column 'gva': 1 zero or negative.*\(3, 'south', 'A'\)"):
        pr.skill_decomposition(neg.assign(skill=0.1 * np.arange(5)))
    with pytest.raises(ValueError, match=r"^table 'data', column 'entref': 2 rows share a key \['entref'\] "
                                         r"\(e\.g\. entref \[1, 1\]\)"):
        pr.rent_sharing(pd.DataFrame({"entref": [1, 1, 2, 3], "psi": [0.1, 0.2, 0.3, 0.1], "lva": [1, 2, 3, 4.0]}))
    with pytest.raises(KeyError, match=r"^table 'workers', column 'soc': no column\(s\) \['soc'\]"):
        pr.function_concentration(pd.DataFrame({"entref": [1], "year": [2019], "region": ["a"]}))
    with pytest.raises(ValueError, match=r"^design_weights: method must be one of \['expansion', 'none'\]"):
        pr.design_weights(register, accounts, method="ht")
    flat = pd.DataFrame({"region": list("abc"), "firm_within": [0.1, 0.2, 0.3], "lq": 1.0})
    with pytest.raises(ValueError, match=r"^table 'table', column 'lq': does not vary across places$"):
        pr.account_for(flat, "firm_within", "lq")
    with pytest.raises(ValueError, match=r"^table 'data', column 'psi': only 2 firm\(s\) with both 'psi' and 'lva'"):
        pr.rent_sharing(pd.DataFrame({"entref": [1, 2, 3], "psi": [0.1, np.nan, 0.3], "lva": [1, 2, 3.0]}))


# ---------------------------------------------------------------------------------------------------------------
# hostile inputs: every public function, every input table (a missing column, a wrong type, duplicated keys,
# mixed-type ids, an empty table) gives a prosperity._checks error naming the table, the column and the ids


def _inputs():
    """Valid inputs of every public function (small), keyed by function name: fresh copies each call."""
    return {fn: {k: v.copy() if isinstance(v, pd.DataFrame) else v for k, v in kw.items()}
            for fn, kw in _valid_inputs().items()}


@functools.cache
def _valid_inputs():
    register, sites, accounts = random_world(seed=11, n_firms=80)
    dw = pr.design_weights(register, accounts, industry="industry")
    fc_workers = pd.DataFrame({"entref": [1] * 8 + [2] * 3, "year": 2019, "region": ["L"] * 4 + ["Y"] * 4 + ["L"] * 3,
                               "soc": [1, 2, 1, 5, 2, 9, 9, 9, 1, 1, 1]})
    rng = np.random.default_rng(0)
    return {
        "design_weights": dict(register=register, survey=accounts),
        "apportion_gva": dict(accounts=accounts, local_units=sites, enterprises=register, design=dw.table),
        "shift_share": dict(units=toy_units(), weight=None),
        "olley_pakes": dict(units=toy_units().assign(weight=1.0)),
        "decompose_productivity": dict(units=toy_units().assign(weight=1.0)),
        "skill_decomposition": dict(units=toy_units().assign(weight=1.0, skill=0.1 * np.arange(5))),
        "firm_skill": dict(workers=pd.DataFrame({"piden": [1, 2, 3, 4], "entref": [10, 10, 20, 20]}),
                           worker_effects=pd.DataFrame({"piden": [1, 2, 3], "alpha": [0.1, 0.3, -0.2]})),
        "skill_elasticity": dict(panel=skill_world(seed=1, n_firms=40, years=3)),
        "firm_log_productivity": dict(firms=pd.DataFrame({"entref": [1, 1, 2], "year": [2018, 2019, 2019],
                                                          "gva": [100.0, 400.0, 50.0], "employment": [10.0, 10, 5]})),
        "rent_sharing": dict(data=pd.DataFrame({"entref": np.arange(20), "psi": rng.normal(size=20),
                                                "lva": rng.normal(size=20)})),
        "function_concentration": dict(workers=fc_workers, head_office=pd.DataFrame(
            {"entref": [1, 2], "year": [2019, 2019], "region": ["L", "L"]})),
        "account_for": dict(table=pd.DataFrame({"region": list("abcde"), "firm_within": [0.1, 0.2, -0.1, 0.0, 0.3],
                                                "lq": [1.0, 1.5, 0.8, 0.9, 2.0]}),
                            component="firm_within", measure="lq"),
    }


# function, input table (argument and table name in the message), column to drop, numeric column, key,
# id column
HOSTILE = [
    ("design_weights", "register", "employment", "employment", ["entref", "year"], "entref"),
    ("design_weights", "survey", "year", None, ["entref", "year"], "entref"),
    ("apportion_gva", "accounts", "gva", "gva", ["entref", "year"], "entref"),
    ("apportion_gva", "local_units", "region", "employment", None, "entref"),
    ("apportion_gva", "enterprises", "industry", None, ["entref", "year"], "entref"),
    ("apportion_gva", "design", "weight", "weight", ["entref", "year"], "entref"),
    ("shift_share", "units", "gva", "gva", None, "entref"),
    ("olley_pakes", "units", "employment", "employment", ["entref", "region"], "entref"),
    ("decompose_productivity", "units", "industry", "gva", None, "entref"),
    ("skill_decomposition", "units", "skill", "skill", None, "entref"),
    ("firm_skill", "workers", "entref", None, None, "piden"),
    ("firm_skill", "worker_effects", "alpha", "alpha", ["piden"], "piden"),
    ("skill_elasticity", "panel", "skill", "gva", ["entref", "year"], "entref"),
    ("firm_log_productivity", "firms", "gva", "employment", ["entref", "year"], "entref"),
    ("rent_sharing", "data", "lva", "psi", ["entref"], "entref"),
    ("function_concentration", "workers", "soc", None, None, "entref"),
    ("function_concentration", "head_office", "region", None, ["entref", "year"], "entref"),
    ("account_for", "table", "lq", "lq", ["region"], None),
]
_IDS = [f"{c[0]}-{c[1]}" for c in HOSTILE]


def _call(fn, table, change):
    kw = _inputs()[fn]
    kw[table] = change(kw[table])
    return getattr(pr, fn)(**kw)


def test_hostile_inputs_are_valid_as_given():
    """The inputs run as given (each case below changes one thing) and are not modified by the call."""
    for fn, kw in _inputs().items():
        out = getattr(pr, fn)(**kw)
        assert isinstance(out, (Result, pd.DataFrame)), fn
        for k, v in kw.items():
            if isinstance(v, pd.DataFrame):
                pd.testing.assert_frame_equal(v, _valid_inputs()[fn][k])


@pytest.mark.parametrize("case", HOSTILE, ids=_IDS)
def test_hostile_missing_column(case):
    fn, table, col, *_ = case
    with pytest.raises(KeyError) as e:
        _call(fn, table, lambda df: df.drop(columns=col))
    assert isinstance(e.value, MissingColumnError) and (e.value.table, e.value.column) == (table, col)
    assert str(e.value).startswith(f"table {table!r}, column {col!r}: no column(s) [{col!r}]")


@pytest.mark.parametrize("case", HOSTILE, ids=_IDS)
def test_hostile_not_a_dataframe_and_non_numeric_column(case):
    fn, table, _, num, *_ = case
    with pytest.raises(TypeError, match=rf"^table {table!r}: must be a pandas DataFrame, got dict"):
        _call(fn, table, lambda df: df.to_dict("list"))
    if num is not None:
        with pytest.raises(TypeError, match=rf"^table {table!r}, column {num!r}: must be numeric, got dtype object"):
            _call(fn, table, lambda df: df.assign(**{num: df[num].astype(str)}))


@pytest.mark.parametrize("case", [c for c in HOSTILE if c[4]], ids=[i for c, i in zip(HOSTILE, _IDS) if c[4]])
def test_hostile_duplicated_keys(case):
    fn, table, _, _, key, _ = case
    with pytest.raises(InputError) as e:
        _call(fn, table, lambda df: pd.concat([df, df.iloc[:1]], ignore_index=True))
    assert e.value.table == table and "2 rows share a key" in str(e.value)
    first = _inputs()[fn][table].iloc[0][key].tolist()
    assert e.value.ids[0] == (first[0] if len(key) == 1 else tuple(first)), e.value.ids


@pytest.mark.parametrize("case", HOSTILE, ids=_IDS)
def test_hostile_empty_table(case):
    fn, table, *_ = case
    with pytest.raises(InputError, match=rf"^table {table!r}: has 0 row\(s\); at least \d+ needed$"):
        _call(fn, table, lambda df: df.iloc[:0])


@pytest.mark.parametrize("case", [c for c in HOSTILE if c[5]], ids=[i for c, i in zip(HOSTILE, _IDS) if c[5]])
def test_hostile_mixed_type_ids(case):
    fn, table, *_, idc = case

    def mix(df):
        df = df.assign(**{idc: df[idc].astype(object)})
        df.loc[df.index[-1], idc] = str(df[idc].iloc[-1])
        return df

    with pytest.raises(TypeError, match=rf"^table {table!r}, column {idc!r}: mixes value types \['int', 'str'\]"):
        _call(fn, table, mix)


def test_join_keys_of_different_types_are_refused():
    kw = _inputs()["apportion_gva"]
    kw["accounts"] = kw["accounts"].assign(entref=kw["accounts"]["entref"].astype(str))
    with pytest.raises(TypeError, match=r"^table 'accounts', column 'entref': dtype object but the same key is "
                                        r"numeric in table 'local_units'"):
        pr.apportion_gva(**kw)


def test_olley_pakes_refuses_two_rows_of_one_firm_in_a_group():
    u = toy_units().assign(weight=1.0)
    twice = pd.concat([u, u.iloc[[3]].assign(gva=5.0)], ignore_index=True)
    with pytest.raises(ValueError, match=r"^table 'units': 2 rows share a key \['entref', 'region'\]; one row per "
                                         r"firm unit.*\(4, 'south'\)"):
        pr.olley_pakes(twice, by="region")


def test_function_concentration_refuses_codes_of_another_type():
    kw = _inputs()["function_concentration"]
    kw["workers"] = kw["workers"].assign(soc=kw["workers"]["soc"].astype(str))
    with pytest.raises(ValueError, match=r"^table 'workers', column 'soc': no job in the top occupations \[1, 2\]"):
        pr.function_concentration(**kw)
    assert pr.function_concentration(**kw, top=["1", "2"]).table["lq"].notna().all()


# ---------------------------------------------------------------------------------------------------------------
# the result pattern


def test_results_follow_the_result_pattern():
    register, sites, accounts = random_world(seed=3)
    dw = pr.design_weights(register, accounts, industry="industry")
    ap = pr.apportion_gva(accounts, sites, register, level="region", design=dw)
    # a DesignWeights or its table: the same apportionment
    pd.testing.assert_frame_equal(ap.table, pr.apportion_gva(accounts, sites, register, design=dw.table).table)
    ss = pr.shift_share(ap.table, level="region", by="year")
    dec = pr.decompose_productivity(ap.table, level="region", by="year")
    for res in (dw, ap, ss, dec, pr.olley_pakes(ap.table, by=["year", "region"])):
        assert isinstance(res, Result) and repr(res).endswith(res.summary())
        out = res.to_frame()
        pd.testing.assert_frame_equal(out, res.table)
        assert out is not res.table
    for res in (ss, dec):
        sh = res.shares()
        assert list(sh.columns) == ["component", "share"] and list(sh["component"]) == list(res.components)
        assert sh["share"].sum() == pytest.approx(1.0)
    # shift-share's within-industry share is the sum of decompose_productivity's firm_within and allocation
    a, b = ss.shares().set_index("component")["share"], dec.shares().set_index("component")["share"]
    assert a["within_industry"] == pytest.approx(b["firm_within"] + b["allocation"], abs=1e-9)
    assert a["industry_mix"] == pytest.approx(b["industry_mix"], abs=1e-12)
    assert dec.level == "region" and "region rows" in dec.summary()


def test_design_weights_strata_use_the_classification_size_bands():
    register, _, accounts = random_world(seed=7)
    dw = pr.design_weights(register, accounts, industry="industry")
    emp = dw.table.merge(register, on=["entref", "year"])["employment"]
    assert dw.table["size_band"].tolist() == classifications.size_band(emp).tolist()
    assert set(dw.strata["size_band"]) <= set(classifications.SIZE_BAND_LABELS)


def test_regression_results_tables():
    p = skill_world(seed=1, n_firms=60, years=3)
    se = pr.skill_elasticity(p)
    assert se.to_frame().to_dict("records") == [{"theta": se.theta, "se": se.se, "n_obs": se.n_obs,
                                                  "n_firms": se.n_firms, "method": "within"}]
    d = _inputs()["rent_sharing"]["data"]
    rs = pr.rent_sharing(d)
    assert len(rs.to_frame()) == rs.n_firms == len(d) and "fitted" in rs.to_frame()
    assert rs.estimates()["elasticity"].iloc[0] == rs.elasticity


# ---------------------------------------------------------------------------------------------------------------
# on the synthetic England, through the linker


def test_synthetic_england_decomposition_on_linked_sites_matches_firm_panel():
    """The linker's site panel (``LinkedData.sites``: local units placed, enterprise references resolved) is
    what apportion_gva consumes, at every level, and the result matches a direct firm-by-firm computation."""
    from prosperity import link, synthetic

    se = synthetic.england(size="workshop", seed=1, years=(2015, 2019), n_workers=6000, n_enterprises=600)
    linked = link.build_panel(se)
    firms, sites = linked.firms, linked.sites
    # resolved references: every site belongs to an enterprise-year of the register, and the register's
    # employment is the sum of its local units' employment
    on_register = sites[["entref", "year"]].merge(firms[["entref", "year"]], how="left", indicator=True)
    assert (on_register["_merge"] == "both").all()
    lu_emp = sites.groupby(["entref", "year"])["employment"].sum()
    reg_emp = firms.set_index(["entref", "year"])["employment"]
    np.testing.assert_allclose(lu_emp.reindex(reg_emp.index).fillna(0).to_numpy(), reg_emp.to_numpy())
    surveyed = firms[firms["surveyed"]]
    dw = pr.design_weights(firms, surveyed, industry="industry")
    ap = pr.apportion_gva(surveyed, sites, firms, level="region", design=dw)
    assert len(ap.excluded) == int((surveyed["employment"] <= 0).sum())
    for level in ("lad", "itl3"):
        placed = pr.apportion_gva(surveyed, sites, firms, level=level, design=dw).table
        np.testing.assert_allclose(placed.groupby("year")["gva"].sum(), ap.table.groupby("year")["gva"].sum(),
                                   rtol=1e-12)
    dec = pr.decompose_productivity(ap.table, level="region", by="year")
    t = dec.table
    np.testing.assert_allclose(t[list(dec.components)].sum(axis=1), t["gap"], rtol=0,
                               atol=1e-10 * t["national"].max())
    direct = direct_place_productivity(firms, sites, surveyed[["entref", "year", "gva"]], dw.table)
    got = t.set_index(["year", "region"])["productivity"]
    assert len(direct) == len(got)
    np.testing.assert_allclose(got.loc[direct.index].to_numpy(), direct.to_numpy(), rtol=1e-10)
    # every place-year shows how many enterprises stand behind it, and cells too
    assert (t["n_firms"] > 0).all() and (dec.cells["n_firms"] >= 0).all()

"""Tests of prosperity.productivity: exact adding-up, agreement with direct computations, recovery of known
parameters on small simulated data, and errors that name the table, column and ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prosperity import productivity as pr

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
    assert (dw.weights["weight"] >= 1).all()
    ap = pr.apportion_gva(accounts, sites, register, place="region", weights=dw.weights)
    dec = pr.decompose_productivity(ap.units, place="region", by="year")
    t = dec.table
    parts = t[list(dec.components)].sum(axis=1)
    np.testing.assert_allclose(parts, t["gap"], rtol=0, atol=1e-9 * t["national"].abs().max())
    np.testing.assert_allclose(t[[f"relative_{c}" for c in dec.components]].sum(axis=1), t["relative_gap"],
                               rtol=0, atol=1e-12)
    # place productivity = the direct firm-by-firm computation
    direct = direct_place_productivity(register, sites, accounts, dw.weights)
    got = t.set_index(["year", "region"])["productivity"]
    assert set(got.index) == set(direct.index)
    np.testing.assert_allclose(got.loc[direct.index].to_numpy(), direct.to_numpy(), rtol=1e-12)
    # national = total weighted GVA / total weighted employment of the apportioned units
    u = ap.units
    nat = (u.weight * u.gva).groupby(u.year).sum() / (u.weight * u.employment).groupby(u.year).sum()
    np.testing.assert_allclose(t.groupby("year")["national"].first().to_numpy(), nat.to_numpy(), rtol=1e-12)
    # the within-industry term of shift_share = firm_within + allocation
    ss = pr.shift_share(ap.units, place="region", by="year").table
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
    assert dec.variance_shares()["share"].sum() == pytest.approx(1.0)


def test_apportion_conserves_gva_and_lists_exclusions():
    register, sites, accounts = random_world(seed=5)
    # an account of an enterprise-year with no site employment, and one not on the register
    zero = register.loc[register["employment"] == 0, ["entref", "year"]].head(1)
    extra = pd.DataFrame({"entref": list(zero["entref"]) + [999_999], "year": list(zero["year"]) + [2019],
                          "gva": [50.0] * (len(zero) + 1)})
    acc = pd.concat([accounts, extra], ignore_index=True)
    ap = pr.apportion_gva(acc, sites, register, place="region")
    placed = ap.units.groupby(["entref", "year"])["gva"].sum()
    src = acc.set_index(["entref", "year"])["gva"]
    np.testing.assert_allclose(placed.to_numpy(), src.loc[placed.index].to_numpy(), rtol=1e-12)
    assert len(placed) + len(ap.excluded) == len(acc)
    reasons = set(ap.excluded["reason"])
    assert "not on the enterprise register" in reasons
    if len(zero):
        assert "no local-unit employment to apportion GVA to" in reasons
    # a multi-site enterprise's sites all get its GVA per worker
    u = ap.units.assign(p=ap.units.gva / ap.units.employment)
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
    w = dw.weights.merge(register, on=["entref", "year"])
    tot = w.groupby("year")["weight"].sum()
    in_scope = register[register.employment >= 1].groupby("year").size()
    unrep = dw.unrepresented.groupby("year").size().reindex(tot.index, fill_value=0)
    np.testing.assert_allclose(tot.to_numpy(), (in_scope - unrep).to_numpy(), rtol=1e-12)
    # firms with 50+ employees are all surveyed in random_world: weight one
    big = w[w.employment >= 50]
    assert np.allclose(big["weight"], 1.0)
    assert len(dw.out_of_scope) == int((register.employment < 1).sum())
    none = pr.design_weights(register, accounts, industry="industry", method="none")
    assert (none.weights["weight"] == 1).all()
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
    assert sd.variance_shares()["share"].sum() == pytest.approx(1.0)


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
# references and sites


def test_resolve_references_and_locate_sites():
    cont = pd.DataFrame({"old_entref": [1, 2], "new_entref": [2, 3]})
    out = pr.resolve_references(pd.Series([1, 2, 3, 4]), cont)
    assert out.tolist() == [3, 3, 3, 4]
    with pytest.raises(ValueError, match="does not end"):
        pr.resolve_references(pd.Series([1]), pd.DataFrame({"old_entref": [1, 2], "new_entref": [2, 1]}))
    lu = pd.DataFrame({"luref": [11, 12], "entref": [1, 4], "year": 2019, "postcode": ["AA1", "BB2"],
                       "employment": [3, 4]})
    pcs = pd.DataFrame({"postcode": ["AA1", "BB2"], "lad": ["E1", "E2"], "itl3": ["T1", "T2"], "region": ["R1", "R1"]})
    sites = pr.locate_sites(lu, pcs, cont)
    assert sites["entref"].tolist() == [3, 4] and sites["region"].tolist() == ["R1", "R1"]
    with pytest.raises(ValueError, match=r"local_units: column 'postcode'.*\(12, 2019\)"):
        pr.locate_sites(lu, pcs.iloc[:1], cont)


# ---------------------------------------------------------------------------------------------------------------
# errors name the table, column and ids


def test_errors_name_table_column_and_ids():
    u = toy_units()
    with pytest.raises(KeyError, match=r"units: no column\(s\) \['gva'\]"):
        pr.decompose_productivity(u.drop(columns="gva"), weight=None)
    bad = u.copy()
    bad.loc[3, "employment"] = 0
    with pytest.raises(ValueError, match=r"units: column 'employment' has 1 zero or negative.*\(4, 'south', 'B'\)"):
        pr.shift_share(bad, weight=None)
    bad = u.copy()
    bad.loc[1, "industry"] = None
    with pytest.raises(ValueError, match=r"units: column 'industry' has 1 missing.*\(2, 'north'"):
        pr.olley_pakes(bad.assign(weight=1.0), by=["region", "industry"])
    register, sites, accounts = random_world(seed=9)
    dup = pd.concat([accounts, accounts.iloc[:1]])
    key = tuple(accounts.iloc[0][["entref", "year"]].astype(int))
    with pytest.raises(ValueError, match=rf"accounts: 2 rows share the key \['entref', 'year'\].*{key[0]}"):
        pr.apportion_gva(dup, sites, register)
    stray = pd.concat([accounts, pd.DataFrame({"entref": [777], "year": [2019], "gva": [1.0]})])
    with pytest.raises(ValueError, match=r"survey: 1 enterprise-year\(s\) not on the register.*\(777, 2019\)"):
        pr.design_weights(register, stray, industry="industry")
    neg = u.assign(weight=1.0)
    neg.loc[2, "gva"] = -1.0
    with pytest.raises(ValueError, match=r"units: column 'gva' has 1 zero or negative.*\(3, 'south', 'A'\)"):
        pr.skill_decomposition(neg.assign(skill=0.1 * np.arange(5)))
    with pytest.raises(ValueError, match=r"data: 2 rows share the key \['entref'\]"):
        pr.rent_sharing(pd.DataFrame({"entref": [1, 1, 2, 3], "psi": [0.1, 0.2, 0.3, 0.1], "lva": [1, 2, 3, 4.0]}))
    with pytest.raises(KeyError, match=r"workers: no column\(s\) \['soc'\]"):
        pr.function_concentration(pd.DataFrame({"entref": [1], "year": [2019], "region": ["a"]}))


# ---------------------------------------------------------------------------------------------------------------
# on the synthetic England, through the linker


def test_synthetic_england_decomposition_matches_firm_panel():
    from prosperity import link, synthetic

    se = synthetic.england(size="workshop", seed=1, years=(2015, 2019), n_workers=6000, n_enterprises=600)
    firms = link.build_panel(se).firms
    sites = pr.locate_sites(se.tables["local_units"], se.tables["postcode_lookup"], se.tables["entref_continuity"])
    # the register's employment is the sum of its local units' employment
    lu_emp = sites.groupby(["entref", "year"])["employment"].sum()
    reg_emp = firms.set_index(["entref", "year"])["employment"]
    np.testing.assert_allclose(lu_emp.reindex(reg_emp.index).fillna(0).to_numpy(), reg_emp.to_numpy())
    surveyed = firms[firms["surveyed"]]
    dw = pr.design_weights(firms, surveyed, industry="industry")
    ap = pr.apportion_gva(surveyed, sites, firms, place="region", weights=dw.weights)
    assert len(ap.excluded) == int((surveyed["employment"] <= 0).sum())
    dec = pr.decompose_productivity(ap.units, place="region", by="year")
    t = dec.table
    np.testing.assert_allclose(t[list(dec.components)].sum(axis=1), t["gap"], rtol=0,
                               atol=1e-10 * t["national"].max())
    direct = direct_place_productivity(firms, sites, surveyed[["entref", "year", "gva"]], dw.weights)
    got = t.set_index(["year", "region"])["productivity"]
    assert len(direct) == len(got)
    np.testing.assert_allclose(got.loc[direct.index].to_numpy(), direct.to_numpy(), rtol=1e-10)
    # every place-year shows how many enterprises stand behind it, and cells too
    assert (t["n_firms"] > 0).all() and (dec.cells["n_firms"] >= 0).all()

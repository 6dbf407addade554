"""Tests of prosperity.places: exact adding-up, identification checks, and recovery of the truth on synthetic data."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prosperity import _checks, places
from prosperity._results import Result

COMP = list(places.COMPONENTS)
HEADLINE = ["people", "firms", "place", "sorting"]


# ---------------------------------------------------------------------------------------------------------------
# pure decomposition logic on small hand-made frames


def _random_rows(seed=0, n=400):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "lad": rng.choice(list("ABCDE"), n), "industry": rng.choice(list("xyz"), n),
        "piden": rng.integers(0, 120, n), "entref": rng.integers(0, 30, n),
        "alpha": rng.normal(0, 0.3, n), "xb": rng.normal(0, 0.1, n), "psi": rng.normal(0, 0.2, n),
        "phi": rng.normal(0, 0.1, n), "y": rng.normal(2, 0.5, n),
    })


def test_gap_components_add_up_exactly():
    rows = _random_rows()
    g = places.gap_components(rows, "lad", people=["alpha", "xb"])
    assert list(g.columns[:7]) == ["lad", "gap"] + COMP
    np.testing.assert_allclose(g[COMP].sum(axis=1), g["gap"], atol=1e-14)
    # the gaps are person-year-weighted deviations from the national mean: they average to zero
    assert abs(np.average(g["gap"], weights=g["n_obs"])) < 1e-14
    assert g["n_obs"].sum() == len(rows)
    assert (g["n_people"] == rows.groupby("lad")["piden"].nunique().to_numpy()).all()
    assert (g["n_firms"] == rows.groupby("lad")["entref"].nunique().to_numpy()).all()


def test_gap_components_by_hand():
    # two places, two industries; place P is all industry k1 (premium +0.2), Q half and half
    rows = pd.DataFrame({
        "lad": ["P", "P", "Q", "Q"], "industry": ["k1", "k1", "k1", "k2"],
        "alpha": [0.3, 0.1, 0.0, -0.2], "psi": [0.25, 0.15, 0.2, -0.3], "phi": [0.05, 0.05, -0.05, -0.05],
    })
    rows["y"] = rows["alpha"] + rows["psi"] + rows["phi"] + [0.01, -0.01, 0.02, 0.0]
    g = places.gap_components(rows, "lad", worker=None, firm=None).set_index("lad")
    eta = {"k1": (0.25 + 0.15 + 0.2) / 3, "k2": -0.3}
    s_nat = {"k1": 0.75, "k2": 0.25}
    mix_p = (1 - s_nat["k1"]) * eta["k1"] + (0 - s_nat["k2"]) * eta["k2"]
    assert g.loc["P", "industry_mix"] == pytest.approx(mix_p, abs=1e-15)
    assert g.loc["P", "people"] == pytest.approx(0.2 - 0.05, abs=1e-15)
    assert g.loc["P", "firm_within"] == pytest.approx((0.2 - 0.075) - mix_p, abs=1e-15)
    assert g.loc["P", "place"] == pytest.approx(0.05, abs=1e-15)
    # residuals (0.01, -0.01 | 0.02, 0.0): national mean 0.005, place means 0 and 0.01
    assert g.loc["P", "residual"] == pytest.approx(-0.005, abs=1e-15)
    assert g.loc["Q", "residual"] == pytest.approx(0.005, abs=1e-15)


def test_variance_terms_add_up_and_match_direct_variance():
    rows = _random_rows(1)
    g = places.gap_components(rows, "lad")
    v = places.variance_across_places(g, level="lad")
    direct = np.average((g["gap"] - np.average(g["gap"], weights=g["n_obs"])) ** 2, weights=g["n_obs"])
    assert v.loc["Var(gap)", "value"] == pytest.approx(direct, rel=1e-12)
    assert v["value"].iloc[1:].sum() == pytest.approx(direct, rel=1e-12)
    assert v["share"].iloc[1:].sum() == pytest.approx(1.0, abs=1e-12)
    # split-sample version of a frame with itself is the plug-in
    vs = places.variance_across_places(g, g, level="lad")
    np.testing.assert_allclose(vs["value"], v["value"], rtol=1e-12)


def test_bad_input_is_named():
    rows = _random_rows()
    with pytest.raises(KeyError, match="table 'rows', column 'psi': no column"):
        places.gap_components(rows.drop(columns="psi"), "lad")
    rows.loc[3, "lad"] = None
    with pytest.raises(ValueError, match=r"table 'rows', column 'lad': 1 missing .* \(e.g. piden \[\d+\]\)"):
        places.gap_components(rows, "lad")
    with pytest.raises(ValueError, match="model must be one of"):
        places.place_effects(_random_rows(), model="worker+moon")


def _panel_rows(n_workers=60, seed=0):
    rng = np.random.default_rng(seed)
    recs = [(i, 2010 + t, int(rng.integers(0, 8)), "ABCD"[int(rng.integers(0, 4))], "xy"[i % 2], rng.normal())
            for i in range(n_workers) for t in range(3)]
    return pd.DataFrame(recs, columns=["piden", "year", "entref", "lad", "industry", "lhw"])


def test_every_public_check_names_table_column_and_ids():
    """One message format (prosperity._checks) for every public function: table, column and first ids."""
    df = _panel_rows()
    gaps = df.assign(lhw=np.where(df.index == 4, np.nan, df["lhw"]))
    with pytest.raises(_checks.InputError) as e:
        places.place_effects(gaps)
    assert (e.value.table, e.value.column, e.value.ids) == ("workers", "lhw", [df.loc[4, "piden"]])
    assert "table 'workers', column 'lhw': 1 missing" in str(e.value) and "(e.g. piden [1])" in str(e.value)
    with pytest.raises(KeyError, match="table 'workers', column 'region': no column"):
        places.place_effects(df, level="region")
    with pytest.raises(TypeError, match="table 'workers': expected a LinkedData"):
        places.movers([1, 2, 3])
    dup = r"table 'workers': 2 rows share a key \['piden', 'year'\].*\(e.g. \(piden, year\) \[\(0, 2010\)"
    with pytest.raises(ValueError, match=dup):
        places.movers(pd.concat([df, df.iloc[:1]]))
    with pytest.raises(KeyError, match="table 'workers', column 'year': no column"):
        places.rolling(df.drop(columns="year"))
    P = pd.DataFrame({"lad": list("ABCD"), "density": [1.0, 0.0, 2.0, 3.0], "amenities": [1.0, 2, 3, 4]})
    with pytest.raises(ValueError, match=r"table 'places', column 'density': 1 zero or negative .*lad \['B'\]"):
        places.characteristics(P, ["density", "amenities"])
    with pytest.raises(TypeError, match="table 'places': expected a place-year DataFrame"):
        places.characteristics(object(), ["density"])
    eff = pd.DataFrame({"lad": list("ABCD"), "effect": [0.1, 0.0, -0.1, 0.05], "se": [0.01, np.nan, 0.01, 0.01]})
    with pytest.raises(ValueError, match=r"table 'effects', column 'se': 1 missing .*lad \['B'\]"):
        places.explain_place_effects(eff, P, ["amenities"])
    with pytest.raises(KeyError, match="table 'frame', column 'place': no column"):
        places.variance_across_places(places.gap_components(_random_rows(), "lad").drop(columns="place"))
    with pytest.raises(ValueError, match="table 'variance', column 'value': no term"):
        places.gap_shares(pd.DataFrame({"value": [1.0]}, index=["Var(gap)"]))


def _components_by_union_find(a, b):
    """Reference for the connected-set kernel: union-find over the bipartite graph, component sizes in rows."""
    parent = {}

    def root(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for u, v in zip(a, b):
        parent[root(("a", u))] = root(("b", v))
    labs = [root(("a", u)) for u in a]
    sizes = pd.Series(labs).value_counts()
    return np.array([lab == sizes.index[0] for lab in labs]), len({root(n) for n in list(parent)})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_largest_component_matches_union_find(seed):
    # sparse random bipartite graphs with string and integer ids: several components of distinct sizes
    rng = np.random.default_rng(seed)
    n = 300
    a = rng.integers(0, 400, n)
    b = np.array([f"p{k}" for k in rng.integers(0, 250, n)], dtype=object)
    mask, ncomp = places._largest_component(a, b)
    ref_mask, ref_n = _components_by_union_find(a.tolist(), b.tolist())
    assert ncomp == ref_n and ncomp > 5
    sizes = pd.Series(ref_mask).sum()
    assert mask.sum() == sizes
    np.testing.assert_array_equal(mask, ref_mask)


def test_results_follow_the_result_pattern():
    rows = _random_rows()
    g = places.gap_components(rows, "lad")
    sh = places.gap_shares(places.variance_across_places(g, level="lad"))
    assert list(sh.columns) == ["component", "share"] and list(sh["component"]) == list(places.SHARES)
    assert sh["share"].sum() == pytest.approx(1.0, abs=1e-12)
    df = _panel_rows(200)
    pe = places.place_effects(df, model="worker+place", time=None)
    dec = places.decompose_gaps(df, effects=pe, correct=False)
    mv = places.movers(df.assign(lad=np.where(df["year"] == 2011, "A", df["lad"])))
    cr = places.explain_place_effects(pe.table, pd.DataFrame({"lad": list("ABCD"), "x": [1.0, 2.0, 4.0, 3.0]}),
                                      ["x"], se=None, method="ols")
    for res, old in ((pe, "effects"), (dec, "frame"), (mv, "bins"), (cr, "coef")):
        assert isinstance(res, Result) and isinstance(res.table, pd.DataFrame)
        assert getattr(res, old) is res.table  # the earlier name is a read-only alias
        with pytest.raises(AttributeError):
            setattr(res, "table", None)
        f = res.to_frame()
        pd.testing.assert_frame_equal(f, res.table)
        assert f is not res.table
        assert res.summary() in repr(res)
    shares = dec.shares(corrected=False)
    assert list(shares.columns) == ["component", "share"]
    pd.testing.assert_frame_equal(shares, places.gap_shares(dec.variance))


def test_region_components_are_person_year_means_of_districts():
    # the jackknife aggregates district components to regions: exact, checked against a direct computation
    rows = _random_rows(3).assign(region=lambda d: d["lad"].map({"A": "R", "B": "R", "C": "S", "D": "S", "E": "T"}))
    direct = places.gap_components(rows, "region").set_index("region")
    lookup = rows.drop_duplicates("lad").set_index("lad")["region"]
    agg = places._aggregate(places.gap_components(rows, "lad"), "lad", "region", lookup).set_index("region")
    cols = ["gap"] + COMP
    np.testing.assert_allclose(agg[cols], direct[cols], atol=1e-14)
    assert (agg["n_obs"] == direct["n_obs"]).all()


def test_firm_place_identification_is_checked():
    # firms 1-2 in place A, firm 3 in B, firm 1 also in B, firm 4 in C and D (multi-site). Workers move between
    # all establishments, but no enterprise has sites in both {A,B} and {C,D}: the firm-place graph has two
    # components, so the A/B versus C/D place effects cannot be told apart from firm effects; the larger
    # component (more person-years) is kept
    rng = np.random.default_rng(0)
    recs = []
    cells = [(1, "A"), (2, "A"), (3, "B"), (1, "B"), (4, "C"), (4, "D")]
    for i in range(600):
        grp = [0, 1, 2, 3] if i < 400 else [0, 4, 5]
        for t in range(4):
            f, lad = cells[rng.choice(grp)]
            recs.append((i, 2010 + t, f, lad, "x", rng.normal()))
    df = pd.DataFrame(recs, columns=["piden", "year", "entref", "lad", "industry", "lhw"])
    pe = places.place_effects(df, model="worker+firm+place")
    d = pe.identification
    assert d["worker_components"] == 1
    assert d["firm_place_components"] == 2
    assert set(pe.effects["lad"]) == {"A", "B"}
    assert d["n_multi_place_firms"] == 1  # firm 1 spans A and B
    assert d["dropped_obs"] == (df["entref"] == 4).sum()
    assert d["n_obs"] + d["dropped_obs"] == len(df)


# ---------------------------------------------------------------------------------------------------------------
# recovery of the truth on the synthetic England (workshop size)


@pytest.fixture(scope="module")
def world():
    from prosperity import link, synthetic

    se = synthetic.england(size="workshop", seed=0)
    linked = link.build_panel(se)
    w = linked.workers
    w = w.assign(agesq=((w["age"] - 40) / 10) ** 2)
    return se.truth, w, linked.places


@pytest.fixture(scope="module")
def decomposition(world):
    _, w, _ = world
    return places.decompose_gaps(w, level="lad", controls=["agesq"], seed=0)


def _true_same_sample(truth, dec, level):
    rows = dec.effects.rows[["piden", "year", level]].merge(
        truth.person_years[["piden", "year", "industry", "alpha", "psi", "phi", "xb", "lhw"]],
        on=["piden", "year"], validate="1:1")
    return places.gap_components(rows, level, y="lhw", people=["alpha", "xb"], firm_premium="psi", place="phi")


def test_decomposition_adds_up_and_counts(decomposition):
    f = decomposition.to_frame()
    np.testing.assert_allclose(f[COMP].sum(axis=1), f["gap"], atol=1e-12)
    assert (f[["n_obs", "n_people", "n_firms"]] > 0).all().all()
    assert f["n_obs"].sum() == decomposition.effects.identification["n_obs"]
    v = decomposition.variance_corrected
    assert v["value"].iloc[1:].sum() == pytest.approx(v.loc["Var(gap)", "value"], rel=1e-10)
    assert "corrected" in decomposition.summary()


def test_shares_recover_the_truth(world, decomposition):
    truth, _, _ = world
    tv = places.variance_across_places(_true_same_sample(truth, decomposition, "lad"), level="lad")
    true = places.gap_shares(tv).set_index("component")["share"]
    est = decomposition.shares(corrected=True).set_index("component")["share"]
    # tolerances: 0.03 (absolute share of the variance of district gaps) for every headline share
    for k in ("people", "firms", "place", "sorting"):
        assert abs(est[k] - true[k]) < 0.03, (k, est[k], true[k])
    # district components: people and industry mix are nearly exact; district place effects are noisy (identified
    # by the few multi-site enterprises), but their noise is independent of the truth
    tg = _true_same_sample(truth, decomposition, "lad")
    m = decomposition.table.merge(tg, on="lad", suffixes=("", "_t"))
    assert np.corrcoef(m["people"], m["people_t"])[0, 1] > 0.99
    assert np.corrcoef(m["industry_mix"], m["industry_mix_t"])[0, 1] > 0.98
    assert np.corrcoef(m["place"], m["place_t"])[0, 1] > 0.4
    slope = np.polyfit(m["place_t"], m["place"], 1)[0]  # no attenuation or inflation beyond noise
    assert 0.7 < slope < 1.3, slope


def test_regional_decomposition_recovers_truth(world, decomposition):
    truth, w, _ = world
    reg = places.decompose_gaps(w, level="region", effects=decomposition.effects, correct=False)
    np.testing.assert_allclose(reg.table[COMP].sum(axis=1), reg.table["gap"], atol=1e-12)
    assert len(reg.table) == 9
    tg = _true_same_sample(truth, reg, "region")
    m = reg.table.merge(tg, on="region", suffixes=("", "_t"))
    for c in ("gap", "people", "industry_mix", "firm_within", "place"):
        assert np.max(np.abs(m[c] - m[c + "_t"])) < 0.03, c


def test_three_models_side_by_side(world):
    truth, w, _ = world
    out = {}
    for model in places.MODELS:
        pe = places.place_effects(w, model=model, controls=["agesq"])
        m = pe.table.merge(truth.place_effects[["lad", "phi"]], on="lad")
        out[model] = np.corrcoef(m["effect"], m["phi"])[0, 1]
        assert pe.identification["n_obs"] + pe.identification["dropped_obs"] == len(w)
    # only the model with firm effects separates place from firm premiums
    assert out["worker+firm+place"] > 0.4
    assert out["worker+firm+place"] > out["worker+place"]
    pa = places.place_effects(w, model="worker+place", controls=["agesq"]).table
    assert pa["effect"].std() > 1.5 * truth.place_effects["phi"].std()  # absorbs local firm premiums


@pytest.fixture(scope="module")
def jackknifed(world):
    _, w, _ = world
    return places.place_effects(w, controls=["agesq"], se=True, folds=6, seed=1)


def test_regional_components_have_jackknife_intervals(world, jackknifed):
    truth, w, _ = world
    reg = places.decompose_gaps(w, level="region", effects=jackknifed, se=True, correct=False)
    f = reg.table.set_index("region")
    tg = _true_same_sample(truth, reg, "region").set_index("region")
    q = stats.t.ppf(0.975, 5)
    inside = []
    for c in ["people", "industry_mix", "firm_within", "place"]:
        s = f[f"{c}_se"]
        assert (s > 0).all() and (s < 0.03).all(), (c, s)
        inside += list((f[c] - tg[c]).abs() <= q * s)
    # 36 regional components: the truth lies inside nearly all 95% intervals (not a coverage study: one world)
    assert np.mean(inside) >= 0.8, np.mean(inside)
    # the gap is a raw mean of the estimation sample: its se is the sampling noise of that mean, not zero
    assert (f["gap_se"] > 0).all()
    # district-level standard errors come from the same folds, without a re-fit
    lad = places.decompose_gaps(w, level="lad", effects=jackknifed, se=True, correct=False).table
    assert lad["place_se"].notna().mean() > 0.95
    assert lad["place_se"].median() > f["place_se"].median()  # districts are noisier than regions


def test_shares_have_jackknife_intervals(world, jackknifed, decomposition):
    truth, w, _ = world
    dec = places.decompose_gaps(w, level="lad", effects=jackknifed, se=True, seed=0)
    # the standard errors leave the point estimates alone: same halves as without se
    pd.testing.assert_frame_equal(dec.variance_corrected, decomposition.variance_corrected)
    sh = dec.shares(corrected=True).set_index("component")
    assert list(sh.columns) == ["share", "se", "lower", "upper"]
    true = places.gap_shares(places.variance_across_places(_true_same_sample(truth, dec, "lad"), level="lad"))
    true = true.set_index("component")["share"]
    for k in HEADLINE:
        assert 0 < sh.loc[k, "se"] < 0.1, (k, sh.loc[k])
        assert sh.loc[k, "lower"] <= true[k] <= sh.loc[k, "upper"], (k, sh.loc[k], true[k])
    plug = dec.shares(corrected=False).set_index("component")
    assert (plug["se"] > 0).all()
    assert "jackknife" in dec.summary()
    with pytest.raises(ValueError, match="table 'effects': has no jackknife replicates"):
        places.decompose_gaps(w, effects=dec.effects.__class__(**{**dec.effects.__dict__, "fold_components": None}),
                              se=True)


@pytest.mark.slow
def test_rolling_static_world_shows_no_significant_change(world):
    """The synthetic England is static by construction: no share changes significantly between windows; a world
    with a new place premium in the second window does show a significant change in the place share."""
    _, w, _ = world
    windows = ((2005, 2011), (2012, 2019))
    q = stats.t.ppf(0.975, 4)
    r = places.rolling(w, windows=windows, controls=["agesq"], se=True, folds=5)
    for corrected in (True, False):
        ch = r.changes(corrected=corrected)
        assert len(ch) == len(places.SHARES) and (ch["se"] > 0).all()
        assert (ch["z"].abs() < q).all(), ch
    rng = np.random.default_rng(3)
    shock = pd.Series(rng.normal(0, 0.08, w["lad"].nunique()), index=w["lad"].unique())
    moved = w.assign(lhw=w["lhw"] + np.where(w["year"] >= 2012, w["lad"].map(shock), 0.0))
    ch = places.rolling(moved, windows=windows, controls=["agesq"], se=True, folds=5, correct=False).changes(False)
    z = ch.set_index("component")["z"]
    assert z["place"] > q, ch  # the place share rises significantly (the others fall as Var(gap) grows)


def test_characteristics_regression_recovers_coefficients(world, jackknifed):
    truth, w, P = world
    pe = jackknifed
    assert pe.replicates.shape == (len(pe.table), 7)
    Z = places.characteristics(P)
    cov = ["density", "transport_access", "housing_cost", "amenities"]
    eff = pe.table.dropna(subset=["se"])
    r = places.explain_place_effects(eff, Z, cov, method="fgls", replicates=pe.replicates)
    gamma = truth.coefficients["place"]["gamma"]
    for c in cov:
        lo, hi = r.table.loc[c, ["ci_low", "ci_high"]]
        assert lo <= gamma[c] <= hi, (c, gamma[c], lo, hi)
    # raw mean pay on the same characteristics is further off (sorting of people and firms into places)
    raw = w.groupby("lad")["lhw"].mean().rename("effect").reset_index()
    rr = places.explain_place_effects(raw, Z, cov, se=None, method="ols")
    err = lambda res: float(np.mean([abs(res.table.loc[c, "estimate"] - gamma[c]) for c in cov]))  # noqa: E731
    assert err(r) < err(rr)
    # shrinkage is toward the fitted line and between 0 and 1
    assert ((r.shrunk["shrinkage"] >= 0) & (r.shrunk["shrinkage"] <= 1)).all()


def test_characteristics_bad_input():
    eff = pd.DataFrame({"lad": ["a", "b", "c", "d"], "effect": [0.1, 0.0, -0.1, 0.05], "se": [0.01] * 4})
    Z = pd.DataFrame({"lad": ["a", "b", "c"], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"table 'characteristics', column 'lad': no values .* \(e.g. lad \['d'\]\)"):
        places.explain_place_effects(eff, Z, ["x"])
    with pytest.raises(ValueError, match="table 'characteristics', column 'lad': 6 rows share a key .*one row per lad"):
        places.explain_place_effects(eff, pd.concat([Z, Z]), ["x"])


def test_movers_slope_matches_true_components(world):
    truth, w, _ = world
    mv = places.movers(w)
    m = mv.moves.merge(truth.person_years[["piden", "year", "psi", "phi"]], on=["piden", "year"])
    prev = truth.person_years[["piden", "year", "psi", "phi"]].assign(year=lambda d: d["year"] + 1)
    m = m.merge(prev, on=["piden", "year"], suffixes=("", "_o"))
    dtrue = (m["psi"] + m["phi"]) - (m["psi_o"] + m["phi_o"])
    slope_true = np.polyfit(m["dx"], dtrue, 1)[0]
    assert abs(mv.slope - slope_true) < 4 * mv.se + 0.02
    assert 0 < mv.slope < 1


def test_rolling_windows(world):
    _, w, _ = world
    r = places.rolling(w, windows=((2005, 2011), (2012, 2019)), controls=["agesq"], correct=False)
    f = r.to_frame()
    assert list(f["window"]) == ["2005-2011", "2012-2019"]
    for dec in r.decompositions:
        np.testing.assert_allclose(dec.table[COMP].sum(axis=1), dec.table["gap"], atol=1e-12)
    s = f[["people", "firms", "place", "sorting", "other"]].sum(axis=1)
    np.testing.assert_allclose(s, 1.0, atol=1e-12)

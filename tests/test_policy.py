"""Tests of prosperity.policy: exact counterfactual arithmetic, levers, place channels, briefs that print the
computed numbers (and suppress disclosive ones), and bad input named by table, column and ids."""

import numpy as np
import pandas as pd
import pytest

from prosperity import brief, places, policy
from prosperity._results import Result

COMP = list(places.COMPONENTS)


def _frame():
    """A hand-made regional decomposition: two regions, components adding up to the gap."""
    f = pd.DataFrame({
        "region": ["R1", "R2"],
        "people": [0.120, -0.080],
        "industry_mix": [0.030, -0.010],
        "firm_within": [0.015, -0.040],
        "place": [0.025, -0.005],
        "residual": [0.001, -0.002],
        "n_obs": [5000, 7000], "n_people": [900, 1200], "n_firms": [60, 80],
    })
    f.insert(1, "gap", f[COMP].sum(axis=1))
    return f


# ---------------------------------------------------------------------------------------------------------------
# counterfactuals


def test_counterfactual_arithmetic_exact():
    f = _frame()
    cf = policy.counterfactual_gaps(f, {"skills": "people", "firms": ("industry_mix", "firm_within")})
    assert list(cf.columns) == ["region", "scenario", "removed", "gap", "removed_value", "counterfactual",
                                "share_closed", "n_obs", "n_people", "n_firms"]
    assert len(cf) == 4 and list(cf["scenario"]) == ["skills", "skills", "firms", "firms"]
    s = cf[cf["scenario"] == "skills"].set_index("region")
    np.testing.assert_array_equal(s["counterfactual"], f["gap"].to_numpy() - f["people"].to_numpy())
    assert s.loc["R1", "counterfactual"] == pytest.approx(0.030 + 0.015 + 0.025 + 0.001, abs=1e-15)
    b = cf[cf["scenario"] == "firms"].set_index("region")
    assert b.loc["R2", "removed"] == "industry_mix+firm_within"
    assert b.loc["R2", "counterfactual"] == pytest.approx(-0.080 - 0.005 - 0.002, abs=1e-15)
    np.testing.assert_allclose(b["counterfactual"] + b["removed_value"], b["gap"], atol=0, rtol=1e-15)
    g, c = s.loc["R1", "gap"], s.loc["R1", "counterfactual"]
    assert s.loc["R1", "share_closed"] == pytest.approx(1 - abs(c) / abs(g))
    # counts carried through unchanged, so the table can be disclosure-checked
    assert (cf.groupby("region")["n_firms"].nunique() == 1).all()
    assert s.loc["R2", "n_people"] == 1200
    # a single component by name and a tuple give one scenario each
    one = policy.counterfactual_gaps(f, "place")
    assert set(one["scenario"]) == {"place"}
    np.testing.assert_array_equal(one["counterfactual"], f["gap"] - f["place"])


def test_counterfactuals_keep_england_mean_and_shrink_dispersion():
    rng = np.random.default_rng(0)
    n = 3000
    rows = pd.DataFrame({"region": rng.choice(list("ABCDEF"), n), "industry": rng.choice(list("xyz"), n),
                         "piden": rng.integers(0, 900, n), "entref": rng.integers(0, 80, n)})
    shift = rows["region"].map(dict(zip("ABCDEF", [0.3, 0.1, 0.0, -0.1, -0.2, 0.05])))
    rows["alpha"] = rng.normal(0, 0.2, n) + shift
    rows["psi"] = rng.normal(0, 0.1, n)
    rows["phi"] = 0.2 * shift
    rows["y"] = rows["alpha"] + rows["psi"] + rows["phi"] + rng.normal(0, 0.1, n)
    dec = places.gap_components(rows, "region")
    cf = policy.counterfactual_gaps(dec, policy.SCENARIOS)
    for _, g in cf.groupby("scenario"):  # every component has person-year mean zero: England's mean unchanged
        assert abs(np.average(g["counterfactual"], weights=g["n_obs"])) < 1e-14
    d = policy.dispersion(cf).set_index("scenario")
    assert d.loc["skills", "reduction"] > 0.5  # people drive these gaps
    assert abs(d.loc["skills", "mean_counterfactual"]) < 1e-14
    sd = np.sqrt(np.average(dec["gap"] ** 2, weights=dec["n_obs"]))
    assert d.loc["place", "sd_gap"] == pytest.approx(sd, rel=1e-12)
    assert d.loc["skills", "n_firms"] == dec["n_firms"].min()  # the weakest cell, for the SDC check


# ---------------------------------------------------------------------------------------------------------------
# bad input


def test_bad_input_names_table_column_and_ids():
    f = _frame()
    with pytest.raises(KeyError, match=r"table 'decomposition', column 'industry_mix': no column\(s\) \['industry_mix'\]"):
        policy.counterfactual_gaps(f.drop(columns="industry_mix"))
    # the counts are optional for counterfactuals (carried when present) but a brief needs them for SDC
    assert "n_firms" not in policy.counterfactual_gaps(f.drop(columns="n_firms")).columns
    with pytest.raises(KeyError, match=r"table 'decomposition', column 'n_firms': no column"):
        brief.region_brief(f.drop(columns="n_firms"), "R1")
    g = f.copy()
    g.loc[1, "people"] = np.nan
    with pytest.raises(ValueError, match=r"table 'decomposition', column 'people': 1 missing.*\(e.g. region \['R2'\]\)"):
        policy.counterfactual_gaps(g)
    g = f.copy()
    g.loc[0, "place"] += 0.01
    with pytest.raises(ValueError, match=r"column 'gap': the components .* do not add up to the gap.*\(e.g. region \['R1'\]\)"):
        policy.counterfactual_gaps(g)
    g = pd.concat([f, f.iloc[[1]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"table 'decomposition', column 'region': 2 rows share a key.*R2"):
        policy.levers(g)
    g = f.astype({"n_people": float})
    g.loc[0, "n_people"] = 2.5
    with pytest.raises(ValueError, match=r"column 'n_people': 1 value\(s\) that are not non-negative whole counts.*\['R1'\]"):
        policy.counterfactual_gaps(g)
    with pytest.raises(ValueError, match="unknown component.*skills"):
        policy.counterfactual_gaps(f, ("skills",))
    with pytest.raises(KeyError, match="column 'region': no region 'R9'"):
        brief.region_brief(f, "R9")
    with pytest.raises(KeyError, match="table 'decomposition': no place column"):
        policy.counterfactual_gaps(f.rename(columns={"region": "area"}))
    with pytest.raises(TypeError, match="GapDecomposition or a DataFrame"):
        policy.counterfactual_gaps([1, 2])


# ---------------------------------------------------------------------------------------------------------------
# levers and briefs on a hand-made frame


def test_levers_rank_components():
    lv = policy.levers(_frame())
    w = lv.to_frame().set_index("region")
    assert w.loc["R1", "dominant"] == "people" and w.loc["R1", "second"] == "industry_mix"
    assert w.loc["R2", "dominant"] == "people" and w.loc["R2", "second"] == "firm_within"
    assert w.loc["R1", "dominant_share"] == pytest.approx(0.120 / (0.120 + 0.030 + 0.015 + 0.025))
    r = lv.ranking[lv.ranking["region"] == "R2"]
    assert list(r["component"]) == ["people", "firm_within", "industry_mix", "place"]
    assert r["share_abs"].sum() == pytest.approx(1.0)
    assert "people" in lv.summary()
    lv2 = policy.levers(_frame(), components=("place", "industry_mix"))
    assert lv2.table.set_index("region").loc["R1", "dominant"] == "industry_mix"
    with pytest.raises(ValueError, match="both regression= and characteristics="):
        policy.levers(_frame(), characteristics=pd.DataFrame())


def test_results_follow_the_house_pattern_and_vocabulary():
    f = _frame()
    lv = policy.levers(f)
    assert isinstance(lv, Result) and repr(lv).startswith("<prosperity.policy.Levers>")
    assert lv.to_frame() is not lv.table and lv.to_frame().equals(lv.table)
    b = brief.region_brief(f, "R1")
    assert isinstance(b, Result) and b.to_frame().equals(b.table) and "section" in b.table
    assert not hasattr(policy, "region_brief")  # briefs live in prosperity.brief
    cf = policy.counterfactual_gaps(f, policy.SCENARIOS)
    by_obs = policy.dispersion(cf, weights="n_obs")
    by_people = policy.dispersion(cf, weights="n_people")
    assert not np.allclose(by_obs["sd_gap"], by_people["sd_gap"])
    with pytest.raises(KeyError, match="table 'counterfactuals', column 'w'"):
        policy.dispersion(cf, weights="w")
    with pytest.raises(TypeError):
        policy.place_channels(f, None, pd.DataFrame(), weights=pd.DataFrame())  # renamed to district_weights


def test_brief_is_gathered_checked_and_rendered_in_separate_steps():
    f = _frame()
    inputs = brief.gather(f, "R2", names={"R2": "Northshire"})
    assert inputs.name == "Northshire" and inputs.cell["gap"].item() == pytest.approx(f.loc[1, "gap"])
    assert list(inputs.ranking["component"])[0] == "people" and len(inputs.counterfactuals) == 4
    cells = brief.check_cells(inputs)
    assert cells["A"]["status"] == "pass"
    # rendering trusts the cells it is given: a failing source cell suppresses every number drawn from it
    failing = {"A": {**cells["A"], "status": "suppressed", "reason": "checker said no"}}
    md = brief.render(inputs, failing).markdown
    assert f"{f.loc[1, 'gap']:+.3f}" not in md and "suppressed: checker said no" in md
    assert brief.render(inputs, cells).markdown == brief.region_brief(f, "R2", names={"R2": "Northshire"}).markdown


def test_brief_contains_the_computed_numbers():
    f = _frame()
    b = brief.region_brief(f, "R2", names={"R2": "Northshire"})
    md = b.markdown
    assert md.startswith("### Northshire: one-page brief")
    gap = f.loc[1, "gap"]
    assert f"{gap:+.3f}" in md
    assert f"{100 * (1 - np.exp(gap)):.1f}% lower" in md
    for c in COMP:
        v = f.loc[1, c]
        text = f"{v:+.3f}" if round(abs(v), 3) > 0 else f"{abs(v):.3f}"
        assert text in md, c
    cf = policy.counterfactual_gaps(f, policy.SCENARIOS).query("region == 'R2'")
    for _, c in cf.iterrows():
        assert f"{c['counterfactual']:+.3f}" in md
        assert f"| {c['counterfactual']:+.3f} | {100 * c['share_closed']:.0f}% |" in md
    # every printed number is registered with its source cell and status, and appears in the text
    n = b.to_frame()
    assert (n["sdc"] == "pass").all() and b.passed
    assert all(t in md for t in n["text"])
    assert n.loc[n["item"] == "gap (log points)", "value"].item() == pytest.approx(gap)
    assert "| A | Northshire, whole period | 1,200 | 80 | pass |" in md
    assert "Partial equilibrium" in md and "Sorting responds to policy" in md and "not real data" in md
    assert b.summary() == md and b._repr_markdown_() == md


def test_brief_suppresses_disclosive_cells():
    f = _frame()
    f.loc[1, "n_firms"] = 4
    b = brief.region_brief(f, "R2")
    assert not b.passed
    assert (b.table["text"] == "[suppressed]").all()
    assert f"{f.loc[1, 'gap']:+.3f}" not in b.markdown
    assert "4 enterprises < 10" in b.cells.set_index("cell").loc["A", "reason"]
    assert "suppressed: 4 enterprises < 10" in b.markdown
    # a more permissive rule set (a Rules object) lets it through
    import dataclasses

    from prosperity import sdc

    b2 = brief.region_brief(f, "R2", rules=dataclasses.replace(sdc.ONS_SRS, min_firms=3))
    assert b2.passed
    with pytest.raises(ValueError, match="rules must be"):
        brief.region_brief(f, "R2", rules="moon")


# ---------------------------------------------------------------------------------------------------------------
# end to end on a tiny linked panel: fitted decompositions, place channels, windows


def _panel(seed=0):
    """Six districts in two regions, multi-site enterprises, movers; y = alpha + psi + phi + noise."""
    rng = np.random.default_rng(seed)
    lads = [f"L{i}" for i in range(6)]
    region = {lad: ("RA" if i < 3 else "RB") for i, lad in enumerate(lads)}
    phi = dict(zip(lads, [0.10, 0.05, 0.0, -0.05, -0.08, -0.02]))
    sites = []
    for f in range(40):
        for lad in rng.choice(lads, size=rng.integers(1, 4), replace=False):
            sites.append((f, lad))
    firm_psi = rng.normal(0, 0.1, 40)
    firm_ind = rng.choice(list("xyz"), 40)
    recs = []
    for i in range(700):
        a = rng.normal(0, 0.3)
        s = sites[rng.integers(len(sites))]
        for t in range(2010, 2016):
            if rng.random() < 0.3:
                s = sites[rng.integers(len(sites))]
            f, lad = s
            recs.append((i, t, f, lad, region[lad], "I" + lad[-1], firm_ind[f],
                         a + firm_psi[f] + phi[lad] + rng.normal(0, 0.1)))
    return pd.DataFrame(recs, columns=["piden", "year", "entref", "lad", "region", "itl3", "industry", "lhw"])


@pytest.fixture(scope="module")
def fitted():
    w = _panel()
    pe = places.place_effects(w, model="worker+firm+place")
    reg = places.decompose_gaps(w, level="region", effects=pe, correct=False)
    rng = np.random.default_rng(1)
    Z = pd.DataFrame({"lad": sorted(w["lad"].unique()), "transport_access": rng.normal(size=6),
                      "amenities": rng.normal(size=6)})
    cr = places.explain_place_effects(pe.effects, Z, ["transport_access", "amenities"], se=None, method="ols")
    return w, pe, reg, Z, cr


def test_place_channels_add_up_to_the_place_component(fitted):
    w, pe, reg, Z, cr = fitted
    ch = policy.place_channels(reg, cr, Z)
    assert set(ch["channel"]) == {"transport_access", "amenities", "unexplained"}
    tot = ch.groupby("region")["contribution"].sum()
    place = reg.table.set_index("region")["place"]
    np.testing.assert_allclose(tot.reindex(place.index), place, atol=1e-15)
    # by hand: gamma * (person-year-weighted mean of z in the region - England's)
    rows = reg.effects.rows.merge(Z, on="lad")
    g = cr.coef.loc["transport_access", "estimate"]
    want = g * (rows.loc[rows["region"] == "RA", "transport_access"].mean() - rows["transport_access"].mean())
    got = ch.query("region == 'RA' and channel == 'transport_access'")["contribution"].item()
    assert got == pytest.approx(want, abs=1e-14)
    lo, hi = ch.query("region == 'RA' and channel == 'transport_access'")[["ci_low", "ci_high"]].iloc[0]
    assert lo <= got <= hi
    # the same from the frame with explicit weights
    wt = rows.groupby(["region", "lad"]).size().rename("n_obs").reset_index()
    ch2 = policy.place_channels(reg.table, cr, Z, district_weights=wt)
    np.testing.assert_allclose(ch2["contribution"], ch["contribution"], atol=1e-15)
    with pytest.raises(ValueError, match=r"table 'characteristics', column 'lad': no values .*\(e.g. lad \['L5'\]\)"):
        policy.place_channels(reg, cr, Z.iloc[:5])
    with pytest.raises(ValueError, match="table 'district_weights', column 'n_obs': person-years by district do not add up"):
        policy.place_channels(reg.table, cr, Z, district_weights=wt.assign(n_obs=wt["n_obs"] + 1))


def test_over_time_and_full_brief(fitted):
    w, pe, reg, Z, cr = fitted
    roll = places.rolling(w, windows=((2010, 2012), (2013, 2015)), correct=False)  # district level
    ot = policy.over_time(roll, level="region")
    assert list(ot["window"].unique()) == ["2010-2012", "2013-2015"]
    np.testing.assert_allclose(ot[COMP].sum(axis=1), ot["gap"], atol=1e-12)
    # re-aggregation equals a regional decomposition of the same window's fit
    dec0 = roll.decompositions[0]
    direct = places.decompose_gaps(w[w["year"] <= 2012], level="region", effects=dec0.effects, correct=False)
    np.testing.assert_allclose(ot[ot["window"] == "2010-2012"][COMP].to_numpy(),
                               direct.table[COMP].to_numpy(), atol=1e-14)
    lv = policy.levers(reg, regression=cr, characteristics=Z)
    b = brief.region_brief(reg, "RA", levers=lv, windows=roll, names={"RA": "Region A"})
    md = b.markdown
    assert "**Over time** (cells W1–W2)" in md
    ra = ot[ot["region"] == "RA"]
    for _, r in ra.iterrows():
        assert f"| {r['window']} | {r['gap']:+.3f} |" in md
    assert set(b.cells["cell"]) == {"A", "W1", "W2", "R"}
    # 6 districts, 3 coefficients: 3 residual df < 10, so the channel numbers are suppressed, the rest not
    assert b.cells.set_index("cell").loc["R", "status"] == "suppressed"
    ch = b.table[b.table["section"] == "place channels"]
    assert len(ch) and (ch["text"] == "[suppressed]").all()
    assert (b.table.loc[b.table["section"] != "place channels", "sdc"] == "pass").all()
    # with rules that allow 3 residual df, the channels are printed
    import dataclasses

    from prosperity import sdc

    b3 = brief.region_brief(reg, "RA", levers=lv, windows=ot, rules=dataclasses.replace(sdc.ONS_SRS, min_dof=3))
    c = lv.channels.query("region == 'RA' and channel == 'transport_access'")["contribution"].item()
    assert f"transport access {c:+.3f}" in b3.markdown and b3.passed
    with pytest.raises(ValueError, match="levers are for 'lad'"):
        brief.region_brief(reg, "RA", levers=policy.levers(roll.decompositions[0]))

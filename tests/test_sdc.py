"""prosperity.sdc: disclosive outputs are caught with their reason; safe outputs pass unchanged."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from prosperity import sdc


@pytest.fixture
def district_table():
    """A place table as the decompositions publish it: one row per district, with the counts behind it."""
    return pd.DataFrame(
        {
            "lad": ["E09000001", "E08000025", "E07000163", "E06000053"],
            "gap": [0.31, 0.02, -0.12, -0.20],
            "place": [0.10, 0.01, -0.03, -0.05],
            "n_people": [5210, 880, 140, 3],
            "n_firms": [640, 120, 25, 2],
        }
    ).set_index("lad")


def _business(rng, n_firms=30, dominant_share=None):
    """Enterprise-year microdata for two regions; optionally one enterprise in 'North' holds a given GVA share."""
    rows = []
    for region, base in (("North", 0), ("South", 1000)):
        gva = rng.uniform(5, 15, n_firms)
        if region == "North" and dominant_share is not None:
            gva[0] = dominant_share / (1 - dominant_share) * gva[1:].sum()
        rows.append(pd.DataFrame({"region": region, "entref": base + np.arange(n_firms), "gva": gva}))
    return pd.concat(rows, ignore_index=True)


# --- disclosive outputs are caught, each with its reason -----------------------------------------------------

def test_cell_with_three_workers_is_caught(district_table):
    report = sdc.check(district_table, n_people="n_people", n_firms="n_firms")
    assert not report.passed
    assert report.status == "review"
    f = report.failures
    people = f[f["rule"] == "min_people"]
    assert list(people["cell"]) == ["E06000053"]
    assert "3 people < 10" in people["reason"].iloc[0]
    assert set(f.loc[f["cell"] == "E06000053", "rule"]) == {"min_people", "min_firms"}
    assert set(f["cell"]) == {"E06000053"}  # the other districts pass
    safe = report.table
    assert safe.loc["E06000053", ["gap", "place", "n_people", "n_firms"]].isna().all()
    assert "min_people" in safe.loc["E06000053", "sdc"]
    assert safe.loc["E09000001", "sdc"] == "ok"
    assert safe.loc["E09000001", "gap"] == pytest.approx(0.31)
    assert int(safe.loc["E09000001", "n_people"]) == 5210


def test_enterprise_threshold_for_business_cells(district_table):
    t = district_table.copy()
    t.loc["E07000163", "n_firms"] = 9  # plenty of people, too few enterprises
    t = t.drop(index="E06000053")
    report = sdc.check(t)
    assert list(report.failures["cell"]) == ["E07000163"]
    assert report.failures["rule"].iloc[0] == "min_firms"
    assert "9 enterprises < 10" in report.failures["reason"].iloc[0]


def test_zero_cell_is_disclosive(district_table):
    t = district_table.copy()
    t.loc["E06000053", ["n_people", "n_firms"]] = 0
    report = sdc.check(t)
    assert "zero" in set(report.failures["rule"])


def test_one_enterprise_with_90_percent_of_gva_is_caught():
    rng = np.random.default_rng(1)
    micro = _business(rng, dominant_share=0.90)
    report = sdc.check_magnitudes(micro, by="region", value="gva", unit="entref")
    f = report.failures
    assert list(f["cell"].unique()) == ["North"]
    nk = f[f["rule"] == "dominance_nk"]
    assert len(nk) == 2 and "largest enterprise holds" in nk["reason"].iloc[0]  # (1, 50%) and (2, 85%)
    share = float(nk["reason"].str.extract(r"holds ([\d.]+)%")[0].iloc[0]) / 100
    assert share == pytest.approx(0.90, abs=1e-3)
    # under acro's (2, 90%) the two largest are also flagged, with their share
    acro = sdc.check_magnitudes(micro, by="region", value="gva", unit="entref", rules="acro").failures
    two = float(acro["reason"].str.extract(r"hold ([\d.]+)%")[0].iloc[0]) / 100
    assert list(acro["cell"].unique()) == ["North"] and 0.90 <= two < 0.95
    safe = report.table.set_index("region")
    assert np.isnan(safe.loc["North", "gva"]) and safe.loc["South", "sdc"] == "ok"
    assert safe.loc["South", "gva"] == pytest.approx(micro.loc[micro.region == "South", "gva"].sum())


def test_p_percent_rule_is_applied():
    # with a looser (n, k) rule only the p% rule catches a cell whose small contributors are tiny
    micro = pd.DataFrame({"region": "North", "entref": np.arange(12), "gva": [100.0, 5.0] + [0.5] * 10})
    loose = replace(sdc.ONS_SRS, dominance=((1, 0.999),))
    report = sdc.check_magnitudes(micro, by="region", value="gva", rules=loose)
    assert list(report.failures["rule"]) == ["dominance_p"]
    assert "p% rule" in report.failures["reason"].iloc[0]


def test_contributions_are_summed_to_the_enterprise():
    # 12 rows but only 6 enterprises (two local units each): fails the enterprise threshold
    micro = pd.DataFrame({"lad": "A", "entref": np.repeat(np.arange(6), 2), "gva": 1.0})
    report = sdc.check_magnitudes(micro, by="lad", value="gva", unit="entref")
    assert report.failures["rule"].tolist() == ["min_firms"]
    assert "6 enterprises < 10" in report.failures["reason"].iloc[0]


def test_negative_contributions_do_not_hide_dominance_elsewhere():
    rng = np.random.default_rng(2)
    micro = _business(rng, dominant_share=0.95)
    micro.loc[micro.entref == 1005, "gva"] = -3.0  # a loss-making enterprise in the South
    report = sdc.check_magnitudes(micro, by="region", value="gva")
    rules = dict(zip(report.failures["cell"], report.failures["rule"]))
    assert rules["South"] == "negative"
    assert report.failures.loc[report.failures.cell == "North", "rule"].str.startswith("dominance").any()
    absolute = sdc.check_magnitudes(micro, by="region", value="gva", negative="absolute")
    assert set(absolute.failures["cell"]) == {"North"}


def test_maximum_is_caught():
    rng = np.random.default_rng(3)
    jobs = pd.DataFrame({"region": np.repeat(["North", "South"], 50), "piden": np.arange(100),
                         "hw": rng.lognormal(2.5, 0.4, 100)})
    report = sdc.check_statistic(jobs, by="region", value="hw", stat="max", person="piden")
    assert not report.passed
    assert report.failures["rule"].tolist() == ["extreme"]
    assert "maximum" in report.failures["reason"].iloc[0]
    assert report.table["hw"].isna().all()
    # a statistic the rules allow, on enough people, passes unchanged
    median = sdc.check_statistic(jobs, by="region", value="hw", stat="median", person="piden")
    assert median.passed
    assert median.table["hw"].tolist() == pytest.approx(jobs.groupby("region")["hw"].median().tolist())
    # a maximum column in a summary table is caught too
    t = pd.DataFrame({"region": ["North", "South"], "max_hw": [90.0, 120.0], "n_people": [50, 50]})
    rep = sdc.check(t, n_firms=None, keys="region", extremes="max_hw")
    assert rep.failures["rule"].tolist() == ["extreme"] and rep.table["max_hw"].isna().all()
    assert rep.table["region"].tolist() == ["North", "South"]


def test_regression_on_eight_observations_is_caught():
    import statsmodels.api as sm

    rng = np.random.default_rng(4)
    x = sm.add_constant(rng.normal(size=(8, 2)))
    fit = sm.OLS(rng.normal(size=8), x).fit()
    report = sdc.check_regression(fit)
    assert report.status == "fail" and not report.passed
    assert report.failures["rule"].tolist() == ["min_dof"]
    assert "residual degrees of freedom 5 < 10" in report.failures["reason"].iloc[0]
    assert report.table[["coef", "std err"]].isna().all().all()
    big = sm.OLS(rng.normal(size=200), sm.add_constant(rng.normal(size=(200, 2)))).fit()
    ok = sdc.check_regression(big)
    assert ok.passed and ok.status == "pass"


def test_regression_from_degrees_of_freedom_and_coefficients():
    coef = pd.Series({"density": 0.04, "transport_access": 0.01}, name="estimate")
    bad = sdc.check_regression(df_resid=7, coefficients=coef, name="channels")
    assert bad.failures["rule"].tolist() == ["min_dof"] and bad.table["estimate"].isna().all()
    assert "residual degrees of freedom 7 < 10" in bad.failures["reason"].iloc[0]
    good = sdc.check_regression(df_resid=250, coefficients=coef)
    assert good.passed and good.table["estimate"].tolist() == [0.04, 0.01]


def test_pyfixest_fixed_effects_count_as_parameters():
    import pyfixest as pf

    rng = np.random.default_rng(5)
    d = pd.DataFrame({"y": rng.normal(size=20), "x": rng.normal(size=20), "firm": np.repeat(np.arange(6), [4, 4, 3, 3, 3, 3])})
    fit = pf.feols("y ~ x | firm", data=d)
    report = sdc.check_regression(fit)
    # 20 observations - 1 slope - 6 firm effects = 13 residual degrees of freedom
    assert report.passed
    assert "dof=13" in report.acro_summary
    d2 = d.assign(firm=np.arange(20) // 2)  # 10 firm effects: 20 - 1 - 10 = 9 < 10
    assert sdc.check_regression(pf.feols("y ~ x | firm", data=d2)).failures["rule"].tolist() == ["min_dof"]


# --- safe outputs pass unchanged -----------------------------------------------------------------------------

def test_tables_pass_unchanged(district_table):
    safe = district_table.drop(index="E06000053")
    report = sdc.check(safe)
    assert report.passed and report.status == "pass" and report.failures.empty
    pd.testing.assert_frame_equal(report.table, safe)
    rng = np.random.default_rng(6)
    micro = _business(rng)
    mag = sdc.check_magnitudes(micro, by="region", value="gva", stat="mean")
    assert mag.passed
    assert mag.table["gva"].tolist() == pytest.approx(micro.groupby("region")["gva"].mean().tolist())
    assert mag.table["n_firms"].tolist() == [30, 30]


def test_table_passes_a_second_check(district_table):
    report = sdc.check(district_table)
    released = report.table.dropna(subset=["n_people"]).drop(columns="sdc")
    released = released.astype({"n_people": int, "n_firms": int})
    assert sdc.check(released).passed


# --- output log, presets and bad input -----------------------------------------------------------------------

def test_output_log_for_the_checker(tmp_path, district_table):
    log = sdc.OutputLog()
    sdc.check(district_table, name="gaps_by_district", log=log, comment="Table 7.2")
    sdc.check(district_table.drop(index="E06000053"), name="gaps_safe", log=log)
    sdc.check_regression(df_resid=4, name="tiny_model", log=log)
    frame = log.to_frame()
    assert frame["status"].tolist() == ["review", "pass", "fail"]
    log.add_exception("tiny_model", "structural: not for release")
    out = log.finalise(tmp_path / "outputs")
    results = json.loads((out / "results.json").read_text())["results"]
    assert results["gaps_by_district"]["status"] == "review"
    assert results["gaps_by_district"]["outcome"]["outcome"]["E06000053"].startswith("3 people")
    assert results["tiny_model"]["exception"] == "structural: not for release"
    written = pd.read_csv(out / "gaps_by_district_0.csv", index_col=0)
    assert np.isnan(written.loc["E06000053", "gap"])  # the log holds the safe table, not the disclosive one
    config = json.loads((out / "config.json").read_text())
    assert config["safe_threshold"] == 10 and config["safe_nk_k"] == 0.85 and config["dominance"] == [[1, 0.5], [2, 0.85]]
    with pytest.raises(FileExistsError):
        log.finalise(tmp_path / "outputs")
    with pytest.raises(ValueError, match="unique name"):
        sdc.check(district_table, name="gaps_safe", log=log)


def test_rules_are_configurable(district_table):
    lenient = replace(sdc.ONS_SRS, name="lenient", min_people=3, min_firms=2)
    assert sdc.check(district_table, rules=lenient).passed
    assert sdc.ONS_SRS.to_frame().shape == (8, 2)
    assert "dominance (1, 50%)" in sdc.ONS_SRS.summary()
    with pytest.raises(ValueError, match="min_people"):
        replace(sdc.ONS_SRS, min_people=0)
    with pytest.raises(ValueError, match="rules must be"):
        sdc.check(district_table, rules="nowhere")


def test_bad_input_is_named(district_table):
    with pytest.raises(KeyError, match="n_firms.*n_firms=None"):
        sdc.check(district_table.drop(columns="n_firms"))
    bad = district_table.copy()
    bad["n_people"] = bad["n_people"].astype(float)
    bad.loc["E07000163", "n_people"] = np.nan
    with pytest.raises(ValueError, match="E07000163"):
        sdc.check(bad)
    dup = pd.concat([district_table, district_table.iloc[[0]]])
    with pytest.raises(ValueError, match="E09000001"):
        sdc.check(dup)
    micro = pd.DataFrame({"region": ["N"] * 3, "entref": [11, 12, 13], "gva": [1.0, np.nan, 2.0]})
    with pytest.raises(ValueError, match=r"gva.*\[12\]"):
        sdc.check_magnitudes(micro, by="region", value="gva")
    with pytest.raises(ValueError, match="df_resid"):
        sdc.check_regression()

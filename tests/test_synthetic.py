"""Tests of prosperity.synthetic: determinism, truth consistent with tables, calibration, mess, geography,
round trip, the ASHE sample rule and population streaming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from prosperity import _io, akm, geography, synthetic
from prosperity._results import Result

SMALL = dict(n_workers=6_000, n_enterprises=600)


@pytest.fixture(scope="module")
def se():
    return synthetic.england(seed=0)


@pytest.fixture(scope="module")
def ashe():
    return synthetic.england(seed=0, sample="ashe")


def _clean_main_jobs(se):
    """Drop every kind of broken row and the duplicates, then take the main job by the documented rule."""
    jobs = se.tables["jobs"]
    lu = set(se.tables["local_units"]["luref"])
    ok = (
        jobs["luref"].notna() & jobs["entref"].notna() & (jobs["gpay"] > 0)
        & (jobs["hours"] > 0) & (jobs["hours"] <= 100) & jobs["luref"].isin(lu)
    )
    clean = jobs[ok].drop_duplicates()
    return synthetic.main_job(clean)


def _resolve(entref: pd.Series, cont: pd.DataFrame) -> pd.Series:
    m = dict(zip(cont["old_entref"], cont["new_entref"]))
    out = entref.to_numpy().copy()
    for _ in range(5):  # chains
        out = np.array([m.get(x, x) for x in out])
    return pd.Series(out, index=entref.index)


# ---------------------------------------------------------------------------------------------- determinism


def test_same_seed_identical_other_seed_different():
    a = synthetic.england(seed=3, **SMALL)
    b = synthetic.england(seed=3, **SMALL)
    c = synthetic.england(seed=4, **SMALL)
    for name in a.tables:
        assert_frame_equal(a.tables[name], b.tables[name])
    assert_frame_equal(a.truth.person_years, b.truth.person_years)
    assert a.truth.variance == b.truth.variance
    assert not a.tables["jobs"]["gpay"].equals(c.tables["jobs"]["gpay"])
    assert not a.truth.firm_effects["psi"].equals(c.truth.firm_effects["psi"])


_CHILD = r"""
import sys
import pyarrow as pa
from prosperity import synthetic
pa.set_cpu_count(int(sys.argv[2]))
synthetic.england(seed=3, n_workers=6_000, n_enterprises=600).to_parquet(sys.argv[1])
"""


def _file_digests(folder: Path) -> dict:
    """SHA-256 of every file a folder's manifest lists, and meta.json without its timing."""
    man = _io.verify(folder, checksums=True)
    files = {rel: (info["sha256"], info["bytes"]) for rel, info in man["files"].items() if rel != "meta.json"}
    meta = json.loads((folder / "meta.json").read_text())
    meta.pop("seconds")
    return {"files": files, "meta": meta, "manifest_meta": man["meta"]}


def test_same_seed_byte_identical_files_in_process_and_across_processes(tmp_path):
    """Same seed: the same bytes in every Parquet and JSON file, over 3 runs in this process and 2 fresh
    processes with 1 and 2 threads (BLAS / OpenMP and pyarrow), with another hash seed for Python's str hashing."""
    runs = []
    for i in range(3):
        synthetic.england(seed=3, **SMALL).to_parquet(tmp_path / f"in{i}")
        runs.append(_file_digests(tmp_path / f"in{i}"))
    root = Path(__file__).resolve().parents[1]
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "PYTHONHASHSEED": threads}
        out = tmp_path / f"proc{threads}"
        r = subprocess.run([sys.executable, "-c", _CHILD, str(out), threads], cwd=root, env=env,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        runs.append(_file_digests(out))
    assert len(runs) == 5 and len(runs[0]["files"]) == 18  # 8 tables and 10 truth files
    for i, r in enumerate(runs[1:], start=2):
        diff = sorted(k for k in runs[0]["files"] if r["files"].get(k) != runs[0]["files"][k])
        assert not diff and r["files"] == runs[0]["files"], f"run {i} differs at {diff}"
        assert r["meta"] == runs[0]["meta"] and r["manifest_meta"] == runs[0]["manifest_meta"]
    other = synthetic.england(seed=4, **SMALL)
    other.to_parquet(tmp_path / "seed4")
    assert _file_digests(tmp_path / "seed4")["files"]["tables/jobs.parquet"] != runs[0]["files"]["tables/jobs.parquet"]


def test_results_follow_the_result_pattern(se):
    for obj in (se, se.truth):
        assert isinstance(obj, Result)
        assert isinstance(obj.table, pd.DataFrame) and obj.to_frame() is not obj.table
        assert repr(obj).endswith(obj.summary())
    assert_frame_equal(se.to_frame(), se.describe())
    t = se.truth.to_frame()
    assert list(t.columns) == ["quantity", "value"]
    assert t.set_index("quantity")["value"]["var_y"] == se.truth.variance["var_y"]
    sh = se.truth.shares()
    assert list(sh.columns) == ["component", "share"]
    assert abs(sh["share"].sum() - 1) < 1e-12
    v = se.truth.variance
    assert sh.set_index("component")["share"]["sorting"] == pytest.approx(2 * v["cov_alpha_psi"] / v["var_y"])
    assert se.meta["dgp"] == se.truth.coefficients["dgp"]
    with pytest.raises(AttributeError):
        se.meta = {}  # frozen


def test_contract_columns_and_types(se):
    t = se.tables
    assert list(t) == ["jobs", "local_units", "enterprises", "accounts", "postcode_lookup", "entref_continuity",
                       "place_characteristics", "cpi"]
    assert list(t["jobs"].columns) == ["piden", "year", "entref", "luref", "gpay", "hours", "age", "sex", "soc", "ft"]
    assert list(t["local_units"].columns) == ["luref", "entref", "year", "postcode", "sic07", "employment",
                                              "birth_year", "death_year"]
    assert list(t["enterprises"].columns) == ["entref", "year", "sic07", "employment", "turnover", "foreign_owned"]
    assert list(t["accounts"].columns) == ["entref", "year", "gva", "turnover", "purchases", "employment_costs"]
    assert list(t["postcode_lookup"].columns) == ["postcode", "lad", "itl3", "region"]
    assert list(t["entref_continuity"].columns) == ["old_entref", "new_entref", "year"]
    assert list(t["place_characteristics"].columns) == ["lad", "year", "density", "transport_access",
                                                        "housing_cost", "amenities"]
    assert list(t["cpi"].columns) == ["year", "cpih"]
    assert t["jobs"]["piden"].dtype == np.int64
    assert str(t["jobs"]["entref"].dtype) == "Int64" and str(t["jobs"]["luref"].dtype) == "Int64"
    assert t["local_units"]["luref"].dtype == np.int64 and t["enterprises"]["entref"].dtype == np.int64
    assert set(t["jobs"]["sex"]) == {1, 2} and set(t["jobs"]["ft"]) == {1, 2}
    assert set(t["jobs"]["soc"]) <= set(range(1, 10))
    sic = t["enterprises"]["sic07"]
    assert sic.str.fullmatch(r"\d{5}").all()
    from prosperity.classifications import sic_section

    assert sic_section(sic).notna().all()
    lads = set(geography.districts()["lad"])
    assert set(t["postcode_lookup"]["lad"]) == lads
    assert set(t["local_units"]["postcode"]) <= set(t["postcode_lookup"]["postcode"])
    assert t["postcode_lookup"]["postcode"].is_unique
    # accounts: aGVA = turnover - purchases
    acc = t["accounts"]
    assert np.allclose(acc["gva"], acc["turnover"] - acc["purchases"], atol=0.002)


# -------------------------------------------------------------------------------------------------- truth


def test_lhw_identity_exact(se):
    py = se.truth.person_years
    parts = py["alpha"] + py["psi"] + py["phi"] + py["xb"] + py["eps"]
    assert np.array_equal(py["lhw"].to_numpy(), parts.to_numpy())
    assert not py.duplicated(["piden", "year"]).any()


def test_truth_matches_raw_tables(se):
    """The main job recovered from the cleaned raw jobs is the truth's job, and its wage is the truth's lhw."""
    main = _clean_main_jobs(se)
    py = se.truth.person_years
    m = main.merge(py, on=["piden", "year"], suffixes=("", "_true"), validate="1:1")
    # every person-year of the truth survives, except the ones whose only row was broken
    broken = int(se.truth.mess.query("kind in ['missing_luref','missing_entref','unknown_luref',"
                                     "'nonpositive_pay','implausible_hours']")["rows"].sum())
    assert len(m) == len(py) - broken
    assert (m["luref"].astype("int64") == m["luref_true"]).all()
    resolved = _resolve(m["entref"].astype("int64"), se.tables["entref_continuity"])
    assert (resolved.to_numpy() == m["entref_true"].to_numpy()).all()
    cpi = se.tables["cpi"].set_index("year")["cpih"]
    lhw = np.log(m["gpay"] / m["hours"] / (m["year"].map(cpi) / 100.0))
    assert np.max(np.abs(lhw - m["lhw"])) < 1e-9
    # the firm truth is keyed by resolved references only
    fe = se.truth.firm_effects
    assert fe["entref"].is_unique
    assert set(py["entref"]) <= set(fe["entref"])
    assert not set(fe["entref"]) & set(se.tables["entref_continuity"]["old_entref"])
    # places and industries
    pe = se.truth.place_effects.set_index("lad")
    assert np.array_equal(py["phi"].to_numpy(), pe.loc[py["lad"], "phi"].to_numpy())
    ie = se.truth.industry_effects.set_index("industry")
    fe_i = fe.set_index("entref")
    assert np.array_equal(fe_i.loc[py["entref"], "industry"].to_numpy(), py["industry"].to_numpy())
    assert np.allclose(fe["eta"], fe["industry"].map(ie["eta"]))


def test_regression_on_true_effects_leaves_only_noise(se):
    """Regress log wages on the true effects, the age profile and year dummies: unit coefficients on the
    effects, the true age coefficients, and a residual equal to the simulated noise."""
    py = se.truth.person_years
    co = se.truth.coefficients
    age = (py["xb"] - co["intercept"] - py["year"].astype(str).map(co["year_effects"]))
    # xb is the documented function of age: recover age from the jobs of the main jobs
    main = _clean_main_jobs(se)[["piden", "year", "age"]]
    d = py.merge(main, on=["piden", "year"])
    a = (d["age"] - co["age"]["centre"]) / co["age"]["scale"]
    years = pd.get_dummies(d["year"], prefix="y", dtype=float)
    X = np.column_stack([d["alpha"], d["psi"], d["phi"], a, a * a, years.to_numpy()])
    beta, *_ = np.linalg.lstsq(X, d["lhw"].to_numpy(), rcond=None)
    resid = d["lhw"].to_numpy() - X @ beta
    se_beta = np.sqrt(np.diag(np.linalg.inv(X.T @ X)) * resid.var())
    z = (beta[:5] - np.array([1, 1, 1, co["age"]["b1"], co["age"]["b2"]])) / se_beta[:5]
    assert np.all(np.abs(z) < 4), z
    assert np.corrcoef(resid, d["eps"])[0, 1] > 0.999
    assert abs(resid.var() / se.truth.variance["var_eps"] - 1) < 0.02
    # the age profile in xb is exactly the documented formula
    xb = co["intercept"] + co["age"]["b1"] * a + co["age"]["b2"] * a * a + d["year"].astype(str).map(co["year_effects"])
    assert np.max(np.abs(xb - d["xb"])) < 1e-12
    del age


def test_variance_and_place_gaps_add_up(se):
    v = se.truth.variance
    py = se.truth.person_years
    assert abs(v["var_y"] - py["lhw"].var(ddof=0)) < 1e-9
    assert abs(v["cov_alpha_psi"] - np.cov(py["alpha"], py["psi"], ddof=0)[0, 1]) < 1e-9
    parts = (v["var_alpha"] + v["var_psi"] + v["var_phi"] + v["var_xb"] + v["var_eps"]
             + 2 * (v["cov_alpha_psi"] + v["cov_alpha_phi"] + v["cov_psi_phi"] + v["cov_alpha_xb"]
                    + v["cov_psi_xb"] + v["cov_phi_xb"]))
    assert abs(parts - v["var_y"]) < 1e-3  # eps is independent of the rest up to sampling covariances
    g = se.truth.place_gaps
    parts = g[["people", "industry_mix", "firm_within", "place", "residual"]].sum(1)
    assert np.allclose(parts, g["gap"], atol=1e-12)
    direct = py.groupby("lad")["lhw"].mean() - py["lhw"].mean()
    assert np.allclose(g.set_index("lad")["gap"].loc[direct.index], direct, atol=1e-9)


def test_place_effects_follow_characteristics(se):
    """phi = phi0 + gamma' xbar + xi with xbar rebuilt from the place_characteristics table as documented."""
    co = se.truth.coefficients["place"]
    pc = se.tables["place_characteristics"].copy()
    pc["density"] = np.log(pc["density"])
    pc["housing_cost"] = np.log(pc["housing_cost"])
    xbar = pc.groupby("lad")[list(co["gamma"])].mean()
    z = (xbar - pd.Series(co["xbar_mean"])) / pd.Series(co["xbar_sd"])
    pe = se.truth.place_effects.set_index("lad").loc[z.index]
    fitted = co["phi0"] + z @ pd.Series(co["gamma"])
    assert np.allclose(fitted, pe["phi_characteristics"], atol=1e-9)
    assert np.allclose(pe["phi"], pe["phi_characteristics"] + pe["phi_residual"], atol=1e-12)
    X = np.column_stack([np.ones(len(z)), z.to_numpy()])
    b, *_ = np.linalg.lstsq(X, pe["phi"].to_numpy(), rcond=None)
    assert np.allclose(b[1:], list(co["gamma"].values()), atol=0.004)
    # characteristics realistically correlated with each other and with productivity
    d = geography.districts().set_index("lad").loc[z.index]
    assert np.corrcoef(z["transport_access"], np.log(d["gva_per_hour"]))[0, 1] > 0.3
    assert np.corrcoef(z["housing_cost"], np.log(d["gva_per_hour"]))[0, 1] > 0.3


# ------------------------------------------------------------------------------------------- calibration


def test_calibration_targets_met_workshop(se):
    cal = synthetic.calibration(se)
    assert {"target", "source", "low", "high", "simulated", "met", "applies"} <= set(cal.columns)
    app = cal[cal["applies"]]
    assert len(app) >= 12
    failed = app[app["met"] != True]  # noqa: E712
    assert failed.empty, failed[["target", "low", "high", "simulated"]].to_string()


@pytest.mark.slow
def test_calibration_targets_met_research():
    se = synthetic.england("research", seed=0)
    cal = synthetic.calibration(se)
    assert cal["applies"].all()
    failed = cal[cal["met"] != True]  # noqa: E712
    assert failed.empty, failed[["target", "low", "high", "simulated"]].to_string()
    # the book's maps look like England: districts rank like the ONS figures
    d = geography.districts()
    pay = se.truth.person_years.groupby("lad")["lhw"].mean().rename("syn").reset_index().merge(d, on="lad")
    assert pay["syn"].corr(pay["median_weekly_pay"], method="spearman") > 0.65
    prod = synthetic._district_productivity(se).merge(d, on="lad", suffixes=("", "_ons"))
    assert prod["gva_per_hour"].corr(prod["gva_per_hour_ons"], method="spearman") > 0.55


def test_geography_ranks_like_ons_workshop(se):
    d = geography.districts()
    pay = se.truth.person_years.groupby("lad")["lhw"].mean().rename("syn").reset_index().merge(d, on="lad")
    assert pay["syn"].corr(pay["median_weekly_pay"], method="spearman") > 0.4
    prod = synthetic._district_productivity(se).merge(d, on="lad", suffixes=("", "_ons"))
    assert prod["gva_per_hour"].corr(prod["gva_per_hour_ons"], method="spearman") > 0.3
    # every district has work, and employment follows real filled jobs
    n = se.truth.person_years.groupby("lad").size().reindex(d["lad"]).fillna(0)
    assert (n > 0).all()
    assert np.corrcoef(n, d["filled_jobs"])[0, 1] > 0.95


# ------------------------------------------------------------------------------------------------- mess


def _recount(se) -> dict:
    jobs = se.tables["jobs"]
    lu = set(se.tables["local_units"]["luref"])
    old = set(se.tables["entref_continuity"]["old_entref"])
    dedup = jobs.drop_duplicates()
    return {
        "missing_luref": int(jobs["luref"].isna().sum()),
        "missing_entref": int(jobs["entref"].isna().sum()),
        "unknown_luref": int((jobs["luref"].notna() & ~jobs["luref"].isin(lu)).sum()),
        "nonpositive_pay": int((jobs["gpay"] <= 0).sum()),
        "implausible_hours": int(((jobs["hours"] <= 0) | (jobs["hours"] > 100)).sum()),
        "exact_duplicate": int(jobs.duplicated().sum()),
        "secondary_job": int(len(dedup) - len(dedup[["piden", "year"]].drop_duplicates())),
        "reorganised_entref": int(jobs["entref"].isin(old).sum()),
    }


@pytest.mark.parametrize("which", ["se", "ashe"])
def test_each_kind_of_mess_in_stated_amount(which, request):
    s = request.getfixturevalue(which)
    mess = s.truth.mess
    assert set(mess["kind"]) == set(synthetic.MESS_KINDS)
    stated = mess[mess["table"] == "jobs"].set_index("kind")["rows"]
    assert stated.to_dict() == _recount(s)
    dgp = s.truth.coefficients["dgp"]
    n_main = len(s.truth.person_years)
    rates = {"missing_luref": "missing_luref_rate", "missing_entref": "missing_entref_rate",
             "unknown_luref": "unknown_luref_rate", "nonpositive_pay": "nonpositive_pay_rate",
             "implausible_hours": "implausible_hours_rate", "exact_duplicate": "duplicate_rate",
             "secondary_job": "secondary_rate"}
    if s.meta["sample"] == "ashe":  # secondary jobs are drawn in the population; the sample keeps its people's
        rates.pop("secondary_job")
        assert abs(stated["secondary_job"] / n_main - dgp["secondary_rate"]) < 0.015
    for kind, rate in rates.items():
        assert stated[kind] == round(dgp[rate] * n_main), kind
        assert stated[kind] > 0, kind
    assert stated["reorganised_entref"] > 0
    old = set(s.tables["entref_continuity"]["old_entref"])
    for name in ("local_units", "enterprises", "accounts"):
        n = int(mess.query("kind == 'reorganised_entref' and table == @name")["rows"].iloc[0])
        assert n == int(s.tables[name]["entref"].isin(old).sum())


def test_secondary_jobs_pay_less_than_main(se):
    jobs = se.tables["jobs"].drop_duplicates()
    jobs = jobs[jobs["gpay"] > 0]
    multi = jobs[jobs.duplicated(["piden", "year"], keep=False)]
    top = multi.groupby(["piden", "year"])["gpay"].agg(["max", "min", "size"])
    assert (top["size"] == 2).all()
    assert (top["min"] <= 0.8 * top["max"] + 1e-9).all()


def test_continuity_chains_resolve(se):
    cont = se.tables["entref_continuity"]
    assert cont["old_entref"].is_unique
    assert not set(cont["old_entref"]) & set(se.truth.firm_effects["entref"])
    # an old reference is never used in or after the year its successor takes effect
    ent = se.tables["enterprises"].merge(cont, left_on="entref", right_on="old_entref")
    assert (ent["year_x"] < ent["year_y"]).all()


# ----------------------------------------------------------------------------------------- io and sample


def test_parquet_round_trip_exact(se, tmp_path):
    se.to_parquet(tmp_path / "se")
    back = synthetic.load(tmp_path / "se")
    assert list(back.tables) == list(se.tables)
    for name in se.tables:
        assert_frame_equal(back.tables[name], se.tables[name])
    for f in ("worker_effects", "firm_effects", "place_effects", "industry_effects", "person_years",
              "place_gaps", "mess", "place_productivity"):
        assert_frame_equal(getattr(back.truth, f), getattr(se.truth, f))
    assert back.truth.variance == se.truth.variance
    assert back.truth.coefficients == se.truth.coefficients
    assert back.meta == se.meta
    d = se.describe()
    assert {"section", "name", "rows", "columns", "value"} == set(d.columns)
    assert d.loc[d["name"] == "jobs", "rows"].iloc[0] == len(se.tables["jobs"])


def test_ashe_sample_rule(se, ashe):
    assert (ashe.tables["jobs"]["piden"] % 100 == 14).all()
    assert (ashe.truth.person_years["piden"] % 100 == 14).all()
    # the same people, followed every year: exactly the population's person-years of the sampled ids
    full = se.truth.person_years
    sub = full[full["piden"] % 100 == 14].reset_index(drop=True)
    assert_frame_equal(ashe.truth.person_years, sub)
    share = ashe.truth.worker_effects["piden"].nunique() / se.truth.worker_effects["piden"].nunique()
    assert 0.007 < share < 0.013
    # firms are the whole population of firms (their other workers unseen)
    assert_frame_equal(ashe.tables["enterprises"], se.tables["enterprises"])


def _movers_per_firm(py: pd.DataFrame) -> pd.Series:
    p = py.sort_values(["piden", "year"])
    same = p["piden"].eq(p["piden"].shift())
    moved = same & p["entref"].ne(p["entref"].shift())
    dest = p.loc[moved, ["piden", "entref"]]
    orig = p.loc[moved.shift(-1, fill_value=False), ["piden", "entref"]]
    both = pd.concat([dest, orig]).drop_duplicates()
    return both.groupby("entref")["piden"].nunique()


def test_limited_mobility_in_ashe_sample(se, ashe):
    full = _movers_per_firm(se.truth.person_years)
    samp = _movers_per_firm(ashe.truth.person_years)
    assert samp.median() <= 2 < full.median() * 2
    assert samp.mean() < full.mean() / 5
    v = se.truth.variance
    assert 0.07 < v["mobility_rate"] < 0.11


# -------------------------------------------------------------------------- match effects, endogenous mobility

MATCH = dict(sd_match=0.1, match_complementarity=0.08, mobility_on_match=1.0)


def test_match_effects_enter_wages_only_and_are_kept_in_the_truth():
    base = synthetic.england(seed=2, **SMALL)
    assert "match" not in base.truth.person_years and "var_match" not in base.truth.variance
    wages_only = synthetic.england(seed=2, sd_match=0.1, **SMALL)  # no endogenous mobility: the same careers
    a, b = base.truth.person_years, wages_only.truth.person_years
    assert_frame_equal(a[["piden", "year", "entref", "luref"]], b[["piden", "year", "entref", "luref"]])
    assert np.array_equal(b["eps"], a["eps"]) and np.array_equal(b["alpha"], a["alpha"])
    assert np.array_equal(b["lhw"], a["alpha"] + a["psi"] + a["phi"] + a["xb"] + a["eps"] + b["match"])
    # one draw per worker-enterprise pair, constant over the spell, with the stated spread
    assert (b.groupby(["piden", "entref"])["match"].nunique() == 1).all()
    assert 0.09 < b["match"].std() < 0.11
    v = wages_only.truth.variance
    assert abs(v["var_match"] - b["match"].var(ddof=0)) < 1e-9
    assert abs(v["var_eps"] - (b["eps"] + b["match"]).var(ddof=0)) < 1e-9
    g = wages_only.truth.place_gaps
    assert np.allclose(g[["people", "industry_mix", "firm_within", "place", "residual"]].sum(1), g["gap"], atol=1e-12)


def test_akm_diagnostics_fail_under_match_effects_and_endogenous_mobility():
    """The residual grid (CHK 2013 Fig. VI) is flat in the default world and not under match effects with
    complementarity and endogenous mobility; mover gains stop being symmetric (Fig. V)."""
    out = {}
    for name, kw in (("default", {}), ("match", MATCH)):
        se = synthetic.england(seed=0, **SMALL, **kw)
        py = se.truth.person_years
        grid = akm.residual_grid(akm.fit(py, "lhw", "piden", "entref", time="year")).to_numpy()
        sym = akm.event_study_symmetry(akm.event_study(py, "lhw", "piden", "entref", "year"))
        corners = grid[0, 0] + grid[-1, -1] - grid[0, -1] - grid[-1, 0]
        out[name] = (np.nanmax(np.abs(grid)), corners, float(sym["sum"].mean()))
        if kw:  # endogenous exits: movers leave worse matches than stayers have
            m = py.sort_values(["piden", "year"])
            leaves = m["piden"].eq(m["piden"].shift(-1)) & m["entref"].ne(m["entref"].shift(-1))
            assert m.loc[leaves, "match"].mean() < m.loc[~leaves, "match"].mean() - 0.02
    assert out["default"][0] < 0.03 and abs(out["default"][1]) < 0.03
    assert out["match"][0] > 2 * out["default"][0] and out["match"][1] > 0.1
    assert out["match"][2] > out["default"][2] + 0.05


# ----------------------------------------------------------------------------------------- bad input


def test_bad_input_errors():
    with pytest.raises(TypeError, match="unknown DGP overrides"):
        synthetic.england(n_wrokers=10)
    with pytest.raises(ValueError, match="size"):
        synthetic.england("huge")
    with pytest.raises(ValueError, match="sample"):
        synthetic.england(sample="lfs", **SMALL)
    with pytest.raises(ValueError, match="years"):
        synthetic.england(years=(1990, 2000), **SMALL)
    with pytest.raises(ValueError, match="write_population"):
        synthetic.england("population")
    with pytest.raises(ValueError, match="move_rate"):
        synthetic.england(move_rate=1.5, **SMALL)
    with pytest.raises(ValueError, match="no such folder"):
        synthetic.load("/nonexistent/dir")


# ----------------------------------------------------------------------------------------- streaming


def test_write_population_streams_blocks(tmp_path):
    out = synthetic.write_population(tmp_path / "pop", seed=1, fraction=1.0, block_size=2_500, quiet=True,
                                     n_workers=8_000, n_enterprises=800)
    back = synthetic.load(tmp_path / "pop")
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / "pop" / "tables" / "jobs.parquet").num_row_groups == 4
    assert isinstance(out, Result) and out.to_frame().set_index("table")["rows"].to_dict() == out.rows
    man = _io.verify(tmp_path / "pop", kind=synthetic.KIND)
    assert man["meta"]["writer"] == "write_population" and man["meta"]["seed"] == 1
    assert man["meta"]["dgp"]["n_workers"] == 8_000
    assert man["files"]["tables/jobs.parquet"]["rows"] == out.rows["jobs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pop"]  # written through a temporary folder
    assert len(back.tables["jobs"]) == out.rows["jobs"]
    assert len(back.truth.person_years) == out.rows["person_years"] == back.truth.variance["n"]
    stated = back.truth.mess[back.truth.mess["table"] == "jobs"].set_index("kind")["rows"].to_dict()
    assert stated == _recount(back)
    py = back.truth.person_years
    assert np.array_equal(py["lhw"], py["alpha"] + py["psi"] + py["phi"] + py["xb"] + py["eps"])
    assert abs(back.truth.variance["var_y"] - py["lhw"].var(ddof=0)) < 1e-9
    # firm employment counts every job (main and secondary) of every worker, whatever the block
    emp = back.tables["local_units"].groupby("year")["employment"].sum()
    jobs = back.tables["jobs"]
    per_year = jobs[~jobs.duplicated()].groupby("year").size()
    assert emp.to_dict() == per_year.to_dict()

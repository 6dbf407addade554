"""The PAYE RTI / LEED raw-table format of synthetic England (issue 16): the same world and truth as the ASHE format,
delivered as pay-period records, a scheme lookup and the business register."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from prosperity import _io, synthetic

SMALL = dict(n_workers=6_000, n_enterprises=600)


@pytest.fixture(scope="module")
def both():
    return synthetic.england(seed=1, **SMALL), synthetic.england(seed=1, source="paye_rti", **SMALL)


def _clean_ashe_jobs(se) -> pd.DataFrame:
    """ASHE-format job rows that carry no mess (valid local unit, enterprise, pay and hours), without duplicates."""
    jobs = se.tables["jobs"]
    lu = set(se.tables["local_units"]["luref"])
    ok = (jobs["luref"].notna() & jobs["entref"].notna() & (jobs["gpay"] > 0) & (jobs["hours"] > 0)
          & (jobs["hours"] <= 100) & jobs["luref"].isin(lu))
    return jobs[ok].drop_duplicates()


def test_default_source_unchanged_and_shared_tables_identical(both):
    ashe, rti = both
    again = synthetic.england(seed=1, source="ashe", **SMALL)
    for name, df in ashe.tables.items():  # source="ashe" is the default, byte for byte
        assert_frame_equal(df, again.tables[name])
    assert set(rti.tables) == {"pay_periods", "employees", "paye_schemes", "local_units", "enterprises", "accounts",
                               "postcode_lookup", "entref_continuity", "place_characteristics", "cpi"}
    for name in ("local_units", "accounts", "postcode_lookup", "entref_continuity", "place_characteristics", "cpi"):
        assert_frame_equal(ashe.tables[name], rti.tables[name])
    assert_frame_equal(ashe.tables["enterprises"], rti.tables["enterprises"].drop(columns="postcode"))
    # the same truth (the mess differs: it describes the delivered tables)
    for f in ("person_years", "worker_effects", "firm_effects", "place_effects", "place_gaps"):
        assert_frame_equal(getattr(ashe.truth, f), getattr(rti.truth, f))
    assert ashe.truth.variance == rti.truth.variance
    assert set(rti.truth.mess["kind"]) == set(synthetic.RTI_MESS_KINDS)


def test_pay_periods_add_up_to_the_ashe_annual_earnings_of_the_same_jobs(both):
    """Each clean ASHE-format job (piden, year, luref) is one employment-year: its 12 tax-month payments add up to
    52 x its weekly gpay (to the penny). Jobs are matched through the scheme lookup's local unit (site-level
    schemes) and, under a central payroll, through the employment id; duplicated records are dropped first."""
    ashe, rti = both
    pp = rti.tables["pay_periods"].drop_duplicates()
    sch = rti.tables["paye_schemes"]
    known = set(sch["paye_ref"])
    pp = pp[pp["paye_ref"].astype(object).isin(known)]
    per = (pp.groupby(["person_id", "paye_ref", "employment_id", "tax_year"], observed=True)
           .agg(pay=("pay", "sum"), n=("pay", "size"), band=("hours_band", "first")).reset_index())
    assert (per["n"] == 12).all()
    site = sch.dropna(subset=["luref"]).drop_duplicates("paye_ref").set_index("paye_ref")["luref"]
    per = per[per["paye_ref"].astype(object).isin(site.index)].copy()
    per["luref"] = per["paye_ref"].astype(object).map(site).astype("int64")
    jobs = _clean_ashe_jobs(ashe)
    jobs = jobs.assign(luref=jobs["luref"].astype("int64"), annual=np.round(jobs["gpay"] * 52, 2))
    m = per.merge(jobs, left_on=["person_id", "tax_year", "luref"], right_on=["piden", "year", "luref"],
                  how="inner", validate="one_to_one")
    assert len(m) > 0.8 * len(per)  # most employment-years are on site-level schemes
    np.testing.assert_allclose(m["pay"], m["annual"], rtol=0, atol=0.005)
    # the hours band is the full-time proxy: band D exactly when the ASHE job is full time
    assert ((m["band"] == "D") == (m["ft"] == 1)).all()
    # age and sex of the employees table agree with the ASHE rows
    emp = rti.tables["employees"].set_index("person_id")
    assert ((m["tax_year"] - m["person_id"].map(emp["birth_year"])) == m["age"]).all()
    assert (m["person_id"].map(emp["sex"]) == np.where(m["sex"] == 2, "F", "M")).all()


def test_main_job_by_earnings_is_the_truth(both):
    """The employment with the highest annual pay in a tax year is the truth's main job (same enterprise)."""
    _, rti = both
    pp = rti.tables["pay_periods"].drop_duplicates()
    sch = rti.tables["paye_schemes"]
    pp = pp[pp["paye_ref"].astype(object).isin(set(sch["paye_ref"]))]
    per = pp.groupby(["person_id", "paye_ref", "employment_id", "tax_year"], observed=True)["pay"].sum().reset_index()
    main = per.sort_values("pay", ascending=False).drop_duplicates(["person_id", "tax_year"])
    main["paye_ref"] = main["paye_ref"].astype(object)
    main = main.merge(sch[["paye_ref", "tax_year", "entref"]], on=["paye_ref", "tax_year"], how="left")
    cont = rti.tables["entref_continuity"]
    step = dict(zip(cont["old_entref"], cont["new_entref"]))
    resolved = main["entref"].map(lambda e: step.get(step.get(e, e), step.get(e, e)))
    truth = rti.truth.person_years.set_index(["piden", "year"])["entref"]
    got = pd.Series(resolved.to_numpy(), index=pd.MultiIndex.from_arrays([main["person_id"], main["tax_year"]]))
    common = got.index.intersection(truth.index)
    assert len(common) > 0.99 * len(got)
    assert (got.loc[common] == truth.loc[common]).mean() > 0.999  # unknown schemes' people are the exception


def test_mess_counts_and_scheme_lookup(both):
    _, rti = both
    mess = rti.truth.mess.set_index("kind")["rows"]
    pp = rti.tables["pay_periods"]
    assert int(pp.duplicated().sum()) == mess["duplicate_period"]
    sch = rti.tables["paye_schemes"]
    unknown = ~pp["paye_ref"].astype(object).isin(set(sch["paye_ref"]))
    assert int(unknown.sum()) == mess["unknown_scheme"] + int(pp[unknown].duplicated().sum())
    # enterprise-wide schemes have no local unit; each (scheme, tax year) is one row
    assert not sch.duplicated(["paye_ref", "tax_year"]).any()
    central = set(sch.loc[sch["luref"].isna(), "paye_ref"])
    dedup = pp.drop_duplicates()
    assert int(dedup["paye_ref"].astype(object).isin(central).sum()) == mess["central_payroll"]
    assert mess["central_payroll"] > 0
    none = synthetic.england(seed=1, source="paye_rti", central_payroll=0.0, **SMALL)
    assert none.tables["paye_schemes"]["luref"].notna().all()
    # the enterprise postcode is a postcode of the directory
    assert rti.tables["enterprises"]["postcode"].isin(set(rti.tables["postcode_lookup"]["postcode"])).all()


def test_determinism_same_bytes_and_manifest(tmp_path):
    a = synthetic.england(seed=2, source="paye_rti", **SMALL).to_parquet(tmp_path / "a")
    b = synthetic.england(seed=2, source="paye_rti", **SMALL).to_parquet(tmp_path / "b")
    ma, mb = _io.verify(a, kind=synthetic.KIND), _io.verify(b, kind=synthetic.KIND)
    files = lambda m: {k: v["sha256"] for k, v in m["files"].items() if k != "meta.json"}  # noqa: E731
    assert files(ma) == files(mb)
    assert "tables/pay_periods.parquet" in ma["files"] and "tables/jobs.parquet" not in ma["files"]
    assert ma["meta"]["source"] == "paye_rti" and ma["meta"]["central_payroll"] == synthetic.CENTRAL_PAYROLL
    back = synthetic.load(a)
    assert back.meta["source"] == "paye_rti"
    assert_frame_equal(back.tables["paye_schemes"], synthetic.england(seed=2, source="paye_rti", **SMALL)
                       .tables["paye_schemes"])


def test_every_column_documented(both):
    _, rti = both
    doc = synthetic.rti_columns()
    assert set(doc["status"]) <= {"S", "U"}
    assert doc["source"].str.len().gt(0).all()
    for table in ("pay_periods", "employees", "paye_schemes"):
        assert list(rti.tables[table].columns) == list(synthetic.RTI_COLUMNS[table])
    assert "postcode" in synthetic.RTI_COLUMNS["enterprises"]


def test_bad_source_arguments():
    with pytest.raises(ValueError, match="source must be one of"):
        synthetic.england(source="lfs", **SMALL)
    with pytest.raises(ValueError, match="central_payroll"):
        synthetic.england(source="paye_rti", central_payroll=1.5, **SMALL)


def test_ashe_sample_in_the_rti_format():
    """sample="ashe" restricts the payroll records to the same 1% of people (their employers stay whole)."""
    rti = synthetic.england(seed=1, source="paye_rti", sample="ashe", **SMALL)
    ashe = synthetic.england(seed=1, sample="ashe", **SMALL)
    ids = rti.tables["pay_periods"]["person_id"]
    assert len(ids) and synthetic.in_ashe_sample(ids).all()
    assert set(ids) == set(ashe.truth.person_years["piden"]) | set(ashe.tables["jobs"]["piden"])
    assert_frame_equal(rti.truth.person_years, ashe.truth.person_years)

"""The PAYE RTI linking profile (issue 16): ``link.build_panel(..., profile="paye_rti")`` on the RTI format of synthetic
England links to the same workers, firms, places and pay as the truth and the ASHE format of the same world."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from prosperity import link, synthetic
from prosperity.link import LinkError

SMALL = dict(n_workers=6_000, n_enterprises=600)
TINY = dict(n_workers=1_200, n_enterprises=150)


@pytest.fixture(scope="module")
def rti():
    return synthetic.england(seed=1, source="paye_rti", **SMALL)


@pytest.fixture(scope="module")
def linked(rti):
    return link.build_panel(rti, profile="paye_rti", trim=None)


@pytest.fixture(scope="module")
def tiny():
    return synthetic.england(seed=3, source="paye_rti", **TINY)


def _brute_main(se, calendar: bool = False) -> pd.DataFrame:
    """The main employment of every person-year by brute force in pandas: de-duplicated records added up by
    employment and year, the highest annual pay (ties: smaller paye_ref, employment_id), its scheme-year."""
    pp = se.tables["pay_periods"].drop_duplicates()
    pp = pp.assign(paye_ref=pp["paye_ref"].astype(str),
                   year=pp["tax_year"] + ((pp["tax_month"] >= 10) if calendar else 0))
    emp = (pp.groupby(["person_id", "paye_ref", "employment_id", "year"])
           .agg(annual=("pay", "sum"), scheme_year=("tax_year", "max"), months=("tax_month", "nunique"))
           .reset_index())
    main = emp.sort_values(["person_id", "year", "annual", "paye_ref", "employment_id"],
                           ascending=[True, True, False, True, True]).drop_duplicates(["person_id", "year"])
    sch = se.tables["paye_schemes"].rename(columns={"tax_year": "scheme_year"})
    sch = sch.assign(paye_ref=sch["paye_ref"].astype(str))
    return main.merge(sch, on=["paye_ref", "scheme_year"], how="left", indicator="scheme", validate="many_to_one")


def _steps(linked, table="jobs"):
    lg = linked.ledger
    return lg[lg["table"] == table].set_index("step")


def test_links_to_the_truth(rti, linked):
    """Every true person-year is linked, except those whose main job is under an unknown scheme; the enterprise is
    the truth's (resolved) enterprise; a worker on a site-level scheme is at the true workplace; a central-payroll
    worker is placed at the head office, so the place is right for at least the rest."""
    truth = rti.truth.person_years
    w = linked.workers
    brute = _brute_main(rti)
    n_unknown = int((brute["scheme"] == "left_only").sum())
    assert n_unknown > 0 and len(w) == len(truth) - n_unknown
    m = w.merge(truth, on=["piden", "year"], how="left", suffixes=("", "_t"), validate="one_to_one")
    assert m["entref_t"].notna().all()
    assert (m["entref"] == m["entref_t"]).all()
    site = m["placement"] == "workplace"
    assert (m.loc[site, "luref"] == m.loc[site, "luref_t"]).all()
    assert (m.loc[site, "lad"] == m.loc[site, "lad_t"]).all()
    central = m["placement"].isin(["single_site", "head_office", "enterprise_postcode"])
    assert central.sum() == ((brute["scheme"] == "both") & brute["luref"].isna()).sum()
    assert 0.03 < central.mean() < 0.2
    assert set(m["placement"]) <= set(link.PLACEMENTS)
    assert (m.loc[m["placement"] == "single_site", "lad"] == m.loc[m["placement"] == "single_site", "lad_t"]).all()
    # stated tolerance: the place is right for every worker not placed at the enterprise's address
    assert (m["lad"] == m["lad_t"]).mean() >= 1 - m["placement"].isin(["head_office", "enterprise_postcode"]).mean()
    assert (m["lad"] == m["lad_t"]).mean() > 0.85
    # the head office is the enterprise's postcode: the panel's district is the district of that postcode
    ho = m[m["placement"] == "head_office"]
    ent = rti.tables["enterprises"].set_index(["entref", "year"])["postcode"]
    pcs = rti.tables["postcode_lookup"].set_index("postcode")["lad"]
    raw_entref = brute.set_index(["person_id", "year"])["entref"]
    keys = list(zip(ho["piden"], ho["year"]))
    raw = raw_entref.loc[keys].to_numpy()
    assert (np.array([pcs[ent[(e, y)]] for e, (_, y) in zip(raw, keys)]) == ho["lad"].to_numpy()).all()


def test_annual_pay_and_outcome_agree_with_the_ashe_format(rti, linked):
    """The same world in the ASHE format: annual pay = 52 x weekly gpay (to the penny), the same main job's
    enterprise and (site-level schemes) place, and log real pay per day = log real weekly pay + log(52 / days)."""
    ashe = link.build_panel(synthetic.england(seed=1, **SMALL), trim=None)
    m = linked.workers.merge(ashe.workers, on=["piden", "year"], suffixes=("", "_a"), validate="one_to_one")
    assert len(m) > 0.97 * len(linked.workers)
    np.testing.assert_allclose(m["annual_pay"], np.round(52 * m["gpay_a"], 2), rtol=0, atol=0.005 + 1e-9)
    assert (m["entref"] == m["entref_a"]).all()
    site = m["placement"] == "workplace"
    assert (m.loc[site, "lad"] == m.loc[site, "lad_a"]).all()
    np.testing.assert_allclose(m["ldw"], m["lww_a"] + np.log(52 / m["days"]), rtol=0, atol=1e-5)
    np.testing.assert_allclose(m["lww"], m["ldw"] + np.log(7), rtol=0, atol=1e-12)
    assert ((m["ft"] == 1) == (m["ft_a"] == 1)).all()  # hours band D is the full-time proxy
    assert (m["age"] == m["age_a"]).all()
    assert m["days"].isin([365, 366]).all() and (m["months"] == 12).all()
    assert m[["hours", "hw", "lhw"]].isna().all().all()  # no paid hours in RTI
    # firm and place panels carry the mean of the outcome, from the worker panel
    f = linked.firms.set_index(["entref", "year"])
    got = linked.workers.groupby(["entref", "year"])["ldw"].mean()
    np.testing.assert_allclose(f.loc[got.index, "mean_ldw"], got, rtol=0, atol=1e-9)
    assert "mean_lhw" not in linked.places.columns and "mean_ldw" in linked.places.columns


def test_main_job_and_pay_by_brute_force(rti, linked):
    brute = _brute_main(rti).rename(columns={"person_id": "piden"})
    m = linked.workers.merge(brute, on=["piden", "year"], how="left", suffixes=("", "_b"), validate="one_to_one")
    assert (m["paye_ref"] == m["paye_ref_b"]).all() and (m["employment_id"] == m["employment_id_b"]).all()
    np.testing.assert_allclose(m["annual_pay"], m["annual"], rtol=0, atol=1e-6)
    assert (m["months"] == m["months_b"]).all()


def test_every_rti_mess_kind_is_ledgered(rti, linked):
    mess = rti.truth.mess.set_index("kind")["rows"]
    assert set(mess.index) == set(synthetic.RTI_MESS_KINDS)
    rec, jobs = _steps(linked, "pay_periods"), _steps(linked)
    assert rec.loc["duplicate_period", "dropped"] == mess["duplicate_period"]
    assert 12 * jobs.loc["main_job", "dropped"] == mess["secondary_job"]  # 12 tax months per employment-year
    brute = _brute_main(rti)
    unknown_main = int((brute["scheme"] == "left_only").sum())
    assert jobs.loc["unknown_scheme", "dropped"] == unknown_main
    pp = rti.tables["pay_periods"].drop_duplicates()
    known = set(rti.tables["paye_schemes"]["paye_ref"])
    assert (~pp["paye_ref"].astype(str).isin(known)).sum() == mess["unknown_scheme"]
    central_main = int(((brute["scheme"] == "both") & brute["luref"].isna()).sum())
    assert jobs.loc["central_payroll", "repaired"] == central_main > 0
    assert "placed only at the enterprise's address" in jobs.loc["central_payroll", "reason"]
    assert _steps(linked, "paye_schemes").loc["reorganised_entref", "repaired"] == mess["reorganised_entref"]
    # the funnel is continuous and no row leaves without a line
    for table in ("pay_periods", "jobs"):
        t = _steps(linked, table)
        assert (t["rows_in"] - t["rows_out"] == t["dropped"]).all()
        assert (t["rows_in"].iloc[1:].to_numpy() == t["rows_out"].iloc[:-1].to_numpy()).all()
    assert _steps(linked, "pay_periods")["rows_in"].iloc[0] == len(rti.tables["pay_periods"])
    assert _steps(linked, "pay_periods")["rows_out"].iloc[-1] == _steps(linked)["rows_in"].iloc[0]
    assert jobs["rows_out"].iloc[-1] == len(linked.workers)
    assert "LinkedData:" in linked.summary()


def test_calendar_years_full_time_and_ages(tiny):
    cal = link.build_panel(tiny, profile="paye_rti", year_basis="calendar", trim=None)
    y0, y1 = tiny.meta["years"]
    assert cal.options["years"] == (y0 + 1, y1) and cal.options["year_basis"] == "calendar"
    brute = _brute_main(tiny, calendar=True).rename(columns={"person_id": "piden"})
    brute = brute[(brute["scheme"] == "both") & brute["year"].between(y0 + 1, y1)]
    m = cal.workers.merge(brute, on=["piden", "year"], how="left", suffixes=("", "_b"), validate="one_to_one")
    # a job that ended before the April snapshot of its calendar year may find its local unit closed
    assert len(brute) - len(m) == _steps(cal).loc[["unknown_luref", "central_unplaced"], "dropped"].sum()
    assert len(m) > 0.99 * len(brute)
    np.testing.assert_allclose(m["annual_pay"], m["annual"], rtol=0, atol=1e-6)
    assert (m["months"] == m["months_b"]).all() and (m["paye_ref"] == m["paye_ref_b"]).all()
    assert (m["months"] < 12).any()  # job changes split calendar years between employers
    ft = link.build_panel(tiny, profile="paye_rti", full_time_only=True, ages=(25, 60), trim=None)
    assert (ft.workers["ft"] == 1).all() and ft.workers["age"].between(25, 60).all()
    full = link.build_panel(tiny, profile="paye_rti", trim=None)
    steps = _steps(ft)
    assert steps.loc["full_time", "dropped"] == (full.workers["ft"] != 1).sum()
    assert steps.loc["age_range", "dropped"] == ((full.workers["ft"] == 1) & ~full.workers["age"].between(25, 60)).sum()


def test_deterministic_threads_and_output_folder(tiny, tmp_path):
    a = link.build_panel(tiny, profile="paye_rti", threads=1)
    b = link.build_panel(tiny, profile="paye_rti", threads=2, output=tmp_path / "panel")
    back = link.load_panel(tmp_path / "panel")
    for name in ("workers", "firms", "sites"):
        assert_frame_equal(getattr(a, name), getattr(back, name), check_dtype=False)
    assert_frame_equal(a.places, back.places, check_dtype=False)
    assert_frame_equal(a.ledger, b.ledger)
    assert back.options["profile"] == "paye_rti"


def test_derived_column_names_are_renamed(tiny):
    t = dict(tiny.tables)
    t["pay_periods"] = t["pay_periods"].assign(lad="E00000000")
    got = link.build_panel(t, profile="paye_rti")
    line = _steps(got, "pay_periods").loc["derived_names"]
    assert "lad_input" in line["reason"] and line["dropped"] == 0
    assert (got.workers["lad"] != "E00000000").all()


def test_bad_input_raises(tiny):
    t = tiny.tables
    with pytest.raises(LinkError) as e:
        link.build_panel({k: v for k, v in t.items() if k != "paye_schemes"}, profile="paye_rti")
    assert e.value.table == "paye_schemes"
    with pytest.raises(LinkError) as e:
        link.build_panel({**t, "pay_periods": t["pay_periods"].drop(columns="pay")}, profile="paye_rti")
    assert (e.value.table, e.value.column) == ("pay_periods", "pay")
    # two different records for one payment (a correction?) cannot be resolved silently
    pp = t["pay_periods"]
    bad = pd.concat([pp, pp.iloc[[5]].assign(pay=pp["pay"].iloc[5] + 1.0)], ignore_index=True)
    with pytest.raises(LinkError, match="one employment and payment date") as e:
        link.build_panel({**t, "pay_periods": bad}, profile="paye_rti")
    assert (e.value.table, e.value.column) == ("pay_periods", "payment_date")
    assert e.value.ids[0][0] == pp["person_id"].iloc[5]
    # a scheme-year twice in the lookup
    sch = t["paye_schemes"]
    with pytest.raises(LinkError, match="duplicate keys") as e:
        link.build_panel({**t, "paye_schemes": pd.concat([sch, sch.iloc[[0]]])}, profile="paye_rti")
    assert e.value.table == "paye_schemes"
    # no record's scheme is in the lookup (references written differently)
    with pytest.raises(LinkError, match="no record's employer PAYE scheme") as e:
        link.build_panel({**t, "paye_schemes": sch.assign(paye_ref=sch["paye_ref"].str.replace("/", ""))},
                         profile="paye_rti")
    assert (e.value.table, e.value.column) == ("pay_periods", "paye_ref")
    # scheme references of different types
    with pytest.raises(LinkError, match="different types"):
        link.build_panel({**t, "paye_schemes": sch.assign(paye_ref=np.arange(len(sch)))}, profile="paye_rti")
    with pytest.raises(ValueError, match="no paid hours"):
        link.build_panel(t, profile="paye_rti", pay="hourly")
    with pytest.raises(ValueError, match="DuckDB only"):
        link.build_panel(t, profile="paye_rti", engine="spark", spark=object())
    with pytest.raises(ValueError, match="profile must be one of"):
        link.build_panel(t, profile="lfs")
    with pytest.raises(ValueError, match="year_basis"):
        link.build_panel(synthetic.england(seed=3, **TINY), year_basis="calendar")


def test_ashe_sample_rule_on_person_ids(tiny):
    got = link.build_panel(tiny, profile="paye_rti", sample="ashe", trim=None)
    pp = tiny.tables["pay_periods"]
    out = ~synthetic.in_ashe_sample(pp["person_id"])
    assert _steps(got, "pay_periods").loc["ashe_sample", "dropped"] == out.sum() > 0
    assert len(got.workers) and synthetic.in_ashe_sample(got.workers["piden"]).all()

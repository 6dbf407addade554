"""Tests of prosperity.link: the ledger counts every kind of mess in its true amount, the linked workplace is the
true workplace, the ledger adds up, bad input raises LinkError, and every kind of source gives the same panels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prosperity import link
from prosperity.link import LinkError, build_panel

# the tiny England is messy on purpose (a quarter of its local units have an unknown postcode)
pytestmark = pytest.mark.filterwarnings("ignore::prosperity.link.LinkWarning")


# ---------------------------------------------------------------------------------------------------
# A tiny hand-made England whose every outcome is known.
def tiny() -> dict[str, pd.DataFrame]:
    jobs = pd.DataFrame(
        [
            # piden, year, entref, luref, gpay, hours, age, sex, soc, ft
            (1, 2018, 10, 100, 500.0, 37.5, 30, "F", 2, True),    # main job
            (1, 2018, 20, 200, 100.0, 10.0, 30, "F", 9, False),   # secondary job
            (1, 2019, 10, 100, 520.0, 37.5, 31, "F", 2, True),
            (1, 2019, 10, 100, 520.0, 37.5, 31, "F", 2, True),    # exact duplicate
            (2, 2018, 11, 101, 400.0, 40.0, 45, "M", 5, True),    # old reference 11 -> 12 -> 13
            (2, 2019, 13, 101, 410.0, 40.0, 46, "M", 5, True),
            (3, 2018, 20, 200, 0.0, 20.0, 22, "M", 7, False),     # zero pay
            (3, 2019, 20, 200, 300.0, 150.0, 23, "M", 7, True),   # implausible hours
            (4, 2018, None, 200, 350.0, 35.0, 50, "F", 4, True),  # missing entref -> from local unit 200
            (4, 2019, 20, None, 360.0, 35.0, 51, "F", 4, True),   # missing luref
            (5, 2018, 20, 999, 600.0, 37.0, 40, "M", 1, True),    # unknown luref
            (5, 2019, 20, 201, 610.0, 37.0, 41, "M", 1, True),    # local unit with unknown postcode
            (6, 2018, 10, 100, 450.0, 30.0, 17, "F", 6, False),   # aged 17, part-time
        ],
        columns=["piden", "year", "entref", "luref", "gpay", "hours", "age", "sex", "soc", "ft"],
    ).astype({"entref": "Int64", "luref": "Int64"})
    local_units = pd.DataFrame(
        [(100, 10, y, "AA1 1AA", "64191", 50) for y in (2018, 2019)]
        + [(101, 11, 2018, "BB1 1BB", "10110", 300), (101, 13, 2019, "BB1 1BB", "10110", 310)]
        + [(200, 20, y, "CC1 1CC", "47110", 20) for y in (2018, 2019)]
        + [(201, 20, y, "ZZ9 9ZZ", "47110", 5) for y in (2018, 2019)],
        columns=["luref", "entref", "year", "postcode", "sic07", "employment"],
    )
    enterprises = pd.DataFrame(
        [(10, y, "64191", 50, 9e3, False) for y in (2018, 2019)]
        + [(11, 2018, "10110", 300, 5e4, True), (13, 2019, "10110", 310, 5.1e4, True)]
        + [(20, y, "47110", 25, 2e3, False) for y in (2018, 2019)],
        columns=["entref", "year", "sic07", "employment", "turnover", "foreign_owned"],
    )
    accounts = pd.DataFrame(
        [(11, 2018, 2.0e4, 5e4, 3e4, 1e4), (13, 2019, 2.1e4, 5.1e4, 3e4, 1e4)],
        columns=["entref", "year", "gva", "turnover", "purchases", "employment_costs"],
    )
    postcode_lookup = pd.DataFrame(
        [("AA1 1AA", "E09000001", "TLI31", "E12000007"), ("BB1 1BB", "E08000025", "TLG31", "E12000005"),
         ("CC1 1CC", "E08000003", "TLD33", "E12000002")],
        columns=["postcode", "lad", "itl3", "region"],
    )
    entref_continuity = pd.DataFrame({"old_entref": [11, 12], "new_entref": [12, 13], "year": [2019, 2019]})
    place_characteristics = pd.DataFrame(
        [(lad, y, 1.0, 2.0, 3.0, 4.0) for lad in ("E09000001", "E08000025", "E08000003") for y in (2018, 2019)],
        columns=["lad", "year", "density", "transport_access", "housing_cost", "amenities"],
    )
    cpi = pd.DataFrame({"year": [2018, 2019], "cpih": [105.0, 107.1]})
    return dict(jobs=jobs, local_units=local_units, enterprises=enterprises, accounts=accounts,
                postcode_lookup=postcode_lookup, entref_continuity=entref_continuity,
                place_characteristics=place_characteristics, cpi=cpi)


def _steps(linked):
    """The jobs lines of the ledger by step (the local_units lines reuse some step names)."""
    lg = linked.ledger
    return lg[lg["table"] == "jobs"].set_index("step")


def test_tiny_every_rule():
    linked = build_panel(tiny(), trim=None)
    lg = _steps(linked)
    assert lg.loc["exact_duplicates", "dropped"] == 1
    assert lg.loc["nonpositive_pay", "dropped"] == 1
    assert lg.loc["implausible_hours", "dropped"] == 1
    assert lg.loc["main_job", "dropped"] == 1
    assert lg.loc["missing_luref", "dropped"] == 1
    assert lg.loc["unknown_luref", "dropped"] == 1
    assert lg.loc["unmatched_postcode", "dropped"] == 1
    assert lg.loc["missing_entref", "repaired"] == 1
    assert lg[lg.table == "jobs"].loc["reorganised_entref", "repaired"] == 1  # person 2, 2018 (11 -> 13)
    w = linked.workers.set_index(["piden", "year"])
    assert sorted(w.index) == [(1, 2018), (1, 2019), (2, 2018), (2, 2019), (4, 2018), (6, 2018)]
    assert w.loc[(1, 2018), "luref"] == 100 and w.loc[(1, 2018), "lad"] == "E09000001"
    assert w.loc[(2, 2018), "entref"] == 13 and w.loc[(2, 2019), "entref"] == 13
    assert w.loc[(4, 2018), "entref"] == 20
    assert w.loc[(2, 2018), "industry"] == "C" and w.loc[(1, 2019), "industry"] == "K"
    assert w.loc[(2, 2018), "size_band"] == "250+" and w.loc[(4, 2018), "size_band"] == "10-49"
    # real hourly pay at 2019 prices
    assert w.loc[(1, 2018), "hw"] == pytest.approx(500 / 37.5 * 107.1 / 105.0)
    assert w.loc[(1, 2019), "lhw"] == pytest.approx(np.log(520 / 37.5))
    assert linked.options["base_year"] == 2019
    # firms: the reorganised enterprise is one firm (13) in both years, with its survey GVA
    f = linked.firms.set_index(["entref", "year"])
    assert (13, 2018) in f.index and (11, 2018) not in f.index
    assert f.loc[(13, 2018), "gva_per_worker"] == pytest.approx(2.0e4 / 300)
    assert bool(f.loc[(13, 2019), "surveyed"]) and not bool(f.loc[(10, 2019), "surveyed"])
    assert f.loc[(20, 2018), "sites"] == 2 and f.loc[(20, 2018), "hq_luref"] == 200
    # places: district-year employment from the local units
    p = linked.places.set_index(["lad", "year"])
    assert p.loc[("E09000001", 2018), "employment"] == 50
    assert p.loc[("E09000001", 2018), "n_workers"] == 2


def test_reorganisation_leaving_two_rows_for_one_enterprise_year():
    d = tiny()
    # the register files enterprise 13 in 2018 under both its old (11) and its new reference
    extra = pd.DataFrame([(13, 2018, "10110", 305, 5.05e4, True)], columns=d["enterprises"].columns)
    d["enterprises"] = pd.concat([d["enterprises"], extra], ignore_index=True)
    f = build_panel(d, trim=None).firms.set_index(["entref", "year"])
    assert f.index.is_unique
    assert f.loc[(13, 2018), "employment"] == 305  # the row filed under the resolved reference is kept


def test_ledger_adds_up_and_every_row_is_accounted_for():
    linked = build_panel(tiny(), trim=None, full_time_only=True, ages=(18, 64))
    assert (linked.ledger["rows_in"] - linked.ledger["rows_out"] == linked.ledger["dropped"]).all()
    lg = linked.ledger[linked.ledger.table == "jobs"]
    assert (lg["rows_in"].iloc[1:].to_numpy() == lg["rows_out"].iloc[:-1].to_numpy()).all()
    assert lg["rows_in"].iloc[0] == len(tiny()["jobs"])
    assert lg["rows_out"].iloc[-1] == len(linked.workers)
    assert lg["rows_in"].iloc[0] - lg["dropped"].sum() == len(linked.workers)
    assert _steps(linked).loc["age_range", "dropped"] + _steps(linked).loc["full_time", "dropped"] == 1


def test_options_trim_weekly_level_years():
    d = tiny()
    base = build_panel(d, trim=None)
    trimmed = build_panel(d, trim={"min": 11.0, "max": 20.0})
    kept = base.workers[(base.workers.hw >= 11.0) & (base.workers.hw <= 20.0)]
    assert len(trimmed.workers) == len(kept)
    pd.testing.assert_frame_equal(trimmed.workers, kept.reset_index(drop=True))
    assert _steps(trimmed).loc["trim", "dropped"] == len(base.workers) - len(kept) == 3
    weekly = build_panel(d, trim={"min": 400.0}, pay="weekly")
    assert (weekly.workers.ww >= 400).all()
    reg = build_panel(d, trim=None, level="region")
    assert set(reg.places["region"]) == {"E12000007", "E12000005", "E12000002"}
    assert (reg.workers["place"] == reg.workers["region"]).all()
    one = build_panel(d, trim=None, years=(2019, 2019))
    assert set(one.workers.year) == {2019}
    assert _steps(one).loc["years", "dropped"] == (d["jobs"].year != 2019).sum()
    b18 = build_panel(d, trim=None, base_year=2018)
    w = b18.workers.set_index(["piden", "year"])
    assert w.loc[(1, 2019), "hw"] == pytest.approx(520 / 37.5 * 105.0 / 107.1)


def test_ashe_sample_option():
    d = tiny()
    linked = build_panel(d, trim=None, sample="ashe", ashe_rule="piden % 2 = 1")
    assert set(linked.workers.piden) <= {1, 3, 5}
    assert _steps(linked).loc["ashe_sample", "dropped"] == int((d["jobs"].piden % 2 == 0).sum())


def test_columns_mapping_runs_on_renamed_tables():
    d = tiny()
    real = dict(d)
    real["jobs"] = d["jobs"].rename(columns={"hours": "thrs"}).assign(ft=np.where(d["jobs"].ft, 1, 2))
    real["postcode_lookup"] = d["postcode_lookup"].rename(columns={"postcode": "pcds", "lad": "laua",
                                                                   "region": "rgn"})
    mapping = {"jobs": {"hours": "thrs", "ft": "ft = 1"},
               "postcode_lookup": {"postcode": "pcds", "lad": "laua", "region": "rgn"}}
    a = build_panel(d, trim=None).workers
    b = build_panel(real, trim=None, columns=mapping).workers
    pd.testing.assert_frame_equal(a, b)
    table = link.real_data_columns()
    assert {"table", "column", "real", "status", "note"} <= set(table.columns)
    assert set(table["status"]) <= {"V", "U"}
    assert set(table["table"]) == set(link.TABLE_COLUMNS)


# ---------------------------------------------------------------------------------------------------
# Bad input: clear errors naming table, column and ids.
def test_missing_table_and_column():
    d = tiny()
    del d["postcode_lookup"]
    with pytest.raises(LinkError, match="postcode_lookup") as e:
        build_panel(d)
    assert e.value.table == "postcode_lookup"
    d = tiny()
    d["jobs"] = d["jobs"].drop(columns="gpay")
    with pytest.raises(LinkError, match="'gpay'") as e:
        build_panel(d)
    assert (e.value.table, e.value.column) == ("jobs", "gpay")
    with pytest.raises(LinkError, match="'thrs'"):
        build_panel(tiny(), columns={"jobs": {"hours": "thrs"}})


def test_wrong_types():
    d = tiny()
    d["local_units"] = d["local_units"].assign(sic07=d["local_units"].sic07.astype(int))
    with pytest.raises(LinkError, match="expected a string") as e:
        build_panel(d)
    assert (e.value.table, e.value.column) == ("local_units", "sic07")
    assert 64191 in e.value.ids
    d = tiny()
    d["jobs"] = d["jobs"].assign(gpay=d["jobs"].gpay.astype(str))
    with pytest.raises(LinkError, match="expected a number"):
        build_panel(d)
    d = tiny()
    d["enterprises"] = d["enterprises"].assign(entref=d["enterprises"].entref.astype(str))
    with pytest.raises(LinkError, match="different types"):
        build_panel(d)


@pytest.mark.parametrize("table,key,ids", [
    ("postcode_lookup", "postcode", ["AA1 1AA"]),
    ("local_units", "luref,year", [(100, 2018)]),
    ("enterprises", "entref,year", [(10, 2018)]),
    ("cpi", "year", [2018]),
])
def test_duplicate_keys_in_lookups(table, key, ids):
    d = tiny()
    d[table] = pd.concat([d[table], d[table].iloc[[0]]], ignore_index=True)
    with pytest.raises(LinkError, match="duplicate keys") as e:
        build_panel(d)
    assert (e.value.table, e.value.column) == (table, key)
    assert e.value.ids == ids


def test_years_out_of_range_and_cpi_gaps():
    with pytest.raises(LinkError, match="outside the years") as e:
        build_panel(tiny(), years=(1990, 1995))
    assert (e.value.table, e.value.column) == ("jobs", "year")
    d = tiny()
    d["cpi"] = d["cpi"].iloc[[1]]
    with pytest.raises(LinkError, match="CPI") as e:
        build_panel(d)
    assert e.value.table == "cpi" and e.value.ids == [2018]
    with pytest.raises(LinkError, match="base_year"):
        build_panel(tiny(), base_year=2015)


def test_continuity_cycle_and_bad_options():
    d = tiny()
    d["entref_continuity"] = pd.DataFrame({"old_entref": [11, 12, 13], "new_entref": [12, 13, 11]})
    with pytest.raises(LinkError, match="cycle") as e:
        build_panel(d)
    assert e.value.table == "entref_continuity" and set(e.value.ids) <= {11, 12, 13}
    with pytest.raises(ValueError, match="level"):
        build_panel(tiny(), level="ward")
    with pytest.raises(ValueError, match="pay"):
        build_panel(tiny(), pay="annual")
    with pytest.raises(TypeError):
        build_panel(42)


def test_optional_tables_can_be_absent():
    d = tiny()
    for t in ("accounts", "place_characteristics", "enterprises", "entref_continuity"):
        del d[t]
    linked = build_panel(d, trim=None)
    lg = _steps(linked)
    assert lg.loc["attach_accounts", "matched"] == 0
    assert "not supplied" in lg.loc["attach_enterprise", "reason"]
    assert len(linked.workers) == 6


def test_output_to_parquet(tmp_path):
    mem = build_panel(tiny(), trim=None)
    out = build_panel(tiny(), trim=None, output=tmp_path / "panel", memory_limit="1GB")
    assert out.workers is None and out.paths["workers"].exists()
    w = pd.read_parquet(out.paths["workers"])
    pd.testing.assert_frame_equal(w, mem.workers, check_dtype=False)
    pd.testing.assert_frame_equal(out.ledger, mem.ledger)


def test_funnel_summary_and_result_pattern():
    import matplotlib

    matplotlib.use("Agg")
    from prosperity._results import Result

    linked = build_panel(tiny(), trim=None)
    ax = linked.plot_funnel()  # prosperity.plots.ledger_funnel
    assert len(ax.patches) >= 2 * 5
    assert "worker-years" in linked.summary() and repr(linked).endswith(linked.summary())
    assert isinstance(linked, Result) and not hasattr(link, "ledger_figure")
    # the main table is the worker panel (to_frame() used to return the ledger)
    assert linked.table is linked.workers
    pd.testing.assert_frame_equal(linked.to_frame(), linked.workers)
    assert linked.to_frame() is not linked.workers


# ---------------------------------------------------------------------------------------------------
# Against the synthetic England and its truth.
@pytest.fixture(scope="module")
def england():
    from prosperity import synthetic

    return synthetic.england(size="workshop", seed=3, n_workers=6000, n_enterprises=600)


@pytest.fixture(scope="module")
def linked(england):
    return build_panel(england, trim=None)


# ledger step (table) that catches each kind of mess, and the ledger column that counts it
MESS_STEPS = {
    "secondary_job": ("main_job", "dropped"),
    "missing_luref": ("missing_luref", "dropped"),
    "missing_entref": ("missing_entref", "repaired"),
    "unknown_luref": ("unknown_luref", "dropped"),
    "nonpositive_pay": ("nonpositive_pay", "dropped"),
    "implausible_hours": ("implausible_hours", "dropped"),
    "exact_duplicate": ("exact_duplicates", "dropped"),
    "reorganised_entref": ("reorganised_entref", "repaired"),
}


def test_every_kind_of_mess_is_counted_in_its_true_amount(england, linked):
    mess = england.truth.mess
    assert set(mess["kind"]) == set(MESS_STEPS)
    lg = linked.ledger.set_index(["step", "table"])
    for kind, table, rows in mess.itertuples(index=False):
        step, column = MESS_STEPS[kind]
        assert rows > 0, kind
        assert lg.loc[(step, table), column] == rows, (kind, table)


def test_linked_workplace_enterprise_and_pay_are_the_truth(england, linked):
    truth = england.truth.person_years
    m = linked.workers.merge(truth, on=["piden", "year"], how="left", suffixes=("", "_true"), indicator=True)
    assert (m["_merge"] == "both").all()
    assert (m["lad"] == m["lad_true"]).all()
    assert (m["luref"] == m["luref_true"]).all()
    assert (m["entref"] == m["entref_true"]).all()
    assert (m["industry"] == m["industry_true"]).all()
    # CPIH is 100 in 2015, so hw is at 2015 prices like the truth's lhw
    assert linked.options["base_year"] == 2015
    np.testing.assert_allclose(m["lhw"], m["lhw_true"], atol=1e-9)
    # every person-year is linked except those whose only job record is broken
    mess = england.truth.mess.set_index("kind")["rows"]
    broken = mess[["missing_luref", "unknown_luref", "nonpositive_pay", "implausible_hours"]].sum()
    assert len(truth) - len(linked.workers) == broken
    assert not linked.workers.duplicated(["piden", "year"]).any()


def test_ledger_adds_up_with_every_option(england):
    for opts in (dict(), dict(full_time_only=True, ages=(22, 60), level="itl3"),
                 dict(pay="weekly", trim=(0.01, 0.99), years=(2008, 2012), level="region")):
        lk = build_panel(england, **opts)
        lg = lk.ledger
        assert (lg["rows_in"] - lg["rows_out"] == lg["dropped"]).all()
        jobs = lg[lg["table"] == "jobs"]
        assert (jobs["rows_in"].iloc[1:].to_numpy() == jobs["rows_out"].iloc[:-1].to_numpy()).all()
        assert jobs["rows_in"].iloc[0] == len(england.tables["jobs"])
        assert jobs["rows_out"].iloc[-1] == len(lk.workers)
        assert lg["match_rate"].dropna().between(0, 1).all()
    assert (lk.workers["year"].between(2008, 2012)).all()
    assert set(lk.places.columns) >= {"region", "year", "employment", "n_workers", "density"}


def test_trimming_drops_the_tails_of_each_year(england, linked):
    trimmed = build_panel(england, trim=(0.01, 0.99))
    dropped = _steps(trimmed).loc["trim", "dropped"]
    assert 0.018 * len(linked.workers) < dropped < 0.022 * len(linked.workers)
    for _, g in trimmed.workers.groupby("year"):
        full = linked.workers.loc[linked.workers.year == g.year.iloc[0], "hw"]
        assert g.hw.min() >= full.quantile(0.01) - 1e-9 and g.hw.max() <= full.quantile(0.99) + 1e-9


def test_sources_give_identical_panels(england, linked, tmp_path):
    england.to_parquet(tmp_path / "se")
    tables_dir = tmp_path / "se" / "tables"
    paths = {p.stem: p for p in tables_dir.glob("*.parquet")}
    for source in (dict(england.tables), tmp_path / "se", str(tables_dir), paths):
        other = build_panel(source, trim=None)
        pd.testing.assert_frame_equal(other.workers, linked.workers)
        pd.testing.assert_frame_equal(other.firms, linked.firms)
        pd.testing.assert_frame_equal(other.places, linked.places)
        pd.testing.assert_frame_equal(other.ledger, linked.ledger)


def test_firms_and_places_panels(england, linked):
    firms = linked.firms
    assert not firms.duplicated(["entref", "year"]).any()
    # firms are keyed by the resolved reference, as the truth is
    assert set(firms["entref"]) <= set(england.truth.firm_effects["entref"])
    old = set(england.tables["entref_continuity"]["old_entref"])
    assert not (set(firms["entref"]) & old) and not (set(linked.workers["entref"]) & old)
    # accounts only where surveyed; surveyed firms are the ones in the accounts table
    assert firms.loc[~firms.surveyed, "gva_per_worker"].isna().all()
    assert firms["surveyed"].sum() == len(england.tables["accounts"])
    assert firms["sites"].sum() == len(england.tables["local_units"])
    assert firms["n_workers"].sum() == len(linked.workers)
    places = linked.places
    assert places["employment"].sum() == england.tables["local_units"]["employment"].sum()
    assert places["n_workers"].sum() == len(linked.workers)
    assert places["lad"].nunique() <= 296
    assert places[["density", "transport_access", "housing_cost", "amenities"]].notna().all().all()


def test_ashe_sample(england):
    from prosperity import synthetic

    ashe = synthetic.england(size="workshop", seed=3, n_workers=6000, n_enterprises=600, sample="ashe")
    lk = build_panel(ashe, trim=None)
    m = lk.workers.merge(ashe.truth.person_years, on=["piden", "year"], suffixes=("", "_true"))
    assert len(m) == len(lk.workers) and (m["lad"] == m["lad_true"]).all()
    full = build_panel(england, trim=None, sample="ashe")
    assert (full.workers["piden"] % 100 == 14).all() and len(full.workers) > 0
    assert _steps(full).loc["ashe_sample", "dropped"] == (england.tables["jobs"]["piden"] % 100 != 14).sum()


def test_linking_bucket_by_bucket_gives_the_same_panels(england, tmp_path):
    """Population-sized jobs are linked in ranges of piden (bucket_rows); the panels and the ledger must be
    those of one pass over all jobs, with quantile trimming, sample restrictions and Parquet output."""
    n = len(england.tables["jobs"])
    default = build_panel(england)
    for opts in (dict(), dict(full_time_only=True, ages=(22, 60), trim={"min": 5.0}, level="itl3")):
        one = default if not opts else build_panel(england, **opts)
        many = build_panel(england, bucket_rows=n // 5, temp_directory=tmp_path / "tmp", **opts)
        pd.testing.assert_frame_equal(many.workers, one.workers)
        pd.testing.assert_frame_equal(many.firms, one.firms)
        pd.testing.assert_frame_equal(many.places, one.places)
        pd.testing.assert_frame_equal(many.ledger, one.ledger)
    disk = build_panel(england, bucket_rows=n // 4, output=tmp_path / "panel", temp_directory=tmp_path / "tmp")
    pd.testing.assert_frame_equal(pd.read_parquet(disk.paths["workers"]), default.workers, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_parquet(disk.paths["firms"]), default.firms, check_dtype=False)
    pd.testing.assert_frame_equal(disk.ledger, default.ledger)
    assert list((tmp_path / "tmp").iterdir()) == []  # the bucket files are removed


def test_bucketing_with_string_person_ids(england):
    tables = dict(england.tables)
    tables["jobs"] = tables["jobs"].assign(piden=lambda d: "P" + d["piden"].astype(str))
    one = build_panel(tables)
    many = build_panel(tables, bucket_rows=len(tables["jobs"]) // 3)
    pd.testing.assert_frame_equal(many.workers, one.workers)
    pd.testing.assert_frame_equal(many.ledger, one.ledger)


def _hashes(lk) -> dict:
    out = {}
    for name in ("workers", "firms", "places", "ledger", "sites"):
        t = getattr(lk, name)
        out[name] = (tuple(t.columns), tuple(t.dtypes.astype(str)),
                     pd.util.hash_pandas_object(t, index=True).to_numpy().tobytes())
    return out


@pytest.mark.slow
def test_same_bytes_every_run_and_any_number_of_threads():
    """Sums of log pay are exact (DECIMAL) and weighted means added in a fixed order, so five runs with DuckDB's
    default threads and one with one thread give bit-identical panels, sites and ledger (issue 12). On HEAD
    6a07b8d ``firms.mean_lhw`` and ``places.mean_lhw`` differed in the last bits between runs."""
    from prosperity import synthetic

    se = synthetic.england(size="workshop", seed=0)
    first = _hashes(build_panel(se))
    for threads in (None, None, None, None, 1):
        again = _hashes(build_panel(se, threads=threads, level="lad"))
        assert [k for k in first if again[k] != first[k]] == [], f"threads={threads}"
    itl = [_hashes(build_panel(se, level="itl3", threads=t)) for t in (None, 1)]
    assert itl[0] == itl[1]


def test_sites_are_the_resolved_site_panel_of_the_truth(england, linked):
    """``linked.sites``: every local unit-year of the register with the truth's workplace district, the resolved
    enterprise reference (never an old one), the SIC section and the size band of classifications."""
    from prosperity import classifications

    sites = linked.sites
    lu = england.tables["local_units"]
    assert not sites.duplicated(["luref", "year"]).any()
    assert len(sites) == len(lu)  # every postcode of the synthetic register is in the directory
    site_lines = linked.ledger[linked.ledger["table"] == "local_units"].set_index("step")
    assert site_lines.loc["unplaced_postcode", "rows_out"] == len(sites)
    assert {"luref", "entref", "year", "postcode", "lad", "itl3", "region", "sic07", "industry", "employment",
            "size_band", "birth_year", "death_year"} <= set(sites.columns)
    truth = england.truth.person_years.drop_duplicates(["luref", "year"])
    m = truth.merge(sites, on=["luref", "year"], suffixes=("_true", ""), validate="1:1")
    assert len(m) == len(truth)
    assert (m["lad"] == m["lad_true"]).all() and (m["entref"] == m["entref_true"]).all()
    old = set(england.tables["entref_continuity"]["old_entref"])
    assert not set(sites["entref"]) & old and set(sites["entref_raw"]) & old
    assert (sites["industry"] == classifications.sic_section(sites["sic07"]).astype(object)).all()
    assert (sites["size_band"] == classifications.size_band(sites["employment"])).all()
    assert sites["postcode"].isin(england.tables["postcode_lookup"]["postcode"]).all()
    # the firms' size bands come from the same definition
    firms = linked.firms.dropna(subset=["employment"])
    assert (firms["size_band"] == classifications.size_band(firms["employment"])).all()
    assert list(classifications.SIZE_BAND_LABELS) == ["0-9", "10-49", "50-249", "250+"]

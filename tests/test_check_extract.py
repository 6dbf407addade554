"""The extract dry run (issue 16): check_extract reads schemas and a sample, names every missing, renamed or
mistyped column, and says what the linker would do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prosperity import synthetic
from prosperity._results import Result
from prosperity.link.extract import ExtractCheck, _Source, check_extract
from prosperity.link.schema import TABLE_COLUMNS

SMALL = dict(n_workers=3_000, n_enterprises=300)


@pytest.fixture(scope="module")
def se():
    return synthetic.england(seed=0, **SMALL)


@pytest.fixture(scope="module")
def folder(se, tmp_path_factory):
    return se.to_parquet(tmp_path_factory.mktemp("extract") / "se")


def _row(res: ExtractCheck, table: str, column: str) -> pd.Series:
    t = res.table
    return t[(t["table"] == table) & (t["column"] == column)].iloc[0]


def test_clean_synthetic_extract_is_ready_from_a_folder(folder):
    res = check_extract(folder)
    assert isinstance(res, Result) and res.ok
    assert res.verdict == "ready with warnings"  # the injected missing lurefs / entrefs are reported, not fatal
    # every required column of the linker's own schema is checked, nothing else
    want = {(t, c) for t, cols in TABLE_COLUMNS.items() for c in cols}
    assert set(zip(res.table["table"], res.table["column"])) == want
    assert res.table["present"].all() and res.table["type_ok"].all()
    luref = _row(res, "jobs", "luref")
    assert luref["status"] == "warn" and "missing_luref" in luref["action"]
    assert luref["stats_from"] == "footer"  # ranges and missing rates of the whole table, from the footers
    jobs = pd.read_parquet(folder / "tables" / "jobs.parquet")
    assert luref["missing_rate"] == pytest.approx(jobs["luref"].isna().mean(), abs=0)
    assert _row(res, "jobs", "year")["min"] == 2005 and _row(res, "jobs", "year")["max"] == 2019
    assert "ExtractCheck (ashe)" in res.summary() and res.to_frame().equals(res.table)


def test_renamed_missing_and_mistyped_columns_are_each_named(se):
    jobs = (se.tables["jobs"].rename(columns={"hours": "thrs"}).drop(columns="age")
            .assign(gpay=lambda d: d["gpay"].round(2).astype(str)))
    lu = se.tables["local_units"].rename(columns={"postcode": "Postcode"})
    ent = se.tables["enterprises"].assign(sic07=lambda d: d["sic07"].astype(int))
    res = check_extract({**se.tables, "jobs": jobs, "local_units": lu, "enterprises": ent})
    assert res.verdict == "will fail" and not res.ok
    bad = res.problems().query("status == 'fail'")
    assert set(zip(bad["table"], bad["column"])) == {("jobs", "hours"), ("jobs", "age"), ("jobs", "gpay"),
                                                     ("local_units", "postcode"), ("enterprises", "sic07")}
    assert "'thrs'" in _row(res, "jobs", "hours")["action"]  # the real-data name from REAL_DATA_COLUMNS
    assert "columns={'local_units': {'postcode': 'Postcode'}}" in _row(res, "local_units", "postcode")["action"]
    assert "MissingColumnError" in _row(res, "jobs", "age")["action"]
    assert "expected a number" in _row(res, "jobs", "gpay")["action"]
    assert "expected a string" in _row(res, "enterprises", "sic07")["action"]
    text = res.summary()
    for name in ("jobs.hours", "jobs.age", "jobs.gpay", "local_units.postcode", "enterprises.sic07"):
        assert name in text


def test_missing_tables_mixed_types_postcodes_and_lookup_keys(se):
    tables = {k: v for k, v in se.tables.items() if k not in ("cpi", "accounts")}
    lu = se.tables["local_units"].copy()
    lu["postcode"] = lu["postcode"].str.replace(" ", "").str.lower()
    pc = pd.concat([se.tables["postcode_lookup"], se.tables["postcode_lookup"].head(3)], ignore_index=True)
    jobs = se.tables["jobs"].copy()
    jobs["soc"] = jobs["soc"].astype(object)
    jobs.loc[:10, "soc"] = "3"
    res = check_extract({**tables, "local_units": lu, "postcode_lookup": pc, "jobs": jobs}, sample_rows=1_000_000)
    assert _row(res, "cpi", "cpih")["status"] == "fail"  # a required table
    assert _row(res, "accounts", "gva")["status"] == "warn"  # optional: its step is skipped
    assert "normalises" in _row(res, "local_units", "postcode")["action"]
    assert "duplicate keys" in _row(res, "postcode_lookup", "postcode")["action"]
    assert "mixes value types" in _row(res, "jobs", "soc")["action"]


def test_paye_rti_source_uses_the_documented_format():
    rti = synthetic.england(seed=0, source="paye_rti", **SMALL)
    res = check_extract(rti, source="paye_rti")
    assert res.ok
    cols = set(zip(res.table["table"], res.table["column"]))
    assert {("pay_periods", c) for c in synthetic.RTI_COLUMNS["pay_periods"]} <= cols
    assert ("enterprises", "postcode") in cols and ("jobs", "hours") not in cols
    assert "enterprise's address" in _row(res, "paye_schemes", "luref")["action"]
    wrong = check_extract(rti, source="ashe")
    assert wrong.verdict == "will fail" and any("source='paye_rti'" in n for n in wrong.notes)
    dropped = check_extract({k: v for k, v in rti.tables.items()} | {
        "pay_periods": rti.tables["pay_periods"].drop(columns="paye_ref")}, source="paye_rti")
    assert _row(dropped, "pay_periods", "paye_ref")["status"] == "fail"


def test_reads_only_a_sample_and_the_footers(tmp_path):
    """A Parquet table of many row groups: the sample holds at most sample_rows rows, while the missing rate and
    range (from the footers) are those of the whole table."""
    n = 400_000
    rng = np.random.default_rng(0)
    piden = rng.integers(1, 10**9, n).astype("float64")
    piden[rng.random(n) < 0.01] = np.nan
    t = pa.table({"piden": pa.array(piden, from_pandas=True).cast(pa.int64()),
                  "year": np.repeat(np.arange(2005, 2025), n // 20)})
    pq.write_table(t, tmp_path / "jobs.parquet", row_group_size=10_000)
    src = _Source(tmp_path / "jobs.parquet", "jobs", ["piden", "year"], sample_rows=2_000)
    assert len(src.sample) <= 2_000 and src.rows == n
    res = check_extract(tmp_path, sample_rows=2_000)
    row = _row(res, "jobs", "piden")
    assert row["stats_from"] == "footer"
    assert row["missing_rate"] == pytest.approx(float(np.isnan(piden).mean()), abs=0)
    assert (_row(res, "jobs", "year")["min"], _row(res, "jobs", "year")["max"]) == (2005, 2024)
    assert "missing_piden" in row["action"]


def test_bad_arguments(se):
    with pytest.raises(ValueError, match="source must be one of"):
        check_extract(se, source="lfs")
    with pytest.raises(ValueError, match="sample_rows"):
        check_extract(se, sample_rows=0)
    with pytest.raises(TypeError, match="needs a folder"):
        check_extract(42)


def test_the_linkers_own_rules_run_on_the_sample(se):
    """Rules of link.RULES (select, valid) are evaluated on the sample: the injected non-positive pay and
    implausible hours are counted under the rule names the ledger will use."""
    res = check_extract(se, sample_rows=10**7)
    r = res.rules.set_index("rule")
    mess = se.truth.mess.set_index("kind")["rows"]
    assert r.loc["nonpositive_pay", "caught"] == mess["nonpositive_pay"]
    assert r.loc["implausible_hours", "caught"] == mess["implausible_hours"]
    assert r.loc["missing_piden", "caught"] == 0
    assert "nonpositive_pay would drop" in res.summary()
    narrow = check_extract(se, sample_rows=10**7, years=(2006, 2019)).rules.set_index("rule")
    assert narrow.loc["years", "caught"] == int((se.tables["jobs"]["year"] == 2005).sum())
    broken = check_extract({**se.tables, "jobs": se.tables["jobs"].drop(columns="hours")}).rules.set_index("rule")
    assert pd.isna(broken.loc["implausible_hours", "caught"])
    assert broken.loc["implausible_hours", "reason"].startswith("not evaluated")


def test_unreadable_or_wrong_table_objects_name_the_table(se, tmp_path):
    (tmp_path / "jobs.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(ValueError, match="table 'jobs'.*not a readable Parquet file"):
        check_extract(tmp_path)
    with pytest.raises(TypeError, match="table 'cpi'.*DataFrame or a Parquet path"):
        check_extract({**se.tables, "cpi": [1, 2, 3]})

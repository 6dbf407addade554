"""Hostile inputs to the linker (issue 12): every case gives a correct panel with a ledger line, a warning with
counts, or a LinkError naming the table, the column and the first offending ids; never a raw DuckDB / pyarrow
error, never a wrong panel with a clean ledger. Each case here failed on HEAD 6a07b8d (wrong panel, no warning, or
a raw error). Interrupted writes never leave a folder that a reader accepts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from prosperity import _io, link
from prosperity.link import LinkError, LinkWarning, build_panel, load_panel
from test_link import tiny

SRC = Path(__file__).resolve().parents[1] / "src"


def quiet_build(tables, **kw):
    """build_panel with the tiny England's expected unmatched-postcode warning silenced."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "build_panel: 2 of 8 local-unit years", LinkWarning)
        return build_panel(tables, **kw)


def jobs_ledger(lk):
    lg = lk.ledger
    return lg[lg["table"] == "jobs"].set_index("step")


def assert_ledger_adds_up(lk, n_jobs):
    lg = lk.ledger
    assert (lg["rows_in"] - lg["rows_out"] == lg["dropped"]).all()
    jobs = lg[lg["table"] == "jobs"]
    assert jobs["rows_in"].iloc[0] == n_jobs
    assert (jobs["rows_in"].iloc[1:].to_numpy() == jobs["rows_out"].iloc[:-1].to_numpy()).all()
    assert jobs["rows_out"].iloc[-1] == len(lk.workers)
    sites = lg[lg["table"] == "local_units"].iloc[-3:]  # years, unmatched_postcode, unplaced_postcode
    assert list(sites["step"]) == ["years", "unmatched_postcode", "unplaced_postcode"]
    assert sites["rows_out"].iloc[-1] == len(lk.sites)


@pytest.fixture(scope="module")
def clean():
    return quiet_build(tiny(), trim=None)


# ---------------------------------------------------------------------------------------------------
# Inputs that used to give a wrong panel with a clean ledger
@pytest.mark.parametrize("column,value", [("lad", "E09999999"), ("region", "E12999999"), ("hw", 999.0),
                                          ("lhw", 9.0), ("industry", "Z"), ("_placed", True)])
def test_jobs_column_named_like_a_derived_one_is_renamed_not_used(clean, column, value):
    d = tiny()
    d["jobs"] = d["jobs"].assign(**{column: value})
    lk = quiet_build(d, trim=None)
    cols = [c for c in clean.workers.columns]
    pd.testing.assert_frame_equal(lk.workers[cols], clean.workers)
    note = jobs_ledger(lk).loc["derived_names"]
    assert column in note["reason"] and f"{column}_input" in note["reason"] and note["dropped"] == 0
    assert_ledger_adds_up(lk, len(d["jobs"]))


def test_local_units_column_named_like_a_derived_one(clean):
    d = tiny()
    d["local_units"] = d["local_units"].assign(lad="E09999999", industry="Z")
    lk = quiet_build(d, trim=None)
    pd.testing.assert_frame_equal(lk.workers, clean.workers)
    assert (lk.sites["lad_input"] == "E09999999").all() and "E09999999" not in set(lk.sites["lad"])
    pd.testing.assert_frame_equal(lk.sites[clean.sites.columns], clean.sites)
    lg = lk.ledger.set_index(["step", "table"])
    assert "lad" in lg.loc[("derived_names", "local_units"), "reason"]


def test_missing_person_ids_are_dropped_with_a_line_not_merged(clean):
    d = tiny()
    jobs = d["jobs"].astype({"piden": "Int64"})
    # two jobs of different people in the same year lose their id: HEAD merged them into one fake person-year
    jobs.loc[[0, 4], "piden"] = pd.NA
    d["jobs"] = jobs
    lk = quiet_build(d, trim=None)
    assert jobs_ledger(lk).loc["missing_piden", "dropped"] == 2
    assert lk.workers["piden"].notna().all()
    assert not lk.workers.duplicated(["piden", "year"]).any()
    # person 1 keeps 2018 through the secondary job; person 2 loses 2018
    assert set(map(tuple, lk.workers[["piden", "year"]].to_numpy())) == {(1, 2018), (1, 2019), (2, 2019),
                                                                         (4, 2018), (6, 2018)}
    assert_ledger_adds_up(lk, len(d["jobs"]))


def test_district_missing_in_the_postcode_lookup():
    d = tiny()
    pc = d["postcode_lookup"]
    d["postcode_lookup"] = pc.assign(lad=pc["lad"].where(pc["postcode"] != "CC1 1CC", None))
    with pytest.warns(LinkWarning, match=r"4 of 8 local-unit years \(50\.0%\) and 2 of 9 main jobs"):
        lk = build_panel(d, trim=None)
    assert lk.workers[["lad", "itl3", "region", "place"]].notna().all().all()
    assert jobs_ledger(lk).loc["unplaced_postcode", "dropped"] == 1  # person 4, 2018 works at CC1 1CC
    sites = lk.ledger[lk.ledger["table"] == "local_units"].set_index("step")
    assert sites.loc["unplaced_postcode", "dropped"] == 2 and (lk.sites["postcode"] != "CC1 1CC").all()
    assert_ledger_adds_up(lk, len(d["jobs"]))


@pytest.mark.parametrize("column,value", [("gpay", np.inf), ("gpay", np.nan), ("gpay", -np.inf),
                                          ("hours", np.inf), ("hours", -5.0)])
def test_infinite_or_missing_pay_and_hours_are_dropped_with_trim_none(column, value):
    d = tiny()
    d["jobs"].loc[0, column] = value  # person 1's main job in 2018
    lk = quiet_build(d, trim=None)
    assert np.isfinite(lk.workers[["hw", "lhw", "ww", "lww"]].to_numpy()).all()
    step = "nonpositive_pay" if column == "gpay" else "implausible_hours"
    assert jobs_ledger(lk).loc[step, "dropped"] == 2
    assert_ledger_adds_up(lk, len(d["jobs"]))


def test_postcodes_are_normalised_like_the_ons_postcode_directory(clean):
    d = tiny()
    lu = d["local_units"].copy()
    lu["postcode"] = lu["postcode"].map({"AA1 1AA": "aa11aa", "BB1 1BB": " BB1  1BB", "CC1 1CC": "cc1 1cc",
                                         "ZZ9 9ZZ": "ZZ99ZZ"})
    d["local_units"] = lu
    d["postcode_lookup"] = d["postcode_lookup"].assign(postcode=lambda t: t["postcode"].str.replace(" ", ""))
    lk = quiet_build(d, trim=None)
    pd.testing.assert_frame_equal(lk.workers, clean.workers)
    assert set(lk.sites["postcode"]) == {"AA1 1AA", "BB1 1BB", "CC1 1CC"}
    lg = lk.ledger.set_index(["step", "table"])
    assert lg.loc[("normalise_postcode", "local_units"), "repaired"] == 8
    assert lg.loc[("normalise_postcode", "postcode_lookup"), "repaired"] == 3
    forms = ["AB1 2CD", "ab12cd", "AB1  2CD", " ab1 2cd ", "EC1A1BB", "W1A 0AX", "m11ae", "", None]
    got = duckdb.sql(f"SELECT {link.normalise_postcode_sql('p')} FROM (SELECT unnest(?) AS p)",
                     params=[forms]).fetchall()
    assert [g[0] for g in got] == ["AB1 2CD"] * 4 + ["EC1A 1BB", "W1A 0AX", "M1 1AE", None, None]


def test_many_unmatched_postcodes_raise_a_warning_with_counts():
    d = tiny()
    d["postcode_lookup"] = d["postcode_lookup"].iloc[[0]]  # only AA1 1AA is known
    with pytest.warns(LinkWarning, match=r"6 of 8 local-unit years \(75\.0%\).*of 9 main jobs"):
        lk = build_panel(d, trim=None)
    assert set(lk.workers["lad"]) == {"E09000001"}
    assert_ledger_adds_up(lk, len(d["jobs"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_panel(d, trim=None, max_unmatched=0.9)  # the threshold is an option


def test_an_empty_panel_warns():
    with pytest.warns(LinkWarning, match="worker panel is empty.*'age_range' dropped"):
        lk = quiet_build(tiny(), trim=None, ages=(90, 99))
    assert len(lk.workers) == 0
    assert_ledger_adds_up(lk, len(tiny()["jobs"]))


# ---------------------------------------------------------------------------------------------------
# Inputs that used to crash with a raw DuckDB / pyarrow error or a misleading message
def _link_error(d, **kw) -> LinkError:
    with pytest.raises(LinkError) as e:
        quiet_build(d, **kw)
    assert not isinstance(e.value, duckdb.Error)
    return e.value


@pytest.mark.parametrize("table", ["local_units", "postcode_lookup", "cpi"])
def test_empty_required_tables(table):
    d = tiny()
    d[table] = d[table].iloc[:0]
    err = _link_error(d)
    assert err.table == table and "has no rows" in str(err)
    assert str(err).startswith(f"table '{table}'")


def test_jobs_without_columns_or_rows():
    d = tiny()
    d["jobs"] = pd.DataFrame()
    err = _link_error(d)
    assert err.table == "jobs" and "no columns" in str(err)
    d["jobs"] = tiny()["jobs"].iloc[:0]
    assert _link_error(d).table == "jobs"


@pytest.mark.parametrize("trim,match", [({"min": "low"}, "must be numbers"), ({"minimum": 5.0}, "keys"),
                                        ({"min": 20.0, "max": 10.0}, "below max"), ("tails", "trim must be"),
                                        ((0.01,), "trim must be"), ({"min": True}, "must be numbers")])
def test_bad_trim_options(trim, match):
    err = _link_error(tiny(), trim=trim)
    assert err.column == "trim" and match in str(err)


def test_duplicated_column_names():
    d = tiny()
    jobs = d["jobs"]
    d["jobs"] = pd.concat([jobs, jobs[["gpay"]]], axis=1)
    err = _link_error(d)
    assert (err.table, err.column) == ("jobs", "gpay") and "more than once" in str(err)


def test_ashe_sample_with_string_ids():
    d = tiny()
    d["jobs"] = d["jobs"].assign(piden=lambda t: "P" + t["piden"].astype(str))
    err = _link_error(d, sample="ashe")
    assert (err.table, err.column) == ("jobs", "piden") and err.ids[:2] == ["P1", "P2"]
    assert "ashe_rule=" in str(err)
    # with a rule written for string ids it links
    lk = quiet_build(d, sample="ashe", ashe_rule="piden IN ('P1', 'P5')", trim=None)
    assert set(lk.workers["piden"]) == {"P1"}
    err = _link_error(d, sample="ashe", ashe_rule="piden % 7")
    assert err.column == "piden" and "cannot be evaluated" in str(err)


def test_mixed_type_ids():
    d = tiny()
    d["jobs"] = d["jobs"].astype({"piden": object})
    d["jobs"].loc[2, "piden"] = "1"  # 1 and "1": two different people or one?
    err = _link_error(d)
    assert (err.table, err.column) == ("jobs", "piden") and "mixes value types" in str(err)
    assert isinstance(err, ValueError)


def test_other_hostile_inputs():
    # a CPI index that is infinite for a year of jobs
    d = tiny()
    d["cpi"] = d["cpi"].assign(cpih=[np.inf, 107.1])
    err = _link_error(d)
    assert (err.table, err.column, err.ids) == ("cpi", "cpih", [2018])
    # postcodes that collide once normalised are duplicate keys of the directory
    d = tiny()
    extra = d["postcode_lookup"].iloc[[0]].assign(postcode="aa11aa")
    d["postcode_lookup"] = pd.concat([d["postcode_lookup"], extra], ignore_index=True)
    err = _link_error(d)
    assert err.table == "postcode_lookup" and err.ids == ["AA1 1AA"] and "normalising" in str(err)
    # a Parquet path that is not Parquet
    d = tiny()
    d["cpi"] = Path(__file__)
    assert _link_error(d).table == "cpi"
    # duplicated job rows, negative hours and years outside the data are counted, not silently kept
    d = tiny()
    d["jobs"] = pd.concat([d["jobs"], d["jobs"].iloc[[0, 0]]], ignore_index=True)
    d["jobs"].loc[5, "hours"] = -40.0
    lk = quiet_build(d, trim=None, years=(2018, 2030))
    lg = jobs_ledger(lk)
    assert lg.loc["exact_duplicates", "dropped"] == 3 and lg.loc["implausible_hours", "dropped"] == 2
    assert_ledger_adds_up(lk, len(d["jobs"]))


# ---------------------------------------------------------------------------------------------------
# Atomic outputs
def test_output_folder_has_a_manifest_and_reads_back(tmp_path, clean):
    out = tmp_path / "panel"
    lk = quiet_build(tiny(), trim=None, output=out)
    assert lk.workers is None and lk.paths["workers"] == out / "workers.parquet"
    man = _io.verify(out, link.PANEL_KIND)
    assert man["meta"]["options"]["trim"] is None and set(man["files"]) >= {"workers.parquet", "sites.parquet"}
    back = load_panel(out)
    for name in ("workers", "firms", "places", "ledger", "sites"):
        pd.testing.assert_frame_equal(getattr(back, name), getattr(clean, name), check_dtype=False)
    pd.testing.assert_frame_equal(lk.to_frame(), back.workers)
    # a folder edited after it was written is refused
    pd.read_parquet(out / "firms.parquet").iloc[:-1].to_parquet(out / "firms.parquet")
    with pytest.raises(_io.OutputFolderError, match="firms.parquet"):
        load_panel(out)
    (out / "manifest.json").unlink()
    with pytest.raises(_io.OutputFolderError, match="manifest"):
        load_panel(out)


def test_a_failed_write_leaves_the_earlier_folder(tmp_path, clean):
    out = tmp_path / "panel"
    quiet_build(tiny(), trim=None, output=out)
    before = load_panel(out).workers
    d = tiny()
    d["cpi"] = d["cpi"].assign(cpih=[np.inf, 107.1])
    with pytest.raises(LinkError):
        quiet_build(d, output=out)
    pd.testing.assert_frame_equal(load_panel(out).workers, before)
    assert [p.name for p in tmp_path.iterdir()] == ["panel"]


WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, {src!r})
    from prosperity import link, synthetic
    se = synthetic.england(size="workshop", seed=1)
    link.build_panel(se, output={out!r}, threads=1)
""")


@pytest.mark.slow
def test_a_killed_writer_never_leaves_a_folder_a_reader_accepts(tmp_path, clean):
    out = tmp_path / "panel"
    quiet_build(tiny(), trim=None, output=out)
    before = load_panel(out).workers
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(src=str(SRC), out=str(out))],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        # kill the writer once it has started writing the workers of the new panel beside the old folder
        while time.time() < deadline and proc.poll() is None:
            partial = [p for p in tmp_path.glob(".panel.partial-*") if (p / "workers.parquet").exists()]
            if partial:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert partial, "the writer never started writing"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # the earlier folder is intact and accepted; the half-written one is refused
    pd.testing.assert_frame_equal(load_panel(out).workers, before)
    for p in tmp_path.glob(".panel.partial-*"):
        with pytest.raises(_io.OutputFolderError):
            load_panel(p)

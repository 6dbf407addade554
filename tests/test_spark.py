"""The linker on Spark (issue 15): the same rules, ledger, errors and panels as on DuckDB, row for row.

One local-mode session for the whole test run (``local[2]``, UI off, loopback only; ``tests/test_akm_spark.py``
shares it), with the settings of :data:`TEST_CONF`. pyspark and Java are installed by ``make spark``; a missing
pyspark or Java fails these tests (never a silent skip)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pyspark.sql import SparkSession

from prosperity import _io, link, synthetic
from prosperity.link import LinkError, LinkWarning, build_panel, load_panel
from prosperity.link.spark import SparkConnection
from test_link import tiny

KEYS = {"workers": ["piden", "year"], "firms": ["entref", "year"], "sites": ["luref", "year"]}

#: Settings of the test session. A link sends about 90 statements, each on small data, so Spark's fixed cost per
#: statement dominates: on the tiny England (2 cores, other jobs running) a warm link took 32 s with Spark's
#: defaults and 12.6 s with these; the workshop size 89 s (235 to 450 s with the defaults, book/spark.md).
#: Whole-stage code generation compiles Java for every new query and adaptive execution re-plans every shuffle:
#: both pay off on large data only, so the benchmark keeps Spark's defaults. One shuffle partition and the JVM's
#: quick (C1) compiler only: this file and tests/test_akm_spark.py took 214 JVM CPU-s instead of 261 s with two
#: partitions and the full JIT (6.6 instead of 10.2 minutes wall, machine loaded 6-12). No result changes (the
#: panels are compared exactly).
TEST_CONF = {
    "spark.sql.shuffle.partitions": "1",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
}


@pytest.fixture(scope="session")
def spark():
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master("local[2]").appName("prosperity-tests")
    for k, v in TEST_CONF.items():
        builder = builder.config(k, v)
    s = builder.getOrCreate()
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


def both(source_fn, spark, **kw):
    """Link on both engines (``source_fn()`` gives each its own copy of the inputs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinkWarning)
        return build_panel(source_fn(), **kw), build_panel(source_fn(), engine="spark", spark=spark, **kw)


def assert_same(a, b):
    """Every panel identical (sorted by its keys, compared exactly, dtypes included) and the same ledger."""
    for name in ("workers", "firms", "places", "sites"):
        x, y = getattr(a, name), getattr(b, name)
        if name in KEYS:
            x, y = (t.sort_values(KEYS[name]).reset_index(drop=True) for t in (x, y))
        pd.testing.assert_frame_equal(x, y, check_exact=True, obj=name)
    pd.testing.assert_frame_equal(a.ledger, b.ledger, check_exact=True, obj="ledger")


@contextlib.contextmanager
def result_limit(spark, size: str = "1m"):
    """``spark.driver.maxResultSize`` lowered to ``size`` for the block (the live SparkConf the scheduler reads
    for each new task set), after checking that it bites: collecting 8 MB (a million longs) fails under it. A
    panel collected whole through the driver's JVM (``toArrow``: the workshop worker panel is about 60 MB)
    fails the same way; the engines bring panels and match graphs to the driver through Parquet parts instead
    (``prosperity.link.spark.spill``)."""
    conf = spark.sparkContext._jsc.sc().conf()
    old = conf.get("spark.driver.maxResultSize", "1g")
    conf.set("spark.driver.maxResultSize", size)
    try:
        with pytest.raises(Exception, match="maxResultSize"):
            spark.range(1_000_000).toArrow()
        yield
    finally:
        conf.set("spark.driver.maxResultSize", old)


def test_workshop_england_is_the_same_panel_on_both_engines(spark):
    """The workshop England on both engines, the Spark link under a 1 MB ``spark.driver.maxResultSize``: the
    panels (327 thousand worker-years) never pass whole through the driver's JVM."""
    world = synthetic.england(size="workshop", seed=0)
    with result_limit(spark):
        a, b = both(lambda: world, spark)
    assert len(a.workers) > 100_000
    assert_same(a, b)


def _spark_scratch() -> set:
    return {p.name for p in Path(tempfile.gettempdir()).glob("prosperity_spark_*")}


def test_output_folder_is_the_same_on_both_engines(spark, tmp_path):
    """``output=`` on both engines: the same files with the same row counts and options in the manifest, the same
    column names and types, the same rows in the same order (not re-sorted: the Spark parts are read back in
    the order of the statement's ORDER BY), and no scratch folder left behind."""
    before = _spark_scratch()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinkWarning)
        build_panel(tiny(), output=tmp_path / "duckdb")
        build_panel(tiny(), output=tmp_path / "spark", engine="spark", spark=spark)
    assert _spark_scratch() == before
    man = {e: json.loads((tmp_path / e / "manifest.json").read_text()) for e in ("duckdb", "spark")}
    a, b = man["duckdb"], man["spark"]
    assert a["kind"] == b["kind"] == link.PANEL_KIND
    assert a["meta"] == b["meta"]
    assert {f: m["rows"] for f, m in a["files"].items()} == {f: m["rows"] for f, m in b["files"].items()}
    assert sorted(a["files"]) == [f"{n}.parquet" for n in ("firms", "ledger", "places", "sites", "workers")]
    listing = {e: sorted(p.name for p in (tmp_path / e).iterdir()) for e in ("duckdb", "spark")}
    assert listing["duckdb"] == listing["spark"]
    for f in a["files"]:
        x, y = (pq.read_schema(tmp_path / e / f) for e in ("duckdb", "spark"))
        # names and types; the not-null flags are each engine's own inference (DuckDB's from the inputs)
        assert [(c.name, c.type) for c in x] == [(c.name, c.type) for c in y], f
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "duckdb" / f),
                                      pd.read_parquet(tmp_path / "spark" / f), check_exact=True, obj=f)
    assert_same(load_panel(tmp_path / "duckdb"), load_panel(tmp_path / "spark"))


@pytest.mark.parametrize("kw", [dict(trim=None, full_time_only=True), dict(trim={"min": 5.0}, pay="weekly")])
def test_options_give_the_same_panel(spark, kw):
    assert_same(*both(tiny, spark, **kw))


def ties() -> dict:
    """The tiny England with a tie at each window rule: two main-job candidates of equal pay (the smaller luref
    wins), two enterprise rows re-keyed to one enterprise-year with equal employment (the smaller old entref
    wins), and two equally large sites of one enterprise (the smaller luref is the head office)."""
    d = tiny()
    jobs = d["jobs"]
    extra = jobs.iloc[[0]].assign(luref=200, entref=20, hours=37.5)  # same pay as the main job at luref 100
    d["jobs"] = pd.concat([extra, jobs], ignore_index=True).astype({"entref": "Int64", "luref": "Int64"})
    ent = d["enterprises"]
    d["enterprises"] = pd.concat([ent, ent[(ent.entref == 11)].assign(entref=12, turnover=1.0)],
                                 ignore_index=True)
    lu = d["local_units"]
    d["local_units"] = lu.assign(employment=np.where(lu.luref == 201, 20, lu.employment))
    return d


def test_ties_resolve_the_same_way_on_both_engines(spark):
    a, b = both(ties, spark, trim=None)
    assert_same(a, b)
    w = a.workers.set_index(["piden", "year"])
    assert w.loc[(1, 2018), "luref"] == 100  # the tie on pay goes to the smaller luref
    firms = a.firms.set_index(["entref", "year"])
    assert firms.loc[(13, 2018), "turnover"] == 5e4  # equal employment: the row of the smaller old entref (11)
    assert firms.loc[(20, 2018), "hq_luref"] == 200  # equal employment: the smaller luref


def _mutations():
    """Bad inputs of tests/test_hostile_link.py that raise a LinkError (name, tables, options)."""
    def m(fn, **kw):
        d = tiny()
        fn(d)
        return d, kw

    def dup_pc(d):
        d["postcode_lookup"] = pd.concat([d["postcode_lookup"], d["postcode_lookup"].iloc[[0]].assign(
            postcode="aa11aa")], ignore_index=True)

    def mixed(d):
        d["jobs"] = d["jobs"].astype({"piden": object})
        d["jobs"].loc[2, "piden"] = "1"

    def string_ids(d):
        d["jobs"] = d["jobs"].assign(piden=lambda t: "P" + t["piden"].astype(str))

    return {
        "empty local_units": m(lambda d: d.update(local_units=d["local_units"].iloc[:0])),
        "empty cpi": m(lambda d: d.update(cpi=d["cpi"].iloc[:0])),
        "jobs without columns": m(lambda d: d.update(jobs=pd.DataFrame())),
        "jobs without rows": m(lambda d: d.update(jobs=d["jobs"].iloc[:0])),
        "bad trim": m(lambda d: None, trim={"min": 20.0, "max": 10.0}),
        "duplicated column": m(lambda d: d.update(jobs=pd.concat([d["jobs"], d["jobs"][["gpay"]]], axis=1))),
        "string ids with the ASHE rule": m(string_ids, sample="ashe"),
        "an ASHE rule that is not a condition": m(string_ids, sample="ashe", ashe_rule="piden % 7"),
        "mixed id types": m(mixed),
        "infinite CPI": m(lambda d: d.update(cpi=d["cpi"].assign(cpih=[np.inf, 107.1]))),
        "postcodes colliding once normalised": m(dup_pc),
        "not Parquet": m(lambda d: d.update(cpi=Path(__file__))),
        "a cycle of continuity": m(lambda d: d.update(entref_continuity=pd.DataFrame(
            {"old_entref": [11, 12, 13], "new_entref": [12, 13, 11], "year": [2019, 2019, 2019]}))),
        "years outside the data": m(lambda d: None, years=(2030, 2031)),
        "a bad SQL mapping": m(lambda d: None, columns={"jobs": {"gpay": "gpay +* 2"}}),
        "a missing column": m(lambda d: d.update(jobs=d["jobs"].drop(columns="hours"))),
    }


MUTATIONS = _mutations()


@pytest.mark.parametrize("case", list(MUTATIONS))
def test_bad_inputs_raise_the_same_error_on_spark(spark, case):
    tables, kw = MUTATIONS[case]
    errors = []
    for engine_kw in ({}, dict(engine="spark", spark=spark)):
        with pytest.raises(LinkError) as e, warnings.catch_warnings():
            warnings.simplefilter("ignore", LinkWarning)
            build_panel(dict(tables), **kw, **engine_kw)
        errors.append(e.value)
    a, b = errors
    assert (a.table, a.column, a.ids) == (b.table, b.column, b.ids)
    assert stable(str(a)) == stable(str(b))


def stable(msg: str) -> str:
    """The message without the engine's own error text (DuckDB's or Spark's), which some messages end with."""
    for cut in (" as Parquet (", " on the jobs: ", " column mapping: "):
        if cut in msg:
            return msg.split(cut)[0] + cut
    return msg


def test_parquet_paths_spark_tables_and_the_output_folder(spark, tmp_path):
    """One Spark link from mixed sources (a folder of Parquet parts, Parquet files and Spark DataFrames read
    from Parquet, as ``spark.table("db.jobs")``) into an output folder: the panels DuckDB links in memory."""
    d = tiny()
    src = {}
    for i, (name, t) in enumerate(d.items()):
        if name == "jobs":  # a folder of two parts
            folder = tmp_path / "src" / "jobs"
            folder.mkdir(parents=True)
            for k, part in enumerate((t.iloc[:5], t.iloc[5:])):
                part.to_parquet(folder / f"part-{k}.parquet", index=False)
            src[name] = folder
            continue
        path = tmp_path / "src" / f"{name}.parquet"
        t.to_parquet(path, index=False)
        src[name] = path if i % 2 else spark.read.parquet(str(path))
    assert {type(v).__name__ for v in src.values()} >= {"PosixPath", "DataFrame"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LinkWarning)
        ref = build_panel(d, trim=None)
        on_disk = build_panel(src, trim=None, engine="spark", spark=spark, output=tmp_path / "out")
    assert on_disk.workers is None
    _io.verify(tmp_path / "out", link.PANEL_KIND)
    assert_same(ref, load_panel(tmp_path / "out"))


def test_transpiled_statements_use_no_duckdb_only_syntax(spark):
    con = SparkConnection(spark)
    con.register("t", pd.DataFrame({"a": [1], "b": [2.0], "c": ["x"]}))
    q = con.transpile("SELECT * EXCLUDE (b), isfinite(b) AS f, quantile_cont(b, 0.5) AS m FROM t "
                      "GROUP BY ALL ORDER BY a DESC, c")
    assert "EXCLUDE" not in q.upper() and "ISFINITE" not in q.upper() and "PERCENTILE(" in q.upper()
    assert "NULLS LAST" in q.upper()  # DuckDB's default NULL order made explicit
    assert con.execute("SELECT * EXCLUDE (b) FROM t").fetchall() == [(1, "x")]
    assert con.execute("SELECT isfinite(b), isfinite(CAST('Infinity' AS DOUBLE)), isfinite(CAST('NaN' AS DOUBLE)) "
                       "FROM t").fetchone() == (True, False, False)
    con.close()
    assert not spark.catalog.tableExists("t")


def test_engine_is_checked():
    with pytest.raises(ValueError, match="engine"):
        build_panel(tiny(), engine="polars")
    with pytest.raises(ValueError, match="SparkSession"):
        build_panel(tiny(), engine="spark")

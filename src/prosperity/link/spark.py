"""The Spark engine of the linker: the same DuckDB SQL, transpiled statement by statement to Spark SQL.

``build_panel(..., engine="spark", spark=session)`` runs :mod:`prosperity.link.core` unchanged against a
:class:`SparkConnection`, a small stand-in for the part of DuckDB's connection API the linker uses
(``execute`` / ``sql`` returning ``fetchall``, ``fetchone``, ``df``, ``to_arrow_reader``; ``register``). Every
statement the linker writes (once, in DuckDB's dialect) is parsed by sqlglot and generated in Spark's dialect;
there is no second copy of the SQL.

Why sqlglot (issue 15: the three options were tried on the linker's own statements, see
``/work/shared/docs/spark_notes.md``): sqlglot parses every statement of the linker and keeps the SQL the single
definition of the rules (a rule is a SQL condition, :data:`prosperity.link.RULES`). SQLFrame would make the
PySpark DataFrame API the source language (every rule rewritten) and pins sqlglot below what we use; Ibis has
no recursive queries (continuity chains) and pins ``pyspark<4.1``; ``duckdb.experimental.spark`` has no
window functions.

Constructs that needed care (each has a test on both engines in ``tests/test_spark.py``):

- ``QUALIFY``: sqlglot's own rewrite of QUALIFY for Spark can resolve a tie-break column to a select alias of
  the same name (``t.entref`` became ``m.entref``, constant within the partition, so ties resolve
  arbitrarily). The linker therefore writes no QUALIFY: each window rule numbers its rows in a subquery
  (``_rn``) and filters outside, the same SQL on both engines.
- ``* EXCLUDE (...)``: Spark has no star exclusion; stars with EXCLUDE are expanded here from the Spark
  catalog's schema of the table the star refers to (:meth:`SparkConnection._expand_stars`).
- Recursive CTE with ``arg_max`` (continuity chains): Spark 3.5 / 4.0 have no recursive CTE and ``max_by``
  ties differ; the chains are resolved by iterated joins (the same SQL on both engines; see
  ``_Linker.entref_map``).
- NULL ordering: DuckDB sorts NULLs last, Spark first; sqlglot writes ``NULLS FIRST/LAST`` explicitly.
- Postcodes: DuckDB's ``regexp_replace(.., 'g')`` is Spark's default (global); the ``\\s`` of the pattern is
  escaped for Spark's string literals by sqlglot.
- ``isfinite`` (no Spark function) becomes ``NOT isnan(x) AND abs(x) <> Infinity``; ``quantile_cont``
  becomes ``percentile`` (the same linear interpolation, exact).
- ``ln``: the JVM's logarithm differs from the C library's (DuckDB's) in the last bit for about 3% of the
  workshop panel's pay; ``ln`` runs as a vectorised Python UDF calling the C library's ``log``
  (``math.log``), so ``lhw`` and ``lww`` are the same bits on both engines.
- Integer sums: DuckDB sums BIGINT into HUGEINT (a float in pandas), Spark into BIGINT; the linker casts
  such sums to DOUBLE, so both engines give the same column types.
- Exact sums (means of log pay in ``firms`` and ``places``): a cast of a DOUBLE to ``DECIMAL`` rounds
  differently on the two engines (DuckDB rounds ``x * 10**scale`` computed in double precision, which puts 73
  of the workshop panel's 327,023 values on the other side of a half from their exact value; Spark rounds
  Java's ``BigDecimal`` of ``x``): with ``DECIMAL(18, 12)`` sums ``firms.mean_lhw`` differed in 0.03% of rows.
  A ``DECIMAL`` with a scale cast back to DOUBLE can differ in the last bit too.
  The linker therefore rounds each value to a whole number of 1e-10 units with IEEE arithmetic
  (``floor(x * 1e10 + 0.5)``, cast to ``BIGINT``), adds the integers exactly in ``DECIMAL(38, 0)`` and converts
  the integer sum to DOUBLE once (correctly rounded on both engines) before dividing
  (``link.core._exact_sum``, ``_exact_mean``): the same bytes on both engines whatever the partitioning.
- Temporary tables are materialised with ``localCheckpoint`` (a lazy view reused in several statements would
  be recomputed, and a window over it could break ties differently each time); ``INSERT INTO`` is a union.
- Results reach pandas through Arrow and DuckDB's own Arrow-to-pandas conversion, so the dtypes of the panels
  are those of the DuckDB engine.
- No panel is collected whole through the driver's JVM (``toArrow`` / ``collect`` of a panel: at the research
  size, 2.95 million worker-years, local mode failed with ``TaskResultLost``): a panel, or any result read as a
  table (``df``, ``to_arrow_reader``, ``COPY ... TO``), is written by Spark's executors as Parquet parts into a
  scratch folder (:func:`spill`), and the driver's Python reads the parts back in part order, which is the
  order of the statement's ``ORDER BY`` (a sorted frame is range-partitioned, part ``i`` holding range ``i``),
  one batch at a time, cast to the Arrow schema ``toArrow`` would give. ``COPY ... TO`` and the output folder's
  ``workers.parquet`` are thus streamed into one file with bounded memory; only in-memory panels (no
  ``output=``) are held whole, by pandas. ``fetchall`` / ``fetchone`` (counts, a few ids) still collect.
  The scratch folder: the session setting ``spark.prosperity.tempDirectory`` (on a cluster a folder that the
  executors and the driver both reach; local mode by default uses the system's temporary folder), removed by
  :meth:`SparkConnection.close`.
- The bucketed path (``USING SAMPLE reservoir``, ``COPY ... PARTITION_BY``) is DuckDB's way to stay within
  ``memory_limit`` on one machine; on Spark the cluster partitions the data, so it is not used.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

try:
    import sqlglot
    from sqlglot import exp
except ImportError as _exc:  # pragma: no cover - the spark extra is missing
    raise ImportError("engine='spark' needs the spark extra: pip install 'prosperity[spark]' "
                      "(or make spark)") from _exc

from py4j.protocol import Py4JJavaError
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

#: Errors of a statement the linker catches to raise a :class:`LinkError` (as ``duckdb.Error`` on DuckDB).
SQL_ERRORS = (PySparkException, Py4JJavaError, sqlglot.errors.SqlglotError)  # Py4J: e.g. a bad Parquet footer

_DUCKDB_TYPES = {"bigint": "BIGINT", "int": "INTEGER", "smallint": "SMALLINT", "tinyint": "TINYINT",
                 "double": "DOUBLE", "float": "FLOAT", "string": "VARCHAR", "boolean": "BOOLEAN",
                 "void": "NULL", "date": "DATE", "timestamp": "TIMESTAMP WITH TIME ZONE",
                 "timestamp_ntz": "TIMESTAMP", "binary": "BLOB"}


def duckdb_type(spark_type) -> str:
    """The DuckDB name of a Spark data type (``LongType`` -> ``BIGINT``, ``DecimalType(18,12)`` ->
    ``DECIMAL(18,12)``), so that type checks and their messages are the same on both engines."""
    s = spark_type.simpleString()
    if s.startswith("decimal"):
        return s.upper()
    return _DUCKDB_TYPES.get(s, s.upper())


def _isfinite(node):
    if isinstance(node, exp.Anonymous) and node.name.lower() == "isfinite":
        x = node.expressions[0]
        return exp.condition(f"(NOT isnan({x.sql('spark')}) AND abs({x.sql('spark')}) <> double('Infinity'))",
                             dialect="spark")
    return node


_LN = "prosperity_ln"


#: The session setting naming the scratch folder of :func:`spill` (default: the system's temporary folder).
SCRATCH_CONF = "spark.prosperity.tempDirectory"


def scratch_folder(spark, prefix: str = "prosperity_spark_") -> str:
    """A new scratch folder for :func:`spill`: under the session setting :data:`SCRATCH_CONF` if set (on a
    cluster: a folder the executors write and the driver reads, e.g. a shared mount), else under the system's
    temporary folder (local mode). The caller removes it."""
    base = spark.conf.get(SCRATCH_CONF, None) or None
    if base is not None:
        Path(base).mkdir(parents=True, exist_ok=True)
    return tempfile.mkdtemp(prefix=prefix, dir=base)


class Spilled:
    """A Spark DataFrame written by the executors as Parquet parts (:func:`spill`), read back on the driver in
    part order, one batch at a time, with the Arrow schema ``DataFrame.toArrow`` gives."""

    def __init__(self, parts: list[Path], schema: pa.Schema, voids: set[str]):
        self.parts, self.schema, self._voids = parts, schema, voids

    def batches(self, batch_size: int = 1_000_000):
        """The rows as Arrow record batches of at most ``batch_size`` rows, in the frame's order."""
        for part in self.parts:
            f = pq.ParquetFile(part)
            for b in f.iter_batches(batch_size=batch_size):
                yield self._cast(b)

    def _cast(self, b: pa.RecordBatch) -> pa.RecordBatch:
        cols = [pa.nulls(b.num_rows) if name in self._voids else b.column(name).cast(field.type)
                for name, field in zip(self.schema.names, self.schema)]
        return pa.RecordBatch.from_arrays(cols, schema=self.schema)

    def reader(self, batch_size: int = 1_000_000) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self.schema, self.batches(batch_size))

    def table(self) -> pa.Table:
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)


def spill(df: SparkDataFrame, folder) -> Spilled:
    """Write ``df`` as Parquet parts into ``folder`` (a new folder) from the executors, so that nothing of it is
    collected through the driver's JVM; returns the parts to read on the driver (:class:`Spilled`).

    The parts are read in the order of their task number, which is the order ``collect`` / ``toArrow`` give
    (for a sorted frame: the sort order). Columns of Spark's ``void`` type (an untyped ``NULL``), which
    Parquet cannot hold, are written as strings and read back as Arrow nulls."""
    spark = df.sparkSession
    schema = to_arrow_schema(df.schema, error_on_duplicated_field_names_in_struct=True,
                             prefers_large_types=spark._jconf.arrowUseLargeVarTypes())
    voids = {f.name for f in df.schema.fields if isinstance(f.dataType, T.NullType)}
    out = df
    if voids:
        from pyspark.sql import functions as F

        out = df.select(*[(F.col(f"`{c}`").cast("string") if c in voids else F.col(f"`{c}`")).alias(c)
                          for c in df.columns])
    folder = Path(folder)
    out.write.mode("errorifexists").parquet(str(folder))
    parts = sorted(p for p in folder.iterdir() if p.name.startswith("part-") and p.suffix == ".parquet")
    return Spilled(parts, schema, voids)


class _Result:
    """What ``SparkConnection.execute`` returns: the DuckDB result methods the linker calls."""

    def __init__(self, df: SparkDataFrame | None, rows: list | None = None, con: "SparkConnection | None" = None):
        self._df, self._rows, self._con = df, rows, con

    def fetchall(self) -> list[tuple]:
        if self._rows is None:
            self._rows = [tuple(r) for r in self._df.collect()] if self._df is not None else []
        return self._rows

    def fetchone(self):
        rows = self.fetchall()
        return rows[0] if rows else None

    def _spill(self) -> Spilled:
        return self._con.spill(self._df)

    def arrow(self) -> pa.Table:
        return self._spill().table()

    def df(self) -> pd.DataFrame:
        tbl = self.arrow()  # noqa: F841 - read by DuckDB's replacement scan below
        return duckdb.sql("SELECT * FROM tbl").df()

    def to_arrow_reader(self, batch_size: int):
        return self._spill().reader(batch_size)


class SparkConnection:
    """The part of a DuckDB connection the linker uses, over a SparkSession (see the module docstring).

    Temporary views and tables the linker creates are Spark temporary views (tables materialised with
    ``localCheckpoint``) and are dropped by :meth:`close`; nothing is written to the session's catalog. Results
    read as tables are spilled to Parquet in a scratch folder (:func:`scratch_folder`), removed by :meth:`close`."""

    errors = SQL_ERRORS

    def __init__(self, spark):
        self.spark = spark
        self._mine: set[str] = set()
        self._scratch: str | None = None
        self._n_spills = 0
        from pyspark.sql.functions import pandas_udf

        @pandas_udf("double")
        def _ln(x: pd.Series) -> pd.Series:  # the C library's log, as DuckDB's ln (see the module docstring)
            return x.map(math.log, na_action="ignore")

        spark.udf.register(_LN, _ln)

    # ---- sources
    def register(self, name: str, obj):
        """A raw table as the temporary view ``name``: a pandas DataFrame, an Arrow table, a Spark DataFrame
        (e.g. ``spark.table("db.jobs")``) or a Parquet file or directory."""
        if isinstance(obj, SparkDataFrame):
            df = obj
        elif isinstance(obj, (str, os.PathLike)):
            p = Path(obj)
            df = self.spark.read.option("recursiveFileLookup", "true").parquet(str(p)) if p.is_dir() \
                else self.spark.read.parquet(str(p))
        else:
            if isinstance(obj, pd.DataFrame):  # Arrow could not convert it: let Spark try the pandas frame
                df = self.spark.createDataFrame(obj)
            else:  # Arrow: categoricals (dictionaries) as their values, which Spark reads
                obj = pa.table([c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c
                                for c in obj.columns], names=obj.column_names)
                df = self.spark.createDataFrame(obj)
        self._view(name, df)

    @staticmethod
    def is_frame(obj) -> bool:
        """Whether ``obj`` is a Spark DataFrame (a table of the session, e.g. ``spark.table("db.jobs")``)."""
        return isinstance(obj, SparkDataFrame)

    def _view(self, name: str, df: SparkDataFrame):
        df.createOrReplaceTempView(name)
        self._mine.add(name)

    def spill(self, df: SparkDataFrame) -> Spilled:
        """``df`` written by the executors into this connection's scratch folder (:func:`spill`)."""
        if self._scratch is None:
            self._scratch = scratch_folder(self.spark)
        self._n_spills += 1
        return spill(df, Path(self._scratch) / f"r{self._n_spills:04d}")

    def close(self):
        for name in self._mine:
            self.spark.catalog.dropTempView(name)
        self._mine.clear()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    # ---- statements
    def execute(self, q: str) -> _Result:
        tree = sqlglot.parse_one(q, read="duckdb")
        if isinstance(tree, exp.Describe):
            schema = self.spark.table(tree.this.name).schema
            return _Result(None, [(f.name, duckdb_type(f.dataType)) for f in schema.fields])
        if isinstance(tree, exp.Create):
            name = tree.this.name
            df = self._select(tree.expression)
            if tree.args.get("kind", "").upper() == "TABLE":
                df = df.localCheckpoint()
            self._view(name, df)
            return _Result(None, [])
        if isinstance(tree, exp.Insert):
            name = tree.this.name
            old = self.spark.table(name)
            new = self._select(tree.expression).toDF(*old.columns)
            self._view(name, old.unionAll(new).localCheckpoint())
            return _Result(None, [])
        if isinstance(tree, exp.Drop):
            for t in tree.args["tables"]:
                self.spark.catalog.dropTempView(t.name)
                self._mine.discard(t.name)
            return _Result(None, [])
        if isinstance(tree, exp.Copy):
            df = self._select(tree.this.this if isinstance(tree.this, exp.Subquery) else tree.this)
            target = tree.args["files"][0].name
            parts = self.spill(df)
            with pq.ParquetWriter(target, parts.schema) as writer:
                for batch in parts.batches():
                    writer.write_batch(batch)
            return _Result(None, [])
        return _Result(self._select(tree), con=self)

    sql = execute

    def _select(self, tree) -> SparkDataFrame:
        return self.spark.sql(self.transpile(tree))

    def transpile(self, tree) -> str:
        """Spark SQL for one DuckDB statement (a sqlglot tree or text)."""
        if isinstance(tree, str):
            tree = sqlglot.parse_one(tree, read="duckdb")
        tree = self._expand_stars(tree.copy())
        tree = tree.transform(_isfinite)
        for node in list(tree.find_all(exp.Ln)):
            node.replace(exp.Anonymous(this=_LN, expressions=[node.this]))
        for q in list(tree.find_all(exp.PercentileCont)):  # DuckDB's quantile_cont(x, p)
            q.replace(exp.Anonymous(this="percentile", expressions=[q.this, q.expression]))
        return tree.sql(dialect="spark")

    def _columns(self, source) -> list[str]:
        """Column names of a FROM source: a view or table of the session, or a subquery (analysed, not run)."""
        if isinstance(source, exp.Table):
            return self.spark.table(source.name).columns
        return self.spark.sql(self.transpile(source.this)).columns

    def _expand_stars(self, tree):
        """Replace ``*`` / ``t.*`` with ``EXCLUDE (...)`` by the listed columns of the source the star refers
        to: a view or table (from the Spark catalog) or a subquery (its columns as Spark analyses it)."""
        for star in reversed(list(tree.find_all(exp.Star))):  # innermost first
            if not star.args.get("except"):
                continue
            col = star.parent if isinstance(star.parent, exp.Column) else None
            alias = col.table if col is not None else ""
            select = (col or star).find_ancestor(exp.Select)
            sources = [select.args["from"].this] + [j.this for j in select.args.get("joins") or []]
            source = next(s for s in sources if not alias or s.alias_or_name == alias)
            drop = {e.name.lower() for e in star.args["except"]}
            cols = [c for c in self._columns(source) if c.lower() not in drop]
            new = [exp.column(c, table=alias or None, quoted=True) for c in cols]
            target = col or star
            parent = target.parent
            idx = parent.expressions.index(target)
            parent.set("expressions", parent.expressions[:idx] + new + parent.expressions[idx + 1:])
        return tree

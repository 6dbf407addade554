"""The linker: input checks, the rules in DuckDB, the panels and the ledger (see :mod:`prosperity.link`)."""

from __future__ import annotations

import logging
import shutil
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from .. import _io, plots
from .._checks import InputError, require_frame, require_one_type
from .._results import Result
from ..classifications import sic_division_ranges, size_band_sql
from ..synthetic import ASHE_RULE_SQL
from .rules import RULES, Rule, rules
from .schema import DERIVED_COLUMNS, LOOKUP_KEYS, REQUIRED_TABLES, SHARED_KEYS, TABLE_COLUMNS

_log = logging.getLogger("prosperity.link")


class LinkError(InputError):
    """Bad input to :func:`build_panel`: names the table, the column and a few offending ids or values.

    An :class:`prosperity._checks.InputError` (so a ``ValueError``) with ``table``, ``column`` and ``ids``; the
    ids are shown under the column's name (``id_name``) unless given."""

    def __init__(self, message: str, table: str | None = None, column: str | None = None, ids=(),
                 id_name: str | None = None):
        super().__init__(message, table, column, ids, id_name or column or "value")


def _checked(fn, *args, **kwargs):
    """Run a :mod:`prosperity._checks` helper and re-raise its error as a :class:`LinkError` (same message)."""
    try:
        return fn(*args, **kwargs)
    except InputError as e:
        raise LinkError(e.problem, e.table, e.column, e.ids, e.id_name) from None


# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class LinkedData(Result):
    """The linked panels and the audit of how they were built.

    Attributes
    ----------
    table : DataFrame or None
        The worker panel (also ``workers``, a documented alias; ``to_frame()`` returns a copy): one row per
        ``piden``-``year`` (the main job): ``piden, year, entref`` (resolved), ``luref, lad, itl3, region,
        place`` (the ``level`` chosen), ``sic07, industry`` (SIC 2007 section), ``firm_size`` (enterprise
        employment), ``size_band, soc, age, sex, ft, gpay, hours, hw`` (real hourly pay, GBP at ``base_year``
        prices), ``lhw`` (its log), ``ww`` (real weekly pay), ``lww``. ``None`` when ``output=`` wrote it to
        Parquet (see ``paths``; :func:`load_panel` reads it back). With ``profile="paye_rti"`` also
        ``paye_ref, employment_id, placement, annual_pay, months, days, dw`` (real pay per day) and ``ldw``
        (its log, the outcome); ``hours``, ``hw`` and ``lhw`` are missing (no paid hours in RTI), and ``firms``
        and ``places`` carry ``mean_ldw`` in place of ``mean_lhw`` (:mod:`prosperity.link.rti`).
    firms : DataFrame or None
        Enterprise-year: ``entref, year, sic07, industry, employment, size_band, turnover, foreign_owned,
        sites, hq_luref, lad, itl3, region`` (the largest site: the head-office proxy; ties to the smaller
        ``luref``), ``gva, gva_per_worker`` (accounts where sampled, in the accounts' units: GBP thousand in
        the synthetic data, as in the ABS), ``surveyed``, ``n_workers, mean_lhw`` (in the linked panel).
        Keyed by the resolved enterprise reference.
    places : DataFrame
        Place-year at ``level``: characteristics (employment-weighted above districts), ``employment``,
        ``sites``, ``enterprises``, ``n_workers``, ``mean_lhw``.
    ledger : DataFrame
        One row per rule: ``step, table, rows_in, rows_out, dropped, repaired, matched, match_rate,
        reason``.
    sites : DataFrame or None
        The resolved site panel: one row per local unit-year of the linked years with a known place: ``luref,
        entref`` (resolved through ``entref_continuity`` to the last reference of its chain; the raw one in
        ``entref_raw``), ``year, postcode`` (normalised, see :func:`normalise_postcode_sql`), ``lad, itl3,
        region, sic07, industry`` (SIC 2007 section), ``employment``, ``size_band`` and the other columns of
        ``local_units`` (e.g. ``birth_year``, ``death_year``). Site-years left out (outside the years, postcode
        not in the directory or without a place) are lines of the ledger with ``table == "local_units"``.
        ``None`` when ``output=`` wrote it to Parquet.
    options : dict
        The options the panel was built with (incl. ``base_year``).
    paths : dict
        Parquet files written when ``output=`` was given.
    """

    table: pd.DataFrame | None
    firms: pd.DataFrame | None
    places: pd.DataFrame
    ledger: pd.DataFrame
    sites: pd.DataFrame | None = None
    options: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    @property
    def workers(self) -> pd.DataFrame | None:
        """The worker panel: an alias of ``table`` (the name every chapter and module uses)."""
        return self.table

    def to_frame(self) -> pd.DataFrame:
        """A copy of the worker panel (read from ``paths["workers"]`` when it was written to Parquet)."""
        if self.table is None and "workers" in self.paths:
            return pd.read_parquet(self.paths["workers"])
        return super().to_frame()

    def summary(self) -> str:
        """A short text summary: rows kept, panel sizes, options and the ledger."""
        lg = self.ledger
        jobs = lg[lg["table"] == "jobs"]
        first, last = int(jobs["rows_in"].iloc[0]), int(jobs["rows_out"].iloc[-1])
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        sizes = ", ".join(f"{name}={'on disk' if t is None else f'{len(t):,} rows'}" for name, t in
                          (("firms", self.firms), ("places", self.places), ("sites", self.sites)))
        lines = [
            f"LinkedData: {last:,} worker-years from {first:,} raw job rows ({last / max(first, 1):.1%}); {sizes}",
            f"options: {opts}",
            lg.to_string(index=False),
        ]
        return "\n".join(lines)

    def plot_funnel(self, ax=None, drops_only: bool = True):
        """The funnel figure of the ledger (:func:`prosperity.plots.ledger_funnel`). Returns the Axes."""
        return plots.ledger_funnel(self.ledger, ax=ax, drops_only=drops_only)


# --------------------------------------------------------------------------------------------------
_INT_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
              "UBIGINT", "UHUGEINT"}
_NUM_TYPES = _INT_TYPES | {"FLOAT", "DOUBLE", "REAL"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _type_kind(t: str) -> str:
    t = t.upper()
    if t in _INT_TYPES:
        return "int"
    if t in _NUM_TYPES or t.startswith("DECIMAL"):
        return "num"
    if t == "VARCHAR" or t.startswith("ENUM"):
        return "str"
    if t == "BOOLEAN":
        return "bool"
    return t


def _type_ok(kind: str, t: str) -> bool:
    k = _type_kind(t)
    return {
        "id": k in ("int", "str"),
        "int": k == "int",
        "num": k in ("int", "num"),
        "str": k == "str",
        "bool": k in ("bool", "int"),
        "any": True,
    }[kind]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _sic_table_sql() -> str:
    """SQL equivalent of :func:`prosperity.classifications.sic_section`: a 100-row table division -> section."""
    rows = ", ".join(
        f"({d}, '{s}')"
        for s, lo, hi in sic_division_ranges()[["section", "first_division", "last_division"]].itertuples(
            index=False)
        for d in range(lo, hi + 1)
    )
    return f"CREATE OR REPLACE TEMP TABLE sic_div AS SELECT * FROM (VALUES {rows}) t(division, section)"


def _resolve_source(source, names=TABLE_COLUMNS) -> dict:
    """Table name -> DataFrame or Parquet path (file or directory); ``names``: the tables of the profile (the
    first is the table of the worker funnel)."""
    if hasattr(source, "tables") and isinstance(getattr(source, "tables"), Mapping):
        return dict(source.tables)
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.is_dir():
            raise LinkError(f"source directory {str(root)!r} does not exist")
        first = next(iter(names))
        if not (root / f"{first}.parquet").exists() and not (root / first).is_dir() and (root / "tables").is_dir():
            root = root / "tables"  # the layout of SyntheticEngland.to_parquet and synthetic.write_population
        out = {}
        for name in names:
            if (root / f"{name}.parquet").is_file():
                out[name] = root / f"{name}.parquet"
            elif (root / name).is_dir() and any((root / name).rglob("*.parquet")):
                out[name] = root / name
        return out
    raise TypeError(
        "build_panel: source must be a SyntheticEngland, a dict of DataFrames or Parquet paths, or a "
        f"directory of Parquet files; got {type(source).__name__}"
    )


# --------------------------------------------------------------------------------------------------
class LinkWarning(UserWarning):
    """The panel was built but something in it needs a look: many unmatched postcodes, or no worker left."""


def normalise_postcode_sql(col: str) -> str:
    """DuckDB SQL giving the ONS standard form of the postcodes in ``col``: upper case, every space removed,
    then one space before the 3-character inward code (``"ab11aa"``, ``"AB1  1AA"`` -> ``"AB1 1AA"``); empty
    strings become NULL.

    This is the ``pcds`` form of the ONS Postcode Directory (ONS, *ONS Postcode Directory User Guide*, field
    ``pcds``: the variable-length postcode with one space between the outward and the inward code; the
    directory's 7- and 8-character forms ``pcd`` and ``pcd2`` pad the outward code with spaces instead), so
    business-register postcodes written without the space, with two spaces or in lower case match the
    directory."""
    x = f"nullif(upper(regexp_replace(CAST({col} AS VARCHAR), '\\s+', '', 'g')), '')"
    return f"(CASE WHEN length({x}) >= 5 THEN substr({x}, 1, length({x}) - 3) || ' ' || right({x}, 3) ELSE {x} END)"


#: Decimals of each value kept in an exact sum (:func:`_exact_sum`): 1e-10 log points, far below any pay difference.
_SUM_DECIMALS = 10


def _exact_sum(col: str) -> str:
    """``sum(col)`` of a DOUBLE, exact and the same bytes on DuckDB and Spark whatever the order rows are added: each
    value is rounded to :data:`_SUM_DECIMALS` decimals as a whole number of units (``floor(x * 1e10 + 0.5)``: one
    IEEE product and sum, the same on both engines; ``|col| < 9e8``) and the integers are added exactly
    (``DECIMAL(38, 0)``). Divide by :func:`_exact_mean`.

    Not ``CAST(col AS DECIMAL(18, 12))``: DuckDB rounds ``col * 1e12`` computed in double precision (73 of the
    workshop panel's 327,023 values land on the other side of a half from their exact value), Spark rounds a
    decimal form of ``col`` (Java's ``BigDecimal``); with that cast ``firms.mean_lhw`` differed between the
    engines in 0.03% of rows, and with this sum it is identical. Nor a DECIMAL with a scale back to DOUBLE:
    DuckDB divides the double of the scaled integer by ``10**scale``, Java's ``BigDecimal.doubleValue`` rounds
    the decimal once when it has more than 52 bits, so the two can differ in the last bit."""
    return f"sum(CAST(CAST(floor({col} * 1e{_SUM_DECIMALS} + 0.5) AS BIGINT) AS DECIMAL(38, 0)))"


def _exact_mean(s: str, n: str) -> str:
    """The mean from the exact sums ``s`` (:func:`_exact_sum`) and counts ``n`` of a group: the integer sum converted
    to DOUBLE once (correctly rounded on both engines below 2**64 units, i.e. sums below 1.8e9), then two IEEE
    divisions."""
    return f"CAST(sum({s}) AS DOUBLE) / sum({n}) / 1e{_SUM_DECIMALS}"


@dataclass(frozen=True)
class _Spec:
    """The raw tables of a linking profile: columns and kinds, required tables, lookup keys, keys shared between
    tables, optional columns (``NULL`` when absent), the tables whose other columns are carried along (the first
    is the table of the worker funnel) and the names the linker derives (such input columns are renamed)."""

    tables: dict
    required: tuple
    lookup_keys: dict
    shared_keys: dict
    optional: dict
    carry: tuple
    derived: frozenset


#: The ASHE / BSD / ABS profile (``build_panel(profile="ashe")``).
_ASHE_SPEC = _Spec(
    tables=TABLE_COLUMNS, required=REQUIRED_TABLES, lookup_keys=LOOKUP_KEYS, shared_keys=SHARED_KEYS,
    optional={"jobs": frozenset({"soc"}), **{t: frozenset(set(TABLE_COLUMNS[t]) - set(LOOKUP_KEYS.get(t, ())))
                                              for t in ("enterprises", "accounts", "place_characteristics")}},
    carry=("jobs", "local_units"), derived=DERIVED_COLUMNS)


@dataclass(frozen=True)
class _Profile:
    """A linking profile: its tables (``spec``), pay measures (the first is the default), accepted ``year_basis``
    values, whether the Spark engine runs it, the year / sample checks (``None``: the ASHE ones) and the run
    function (``None``: :func:`_run`, the ASHE rules)."""

    spec: _Spec
    pays: tuple
    year_bases: tuple
    spark: bool
    check: object = None
    run: object = None


#: Linking profiles by name (``build_panel(profile=...)``); :mod:`prosperity.link.rti` adds ``"paye_rti"``.
_PROFILES: dict[str, _Profile] = {"ashe": _Profile(_ASHE_SPEC, ("hourly", "weekly"), (None,), True)}


class _Linker:
    """One linking run: a DuckDB connection, the views of the raw tables and the ledger."""

    def __init__(self, con, quiet: bool, engine: str = "duckdb", spec: _Spec = _ASHE_SPEC):
        self.con = con
        self.engine = engine
        self.spec = spec
        # errors of a statement that become a LinkError: duckdb.Error, or Spark's and sqlglot's (link.spark)
        self.errors = getattr(con, "errors", duckdb.Error)
        self.ledger: list[dict] = []
        self.notes: list[dict] = []  # ledger lines of renamed or normalised inputs (other tables)
        self.site_lines: list[dict] = []  # ledger lines of the site panel (local_units)
        self.extra: dict[str, list[str]] = {}  # table -> the input columns it carries beyond TABLE_COLUMNS
        self.quiet = quiet
        self.temp_directory = None
        self.scratch: list[Path] = []  # directories of bucket files, removed at the end
        self._bar = None

    # ---- helpers
    def sql(self, q: str):
        if not _log.isEnabledFor(logging.DEBUG):
            return self.con.execute(q)
        t0 = time.perf_counter()
        res = self.con.execute(q)
        _log.debug("%8.2f s  %s", time.perf_counter() - t0, " ".join(q.split())[:110])
        return res

    def scalar(self, q: str):
        return self.con.execute(q).fetchall()[0][0]

    def count(self, rel: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {rel}"))

    def line(self, step, table, rows_in, rows_out, reason, repaired=0, matched=None) -> dict:
        rows_in, rows_out = int(rows_in), int(rows_out)
        return dict(
            step=step, table=table, rows_in=rows_in, rows_out=rows_out, dropped=rows_in - rows_out,
            repaired=int(repaired), matched=None if matched is None else int(matched),
            match_rate=None if matched is None else (matched / rows_in if rows_in else math.nan),
            reason=reason,
        )

    def add(self, step, table, rows_in, rows_out, reason, repaired=0, matched=None):
        self.ledger.append(self.line(step, table, rows_in, rows_out, reason, repaired, matched))
        if self._bar is not None:
            self._bar.set_postfix_str(step)
            self._bar.update(1)

    def charge(self, rules_: list[Rule], drops: list[int], n: int, opts: dict, table: str = "jobs") -> int:
        """One ledger line per rule: ``drops[i]`` rows dropped by ``rules_[i]``, starting from ``n`` rows."""
        for r, d in zip(rules_, drops):
            self.add(r.name, table, n, n - d, r.why(**opts))
            n -= d
        return n

    # ---- input checks
    def _view(self, name: str, obj) -> str:
        """Register one raw table as ``raw_{name}``; returns its column names."""
        raw = f"raw_{name}"
        if isinstance(obj, pd.DataFrame):
            _checked(require_frame, obj, name)
            if obj.shape[1] == 0:
                raise LinkError(f"has no columns (an empty DataFrame); it needs {list(self.spec.tables[name])}",
                                table=name)
            for col in self.spec.tables[name]:
                if col in obj.columns and self.spec.tables[name][col] == "id":
                    _checked(require_one_type, obj, col, name)
            # Arrow scans are much faster than DuckDB's pandas scans of object and nullable columns
            try:
                arrow = pa.Table.from_pandas(obj, preserve_index=False)
            except pa.ArrowException:  # invalid, mistyped or unsupported columns: let DuckDB scan pandas
                arrow = obj
            try:
                self.con.register(raw, arrow)
            except self.errors as exc:  # Spark only: DuckDB scans any pandas frame
                raise LinkError(f"cannot read the table ({type(exc).__name__})", table=name) from None
        elif isinstance(obj, (str, os.PathLike)):
            p = Path(obj)
            if p.is_dir():
                rel = f"read_parquet({_lit(p / '**' / '*.parquet')}, union_by_name=true)"
            elif p.is_file():
                rel = f"read_parquet({_lit(p)})"
            else:
                raise LinkError(f"no Parquet file or directory at {str(p)!r}", table=name)
            try:
                if self.engine == "spark":
                    self.con.register(raw, p)
                else:
                    self.sql(f"CREATE OR REPLACE TEMP VIEW {raw} AS SELECT * FROM {rel}")
            except self.errors as exc:
                raise LinkError(f"cannot read {str(p)!r} as Parquet ({type(exc).__name__})", table=name) from None
        elif self.engine == "spark" and self.con.is_frame(obj):  # e.g. spark.table("db.jobs")
            self.con.register(raw, obj)
        else:
            raise LinkError(f"expected a DataFrame or a Parquet path, got {type(obj).__name__}", table=name)
        try:
            return [r[0] for r in self.sql(f"DESCRIBE {raw}").fetchall()]
        except self.errors as exc:
            raise LinkError(f"cannot read the table ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                            table=name) from None

    def register(self, tables: dict, columns: dict):
        self.present = {}
        funnel = self.spec.carry[0]  # the table of the worker funnel (jobs; pay_periods for PAYE RTI)
        for name, spec in self.spec.tables.items():
            obj = tables.get(name)
            if obj is None:
                if name in self.spec.required:
                    raise LinkError(
                        f"required table is missing (tables given: {sorted(tables)})", table=name)
                continue
            raw = f"raw_{name}"
            raw_cols = self._view(name, obj)
            mapping = dict(columns.get(name, {}))
            unknown = set(mapping) - set(spec)
            if unknown:
                raise LinkError(f"columns= maps names the linker does not use: {sorted(unknown)} "
                                f"(it uses {list(spec)})", table=name)
            exprs = {}
            for col in spec:
                real = mapping.get(col, col)
                if _IDENT.match(real):
                    if real not in raw_cols:
                        optional = col in self.spec.optional.get(name, ())
                        if optional and col not in mapping:
                            exprs[col] = "NULL"
                            continue
                        src_note = f" (mapped from {col!r})" if real != col else ""
                        raise LinkError(f"required column {real!r}{src_note} is missing; columns present: "
                                        f"{raw_cols}", table=name, column=real)
                    exprs[col] = _q(real)
                else:
                    exprs[col] = f"({real})"
            if "postcode" in exprs:
                k = self.scalar(f"SELECT count(*) FILTER (WHERE {exprs['postcode']} IS DISTINCT FROM "
                                f"{normalise_postcode_sql(exprs['postcode'])}) FROM {raw}")
                if k:
                    self.notes.append(self.line("normalise_postcode", name, self.count(raw), self.count(raw),
                                                "postcode written in the ONS standard form (upper case, one "
                                                "space before the inward code) before matching", repaired=k))
                exprs["postcode"] = normalise_postcode_sql(exprs["postcode"])
            # the other columns of jobs (they count in exact duplicates) and of local_units (carried into sites);
            # a column named like one the linker derives is renamed and never used as the derived column
            extra = [c for c in raw_cols if c not in spec and c not in set(mapping.values())] \
                if name in self.spec.carry else []
            clash = [c for c in extra if c in self.spec.derived]
            renamed = {c: f"{c}_input" for c in clash}
            if clash:
                n = self.count(raw)
                line = self.line("derived_names", name, n, n,
                                 f"input column(s) {clash} named like columns the linker derives: renamed "
                                 f"{list(renamed.values())}, not used for the panel")
                if name == funnel:  # first line of the jobs funnel (no row changes)
                    self.ledger.append(line)
                else:
                    self.notes.append(line)
            select = ", ".join(f"{e} AS {_q(c)}" for c, e in exprs.items()) + "".join(
                f", {_q(c)} AS {_q(renamed.get(c, c))}" for c in extra)
            try:
                self.sql(f"CREATE OR REPLACE TEMP VIEW v_{name} AS SELECT {select} FROM {raw}")
                desc = self.sql(f"DESCRIBE v_{name}").fetchall()
            except self.errors as exc:  # a bad SQL expression in columns=
                raise LinkError(f"cannot read the table with the column mapping: {exc}", table=name) from None
            types = {r[0]: r[1] for r in desc}
            for col, kind in spec.items():
                t = types[col]
                if t == '"NULL"' or t == "NULL":
                    continue
                if not _type_ok(kind, t):
                    ex = [r[0] for r in self.sql(f"SELECT DISTINCT {_q(col)} FROM v_{name} "
                                                 f"WHERE {_q(col)} IS NOT NULL ORDER BY 1 LIMIT 5").fetchall()]
                    want = {"id": "an integer or string id", "int": "an integer", "num": "a number",
                            "str": "a string", "bool": "a boolean (or 0/1)"}[kind]
                    raise LinkError(f"has type {t}, expected {want}", table=name, column=col, ids=ex)
            if name in self.spec.required and name != funnel and self.count(f"v_{name}") == 0:
                raise LinkError("has no rows; a panel cannot be linked without it", table=name)
            self.present[name] = types
            self.extra[name] = [renamed.get(c, c) for c in extra]

        # keys shared between tables have one type
        for key, places in self.spec.shared_keys.items():
            kinds = {(t, c): _type_kind(self.present[t][c]) for t, c in places
                     if t in self.present and self.present[t].get(c) not in ('"NULL"', "NULL")}
            if len(set(kinds.values())) > 1:
                raise LinkError(
                    f"key {key!r} has different types across tables, so joins would fail: "
                    + ", ".join(f"{t}.{c}: {k}" for (t, c), k in kinds.items()), table=next(iter(kinds))[0],
                    column=key)
        if "place_characteristics" in self.present and _type_kind(self.present["postcode_lookup"]["lad"]) \
                != _type_kind(self.present["place_characteristics"]["lad"]):
            raise LinkError("'lad' type differs from postcode_lookup.lad", table="place_characteristics",
                            column="lad")

    def check_keys(self):
        for name, keys in self.spec.lookup_keys.items():
            if name not in self.present:
                continue
            k = ", ".join(_q(c) for c in keys)
            nulls = self.sql(f"SELECT {k} FROM v_{name} WHERE " + " OR ".join(f"{_q(c)} IS NULL" for c in keys)
                             + " LIMIT 5").fetchall()
            if nulls:
                raise LinkError("lookup key has missing values", table=name, column=keys[0],
                                ids=[r if len(r) > 1 else r[0] for r in nulls])
            dup = self.sql(f"SELECT {k} FROM v_{name} GROUP BY ALL HAVING count(*) > 1 ORDER BY ALL LIMIT 5"
                           ).fetchall()
            if dup:
                raise LinkError(f"duplicate keys in a lookup: ({', '.join(keys)}) must be unique"
                                + (" (after normalising postcodes)" if "postcode" in keys else ""),
                                table=name, column=",".join(keys),
                                ids=[r if len(r) > 1 else r[0] for r in dup])

    def check_years(self, years, rel: str = "v_jobs", table: str = "jobs", column: str = "year"):
        """The years to link, within the data's (``year`` of ``rel``, the ``column`` of ``table``) and the CPI's."""
        y0, y1 = self.sql(f"SELECT min(year), max(year) FROM {rel}").fetchone()
        if y0 is None:
            raise LinkError("the table has no rows (or no year)", table=table)
        if years is None:
            years = (int(y0), int(y1))
        lo, hi = int(years[0]), int(years[1])
        if lo > hi:
            raise ValueError(f"build_panel: years={years} must be (first, last) with first <= last")
        if hi < y0 or lo > y1:
            raise LinkError(f"years {lo}-{hi} are outside the years in the data ({y0}-{y1})",
                            table=table, column=column, ids=[lo, hi])
        lo, hi = max(lo, int(y0)), min(hi, int(y1))
        have = {r[0] for r in self.sql("SELECT year FROM v_cpi WHERE cpih > 0 AND isfinite(cpih)").fetchall()}
        need = [r[0] for r in self.sql(f"SELECT DISTINCT year FROM {rel} WHERE year BETWEEN {lo} AND {hi} "
                                       "ORDER BY year").fetchall()]
        missing = [y for y in need if y not in have]
        if missing:
            raise LinkError(f"no positive CPI index for {len(missing)} year(s) of {table}, so pay cannot be "
                            "deflated", table="cpi", column="cpih", ids=missing)
        return lo, hi, need

    def check_sample(self, ashe_rule: str, default: bool):
        """The ASHE rule must be a condition DuckDB can evaluate on ``piden``."""
        if default and _type_kind(self.present["jobs"]["piden"]) != "int":
            ex = [r[0] for r in self.sql("SELECT DISTINCT piden FROM v_jobs WHERE piden IS NOT NULL ORDER BY 1 "
                                         "LIMIT 3").fetchall()]
            raise LinkError(f"sample='ashe' with the default rule ({ashe_rule}) needs integer person ids, got "
                            f"{self.present['jobs']['piden']}; pass ashe_rule= a SQL condition on piden that "
                            "selects the sample", table="jobs", column="piden", ids=ex)
        try:
            self.sql(f"SELECT count(*) FILTER (WHERE {ashe_rule}) FROM (SELECT * FROM v_jobs LIMIT 10)").fetchone()
        except self.errors as exc:
            raise LinkError(f"ashe_rule={ashe_rule!r} cannot be evaluated on the jobs: "
                            f"{str(exc).splitlines()[0]}", table="jobs", column="piden") from None

    def entref_map(self, max_depth: int = 100):
        """Resolve continuity chains to their last reference: ``ent_map(old_entref, entref)``."""
        if "entref_continuity" not in self.present:
            t = self.present["jobs" if "jobs" in self.present else "paye_schemes"]["entref"]
            t = "BIGINT" if t in ('"NULL"', "NULL") or t.startswith("ENUM") else t
            self.sql(f"CREATE OR REPLACE TEMP TABLE ent_map AS SELECT NULL::{t} AS old_entref, "
                     f"NULL::{t} AS entref, 0 AS depth WHERE FALSE")
            self.n_reorganisations = 0
            return
        # pointer jumping: each pass follows every chain through the map itself, so a chain of n links is
        # resolved in about log2(n) passes (a recursive CTE has no equivalent on Spark 3.5 / 4.0); old_entref is
        # unique (checked), so each reference has one chain and its last reference is well defined
        self.sql("CREATE OR REPLACE TEMP TABLE ent_map AS "
                 "SELECT old_entref, new_entref AS entref, 1 AS depth FROM v_entref_continuity")
        while self.scalar(f"SELECT count(*) FROM ent_map m SEMI JOIN ent_map n ON n.old_entref = m.entref "
                          f"WHERE m.depth < {max_depth}"):
            self.sql(f"""
                CREATE OR REPLACE TEMP TABLE ent_step AS
                SELECT m.old_entref, coalesce(n.entref, m.entref) AS entref,
                       least(m.depth + coalesce(n.depth, 0), {max_depth}) AS depth
                FROM ent_map m LEFT JOIN ent_map n ON n.old_entref = m.entref
            """)
            self.sql("CREATE OR REPLACE TEMP TABLE ent_map AS SELECT * FROM ent_step")
        self.sql("DROP TABLE IF EXISTS ent_step")
        cyc = self.sql(f"SELECT old_entref FROM ent_map WHERE depth >= {max_depth} ORDER BY 1 LIMIT 5"
                       ).fetchall()
        if cyc:
            raise LinkError("enterprise continuity chains form a cycle (or are longer than "
                            f"{max_depth} links)", table="entref_continuity", column="old_entref",
                            ids=[r[0] for r in cyc])
        self.n_reorganisations = self.count("ent_map")


def _connect(memory_limit, temp_directory, threads):
    return _io.duckdb_connect(memory_limit, temp_directory, threads)


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _check_trim(trim):
    """``trim``: None, two quantiles, or ``{"min": .., "max": ..}`` of numbers (a :class:`LinkError` otherwise)."""
    if trim is None:
        return
    if isinstance(trim, Mapping):
        bad_keys = sorted(set(trim) - {"min", "max"}, key=str)
        if bad_keys:
            raise LinkError(f"trim= takes the keys 'min' and 'max', got {bad_keys}", column="trim", ids=bad_keys)
        bad = {k: v for k, v in trim.items() if not _is_number(v) or np.isnan(v)}
        if bad:
            raise LinkError(f"trim bounds must be numbers (real pay, GBP), got {bad}", column="trim",
                            ids=list(bad.values()))
        if float(trim.get("min", -math.inf)) >= float(trim.get("max", math.inf)):
            raise LinkError(f"trim={dict(trim)}: min must be below max", column="trim")
        return
    if isinstance(trim, str) or len(trim) != 2 or not all(_is_number(t) for t in trim):
        raise LinkError(f"trim must be None, (lower, upper) quantiles or {{'min': .., 'max': ..}}, got {trim!r}",
                        column="trim")
    lo_q, hi_q = (float(t) for t in trim)
    if not 0 <= lo_q < hi_q <= 1:
        raise ValueError(f"build_panel: trim quantiles must satisfy 0 <= lower < upper <= 1, got {trim}")


def _describe_source(source) -> dict:
    """What the panel was linked from, for the manifest: the synthetic world's size and seed, or the paths."""
    meta = getattr(source, "meta", None)
    if isinstance(meta, Mapping):
        keep = {k: meta[k] for k in ("size", "seed", "years", "sample", "overrides") if k in meta}
        return {"source": "SyntheticEngland", **keep}
    if isinstance(source, (str, os.PathLike)):
        return {"source": str(Path(source).resolve())}
    if isinstance(source, Mapping):
        return {"source": {k: (str(v) if isinstance(v, (str, os.PathLike)) else f"DataFrame {v.shape}"
                               if isinstance(v, pd.DataFrame) else type(v).__name__) for k, v in source.items()}}
    return {"source": type(source).__name__}


def build_panel(
    source,
    *,
    years: tuple[int, int] | None = None,
    pay: str | None = None,
    full_time_only: bool = False,
    ages: tuple[int, int] | None = None,
    trim: tuple[float, float] | dict | None = (0.005, 0.995),
    max_hours: float = 100.0,
    level: str = "lad",
    sample: str | None = None,
    ashe_rule: str | None = None,
    base_year: int | None = None,
    columns: Mapping[str, Mapping[str, str]] | None = None,
    output: str | os.PathLike | None = None,
    max_unmatched: float = 0.05,
    memory_limit: str | None = None,
    temp_directory: str | os.PathLike | None = None,
    threads: int | None = None,
    bucket_rows: int | None = None,
    quiet: bool = True,
    engine: str = "duckdb",
    spark=None,
    profile: str = "ashe",
    year_basis: str | None = None,
) -> LinkedData:
    """Link raw jobs, local units, enterprises, accounts, postcodes and places into audited panels.

    Parameters
    ----------
    source : SyntheticEngland, dict or path
        The raw tables: a ``prosperity.synthetic.SyntheticEngland``, a dict ``{table: DataFrame or Parquet
        path}``, or a directory holding ``{table}.parquet`` files (or ``{table}/`` folders of Parquet parts).
        Tables: ``jobs, local_units, postcode_lookup, cpi`` (required); ``enterprises, accounts,
        entref_continuity, place_characteristics`` (optional). Columns: :data:`TABLE_COLUMNS`.
    years : (first, last), optional
        Years to link (default: all years of ``jobs``).
    pay : "hourly" or "weekly" ("daily" or "weekly" with ``profile="paye_rti"``)
        The pay measure trimmed (``hw``, ``ww`` or ``dw``); all are returned. Default: the profile's first
        (``"hourly"``; ``"daily"`` for PAYE RTI, which records no paid hours).
    full_time_only : bool
        Keep full-time main jobs only (``ft``).
    ages : (lo, hi), optional
        Keep main jobs of people aged ``lo`` to ``hi`` inclusive.
    trim : (lower, upper) quantiles, {"min": .., "max": ..}, or None
        Drop main jobs whose real pay is outside the year's quantiles (default 0.5% and 99.5%) or outside
        absolute real-pay bounds (GBP at ``base_year`` prices); ``None`` keeps every job.
    max_hours : float
        Paid weekly hours above this are implausible (default 100).
    level : "lad", "itl3" or "region"
        Geography of ``workers.place`` and of the ``places`` panel.
    sample : None or "ashe"
        ``"ashe"`` keeps only the people the ASHE rule samples (``ashe_rule``, by default the rule of
        ``prosperity.synthetic``, which needs integer ``piden``).
    ashe_rule : str, optional
        DuckDB SQL condition on ``piden`` selecting the ASHE sample.
    base_year : int, optional
        Prices of ``hw`` and ``ww`` (default: the last year linked).
    columns : {table: {package column: real column or SQL expression}}, optional
        Names in the real extracts (see :data:`REAL_DATA_COLUMNS`).
    output : path, optional
        Write ``workers.parquet``, ``firms.parquet``, ``places.parquet``, ``sites.parquet`` and
        ``ledger.parquet`` there instead of returning ``workers``, ``firms`` and ``sites`` in memory. The folder
        is written atomically (:func:`prosperity._io.atomic_folder`, kind ``"linked_panel"``, with a manifest
        of files, row counts, checksums, options and source): an interrupted run leaves an earlier folder as it
        was; :func:`load_panel` reads a folder back and refuses one that does not match its manifest.
    max_unmatched : float
        Warn (:class:`LinkWarning`, with the counts) when more than this share of the local-unit years, or of
        the main jobs, have a postcode that is not in ``postcode_lookup`` after normalisation (default 5%).
    memory_limit, temp_directory, threads : DuckDB settings
        E.g. ``memory_limit="8GB"``: DuckDB spills joins, sorts and aggregations to ``temp_directory``
        beyond it. The panels are the same bytes whatever ``threads`` (sums of log pay are exact).
    bucket_rows : int, optional
        Job rows linked at a time. Above it, the jobs are split into ranges of ``piden`` (written to Parquet
        in ``temp_directory``) and de-duplicated, matched to their main job and workplace, attached and
        written one range at a time, so memory stays within ``memory_limit`` whatever the number of rows;
        the panels and the ledger are the same. Default: ``memory_limit`` / 400 bytes (about 15 million rows
        for ``"6GB"``).
    quiet : bool
        Hide the progress bar.
    engine : "duckdb" or "spark"
        Where the SQL runs: embedded DuckDB (default), or the SparkSession ``spark`` (the ONS Integrated Data
        Service; :mod:`prosperity.link.spark`: the same statements transpiled with sqlglot, the same ledger,
        errors and panels). On Spark a table of ``source`` may also be a Spark DataFrame (e.g.
        ``spark.table("db.jobs")``); ``memory_limit``, ``temp_directory``, ``threads`` and ``bucket_rows`` are
        DuckDB settings and are not used.
    spark : SparkSession
        The session for ``engine="spark"``.
    profile : "ashe" or "paye_rti"
        The source family of the raw tables. ``"ashe"`` (default): ASHE jobs, BSD, ABS (the rules above).
        ``"paye_rti"``: PAYE Real Time Information pay periods, employer PAYE schemes and the business register
        (the tables of ``synthetic.england(source="paye_rti")``; rules and outcome in :mod:`prosperity.link.rti`:
        employment-years from pay periods, the main job by annual earnings, schemes -> enterprises, central
        payrolls placed at the head office, log real pay per day ``ldw`` as the outcome; DuckDB only).
    year_basis : None, "tax" or "calendar"
        ``profile="paye_rti"`` only: the analysis year of pay periods (default ``"tax"``: the tax year, labelled by
        its first calendar year; ``"calendar"``: the calendar year of the tax month).

    Returns
    -------
    LinkedData

    Raises
    ------
    LinkError
        A table or column is missing or empty, a column has the wrong type or mixes types, two columns share a
        name, a lookup has duplicate keys, the years asked for are not in the data or the CPI does not cover
        them, an option (``trim``, ``ashe_rule``) cannot be applied.
    """
    if profile not in _PROFILES:
        raise ValueError(f"build_panel: profile must be one of {sorted(_PROFILES)}, not {profile!r}")
    prof = _PROFILES[profile]
    pay = prof.pays[0] if pay is None else pay
    if pay not in prof.pays:
        raise ValueError(f"build_panel: pay must be one of {list(prof.pays)} with profile={profile!r}, not {pay!r}"
                         + (" (PAYE RTI records no paid hours)" if pay == "hourly" else ""))
    if year_basis not in prof.year_bases:
        raise ValueError(f"build_panel: year_basis must be one of {list(prof.year_bases)} with profile={profile!r}, "
                         f"not {year_basis!r}")
    if engine == "spark" and not prof.spark:
        raise ValueError(f"build_panel: profile={profile!r} runs on DuckDB only in this version: the Spark engine "
                         "cannot run its rules yet (use engine='duckdb')")
    if level not in ("lad", "itl3", "region"):
        raise ValueError(f"build_panel: level must be 'lad', 'itl3' or 'region', not {level!r}")
    if sample not in (None, "ashe"):
        raise ValueError(f"build_panel: sample must be None or 'ashe', not {sample!r}")
    _check_trim(trim)
    if ages is not None and ages[0] > ages[1]:
        raise ValueError(f"build_panel: ages={ages} must be (lo, hi) with lo <= hi")
    if engine not in ("duckdb", "spark"):
        raise ValueError(f"build_panel: engine must be 'duckdb' or 'spark', not {engine!r}")
    if engine == "spark" and spark is None:
        raise ValueError("build_panel: engine='spark' needs spark=<SparkSession>")
    tables = _resolve_source(source, prof.spec.tables)
    columns = {} if columns is None else {k: dict(v) for k, v in columns.items()}
    unknown_tables = set(columns) - set(prof.spec.tables)
    if unknown_tables:
        raise LinkError(f"columns= names unknown tables {sorted(unknown_tables)}; tables: {list(prof.spec.tables)}")
    default_rule = sample == "ashe" and ashe_rule is None
    if default_rule:
        ashe_rule = ASHE_RULE_SQL

    own_tmp = None
    if engine == "spark":
        from .spark import SparkConnection

        con = SparkConnection(spark)
        bucket_rows = 2**62  # Spark partitions the data itself: one pass (the bucketed path is DuckDB's)
    else:
        if memory_limit is not None and temp_directory is None:
            own_tmp = tempfile.TemporaryDirectory(prefix="prosperity_link_")
            temp_directory = own_tmp.name
        con = _connect(memory_limit, temp_directory, threads)
    lk = _Linker(con, quiet, engine, spec=prof.spec)
    lk.temp_directory = None if temp_directory is None else str(temp_directory)
    t0 = time.perf_counter()
    try:
        if not quiet:
            lk._bar = tqdm(total=len([r for r in RULES if profile in r.profiles]), desc="link", leave=False)
        lk.register(tables, columns)
        lk.check_keys()
        if prof.check is None:
            y0, y1, year_list = lk.check_years(years)
            if sample == "ashe":
                lk.check_sample(ashe_rule, default_rule)
        else:
            y0, y1, year_list = prof.check(lk, years, year_basis=year_basis, sample=sample, ashe_rule=ashe_rule,
                                           default_rule=default_rule)
        if base_year is None:
            ref = [r[0] for r in lk.sql("SELECT year FROM v_cpi WHERE abs(cpih - 100) < 1e-9 ORDER BY year"
                                        ).fetchall()]
            base_year = ref[0] if ref else y1
        cpi_years = {r[0] for r in lk.sql("SELECT year FROM v_cpi").fetchall()}
        if base_year not in cpi_years:
            raise LinkError("base_year is not in the CPI table", table="cpi", column="year", ids=[base_year])
        lk.entref_map()
        options = dict(years=(y0, y1), pay=pay, full_time_only=full_time_only, ages=ages, trim=trim,
                       max_hours=max_hours, level=level, sample=sample, base_year=int(base_year))
        run = dict(y0=y0, y1=y1, pay=pay, full_time_only=full_time_only, ages=ages, trim=trim,
                   max_hours=max_hours, level=level, sample=sample, ashe_rule=ashe_rule,
                   base_year=int(base_year), bucket_rows=bucket_rows, max_unmatched=max_unmatched)
        if profile != "ashe":
            options.update(profile=profile, year_basis=year_basis or prof.year_bases[1])
            run.update(year_basis=options["year_basis"])
        _run_ = prof.run or _run
        if output is None:
            workers, firms, places, ledger, sites, paths = _run_(lk, out=None, **run)
        else:
            meta = {"options": options, **_describe_source(source)}
            with _io.atomic_folder(output, kind=PANEL_KIND, meta=meta) as tmp:
                workers, firms, places, ledger, sites, paths = _run_(lk, out=Path(tmp), **run)
            paths = {k: Path(output) / Path(v).name for k, v in paths.items()}
        options["seconds"] = round(time.perf_counter() - t0, 2)
        return LinkedData(table=workers, firms=firms, places=places, ledger=ledger, sites=sites, options=options,
                          paths=paths)
    finally:
        if lk._bar is not None:
            lk._bar.close()
        con.close()
        for d in lk.scratch:
            shutil.rmtree(d, ignore_errors=True)
        if own_tmp is not None:
            own_tmp.cleanup()


#: The ``kind`` of a folder written by ``build_panel(..., output=)`` (its manifest; see :mod:`prosperity._io`).
PANEL_KIND = "linked_panel"
_PANELS = ("workers", "firms", "places", "sites", "ledger")


def load_panel(folder, checksums: str | bool = "auto") -> LinkedData:
    """Read a folder written by ``build_panel(..., output=folder)`` back as a :class:`LinkedData`.

    The folder is checked against its manifest first (:func:`prosperity._io.verify`): a folder without one
    (an interrupted write), of another kind, or with a missing, truncated or edited file is refused with
    :class:`prosperity._io.OutputFolderError` (a ``ValueError``). ``options`` are those the panel was built with."""
    folder = Path(folder)
    man = _io.verify(folder, PANEL_KIND, checksums=checksums)
    got = {name: pd.read_parquet(folder / f"{name}.parquet") for name in _PANELS
           if f"{name}.parquet" in man["files"]}
    opts = dict(man.get("meta", {}).get("options", {}))
    return LinkedData(table=got.get("workers"), firms=got.get("firms"), places=got["places"], ledger=got["ledger"],
                      sites=got.get("sites"), options=opts,
                      paths={name: folder / f"{name}.parquet" for name in got})


#: Bytes of ``memory_limit`` per job row a bucket may hold (dedup hash table, main-job window, workplace join
#: and the attached panel row); above that the jobs are linked bucket by bucket (see :func:`_run`).
_BYTES_PER_JOB_ROW = 400


def _memory_bytes(lk: _Linker) -> int:
    """DuckDB's ``memory_limit`` in bytes (the value set, or DuckDB's default share of the RAM)."""
    txt = str(lk.scalar("SELECT current_setting('memory_limit')"))
    m = re.match(r"\s*([\d.]+)\s*([KMGTP]?i?B|bytes)?", txt)
    if not m:  # pragma: no cover
        return 8 * 2**30
    unit = (m.group(2) or "B").replace("bytes", "B")
    mult = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30,
            "TiB": 2**40}.get(unit, 1)
    return int(float(m.group(1)) * mult)


def _bucket_cuts(lk: _Linker, src: str, n_rows: int, bucket_rows: int) -> list:
    """Cut points splitting ``piden`` into ranges of about ``bucket_rows`` job rows (from a sample of ids).
    Every row of a person falls into one bucket, so each bucket can be de-duplicated and its main jobs chosen
    on its own; ranges (not hashes) keep the panel sorted by ``piden`` bucket after bucket."""
    k = math.ceil(n_rows / max(int(bucket_rows), 1))
    if k <= 1:
        return []
    ids = sorted(r[0] for r in lk.sql(
        f"SELECT piden FROM ({src}) WHERE piden IS NOT NULL USING SAMPLE reservoir({min(200 * k, 10**6)} ROWS) "
        "REPEATABLE (7)").fetchall())
    if not ids:
        return []
    cuts = sorted({ids[(i * len(ids)) // k] for i in range(1, k)})
    return cuts[1:] if cuts and cuts[0] == ids[0] else cuts


def _sql_value(v) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    return repr(int(v)) if isinstance(v, (int, np.integer)) else repr(v)


def _case(rules_: list[Rule], opts: dict) -> str:
    """SQL giving the index of the first rule whose condition holds (-1: the row is kept)."""
    if not rules_:
        return "-1"
    return ("CASE " + " ".join(f"WHEN coalesce({r.sql(**opts)}, FALSE) THEN {i}" for i, r in enumerate(rules_))
            + " ELSE -1 END")


def _add_counts(drops: list[int], rows) -> int:
    """Add ``(k, count, ...)`` rows of a ``GROUP BY k`` over :func:`_case` into ``drops``; returns the total."""
    total = 0
    for k, c, *_ in rows:
        total += c
        if k >= 0:
            drops[k] += c
    return total


def _run(lk: _Linker, *, y0, y1, pay, full_time_only, ages, trim, max_hours, level, sample, ashe_rule,
         base_year, out, bucket_rows=None, max_unmatched=0.05):
    """The linking rules of :data:`prosperity.link.rules.RULES`, stage by stage. Steps that look within a
    person-year (exact duplicates, pay and hours, main job, workplace, sample restrictions) run bucket by bucket
    over ranges of ``piden`` when the jobs exceed ``bucket_rows`` (default: ``memory_limit`` / 400 bytes), so
    every join, window and aggregation fits in memory; the year's trimming quantiles are then computed over all
    buckets, and the panel is attached and written bucket by bucket in ``piden, year`` order. The ledger is the
    sum over buckets: the same rules and the same rows as one pass over all jobs."""
    on = dict(sample=sample, full_time_only=full_time_only, ages=ages, trim=trim)
    opts = dict(y0=y0, y1=y1, ashe_rule=ashe_rule, n_reorganisations=lk.n_reorganisations,
                max_hours=float(max_hours), age_lo=None if ages is None else ages[0],
                age_hi=None if ages is None else ages[1], base_year=base_year, pay=pay)
    src, n_sample = _select_jobs(lk, on, opts)
    # enterprises, local units (with their workplace) and accounts keyed by the resolved reference
    n_sites, n_unplaced = _resolved_business_tables(lk, y0, y1, opts)
    if bucket_rows is None:
        bucket_rows = max(_memory_bytes(lk) // _BYTES_PER_JOB_ROW, 10**6)
    works, tmp, n_r, n_main, n_unmatched_jobs = _person_years(lk, src, n_sample, bucket_rows, on, opts)
    _warn_unmatched(n_unplaced, n_sites, n_unmatched_jobs, n_main, max_unmatched)
    all_work = works[0] if tmp is None else "read_parquet([" + ", ".join(_lit(tmp / f"work_{b:04d}.parquet")
                                                                         for b in range(len(works))) + "])"
    trim_cond, trim_reason, bounded = _trim_rule(lk, trim, pay, base_year, all_work, bucketed=tmp is not None)
    paths = {} if out is None else {"workers": out / "workers.parquet"}
    n_trim, matched = _attach(lk, works, tmp, level, trim_cond, bounded, paths.get("workers"))
    n_f = n_r - n_trim
    if trim_reason is not None:
        lk.add("trim", "jobs", n_r, n_f, trim_reason)
    for r, m, t in zip(rules("attach", **on), matched, ("enterprises", "accounts", "place_characteristics")):
        lk.add(r.name, "jobs", n_f, n_f, r.why(**opts) + ("" if t in lk.present else ": table not supplied"),
               matched=m)
    if n_f == 0:
        worst = max((x for x in lk.ledger if x["table"] == "jobs"), key=lambda x: x["dropped"])
        warnings.warn(f"build_panel: the worker panel is empty: no job row passed every rule; the step "
                      f"{worst['step']!r} dropped {worst['dropped']:,} rows ({worst['reason']}). See the ledger.",
                      LinkWarning, stacklevel=3)
    (reorg,) = [r for r in rules("select", **on) if not r.condition]
    for name in ("local_units", "enterprises", "accounts"):
        if name in lk.present:
            n, k = lk.sql(f"SELECT count(*), count(m.old_entref) FROM v_{name} t "
                          "LEFT JOIN ent_map m ON m.old_entref = t.entref").fetchone()
            lk.add(reorg.name, name, n, n, reorg.why(**opts).split(" (")[0], repaired=k)
    lk.ledger += lk.notes + lk.site_lines
    return _panels(lk, level, y0, y1, out, paths)


def _select_jobs(lk: _Linker, on: dict, opts: dict):
    """The ``select`` rules in one pass over the raw jobs (years, person ids, ASHE sample) and the re-mapped
    enterprise references: returns the SQL of the selected jobs (references resolved) and their count."""
    jobs_cols = [r[0] for r in lk.sql("DESCRIBE v_jobs").fetchall()]
    allc = ", ".join(("coalesce(m.entref, j.entref) AS entref" if c == "entref" else f"j.{_q(c)}")
                     for c in jobs_cols)
    select = [r for r in rules("select", **on) if r.condition]
    (reorg,) = [r for r in rules("select", **on) if not r.condition]
    sel_case = _case(select, opts)
    drops = [0] * len(select)
    rows = lk.sql(f"SELECT {sel_case} AS k, count(*), count(m.old_entref) FROM v_jobs j "
                  "LEFT JOIN ent_map m ON m.old_entref = j.entref GROUP BY k").fetchall()
    n_raw = _add_counts(drops, rows)
    n_sample = lk.charge(select, drops, n_raw, opts)
    lk.add(reorg.name, "jobs", n_sample, n_sample, reorg.why(**opts), repaired=sum(r[2] for r in rows if r[0] < 0))
    src = (f"SELECT * FROM (SELECT {allc} FROM v_jobs j LEFT JOIN ent_map m ON m.old_entref = j.entref) "
           f"WHERE ({sel_case}) = -1")
    return src, n_sample


def _person_years(lk: _Linker, src: str, n_sample: int, bucket_rows: int, on: dict, opts: dict):
    """The rules within person-years, bucket by bucket: exact duplicates, ``valid``, the main job, its
    ``work``-place, the ``repair`` of missing enterprise references, the ``restrict`` rules, ``deflate``.
    Returns the relations of the deflated main jobs (one per bucket), the bucket folder (``None``: one pass),
    the rows left, the main jobs and the main jobs whose postcode has no place."""
    cuts = _bucket_cuts(lk, src, n_sample, bucket_rows)
    tmp = None
    if cuts:
        tmp = Path(tempfile.mkdtemp(prefix="link_buckets_", dir=lk.temp_directory))
        lk.scratch.append(tmp)  # removed by build_panel whatever happens
        bucket = ("CASE " + " ".join(f"WHEN piden < {_sql_value(c)} THEN {i}" for i, c in enumerate(cuts))
                  + f" ELSE {len(cuts)} END")
        lk.sql(f"COPY (SELECT *, {bucket} AS _bucket FROM ({src})) TO {_lit(tmp / 'jobs')} "
               "(FORMAT parquet, PARTITION_BY (_bucket))")
        parts = [tmp / "jobs" / f"_bucket={b}" for b in range(len(cuts) + 1)]
        parts = [d for d in parts if d.is_dir()]
        sources = [f"read_parquet({_lit(d / '*.parquet')}, hive_partitioning=false)" for d in parts]
    else:
        parts, sources = [None], [f"({src})"]

    valid, work, restrict = rules("valid", **on), rules("work", **on), rules("restrict", **on)
    valid_case, later = _case(valid, opts), _case(work + restrict, opts)
    n_dedup = n_main = n_missing_ent = 0
    valid_drop = [0] * len(valid)
    later_drop = [0] * (len(work) + len(restrict))
    works = []
    for b, source in enumerate(sources):
        lk.sql(f"CREATE OR REPLACE TEMP TABLE j_dedup AS SELECT DISTINCT * FROM {source}")
        n_dedup += _add_counts(valid_drop, lk.sql(f"SELECT {valid_case} AS k, count(*) FROM j_dedup GROUP BY k"
                                                  ).fetchall())
        lk.sql(f"""
            CREATE OR REPLACE TEMP TABLE j_main AS
            SELECT v.*, lu.luref IS NOT NULL AS _lu_found, coalesce(lu._pc_found, FALSE) AS _pc_found,
                   coalesce(lu._placed, FALSE) AS _placed, lu.entref AS lu_entref, lu.lad, lu.itl3, lu.region
            FROM (SELECT * EXCLUDE (_rn) FROM (
                      SELECT *, row_number() OVER (PARTITION BY piden, year
                                                   ORDER BY gpay DESC, luref ASC NULLS LAST, hours DESC,
                                                            entref ASC NULLS LAST) AS _rn
                      FROM j_dedup WHERE ({valid_case}) = -1) WHERE _rn = 1) v
            LEFT JOIN lu_r lu ON lu.luref = v.luref AND lu.year = v.year
        """)
        lk.sql("DROP TABLE j_dedup")
        counted = lk.sql(f"SELECT {later} AS k, count(*), count(*) FILTER (entref IS NULL) "
                         "FROM j_main GROUP BY k").fetchall()
        n_main += _add_counts(later_drop, counted)
        n_missing_ent += sum(miss for k, _, miss in counted if k < 0 or k >= len(work))
        real = f"""
            SELECT j.* EXCLUDE (_lu_found, _pc_found, _placed, entref), coalesce(j.entref, j.lu_entref) AS entref,
                   j.gpay / j.hours * b.cpih / c.cpih AS hw, j.gpay * b.cpih / c.cpih AS ww
            FROM j_main j
            JOIN v_cpi c ON c.year = j.year
            CROSS JOIN (SELECT cpih FROM v_cpi WHERE year = {opts['base_year']}) b
            WHERE ({later}) = -1
        """
        if tmp is None:
            lk.sql(f"CREATE OR REPLACE TEMP TABLE j_work AS {real}")
            works.append("j_work")
        else:
            path = tmp / f"work_{b:04d}.parquet"
            lk.sql(f"COPY ({real}) TO {_lit(path)} (FORMAT parquet)")
            works.append(f"read_parquet({_lit(path)})")
            for f in parts[b].glob("*.parquet"):
                f.unlink()
        lk.sql("DROP TABLE j_main")

    (dedup,), (main,), (fill,), (deflate,) = (rules(s, **on) for s in ("distinct", "main", "repair", "deflate"))
    lk.add(dedup.name, "jobs", n_sample, n_dedup, dedup.why(**opts))
    n_valid = lk.charge(valid, valid_drop, n_dedup, opts)
    lk.add(main.name, "jobs", n_valid, n_main, main.why(**opts))
    n_w = lk.charge(work, later_drop[:len(work)], n_main, opts)
    lk.ledger[-1]["matched"] = n_w
    lk.ledger[-1]["match_rate"] = n_w / n_main if n_main else math.nan
    lk.ledger[-1]["reason"] += f"; workplace found for {n_w:,} of {n_main:,} main jobs"
    lk.add(fill.name, "jobs", n_w, n_w, fill.why(**opts), repaired=n_missing_ent)
    n_r = lk.charge(restrict, later_drop[len(work):], n_w, opts)
    lk.add(deflate.name, "jobs", n_r, n_r, deflate.why(**opts), matched=n_r)
    unplaced = sum(d for r, d in zip(work, later_drop) if r.name in ("unmatched_postcode", "unplaced_postcode"))
    return works, tmp, n_r, n_main, unplaced


def _trim_rule(lk: _Linker, trim, pay: str, base_year: int, all_work: str, bucketed: bool):
    """The ``trim`` condition on the deflated main jobs, its ledger reason (``None``: no trimming) and the
    relation wrapper that brings each year's quantile bounds (``_lo``, ``_hi``) to the rows."""
    measure = {"hourly": "hw", "weekly": "ww", "daily": "dw"}[pay]
    if trim is None:
        return "FALSE", None, (lambda w: w)
    if isinstance(trim, Mapping):
        lo, hi = float(trim.get("min", -math.inf)), float(trim.get("max", math.inf))
        conds = ([f"{measure} < {lo!r}"] if np.isfinite(lo) else []) + (
            [f"{measure} > {hi!r}"] if np.isfinite(hi) else [])
        return (" OR ".join(conds) or "FALSE", f"real {pay} pay outside [{lo:g}, {hi:g}] GBP ({base_year} prices)",
                (lambda w: w))
    lo_q, hi_q = trim
    q = f"quantile_cont({measure}, {lo_q}) AS _lo, quantile_cont({measure}, {hi_q}) AS _hi"
    if not bucketed:
        lk.sql(f"CREATE OR REPLACE TEMP TABLE bounds AS SELECT year, {q} FROM {all_work} GROUP BY year")
    else:  # one year at a time: a quantile holds its year's values in memory
        rows = []
        for (y,) in lk.sql(f"SELECT DISTINCT year FROM {all_work} ORDER BY year").fetchall():
            rows.append((y, *lk.sql(f"SELECT {q} FROM {all_work} WHERE year = {y}").fetchone()))
        lk.sql("CREATE OR REPLACE TEMP TABLE bounds (year BIGINT, _lo DOUBLE, _hi DOUBLE)")
        if rows:
            lk.con.executemany("INSERT INTO bounds VALUES (?, ?, ?)", rows)
    return (f"{measure} < _lo OR {measure} > _hi",
            f"real {pay} pay below the {lo_q:.1%} or above the {hi_q:.1%} quantile of its year",
            (lambda w: f"(SELECT j.*, b._lo, b._hi FROM {w} j JOIN bounds b ON b.year = j.year)"))


def _attach(lk: _Linker, works: list, tmp, level: str, trim_cond: str, bounded, workers_path):
    """The worker panel, bucket by bucket: trim, attach enterprise, accounts and place, add the bucket's exact
    sums of log pay by firm-year and place-year (``w_firm``, ``w_place``), and keep the panel (``workers``) or
    stream it to ``workers_path``. Returns the rows trimmed and the rows matched by each join."""
    place_col = {"lad": "lad", "itl3": "itl3", "region": "region"}[level]
    places_src = ('v_place_characteristics' if 'place_characteristics' in lk.present else
                  '(SELECT NULL::VARCHAR AS lad, NULL::INTEGER AS year WHERE FALSE)')
    writer = None
    n_trim, matched = 0, np.zeros(3, dtype=np.int64)
    for b, w in enumerate(works):
        lk.sql(f"""
            CREATE OR REPLACE TEMP TABLE wk AS
            SELECT j.piden, j.year, j.entref, j.luref, j.lad, j.itl3, j.region, j.{place_col} AS place,
                   e.sic07, e.industry, e.employment AS firm_size, e.size_band, j.soc, j.age, j.sex, j.ft, j.gpay,
                   j.hours, j.hw, ln(j.hw) AS lhw, j.ww, ln(j.ww) AS lww,
                   e.entref IS NOT NULL AS _ent, a.entref IS NOT NULL AS _acc, p.lad IS NOT NULL AS _plc
            FROM (SELECT * FROM {bounded(w)} WHERE NOT coalesce({trim_cond}, FALSE)) j
            LEFT JOIN ent_r e ON e.entref = j.entref AND e.year = j.year
            LEFT JOIN acc_r a ON a.entref = j.entref AND a.year = j.year
            LEFT JOIN {places_src} p ON p.lad = j.lad AND p.year = j.year
        """)
        n_trim += lk.count(f"{bounded(w)} WHERE coalesce({trim_cond}, FALSE)") if trim_cond != "FALSE" else 0
        matched += lk.sql("SELECT count(*) FILTER (_ent), count(*) FILTER (_acc), count(*) FILTER (_plc) "
                          "FROM wk").fetchone()
        verb = "CREATE OR REPLACE TEMP TABLE {t} AS" if b == 0 else "INSERT INTO {t}"
        for t, key in (("w_firm", "entref"), ("w_place", "place")):
            lk.sql(verb.format(t=t) + f" SELECT {key}, year, count(*) AS n, {_exact_sum('lhw')} AS s "
                   "FROM wk GROUP BY ALL")
        panel = "SELECT * EXCLUDE (_ent, _acc, _plc) FROM wk"
        if workers_path is None:
            lk.sql(verb.format(t="workers") + f" {panel}")
        else:
            reader = lk.con.sql(f"{panel} ORDER BY piden, year").to_arrow_reader(1_000_000)
            if writer is None:
                writer = pq.ParquetWriter(workers_path, reader.schema)
            for batch in reader:
                writer.write_batch(batch)
        lk.sql("DROP TABLE wk")
        if tmp is not None:
            (tmp / f"work_{b:04d}.parquet").unlink()
    if writer is not None:
        writer.close()
    if tmp is None:
        lk.sql("DROP TABLE j_work")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return n_trim, [int(m) for m in matched]


def _panels(lk: _Linker, level: str, y0, y1, out, paths: dict, outcome: str = "lhw"):
    """The firm, place and site panels and the ledger: DataFrames, or Parquet files in ``out``. ``outcome``: the
    log pay whose means (``mean_{outcome}``) the firm and place panels carry (the sums in ``w_firm``, ``w_place``)."""
    firms_sql = _firms_sql(lk, y0, y1, outcome)
    lk.sql(f"CREATE OR REPLACE TEMP TABLE places AS {_places_sql(lk, level, y0, y1, outcome)}")
    ledger = pd.DataFrame(lk.ledger, columns=["step", "table", "rows_in", "rows_out", "dropped", "repaired",
                                               "matched", "match_rate", "reason"])
    ledger["matched"] = ledger["matched"].astype("Int64")
    ledger["match_rate"] = ledger["match_rate"].astype(float)
    places = _tidy(lk.sql(f"SELECT * FROM places ORDER BY {level}, year").df())
    sites_sql = "SELECT * EXCLUDE (_pc_found, _placed) FROM lu_r WHERE _placed ORDER BY luref, year"
    if out is not None:
        for name, q in (("firms", firms_sql + " ORDER BY entref, year"),
                        ("places", f"SELECT * FROM places ORDER BY {level}, year"), ("sites", sites_sql)):
            paths[name] = out / f"{name}.parquet"
            lk.sql(f"COPY ({q}) TO {_lit(paths[name])} (FORMAT parquet)")
        paths["ledger"] = out / "ledger.parquet"
        ledger.to_parquet(paths["ledger"], index=False)
        return None, None, places, ledger, None, paths
    workers = _tidy(lk.sql("SELECT * FROM workers ORDER BY piden, year").df())
    firms = _tidy(lk.sql(firms_sql + " ORDER BY entref, year").df())
    sites = _tidy(lk.sql(sites_sql).df())
    return workers, firms, places, ledger, sites, paths


def _warn_unmatched(n_bad_sites, n_sites, n_bad_jobs, n_main, max_unmatched):
    """A :class:`LinkWarning` when too many site-years or main jobs have a postcode without a place."""
    parts = []
    if n_sites and n_bad_sites / n_sites > max_unmatched:
        parts.append(f"{n_bad_sites:,} of {n_sites:,} local-unit years ({n_bad_sites / n_sites:.1%})")
    if n_main and n_bad_jobs / n_main > max_unmatched:
        parts.append(f"{n_bad_jobs:,} of {n_main:,} main jobs ({n_bad_jobs / n_main:.1%})")
    if parts:
        warnings.warn("build_panel: " + " and ".join(parts) + " have a postcode that is not in postcode_lookup "
                      f"(or has no place there), above max_unmatched={max_unmatched:.0%}, after normalising case "
                      "and spaces; their jobs are dropped (ledger: unmatched_postcode, unplaced_postcode). Check "
                      "that the register and the directory are the same postcode vintage.", LinkWarning,
                      stacklevel=4)


def _rekey_sql(lk: _Linker, name: str, order: str, y0, y1) -> str:
    """Rows of ``v_{name}`` in ``y0..y1`` keyed by the resolved enterprise reference (``entref``; the raw one
    in ``entref_raw``). If a reorganisation leaves two rows for one resolved enterprise-year, the row filed
    under the resolved reference itself is kept, else the one with the largest ``order``. Only the few rows
    carrying an old reference are windowed, so this stays cheap on a population-sized register."""
    yr = f"t.year BETWEEN {y0} AND {y1}"
    return f"""
        WITH ch AS (
            SELECT * EXCLUDE (_rn) FROM (
                SELECT m.entref AS entref, t.* EXCLUDE (entref), t.entref AS entref_raw,
                       row_number() OVER (PARTITION BY m.entref, t.year
                                          ORDER BY t.{order} DESC NULLS LAST, t.entref) AS _rn
                FROM v_{name} t JOIN ent_map m ON m.old_entref = t.entref
                WHERE {yr}
            ) WHERE _rn = 1
        ), clash AS (
            SELECT t.entref, t.year FROM v_{name} t SEMI JOIN ch ON ch.entref = t.entref AND ch.year = t.year
        )
        SELECT t.entref, t.* EXCLUDE (entref), t.entref AS entref_raw
        FROM v_{name} t ANTI JOIN ent_map m ON m.old_entref = t.entref
        WHERE {yr}
        UNION ALL
        SELECT ch.* FROM ch ANTI JOIN clash ON clash.entref = ch.entref AND clash.year = ch.year
    """


def _resolved_business_tables(lk: _Linker, y0, y1, opts):
    """``ent_r``, ``lu_r``, ``acc_r``: enterprise-keyed tables of the linked years re-keyed by the resolved
    reference (see :func:`_rekey_sql`); ``lu_r`` is the site panel: each local unit-year with its district,
    ITL3 and region, SIC section and size band, and the other columns of ``local_units``. Its ledger lines
    (``table == "local_units"``) go to ``lk.site_lines``; returns (site-years in the years, of which without
    a place)."""
    has = lk.present
    lk.sql(_sic_table_sql())
    if "enterprises" in has:
        lk.sql(f"""
            CREATE OR REPLACE TEMP TABLE ent_r AS
            SELECT e.*, d.section AS industry, {size_band_sql('e.employment')} AS size_band
            FROM ({_rekey_sql(lk, "enterprises", "employment", y0, y1)}) e
            LEFT JOIN sic_div d ON d.division = TRY_CAST(substr(CAST(e.sic07 AS VARCHAR), 1, 2) AS INTEGER)
        """)
    else:
        t = lk.present["local_units"]["entref"]
        lk.sql(f"CREATE OR REPLACE TEMP TABLE ent_r AS SELECT NULL::{t} AS entref, NULL::INTEGER AS year, "
               "NULL::VARCHAR AS sic07, NULL::DOUBLE AS employment, NULL::DOUBLE AS turnover, "
               "NULL AS foreign_owned, NULL::VARCHAR AS industry, NULL::VARCHAR AS size_band WHERE FALSE")
    if "accounts" in has:
        lk.sql(f"CREATE OR REPLACE TEMP TABLE acc_r AS {_rekey_sql(lk, 'accounts', 'gva', y0, y1)}")
    else:
        lk.sql("CREATE OR REPLACE TEMP TABLE acc_r AS SELECT entref, year, NULL::DOUBLE AS gva, "
               "NULL::DOUBLE AS turnover, NULL::DOUBLE AS purchases, NULL::DOUBLE AS employment_costs "
               "FROM ent_r WHERE FALSE")
    extra = "".join(f", l.{_q(c)}" for c in lk.extra.get("local_units", []))
    lk.sql(f"""
        CREATE OR REPLACE TEMP VIEW lu_all AS
        SELECT l.luref, coalesce(m.entref, l.entref) AS entref, l.entref AS entref_raw, l.year, l.postcode,
               pc.lad, pc.itl3, pc.region, l.sic07, d.section AS industry, l.employment,
               {size_band_sql('l.employment')} AS size_band{extra},
               pc.postcode IS NOT NULL AS _pc_found,
               pc.lad IS NOT NULL AND pc.itl3 IS NOT NULL AND pc.region IS NOT NULL AS _placed
        FROM v_local_units l
        LEFT JOIN ent_map m ON m.old_entref = l.entref
        LEFT JOIN v_postcode_lookup pc ON pc.postcode = l.postcode
        LEFT JOIN sic_div d ON d.division = TRY_CAST(substr(CAST(l.sic07 AS VARCHAR), 1, 2) AS INTEGER)
    """)
    site_rules = rules("sites", table="local_units")
    drops = [0] * len(site_rules)
    n = _add_counts(drops, lk.sql(f"SELECT {_case(site_rules, opts)} AS k, count(*) FROM lu_all GROUP BY k"
                                  ).fetchall())
    lines, rest = [], n
    for r, d in zip(site_rules, drops):
        lines.append(lk.line(r.name, "local_units", rest, rest - d, r.why(**opts)))
        rest -= d
    lk.site_lines = lines
    lk.sql(f"CREATE OR REPLACE TEMP TABLE lu_r AS SELECT * FROM lu_all WHERE year BETWEEN {y0} AND {y1}")
    n_years = n - drops[0]
    return n_years, n_years - rest


def _firms_sql(lk: _Linker, y0, y1, outcome: str = "lhw") -> str:
    # the largest site (ties to the smaller luref): one row per enterprise-year by a window over the register
    # (faster than arg_max over a struct on 20+ million enterprise-years)
    return f"""
        WITH sites AS (
            SELECT entref, year, sites, hq FROM (
                SELECT entref, year, count(*) OVER (PARTITION BY entref, year) AS sites,
                       {{'luref': luref, 'lad': lad, 'itl3': itl3, 'region': region}} AS hq,
                       row_number() OVER (PARTITION BY entref, year
                                          ORDER BY coalesce(employment, -1) DESC, luref ASC) AS _rn
                FROM lu_r
            ) WHERE _rn = 1
        ), w AS (
            SELECT entref, year, CAST(sum(n) AS DOUBLE) AS n_workers,
                   {_exact_mean('s', 'n')} AS mean_{outcome}
            FROM w_firm GROUP BY entref, year
        )
        SELECT e.entref, e.year, e.sic07, e.industry, e.employment, e.size_band, e.turnover, e.foreign_owned,
               coalesce(s.sites, 0) AS sites, s.hq.luref AS hq_luref, s.hq.lad AS lad, s.hq.itl3 AS itl3,
               s.hq.region AS region,
               a.gva, CASE WHEN e.employment > 0 THEN a.gva / e.employment END AS gva_per_worker,
               a.entref IS NOT NULL AS surveyed,
               coalesce(w.n_workers, 0) AS n_workers, w.mean_{outcome}
        FROM ent_r e
        LEFT JOIN sites s ON s.entref = e.entref AND s.year = e.year
        LEFT JOIN acc_r a ON a.entref = e.entref AND a.year = e.year
        LEFT JOIN w ON w.entref = e.entref AND w.year = e.year
    """


def _places_sql(lk: _Linker, level: str, y0, y1, outcome: str = "lhw") -> str:
    chars = ["density", "transport_access", "housing_cost", "amenities"]
    if "place_characteristics" in lk.present:
        if level == "lad":
            pch = f"SELECT lad AS place, year, {', '.join(chars)} FROM v_place_characteristics"
        else:
            # employment-weighted means of the districts in the area, added in district order (the same bytes
            # whatever the number of threads)
            wavg = ", ".join(
                f"sum(p.{c} * coalesce(e.emp, 0) ORDER BY p.lad) / nullif(sum(CASE WHEN p.{c} IS NOT NULL "
                f"THEN coalesce(e.emp, 0) END ORDER BY p.lad), 0) AS {c}" for c in chars)
            pch = f"""
                SELECT g.{level} AS place, p.year, {wavg}
                FROM v_place_characteristics p
                JOIN (SELECT DISTINCT lad, {level} FROM v_postcode_lookup) g ON g.lad = p.lad
                LEFT JOIN (SELECT lad, year, sum(employment) AS emp FROM lu_r GROUP BY lad, year) e
                       ON e.lad = p.lad AND e.year = p.year
                GROUP BY g.{level}, p.year
            """
    else:
        pch = ("SELECT NULL::VARCHAR AS place, NULL::INTEGER AS year, "
               + ", ".join(f"NULL::DOUBLE AS {c}" for c in chars) + " WHERE FALSE")
    return f"""
        WITH pch AS ({pch}),
        emp AS (SELECT {level} AS place, year, CAST(sum(employment) AS DOUBLE) AS employment, count(*) AS sites,
                       count(DISTINCT entref) AS enterprises
                FROM lu_r WHERE {level} IS NOT NULL GROUP BY {level}, year),
        w AS (SELECT place, year, CAST(sum(n) AS DOUBLE) AS n_workers, {_exact_mean('s', 'n')} AS mean_{outcome} FROM w_place
              GROUP BY place, year),
        keys AS (SELECT place, year FROM pch UNION SELECT place, year FROM emp UNION SELECT place, year FROM w)
        SELECT k.place AS {level}, k.year, {', '.join('pch.' + c for c in chars)},
               coalesce(emp.employment, 0) AS employment, coalesce(emp.sites, 0) AS sites,
               coalesce(emp.enterprises, 0) AS enterprises, coalesce(w.n_workers, 0) AS n_workers, w.mean_{outcome}
        FROM keys k
        LEFT JOIN pch ON pch.place = k.place AND pch.year = k.year
        LEFT JOIN emp ON emp.place = k.place AND emp.year = k.year
        LEFT JOIN w ON w.place = k.place AND w.year = k.year
        WHERE k.year BETWEEN {y0} AND {y1}
        ORDER BY k.place, k.year
    """


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    """Stable dtypes whatever the source: DuckDB's integer counts as int64, ENUMs as strings."""
    for c in df.columns:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            df[c] = df[c].astype(object)
        elif df[c].dtype == "int32" and c in ("year",):
            df[c] = df[c].astype("int64")
    return df.reset_index(drop=True)

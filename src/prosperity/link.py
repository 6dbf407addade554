"""Linking the raw tables into audited worker-year, firm-year and place-year panels (DuckDB).

A researcher's first months on the English linked data go into turning the raw deliveries (ASHE or PAYE
jobs, the Business Structure Database's local units and enterprises, the Annual Business Survey's accounts,
the postcode directory) into one analysis panel. The choices made there change every later number, so this
module makes each of them a named rule with a line in a **ledger**::

    from prosperity import link, synthetic
    linked = link.build_panel(synthetic.england(size="workshop", seed=0))
    linked.ledger            # step, rows_in, rows_out, dropped, repaired, matched, match_rate, reason
    linked.workers           # one row per person-year: the main job, its workplace, enterprise and real pay
    linked.plot_funnel()     # the funnel of rows from the raw jobs to the panel

The rules, in the order they run (each is one ledger step; ``rows_in - rows_out == dropped`` at every step,
and no row leaves the panel without one):

1. ``years``: keep job-years inside ``years``.
2. ``ashe_sample`` (``sample="ashe"`` only): keep the people the ASHE rule samples.
3. ``reorganised_entref``: follow enterprise reorganisations through ``entref_continuity``; chains
   (A -> B -> C) are resolved to their **last** reference, the reference the whole book keys firms by
   (repairs rows, drops none; the same is done to ``local_units``, ``enterprises`` and ``accounts``, each
   with its own ledger line at the end).
4. ``exact_duplicates``: drop rows identical to another row on every column of the jobs table.
5. ``nonpositive_pay``: drop jobs whose gross weekly pay is missing, zero or negative.
6. ``implausible_hours``: drop jobs whose paid weekly hours are missing, not positive, or above ``max_hours``
   (100).
7. ``main_job``: keep one job per person-year, the **main job**: the one with the highest gross weekly pay
   (ties: the smaller ``luref``, then more hours, then the smaller ``entref``), the rule
   :func:`prosperity.synthetic.main_job` uses to define the true main job. The other jobs are secondary.
8. ``missing_luref``, ``unknown_luref``, ``unmatched_postcode``: attach the workplace of the main job via
   local unit (``luref``, ``year``) -> ``postcode`` -> district (``lad``), ITL3 and region. A main job without
   a local unit, with a local unit the register does not hold that year, or whose postcode is not in the
   postcode directory is dropped: its person-year has no known workplace (the match rate is in the ledger).
   The main job is chosen *before* the workplace is checked, so a person-year is never re-assigned to a
   secondary job because the main job's record is broken.
9. ``missing_entref``: a job without an enterprise reference takes the (resolved) enterprise of its local
   unit (repairs rows, drops none).
10. ``full_time`` (``full_time_only=True``: ``ft == 1``) and ``age_range`` (``ages=(lo, hi)``).
11. ``deflate``: real pay at constant prices, ``hw = gpay / hours * cpih[base_year] / cpih[year]`` and the real
    weekly pay ``ww = gpay * cpih[base_year] / cpih[year]``. ``base_year`` defaults to the reference year
    of the index (the year where ``cpih == 100``: 2015 for the ONS CPIH), else the last year linked.
12. ``trim``: drop main jobs whose real pay (hourly or weekly, ``pay=``) is outside the year's ``trim``
    quantiles (default 0.5% and 99.5%, computed on the sample that reaches this step), or outside absolute
    bounds ``trim={"min": .., "max": ..}``; ``trim=None`` keeps every job.
13. ``attach_enterprise``: industry (``sic07`` of the enterprise and its SIC 2007 section ``industry``) and size
    (``firm_size`` = enterprise employment, ``size_band``); ``attach_accounts``: the business survey's GVA
    (all large enterprises, a sample of small ones); ``attach_place``: characteristics of the workplace
    district-year. These joins keep every row and record their match rates.

The joins and aggregations run in DuckDB (embedded), reading Parquet directly when the source is a
directory, so population-sized data link out of core within ``memory_limit`` (spilling to
``temp_directory``). Above ``bucket_rows`` job rows (by default what ``memory_limit`` holds) the rules that look
within a person-year run one range of ``piden`` at a time, so no join, window or sort ever holds all the jobs:
the England-sized synthetic population (313 million job rows) links in 6.3 GiB. Pandas DataFrames come back
unless ``output=directory``, which writes the panels to Parquet instead.

The real extracts use other variable names: ``columns=`` maps the package's names to them (a real name or a
DuckDB SQL expression over the real columns, e.g. ``"ft": "ft = 1"``); :data:`REAL_DATA_COLUMNS` is a
documented starting point (see :func:`real_data_columns`).

References: the data are described in ONS (2018), ASHE quality and methodology information; UK Data Service
SN 6689 (ASHE), SN 6697 (BSD) and SN 7451 (ABS). The panel is what AKM estimation needs
(Abowd, Kramarz and Margolis, 1999, *Econometrica* 67(2)); Card, Heining and Kline (2013, *QJE* 128(3))
describe the same choices (main job, trimming, full-time) for the German IAB data.
"""

from __future__ import annotations

import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "LinkError",
    "LinkedData",
    "REAL_DATA_COLUMNS",
    "TABLE_COLUMNS",
    "build_panel",
    "ledger_figure",
    "real_data_columns",
    "real_data_mapping",
]


_log = logging.getLogger(__name__)


class LinkError(ValueError):
    """Bad input to :func:`build_panel`: names the table, the column and a few offending ids or values."""

    def __init__(self, message: str, table: str | None = None, column: str | None = None, ids=()):
        self.table = table
        self.column = column
        self.ids = list(ids)
        where = ""
        if table is not None:
            where = f"table {table!r}" + (f", column {column!r}" if column is not None else "") + ": "
        ids_txt = f" (e.g. {self.ids[:5]})" if self.ids else ""
        super().__init__(f"{where}{message}{ids_txt}")


# --------------------------------------------------------------------------------------------------
# Tables and columns the linker reads (package names) and the kind of each column.
#   id: integer or string key;  int: integer;  num: number;  str: string;  bool: boolean or 0/1;
#   any: any type.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "jobs": {
        "piden": "id", "year": "int", "entref": "id", "luref": "id", "gpay": "num", "hours": "num",
        "age": "num", "sex": "any", "soc": "any", "ft": "bool",
    },
    "local_units": {
        "luref": "id", "entref": "id", "year": "int", "postcode": "str", "sic07": "str", "employment": "num",
    },
    "enterprises": {
        "entref": "id", "year": "int", "sic07": "str", "employment": "num", "turnover": "num",
        "foreign_owned": "any",
    },
    "accounts": {
        "entref": "id", "year": "int", "gva": "num", "turnover": "num", "purchases": "num",
        "employment_costs": "num",
    },
    "postcode_lookup": {"postcode": "str", "lad": "str", "itl3": "str", "region": "str"},
    "entref_continuity": {"old_entref": "id", "new_entref": "id"},
    "place_characteristics": {
        "lad": "str", "year": "int", "density": "num", "transport_access": "num", "housing_cost": "num",
        "amenities": "num",
    },
    "cpi": {"year": "int", "cpih": "num"},
}

#: Tables without which no panel can be built; the others are optional (their steps are skipped and the
#: ledger says so).
REQUIRED_TABLES = ("jobs", "local_units", "postcode_lookup", "cpi")

#: Lookups must have unique keys.
_LOOKUP_KEYS = {
    "local_units": ("luref", "year"),
    "enterprises": ("entref", "year"),
    "accounts": ("entref", "year"),
    "postcode_lookup": ("postcode",),
    "entref_continuity": ("old_entref",),
    "place_characteristics": ("lad", "year"),
    "cpi": ("year",),
}

# Key columns that must have the same type in every table they join.
_SHARED_KEYS = {
    "entref": [("jobs", "entref"), ("local_units", "entref"), ("enterprises", "entref"),
               ("accounts", "entref"), ("entref_continuity", "old_entref"),
               ("entref_continuity", "new_entref")],
    "luref": [("jobs", "luref"), ("local_units", "luref")],
}

#: Package name -> real variable, per table: ``(real name or SQL expression, status, note)``.
#: Status: ``"S"`` documented in a secondary source read for this project (econ_facts.md section 4),
#: ``"U"`` unverified (a name in common use: check it against the data dictionary before running).
REAL_DATA_COLUMNS: dict[str, dict[str, tuple[str, str, str]]] = {
    "jobs": {
        "piden": ("piden", "S", "ASHE (SN 6689): random person identifier, stable over years"),
        "year": ("year", "S", "ASHE: April reference year"),
        "entref": ("entref", "U", "IDBR enterprise reference carried by ASHE"),
        "luref": ("luref", "U", "IDBR local-unit reference; if absent, link the work postcode directly"),
        "gpay": ("gpay", "U", "gross weekly pay (GBP)"),
        "hours": ("thrs", "U", "total paid weekly hours (basic + paid overtime)"),
        "age": ("age", "S", "age in April"),
        "sex": ("sex", "S", "1 male, 2 female"),
        "soc": ("occ", "U", "SOC code with a vintage suffix (e.g. occ10, occ20); take the major group"),
        "ft": ("ft", "S", "1 full-time, 2 part-time (the package uses the same coding)"),
    },
    "local_units": {
        "luref": ("luref", "U", "BSD (SN 6697) local-unit file"),
        "entref": ("entref", "U", "enterprise owning the local unit"),
        "year": ("year", "U", "April snapshot year"),
        "postcode": ("postcode", "U", "local-unit postcode (present in the BSD; name unverified)"),
        "sic07": ("sic07", "U", "SIC 2007, 5 digits as text"),
        "employment": ("employment", "U", "local-unit employment"),
    },
    "enterprises": {
        "entref": ("entref", "U", "BSD enterprise file"),
        "year": ("year", "U", "April snapshot year"),
        "sic07": ("sic07", "U", "SIC 2007, 5 digits as text"),
        "employment": ("employment", "U", "enterprise employment"),
        "turnover": ("turnover", "U", "turnover (GBP thousands in the BSD)"),
        "foreign_owned": ("foreign_owned", "U", "foreign ownership marker"),
    },
    "accounts": {
        "entref": ("entref", "U", "ABS (SN 7451) reporting unit / enterprise reference"),
        "year": ("year", "U", "calendar reference year"),
        "gva": ("gva", "U", "approximate GVA at basic prices (aGVA); microdata name not found"),
        "turnover": ("turnover", "U", "total turnover; microdata name not found"),
        "purchases": ("purchases", "U", "total purchases of goods and services; name not found"),
        "employment_costs": ("employment_costs", "U", "total employment costs; name not found"),
    },
    "postcode_lookup": {
        "postcode": ("pcds", "S", "ONSPD/NSPL standardised postcode"),
        "lad": ("laua", "S", "local authority district code (LAD/UA/MD/LB)"),
        "itl3": ("itl", "U", "ITL3 code in post-2021 releases (older releases: via a LAD -> ITL lookup)"),
        "region": ("rgn", "S", "region (former GOR) code"),
    },
    "entref_continuity": {
        "old_entref": ("old_entref", "U", "IDBR continuity: reference before a reorganisation"),
        "new_entref": ("new_entref", "U", "reference after the reorganisation"),
    },
    "place_characteristics": {
        "lad": ("lad", "U", "assembled by the researcher from public district series"),
        "year": ("year", "U", ""),
        "density": ("density", "U", "e.g. jobs per km2"),
        "transport_access": ("transport_access", "U", "e.g. DfT journey-time statistics"),
        "housing_cost": ("housing_cost", "U", "e.g. ONS house-price-to-earnings ratio"),
        "amenities": ("amenities", "U", "an amenity index"),
    },
    "cpi": {
        "year": ("year", "U", "calendar year"),
        "cpih": ("cpih", "U", "ONS CPIH annual index (2015 = 100), series L522"),
    },
}


def real_data_columns() -> pd.DataFrame:
    """:data:`REAL_DATA_COLUMNS` as a table: ``table``, ``column`` (package), ``real`` (name or SQL
    expression), ``status`` (``S`` documented in a secondary source, ``U`` unverified), ``note``.

    Pass ``{table: {column: real}}`` as ``build_panel(..., columns=...)`` after checking each ``U`` row
    against the data dictionary of the extract."""
    rows = [
        (table, col, real, status, note)
        for table, cols in REAL_DATA_COLUMNS.items()
        for col, (real, status, note) in cols.items()
    ]
    return pd.DataFrame(rows, columns=["table", "column", "real", "status", "note"])


def real_data_mapping() -> dict[str, dict[str, str]]:
    """:data:`REAL_DATA_COLUMNS` in the form ``build_panel(columns=...)`` takes."""
    return {t: {c: v[0] for c, v in cols.items()} for t, cols in REAL_DATA_COLUMNS.items()}


# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinkedData:
    """The linked panels and the audit of how they were built.

    Attributes
    ----------
    workers : DataFrame or None
        One row per ``piden``-``year`` (the main job): ``piden, year, entref`` (resolved), ``luref, lad,
        itl3, region, place`` (the ``level`` chosen), ``sic07, industry`` (SIC 2007 section), ``firm_size``
        (enterprise employment), ``size_band, soc, age, sex, ft, gpay, hours, hw`` (real hourly pay,
        GBP at ``base_year`` prices), ``lhw`` (its log), ``ww`` (real weekly pay), ``lww``. ``None`` when
        ``output=`` wrote it to Parquet (see ``paths``).
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
    options : dict
        The options the panel was built with (incl. ``base_year``).
    paths : dict
        Parquet files written when ``output=`` was given.
    """

    workers: pd.DataFrame | None
    firms: pd.DataFrame | None
    places: pd.DataFrame
    ledger: pd.DataFrame
    options: dict = field(default_factory=dict)
    paths: dict = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """The ledger."""
        return self.ledger.copy()

    def summary(self) -> str:
        """A short text summary: options, rows kept and the ledger."""
        lg = self.ledger
        jobs = lg[lg["table"] == "jobs"]
        first, last = int(jobs["rows_in"].iloc[0]), int(jobs["rows_out"].iloc[-1])
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        lines = [
            f"LinkedData: {last:,} worker-years from {first:,} raw job rows ({last / max(first, 1):.1%})",
            f"options: {opts}",
            lg.to_string(index=False),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:  # keep notebooks readable
        n = None if self.workers is None else len(self.workers)
        return (f"LinkedData(workers={n} rows, firms={None if self.firms is None else len(self.firms)} rows, "
                f"places={len(self.places)} rows, ledger={len(self.ledger)} steps)")

    def plot_funnel(self, ax=None):
        """The funnel figure of the ledger (see :func:`ledger_figure`). Returns the Axes."""
        return ledger_figure(self.ledger, ax=ax)


def ledger_figure(ledger: pd.DataFrame, ax=None, drops_only: bool = True):
    """Funnel of the ledger's job rows: one horizontal bar per step with the rows kept (blue) and dropped
    (orange), labelled with the count dropped. ``drops_only`` hides steps that dropped nothing (repairs and
    joins that keep every row); the first step is always shown. Returns the Axes."""
    import matplotlib.pyplot as plt

    from .plots import OKABE_ITO

    lg = ledger[ledger["table"] == "jobs"] if "table" in ledger.columns else ledger
    if drops_only:
        lg = lg[(lg["dropped"] > 0) | (lg.index == lg.index[0])]
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.42 * len(lg) + 1.2))
    y = np.arange(len(lg))
    ax.barh(y, lg["rows_out"], color=OKABE_ITO[0], height=0.7, label="kept")
    ax.barh(y, lg["dropped"], left=lg["rows_out"], color=OKABE_ITO[1], height=0.7, label="dropped")
    top = float(lg["rows_in"].max())
    for yi, (kept, dropped) in enumerate(zip(lg["rows_out"], lg["dropped"])):
        if dropped > 0:
            ax.text(kept + dropped + 0.01 * top, yi, f"-{int(dropped):,}", va="center", fontsize="small")
    ax.set_yticks(y, [s.replace("_", " ") for s in lg["step"]])
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.18)
    ax.set_xlabel("rows")
    ax.legend(loc="lower right", fontsize="small")
    return ax


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
    from .classifications import sic_division_ranges

    rows = ", ".join(
        f"({d}, '{s}')"
        for s, lo, hi in sic_division_ranges()[["section", "first_division", "last_division"]].itertuples(
            index=False)
        for d in range(lo, hi + 1)
    )
    return f"CREATE OR REPLACE TEMP TABLE sic_div AS SELECT * FROM (VALUES {rows}) t(division, section)"


def _size_band_sql(col: str) -> str:
    return (f"(CASE WHEN {col} IS NULL THEN NULL WHEN {col} < 10 THEN '0-9' WHEN {col} < 50 THEN '10-49' "
            f"WHEN {col} < 250 THEN '50-249' ELSE '250+' END)")


def _resolve_source(source) -> dict:
    """Table name -> DataFrame or Parquet path (file or directory)."""
    if hasattr(source, "tables") and isinstance(getattr(source, "tables"), Mapping):
        return dict(source.tables)
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, (str, os.PathLike)):
        root = Path(source)
        if not root.is_dir():
            raise LinkError(f"source directory {str(root)!r} does not exist")
        if not (root / "jobs.parquet").exists() and not (root / "jobs").is_dir() and (root / "tables").is_dir():
            root = root / "tables"  # the layout of SyntheticEngland.to_parquet and synthetic.write_population
        out = {}
        for name in TABLE_COLUMNS:
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
class _Linker:
    """One linking run: a DuckDB connection, the views of the raw tables and the ledger."""

    def __init__(self, con, quiet: bool):
        self.con = con
        self.ledger: list[dict] = []
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
        return self.con.execute(q).fetchone()[0]

    def count(self, rel: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {rel}"))

    def add(self, step, table, rows_in, rows_out, reason, repaired=0, matched=None):
        rows_in, rows_out = int(rows_in), int(rows_out)
        self.ledger.append(dict(
            step=step, table=table, rows_in=rows_in, rows_out=rows_out, dropped=rows_in - rows_out,
            repaired=int(repaired), matched=None if matched is None else int(matched),
            match_rate=None if matched is None else (matched / rows_in if rows_in else math.nan),
            reason=reason,
        ))
        if self._bar is not None:
            self._bar.set_postfix_str(step)
            self._bar.update(1)

    def filter_steps(self, src: str, dst: str, steps: list[tuple[str, str, str]], table: str = "jobs",
                     materialize: bool = True):
        """Apply row filters in order in one pass: ``steps`` = [(name, drop_condition_sql, reason)]. A row is
        charged to the first step whose condition holds. Writes the survivors to ``dst``."""
        if not steps:
            self.sql(f"CREATE OR REPLACE TEMP VIEW {dst} AS SELECT * FROM {src}")
            return self.count(dst)
        case = "CASE " + " ".join(f"WHEN coalesce({c}, FALSE) THEN {i}" for i, (_, c, _) in
                                  enumerate(steps)) + " ELSE -1 END"
        counts = dict(self.sql(f"SELECT {case} AS k, count(*) FROM {src} GROUP BY k").fetchall())
        n = sum(counts.values())
        for i, (name, _, reason) in enumerate(steps):
            d = counts.get(i, 0)
            self.add(name, table, n, n - d, reason)
            n -= d
        kind = "TABLE" if materialize else "VIEW"
        self.sql(f"CREATE OR REPLACE TEMP {kind} {dst} AS SELECT * FROM {src} WHERE ({case}) = -1")
        return n

    # ---- input checks
    def register(self, tables: dict, columns: dict):
        self.present = {}
        for name, spec in TABLE_COLUMNS.items():
            obj = tables.get(name)
            if obj is None:
                if name in REQUIRED_TABLES:
                    raise LinkError(
                        f"required table is missing (tables given: {sorted(tables)})", table=name)
                continue
            raw = f"raw_{name}"
            if isinstance(obj, pd.DataFrame):
                import pyarrow as pa

                # Arrow scans are much faster than DuckDB's pandas scans of object and nullable columns
                try:
                    arrow = pa.Table.from_pandas(obj, preserve_index=False)
                except pa.ArrowException:  # invalid, mistyped or unsupported columns: let DuckDB scan pandas
                    arrow = obj
                self.con.register(raw, arrow)
            elif isinstance(obj, (str, os.PathLike)):
                p = Path(obj)
                if p.is_dir():
                    rel = f"read_parquet({_lit(p / '**' / '*.parquet')}, union_by_name=true)"
                elif p.is_file():
                    rel = f"read_parquet({_lit(p)})"
                else:
                    raise LinkError(f"no Parquet file or directory at {str(p)!r}", table=name)
                self.sql(f"CREATE OR REPLACE TEMP VIEW {raw} AS SELECT * FROM {rel}")
            else:
                raise LinkError(f"expected a DataFrame or a Parquet path, got {type(obj).__name__}",
                                table=name)
            raw_cols = [r[0] for r in self.sql(f"DESCRIBE {raw}").fetchall()]
            mapping = dict(columns.get(name, {}))
            unknown = set(mapping) - set(spec)
            if unknown:
                raise LinkError(f"columns= maps names the linker does not use: {sorted(unknown)} "
                                f"(it uses {list(spec)})", table=name)
            exprs = []
            for col in spec:
                real = mapping.get(col, col)
                if _IDENT.match(real):
                    if real not in raw_cols:
                        optional = name == "jobs" and col in ("soc",) or (
                            name in ("enterprises", "accounts", "place_characteristics")
                            and col not in _LOOKUP_KEYS.get(name, ()))
                        if optional and col not in mapping:
                            exprs.append(f"NULL AS {_q(col)}")
                            continue
                        src_note = f" (mapped from {col!r})" if real != col else ""
                        raise LinkError(f"required column {real!r}{src_note} is missing; columns present: "
                                        f"{raw_cols}", table=name, column=real)
                    exprs.append(f"{_q(real)} AS {_q(col)}")
                else:
                    exprs.append(f"({real}) AS {_q(col)}")
            extra = [c for c in raw_cols if c not in spec and c not in
                     {mapping.get(k, k) for k in spec}] if name == "jobs" else []
            try:
                self.sql(f"CREATE OR REPLACE TEMP VIEW v_{name} AS SELECT {', '.join(exprs)}"
                         + "".join(f", {_q(c)}" for c in extra) + f" FROM {raw}")
                desc = self.sql(f"DESCRIBE v_{name}").fetchall()
            except Exception as exc:  # a bad SQL expression in columns=
                raise LinkError(f"cannot read the table with the column mapping: {exc}", table=name) from exc
            types = {r[0]: r[1] for r in desc}
            for col, kind in spec.items():
                t = types[col]
                if t == '"NULL"' or t == "NULL":
                    continue
                if not _type_ok(kind, t):
                    ex = [r[0] for r in self.sql(f"SELECT DISTINCT {_q(col)} FROM v_{name} "
                                                 f"WHERE {_q(col)} IS NOT NULL LIMIT 5").fetchall()]
                    want = {"id": "an integer or string id", "int": "an integer", "num": "a number",
                            "str": "a string", "bool": "a boolean (or 0/1)"}[kind]
                    raise LinkError(f"has type {t}, expected {want}", table=name, column=col, ids=ex)
            self.present[name] = types

        # keys shared between tables have one type
        for key, places in _SHARED_KEYS.items():
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
        for name, keys in _LOOKUP_KEYS.items():
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
                raise LinkError(f"duplicate keys in a lookup: ({', '.join(keys)}) must be unique",
                                table=name, column=",".join(keys),
                                ids=[r if len(r) > 1 else r[0] for r in dup])

    def check_years(self, years):
        y0, y1 = self.sql("SELECT min(year), max(year) FROM v_jobs").fetchone()
        if y0 is None:
            raise LinkError("the table has no rows", table="jobs")
        if years is None:
            years = (int(y0), int(y1))
        lo, hi = int(years[0]), int(years[1])
        if lo > hi:
            raise ValueError(f"build_panel: years={years} must be (first, last) with first <= last")
        if hi < y0 or lo > y1:
            raise LinkError(f"years {lo}-{hi} are outside the years in the data ({y0}-{y1})",
                            table="jobs", column="year", ids=[lo, hi])
        lo, hi = max(lo, int(y0)), min(hi, int(y1))
        have = {r[0] for r in self.sql("SELECT year FROM v_cpi WHERE cpih > 0").fetchall()}
        need = [r[0] for r in self.sql(f"SELECT DISTINCT year FROM v_jobs WHERE year BETWEEN {lo} AND {hi} "
                                       "ORDER BY year").fetchall()]
        missing = [y for y in need if y not in have]
        if missing:
            raise LinkError(f"no positive CPI index for {len(missing)} year(s) of jobs, so pay cannot be "
                            "deflated", table="cpi", column="cpih", ids=missing)
        return lo, hi, need

    def entref_map(self, max_depth: int = 100):
        """Resolve continuity chains to their last reference: ``ent_map(old_entref, entref)``."""
        if "entref_continuity" not in self.present:
            t = self.present["jobs"]["entref"]
            t = "BIGINT" if t in ('"NULL"', "NULL") or t.startswith("ENUM") else t
            self.sql(f"CREATE OR REPLACE TEMP TABLE ent_map AS SELECT NULL::{t} AS old_entref, "
                     f"NULL::{t} AS entref, 0 AS depth WHERE FALSE")
            self.n_reorganisations = 0
            return
        self.sql(f"""
            CREATE OR REPLACE TEMP TABLE ent_map AS
            WITH RECURSIVE chain(start, cur, depth) AS (
                SELECT old_entref, new_entref, 1 FROM v_entref_continuity
                UNION ALL
                SELECT c.start, e.new_entref, c.depth + 1
                FROM chain c JOIN v_entref_continuity e ON e.old_entref = c.cur
                WHERE c.depth < {max_depth}
            )
            SELECT start AS old_entref, arg_max(cur, depth) AS entref, max(depth) AS depth
            FROM chain GROUP BY start
        """)
        cyc = self.sql(f"SELECT old_entref FROM ent_map WHERE depth >= {max_depth} ORDER BY 1 LIMIT 5"
                       ).fetchall()
        if cyc:
            raise LinkError("enterprise continuity chains form a cycle (or are longer than "
                            f"{max_depth} links)", table="entref_continuity", column="old_entref",
                            ids=[r[0] for r in cyc])
        self.n_reorganisations = self.count("ent_map")


def _connect(memory_limit, temp_directory, threads):
    import duckdb

    config = {"preserve_insertion_order": False}
    if memory_limit is not None:
        config["memory_limit"] = str(memory_limit)
    if threads is not None:
        config["threads"] = int(threads)
    if temp_directory is not None:
        Path(temp_directory).mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    return duckdb.connect(":memory:", config=config)


def build_panel(
    source,
    *,
    years: tuple[int, int] | None = None,
    pay: str = "hourly",
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
    memory_limit: str | None = None,
    temp_directory: str | os.PathLike | None = None,
    threads: int | None = None,
    bucket_rows: int | None = None,
    quiet: bool = True,
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
    pay : "hourly" or "weekly"
        The pay measure trimmed (``hw`` or ``ww``); both are returned.
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
        ``prosperity.synthetic``).
    ashe_rule : str, optional
        DuckDB SQL condition on ``piden`` selecting the ASHE sample.
    base_year : int, optional
        Prices of ``hw`` and ``ww`` (default: the last year linked).
    columns : {table: {package column: real column or SQL expression}}, optional
        Names in the real extracts (see :data:`REAL_DATA_COLUMNS`).
    output : path, optional
        Write ``workers.parquet``, ``firms.parquet``, ``places.parquet`` and ``ledger.parquet`` there instead
        of returning ``workers`` and ``firms`` in memory.
    memory_limit, temp_directory, threads : DuckDB settings
        E.g. ``memory_limit="8GB"``: DuckDB spills joins, sorts and aggregations to ``temp_directory``
        beyond it.
    bucket_rows : int, optional
        Job rows linked at a time. Above it, the jobs are split into ranges of ``piden`` (written to Parquet
        in ``temp_directory``) and de-duplicated, matched to their main job and workplace, attached and
        written one range at a time, so memory stays within ``memory_limit`` whatever the number of rows;
        the panels and the ledger are the same. Default: ``memory_limit`` / 400 bytes (about 15 million rows
        for ``"6GB"``).
    quiet : bool
        Hide the progress bar.

    Returns
    -------
    LinkedData

    Raises
    ------
    LinkError
        A table or column is missing, a column has the wrong type, a lookup has duplicate keys, the years
        asked for are not in the data or the CPI does not cover them.
    """
    if pay not in ("hourly", "weekly"):
        raise ValueError(f"build_panel: pay must be 'hourly' or 'weekly', not {pay!r}")
    if level not in ("lad", "itl3", "region"):
        raise ValueError(f"build_panel: level must be 'lad', 'itl3' or 'region', not {level!r}")
    if sample not in (None, "ashe"):
        raise ValueError(f"build_panel: sample must be None or 'ashe', not {sample!r}")
    if trim is not None and not isinstance(trim, Mapping):
        lo_q, hi_q = (float(t) for t in trim)
        if not 0 <= lo_q < hi_q <= 1:
            raise ValueError(f"build_panel: trim quantiles must satisfy 0 <= lower < upper <= 1, got {trim}")
    if ages is not None and ages[0] > ages[1]:
        raise ValueError(f"build_panel: ages={ages} must be (lo, hi) with lo <= hi")
    tables = _resolve_source(source)
    columns = {} if columns is None else {k: dict(v) for k, v in columns.items()}
    unknown_tables = set(columns) - set(TABLE_COLUMNS)
    if unknown_tables:
        raise LinkError(f"columns= names unknown tables {sorted(unknown_tables)}; tables: {list(TABLE_COLUMNS)}")
    if sample == "ashe" and ashe_rule is None:
        ashe_rule = _default_ashe_rule()

    own_tmp = None
    if memory_limit is not None and temp_directory is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="prosperity_link_")
        temp_directory = own_tmp.name
    con = _connect(memory_limit, temp_directory, threads)
    lk = _Linker(con, quiet)
    lk.temp_directory = None if temp_directory is None else str(temp_directory)
    t0 = time.perf_counter()
    try:
        if not quiet:
            from tqdm.auto import tqdm

            lk._bar = tqdm(total=22, desc="link", leave=False)
        lk.register(tables, columns)
        lk.check_keys()
        y0, y1, year_list = lk.check_years(years)
        if base_year is None:
            ref = [r[0] for r in lk.sql("SELECT year FROM v_cpi WHERE abs(cpih - 100) < 1e-9 ORDER BY year"
                                        ).fetchall()]
            base_year = ref[0] if ref else y1
        cpi_years = {r[0] for r in lk.sql("SELECT year FROM v_cpi").fetchall()}
        if base_year not in cpi_years:
            raise LinkError("base_year is not in the CPI table", table="cpi", column="year", ids=[base_year])
        lk.entref_map()
        result = _run(lk, y0=y0, y1=y1, pay=pay, full_time_only=full_time_only, ages=ages, trim=trim,
                      max_hours=max_hours, level=level, sample=sample, ashe_rule=ashe_rule,
                      base_year=int(base_year), output=output, bucket_rows=bucket_rows)
        options = dict(years=(y0, y1), pay=pay, full_time_only=full_time_only, ages=ages, trim=trim,
                       max_hours=max_hours, level=level, sample=sample, base_year=int(base_year))
        workers, firms, places, ledger, paths = result
        options["seconds"] = round(time.perf_counter() - t0, 2)
        return LinkedData(workers=workers, firms=firms, places=places, ledger=ledger, options=options,
                          paths=paths)
    finally:
        if lk._bar is not None:
            lk._bar.close()
        con.close()
        import shutil

        for d in lk.scratch:
            shutil.rmtree(d, ignore_errors=True)
        if own_tmp is not None:
            own_tmp.cleanup()


def _default_ashe_rule() -> str:
    """The synthetic module's ASHE rule as SQL (kept in one place: ``synthetic.ASHE_RULE_SQL`` if defined)."""
    try:
        from . import synthetic

        rule = getattr(synthetic, "ASHE_RULE_SQL", None)
        if rule:
            return rule
    except ImportError:  # pragma: no cover
        pass
    # ASHE samples people whose National Insurance number ends in a fixed pair of digits (1%); the synthetic
    # England keeps the people whose piden ends in 14 (prosperity.synthetic.england(sample="ashe")).
    return "piden % 100 = 14"


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


def _run(lk: _Linker, *, y0, y1, pay, full_time_only, ages, trim, max_hours, level, sample, ashe_rule,
         base_year, output, bucket_rows=None):
    """The linking rules. Steps that look within a person-year (exact duplicates, pay and hours, main job,
    workplace, sample restrictions) run bucket by bucket over ranges of ``piden`` when the jobs exceed
    ``bucket_rows`` (default: ``memory_limit`` / 400 bytes), so every join, window and aggregation fits in
    memory; the year's trimming quantiles are then computed over all buckets, and the panel is attached and
    written bucket by bucket in ``piden, year`` order. The ledger is the sum over buckets: the same rules
    and the same rows as one pass over all jobs."""
    has = lk.present
    jobs_cols = [r[0] for r in lk.sql("DESCRIBE v_jobs").fetchall()]
    allc = ", ".join(("coalesce(m.entref, j.entref) AS entref" if c == "entref" else f"j.{_q(c)}")
                     for c in jobs_cols)

    # years, ASHE sample, reorganised references ------------------------------------------------------------
    in_sample = f"({ashe_rule})" if sample == "ashe" else "TRUE"
    n_raw, n_years, n_sample, n_reorg = lk.sql(f"""
        SELECT count(*), count(*) FILTER (WHERE year BETWEEN {y0} AND {y1}),
               count(*) FILTER (WHERE year BETWEEN {y0} AND {y1} AND {in_sample}),
               count(m.old_entref) FILTER (WHERE year BETWEEN {y0} AND {y1} AND {in_sample})
        FROM v_jobs j LEFT JOIN ent_map m ON m.old_entref = j.entref""").fetchone()
    lk.add("years", "jobs", n_raw, n_years, f"job-years outside {y0}-{y1}")
    if sample == "ashe":
        lk.add("ashe_sample", "jobs", n_years, n_sample, f"person not in the ASHE sample ({ashe_rule})")
    lk.add("reorganised_entref", "jobs", n_sample, n_sample,
           "old enterprise reference replaced by the last reference of its continuity chain "
           f"({lk.n_reorganisations:,} references re-mapped)", repaired=n_reorg)
    src = (f"SELECT {allc} FROM v_jobs j LEFT JOIN ent_map m ON m.old_entref = j.entref "
           f"WHERE j.year BETWEEN {y0} AND {y1} AND {in_sample.replace('piden', 'j.piden')}")

    # enterprises, local units (with their workplace) and accounts keyed by the resolved reference ------------
    _resolved_business_tables(lk, y0, y1)

    # the rules applied within person-years, bucket by bucket ------------------------------------------------
    if bucket_rows is None:
        bucket_rows = max(_memory_bytes(lk) // _BYTES_PER_JOB_ROW, 10**6)
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

    valid_steps = [
        ("nonpositive_pay", "gpay IS NULL OR gpay <= 0", "gross weekly pay missing, zero or negative"),
        ("implausible_hours", f"hours IS NULL OR hours <= 0 OR hours > {float(max_hours)}",
         f"paid weekly hours missing, not positive or above {max_hours:g}"),
    ]
    work_steps = [
        ("missing_luref", "luref IS NULL", "no local-unit reference: workplace unknown"),
        ("unknown_luref", "NOT _lu_found", "local unit not in the business register that year: workplace unknown"),
        ("unmatched_postcode", "NOT _pc_found", "local unit's postcode missing or not in the postcode directory"),
    ]
    restrict = []
    if full_time_only:
        restrict.append(("full_time", "ft IS NULL OR CAST(ft AS INTEGER) <> 1", "part-time main job"))
    if ages is not None:
        restrict.append(("age_range", f"age IS NULL OR age < {ages[0]} OR age > {ages[1]}",
                         f"age outside {ages[0]}-{ages[1]}"))

    def case(steps):
        return ("CASE " + " ".join(f"WHEN coalesce({c}, FALSE) THEN {i}" for i, (_, c, _) in enumerate(steps))
                + " ELSE -1 END") if steps else "-1"

    n_dedup = n_main = 0
    valid_drop = [0] * len(valid_steps)
    later_drop = [0] * (len(work_steps) + len(restrict))
    n_missing_ent = 0
    works = []
    for b, source in enumerate(sources):
        lk.sql(f"CREATE OR REPLACE TEMP TABLE j_dedup AS SELECT DISTINCT * FROM {source}")
        for k, c in lk.sql(f"SELECT {case(valid_steps)} AS k, count(*) FROM j_dedup GROUP BY k").fetchall():
            n_dedup += c
            if k >= 0:
                valid_drop[k] += c
        lk.sql(f"""
            CREATE OR REPLACE TEMP TABLE j_main AS
            SELECT v.*, lu.luref IS NOT NULL AS _lu_found, coalesce(lu._pc_found, FALSE) AS _pc_found,
                   lu.entref AS lu_entref, lu.lad, lu.itl3, lu.region
            FROM (SELECT * FROM j_dedup WHERE ({case(valid_steps)}) = -1
                  QUALIFY row_number() OVER (PARTITION BY piden, year
                                             ORDER BY gpay DESC, luref ASC NULLS LAST, hours DESC,
                                                      entref ASC NULLS LAST) = 1) v
            LEFT JOIN lu_r lu ON lu.luref = v.luref AND lu.year = v.year
        """)
        lk.sql("DROP TABLE j_dedup")
        later = case(work_steps + restrict)
        for k, c, miss in lk.sql(f"SELECT {later} AS k, count(*), count(*) FILTER (entref IS NULL) "
                                 "FROM j_main GROUP BY k").fetchall():
            n_main += c
            if k >= 0:
                later_drop[k] += c
            if k < 0 or k >= len(work_steps):
                n_missing_ent += miss
        real = f"""
            SELECT j.* EXCLUDE (_lu_found, _pc_found, entref), coalesce(j.entref, j.lu_entref) AS entref,
                   j.gpay / j.hours * b.cpih / c.cpih AS hw, j.gpay * b.cpih / c.cpih AS ww
            FROM j_main j
            JOIN v_cpi c ON c.year = j.year
            CROSS JOIN (SELECT cpih FROM v_cpi WHERE year = {base_year}) b
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

    n = n_sample
    lk.add("exact_duplicates", "jobs", n, n_dedup, "row identical to another row on every column")
    n = n_dedup
    for (name, _, reason), d in zip(valid_steps, valid_drop):
        lk.add(name, "jobs", n, n - d, reason)
        n -= d
    n_valid = n
    lk.add("main_job", "jobs", n_valid, n_main,
           "secondary job: not the highest-paid job of the person-year (ties: smaller luref)")
    n = n_main
    for (name, _, reason), d in zip(work_steps, later_drop[:len(work_steps)]):
        lk.add(name, "jobs", n, n - d, reason)
        n -= d
    n_w = n
    lk.ledger[-1]["matched"] = n_w
    lk.ledger[-1]["match_rate"] = n_w / n_main if n_main else math.nan
    lk.ledger[-1]["reason"] += f"; workplace found for {n_w:,} of {n_main:,} main jobs"
    lk.add("missing_entref", "jobs", n_w, n_w,
           "no enterprise reference: repaired with the (resolved) enterprise of the job's local unit",
           repaired=n_missing_ent)
    for (name, _, reason), d in zip(restrict, later_drop[len(work_steps):]):
        lk.add(name, "jobs", n, n - d, reason)
        n -= d
    n_r = n
    lk.add("deflate", "jobs", n_r, n_r, f"real pay at {base_year} prices (CPIH); no rows dropped", matched=n_r)

    # trimming: the year's quantiles over all buckets ----------------------------------------------------------
    measure = "hw" if pay == "hourly" else "ww"
    all_work = works[0] if tmp is None else \
        "read_parquet([" + ", ".join(_lit(tmp / f"work_{b:04d}.parquet") for b in range(len(works))) + "])"
    if trim is None:
        trim_cond, trim_reason = "FALSE", None
    elif isinstance(trim, Mapping):
        lo, hi = float(trim.get("min", -math.inf)), float(trim.get("max", math.inf))
        conds = ([f"{measure} < {lo!r}"] if np.isfinite(lo) else []) + (
            [f"{measure} > {hi!r}"] if np.isfinite(hi) else [])
        trim_cond = " OR ".join(conds) or "FALSE"
        trim_reason = f"real {pay} pay outside [{lo:g}, {hi:g}] GBP ({base_year} prices)"
    else:
        lo_q, hi_q = trim
        q = f"quantile_cont({measure}, {lo_q}) AS _lo, quantile_cont({measure}, {hi_q}) AS _hi"
        if tmp is None:
            lk.sql(f"CREATE OR REPLACE TEMP TABLE bounds AS SELECT year, {q} FROM {all_work} GROUP BY year")
        else:  # one year at a time: a quantile holds its year's values in memory
            rows = []
            for (y,) in lk.sql(f"SELECT DISTINCT year FROM {all_work} ORDER BY year").fetchall():
                rows.append((y, *lk.sql(f"SELECT {q} FROM {all_work} WHERE year = {y}").fetchone()))
            lk.sql("CREATE OR REPLACE TEMP TABLE bounds (year BIGINT, _lo DOUBLE, _hi DOUBLE)")
            if rows:
                lk.con.executemany("INSERT INTO bounds VALUES (?, ?, ?)", rows)
        trim_cond = f"{measure} < _lo OR {measure} > _hi"
        trim_reason = f"real {pay} pay below the {lo_q:.1%} or above the {hi_q:.1%} quantile of its year"
    bounded = (lambda w: f"(SELECT j.*, b._lo, b._hi FROM {w} j JOIN bounds b ON b.year = j.year)") \
        if trim is not None and not isinstance(trim, Mapping) else (lambda w: w)

    # the worker panel, bucket by bucket: attach enterprise, accounts and place --------------------------------
    place_col = {"lad": "lad", "itl3": "itl3", "region": "region"}[level]
    places_src = ('v_place_characteristics' if 'place_characteristics' in has else
                  '(SELECT NULL::VARCHAR AS lad, NULL::INTEGER AS year WHERE FALSE)')
    writer = None
    paths = {}
    if output is not None:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        paths["workers"] = out / "workers.parquet"
    n_trim = m_ent = m_acc = m_plc = 0
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
        n_trim += lk.count(f"{bounded(w)} WHERE coalesce({trim_cond}, FALSE)") if trim is not None else 0
        ce, ca, cp = lk.sql("SELECT count(*) FILTER (_ent), count(*) FILTER (_acc), count(*) FILTER (_plc) "
                            "FROM wk").fetchone()
        m_ent, m_acc, m_plc = m_ent + ce, m_acc + ca, m_plc + cp
        verb = "CREATE OR REPLACE TEMP TABLE {t} AS" if b == 0 else "INSERT INTO {t}"
        lk.sql(verb.format(t="w_firm") + " SELECT entref, year, count(*) AS n, sum(lhw) AS s FROM wk GROUP BY ALL")
        lk.sql(verb.format(t="w_place") + " SELECT place, year, count(*) AS n, sum(lhw) AS s FROM wk GROUP BY ALL")
        panel = "SELECT * EXCLUDE (_ent, _acc, _plc) FROM wk"
        if output is None:
            lk.sql(verb.format(t="workers") + f" {panel}")
        else:
            import pyarrow.parquet as pq

            reader = lk.con.sql(f"{panel} ORDER BY piden, year").to_arrow_reader(1_000_000)
            if writer is None:
                writer = pq.ParquetWriter(paths["workers"], reader.schema)
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
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    n_f = n_r - n_trim
    if trim_reason is not None:
        lk.add("trim", "jobs", n_r, n_f, trim_reason)
    lk.add("attach_enterprise", "jobs", n_f, n_f,
           "industry (SIC 2007 section) and size from the enterprise-year (enterprises)" +
           ("" if "enterprises" in has else ": table not supplied"), matched=m_ent)
    lk.add("attach_accounts", "jobs", n_f, n_f,
           "GVA from the business survey (accounts): all large enterprises, a sample of small ones" +
           ("" if "accounts" in has else ": table not supplied"), matched=m_acc)
    lk.add("attach_place", "jobs", n_f, n_f,
           "characteristics of the workplace district-year (place_characteristics)" +
           ("" if "place_characteristics" in has else ": table not supplied"), matched=m_plc)
    for name in ("local_units", "enterprises", "accounts"):
        if name in has:
            n, k = lk.sql(f"SELECT count(*), count(m.old_entref) FROM v_{name} t "
                          "LEFT JOIN ent_map m ON m.old_entref = t.entref").fetchone()
            lk.add("reorganised_entref", name, n, n,
                   "old enterprise reference replaced by the last reference of its continuity chain",
                   repaired=k)

    firms_sql = _firms_sql(lk, y0, y1)
    lk.sql(f"CREATE OR REPLACE TEMP TABLE places AS {_places_sql(lk, level, y0, y1)}")
    ledger = pd.DataFrame(lk.ledger, columns=["step", "table", "rows_in", "rows_out", "dropped", "repaired",
                                               "matched", "match_rate", "reason"])
    ledger["matched"] = ledger["matched"].astype("Int64")
    ledger["match_rate"] = ledger["match_rate"].astype(float)

    places = _tidy(lk.sql(f"SELECT * FROM places ORDER BY {level}, year").df())
    if output is not None:
        for name, q in (("firms", firms_sql + " ORDER BY entref, year"),
                        ("places", f"SELECT * FROM places ORDER BY {level}, year")):
            paths[name] = out / f"{name}.parquet"
            lk.sql(f"COPY ({q}) TO {_lit(paths[name])} (FORMAT parquet)")
        paths["ledger"] = out / "ledger.parquet"
        ledger.to_parquet(paths["ledger"], index=False)
        return None, None, places, ledger, paths
    workers = _tidy(lk.sql("SELECT * FROM workers ORDER BY piden, year").df())
    firms = _tidy(lk.sql(firms_sql + " ORDER BY entref, year").df())
    return workers, firms, places, ledger, paths


def _rekey_sql(lk: _Linker, name: str, order: str, y0, y1) -> str:
    """Rows of ``v_{name}`` in ``y0..y1`` keyed by the resolved enterprise reference (``entref``; the raw one
    in ``entref_raw``). If a reorganisation leaves two rows for one resolved enterprise-year, the row filed
    under the resolved reference itself is kept, else the one with the largest ``order``. Only the few rows
    carrying an old reference are windowed, so this stays cheap on a population-sized register."""
    yr = f"t.year BETWEEN {y0} AND {y1}"
    return f"""
        WITH ch AS (
            SELECT m.entref AS entref, t.* EXCLUDE (entref), t.entref AS entref_raw
            FROM v_{name} t JOIN ent_map m ON m.old_entref = t.entref
            WHERE {yr}
            QUALIFY row_number() OVER (PARTITION BY m.entref, t.year
                                       ORDER BY t.{order} DESC NULLS LAST, t.entref) = 1
        ), clash AS (
            SELECT t.entref, t.year FROM v_{name} t SEMI JOIN ch ON ch.entref = t.entref AND ch.year = t.year
        )
        SELECT t.entref, t.* EXCLUDE (entref), t.entref AS entref_raw
        FROM v_{name} t ANTI JOIN ent_map m ON m.old_entref = t.entref
        WHERE {yr}
        UNION ALL
        SELECT ch.* FROM ch ANTI JOIN clash ON clash.entref = ch.entref AND clash.year = ch.year
    """


def _resolved_business_tables(lk: _Linker, y0, y1):
    """``ent_r``, ``lu_r``, ``acc_r``: enterprise-keyed tables of the linked years re-keyed by the resolved
    reference (see :func:`_rekey_sql`); ``lu_r`` carries each local unit's district, ITL3 and region."""
    has = lk.present
    lk.sql(_sic_table_sql())
    if "enterprises" in has:
        lk.sql(f"""
            CREATE OR REPLACE TEMP TABLE ent_r AS
            SELECT e.*, d.section AS industry, {_size_band_sql('e.employment')} AS size_band
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
    lk.sql(f"""
        CREATE OR REPLACE TEMP TABLE lu_r AS
        SELECT l.luref, coalesce(m.entref, l.entref) AS entref, l.year, l.employment, pc.lad, pc.itl3, pc.region,
               pc.postcode IS NOT NULL AS _pc_found
        FROM v_local_units l
        LEFT JOIN ent_map m ON m.old_entref = l.entref
        LEFT JOIN v_postcode_lookup pc ON pc.postcode = l.postcode
        WHERE l.year BETWEEN {y0} AND {y1}
    """)


def _firms_sql(lk: _Linker, y0, y1) -> str:
    # the largest site (ties to the smaller luref): one row per enterprise-year by a window over the register
    # (faster than arg_max over a struct on 20+ million enterprise-years)
    return f"""
        WITH sites AS (
            SELECT entref, year, count(*) OVER (PARTITION BY entref, year) AS sites,
                   {{'luref': luref, 'lad': lad, 'itl3': itl3, 'region': region}} AS hq
            FROM lu_r
            QUALIFY row_number() OVER (PARTITION BY entref, year
                                       ORDER BY coalesce(employment, -1) DESC, luref ASC) = 1
        ), w AS (
            SELECT entref, year, sum(n) AS n_workers, sum(s) / sum(n) AS mean_lhw FROM w_firm GROUP BY entref, year
        )
        SELECT e.entref, e.year, e.sic07, e.industry, e.employment, e.size_band, e.turnover, e.foreign_owned,
               coalesce(s.sites, 0) AS sites, s.hq.luref AS hq_luref, s.hq.lad AS lad, s.hq.itl3 AS itl3,
               s.hq.region AS region,
               a.gva, CASE WHEN e.employment > 0 THEN a.gva / e.employment END AS gva_per_worker,
               a.entref IS NOT NULL AS surveyed,
               coalesce(w.n_workers, 0) AS n_workers, w.mean_lhw
        FROM ent_r e
        LEFT JOIN sites s ON s.entref = e.entref AND s.year = e.year
        LEFT JOIN acc_r a ON a.entref = e.entref AND a.year = e.year
        LEFT JOIN w ON w.entref = e.entref AND w.year = e.year
    """


def _places_sql(lk: _Linker, level: str, y0, y1) -> str:
    chars = ["density", "transport_access", "housing_cost", "amenities"]
    if "place_characteristics" in lk.present:
        if level == "lad":
            pch = f"SELECT lad AS place, year, {', '.join(chars)} FROM v_place_characteristics"
        else:
            # employment-weighted means of the districts in the area
            wavg = ", ".join(
                f"sum(p.{c} * coalesce(e.emp, 0)) / nullif(sum(CASE WHEN p.{c} IS NOT NULL "
                f"THEN coalesce(e.emp, 0) END), 0) AS {c}" for c in chars)
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
        emp AS (SELECT {level} AS place, year, sum(employment) AS employment, count(*) AS sites,
                       count(DISTINCT entref) AS enterprises
                FROM lu_r WHERE {level} IS NOT NULL GROUP BY {level}, year),
        w AS (SELECT place, year, sum(n) AS n_workers, sum(s) / sum(n) AS mean_lhw FROM w_place
              GROUP BY place, year),
        keys AS (SELECT place, year FROM pch UNION SELECT place, year FROM emp UNION SELECT place, year FROM w)
        SELECT k.place AS {level}, k.year, {', '.join('pch.' + c for c in chars)},
               coalesce(emp.employment, 0) AS employment, coalesce(emp.sites, 0) AS sites,
               coalesce(emp.enterprises, 0) AS enterprises, coalesce(w.n_workers, 0) AS n_workers, w.mean_lhw
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

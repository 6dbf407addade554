"""A dry run of an extract before a long linking run: :func:`check_extract` reads only the Parquet schema (the file
footers: column types, row counts and the row groups' min / max / null-count statistics) and a small sample of
rows of each table, and reports, per table and required column, what :func:`prosperity.link.build_panel` would
find and do: present or not (and under which name), its type and whether the linker accepts it, its range, its
missing rate, a distinct-count estimate in the sample, and the action the linker would take. The linker's
required columns come from its own schema (:data:`prosperity.link.schema.TABLE_COLUMNS`, ``REQUIRED_TABLES``,
``REAL_DATA_COLUMNS``) for the ASHE / BSD / ABS source, and from :data:`prosperity.synthetic.RTI_COLUMNS` for the
PAYE RTI / LEED source (issue 16), linked by ``build_panel(..., profile="paye_rti")``.

Reading the footers costs the same whatever the table's length, and the sample is at most ``sample_rows`` rows of
a few evenly spaced row groups, so the check runs in seconds on population-sized files (``benchmarks`` record
the measured time and memory on a 30M+ row synthetic extract).

The type rules mirror the linker's (``id``: integer or string; ``int``; ``num``: integer or floating point;
``str``; ``bool``: boolean or integer 0/1; ``any``), applied here to Arrow types rather than DuckDB's, because
only the footer is read. Data sources: UK Data Service SN 6689 (ASHE), SN 6697 (BSD), SN 7451 (ABS); HMRC,
*Guidance on RTI Data Items* (FPS data items); ONS blog, 1 July 2025, "Data linkage to shine new light on UK
labour market".
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import synthetic
from .._checks import InputTypeError, fail, require_choice
from .._results import Result
from .core import build_panel
from .rules import rules as _rules
from .schema import LOOKUP_KEYS, REAL_DATA_COLUMNS, REQUIRED_TABLES, TABLE_COLUMNS

__all__ = ["ExtractCheck", "check_extract", "SOURCES"]

#: The sources an extract can be checked against.
SOURCES = ("ashe", "paye_rti")

_WANT = {"id": "an integer or string id", "int": "an integer", "num": "a number", "str": "a string",
         "bool": "a boolean (or 0/1)", "any": "any type"}
_PC = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]? [0-9][A-Z]{2}$")


def _spec(source: str) -> tuple[dict, tuple]:
    """Required columns (``{table: {column: kind}}``) and required tables of a source."""
    if source == "ashe":
        return TABLE_COLUMNS, REQUIRED_TABLES
    shared = {t: dict(c) for t, c in TABLE_COLUMNS.items() if t != "jobs"}
    for table, cols in synthetic.RTI_COLUMNS.items():
        shared.setdefault(table, {}).update({c: v[0] for c, v in cols.items()})
    order = list(synthetic.RTI_COLUMNS) + [t for t in shared if t not in synthetic.RTI_COLUMNS]
    return {t: shared[t] for t in order}, synthetic.RTI_REQUIRED_TABLES


def _arrow_kind(t: pa.DataType) -> str:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "num"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "str"
    if pa.types.is_boolean(t):
        return "bool"
    return str(t)


def _type_ok(kind: str, t: pa.DataType) -> bool:
    k = _arrow_kind(t)
    return {"id": k in ("int", "str"), "int": k == "int", "num": k in ("int", "num"), "str": k == "str",
            "bool": k in ("bool", "int"), "any": True}[kind]


class _Source:
    """One table: its Arrow schema, row count, whole-table null counts and min / max (from the footers when it is
    Parquet), and a sample of rows."""

    def __init__(self, obj, name: str, columns: list[str], sample_rows: int):
        self.name = name
        if isinstance(obj, pd.DataFrame):
            self._frame(obj, columns, sample_rows)
        elif isinstance(obj, (str, Path)):
            self._parquet(Path(obj), columns, sample_rows)
        else:
            fail(f"must be a DataFrame or a Parquet path, got {type(obj).__name__}", name, kind=InputTypeError)

    def _frame(self, df: pd.DataFrame, columns, sample_rows):
        self.where = "DataFrame"
        self.rows = len(df)
        take = np.unique(np.linspace(0, max(len(df) - 1, 0), min(sample_rows, len(df))).astype(np.int64))
        sample = df.iloc[take].reset_index(drop=True)
        fields_ = []
        for c in sample.columns:  # the Arrow type the column would be written with (null type: mixed values)
            try:
                fields_.append(pa.field(str(c), pa.array(sample[c], from_pandas=True).type))
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                fields_.append(pa.field(str(c), pa.null()))
        self.schema = pa.schema(fields_)
        self.sample = sample[[c for c in columns if c in df.columns]]
        self.stats = {}  # computed from the sample (a DataFrame in memory is not scanned either)

    def _parquet(self, path: Path, columns, sample_rows):
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        if not files:
            fail(f"no Parquet file under {path}", self.name)
        self.where = str(path)
        pfs = []
        for f in files:
            try:
                pfs.append(pq.ParquetFile(f))
            except (OSError, pa.ArrowException) as exc:
                fail(f"{f} is not a readable Parquet file ({type(exc).__name__}: {exc}); the linker cannot read it "
                     "either", self.name)
        self.schema = pfs[0].schema_arrow
        self.rows = sum(p.metadata.num_rows for p in pfs)
        present = [c for c in columns if c in self.schema.names]
        # whole-table statistics from the footers: null counts, min, max (None when a row group lacks them)
        stats = {c: {"nulls": 0, "min": None, "max": None, "complete": True} for c in present}
        groups = []
        for p in pfs:
            md = p.metadata
            idx = {md.schema.column(j).name: j for j in range(md.num_columns)}
            for g in range(md.num_row_groups):
                rg = md.row_group(g)
                groups.append((p, g, rg.num_rows))
                for c in present:
                    st = rg.column(idx[c]).statistics if c in idx else None
                    s = stats[c]
                    if st is None or not st.has_null_count:
                        s["complete"] = False
                        continue
                    s["nulls"] += st.null_count
                    if st.has_min_max:
                        lo, hi = st.min, st.max
                        s["min"] = lo if s["min"] is None else min(s["min"], lo)
                        s["max"] = hi if s["max"] is None else max(s["max"], hi)
                    elif rg.num_rows > st.null_count:
                        s["complete"] = False
        self.stats = stats
        # the sample: the first rows of up to 8 evenly spaced row groups
        picks = [groups[i] for i in np.unique(np.linspace(0, len(groups) - 1, min(8, len(groups))).astype(int))] \
            if groups else []
        per = max(1, -(-sample_rows // max(len(picks), 1)))
        parts = []
        for p, g, _ in picks:
            batch = next(p.iter_batches(batch_size=per, row_groups=[g], columns=present), None)
            if batch is not None:
                parts.append(batch.to_pandas())
        sample = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=present)
        self.sample = sample.head(sample_rows)


def _tables_of(path_or_tables) -> dict:
    """``{table: DataFrame or Parquet path}`` from a folder (``{table}.parquet``, ``{table}/`` parts, or a
    ``tables/`` subfolder as written by ``synthetic``), a dict, or anything with a ``tables`` dict."""
    if hasattr(path_or_tables, "tables") and isinstance(path_or_tables.tables, dict):
        return dict(path_or_tables.tables)
    if isinstance(path_or_tables, dict):
        return dict(path_or_tables)
    if isinstance(path_or_tables, (str, Path)):
        d = Path(path_or_tables)
        if not d.is_dir():
            fail(f"check_extract: {d} is not a folder of Parquet tables")
        if (d / "tables").is_dir():
            d = d / "tables"
        out = {}
        for p in sorted(d.iterdir()):
            if p.suffix == ".parquet" or (p.is_dir() and any(p.rglob("*.parquet"))):
                out[p.stem if p.suffix == ".parquet" else p.name] = p
        return out
    fail(f"check_extract: needs a folder, a dict of tables or a SyntheticEngland, got {type(path_or_tables).__name__}",
         kind=InputTypeError)


def _scalar(x):
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, (pd.Timestamp,)):
        return str(x.date())
    return x


@dataclass(frozen=True, repr=False)
class ExtractCheck(Result):
    """What :func:`check_extract` found.

    ``table`` (and ``to_frame()``): one row per table and required column: ``table, column, kind`` (what the
    linker needs), ``present``, ``found`` (the extract's name for it), ``dtype``, ``type_ok``, ``min``, ``max``,
    ``missing_rate``, ``stats_from`` (``"footer"``: whole-table Parquet statistics; ``"sample"``),
    ``distinct_in_sample``, ``status`` (``ok``, ``warn``, ``fail``) and ``action`` (what the linker would do).
    ``tables``: one row per table (``table, required, present, rows, columns, where``). ``verdict``: ``"ready"``,
    ``"ready with warnings"`` or ``"will fail"``. ``rules``: the linker's row-level rules on the jobs
    (:data:`prosperity.link.RULES`, stages ``select`` and ``valid``) evaluated on the sample: ``rule, condition,
    sample_rows, caught, share, reason`` (``caught`` is None where the rule could not be evaluated, with why)."""

    table: pd.DataFrame
    tables: pd.DataFrame
    source: str
    sample_rows: int
    verdict: str
    notes: tuple = ()
    rules: pd.DataFrame | None = None

    @property
    def ok(self) -> bool:
        """No check fails (warnings allowed)."""
        return self.verdict != "will fail"

    def problems(self) -> pd.DataFrame:
        """The rows whose status is not ``ok``."""
        return self.table[self.table["status"] != "ok"].reset_index(drop=True)

    def summary(self) -> str:
        t = self.table
        n_fail, n_warn = int((t["status"] == "fail").sum()), int((t["status"] == "warn").sum())
        lines = [f"ExtractCheck ({self.source}): {self.verdict}; {len(self.tables)} tables, {len(t)} required "
                 f"columns checked, {n_fail} failing, {n_warn} warnings (sample of up to {self.sample_rows:,} rows "
                 "per table)"]
        lines += [f"  note: {n}" for n in self.notes]
        if self.rules is not None:
            for r in self.rules.itertuples():
                if not pd.isna(r.caught) and r.caught > 0:
                    lines.append(f"  [rule] {r.rule} would drop about {r.share:.2%} of job rows ({r.caught:,} of "
                                 f"{r.sample_rows:,} sampled): {r.reason}")
        for r in self.problems().itertuples():
            lines.append(f"  [{r.status}] {r.table}.{r.column}: {r.action}")
        return "\n".join(lines[:40])


def _column_row(src: _Source | None, table: str, col: str, kind: str, required_table: bool,
                source: str) -> dict:
    row = {"table": table, "column": col, "kind": kind, "present": False, "found": None, "dtype": None,
           "type_ok": False, "min": None, "max": None, "missing_rate": np.nan, "stats_from": None,
           "distinct_in_sample": None, "status": "ok", "action": ""}
    if src is None:
        row["status"] = "fail" if required_table else "warn"
        row["action"] = (f"table {table!r} missing: build_panel will fail (a required table)" if required_table
                         else f"optional table {table!r} missing: its step is skipped and the ledger says so")
        return row
    names = src.schema.names
    if col not in names:
        near = [n for n in names if n.lower() == col.lower()]
        real = REAL_DATA_COLUMNS.get(table, {}).get(col, (None,))[0] if source == "ashe" else None
        if real and real != col and real in names:
            near.append(real)
        hint = (f"; the extract has {near[0]!r}: pass columns={{{table!r}: {{{col!r}: {near[0]!r}}}}}" if near
                else f"; map the extract's name with columns={{{table!r}: {{{col!r}: '<name>'}}}}")
        row["status"] = "fail" if required_table else "warn"
        row["action"] = (f"column {col!r} missing: build_panel will fail with a MissingColumnError (table "
                         f"{table!r})" if required_table else
                         f"column {col!r} missing from optional table {table!r}: build_panel will refuse the "
                         "table") + hint
        return row
    t = src.schema.field(col).type
    row.update(present=True, found=col, dtype=str(t), type_ok=_type_ok(kind, t))
    s = src.sample[col] if col in src.sample else pd.Series([], dtype=object)
    st = src.stats.get(col)
    if st is not None and st["complete"] and src.rows:
        row.update(missing_rate=st["nulls"] / src.rows, min=_scalar(st["min"]), max=_scalar(st["max"]),
                   stats_from="footer")
    elif len(s):
        v = s.dropna()
        v = v.astype(object) if isinstance(v.dtype, pd.CategoricalDtype) else v
        row.update(missing_rate=float(s.isna().mean()), stats_from="sample")
        if len(v) and (pd.api.types.is_numeric_dtype(v) or pd.api.types.is_string_dtype(v)):
            row.update(min=_scalar(v.min()), max=_scalar(v.max()))
    row["distinct_in_sample"] = int(s.nunique()) if len(s) else 0
    actions, status = [], "ok"
    if pa.types.is_null(t) and len(s.dropna()):
        status = "fail"
        actions.append("mixes value types (e.g. 1 and '1'): build_panel will fail; convert the column to one type")
    elif not row["type_ok"]:
        status = "fail"
        actions.append(f"type {t}, expected {_WANT[kind]}: build_panel will fail with a LinkError (convert the "
                       "column or map an SQL cast with columns=)")
    elif kind == "id" and _arrow_kind(t) == "int" and len(s) and pd.api.types.is_float_dtype(s):
        actions.append("integer ids read with missing values (as floats in pandas): kept as nullable integers")
    if row["missing_rate"] and row["missing_rate"] > 0:
        status = "warn" if status == "ok" else status
        actions.append(f"{row['missing_rate']:.2%} missing" + _missing_consequence(table, col))
    if col == "postcode" and len(s) and _arrow_kind(t) == "str":
        v = s.dropna().astype(str)
        odd = float((~v.str.match(_PC)).mean()) if len(v) else 0.0
        if odd > 0:
            status = "warn" if status == "ok" else status
            actions.append(f"{odd:.1%} of sampled postcodes not in the ONS standard form (upper case, one space): the "
                           "linker normalises them (normalise_postcode_sql) before matching")
    keys = LOOKUP_KEYS.get(table, ())
    if keys == (col,) and len(s) and s.duplicated().any():
        status = "fail"
        actions.append("repeated values in the sample of a lookup key: build_panel will refuse duplicate keys")
    row["status"] = status
    row["action"] = "; ".join(actions) if actions else "ok: used as is"
    return row


def _missing_consequence(table: str, col: str) -> str:
    drops = {("jobs", "piden"): "rule missing_piden drops these rows",
             ("jobs", "gpay"): "rule nonpositive_pay drops these rows",
             ("jobs", "hours"): "rule implausible_hours drops these rows",
             ("jobs", "luref"): "main jobs without it are dropped (missing_luref)",
             ("jobs", "entref"): "repaired from the job's local unit (missing_entref)",
             ("jobs", "year"): "rule years drops these rows",
             ("local_units", "postcode"): "sites without it have no place (unmatched_postcode)",
             ("pay_periods", "paye_ref"): "records without a scheme cannot be linked to an employer",
             ("paye_schemes", "luref"): "enterprise-wide schemes (central payroll): their employees can be placed "
                                        "only at the enterprise's address (enterprises.postcode)"}
    what = drops.get((table, col))
    return f": {what}" if what else ""


def _rule_estimates(sample: pd.DataFrame, years) -> pd.DataFrame:
    """The linker's own row rules on the jobs (stages select and valid, no optional rule) run on the sample in
    DuckDB, with build_panel's defaults (``max_hours``) and ``years`` (default: the sample's own range, so the
    ``years`` rule counts missing years only)."""
    defaults = {k: p.default for k, p in inspect.signature(build_panel).parameters.items()}
    if years is None:
        y = pd.to_numeric(sample["year"], errors="coerce") if "year" in sample else pd.Series([], dtype=float)
        years = (int(y.min()), int(y.max())) if y.notna().any() else (0, 9999)
    opts = {"y0": int(years[0]), "y1": int(years[1]), "max_hours": float(defaults["max_hours"])}
    con = duckdb.connect()
    try:
        con.register("sample_jobs", sample)
        out = []
        for r in _rules("select") + _rules("valid"):
            if not r.condition:
                continue
            try:
                caught = int(con.execute(f"SELECT count(*) FILTER (WHERE {r.sql(**opts)}) FROM sample_jobs")
                             .fetchone()[0])
                why = r.why(**opts)
            except duckdb.Error as exc:  # a column missing or of the wrong type: reported in the column rows
                caught, why = None, f"not evaluated: {str(exc).splitlines()[0]}"
            out.append({"rule": r.name, "condition": r.sql(**opts), "sample_rows": len(sample), "caught": caught,
                        "share": caught / len(sample) if caught is not None and len(sample) else np.nan,
                        "reason": why})
        return pd.DataFrame(out).astype({"caught": "Int64"})
    finally:
        con.close()


def check_extract(path_or_tables, source: str = "ashe", sample_rows: int = 100_000,
                  years: tuple[int, int] | None = None) -> ExtractCheck:
    """Dry-run an extract against what the linker needs, reading only schemas and a sample.

    ``path_or_tables``: a folder of Parquet tables (``{table}.parquet`` files or ``{table}/`` folders of parts, or a
    ``tables/`` subfolder as :mod:`prosperity.synthetic` writes), a dict ``{table: DataFrame or Parquet path}``, or a
    ``SyntheticEngland``. ``source``: ``"ashe"`` (ASHE / BSD / ABS tables, :data:`link.TABLE_COLUMNS`) or
    ``"paye_rti"`` (the PAYE RTI / LEED tables of ``synthetic.england(source="paye_rti")``,
    :data:`prosperity.synthetic.RTI_COLUMNS`). ``sample_rows``: at most this many rows are read per table (from up to
    8 evenly spaced row groups); ranges and missing rates come from the Parquet footers where every row group has
    statistics (the whole table, at no cost), else from the sample. ``years``: as in ``build_panel``, for the
    ``years`` rule's estimate (default: the sample's range).

    Returns an :class:`ExtractCheck` with the verdict ``"ready"``, ``"ready with warnings"`` or ``"will fail"``.
    Nothing is linked: the check says what ``build_panel`` would do (fail on a missing required table or column or
    a wrong type; drop or repair rows with missing values; normalise postcodes)."""
    require_choice(source, "source", SOURCES)
    if isinstance(sample_rows, bool) or not isinstance(sample_rows, (int, np.integer)) or sample_rows < 1:
        fail(f"check_extract: sample_rows must be a positive integer, got {sample_rows!r}")
    spec, required = _spec(source)
    given = _tables_of(path_or_tables)
    rows, trows, rule_table = [], [], None
    for table, cols in spec.items():
        src = _Source(given[table], table, list(cols), int(sample_rows)) if table in given else None
        if source == "ashe" and table == "jobs" and src is not None:
            rule_table = _rule_estimates(src.sample, years)
        trows.append({"table": table, "required": table in required, "present": src is not None,
                      "rows": src.rows if src else 0, "columns": len(src.schema.names) if src else 0,
                      "where": src.where if src else None})
        rows += [_column_row(src, table, c, k, table in required, source) for c, k in cols.items()]
    extra = sorted(set(given) - set(spec))
    for table in extra:
        trows.append({"table": table, "required": False, "present": True, "rows": np.nan, "columns": np.nan,
                      "where": "not read: the linker does not use this table"})
    notes = []
    if source == "ashe" and "pay_periods" in given and "jobs" not in given:
        notes.append("the extract has pay_periods and no jobs: a PAYE RTI extract? check it with source='paye_rti'")
    if source == "paye_rti":
        notes.append("checked against the documented PAYE RTI format (synthetic.RTI_COLUMNS); "
                     "link it with build_panel(..., profile='paye_rti')")
    table = pd.DataFrame(rows)
    tables = pd.DataFrame(trows)
    verdict = ("will fail" if (table["status"] == "fail").any() else
               "ready with warnings" if (table["status"] == "warn").any() else "ready")
    return ExtractCheck(table=table, tables=tables, source=source, sample_rows=int(sample_rows), verdict=verdict,
                        notes=tuple(notes), rules=rule_table)

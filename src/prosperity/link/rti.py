"""The PAYE RTI linking profile: ``build_panel(source, profile="paye_rti")`` (issue 16).

HMRC's PAYE Real Time Information, as the ONS / ESCoE linked employer-employee data (LEED) deliver it, differs from
ASHE in what the linker must do (ONS blog, 1 July 2025, "Data linkage to shine new light on UK labour market";
HMRC, *Guidance on RTI Data Items*, Full Payment Submission items): pay comes as **pay-period records** rather than an
April snapshot, under employer **PAYE schemes** rather than local units, with no paid hours (a band of normal weekly
hours only), by tax year, and the workplace is known only through the employer. The tables are those of
``synthetic.england(source="paye_rti")`` (:data:`prosperity.synthetic.RTI_COLUMNS`): ``pay_periods, employees,
paye_schemes`` and the business register (``local_units``, ``enterprises`` with the head-office ``postcode``,
``accounts``, ``postcode_lookup``, ``entref_continuity``, ``place_characteristics``, ``cpi``).

The rules (:data:`prosperity.link.RULES` with ``"paye_rti"`` in ``profiles``), each one ledger line, in the order they
run:

1. Records (``table == "pay_periods"``): ``years`` (the analysis year: the tax year, labelled by its first calendar
   year, or with ``year_basis="calendar"`` the calendar year of the tax month: months 10-12 fall in the next
   calendar year), ``missing_person_id``, ``ashe_sample`` (``sample="ashe"``), ``missing_scheme_ref``,
   ``bad_tax_month``, ``missing_pay`` (zero and negative periods are kept: refunds add up within the year);
   ``duplicate_period``: records identical on every column (one payment submitted twice). Two *different* records
   for one employment and payment date are a :class:`~prosperity.link.LinkError` (a correction cannot be told from a
   second payment: keep one submission per payment first).
2. ``employment_years``: the records of one employment (``person_id, paye_ref, employment_id``) and year are added
   up (exactly, in DECIMAL to 1/100 of a penny) to ``annual_pay``, ``months`` (tax months paid) and ``days`` (the
   days of those tax months: 6th to 5th; a whole tax year is 365 or 366). The employer scheme is the scheme-year
   of the latest tax year paid; its enterprise is resolved through ``entref_continuity`` (``reorganised_entref``).
   The business register (local unit, enterprise, accounts) is looked up in the analysis year, as in the ASHE
   profile: with ``year_basis="calendar"`` an employment that ended before the April snapshot of its calendar year
   may find its local unit closed (``unknown_luref``).
3. Employment-years (``table == "jobs"``, the worker funnel): ``nonpositive_pay`` (annual pay zero or negative);
   ``main_job``: one employment per person-year, the one with the **highest annual pay** (ties: the smaller
   ``paye_ref``, then ``employment_id``), the rule of :func:`prosperity.synthetic.main_job` on annual earnings. As in
   the ASHE profile the main job is chosen before its employer and workplace are checked.
4. Employer and workplace: ``unknown_scheme`` (the scheme-year is not in ``paye_schemes`` or has no enterprise:
   dropped). ``central_payroll``: a main job under an enterprise-wide scheme (no local unit in ``paye_schemes``) is
   placed at the enterprise's only local unit that year when it has one (its workplace), else at the **head
   office**: the local unit of the enterprise at the enterprise's postcode (ties: more employment, smaller
   ``luref``), else at the enterprise's postcode itself (``luref`` missing). The worker panel says which
   (``placement``: ``workplace``, ``single_site``, ``head_office``, ``enterprise_postcode``) and the ledger line
   counts each: workers placed at the head office may work at another site, the central-payroll problem of payroll
   data. ``central_unplaced`` drops central payrolls with none of these; ``unknown_luref``, ``unmatched_postcode``,
   ``unplaced_postcode`` as in the ASHE profile.
5. ``attach_employee``: ``age`` (year - ``birth_year``) and ``sex`` from ``employees``, recoded to the ASHE
   profile's coding (1 male, 2 female) from the FPS gender ``'M'``/``'F'`` of the synthetic extract (``1``/``2``
   pass through; any other code becomes missing and the ledger line counts it), so ``workers.sex`` means the same
   on both profiles; ``full_time`` (``full_time_only=True``): ``ft == 1``, the full-time proxy: the hours
   band ``D`` (normal weekly hours 30 or more; ``ft`` is 1 for band D, 2 for another band, missing without one; the
   band letters are those of the synthetic format, unverified for the real extract); ``age_range``.
6. ``deflate``: real pay per day ``dw = annual_pay / days * cpih[base_year] / cpih[year]`` and its log ``ldw``, **the
   outcome of this profile** (AKM and the place decompositions take ``y="ldw"``); real weekly pay ``ww = 7 dw``
   (``lww``); ``gpay = 7 annual_pay / days`` (nominal, weekly). ``hours``, ``hw`` and ``lhw`` are missing: RTI
   records no paid hours, so hourly pay is not defined. Then ``trim`` on ``dw`` (``pay="daily"``, the default) or
   ``ww`` (``pay="weekly"``) and the joins of the ASHE profile (``attach_enterprise``, ``attach_accounts``,
   ``attach_place``). ``firms`` and ``places`` carry ``mean_ldw`` in place of ``mean_lhw``.

The site panel (``sites``), the output folder, the errors and :data:`~prosperity.link.DERIVED_COLUMNS` semantics (an
input column of ``pay_periods`` or ``local_units`` named like a column the linker derives is renamed
``<name>_input``, ledger line ``derived_names``) are the ASHE profile's. The rules run in DuckDB in one pass (no
``bucket_rows``; ``memory_limit`` lets DuckDB spill). The Spark engine cannot run this profile yet:
``engine="spark"`` raises a ``ValueError``.

Estimation on this outcome: log pay per day mixes the hourly wage with hours (part-time work lowers it), so worker
effects absorb persistent hours differences; the full-time proxy (``full_time_only=True``) is the usual check
(Card, Heining and Kline, 2013, *QJE* 128(3), use daily wages of full-time workers in the German social-security
data for the same reason).
"""

from __future__ import annotations

import math
import warnings

from ..synthetic import RTI_COLUMNS, RTI_REQUIRED_TABLES
from .core import (_PROFILES, LinkError, LinkWarning, _Profile, _Spec, _add_counts, _case, _exact_sum, _lit,
                   _panels, _resolved_business_tables, _trim_rule, _type_kind, _warn_unmatched)
from .rules import rules
from .schema import DERIVED_COLUMNS, LOOKUP_KEYS, SHARED_KEYS, TABLE_COLUMNS

__all__ = ["RTI_TABLE_COLUMNS", "RTI_DERIVED_COLUMNS", "PLACEMENTS"]

#: The tables and columns the PAYE RTI profile reads (kinds as in :data:`prosperity.link.TABLE_COLUMNS`), the
#: first being the table of the worker funnel: the RTI format's own tables (:data:`prosperity.synthetic.RTI_COLUMNS`)
#: and the business register of the ASHE profile, with the enterprise's postcode.
RTI_TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "pay_periods": {c: v[0] for c, v in RTI_COLUMNS["pay_periods"].items()},
    "employees": {c: v[0] for c, v in RTI_COLUMNS["employees"].items()},
    "paye_schemes": {c: v[0] for c, v in RTI_COLUMNS["paye_schemes"].items()},
    "local_units": TABLE_COLUMNS["local_units"],
    "enterprises": {**TABLE_COLUMNS["enterprises"], **{c: v[0] for c, v in RTI_COLUMNS["enterprises"].items()}},
    **{t: TABLE_COLUMNS[t] for t in ("accounts", "postcode_lookup", "entref_continuity", "place_characteristics",
                                     "cpi")},
}

#: Column names the PAYE RTI profile derives: :data:`prosperity.link.DERIVED_COLUMNS` and the columns of its own
#: steps. An input column of ``pay_periods`` or ``local_units`` with one of these names is renamed ``<name>_input``.
RTI_DERIVED_COLUMNS = DERIVED_COLUMNS | frozenset({
    "piden", "year", "entref", "luref", "annual_pay", "months", "days", "dw", "ldw", "gpay", "hours", "ft", "age",
    "sex", "soc", "placement", "scheme_year", "scheme_luref", "band", "_scheme_found", "_remapped", "_rn",
})

#: How the workplace of a main job was found (``workers.placement``).
PLACEMENTS = ("workplace", "single_site", "head_office", "enterprise_postcode")

_SPEC = _Spec(
    tables=RTI_TABLE_COLUMNS,
    required=RTI_REQUIRED_TABLES,
    lookup_keys={**LOOKUP_KEYS, "paye_schemes": ("paye_ref", "tax_year"), "employees": ("person_id",)},
    shared_keys={
        "entref": [*(tc for tc in SHARED_KEYS["entref"] if tc[0] != "jobs"), ("paye_schemes", "entref")],
        "luref": [("local_units", "luref"), ("paye_schemes", "luref")],
        "paye_ref": [("pay_periods", "paye_ref"), ("paye_schemes", "paye_ref")],
        "person_id": [("pay_periods", "person_id"), ("employees", "person_id")],
    },
    optional={
        "pay_periods": frozenset({"employment_id", "payment_date", "hours_band"}),
        "employees": frozenset({"sex", "birth_year"}),
        **{t: frozenset(set(RTI_TABLE_COLUMNS[t]) - set(LOOKUP_KEYS.get(t, ())))
           for t in ("enterprises", "accounts", "place_characteristics")},
    },
    carry=("pay_periods", "local_units"),
    derived=RTI_DERIVED_COLUMNS,
)

_NULL = ('"NULL"', "NULL")

# sex in the ASHE coding (1 male, 2 female: schema.REAL_DATA_COLUMNS["sex"]) from the FPS gender 'M' / 'F'; an
# extract already coded 1 / 2 passes through; any other code is missing (counted on the attach_employee line)
_SEX_CODE = "upper(trim(CAST(pe.sex AS VARCHAR)))"
_SEX_SQL = (f"CAST(CASE WHEN {_SEX_CODE} IN ('M', '1') THEN 1 WHEN {_SEX_CODE} IN ('F', '2') THEN 2 END AS BIGINT)")


def _year_sql(year_basis: str) -> str:
    if year_basis == "calendar":  # tax months 10-12 (6 January - 5 April) fall in the next calendar year
        return "tax_year + CASE WHEN tax_month >= 10 THEN 1 ELSE 0 END"
    return "tax_year"


def _check(lk, years, *, year_basis, sample, ashe_rule, default_rule):
    """The analysis years of the records (``v_periods``: the records with ``piden`` and ``year``), their CPI, and
    the ASHE rule on ``person_id``. Returns ``(first, last, years in the data)``."""
    basis = year_basis or "tax"
    lk.sql(f"CREATE OR REPLACE TEMP VIEW v_periods AS SELECT *, person_id AS piden, {_year_sql(basis)} AS year "
           "FROM v_pay_periods")
    if years is None and basis == "calendar":  # the complete calendar years: the first tax year ends in its next
        t0, t1 = lk.sql("SELECT min(tax_year), max(tax_year) FROM v_pay_periods").fetchone()
        if t0 is not None and t1 > t0:
            years = (int(t0) + 1, int(t1))
    out = lk.check_years(years, rel="v_periods", table="pay_periods", column="tax_year")
    if sample == "ashe":
        kind = _type_kind(lk.present["pay_periods"]["person_id"])
        if default_rule and kind != "int":
            ex = [r[0] for r in lk.sql("SELECT DISTINCT person_id FROM v_pay_periods WHERE person_id IS NOT NULL "
                                       "ORDER BY 1 LIMIT 3").fetchall()]
            raise LinkError(f"sample='ashe' with the default rule ({ashe_rule}) needs integer person ids, got "
                            f"{lk.present['pay_periods']['person_id']}; pass ashe_rule= a SQL condition on piden",
                            table="pay_periods", column="person_id", ids=ex)
        try:
            lk.sql(f"SELECT count(*) FILTER (WHERE {ashe_rule}) FROM (SELECT piden FROM v_periods LIMIT 10)"
                   ).fetchone()
        except lk.errors as exc:
            raise LinkError(f"ashe_rule={ashe_rule!r} cannot be evaluated on the person ids: "
                            f"{str(exc).splitlines()[0]}", table="pay_periods", column="person_id") from None
    return out


def _month_days_sql() -> str:
    """Days of tax month ``tax_month`` of ``tax_year`` (6th of the month to the 5th of the next)."""
    start = "make_date(CAST(tax_year AS INTEGER), 4, 6)"
    return (f"date_diff('day', {start} + to_months(CAST(tax_month AS INTEGER) - 1), "
            f"{start} + to_months(CAST(tax_month AS INTEGER)))")


def _records(lk, on: dict, opts: dict) -> int:
    """The record rules, exact duplicates and conflicting records, then the employment-years ``rti_emp``.
    Returns the number of employment-years."""
    P = dict(profile="paye_rti", **on)
    sel = rules("periods", table="pay_periods", **P)
    case = _case(sel, opts)
    drops = [0] * len(sel)
    n_raw = _add_counts(drops, lk.sql(f"SELECT {case} AS k, count(*) FROM v_periods GROUP BY k").fetchall())
    n = lk.charge(sel, drops, n_raw, opts, table="pay_periods")
    lk.sql(f"CREATE OR REPLACE TEMP TABLE rti_rec AS SELECT DISTINCT * FROM v_periods WHERE ({case}) = -1")
    n_d = lk.count("rti_rec")
    ((dup,), (emp,)) = (rules(s, table="pay_periods", **P) for s in ("periods_distinct", "employment"))
    lk.add(dup.name, "pay_periods", n, n_d, dup.why(**opts))
    if lk.present["pay_periods"]["payment_date"] not in _NULL:
        bad = lk.sql("SELECT person_id, paye_ref, employment_id, payment_date FROM rti_rec GROUP BY ALL "
                     "HAVING count(*) > 1 ORDER BY ALL LIMIT 5").fetchall()
        if bad:
            raise LinkError("different records for one employment and payment date (person_id, paye_ref, "
                            "employment_id, payment_date): a corrected submission cannot be told from a second "
                            "payment; keep one record per payment (e.g. the latest FPS) before linking",
                            table="pay_periods", column="payment_date", ids=[tuple(r) for r in bad],
                            id_name="(person_id, paye_ref, employment_id, payment_date)")
    # the days of each tax month in the data (a small table: about 12 rows a year)
    lk.sql(f"CREATE OR REPLACE TEMP TABLE tax_month_days AS SELECT tax_year, tax_month, {_month_days_sql()} AS d "
           "FROM (SELECT DISTINCT tax_year, tax_month FROM rti_rec)")
    # pay is added exactly (DECIMAL to 1/100 of a penny: FPS amounts are pounds and pence), so the annual pay does
    # not depend on the order DuckDB's threads add the records
    lk.sql("""
        CREATE OR REPLACE TEMP TABLE rti_emp AS
        WITH m AS (
            SELECT piden, paye_ref, employment_id, year, tax_year, tax_month,
                   sum(CAST(pay AS DECIMAL(18, 4))) AS pay, max(CAST(hours_band AS VARCHAR)) AS band
            FROM rti_rec GROUP BY ALL
        )
        SELECT piden, paye_ref, employment_id, year, CAST(sum(pay) AS DOUBLE) AS annual_pay, count(*) AS months,
               CAST(sum(t.d) AS BIGINT) AS days, max(m.tax_year) AS scheme_year,
               arg_max(band, m.tax_year * 100 + m.tax_month) AS band
        FROM m JOIN tax_month_days t ON t.tax_year = m.tax_year AND t.tax_month = m.tax_month
        GROUP BY piden, paye_ref, employment_id, year
    """)
    lk.sql("DROP TABLE rti_rec")
    n_e = lk.count("rti_emp")
    lk.add(emp.name, "pay_periods", n_d, n_e, emp.why(**opts))
    return n_e


def _schemes(lk, n_e: int, opts: dict, max_unmatched: float):
    """Employment-years with their scheme's (resolved) enterprise and local unit: ``rti_jobs``."""
    lk.sql("""
        CREATE OR REPLACE TEMP TABLE rti_jobs AS
        SELECT e.*, s.paye_ref IS NOT NULL AND s.entref IS NOT NULL AS _scheme_found,
               coalesce(m.entref, s.entref) AS entref, s.luref AS scheme_luref, m.old_entref IS NOT NULL AS _remapped
        FROM rti_emp e
        LEFT JOIN v_paye_schemes s ON CAST(s.paye_ref AS VARCHAR) = CAST(e.paye_ref AS VARCHAR)
                                  AND s.tax_year = e.scheme_year
        LEFT JOIN ent_map m ON m.old_entref = s.entref
    """)
    lk.sql("DROP TABLE rti_emp")
    found, remapped = lk.sql("SELECT count(*) FILTER (_scheme_found), count(*) FILTER (_remapped) FROM rti_jobs"
                             ).fetchone()
    if n_e and not found:
        ex = [r[0] for r in lk.sql("SELECT DISTINCT CAST(paye_ref AS VARCHAR) FROM rti_jobs ORDER BY 1 LIMIT 5"
                                   ).fetchall()]
        raise LinkError("no record's employer PAYE scheme (paye_ref, tax year) is in paye_schemes: are the scheme "
                        "references written the same way in both tables (e.g. '123/A4567') and for the same tax "
                        "years?", table="pay_periods", column="paye_ref", ids=ex)
    if n_e and (n_e - found) / n_e > max_unmatched:
        warnings.warn(f"build_panel: {n_e - found:,} of {n_e:,} employment-years ({(n_e - found) / n_e:.1%}) have "
                      "an employer PAYE scheme that is not in paye_schemes that tax year, above "
                      f"max_unmatched={max_unmatched:.0%}; a main job among them is dropped (ledger: unknown_scheme)",
                      LinkWarning, stacklevel=5)
    (reorg,) = rules("scheme", profile="paye_rti")
    lk.add(reorg.name, "jobs", n_e, n_e, reorg.why(**opts), repaired=remapped)


def _main_and_place(lk, on: dict, opts: dict, n_e: int):
    """Valid employment-years, the main job, its employer and workplace, the person's age and sex, the
    restrictions and the deflated pay: ``j_work``. Returns (rows left, main jobs, main jobs without a place)."""
    P = dict(profile="paye_rti", **on)
    valid = rules("valid", **P)
    vcase = _case(valid, opts)
    drops = [0] * len(valid)
    _add_counts(drops, lk.sql(f"SELECT {vcase} AS k, count(*) FROM rti_jobs GROUP BY k").fetchall())
    n_v = lk.charge(valid, drops, n_e, opts)
    lk.sql(f"""
        CREATE OR REPLACE TEMP TABLE rti_main AS
        SELECT * EXCLUDE (_rn) FROM (
            SELECT *, row_number() OVER (PARTITION BY piden, year
                                         ORDER BY annual_pay DESC, CAST(paye_ref AS VARCHAR) ASC,
                                                  employment_id ASC NULLS LAST) AS _rn
            FROM rti_jobs WHERE ({vcase}) = -1) WHERE _rn = 1
    """)
    lk.sql("DROP TABLE rti_jobs")
    (main,) = rules("main", **P)
    n_main = lk.count("rti_main")
    lk.add(main.name, "jobs", n_v, n_main, main.why(**opts))
    # the workplace: the scheme's local unit; a central payroll's only site, head office or postcode
    lk.sql("""
        CREATE OR REPLACE TEMP TABLE rti_where AS
        WITH central AS (SELECT DISTINCT entref, year FROM rti_main WHERE _scheme_found AND scheme_luref IS NULL),
        sites AS (
            SELECT l.entref, l.year, count(*) AS n_sites, min(l.luref) AS luref
            FROM lu_r l SEMI JOIN central c ON c.entref = l.entref AND c.year = l.year
            GROUP BY l.entref, l.year
        ),
        hq AS (
            SELECT entref, year, luref FROM (
                SELECT l.entref, l.year, l.luref,
                       row_number() OVER (PARTITION BY l.entref, l.year
                                          ORDER BY coalesce(l.employment, -1) DESC, l.luref) AS _rn
                FROM lu_r l
                JOIN ent_r e ON e.entref = l.entref AND e.year = l.year AND e.postcode = l.postcode
                SEMI JOIN central c ON c.entref = l.entref AND c.year = l.year
            ) WHERE _rn = 1
        ),
        epc AS (
            SELECT e.entref, e.year, pc.lad, pc.itl3, pc.region, pc.postcode IS NOT NULL AS _pc_found,
                   pc.lad IS NOT NULL AND pc.itl3 IS NOT NULL AND pc.region IS NOT NULL AS _placed
            FROM ent_r e SEMI JOIN central c ON c.entref = e.entref AND c.year = e.year
            LEFT JOIN v_postcode_lookup pc ON pc.postcode = e.postcode
            WHERE e.postcode IS NOT NULL
        )
        SELECT j.*,
               CASE WHEN NOT j._scheme_found THEN NULL
                    WHEN j.scheme_luref IS NOT NULL THEN 'workplace'
                    WHEN s.n_sites = 1 THEN 'single_site'
                    WHEN h.luref IS NOT NULL THEN 'head_office'
                    WHEN p.entref IS NOT NULL THEN 'enterprise_postcode' END AS placement,
               CASE WHEN NOT j._scheme_found THEN NULL
                    WHEN j.scheme_luref IS NOT NULL THEN j.scheme_luref
                    WHEN s.n_sites = 1 THEN s.luref
                    ELSE h.luref END AS luref,
               p.lad AS p_lad, p.itl3 AS p_itl3, p.region AS p_region, p._pc_found AS p_pc_found,
               p._placed AS p_placed
        FROM rti_main j
        LEFT JOIN sites s ON s.entref = j.entref AND s.year = j.year
        LEFT JOIN hq h ON h.entref = j.entref AND h.year = j.year
        LEFT JOIN epc p ON p.entref = j.entref AND p.year = j.year
    """)
    lk.sql("DROP TABLE rti_main")
    emp = "employees" in lk.present
    emp_join = ("LEFT JOIN v_employees pe ON pe.person_id = w.piden" if emp else
                "LEFT JOIN (SELECT NULL AS person_id, NULL::INTEGER AS birth_year, NULL AS sex WHERE FALSE) pe "
                "ON pe.person_id = w.piden")
    lk.sql(f"""
        CREATE OR REPLACE TEMP TABLE rti_person AS
        SELECT w.* EXCLUDE (p_lad, p_itl3, p_region, p_pc_found, p_placed),
               CASE WHEN w.placement = 'enterprise_postcode' THEN TRUE ELSE lu.luref IS NOT NULL END AS _lu_found,
               CASE WHEN w.placement = 'enterprise_postcode' THEN coalesce(w.p_pc_found, FALSE)
                    ELSE coalesce(lu._pc_found, FALSE) END AS _pc_found,
               CASE WHEN w.placement = 'enterprise_postcode' THEN coalesce(w.p_placed, FALSE)
                    ELSE coalesce(lu._placed, FALSE) END AS _placed,
               CASE WHEN w.placement = 'enterprise_postcode' THEN w.p_lad ELSE lu.lad END AS lad,
               CASE WHEN w.placement = 'enterprise_postcode' THEN w.p_itl3 ELSE lu.itl3 END AS itl3,
               CASE WHEN w.placement = 'enterprise_postcode' THEN w.p_region ELSE lu.region END AS region,
               w.year - pe.birth_year AS age, {_SEX_SQL} AS sex,
               pe.sex IS NOT NULL AND ({_SEX_SQL}) IS NULL AS _sex_bad, pe.person_id IS NOT NULL AS _emp_found,
               CAST(CASE WHEN w.band IS NULL THEN NULL WHEN w.band = 'D' THEN 1 ELSE 2 END AS BIGINT) AS ft
        FROM rti_where w
        LEFT JOIN lu_r lu ON lu.luref = w.luref AND lu.year = w.year
        {emp_join}
    """)
    lk.sql("DROP TABLE rti_where")
    work, restrict = rules("work", **P), rules("restrict", **P)
    later = _case(work + restrict, opts)
    later_drop = [0] * (len(work) + len(restrict))
    kinds = ("single_site", "head_office", "enterprise_postcode")
    counted = lk.sql(f"SELECT {later} AS k, count(*), count(*) FILTER (_emp_found), "
                     + ", ".join(f"count(*) FILTER (placement = '{p}')" for p in kinds)
                     + ", count(*) FILTER (_sex_bad) FROM rti_person GROUP BY k").fetchall()
    _add_counts(later_drop, counted)
    # central payrolls placed: main jobs past unknown_scheme (rule 0); people found in employees: past the work rules
    placed = [sum(r[3 + i] for r in counted if r[0] != 0) for i in range(len(kinds))]
    n_found = sum(r[2] for r in counted if r[0] < 0 or r[0] >= len(work))
    n_sex_bad = sum(r[3 + len(kinds)] for r in counted if r[0] < 0 or r[0] >= len(work))
    n = lk.charge(work[:1], later_drop[:1], n_main, opts)
    (central,) = rules("place", **P)
    lk.add(central.name, "jobs", n, n, central.why(**opts) + f": {placed[0]:,} at the only site, {placed[1]:,} "
           f"at the head office, {placed[2]:,} at the enterprise's postcode ({placed[1] + placed[2]:,} placed only "
           "at the enterprise's address)", repaired=sum(placed))
    n_w = lk.charge(work[1:], later_drop[1:len(work)], n, opts)
    lk.ledger[-1]["matched"] = n_w
    lk.ledger[-1]["match_rate"] = n_w / n_main if n_main else math.nan
    lk.ledger[-1]["reason"] += f"; workplace found for {n_w:,} of {n_main:,} main jobs"
    (person,) = rules("person", **P)
    sex_note = (f"; sex coded as in ASHE (1 male, 2 female, from 'M' / 'F'): {n_sex_bad:,} other code(s) set "
                "missing" if n_sex_bad else "; sex coded as in ASHE (1 male, 2 female, from 'M' / 'F')")
    lk.add(person.name, "jobs", n_w, n_w, person.why(**opts) + (sex_note if emp else ": table not supplied"),
           matched=n_found)
    n_r = lk.charge(restrict, later_drop[len(work):], n_w, opts)
    (deflate,) = rules("deflate", **P)
    lk.sql(f"""
        CREATE OR REPLACE TEMP TABLE j_work AS
        SELECT j.* EXCLUDE (_lu_found, _pc_found, _placed, _emp_found, _sex_bad),
               j.annual_pay / j.days * b.cpih / c.cpih AS dw, 7 * j.annual_pay / j.days * b.cpih / c.cpih AS ww
        FROM rti_person j
        JOIN v_cpi c ON c.year = j.year
        CROSS JOIN (SELECT cpih FROM v_cpi WHERE year = {opts['base_year']}) b
        WHERE ({later}) = -1
    """)
    lk.sql("DROP TABLE rti_person")
    lk.add(deflate.name, "jobs", n_r, n_r, deflate.why(**opts), matched=n_r)
    unplaced = sum(d for r, d in zip(work, later_drop) if r.name in ("unmatched_postcode", "unplaced_postcode"))
    return n_r, n_main, unplaced


def _attach(lk, level: str, trim_cond: str, bounded, workers_path) -> tuple[int, list[int]]:
    """The worker panel ``workers``: trim, enterprise, accounts and place; the exact sums of ``ldw`` by firm-year
    and place-year (``w_firm``, ``w_place``). Returns the rows trimmed and the rows matched by each join."""
    places_src = ("v_place_characteristics" if "place_characteristics" in lk.present else
                  "(SELECT NULL::VARCHAR AS lad, NULL::INTEGER AS year WHERE FALSE)")
    n_trim = lk.count(f"{bounded('j_work')} WHERE coalesce({trim_cond}, FALSE)") if trim_cond != "FALSE" else 0
    lk.sql(f"""
        CREATE OR REPLACE TEMP TABLE wk AS
        SELECT j.piden, j.year, j.entref, j.luref, j.paye_ref, j.employment_id, j.placement, j.lad, j.itl3,
               j.region, j.{level} AS place, e.sic07, e.industry, e.employment AS firm_size, e.size_band,
               NULL::BIGINT AS soc, j.age, j.sex, j.ft, j.annual_pay, j.months, j.days,
               7 * j.annual_pay / j.days AS gpay, NULL::DOUBLE AS hours, NULL::DOUBLE AS hw, NULL::DOUBLE AS lhw,
               j.ww, ln(j.ww) AS lww, j.dw, ln(j.dw) AS ldw,
               e.entref IS NOT NULL AS _ent, a.entref IS NOT NULL AS _acc, p.lad IS NOT NULL AS _plc
        FROM (SELECT * FROM {bounded('j_work')} WHERE NOT coalesce({trim_cond}, FALSE)) j
        LEFT JOIN ent_r e ON e.entref = j.entref AND e.year = j.year
        LEFT JOIN acc_r a ON a.entref = j.entref AND a.year = j.year
        LEFT JOIN {places_src} p ON p.lad = j.lad AND p.year = j.year
    """)
    matched = lk.sql("SELECT count(*) FILTER (_ent), count(*) FILTER (_acc), count(*) FILTER (_plc) FROM wk"
                     ).fetchone()
    for t, key in (("w_firm", "entref"), ("w_place", "place")):
        lk.sql(f"CREATE OR REPLACE TEMP TABLE {t} AS SELECT {key}, year, count(*) AS n, {_exact_sum('ldw')} AS s "
               "FROM wk GROUP BY ALL")
    lk.sql("CREATE OR REPLACE TEMP TABLE workers AS SELECT * EXCLUDE (_ent, _acc, _plc) FROM wk")
    lk.sql("DROP TABLE wk")
    lk.sql("DROP TABLE j_work")
    if workers_path is not None:
        lk.sql(f"COPY (SELECT * FROM workers ORDER BY piden, year) TO {_lit(workers_path)} (FORMAT parquet)")
    return n_trim, [int(m) for m in matched]


def _run_rti(lk, *, y0, y1, pay, full_time_only, ages, trim, max_hours, level, sample, ashe_rule, base_year, out,
             bucket_rows=None, max_unmatched=0.05, year_basis="tax"):
    """The PAYE RTI rules (see the module docstring), then the firm, place and site panels of the ASHE profile."""
    on = dict(sample=sample, full_time_only=full_time_only, ages=ages, trim=trim)
    opts = dict(y0=y0, y1=y1, ashe_rule=ashe_rule, n_reorganisations=lk.n_reorganisations,
                max_hours=float(max_hours), age_lo=None if ages is None else ages[0],
                age_hi=None if ages is None else ages[1], base_year=base_year, pay=pay, year_basis=year_basis)
    n_e = _records(lk, on, opts)
    n_sites, n_unplaced = _resolved_business_tables(lk, y0, y1, opts)
    _schemes(lk, n_e, opts, max_unmatched)
    n_r, n_main, n_unmatched_jobs = _main_and_place(lk, on, opts, n_e)
    _warn_unmatched(n_unplaced, n_sites, n_unmatched_jobs, n_main, max_unmatched)
    trim_cond, trim_reason, bounded = _trim_rule(lk, trim, pay, base_year, "j_work", bucketed=False)
    paths = {} if out is None else {"workers": out / "workers.parquet"}
    n_trim, matched = _attach(lk, level, trim_cond, bounded, paths.get("workers"))
    n_f = n_r - n_trim
    if trim_reason is not None:
        lk.add("trim", "jobs", n_r, n_f, trim_reason)
    for r, m, t in zip(rules("attach", profile="paye_rti", **on), matched,
                       ("enterprises", "accounts", "place_characteristics")):
        lk.add(r.name, "jobs", n_f, n_f, r.why(**opts) + ("" if t in lk.present else ": table not supplied"),
               matched=m)
    if n_f == 0:
        worst = max((x for x in lk.ledger if x["table"] in ("jobs", "pay_periods")), key=lambda x: x["dropped"])
        warnings.warn(f"build_panel: the worker panel is empty: no employment-year passed every rule; the step "
                      f"{worst['step']!r} dropped {worst['dropped']:,} rows ({worst['reason']}). See the ledger.",
                      LinkWarning, stacklevel=3)
    (reorg,) = rules("scheme", profile="paye_rti")
    for name in ("paye_schemes", "local_units", "enterprises", "accounts"):
        if name in lk.present:
            n, k = lk.sql(f"SELECT count(*), count(m.old_entref) FROM v_{name} t "
                          "LEFT JOIN ent_map m ON m.old_entref = t.entref").fetchone()
            lk.add(reorg.name, name, n, n, reorg.why(**opts).split(" (")[0], repaired=k)
    lk.ledger += lk.notes + lk.site_lines
    return _panels(lk, level, y0, y1, out, paths, outcome="ldw")


_PROFILES["paye_rti"] = _Profile(_SPEC, ("daily", "weekly"), (None, "tax", "calendar"), False, _check, _run_rti)

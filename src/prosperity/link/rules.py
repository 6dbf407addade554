"""The linking rules, declared: one :class:`Rule` per ledger step, in the order they run.

:func:`prosperity.link.build_panel` loops over :data:`RULES` stage by stage: the rows a rule drops are those
where its ``condition`` (a DuckDB SQL condition over the jobs or local units, with ``{option}`` fields filled in
from the options of the run) is true, charged to the **first** rule of the stage that catches them; rules without
a condition repair, choose or join rows and record what they did (``repaired``, ``matched``). Each rule is one
line of the ledger with ``rows_in - rows_out == dropped``.

Each rule belongs to one or more linking **profiles** (``profiles``): ``"ashe"`` (ASHE jobs with the BSD and ABS,
the default of :func:`prosperity.link.build_panel`) and ``"paye_rti"`` (PAYE RTI pay periods under employer PAYE
schemes, :mod:`prosperity.link.rti`). Trimming, the joins that keep every row and the site panel are shared.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Rule", "RULES", "rules"]


@dataclass(frozen=True)
class Rule:
    """One linking rule: ``name`` (its ledger step), ``stage`` (where it runs), ``condition`` (SQL, true for
    the rows it drops; empty for a repair or a join), ``reason`` (the ledger's text), ``table`` (the table it
    counts rows of), ``option`` (the option of :func:`build_panel` that switches it on; ``None``: always on) and
    ``profiles`` (the linking profiles it belongs to).
    """

    name: str
    stage: str
    condition: str
    reason: str
    table: str = "jobs"
    option: str | None = None
    profiles: tuple[str, ...] = ("ashe",)

    def sql(self, **opts) -> str:
        """The condition with the options filled in."""
        return self.condition.format(**opts)

    def why(self, **opts) -> str:
        """The reason with the options filled in."""
        return self.reason.format(**opts)


_BOTH = ("ashe", "paye_rti")
_RTI = ("paye_rti",)

#: The PAYE RTI profile (:mod:`prosperity.link.rti`): pay-period records (``table="pay_periods"``) are selected and
#: de-duplicated, added up to employment-years, and these (``table="jobs"``, the funnel of the worker panel) go
#: through the main job, the employer scheme, the workplace and the sample restrictions. Stages: ``periods`` (one
#: pass over the records), ``periods_distinct``, ``employment``, ``scheme`` (references resolved; nothing dropped),
#: ``valid``, ``main``, ``work`` (employer and workplace of the main job; the ``place`` repair of central payrolls
#: is ledgered between ``unknown_scheme`` and the other ``work`` rules), ``person``, ``restrict``, ``deflate``.
_RTI_RULES: tuple[Rule, ...] = (
    Rule("years", "periods", "year IS NULL OR year NOT BETWEEN {y0} AND {y1}",
         "pay-period records outside the {year_basis} years {y0}-{y1}", table="pay_periods", profiles=_RTI),
    Rule("missing_person_id", "periods", "piden IS NULL",
         "no person identifier: the record cannot belong to a person-year", table="pay_periods", profiles=_RTI),
    Rule("ashe_sample", "periods", "NOT ({ashe_rule})", "person not in the ASHE sample ({ashe_rule})",
         table="pay_periods", option="sample", profiles=_RTI),
    Rule("missing_scheme_ref", "periods", "paye_ref IS NULL",
         "no employer PAYE reference: the record cannot be tied to an employer", table="pay_periods",
         profiles=_RTI),
    Rule("bad_tax_month", "periods", "tax_month IS NULL OR tax_month NOT BETWEEN 1 AND 12",
         "tax month missing or not 1-12", table="pay_periods", profiles=_RTI),
    Rule("missing_pay", "periods", "pay IS NULL OR NOT isfinite(pay)",
         "taxable pay missing or not finite (zero and negative periods are kept: refunds and corrections add up "
         "within the employment-year)", table="pay_periods", profiles=_RTI),
    Rule("duplicate_period", "periods_distinct", "",
         "record identical to another record on every column (one payment submitted twice)", table="pay_periods",
         profiles=_RTI),
    Rule("employment_years", "employment", "",
         "records of one employment (person, PAYE scheme, employment id) and year added up to one employment-year "
         "(annual pay, tax months paid, days); no pay is lost", table="pay_periods", profiles=_RTI),
    Rule("reorganised_entref", "scheme", "",
         "old enterprise reference of the employer scheme replaced by the last reference of its continuity chain "
         "({n_reorganisations:,} references re-mapped)", profiles=_RTI),
    Rule("nonpositive_pay", "valid", "annual_pay IS NULL OR NOT isfinite(annual_pay) OR annual_pay <= 0",
         "annual taxable pay of the employment-year zero or negative (refunds or corrections exceed payments)",
         profiles=_RTI),
    Rule("main_job", "main", "", "secondary employment: not the highest annual pay of the person-year (ties: "
         "smaller paye_ref, then employment_id)", profiles=_RTI),
    Rule("unknown_scheme", "work", "NOT _scheme_found",
         "employer PAYE scheme not in paye_schemes that tax year, or linked to no enterprise: employer unknown",
         profiles=_RTI),
    Rule("central_payroll", "place", "",
         "enterprise-wide PAYE scheme (central payroll: no local unit): placed at the enterprise's only site that "
         "year, else at its head office (the local unit at the enterprise's postcode, else the postcode itself)",
         profiles=_RTI),
    Rule("central_unplaced", "work", "placement IS NULL",
         "central payroll of an enterprise with several sites, none at its postcode, and no enterprise postcode "
         "in the directory: workplace unknown", profiles=_RTI),
    Rule("unknown_luref", "work", "NOT _lu_found",
         "local unit of the scheme (or the head office) not in the business register that year: workplace unknown",
         profiles=_RTI),
    Rule("unmatched_postcode", "work", "NOT _pc_found",
         "workplace postcode missing or not in the postcode directory", profiles=_RTI),
    Rule("unplaced_postcode", "work", "NOT _placed",
         "workplace postcode in the directory without a district, ITL3 or region: no place", profiles=_RTI),
    Rule("attach_employee", "person", "", "age (year - birth year) and sex from employees", profiles=_RTI),
    Rule("full_time", "restrict", "ft IS NULL OR ft <> 1",
         "main job not in the full-time hours band (normal weekly hours 30 or more, RTI's full-time proxy) or no "
         "band", option="full_time_only", profiles=_RTI),
    Rule("age_range", "restrict", "age IS NULL OR age < {age_lo} OR age > {age_hi}",
         "age missing or outside {age_lo}-{age_hi}", option="ages", profiles=_RTI),
    Rule("deflate", "deflate", "",
         "real pay at {base_year} prices (CPIH): dw = annual pay / days paid, ww = 7 dw; no rows dropped",
         profiles=_RTI),
)

#: The rules in the order they run. Stages: ``select`` (one pass over the raw jobs), ``distinct`` (exact
#: duplicates), ``valid`` (pay and hours of each job), ``main`` (one job per person-year), ``work`` (the main
#: job's workplace), ``repair`` (references filled in; nothing dropped), ``restrict`` (sample restrictions),
#: ``deflate``, ``trim``, ``attach`` (joins that keep every row) and ``sites`` (the local-unit panel).
RULES: tuple[Rule, ...] = (
    Rule("years", "select", "year IS NULL OR year NOT BETWEEN {y0} AND {y1}", "job-years outside {y0}-{y1}"),
    Rule("missing_piden", "select", "piden IS NULL",
         "no person identifier: the job cannot belong to a person-year (never merged into one)"),
    Rule("ashe_sample", "select", "NOT ({ashe_rule})", "person not in the ASHE sample ({ashe_rule})",
         option="sample"),
    Rule("reorganised_entref", "select", "",
         "old enterprise reference replaced by the last reference of its continuity chain "
         "({n_reorganisations:,} references re-mapped)"),
    Rule("exact_duplicates", "distinct", "", "row identical to another row on every column"),
    Rule("nonpositive_pay", "valid", "gpay IS NULL OR NOT isfinite(gpay) OR gpay <= 0",
         "gross weekly pay missing, zero, negative or not finite"),
    Rule("implausible_hours", "valid", "hours IS NULL OR NOT isfinite(hours) OR hours <= 0 OR hours > {max_hours}",
         "paid weekly hours missing, not positive or above {max_hours:g}"),
    Rule("main_job", "main", "", "secondary job: not the highest-paid job of the person-year (ties: smaller luref)"),
    Rule("missing_luref", "work", "luref IS NULL", "no local-unit reference: workplace unknown"),
    Rule("unknown_luref", "work", "NOT _lu_found",
         "local unit not in the business register that year: workplace unknown"),
    Rule("unmatched_postcode", "work", "NOT _pc_found",
         "local unit's postcode missing or not in the postcode directory"),
    Rule("unplaced_postcode", "work", "NOT _placed",
         "local unit's postcode in the directory without a district, ITL3 or region: no place"),
    Rule("missing_entref", "repair", "",
         "no enterprise reference: repaired with the (resolved) enterprise of the job's local unit"),
    Rule("full_time", "restrict", "ft IS NULL OR CAST(ft AS INTEGER) <> 1", "part-time main job",
         option="full_time_only"),
    Rule("age_range", "restrict", "age IS NULL OR age < {age_lo} OR age > {age_hi}", "age outside {age_lo}-{age_hi}",
         option="ages"),
    Rule("deflate", "deflate", "", "real pay at {base_year} prices (CPIH); no rows dropped"),
    Rule("trim", "trim", "", "real {pay} pay outside the bounds of its year", option="trim", profiles=_BOTH),
    Rule("attach_enterprise", "attach", "", "industry (SIC 2007 section) and size from the enterprise-year "
         "(enterprises)", profiles=_BOTH),
    Rule("attach_accounts", "attach", "", "GVA from the business survey (accounts): all large enterprises, a "
         "sample of small ones", profiles=_BOTH),
    Rule("attach_place", "attach", "", "characteristics of the workplace district-year (place_characteristics)",
         profiles=_BOTH),
    Rule("years", "sites", "year IS NULL OR year NOT BETWEEN {y0} AND {y1}", "site-years outside {y0}-{y1}",
         table="local_units", profiles=_BOTH),
    Rule("unmatched_postcode", "sites", "NOT _pc_found",
         "postcode missing or not in the postcode directory: the site has no place", table="local_units",
         profiles=_BOTH),
    Rule("unplaced_postcode", "sites", "NOT _placed",
         "postcode in the directory without a district, ITL3 or region: the site has no place",
         table="local_units", profiles=_BOTH),
) + _RTI_RULES


def rules(stage: str, table: str = "jobs", profile: str = "ashe", **switches) -> list[Rule]:
    """The rules of ``stage`` for ``table`` in ``profile`` that are on: a rule with an ``option`` runs when
    ``switches[option]`` is set (not ``None`` / ``False``)."""
    return [r for r in RULES if r.stage == stage and r.table == table and profile in r.profiles
            and (r.option is None or switches.get(r.option) not in (None, False))]

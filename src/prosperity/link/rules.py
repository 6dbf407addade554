"""The linking rules, declared: one :class:`Rule` per ledger step, in the order they run.

:func:`prosperity.link.build_panel` loops over :data:`RULES` stage by stage: the rows a rule drops are those
where its ``condition`` (a DuckDB SQL condition over the jobs or local units, with ``{option}`` fields filled in
from the options of the run) is true, charged to the **first** rule of the stage that catches them; rules without
a condition repair, choose or join rows and record what they did (``repaired``, ``matched``). Each rule is one
line of the ledger with ``rows_in - rows_out == dropped``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Rule", "RULES", "rules"]


@dataclass(frozen=True)
class Rule:
    """One linking rule: ``name`` (its ledger step), ``stage`` (where it runs), ``condition`` (SQL, true for
    the rows it drops; empty for a repair or a join), ``reason`` (the ledger's text), ``table`` (the table it
    counts rows of) and ``option`` (the option of :func:`build_panel` that switches it on; ``None``: always on).
    """

    name: str
    stage: str
    condition: str
    reason: str
    table: str = "jobs"
    option: str | None = None

    def sql(self, **opts) -> str:
        """The condition with the options filled in."""
        return self.condition.format(**opts)

    def why(self, **opts) -> str:
        """The reason with the options filled in."""
        return self.reason.format(**opts)


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
    Rule("trim", "trim", "", "real {pay} pay outside the bounds of its year", option="trim"),
    Rule("attach_enterprise", "attach", "", "industry (SIC 2007 section) and size from the enterprise-year "
         "(enterprises)"),
    Rule("attach_accounts", "attach", "", "GVA from the business survey (accounts): all large enterprises, a "
         "sample of small ones"),
    Rule("attach_place", "attach", "", "characteristics of the workplace district-year (place_characteristics)"),
    Rule("years", "sites", "year IS NULL OR year NOT BETWEEN {y0} AND {y1}", "site-years outside {y0}-{y1}",
         table="local_units"),
    Rule("unmatched_postcode", "sites", "NOT _pc_found",
         "postcode missing or not in the postcode directory: the site has no place", table="local_units"),
    Rule("unplaced_postcode", "sites", "NOT _placed",
         "postcode in the directory without a district, ITL3 or region: the site has no place",
         table="local_units"),
)


def rules(stage: str, table: str = "jobs", **switches) -> list[Rule]:
    """The rules of ``stage`` for ``table`` that are on: a rule with an ``option`` runs when
    ``switches[option]`` is set (not ``None`` / ``False``)."""
    return [r for r in RULES if r.stage == stage and r.table == table
            and (r.option is None or switches.get(r.option) not in (None, False))]

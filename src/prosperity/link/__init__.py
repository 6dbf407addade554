"""Linking the raw tables into audited worker-year, firm-year and place-year panels (DuckDB).

A researcher's first months on the English linked data go into turning the raw deliveries (ASHE or PAYE
jobs, the Business Structure Database's local units and enterprises, the Annual Business Survey's accounts,
the postcode directory) into one analysis panel. The choices made there change every later number, so this
module makes each of them a named rule with a line in a **ledger**::

    from prosperity import link, synthetic
    linked = link.build_panel(synthetic.england(size="workshop", seed=0))
    linked.ledger            # step, rows_in, rows_out, dropped, repaired, matched, match_rate, reason
    linked.workers           # one row per person-year: the main job, its workplace, enterprise and real pay
    linked.sites             # one row per local unit-year: resolved enterprise, place, industry, size band
    linked.plot_funnel()     # the funnel of rows from the raw jobs to the panel (prosperity.plots.ledger_funnel)

The rules are declared in :data:`RULES` (:class:`Rule`: name, stage, SQL condition, reason) and
:func:`build_panel` loops over them. In the order they run (each is one ledger step; ``rows_in - rows_out ==
dropped`` at every step, and no row leaves the panel without one):

1. ``years``: keep job-years inside ``years``; ``missing_piden``: drop jobs without a person id (never merged
   into a person-year).
2. ``ashe_sample`` (``sample="ashe"`` only): keep the people the ASHE rule samples.
3. ``reorganised_entref``: follow enterprise reorganisations through ``entref_continuity``; chains
   (A -> B -> C) are resolved to their **last** reference, the reference the whole book keys firms by
   (repairs rows, drops none; the same is done to ``local_units``, ``enterprises`` and ``accounts``, each
   with its own ledger line at the end).
4. ``exact_duplicates``: drop rows identical to another row on every column of the jobs table.
5. ``nonpositive_pay``: drop jobs whose gross weekly pay is missing, zero, negative or not finite.
6. ``implausible_hours``: drop jobs whose paid weekly hours are missing, not finite, not positive, or above
   ``max_hours`` (100).
7. ``main_job``: keep one job per person-year, the **main job**: the one with the highest gross weekly pay
   (ties: the smaller ``luref``, then more hours, then the smaller ``entref``), the rule
   :func:`prosperity.synthetic.main_job` uses to define the true main job. The other jobs are secondary.
8. ``missing_luref``, ``unknown_luref``, ``unmatched_postcode``, ``unplaced_postcode``: attach the workplace of
   the main job via local unit (``luref``, ``year``) -> ``postcode`` -> district (``lad``), ITL3 and region. A
   main job without a local unit, with a local unit the register does not hold that year, whose postcode is not
   in the postcode directory, or is there without a district, ITL3 or region, is dropped: its person-year has no
   known workplace (the match rate is in the ledger). Postcodes of both tables are first written in the ONS
   standard form (:func:`normalise_postcode_sql`; ledger line ``normalise_postcode``), and more than
   ``max_unmatched`` (5%) of local-unit years or main jobs without a place raise a :class:`LinkWarning`.
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

The same ``years``, ``unmatched_postcode`` and ``unplaced_postcode`` rules make the site panel ``sites`` from
``local_units`` (ledger lines with ``table == "local_units"``). Inputs are checked first (:class:`LinkError`,
an :class:`prosperity._checks.InputError`, names the table, the column and the first offending ids): missing,
empty or column-less tables, duplicated column names, wrong or mixed types, duplicate lookup keys, CPI gaps,
options that cannot apply. A column of ``jobs`` or ``local_units`` named like one the linker derives
(:data:`DERIVED_COLUMNS`: ``lad``, ``hw``, ...) is renamed ``<name>_input`` with a ledger line
(``derived_names``), never used as the derived column.

The joins and aggregations run in DuckDB (embedded), reading Parquet directly when the source is a
directory, so population-sized data link out of core within ``memory_limit`` (spilling to
``temp_directory``). Above ``bucket_rows`` job rows (by default what ``memory_limit`` holds) the rules that look
within a person-year run one range of ``piden`` at a time, so no join, window or sort ever holds all the jobs:
the England-sized synthetic population (313 million job rows) links in 6.3 GiB. Pandas DataFrames come back
unless ``output=directory``, which writes the panels to Parquet instead, atomically (a temporary folder and a
manifest, :mod:`prosperity._io`; :func:`load_panel` reads it back and refuses a partial or edited folder). Sums
of log pay are exact (``DECIMAL``) and weighted means are added in district order, so the panels are the same
bytes whatever the number of DuckDB threads.

**PAYE RTI** (``build_panel(source, profile="paye_rti")``, :mod:`prosperity.link.rti`): pay-period records under
employer PAYE schemes (the tables of ``synthetic.england(source="paye_rti")``, :data:`RTI_TABLE_COLUMNS`) are
added up to employment-years, the main job is the highest annual pay, schemes map to enterprises through
``paye_schemes``, central payrolls are placed at the enterprise's only site or its head office (``workers.placement``,
ledger line ``central_payroll``) and the outcome is log real pay per day ``ldw`` (no paid hours: ``hw`` and ``lhw``
are missing; ``firms`` and ``places`` carry ``mean_ldw``). Same ledger, errors, output folder and panels otherwise.

The real extracts use other variable names: ``columns=`` maps the package's names to them (a real name or a
DuckDB SQL expression over the real columns, e.g. ``"ft": "ft = 1"``); :data:`REAL_DATA_COLUMNS` is a
documented starting point (see :func:`real_data_columns`).

References: the data are described in ONS (2018), ASHE quality and methodology information; UK Data Service
SN 6689 (ASHE), SN 6697 (BSD) and SN 7451 (ABS). The panel is what AKM estimation needs
(Abowd, Kramarz and Margolis, 1999, *Econometrica* 67(2)); Card, Heining and Kline (2013, *QJE* 128(3))
describe the same choices (main job, trimming, full-time) for the German IAB data.
"""

from __future__ import annotations

from .core import PANEL_KIND, LinkedData, LinkError, LinkWarning, build_panel, load_panel, normalise_postcode_sql
from .rules import RULES, Rule
from .rti import PLACEMENTS, RTI_DERIVED_COLUMNS, RTI_TABLE_COLUMNS
from .extract import ExtractCheck, check_extract
from .schema import (DERIVED_COLUMNS, REAL_DATA_COLUMNS, STATUSES, TABLE_COLUMNS, RealColumn, real_data_columns,
                     real_data_mapping)

__all__ = [
    "DERIVED_COLUMNS",
    "ExtractCheck",
    "LinkError",
    "LinkWarning",
    "LinkedData",
    "PANEL_KIND",
    "PLACEMENTS",
    "REAL_DATA_COLUMNS",
    "RTI_DERIVED_COLUMNS",
    "RTI_TABLE_COLUMNS",
    "RULES",
    "RealColumn",
    "Rule",
    "STATUSES",
    "TABLE_COLUMNS",
    "build_panel",
    "check_extract",
    "load_panel",
    "normalise_postcode_sql",
    "real_data_columns",
    "real_data_mapping",
]

# the public names are documented (and pickled, and shown in reprs) as prosperity.link.X
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        _obj.__module__ = __name__
del _name, _obj

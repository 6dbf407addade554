"""The tables and columns the linker reads, and the names they have in the real extracts.

:data:`TABLE_COLUMNS` (the package's names and the kind of each column), the lookups' keys, the keys shared by
several tables, the column names the linker derives (:data:`DERIVED_COLUMNS`: an input column with one of these
names is refused rather than silently used), and :data:`REAL_DATA_COLUMNS` (the names of the real ASHE, BSD,
ABS and ONSPD variables, with how sure we are of each).
"""

from __future__ import annotations

import pandas as pd

__all__ = ["TABLE_COLUMNS", "REQUIRED_TABLES", "LOOKUP_KEYS", "SHARED_KEYS", "DERIVED_COLUMNS",
           "REAL_DATA_COLUMNS", "real_data_columns", "real_data_mapping"]

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
LOOKUP_KEYS = {
    "local_units": ("luref", "year"),
    "enterprises": ("entref", "year"),
    "accounts": ("entref", "year"),
    "postcode_lookup": ("postcode",),
    "entref_continuity": ("old_entref",),
    "place_characteristics": ("lad", "year"),
    "cpi": ("year",),
}

# Key columns that must have the same type in every table they join.
SHARED_KEYS = {
    "entref": [("jobs", "entref"), ("local_units", "entref"), ("enterprises", "entref"),
               ("accounts", "entref"), ("entref_continuity", "old_entref"),
               ("entref_continuity", "new_entref")],
    "luref": [("jobs", "luref"), ("local_units", "luref")],
}

#: Columns the linker derives or uses internally. An input column of ``jobs`` or ``local_units`` (beyond
#: :data:`TABLE_COLUMNS`) with one of these names is renamed ``<name>_input`` with a ledger line
#: (``derived_names``) and never used in place of the linker's own column.
DERIVED_COLUMNS = frozenset({
    "lad", "itl3", "region", "place", "sic07", "industry", "firm_size", "size_band", "hw", "lhw", "ww", "lww",
    "entref_raw", "lu_entref", "_lu_found", "_pc_found", "_placed", "_bucket", "_lo", "_hi", "_ent", "_acc", "_plc",
})

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


"""Standard classifications used across the package: SIC 2007 sections, SOC 2020 major groups, size bands.

The raw tables carry 5-digit SIC 2007 codes (``sic07``, as strings such as ``"64191"``) and SOC 2020 major
groups (``soc``, 1-9). Analyses group industries by SIC section (one letter, A-U) and businesses by employment
size band (:data:`SIZE_BANDS`: 0-9, 10-49, 50-249 and 250+ employees, the micro / small / medium / large bands of
the ONS business statistics and of the Companies Act 2006 thresholds), defined here once for pandas
(:func:`size_band`) and for DuckDB SQL (:func:`size_band_sql`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["SIC_SECTIONS", "SOC_MAJOR_GROUPS", "SIZE_BANDS", "SIZE_BAND_LABELS", "sic_section", "sic_division_ranges",
           "size_band", "size_band_sql"]

#: SIC 2007 sections: letter -> (first division, last division, short name).
_SECTIONS = [
    ("A", 1, 3, "Agriculture, forestry & fishing"),
    ("B", 5, 9, "Mining & quarrying"),
    ("C", 10, 33, "Manufacturing"),
    ("D", 35, 35, "Electricity & gas"),
    ("E", 36, 39, "Water & waste"),
    ("F", 41, 43, "Construction"),
    ("G", 45, 47, "Wholesale & retail"),
    ("H", 49, 53, "Transport & storage"),
    ("I", 55, 56, "Accommodation & food"),
    ("J", 58, 63, "Information & communication"),
    ("K", 64, 66, "Finance & insurance"),
    ("L", 68, 68, "Real estate"),
    ("M", 69, 75, "Professional, scientific & technical"),
    ("N", 77, 82, "Administrative & support"),
    ("O", 84, 84, "Public administration & defence"),
    ("P", 85, 85, "Education"),
    ("Q", 86, 88, "Health & social work"),
    ("R", 90, 93, "Arts, entertainment & recreation"),
    ("S", 94, 96, "Other services"),
    ("T", 97, 98, "Households as employers"),
    ("U", 99, 99, "Extraterritorial organisations"),
]

#: Section letter -> short name.
SIC_SECTIONS = {letter: name for letter, _, _, name in _SECTIONS}

#: SOC 2020 major groups (``soc`` 1-9) -> name. Groups 1-2 hold managers and professionals (incl. R&D).
SOC_MAJOR_GROUPS = {
    1: "Managers, directors & senior officials",
    2: "Professional occupations",
    3: "Associate professional & technical",
    4: "Administrative & secretarial",
    5: "Skilled trades",
    6: "Caring, leisure & other service",
    7: "Sales & customer service",
    8: "Process, plant & machine operatives",
    9: "Elementary occupations",
}

_DIVISION_TO_SECTION = np.full(100, "", dtype=object)
for _letter, _lo, _hi, _ in _SECTIONS:
    _DIVISION_TO_SECTION[_lo : _hi + 1] = _letter


def sic_division_ranges() -> pd.DataFrame:
    """SIC 2007 sections with their division ranges: ``section``, ``first_division``, ``last_division``, ``name``."""
    return pd.DataFrame(_SECTIONS, columns=["section", "first_division", "last_division", "name"])


def sic_section(sic07) -> pd.Series:
    """SIC 2007 section letter (A-U) of 5-digit (or 2-digit) SIC codes; missing or invalid codes give NA.

    >>> sic_section(pd.Series(["64191", "10110", None])).tolist()
    ['K', 'C', <NA>]
    """
    s = pd.Series(sic07, copy=False).astype("string")
    division = pd.to_numeric(s.str.slice(0, 2), errors="coerce")
    valid = division.between(0, 99) & division.notna()
    out = pd.Series(pd.NA, index=s.index, dtype="string")
    letters = _DIVISION_TO_SECTION[division[valid].astype(int).to_numpy()]
    out[valid] = letters
    out[out == ""] = pd.NA
    return out


#: Lower bounds of the employment size bands (employees): 0-9, 10-49, 50-249, 250+.
SIZE_BANDS = (0, 10, 50, 250)


def _band_labels(bounds) -> list[str]:
    b = [int(x) for x in bounds]
    return [f"{lo}-{hi - 1}" for lo, hi in zip(b[:-1], b[1:])] + [f"{b[-1]}+"]


#: The labels of :data:`SIZE_BANDS`, in order: ``["0-9", "10-49", "50-249", "250+"]``.
SIZE_BAND_LABELS = tuple(_band_labels(SIZE_BANDS))


def size_band(employment, bounds=SIZE_BANDS) -> pd.Series:
    """Employment size band labels (``"0-9"``, ``"10-49"``, ``"50-249"``, ``"250+"`` for :data:`SIZE_BANDS`).

    A value below the first bound falls in the first band; missing employment gives NA (object dtype, like the
    linker's ``size_band`` column).

    >>> size_band(pd.Series([0, 9, 10, 249, 250, None])).tolist()
    ['0-9', '0-9', '10-49', '50-249', '250+', <NA>]
    """
    s = pd.Series(employment, copy=False)
    v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    labels = np.asarray(_band_labels(bounds), dtype=object)
    k = np.clip(np.searchsorted(np.asarray(bounds, dtype=float), v, side="right") - 1, 0, len(labels) - 1)
    out = labels[k]
    out[np.isnan(v)] = pd.NA
    return pd.Series(out, index=s.index, dtype=object)


def size_band_sql(col: str, bounds=SIZE_BANDS) -> str:
    """The DuckDB SQL expression of :func:`size_band` over the column (or expression) ``col``."""
    b = [int(x) for x in bounds]
    labels = _band_labels(b)
    whens = " ".join(f"WHEN {col} < {hi} THEN '{lab}'" for hi, lab in zip(b[1:], labels[:-1]))
    return f"(CASE WHEN {col} IS NULL THEN NULL {whens} ELSE '{labels[-1]}' END)"

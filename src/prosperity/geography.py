"""The real geography of England that the book works on: 296 local authority districts (2023 codes).

Everything here is small open reference data shipped inside the package (``prosperity/data/geo``; see the
README there for sources, vintages, processing and the Open Government Licence). Nothing is downloaded.

Column names follow the package's conventions (``lad``, ``itl3``, ``region``) rather than the ONS field names
(``LAD23CD``, ``ITL321CD``, ``RGN23CD``) so that synthetic and real panels join on the same keys.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib.resources import files

import pandas as pd

__all__ = [
    "REGION_ORDER",
    "boundaries",
    "data_path",
    "districts",
    "district_timeseries",
    "hexmap",
    "itl3_productivity",
    "region_short_names",
]

#: English regions (RGN23CD) from north to south, the order used in tables and figures.
REGION_ORDER = [
    "E12000001",  # North East
    "E12000002",  # North West
    "E12000003",  # Yorkshire and The Humber
    "E12000004",  # East Midlands
    "E12000005",  # West Midlands
    "E12000006",  # East of England
    "E12000007",  # London
    "E12000008",  # South East
    "E12000009",  # South West
]

_SHORT = {
    "E12000001": "North East",
    "E12000002": "North West",
    "E12000003": "Yorkshire & Humber",
    "E12000004": "East Midlands",
    "E12000005": "West Midlands",
    "E12000006": "East",
    "E12000007": "London",
    "E12000008": "South East",
    "E12000009": "South West",
}


def data_path(name: str):
    """Path of a file shipped in ``prosperity/data/geo``."""
    return files("prosperity").joinpath("data", "geo", name)


def region_short_names() -> dict[str, str]:
    """Short region names for axis labels, keyed by RGN23CD."""
    return dict(_SHORT)


@lru_cache(maxsize=1)
def _districts() -> pd.DataFrame:
    lookup = pd.read_csv(data_path("lad23_region_itl_england.csv"))
    cal = pd.read_csv(data_path("lad23_calibration_england.csv"))
    hexes = json.loads(data_path("england-lad-2023.hexjson").read_text(encoding="utf-8"))["hexes"]
    hx = pd.DataFrame(
        [(code, h["q"], h["r"]) for code, h in hexes.items()], columns=["LAD23CD", "hex_q", "hex_r"]
    )
    df = lookup.merge(
        cal.drop(columns=["LAD23NM", "RGN23CD", "RGN23NM", "ITL321CD"]), on="LAD23CD", validate="1:1"
    ).merge(hx, on="LAD23CD", validate="1:1")
    df = df.rename(
        columns={
            "LAD23CD": "lad",
            "LAD23NM": "lad_name",
            "RGN23CD": "region",
            "RGN23NM": "region_name",
            "ITL121CD": "itl1",
            "ITL221CD": "itl2",
            "ITL221NM": "itl2_name",
            "ITL321CD": "itl3",
            "ITL321NM": "itl3_name",
            "population_mid2022": "population",
            "filled_jobs_2022": "filled_jobs",
            "hours_worked_per_week_2022": "hours_worked_per_week",
            "gva_per_hour_gbp_2022": "gva_per_hour",
            "gva_per_hour_index_uk100_2022": "gva_per_hour_index",
            "gva_per_filled_job_gbp_2022": "gva_per_job",
            "gva_per_filled_job_index_uk100_2022": "gva_per_job_index",
            "median_weekly_pay_gbp_2023": "median_weekly_pay",
            "median_weekly_pay_2023_ci95_low": "median_weekly_pay_ci95_low",
            "median_weekly_pay_2023_ci95_high": "median_weekly_pay_ci95_high",
            "filled_jobs_per_resident_2022": "jobs_per_resident",
        }
    )
    df = df.drop(columns=["ITL121NM", "ITL3_AREA_SHARE", "ITL3_SPLIT_NOTE"])
    df["region_short"] = df["region"].map(_SHORT)
    df["region"] = pd.Categorical(df["region"], categories=REGION_ORDER, ordered=True)
    df = df.sort_values(["region", "lad"]).reset_index(drop=True)
    df["region"] = df["region"].astype(str)
    return df


def districts() -> pd.DataFrame:
    """One row per English district (296), with its geography and published ONS figures.

    Columns: ``lad``, ``lad_name``, ``region``, ``region_name``, ``region_short``, ``itl1``, ``itl2``,
    ``itl2_name``, ``itl3``, ``itl3_name``; ``population`` (mid-2022), ``filled_jobs`` (2022),
    ``hours_worked_per_week``, ``gva_per_hour`` (GBP, current prices, smoothed, 2022), ``gva_per_hour_index``
    (UK = 100), ``gva_per_job``, ``gva_per_job_index``, ``median_weekly_pay`` (ASHE 2023, resident analysis;
    missing for City of London and Isles of Scilly) with its 95% interval, ``jobs_per_resident``, ``area_km2``,
    and the hex-cartogram position ``hex_q``, ``hex_r``.

    Sources: ONS subregional productivity (June 2024), ONS mid-year population estimates, ASHE 2023; Open
    Government Licence v3.0.
    """
    return _districts().copy()


def district_timeseries() -> pd.DataFrame:
    """District-year ONS series 2002-2022 (long): ``lad``, ``year``, ``population``, ``filled_jobs``,
    ``hours_worked_per_week``, ``gva_per_hour`` (from 2004), ``gva_per_hour_index``, ``gva_per_job``,
    ``gva_per_job_index``."""
    ts = pd.read_csv(data_path("lad23_productivity_population_timeseries_england.csv"))
    return ts.rename(
        columns={
            "LAD23CD": "lad",
            "LAD23NM": "lad_name",
            "gva_per_hour_gbp": "gva_per_hour",
            "gva_per_hour_index_uk100": "gva_per_hour_index",
            "gva_per_filled_job_gbp": "gva_per_job",
            "gva_per_filled_job_index_uk100": "gva_per_job_index",
        }
    )


def itl3_productivity() -> pd.DataFrame:
    """ITL3-year ONS productivity 2004-2022: ``itl3``, ``itl3_name``, ``year``, ``gva_per_hour`` (smoothed),
    ``gva_per_hour_index``, ``gva_per_hour_unsmoothed``, ``gva_per_job``, ``gva_per_job_index``."""
    df = pd.read_csv(data_path("itl3_2021_productivity_england.csv"))
    return df.rename(
        columns={
            "ITL321CD": "itl3",
            "ITL321NM": "itl3_name",
            "gva_per_hour_gbp": "gva_per_hour",
            "gva_per_hour_index_uk100": "gva_per_hour_index",
            "gva_per_hour_gbp_unsmoothed": "gva_per_hour_unsmoothed",
            "gva_per_filled_job_gbp": "gva_per_job",
            "gva_per_filled_job_index_uk100": "gva_per_job_index",
        }
    )


def hexmap() -> pd.DataFrame:
    """The ODI Leeds / Open Innovations hex cartogram (layout ``odd-r``): ``lad``, ``lad_name``, ``region``,
    ``hex_q``, ``hex_r`` (rows grow northward)."""
    return _districts()[["lad", "lad_name", "region", "hex_q", "hex_r"]].copy()


def boundaries(level: str = "lad"):
    """Generalised (500 m) boundaries as a GeoDataFrame in WGS84: ``level="lad"`` (296 districts, column
    ``lad``) or ``"itl3"`` (133 areas, column ``itl3``). Use ``.to_crs(27700)`` for metres."""
    import geopandas as gpd

    if level == "lad":
        gdf = gpd.read_file(data_path("lad_dec2023_buc_england.geojson"))
        return gdf.rename(columns={"LAD23CD": "lad", "LAD23NM": "lad_name"})[["lad", "lad_name", "geometry"]]
    if level == "itl3":
        gdf = gpd.read_file(data_path("itl3_jan2021_buc_england.geojson"))
        return gdf.rename(columns={"ITL321CD": "itl3", "ITL321NM": "itl3_name"})[["itl3", "itl3_name", "geometry"]]
    raise ValueError(f"boundaries: level must be 'lad' or 'itl3', got {level!r}")

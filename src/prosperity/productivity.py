"""Firm productivity across places: shift-share, Olley-Pakes, skill, rent sharing and functions within firms.

Labour productivity of a place is gross value added (GVA) per worker. Firms' GVA comes from a business survey
(the ABS in the real data, ``accounts`` in the synthetic data) that covers every large enterprise and a sample of
small ones, while employment and location come from the business register (BSD: ``enterprises`` and
``local_units``). This module turns those tables into place-level productivity and decomposes it:

1. :func:`design_weights` -- expansion weights for the survey (register enterprises per surveyed enterprise,
   within strata of year x industry x employment size band, :data:`prosperity.classifications.SIZE_BANDS`), or
   none (survey only, with the coverage stated).
2. :func:`apportion_gva` -- GVA of multi-site enterprises shared out to the places of their local units in
   proportion to local-unit employment (the assumption of the ONS regional firm-level analysis: every site of an
   enterprise has the enterprise's GVA per worker). The local units come placed and with their enterprise
   references resolved from the linker (:attr:`prosperity.link.LinkedData.sites`): this module does not redo
   either.
3. :func:`shift_share` -- a place's productivity gap against England split into industry mix, within-industry
   and interaction terms; :func:`olley_pakes` -- productivity of any group of firms split into the unweighted
   mean firm and the allocation (covariance) term; :func:`decompose_productivity` -- both at once:
   ``gap = industry_mix + firm_within + allocation + interaction`` for every place.
4. :func:`firm_skill`, :func:`skill_elasticity`, :func:`skill_decomposition` -- how much of each place's (log)
   productivity gap the skill of its workforce (mean AKM worker effect in its firms) accounts for.
5. :func:`firm_log_productivity`, :func:`rent_sharing` -- firm pay premiums (AKM ``psi``) against log value
   added per worker.
6. :func:`function_concentration` -- managers and professionals (SOC 2020 major groups 1-2) in the places of
   multi-site enterprises against the same enterprises' other sites; :func:`account_for` -- how much of a
   place-level component (e.g. the firms-within-industries pay gap) a place-level measure accounts for.

The geography a table is keyed by is the argument ``level=`` (the column name ``"lad"``, ``"itl3"`` or
``"region"``), as in :mod:`prosperity.places`. Every result derives from :class:`prosperity._results.Result`:
``summary()``, the main table ``table`` (``to_frame()`` is a copy of it) and, for the gap decompositions,
``shares()`` (each part's share of the employment-weighted variance of the gaps, columns ``component, share``).
Decomposition tables have one row per place with the parts and the total, the parts adding up to the total to
floating-point precision, and ``n_firms`` (distinct enterprises, not weighted) behind every row and every cell
for disclosure control (:mod:`prosperity.sdc`).

Inputs are plain DataFrames with named columns. Bad input (a missing column, a non-numeric measure, missing
values, duplicated keys, mixed-type ids, an empty table) raises a :mod:`prosperity._checks` error naming the
table, the column and the first offending ids. Nothing is dropped silently: rows that cannot be used are listed
in the result's ``excluded`` table with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from ._checks import (InputTypeError, as_list, fail, first_ids, require_choice, require_columns, require_complete,
                      require_numeric, require_one_type, require_positive, require_rows, require_unique)
from ._results import Result
from .classifications import SIZE_BANDS, size_band

__all__ = [
    "design_weights",
    "DesignWeights",
    "apportion_gva",
    "Apportioned",
    "shift_share",
    "ShiftShare",
    "olley_pakes",
    "OlleyPakes",
    "decompose_productivity",
    "ProductivityDecomposition",
    "firm_skill",
    "skill_elasticity",
    "SkillElasticity",
    "skill_decomposition",
    "SkillDecomposition",
    "firm_log_productivity",
    "rent_sharing",
    "RentSharing",
    "function_concentration",
    "FunctionConcentration",
    "account_for",
    "AccountedFor",
]


# ---------------------------------------------------------------------------------------------------------------
# input checks and shared helpers


def _check_table(df, table: str, columns: Sequence[str | None], *, numeric: Sequence[str | None] = (),
                 ids: Sequence[str] = (), key: Sequence[str] | None = None, complete: Sequence[str] | None = None,
                 show: Sequence[str] | None = None, rows: int = 1) -> None:
    """The checks every input table of this module gets, through :mod:`prosperity._checks`, in this order: a
    DataFrame holding ``columns`` with at least ``rows`` rows; ``numeric`` columns numeric; each id column of
    ``ids`` of one Python type; no missing value in ``complete`` (default: all ``columns``); no two rows sharing
    ``key``. Offending rows are named by ``show`` (default ``ids``, then ``key``)."""
    require_columns(df, columns, table)
    require_rows(df, table, rows)
    require_numeric(df, numeric, table)
    for c in ids:
        require_one_type(df, c, table)
    show = as_list(show) or as_list(ids) + [k for k in as_list(key) if k not in as_list(ids)]
    require_complete(df, columns if complete is None else complete, table, id_cols=show or None)
    if key:
        require_unique(df, key, table)


def _same_kind(tables: dict, columns: Sequence[str]) -> None:
    """Join keys are numbers in every table or in none: an ``entref`` of ``1`` never matches ``"1"``, and pandas
    would otherwise refuse the join with an error naming neither table."""
    for c in columns:
        kinds = {name: pd.api.types.is_numeric_dtype(df[c]) for name, df in tables.items()}
        if len(set(kinds.values())) > 1:
            num = [n for n, k in kinds.items() if k]
            other = [n for n, k in kinds.items() if not k]
            fail(f"dtype {tables[other[0]][c].dtype} but the same key is numeric in table {num[0]!r}; convert the "
                 f"ids to one type before joining", other[0], c, kind=InputTypeError)


def _groupby(df: pd.DataFrame, keys: list[str]):
    if keys:
        return df.groupby(keys, sort=True, observed=True)
    return df.assign(_all=0).groupby("_all")


def _gap_shares(t: pd.DataFrame, components: Sequence[str]) -> pd.DataFrame:
    """Each part's share of the employment-weighted variance of the gaps, ``cov(gap, part) / var(gap)``: the
    gaps have employment-weighted mean zero (in every ``by`` group), so these are plain weighted sums and the
    shares add up to one."""
    w = (t["employment"] / t["employment"].sum()).to_numpy(dtype=float)
    gap = t["gap"].to_numpy(dtype=float)
    var = float((w * gap**2).sum())
    share = [float((w * gap * t[c].to_numpy(dtype=float)).sum()) / var if var > 0 else np.nan for c in components]
    return pd.DataFrame({"component": list(components), "share": share})


class _GapParts:
    """What the gap decompositions share: a ``table`` with ``gap``, ``employment`` and the parts named in
    ``components`` (a class attribute), ``shares()`` and the text of the shares for ``summary()``."""

    components: tuple = ()

    def shares(self) -> pd.DataFrame:
        """Each part's share of the employment-weighted variance of the gaps, ``cov(gap, part) / var(gap)``
        (columns ``component, share``; the shares add up to one)."""
        return _gap_shares(self.table, self.components)

    def _shares_text(self, fmt: str = ".0%") -> str:
        t, s = self.table, self.shares()
        err = np.abs(t["gap"] - t[list(self.components)].sum(axis=1)).max()
        parts = ", ".join(f"{c.replace('_', ' ')} {v:{fmt}}" for c, v in zip(s["component"], s["share"]))
        return f"shares of the employment-weighted variance of the gaps: {parts}; max adding-up error {err:.1e}"


# ---------------------------------------------------------------------------------------------------------------
# 1. survey design weights


@dataclass(frozen=True, repr=False)
class DesignWeights(Result):
    """Expansion weights of a business survey within strata of the business register.

    ``table``: one row per surveyed enterprise-year (``firm``, ``year``, ``stratum``, ``size_band``, ``weight``),
    what :func:`apportion_gva` takes as ``design``. ``strata``: one row per stratum with ``n_register``,
    ``n_sample``, register employment and the share of it the survey covers. ``unrepresented``: register
    enterprise-years in strata with no surveyed enterprise (the survey says nothing about them; they are outside
    every weighted total). ``out_of_scope``: enterprise-years without employees.
    """

    table: pd.DataFrame
    strata: pd.DataFrame
    unrepresented: pd.DataFrame
    out_of_scope: pd.DataFrame
    method: str

    def summary(self) -> str:
        s = self.strata
        cov_n = s["n_sample"].sum() / max(s["n_register"].sum(), 1)
        cov_e = s["employment_sample"].sum() / max(s["employment_register"].sum(), 1e-300)
        unrep = self.unrepresented
        jobs = unrep.iloc[:, 2].sum() if len(unrep) else 0  # the register employment column
        return (
            f"Design weights ({self.method}): {len(self.table):,} surveyed enterprise-years in {len(s):,} strata; "
            f"the survey holds {cov_n:.1%} of register enterprise-years and {cov_e:.1%} of register employment; "
            f"{len(unrep):,} register enterprise-years ({jobs:,.0f} jobs) are in strata with no surveyed "
            f"enterprise; {len(self.out_of_scope):,} enterprise-years are out of scope (no employees)."
        )


def design_weights(
    register: pd.DataFrame,
    survey: pd.DataFrame,
    *,
    firm: str = "entref",
    year: str = "year",
    industry: str | None = "industry",
    employment: str = "employment",
    size_bands: Sequence[float] = SIZE_BANDS,
    method: str = "expansion",
    min_employment: float = 1,
) -> DesignWeights:
    """Survey weights for enterprise accounts from the business register.

    ``method="expansion"``: post-stratified expansion weights. Strata are ``year`` x ``industry`` x employment
    size band (:func:`prosperity.classifications.size_band` of the register employment with the lower bounds
    ``size_bands``, by default :data:`prosperity.classifications.SIZE_BANDS`: 0-9, 10-49, 50-249, 250+); within a
    stratum every surveyed enterprise gets ``weight = N_h / n_h``, the number of register enterprises per
    surveyed one (Horvitz-Thompson under simple random sampling within strata, the design of the ONS Annual
    Business Survey, which takes every enterprise with 250+ employees and samples smaller ones).
    ``method="none"``: weight 1 for every surveyed enterprise (survey only); the coverage is still reported in
    ``strata``.

    Enterprise-years with register employment below ``min_employment`` (default 1: no employees) are out of
    scope: GVA per worker is undefined for them. They are left out of the strata (so they do not inflate the
    weights of the firms with employees) and listed in ``out_of_scope``, surveyed or not.

    ``register``: one row per enterprise-year (``firm``, ``year``, ``employment`` and ``industry`` if used).
    ``survey``: one row per surveyed enterprise-year (``firm``, ``year``); every surveyed enterprise-year must
    be on the register (otherwise an error names them).
    """
    require_choice(method, "design_weights: method", ("expansion", "none"))
    cols = [firm, year, employment] + ([industry] if industry else [])
    _check_table(register, "register", cols, numeric=[employment], ids=[firm], key=[firm, year])
    _check_table(survey, "survey", [firm, year], ids=[firm], key=[firm, year])
    _same_kind({"register": register, "survey": survey}, [firm, year])
    require_positive(register, employment, "register", [firm, year], strict=False)
    reg = register[cols].copy()
    scope = reg[employment].to_numpy(dtype=float) >= min_employment
    out = reg.loc[~scope, [firm, year, employment]].copy()
    out["surveyed"] = out.set_index([firm, year]).index.isin(pd.MultiIndex.from_frame(survey[[firm, year]]))
    reg = reg.loc[scope]
    reg["size_band"] = size_band(reg[employment], size_bands).to_numpy()
    keys = [year] + ([industry] if industry else []) + ["size_band"]
    s = survey[[firm, year]].copy()
    s["_in"] = True
    off = s.merge(register[[firm, year]], on=[firm, year], how="left", indicator=True)["_merge"].eq("left_only")
    if off.any():
        ids, name = first_ids(s, off.to_numpy(), [firm, year])
        fail(f"{int(off.sum())} enterprise-year(s) not on the register; resolve enterprise references (e.g. through "
             f"the continuity table) before weighting", "survey", firm, ids, name)
    reg = reg.merge(s, on=[firm, year], how="left", validate="1:1")
    reg["_in"] = reg["_in"].eq(True)
    reg["_emp_in"] = np.where(reg["_in"], reg[employment], 0.0)
    g = reg.groupby(keys, sort=True, observed=True)
    strata = pd.DataFrame(
        {
            "n_register": g.size(),
            "n_sample": g["_in"].sum().astype(int),
            "employment_register": g[employment].sum(),
            "employment_sample": g["_emp_in"].sum(),
        }
    ).reset_index()
    strata["coverage"] = strata["employment_sample"] / strata["employment_register"].where(
        strata["employment_register"] > 0
    )
    strata["stratum"] = np.arange(len(strata))
    if method == "expansion":
        strata["weight"] = strata["n_register"] / strata["n_sample"].where(strata["n_sample"] > 0)
    else:
        strata["weight"] = np.where(strata["n_sample"] > 0, 1.0, np.nan)
    reg = reg.merge(strata[keys + ["stratum", "weight"]], on=keys, how="left", validate="m:1")
    weights = reg.loc[reg["_in"], [firm, year, "stratum", "size_band", "weight"]].reset_index(drop=True)
    unrep = reg.loc[reg["weight"].isna(), [firm, year, employment] + keys[1:]].reset_index(drop=True)
    return DesignWeights(table=weights, strata=strata, unrepresented=unrep,
                         out_of_scope=out.reset_index(drop=True), method=method)


# ---------------------------------------------------------------------------------------------------------------
# 2. apportioning enterprise GVA to places


@dataclass(frozen=True, repr=False)
class Apportioned(Result):
    """Enterprise GVA apportioned to places.

    ``table``: one row per enterprise x place x year: ``gva`` (the enterprise's GVA times the place's share of
    its local-unit employment), ``employment`` (local-unit employment in the place), ``weight`` (survey weight of
    the enterprise), ``industry``. ``excluded``: enterprise-years that could not be used, with the reason.
    ``coverage``: surveyed and register employment by place. ``names``: the column names used (``firm``,
    ``year``, ``level``, ``industry``).
    """

    table: pd.DataFrame
    excluded: pd.DataFrame
    coverage: pd.DataFrame
    names: dict = field(default_factory=dict)

    def summary(self) -> str:
        u = self.table
        f, y, p = self.names.get("firm", "entref"), self.names.get("year", "year"), self.names.get("level", "region")
        n_multi = int((u.groupby([f, y])[p].nunique() > 1).sum()) if len(u) else 0
        cov = self.coverage
        share = cov["employment_surveyed"].sum() / max(cov["employment_register"].sum(), 1e-300)
        return (
            f"{len(u):,} enterprise x {p} x year units from {u[f].nunique():,} surveyed enterprises covering "
            f"{share:.1%} of register employment "
            f"({n_multi:,} enterprise-years span more than one {p}); {len(self.excluded):,} enterprise-years "
            f"excluded (see .excluded)."
        )


def apportion_gva(
    accounts: pd.DataFrame,
    local_units: pd.DataFrame,
    enterprises: pd.DataFrame,
    *,
    level: str = "region",
    industry: str = "industry",
    firm: str = "entref",
    year: str = "year",
    gva: str = "gva",
    employment: str = "employment",
    design: DesignWeights | pd.DataFrame | None = None,
    weight: str = "weight",
) -> Apportioned:
    """Apportion surveyed enterprise GVA to the places of the enterprise's local units.

    The survey reports GVA for the whole enterprise; the register locates its employment by local unit. Each
    enterprise-year's GVA goes to places in proportion to local-unit employment,
    ``gva_ep = gva_e * emp_ep / sum_p emp_ep``, so every site of an enterprise has the enterprise's GVA per worker
    (the convention of the ONS regional firm-level productivity analysis, Jan 2017). The labour input of a unit
    is its local-unit employment, so a place's GVA per worker is ``sum_e w_e gva_ep / sum_e w_e emp_ep``.

    ``accounts``: ``firm``, ``year``, ``gva`` (one row per surveyed enterprise-year; references already resolved
    through any continuity table). ``local_units``: ``firm``, ``year``, ``level``, ``employment`` (one row per
    local unit-year, already located and resolved: :attr:`prosperity.link.LinkedData.sites`). ``enterprises``:
    ``firm``, ``year``, ``industry`` (the enterprise's industry, used for all its units). ``design``: the survey
    weights, a :class:`DesignWeights` from :func:`design_weights` or a table ``firm``, ``year``, ``weight``;
    without it every surveyed enterprise has weight 1.

    Enterprise-years with accounts but no local-unit employment, or not on the register, cannot be placed:
    they are listed in ``excluded`` with the reason rather than dropped silently. Local units of enterprises
    that are not surveyed are not in ``table`` but count in ``coverage``.
    """
    F, Y, P, K = firm, year, level, industry
    _check_table(accounts, "accounts", [F, Y, gva], numeric=[gva], ids=[F], key=[F, Y])
    _check_table(local_units, "local_units", [F, Y, P, employment], numeric=[employment], ids=[F],
                 show=[F, Y, P])
    require_positive(local_units, employment, "local_units", [F, Y, P], strict=False)
    _check_table(enterprises, "enterprises", [F, Y, K], ids=[F], key=[F, Y])
    tables = {"accounts": accounts, "local_units": local_units, "enterprises": enterprises}
    weights = design.table if isinstance(design, DesignWeights) else design
    if weights is not None:
        _check_table(weights, "design", [F, Y, weight], numeric=[weight], ids=[F], key=[F, Y], complete=[F, Y])
        require_positive(weights, weight, "design", [F, Y])
        tables["design"] = weights
    _same_kind(tables, [F, Y])

    acc = accounts[[F, Y, gva]].rename(columns={gva: "_gva_e"})
    if weights is not None:
        acc = acc.merge(weights[[F, Y, weight]].rename(columns={weight: "_weight"}), on=[F, Y], how="left",
                        validate="1:1")
    else:
        acc["_weight"] = 1.0
    ent = enterprises[[F, Y, K]]
    lu = local_units[[F, Y, P, employment]].rename(columns={employment: "_emp"}).groupby(
        [F, Y, P], sort=True, observed=True, as_index=False)["_emp"].sum()
    tot = lu.groupby([F, Y], as_index=False)["_emp"].sum().rename(columns={"_emp": "_emp_e"})
    acc = acc.merge(ent, on=[F, Y], how="left", validate="1:1").merge(tot, on=[F, Y], how="left", validate="1:1")
    reasons = np.full(len(acc), "", dtype=object)
    # in reverse order of priority: the most basic reason wins
    reasons[acc["_weight"].isna().to_numpy()] = "no survey weight (out of scope or stratum without a weight)"
    emp_e = acc["_emp_e"].to_numpy(dtype=float)
    reasons[(np.isnan(emp_e) | (emp_e <= 0))] = "no local-unit employment to apportion GVA to"
    reasons[acc[K].isna().to_numpy()] = "not on the enterprise register"
    bad = reasons != ""
    excluded = acc.loc[bad, [F, Y, "_gva_e"]].rename(columns={"_gva_e": gva}).assign(reason=reasons[bad])
    acc = acc.loc[~bad]

    units = lu.merge(acc, on=[F, Y], how="inner", validate="m:1")
    units = units[units["_emp"] > 0]
    units = pd.DataFrame({
        F: units[F].to_numpy(), Y: units[Y].to_numpy(), P: units[P].to_numpy(), K: units[K].to_numpy(),
        "gva": (units["_gva_e"] * units["_emp"] / units["_emp_e"]).to_numpy(dtype=float),
        "employment": units["_emp"].to_numpy(dtype=float),
        "weight": units["_weight"].to_numpy(dtype=float),
    })

    surveyed = lu.merge(acc[[F, Y]].assign(_s=True), on=[F, Y], how="left")
    surveyed["_s"] = surveyed["_s"].eq(True)
    surveyed["_es"] = np.where(surveyed["_s"], surveyed["_emp"], 0.0)
    cg = surveyed.groupby([Y, P], sort=True, observed=True)
    coverage = pd.DataFrame(
        {
            "employment_register": cg["_emp"].sum(),
            "employment_surveyed": cg["_es"].sum(),
            "n_firms_register": cg[F].nunique(),
            "n_firms_surveyed": surveyed[surveyed["_s"]].groupby([Y, P], observed=True)[F].nunique(),
        }
    ).fillna({"n_firms_surveyed": 0, "employment_surveyed": 0.0}).reset_index()
    coverage["n_firms_surveyed"] = coverage["n_firms_surveyed"].astype(int)
    coverage["coverage"] = coverage["employment_surveyed"] / coverage["employment_register"].where(
        coverage["employment_register"] > 0
    )
    return Apportioned(table=units, excluded=excluded.reset_index(drop=True), coverage=coverage,
                       names={"firm": F, "year": Y, "level": P, "industry": K})


# ---------------------------------------------------------------------------------------------------------------
# 3. shift-share and Olley-Pakes


def _prepare_units(units, table, level, industry, firm, output, labour, weight, by):
    cols = [c for c in [level, industry, firm, output, labour, weight] if c is not None] + by
    ids = [c for c in [firm, level, industry] if c is not None] + by
    _check_table(units, table, cols, numeric=[output, labour, weight], ids=[firm], show=ids)
    require_positive(units, labour, table, ids, strict=True)
    if weight is not None:
        require_positive(units, weight, table, ids, strict=True)
    u = units[cols].copy()
    if weight is None:
        u["_w"] = 1.0
        weight = "_w"
    return u, weight


@dataclass(frozen=True, repr=False)
class OlleyPakes(Result):
    """Olley-Pakes (1996) decomposition of share-weighted productivity in groups of firms.

    ``table``: one row per group with ``productivity`` (``P = sum_i s_i p_i``), ``mean_firm`` (unweighted mean
    ``pbar``), ``allocation`` (``sum_i (s_i - sbar)(p_i - pbar)``), ``n_firms`` (distinct enterprises),
    ``n_units`` (units, weighted count ``N`` in ``n_weighted``) and ``employment``.
    """

    table: pd.DataFrame
    groups: tuple

    def summary(self) -> str:
        t = self.table
        return (
            f"Olley-Pakes decomposition in {len(t):,} group(s) of {list(self.groups)}: productivity "
            f"{t['productivity'].min():,.3g} to {t['productivity'].max():,.3g}; allocation term "
            f"{t['allocation'].min():,.3g} to {t['allocation'].max():,.3g}; max |P - pbar - cov| = "
            f"{np.abs(t['productivity'] - t['mean_firm'] - t['allocation']).max():.2e}."
        )


def _op_table(u: pd.DataFrame, keys: list[str], firm: str, output: str, labour: str, w: str) -> pd.DataFrame:
    """OP terms by ``keys`` over units of ``u`` (one row per firm unit; weights ``w``)."""
    d = u[keys + [firm, output, labour, w]].copy()
    d["_p"] = d[output].to_numpy(dtype=float) / d[labour].to_numpy(dtype=float)
    d["_wl"] = d[w] * d[labour]
    d["_wy"] = d[w] * d[output]
    d["_wp"] = d[w] * d["_p"]
    g = _groupby(d, keys)
    tot = pd.DataFrame(
        {
            "L": g["_wl"].sum(),
            "Y": g["_wy"].sum(),
            "N": g[w].sum(),
            "WP": g["_wp"].sum(),
            "n_units": g.size(),
            "n_firms": g[firm].nunique(),
        }
    )
    tot["pbar"] = tot["WP"] / tot["N"]
    tot["P"] = tot["Y"] / tot["L"]
    # explicit covariance: sum_i w_i (s_i - 1/N)(p_i - pbar), s_i = l_i / L (share of one of the w_i copies)
    idx = d.set_index(keys).index if keys else pd.Index(np.zeros(len(d)))
    ref = tot.reindex(idx) if keys else tot.iloc[np.zeros(len(d), dtype=int)]
    s_i = d[labour].to_numpy(dtype=float) / ref["L"].to_numpy()
    dev = d["_p"].to_numpy() - ref["pbar"].to_numpy()
    d["_cov"] = d[w].to_numpy(dtype=float) * (s_i - 1.0 / ref["N"].to_numpy()) * dev
    tot["cov"] = _groupby(d, keys)["_cov"].sum().to_numpy()
    return tot


def olley_pakes(
    units: pd.DataFrame,
    *,
    by: str | Sequence[str] | None = "region",
    firm: str = "entref",
    output: str = "gva",
    labour: str = "employment",
    weight: str | None = "weight",
) -> OlleyPakes:
    """Olley and Pakes (1996, *Econometrica* 64(6):1263-1297) decomposition of aggregate labour productivity.

    Within each group of ``by`` (e.g. place, or place x industry, and year), with firm units ``i`` (rows of
    ``units``: GVA ``output``, employment ``labour``), productivity ``p_i = output_i / labour_i`` and employment
    share ``s_i``:

        P = sum_i s_i p_i = pbar + sum_i (s_i - sbar)(p_i - pbar),

    ``pbar`` the unweighted mean over firms and ``sbar = 1/N``. The covariance ("allocation") term is positive
    when more productive firms are larger. ``P`` equals the group's ``sum(output) / sum(labour)``.

    With survey weights ``w_i`` (each surveyed firm stands for ``w_i`` firms of the population), the same
    identity holds for the implied population: ``N = sum w_i``, ``pbar = sum w_i p_i / N``,
    ``P = sum w_i y_i / sum w_i l_i`` and the covariance term ``sum_i w_i (l_i / L - 1/N)(p_i - pbar)``.
    Rows of ``units`` are the firm units, one per ``firm`` in a group: aggregate an enterprise's sites within
    the group first if it has several (``decompose_productivity`` does), and put ``"year"`` in ``by`` for a
    panel; two rows of one firm in a group raise an error naming them.
    """
    keys = as_list(by)
    u, w = _prepare_units(units, "units", None, None, firm, output, labour, weight, keys)
    require_unique(u, [firm] + keys, "units", "; one row per firm unit in each group of by (aggregate an "
                   "enterprise's sites first, and add the year to by for a panel)")
    return _olley_pakes(u, keys, firm, output, labour, w)


def _olley_pakes(u: pd.DataFrame, keys: list[str], firm: str, output: str, labour: str, w: str) -> OlleyPakes:
    tot = _op_table(u, keys, firm, output, labour, w)
    table = pd.DataFrame(
        {
            "productivity": tot["P"],
            "mean_firm": tot["pbar"],
            "allocation": tot["cov"],
            "n_firms": tot["n_firms"].astype(int),
            "n_units": tot["n_units"].astype(int),
            "n_weighted": tot["N"],
            "employment": tot["L"],
        }
    )
    table = table.reset_index() if keys else table.reset_index(drop=True)
    return OlleyPakes(table=table, groups=tuple(keys))


@dataclass(frozen=True, repr=False)
class ShiftShare(_GapParts, Result):
    """Shift-share decomposition of each place's productivity gap against the national level.

    ``table``: one row per place (and ``by`` group): ``productivity`` (``P_r``), ``national`` (``P``), ``gap``
    (``P_r - P``), ``industry_mix``, ``within_industry``, ``interaction`` (adding up to ``gap``), ``employment``,
    ``n_firms``. ``cells``: one row per place x industry with the share ``s_rk``, productivity ``P_rk`` and
    ``n_firms``; ``industries``: national ``s_k``, ``P_k``.
    """

    table: pd.DataFrame
    cells: pd.DataFrame
    industries: pd.DataFrame

    components = ("industry_mix", "within_industry", "interaction")

    def summary(self) -> str:
        return f"Shift-share of productivity gaps in {len(self.table):,} places; {self._shares_text('.1%')}."


def _cells(u, level, industry, firm, output, labour, w, by):
    """Place x industry and national industry aggregates, with OP terms in both."""
    # firm units within a place x industry cell: aggregate an enterprise's sites in the cell
    cell_keys = by + [level, industry]
    fu = u.groupby(cell_keys + [firm, w], sort=True, observed=True, as_index=False)[[output, labour]].sum()
    c = _op_table(fu, cell_keys, firm, output, labour, w)
    # national units: the same enterprise x place pieces, so that a multi-site enterprise counts as often in
    # the national mean firm as in the places' (whole enterprises nationally would make the allocation term
    # of every place negative by construction)
    nat_keys = by + [industry]
    n = _op_table(fu, nat_keys, firm, output, labour, w)
    return c, n


def _shift_share_core(u, level, industry, firm, output, labour, w, by):
    c, n = _cells(u, level, industry, firm, output, labour, w, by)
    c = c.reset_index()
    n = n.reset_index()
    # national aggregates per by-group
    if by:
        ng = n.groupby(by, sort=True, observed=True)
        nat = pd.DataFrame({"L_nat": ng["L"].sum(), "Y_nat": ng["Y"].sum()}).reset_index()
        nf = u.groupby(by, observed=True)[firm].nunique().rename("n_firms_nat").reset_index()
        nat = nat.merge(nf, on=by)
    else:
        nat = pd.DataFrame({"L_nat": [n["L"].sum()], "Y_nat": [n["Y"].sum()], "n_firms_nat": [u[firm].nunique()]})
    nat["P_nat"] = nat["Y_nat"] / nat["L_nat"]
    n = n.merge(nat, on=by) if by else n.assign(**{k: nat[k].iloc[0] for k in nat.columns})
    n["s_k"] = n["L"] / n["L_nat"]
    n["P_k"] = n["Y"] / n["L"]
    n = n.rename(columns={"pbar": "pbar_k", "cov": "cov_k", "n_firms": "n_firms_k", "L": "L_k", "Y": "Y_k"})
    # full grid of places x industries present nationally in the group
    places = c[by + [level]].drop_duplicates()
    grid = places.merge(n[by + [industry]], on=by, how="inner") if by else places.merge(n[[industry]], how="cross")
    g = grid.merge(c, on=by + [level, industry], how="left").merge(
        n[by + [industry, "s_k", "P_k", "pbar_k", "cov_k", "n_firms_k", "L_k"]], on=by + [industry], how="left"
    )
    g["L"] = g["L"].fillna(0.0)
    g["Y"] = g["Y"].fillna(0.0)
    g["n_firms"] = g["n_firms"].fillna(0).astype(int)
    L_r = g.groupby(by + [level], observed=True)["L"].transform("sum")
    g["s_rk"] = g["L"] / L_r
    present = g["L"] > 0
    # an industry absent from a place: P_rk := P_k (and its OP parts := national), so only the mix term is non-zero
    g["P_rk"] = np.where(present, g["Y"] / g["L"].where(present), g["P_k"])
    g["pbar_rk"] = np.where(present, g["pbar"], g["pbar_k"])
    g["cov_rk"] = np.where(present, g["cov"], g["cov_k"])
    ds = g["s_rk"] - g["s_k"]
    g["industry_mix"] = ds * g["P_k"]
    g["within_industry"] = g["s_k"] * (g["P_rk"] - g["P_k"])
    g["firm_within"] = g["s_k"] * (g["pbar_rk"] - g["pbar_k"])
    g["allocation"] = g["s_k"] * (g["cov_rk"] - g["cov_k"])
    g["interaction"] = ds * (g["P_rk"] - g["P_k"])
    gp = g.groupby(by + [level], sort=True, observed=True)
    t = gp[["industry_mix", "within_industry", "firm_within", "allocation", "interaction", "L", "Y"]].sum()
    t = t.reset_index()
    nfp = u.groupby(by + [level], observed=True)[firm].nunique().rename("n_firms").reset_index()
    t = t.merge(nfp, on=by + [level])
    if by:
        t = t.merge(nat[by + ["P_nat", "n_firms_nat"]], on=by, how="left")
    else:
        t = t.merge(nat[["P_nat", "n_firms_nat"]], how="cross")
    t["productivity"] = t["Y"] / t["L"]
    t["gap"] = t["productivity"] - t["P_nat"]
    t = t.rename(columns={"L": "employment", "Y": "gva", "P_nat": "national"})
    cells = g[by + [level, industry, "s_rk", "s_k", "P_rk", "P_k", "pbar_rk", "cov_rk", "L", "Y", "n_firms",
                    "industry_mix", "within_industry", "firm_within", "allocation", "interaction"]]
    cells = cells.rename(columns={"L": "employment", "Y": "gva"})
    inds = n[by + [industry, "s_k", "P_k", "pbar_k", "cov_k", "L_k", "Y_k", "n_firms_k"]].rename(
        columns={"L_k": "employment", "Y_k": "gva", "n_firms_k": "n_firms"}
    )
    return t, cells.reset_index(drop=True), inds.reset_index(drop=True)


def shift_share(
    units: pd.DataFrame,
    *,
    level: str = "region",
    industry: str = "industry",
    by: str | Sequence[str] | None = None,
    firm: str = "entref",
    output: str = "gva",
    labour: str = "employment",
    weight: str | None = "weight",
) -> ShiftShare:
    """Shift-share decomposition of place labour productivity against the national level.

    With ``s_rk`` industry ``k``'s share of place ``r``'s employment, ``P_rk`` its GVA per worker there, and
    ``s_k``, ``P_k`` the national counterparts (``P_r = sum_k s_rk P_rk``, ``P = sum_k s_k P_k``):

        P_r - P = sum_k (s_rk - s_k) P_k            industry mix
                + sum_k s_k (P_rk - P_k)            within industry
                + sum_k (s_rk - s_k)(P_rk - P_k)    interaction.

    An industry with no employment in a place has ``s_rk = 0`` and is given ``P_rk = P_k``, so it contributes
    ``-s_k P_k`` to the mix term only; the identity stays exact. The decomposition is the classic one used for
    regional productivity (e.g. ONS, *Understanding spatial labour productivity in the UK*, May 2019).

    ``units``: one row per firm unit (e.g. enterprise x place x year from :func:`apportion_gva`) with the place
    column ``level`` (``"lad"``, ``"itl3"``, ``"region"``), ``industry``, ``firm``, ``output`` (GVA), ``labour``
    (employment) and optional survey ``weight``; an enterprise's rows in one place x industry cell are added up.
    ``by``: columns (e.g. ``"year"``) within which the decomposition is done separately.
    """
    keys = as_list(by)
    u, w = _prepare_units(units, "units", level, industry, firm, output, labour, weight, keys)
    t, cells, inds = _shift_share_core(u, level, industry, firm, output, labour, w, keys)
    cols = keys + [level, "productivity", "national", "gap", "industry_mix", "within_industry", "interaction",
                   "employment", "gva", "n_firms"]
    cells = cells.drop(columns=["pbar_rk", "cov_rk", "firm_within", "allocation"])
    return ShiftShare(table=t[cols], cells=cells, industries=inds.drop(columns=["pbar_k", "cov_k"]))


@dataclass(frozen=True, repr=False)
class ProductivityDecomposition(_GapParts, Result):
    """Each place's productivity gap split into industry mix, firm productivity, allocation and interaction.

    ``table`` (one row per place and ``by`` group): ``productivity``, ``national``, ``gap``, and the parts
    ``industry_mix``, ``firm_within`` (``sum_k s_k (pbar_rk - pbar_k)``: the typical firm within industries),
    ``allocation`` (``sum_k s_k (cov_rk - cov_k)``: are the productive firms the big ones), ``interaction``,
    with ``gap = industry_mix + firm_within + allocation + interaction``; ``relative_*`` columns divide by the
    national level. ``employment``, ``gva``, ``n_firms`` (distinct enterprises). ``cells``: place x industry
    detail with ``n_firms``. ``op``: Olley-Pakes table by place.
    """

    table: pd.DataFrame
    cells: pd.DataFrame
    industries: pd.DataFrame
    op: pd.DataFrame
    level: str
    weighted: bool

    components = ("industry_mix", "firm_within", "allocation", "interaction")

    def summary(self) -> str:
        return (f"Productivity gaps of {len(self.table):,} {self.level} rows "
                f"({'weighted' if self.weighted else 'unweighted'}); {self._shares_text()}.")


def decompose_productivity(
    units: pd.DataFrame,
    *,
    level: str = "region",
    industry: str = "industry",
    by: str | Sequence[str] | None = None,
    firm: str = "entref",
    output: str = "gva",
    labour: str = "employment",
    weight: str | None = "weight",
) -> ProductivityDecomposition:
    """Shift-share with an Olley-Pakes split of the within-industry term.

    The within-industry term of :func:`shift_share` uses ``P_rk - P_k``. Writing each industry's productivity
    in the place and nationally by Olley and Pakes (1996), ``P_rk = pbar_rk + cov_rk`` and
    ``P_k = pbar_k + cov_k``, gives

        P_r - P = sum_k (s_rk - s_k) P_k              industry_mix
                + sum_k s_k (pbar_rk - pbar_k)        firm_within   (the unweighted mean firm)
                + sum_k s_k (cov_rk - cov_k)          allocation    (market shares of the productive firms)
                + sum_k (s_rk - s_k)(P_rk - P_k)      interaction,

    exact for every place. Firm units are enterprise x place pieces (an enterprise's sites in the place added
    up), in the places and nationally alike, so a multi-site enterprise counts once in each place it works in.
    ``P_r`` is the place's ``sum(w * gva) / sum(w * employment)`` over its units, the number a direct computation
    on the firm panel gives. GVA is in current prices: decompose within years (``by="year"``) and average the
    ``relative_*`` parts over years rather than pooling years, which would mix price levels (and, with survey
    weights that change by year, count an enterprise once per distinct weight). Arguments as :func:`shift_share`.
    """
    keys = as_list(by)
    u, w = _prepare_units(units, "units", level, industry, firm, output, labour, weight, keys)
    t, cells, inds = _shift_share_core(u, level, industry, firm, output, labour, w, keys)
    for c in ProductivityDecomposition.components + ("gap",):
        t["relative_" + c] = t[c] / t["national"]
    cols = keys + [level, "productivity", "national", "gap", *ProductivityDecomposition.components,
                   "relative_gap", *("relative_" + c for c in ProductivityDecomposition.components),
                   "employment", "gva", "n_firms"]
    fu = u.groupby(keys + [level, firm, w], sort=True, observed=True, as_index=False)[[output, labour]].sum()
    op = _olley_pakes(fu, keys + [level], firm, output, labour, w).table
    return ProductivityDecomposition(
        table=t[cols].reset_index(drop=True), cells=cells, industries=inds, op=op, level=level,
        weighted=weight is not None,
    )


# ---------------------------------------------------------------------------------------------------------------
# 4. skill


def firm_skill(
    workers: pd.DataFrame,
    worker_effects: pd.DataFrame,
    *,
    worker: str = "piden",
    firm: str | Sequence[str] = "entref",
    alpha: str = "alpha",
) -> pd.DataFrame:
    """Mean worker effect (skill) of each firm's workforce: ``mean alpha`` over the person-years of ``workers``
    in each ``firm`` group (e.g. ``["entref", "year"]`` or ``["entref", "region"]``), with ``n_workers``
    (distinct workers) and ``n_obs`` (person-years with an estimated effect) and ``n_missing`` (person-years
    whose worker has no estimated effect, e.g. outside the connected set: these are left out of the mean and
    counted here)."""
    keys = as_list(firm)
    _check_table(workers, "workers", [worker] + keys, ids=[worker] + keys[:1])
    _check_table(worker_effects, "worker_effects", [worker, alpha], numeric=[alpha], ids=[worker], key=[worker],
                 complete=[worker])
    _same_kind({"workers": workers, "worker_effects": worker_effects}, [worker])
    d = workers[[worker] + keys].merge(worker_effects[[worker, alpha]], on=worker, how="left", validate="m:1")
    d["_miss"] = d[alpha].isna()
    g = d.groupby(keys, sort=True, observed=True)
    out = pd.DataFrame(
        {
            "skill": g[alpha].mean(),
            "n_workers": d[~d["_miss"]].groupby(keys, observed=True)[worker].nunique(),
            "n_obs": g[alpha].count(),
            "n_missing": g["_miss"].sum().astype(int),
        }
    )
    out["n_workers"] = out["n_workers"].fillna(0).astype(int)
    return out.reset_index()


@dataclass(frozen=True, repr=False)
class SkillElasticity(Result):
    """Elasticity of firm labour productivity with respect to the mean worker effect of its workforce.

    ``theta``, ``se`` (clustered by firm), ``n_obs`` (firm-years), ``n_firms``, ``method`` (``"within"``: firm
    and year fixed effects; ``"between"``: industry and year fixed effects), ``formula``. ``table``: the estimate
    as a one-row table (``theta, se, n_obs, n_firms, method``).
    """

    theta: float
    se: float
    n_obs: int
    n_firms: int
    method: str
    formula: str

    def summary(self) -> str:
        return (f"Skill elasticity ({self.method}, {self.formula}): theta = {self.theta:.3f} (se {self.se:.3f}), "
                f"{self.n_obs:,} firm-years of {self.n_firms:,} firms.")

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"theta": [self.theta], "se": [self.se], "n_obs": [self.n_obs],
                             "n_firms": [self.n_firms], "method": [self.method]})


def skill_elasticity(
    panel: pd.DataFrame,
    *,
    firm: str = "entref",
    year: str = "year",
    industry: str = "industry",
    output: str = "gva",
    labour: str = "employment",
    skill: str = "skill",
    method: str = "within",
    weight: str | None = "employment",
) -> SkillElasticity:
    """Estimate ``theta`` in ``log(VA/L)_jt = theta * abar_jt + ...`` on a firm-year panel.

    ``method="within"`` (default): firm and year fixed effects, so ``theta`` is identified by changes in a firm's
    workforce composition over time (``abar_jt``, the mean AKM worker effect of the firm's workers in year ``t``,
    from :func:`firm_skill` with ``firm=[firm, year]``), net of the firm's permanent productivity. The firm fixed
    effect removes the sorting of skilled workers into productive firms, which biases the cross-sectional
    coefficient upwards. ``method="between"``: industry and year fixed effects only, the cross-sectional
    regression of Iranzo, Schivardi and Tosetti (2008, *Journal of Labor Economics* 26(2):247-285), shown for
    comparison: it mixes the effect of skill with the sorting of skilled workers into productive firms.
    Measurement error in ``abar_jt`` (AKM worker effects from few years; few workers in a small firm) attenuates
    the within estimator: weight by employment (``weight``). Standard errors are clustered by firm (pyfixest).
    Rows with non-positive output or labour raise an error naming them.
    """
    import pyfixest as pf

    require_choice(method, "skill_elasticity: method", ("within", "between"))
    extra = [weight] if weight and weight != labour else []
    cols = [firm, year, output, labour, skill] + ([industry] if method == "between" else []) + extra
    _check_table(panel, "panel", cols, numeric=[output, labour, skill, *extra], ids=[firm], key=[firm, year])
    require_positive(panel, output, "panel", [firm, year])
    require_positive(panel, labour, "panel", [firm, year])
    d = pd.DataFrame({
        "f_": panel[firm].to_numpy(), "t_": panel[year].to_numpy(),
        "y_": np.log(panel[output].to_numpy(dtype=float) / panel[labour].to_numpy(dtype=float)),
        "a_": panel[skill].to_numpy(dtype=float),
    })
    if method == "between":
        d["k_"] = panel[industry].to_numpy()
    if weight:
        d["w_"] = panel[weight].to_numpy(dtype=float)
    fe = "f_ + t_" if method == "within" else "k_ + t_"
    fit = pf.feols(f"y_ ~ a_ | {fe}", data=d, weights="w_" if weight else None, vcov={"CRV1": "f_"},
                   fixef_rm="none")
    fes = f"{firm} + {year}" if method == "within" else f"{industry} + {year}"
    formula = f"log({output}/{labour}) ~ {skill} | {fes}"
    return SkillElasticity(theta=float(fit.coef()["a_"]), se=float(fit.se()["a_"]), n_obs=len(d),
                           n_firms=int(d["f_"].nunique()), method=method, formula=formula)


@dataclass(frozen=True, repr=False)
class SkillDecomposition(_GapParts, Result):
    """Each place's log-productivity gap split into workforce skill, industry mix and firms net of skill.

    ``table``: ``gap`` (employment-weighted mean log GVA per worker in the place minus England's), ``skill``
    (``theta * (skill_r - skill)``), ``industry_mix``, ``firm_within`` (the rest: firm productivity not explained
    by the workforce's measured skill), ``employment``, ``n_firms``. ``theta``, ``se``: the regression
    coefficient of log productivity on mean worker effect with industry fixed effects.
    """

    table: pd.DataFrame
    theta: float
    se: float
    n_firms: int
    level: str

    components = ("skill", "industry_mix", "firm_within")

    def summary(self) -> str:
        return (
            f"log productivity = {self.theta:.3f} x mean worker effect + industry + firm "
            f"({'estimated, se %.3f' % self.se if np.isfinite(self.se) else 'theta given'}), over {self.n_firms:,} "
            f"firms; {self.level} gaps: {self._shares_text()}."
        )


def skill_decomposition(
    units: pd.DataFrame,
    *,
    level: str = "region",
    industry: str = "industry",
    firm: str = "entref",
    skill: str = "skill",
    output: str = "gva",
    labour: str = "employment",
    weight: str | None = "weight",
    theta: float | None = None,
) -> SkillDecomposition:
    """How much of each place's productivity gap the skill of its workforce accounts for.

    Firm units ``i`` (rows of ``units``, e.g. enterprise x place pieces) have log labour productivity
    ``y_i = log(output_i / labour_i)`` and the mean worker effect of their workforce ``a_i`` (column ``skill``,
    from :func:`firm_skill` on an AKM fit). The firm-level regression, weighted by ``weight * labour``,

        y_i = theta a_i + mu_k(i) + u_i        (industry fixed effects mu_k)

    as in Iranzo, Schivardi and Tosetti (2008, *Journal of Labor Economics* 26(2):247-285), averaged over a
    place with the same weights gives exactly

        ybar_r - ybar = theta (abar_r - abar) + sum_k (s_rk - s_k) mu_k + (ubar_r - ubar)
                        skill                   industry_mix              firm_within.

    ``theta`` should usually be given: the cross-sectional regression above mixes the effect of skill on
    productivity with the sorting of skilled workers into productive firms and overstates it several-fold;
    :func:`skill_elasticity` (``method="within"``) estimates it from changes in firms' workforces, and ``theta=1``
    is the labour-quality (efficiency-units) convention of growth accounting, in which workers' relative pay
    measures their relative productivity. With a given ``theta``, ``mu_k`` is the weighted industry mean of
    ``y_i - theta a_i``. The three parts add up to the gap exactly whatever ``theta`` is. Units with
    non-positive output cannot be logged and raise an error.
    """
    u, w = _prepare_units(units, "units", level, industry, firm, output, labour, weight, [])
    _check_table(units, "units", [skill], numeric=[skill], show=[firm, level])
    u = u.reset_index(drop=True)
    require_positive(u, output, "units", [firm, level, industry], strict=True)
    u[skill] = units[skill].to_numpy(dtype=float)
    u["_y"] = np.log(u[output].to_numpy(dtype=float) / u[labour].to_numpy(dtype=float))
    u["_wt"] = u[w].to_numpy(dtype=float) * u[labour].to_numpy(dtype=float)
    wt = u["_wt"].to_numpy()
    # within-industry weighted demeaning (one set of fixed effects: exact)
    gk = u.groupby(industry, observed=True)
    def _dm(col):
        m = (u[col] * u["_wt"]).groupby(u[industry], observed=True).transform("sum") / gk["_wt"].transform("sum")
        return (u[col] - m).to_numpy(), m.to_numpy()
    yd, _ = _dm("_y")
    ad, _ = _dm(skill)
    sxx = float((wt * ad * ad).sum())
    se = np.nan
    if theta is None:
        if sxx <= 0:
            fail("does not vary within industries; theta is not identified", "units", skill)
        theta = float((wt * ad * yd).sum() / sxx)
        resid = yd - theta * ad
        n_k = u[industry].nunique()
        dof = max(len(u) - n_k - 1, 1)
        # heteroskedasticity-robust (HC1) standard error of the weighted regression
        se = float(np.sqrt((wt**2 * ad**2 * resid**2).sum() * len(u) / dof) / sxx)
    u["_e"] = u["_y"] - theta * u[skill]
    mu = (u["_e"] * u["_wt"]).groupby(u[industry], observed=True).sum() / gk["_wt"].sum()
    u["_mu"] = u[industry].map(mu).to_numpy(dtype=float)
    u["_u"] = u["_e"] - u["_mu"]

    cols = ["_y", skill, "_mu", "_u"]
    wsum = u.groupby(level, observed=True)["_wt"].sum()
    pm = pd.DataFrame({c: (u[c] * u["_wt"]).groupby(u[level], observed=True).sum() / wsum for c in cols})
    nat = {c: float((u[c] * u["_wt"]).sum() / wt.sum()) for c in cols}
    t = pd.DataFrame(
        {
            "log_productivity": pm["_y"],
            "gap": pm["_y"] - nat["_y"],
            "mean_skill": pm[skill],
            "skill": theta * (pm[skill] - nat[skill]),
            "industry_mix": pm["_mu"] - nat["_mu"],
            "firm_within": pm["_u"] - nat["_u"],
            "employment": (u[w] * u[labour]).groupby(u[level], observed=True).sum(),
            "n_firms": u.groupby(level, observed=True)[firm].nunique(),
        }
    ).reset_index()
    return SkillDecomposition(table=t, theta=float(theta), se=float(se), n_firms=int(u[firm].nunique()),
                              level=level)


# ---------------------------------------------------------------------------------------------------------------
# 5. rent sharing


def firm_log_productivity(
    firms: pd.DataFrame,
    *,
    firm: str = "entref",
    output: str = "gva",
    labour: str = "employment",
    by: str | Sequence[str] | None = None,
) -> pd.DataFrame:
    """Log value added per worker of each firm averaged over its surveyed years: ``lva`` (mean over years of
    ``log(output / labour)``), ``n_years``, ``employment`` (mean). Averaging over years removes much of the
    transitory noise in one year's accounts, which would otherwise attenuate a rent-sharing slope.
    ``firms``: one row per firm-year with accounts (with a ``year`` column, two rows of one firm-year are an
    error); rows with non-positive output or labour raise an error naming them (GVA can be negative in real
    accounts: drop or winsorise them explicitly first)."""
    keys = [firm] + as_list(by)
    year = ["year"] if "year" not in keys and isinstance(firms, pd.DataFrame) and "year" in firms.columns else []
    _check_table(firms, "firms", keys + [output, labour], numeric=[output, labour], ids=[firm],
                 key=keys + year if year else None, show=keys + year)
    require_positive(firms, output, "firms", keys + year)
    require_positive(firms, labour, "firms", keys + year)
    d = firms[keys].copy()
    d["lva"] = np.log(firms[output].to_numpy(dtype=float) / firms[labour].to_numpy(dtype=float))
    d["employment"] = firms[labour].to_numpy(dtype=float)
    g = d.groupby(keys, sort=True, observed=True)
    out = pd.DataFrame({"lva": g["lva"].mean(), "n_years": g.size(), "employment": g["employment"].mean()})
    return out.reset_index()


@dataclass(frozen=True, repr=False)
class RentSharing(Result):
    """Regression of firm pay premiums on log value added per worker.

    ``elasticity`` and ``se`` (heteroskedasticity-robust), ``n_firms``, ``r2``; ``corr`` is the weighted
    correlation of psi and log VA per worker; ``table`` the firm-level data used, one row per firm (with
    ``fitted``); ``estimates()`` the coefficients as a one-row table.
    """

    elasticity: float
    se: float
    n_firms: int
    r2: float
    corr: float
    formula: str
    table: pd.DataFrame
    excluded: pd.DataFrame

    def summary(self) -> str:
        lo, hi = self.elasticity - 1.96 * self.se, self.elasticity + 1.96 * self.se
        return (
            f"Rent sharing ({self.formula}): elasticity of the firm pay premium with respect to value added per "
            f"worker {self.elasticity:.3f} (95% CI {lo:.3f} to {hi:.3f}), {self.n_firms:,} firms, "
            f"corr {self.corr:.2f}, R2 {self.r2:.2f}; {len(self.excluded):,} firms excluded (see .excluded)."
        )

    def estimates(self) -> pd.DataFrame:
        """``elasticity, se, n_firms, r2, corr`` as a one-row table (``to_frame()`` is the firm-level data)."""
        return pd.DataFrame(
            {"elasticity": [self.elasticity], "se": [self.se], "n_firms": [self.n_firms], "r2": [self.r2],
             "corr": [self.corr]}
        )


def rent_sharing(
    data: pd.DataFrame,
    *,
    psi: str = "psi",
    productivity: str = "lva",
    firm: str = "entref",
    controls: Sequence[str] = (),
    fixed_effects: str | None = None,
    weight: str | None = None,
) -> RentSharing:
    """Rent sharing in levels: firm pay premiums (AKM ``psi``) against log value added per worker.

        psi_j = gamma * log(VA/L)_j + controls_j' delta [+ mu_industry(j)] + e_j,

    estimated by (weighted) least squares with pyfixest, heteroskedasticity-robust (HC1) standard errors. Card,
    Cardoso, Heining and Kline (2018, *Journal of Labor Economics* 36(S1):S13-S70) survey estimates of
    ``gamma`` between 0.05 and 0.15; Lamadon, Mogstad and Setzler (2022, *American Economic Review*
    112(1):169-212) find 0.13 at the firm level.

    Noise: estimation error in ``psi`` is on the left-hand side, so it does not bias ``gamma`` (it widens the
    confidence interval) as long as it is uncorrelated with productivity; it does attenuate the *correlation*
    between premiums and productivity by the reliability ``var(psi) / var(psi_hat)``. Noise in log VA per
    worker (one year's accounts, transitory shocks) is on the right-hand side and attenuates ``gamma``:
    average it over years (:func:`firm_log_productivity`). Weight by the number of workers behind each ``psi``
    (``weight``) to down-weight the noisiest premiums.

    ``data``: one row per firm with ``psi``, ``productivity``, ``controls`` and ``fixed_effects``. Rows with
    missing values (firms outside the connected set, or without accounts) are listed in ``excluded``.
    """
    import pyfixest as pf

    controls = as_list(controls)
    num = [psi, productivity, *controls] + ([weight] if weight else [])
    cols = [firm, psi, productivity, *controls] + ([fixed_effects] if fixed_effects else []) + (
        [weight] if weight else [])
    _check_table(data, "data", cols, numeric=num, ids=[firm], key=[firm], complete=[firm])
    bad = np.zeros(len(data), dtype=bool)
    for c in num:
        with np.errstate(invalid="ignore"):
            bad |= ~np.isfinite(data[c].to_numpy(dtype=float, na_value=np.nan))
    if fixed_effects:
        bad |= data[fixed_effects].isna().to_numpy()
    excluded = data.loc[bad, [firm]].assign(reason="missing psi, productivity, control or weight")
    excluded = excluded.reset_index(drop=True)
    d = data.loc[~bad, cols].reset_index(drop=True).copy()
    if weight:
        require_positive(d, weight, "data", [firm])
    if len(d) < 3:
        fail(f"only {len(d)} firm(s) with both {psi!r} and {productivity!r}; at least 3 needed", "data", psi)
    ren = {psi: "psi_", productivity: "lva_"}
    for i, c in enumerate(controls):
        ren[c] = f"x{i}_"
    if fixed_effects:
        ren[fixed_effects] = "fe_"
    if weight:
        ren[weight] = "w_"
    dd = d.rename(columns=ren)
    rhs = " + ".join(["lva_"] + [f"x{i}_" for i in range(len(controls))])
    fml = f"psi_ ~ {rhs}" + (" | fe_" if fixed_effects else "")
    # keep singleton fixed effects (fixef_rm="none"): they do not move the slope, and every firm stays in .table
    fit = pf.feols(fml, data=dd, vcov="hetero", weights="w_" if weight else None, fixef_rm="none")
    gamma = float(fit.coef()["lva_"])
    se = float(fit.se()["lva_"])
    wts = dd["w_"].to_numpy(dtype=float) if weight else np.ones(len(dd))
    x = dd["lva_"].to_numpy(dtype=float)
    y = dd["psi_"].to_numpy(dtype=float)
    xm, ym = np.average(x, weights=wts), np.average(y, weights=wts)
    corr = float(np.average((x - xm) * (y - ym), weights=wts)
                 / np.sqrt(np.average((x - xm) ** 2, weights=wts) * np.average((y - ym) ** 2, weights=wts)))
    d["fitted"] = y - np.asarray(fit.resid(), dtype=float)
    label = f"{psi} ~ {' + '.join([productivity, *controls])}" + (f" | {fixed_effects}" if fixed_effects else "")
    return RentSharing(
        elasticity=gamma, se=se, n_firms=len(d), r2=float(fit._r2), corr=corr, formula=label, table=d,
        excluded=excluded,
    )


# ---------------------------------------------------------------------------------------------------------------
# 6. functions within firms


@dataclass(frozen=True, repr=False)
class FunctionConcentration(Result):
    """Managers and professionals in multi-site enterprises' sites, against the same enterprises' other sites.

    ``table`` (one row per place of ``level``): ``n_jobs`` and ``n_top`` (jobs in SOC 1-2) in the place's sites
    of multi-site enterprises, ``share`` (``n_top / n_jobs``), ``expected`` (the share if each enterprise's site
    here had the occupational mix of its sites elsewhere), ``excess`` (``share - expected``, exact), ``lq``
    (within-enterprise location quotient ``share / expected``), ``head_office_share`` (share of these jobs at
    head-office sites, if head offices were given), ``n_firms`` (distinct enterprises). ``head_office``: SOC 1-2
    share at head-office and branch sites of the same enterprises (if given).
    """

    table: pd.DataFrame
    head_office: pd.DataFrame | None
    n_multi_site: int
    level: str

    def summary(self) -> str:
        t = self.table
        top = t.sort_values("lq", ascending=False).head(3)
        s = (
            f"{self.n_multi_site:,} multi-site enterprise-years. Highest within-enterprise location quotients of "
            f"SOC 1-2 jobs: " + ", ".join(f"{p} {q:.2f}" for p, q in zip(top[self.level], top["lq"]))
        )
        if self.head_office is not None and len(self.head_office):
            h = self.head_office.set_index("site")["share"]
            s += (f". SOC 1-2 share at head offices {h.get('head office', np.nan):.1%} vs branches "
                  f"{h.get('branch', np.nan):.1%}")
        return s + "."


def function_concentration(
    workers: pd.DataFrame,
    *,
    level: str = "region",
    firm: str = "entref",
    year: str = "year",
    occupation: str = "soc",
    top: Sequence[int] = (1, 2),
    head_office: pd.DataFrame | None = None,
    head_office_level: str | None = None,
) -> FunctionConcentration:
    """Concentration of management and R&D functions (SOC 2020 major groups 1-2 by default) within enterprises.

    For every multi-site enterprise-year (jobs in at least two places of ``level``), and each of its places
    ``p``: ``n_ep`` jobs, ``t_ep`` of them in ``top`` occupations, and ``b_ep`` the top share at the enterprise's
    *other* places (leave-own-place-out). For a place ``r``:

        share_r = sum_e t_er / sum_e n_er,     expected_r = sum_e n_er b_er / sum_e n_er,
        excess_r = share_r - expected_r,       lq_r = share_r / expected_r,

    a location quotient within enterprises: above one where enterprises put their management and professional
    jobs, holding the enterprises fixed (head offices vs branch plants; Duranton and Puga 2005, *Journal of Urban
    Economics* 57(2):343-370, on the functional specialisation of cities).

    ``workers``: one row per job (or person-year) with ``firm``, ``year``, ``level``, ``occupation``; at least one
    job must be in a ``top`` occupation (codes of another type, e.g. ``"1"`` for ``1``, raise an error).
    ``head_office``: optional table ``firm``, ``year``, ``head_office_level`` (the head office's place, by default
    the column ``level``); then the top share at head-office and at branch places of the same multi-site
    enterprises is reported too.
    """
    _check_table(workers, "workers", [firm, year, level, occupation], ids=[firm], show=[firm, year, level])
    top = as_list(top)
    d = workers[[firm, year, level]].copy()
    d["_top"] = workers[occupation].isin(top).to_numpy()
    if not d["_top"].any():
        codes = pd.unique(workers[occupation])[:5].tolist()
        fail(f"no job in the top occupations {top} (codes found: {codes}); give top in the column's own codes",
             "workers", occupation)
    g = d.groupby([firm, year, level], sort=True, observed=True)
    ep = pd.DataFrame({"n": g.size(), "t": g["_top"].sum()}).reset_index()
    ep["n_places"] = ep.groupby([firm, year], observed=True)[level].transform("size")
    ep = ep[ep["n_places"] >= 2].copy()
    n_multi = int(ep[[firm, year]].drop_duplicates().shape[0])
    if n_multi == 0:
        fail(f"no enterprise-year (column {firm!r}) has jobs in two or more places", "workers", level)
    N = ep.groupby([firm, year], observed=True)["n"].transform("sum")
    T = ep.groupby([firm, year], observed=True)["t"].transform("sum")
    ep["b"] = (T - ep["t"]) / (N - ep["n"])
    ep["nb"] = ep["n"] * ep["b"]
    gp = ep.groupby(level, sort=True, observed=True)
    t = pd.DataFrame({"n_jobs": gp["n"].sum(), "n_top": gp["t"].sum(), "_nb": gp["nb"].sum(),
                      "n_firms": gp[firm].nunique()})
    t["share"] = t["n_top"] / t["n_jobs"]
    t["expected"] = t["_nb"] / t["n_jobs"]
    t["excess"] = t["share"] - t["expected"]
    t["lq"] = t["share"] / t["expected"]
    ho_tab = None
    if head_office is not None:
        hp = head_office_level or level
        _check_table(head_office, "head_office", [firm, year, hp], ids=[firm], key=[firm, year],
                     complete=[firm, year])
        _same_kind({"workers": workers, "head_office": head_office}, [firm, year])
        h = head_office[[firm, year, hp]].rename(columns={hp: "_ho"})
        ep = ep.merge(h, on=[firm, year], how="left", validate="m:1")
        ep["site"] = np.where(ep["_ho"].isna(), "unknown", np.where(ep[level] == ep["_ho"], "head office", "branch"))
        gs = ep.groupby("site", observed=True)
        ho_tab = pd.DataFrame({"n_jobs": gs["n"].sum(), "n_top": gs["t"].sum(), "n_firms": gs[firm].nunique()})
        ho_tab["share"] = ho_tab["n_top"] / ho_tab["n_jobs"]
        ho_tab = ho_tab.reset_index()
        ep["_ho_jobs"] = np.where(ep["site"] == "head office", ep["n"], 0)
        t["head_office_share"] = ep.groupby(level, observed=True)["_ho_jobs"].sum() / t["n_jobs"]
    t = t.drop(columns="_nb").reset_index()
    return FunctionConcentration(table=t, head_office=ho_tab, n_multi_site=n_multi, level=level)


@dataclass(frozen=True, repr=False)
class AccountedFor(Result):
    """How much of a place-level component a place-level measure accounts for.

    ``table``: per place, the ``component``, its ``explained`` part ``b (m_r - mbar)`` and the ``unexplained``
    rest (adding up to the component minus its weighted mean). ``slope``, ``se``, ``share`` (``R^2`` of the
    weighted regression: the share of the component's cross-place variance the measure accounts for).
    """

    table: pd.DataFrame
    slope: float
    se: float
    share: float
    component: str
    measure: str

    def summary(self) -> str:
        return (
            f"{self.measure} accounts for {self.share:.1%} of the cross-place variance of {self.component} "
            f"(slope {self.slope:.3f}, se {self.se:.3f}, {len(self.table)} places)."
        )


def account_for(
    table: pd.DataFrame,
    component: str,
    measure: str,
    *,
    level: str = "region",
    weight: str | None = None,
) -> AccountedFor:
    """Weighted least squares of a place-level component (e.g. the firms-within-industries pay gap from
    :func:`prosperity.places.decompose_gaps`) on a place-level measure (e.g. the within-enterprise SOC 1-2
    location quotient): ``c_r = a + b m_r + e_r``. Returns each place's explained part ``b (m_r - mbar)``, the
    rest, and the share of the component's weighted variance accounted for (``R^2``). Descriptive: the measure
    and the component may share causes. ``table``: one row per place of ``level``, at least three."""
    num = [component, measure] + ([weight] if weight else [])
    _check_table(table, "table", [level, *num], numeric=num, key=[level], rows=3)
    if weight:
        require_positive(table, weight, "table", [level])
    w = table[weight].to_numpy(dtype=float) if weight else np.ones(len(table))
    w = w / w.sum()
    y = table[component].to_numpy(dtype=float)
    x = table[measure].to_numpy(dtype=float)
    ym, xm = (w * y).sum(), (w * x).sum()
    sxx = (w * (x - xm) ** 2).sum()
    if sxx <= 0:
        fail("does not vary across places", "table", measure)
    b = (w * (x - xm) * (y - ym)).sum() / sxx
    expl = b * (x - xm)
    rest = y - ym - expl
    r2 = float((w * expl**2).sum() / (w * (y - ym) ** 2).sum())
    n = len(table)
    se = float(np.sqrt((w**2 * (x - xm) ** 2 * rest**2).sum() * n / max(n - 2, 1)) / sxx)
    out = pd.DataFrame(
        {level: table[level].to_numpy(), component: y, measure: x, "mean": ym, "explained": expl, "unexplained": rest}
    )
    return AccountedFor(table=out, slope=float(b), se=se, share=r2, component=component, measure=measure)

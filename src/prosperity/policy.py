"""From decompositions to policy: counterfactual gaps, dispersion, levers and their change over time.

Everything here is arithmetic on the exact decomposition of :func:`prosperity.places.decompose_gaps`:

    gap_p = people_p + industry_mix_p + firm_within_p + place_p + residual_p

(Card, Rothstein and Yi 2024, *AEJ: Applied*; Combes, Duranton and Gobillon 2008, *J. Urban Econ.* 63(2):723-742).

- :func:`counterfactual_gaps`: what a place's gap would be if one or more components were England's average,
  i.e. set to zero: England's average mix of skills (``people``), of industries (``industry_mix``), firms as
  good as England's within each industry (``firm_within``) or England's average place effect (``place``).
  The counterfactual gap is ``gap - sum(removed components)``. Every component has a person-year-weighted mean
  of zero across all places, so England's mean is unchanged and counterfactual gaps are still gaps against the
  same benchmark. This is a *partial-equilibrium accounting* exercise in the spirit of the counterfactuals of
  Card, Rothstein and Yi (2024) and of Oaxaca-Blinder (Oaxaca 1973, *Int. Econ. Rev.* 14(3):693-709): it holds
  prices, the sorting of workers to firms and places, and every other component fixed.
- :func:`dispersion`: how much the spread of gaps across places would shrink in each counterfactual.
- :func:`levers`: which component dominates each place's gap, and (with the characteristics regression of
  :func:`prosperity.places.explain_place_effects`) how much of the place component transport, housing,
  amenities and density account for: ``place_p = sum_c gamma_c (zbar_pc - zbar_c) + unexplained_p``, with
  ``zbar`` the person-year-weighted means of the standardised characteristics of the districts.
- :func:`over_time`: the decomposition of each place's gap in every window of :func:`prosperity.places.rolling`,
  and :func:`window_changes`: the change of each component between two windows, with its interval.

Intervals: a decomposition fitted with ``se=True`` carries the delete-a-group jackknife replicates of its
components (every fold's re-fit without one random group of workers; :func:`replicates`). Every number computed
from the decomposition (a counterfactual gap, the share of a gap it closes, the spread of gaps across places) is
computed again on each fold, and :func:`interval` turns the fold values into a standard error and a 95% interval
(Student t with ``folds - 1`` degrees of freedom, as :meth:`prosperity.places.GapDecomposition.shares`).

One-page briefs per region built from these results are :func:`prosperity.brief.region_brief`. All tables carry
the counts ``n_obs``, ``n_people`` and ``n_firms`` of the cells they come from, so they can be passed to
:func:`prosperity.sdc.check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from . import _checks, geography, places
from ._checks import InputTypeError, MissingColumnError
from ._results import Result

__all__ = [
    "SUBSTANTIVE",
    "SCENARIOS",
    "SCENARIO_LABELS",
    "LEVERS",
    "counterfactual_gaps",
    "dispersion",
    "place_channels",
    "Levers",
    "levers",
    "over_time",
    "window_changes",
    "replicates",
    "interval",
]

COMPONENTS = tuple(places.COMPONENTS)
#: The components a policy can act on (the residual is not one).
SUBSTANTIVE = ("people", "industry_mix", "firm_within", "place")
COUNTS = ("n_obs", "n_people", "n_firms")
_LEVELS = ("lad", "itl3", "region")

#: Default counterfactual scenarios: name -> components set to England's average (zero).
SCENARIOS: dict[str, tuple[str, ...]] = {
    "skills": ("people",),
    "industries": ("industry_mix",),
    "firms": ("firm_within",),
    "place": ("place",),
}
#: What each default scenario means.
SCENARIO_LABELS = {
    "skills": "England's average mix of skills",
    "industries": "England's average industry mix",
    "firms": "firms as good as England's within each industry",
    "place": "England's average place effect",
}
#: The policy domain each component points to.
LEVERS = {
    "people": "skills and mobility (education, training, attracting and keeping skilled workers)",
    "industry_mix": "industrial structure (the sectors located in the place)",
    "firm_within": "firm performance within industries (management, technology diffusion, business support)",
    "place": "the place itself (transport, housing, amenities, density)",
    "residual": "not attributed (the decomposition's remainder)",
}


# ---------------------------------------------------------------------------------------------------------------
# input checks


def _main_table(result, what: str) -> pd.DataFrame | None:
    """The main table of a result (``table``, or ``frame`` for results written before 0.2.0), else ``None``."""
    for attr in ("table", "frame"):
        t = getattr(result, attr, None)
        if isinstance(t, pd.DataFrame):
            return t
    return None


def _whole_counts(frame: pd.DataFrame, cols: Sequence[str], table: str, key: str) -> None:
    """Count columns hold non-negative whole numbers."""
    _checks.require_numeric(frame, cols, table)
    for c in cols:
        v = frame[c].to_numpy(dtype=float)
        bad = (v < 0) | (v != np.round(v))
        if bad.any():
            ids, name = _checks.first_ids(frame, bad, key)
            _checks.fail(f"{int(bad.sum())} value(s) that are not non-negative whole counts", table, c, ids, name)


def _decomposition_frame(decomposition, level: str | None = None, table: str = "decomposition",
                         counts: bool = False) -> tuple[pd.DataFrame, str]:
    """The per-place table of a :class:`prosperity.places.GapDecomposition` (or an equivalent DataFrame), checked:
    the place column, the components, the counts (required with ``counts=True``, else checked when present), no
    missing values, unique places, and the adding-up identity."""
    if isinstance(decomposition, pd.DataFrame):
        frame = decomposition
        level = level or next((c for c in _LEVELS if c in frame.columns), None)
        if level is None:
            _checks.fail(f"no place column (one of {list(_LEVELS)}); pass level=; columns: {list(frame.columns)}",
                         table, kind=MissingColumnError)
    elif _main_table(decomposition, table) is not None:
        frame = _main_table(decomposition, table)
        level = level or decomposition.level
    else:
        _checks.fail(f"expected a places.GapDecomposition or a DataFrame, got {type(decomposition).__name__}",
                     table, kind=InputTypeError)
    present = [c for c in COUNTS if c in frame.columns]
    need = [level, "gap", *COMPONENTS] + (list(COUNTS) if counts else present)
    _checks.require_columns(frame, need, table)
    frame = frame.reset_index(drop=True)
    _checks.require_complete(frame, need, table, id_cols=level)
    _checks.require_unique(frame, level, table, " (one row per place)")
    _whole_counts(frame, [c for c in COUNTS if c in frame.columns], table, level)
    vals = frame[list(COMPONENTS)].to_numpy(dtype=float)
    gap = frame["gap"].to_numpy(dtype=float)
    err = np.abs(vals.sum(axis=1) - gap)
    tol = 1e-8 * max(1.0, float(np.max(np.abs(gap))) if len(gap) else 1.0)
    bad = err > tol
    if bad.any():
        ids, name = _checks.first_ids(frame, bad, level)
        _checks.fail(f"the components {list(COMPONENTS)} do not add up to the gap (largest error "
                     f"{float(err.max()):.3g}); counterfactuals need an exact decomposition", table, "gap", ids, name)
    return frame, level


def _scenarios(remove) -> dict[str, tuple[str, ...]]:
    if isinstance(remove, str):
        remove = (remove,)
    if isinstance(remove, Mapping):
        out = {str(k): ((v,) if isinstance(v, str) else tuple(v)) for k, v in remove.items()}
    else:
        comps = tuple(remove)
        out = {"+".join(comps) if comps else "none": comps}
    if not out:
        raise ValueError("counterfactual_gaps: no scenario given")
    for name, comps in out.items():
        if not comps:
            raise ValueError(f"counterfactual_gaps: scenario {name!r} removes no component")
        unknown = [c for c in comps if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"counterfactual_gaps: scenario {name!r} names unknown component(s) {unknown}; "
                             f"components are {list(COMPONENTS)}")
        if len(set(comps)) != len(comps):
            raise ValueError(f"counterfactual_gaps: scenario {name!r} lists a component twice: {list(comps)}")
    return out


# ---------------------------------------------------------------------------------------------------------------
# intervals


def interval(value, estimates, coverage: float = 0.95) -> dict[str, np.ndarray]:
    """The delete-a-group jackknife standard error and interval of ``value`` from its estimates on ``K`` folds.

    ``value``: the estimate on the full sample (a number or an array of ``p``); ``estimates``: its estimates on
    each of the ``K`` folds (each re-fitted without one random group of workers), an array ``(K,)`` or ``(K, p)``.
    ``se = sqrt((K - 1) / K * sum_k (theta_k - mean_k theta_k)^2)`` (Quenouille-Tukey; the grouped jackknife of
    Shao and Tu 1995, *The Jackknife and Bootstrap*, ch. 2), the interval ``value -+ t se`` with Student t on
    ``K - 1`` degrees of freedom (the reference distribution of a jackknife with few groups), as
    :meth:`prosperity.places.GapDecomposition.shares`. Where a fold has no estimate (``nan``) the standard error
    and interval are ``nan``. Returns ``{"se", "ci_low", "ci_high"}`` (arrays of the shape of ``value``).
    """
    est = np.asarray(estimates, dtype=float)
    val = np.asarray(value, dtype=float)
    if est.ndim == 0 or est.shape[0] < 2:
        raise ValueError(f"interval: need the estimates of at least 2 folds, got shape {est.shape}")
    if est.shape[1:] != val.shape:
        raise ValueError(f"interval: estimates of shape {est.shape} do not match value of shape {val.shape}")
    K = est.shape[0]
    with np.errstate(invalid="ignore"):
        dev = est - est.mean(axis=0)
        se = np.sqrt((K - 1) / K * (dev ** 2).sum(axis=0))
    q = float(stats.t.ppf(0.5 + coverage / 2, K - 1))
    return {"se": se, "ci_low": val - q * se, "ci_high": val + q * se}


def replicates(decomposition, level: str | None = None) -> pd.DataFrame | None:
    """The jackknife replicates of a decomposition: the gap components of every place in every fold.

    A :class:`prosperity.places.GapDecomposition` fitted with ``se=True`` (``decompose_gaps(..., se=True)``)
    keeps, in ``effects.fold_components``, the gap components of every district in each of its ``folds`` re-fits
    (each without one random group of workers). The components of a region (or ITL3 area) are the
    person-year-weighted means of its districts' (in each fold, with that fold's person-years), so every fold's
    components at the decomposition's ``level`` follow without a re-fit: the fold values from which
    :func:`prosperity.places.decompose_gaps` computes its ``*_se`` columns. A number computed from the
    decomposition gets its standard error by computing it on every fold (:func:`interval`).

    Returns a tidy frame ``fold, <level>, gap, people, industry_mix, firm_within, place, residual, n_obs`` (one row
    per fold and place), or ``None`` when the decomposition has no replicates (fitted without ``se=True``, or a
    DataFrame).
    """
    eff = getattr(decomposition, "effects", None)
    fc = getattr(eff, "fold_components", None)
    if isinstance(decomposition, pd.DataFrame) or fc is None or not getattr(decomposition, "folds", 0):
        return None
    level = level or decomposition.level
    fit = eff.level
    cols = ["gap", *COMPONENTS]
    _checks.require_columns(fc, ["fold", fit, "n_obs", *cols], "effects.fold_components")
    if level == fit:
        out = fc[["fold", fit, *cols, "n_obs"]].copy()
    else:
        rows = eff.rows
        if level in rows:
            lookup = rows[[fit, level]].drop_duplicates(fit).set_index(fit)[level]
        else:
            lookup = geography.districts().drop_duplicates(fit).set_index(fit)[level]
        d = fc[cols].mul(fc["n_obs"].astype(float), axis=0)
        d = d.assign(fold=fc["fold"].to_numpy(), n_obs=fc["n_obs"].to_numpy(),
                     **{level: fc[fit].map(lookup).to_numpy()})
        bad = d[level].isna().to_numpy()
        if bad.any():
            _checks.fail(f"no {level} for {int(bad.sum())} fold row(s)", "effects.fold_components", fit,
                         _checks.plain(pd.unique(fc.loc[bad, fit])[:5]), fit)
        g = d.groupby(["fold", level], sort=True, observed=True).sum()
        g[cols] = g[cols].div(g["n_obs"].astype(float), axis=0)
        out = g.reset_index()[["fold", level, *cols, "n_obs"]]
    return out.sort_values(["fold", level], kind="stable").reset_index(drop=True)


def _fold_frames(reps: pd.DataFrame, level: str, places_: Sequence) -> list[pd.DataFrame]:
    """Every fold's replicate rows, indexed by ``level`` and aligned to ``places_`` (``nan`` where a fold lacks one)."""
    _checks.require_columns(reps, ["fold", level, "gap", *COMPONENTS], "replicates")
    return [g.set_index(level).reindex(places_) for _, g in reps.groupby("fold", sort=True)]


# ---------------------------------------------------------------------------------------------------------------
# counterfactuals


def counterfactual_gaps(decomposition, remove: str | Sequence[str] | Mapping[str, Sequence[str]] = ("people",), *,
                        level: str | None = None, replicates: pd.DataFrame | None = None) -> pd.DataFrame:
    """Each place's gap if the ``remove``-d components were England's average (set to zero).

    ``counterfactual_p = gap_p - sum_{c in remove} c_p`` for the exact decomposition of
    :func:`prosperity.places.decompose_gaps`. Removing ``people`` gives the gap the place would have with
    England's average mix of skills (worker effects, age and year composition), ``industry_mix`` with England's
    industry shares, ``firm_within`` with firms as good as England's within each industry, ``place`` with
    England's average place effect. Since each component has person-year-weighted mean zero over all places,
    England's mean pay is the same in every counterfactual.

    This is accounting, not a forecast: it holds everything else fixed (partial equilibrium). It does not let
    workers re-sort, firms relocate, or prices and place premiums respond (Card, Rothstein and Yi 2024, *AEJ:
    Applied*; Oaxaca 1973, *Int. Econ. Rev.*).

    Parameters
    ----------
    decomposition : a :class:`prosperity.places.GapDecomposition` or its ``to_frame()`` (one row per place
        with ``gap``, the components and the counts ``n_obs, n_people, n_firms``).
    remove : a component, a tuple of components removed together, or a mapping ``{scenario: components}``
        for several scenarios at once (e.g. :data:`SCENARIOS`).
    level : the place column, if ``decomposition`` is a DataFrame with several place columns.
    replicates : the jackknife replicates of the decomposition (:func:`replicates`); by default those a
        ``GapDecomposition`` fitted with ``se=True`` carries.

    Returns
    -------
    DataFrame
        Tidy: one row per place and scenario with ``<level>, scenario, removed`` (the components, joined by
        ``+``), ``gap``, ``removed_value`` (their sum), ``counterfactual`` (``gap - removed_value``),
        ``share_closed`` (``1 - |counterfactual| / |gap|``: the share of the gap's size that the scenario closes;
        negative when it widens it) and the counts ``n_obs, n_people, n_firms`` (those present in the input)
        carried through for :func:`prosperity.sdc.check` (keys ``[<level>, "scenario"]``). With replicates also
        the jackknife ``se, ci_low, ci_high`` of the counterfactual and ``share_closed_se, share_closed_low,
        share_closed_high`` (95%, :func:`interval`): each computed again on every fold, so the covariance of the
        gap and the removed components is accounted for.
    """
    frame, level = _decomposition_frame(decomposition, level)
    reps = replicates if replicates is not None else _replicates_of(decomposition, level)
    folds = _fold_frames(reps, level, frame[level].to_numpy()) if reps is not None else None
    out = []
    for name, comps in _scenarios(remove).items():
        removed = frame[list(comps)].to_numpy(dtype=float).sum(axis=1)
        gap = frame["gap"].to_numpy(dtype=float)
        cf, closed = _counterfactual(gap, removed)
        part = pd.DataFrame({level: frame[level].to_numpy(), "scenario": name, "removed": "+".join(comps),
                             "gap": gap, "removed_value": removed, "counterfactual": cf, "share_closed": closed})
        if folds is not None:
            fk = [_counterfactual(f["gap"].to_numpy(dtype=float), f[list(comps)].to_numpy(dtype=float).sum(axis=1))
                  for f in folds]
            iv = interval(cf, np.stack([a for a, _ in fk]))
            part["se"], part["ci_low"], part["ci_high"] = iv["se"], iv["ci_low"], iv["ci_high"]
            iv = interval(closed, np.stack([b for _, b in fk]))
            part["share_closed_se"], part["share_closed_low"], part["share_closed_high"] = (
                iv["se"], iv["ci_low"], iv["ci_high"])
        for c in COUNTS:
            if c in frame.columns:
                part[c] = frame[c].to_numpy()
        out.append(part)
    return pd.concat(out, ignore_index=True)


def _replicates_of(decomposition, level: str) -> pd.DataFrame | None:
    return replicates(decomposition, level)


def _counterfactual(gap: np.ndarray, removed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The counterfactual gap and the share of the gap it closes."""
    cf = gap - removed
    with np.errstate(divide="ignore", invalid="ignore"):
        closed = np.where(gap != 0, 1.0 - np.abs(cf) / np.abs(gap), np.nan)
    return cf, closed


def _wsd(x: np.ndarray, w: np.ndarray) -> float:
    m = np.dot(w, x) / w.sum()
    return float(np.sqrt(np.dot(w, (x - m) ** 2) / w.sum()))


def dispersion(counterfactuals: pd.DataFrame, *, weights: str = "n_obs",
               replicates: pd.DataFrame | None = None) -> pd.DataFrame:
    """The spread of gaps across places, actual and in each counterfactual of :func:`counterfactual_gaps`.

    One row per scenario: ``sd_gap`` and ``sd_counterfactual`` (standard deviations across places weighted by
    the row-weight column ``weights``, person-years by default, so they are the spread a worker picked at random
    faces) and
    ``reduction = 1 - sd_counterfactual / sd_gap``, ``mean_counterfactual`` (zero when all places of England are
    in the table, as for the gaps) and, when the input carries them, ``n_people`` and ``n_firms``: the counts of
    the *smallest* place cell, the weakest input of each statistic, so the table can go to
    :func:`prosperity.sdc.check` (keys ``"scenario"``).

    ``replicates`` (:func:`replicates` of the decomposition the counterfactuals come from): every statistic is
    computed again on each jackknife fold (with the fold's person-years as weights when ``weights="n_obs"``),
    giving ``sd_gap_se, sd_counterfactual_se, reduction_se`` and the 95% interval ``reduction_low,
    reduction_high`` (:func:`interval`).
    """
    need = ["scenario", "gap", "counterfactual", weights]
    _checks.require_columns(counterfactuals, need, "counterfactuals")
    _checks.require_complete(counterfactuals, need, "counterfactuals")
    _checks.require_numeric(counterfactuals, [weights], "counterfactuals")
    _checks.require_positive(counterfactuals, weights, "counterfactuals", strict=False)
    level = None
    if replicates is not None:
        level = next((c for c in _LEVELS if c in counterfactuals.columns and c in replicates.columns), None)
        if level is None:
            _checks.fail(f"no place column shared with the replicates (one of {list(_LEVELS)})", "counterfactuals",
                         kind=MissingColumnError)
        _checks.require_columns(counterfactuals, ["removed"], "counterfactuals")
    rows = []
    for name, g in counterfactuals.groupby("scenario", sort=False):
        w = g[weights].to_numpy(dtype=float)
        if not (w > 0).any():
            _checks.fail(f"zero in every place of scenario {name!r}", "counterfactuals", weights)
        sg, sc = _wsd(g["gap"].to_numpy(dtype=float), w), _wsd(g["counterfactual"].to_numpy(dtype=float), w)
        rows.append({"scenario": name, "removed": g["removed"].iloc[0] if "removed" in g else name,
                     "n_places": len(g), "sd_gap": sg, "sd_counterfactual": sc,
                     "reduction": 1.0 - sc / sg if sg > 0 else np.nan,
                     "mean_counterfactual": float(np.dot(w, g["counterfactual"]) / w.sum())})
        if replicates is not None:
            comps = str(g["removed"].iloc[0]).split("+")
            est = []
            for f in _fold_frames(replicates, level, g[level].to_numpy()):
                wk = f[weights].to_numpy(dtype=float) if weights in f else w
                gk = f["gap"].to_numpy(dtype=float)
                ck = gk - f[comps].to_numpy(dtype=float).sum(axis=1)
                ok = np.isfinite(gk) & np.isfinite(ck) & np.isfinite(wk)
                a, b = _wsd(gk[ok], wk[ok]), _wsd(ck[ok], wk[ok])
                est.append([a, b, 1.0 - b / a if a > 0 else np.nan] if ok.all() else [np.nan] * 3)
            iv = interval([sg, sc, rows[-1]["reduction"]], np.array(est))
            rows[-1].update(sd_gap_se=float(iv["se"][0]), sd_counterfactual_se=float(iv["se"][1]),
                            reduction_se=float(iv["se"][2]), reduction_low=float(iv["ci_low"][2]),
                            reduction_high=float(iv["ci_high"][2]))
        for c in ("n_people", "n_firms"):
            if c in g:
                rows[-1][c] = int(g[c].min())
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# levers


def _district_weights(decomposition, level: str, district: str,
                      district_weights: pd.DataFrame | None) -> pd.DataFrame:
    """Person-years by (place, district) as columns ``_place, _district, n_obs``: from the decomposition's
    estimation rows (``decomposition.effects.rows``), or from the given ``district_weights`` table."""
    if district_weights is None:
        rows = getattr(getattr(decomposition, "effects", None), "rows", None)
        if not isinstance(rows, pd.DataFrame):
            raise ValueError("place_channels: pass district_weights= (columns place, district, n_obs) when the "
                             "decomposition is a DataFrame without its estimation rows")
        _checks.require_columns(rows, [level, district], "decomposition.effects.rows")
        w = pd.DataFrame({"_place": rows[level].to_numpy(), "_district": rows[district].to_numpy()})
        return w.groupby(["_place", "_district"], sort=True, observed=True).size().rename("n_obs").reset_index()
    need = list(dict.fromkeys((level, district, "n_obs")))
    _checks.require_columns(district_weights, need, "district_weights")
    _checks.require_complete(district_weights, need, "district_weights", id_cols=district)
    _whole_counts(district_weights, ["n_obs"], "district_weights", district)
    dw = district_weights
    return pd.DataFrame({"_place": dw[level].to_numpy(), "_district": dw[district].to_numpy(),
                         "n_obs": dw["n_obs"].to_numpy(dtype=float)})


def place_channels(decomposition, regression, characteristics: pd.DataFrame, *, level: str | None = None,
                   district: str = "lad", district_weights: pd.DataFrame | None = None) -> pd.DataFrame:
    """Split each place's ``place`` component into the contributions of measured place characteristics.

    With the characteristics regression ``phi_l = const + z_l' gamma + u_l`` of
    :func:`prosperity.places.explain_place_effects` (district effects on standardised characteristics), the place
    component of place ``p`` (person-year-weighted mean of ``phi`` minus England's) is exactly

        place_p = sum_c gamma_c (zbar_pc - zbar_c) + unexplained_p,

    where ``zbar_pc`` is the person-year-weighted mean of characteristic ``c`` over the districts of place ``p``
    and ``zbar_c`` England's. ``unexplained`` collects the regression residuals ``u`` and everything not in
    ``z`` (fundamentals no one measures). A channel's 95% interval is the coefficient's interval times
    ``zbar_pc - zbar_c`` (other coefficients held at their estimates). The regression's own caveat applies: the
    coefficients are associations across districts, causal only under its assumptions.

    Parameters
    ----------
    decomposition : a :class:`prosperity.places.GapDecomposition` (its estimation rows give the person-years by
        district) or its table together with ``district_weights`` (columns ``<level>, <district>, n_obs``).
    regression : a :class:`prosperity.places.CharacteristicsRegression`; every term but ``const`` is a channel.
    characteristics : one row per district with the regression's covariates (the ``Z`` it was fitted on, e.g.
        :func:`prosperity.places.characteristics`).

    Returns
    -------
    DataFrame
        Tidy: ``<level>, channel, contribution, ci_low, ci_high`` (one row per covariate and one ``unexplained``)
        with ``place`` (the component being split; the contributions add up to it exactly) and the counts.
    """
    frame, level = _decomposition_frame(decomposition, level)
    coef = _main_table(regression, "regression")
    if coef is None or "estimate" not in coef.columns:
        _checks.fail("must be a places.CharacteristicsRegression (a coefficient table with 'estimate')",
                     "regression", kind=InputTypeError)
    covs = [t for t in coef.index if t != "const"]
    if not covs:
        raise ValueError("place_channels: the regression has no covariates")
    _checks.require_columns(characteristics, [district] + covs, "characteristics")
    _checks.require_unique(characteristics, district, "characteristics", " (one row per district)")
    w = _district_weights(decomposition, level, district, district_weights)
    z = characteristics.set_index(district)[covs]
    zw = z.reindex(w["_district"].to_numpy())
    na = zw.isna().any(axis=1).to_numpy()
    if na.any():
        bad = _checks.plain(pd.unique(w.loc[na, "_district"])[:5])
        _checks.fail(f"no values of {covs} for {int(len(pd.unique(w.loc[na, '_district'])))} district(s) of the "
                     "decomposition", "characteristics", district, bad, district)
    n = w["n_obs"].to_numpy(dtype=float)
    Z = zw.to_numpy(dtype=float)
    nat = (Z * n[:, None]).sum(axis=0) / n.sum()
    tot = (pd.DataFrame(Z * n[:, None], columns=covs).assign(_p=w["_place"].to_numpy(), _n=n)
           .groupby("_p", sort=False).sum())
    zbar = tot[covs].div(tot["_n"], axis=0)
    fr = frame.set_index(level)
    absent = _checks.plain(p for p in fr.index if p not in zbar.index)
    if absent:
        _checks.fail(f"no person-years for {len(absent)} {level}(s) of the decomposition", "district_weights", level,
                     absent, level)
    zbar = zbar.reindex(fr.index)
    nw = tot["_n"].reindex(fr.index).to_numpy()
    off = np.flatnonzero(nw != fr["n_obs"].to_numpy(dtype=float)) if "n_obs" in fr else []
    if len(off):
        _checks.fail(f"person-years by district do not add up to the decomposition's n_obs for {len(off)} {level}(s); "
                     "use the estimation rows the decomposition was built on", "district_weights", "n_obs",
                     _checks.plain(fr.index[off]), level)
    dz = zbar.to_numpy() - nat[None, :]
    est = coef.loc[covs, "estimate"].to_numpy(dtype=float)
    contrib = dz * est[None, :]
    out = []
    for j, c in enumerate(covs):
        part = pd.DataFrame({level: fr.index.to_numpy(), "channel": c, "contribution": contrib[:, j]})
        if {"ci_low", "ci_high"} <= set(coef.columns):
            a = dz[:, j] * float(coef.loc[c, "ci_low"])
            b = dz[:, j] * float(coef.loc[c, "ci_high"])
            part["ci_low"], part["ci_high"] = np.minimum(a, b), np.maximum(a, b)
        else:
            part["ci_low"] = part["ci_high"] = np.nan
        out.append(part)
    out.append(pd.DataFrame({level: fr.index.to_numpy(), "channel": "unexplained",
                             "contribution": fr["place"].to_numpy(dtype=float) - contrib.sum(axis=1),
                             "ci_low": np.nan, "ci_high": np.nan}))
    res = pd.concat(out, ignore_index=True)
    res = res.merge(fr[["place", *[c for c in COUNTS if c in fr]]].reset_index(), on=level, how="left",
                    validate="m:1")
    order = {p: i for i, p in enumerate(fr.index)}
    res["_o"] = res[level].map(order)
    return res.sort_values(["_o"], kind="stable").drop(columns="_o").reset_index(drop=True)


@dataclass(frozen=True, repr=False)
class Levers(Result):
    """Which component dominates each place's gap (see :func:`levers`).

    ``table``: one row per place: ``<level>, gap, dominant, dominant_value, dominant_share, dominant_lever,
    second, second_value`` and the counts. ``ranking``: tidy, one row per place and component, ranked by size:
    ``<level>, rank, component, value, share_of_gap, share_abs, lever`` and the counts. ``channels``: the split
    of the place component by characteristic (:func:`place_channels`), or ``None``. ``regression``: the
    characteristics regression used, or ``None``.
    """

    level: str
    table: pd.DataFrame
    ranking: pd.DataFrame
    channels: pd.DataFrame | None = None
    regression: object = field(default=None, repr=False)

    def summary(self) -> str:
        f = self.table
        lines = [f"Levers: the largest component of the gap in each of {len(f)} places ({self.level})"]
        counts = f["dominant"].value_counts()
        for comp in SUBSTANTIVE:
            if comp in counts:
                lines.append(f"  {comp:<13} dominates in {int(counts[comp]):>4} place(s): {LEVERS[comp]}")
        if self.channels is not None:
            lines.append("  place component split by characteristic (channels): "
                         + ", ".join(self.channels["channel"].unique()))
        return "\n".join(lines)


def levers(decomposition, *, regression=None, characteristics: pd.DataFrame | None = None,
           components: Sequence[str] = SUBSTANTIVE, level: str | None = None, district: str = "lad",
           district_weights: pd.DataFrame | None = None) -> Levers:
    """Rank the components of each place's gap by size and name the policy lever each points to.

    The dominant component of place ``p`` is the one with the largest absolute value among ``components``
    (people, industry mix, firms within industries, place; the residual is not a lever); ``share_abs`` is its
    absolute value over the sum of the absolute values of ``components`` and ``share_of_gap`` its value over
    the gap (which can exceed one when components offset each other). The mapping from component to policy
    domain is :data:`LEVERS`: people -> skills and mobility; industry mix -> industrial structure; firms within
    industries -> firm performance; place -> transport, housing, amenities and density, split further with the
    characteristics regression when ``regression`` and ``characteristics`` are given (:func:`place_channels`).

    A large component is where the gap *is*, not proof that a policy acting on it would close it: see the
    caveats of :func:`counterfactual_gaps`.
    """
    frame, level = _decomposition_frame(decomposition, level)
    components = list(components)
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown or not components:
        raise ValueError(f"levers: components must be among {list(COMPONENTS)}, got {components}")
    vals = frame[components].to_numpy(dtype=float)
    absv = np.abs(vals)
    tot = absv.sum(axis=1)
    order = np.argsort(-absv, axis=1, kind="stable")
    gap = frame["gap"].to_numpy(dtype=float)
    recs = []
    for i in range(len(frame)):
        for r, j in enumerate(order[i]):
            recs.append({level: frame[level].iat[i], "rank": r + 1, "component": components[j],
                         "value": vals[i, j], "share_of_gap": vals[i, j] / gap[i] if gap[i] != 0 else np.nan,
                         "share_abs": absv[i, j] / tot[i] if tot[i] > 0 else np.nan,
                         "lever": LEVERS[components[j]]})
    cnt = [c for c in COUNTS if c in frame.columns]
    ranking = pd.DataFrame(recs).merge(frame[[level, *cnt]], on=level, how="left")
    top = ranking[ranking["rank"] == 1].set_index(level)
    sec = ranking[ranking["rank"] == 2].set_index(level) if len(components) > 1 else None
    wide = frame[[level, "gap"]].copy()
    wide["dominant"] = top["component"].reindex(wide[level]).to_numpy()
    wide["dominant_value"] = top["value"].reindex(wide[level]).to_numpy()
    wide["dominant_share"] = top["share_abs"].reindex(wide[level]).to_numpy()
    wide["dominant_lever"] = top["lever"].reindex(wide[level]).to_numpy()
    if sec is not None:
        wide["second"] = sec["component"].reindex(wide[level]).to_numpy()
        wide["second_value"] = sec["value"].reindex(wide[level]).to_numpy()
    for c in cnt:
        wide[c] = frame[c].to_numpy()
    channels = None
    if (regression is None) != (characteristics is None):
        raise ValueError("levers: pass both regression= and characteristics= to split the place component")
    if regression is not None:
        channels = place_channels(decomposition, regression, characteristics, level=level, district=district,
                                  district_weights=district_weights)
    return Levers(level=level, table=wide, ranking=ranking, channels=channels, regression=regression)


# ---------------------------------------------------------------------------------------------------------------
# over time


def over_time(rolling, level: str = "region") -> pd.DataFrame:
    """Each place's gap decomposition in every window of a :class:`prosperity.places.RollingResult`.

    Windows decomposed at another level (districts, by default in :func:`prosperity.places.rolling`) are
    re-aggregated to ``level`` from their fitted effects with :func:`prosperity.places.decompose_gaps` (no
    re-fit). Each window is a separate sample with its own identified set, so part of the change between windows
    is estimation noise and a change of sample.

    Returns a tidy frame: ``window, start, end, <level>, gap, <components>, n_obs, n_people, n_firms``; when the
    windows were fitted with jackknife standard errors (``places.rolling(..., se=True)``) also ``gap_se,
    people_se, ...`` and ``folds`` (the number of jackknife groups, for the intervals of :func:`window_changes`).
    """
    frame = _main_table(rolling, "rolling")
    decs = getattr(rolling, "decompositions", None)
    if frame is None or decs is None:
        _checks.fail(f"expected a places.RollingResult, got {type(rolling).__name__}", "rolling", kind=InputTypeError)
    _checks.require_choice(level, "over_time: level", _LEVELS)
    out = []
    for (_, w), dec in zip(frame.iterrows(), decs):
        se = getattr(dec.effects, "fold_components", None) is not None and bool(getattr(dec, "folds", 0))
        if dec.level == level:
            f = _main_table(dec, "window")
        else:
            rows = dec.effects.rows
            _checks.require_columns(rows, [level], f"rolling window {w['window']} estimation rows")
            f = _main_table(places.decompose_gaps(rows, level=level, effects=dec.effects, correct=False, se=se),
                            "window")
        f, _ = _decomposition_frame(f, level, table=f"rolling window {w['window']}", counts=True)
        f = f.copy()
        if se and "gap_se" in f:
            f["folds"] = int(dec.folds)
        f.insert(0, "end", int(w["end"]))
        f.insert(0, "start", int(w["start"]))
        f.insert(0, "window", str(w["window"]))
        out.append(f)
    return pd.concat(out, ignore_index=True)


def window_changes(over_time: pd.DataFrame, *, level: str | None = None,
                   components: Sequence[str] = ("gap", *SUBSTANTIVE), first: str | None = None,
                   last: str | None = None, coverage: float = 0.95) -> pd.DataFrame:
    """The change of each place's gap and components from one window to another, with a 95% interval.

    ``over_time``: the tidy frame of :func:`over_time` fitted with standard errors (``places.rolling(...,
    se=True)``: columns ``<c>_se`` and ``folds``). The change is ``c_last - c_first`` with standard error
    ``sqrt(se_first^2 + se_last^2)`` and a Student t interval on ``folds - 1`` degrees of freedom (the smaller of
    the two windows' ``folds``). Windows are disjoint sets of years but share workers, so their estimation errors
    are positively correlated; treating them as independent overstates the standard error of the change (the
    interval is conservative), as :meth:`prosperity.places.RollingResult.changes` does for the shares.

    A change whose interval covers zero is *not distinguishable from no change*: in a world static by construction
    (the synthetic England) that is what every change should be, apart from the one in twenty a 95% interval misses.

    Returns one row per place and component: ``<level>, component, first, last`` (the windows), ``change, se,
    ci_low, ci_high, significant`` (the interval excludes zero) and the counts ``n_obs, n_people, n_firms`` of
    the smaller of the two cells (for :func:`prosperity.sdc.check`, keys ``[<level>, "component"]``). A place
    present in only one of the two windows keeps its rows, with ``nan`` change and interval.
    """
    _checks.require_frame(over_time, "over_time")
    if level is None:
        level = next((c for c in _LEVELS if c in over_time.columns), None)
        if level is None:
            _checks.fail(f"no place column (one of {list(_LEVELS)})", "over_time", kind=MissingColumnError)
    components = list(components)
    unknown = [c for c in components if c not in ("gap", *COMPONENTS)]
    if unknown or not components:
        raise ValueError(f"window_changes: components must be among {['gap', *COMPONENTS]}, got {components}")
    need = ["window", level, "folds", *components, *[f"{c}_se" for c in components], *COUNTS]
    _checks.require_columns(over_time, need, "over_time", hint=" (fit the windows with places.rolling(..., se=True))")
    _checks.require_complete(over_time, ["window", level, "folds", *components, *COUNTS], "over_time", id_cols=level)
    windows = list(dict.fromkeys(over_time["window"].astype(str)))
    first = windows[0] if first is None else str(first)
    last = windows[-1] if last is None else str(last)
    for name, wnd in (("first", first), ("last", last)):
        if wnd not in windows:
            raise ValueError(f"window_changes: {name}={wnd!r} is not a window; windows are {windows}")
    if first == last:
        raise ValueError(f"window_changes: first and last are the same window {first!r}")
    t = over_time.assign(window=over_time["window"].astype(str))
    _checks.require_unique(t, ["window", level], "over_time", " (one row per window and place)")
    a = t[t["window"] == first].set_index(level)
    b = t[t["window"] == last].set_index(level)
    common = list(dict.fromkeys([*a.index, *b.index]))  # a place missing from one window: nan change (kept)
    a, b = a.reindex(common), b.reindex(common)
    K = np.fmin(a["folds"].to_numpy(dtype=float), b["folds"].to_numpy(dtype=float))
    out = []
    for c in components:
        d = b[c].to_numpy(dtype=float) - a[c].to_numpy(dtype=float)
        se = np.hypot(a[f"{c}_se"].to_numpy(dtype=float), b[f"{c}_se"].to_numpy(dtype=float))
        q = stats.t.ppf(0.5 + coverage / 2, np.fmax(K - 1, 1))
        lo, hi = d - q * se, d + q * se
        part = pd.DataFrame({level: common, "component": c, "first": first, "last": last, "change": d, "se": se,
                             "ci_low": lo, "ci_high": hi, "significant": (lo > 0) | (hi < 0)})
        for n in COUNTS:
            v = np.fmin(a[n].to_numpy(dtype=float), b[n].to_numpy(dtype=float))
            part[n] = v.astype(np.int64) if np.isfinite(v).all() else v
        out.append(part)
    return pd.concat(out, ignore_index=True)

"""From decompositions to policy: counterfactual gaps, levers and one-page briefs per region.

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
- :func:`over_time`: the decomposition of each place's gap in every window of :func:`prosperity.places.rolling`.
- :func:`region_brief`: a one-page Markdown brief per region generated from these results, with the
  disclosure-control status (:func:`prosperity.sdc.check`) of every number in it; numbers from failing cells are
  suppressed in the text.

All tables carry the counts ``n_obs``, ``n_people`` and ``n_firms`` of the cells they come from, so they can be
passed to :func:`prosperity.sdc.check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from . import places, sdc

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
    "RegionBrief",
    "region_brief",
    "SYNTHETIC_SOURCE",
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
_COMPONENT_NAMES = {"people": "people", "industry_mix": "industry mix", "firm_within": "firms within industries",
                    "place": "place", "residual": "residual"}
_CHANNEL_NAMES = {"transport_access": "transport access", "housing_cost": "housing costs",
                  "amenities": "amenities", "density": "density", "unexplained": "not explained by these",
                  "prosperity": "local prosperity (a control for unmeasured fundamentals, not a lever)"}
#: Default data-source line of a brief.
SYNTHETIC_SOURCE = "the synthetic England of prosperity.synthetic (not real data: the numbers are not England's)"


# ---------------------------------------------------------------------------------------------------------------
# input checks


def _plain(xs) -> list:
    """Ids as plain Python values for error messages (no ``np.str_('L5')``)."""
    return [x.item() if isinstance(x, np.generic) else x for x in xs]


def _ids(df: pd.DataFrame, mask, key: str, k: int = 5) -> list:
    return _plain(df.loc[np.asarray(mask), key].head(k).tolist())


def _decomposition_frame(decomposition, level: str | None = None, table: str = "decomposition",
                         counts: bool = False) -> tuple[pd.DataFrame, str]:
    """The per-place frame of a :class:`prosperity.places.GapDecomposition` (or an equivalent DataFrame), checked:
    the place column, the components, the counts (required with ``counts=True``, else checked when present), no
    missing values, unique places, and the adding-up identity."""
    if isinstance(decomposition, pd.DataFrame):
        frame = decomposition
        level = level or next((c for c in _LEVELS if c in frame.columns), None)
        if level is None:
            raise KeyError(f"{table} has no place column (one of {_LEVELS}); pass level=; columns: "
                           f"{list(frame.columns)}")
    elif isinstance(getattr(decomposition, "frame", None), pd.DataFrame):
        frame = decomposition.frame
        level = level or decomposition.level
    else:
        raise TypeError(f"{table}: expected a places.GapDecomposition or a DataFrame, got "
                        f"{type(decomposition).__name__}")
    present = [c for c in COUNTS if c in frame.columns]
    need = [level, "gap", *COMPONENTS] + (list(COUNTS) if counts else present)
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise KeyError(f"{table} has no column(s) {missing}; its columns are {list(frame.columns)}")
    frame = frame.reset_index(drop=True)
    for c in need:
        na = frame[c].isna().to_numpy()
        if na.any():
            raise ValueError(f"{table}.{c} has {int(na.sum())} missing value(s), for {level} "
                             f"{_ids(frame, na, level) if c != level else list(np.flatnonzero(na)[:5])}")
    dup = frame[level].duplicated().to_numpy()
    if dup.any():
        raise ValueError(f"{table}.{level} must be unique (one row per place); duplicated: {_ids(frame, dup, level)}")
    for c in COUNTS:
        if c in frame.columns:
            v = frame[c].to_numpy(dtype=float)
            bad = (v < 0) | (v != np.round(v))
            if bad.any():
                raise ValueError(f"{table}.{c} must hold non-negative whole counts; bad for {level} "
                                 f"{_ids(frame, bad, level)}")
    vals = frame[list(COMPONENTS)].to_numpy(dtype=float)
    gap = frame["gap"].to_numpy(dtype=float)
    err = np.abs(vals.sum(axis=1) - gap)
    tol = 1e-8 * max(1.0, float(np.max(np.abs(gap))) if len(gap) else 1.0)
    bad = err > tol
    if bad.any():
        raise ValueError(f"{table}: the components {list(COMPONENTS)} do not add up to column 'gap' for {level} "
                         f"{_ids(frame, bad, level)} (largest error {float(err.max()):.3g}); counterfactuals need "
                         "an exact decomposition")
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
# counterfactuals


def counterfactual_gaps(decomposition, remove: str | Sequence[str] | Mapping[str, Sequence[str]] = ("people",), *,
                        level: str | None = None) -> pd.DataFrame:
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

    Returns
    -------
    DataFrame
        Tidy: one row per place and scenario with ``<level>, scenario, removed`` (the components, joined by
        ``+``), ``gap``, ``removed_value`` (their sum), ``counterfactual`` (``gap - removed_value``),
        ``share_closed`` (``1 - |counterfactual| / |gap|``: the share of the gap's size that the scenario closes;
        negative when it widens it) and the counts ``n_obs, n_people, n_firms`` (those present in the input)
        carried through for :func:`prosperity.sdc.check` (keys ``[<level>, "scenario"]``).
    """
    frame, level = _decomposition_frame(decomposition, level)
    out = []
    for name, comps in _scenarios(remove).items():
        removed = frame[list(comps)].to_numpy(dtype=float).sum(axis=1)
        gap = frame["gap"].to_numpy(dtype=float)
        cf = gap - removed
        with np.errstate(divide="ignore", invalid="ignore"):
            closed = np.where(gap != 0, 1.0 - np.abs(cf) / np.abs(gap), np.nan)
        part = pd.DataFrame({level: frame[level].to_numpy(), "scenario": name, "removed": "+".join(comps),
                             "gap": gap, "removed_value": removed, "counterfactual": cf, "share_closed": closed})
        for c in COUNTS:
            if c in frame.columns:
                part[c] = frame[c].to_numpy()
        out.append(part)
    return pd.concat(out, ignore_index=True)


def _wsd(x: np.ndarray, w: np.ndarray) -> float:
    m = np.dot(w, x) / w.sum()
    return float(np.sqrt(np.dot(w, (x - m) ** 2) / w.sum()))


def dispersion(counterfactuals: pd.DataFrame, *, weight: str = "n_obs") -> pd.DataFrame:
    """The spread of gaps across places, actual and in each counterfactual of :func:`counterfactual_gaps`.

    One row per scenario: ``sd_gap`` and ``sd_counterfactual`` (standard deviations across places weighted by
    ``weight``, person-years by default, so they are the spread a worker picked at random faces) and
    ``reduction = 1 - sd_counterfactual / sd_gap``, ``mean_counterfactual`` (zero when all places of England are
    in the table, as for the gaps) and, when the input carries them, ``n_people`` and ``n_firms``: the counts of
    the *smallest* place cell, the weakest input of each statistic, so the table can go to
    :func:`prosperity.sdc.check` (keys ``"scenario"``).
    """
    need = ["scenario", "gap", "counterfactual", weight]
    missing = [c for c in need if c not in counterfactuals.columns]
    if missing:
        raise KeyError(f"counterfactuals has no column(s) {missing}; its columns are {list(counterfactuals.columns)}")
    rows = []
    for name, g in counterfactuals.groupby("scenario", sort=False):
        w = g[weight].to_numpy(dtype=float)
        if not (w > 0).any():
            raise ValueError(f"counterfactuals.{weight} is zero in every place of scenario {name!r}")
        sg, sc = _wsd(g["gap"].to_numpy(dtype=float), w), _wsd(g["counterfactual"].to_numpy(dtype=float), w)
        rows.append({"scenario": name, "removed": g["removed"].iloc[0] if "removed" in g else name,
                     "n_places": len(g), "sd_gap": sg, "sd_counterfactual": sc,
                     "reduction": 1.0 - sc / sg if sg > 0 else np.nan,
                     "mean_counterfactual": float(np.dot(w, g["counterfactual"]) / w.sum())})
        for c in ("n_people", "n_firms"):
            if c in g:
                rows[-1][c] = int(g[c].min())
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------------------
# levers


def _district_weights(decomposition, level: str, district: str, weights: pd.DataFrame | None) -> pd.DataFrame:
    """Person-years by (place, district) as columns ``_place, _district, n_obs``: from the decomposition's
    estimation rows (``decomposition.effects.rows``), or from a given table."""
    if weights is None:
        rows = getattr(getattr(decomposition, "effects", None), "rows", None)
        if not isinstance(rows, pd.DataFrame):
            raise ValueError("place_channels: pass weights= (columns place, district, n_obs) when the decomposition "
                             "is a DataFrame without its estimation rows")
        for c in (level, district):
            if c not in rows.columns:
                raise KeyError(f"decomposition.effects.rows has no column {c!r}; columns: {list(rows.columns)}")
        w = pd.DataFrame({"_place": rows[level].to_numpy(), "_district": rows[district].to_numpy()})
        return w.groupby(["_place", "_district"], sort=True, observed=True).size().rename("n_obs").reset_index()
    need = list(dict.fromkeys((level, district, "n_obs")))
    missing = [c for c in need if c not in weights.columns]
    if missing:
        raise KeyError(f"weights has no column(s) {missing}; its columns are {list(weights.columns)}")
    na = weights[need].isna().any(axis=1).to_numpy()
    if na.any():
        raise ValueError(f"weights has missing values for {district} {_ids(weights, na, district)}")
    n = weights["n_obs"].to_numpy(dtype=float)
    if (n < 0).any():
        raise ValueError(f"weights.n_obs is negative for {district} {_ids(weights, n < 0, district)}")
    return pd.DataFrame({"_place": weights[level].to_numpy(), "_district": weights[district].to_numpy(), "n_obs": n})


def place_channels(decomposition, regression, characteristics: pd.DataFrame, *, level: str | None = None,
                   district: str = "lad", weights: pd.DataFrame | None = None) -> pd.DataFrame:
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
        district) or its frame together with ``weights`` (columns ``<level>, <district>, n_obs``).
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
    coef = getattr(regression, "coef", None)
    if not isinstance(coef, pd.DataFrame) or "estimate" not in coef.columns:
        raise TypeError("place_channels: regression must be a places.CharacteristicsRegression (with .coef)")
    covs = [t for t in coef.index if t != "const"]
    if not covs:
        raise ValueError("place_channels: the regression has no covariates")
    missing = [c for c in [district] + covs if c not in characteristics.columns]
    if missing:
        raise KeyError(f"characteristics has no column(s) {missing}; its columns are {list(characteristics.columns)}")
    if characteristics[district].duplicated().any():
        dup = _plain(pd.unique(characteristics.loc[characteristics[district].duplicated(), district])[:5])
        raise ValueError(f"characteristics.{district} must be unique; duplicated: {dup}")
    w = _district_weights(decomposition, level, district, weights)
    z = characteristics.set_index(district)[covs]
    zw = z.reindex(w["_district"].to_numpy())
    na = zw.isna().any(axis=1).to_numpy()
    if na.any():
        bad = _plain(pd.unique(w.loc[na, "_district"])[:5])
        raise ValueError(f"characteristics has no values of {covs} for {district} {bad}")
    n = w["n_obs"].to_numpy(dtype=float)
    Z = zw.to_numpy(dtype=float)
    nat = (Z * n[:, None]).sum(axis=0) / n.sum()
    tot = (pd.DataFrame(Z * n[:, None], columns=covs).assign(_p=w["_place"].to_numpy(), _n=n)
           .groupby("_p", sort=False).sum())
    zbar = tot[covs].div(tot["_n"], axis=0)
    fr = frame.set_index(level)
    absent = _plain(p for p in fr.index if p not in zbar.index)
    if absent:
        raise ValueError(f"weights have no person-years for {level} {absent[:5]} of the decomposition")
    zbar = zbar.reindex(fr.index)
    nw = tot["_n"].reindex(fr.index).to_numpy()
    off = np.flatnonzero(nw != fr["n_obs"].to_numpy(dtype=float)) if "n_obs" in fr else []
    if len(off):
        raise ValueError(f"weights: person-years by district do not add up to decomposition.n_obs for {level} "
                         f"{_plain(fr.index[off[:5]])}; use the estimation rows the decomposition was built on")
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


@dataclass(frozen=True)
class Levers:
    """Which component dominates each place's gap (see :func:`levers`).

    ``frame``: one row per place: ``<level>, gap, dominant, dominant_value, dominant_share, dominant_lever,
    second, second_value`` and the counts. ``ranking``: tidy, one row per place and component, ranked by size:
    ``<level>, rank, component, value, share_of_gap, share_abs, lever`` and the counts. ``channels``: the split
    of the place component by characteristic (:func:`place_channels`), or ``None``. ``regression``: the
    characteristics regression used, or ``None``.
    """

    level: str
    frame: pd.DataFrame
    ranking: pd.DataFrame
    channels: pd.DataFrame | None = None
    regression: object = field(default=None, repr=False)

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def summary(self) -> str:
        f = self.frame
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
           weights: pd.DataFrame | None = None) -> Levers:
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
                                  weights=weights)
    return Levers(level=level, frame=wide, ranking=ranking, channels=channels, regression=regression)


_compute_levers = levers  # region_brief's keyword ``levers`` shadows the function


# ---------------------------------------------------------------------------------------------------------------
# over time


def over_time(rolling, level: str = "region") -> pd.DataFrame:
    """Each place's gap decomposition in every window of a :class:`prosperity.places.RollingResult`.

    Windows decomposed at another level (districts, by default in :func:`prosperity.places.rolling`) are
    re-aggregated to ``level`` from their fitted effects with :func:`prosperity.places.decompose_gaps` (no
    re-fit). Each window is a separate sample with its own identified set, so part of the change between windows
    is estimation noise and a change of sample.

    Returns a tidy frame: ``window, start, end, <level>, gap, <components>, n_obs, n_people, n_firms``.
    """
    frame = getattr(rolling, "frame", None)
    decs = getattr(rolling, "decompositions", None)
    if not isinstance(frame, pd.DataFrame) or decs is None:
        raise TypeError(f"over_time: expected a places.RollingResult, got {type(rolling).__name__}")
    if level not in _LEVELS:
        raise ValueError(f"over_time: level must be one of {_LEVELS}, got {level!r}")
    out = []
    for (_, w), dec in zip(frame.iterrows(), decs):
        if dec.level == level:
            f = dec.frame
        else:
            rows = dec.effects.rows
            if level not in rows.columns:
                raise KeyError(f"over_time: window {w['window']}: the estimation rows have no {level!r} column")
            f = places.decompose_gaps(rows, level=level, effects=dec.effects, correct=False).frame
        f, _ = _decomposition_frame(f, level, table=f"rolling window {w['window']}", counts=True)
        f = f.copy()
        f.insert(0, "end", int(w["end"]))
        f.insert(0, "start", int(w["start"]))
        f.insert(0, "window", str(w["window"]))
        out.append(f)
    return pd.concat(out, ignore_index=True)


# ---------------------------------------------------------------------------------------------------------------
# one-page brief


@dataclass(frozen=True)
class RegionBrief:
    """A one-page brief for one place (see :func:`region_brief`).

    ``markdown``: the brief. ``numbers``: every number printed in it: ``section, item, value, text`` (as printed;
    ``[suppressed]`` when a source cell fails disclosure control), ``cells`` (source cells) and ``sdc`` (``pass``
    or the failing rules). ``cells``: the source cells with their counts and SDC status (``cell, what, n_people,
    n_firms, status, reason``).
    """

    place: str
    name: str
    markdown: str
    numbers: pd.DataFrame
    cells: pd.DataFrame

    @property
    def passed(self) -> bool:
        """True when every source cell passes disclosure control (nothing suppressed)."""
        return bool((self.cells["status"] == "pass").all())

    def to_frame(self) -> pd.DataFrame:
        return self.numbers.copy()

    def summary(self) -> str:
        return self.markdown

    def _repr_markdown_(self) -> str:
        return self.markdown


class _Registry:
    """Collects every number of a brief with its source cells; formats it or suppresses it."""

    def __init__(self, cells: dict[str, dict]):
        self.cells = cells
        self.rows: list[dict] = []

    def num(self, section: str, item: str, value: float, cells: Sequence[str], fmt: str = "{:+.3f}") -> str:
        failing = [c for c in cells if self.cells[c]["status"] != "pass"]
        text = "[suppressed]" if failing else fmt.format(value)
        if not failing and text.lstrip("+-").strip("0.%") == "":  # no signed zeros such as -0.000
            text = text.lstrip("+-")
        self.rows.append({"section": section, "item": item, "value": float(value), "text": text,
                          "cells": ",".join(cells),
                          "sdc": "pass" if not failing else "; ".join(f"{c}: {self.cells[c]['reason']}"
                                                                       for c in failing)})
        return text


def _cell_status(report) -> tuple[str, str]:
    if report.passed:
        return "pass", ""
    return "suppressed", "; ".join(report.failures["reason"].astype(str).unique())


def _pct(x: float) -> float:
    return 100.0 * (np.exp(x) - 1.0)


def region_brief(decomposition, region: str, *, levers: Levers | None = None, windows=None,
                 names: Mapping[str, str] | None = None, rules: str | sdc.Rules = "ons_srs",
                 scenarios: Mapping[str, Sequence[str]] = SCENARIOS, source: str = SYNTHETIC_SOURCE,
                 heading_level: int = 3) -> RegionBrief:
    """A one-page Markdown brief for one region (or any place), generated from the results.

    Sections: the gap and its size in per cent; its components with the lever each points to (:func:`levers`);
    the counterfactual gaps of ``scenarios`` (:func:`counterfactual_gaps`); the split of the place component by
    characteristic when ``levers`` carries channels (:func:`place_channels`); the gap and components in each
    window when ``windows`` is given (:func:`over_time` output or a ``RollingResult``); caveats; and the
    disclosure-control status of every source cell, checked with :func:`prosperity.sdc.check` (threshold rules
    on ``n_people`` and ``n_firms``) and, for the channels, :func:`prosperity.sdc.check_regression` (residual
    degrees of freedom of the characteristics regression). A number whose source cell fails is printed as
    ``[suppressed]``. Every number printed is listed in ``RegionBrief.numbers`` with its status.

    Parameters
    ----------
    decomposition : a :class:`prosperity.places.GapDecomposition` or its frame.
    region : the place id (e.g. ``"E12000001"``).
    levers : a :class:`Levers` for the same decomposition (computed without channels if not given).
    windows : tidy per-window decomposition (:func:`over_time`) or a ``RollingResult``.
    names : display names by id (default: :func:`prosperity.geography.region_short_names` for regions).
    rules : disclosure-control rules (:mod:`prosperity.sdc`).
    source : the data-source line printed in the brief.
    heading_level : Markdown heading level of the title (``0``: a bold line instead of a heading, for display
        inside a notebook output).
    """
    frame, level = _decomposition_frame(decomposition, None, counts=True)
    if region not in set(frame[level]):
        raise KeyError(f"decomposition has no {level} {region!r}; its {level} values are "
                       f"{_plain(frame[level].head(10))}")
    if isinstance(rules, sdc.Rules):
        rules_obj = rules
    elif rules in sdc.PRESETS:
        rules_obj = sdc.PRESETS[rules]
    else:
        raise ValueError(f"rules must be a prosperity.sdc.Rules or one of {sorted(sdc.PRESETS)}, got {rules!r}")
    if names is None:
        if level == "region":
            from . import geography
            names = geography.region_short_names()
        else:
            names = {}
    name = str(names.get(region, region))
    if levers is None:
        levers = _compute_levers(frame, level=level)
    elif levers.level != level:
        raise ValueError(f"levers are for {levers.level!r}, the decomposition for {level!r}")
    row = frame.set_index(level).loc[region]

    # source cells and their disclosure status
    cells: dict[str, dict] = {}
    one = frame[frame[level] == region][[level, "gap", *COMPONENTS, *COUNTS]]
    st, why = _cell_status(sdc.check(one, keys=level, rules=rules_obj, name=f"brief_{region}"))
    cells["A"] = {"what": f"{name}, whole period", "n_people": int(row["n_people"]), "n_firms": int(row["n_firms"]),
                  "status": st, "reason": why}
    win = None
    if windows is not None:
        win = over_time(windows, level=level) if not isinstance(windows, pd.DataFrame) else windows
        need = ["window", level, "gap", *SUBSTANTIVE, *COUNTS]
        missing = [c for c in need if c not in win.columns]
        if missing:
            raise KeyError(f"windows has no column(s) {missing}; its columns are {list(win.columns)}")
        win = win[win[level] == region].reset_index(drop=True)
        if win.empty:
            raise KeyError(f"windows has no rows for {level} {region!r}")
        for i, w in win.iterrows():
            rep = sdc.check(win.loc[[i], ["window", level, *COUNTS]], keys=["window", level], rules=rules_obj,
                            name=f"brief_{region}_{w['window']}")
            st, why = _cell_status(rep)
            cells[f"W{i + 1}"] = {"what": f"{name}, {w['window']}", "n_people": int(w["n_people"]),
                                  "n_firms": int(w["n_firms"]), "status": st, "reason": why}
    ch = None
    if levers.channels is not None:
        ch = levers.channels[levers.channels[level] == region]
        reg = levers.regression
        if reg is not None and hasattr(reg, "n_places"):
            k = len(reg.coef)
            rep = sdc.check_regression(df_resid=int(reg.n_places) - k, coefficients=reg.coef, rules=rules_obj,
                                       name=f"brief_{region}_regression")
            st, why = _cell_status(rep)
            cells["R"] = {"what": f"characteristics regression ({reg.n_places} districts, {k} coefficients, "
                                  f"{int(reg.n_places) - k} residual df)", "n_people": np.nan, "n_firms": np.nan,
                          "status": st, "reason": why}
    R = _Registry(cells)
    title = f"{name}: one-page brief"
    L: list[str] = [f"{'#' * heading_level} {title}" if heading_level > 0 else f"**{title}**", ""]
    model = getattr(getattr(decomposition, "effects", None), "model", None)
    L.append(f"*Generated by `prosperity.policy.region_brief` from the results"
             + (f" of the {model} model" if model else "") + f"; data: {source}. A gap is the difference in mean "
             "log hourly pay from England's (0.100 log points is about 10.5% higher pay).*")
    L.append("")

    # headline
    gap = float(row["gap"])
    g = R.num("headline", "gap (log points)", gap, ["A"])
    gp = R.num("headline", "gap (per cent)", abs(_pct(gap)), ["A"], "{:.1f}")
    word = "above" if gap >= 0 else "below"
    more = "higher" if gap >= 0 else "lower"
    rk = levers.ranking[levers.ranking[level] == region].sort_values("rank")
    top = rk.iloc[0]
    tv = R.num("headline", f"largest component ({top['component']})", float(top["value"]), ["A"])
    ts = R.num("headline", "largest component, share of absolute components", 100 * float(top["share_abs"]),
               ["A"], "{:.0f}")
    works = "adds to" if np.sign(top["value"]) == np.sign(gap) else "works against"
    L.append(f"**The gap** (cell A). Mean log hourly pay in {name} is {g} log points, {word} England's: pay is "
             f"about {gp}% {more} (geometric means). The largest component is "
             f"**{_COMPONENT_NAMES[top['component']]}** ({tv} log points, {ts}% of the absolute size of the "
             f"components), which {works} the gap; it points to {LEVERS[top['component']]}.")
    L.append("")

    # components
    L += ["**What the gap is made of** (cell A).", "", "| component | log points | share of gap | rank | lever |",
          "|---|---:|---:|---:|---|"]
    for comp in COMPONENTS:
        v = float(row[comp])
        t = R.num("components", comp, v, ["A"])
        s = R.num("components", f"{comp} share of gap", 100 * v / gap if gap else np.nan, ["A"], "{:.0f}%")
        rr = rk.loc[rk["component"] == comp, "rank"]
        rank = str(int(rr.iloc[0])) if len(rr) else "–"
        L.append(f"| {_COMPONENT_NAMES[comp]} | {t} | {s} | {rank} | {LEVERS[comp].split(' (')[0]} |")
    L.append(f"| **gap** | **{g}** | 100% | | |")
    L.append("")

    # counterfactuals
    cf = counterfactual_gaps(frame[frame[level] == region], scenarios, level=level)
    L += ["**What if** (cell A; partial equilibrium: everything else held fixed).", "",
          "| if the region had... | gap would be | share of the gap closed |", "|---|---:|---:|"]
    for _, c in cf.iterrows():
        t = R.num("counterfactuals", f"counterfactual gap, {c['scenario']}", float(c["counterfactual"]), ["A"])
        s = R.num("counterfactuals", f"share closed, {c['scenario']}", 100 * float(c["share_closed"]), ["A"],
                  "{:.0f}%")
        label = SCENARIO_LABELS.get(c["scenario"], f"England's average {c['removed'].replace('+', ' and ')}")
        L.append(f"| {label} | {t} | {s} |")
    L.append("")

    # place channels
    if ch is not None and len(ch):
        cc = ["A", "R"] if "R" in cells else ["A"]
        pv = R.num("place channels", "place component", float(row["place"]), cc)
        parts = []
        for _, c in ch.iterrows():
            v = R.num("place channels", f"channel {c['channel']}", float(c["contribution"]), cc)
            txt = f"{_CHANNEL_NAMES.get(c['channel'], c['channel'])} {v}"
            if np.isfinite(c["ci_low"]):
                lo = R.num("place channels", f"channel {c['channel']} ci_low", float(c["ci_low"]), cc)
                hi = R.num("place channels", f"channel {c['channel']} ci_high", float(c["ci_high"]), cc)
                txt += f" (95% interval {lo} to {hi})"
            parts.append(txt)
        L.append(f"**The place component** (cells {' and '.join(cc)}). Of the place component ({pv} log points), "
                 "given the district characteristics regression: " + "; ".join(parts) + ". These are "
                 "associations across districts, not the effect of building a road or a house.")
        L.append("")

    # over time
    if win is not None:
        L += [f"**Over time** (cells W1–W{len(win)}).", "",
              "| window | gap | people | industry mix | firms within | place |", "|---|---:|---:|---:|---:|---:|"]
        for i, w in win.iterrows():
            cid = [f"W{i + 1}"]
            vals = [R.num("over time", f"{w['window']} {c}", float(w[c]), cid) for c in ("gap", *SUBSTANTIVE)]
            L.append(f"| {w['window']} | " + " | ".join(vals) + " |")
        if len(win) > 1:
            first, last = win.iloc[0], win.iloc[-1]
            cid = ["W1", f"W{len(win)}"]
            d = {c: float(last[c] - first[c]) for c in SUBSTANTIVE}
            big = max(d, key=lambda c: abs(d[c]))
            dg = R.num("over time", "change in gap", float(last["gap"] - first["gap"]), cid)
            db = R.num("over time", f"change in {big}", d[big], cid)
            L += ["", f"From {first['window']} to {last['window']} the gap changed by {dg} log points; the largest "
                  f"change was in {_COMPONENT_NAMES[big]} ({db}). Each window is a separate, shorter sample, so part "
                  "of any change is estimation noise."]
        L.append("")

    # caveats
    ident = getattr(getattr(decomposition, "effects", None), "identification", None)
    L += ["**Caveats**", "",
          "- *Partial equilibrium.* The counterfactuals are accounting: they set one component to England's average "
          "and hold everything else fixed, including the pay of everyone else and the premiums of firms and places.",
          "- *Sorting responds to policy.* Better transport or cheaper housing changes who lives and works in the "
          "region; the people component would move too, and the place premium measures what the same worker earns, "
          "not what the region would earn after workers re-sort.",
          f"- *Estimation noise.* The numbers rest on {int(row['n_people']):,} people and {int(row['n_firms']):,} "
          "enterprises in the estimation sample; firm and place effects are identified only by workers who move and "
          "by enterprises with sites in several districts."]
    if isinstance(ident, dict) and "n_multi_place_firms" in ident:
        L[-1] += (f" Across England {ident['n_multi_place_firms']:,} such enterprises identify the place effects; "
                  f"{ident['dropped_obs']:,} person-years outside the identified set were dropped.")
    if abs(float(row["residual"])) > 0.1 * max(abs(gap), 1e-12):
        L.append("- *Residual.* A tenth or more of the gap is not attributed to any component.")
    L.append(f"- *Data.* {source[0].upper() + source[1:]}.")
    L.append("")

    # disclosure
    rb = rules_obj
    L += [f"**Disclosure check** ({rb.name}: at least {rb.min_people} people and {rb.min_firms} enterprises behind "
          f"every cell, at least {rb.min_dof} residual degrees of freedom for regressions). "
          f"{len(R.rows)} numbers above; every one comes from the cells below.", "",
          "| cell | what | people | enterprises | status |", "|---|---|---:|---:|---|"]
    for cid, c in cells.items():
        pe = f"{c['n_people']:,}" if np.isfinite(c["n_people"]) else "–"
        fe = f"{c['n_firms']:,}" if np.isfinite(c["n_firms"]) else "–"
        status = c["status"] + (f": {c['reason']}" if c["reason"] else "")
        L.append(f"| {cid} | {c['what']} | {pe} | {fe} | {status} |")
    numbers = pd.DataFrame(R.rows)
    cells_df = pd.DataFrame([{"cell": k, **v} for k, v in cells.items()])
    return RegionBrief(place=region, name=name, markdown="\n".join(L) + "\n", numbers=numbers, cells=cells_df)

"""One-page briefs per region, generated from the decompositions, with disclosure control of every number.

A brief is built in three separate steps, each a function:

1. :func:`gather` collects the numbers of one place from the results: its row of the exact gap decomposition of
   :func:`prosperity.places.decompose_gaps`, the ranking of its components (:func:`prosperity.policy.levers`), its
   counterfactual gaps (:func:`prosperity.policy.counterfactual_gaps`), the split of its place component by
   characteristic (:func:`prosperity.policy.place_channels`) and its decomposition in each window of years
   (:func:`prosperity.policy.over_time`);
2. :func:`check_cells` checks the *source cells* those numbers come from with :mod:`prosperity.sdc`: the place
   over the whole period (cell ``A``) and in each window (``W1``, ``W2``...) with :func:`prosperity.sdc.check`
   (threshold rules on ``n_people`` and ``n_firms``), the characteristics regression (``R``) with
   :func:`prosperity.sdc.check_regression` (residual degrees of freedom);
3. :func:`render` writes the Markdown, printing every number through a registry that records its source cells
   and prints ``[suppressed]`` when one of them fails.

Intervals: when the decomposition was fitted with jackknife standard errors (``places.place_effects(...,
se=True)`` and ``places.decompose_gaps(..., se=True)``), every number of the brief is computed again on each
jackknife fold (:func:`prosperity.policy.replicates`) and printed with its 95% interval
(:func:`prosperity.policy.interval`); the windows (``places.rolling(..., se=True)``) carry their own, and a change
between windows whose interval covers zero is printed as *not distinguishable from no change*
(:func:`prosperity.policy.window_changes`).

:func:`region_brief` runs the three. The counterfactuals are partial-equilibrium accounting (Card, Rothstein and
Yi 2024, *AEJ: Applied*; Oaxaca 1973, *Int. Econ. Rev.* 14(3):693-709); the brief says so in its caveats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from . import _checks, geography, policy, sdc
from ._results import Result

__all__ = ["SYNTHETIC_SOURCE", "BriefInputs", "RegionBrief", "gather", "check_cells", "render", "region_brief"]

#: Default data-source line of a brief.
SYNTHETIC_SOURCE = "the synthetic England of prosperity.synthetic (not real data: the numbers are not England's)"

_COMPONENT_NAMES = {"people": "people", "industry_mix": "industry mix", "firm_within": "firms within industries",
                    "place": "place", "residual": "residual"}
_CHANNEL_NAMES = {"transport_access": "transport access", "housing_cost": "housing costs",
                  "amenities": "amenities", "density": "density", "unexplained": "not explained by these",
                  "prosperity": "local prosperity (a control for unmeasured fundamentals, not a lever)"}
COMPONENTS = policy.COMPONENTS
SUBSTANTIVE = policy.SUBSTANTIVE
COUNTS = policy.COUNTS


@dataclass(frozen=True)
class BriefInputs:
    """Everything a brief prints, for one place (step 1, :func:`gather`)."""

    place: str
    name: str
    level: str
    cell: pd.DataFrame            # the place's row of the decomposition (level, gap, components, counts)
    ranking: pd.DataFrame         # its components ranked by size (policy.levers)
    counterfactuals: pd.DataFrame  # its counterfactual gaps (policy.counterfactual_gaps)
    channels: pd.DataFrame | None  # its place component by characteristic, or None
    regression: object            # the characteristics regression behind the channels, or None
    windows: pd.DataFrame | None   # its decomposition by window, or None
    model: str | None
    identification: dict | None
    replicates: pd.DataFrame | None = None  # its components in every jackknife fold (one row per fold), or None
    folds: int = 0                          # number of jackknife folds (0: no intervals)


@dataclass(frozen=True, repr=False)
class RegionBrief(Result):
    """A one-page brief for one place (see :func:`region_brief`).

    ``markdown``: the brief. ``table``: every number printed in it: ``section, item, value``, its 95% interval
    ``se, ci_low, ci_high`` (``nan`` when the results carry no standard errors), ``text`` and ``interval`` (as
    printed; ``[suppressed]`` and an empty interval when a source cell fails disclosure control), ``cells``
    (source cells) and ``sdc`` (``pass`` or the failing rules). ``cells``: the source cells with their counts
    and SDC status (``cell, what, n_people, n_firms, status, reason``). ``summary()`` is the Markdown.
    """

    place: str
    name: str
    markdown: str
    table: pd.DataFrame
    cells: pd.DataFrame

    @property
    def passed(self) -> bool:
        """True when every source cell passes disclosure control (nothing suppressed)."""
        return bool((self.cells["status"] == "pass").all())

    def summary(self) -> str:
        return self.markdown

    def _repr_markdown_(self) -> str:
        return self.markdown


# ---------------------------------------------------------------------------------------------------------------
# 1. gather


def gather(decomposition, region: str, *, levers: policy.Levers | None = None, windows=None,
           names: Mapping[str, str] | None = None,
           scenarios: Mapping[str, Sequence[str]] = policy.SCENARIOS) -> BriefInputs:
    """The numbers of one place's brief (step 1): see the module docstring. Arguments as :func:`region_brief`."""
    frame, level = policy._decomposition_frame(decomposition, None, counts=True)
    if region not in set(frame[level]):
        _checks.fail(f"no {level} {region!r}; its {level} values include {_checks.plain(frame[level].head(10))}",
                     "decomposition", level, kind=_checks.MissingColumnError)
    if names is None:
        names = geography.region_short_names() if level == "region" else {}
    if levers is None:
        levers = policy.levers(frame, level=level)
    elif levers.level != level:
        raise ValueError(f"levers are for {levers.level!r}, the decomposition for {level!r}")
    cell = frame[frame[level] == region].reset_index(drop=True)
    win = None
    if windows is not None:
        win = policy.over_time(windows, level=level) if not isinstance(windows, pd.DataFrame) else windows
        _checks.require_columns(win, ["window", level, "gap", *SUBSTANTIVE, *COUNTS], "windows")
        win = win[win[level] == region].reset_index(drop=True)
        if win.empty:
            _checks.fail(f"no rows for {level} {region!r}", "windows", level)
    channels = None
    if levers.channels is not None:
        channels = levers.channels[levers.channels[level] == region]
    effects = getattr(decomposition, "effects", None)
    reps, folds = None, 0
    allreps = policy.replicates(decomposition)
    if allreps is not None:
        ids = sorted(allreps["fold"].unique())
        folds = len(ids)
        reps = (allreps[allreps[level] == region].set_index("fold").reindex(ids).rename_axis("fold").reset_index()
                .assign(**{level: region}))
    return BriefInputs(
        place=region, name=str(names.get(region, region)), level=level, cell=cell,
        ranking=levers.ranking[levers.ranking[level] == region].sort_values("rank"),
        counterfactuals=policy.counterfactual_gaps(cell, scenarios, level=level, replicates=reps),
        channels=channels, regression=levers.regression if channels is not None else None, windows=win,
        model=getattr(effects, "model", None), identification=getattr(effects, "identification", None),
        replicates=reps, folds=folds)


# ---------------------------------------------------------------------------------------------------------------
# 2. check


def _status(report: sdc.SDCReport) -> tuple[str, str]:
    if report.passed:
        return "pass", ""
    return "suppressed", "; ".join(report.failures["reason"].astype(str).unique())


def check_cells(inputs: BriefInputs, rules: str | sdc.Rules = "ons_srs") -> dict[str, dict]:
    """The disclosure status of every source cell of a brief (step 2): ``{cell id: {what, n_people, n_firms,
    status, reason}}``. Each cell is checked with :mod:`prosperity.sdc` under ``rules``."""
    rules = sdc._rules(rules)
    lv, p, name = inputs.level, inputs.place, inputs.name
    row = inputs.cell.iloc[0]
    cells: dict[str, dict] = {}
    st, why = _status(sdc.check(inputs.cell[[lv, "gap", *COMPONENTS, *COUNTS]], keys=lv, rules=rules,
                                name=f"brief_{p}"))
    cells["A"] = {"what": f"{name}, whole period", "n_people": int(row["n_people"]), "n_firms": int(row["n_firms"]),
                  "status": st, "reason": why}
    if inputs.windows is not None:
        for i, w in inputs.windows.iterrows():
            rep = sdc.check(inputs.windows.loc[[i], ["window", lv, *COUNTS]], keys=["window", lv], rules=rules,
                            name=f"brief_{p}_{w['window']}")
            st, why = _status(rep)
            cells[f"W{i + 1}"] = {"what": f"{name}, {w['window']}", "n_people": int(w["n_people"]),
                                  "n_firms": int(w["n_firms"]), "status": st, "reason": why}
    reg = inputs.regression
    if reg is not None and hasattr(reg, "n_places"):
        coef = policy._main_table(reg, "regression")
        k = len(coef)
        rep = sdc.check_regression(df_resid=int(reg.n_places) - k, coefficients=coef, rules=rules,
                                   name=f"brief_{p}_regression")
        st, why = _status(rep)
        cells["R"] = {"what": f"characteristics regression ({reg.n_places} districts, {k} coefficients, "
                              f"{int(reg.n_places) - k} residual df)", "n_people": np.nan, "n_firms": np.nan,
                      "status": st, "reason": why}
    return cells


# ---------------------------------------------------------------------------------------------------------------
# 3. render


def _fmt(fmt: str, x: float) -> str:
    text = fmt.format(x)
    if text.lstrip("+-").strip("0.%") == "":  # no signed zeros such as -0.000
        text = text.lstrip("+-")
    return text


class _Registry:
    """Collects every number of a brief with its source cells and its 95% interval; formats it or suppresses it.

    An interval comes from the number's values on every jackknife fold (``reps``, :func:`prosperity.policy.interval`),
    from a standard error with the number of folds (``se``, ``folds``: Student t on ``folds - 1`` df) or is given
    (``ci``). After :meth:`num`, :meth:`interval` and :meth:`pm` print the interval of the number just registered."""

    def __init__(self, cells: dict[str, dict]):
        self.cells = cells
        self.rows: list[dict] = []

    def num(self, section: str, item: str, value: float, cells: Sequence[str], fmt: str = "{:+.3f}", *,
            reps=None, se: float | None = None, folds: int = 0, ci: tuple[float, float] | None = None) -> str:
        failing = [c for c in cells if self.cells[c]["status"] != "pass"]
        text = "[suppressed]" if failing else _fmt(fmt, value)
        s = lo = hi = np.nan
        if reps is not None:
            iv = policy.interval(float(value), np.asarray(reps, dtype=float))
            s, lo, hi = float(iv["se"]), float(iv["ci_low"]), float(iv["ci_high"])
        elif se is not None and np.isfinite(se) and folds >= 2:
            q = float(stats.t.ppf(0.975, folds - 1))
            s, lo, hi = float(se), float(value) - q * float(se), float(value) + q * float(se)
        elif ci is not None:
            lo, hi = float(ci[0]), float(ci[1])
        shown = not failing and np.isfinite(lo) and np.isfinite(hi)
        self._fmtlast = fmt
        self.rows.append({"section": section, "item": item, "value": float(value), "se": s, "ci_low": lo,
                          "ci_high": hi, "text": text,
                          "interval": f"{_fmt(fmt, lo)} to {_fmt(fmt, hi)}" if shown else "",
                          "cells": ",".join(cells),
                          "sdc": "pass" if not failing else "; ".join(f"{c}: {self.cells[c]['reason']}"
                                                                       for c in failing)})
        return text

    def interval(self, before: str = " (95% interval ", after: str = ")") -> str:
        """The interval of the last number, as ``" (95% interval a to b)"``, or ``""`` when it has none."""
        iv = self.rows[-1]["interval"]
        return f"{before}{iv}{after}" if iv else ""

    def pm(self) -> str:
        """The half-width of the last number's interval, as ``" ± h"`` (for tables), or ``""``."""
        r = self.rows[-1]
        if not r["interval"]:
            return ""
        return " ± " + _fmt(self._fmtlast.replace("+", ""), (r["ci_high"] - r["ci_low"]) / 2)

    def covers_zero(self) -> bool | None:
        """Whether the last number's interval covers zero (``None`` when it has none)."""
        r = self.rows[-1]
        if not (np.isfinite(r["ci_low"]) and np.isfinite(r["ci_high"])):
            return None
        return bool(r["ci_low"] <= 0 <= r["ci_high"])


def _pct(x):
    return 100.0 * (np.exp(x) - 1.0)


def _reps(inp: BriefInputs, fn):
    """``fn`` applied to every jackknife fold's components of the place (a Series per fold), or ``None``."""
    if inp.replicates is None:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.array([fn(r) for _, r in inp.replicates.iterrows()], dtype=float)


def _headline(inp: BriefInputs, R: _Registry, L: list[str]) -> None:
    row = inp.cell.iloc[0]
    gap = float(row["gap"])
    g = R.num("headline", "gap (log points)", gap, ["A"], reps=_reps(inp, lambda r: r["gap"]))
    gi = R.interval()
    word, more = ("above", "higher") if gap >= 0 else ("below", "lower")
    sign = 1.0 if gap >= 0 else -1.0  # per cent higher (or lower) in the direction of the estimate
    gp = R.num("headline", f"gap (per cent {more})", abs(_pct(gap)), ["A"], "{:.1f}",
               reps=_reps(inp, lambda r: sign * _pct(r["gap"])))
    gpi = R.interval(" (95% interval ", "%)")
    top = inp.ranking.iloc[0]
    comps = list(inp.ranking["component"])
    tc = top["component"]
    tv = R.num("headline", f"largest component ({tc})", float(top["value"]), ["A"], reps=_reps(inp, lambda r: r[tc]))
    tvi = R.interval("; 95% interval ", "")
    ts = R.num("headline", "largest component, share of absolute components", 100 * float(top["share_abs"]),
               ["A"], "{:.0f}", reps=_reps(inp, lambda r: 100 * abs(r[tc]) / sum(abs(r[c]) for c in comps)))
    tsi = R.interval(", 95% interval ", "%")
    works = "adds to" if np.sign(top["value"]) == np.sign(gap) else "works against"
    L += [f"**The gap** (cell A). Mean log hourly pay in {inp.name} is {g} log points{gi}, {word} England's: "
          f"pay is about {gp}%{gpi} {more} (geometric means). The largest component is "
          f"**{_COMPONENT_NAMES[tc]}** ({tv} log points{tvi}; {ts}% of the absolute size of the "
          f"components{tsi}), which {works} the gap; it points to {policy.LEVERS[tc]}.", ""]
    pm = "; ± half-width of the 95% interval" if inp.replicates is not None else ""
    L += [f"**What the gap is made of** (cell A{pm}).", "", "| component | log points | share of gap | rank | lever |",
          "|---|---:|---:|---:|---|"]
    for comp in COMPONENTS:
        v = float(row[comp])
        t = R.num("components", comp, v, ["A"], reps=_reps(inp, lambda r: r[comp])) + R.pm()
        s = R.num("components", f"{comp} share of gap", 100 * v / gap if gap else np.nan, ["A"], "{:.0f}%",
                  reps=_reps(inp, lambda r: 100 * r[comp] / r["gap"])) + R.pm()
        rr = inp.ranking.loc[inp.ranking["component"] == comp, "rank"]
        rank = str(int(rr.iloc[0])) if len(rr) else "–"
        L.append(f"| {_COMPONENT_NAMES[comp]} | {t} | {s} | {rank} | {policy.LEVERS[comp].split(' (')[0]} |")
    L += [f"| **gap** | **{g}**{gi} | 100% | | |", ""]


def _counterfactuals(inp: BriefInputs, R: _Registry, L: list[str]) -> None:
    pm = "; ± half-width of the 95% interval" if "ci_low" in inp.counterfactuals else ""
    L += [f"**What if** (cell A; partial equilibrium: everything else held fixed{pm}).", "",
          "| if the region had... | gap would be | share of the gap closed |", "|---|---:|---:|"]
    for _, c in inp.counterfactuals.iterrows():
        ci = (c["ci_low"], c["ci_high"]) if "ci_low" in c else None
        t = R.num("counterfactuals", f"counterfactual gap, {c['scenario']}", float(c["counterfactual"]), ["A"],
                  ci=ci) + R.pm()
        ci = (100 * c["share_closed_low"], 100 * c["share_closed_high"]) if "share_closed_low" in c else None
        s = R.num("counterfactuals", f"share closed, {c['scenario']}", 100 * float(c["share_closed"]), ["A"],
                  "{:.0f}%", ci=ci) + R.pm()
        label = policy.SCENARIO_LABELS.get(c["scenario"], f"England's average {c['removed'].replace('+', ' and ')}")
        L.append(f"| {label} | {t} | {s} |")
    L.append("")


def _channels(inp: BriefInputs, R: _Registry, L: list[str]) -> None:
    if inp.channels is None or not len(inp.channels):
        return
    cc = ["A", "R"] if "R" in R.cells else ["A"]
    pv = R.num("place channels", "place component", float(inp.cell["place"].iloc[0]), cc,
               reps=_reps(inp, lambda r: r["place"]))
    pvi = R.interval("; 95% interval ", "")
    parts = []
    for _, c in inp.channels.iterrows():
        ci = (c["ci_low"], c["ci_high"]) if np.isfinite(c["ci_low"]) else None
        v = R.num("place channels", f"channel {c['channel']}", float(c["contribution"]), cc, ci=ci)
        note = R.interval()
        if not note and c["channel"] == "unexplained" and inp.replicates is not None:
            note = " (the remainder: no interval of its own)"
        parts.append(f"{_CHANNEL_NAMES.get(c['channel'], c['channel'])} {v}{note}")
    L += [f"**The place component** (cells {' and '.join(cc)}). Of the place component ({pv} log points{pvi}), "
          "given the district characteristics regression: " + "; ".join(parts) + ". These are "
          "associations across districts, not the effect of building a road or a house.", ""]


def _noise_words(covers: bool | None) -> str:
    if covers is None:
        return ""
    return ": not distinguishable from no change" if covers else ": larger than the estimation noise"


def _over_time(inp: BriefInputs, R: _Registry, L: list[str]) -> None:
    win = inp.windows
    if win is None:
        return
    has_se = "folds" in win and all(f"{c}_se" in win for c in ("gap", *SUBSTANTIVE))
    pm = "; ± half-width of the 95% interval" if has_se else ""
    L += [f"**Over time** (cells W1–W{len(win)}{pm}).", "",
          "| window | gap | people | industry mix | firms within | place |", "|---|---:|---:|---:|---:|---:|"]
    for i, w in win.iterrows():
        vals = []
        for c in ("gap", *SUBSTANTIVE):
            kw = dict(se=float(w[f"{c}_se"]), folds=int(w["folds"])) if has_se else {}
            vals.append(R.num("over time", f"{w['window']} {c}", float(w[c]), [f"W{i + 1}"], **kw) + R.pm())
        L.append(f"| {w['window']} | " + " | ".join(vals) + " |")
    if len(win) > 1:
        first, last = win.iloc[0], win.iloc[-1]
        cid = ["W1", f"W{len(win)}"]
        d = {c: float(last[c] - first[c]) for c in SUBSTANTIVE}
        big = max(d, key=lambda c: abs(d[c]))
        ch = None
        if has_se:
            ch = policy.window_changes(win.iloc[[0, len(win) - 1]], level=inp.level).set_index("component")
        kw = (lambda c: dict(ci=(ch.loc[c, "ci_low"], ch.loc[c, "ci_high"]))) if ch is not None else (lambda c: {})
        dg = R.num("over time", "change in gap", float(last["gap"] - first["gap"]), cid, **kw("gap"))
        dgi, dgw = R.interval(), _noise_words(R.covers_zero())
        db = R.num("over time", f"change in {big}", d[big], cid, **kw(big))
        dbi, dbw = R.interval("; 95% interval ", ""), _noise_words(R.covers_zero())
        text = (f"From {first['window']} to {last['window']} the gap changed by {dg} log points{dgi}{dgw}; the "
                f"largest change was in {_COMPONENT_NAMES[big]} ({db}{dbi}{dbw}).")
        if ch is not None:
            sig = [c for c in SUBSTANTIVE if bool(ch.loc[c, "significant"])]
            text += (" No component's change is distinguishable from no change." if not sig else
                     " Changes larger than the estimation noise: " + ", ".join(_COMPONENT_NAMES[c] for c in sig) + ".")
            text += (" The intervals treat the windows as independent samples; they share workers, so the "
                     "intervals of the changes are if anything too wide.")
        else:
            text += " Each window is a separate, shorter sample, so part of any change is estimation noise."
        L += ["", text]
    L.append("")


def _caveats(inp: BriefInputs, source: str, L: list[str]) -> None:
    row = inp.cell.iloc[0]
    gap = float(row["gap"])
    L += ["**Caveats**", "",
          "- *Partial equilibrium.* The counterfactuals are accounting: they set one component to England's average "
          "and hold everything else fixed, including the pay of everyone else and the premiums of firms and places.",
          "- *Sorting responds to policy.* Better transport or cheaper housing changes who lives and works in the "
          "region; the people component would move too, and the place premium measures what the same worker earns, "
          "not what the region would earn after workers re-sort.",
          f"- *Estimation noise.* The numbers rest on {int(row['n_people']):,} people and {int(row['n_firms']):,} "
          "enterprises in the estimation sample; firm and place effects are identified only by workers who move and "
          "by enterprises with sites in several districts."]
    ident = inp.identification
    if isinstance(ident, dict) and "n_multi_place_firms" in ident:
        L[-1] += (f" Across England {ident['n_multi_place_firms']:,} such enterprises identify the place effects; "
                  f"{ident['dropped_obs']:,} person-years outside the identified set were dropped.")
    if inp.replicates is not None:
        L[-1] += (f" Intervals are 95% delete-a-group jackknife intervals: the whole model is re-fitted "
                  f"{inp.folds} times, each time without one of {inp.folds} random groups of workers (Student t "
                  f"with {inp.folds - 1} degrees of freedom).")
    else:
        L[-1] += (" The results carry no standard errors, so no number here has an interval: fit the decomposition "
                  "with `se=True` before publishing.")
    if abs(float(row["residual"])) > 0.1 * max(abs(gap), 1e-12):
        L.append("- *Residual.* A tenth or more of the gap is not attributed to any component.")
    L += [f"- *Data.* {source[0].upper() + source[1:]}.", ""]


def _disclosure(cells: dict[str, dict], rules: sdc.Rules, n_numbers: int, L: list[str]) -> None:
    L += [f"**Disclosure check** ({rules.name}: at least {rules.min_people} people and {rules.min_firms} enterprises "
          f"behind every cell, at least {rules.min_dof} residual degrees of freedom for regressions). "
          f"{n_numbers} numbers above; every one comes from the cells below.", "",
          "| cell | what | people | enterprises | status |", "|---|---|---:|---:|---|"]
    for cid, c in cells.items():
        pe = f"{c['n_people']:,}" if np.isfinite(c["n_people"]) else "–"
        fe = f"{c['n_firms']:,}" if np.isfinite(c["n_firms"]) else "–"
        status = c["status"] + (f": {c['reason']}" if c["reason"] else "")
        L.append(f"| {cid} | {c['what']} | {pe} | {fe} | {status} |")


def render(inputs: BriefInputs, cells: dict[str, dict], *, rules: str | sdc.Rules = "ons_srs",
           source: str = SYNTHETIC_SOURCE, heading_level: int = 3) -> RegionBrief:
    """The Markdown brief (step 3): every number goes through a registry that prints it, or ``[suppressed]`` when
    one of its source ``cells`` (from :func:`check_cells`) fails, and records it in ``RegionBrief.table``."""
    rules = sdc._rules(rules)
    R = _Registry(cells)
    title = f"{inputs.name}: one-page brief"
    L: list[str] = [f"{'#' * heading_level} {title}" if heading_level > 0 else f"**{title}**", ""]
    L += ["*Generated by `prosperity.brief.region_brief` from the results"
          + (f" of the {inputs.model} model" if inputs.model else "") + f"; data: {source}. A gap is the difference "
          "in mean log hourly pay from England's (0.100 log points is about 10.5% higher pay).*", ""]
    _headline(inputs, R, L)
    _counterfactuals(inputs, R, L)
    _channels(inputs, R, L)
    _over_time(inputs, R, L)
    _caveats(inputs, source, L)
    _disclosure(cells, rules, len(R.rows), L)
    return RegionBrief(place=inputs.place, name=inputs.name, markdown="\n".join(L) + "\n", table=pd.DataFrame(R.rows),
                       cells=pd.DataFrame([{"cell": k, **v} for k, v in cells.items()]))


def region_brief(decomposition, region: str, *, levers: policy.Levers | None = None, windows=None,
                 names: Mapping[str, str] | None = None, rules: str | sdc.Rules = "ons_srs",
                 scenarios: Mapping[str, Sequence[str]] = policy.SCENARIOS, source: str = SYNTHETIC_SOURCE,
                 heading_level: int = 3) -> RegionBrief:
    """A one-page Markdown brief for one region (or any place), generated from the results.

    Sections: the gap and its size in per cent; its components with the lever each points to
    (:func:`prosperity.policy.levers`); the counterfactual gaps of ``scenarios``; the split of the place component
    by characteristic when ``levers`` carries channels; the gap and components in each window when ``windows`` is
    given; caveats; and the disclosure-control status of every source cell. A number whose source cell fails is
    printed as ``[suppressed]``. Every number printed is listed in ``RegionBrief.table`` with its status.

    Parameters
    ----------
    decomposition : a :class:`prosperity.places.GapDecomposition` or its table.
    region : the place id (e.g. ``"E12000001"``).
    levers : a :class:`prosperity.policy.Levers` for the same decomposition (computed without channels if not
        given).
    windows : tidy per-window decomposition (:func:`prosperity.policy.over_time`) or a ``RollingResult``.
    names : display names by id (default: :func:`prosperity.geography.region_short_names` for regions).
    rules : disclosure-control rules (:mod:`prosperity.sdc`).
    source : the data-source line printed in the brief.
    heading_level : Markdown heading level of the title (``0``: a bold line instead of a heading, for display
        inside a notebook output).
    """
    rules = sdc._rules(rules)
    inputs = gather(decomposition, region, levers=levers, windows=windows, names=names, scenarios=scenarios)
    return render(inputs, check_cells(inputs, rules), rules=rules, source=source, heading_level=heading_level)

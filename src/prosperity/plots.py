"""The book's shared figure style and maps of English districts.

Every figure in the book goes through this module: one seaborn/matplotlib theme (:func:`set_style`),
colour-blind-safe palettes (Okabe-Ito for categories, viridis/cividis and a blue-orange diverging map for
values), fixed colours for the components of the people / firms / places decompositions, and two kinds of
district map: the hex cartogram (:func:`hexmap`, every district the same size, so London is visible) and the
real boundaries (:func:`choropleth`).
"""

from __future__ import annotations

import math

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import PatchCollection
from matplotlib.patches import RegularPolygon

from . import _checks, geography

__all__ = [
    "COMPONENT_COLOURS",
    "OKABE_ITO",
    "REGION_COLOURS",
    "choropleth",
    "component_bars",
    "hexmap",
    "ledger_funnel",
    "save",
    "set_style",
]

#: Okabe & Ito (2008) colour-blind-safe qualitative palette.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

#: Fixed colours for decomposition components, so "people" is the same blue in every chapter.
COMPONENT_COLOURS = {
    "people": "#0072B2",
    "industry_mix": "#E69F00",
    "firm_within": "#D55E00",
    "firms": "#D55E00",
    "place": "#009E73",
    "sorting": "#CC79A7",
    "residual": "#999999",
    "worker": "#0072B2",
    "firm": "#D55E00",
}

#: One colour per English region (RGN23CD), in :data:`prosperity.geography.REGION_ORDER`.
REGION_COLOURS = dict(
    zip(
        geography.REGION_ORDER,
        ["#0072B2", "#56B4E9", "#009E73", "#E69F00", "#D55E00", "#F0E442", "#000000", "#CC79A7", "#999999"],
    )
)

DIVERGING = "RdBu_r"
SEQUENTIAL = "viridis"


def set_style(context: str = "notebook") -> None:
    """Apply the book's figure style (call once per chapter, in the hidden set-up cell)."""
    import seaborn as sns

    sns.set_theme(context=context, style="whitegrid", palette=OKABE_ITO, font_scale=0.95)
    mpl.rcParams.update(
        {
            "figure.figsize": (7.5, 4.5),
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "savefig.bbox": "tight",
            "axes.titleweight": "bold",
            "axes.titlesize": "medium",
            "axes.spines.top": False,
            "axes.spines.right": False,
            "legend.frameon": False,
            "image.cmap": SEQUENTIAL,
        }
    )


def _norm(values: np.ndarray, diverging: bool, vmin=None, vmax=None):
    finite = values[np.isfinite(values)]
    if diverging:
        bound = float(np.nanmax(np.abs(finite))) if finite.size else 1.0
        return mpl.colors.TwoSlopeNorm(vcenter=0.0, vmin=-bound if vmin is None else vmin,
                                       vmax=bound if vmax is None else vmax)
    lo = float(finite.min()) if vmin is None else vmin
    hi = float(finite.max()) if vmax is None else vmax
    return mpl.colors.Normalize(vmin=lo, vmax=hi)


def _check_keys(df: pd.DataFrame, key: str, column: str, known: set, what: str) -> pd.Series:
    for col in (key, column):
        if col not in df.columns:
            raise KeyError(f"map: column {col!r} not in the table (columns: {list(df.columns)})")
    dup = df[key][df[key].duplicated()].unique()
    if len(dup):
        raise ValueError(f"map: {key!r} must be unique; duplicated: {list(dup[:5])}")
    unknown = sorted(set(df[key]) - known)
    if unknown:
        raise ValueError(f"map: {len(unknown)} {key!r} values are not {what}: {unknown[:5]}")
    return df.set_index(key)[column]


def _finish_map(ax, norm, cmap_obj, title, colorbar, label):
    """The common end of the district maps: equal aspect, no axes, title and colour bar."""
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    if colorbar:
        sm = mpl.cm.ScalarMappable(norm=norm, cmap=cmap_obj)
        cb = ax.figure.colorbar(sm, ax=ax, shrink=0.6, pad=0.01)
        cb.set_label(label)
    return ax


def hexmap(
    df: pd.DataFrame,
    column: str,
    *,
    lad: str = "lad",
    ax=None,
    cmap: str | None = None,
    diverging: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    label: str | None = None,
    colorbar: bool = True,
):
    """Hex cartogram of England's 296 districts coloured by ``df[column]`` (one row per district in ``lad``).

    Districts missing from ``df`` are drawn in light grey. ``diverging=True`` centres the colour scale on zero
    (for gaps and effects). Returns the matplotlib Axes.
    """
    hexes = geography.hexmap()
    values = _check_keys(df, lad, column, set(hexes["lad"]), "English district (LAD 2023) codes")
    hexes["value"] = hexes["lad"].map(values).astype(float)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 7.0))
    # odd-r offset layout; rows grow northward in this hexjson
    size = 1.0 / math.sqrt(3)
    x = hexes["hex_q"].to_numpy() + 0.5 * (hexes["hex_r"].to_numpy() % 2)
    y = hexes["hex_r"].to_numpy() * 1.5 * size
    cmap_obj = plt.get_cmap(cmap or (DIVERGING if diverging else SEQUENTIAL))
    vals = hexes["value"].to_numpy()
    norm = _norm(vals, diverging, vmin, vmax)
    patches = [RegularPolygon((xi, yi), numVertices=6, radius=size) for xi, yi in zip(x, y)]
    colours = [cmap_obj(norm(v)) if np.isfinite(v) else (0.88, 0.88, 0.88, 1.0) for v in vals]
    coll = PatchCollection(patches, facecolor=colours, edgecolor="white", linewidth=0.4)
    ax.add_collection(coll)
    ax.set_xlim(x.min() - 1, x.max() + 1)
    ax.set_ylim(y.min() - 1, y.max() + 1)
    return _finish_map(ax, norm, cmap_obj, title, colorbar, label or column)


def choropleth(
    df: pd.DataFrame,
    column: str,
    *,
    level: str = "lad",
    key: str | None = None,
    ax=None,
    cmap: str | None = None,
    diverging: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    label: str | None = None,
    colorbar: bool = True,
):
    """Map of real boundaries (``level="lad"`` or ``"itl3"``) coloured by ``df[column]``, projected to the
    British National Grid. ``key`` is the id column in ``df`` (defaults to ``level``). Returns the Axes."""
    key = key or level
    gdf = geography.boundaries(level).to_crs(27700)
    values = _check_keys(df, key, column, set(gdf[level]), f"English {level} codes")
    gdf["value"] = gdf[level].map(values).astype(float)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 7.0))
    cmap_obj = plt.get_cmap(cmap or (DIVERGING if diverging else SEQUENTIAL))
    norm = _norm(gdf["value"].to_numpy(), diverging, vmin, vmax)
    missing = gdf["value"].isna()
    if missing.any():
        gdf[missing].plot(ax=ax, color="0.88", linewidth=0.1, edgecolor="white")
    gdf[~missing].plot(ax=ax, column="value", cmap=cmap_obj, norm=norm, linewidth=0.1, edgecolor="white")
    return _finish_map(ax, norm, cmap_obj, title, colorbar, label or column)


def component_bars(
    df: pd.DataFrame,
    components: list[str],
    *,
    total: str | None = None,
    label: str | None = None,
    ax=None,
    horizontal: bool = True,
    colours: dict[str, str] | None = None,
):
    """Stacked bars of additive components (positive parts stacked right, negative left), one bar per row
    of ``df`` (its index labels the bars), with the ``total`` column marked by a black dot. Colours come
    from ``colours`` (component -> colour), then :data:`COMPONENT_COLOURS`, then the Okabe-Ito palette, so
    distinct components never share a colour. Returns the Axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.35 * len(df) + 1.5))
    pos = np.zeros(len(df))
    neg = np.zeros(len(df))
    idx = np.arange(len(df))
    chosen = {**{c: COMPONENT_COLOURS[c] for c in components if c in COMPONENT_COLOURS}, **(colours or {})}
    spare = iter([c for c in OKABE_ITO + ["#999999", "#882255", "#44AA99"] if c not in chosen.values()])
    for comp in components:
        if comp not in chosen:
            chosen[comp] = next(spare)
    for comp in components:
        v = df[comp].to_numpy(dtype=float)
        base = np.where(v >= 0, pos, neg)
        colour = chosen[comp]
        name = comp.replace("_", " ")
        if horizontal:
            ax.barh(idx, v, left=base, color=colour, label=name, height=0.7)
        else:
            ax.bar(idx, v, bottom=base, color=colour, label=name, width=0.7)
        pos = np.where(v >= 0, pos + v, pos)
        neg = np.where(v < 0, neg + v, neg)
    if total is not None:
        t = df[total].to_numpy(dtype=float)
        if horizontal:
            ax.scatter(t, idx, color="black", zorder=3, s=18, label=total.replace("_", " "))
        else:
            ax.scatter(idx, t, color="black", zorder=3, s=18, label=total.replace("_", " "))
    labels = [str(i) for i in df.index]
    if horizontal:
        ax.set_yticks(idx, labels)
        ax.invert_yaxis()
        ax.axvline(0, color="0.3", linewidth=0.8)
        if label:
            ax.set_xlabel(label)
    else:
        ax.set_xticks(idx, labels, rotation=45, ha="right")
        ax.axhline(0, color="0.3", linewidth=0.8)
        if label:
            ax.set_ylabel(label)
    ax.legend(loc="best", fontsize="small")
    return ax


def ledger_funnel(ledger: pd.DataFrame, ax=None, drops_only: bool = True):
    """Funnel of a linking ledger (``step, rows_in, rows_out, dropped, reason``; see
    :func:`prosperity.link.build_panel`): one horizontal bar per step with the rows kept (blue) and dropped
    (orange), labelled with the count dropped. When the ledger has a ``table`` column only its ``jobs`` rows are
    drawn. ``drops_only`` hides steps that dropped nothing (repairs and joins that keep every row); the first step
    is always shown. Returns the Axes."""
    _checks.require_columns(ledger, ["step", "rows_in", "rows_out", "dropped"], "ledger")
    lg = ledger[ledger["table"] == "jobs"] if "table" in ledger.columns else ledger
    _checks.require_rows(lg, "ledger", what="jobs step")
    if drops_only:
        lg = lg[(lg["dropped"] > 0) | (lg.index == lg.index[0])]
    if ax is None:
        _, ax = plt.subplots(figsize=(7.5, 0.42 * len(lg) + 1.2))
    y = np.arange(len(lg))
    ax.barh(y, lg["rows_out"], color=OKABE_ITO[0], height=0.7, label="kept")
    ax.barh(y, lg["dropped"], left=lg["rows_out"], color=OKABE_ITO[1], height=0.7, label="dropped")
    top = float(lg["rows_in"].max())
    for yi, (kept, dropped) in enumerate(zip(lg["rows_out"], lg["dropped"])):
        if dropped > 0:
            ax.text(kept + dropped + 0.01 * top, yi, f"-{int(dropped):,}", va="center", fontsize="small")
    ax.set_yticks(y, [s.replace("_", " ") for s in lg["step"]])
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.18)
    ax.set_xlabel("rows")
    ax.legend(loc="lower right", fontsize="small")
    return ax


def save(fig, path, formats: tuple[str, ...] = ("png", "svg")) -> list:
    """Save ``fig`` in the book's export formats (150 dpi PNG and vector SVG by default), for outputs that
    leave a secure environment or go into slides. ``path`` is given without a suffix; returns the paths written."""
    from pathlib import Path

    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        out = base.with_suffix("." + fmt)
        fig.savefig(out, format=fmt)
        written.append(out)
    return written

"""The district explorer: an interactive hex map of every district's gap split into people, firms and place.

:func:`district_explorer` turns a district :class:`~prosperity.places.GapDecomposition` (from
``places.decompose_gaps(..., level="lad")``) into one self-contained HTML fragment: the hex cartogram of
England's 296 districts coloured by a chosen component, a panel with the selected district's decomposition bars
(95% intervals) beside its region's, its ITL3 area and region, and a search box by district name. It is static
HTML: Bokeh's JavaScript is inlined (``bokeh.resources`` in ``inline`` mode), callbacks are ``CustomJS``, so the
page needs no server and loads nothing from outside itself (for books read offline, in workshops and secure
rooms). A PNG of the same map (:func:`static_map`, drawn by :func:`prosperity.plots.hexmap`) is embedded for
print, with an alt text.

The numbers shown are those of :func:`district_table`; nothing is re-estimated here. On real data pass
``disclosure="ons_srs"`` (or any :class:`prosperity.sdc.Rules`): every district is checked by
:func:`prosperity.sdc.check` on the people and enterprises behind it before anything is drawn, districts that
fail are shown in grey with no numbers, and the region means beside a district are over released districts only.
"""

from __future__ import annotations

import base64
import io
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from bokeh.embed import components
from bokeh.layouts import column, row
from bokeh.models import (AutocompleteInput, ColorBar, ColumnDataSource, CustomJS, Div, HoverTool,
                          LinearColorMapper, RadioButtonGroup, Select, TapTool)
from bokeh.plotting import figure
from bokeh.resources import Resources
from scipy import stats

from . import geography, places, plots, sdc
from ._checks import InputTypeError, fail, require_choice, require_columns

__all__ = ["COMPONENT_LABELS", "district_explorer", "district_table", "figure_html", "static_map"]

#: The components the map can be coloured by, with their labels (the gap and its four parts).
COMPONENT_LABELS = {"gap": "Gap", "people": "People", "industry_mix": "Industry mix",
                    "firm_within": "Firms within industries", "place": "Place"}
_PARTS = list(COMPONENT_LABELS)
_MODES = ("plugin", "corrected")
_GREY = "#c4c4c4"
#: Addresses from which Bokeh's bundle would fetch code on demand, for features the explorer never uses (TeX
#: labels via MathJax, Tabler icons, Google Maps plots). They are blanked in the inlined copy so that the page
#: holds no address it could load from: with them gone, those features would fail offline instead of fetching.
_LAZY_LOADERS = ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js",
                 "https://cdn.jsdelivr.net/npm/@tabler/icons-webfont@latest",
                 "https://maps.googleapis.com/maps/api/js")


def _check(decomposition) -> pd.DataFrame:
    if not isinstance(decomposition, places.GapDecomposition):
        fail(f"must be a places.GapDecomposition, got {type(decomposition).__name__}", "decomposition",
             kind=InputTypeError)
    if decomposition.level != "lad":
        fail(f"the explorer maps districts: decompose with level='lad', got level={decomposition.level!r}",
             "decomposition", "level")
    t = decomposition.table
    require_columns(t, ["lad", "n_obs"] + _PARTS, "decomposition.table")
    unknown = ~t["lad"].isin(geography.hexmap()["lad"])
    if unknown.any():
        fail(f"{int(unknown.sum())} district code(s) not on the map of England's 296 districts",
             "decomposition.table", "lad", t.loc[unknown, "lad"].head(5).tolist(), "lad")
    return t


def _has_se(t: pd.DataFrame) -> bool:
    return all(f"{c}_se" in t for c in _PARTS)


def _released(decomposition, disclosure, log) -> pd.DataFrame:
    """The decomposition's district rows, through :func:`prosperity.sdc.check` when ``disclosure`` is given."""
    t = _check(decomposition)
    if disclosure is None:
        return t
    require_columns(t, ["n_people", "n_firms"], "decomposition.table")
    # the explorer's region means are taken over released districts only, so no margin is released with them
    rep = sdc.check(t, keys="lad", rules=disclosure, name="district_explorer", log=log,
                    comment="districts of the explorer (gap and its four parts, with standard errors)")
    return rep.table.drop(columns="sdc", errors="ignore")


def district_table(decomposition, corrected: bool = True, disclosure=None, log=None) -> pd.DataFrame:
    """The numbers the explorer shows: one row per district of the map (296; those outside the identified set
    of the decomposition have missing values).

    Columns ``lad, lad_name, itl3, itl3_name, region, region_name, n_obs`` and, for every component ``c`` of
    :data:`COMPONENT_LABELS` (``gap, people, industry_mix, firm_within, place``): ``c`` (the plug-in estimate of
    :func:`prosperity.places.decompose_gaps`), and where the decomposition has jackknife standard errors
    (``se=True``) ``c_se``, ``c_lower``, ``c_upper`` (95% interval, Student t with ``folds - 1`` degrees of
    freedom, as :meth:`~prosperity.places.GapDecomposition.shares` uses).

    ``corrected=True`` adds the noise-corrected district values ``c_corrected`` with their interval
    ``c_corrected_lower``, ``c_corrected_upper``: linear empirical-Bayes shrinkage of each estimate toward
    England (zero), ``lambda = V / (V + se^2)``, where ``V`` is the split-sample bias-corrected variance of the
    component across districts (``decomposition.variance_corrected``, row ``Var(c)``; zero if the correction is
    negative) and ``se`` the district's jackknife standard error; the interval is ``shrunk +- t sqrt(lambda) se``,
    the posterior spread (Morris 1983, *J. Am. Stat. Assoc.* 78, "Parametric empirical Bayes inference"). It
    needs ``se=True`` and ``correct=True`` in ``decompose_gaps``; a district whose standard error is missing
    (it left the identified set in some jackknife fit) has no corrected value. Unlike a plug-in map, whose spread includes
    the estimation noise of small districts, the corrected map's spread matches the corrected variance shares.

    ``disclosure``: ``None`` (no check: synthetic data), or the rules of :func:`prosperity.sdc.check` (``"ons_srs"``
    or a :class:`prosperity.sdc.Rules`) applied to the districts' ``n_people`` and ``n_firms`` first: a failing
    district keeps its row and names with every number missing (``n_obs`` included), as one outside the
    identified set. ``log``: an :class:`prosperity.sdc.OutputLog` to record the check in.
    """
    t = _released(decomposition, disclosure, log)
    geo = geography.districts()[["lad", "lad_name", "itl3", "itl3_name", "region", "region_name"]]
    has_se = _has_se(t)
    cols = ["lad", "n_obs"] + _PARTS + ([f"{c}_se" for c in _PARTS] if has_se else [])
    out = geo.merge(t[cols], on="lad", how="left", validate="1:1")
    if has_se:
        q = float(stats.t.ppf(0.975, max(decomposition.folds, 2) - 1))
        for c in _PARTS:
            out[f"{c}_lower"] = out[c] - q * out[f"{c}_se"]
            out[f"{c}_upper"] = out[c] + q * out[f"{c}_se"]
    if corrected:
        if not has_se or decomposition.variance_corrected is None:
            fail("corrected district values need jackknife standard errors and the split-sample correction: "
                 "use places.decompose_gaps(..., se=True, correct=True), or pass corrected=False",
                 "decomposition", "variance_corrected")
        vc = decomposition.variance_corrected["value"]
        for c in _PARTS:
            v = max(float(vc[f"Var({c})"]), 0.0)
            se2 = out[f"{c}_se"] ** 2
            lam = v / (v + se2)
            spread = q * np.sqrt(lam * se2)
            out[f"{c}_corrected"] = lam * out[c]
            out[f"{c}_corrected_lower"] = out[f"{c}_corrected"] - spread
            out[f"{c}_corrected_upper"] = out[f"{c}_corrected"] + spread
    return out


def _column(comp: str, mode: str) -> str:
    return comp if mode == "plugin" else f"{comp}_corrected"


def static_map(decomposition, component: str = "gap", corrected: bool = True, ax=None, disclosure=None, log=None):
    """The explorer's map as a static figure (for print and for the alt text): :func:`prosperity.plots.hexmap` of
    :func:`district_table`'s ``component`` (plug-in, or corrected when ``corrected``; ``disclosure``, ``log`` as
    there). Returns the Axes."""
    require_choice(component, "component", _PARTS)
    d = district_table(decomposition, corrected=corrected, disclosure=disclosure, log=log).dropna(subset=[component])
    col = _column(component, "corrected" if corrected else "plugin")
    kind = "corrected" if corrected else "plug-in"
    return plots.hexmap(d, col, ax=ax, diverging=True, title=f"{COMPONENT_LABELS[component]} ({kind})",
                        label="log points vs England")


def _png(fig, dpi: int = 90) -> str:
    """A matplotlib figure as base64 PNG text."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def figure_html(fig, alt: str, dpi: int = 110) -> str:
    """A matplotlib figure as a self-contained HTML ``<figure>`` (inline PNG with its alt text), for pasting a
    computed figure into another page (myst-nb pastes HTML across documents, but not numbered figures)."""
    if not isinstance(alt, str) or not alt.strip():
        fail("needs a non-empty alt text describing the figure", "figure", "alt")
    esc = alt.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return f'<figure class="pe-figure"><img style="max-width:100%" alt="{esc}" src="data:image/png;base64,{_png(fig, dpi)}"></figure>'


def _hexagons(hexes: pd.DataFrame) -> tuple[list, list]:
    """Vertices of the pointy-top hexagons of the odd-r layout, exactly as :func:`prosperity.plots.hexmap`."""
    size = 1.0 / np.sqrt(3)
    cx = hexes["hex_q"].to_numpy() + 0.5 * (hexes["hex_r"].to_numpy() % 2)
    cy = hexes["hex_r"].to_numpy() * 1.5 * size
    ang = np.pi / 2 + np.arange(6) * np.pi / 3
    xs = (cx[:, None] + size * np.cos(ang)[None, :]).round(4)
    ys = (cy[:, None] + size * np.sin(ang)[None, :]).round(4)
    return xs.tolist(), ys.tolist()


def _palette(n: int = 256) -> list[str]:
    cmap = plt.get_cmap(plots.DIVERGING)
    return ["#%02x%02x%02x" % tuple(int(round(255 * v)) for v in cmap(i / (n - 1))[:3]) for i in range(n)]


_HINT = '<p class="pe-hint">Click a district or type its name to see its gap split into parts.</p>'

_REFRESH = """
const c = comp.value, m = modes[mode.active], d = src.data;
const key = m === 'plugin' ? c : c + '_corrected';
d['value'] = d[key];
mapper.low = -bounds[key]; mapper.high = bounds[key];
src.change.emit();
const sel = src.selected.indices;
const fmt = (x) => (x === null || Number.isNaN(x)) ? 'n/a' : (x >= 0 ? '+' : '') + x.toFixed(3);
if (sel.length === 0) {
  info.text = hint;
  bars.data = {label: labels, value: zeros, lower: zeros, upper: zeros, region: zeros};
  return;
}
const i = sel[0], parts = Object.keys(labels_of);
const k = (p) => m === 'plugin' ? p : p + '_corrected';
const val = parts.map((p) => d[k(p)][i]);
const lo = parts.map((p) => has_se ? d[k(p) + '_lower'][i] : d[k(p)][i]);
const hi = parts.map((p) => has_se ? d[k(p) + '_upper'][i] : d[k(p)][i]);
const reg = parts.map((p) => region_means[m][d['region'][i]][p]);
bars.data = {label: labels, value: val, lower: lo, upper: hi, region: reg};
let html = '<p class="pe-name"><b>' + d['lad_name'][i] + '</b> <span class="pe-code">' + d['lad'][i] + '</span><br>' +
  'ITL3 ' + d['itl3_name'][i] + ' &middot; ' + d['region_name'][i] + '</p>';
if (Number.isNaN(d['gap'][i]) || d['gap'][i] === null) {
  html += '<p class="pe-missing">Outside the identified set of the model: no estimate.</p>';
} else {
  html += '<table class="pe-table"><tr><th></th><th>' + (m === 'plugin' ? 'plug-in' : 'corrected') +
    '</th><th>95% interval</th><th>region</th></tr>';
  parts.forEach((p, j) => {
    html += '<tr data-part="' + p + '"><td>' + labels_of[p] + '</td><td class="pe-value">' + fmt(val[j]) +
      '</td><td>' + (has_se ? fmt(lo[j]) + ' to ' + fmt(hi[j]) : 'n/a') + '</td><td>' + fmt(reg[j]) + '</td></tr>';
  });
  html += '</table><p class="pe-note">' + d['n_obs'][i].toLocaleString('en-GB') +
    ' person-years; log points against England.</p>';
}
info.text = html;
"""

_SEARCH = """
const q = (cb_obj.value_input || cb_obj.value || '').trim().toLowerCase();
if (q.length === 0) { return; }
const names = src.data['lad_name'];
let i = names.findIndex((n) => n.toLowerCase() === q);
if (i < 0) {
  const hits = [];
  names.forEach((n, j) => { if (n.toLowerCase().startsWith(q)) { hits.push(j); } });
  if (hits.length === 1) { i = hits[0]; }
}
if (i >= 0 && !(src.selected.indices.length === 1 && src.selected.indices[0] === i)) {
  src.selected.indices = [i];
}
"""

_CSS = """<style>
.pe-explorer .pe-static { display: none; }
.pe-explorer .pe-table { border-collapse: collapse; font-size: 0.85em; }
.pe-explorer .pe-table td, .pe-explorer .pe-table th { padding: 1px 6px; text-align: right; }
.pe-explorer .pe-table td:first-child { text-align: left; }
.pe-explorer .pe-code { color: #666; font-size: 0.85em; }
@media print { .pe-explorer .pe-live { display: none; } .pe-explorer .pe-static { display: block; } }
</style>"""


def _inline_js() -> str:
    """Bokeh's JavaScript (``bokeh`` and ``bokeh-widgets``) inlined, with :data:`_LAZY_LOADERS` blanked."""
    js = Resources(mode="inline", components=["bokeh", "bokeh-widgets"]).render_js()
    for url in _LAZY_LOADERS:
        js = js.replace(url, "about:blank")
    return js


def district_explorer(decomposition, *, component: str = "gap", corrected: bool = True, small: bool = False,
                      title: str | None = None, disclosure=None, log=None) -> str:
    """An interactive district explorer as a self-contained HTML fragment (a string to display or write).

    Shows the hex map of England's 296 districts coloured by ``component`` (one of :data:`COMPONENT_LABELS`;
    a drop-down switches it in the page), plug-in or noise-corrected (``corrected``; a toggle switches it), with
    districts outside the identified set in grey. Hovering names a district; clicking it, or typing its name in
    the search box, fills the panel: its gap and the four parts (people, industry mix, firms within industries,
    place) as bars with 95% intervals, beside the person-year-weighted means of its region, with its ITL3 area
    and region. ``small=True`` draws a compact version (for an introduction page).

    The numbers come from :func:`district_table`: the district rows of ``decomposition.table``
    (:func:`prosperity.places.decompose_gaps` with ``level="lad"``), their jackknife standard errors (``se=True``)
    and, for ``corrected``, empirical-Bayes shrinkage toward England with the split-sample corrected variances.
    Without standard errors the bars have no intervals and ``corrected`` must be ``False``. ``disclosure`` and
    ``log`` as in :func:`district_table`: on real data pass ``disclosure="ons_srs"``; districts that fail the check
    are grey, with no numbers in the panel or the hover, and the region means are over released districts only.

    The fragment inlines Bokeh's JavaScript (``bokeh.resources.Resources(mode="inline")``, about 1.7 MB) and a
    PNG of the map for print (:func:`static_map`), so it references no external URL and works offline. Where it
    differs from Bokeh's own ``file_html``: the toolbar logo (a link to bokeh.org) is off, and the addresses of the
    bundle's on-demand loaders for unused features (:data:`_LAZY_LOADERS`) are blanked. Put one explorer per
    page: each fragment carries its own copy of the library.
    """
    require_choice(component, "component", _PARTS)
    d = district_table(decomposition, corrected=corrected, disclosure=disclosure, log=log)
    has_se = _has_se(decomposition.table)
    modes = list(_MODES) if corrected else ["plugin"]
    hexes = geography.hexmap().set_index("lad").loc[d["lad"]].reset_index()
    xs, ys = _hexagons(hexes)
    data = {c: d[c].tolist() if d[c].dtype == object else d[c].to_numpy() for c in d.columns}
    data.update(xs=xs, ys=ys, value=d[_column(component, modes[-1])].to_numpy())
    src = ColumnDataSource(data, name="districts")
    bounds = {}
    region_means = {}
    w = d["n_obs"].fillna(0).to_numpy()
    for m in modes:
        for c in _PARTS:
            v = d[_column(c, m)].to_numpy(dtype=float)
            bounds[_column(c, m)] = float(np.nanmax(np.abs(v))) or 1.0
        region_means[m] = {
            reg: {c: float(np.average(g[_column(c, m)].fillna(0), weights=w[g.index])) if w[g.index].sum() else 0.0
                  for c in _PARTS}
            for reg, g in d.groupby("region")}
    lim = bounds[_column(component, modes[-1])]
    mapper = LinearColorMapper(palette=_palette(), low=-lim, high=lim, nan_color=_GREY)
    scale, side = (0.62, 0.8) if small else (1.0, 1.0)  # the map and the panel beside it
    fmap = figure(width=int(430 * scale), height=int(520 * scale), tools="tap,pan,wheel_zoom,reset",
                  toolbar_location="above", match_aspect=True, name="map",
                  title=title if title is not None else "Districts of England (hex map)")
    fmap.toolbar.logo = None  # the logo links to bokeh.org
    fmap.axis.visible = False
    fmap.grid.visible = False
    fmap.outline_line_color = None
    rend = fmap.patches("xs", "ys", source=src, fill_color={"field": "value", "transform": mapper},
                        line_color="white", line_width=0.6, name="hexes",
                        selection_line_color="black", selection_line_width=2.0,
                        nonselection_fill_alpha=0.55, nonselection_line_alpha=0.6)
    fmap.add_tools(HoverTool(renderers=[rend], tooltips=[("district", "@lad_name"), ("region", "@region_name"),
                                                         ("value", "@value{+0.000}")]))
    fmap.select_one(TapTool).renderers = [rend]
    fmap.add_layout(ColorBar(color_mapper=mapper, width=8, title="log points"), "right")
    labels = [COMPONENT_LABELS[c] for c in _PARTS]
    zeros = [0.0] * len(_PARTS)
    bars = ColumnDataSource({"label": labels, "value": zeros, "lower": zeros, "upper": zeros, "region": zeros},
                            name="bars")
    fbar = figure(width=int(380 * side), height=int(240 * side), y_range=labels[::-1], toolbar_location=None,
                  title="District vs its region" if small else "District (bars), its region (diamonds)",
                  name="panel-bars")
    fbar.hbar(y="label", right="value", height=0.6, source=bars, color=plots.COMPONENT_COLOURS["people"],
              alpha=0.75)
    fbar.segment(x0="lower", x1="upper", y0="label", y1="label", source=bars, line_color="black", line_width=1.5)
    fbar.scatter(x="region", y="label", source=bars, marker="diamond", size=11, color=plots.OKABE_ITO[1])
    fbar.xaxis.axis_label = "log points vs England"
    info = Div(text=_HINT, width=int(380 * side), name="panel-info")
    comp = Select(title="Colour by", value=component, name="component",
                  options=[(c, COMPONENT_LABELS[c]) for c in _PARTS], width=int(200 * scale))
    mode = RadioButtonGroup(labels=["plug-in", "corrected"][:len(modes)], active=len(modes) - 1, name="mode")
    search = AutocompleteInput(title="Find a district (type its name)",
                               completions=sorted(d["lad_name"].tolist()), case_sensitive=False,
                               min_characters=2, name="search", width=int(240 * scale))
    refresh = CustomJS(args=dict(src=src, bars=bars, info=info, comp=comp, mode=mode, mapper=mapper, modes=modes,
                                 bounds=bounds, labels=labels, labels_of=COMPONENT_LABELS, zeros=zeros,
                                 has_se=has_se, region_means=region_means, hint=_HINT), code=_REFRESH)
    for model, prop in ((comp, "value"), (mode, "active"), (src.selected, "indices")):
        model.js_on_change(prop, refresh)
    find = CustomJS(args=dict(src=src), code=_SEARCH)
    search.js_on_change("value", find)
    search.js_on_change("value_input", find)
    layout = row(column(row(comp, mode) if corrected else comp, fmap), column(search, info, fbar),
                 name="explorer")
    script, div = components(layout)
    kind = "corrected" if corrected else "plug-in"
    alt = (f"Hex map of England's 296 districts coloured by the {kind} {COMPONENT_LABELS[component].lower()} "
           f"component of the pay gap against England, blue below and red above, grey outside the identified set.")
    fig, ax = plt.subplots(figsize=(4.5, 5.2))
    static_map(decomposition, component, corrected, ax=ax, disclosure=disclosure)
    png = _png(fig)
    plt.close(fig)
    meta = json.dumps({"districts": int(len(d)), "estimated": int(d["gap"].notna().sum())})
    return (f'<div class="pe-explorer" data-explorer=\'{meta}\'>{_CSS}\n'
            f'<div class="pe-live">{_inline_js()}\n{div}\n{script}</div>\n'
            f'<div class="pe-static"><img alt="{alt}" src="data:image/png;base64,{png}"></div></div>')

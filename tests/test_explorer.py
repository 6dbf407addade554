"""The district explorer (prosperity.explorer): its numbers, its checks, and the page in a real headless browser."""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from prosperity import explorer, geography, places
from prosperity._checks import InputError

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PARTS = ["gap", "people", "industry_mix", "firm_within", "place"]


def _decomposition(seed=0, missing=7, se=True, folds=5):
    """A district GapDecomposition with known numbers: every district but ``missing`` of them, components that add
    up, jackknife-like standard errors and a corrected variance (the plug-in one shrunk by a half)."""
    rng = np.random.default_rng(seed)
    lads = geography.districts()["lad"].to_numpy()
    lads = np.delete(lads, rng.choice(len(lads), missing, replace=False))
    t = pd.DataFrame({"lad": lads})
    for c in places.COMPONENTS:
        t[c] = rng.normal(0, 0.05, len(t)) if c != "residual" else 0.0
    t.insert(1, "gap", t[list(places.COMPONENTS)].sum(axis=1))
    t["n_obs"] = rng.integers(50, 500, len(t))
    t["n_people"], t["n_firms"] = t["n_obs"] // 5, t["n_obs"] // 20
    if se:
        for c in ["gap", *places.COMPONENTS]:
            t[f"{c}_se"] = rng.uniform(0.005, 0.04, len(t))
    var = places.variance_across_places(t, level="lad")
    cor = var.assign(value=var["value"] / 2)
    return places.GapDecomposition(level="lad", table=t, variance=var, variance_corrected=cor, effects=None,
                                   folds=folds if se else 0)


def test_district_table_shows_the_decomposition_with_intervals_and_shrinkage():
    dec = _decomposition()
    d = explorer.district_table(dec, corrected=True)
    assert len(d) == 296 and d["lad"].is_unique
    assert d["gap"].isna().sum() == 7
    row = d.dropna(subset=["gap"]).iloc[3]
    src = dec.table.set_index("lad").loc[row["lad"]]
    q = stats.t.ppf(0.975, 4)
    for c in PARTS:
        assert row[c] == pytest.approx(src[c])
        assert row[f"{c}_lower"] == pytest.approx(src[c] - q * src[f"{c}_se"])
        v = dec.variance_corrected.loc[f"Var({c})", "value"]
        lam = v / (v + src[f"{c}_se"] ** 2)
        assert row[f"{c}_corrected"] == pytest.approx(lam * src[c])
        assert row[f"{c}_corrected_upper"] == pytest.approx(lam * src[c] + q * np.sqrt(lam) * src[f"{c}_se"])
    # shrinkage pulls every district toward England, so the corrected map is less spread than the plug-in one
    e = d.dropna(subset=["place"])
    assert (e["place_corrected"].abs() <= e["place"].abs()).all() and (e["place_corrected"].abs() < e["place"].abs()).any()
    assert d[["lad_name", "itl3_name", "region_name"]].notna().all().all()


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="decomposition"):
        explorer.district_explorer(pd.DataFrame())
    dec = _decomposition()
    with pytest.raises(ValueError, match="level='lad'"):
        explorer.district_table(places.GapDecomposition(**{**dec.__dict__, "level": "region"}))
    bad = dec.table.copy()
    bad.loc[0, "lad"] = "X99"
    with pytest.raises(InputError) as e:
        explorer.district_table(places.GapDecomposition(**{**dec.__dict__, "table": bad}))
    assert e.value.table == "decomposition.table" and e.value.column == "lad" and e.value.ids == ["X99"]
    with pytest.raises(KeyError, match="place"):
        explorer.district_table(places.GapDecomposition(**{**dec.__dict__, "table": dec.table.drop(columns="place")}))
    with pytest.raises(InputError, match="se=True"):
        explorer.district_table(_decomposition(se=False), corrected=True)
    with pytest.raises(ValueError, match="component"):
        explorer.district_explorer(dec, component="sorting")


def test_figure_html_is_an_inline_png_with_alt_text():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    html = explorer.figure_html(fig, alt='A "line" <rising>')
    plt.close(fig)
    assert html.startswith("<figure") and 'alt="A &quot;line&quot; &lt;rising>"' in html
    assert 'src="data:image/png;base64,iVBOR' in html and _external_refs(html) == []
    with pytest.raises(InputError, match="alt"):
        explorer.figure_html(fig, alt=" ")


def test_plugin_only_without_standard_errors():
    d = explorer.district_table(_decomposition(se=False), corrected=False)
    assert "gap_se" not in d and "gap_corrected" not in d
    html = explorer.district_explorer(_decomposition(se=False), corrected=False)
    assert "pe-explorer" in html


_LOADS = re.compile(r"""(?:\b(?:src|href|_url)\s*=\s*|url\(\s*|@import\s+)["'`]?\s*((?:https?:)?//[^"'`\s>)]+)""", re.I)


def _external_refs(html: str) -> list[str]:
    """Addresses on another host that the page, markup, scripts or styles, could load: ``src``/``href`` attributes
    and assignments, CSS ``url()`` and ``@import``."""
    return _LOADS.findall(html)


def test_html_is_self_contained():
    html = explorer.district_explorer(_decomposition(), component="place")
    assert _external_refs(html) == []
    for bad in ('<img src="https://example.org/x.png">', 't.src="https://cdn.example.org/m.js"',
                "background: url(//example.org/a.png)", '<a href="http://example.org">'):
        assert len(_external_refs(bad)) == 1, bad
    assert "cdn.jsdelivr" not in html and "googleapis" not in html
    assert "<script" in html and "Bokeh" in html and 'src="data:image/png;base64,' in html
    assert "alt=\"Hex map of England's 296 districts" in html
    assert not re.search(r"<script[^>]+\bsrc=", html)  # the library is inlined, not loaded


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):  # make test installs them: never skip there
        pytest.fail("Debian's chromium and chromium-driver are not installed: run `make browser`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="explorer-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={profile}",
                 "--window-size=1200,900"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


_VIEWS = """
const out = {};
(function walk(v) { if (v.model.name) { out[v.model.name] = v; } for (const c of (v.child_views || [])) walk(c); })
  (Object.values(Bokeh.index)[0]);
"""


def _panel_text(drv) -> str:
    return drv.execute_script(_VIEWS + "const v = out['panel-info']; return (v.shadow_el || v.el).textContent;")


def test_explorer_in_headless_chromium(browser, tmp_path):
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.support.ui import WebDriverWait

    dec = _decomposition(seed=3)
    page = tmp_path / "explorer.html"
    page.write_text('<!doctype html><html><head><meta charset="utf-8"><title>explorer</title></head><body>'
                    + explorer.district_explorer(dec) + "</body></html>", encoding="utf-8")
    browser.get(page.as_uri())
    WebDriverWait(browser, 60).until(lambda d: d.execute_script(
        "return !!(window.Bokeh && Bokeh.index && Object.keys(Bokeh.index).length)"))
    # the map renders the 296 districts: the hexes' glyph view holds 296 polygons, drawn on a non-blank canvas
    n = browser.execute_script(_VIEWS + """
const m = out['map']; const r = [...m.renderer_views.values()].find((x) => x.model.name === 'hexes');
return r.glyph.data_size;""")
    assert n == 296
    assert "Click a district" in _panel_text(browser)
    d = explorer.district_table(dec, corrected=True).set_index("lad_name")
    # searching by name selects the district and fills the panel with its (corrected) numbers
    name = "Leeds" if not np.isnan(d.loc["Leeds", "gap"]) else d.dropna(subset=["gap"]).index[0]
    box = browser.execute_script(_VIEWS + "return out['search'].input_el;")
    box.send_keys(name)
    WebDriverWait(browser, 20).until(lambda b: name in _panel_text(b))
    text = _panel_text(browser)
    assert f"{d.loc[name, 'place_corrected']:+.3f}" in text and d.loc[name, "region_name"] in text
    assert d.loc[name, "itl3_name"] in text
    # clicking a hex selects that district
    target = d.dropna(subset=["gap"]).iloc[-1]
    xy = browser.execute_script(_VIEWS + """
const m = out['map'], r = [...m.renderer_views.values()].find((x) => x.model.name === 'hexes');
const i = r.model.data_source.data.lad.indexOf(arguments[0]);
const xs = r.model.data_source.data.xs[i], ys = r.model.data_source.data.ys[i];
const cx = xs.reduce((a, b) => a + b) / xs.length, cy = ys.reduce((a, b) => a + b) / ys.length;
const box = m.canvas_view.el.getBoundingClientRect();
return [box.left + m.frame.x_scale.compute(cx), box.top + m.frame.y_scale.compute(cy)];""", target["lad"])
    act = ActionBuilder(browser)
    act.pointer_action.move_to_location(int(round(xy[0])), int(round(xy[1]))).click()
    act.perform()
    WebDriverWait(browser, 20).until(lambda b: target.name in _panel_text(b))
    assert f"{target['gap_corrected']:+.3f}" in _panel_text(browser)
    # switching to plug-in shows the plug-in numbers of the same district
    browser.execute_script(_VIEWS + "out['mode'].model.active = 0;")
    WebDriverWait(browser, 20).until(lambda b: f"{target['gap']:+.3f}" in _panel_text(b))
    # nothing left the page: every resource it loaded is the file itself or inline data
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map((e) => e.name)")
    assert all(u.startswith(("file:", "data:", "blob:")) for u in loaded), loaded
    nav = browser.execute_script("return performance.getEntriesByType('navigation').map((e) => e.name)")
    assert nav == [page.as_uri()]


def test_disclosure_check_greys_failing_districts_and_logs_the_output():
    """On real data the explorer passes every district through sdc.check first: a district with fewer than 10
    people or 10 enterprises behind it keeps its row with every number missing, the region means of the panel are
    over released districts only, and the check is recorded in the output log."""
    from prosperity import sdc

    dec = _decomposition()
    t = dec.table
    small = t["n_firms"] < 10
    assert small.any() and (~small).any()
    log = sdc.OutputLog(rules="ons_srs")
    d = explorer.district_table(dec, corrected=True, disclosure="ons_srs", log=log)
    assert len(d) == 296
    released = d.dropna(subset=["gap"])
    assert set(released["lad"]) == set(t.loc[~small & (t["n_people"] >= 10), "lad"])
    bad = d[d["lad"].isin(t.loc[small, "lad"])]
    assert bad[["gap", "place", "place_se", "place_corrected", "n_obs"]].isna().all().all()
    assert bad["lad_name"].notna().all()  # names stay: a grey district is still on the map
    # released districts show exactly the unchecked numbers
    plain = explorer.district_table(dec, corrected=True).set_index("lad")
    assert np.allclose(released.set_index("lad")["place_corrected"], plain.loc[released["lad"], "place_corrected"])
    assert log.to_frame()["output"].tolist() == ["district_explorer"]
    assert explorer.district_explorer(dec, disclosure="ons_srs").count("<script") >= 1  # builds from the checked table
    # a decomposition without the counts cannot be checked: said, not skipped
    bare = places.GapDecomposition(level="lad", table=t.drop(columns=["n_people", "n_firms"]), variance=dec.variance,
                                   variance_corrected=dec.variance_corrected, effects=None, folds=dec.folds)
    with pytest.raises(InputError, match="n_people"):
        explorer.district_table(bare, disclosure="ons_srs")
    assert explorer.district_table(bare)["gap"].notna().sum() == len(t)  # no check asked: as before

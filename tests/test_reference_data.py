"""Reference geography and classifications shipped with the package."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest

from prosperity import classifications, geography, plots


def test_districts_are_the_296_english_lads():
    d = geography.districts()
    assert len(d) == 296 and d["lad"].is_unique
    assert d["lad"].str.match(r"^E0[6-9]\d{6}$").all()
    assert set(d["region"]) == set(geography.REGION_ORDER)
    assert d["itl3"].nunique() == 133
    assert d["population"].sum() == 57_106_398  # ONS mid-2022 England total as first published
    assert d["filled_jobs"].sum() == 29_169_865
    assert d[["hex_q", "hex_r"]].drop_duplicates().shape[0] == 296
    # London tops GVA per hour among regions
    by_region = d.groupby("region").apply(
        lambda g: np.average(g["gva_per_hour"], weights=g["hours_worked_per_week"]), include_groups=False)
    assert by_region.idxmax() == "E12000007"


def test_timeseries_and_itl3():
    ts = geography.district_timeseries()
    assert ts.shape[0] == 296 * 21 and ts["year"].between(2002, 2022).all()
    itl = geography.itl3_productivity()
    assert itl["itl3"].nunique() == 133
    assert set(itl["itl3"]) == set(geography.districts()["itl3"])


def test_boundaries_match_districts():
    lad = geography.boundaries("lad")
    assert set(lad["lad"]) == set(geography.districts()["lad"])
    assert lad.geometry.is_valid.all()
    assert geography.boundaries("itl3").shape[0] == 133
    with pytest.raises(ValueError, match="level"):
        geography.boundaries("ttwa")


def test_sic_sections():
    s = classifications.sic_section(pd.Series(["01110", "64191", "86101", "99000", "xx", None, "00"]))
    assert s.tolist()[:4] == ["A", "K", "Q", "U"]
    assert s.iloc[4:].isna().all()
    ranges = classifications.sic_division_ranges()
    assert len(ranges) == 21 and set(ranges["section"]) == set(classifications.SIC_SECTIONS)


def test_maps_check_their_input():
    plots.set_style()
    d = geography.districts()
    ax = plots.hexmap(d, "gva_per_hour")
    assert len(ax.collections[0].get_paths()) == 296
    ax = plots.choropleth(d.head(50), "gva_per_hour")  # missing districts are drawn grey, not dropped
    with pytest.raises(ValueError, match="not English district"):
        plots.hexmap(pd.DataFrame({"lad": ["X1"], "v": [1.0]}), "v")
    with pytest.raises(ValueError, match="unique"):
        plots.hexmap(pd.concat([d, d.head(1)]), "gva_per_hour")
    with pytest.raises(KeyError, match="nope"):
        plots.hexmap(d, "nope")
    matplotlib.pyplot.close("all")


def test_component_bars_stack_signed_parts():
    df = pd.DataFrame({"people": [0.1, -0.05], "place": [0.05, -0.02], "gap": [0.15, -0.07]}, index=["A", "B"])
    ax = plots.component_bars(df, ["people", "place"], total="gap")
    widths = [p.get_width() for p in ax.patches]
    assert np.allclose(sorted(widths), sorted([0.1, -0.05, 0.05, -0.02]))
    matplotlib.pyplot.close("all")


def test_show_versions():
    import prosperity

    v = prosperity.show_versions()
    assert {"package", "version"} == set(v.columns)
    assert (v["package"] == "numpy").any()


def test_save_writes_each_format(tmp_path):
    fig, ax = matplotlib.pyplot.subplots()
    ax.plot([0, 1], [0, 1])
    written = plots.save(fig, tmp_path / "figs" / "line")
    assert [p.suffix for p in written] == [".png", ".svg"] and all(p.stat().st_size > 0 for p in written)
    matplotlib.pyplot.close(fig)


def test_component_bars_never_repeat_a_colour():
    df = pd.DataFrame({"allocation": [0.1], "industry_mix": [0.2], "interaction": [0.05], "firm_within": [0.1]})
    ax = plots.component_bars(df, list(df.columns), colours={"allocation": "#117733"})
    colours = [matplotlib.colors.to_hex(p.get_facecolor()) for p in ax.patches]
    assert len(set(colours)) == 4 and colours[0] == "#117733"
    matplotlib.pyplot.close("all")

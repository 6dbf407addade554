"""The population path of the place models: a worker-year panel collapsed to cells (``places.collapse_panel``) gives
what the person-year panel gives: the same identified sample and counts, the same effects, year effects, slope
coefficients and fit statistics to CG tolerance, the same gap decomposition (plug-in, split-sample corrected, with
jackknife standard errors) at every level, for the three models. Also: the collapse does not depend on the row order
or the source (DataFrame, Parquet file, linked-panel folder), and bad input is refused with the table, column and
ids named."""

import numpy as np
import pandas as pd
import pytest

from prosperity import _checks, link, places, synthetic

TOL = 1e-7
AGESQ = {"agesq": "((age - 40) / 10) ^ 2"}


@pytest.fixture(scope="module")
def panel():
    w = link.build_panel(synthetic.england(size="workshop", seed=0)).workers
    # sorted by worker: the order of first appearance is the sorted order, as in the cells (halves and folds are
    # drawn over workers in that order)
    w = w.sort_values(["piden", "year"]).reset_index(drop=True)
    return w.assign(agesq=((w["age"] - 40) / 10) ** 2)


@pytest.fixture(scope="module")
def cells(panel):
    return places.collapse_panel(panel, controls=AGESQ)


def _same_effects(a, b, tol=TOL):
    ea, eb = a.table.set_index(a.level), b.table.set_index(b.level)
    assert ea.index.equals(eb.index)
    for col in ("n_obs", "n_people", "n_firms"):
        assert (ea[col].to_numpy() == eb[col].to_numpy()).all(), col
    assert np.abs(ea["effect"] - eb["effect"]).max() < tol
    ia = {k: v for k, v in a.identification.items() if k != "solver"}
    ib = {k: v for k, v in b.identification.items() if k != "solver"}
    assert ia == ib
    for name in a.fit.effect_names:
        x, y = a.fit.effects[name], b.fit.effects[name]
        if name == "_cell":
            continue  # the codes of place x industry cells are internal to each path
        assert (x.iloc[:, 0].astype(str).to_numpy() == y.iloc[:, 0].astype(str).to_numpy()).all(), name
        assert (x["n_obs"].to_numpy() == y["n_obs"].to_numpy()).all(), name
        assert np.abs(x["effect"].to_numpy() - y["effect"].to_numpy()).max() < tol, name
    assert np.abs(a.fit.coef.to_numpy() - b.fit.coef.to_numpy()).max(initial=0.0) < 1e-9
    assert abs(a.fit.r2 - b.fit.r2) < 1e-10 and abs(a.fit.rmse - b.fit.rmse) < 1e-10
    assert a.fit.n_obs == b.fit.n_obs


@pytest.mark.parametrize("model", list(places.MODELS))
def test_cells_give_the_person_year_place_effects(panel, cells, model):
    a = places.place_effects(panel, model, controls=["agesq"])
    b = places.place_effects(cells, model)
    _same_effects(a, b)
    if model == "worker+firm+place":
        assert a.identification["dropped_obs"] > 0  # the identified set is a restriction here
    # rows: one per cell, components adding up to the cell means, person-years in n_obs
    r = b.rows
    assert r["n_obs"].sum() == a.identification["n_obs"] == len(a.rows)
    total = r[["alpha", "psi", "phi", "tau", "xb", "resid"]].sum(axis=1)
    assert np.abs(total - r["y"]).max() < 1e-9
    if model == "worker+place×industry":
        assert np.abs(a.cells["mu"].to_numpy() - b.cells["mu"].to_numpy()).max() < TOL
        assert (a.cells["n_obs"].to_numpy() == b.cells["n_obs"].to_numpy()).all()
    # the person-year-weighted cell means of the components are the person-year means
    for col in ("alpha", "psi", "phi", "tau", "xb", "resid"):
        assert abs(np.average(r[col], weights=r["n_obs"]) - a.rows[col].mean()) < TOL, col


@pytest.mark.parametrize("level", ["lad", "region"])
def test_cells_give_the_person_year_gap_decomposition(panel, cells, level):
    a = places.decompose_gaps(panel, level, controls=["agesq"], seed=3)
    b = places.decompose_gaps(cells, level, seed=3)
    ta, tb = a.table.set_index(level), b.table.set_index(level)
    assert ta.index.equals(tb.index) and (ta["n_obs"] == tb["n_obs"]).all()
    cols = ["gap", *places.COMPONENTS]
    assert np.abs(ta[cols] - tb[cols]).max().max() < TOL
    assert np.abs(a.variance["share"] - b.variance["share"]).max() < TOL
    assert np.abs(a.variance_corrected["share"] - b.variance_corrected["share"]).max() < TOL


def test_cells_give_the_person_year_jackknife(panel, cells):
    a = places.decompose_gaps(panel, "region", controls=["agesq"], se=True, folds=3, seed=1)
    b = places.decompose_gaps(cells, "region", se=True, folds=3, seed=1)
    assert np.abs(a.shares_se - b.shares_se).max().max() < TOL
    assert np.abs(a.table["place_se"] - b.table["place_se"]).max() < TOL
    ea, eb = a.effects.table.set_index("lad"), b.effects.table.set_index("lad")
    assert np.nanmax(np.abs(ea["se"] - eb["se"])) < TOL


def test_collapse_is_the_same_from_any_source_and_row_order(panel, cells, tmp_path):
    shuffled = panel.sample(frac=1.0, random_state=5)
    shuffled.to_parquet(tmp_path / "workers.parquet", index=False)
    for src in (shuffled, tmp_path / "workers.parquet"):
        c = places.collapse_panel(src, controls=AGESQ, threads=1)
        assert c.table.equals(cells.table)
        for k in ("t", "y", "X"):
            assert np.array_equal(c.person_years[k], cells.person_years[k]), k
        assert c.workers.equals(cells.workers) and c.firms.equals(cells.firms)
    assert cells.n_obs == len(panel) == int(cells.table["n_obs"].sum())
    assert "person-years" in cells.summary()


def test_collapse_reads_a_linked_panel_folder(tmp_path):
    out = tmp_path / "panel"
    link.build_panel(synthetic.england(size="workshop", seed=1), output=out)
    c = places.collapse_panel(out, controls=AGESQ, where="year >= 2010")
    w = pd.read_parquet(out / "workers.parquet")
    w = w[w["year"] >= 2010].sort_values(["piden", "year"])
    assert c.n_obs == len(w)
    a = places.place_effects(w.assign(agesq=((w["age"] - 40) / 10) ** 2), controls=["agesq"])
    _same_effects(a, places.place_effects(c))


def test_no_controls_and_no_time(panel):
    for time in ("year", None):
        c = places.collapse_panel(panel, time=time)
        a = places.place_effects(panel, time=time)
        _same_effects(a, places.place_effects(c, time=time))


def test_collapse_refuses_bad_input(panel, tmp_path):
    small = panel.head(3000)
    with pytest.raises(_checks.InputError, match="missing column"):
        places.collapse_panel(small.drop(columns="lhw"))
    dup = pd.concat([small, small.head(1)], ignore_index=True)
    with pytest.raises(_checks.InputError, match="more than once") as e:
        places.collapse_panel(dup)
    assert str(small["piden"].iloc[0]) in str(e.value)
    bad = small.copy()
    bad.loc[7, "lhw"] = np.nan
    with pytest.raises(_checks.InputError, match="lhw") as e:
        places.collapse_panel(bad)
    assert str(bad.loc[7, "piden"]) in str(e.value)
    inf = small.astype({"age": float})
    inf.loc[3, "age"] = np.inf
    with pytest.raises(_checks.InputError, match="agesq"):
        places.collapse_panel(inf, controls=AGESQ)
    with pytest.raises(_checks.InputError, match="numeric"):
        places.collapse_panel(small.assign(lhw=small["lhw"].astype(str)))
    geo = small.copy()
    first = np.flatnonzero((geo["lad"] == geo["lad"].iloc[0]).to_numpy())
    geo.loc[first[1:2], "itl3"] = "another ITL3"  # one district in two ITL3 areas
    with pytest.raises(_checks.InputError, match="not a function of lad") as e:
        places.collapse_panel(geo)
    assert str(small["lad"].iloc[0]) in str(e.value)
    with pytest.raises(_checks.InputError, match="DuckDB could not"):
        places.collapse_panel(small, controls={"z": "no_such_column + 1"})
    with pytest.raises(_checks.InputError, match="shadow"):
        places.collapse_panel(small, controls=["lhw"])
    with pytest.raises(_checks.InputError, match="no rows"):
        places.collapse_panel(small, where="year > 3000")
    with pytest.raises(_checks.InputError, match="no such file"):
        places.collapse_panel(tmp_path / "nothing_here")


def test_cells_refuse_arguments_that_contradict_the_collapse(cells):
    with pytest.raises(_checks.InputError, match="collapse_panel"):
        places.place_effects(cells, y="lww")
    with pytest.raises(_checks.InputError, match="controls"):
        places.place_effects(cells, controls=["age"])
    with pytest.raises(_checks.InputError, match="fit_level"):
        places.decompose_gaps(cells, fit_level="itl3")
    # a control collinear with the year and worker effects is named
    c = places.collapse_panel(_random_panel(), controls={"trend": "year"})
    with pytest.raises(_checks.InputError, match="trend"):
        places.place_effects(c)


def _random_panel():
    rng = np.random.default_rng(0)
    n = 4000
    return pd.DataFrame({"piden": rng.integers(0, 400, n), "year": np.tile(np.arange(10), n // 10),
                         "entref": rng.integers(0, 30, n), "lad": rng.choice(["A", "B", "C"], n),
                         "industry": "K", "lhw": rng.normal(2, 0.3, n)}).drop_duplicates(["piden", "year"])


def test_functions_that_need_person_years_refuse_cells(cells):
    with pytest.raises(TypeError, match="collapse each window"):
        places.rolling(cells)
    with pytest.raises(TypeError, match="person-year panel"):
        places.movers(cells)

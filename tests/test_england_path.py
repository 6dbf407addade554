"""The population-scale path: akm.fit_panel on Parquet on disk (DuckDB collapses person-years to worker-firm
matches, network.prune_matches prunes on the matches) gives what the in-memory fits give.

Checked on small panels with stayers, movers and unbalanced matches: the same sample, ledger and counts as the
person-year pruning, the same effects as fit(collapse="matches") and as the person-year fit to 1e-8, and the
same plug-in and KSS decompositions (leave-one-observation-out and leave-match-out)."""

import numpy as np
import pandas as pd
import pytest

from prosperity import _checks, akm, network
from prosperity.testing import simulate


@pytest.fixture(scope="module")
def panel():
    df = simulate(n_workers=1500, years=6, n_firms=80, move=0.15, seed=11)
    rng = np.random.default_rng(4)
    return df[rng.random(len(df)) > 0.2].reset_index(drop=True)  # matches of 1 to 6 years


@pytest.fixture(scope="module")
def path(panel, tmp_path_factory):
    p = tmp_path_factory.mktemp("england") / "workers.parquet"
    # shuffled rows: the collapse must not depend on the row order
    panel.sample(frac=1.0, random_state=3).to_parquet(p, index=False)
    return p


def _same_effects(a, b, tol=1e-8):
    for x, y, col in ((a.worker_effects, b.worker_effects, "alpha"), (a.firm_effects, b.firm_effects, "psi")):
        assert (x.iloc[:, 0].to_numpy() == y.iloc[:, 0].to_numpy()).all()
        assert (x["n_obs"].to_numpy() == y["n_obs"].to_numpy()).all()
        assert np.abs(x[col].to_numpy() - y[col].to_numpy()).max() < tol


@pytest.mark.parametrize("kw", [{}, {"connected": "leave_one_out", "leave_out": "obs"},
                                {"connected": "leave_one_out", "leave_out": "match"},
                                {"connected": "leave_one_out", "leave_out": "match_movers"},
                                {"connected": "leave_one_out", "leave_out": "obs", "pruning": "matches"}])
def test_fit_panel_is_the_collapsed_and_the_person_year_fit(panel, path, kw):
    disk = akm.fit_panel(path, y="y", worker="worker", firm="firm", **kw)
    coll = akm.fit(panel, "y", "worker", "firm", collapse="matches", **kw)
    full = akm.fit(panel, "y", "worker", "firm", **kw)
    assert disk.ledger.equals(full.ledger) and disk.sample.equals(full.sample)
    if kw:
        assert disk.ledger["dropped"].sum() > 0  # the pruning did something
    _same_effects(disk, coll)
    _same_effects(disk, full)
    assert disk.n_obs == full.n_obs and disk.n_params == full.n_params
    assert abs(disk.r2 - full.r2) < 1e-10 and abs(disk.rmse - full.rmse) < 1e-10
    assert disk.diagnostics["matches"] == coll.diagnostics["matches"]
    assert disk.diagnostics["collapse_seconds"] >= 0 and disk.diagnostics["source"] == str(path)


@pytest.mark.parametrize("lo", ["obs", "match"])
def test_kss_from_disk_equals_the_person_year_kss(panel, path, lo):
    disk = akm.fit_panel(path, y="y", worker="worker", firm="firm", connected="leave_one_out", leave_out=lo)
    full = akm.fit(panel, "y", "worker", "firm", connected="leave_one_out", leave_out=lo)
    for method, opts in (("plugin", {}), ("kss", {"leverage": "exact", "leave_out": lo})):
        a, b = disk.decompose(method, **opts), full.decompose(method, **opts)
        for k in ("var_y", "var_alpha", "var_psi", "cov_alpha_psi", "var_resid"):
            assert abs(getattr(a, k) - getattr(b, k)) < 1e-8, (method, k)


def test_prune_matches_is_prune_on_person_years(panel):
    wc, wid = akm._codes(panel["worker"])
    fc, fid = akm._codes(panel["firm"])
    mi, mj, c, _, _, rm = akm._collapse_matches(wc, fc, panel["y"].to_numpy(), len(wid), len(fid))
    for lo in (None, "obs", "match", "match_movers"):
        a = network.prune(wc, fc, len(wid), len(fid), lo)
        b = network.prune_matches(mi, mj, c, len(wid), len(fid), lo)
        assert a.ledger.equals(b.ledger) and a.counts.equals(b.counts)
        assert (a.rows == b.rows[rm]).all() and (a.keep == b.keep).all()
    with pytest.raises(ValueError, match="sorted"):
        network.prune_matches(mi[::-1], mj[::-1], c[::-1], len(wid), len(fid))


def test_fit_panel_reads_a_linked_panel_folder_and_refuses_bad_input(panel, tmp_path):
    from prosperity import _io

    with _io.atomic_folder(tmp_path / "panel", kind="linked_panel") as d:
        panel.rename(columns={"worker": "piden", "firm": "entref", "y": "lhw"}).to_parquet(d / "workers.parquet")
    res = akm.fit_panel(tmp_path / "panel")
    ref = akm.fit(panel, "y", "worker", "firm", collapse="matches")
    _same_effects(res, ref)
    with pytest.raises(_checks.InputError, match="missing column"):
        akm.fit_panel(tmp_path / "panel", y="wage")
    bad = panel.copy()
    bad.loc[[5, 9], "y"] = np.nan
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(_checks.InputError, match="2 missing") as e:
        akm.fit_panel(tmp_path / "bad.parquet", y="y", worker="worker", firm="firm")
    assert str(panel.loc[5, "worker"]) in str(e.value)
    bad = panel.assign(y=np.where(np.arange(len(panel)) == 3, np.inf, panel["y"]))
    bad.to_parquet(tmp_path / "inf.parquet")
    with pytest.raises(_checks.InputError, match="infinite"):
        akm.fit_panel(tmp_path / "inf.parquet", y="y", worker="worker", firm="firm")
    panel.assign(s=panel["y"].astype(str)).to_parquet(tmp_path / "str.parquet")
    with pytest.raises(_checks.InputError, match="numeric"):
        akm.fit_panel(tmp_path / "str.parquet", y="s", worker="worker", firm="firm")
    with pytest.raises(_checks.InputError, match="no such file"):
        akm.fit_panel(tmp_path / "nothing.parquet")
    # duplicated person-years are refused, naming the worker; time=None lets distinct rows through on purpose
    dup = pd.concat([panel, panel.iloc[[7]]], ignore_index=True)
    dup.to_parquet(tmp_path / "dup.parquet")
    with pytest.raises(_checks.InputError, match=r"1 \(worker, year\) pair\(s\) appear more than once") as e:
        akm.fit_panel(tmp_path / "dup.parquet", y="y", worker="worker", firm="firm")
    assert str(panel.loc[7, "worker"]) in str(e.value) and e.value.column == "year"
    akm.fit_panel(tmp_path / "dup.parquet", y="y", worker="worker", firm="firm", time=None)
    # DuckDB's own errors (a bad condition, a corrupt file) become input errors naming the source
    with pytest.raises(_checks.InputError, match="with where='no_such_column > 1'"):
        akm.fit_panel(tmp_path / "panel", where="no_such_column > 1")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 not a parquet file")
    with pytest.raises(_checks.InputError, match="DuckDB could not read"):
        akm.fit_panel(tmp_path / "corrupt.parquet")
    with pytest.raises(_checks.InputError, match="has no rows where year > 3000"):
        akm.fit_panel(tmp_path / "panel", where="year > 3000")
    # a subset by SQL: the same as fitting the subset in memory
    sub = akm.fit_panel(tmp_path / "panel", where="year >= 2007")
    _same_effects(sub, akm.fit(panel[panel["year"] >= 2007], "y", "worker", "firm", collapse="matches"))


@pytest.fixture(scope="module")
def linked_folder(tmp_path_factory):
    from prosperity import link, synthetic

    d = tmp_path_factory.mktemp("linked") / "panel"
    link.build_panel(synthetic.england(size="workshop", seed=0), output=d)
    return d


def test_the_linked_folder_gives_the_in_memory_answers(linked_folder):
    """fit_panel and places.decompose_gaps on a build_panel folder: the in-memory fits of the same panel."""
    from prosperity import link, places

    w = link.load_panel(linked_folder).workers
    disk = akm.fit_panel(linked_folder, connected="leave_one_out")
    _same_effects(disk, akm.fit(w, "lhw", "piden", "entref", connected="leave_one_out", collapse="matches"))
    a = places.decompose_gaps(linked_folder, seed=0)
    b = places.decompose_gaps(w, seed=0)
    assert np.abs(a.variance["value"].to_numpy() - b.variance["value"].to_numpy()).max() < 1e-10
    assert np.abs(a.variance_corrected["value"].to_numpy() - b.variance_corrected["value"].to_numpy()).max() < 1e-10
    with pytest.raises(Exception, match="manifest"):
        places.decompose_gaps(linked_folder.parent, seed=0)

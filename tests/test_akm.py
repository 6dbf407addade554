"""AKM and the multi-way fixed-effect solver: exactness, backends, normalisation, errors, diagnostics."""

import numpy as np
import pandas as pd
import pytest

from prosperity.testing import simulate
from prosperity import akm


@pytest.fixture(scope="module")
def small():
    return simulate(n_workers=3000, years=5, n_firms=150, move=0.15, seed=3)


def dense_ls(df, y, effects, controls=()):
    """Reference: least squares with explicit dummies (drop one level of every set but the first)."""
    cols = []
    for k, e in enumerate(effects):
        d = pd.get_dummies(df[e].astype("category"), dtype=float).to_numpy()
        cols.append(d if k == 0 else d[:, 1:])
    for c in controls:
        cols.append(df[[c]].to_numpy(dtype=float))
    Z = np.hstack(cols)
    b = np.linalg.lstsq(Z, df[y].to_numpy(), rcond=None)[0]
    return Z @ b, b


def test_multiway_matches_dense_least_squares():
    rng = np.random.default_rng(0)
    df = simulate(n_workers=300, years=4, n_firms=30, move=0.3, seed=1)
    df["lad"] = df["firm"] % 7
    df["x"] = rng.standard_normal(len(df))
    df["y2"] = df["y"] + 0.3 * df["x"] + 0.1 * df["lad"]
    res = akm.fit_fixed_effects(df, "y2", ["worker", "firm", "lad"], controls=["x"])
    fitted, b = dense_ls(df, "y2", ["worker", "firm", "lad"], ["x"])
    assert np.abs(res.fitted - fitted).max() < 1e-8
    assert abs(res.coef["x"] - b[-1]) < 1e-8
    assert res.diagnostics["converged"]
    # fitted = sum of reported effects + x b, and the later sets have row-weighted mean zero
    recon = (res.effects["worker"].set_index("worker")["effect"].loc[df["worker"]].to_numpy()
             + res.effects["firm"].set_index("firm")["effect"].loc[df["firm"]].to_numpy()
             + res.effects["lad"].set_index("lad")["effect"].loc[df["lad"]].to_numpy() + res.coef["x"] * df["x"])
    assert np.abs(recon.to_numpy() - res.fitted).max() < 1e-8
    for e in ("firm", "lad"):
        t = res.effects[e]
        assert abs(np.average(t["effect"], weights=t["n_obs"])) < 1e-10
    assert set(res.to_frame()["effect_set"]) == {"worker", "firm", "lad"} and res.table.equals(res.to_frame())
    assert "CG iterations" in res.summary()


def test_fit_recovers_truth_and_normalisation(small):
    r = akm.fit(small, "y", "worker", "firm", time="year")
    fr = r.to_frame()
    assert np.allclose(fr["y"], fr["alpha"] + fr["psi"] + fr["xb"] + fr["resid"])
    assert abs(fr["psi"].mean()) < 1e-10  # person-year weighted mean zero
    truth = small.loc[fr.index, "psi_true"]
    assert np.corrcoef(fr["psi"], truth)[0, 1] > 0.9
    assert len(r.worker_effects) == fr["worker"].nunique() and list(r.firm_effects.columns) == ["firm", "psi", "n_obs"]
    assert "connected set" in r.summary()
    # the result pattern: table is the person-year frame, built on demand; repr shows the summary
    assert r.table.equals(fr) and r.to_frame() is not r.to_frame()
    assert r.summary() in repr(r) and "converged True" in r.summary()


def test_backends_agree(small):
    a = akm.fit(small, "y", "worker", "firm", time="year", backend="sparse")
    b = akm.fit(small, "y", "worker", "firm", time="year", backend="pyfixest")
    assert np.abs(a.firm_effects["psi"] - b.firm_effects["psi"]).max() < 1e-6
    assert np.abs(a.worker_effects["alpha"] - b.worker_effects["alpha"]).max() < 1e-6
    assert np.abs(a.to_frame()["resid"] - b.to_frame()["resid"]).max() < 1e-6


def test_controls_and_other_components_recorded(small):
    df = small.copy()
    rng = np.random.default_rng(1)
    df["x"] = rng.standard_normal(len(df))
    df["y"] = df["y"] + 0.25 * df["x"]
    # add an isolated pair of firms that cannot be compared with the rest
    extra = pd.DataFrame({"worker": [10**6, 10**6, 10**6 + 1, 10**6 + 1], "firm": [9001, 9002, 9002, 9001],
                          "year": [2005, 2006, 2005, 2006], "y": [1.0, 1.2, 0.9, 0.8], "x": 0.0})
    df = pd.concat([df, extra], ignore_index=True)
    r = akm.fit(df, "y", "worker", "firm", controls=["x"])
    assert abs(r.coef["x"] - 0.25) < 0.02
    assert 9001 not in set(r.firm_effects["firm"])
    assert r.ledger.loc[0, "dropped"] >= 4 and r.n_obs == len(df) - r.ledger["dropped"].sum()


def test_bad_input():
    df = simulate(n_workers=50, years=3, n_firms=5, seed=0)
    df.loc[7, "y"] = np.nan
    with pytest.raises(ValueError, match=r"table 'data', column 'y': 1 missing.*\(e\.g\. worker \[2\]\)"):
        akm.fit(df, "y", "worker", "firm")
    with pytest.raises(KeyError, match="no column"):
        akm.fit_fixed_effects(df, "y", ["worker", "plant"])
    with pytest.raises(ValueError, match="backend"):
        akm.fit(df.dropna(), "y", "worker", "firm", backend="stata")
    df2 = df.dropna().copy()
    df2["x"] = 1.0 * df2["worker"]  # constant within worker: collinear with the worker effects
    with pytest.raises(ValueError, match="collinear"):
        akm.fit_fixed_effects(df2, "y", ["worker", "firm"], controls=["x"])


def test_diagnostics(small):
    ev = akm.event_study(small, "y", "worker", "firm", "year")
    assert set(ev["event_time"]) == {-2, -1, 0, 1}
    sym = akm.event_study_symmetry(ev)
    up = sym[(sym.origin == 1) & (sym.destination == 4)].iloc[0]
    assert up["change"] > 0.1 and up["reverse_change"] < -0.1
    assert abs(up["sum"]) < 0.5 * up["change"]
    r = akm.fit(small, "y", "worker", "firm")
    g = akm.residual_grid(r)
    assert g.shape == (10, 10) and np.abs(g.to_numpy()).max() < 0.05

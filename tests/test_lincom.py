"""``variance.lincom``: firm effects regressed on firm covariates with KSS leave-out standard errors.

1. Coefficients and standard errors equal a dense brute-force computation (least squares, leverages, leave-out
   sigma_l^2, sandwich) on a tiny panel, leave-person-year-out and leave-match-out.
2. On a simulated design where psi depends on two covariates the estimates recover the truth's coefficients.
3. Monte Carlo (fixed design, errors redrawn): the 95% intervals cover the truth's coefficients at the nominal
   rate (+-3 points), where intervals that ignore the noise in psi_hat do not.
4. Bad input raises InputError naming the table, the column and the offending ids.
"""

import numpy as np
import pandas as pd
import pytest

from prosperity import _checks, akm, variance
from prosperity.testing import simulate


def _firm_covariates(n_firms, seed):
    rng = np.random.default_rng(seed)
    f = pd.DataFrame({"firm": np.arange(n_firms)})
    f["x"] = rng.standard_normal(n_firms)
    f["d"] = (rng.random(n_firms) < 0.4).astype(float)
    return f


def _design(n_workers, n_firms, move, seed, b=(0.1, -0.2)):
    """simulate()'s careers, with psi_j = b_x x_j + b_d d_j + N(0, 0.1^2) noise."""
    df = simulate(n_workers=n_workers, years=4, n_firms=n_firms, move=move, seed=seed)
    f = _firm_covariates(n_firms, seed + 100)
    rng = np.random.default_rng(seed + 200)
    psi = b[0] * f["x"].to_numpy() + b[1] * f["d"].to_numpy() + 0.1 * rng.standard_normal(n_firms)
    df["psi_true"] = psi[df["firm"].to_numpy()]
    return df, f


def _truth_coef(r, df, f, weights="person_years"):
    """The regression of the TRUE psi (centred at its person-year mean) on the covariates, over the firms of the
    estimation sample, with the same weights: the target of the estimator."""
    fe = r.firm_effects.merge(f, on="firm")
    psi = df.drop_duplicates("firm").set_index("firm")["psi_true"].reindex(fe["firm"]).to_numpy()
    w = fe["n_obs"].to_numpy(float) if weights == "person_years" else np.ones(len(fe))
    psi = psi - (fe["n_obs"].to_numpy() @ psi) / fe["n_obs"].sum()
    Z = np.column_stack([np.ones(len(fe)), fe["x"], fe["d"]])
    return np.linalg.solve(Z.T @ (Z * w[:, None]), Z.T @ (w * psi))


@pytest.mark.parametrize("lo", ["obs", "match"])
def test_matches_dense_brute_force(lo):
    df, f = _design(150, 12, 0.3, 4)
    df["y"] = df["alpha_true"] + df["psi_true"] + df["eps"]
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out=lo)
    L = variance.lincom(r, f)
    fr = r.to_frame()
    w = fr["worker"].factorize(sort=True)[0]
    fi = fr["firm"].factorize(sort=True)[0]  # firm_effects are sorted by id too
    nw, nf, n = w.max() + 1, fi.max() + 1, len(fr)
    Z = np.zeros((n, nw + nf))
    Z[np.arange(n), w] = 1
    Z[np.arange(n), nw + fi] = 1
    y = fr["y"].to_numpy() - fr["y"].mean()
    Sp = np.linalg.pinv(Z.T @ Z)
    beta = Sp @ Z.T @ y
    # coefficients: weighted regression of centred psi_hat on (1, x, d) over firms, person-year weights
    nj = np.bincount(fi).astype(float)
    X = np.column_stack([np.ones(nf), f.set_index("firm").loc[r.firm_effects["firm"], ["x", "d"]].to_numpy()])
    G = np.linalg.solve(X.T @ (X * nj[:, None]), (X * nj[:, None]).T)
    V = G.T - np.outer(nj, G.sum(1)) / n
    v = np.vstack([np.zeros((nw, 3)), V])  # coef = v'beta
    np.testing.assert_allclose(L.table["coef"], v.T @ beta, rtol=1e-8, atol=1e-12)
    # leave-out variance: units are person-years, or (lo="match") movers' matches left out whole
    e = y - Z @ beta
    P = Z @ Sp @ Z.T
    if lo == "obs":
        groups = np.arange(n)
    else:
        key = w * nf + fi
        mover = pd.Series(fi).groupby(w).transform("nunique").to_numpy() > 1
        groups = np.where(mover, key, -1 - np.arange(n))
    a = Z @ Sp @ v  # (rows, terms): coef = a'y
    Vhat = np.zeros((3, 3))
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        # leave-cluster-out residual: (I - P_gg)^-1 e_g; sigma_g = y_g (y_g - z_g'beta_{-g})'
        e_lo = np.linalg.solve(np.eye(len(idx)) - P[np.ix_(idx, idx)], e[idx])
        Sg = np.outer(y[idx], e_lo)
        Sg = (Sg + Sg.T) / 2
        Vhat += a[idx].T @ Sg @ a[idx]
    np.testing.assert_allclose(L.table["se"], np.sqrt(np.diag(Vhat)), rtol=1e-7)
    np.testing.assert_allclose(L.vcov.to_numpy(), Vhat, rtol=1e-6, atol=1e-14)
    assert list(L.table.columns) == ["term", "coef", "se", "ci_low", "ci_high"]
    assert list(L.table["term"]) == ["const", "x", "d"]
    assert L.to_frame().equals(L.table) and L.to_frame() is not L.table
    assert "Kline, Saggio and Solvsten" in L.summary() and "x" in repr(L)


def test_recovers_truth_coefficients():
    df, f = _design(6000, 300, 0.25, 1)
    df["y"] = df["alpha_true"] + df["psi_true"] + df["eps"]
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="obs")
    L = variance.lincom(r, f.assign(unused=0.0), terms=["x", "d"])
    truth = _truth_coef(r, df, f)
    t = L.table.set_index("term")
    # within 3 s.e. of the target (sample regression of the true psi), and near the population slopes
    assert np.all(np.abs(t["coef"].to_numpy() - truth) < 3 * t["se"].to_numpy()), (t, truth)
    assert t.loc["x", "coef"] == pytest.approx(0.1, abs=0.03)
    assert t.loc["d", "coef"] == pytest.approx(-0.2, abs=0.05)
    # one weight per firm: a different target, also recovered
    Lf = variance.lincom(r, f, weights=None)
    tf = Lf.table.set_index("term")
    assert np.all(np.abs(tf["coef"].to_numpy() - _truth_coef(r, df, f, None)) < 3 * tf["se"].to_numpy())


@pytest.mark.slow
def test_intervals_cover_at_nominal_rate():
    """Fixed design (low mobility: about 4 movers per firm, heteroskedastic errors), errors redrawn 300 times: the
    target is the regression of the true psi of this design's firms, so only the estimation error of psi_hat is
    random. Measured: coverage 0.947, 0.930, 0.937 (const, x, d); mean s.e. / Monte Carlo s.d. printed below."""
    base, f = _design(900, 90, 0.1, 7)
    reps = 300
    rng = np.random.default_rng(3)
    rank = base["psi_true"].rank(method="dense").to_numpy()
    sd = 0.2 + 0.3 * rank / rank.max()  # heteroskedastic
    cover, est, se = (np.zeros((reps, 3)) for _ in range(3))
    truth = None
    for b in range(reps):
        d = base[["worker", "firm", "alpha_true", "psi_true"]].copy()
        d["y"] = d["alpha_true"] + d["psi_true"] + sd * rng.standard_normal(len(d))
        r = akm.fit(d, "y", "worker", "firm", connected="leave_one_out", leave_out="obs")
        if truth is None:
            truth = _truth_coef(r, d, f)
        t = variance.lincom(r, f).table
        est[b], se[b] = t["coef"], t["se"]
        cover[b] = (t["ci_low"] <= truth) & (truth <= t["ci_high"])
    rate, ratio = cover.mean(0), se.mean(0) / est.std(0, ddof=1)
    print("coverage", rate, "s.e. / MC s.d.", ratio)
    assert np.all(np.abs(rate - 0.95) <= 0.03), rate
    assert np.all(np.abs(ratio - 1) < 0.15), ratio  # a Monte Carlo s.d. from 300 draws: relative s.e. 4%
    assert np.all(np.abs(est.mean(0) - truth) < 3 * est.std(0) / np.sqrt(reps))  # unbiased


def test_bad_input_is_refused():
    df, f = _design(600, 30, 0.3, 2)
    df["y"] = df["alpha_true"] + df["psi_true"] + df["eps"]
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="obs")
    kept = r.firm_effects["firm"].to_numpy()
    with pytest.raises(_checks.InputError) as e:  # a firm of the sample without covariates
        variance.lincom(r, f[f["firm"] != kept[3]])
    assert e.value.table == "covariates" and e.value.column == "firm" and e.value.ids == [kept[3]]
    with pytest.raises(_checks.InputError) as e:  # collinear: z = 2x + 1
        variance.lincom(r, f.assign(z=2 * f["x"] + 1))
    assert e.value.column == "z" and "collinear" in str(e.value)
    with pytest.raises(_checks.InputTypeError) as e:  # a text covariate
        variance.lincom(r, f.assign(x=f["x"].astype(str)))
    assert e.value.column == "x"
    with pytest.raises(_checks.InputError) as e:  # a missing value
        variance.lincom(r, f.assign(x=f["x"].where(f["firm"] != kept[0])))
    assert e.value.column == "x" and e.value.ids == [kept[0]]
    with pytest.raises(_checks.InputError) as e:  # duplicated firm ids
        variance.lincom(r, pd.concat([f, f.iloc[[5]]]))
    assert e.value.column == "firm" and f["firm"].iloc[5] in e.value.ids
    with pytest.raises(_checks.MissingColumnError):
        variance.lincom(r, f, terms=["x", "nope"])
    with pytest.raises(_checks.InputTypeError):
        variance.lincom(r, f.to_dict())
    with pytest.raises(_checks.InputTypeError):
        variance.lincom(r.decompose("plugin"), f)
    with pytest.raises(_checks.InputError) as e:  # non-positive weights
        variance.lincom(r, f.assign(w=np.where(f["firm"] == kept[1], 0.0, 1.0)), terms=["x"], weights="w")
    assert e.value.column == "w" and e.value.ids == [kept[1]]
    extra = pd.concat([f, pd.DataFrame({"firm": [10_000], "x": [0.0], "d": [1.0]})])
    L = variance.lincom(r, extra)  # rows for firms outside the sample are counted, not silently used
    assert L.n_unused == len(extra) - len(kept) and "not used" in L.summary()
    plain = akm.fit(df, "y", "worker", "firm")
    with pytest.raises(ValueError, match="leave-one-out"):
        variance.lincom(plain, f)

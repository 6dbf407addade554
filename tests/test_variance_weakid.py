"""Weak-identification (q = 1) inference for the KSS components (``decompose(..., se=True, ci_method=...)``).

1. Every piece of the q = 1 analysis (eigenvalues of B, sum of their squares, Lindeberg ratio, b_1, theta_1, the
   covariance of (b_1, theta_1)) agrees with a dense textbook computation on a tiny panel, by both the dense
   coefficient-space eigen-solver and Lanczos on the implicit unit operator; the identity
   theta_KSS = theta_1 + lambda_1 (b_1^2 - V_1) holds to rounding.
2. The interval equals the root formula of LeaveOutTwoWay's ``AM_CI.m`` (re-implemented here), and the critical
   value is the simulated quantile of the distance to a circle (Andrews and Mikusheva 2016).
3. Monte Carlo: two blocks of firms joined by three movers (the between-block gap in firm effects is weakly
   identified, one eigenvalue carries ~98% of sum lambda^2). The q = 0 normal interval fails there mainly by not
   existing: the unbiased estimate of the sampling variance is not positive in 36-50% of the draws (interval NaN,
   counted as not covering: coverage 0.56, 0.62, 0.50); where it is defined it covers 0.96, 0.97, 0.99 of those
   draws (a selected subset). The q = 1 interval always exists and covers at 95% or above (var(alpha) 0.96;
   var(psi) 0.99 and cov 0.98: conservative, as the curvature-adjusted critical value bounds the worst case; the
   same interval with the true covariance of (b_1, theta_1) covers 0.945, 0.99, 0.97, so the over-coverage is the
   method's, see the test's docstring).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from prosperity import akm, variance
from prosperity.testing import simulate

from tests._dense_kss import COMPS, dense_units, kss_matrix


def _dense_q1(r, lo):
    """Dense q = 1 objects of KSS section 5.3 from textbook matrices (tiny data only)."""
    d = dense_units(r, lo)
    Z, Sp, A, M, yu, sig, sig_hat = d.Z, d.Sp, d.A, d.M, d.yu, d.sig, d.sig_hat
    S = np.diag(sig)
    out = {}
    for k in COMPS:
        B = Z @ Sp @ A[k] @ Sp @ Z.T
        lam, W = np.linalg.eigh(B)
        o = np.argsort(-np.abs(lam)) if k == "cov_alpha_psi" else np.argsort(-lam)
        lam, W = lam[o], W[:, o]
        l1, w1 = lam[0], W[:, 0]
        C = kss_matrix(B, M)
        C2 = kss_matrix(B - l1 * np.outer(w1, w1), M)
        b1 = w1 @ yu
        out[k] = dict(lam=lam[:3], ssq=np.sum(lam ** 2), b1=abs(b1), theta=yu @ C @ yu, theta1=yu @ C2 @ yu,
                      var_b1=np.sum(w1 ** 2 * sig), cov=abs(2 * np.sum(w1 * sig * (C2 @ yu))),
                      var_theta1=4 * np.sum((C2 @ yu) ** 2 * sig) - 2 * np.trace(C2 @ S @ C2 @ S),
                      lindeberg=np.max(w1 ** 2), V1=np.sum(w1 ** 2 * sig_hat), l1=l1)
    return out


@pytest.mark.parametrize("lo", ["obs", "match"])
@pytest.mark.parametrize("dense", [True, False])
def test_q1_pieces_match_dense_reference(lo, dense, monkeypatch):
    df = simulate(n_workers=150, years=4, n_firms=12, move=0.3, seed=4)
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out=lo)
    if not dense:  # Lanczos (eigsh) on the implicit unit operator instead of the dense coefficient-space solver
        monkeypatch.setattr(variance, "_EIGEN_DENSE_MAX", 0)
    d = r.decompose("kss", leverage="exact", se=True, se_draws=0, ci_method="q1")
    ref = _dense_q1(r, lo)
    for k in COMPS:
        w, e = d.weak_id[k], ref[k]
        np.testing.assert_allclose(w["lambda"], e["lam"], rtol=1e-7)
        assert d.lambda_max[k] == pytest.approx(e["l1"], rel=1e-7)
        assert w["sum_sq"] == pytest.approx(e["ssq"], rel=1e-7)
        assert d.eigen_share[k] == pytest.approx(e["l1"] ** 2 / e["ssq"], rel=1e-7)
        assert w["lindeberg"] == pytest.approx(e["lindeberg"], rel=1e-6)
        assert abs(w["b1"]) == pytest.approx(e["b1"], rel=1e-8)
        assert w["var_b1"] == pytest.approx(e["var_b1"], rel=1e-8)
        assert abs(w["cov_b1_theta1"]) == pytest.approx(e["cov"], rel=1e-6, abs=1e-15)
        assert w["var_theta1"] == pytest.approx(e["var_theta1"], rel=1e-6)
        # the quadratic form y'C_2 y, and theta_KSS = theta_1 + lambda_1 (b_1^2 - V_1)
        assert w["theta1_quadratic"] == pytest.approx(e["theta1"], rel=1e-8, abs=1e-13)
        assert w["theta1"] == pytest.approx(e["theta1"], rel=1e-8, abs=1e-13)
        assert e["theta"] == pytest.approx(e["theta1"] + e["l1"] * (e["b1"] ** 2 - e["V1"]), rel=1e-10)
        assert getattr(d, k) == pytest.approx(e["theta"], rel=1e-8)
        assert d.ci_method[k] == "q=1" and d.ci[k] == d.ci_q1[k]
        lo_, hi = d.ci[k]
        assert lo_ < getattr(d, k) < hi


def _am_ci_reference(lam, S, b1, t1, z):
    """LeaveOutTwoWay's AM_CI.m (quartic roots; lambda already on the component's scale), given the critical value."""
    s2, t2 = S[0, 0], S[1, 1]
    rho = S[0, 1] / np.sqrt(s2 * t2)
    g = lam * s2 / np.sqrt(t2)  # gamma
    p = [4 * g ** 2 / s2, 4 * g * rho / np.sqrt(s2) - 8 * b1 * g ** 2 / s2,
         1 - 4 * g ** 2 * z ** 2 + 4 * g ** 2 * b1 ** 2 / s2 - 8 * b1 * rho * g / np.sqrt(s2),
         4 * b1 ** 2 * g * rho / np.sqrt(s2) - 2 * b1 - 4 * g * z ** 2 * rho * np.sqrt(s2),
         b1 ** 2 - rho ** 2 * s2 * z ** 2]
    b = np.roots(p)
    b = b[np.abs(b.imag) < 1e-9].real
    den = np.sqrt(1 - rho ** 2 + (2 * g * b / np.sqrt(s2) + rho) ** 2)
    mid = lam * b ** 2 + t1 - rho * np.sqrt(t2 / s2) * (b1 - b)
    return (mid - z * np.sqrt(t2) * (1 - rho ** 2) / den).min(), (mid + z * np.sqrt(t2) * (1 - rho ** 2) / den).max()


def test_interval_and_critical_value():
    # the projection of the ellipse through lambda b^2 + t equals AM_CI.m's root formula
    rng = np.random.default_rng(0)
    for _ in range(20):
        lam = rng.choice([-1, 1]) * rng.uniform(0.01, 2)
        s, t, rho = rng.uniform(0.2, 2), rng.uniform(0.05, 1), rng.uniform(-0.9, 0.9)
        S = np.array([[s * s, rho * s * t], [rho * s * t, t * t]])
        b1, t1, z = rng.normal(0, 1.5), rng.normal(), rng.uniform(1.9, 2.4)
        ours = variance._am_interval(lam, b1, t1, S, z)
        np.testing.assert_allclose(ours, _am_ci_reference(lam, S, b1, t1, z), rtol=1e-7, atol=1e-9)
    # critical value: the 95% quantile of the distance from N(0, I_2) to a circle of curvature C through 0
    # (simulated here), never below the normal 1.96, rising to sqrt(chi2_2 quantile) = 2.4477
    X = np.random.default_rng(1).standard_normal((2, 400_000))
    for C, want in ((0.3, 1.959964), (2.0, None), (5.0, None), (1e4, 2.447747)):
        R = 1 / C
        sim = np.quantile(np.abs(np.hypot(X[0], X[1] - R) - R), 0.95)
        z = variance._am_critical(C, 0.95)
        assert z == pytest.approx(want if want is not None else sim, abs=2e-3 if want else 1e-2), C
        assert z >= 1.959963
    assert variance._am_critical(0.0, 0.9) == pytest.approx(1.6448536, rel=1e-6)


def test_rule_table_and_summary():
    """Well-connected design: no dominant eigenvalue, the rule keeps the normal interval; ci_method='q0' (the
    default) skips the diagnostic; the table and summary show the choice."""
    df = simulate(n_workers=3000, years=4, n_firms=100, move=0.3, seed=5)
    r = akm.fit(df, "y", "worker", "firm", connected="leave_one_out", leave_out="obs")
    q0 = r.decompose("kss", leverage="exact", se=True)
    assert q0.eigen_share == {} and q0.ci_method == {} and "kss CI" not in q0.table.columns
    d = r.decompose("kss", leverage="exact", se=True, ci_method="auto")
    for k in COMPS:
        assert 0 < d.eigen_share[k] < 0.05, (k, d.eigen_share[k])  # measured: 0.006, 0.021, 0.025
        assert d.ci_method[k] == "q=0" and d.ci[k] == d.ci_q0[k] == q0.ci[k]
        # with little curvature the q = 1 interval is close to the normal one
        w0, w1 = np.diff(d.ci_q0[k])[0], np.diff(d.ci_q1[k])[0]
        assert abs(w1 / w0 - 1) < 0.02, k  # measured: within 0.3%
    t = d.table
    assert t.loc["var_psi", "kss CI"] == "q=0" and t.loc["corr_alpha_psi", "kss CI"] == "q=0"
    assert t.loc["share_psi", "kss eigen share"] == pytest.approx(d.eigen_share["var_psi"])
    assert "eigen" in d.summary() and "lambda_1" in d.summary()
    with pytest.raises(ValueError, match="ci_method"):
        r.decompose("kss", se=True, ci_method="q2")


_MC = r'''
import json, sys, warnings
import numpy as np, pandas as pd
from prosperity import akm, variance
from prosperity.testing import truth

def blocks(seed, n_firms=8, n_workers=60, years=6, bridge=3, delta=0.25, move=0.4):
    """Two blocks of firms (psi: N(0, 0.1^2), block 2 shifted by delta), movers within blocks, ``bridge`` workers
    moving once between them: the block gap is weakly identified."""
    rng = np.random.default_rng(seed)
    psi = np.concatenate([rng.normal(0, 0.1, n_firms), delta + rng.normal(0, 0.1, n_firms)])
    rows, wid = [], 0
    for b in range(2):
        for i in range(n_workers):
            f = rng.integers(n_firms)
            for t in range(years):
                if t and rng.random() < move:
                    f = rng.integers(n_firms)
                rows.append((wid, b * n_firms + f, t))
            wid += 1
    for i in range(bridge):
        fa, fb = rng.integers(n_firms), n_firms + rng.integers(n_firms)
        rows += [(wid, fa if t < years // 2 else fb, t) for t in range(years)]
        wid += 1
    d = pd.DataFrame(rows, columns=["worker", "firm", "year"])
    d["alpha_true"] = rng.normal(0, 0.3, wid)[d["worker"]]
    d["psi_true"] = psi[d["firm"]]
    return d

base = blocks(1)
reps = int(sys.argv[1])
rng = np.random.default_rng(5)
C = ("var_alpha", "var_psi", "cov_alpha_psi")
c0, c1, c, share, n = np.zeros((reps, 3)), np.zeros((reps, 3)), np.zeros((reps, 3)), np.zeros((reps, 3)), 0
tr, fl, bt, lam, nan0 = None, np.zeros(3), np.zeros((reps, 3, 2)), np.zeros(3), np.zeros((reps, 3), bool)
for b in range(reps):
    d = base.copy()
    d["y"] = d["alpha_true"] + d["psi_true"] + 0.5 * rng.standard_normal(len(d))
    r = akm.fit(d, "y", "worker", "firm", connected="leave_one_out", leave_out="obs")
    if tr is None:
        tr, n = truth(d.loc[r.to_frame().index]), r.n_obs
    with warnings.catch_warnings():  # non-positive q = 0 variance estimates: counted in nan0, not warned 100 times
        warnings.simplefilter("ignore", RuntimeWarning)
        k = r.decompose("kss", leverage="exact", se=True, se_draws=int(sys.argv[2]), seed=b, ci_method="auto")
    fl += np.array([k.weak_id[m]["var_theta1_floored"] for m in C])
    for i, m in enumerate(C):
        nan0[b, i] = np.isnan(k.ci_q0[m][0])
        c0[b, i] = k.ci_q0[m][0] <= tr[m] <= k.ci_q0[m][1]
        c1[b, i] = k.ci_q1[m][0] <= tr[m] <= k.ci_q1[m][1]
        c[b, i] = k.ci[m][0] <= tr[m] <= k.ci[m][1]
        share[b, i] = k.eigen_share[m]
        bt[b, i], lam[i] = (k.weak_id[m]["b1"], k.weak_id[m]["theta1"]), k.weak_id[m]["lambda_1"]
# oracle: the same construction with the Monte Carlo covariance of (b_1, theta_1) in place of its estimate
orc = []
for i, m in enumerate(C):
    S = np.cov(bt[:, i].T)
    rho = S[0, 1] / np.sqrt(S[0, 0] * S[1, 1])
    z = variance._am_critical(2 * abs(lam[i] * S[0, 0] / np.sqrt(S[1, 1])) / np.sqrt(1 - rho ** 2), 0.95)
    orc.append(float(np.mean([lo <= tr[m] <= hi for lo, hi in (variance._am_interval(lam[i], b1, t1, S, z)
                                                                for b1, t1 in bt[:, i])])))
print(json.dumps({"oracle": orc, "q0": c0.mean(0).tolist(), "q1": c1.mean(0).tolist(), "reported": c.mean(0).tolist(),
                  "share": share.min(0).tolist(), "n": n, "floored": fl.tolist(),
                  "q0_nan": nan0.mean(0).tolist(), "q0_defined": [float(c0[~nan0[:, i], i].mean()) for i in range(3)]}))
'''


@pytest.mark.slow
def test_weak_id_interval_covers_where_normal_does_not():
    """Fixed two-block design, errors redrawn 200 times (a subprocess with one BLAS thread: on a loaded 2-core
    machine multi-threaded LAPACK on tiny matrices was 10x slower). Exact trace terms (``se_draws=0``). Measured
    (200 draws): q = 0 coverage 0.56, 0.62, 0.50 (var_alpha, var_psi, cov), of which the failures are mostly
    intervals that do not exist: the q = 0 variance estimate (T1 - 2 T2, unbiased, not constrained positive) is not
    positive in 41.5%, 36% and 50% of the draws; in the draws where it is positive the normal interval covers 0.957,
    0.969, 0.99. q = 1 coverage 0.96, 0.99, 0.98 (always defined); leading eigenvalue share >= 0.93.

    Not this one design's accident: six two-block designs (``blocks(s)``, s = 1..6, 100 draws each; 4 December
    2026) give q = 1 coverage 0.91-0.98 (mean 0.95) for var(alpha), 0.97-1.00 (mean 0.99) for var(psi) and
    0.98-1.00 (mean 0.99) for cov; q = 0 undefined in 19-53% of draws, covering 0.89-1.00 where defined. Varying
    the bridge movers (2, 3, 6, 10), the block shift (0.1, 0.25, 0.5) and firms per block (4, 8) moves var(psi)'s
    q = 1 coverage between 0.975 and 1.0 (200 draws each).

    Why var(psi) and the covariance cover above 95% (issue 13; 400 draws of this design: q = 1 0.970, 0.995,
    0.988): it is the method, not our implementation of it.
    - Not the 1.96 floor of the critical value: the curvatures here are 2.0-2.7 (var_alpha), 5-13 (var_psi) and
      7.5-15 (cov), where the exact quantile is above 1.96 anyway (critical values 2.03-2.43); the floor never binds.
    - Not the estimate of Sigma: the mean estimated var(b_1), var(theta_1) and cov(b_1, theta_1) match their Monte
      Carlo values (0.2515 vs 0.2515; 2.12e-5 vs 2.36e-5 for var_psi; 9.77e-6 vs 9.85e-6 for cov; estimated and
      Monte Carlo correlations both ~0), and the ORACLE interval (Monte Carlo Sigma) covers 0.963, 0.990, 0.973.
    - Not the ellipse image: ``_am_interval`` equals AM_CI.m's quartic (test above).
    - KSS's own critical value (Appendix C.6.1 / AM_CI.m's simulated table: the quantile of
      sqrt(chi2_1 + (chi_1 + 1/C)^2) - 1/C, the worst case of Andrews and Mikusheva 2016) is LARGER than ours
      (2.33 / 2.40 / 2.42 at this design's curvatures): with it coverage is 0.983, 0.995, 0.990.
    The curvature-adjusted critical value bounds the distance to any curve of curvature <= C; at the high curvatures
    of var(psi) and cov it is near sqrt(chi2_2(0.95)) = 2.45, and the interval is close to the projection of a 2-D
    95% ellipse, which covers a scalar at up to P(chi2_1 <= 5.99) = 0.986. The critical value that would cover
    exactly 95% here is 1.82 / 1.75 / 1.90 (design-specific, not known to the analyst). Hence the upper bound 0.995
    for those two components below, and the oracle check: the conservatism survives a known Sigma.
    """
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", _MC, "200", "0"], capture_output=True, text=True, env=env, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["n"] > 600
    assert min(res["share"]) > 0.5  # one eigenvalue dominates: the rule reports q = 1 for every component
    assert res["reported"] == res["q1"]
    q0, q1 = dict(zip(COMPS, res["q0"])), dict(zip(COMPS, res["q1"]))
    orc = dict(zip(COMPS, res["oracle"]))
    # Monte Carlo s.e. of a coverage rate from 200 draws: 1.5 points
    assert abs(q1["var_alpha"] - 0.95) <= 0.03, q1
    assert 0.92 <= q1["var_psi"] <= 0.995, q1  # conservative by construction (docstring)
    assert 0.92 <= q1["cov_alpha_psi"] <= 0.995, q1
    assert all(v < 0.8 for v in q0.values()), q0  # the normal interval fails here ...
    assert all(v > 0.2 for v in res["q0_nan"]), res  # ... mostly by a non-positive variance estimate (no interval)
    # the over-coverage is the method's: with the true (Monte Carlo) Sigma it remains (measured 0.945, 0.99, 0.97)
    assert orc["var_psi"] >= 0.975 and all(v >= 0.93 for v in orc.values()), orc
    assert max(res["floored"]) <= 10  # V(theta_1) estimates not positive (conservative fallback): measured 3

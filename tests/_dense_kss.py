"""The KSS objects written out as dense textbook matrices, for brute-force checks on tiny panels only.

One definition of the unit design shared by the tests of the q = 0 variance (tests/test_variance_inference.py)
and of the q = 1 pieces (tests/test_variance_weakid.py): units are person-years, or matches collapsed to rows
sqrt(c) z_m with outcome sqrt(c) ybar_m (leave-match-out: movers' matches; "match_movers": every match); a stayer's
person-years stay units of their own. The outcome is centred (LeaveOutTwoWay, pytwoway)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

COMPS = ("var_alpha", "var_psi", "cov_alpha_psi")


def dense_units(r, lo: str) -> SimpleNamespace:
    """Unit design Z, outcome yu, unit firms fu, (Z'Z)^+ on person-years, the quadratic forms A, M = I - P, the
    leave-out sigma_u^2 (``sig_hat``) and its firm means floored at 0 (``sig``)."""
    fr = r.to_frame()
    w = fr["worker"].factorize(sort=True)[0]
    f = fr["firm"].factorize(sort=True)[0]
    nw, nf, n = w.max() + 1, f.max() + 1, len(fr)
    y = (fr["y"] - fr["xb"]).to_numpy()
    y = y - y.mean()  # nothing depends on the level of the outcome
    Zr = np.zeros((n, nw + nf))
    Zr[np.arange(n), w] = 1
    Zr[np.arange(n), nw + f] = 1
    key = w * nf + f
    u, inv = np.unique(key, return_inverse=True)
    c = np.bincount(inv).astype(float)
    mover = np.bincount(u // nf)[u // nf] > 1
    coll = {"obs": np.zeros(len(u), bool), "match": mover, "match_movers": np.ones(len(u), bool)}[lo]
    rows, cm = np.flatnonzero(~coll[inv]), np.flatnonzero(coll)
    Zc = np.zeros((len(cm), nw + nf))
    Zc[np.arange(len(cm)), u[cm] // nf] = np.sqrt(c[cm])
    Zc[np.arange(len(cm)), nw + u[cm] % nf] = np.sqrt(c[cm])
    Z = np.vstack([Zr[rows], Zc])
    yu = np.concatenate([y[rows], np.sqrt(c[cm]) * np.bincount(inv, weights=y)[cm] / c[cm]])
    fu = np.concatenate([f[rows], u[cm] % nf])
    Sp = np.linalg.pinv(Zr.T @ Zr)
    # person-year-weighted (co)variances of the effects as quadratic forms in gamma = (alpha, psi)
    Dc, Fc = Zr[:, :nw] - Zr[:, :nw].mean(0), Zr[:, nw:] - Zr[:, nw:].mean(0)
    O = np.zeros((nw, nf))
    A = {"var_alpha": np.block([[Dc.T @ Dc, O], [O.T, np.zeros((nf, nf))]]) / n,
         "var_psi": np.block([[np.zeros((nw, nw)), O], [O.T, Fc.T @ Fc]]) / n}
    X = Dc.T @ Fc / (2 * n)
    A["cov_alpha_psi"] = np.block([[np.zeros((nw, nw)), X], [X.T, np.zeros((nf, nf))]])
    M = np.eye(len(yu)) - Z @ Sp @ Z.T
    # sigma~: firm means of the leave-out sigma_u^2 (outcome demeaned along the constant of the unit design)
    s = Z[:, :nw].sum(1)
    yc = yu - s * (yu @ s) / (s @ s)
    sig_hat = yc * (M @ yu) / np.diag(M)
    sf = np.bincount(fu, weights=sig_hat) / np.bincount(fu)
    sig = np.maximum(sf[fu], 0)
    return SimpleNamespace(Z=Z, yu=yu, fu=fu, Sp=Sp, A=A, M=M, sig_hat=sig_hat, sig=sig, n=n, nw=nw, nf=nf)


def kss_matrix(B: np.ndarray, M: np.ndarray) -> np.ndarray:
    """C = B - (D M + M D) / 2 with D = diag(B_uu / M_uu): theta_KSS = y'C y (KSS 2020, eq. 3)."""
    D = np.diag(np.diag(B) / np.diag(M))
    return B - (D @ M + M @ D) / 2

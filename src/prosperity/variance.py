"""Variance decompositions of an AKM model: plug-in, homoskedastic-corrected and leave-out (KSS).

On the person-year scale (Bonhomme et al. 2023, *JOLE* 41(2), eq. 3),

    Var(y) = Var(alpha) + Var(psi) + 2 Cov(alpha, psi) + Var(xb) + 2 Cov(xb, alpha + psi) + Var(e).

The **plug-in** estimator puts the estimated effects into these moments. Because every estimated effect carries
sampling error, its variance is biased upwards and the covariance downwards ("limited-mobility bias"; Andrews,
Gill, Schank and Upward 2008, *JRSS-A* 171(3):673-697). For a quadratic form ``theta = beta' A beta`` in the AKM
coefficients, ``E[theta_PI] = theta + sum_l B_ll sigma_l^2`` with ``B_ll = z_l' S^-1 A S^-1 z_l``, ``S = Z'Z``
(Kline, Saggio and Solvsten 2020, *Econometrica* 88(5):1859-1898, hereafter KSS). Two corrections:

- ``"homoskedastic"`` (Andrews et al. 2008): ``theta_HO = theta_PI - sigma^2 sum_l B_ll`` with
  ``sigma^2 = SSR / (n - number of parameters)``.
- ``"kss"`` (KSS 2020): ``theta_KSS = theta_PI - sum_l B_ll sigma_l^2`` with the unbiased leave-out estimate
  ``sigma_l^2 = y_l (y_l - z_l' beta_{-l}) = y_l e_l / (1 - P_ll)``, ``P_ll = z_l' S^-1 z_l``. Valid under
  arbitrary heteroskedasticity, it needs ``P_ll < 1``: fit on the leave-one-out connected set
  (``akm.fit(..., connected="leave_one_out")``). Leave out one person-year (``leave_out="obs"``) or, to allow
  serial correlation within a worker-firm match, the whole match (``leave_out="match"``: the data are collapsed to
  match means weighted by their length, as in LeaveOutTwoWay's ``leave_out_KSS_coll``).

Computation. Every ``B_ll`` and ``P_ll`` depends only on the worker-firm match of ``l``; the worker effects are
eliminated in closed form, so all that is needed are firm-sized solves with the matrix ``L = F' M_D F`` (the
mobility-network Laplacian): ``c_m = L^+ x_m`` with ``x_m = e_j - mbar_i`` (the firm indicator minus the worker's
employment shares). ``leverage="exact"`` factorises ``L`` (grounded at one firm) and forms ``c_m`` for every mover
match in chunks (memory: firms^2, never observations^2). ``leverage="jla"`` uses random projections, as in the
computational appendix of KSS: the leverages ``P_ll`` by the Johnson-Lindenstrauss approximation with ``draws``
(default 200) Rademacher vectors, one block preconditioned-CG solve per draw; then the bias term
``sum_l B_ll sigma_l^2`` as a trace, ``tr(A S^-1 Z' diag(sigma^2) Z S^-1)``, by Hutchinson's estimator with
``trace_draws`` Rademacher vectors (by default as many as needed, in batches of 10, for a Monte Carlo s.e. of at
most 1e-4 var(y) on each component), two weighted AKM solves per draw for all three components (as pytwoway
does, which uses 5 draws). The Monte Carlo standard error of each corrected component is reported in
``mc_se`` (the noise of the leverages themselves, which enters ``sigma_l^2``, is not included in it; it is small
with 200 draws). ``leverages(..., leverage="jla")`` gives per-match JLA estimates of every ``B_ll`` as well.
Controls and time effects are partialled out first at their estimated values (as in KSS and LeaveOutTwoWay).

Standard errors of the variance components themselves (KSS section 5's inference, which needs an eigen-
decomposition of A) are **not** computed here; the JLA Monte Carlo error is the only uncertainty reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["decompose", "VarianceDecomposition", "table", "leverages"]

METHODS = ("plugin", "homoskedastic", "kss")
_JLA_TOL = 1e-4  # CG tolerance of the random-projection leverage solves (their Monte Carlo error is ~10%)


@dataclass(frozen=True)
class VarianceDecomposition:
    """Components of Var(y) on the person-year scale (variances with denominator n).

    ``var_y, var_alpha, var_psi, cov_alpha_psi, var_xb, cov_xb_effects`` (= Cov(xb, alpha + psi)), ``var_resid``;
    ``corr_alpha_psi``; shares of var_y: ``share_alpha, share_psi, share_sorting`` (= 2 cov / var_y),
    ``share_xb, share_resid``. ``method``, ``leave_out``, ``leverage`` ("exact" / "jla" / None), ``draws``,
    ``mc_se`` (dict: Monte Carlo standard errors of the corrected var_alpha, var_psi and cov_alpha_psi under JLA),
    ``sigma2`` (homoskedastic error variance, for "homoskedastic"), ``n_obs``, ``details`` (counts: matches,
    movers' matches, clipped leverages, seconds).
    """

    method: str
    var_y: float
    var_alpha: float
    var_psi: float
    cov_alpha_psi: float
    var_xb: float
    cov_xb_effects: float
    var_resid: float
    n_obs: int
    leave_out: str | None = None
    leverage: str | None = None
    draws: int | None = None
    mc_se: dict = field(default_factory=dict)
    sigma2: float | None = None
    details: dict = field(default_factory=dict)

    @property
    def corr_alpha_psi(self) -> float:
        d = self.var_alpha * self.var_psi
        return float(self.cov_alpha_psi / np.sqrt(d)) if d > 0 else float("nan")

    @property
    def sum_of_parts(self) -> float:
        return float(self.var_alpha + self.var_psi + 2 * self.cov_alpha_psi + self.var_xb
                     + 2 * self.cov_xb_effects + self.var_resid)

    @property
    def share_alpha(self) -> float:
        return float(self.var_alpha / self.var_y)

    @property
    def share_psi(self) -> float:
        return float(self.var_psi / self.var_y)

    @property
    def share_sorting(self) -> float:
        return float(2 * self.cov_alpha_psi / self.var_y)

    @property
    def share_xb(self) -> float:
        return float((self.var_xb + 2 * self.cov_xb_effects) / self.var_y)

    @property
    def share_resid(self) -> float:
        return float(self.var_resid / self.var_y)

    def to_frame(self) -> pd.DataFrame:
        """Components as rows, one column named after the method. ``sum_of_parts`` should equal ``var_y``: exactly
        for the plug-in (least-squares orthogonality), approximately for the corrections (their residual variance
        is itself estimated)."""
        rows = {
            "var_y": self.var_y, "var_alpha": self.var_alpha, "var_psi": self.var_psi,
            "2cov_alpha_psi": 2 * self.cov_alpha_psi, "var_xb": self.var_xb,
            "2cov_xb_effects": 2 * self.cov_xb_effects, "var_resid": self.var_resid,
            "sum_of_parts": self.sum_of_parts, "gap (var_y - sum)": self.var_y - self.sum_of_parts,
            "corr_alpha_psi": self.corr_alpha_psi, "share_alpha": self.share_alpha,
            "share_psi": self.share_psi, "share_sorting": self.share_sorting,
        }
        return pd.DataFrame({self.method: pd.Series(rows, dtype=float)})

    def summary(self) -> str:
        s = (f"Variance decomposition ({self.method}{', leave-' + self.leave_out + '-out' if self.leave_out else ''}"
             f"{', ' + self.leverage + ' leverages' if self.leverage else ''}), n = {self.n_obs:,}\n")
        s += self.to_frame().to_string(float_format=lambda v: f"{v:.4f}")
        if self.mc_se:
            s += "\n  Monte Carlo s.e. (JLA, {} draws): ".format(self.draws) + ", ".join(
                f"{k} {v:.5f}" for k, v in self.mc_se.items())
        return s


def table(*decompositions: VarianceDecomposition) -> pd.DataFrame:
    """Several decompositions side by side: components as rows, methods as columns."""
    return pd.concat([d.to_frame() for d in decompositions], axis=1)


# ---------------------------------------------------------------------------------------------------------------


def _wvar(a, b=None):
    a = a - a.mean()
    b = a if b is None else b - b.mean()
    return float(np.mean(a * b))


def _row_arrays(result) -> dict:
    """Per-row arrays of an AKM fit, without building a DataFrame: worker and firm codes (``g``, ``j``: 0-based,
    in the order of ``result.worker_effects`` / ``firm_effects``), ``y``, ``alpha``, ``psi``, ``xb``, ``resid``."""
    r = result._rows
    alpha, psi = result._effect("alpha"), result._effect("psi")
    return {"g": r["wcode"], "j": r["fcode"], "y": r["y"], "alpha": alpha, "psi": psi,
            "xb": r["y"] - alpha - psi - r["resid"], "resid": r["resid"]}


def _plugin(a: dict) -> dict:
    yv, al, ps, xb, e = (a[c] for c in ("y", "alpha", "psi", "xb", "resid"))
    return dict(var_y=_wvar(yv), var_alpha=_wvar(al), var_psi=_wvar(ps), cov_alpha_psi=_wvar(al, ps),
                var_xb=_wvar(xb), cov_xb_effects=_wvar(xb, al + ps), var_resid=_wvar(e))


class _Matches:
    """The estimation sample collapsed to worker-firm matches, with the network matrices (person-year weights)."""

    def __init__(self, a: dict):
        from prosperity.akm import _System

        g, j = a["g"], a["j"]
        self.nw, self.nf = int(g.max()) + 1, int(j.max()) + 1
        key = g.astype(np.int64) * self.nf + j
        mkey, minv = np.unique(key, return_inverse=True)
        del key
        self.row_match = minv
        self.mi = (mkey // self.nf).astype(np.int32)
        self.mj = (mkey % self.nf).astype(np.int32)
        self.c = np.bincount(minv).astype(float)  # person-years per match
        self.n = float(len(g))
        ytil = a["y"] - a["xb"]  # outcome net of controls / time effects
        e = a["resid"]
        self.ye = np.bincount(minv, weights=ytil * e)  # sum over the match of y_l e_l
        self.ybar = np.bincount(minv, weights=ytil) / self.c
        self.ebar = np.bincount(minv, weights=e) / self.c
        self.sys = _System(self.mi, self.nw, [self.mj], [self.nf], self.c)
        self.T = self.sys.T
        self.nj = np.bincount(self.mj, weights=self.c, minlength=self.nf)
        self.s = self.nj / self.n
        self.t = self.T / self.n
        self.Mbar = sp.csr_matrix(self.sys.FD.T.multiply(1.0 / self.T[:, None]))  # workers x firms shares
        nfirms = np.bincount(self.mi, minlength=self.nw)
        self.mover_match = nfirms[self.mi] > 1
        nm = len(self.c)
        ones = np.ones(nm)
        # incidence matrices (firms x matches, workers x matches) for multi-column aggregation in C
        self.FtM = sp.csr_matrix((ones, (self.mj, np.arange(nm))), shape=(self.nf, nm))
        self.DtM = sp.csr_matrix((ones, (self.mi, np.arange(nm))), shape=(self.nw, nm))

    def x_rows(self, idx):
        """Sparse rows x_m = e_j - mbar_i for the matches idx."""
        E = sp.csr_matrix((np.ones(len(idx)), (np.arange(len(idx)), self.mj[idx])), shape=(len(idx), self.nf))
        return (E - self.Mbar[self.mi[idx]]).tocsr()


def _exact(mt: _Matches, chunk: int = 4000):
    """Exact P2_m = x'L^+x and B_m for psi, alpha, cov for every match (dense firm-sized inverse, chunks of rows).

    Uses L c = x (c = L^+ x, x in the range of L), so c'Qc = sum_j n_j c_j^2 - x'c with Q = diag(n_j) - L."""
    from scipy.linalg import lapack

    Lg = mt.sys.L[1:, 1:].toarray()
    cf, info = lapack.dpotrf(Lg, lower=0)
    if info != 0:
        raise np.linalg.LinAlgError("the firm Laplacian is not positive definite: is the sample connected?")
    inv, info = lapack.dpotri(cf, lower=0)
    del Lg, cf
    inv = np.triu(inv) + np.triu(inv, 1).T
    Linv = np.zeros((mt.nf, mt.nf))
    Linv[1:, 1:] = inv
    del inv
    idx_all = np.flatnonzero(mt.mover_match)
    nm = len(mt.c)
    P2, Bp, Ba, Bc = np.zeros(nm), np.zeros(nm), np.zeros(nm), np.zeros(nm)
    n = mt.n
    for a in range(0, len(idx_all), chunk):
        idx = idx_all[a:a + chunk]
        Mb = mt.Mbar[mt.mi[idx]]
        C = Linv[mt.mj[idx]] - np.asarray(Mb @ Linv)
        rows = np.repeat(np.arange(len(idx)), np.diff(Mb.indptr))
        u = np.bincount(rows, weights=Mb.data * C[rows, Mb.indices], minlength=len(idx))
        xc = C[np.arange(len(idx)), mt.mj[idx]] - u
        sc = C @ mt.s
        c2n = (C * C) @ mt.nj
        cQc = c2n - xc
        P2[idx] = xc
        Bp[idx] = c2n - n * sc ** 2
        Ti = mt.T[mt.mi[idx]]
        Ba[idx] = 1 / Ti - 2 * u + cQc - (1 - n * sc) ** 2 / n
        Bc[idx] = u - cQc - (1 - n * sc) * sc
    st = ~mt.mover_match
    Ba[st] = 1 / mt.T[mt.mi[st]] - 1 / n
    return P2, Bp / n, Ba / n, Bc / n, None


def _jla(mt: _Matches, draws: int, seed: int, tol: float, batch: int | None, quiet: bool):
    """Johnson-Lindenstrauss approximation (KSS computational appendix) of P2 and B for every mover match.

    Returns P2, B_psi, B_alpha, B_cov (arrays over matches) and the per-draw projections needed for the Monte Carlo
    error, as a function that maps per-match weights to the per-draw corrections."""
    from prosperity.akm import block_pcg

    rng = np.random.default_rng(seed)
    jla_tol = max(tol, _JLA_TOL)  # CG accuracy far below the Monte Carlo error of the projections
    nm = len(mt.c)
    mov = np.flatnonzero(mt.mover_match)
    sq = np.sqrt(mt.c)
    n = mt.n
    P2 = np.zeros(nm)
    Bp, Ba, Bc = np.zeros(nm), np.zeros(nm), np.zeros(nm)
    if batch is None:
        batch = int(max(1, min(50, 2e7 // max(nm, 1))))
    G = min(10, draws)  # draw groups for the Monte Carlo error
    grp = {k: np.zeros((G, len(mov))) for k in ("psi", "alpha", "cov")}
    sys_ = mt.sys
    Ti_m = mt.T[mt.mi[mov]]
    mi_m = mt.mi[mov]
    Xm = mt.x_rows(mov).astype(np.float32)  # rows x_m = e_j - mbar_i of the mover matches
    it_total, worst = 0, 0.0
    rng_batches = range(0, draws, batch)
    if not quiet:
        from tqdm.auto import tqdm
        rng_batches = tqdm(rng_batches, desc="JLA draws")
    for b0 in rng_batches:
        b = min(batch, draws - b0)
        SR = _rademacher(rng, nm, b) * sq[:, None]
        # P: Y'r = F'W M_D (r / sqrt(c))
        FtSR = mt.FtM @ SR
        DtSR = mt.DtM @ SR
        rhsP = FtSR - sys_.FD @ (DtSR / mt.T[:, None])
        tot = SR.sum(axis=0)
        rhsV = FtSR - np.outer(mt.s, tot)
        Ur = DtSR - np.outer(mt.t, tot)
        rhsA = mt.Mbar.T @ Ur
        Xs, it, rel = block_pcg(sys_.matvec, np.hstack([rhsP, rhsV, rhsA]), sys_.precond, tol=jla_tol,
                                maxiter=20000)
        it_total += it
        worst = max(worst, float(rel.max()))
        # projections in single precision: their Monte Carlo error (~sqrt(2/draws)) dwarfs rounding
        Xs = Xs.astype(np.float32)
        Ur = Ur.astype(np.float32)
        v, u, z = Xs[:, :b], Xs[:, b:2 * b], Xs[:, 2 * b:]

        def xdot(A):  # x_m' A for mover matches -> (len(mov), b)
            return Xm @ A

        pv = xdot(v)
        pu = xdot(u)
        pa = Ur[mi_m] / Ti_m[:, None] - xdot(z)
        P2[mov] += np.einsum("ij,ij->i", pv, pv, dtype=np.float64)
        Bp[mov] += np.einsum("ij,ij->i", pu, pu, dtype=np.float64)
        Ba[mov] += np.einsum("ij,ij->i", pa, pa, dtype=np.float64)
        Bc[mov] += np.einsum("ij,ij->i", pa, pu, dtype=np.float64)
        for col in range(b):
            gi = (b0 + col) % G
            grp["psi"][gi] += np.square(pu[:, col], dtype=np.float64)
            grp["alpha"][gi] += np.square(pa[:, col], dtype=np.float64)
            grp["cov"][gi] += pa[:, col].astype(np.float64) * pu[:, col]
    P2 /= draws
    Bp /= draws * n
    Ba /= draws * n
    Bc /= draws * n
    st = ~mt.mover_match
    Ba[st] = (1 / mt.T[mt.mi[st]] - 1 / n) / n
    info = {"cg_iterations": it_total, "cg_rel_residual": worst, "mov": mov,
            "groups": {k: (v_ / (n * np.bincount(np.arange(draws) % G, minlength=G)[:, None])).T
                       for k, v_ in grp.items()}}
    return P2, Bp, Ba, Bc, info


def _rademacher(rng: np.random.Generator, n: int, b: int, dtype=np.float64) -> np.ndarray:
    """An (n, b) matrix of independent +-1 draws (from random bits: one byte gives eight draws)."""
    bits = np.unpackbits(rng.integers(0, 256, size=(n * b + 7) // 8, dtype=np.uint8))[: n * b]
    return (1 - 2 * bits.view(np.int8)).astype(dtype).reshape(n, b)


def _jla_P(mt: _Matches, draws: int, seed: int, tol: float, batch: int | None, quiet: bool):
    """JLA estimate of P2_m = x_m' L^+ x_m for every mover match (one solve per Rademacher draw).

    P2_m = ||Y L^+ x_m||^2 with Y = diag(sqrt(c)) X (rows of mover matches), so with r Rademacher over mover
    matches, (r'Y L^+ x_m)^2 = (x_m' v)^2 with L v = Y'r is unbiased (KSS computational appendix). Everything is
    in single precision and the solves stop at relative residual ``_JLA_TOL`` = 1e-4: the Monte Carlo error of each
    leverage, about sqrt(2 / draws) = 10% with 200 draws, dwarfs both (measured on the 5M-row benchmark panel: the
    leverages move by at most 0.01% relative to double-precision solves to 1e-6)."""
    from prosperity.akm import block_pcg

    rng = np.random.default_rng(seed)
    mov = np.flatnonzero(mt.mover_match)
    Xm = mt.x_rows(mov)
    YT32 = (Xm.T @ sp.diags(np.sqrt(mt.c[mov]))).tocsr().astype(np.float32)  # Y' (firms x mover matches)
    Xm32 = Xm.astype(np.float32)
    del Xm
    L32 = mt.sys.L.astype(np.float32)
    pre32 = mt.sys.precond.astype(np.float32)
    P2 = np.zeros(len(mt.c))
    acc = np.zeros(len(mov))
    if batch is None:
        batch = int(max(1, min(100, 4e7 // max(len(mov), 1))))
    it_total, worst = 0, 0.0
    starts = range(0, draws, batch)
    if not quiet:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc="JLA leverages")
    for b0 in starts:
        b = min(batch, draws - b0)
        rhs = YT32 @ _rademacher(rng, len(mov), b, np.float32)
        V, it, rel = block_pcg(L32.__matmul__, rhs, pre32, tol=max(tol, _JLA_TOL), maxiter=20000)
        it_total += it
        worst = max(worst, float(rel.max()))
        pv = Xm32 @ V
        acc += np.einsum("ij,ij->i", pv, pv, dtype=np.float64)
    P2[mov] = acc / draws
    return P2, {"cg_iterations": it_total, "cg_rel_residual": worst}


def _trace_bias(mt: _Matches, K: np.ndarray, draws, seed: int, tol: float, mc_target: float | None = None,
                max_draws: int = 200):
    """Hutchinson estimate of the bias sum_m K_m B_m of the three plug-in components.

    With Z the match-level design (person-year weights c), sum_m K_m z_m' S^-1 A S^-1 z_m = E[g1' A g2] with
    g1 = S^-1 Z' diag(K) r, g2 = S^-1 Z' r and r Rademacher over matches: two weighted AKM solves per draw give
    the bias of var(alpha), var(psi) and cov(alpha, psi) at once. ``draws`` is a number, or ``"auto"``: batches
    of 10 draws until the Monte Carlo s.e. of every component is at most ``mc_target`` (or ``max_draws``).
    Returns {component: (mean, Monte Carlo s.e.)}, the number of draws and the CG iterations."""
    from prosperity.akm import block_pcg

    rng = np.random.default_rng([seed, 7])
    nm, n = len(mt.c), mt.n
    sys_ = mt.sys
    FDT = sys_.FD.T.tocsr()  # workers x firms, person-years of each match
    auto = draws == "auto"
    total = max_draws if auto else int(draws)
    step = 10 if auto else int(max(1, min(50, 1e7 // max(nm, 1))))
    out = {"psi": [], "alpha": [], "cov": []}
    it_total, done = 0, 0
    res: dict = {}
    while done < total:
        b = min(step, total - done)
        R = _rademacher(rng, nm, b)
        WU = np.hstack([R * K[:, None], R])  # weighted outcomes whose WLS fits are S^-1 Z' diag(K) r, S^-1 Z' r
        del R
        DtWU = mt.DtM @ WU
        rhs = mt.FtM @ WU - sys_.FD @ (DtWU / mt.T[:, None])  # F'W M_D U
        del WU
        Psi, it, _ = block_pcg(sys_.matvec, rhs, sys_.precond, tol=max(tol, 1e-8), maxiter=20000)
        it_total += it
        Alpha = (DtWU - FDT @ Psi) / mt.T[:, None]  # worker means of U - psi_j
        Psi -= (mt.nj @ Psi) / n
        Alpha -= (mt.T @ Alpha) / n
        p1, p2 = Psi[:, :b], Psi[:, b:]
        a1, a2 = Alpha[:, :b], Alpha[:, b:]
        out["psi"].append(np.einsum("j,jk,jk->k", mt.nj, p1, p2) / n)
        out["alpha"].append(np.einsum("i,ik,ik->k", mt.T, a1, a2) / n)
        out["cov"].append(0.5 * (np.einsum("ik,ik->k", a1, FDT @ p2) + np.einsum("ik,ik->k", a2, FDT @ p1)) / n)
        done += b
        res = {}
        for k, v in out.items():
            v = np.concatenate(v)
            res[k] = (float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan"))
        if auto and mc_target is not None and all(se <= mc_target for _, se in res.values()):
            break
    return res, done, it_total


def leverages(result, leave_out: str = "obs", leverage: str = "exact", draws: int = 200, seed: int = 0,
              tol: float = 1e-8) -> pd.DataFrame:
    """Per-match statistical leverages and KSS weights ``B`` of an AKM fit, by exact solves or JLA.

    One row per worker-firm match: worker id, firm id, ``n_obs`` (person-years), ``P`` (leverage of one of its
    person-years, ``1/T_i + x'L^+x``), ``B_psi``, ``B_alpha``, ``B_cov`` (the weight of one person-year in the
    bias of the plug-in var(psi), var(alpha), cov(alpha, psi)). Used by :func:`decompose`; exposed for checks.
    """
    nm = result.names
    mt = _Matches(_row_arrays(result))
    if leverage == "exact":
        P2, Bp, Ba, Bc, _ = _exact(mt)
    else:
        P2, Bp, Ba, Bc, _ = _jla(mt, draws, seed, tol, None, True)
    wid = result.worker_effects[nm["worker"]].to_numpy()
    fid = result.firm_effects[nm["firm"]].to_numpy()
    return pd.DataFrame({nm["worker"]: wid[mt.mi], nm["firm"]: fid[mt.mj], "n_obs": mt.c.astype(int),
                         "P": 1 / mt.T[mt.mi] + P2, "B_psi": Bp, "B_alpha": Ba, "B_cov": Bc})


def _bias(mt, K, Bp, Ba, Bc, trace_draws, seed, tol, mc_target):
    """sum_m K_m B_m for the three components: exact weights if given, else the Hutchinson trace estimate.

    Returns the corrections, their Monte Carlo s.e. (empty when exact) and the number of trace draws used."""
    if Bp is not None:
        return {"psi": float(K @ Bp), "alpha": float(K @ Ba), "cov": float(K @ Bc)}, {}, 0
    est, done, _ = _trace_bias(mt, K, trace_draws, seed, tol, mc_target=mc_target)
    corr = {k: v[0] for k, v in est.items()}
    names = {"psi": "var_psi", "alpha": "var_alpha", "cov": "cov_alpha_psi"}
    return corr, {names[k]: v[1] for k, v in est.items()}, done


def decompose(result, method: str = "plugin", leave_out: str | None = None, leverage: str = "auto",
              draws: int = 200, seed: int = 0, exact_max_firms: int = 3000, tol: float = 1e-8,
              batch: int | None = None, quiet: bool = True, trace_draws: int | str = "auto",
              mc_tol: float = 1e-4) -> VarianceDecomposition:
    """Decompose Var(y) of an :class:`prosperity.akm.AKMResult` (plug-in, homoskedastic or KSS leave-out).

    Parameters
    ----------
    result : an AKM fit. For ``"kss"`` it must be fit on the leave-one-out connected set
        (``akm.fit(..., connected="leave_one_out", leave_out=...)``).
    method : ``"plugin"``, ``"homoskedastic"`` (Andrews et al. 2008) or ``"kss"`` (Kline, Saggio and Solvsten 2020).
    leave_out : ``"obs"`` (leave one person-year out) or ``"match"`` (leave the worker-firm match out, robust to
        serial correlation within matches); defaults to the level used to prune the sample, else "obs".
    leverage : ``"exact"`` (sparse/dense firm-sized factorisation), ``"jla"`` (random projection) or ``"auto"``
        (exact up to ``exact_max_firms`` firms).
    draws : JLA Rademacher draws for the leverages ``P_ll`` (200 as LeaveOutTwoWay). ``seed``: their seed.
    trace_draws : with ``leverage="jla"``, Rademacher draws of the Hutchinson estimate of the bias term
        ``sum_l B_ll sigma_l^2`` (two weighted AKM solves per draw give all three components); its Monte Carlo
        standard errors are reported in ``mc_se``. ``"auto"`` (default) draws batches of 10 until every
        component's Monte Carlo s.e. is at most ``mc_tol * var(y)`` (default 1e-4: simulation noise of at most
        0.01 percentage points on each share), up to 200 draws; an integer fixes the number of draws.
        ``details["trace_draws"]`` records how many were used. ``tol``: CG tolerance.

    The plug-in components are exact moments of the fitted effects. The corrected ones subtract
    ``sum_l B_ll sigma_l^2`` (see the module docstring); the corrected ``var_resid`` is the mean of the unbiased
    ``sigma_l^2`` (KSS) or ``SSR/(n - k)`` (homoskedastic), so their parts add up to var(y) only approximately.
    """
    import time as _t

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    t0 = _t.perf_counter()
    rows = _row_arrays(result)
    pi = _plugin(rows)
    n = len(rows["y"])
    if method == "plugin":
        return VarianceDecomposition(method="plugin", n_obs=n, **pi)
    if method == "kss" and result.connected != "leave_one_out":
        raise ValueError("the KSS correction needs every leverage below 1: fit on the leave-one-out connected set, "
                         "akm.fit(..., connected='leave_one_out', leave_out='obs' or 'match')")
    lo = leave_out or result.leave_out or "obs"
    if lo not in ("obs", "match"):
        raise ValueError(f"leave_out must be 'obs' or 'match', got {lo!r}")
    cache = getattr(result, "_cache", None)
    cache = cache if isinstance(cache, dict) else {}
    if "matches" not in cache:
        cache["matches"] = _Matches(rows)
    del rows
    mt = cache["matches"]
    if leverage == "auto":
        leverage = "exact" if mt.nf <= exact_max_firms else "jla"
    if leverage not in ("exact", "jla"):
        raise ValueError(f"leverage must be 'exact', 'jla' or 'auto', got {leverage!r}")
    key = ("exact",) if leverage == "exact" else ("jla", draws, seed, tol)
    if key not in cache:  # leverages depend on the design only: computed once per fit and reused
        cache[key] = _exact(mt) if leverage == "exact" else _jla_P(mt, draws, seed, tol, batch, quiet)
    if leverage == "exact":
        P2, Bp, Ba, Bc, info = cache[key]
    else:
        (P2, info), Bp, Ba, Bc = cache[key], None, None, None
    P_row = 1.0 / mt.T[mt.mi] + P2  # leverage of a single person-year of match m
    details = {"matches": int(len(mt.c)), "mover_matches": int(mt.mover_match.sum()), "leverage": leverage}
    if method == "homoskedastic":
        k = result.n_params
        sigma2 = float(np.square(result._rows["resid"]).sum() / (n - k))
        w = sigma2 * mt.c  # sum over person-years of B_l sigma^2
        var_resid = sigma2
        corr, mc, n_trace = _bias(mt, w, Bp, Ba, Bc, trace_draws, seed, tol, mc_tol * pi["var_y"])
    else:
        sigma2 = None
        # leave-obs-out: each observation's own leverage; leave-match-out: the leverage of the collapsed,
        # length-weighted match row
        P = P_row if lo == "obs" else mt.c * P_row
        bad = P >= 1 - 1e-10
        if leverage == "jla":
            clip = P > 0.99
            details["clipped_leverages"] = int(clip.sum())
            P = np.minimum(P, 0.99)
            bad = np.zeros_like(bad)
        denom = 1 - np.where(bad, 0.5, P)
        if lo == "obs":
            K = mt.ye / denom  # sum over the match of y_l e_l / (1 - P_l)
        else:
            K = mt.c ** 2 * mt.ybar * mt.ebar / denom
        if bad.any():
            raise ValueError(f"{int(bad.sum())} match(es) have leverage 1 under leave-{lo}-out: fit with "
                             f"connected='leave_one_out', leave_out='{lo}'")
        corr, mc, n_trace = _bias(mt, K, Bp, Ba, Bc, trace_draws, seed, tol, mc_tol * pi["var_y"])
        # residual variance: mean over person-years of the unbiased sigma_l^2 (person-year leave-out)
        var_resid = float((mt.ye / (1 - np.minimum(P_row, 0.99 if leverage == "jla" else 1 - 1e-12))).sum() / n)
    if info is not None:
        details.update(cg_iterations=info["cg_iterations"], cg_rel_residual=info["cg_rel_residual"],
                       trace_draws=n_trace)
    details["seconds"] = _t.perf_counter() - t0
    return VarianceDecomposition(
        method=method, var_y=pi["var_y"], var_alpha=pi["var_alpha"] - corr["alpha"],
        var_psi=pi["var_psi"] - corr["psi"], cov_alpha_psi=pi["cov_alpha_psi"] - corr["cov"],
        var_xb=pi["var_xb"], cov_xb_effects=pi["cov_xb_effects"], var_resid=var_resid, n_obs=n,
        leave_out=lo if method == "kss" else None, leverage=leverage,
        draws=draws if leverage == "jla" else None, mc_se=mc, sigma2=sigma2, details=details)

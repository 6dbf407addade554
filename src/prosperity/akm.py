"""Worker and firm effects: the AKM two-way fixed-effect model and a general multi-way fixed-effect solver.

The model of Abowd, Kramarz and Margolis (1999, *Econometrica* 67(2):251-333) is

    y_it = x_it' b + alpha_i + psi_J(i,t) + e_it,

with a worker effect ``alpha_i`` and an effect ``psi_j`` of the employer ``J(i,t)``. Firm effects are identified
only from workers who move between firms, and only within a connected set of the worker-firm graph
(:mod:`prosperity.network`).

Two public entry points:

- :func:`fit_fixed_effects`: least squares with any number of sets of fixed effects (e.g. worker, firm and
  district, or worker, firm and year) and a few numeric controls, on millions of rows. It returns every set of
  estimated effects keyed by the original ids, residuals and fitted values, the normalisation used and solver
  diagnostics. No connected-set restriction is applied: that is the caller's choice.
- :func:`fit`: the AKM model on a worker-year panel. It restricts the sample to the largest connected set (or the
  leave-one-out connected set), records what it dropped, fits, normalises, and returns an :class:`AKMResult`
  whose :meth:`AKMResult.decompose` gives the plug-in, homoskedastic (Andrews et al. 2008) and leave-out
  (Kline, Saggio and Solvsten 2020) variance decompositions of :mod:`prosperity.variance`.

The ``"sparse"`` algorithm (the default)
-----------------------------------------
Write the model as ``y = D alpha + F psi + X b + e`` with ``D`` the first set of effects (workers: the largest)
and ``F = [F_1 ... F_K]`` the dummies of the other sets. Partialling ``D`` out (within-worker demeaning,
``M_D``), the other effects solve the normal equations

    L psi = F' M_D v,        L = F' M_D F = F'F - (F'D) diag(1/T) (D'F),

where ``T`` are the numbers of rows per worker. ``L`` is a small sparse matrix (firms x firms for AKM: a weighted
graph Laplacian of the mobility network) formed once from integer codes; it is solved with Jacobi-preconditioned
conjugate gradients for the outcome and every control at once (block CG). The worker effects follow as
``alpha = mean_i(v - F psi)``. Controls are handled by Frisch-Waugh-Lovell. Ids are factorised to int32 codes;
no pandas object is touched inside the solver loop.
"""

from __future__ import annotations

import time as _time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "fit_fixed_effects",
    "MultiwayResult",
    "fit",
    "AKMResult",
    "event_study",
    "event_study_symmetry",
    "residual_grid",
]


# ---------------------------------------------------------------------------------------------------------------
# validation helpers


def _check_columns(data: pd.DataFrame, cols: Sequence[str], table: str = "data") -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{table} must be a pandas DataFrame, got {type(data).__name__}")
    missing = [c for c in cols if c not in data.columns]
    if missing:
        raise KeyError(f"{table} has no column(s) {missing}; available: {list(data.columns)[:20]}")
    dup = [c for c in set(cols) if list(cols).count(c) > 1]
    if dup:
        raise ValueError(f"column(s) {dup} given more than once")


def _check_missing(data: pd.DataFrame, cols: Sequence[str], id_col: str | None, table: str = "data") -> None:
    """Raise a clear error if any of ``cols`` has missing (or infinite, for numbers) values."""
    for c in cols:
        s = data[c]
        bad = s.isna().to_numpy()
        if pd.api.types.is_float_dtype(s):  # integers cannot be infinite: no float copy of id columns
            with np.errstate(invalid="ignore"):
                bad |= ~np.isfinite(s.to_numpy(dtype=float, na_value=np.nan))
        if bad.any():
            idx = np.flatnonzero(bad)[:5]
            where = (
                f"{id_col} = {data[id_col].iloc[idx].tolist()}" if id_col is not None and id_col != c
                else f"row positions {idx.tolist()}"
            )
            raise ValueError(
                f"{table}.{c} has {int(bad.sum())} missing or non-finite value(s) (e.g. {where}); "
                "drop or impute them explicitly before fitting (no row is dropped silently)"
            )


def _codes(s: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Factorise ids to int32 codes 0..G-1 (sorted order) and the original ids."""
    codes, uniques = pd.factorize(s, sort=True)
    return codes.astype(np.int32, copy=False), pd.Index(uniques, name=s.name)


# ---------------------------------------------------------------------------------------------------------------
# the sparse machinery


def block_pcg(matvec, B: np.ndarray, precond: np.ndarray, tol: float = 1e-10, maxiter: int = 5000,
              x0: np.ndarray | None = None):
    """Jacobi-preconditioned conjugate gradients for several right-hand sides at once.

    Solves ``A X = B`` column by column (each column has its own step sizes) for a symmetric positive
    semi-definite ``A`` given by ``matvec`` (which maps an ``(m, r)`` array to ``(m, r)``). ``B`` must lie in the
    range of ``A`` (true for the fixed-effect normal equations). Iterates until every column has relative residual
    ``||b - A x|| / ||b|| <= tol``. A single-precision ``B`` (with a ``matvec`` that keeps single precision) is
    solved in single precision, with the inner products accumulated in double: about four times faster for the
    random-projection solves of :mod:`prosperity.variance`, whose tolerance (1e-4) is far above float32 rounding.

    Returns ``X``, the number of iterations, and the final relative residual of each column.
    """
    dt = np.float32 if np.asarray(B).dtype == np.float32 else np.float64
    B = np.asarray(B, dtype=dt)
    squeeze = B.ndim == 1
    if squeeze:
        B = B[:, None]
    m, r = B.shape
    X = np.zeros((m, r), dtype=dt) if x0 is None else np.array(x0, dtype=dt).reshape(m, r)
    R = B - matvec(X) if x0 is not None else B.copy()
    pre = np.asarray(precond, dtype=dt)[:, None]

    def colnorm(A):  # column norms accumulated in double precision
        return np.sqrt(np.einsum("ij,ij->j", A, A, dtype=np.float64))

    bnorm = colnorm(B)
    bnorm[bnorm == 0] = 1.0
    rel = colnorm(R) / bnorm
    live = rel > tol  # converged columns are frozen (zero step) rather than sliced out: no copies
    P = pre * R
    rz = np.einsum("ij,ij->j", R, P, dtype=np.float64)
    it = 0
    while live.any() and it < maxiter:
        it += 1
        AP = matvec(P)
        pap = np.einsum("ij,ij->j", P, AP, dtype=np.float64)
        a = np.where(live & (pap != 0), rz / np.where(pap == 0, 1.0, pap), 0.0).astype(dt)
        X += a * P
        R -= a * AP
        rel = colnorm(R) / bnorm
        live &= rel > tol
        Z = pre * R
        rz_new = np.einsum("ij,ij->j", R, Z, dtype=np.float64)
        beta = np.where(live & (rz != 0), rz_new / np.where(rz == 0, 1.0, rz), 0.0).astype(dt)
        Z += beta * P
        P = Z
        rz = rz_new
    out = X[:, 0] if squeeze else X
    return out, it, rel


class _System:
    """Integer-coded design of a multi-way fixed-effect model with the first set of effects partialled out.

    ``g0`` (length n, int32) codes the first ("absorbed") effect with ``n0`` levels; ``gs`` the other effects with
    sizes ``ms``. Optional row weights ``w`` (weighted least squares; ``None`` = 1). Builds ``L = F'W M_D F`` once.
    """

    def __init__(self, g0: np.ndarray, n0: int, gs: Sequence[np.ndarray], ms: Sequence[int],
                 w: np.ndarray | None = None):
        self.g0, self.n0 = g0, int(n0)
        self.gs, self.ms = list(gs), [int(m) for m in ms]
        self.w = w
        self.n = g0.shape[0]
        self.offsets = np.concatenate([[0], np.cumsum(self.ms)]).astype(np.int64)
        self.M = int(self.offsets[-1])
        wts = np.ones(self.n) if w is None else w
        self.T = np.bincount(g0, weights=wts, minlength=self.n0)  # rows (weights) per absorbed level
        if (self.T <= 0).any():
            raise ValueError("every level of the first effect needs positive total weight")
        blocks_ff = [[None] * len(self.gs) for _ in self.gs]
        blocks_fd = []
        for a, (ga, ma) in enumerate(zip(self.gs, self.ms)):
            C = sp.csr_matrix((wts, (ga, g0)), shape=(ma, self.n0))
            C.sum_duplicates()
            blocks_fd.append(C)
            blocks_ff[a][a] = sp.diags(np.bincount(ga, weights=wts, minlength=ma))
            for b in range(a + 1, len(self.gs)):
                Cab = sp.csr_matrix((wts, (ga, self.gs[b])), shape=(ma, self.ms[b]))
                Cab.sum_duplicates()
                blocks_ff[a][b] = Cab
                blocks_ff[b][a] = Cab.T
        self.FD = sp.vstack(blocks_fd, format="csr") if len(blocks_fd) > 1 else blocks_fd[0]  # M x n0
        FF = sp.bmat(blocks_ff, format="csr") if len(self.gs) > 1 else blocks_ff[0][0].tocsr()
        FDs = self.FD.multiply(1.0 / self.T[None, :]).tocsr()
        self.L = (FF - FDs @ self.FD.T).tocsr()
        self.L.sum_duplicates()
        self.L.eliminate_zeros()
        d = self.L.diagonal()
        self.unidentified = d <= 1e-12 * max(1.0, float(d.max(initial=0.0)))
        self.precond = np.where(self.unidentified, 0.0, 1.0 / np.where(self.unidentified, 1.0, d))
        self.iterations = 0
        self.rel_residual = 0.0

    # projections -------------------------------------------------------------------------------------------
    def Ft(self, V: np.ndarray) -> np.ndarray:
        """F' V for an (n, r) array."""
        out = np.empty((self.M, V.shape[1]))
        for k, (g, m) in enumerate(zip(self.gs, self.ms)):
            o = self.offsets[k]
            for c in range(V.shape[1]):
                out[o:o + m, c] = np.bincount(g, weights=V[:, c], minlength=m)
        return out

    def Dt(self, V: np.ndarray) -> np.ndarray:
        out = np.empty((self.n0, V.shape[1]))
        for c in range(V.shape[1]):
            out[:, c] = np.bincount(self.g0, weights=V[:, c], minlength=self.n0)
        return out

    def F(self, psi: np.ndarray) -> np.ndarray:
        """F psi for an (M, r) array -> (n, r)."""
        out = np.zeros((self.n, psi.shape[1]))
        for k, g in enumerate(self.gs):
            out += psi[self.offsets[k] + g]
        return out

    def rhs(self, V: np.ndarray) -> np.ndarray:
        """F' W M_D V (V given on rows, weights applied here)."""
        WV = V if self.w is None else V * self.w[:, None]
        return self.Ft(WV) - self.FD @ (self.Dt(WV) / self.T[:, None])

    def matvec(self, X: np.ndarray) -> np.ndarray:
        return self.L @ X

    def solve(self, Bm: np.ndarray, tol: float = 1e-10, maxiter: int = 10000):
        X, it, rel = block_pcg(self.matvec, Bm, self.precond, tol=tol, maxiter=maxiter)
        self.iterations += it
        self.rel_residual = max(self.rel_residual, float(np.max(rel, initial=0.0)))
        return X, it, rel

    def absorbed(self, V: np.ndarray, psi: np.ndarray) -> np.ndarray:
        """First-effect estimates given the others: weighted mean of V - F psi by level of g0."""
        E = V - self.F(psi)
        if self.w is not None:
            E = E * self.w[:, None]
        return self.Dt(E) / self.T[:, None]


def _solve_effects(sys_: _System, y: np.ndarray, X: np.ndarray | None, tol: float, maxiter: int):
    """Frisch-Waugh-Lovell: solve the fixed effects for y and every control, then the slope coefficients.

    Returns (beta, alpha, psi, resid, iterations, max relative residual)."""
    V = y[:, None] if X is None else np.column_stack([y, X])
    Bm = sys_.rhs(V)
    Psi, it, rel = sys_.solve(Bm, tol=tol, maxiter=maxiter)
    A = sys_.absorbed(V, Psi)
    E = V - A[sys_.g0] - sys_.F(Psi)
    if X is None:
        beta = np.zeros(0)
    else:
        Ex = E[:, 1:]
        if sys_.w is not None:
            sw = np.sqrt(sys_.w)[:, None]
            Ex_w, ey_w = Ex * sw, E[:, :1] * sw
        else:
            Ex_w, ey_w = Ex, E[:, :1]
        norms = np.linalg.norm(Ex_w, axis=0)
        raw = np.linalg.norm(X - X.mean(axis=0), axis=0)
        collinear = norms <= 1e-8 * np.maximum(raw, 1e-300)
        if collinear.any():
            raise ValueError(f"control column(s) at positions {np.flatnonzero(collinear).tolist()} are collinear "
                             "with the fixed effects (nothing left after partialling them out)")
        beta = np.linalg.lstsq(Ex_w, ey_w[:, 0], rcond=None)[0]
    coef = np.concatenate([[1.0], -beta])
    psi = Psi @ coef
    alpha = A @ coef
    resid = E @ coef
    return beta, alpha, psi, resid, it, float(np.max(rel))


# ---------------------------------------------------------------------------------------------------------------
# the generic multi-way solver


@dataclass(frozen=True)
class MultiwayResult:
    """Least squares with several sets of fixed effects (see :func:`fit_fixed_effects`).

    Attributes
    ----------
    y : name of the outcome.
    effect_names : the fixed-effect columns, in the order given (the first was partialled out).
    effects : dict mapping each effect column to a DataFrame with columns ``[<column>, "effect", "n_obs"]``:
        the original id, its estimated effect and its number of rows, sorted by id.
    coef : slope coefficients of the controls (a Series, empty without controls).
    fitted, resid : arrays of length n_obs, in the row order of the input.
    normalisation : how the effects were pinned down (a sentence).
    diagnostics : solver diagnostics: ``iterations`` (CG iterations), ``rel_residual`` (largest final relative
        residual of the normal equations), ``converged``, ``n_unidentified`` (levels of the other effects
        that appear only with a single-row level of the first effect, whose value is set to 0), ``seconds``.
    n_obs, r2, rmse : fit statistics (R^2 of the full model, root mean squared residual).
    """

    y: str
    effect_names: tuple
    effects: dict
    coef: pd.Series
    fitted: np.ndarray = field(repr=False)
    resid: np.ndarray = field(repr=False)
    normalisation: str
    diagnostics: dict
    n_obs: int
    r2: float
    rmse: float

    def summary(self) -> str:
        lines = [f"Multi-way fixed effects: {self.y} ~ "
                 + (" + ".join(self.coef.index) + " | " if len(self.coef) else "")
                 + " + ".join(self.effect_names),
                 f"  observations {self.n_obs:,}; R^2 {self.r2:.4f}; RMSE {self.rmse:.4f}"]
        for name in self.effect_names:
            e = self.effects[name]["effect"]
            lines.append(f"  {name}: {len(e):,} levels, sd of effects {e.std(ddof=0):.4f}")
        d = self.diagnostics
        return _summary_text(lines, self.coef, f"{d['iterations']} CG iterations, relative residual "
                             f"{d['rel_residual']:.1e}, converged {d['converged']}, {d['seconds']:.2f} s",
                             self.normalisation)

    def to_frame(self) -> pd.DataFrame:
        """All effects stacked: columns ``effect_set, id, effect, n_obs``."""
        parts = []
        for name in self.effect_names:
            e = self.effects[name].rename(columns={name: "id"})
            e.insert(0, "effect_set", name)
            parts.append(e)
        return pd.concat(parts, ignore_index=True)


def _summary_text(lines: list, coef: pd.Series, solver: str, normalisation: str) -> str:
    """The common tail of the result summaries: slope coefficients, solver diagnostics, normalisation."""
    lines = lines + [f"  {k}: {v:.6f}" for k, v in coef.items()]
    lines += [f"  solver: {solver}", f"  normalisation: {normalisation}"]
    return "\n".join(lines)


def fit_fixed_effects(data: pd.DataFrame, y: str, effects: Sequence[str], controls: Sequence[str] = (),
                      weights: str | None = None, tol: float = 1e-10, maxiter: int = 10000,
                      quiet: bool = True) -> MultiwayResult:
    """Least squares of ``y`` on any number of sets of fixed effects and numeric controls.

    Model: ``y_r = x_r' b + sum_k theta^k_{g_k(r)} + e_r`` for rows ``r``, with one effect per level of each column
    in ``effects`` (e.g. ``["piden", "entref", "lad"]`` for worker, firm and district effects, or
    ``["piden", "entref", "year"]``).

    Algorithm: the first set of effects (put the one with most levels first, e.g. workers) is partialled out by
    within-group demeaning; the normal equations of the remaining sets, ``L theta = F' M_D v`` with
    ``L = F' M_D F``, are formed once as a sparse matrix and solved by Jacobi-preconditioned conjugate gradients for
    the outcome and all controls together; controls enter by Frisch-Waugh-Lovell. Memory is a few arrays of length
    ``n`` plus ``L`` (its size is the number of distinct pairs of levels that share a worker), so tens of millions
    of rows fit easily. Same estimator as ``pyfixest.feols("y ~ x | a + b + c")`` (Correia 2016; Gaure 2013),
    computed by the route of Abowd, Creecy and Kramarz (2002).

    Normalisation. Effects are identified only up to constants (one per set and per connected component of the
    graph linking the sets). Reported effects satisfy: every set after the first has **row-weighted mean zero**
    over the estimation sample, and the first set absorbs the overall level, so
    ``fitted = x'b + sum_k theta^k``, exactly. When the data do not separate two sets (e.g. a firm observed in a
    single district cannot have its firm and district effects told apart; several disconnected components), the
    split between them is not identified: CG started from zero returns one particular solution; fitted values,
    residuals and ``b`` are still unique, but compare effect levels only within an identified (connected) set.
    :func:`prosperity.network.connected_set` restricts a worker-firm sample to its largest connected set.

    Parameters
    ----------
    data : DataFrame with the outcome, the effect columns and the controls; no missing values allowed in them (a
        clear error names the column and a few offending rows).
    y : outcome column (numeric).
    effects : two or more columns whose levels get a fixed effect; the first is partialled out (most levels).
        A single column is allowed (then it is the group-mean regression).
    controls : numeric control columns (slope coefficients). Categorical controls: add them to ``effects``.
    weights : optional column of positive row weights (weighted least squares).
    tol : relative residual of the normal equations at which CG stops (1e-10: effects accurate to about 1e-8).
    maxiter : CG iteration cap; ``diagnostics["converged"]`` says whether ``tol`` was reached.
    quiet : unused switch kept for the package convention (the solver shows no progress bar).

    Returns
    -------
    MultiwayResult with ``effects[col]`` (DataFrame ``[col, "effect", "n_obs"]`` keyed by the original ids),
    ``coef``, ``fitted``, ``resid``, ``normalisation``, ``diagnostics`` (iterations, rel_residual, converged,
    n_unidentified, seconds), ``r2``, ``rmse``.

    Example
    -------
    >>> res = fit_fixed_effects(panel, "lhw", effects=["piden", "entref", "lad"], controls=["age2"])  # doctest: +SKIP
    >>> res.effects["lad"].head()  # doctest: +SKIP
    """
    t0 = _time.perf_counter()
    effects = list(effects)
    controls = list(controls)
    if len(effects) < 1:
        raise ValueError("effects must name at least one column")
    cols = [y] + effects + controls + ([weights] if weights else [])
    _check_columns(data, cols)
    _check_missing(data, cols, id_col=effects[0])
    for c in [y] + controls + ([weights] if weights else []):
        if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c]):
            raise TypeError(f"data.{c} must be numeric (got {data[c].dtype}); put categorical variables in effects")
    if len(data) == 0:
        raise ValueError("data has no rows")
    w = None
    if weights:
        w = data[weights].to_numpy(dtype=float)
        if (w <= 0).any():
            bad = np.flatnonzero(w <= 0)[:5]
            raise ValueError(f"data.{weights} must be positive; rows {bad.tolist()} are not")
    yv = data[y].to_numpy(dtype=float)
    Xv = data[controls].to_numpy(dtype=float) if controls else None
    coded = [_codes(data[c]) for c in effects]
    g0, ids0 = coded[0]
    gs = [c for c, _ in coded[1:]]
    ms = [len(u) for _, u in coded[1:]]
    if not gs:  # one set of effects: group means
        gs_dummy = [np.zeros(len(yv), dtype=np.int32)]
        sys_ = _System(g0, len(ids0), gs_dummy, [1], w)
    else:
        sys_ = _System(g0, len(ids0), gs, ms, w)
    beta, alpha, psi, resid, it, rel = _solve_effects(sys_, yv, Xv, tol, maxiter)
    if not gs:
        psi = np.zeros(1)
    wts = np.ones(len(yv)) if w is None else w
    W = wts.sum()
    # normalisation: each later set has row-weighted mean zero; the first absorbs the level
    psi = psi.copy()
    for k, g in enumerate(gs):
        o, m = sys_.offsets[k], ms[k]
        mean_k = float(np.dot(wts, psi[o + g])) / W
        psi[o:o + m] -= mean_k
        alpha = alpha + mean_k
    xb = Xv @ beta if Xv is not None else 0.0
    fitted = yv - resid
    out = {}
    out[effects[0]] = pd.DataFrame({effects[0]: ids0, "effect": alpha,
                                    "n_obs": np.bincount(g0, minlength=len(ids0))})
    for k, (g, (_, ids)) in enumerate(zip(gs, coded[1:])):
        o, m = sys_.offsets[k], ms[k]
        out[effects[k + 1]] = pd.DataFrame({effects[k + 1]: ids, "effect": psi[o:o + m],
                                            "n_obs": np.bincount(g, minlength=m)})
    ybar = np.dot(wts, yv) / W
    tss = float(np.dot(wts, (yv - ybar) ** 2))
    rss = float(np.dot(wts, resid ** 2))
    norm = ("sets after the first ({}) have row-weighted mean zero; the first ({}) absorbs the level"
            .format(", ".join(effects[1:]) or "none", effects[0]))
    diag = {"iterations": int(it), "rel_residual": rel, "converged": bool(rel <= tol * 10),
            "n_unidentified": int(sys_.unidentified.sum()) if gs else 0,
            "seconds": _time.perf_counter() - t0}
    del xb
    return MultiwayResult(y=y, effect_names=tuple(effects), effects=out,
                          coef=pd.Series(beta, index=controls, dtype=float), fitted=fitted, resid=resid,
                          normalisation=norm, diagnostics=diag, n_obs=len(yv),
                          r2=1.0 - rss / tss if tss > 0 else float("nan"), rmse=float(np.sqrt(rss / W)))


# ---------------------------------------------------------------------------------------------------------------
# AKM


@dataclass(frozen=True)
class AKMResult:
    """An estimated AKM model (see :func:`fit`).

    Attributes
    ----------
    worker_effects : DataFrame ``[<worker>, "alpha", "n_obs"]`` keyed by the original worker ids.
    firm_effects : DataFrame ``[<firm>, "psi", "n_obs"]`` keyed by the original firm ids.
    time_effects : DataFrame ``[<time>, "effect", "n_obs"]`` or None.
    coef : slope coefficients of the controls (Series).
    sample : network summary (DataFrame: rows, workers, firms, movers, components, movers per firm) of the input
        and of the estimation sample.
    ledger : what each sample restriction removed (``step, rows_in, rows_out, dropped, ..., reason``).
    connected : "largest" or "leave_one_out"; ``leave_out``: None, "obs" or "match" (the pruning used).
    normalisation : the normalisation of the effects (a sentence).
    diagnostics : solver diagnostics (backend, iterations, relative residual, converged, seconds).
    n_obs, r2, rmse : fit statistics on the estimation sample; ``n_params`` the number of free parameters.
    names : dict with the column names used (``y, worker, firm, time, controls``).
    """

    worker_effects: pd.DataFrame = field(repr=False)
    firm_effects: pd.DataFrame = field(repr=False)
    time_effects: pd.DataFrame | None = field(repr=False)
    coef: pd.Series
    sample: pd.DataFrame = field(repr=False)
    ledger: pd.DataFrame = field(repr=False)
    connected: str
    leave_out: str | None
    normalisation: str
    diagnostics: dict
    n_obs: int
    n_params: int
    r2: float
    rmse: float
    names: dict
    backend: str
    _rows: dict = field(repr=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def _effect(self, which: str) -> np.ndarray:
        """alpha or psi on the estimation sample's rows (gathered from the per-id effects by integer code)."""
        if which == "alpha":
            return self.worker_effects["alpha"].to_numpy()[self._rows["wcode"]]
        return self.firm_effects["psi"].to_numpy()[self._rows["fcode"]]

    def to_frame(self) -> pd.DataFrame:
        """The estimation sample, one row per observation: ids, ``y``, ``alpha``, ``psi``, ``xb`` (controls and
        time effects), ``resid`` (so ``y = alpha + psi + xb + resid`` exactly).

        Built on demand from integer codes, the outcome and the residuals, which is all the result keeps per row
        (so that a fit on hundreds of millions of rows does not hold seven copies of them)."""
        r, nm = self._rows, self.names
        alpha, psi = self._effect("alpha"), self._effect("psi")
        frame = pd.DataFrame({nm["worker"]: self.worker_effects[nm["worker"]].to_numpy()[r["wcode"]],
                              nm["firm"]: self.firm_effects[nm["firm"]].to_numpy()[r["fcode"]]}, index=r["index"])
        if nm["time"]:
            frame[nm["time"]] = r["time"]
        frame[nm["y"]] = r["y"]
        frame["alpha"], frame["psi"] = alpha, psi
        frame["xb"] = r["y"] - alpha - psi - r["resid"]
        frame["resid"] = r["resid"]
        return frame

    def summary(self) -> str:
        n = self.names
        s = self.sample["kept"]
        lines = [
            f"AKM: {n['y']} ~ alpha[{n['worker']}] + psi[{n['firm']}]"
            + (f" + year[{n['time']}]" if n["time"] else "")
            + (" + " + " + ".join(n["controls"]) if n["controls"] else "") + f"   (backend: {self.backend})",
            f"  sample: {self.connected} connected set" + (f" (leave-{self.leave_out}-out)" if self.leave_out else "")
            + f"; {int(s['rows']):,} rows, {int(s['workers']):,} workers, {int(s['firms']):,} firms, "
            f"{int(s['movers']):,} movers ({s['movers_per_firm']:.1f} per firm)",
            f"  dropped: {int(self.ledger['dropped'].sum()):,} rows in {len(self.ledger)} step(s)",
            f"  R^2 {self.r2:.4f}; RMSE {self.rmse:.4f}; sd(alpha) {self._effect('alpha').std():.4f}; "
            f"sd(psi) {self._effect('psi').std():.4f} (person-year weighted)",
        ]
        d = self.diagnostics
        return _summary_text(lines, self.coef, f"{d.get('iterations')} iterations, relative residual "
                             f"{d.get('rel_residual', float('nan')):.1e}, {d.get('seconds', float('nan')):.2f} s",
                             self.normalisation)

    def decompose(self, method: str = "plugin", **options):
        """Variance decomposition of ``y`` into worker effects, firm effects, sorting, controls and residual.

        ``method``: ``"plugin"``, ``"homoskedastic"`` (Andrews et al. 2008) or ``"kss"`` (Kline, Saggio and
        Solvsten 2020). Options are passed to :func:`prosperity.variance.decompose`.
        """
        from prosperity import variance

        return variance.decompose(self, method=method, **options)


_NORMALISATION = ("firm effects have person-year-weighted mean zero in the estimation sample "
                  "(sum_j n_j psi_j = 0); time effects, if any, likewise; worker effects absorb the level")


def fit(data: pd.DataFrame, y: str, worker: str, firm: str, time: str | None = None, controls: Sequence[str] = (),
        backend: str = "sparse", connected: str = "largest", leave_out: str = "obs", tol: float = 1e-10,
        maxiter: int = 10000) -> AKMResult:
    """Fit the AKM model ``y_it = alpha_i + psi_J(i,t) + [year_t] + x_it'b + e_it`` on a worker-period panel.

    Abowd, Kramarz and Margolis (1999, *Econometrica* 67(2):251-333); estimation on the largest connected set as in
    Abowd, Creecy and Kramarz (2002) and Card, Heining and Kline (2013, *QJE* 128(3):967-1015).

    Steps: validate the columns (a missing value raises an error naming the column and ids); restrict to the largest
    connected set of the worker-firm graph, or with ``connected="leave_one_out"`` to the leave-one-out connected set
    of Kline, Saggio and Solvsten (2020) needed by the KSS correction (:func:`prosperity.network.connected_set`,
    ``leave_out="obs"`` or ``"match"``), recording every dropped row in ``ledger``; fit by least squares; normalise.

    Backends (same estimator, same sample; they agree to about 1e-8):

    - ``"sparse"`` (default): workers partialled out, the firm-sized normal equations solved by block
      Jacobi-preconditioned conjugate gradients (:func:`fit_fixed_effects`). Fast and lean: int32 codes, no pandas
      in the loop; suitable for hundreds of millions of rows.
    - ``"pyfixest"``: the transparent teaching path, ``pf.feols("y ~ x | worker + firm", demeaner=pf.LsmrDemeaner())``
      (the same regression a reader would type). The effects are then split out of pyfixest's fitted
      fixed-effect component ``y - x'b - e`` by one exact sparse solve, because ``fit.fixef()`` is slow and, at its
      default tolerance, inaccurate on large samples (some firm effects off by tenths of a log point; see the
      toolchain notes). Memory-hungry beyond a few million rows.

    Normalisation: firm effects have person-year-weighted mean zero in the estimation sample; time effects too;
    the worker effects absorb the overall level (so ``y = alpha + psi + xb + resid``). Variances and covariances
    do not depend on this choice; levels do.

    Returns an :class:`AKMResult`.
    """
    controls = list(controls)
    if backend not in ("sparse", "pyfixest"):
        raise ValueError(f"backend must be 'sparse' or 'pyfixest', got {backend!r}")
    if connected not in ("largest", "leave_one_out"):
        raise ValueError(f"connected must be 'largest' or 'leave_one_out', got {connected!r}")
    from prosperity import network

    cols = [y, worker, firm] + ([time] if time else []) + controls
    _check_columns(data, cols)
    _check_missing(data, cols, id_col=worker)
    for c in [y] + controls:
        if not pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c]):
            raise TypeError(f"data.{c} must be numeric (got {data[c].dtype})")
    t0 = _time.perf_counter()
    # ids to int32 codes once; the network works on the codes (a two-column int32 frame), so no copy of the
    # caller's columns is made unless rows are dropped
    wc, wid = _codes(data[worker])
    fc, fid = _codes(data[firm])
    cs = network.connected_set(pd.DataFrame({worker: wc, firm: fc}, copy=False), worker, firm,
                               leave_out=leave_out if connected == "leave_one_out" else None)
    t_net = _time.perf_counter() - t0
    pos = None if len(cs.data) == len(data) else cs.data.index.to_numpy()
    ledger, summary, lo = cs.ledger, cs.summary, cs.leave_out
    del cs  # the ledger and summary are what is kept of the network step

    def take(a):
        return a if pos is None else a[pos]

    wc, wid = _recode(take(wc), wid)
    fc, fid = _recode(take(fc), fid)
    yv = take(data[y].to_numpy(dtype=float))
    index = data.index if pos is None else data.index[pos]
    tcode = tid = None
    if time:
        tcode, tid = _codes(data[time])
        tcode, tid = _recode(take(tcode), tid)
    if backend == "sparse":
        t1 = _time.perf_counter()
        Xv = take(data[controls].to_numpy(dtype=float)) if controls else None
        gs, ms = [fc] + ([tcode] if time else []), [len(fid)] + ([len(tid)] if time else [])
        sys_ = _System(wc, len(wid), gs, ms)
        beta, alpha, theta, resid, it, rel = _solve_effects(sys_, yv, Xv, tol, maxiter)
        del Xv
        psi = theta[:len(fid)]
        # normalisation: firm (and time) effects with person-year-weighted mean zero; workers absorb the level
        nf_rows = np.bincount(fc, minlength=len(fid))
        shift = float(nf_rows @ psi) / len(yv)
        psi = psi - shift
        alpha = alpha + shift
        we = pd.DataFrame({worker: wid, "alpha": alpha, "n_obs": np.bincount(wc, minlength=len(wid))})
        fe = pd.DataFrame({firm: fid, "psi": psi, "n_obs": nf_rows})
        te = None
        if time:
            tau = theta[len(fid):]
            nt_rows = np.bincount(tcode, minlength=len(tid))
            tshift = float(nt_rows @ tau) / len(yv)
            we["alpha"] += tshift
            te = pd.DataFrame({time: tid, "effect": tau - tshift, "n_obs": nt_rows})
        coef = pd.Series(beta, index=controls, dtype=float)
        diag = {"iterations": int(it), "rel_residual": rel, "converged": bool(rel <= tol * 10),
                "n_unidentified": int(sys_.unidentified.sum()), "seconds": _time.perf_counter() - t1}
        del sys_
    else:
        sample = pd.DataFrame({worker: wid[wc], firm: fid[fc], y: yv}, index=index)
        if time:
            sample[time] = tid[tcode]
        for c in controls:
            sample[c] = take(data[c].to_numpy(dtype=float))
        we, fe, te, coef, resid, diag = _fit_pyfixest(sample, y, worker, firm, time, controls)
        del sample
    diag["backend"] = backend
    diag["network_seconds"] = t_net
    n = len(yv)
    rss = float(resid @ resid)
    tss = float(np.square(yv - yv.mean()).sum())
    n_params = len(we) + len(fe) - 1 + (len(te) - 1 if te is not None else 0) + len(coef)
    rows = {"wcode": wc, "fcode": fc, "y": yv, "resid": resid, "index": index,
            "time": tid[tcode] if time else None}
    return AKMResult(worker_effects=we, firm_effects=fe, time_effects=te, coef=coef, sample=summary,
                     ledger=ledger, connected=connected, leave_out=lo, normalisation=_NORMALISATION, diagnostics=diag, n_obs=n,
                     n_params=int(n_params), r2=1 - rss / tss if tss > 0 else float("nan"),
                     rmse=float(np.sqrt(rss / n)),
                     names={"y": y, "worker": worker, "firm": firm, "time": time, "controls": tuple(controls)},
                     backend=backend, _rows=rows)


def _recode(codes: np.ndarray, ids: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """Drop the levels no row uses any more, keeping the sorted order (linear time, int32 codes)."""
    used = np.bincount(codes, minlength=len(ids)) > 0
    if used.all():
        return codes, ids
    new = (np.cumsum(used) - 1).astype(np.int32)
    return new[codes], ids[used]


def _fit_pyfixest(sample, y, worker, firm, time, controls):
    """pyfixest feols with worker, firm (and time) fixed effects and its LSMR demeaner.

    The effects are recovered from pyfixest's own fitted fixed-effect component ``d = y - x'b - e`` (``e`` its
    residuals) by one exact firm-sized sparse solve: ``fit.fixef()`` would rebuild the full dummy matrix and run
    LSQR, which at its default tolerance (1e-6) leaves some firm effects wrong by tenths of a log point on large
    samples and at a tight tolerance takes minutes (see the toolchain notes)."""
    import pyfixest as pf

    t0 = _time.perf_counter()
    wc, wid = _codes(sample[worker])
    fc, fid = _codes(sample[firm])
    df = pd.DataFrame({"_y": sample[y].to_numpy(dtype=float), "_w": wc, "_f": fc})
    fes = "_w + _f"
    if time:
        tc, tid = _codes(sample[time])
        df["_t"] = tc
        fes += " + _t"
    for i, c in enumerate(controls):
        df[f"_x{i}"] = sample[c].to_numpy(dtype=float)
    rhs = " + ".join(f"_x{i}" for i in range(len(controls))) or "1"
    m = pf.feols(f"_y ~ {rhs} | {fes}", data=df, demeaner=pf.LsmrDemeaner(fixef_atol=1e-12, fixef_btol=1e-12),
                 fixef_rm="none")
    if controls:
        names = [f"_x{i}" for i in range(len(controls))]
        cf = m.coef().reindex(names)
        if cf.isna().any():
            dropped = [controls[i] for i in np.flatnonzero(cf.isna().to_numpy())]
            raise ValueError(f"control column(s) {dropped} are collinear with the fixed effects "
                             "(pyfixest dropped them); remove them from controls")
        beta = cf.to_numpy(dtype=float)
        xb = df[names].to_numpy() @ beta
    else:
        beta = np.zeros(0)
        xb = np.zeros(len(df))
    resid = np.asarray(m.resid(), dtype=float)
    if resid.shape[0] != len(df):
        raise RuntimeError("pyfixest dropped observations; cannot align its residuals with the sample")
    df["_d"] = df["_y"].to_numpy() - xb - resid  # pyfixest's fitted fixed-effect component
    split = fit_fixed_effects(df, "_d", ["_w", "_f"] + (["_t"] if time else []), tol=1e-12)
    alpha = split.effects["_w"]["effect"].to_numpy()
    psi = split.effects["_f"]["effect"].to_numpy()
    te = None
    if time:
        tau = split.effects["_t"]["effect"].to_numpy()
        xb = xb + tau[tc]
        te = pd.DataFrame({time: tid, "effect": tau, "n_obs": np.bincount(tc, minlength=len(tid))})
    we = pd.DataFrame({worker: wid, "alpha": alpha, "n_obs": np.bincount(wc, minlength=len(wid))})
    fe = pd.DataFrame({firm: fid, "psi": psi, "n_obs": np.bincount(fc, minlength=len(fid))})
    coef = pd.Series(beta, index=list(controls), dtype=float)
    diag = {"iterations": split.diagnostics["iterations"], "rel_residual": split.diagnostics["rel_residual"],
            "converged": split.diagnostics["converged"], "seconds": _time.perf_counter() - t0,
            "effects_from": "pyfixest residuals, split by one sparse solve"}
    return we, fe, te, coef, resid, diag


# ---------------------------------------------------------------------------------------------------------------
# diagnostics (Card, Heining and Kline 2013, section V)


def _coworker_quartile(data, y, worker, firm, groups):
    """Quartile (1..groups) of each row's firm by the mean pay of the worker's co-workers (leave-self-out)."""
    fsum = data.groupby(firm, observed=True)[y].transform("sum").to_numpy()
    fcnt = data.groupby(firm, observed=True)[y].transform("size").to_numpy()
    wfs = data.groupby([worker, firm], observed=True)[y].transform("sum").to_numpy()
    wfc = data.groupby([worker, firm], observed=True)[y].transform("size").to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        co = (fsum - wfs) / (fcnt - wfc)
    fm = data.groupby(firm, observed=True)[y].agg(["mean", "size"])
    # employment-weighted cutoffs over firms
    o = np.argsort(fm["mean"].to_numpy())
    cw = np.cumsum(fm["size"].to_numpy()[o]) / fm["size"].sum()
    cuts = fm["mean"].to_numpy()[o][np.searchsorted(cw, np.arange(1, groups) / groups)]
    q = np.searchsorted(cuts, co, side="right") + 1
    return np.where(np.isfinite(co), q, 0)


def event_study(data: pd.DataFrame, y: str, worker: str, firm: str, time: str, groups: int = 4) -> pd.DataFrame:
    """The mover event study of Card, Heining and Kline (2013, *QJE*, Figure IV).

    Movers are workers observed at the same firm in years t-2 and t-1 and at another firm in years t and t+1
    (consecutive years). Origin and destination firms are classified into ``groups`` (4: quartiles) by the mean pay
    of their co-workers (leaving the worker out, so the worker's own pay does not enter; cutoffs weighted by
    person-years). Returns the mean of ``y`` by origin group, destination group and event time (-2, -1, 0, 1),
    with the number of moves: columns ``origin, destination, event_time, mean_y, moves``. Under AKM's additive
    separability the profiles are flat before and after the move and the jumps depend only on the two groups.
    """
    _check_columns(data, [y, worker, firm, time])
    _check_missing(data, [y, worker, firm, time], id_col=worker)
    d = data[[worker, firm, time, y]].sort_values([worker, time], kind="stable").reset_index(drop=True)
    q = _coworker_quartile(d, y, worker, firm, groups)
    w = d[worker].to_numpy()
    f = pd.factorize(d[firm])[0]
    t = d[time].to_numpy()
    yv = d[y].to_numpy(dtype=float)
    n = len(d)
    i = np.arange(2, n - 1)
    ok = ((w[i - 2] == w[i]) & (w[i - 1] == w[i]) & (w[i + 1] == w[i])
          & (t[i] - t[i - 2] == 2) & (t[i + 1] - t[i] == 1) & (t[i] - t[i - 1] == 1)
          & (f[i - 2] == f[i - 1]) & (f[i] == f[i + 1]) & (f[i - 1] != f[i])
          & (q[i - 1] > 0) & (q[i] > 0))
    i = i[ok]
    rows = []
    origin, dest = q[i - 1], q[i]
    frames = []
    for k, off in zip((-2, -1, 0, 1), (-2, -1, 0, 1)):
        frames.append(pd.DataFrame({"origin": origin, "destination": dest, "event_time": k, "y": yv[i + off]}))
    ev = pd.concat(frames, ignore_index=True)
    out = (ev.groupby(["origin", "destination", "event_time"]).agg(mean_y=("y", "mean"), moves=("y", "size"))
           .reset_index())
    del rows
    return out


def event_study_symmetry(events: pd.DataFrame) -> pd.DataFrame:
    """Symmetry of gains and losses (Card, Heining and Kline 2013, Figure V).

    From :func:`event_study` output: for every origin -> destination pair, the change in mean pay (mean of event
    times 0, 1 minus mean of -2, -1), the change for the reverse move, and their sum (zero under AKM). Columns:
    ``origin, destination, change, reverse_change, sum, moves, reverse_moves``.
    """
    e = events.copy()
    e["post"] = e["event_time"] >= 0
    g = e.groupby(["origin", "destination", "post"])["mean_y"].mean().unstack("post")
    ch = (g[True] - g[False]).rename("change").reset_index()
    mv = e[e["event_time"] == -1][["origin", "destination", "moves"]]
    ch = ch.merge(mv, on=["origin", "destination"])
    rev = ch.rename(columns={"origin": "destination", "destination": "origin", "change": "reverse_change",
                             "moves": "reverse_moves"})
    out = ch.merge(rev, on=["origin", "destination"], how="left")
    out["sum"] = out["change"] + out["reverse_change"]
    return out[["origin", "destination", "change", "reverse_change", "sum", "moves", "reverse_moves"]]


def residual_grid(result: AKMResult, bins: int = 10) -> pd.DataFrame:
    """Mean AKM residual by decile of the estimated worker effect (rows) and firm effect (columns).

    Card, Heining and Kline (2013, Figure VI): under additive separability every cell mean is close to zero;
    systematic patterns (e.g. positive residuals for high-alpha workers at high-psi firms) signal match effects.
    Deciles are person-year weighted. Returns a ``bins x bins`` DataFrame (index ``alpha_decile``, columns
    ``psi_decile``, 1-based).
    """
    fr = result.to_frame()
    a = pd.qcut(fr["alpha"].rank(method="first"), bins, labels=range(1, bins + 1))
    p = pd.qcut(fr["psi"].rank(method="first"), bins, labels=range(1, bins + 1))
    g = fr.groupby([a.rename("alpha_decile"), p.rename("psi_decile")], observed=False)["resid"].mean()
    return g.unstack("psi_decile")

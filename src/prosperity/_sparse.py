"""The numerical core under the estimators: integer codes, connected components, the multi-way system, block PCG.

Private module. :mod:`prosperity.akm`, :mod:`prosperity.variance`, :mod:`prosperity.network` and
:mod:`prosperity.places` import it at module top; it imports nothing from the package (it sits below every
estimator). Everything here works on numpy arrays of int32 codes: no pandas object is touched inside a loop.

- :func:`codes` / :func:`recode`: ids to sorted int32 codes once, and dropping unused levels in linear time;
  :func:`id_codes`: unsorted codes by a lookup table for dense integer ids (faster than hashing).
- :func:`component_labels`: connected components of a bipartite graph given by two code arrays.
- :class:`System`: the normal equations of a multi-way fixed-effect model with the first set partialled out,
  ``L = F'W M_D F`` (for AKM the firm-sized Laplacian of the mobility network), and its projections.
- :func:`block_pcg`: Jacobi-preconditioned conjugate gradients for several right-hand sides at once.
- :func:`solve_effects`: Frisch-Waugh-Lovell on top of :class:`System`; :func:`solve_cells`: the same from data
  collapsed to cells (fixed effects constant within a cell, controls varying within it).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = ["codes", "recode", "id_codes", "component_labels", "System", "block_pcg", "solve_effects", "solve_cells",
           "Collinear"]


class Collinear(ValueError):
    """Controls with nothing left after partialling out the fixed effects and the controls before them.

    ``positions``: the offending control columns (0-based, in the order given); ``partners``: for each, the
    earlier kept controls it may be a combination of (empty: collinear with the fixed effects alone). The caller
    names the columns (:mod:`prosperity.akm` turns this into a :class:`prosperity._checks.InputError`)."""

    def __init__(self, positions: list, partners: list):
        self.positions, self.partners = list(positions), [list(p) for p in partners]
        super().__init__(f"control column(s) at positions {self.positions} are collinear with the fixed effects "
                         "and the controls before them")


def codes(s: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Factorise ids to int32 codes 0..G-1 (sorted order) and the original ids."""
    codes, uniques = pd.factorize(s, sort=True)
    return codes.astype(np.int32, copy=False), pd.Index(uniques, name=s.name)


def recode(codes: np.ndarray, ids: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """Drop the levels no row uses any more, keeping the sorted order (linear time, int32 codes)."""
    used = np.bincount(codes, minlength=len(ids)) > 0
    if used.all():
        return codes, ids
    new = (np.cumsum(used) - 1).astype(np.int32)
    return new[codes], ids[used]


def id_codes(s: pd.Series) -> tuple[np.ndarray, int]:
    """Integer codes ``0..G-1`` of an id column and the number ``G`` of distinct ids, in no particular order.

    Integer ids spanning a range at most twice the column's length (ids numbered from 0 or 1, or codes made by
    another module) go through a lookup table: linear, and several times faster than hashing. Anything else is
    hashed by ``pd.factorize``."""
    if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iu" and len(s):
        x = s.to_numpy()
        if x.dtype.itemsize < 4:  # x - min could overflow int8/int16
            x = x.astype(np.int64)
        lo, hi = int(x.min()), int(x.max())
        if hi - lo <= 2 * len(x):
            idx = x - x.dtype.type(lo) if lo else x
            used = np.zeros(hi - lo + 1, dtype=bool)
            used[idx] = True
            rank = np.cumsum(used, dtype=np.int32 if hi - lo < 2**31 - 1 else np.int64) - 1
            return rank[idx], int(rank[-1]) + 1
    codes, uniques = pd.factorize(s, sort=False)
    return codes.astype(np.int32 if len(uniques) < 2**31 - 1 else np.int64, copy=False), len(uniques)


def component_labels(wc: np.ndarray, fc: np.ndarray, nw: int, nf: int) -> tuple[int, np.ndarray]:
    """Connected components of the bipartite graph; returns (count, label of every firm)."""
    A = sp.csr_matrix((np.ones(len(wc), dtype=np.int8), (wc, fc)), shape=(nw, nf))
    # firms are linked through shared workers: components of the bipartite graph restricted to firms equal the
    # components of the graph on workers + firms; build the symmetric bipartite adjacency.
    B = sp.bmat([[None, A], [A.T, None]], format="csr")
    ncomp, labels = connected_components(B, directed=False)
    return ncomp, labels[nw:]


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


class System:
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
        """Solve ``L X = Bm`` by :func:`block_pcg`. The right-hand side of an unidentified level (a zero diagonal
        of ``L``: its rows belong to workers seen nowhere else) is zero in exact arithmetic; it is set to zero so
        that rounding noise there cannot stall CG (with a single firm, every level is unidentified)."""
        if self.unidentified.any():
            Bm = np.where(self.unidentified.reshape((-1,) + (1,) * (np.ndim(Bm) - 1)), 0.0, Bm)
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


def solve_effects(sys_: System, y: np.ndarray, X: np.ndarray | None, tol: float, maxiter: int):
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
        _check_collinear(Ex_w, np.linalg.norm(X - X.mean(axis=0), axis=0))
        beta = np.linalg.lstsq(Ex_w, ey_w[:, 0], rcond=None)[0]
    coef = np.concatenate([[1.0], -beta])
    psi = Psi @ coef
    alpha = A @ coef
    resid = E @ coef
    return beta, alpha, psi, resid, it, float(np.max(rel))


def _check_collinear(Ex: np.ndarray, raw: np.ndarray, rtol: float = 1e-8) -> None:
    """Raise :class:`Collinear` if a partialled-out control (a column of ``Ex``) is, up to ``rtol`` of its raw
    (demeaned) norm ``raw``, a combination of the fixed effects and of the controls before it.

    Sequential Gram-Schmidt in the order given, so the later of two collinear controls is the one named (as
    pyfixest, which drops the later one). Cost ``O(n k^2)`` for ``k`` controls."""
    kept, bad, partners = [], [], []
    for c in range(Ex.shape[1]):
        e, floor = Ex[:, c], rtol * max(float(raw[c]), 1e-300)
        norm_c = float(np.linalg.norm(e))
        if norm_c <= floor:  # nothing left after the fixed effects alone
            bad.append(c)
            partners.append([])
            continue
        if kept:
            b = np.linalg.lstsq(Ex[:, kept], e, rcond=None)[0]
            if np.linalg.norm(e - Ex[:, kept] @ b) <= floor:
                contrib = np.abs(b) * np.linalg.norm(Ex[:, kept], axis=0)
                bad.append(c)
                partners.append([k for k, t in zip(kept, contrib) if t > 1e-6 * norm_c])
                continue
        kept.append(c)
    if bad:
        raise Collinear(bad, partners)


def solve_cells(sys_: System, ybar: np.ndarray, xcol, p: int, Sxx: np.ndarray, Sxy: np.ndarray,
                tol: float, maxiter: int, raw: np.ndarray | None = None, block_bytes: float = 2**28):
    """Least squares of person-years on fixed effects constant within cells and on controls that vary within
    them, from cell-level data (Frisch-Waugh-Lovell in two parts; exact, no approximation).

    Model ``y_r = D_r theta + X_r b + e_r`` over person-years ``r``, where every fixed effect is constant within a
    cell ``m`` (a worker-firm-place match, say) and ``X`` (year dummies, age terms) is not. ``sys_`` is the
    :class:`System` of the cells with weights ``c_m`` (person-years per cell); ``ybar`` the cell means of ``y``;
    ``xcol(j)`` returns the cell means of control ``j`` (``0 <= j < p``); ``Sxx`` and ``Sxy`` the within-cell
    scatter ``sum_r (X_r - Xbar_m)(X_r - Xbar_m)'`` and ``sum_r (X_r - Xbar_m)(y_r - ybar_m)``. Since ``D`` is
    constant within cells, the person-year projection on ``D`` is the cell-weighted projection of the cell means,
    so ``X'M_D X = Sxx + Xbar'W M_W Xbar`` and ``X'M_D y = Sxy + Xbar'W M_W ybar``. The cell-level projections
    are solved by CG in column blocks sized to keep their arrays within ``block_bytes``.

    ``raw``: the (demeaned) person-year norms of the controls, for the collinearity check (:class:`Collinear`).
    Returns ``(beta, alpha, psi, resid, iterations, max relative residual)`` with ``alpha``/``psi`` the effects of
    ``ybar - Xbar beta`` (as :func:`solve_effects`) and ``resid`` the cell means of the person-year residuals.
    """
    n, M = sys_.n, sys_.M
    w = sys_.w if sys_.w is not None else np.ones(n)
    cols = p + 1

    def col(j):
        return ybar if j == 0 else xcol(j - 1)

    width = int(max(1, min(cols, block_bytes // (40 * max(n, 1)))))
    Psi_all = np.zeros((M, cols))
    G = np.zeros((cols, cols))  # V'W M_W V (symmetric): for each block J, the entries (i, J) with i from J on
    done = np.zeros((cols, cols), dtype=bool)
    it_all, rel_all = 0, 0.0
    for j0 in range(0, cols, width):
        J = list(range(j0, min(cols, j0 + width)))
        V = np.column_stack([col(j) for j in J])
        Psi, it, rel = sys_.solve(sys_.rhs(V), tol=tol, maxiter=maxiter)
        Psi = Psi.reshape(M, len(J))
        E = V - sys_.absorbed(V, Psi)[sys_.g0] - sys_.F(Psi)
        del V
        E *= w[:, None]
        Psi_all[:, J] = Psi
        for i in range(j0, cols):  # earlier columns' entries are their blocks' (G is symmetric); einsum, not
            G[i, J] = np.einsum("i,ij->j", col(i), E)  # BLAS: the same sums whatever the number of threads
            done[i, J] = True
        del E
        it_all += it
        rel_all = max(rel_all, float(np.max(rel, initial=0.0)))
    both = done & done.T  # pairs within a block were computed both ways: average them
    G = np.where(both, 0.5 * (G + G.T), np.where(done, G, G.T))
    if p:
        A = Sxx + G[1:, 1:]
        bvec = Sxy + G[1:, 0]
        _check_collinear_gram(A, np.ones(p) if raw is None else raw)
        beta = np.linalg.solve(A, bvec)
    else:
        beta = np.zeros(0)
    coef = np.concatenate([[1.0], -beta])
    psi = np.einsum("ij,j->i", Psi_all, coef)
    v = ybar.copy()
    for j in range(p):
        v -= beta[j] * xcol(j)
    alpha = sys_.absorbed(v[:, None], psi[:, None])[:, 0]
    resid = v - alpha[sys_.g0] - sys_.F(psi[:, None])[:, 0]
    return beta, alpha, psi, resid, it_all, rel_all


def _check_collinear_gram(A: np.ndarray, raw: np.ndarray, rtol: float = 1e-8) -> None:
    """:func:`_check_collinear` from the Gram matrix ``A = Ex'Ex`` of the partialled-out controls (sequential:
    the squared norm of control ``c`` after the earlier kept ones is the Schur complement ``A_cc - A_cK A_KK^-1
    A_Kc``), so that the later of two collinear controls is the one named."""
    kept, bad, partners = [], [], []
    for c in range(A.shape[0]):
        floor2 = (rtol * max(float(raw[c]), 1e-300)) ** 2
        if kept:
            K = np.array(kept)
            b = np.linalg.solve(A[np.ix_(K, K)], A[K, c])
            left = float(A[c, c] - A[c, K] @ b)
        else:
            b, left = np.zeros(0), float(A[c, c])
        if left <= floor2:
            bad.append(c)
            contrib = np.abs(b) * np.sqrt(np.maximum(np.diag(A)[kept], 0)) if kept else np.zeros(0)
            partners.append([k for k, t in zip(kept, contrib) if t > 1e-6 * np.sqrt(max(A[c, c], 0))]
                            if A[c, c] > floor2 else [])
            continue
        kept.append(c)
    if bad:
        raise Collinear(bad, partners)

"""Group estimators of two-way wage models: firm classes, static BLM and correlated random effects (CRE).

Under limited mobility the firm fixed effects of AKM are estimated from few movers each, and plug-in variance
decompositions are biased (Andrews, Gill, Schank and Upward 2008; Kline, Saggio and Solvsten 2020). The
alternatives compared by Bonhomme, Holzheu, Lamadon, Manresa, Mogstad and Setzler (2023, *JOLE* 41(2):291-322,
hereafter BHLMMS) group firms into a few classes first, so that every class is identified from many movers:

- :func:`firm_classes`: k-means on firm wage distributions (Bonhomme, Lamadon and Manresa 2019, *Econometrica*
  87(3):699-739, hereafter BLM, section 4): each firm is described by the empirical CDF of its log wages at a
  grid of ``grid`` quantiles of the pooled wage distribution, and firms are clustered by weighted k-means (weights:
  firm size in rows), the objective BLM minimise.
- :func:`blm`: the static BLM model: a finite mixture of ``n_types`` worker types; log wages are normal with a mean
  and a variance specific to (type, class) and period, the type distribution of movers depends on the pair of
  classes around the move, that of stayers on their class. Estimated by EM (Dempster, Laird and Rubin 1977) on the
  movers (two periods around a move) from several starts, with a data-scaled prior on the wage variances that
  keeps the likelihood bounded (Fraley and Raftery 2007), then on the stayers holding the wage parameters fixed
  (BLM section 4). Variance decomposition as in BLM section 5 (see :func:`blm`).
- :func:`cre`: the correlated random-effects estimator of BHLMMS (and of pytwoway's ``CREEstimator``): class means of
  firm and worker effects from movers ("between"), within-class variances and covariances of firm and worker
  effects from covariances of residual wages with leave-out firm means ("within").

Event data (:func:`events`). From a panel with one row per worker and period: a **mover** contributes the two
observations around the worker's first change of firm (the last period at the first firm and the first at the
second), a **stayer** (one firm in every period) the first period, and (for the CRE error variance) the second. On a
two-period panel this is exactly the design of BLM (2019) and of pytwoway's event-study data without collapsing.
The **cross-section** that the decompositions describe is period 1 of every worker (the first of the two
observations of a mover, the first period of a stayer), as in BLM section 5 and pytwoway's ``CREEstimator``
(``cs == 1`` rows): ``var_y`` and ``n_obs`` refer to it.

Validation: ``benchmarks/bench_groups.py`` runs pytwoway 0.3.21 (Lamadon, Bonhomme, Manresa et al.) on the same
data and reports firm-class agreement (:func:`adjusted_rand_index`), the shares side by side and CPU time
(``benchmarks/results/groups.md``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from ._checks import (fail, require_columns, require_complete, require_numeric, require_one_type,
                      require_rows, require_unique)
from ._results import Result
from ._sparse import codes
from .variance import VarianceDecomposition

__all__ = ["firm_classes", "FirmClasses", "events", "Events", "blm", "BLMResult", "cre", "CREResult",
           "GroupDecomposition",
           "adjusted_rand_index", "simulate"]

_LOG2PI = np.log(2 * np.pi)


# --------------------------------------------------------------------------------------------------- inputs


def _panel(data, y, worker, firm, time, table: str = "data") -> pd.DataFrame:
    """Checked copy of the four columns, sorted by worker and time (errors name the table, column and ids)."""
    require_columns(data, [worker, firm, time, y], table)
    require_rows(data, table, 2)
    require_complete(data, [worker, firm, time, y], table, id_cols=[worker, time])
    require_numeric(data, [y, time], table)
    for c in (worker, firm):
        require_one_type(data, c, table)
    require_unique(data, [worker, time], table, hint="; one row per worker and period is needed")
    return data[[worker, firm, time, y]].sort_values([worker, time], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------- k-means


def _kmeans_pp(X, w, k, rng):
    """k-means++ seeding (Arthur and Vassilvitskii 2007) with point weights."""
    n = len(X)
    centers = np.empty((k, X.shape[1]))
    centers[0] = X[rng.choice(n, p=w / w.sum())]
    d2 = ((X - centers[0]) ** 2).sum(1)
    for c in range(1, k):
        p = w * d2
        s = p.sum()
        centers[c] = X[rng.choice(n, p=p / s)] if s > 0 else X[rng.integers(n)]
        d2 = np.minimum(d2, ((X - centers[c]) ** 2).sum(1))
    return centers


def _centroids(X, w, lab, k):
    """Weighted means of the rows of ``X`` by label, and the weight of each label."""
    sw = np.bincount(lab, w, minlength=k)
    sums = np.stack([np.bincount(lab, w * X[:, c], minlength=k) for c in range(X.shape[1])], 1)
    return sums / np.where(sw > 0, sw, 1)[:, None], sw


def _lloyd(X, w, centers, max_iter: int, tol: float):
    """Weighted Lloyd iterations from ``centers``: labels, centres, inertia, iterations."""
    xx = (X ** 2).sum(1)
    k = len(centers)
    for it in range(1, max_iter + 1):
        d = xx[:, None] - 2 * X @ centers.T + (centers ** 2).sum(1)[None, :]
        lab = d.argmin(1)
        new, sw = _centroids(X, w, lab, k)
        empty = sw == 0
        if empty.any():  # re-seed an empty cluster at the point farthest from its centre
            far = np.argsort(-d[np.arange(len(X)), lab])[: int(empty.sum())]
            new[empty] = X[far]
        shift = float(((new - centers) ** 2).sum())
        centers = new
        if shift <= tol:
            break
    d = xx[:, None] - 2 * X @ centers.T + (centers ** 2).sum(1)[None, :]
    lab = d.argmin(1)
    inertia = float((w * np.maximum(d[np.arange(len(X)), lab], 0)).sum())
    return lab, centers, inertia, it


@dataclass(frozen=True, repr=False)
class FirmClasses(Result):
    """Firm classes from k-means on firm wage CDFs (:func:`firm_classes`).

    ``table``: one row per firm: the firm id column, ``cls`` (0 = the class with the lowest mean log wage),
    ``n_obs`` (rows, the k-means weight). ``centers``: k x grid class CDFs; ``grid``: the pooled quantiles the CDFs
    are evaluated at; ``inertia`` (weighted within-class sum of squares of the best start), ``starts``
    (inertia of every start), ``firm`` (the firm id column name), ``seed``."""

    table: pd.DataFrame
    centers: np.ndarray
    grid: np.ndarray
    inertia: float
    starts: np.ndarray
    firm: str
    seed: int

    @property
    def k(self) -> int:
        return len(self.centers)

    def labels(self) -> pd.Series:
        """The class of every firm, indexed by firm id."""
        return pd.Series(self.table["cls"].to_numpy(), index=pd.Index(self.table[self.firm], name=self.firm),
                         name="cls")

    def summary(self) -> str:
        sizes = self.table.groupby("cls")["n_obs"].sum()
        return (f"Firm classes: {self.k} k-means classes of {len(self.table):,} firms on wage CDFs at "
                f"{len(self.grid)} pooled quantiles (Bonhomme, Lamadon and Manresa 2019), {len(self.starts)} starts, "
                f"seed {self.seed}; weighted inertia {self.inertia:.4g}\n  rows per class: "
                + ", ".join(f"{c}: {int(n):,}" for c, n in sizes.items()))


def firm_classes(data: pd.DataFrame, y: str = "y", firm: str = "firm", k: int = 10, grid: int = 10,
                 n_init: int = 10, seed: int = 0, max_iter: int = 300, tol: float = 1e-10,
                 labels: pd.Series | None = None) -> FirmClasses:
    """Cluster firms into ``k`` classes by weighted k-means on their wage CDFs (BLM 2019, section 4).

    Each firm ``j`` is the vector ``F_j(q_r)``, the share of its rows with ``y <= q_r``, at the pooled quantiles
    ``q_r`` of ``y`` at probabilities ``r / grid`` (r = 1..grid; ``inverted_cdf`` quantiles), and the classes
    minimise ``sum_j n_j ||F_j - c_{k(j)}||^2`` (``n_j``: the firm's rows), BLM's objective. Lloyd's algorithm
    from ``n_init`` k-means++ starts (random generator ``numpy.random.default_rng(seed)``); the start with the
    lowest objective is kept, and classes are numbered by their mean ``y`` (0 = lowest), so that labels are
    comparable across runs. This is the default of bipartitepandas (``measures.CDFs()``, ``grouping.KMeans``,
    firm-size weights) except that bipartitepandas calls scikit-learn's ``KMeans`` (same objective, its own
    seeding stream), which is not a dependency here: classes agree up to label order when both find the same
    optimum (see ``benchmarks/results/groups.md`` for the adjusted Rand index on identical data).

    ``labels``: given classes (a Series of integer classes indexed by firm id, e.g. from another implementation);
    then no k-means is run, ``k`` is the number of distinct labels, and the result holds their class mean CDFs
    (renumbered by mean ``y`` as above), so that the estimators can be compared on identical classes."""
    require_columns(data, [firm, y], "data")
    require_complete(data, [firm, y], "data", id_cols=firm)
    require_numeric(data, [y], "data")
    require_one_type(data, firm, "data")
    fc, ids = codes(data[firm])
    if labels is not None:
        given = pd.Series(labels).reindex(ids)
        if given.isna().any():
            miss = given.index[given.isna().to_numpy()]
            fail(f"{len(miss)} firm(s) of the data have no label", "labels", firm, miss[:5], firm)
        lab_codes, lab_ids = codes(given.reset_index(drop=True))
        k = len(lab_ids)
    if not 1 <= k <= len(ids):
        raise ValueError(f"k must be between 1 and the number of firms ({len(ids)}), got {k}")
    if grid < 1 or n_init < 1:
        raise ValueError(f"grid and n_init must be >= 1, got grid={grid}, n_init={n_init}")
    yv = data[y].to_numpy(dtype=float)
    q = np.quantile(yv, np.arange(1, grid + 1) / grid, method="inverted_cdf")
    size = np.bincount(fc, minlength=len(ids)).astype(float)
    # rank of each row among the grid points: F_j(q_r) = share of rows of j with y <= q_r
    pos = np.searchsorted(q, yv, side="left")  # first r with y <= q_r
    H = np.zeros((len(ids), grid + 1))
    np.add.at(H, (fc, pos), 1.0)
    X = np.cumsum(H[:, :grid], axis=1) / size[:, None]
    if labels is not None:
        lab = lab_codes.astype(np.int64)
        cen = _centroids(X, size, lab, k)[0]
        inertia = float((size * ((X - cen[lab]) ** 2).sum(1)).sum())
        inertias = [inertia]
    else:
        rng = np.random.default_rng(seed)
        best, inertias = None, []
        for _ in range(n_init):
            lab, cen, inertia, _it = _lloyd(X, size, _kmeans_pp(X, size, k, rng), max_iter, tol)
            inertias.append(inertia)
            if best is None or inertia < best[2] - 1e-12:
                best = (lab, cen, inertia)
        lab, cen, inertia = best
    fmean = np.bincount(fc, yv, minlength=len(ids)) / size
    cmean = np.bincount(lab, size * fmean, minlength=k) / np.maximum(np.bincount(lab, size, minlength=k), 1)
    order = np.argsort(cmean, kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    table = pd.DataFrame({firm: ids, "cls": rank[lab], "n_obs": size.astype(np.int64)})
    return FirmClasses(table=table, centers=cen[order], grid=q, inertia=inertia, starts=np.asarray(inertias),
                       firm=firm, seed=seed)


def adjusted_rand_index(a, b) -> float:
    """Adjusted Rand index of two labelings (Hubert and Arabie 1985, *J. Classification* 2:193-218): 1 for the
    same partition up to label names, 0 in expectation for independent random labels."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"labelings have different lengths ({len(a)} and {len(b)})")
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    cont = np.zeros((ia.max() + 1, ib.max() + 1))
    np.add.at(cont, (ia, ib), 1)

    def c2(x):
        return float((x * (x - 1) / 2).sum())

    n = len(a)
    sij, sa, sb = c2(cont), c2(cont.sum(1)), c2(cont.sum(0))
    expected = sa * sb / (n * (n - 1) / 2)
    top = (sa + sb) / 2
    return 1.0 if top == expected else float((sij - expected) / (top - expected))


def _require_classes(classes) -> FirmClasses:
    if not isinstance(classes, FirmClasses):
        fail(f"classes must be a FirmClasses result (groups.firm_classes; labels=... for given classes), got "
             f"{type(classes).__name__}", "classes")
    return classes


# --------------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, repr=False)
class Events(Result):
    """Movers and stayers in event form (:func:`events`).

    ``table``: one row per worker: the worker id column, ``mover`` (bool), ``j1, j2`` (firm codes, 0-based in the
    order of ``firm_ids``), ``g1, g2`` (classes), ``y1, y2`` and their periods ``t1, t2`` (for a stayer the
    second period, NaN with a single period; ``j2 = j1``). ``firm_ids``: the firm ids of the codes."""

    table: pd.DataFrame
    firm_ids: pd.Index
    classes: FirmClasses

    @property
    def movers(self) -> pd.DataFrame:
        return self.table[self.table["mover"].to_numpy()]

    @property
    def stayers(self) -> pd.DataFrame:
        return self.table[~self.table["mover"].to_numpy()]

    def summary(self) -> str:
        m = int(self.table["mover"].sum())
        return (f"Events: {m:,} movers (two periods around their first move) and {len(self.table) - m:,} stayers; "
                f"{self.classes.k} firm classes")


def events(data: pd.DataFrame, classes: FirmClasses, y: str = "y", worker: str = "worker", firm: str = "firm",
           time: str = "year") -> Events:
    """Movers (the two periods around each worker's first change of firm) and stayers (first two periods) of a
    panel with one row per worker and period, with the firm classes of ``classes`` (see the module docstring)."""
    lab = _require_classes(classes).labels()
    d = _panel(data, y, worker, firm, time)
    cls = lab.reindex(d[firm].to_numpy()).to_numpy()
    if pd.isna(cls).any():
        bad = pd.isna(cls)
        fail(f"{int(bad.sum())} row(s) at firms without a class; cluster the same data (groups.firm_classes)",
             "data", firm, d.loc[bad, firm].unique()[:5], firm)
    jc, fids = codes(d[firm])
    wc = codes(d[worker])[0]
    yv, g = d[y].to_numpy(dtype=float), cls.astype(np.int64)
    n = len(d)
    first = np.r_[True, wc[1:] != wc[:-1]]
    start = np.flatnonzero(first)
    move = np.r_[False, (~first[1:]) & (jc[1:] != jc[:-1])]  # row i: the worker changed firm between i-1 and i
    # first move of each worker: the first flagged row after its start
    mv_rows = np.flatnonzero(move)
    w_of = wc[mv_rows]
    keep = np.r_[True, w_of[1:] != w_of[:-1]] if len(mv_rows) else np.zeros(0, bool)
    m2 = mv_rows[keep]  # the row after the move
    m1 = m2 - 1
    is_mover = np.zeros(wc.max() + 1, bool)
    is_mover[wc[m2]] = True
    st = start[~is_mover[wc[start]]]
    st2 = st + 1
    has2 = (st2 < n) & (wc[np.minimum(st2, n - 1)] == wc[st])
    y2s = np.where(has2, yv[np.minimum(st2, n - 1)], np.nan)
    tv = d[time].to_numpy(dtype=float)
    t2s = np.where(has2, tv[np.minimum(st2, n - 1)], np.nan)
    table = pd.DataFrame({
        worker: np.r_[d[worker].to_numpy()[m1], d[worker].to_numpy()[st]],
        "mover": np.r_[np.ones(len(m1), bool), np.zeros(len(st), bool)],
        "j1": np.r_[jc[m1], jc[st]], "j2": np.r_[jc[m2], jc[st]],
        "g1": np.r_[g[m1], g[st]], "g2": np.r_[g[m2], g[st]],
        "y1": np.r_[yv[m1], yv[st]], "y2": np.r_[yv[m2], y2s],
        "t1": np.r_[tv[m1], tv[st]], "t2": np.r_[tv[m2], t2s],
    })
    return Events(table=table, firm_ids=fids, classes=classes)


def _events_of(data, classes, y, worker, firm, time, k, seed) -> Events:
    """``data`` if it is an :class:`Events` (then ``classes`` must be None or its own), else its events with
    ``classes`` (k-means classes with ``k`` and ``seed`` if None)."""
    if isinstance(data, Events):
        if classes is not None and classes is not data.classes:
            raise ValueError("data is an Events table with its own classes; pass classes=None")
        return data
    if classes is None:
        classes = firm_classes(data, y=y, firm=firm, k=k, seed=seed)
    return events(data, classes, y=y, worker=worker, firm=firm, time=time)


# --------------------------------------------------------------------------------------------------- BLM


def _posterior(lp):
    """Row-wise log-sum-exp of log joint densities ``lp`` (n x L) and the posterior probabilities."""
    m = lp.max(1, keepdims=True)
    e = np.exp(lp - m)
    s = e.sum(1, keepdims=True)
    e /= s
    return (m + np.log(s))[:, 0], e


def _lognorm(y, mu, sd):
    return -0.5 * (_LOG2PI + 2 * np.log(sd) + ((y - mu) / sd) ** 2)


def _indicator(cell, n_cells):
    """Sparse ``n_cells x n`` indicator matrix of the rows' cells (sums by cell as one product)."""
    n = len(cell)
    return sp.csr_matrix((np.ones(n), (cell, np.arange(n))), shape=(n_cells, n))


def _type_shares(ind, q):
    """Posterior type counts by cell (``ind @ q``) and the type shares they imply (uniform in empty cells)."""
    cnt = ind @ q
    tot = cnt.sum(1, keepdims=True)
    return np.where(tot > 0, np.maximum(cnt, 1e-300) / np.where(tot > 0, tot, 1), 1.0 / q.shape[1]), cnt


def _mean_sd(ind, q, sd_min, mu_old, sd_old, nu=0.0, v0=None):
    """Posterior-weighted mean and s.d. of ``y`` by (type, class) (L x K); empty cells keep their means.

    ``ind``: the sparse K x n indicator of the rows' classes and the same with values ``y`` and ``y^2`` (see
    :func:`_weighted_indicators`). The variance is the posterior mode under an inverse-gamma prior worth ``nu``
    pseudo-observations at the variance ``v0`` (one value per class, length K): ``(W + nu v0) / (n + nu)`` with
    ``n`` and ``W`` the posterior-weighted count and sum of squared deviations of the cell; ``nu = 0`` is maximum
    likelihood (an empty cell then keeps its s.d.)."""
    s0, s1, s2 = (m @ q for m in ind)  # K x L
    ok = s0 > 1e-10
    den = np.where(ok, s0, 1)
    mu = np.where(ok, s1 / den, mu_old.T)
    if nu > 0:
        ss = np.where(ok, np.maximum(s2 - s0 * mu ** 2, 0.0), 0.0)  # W, the weighted sum of squares about mu
        var = (ss + nu * v0[:, None]) / (s0 + nu)
    else:  # maximum likelihood
        var = np.where(ok, s2 / den - mu ** 2, sd_old.T ** 2)
    return mu.T, np.sqrt(np.maximum(var, sd_min ** 2)).T


def _weighted_indicators(k, y, K):
    """The K x n indicator of the classes ``k`` and the same matrix with the values ``y`` and ``y^2`` (so that
    posterior-weighted sums by class are one sparse product each)."""
    ind = _indicator(k, K)
    return ind, ind.multiply(y[None, :]).tocsr(), ind.multiply((y ** 2)[None, :]).tocsr()


def _cell_log_density(y, k, A, S):
    """``log N(y_i; A(l, k_i), S(l, k_i)^2)`` (n x L), from per-cell constants (one log per cell, not per row)."""
    L = len(A)
    G = np.take(np.concatenate([A.T, (1.0 / S).T, (-np.log(S) - 0.5 * _LOG2PI).T], 1), k, axis=0)  # one gather
    z = (y[:, None] - G[:, :L]) * G[:, L:2 * L]
    z *= z
    z *= -0.5
    z += G[:, 2 * L:]
    return z


def _log_prior(S, nu, v0):
    """Log density (up to a constant) of the inverse-gamma variance prior of :func:`_mean_sd` at the s.d.s ``S``
    (L x K): ``sum -(nu / 2) (log s^2 + v0_k / s^2)``; 0 without a prior."""
    if nu <= 0:
        return 0.0
    v = S ** 2
    return float(-0.5 * nu * (np.log(v) + v0[None, :] / v).sum())


def _em_movers(y1, y2, c, k1, k2, K, L, A1, A2, S1, S2, max_iter, tol, sd_min, nu=0.0, v01=None, v02=None):
    """EM for the movers' mixture; ``c`` = k1 * K + k2 indexes the pair of classes. With ``nu > 0`` the M-step
    for the variances is the posterior mode of :func:`_mean_sd` (priors ``v01``, ``v02`` by class in periods 1
    and 2), and EM climbs the penalised log-likelihood (log-likelihood + :func:`_log_prior`), which it reports
    beside the log-likelihood. Returns the parameters, the mean log-likelihood path, iterations, convergence
    (relative change of the mean penalised log-likelihood < tol) and the last penalised log-likelihood (summed)."""
    pk = np.full((K * K, L), 1.0 / L)
    Ic, I1, I2 = _indicator(c, K * K), _weighted_indicators(k1, y1, K), _weighted_indicators(k2, y2, K)
    n = len(y1)
    liks, objs = [], []
    for it in range(1, max_iter + 1):
        lp = np.log(pk)[c] + _cell_log_density(y1, k1, A1, S1) + _cell_log_density(y2, k2, A2, S2)
        ll, q = _posterior(lp)
        liks.append(float(ll.mean()))
        objs.append(liks[-1] + (_log_prior(S1, nu, v01) + _log_prior(S2, nu, v02)) / n)
        pk = _type_shares(Ic, q)[0]
        A1, S1 = _mean_sd(I1, q, sd_min, A1, S1, nu, v01)
        A2, S2 = _mean_sd(I2, q, sd_min, A2, S2, nu, v02)
        if it > 1 and abs(objs[-1] - objs[-2]) <= tol * max(abs(objs[-2]), 1e-12):
            return A1, A2, S1, S2, pk, liks, it, True, objs[-1] * n
    return A1, A2, S1, S2, pk, liks, max_iter, False, objs[-1] * n


def _prior_variance(y, k, K, L):
    """The variance the prior of :func:`_mean_sd` points at, by class (length K, one value for all classes): the
    pooled within-class variance of ``y`` divided by ``L^2`` (the data-scaled choice of Fraley and Raftery 2007
    for ``L`` components), the variance of ``y`` if every class has a single observation."""
    n = np.bincount(k, minlength=K).astype(float)
    m = np.bincount(k, y, minlength=K) / np.maximum(n, 1)
    dof = len(y) - int((n > 0).sum())
    w = float(((y - m[k]) ** 2).sum() / dof) if dof > 0 else float(np.var(y))
    if not w > 0:
        w = float(np.var(y)) or 1.0
    return np.full(K, w / L ** 2)


def _em_stayers(y1, k, K, L, A1, S1, max_iter, tol):
    """EM for the stayers' type shares by class, wage parameters held at the movers' estimates (BLM section 4)."""
    pk0 = np.full((K, L), 1.0 / L)
    ind = _indicator(k, K)
    dens = _lognorm(y1[:, None], A1[:, k].T, S1[:, k].T)
    prev = None
    for it in range(1, max_iter + 1):
        lp = np.log(pk0[k]) + dens
        ll, q = _posterior(lp)
        pk0 = _type_shares(ind, q)[0]
        cur = float(ll.mean())
        if prev is not None and abs(cur - prev) <= tol * max(abs(prev), 1e-12):
            break
        prev = cur
    return pk0, float(ll.sum()), it


def _additive(pi, A):
    """Weighted least-squares projection of the L x K table ``A`` on type + class effects, weights ``pi``
    (summing to 1): ``alpha`` (L), ``psi`` (K), both centred at their ``pi``-weighted means."""
    L, K = A.shape
    ll, kk = np.meshgrid(np.arange(L), np.arange(K), indexing="ij")
    w = pi.ravel()
    X = np.zeros((L * K, L + K))
    X[np.arange(L * K), ll.ravel()] = 1
    X[np.arange(L * K), L + kk.ravel()] = 1
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(X * sw[:, None], A.ravel() * sw, rcond=None)[0]
    alpha, psi = coef[:L], coef[L:]
    pl, pkk = pi.sum(1), pi.sum(0)
    return alpha - pl @ alpha, psi - pkk @ psi


def _moments(a, b, w):
    """Weighted covariance of two arrays with weights ``w`` summing to one."""
    return float(w @ (a * b) - (w @ a) * (w @ b))


@dataclass(frozen=True, repr=False)
class GroupDecomposition(Result):
    """What BLM and CRE results share: ``table`` (the estimator's parameters), ``decomposition`` (a
    :class:`~prosperity.variance.VarianceDecomposition`, ``method`` ``"blm"`` or ``"cre"``, on the period-1
    cross-section), ``classes`` (:class:`FirmClasses`), ``n_movers``, ``n_stayers``."""

    table: pd.DataFrame
    decomposition: VarianceDecomposition
    classes: FirmClasses
    n_movers: int
    n_stayers: int

    def shares(self) -> pd.DataFrame:
        """Shares of var(y) (``component, share``) of the decomposition."""
        return self.decomposition.shares()

    def summary(self) -> str:
        d = self.decomposition
        return (f"{self.classes.k} firm classes; {self.n_movers:,} movers, {self.n_stayers:,} stayers; "
                f"var(y) {d.var_y:.4f}\n  shares of var(y): worker effects {d.share_alpha:.3f}, firm effects "
                f"{d.share_psi:.3f}, sorting {d.share_sorting:.3f} (corr {d.corr_alpha_psi:.3f}), rest "
                f"{d.share_resid:.3f}")


@dataclass(frozen=True, repr=False)
class BLMResult(GroupDecomposition):
    """Static BLM estimates (:func:`blm`).

    ``table``: one row per worker type ``l`` and firm class ``k``: mean and s.d. of log wages in the period before
    (``a1``, ``s1``) and after (``a2``, ``s2``) a move, ``share`` (the joint share of type and class in the
    period-1 cross-section), ``alpha`` and ``psi`` (the additive type and class effects of the decomposition).
    ``decomposition``: ``method="blm"`` (worker effects = types, firm effects = classes, rest = the non-additive
    part and the within-cell variance). ``loglik`` (movers' log-likelihood, summed, of the best start),
    ``iterations``, ``converged``; ``starts`` (one row per start: ``start, loglik, objective, iterations,
    converged``; ``objective`` is the penalised log-likelihood that EM maximises and that picks the start, see
    ``var_prior`` in :func:`blm`; ``loglik`` is the plain movers' log-likelihood at the same parameters);
    ``stayers_loglik``; ``pk_movers`` (K*K x L: type shares of movers by pair of classes, row ``k1 * K + k2``),
    ``pk_stayers`` (K x L); ``degenerate_cells`` (how many of the 2 L K wage s.d.s ``s1, s2`` ended at the floor
    ``sd_min``: a Gaussian mixture's likelihood is unbounded as a component's variance goes to zero, and EM on
    few movers can find such a spike; the variance prior of :func:`blm` (``var_prior > 0``, the default) bounds
    the objective and keeps s.d.s off the floor; with ``var_prior=0`` a count above zero means the likelihoods,
    and the stayers' fit at those parameters, are not comparable across samples and the decomposition should not
    be trusted); ``var_prior`` (the prior's weight in pseudo-movers per cell, 0 = maximum likelihood); and the
    fields of :class:`GroupDecomposition`."""

    loglik: float
    iterations: int
    converged: bool
    starts: pd.DataFrame
    stayers_loglik: float
    pk_movers: np.ndarray
    pk_stayers: np.ndarray
    degenerate_cells: int = 0
    var_prior: float = 0.0

    def summary(self) -> str:
        L = self.pk_stayers.shape[1]
        ok = int(self.starts["converged"].sum())
        text = (f"Static BLM (Bonhomme, Lamadon and Manresa 2019): {L} worker types x " + super().summary()
                + f"\n  EM on movers: log-likelihood {self.loglik:.2f} after {self.iterations} iterations "
                f"({'converged' if self.converged else 'NOT converged'}); best of {len(self.starts)} starts "
                f"({ok} converged); stayers' log-likelihood {self.stayers_loglik:.2f}"
                + (f"\n  variance prior: {self.var_prior:g} pseudo-mover(s) per cell (maximum a posteriori; "
                   f"objective {self.starts['objective'].max():.2f})" if self.var_prior > 0 else
                   "\n  no variance prior (maximum likelihood)"))
        if self.degenerate_cells:
            text += (f"\n  WARNING: {self.degenerate_cells} wage s.d.(s) at the floor sd_min (a degenerate mixture "
                     f"component): a variance prior (var_prior > 0), fewer types or classes, or more movers are "
                     f"needed")
        return text


def blm(data, y: str = "y", worker: str = "worker", firm: str = "firm", time: str = "year",
        classes: FirmClasses | None = None, k: int = 10, n_types: int = 6, n_starts: int = 20, max_iter: int = 1000,
        tol: float = 1e-8, sd_min: float = 1e-4, var_prior: float = 1.0, seed: int = 0,
        quiet: bool = True) -> BLMResult:
    """Static BLM model (Bonhomme, Lamadon and Manresa 2019, *Econometrica* 87(3):699-739), estimated by EM.

    ``data``: a panel (one row per worker and period) or an :class:`Events`; ``classes``: firm classes
    (:func:`firm_classes`, computed with ``k`` and ``seed`` if None).

    Model. A worker has a type ``l = 1..L`` (``n_types``) that does not change. For a mover from class ``k1`` to
    ``k2``: ``P(l | k1, k2) = p_{k1 k2}(l)``, ``y1 ~ N(a1(l, k1), s1(l, k1)^2)`` and ``y2 ~ N(a2(l, k2),
    s2(l, k2)^2)`` independent given the type (the static model of BLM section 2, without covariates). For a
    stayer at class ``k``: ``P(l | k) = q_k(l)``, ``y1 ~ N(a1(l, k), s1(l, k)^2)``. The movers' likelihood is
    maximised by EM from ``n_starts`` random starts (type means spread over the wage distribution, ``seed``);
    the start with the highest objective (below) is kept (every start is reported in ``starts``); convergence is
    a relative change of the mean objective below ``tol``. Types are then numbered by their mean ``a1`` across
    classes. The stayers' shares ``q_k`` are estimated by EM with the wage parameters fixed (BLM section 4).

    Variance prior (``var_prior``). A normal mixture's likelihood is unbounded: a (type, class) cell that fits
    one mover exactly, with its s.d. going to zero, makes it infinite, and EM on few movers per cell finds such
    spikes (on a 1% ASHE-style sample, 4 types x 10 classes, 257 movers: 15 of the 80 s.d.s at the floor
    ``sd_min``, and a positive log-likelihood per mover). So the variances get the data-scaled inverse-gamma
    prior of Fraley and Raftery (2007, *J. Classification* 24(2):155-181) and EM maximises the penalised
    log-likelihood (the objective: log-likelihood + log prior), a maximum a posteriori estimator: each
    ``s^2(l, k)`` (in each period) is ``(W + nu v0) / (n + nu)``, ``n`` and ``W`` the cell's posterior-weighted
    count of movers and sum of squared deviations, ``nu = var_prior`` pseudo-movers per cell at the prior
    variance ``v0`` = the pooled within-class variance of the period's movers' wages divided by ``L^2`` (Fraley
    and Raftery's ``var / G^2`` with the class removed). The penalised likelihood is bounded; Chen, Tan and Zhang
    (2008, *Statistica Sinica* 18(2):443-465) show that a penalty of this form (``-a (S / s^2 + log s^2)`` per
    component, ``S`` a sample variance) gives a consistent estimator; the prior weighs as ``nu`` movers in a cell,
    so it barely moves a cell with hundreds of movers; and it scales with the data, where an absolute floor such
    as ``sd_min`` is arbitrary. The means and type shares are unpenalised. ``var_prior=0`` is plain maximum likelihood. Measured while choosing
    the default, 4 types and 3 starts on three designs of :func:`simulate` (4 types x 4 true classes; 300 workers
    and 40 firms fitted with 4 classes, about 90 movers; 1,000 workers and 100 firms with 4 and with 10 classes,
    about 300 movers), 20 seeds each: without the prior 20, 8 and 20 of the 20 fits ended at the floor, with
    ``var_prior`` 0.5, 1, 2 or 5 none did; with 1 the root mean squared error of the sorting share went from
    0.054, 0.015, 0.033 to 0.022, 0.014, 0.016, of the worker share from 0.073, 0.052, 0.043 to 0.060, 0.046,
    0.035, of the firm share from 0.057, 0.033, 0.051 to 0.064, 0.029, 0.026 (larger priors shrink the s.d.s
    further towards ``v0`` and did no better). A degenerate cell is still reported (``degenerate_cells``, a
    warning) if one ends at ``sd_min``, which stays as a numerical guard.

    Variance decomposition (BLM section 5). On the period-1 cross-section, with ``pi(l, k)`` the share of type
    ``l`` at class ``k`` (stayers: ``q_k(l)`` times their count at ``k``; movers: their posterior type
    probabilities at ``k1``), the means ``a1(l, k)`` are projected on additive type and class effects by
    ``pi``-weighted least squares, ``a1(l, k) ~ alpha_l + psi_k``; ``var_alpha``, ``var_psi`` and
    ``cov_alpha_psi`` are their ``pi``-weighted moments; ``var_y`` is the variance of period-1 log wages and
    ``var_resid = var_y - var_alpha - var_psi - 2 cov`` (the non-additive part of ``a1`` and the within-cell
    variance; both are in ``decomposition.details``).

    Differences from pytwoway 0.3.21 (``BLMEstimator`` + ``BLMVarianceDecomposition``), and why:
    (i) pytwoway runs each start in two stages (a constrained fit, then unconstrained) and keeps, among the
    ``n_best`` highest likelihoods, the most connected model; here every start is one unconstrained EM run and
    the highest likelihood wins (the maximum-likelihood estimator; connectedness is a tie-break heuristic);
    (ii) pytwoway computes the decomposition by simulating types and wages from the fitted model and running an
    AKM regression on worker-type and firm-class dummies over both periods; here the same projection is computed
    exactly from the model's cell shares on period 1 (no simulation noise, deterministic);
    (iii) starting values are drawn around the data's wage quantiles (pytwoway draws them from normals with
    fixed means and spreads, ``a1_mu``, ``a1_sig``, ...), so that they scale with the data;
    (iv) pytwoway has no prior on the variances: a fixed lower bound ``s_lower_bound`` (1e-7) on the s.d.s and
    a Dirichlet prior on the type shares (``d_prior_movers``, ``d_prior_stayers``, default ``1 + 1e-7``, which
    only keeps shares off zero); its staged starts (means fixed, then constrained to be additive, then
    unconstrained) and its choice of the most connected of the best starts steer EM between optima but do not
    bound the likelihood. Here the variance prior above bounds it; type shares have no prior (empty shares are
    kept at 1e-300 before taking logs). On designs with hundreds of movers per cell the two agree
    (``benchmarks/results/groups.md``: shares, likelihood, CPU time on identical data)."""
    ev = _events_of(data, classes, y, worker, firm, time, k, seed)
    cl = ev.classes
    K, L = cl.k, int(n_types)
    if L < 1 or n_starts < 1:
        raise ValueError(f"n_types and n_starts must be >= 1, got {n_types}, {n_starts}")
    if not (np.isfinite(var_prior) and var_prior >= 0):
        raise ValueError(f"var_prior must be a finite number >= 0 (pseudo-movers per cell), got {var_prior}")
    t = ev.table
    mv = t["mover"].to_numpy()
    if mv.sum() < L * K:
        fail(f"{int(mv.sum())} movers for {L} types x {K} classes; BLM needs many movers per class pair "
             f"(reduce n_types or k)", "data", worker)
    y1, y2 = t["y1"].to_numpy()[mv], t["y2"].to_numpy()[mv]
    k1, k2 = t["g1"].to_numpy()[mv], t["g2"].to_numpy()[mv]
    c = k1 * K + k2
    rng = np.random.default_rng(seed)
    yall = np.r_[y1, y2]
    sd_y = float(yall.std())
    qs = np.quantile(yall, (np.arange(L) + 0.5) / L)
    v01, v02 = _prior_variance(y1, k1, K, L), _prior_variance(y2, k2, K, L)
    fits, rows = [], []
    for s in tqdm(range(n_starts), desc="BLM starts", disable=quiet):
        base = np.sort(qs + 0.25 * sd_y * rng.standard_normal(L))
        A1 = base[:, None] + 0.1 * sd_y * rng.standard_normal((L, K))
        A2 = base[:, None] + 0.1 * sd_y * rng.standard_normal((L, K))
        S = np.full((L, K), sd_y / max(L, 2) ** 0.5)
        out = _em_movers(y1, y2, c, k1, k2, K, L, A1, A2, S.copy(), S.copy(), max_iter, tol, sd_min,
                         var_prior, v01, v02)
        ll = out[5][-1] * len(y1)
        rows.append({"start": s, "loglik": ll, "objective": out[8], "iterations": out[6], "converged": out[7]})
        fits.append(out)
    starts = pd.DataFrame(rows)
    b = int(np.argmax(starts["objective"].to_numpy()))
    A1, A2, S1, S2, pk, liks, iters, conv, _obj = fits[b]
    order = np.argsort(A1.mean(1), kind="stable")
    A1, A2, S1, S2, pk = A1[order], A2[order], S1[order], S2[order], pk[:, order]
    # posterior type probabilities of movers at the final parameters
    lp = np.log(pk[c]) + _lognorm(y1[:, None], A1[:, k1].T, S1[:, k1].T) + _lognorm(y2[:, None], A2[:, k2].T,
                                                                                     S2[:, k2].T)
    qm = _posterior(lp)[1]
    ys, ks = t["y1"].to_numpy()[~mv], t["g1"].to_numpy()[~mv]
    if len(ys):
        pk0, sll, _ = _em_stayers(ys, ks, K, L, A1, S1, max_iter, tol)
    else:
        pk0, sll = np.full((K, L), 1.0 / L), 0.0
    n_st = np.bincount(ks, minlength=K)
    pi = (pk0 * n_st[:, None]).T + _type_shares(_indicator(k1, K), qm)[1].T  # L x K
    pi = pi / pi.sum()
    alpha, psi = _additive(pi, A1)
    al, ps = np.repeat(alpha, K), np.tile(psi, L)
    w = pi.ravel()
    resid_cells = A1.ravel() - (w @ A1.ravel()) - al - ps
    var_y = float(t["y1"].to_numpy().var())
    va, vp, cv = _moments(al, al, w), _moments(ps, ps, w), _moments(al, ps, w)
    dec = VarianceDecomposition(
        method="blm", var_y=var_y, var_alpha=va, var_psi=vp, cov_alpha_psi=cv, var_xb=0.0, cov_xb_effects=0.0,
        var_resid=var_y - va - vp - 2 * cv, n_obs=len(t),
        details={"interaction": float(w @ resid_cells ** 2), "within_cell": float(w @ (S1.ravel() ** 2)),
                 "types": L, "classes": K, "movers": int(mv.sum()), "stayers": int((~mv).sum())})
    table = pd.DataFrame({"type": np.repeat(np.arange(L), K), "cls": np.tile(np.arange(K), L),
                          "a1": A1.ravel(), "s1": S1.ravel(), "a2": A2.ravel(), "s2": S2.ravel(), "share": w,
                          "alpha": al, "psi": ps})
    floor = sd_min * (1 + 1e-9)
    degenerate = int((S1 <= floor).sum() + (S2 <= floor).sum())
    if degenerate:
        warnings.warn(f"blm: {degenerate} of the {2 * L * K} wage s.d.s ended at the floor sd_min={sd_min:g} (a "
                      f"degenerate mixture component fitted on {int(mv.sum()):,} movers, var_prior="
                      f"{var_prior:g}); the likelihoods and the decomposition are not reliable: use the variance "
                      f"prior (var_prior > 0), or fewer types or classes", RuntimeWarning, stacklevel=2)
    return BLMResult(table=table, decomposition=dec, loglik=float(liks[-1] * len(y1)), iterations=int(iters),
                     converged=bool(conv), starts=starts, stayers_loglik=sll, pk_movers=pk, pk_stayers=pk0,
                     classes=cl, n_movers=int(mv.sum()), n_stayers=int((~mv).sum()),
                     degenerate_cells=degenerate, var_prior=float(var_prior))


# --------------------------------------------------------------------------------------------------- CRE


def _cov(a, b):
    """Sample covariance (denominator n - 1, as pytwoway's ``np.cov``); NaN with fewer than two values."""
    n = len(a)
    if n < 2:
        return float("nan")
    return float(((a - a.mean()) * (b - b.mean())).sum() / (n - 1))


def _group_mean(key, v, n):
    s = np.bincount(key, v, minlength=n)
    c = np.bincount(key, minlength=n).astype(float)
    return s, c


def _leave_class_out(j, cell, tot1, tot2, n, cell1, cell2, ncell, y1n, y2n):
    """Covariances of movers' residual wages with the mean of the other movers through the same firm ``j``
    whose other firm is in a different class (firm sums ``tot1, tot2`` and counts ``n`` minus the sums and
    counts of the worker's (firm, other class) ``cell``): ``(cov(y1n, lo1), cov(y2n, lo1), cov(y2n, lo2))``."""
    keep = n[j] > ncell[cell]
    d = np.maximum(n[j] - ncell[cell], 1)
    lo1, lo2 = (tot1[j] - cell1[cell]) / d, (tot2[j] - cell2[cell]) / d
    return _cov(y1n[keep], lo1[keep]), _cov(y2n[keep], lo1[keep]), _cov(y2n[keep], lo2[keep])


@dataclass(frozen=True, repr=False)
class CREResult(GroupDecomposition):
    """Correlated random-effects estimates (:func:`cre`).

    ``table``: rows ``var_psi`` and ``cov_alpha_psi`` with columns ``between`` (class means), ``within``
    (deviations from them) and ``total``. ``decomposition``: ``method="cre"`` (worker effects implied, rest = the
    error variance; see :func:`cre`). ``moments``: the within-class covariances the estimator uses and ``params``
    the within parameters derived from them (names as in pytwoway's ``cre.py``, e.g. ``y1s_y1s``,
    ``cov_AsPsi1``); ``class_effects`` (the between-class firm effects, last class 0); and the fields of
    :class:`GroupDecomposition`."""

    moments: dict
    params: dict
    class_effects: np.ndarray

    def summary(self) -> str:
        return ("Correlated random effects (Bonhomme et al. 2023): " + super().summary() + "\n"
                + self.table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def cre(data, y: str = "y", worker: str = "worker", firm: str = "firm", time: str = "year",
        classes: FirmClasses | None = None, k: int = 10, seed: int = 0) -> CREResult:
    """Correlated random-effects (CRE) variance decomposition of Bonhomme, Holzheu, Lamadon, Manresa, Mogstad and
    Setzler (2023, *JOLE* 41(2):291-322), as pytwoway's ``CREEstimator`` computes it.

    ``data``: a panel (one row per worker and period) or an :class:`Events`; ``classes`` as in :func:`blm`.
    Firm effects are ``psi_j = mu(k_j) + u_j`` (class mean plus a within-class random effect), worker effects
    have a class-pair-specific mean plus a random part correlated with ``u``.

    Between. ``mu`` by least squares of movers' wage changes on class dummies (``y2 - y1 = mu(k2) - mu(k1) +
    e``, last class 0); the mean worker effect of a mover with classes ``(k1, k2)`` is the cell mean of
    ``((y1 - mu(k1)) + (y2 - mu(k2))) / 2``, of a stayer at ``k`` the class mean of ``y1 - mu(k)``.
    ``var_bw`` and ``cov_bw`` are the variance of ``mu`` and its covariance with the mean worker effect over the
    cross-section. Within. With residual wages ``yn = y - mu - mean worker effect``: the covariance of a stayer's
    ``yn`` with the leave-one-out mean of the other stayers at its firm, and with the means of the movers leaving
    and joining its firm; for movers, covariances with the means of the other movers leaving (joining) the same
    firm towards (from) a different class (leaving out the worker and every co-mover who shares its other class,
    hence its other firm, whose effect would enter both sides). Solving these
    moment equations gives ``var_psi`` within (the average of the leavers' and joiners' estimates) and the
    covariances ``cov(alpha, u)`` for stayers and movers, averaged with their counts. Totals are between +
    within. Stayers enter the firm-mean moments only at firms with both leavers and joiners (as in pytwoway).

    Additions beyond pytwoway, and why: the decomposition also reports ``var_resid``, the error variance,
    as half the variance of stayers' wage changes between their first two periods (the firm and worker effects
    cancel), and ``var_alpha = var_y - var_psi - 2 cov - var_resid`` (implied), so that CRE sits in the same
    table as the fixed-effect decompositions; pytwoway reports only the firm-effect variance and the covariance.
    The computation uses firm-level sums (``numpy.bincount``) instead of pandas merges; the moments are the same
    (sample covariances with denominator n - 1 as in pytwoway; ``var_y`` with denominator n). The optional
    posterior variance of pytwoway (``posterior=True``) is not computed."""
    ev = _events_of(data, classes, y, worker, firm, time, k, seed)
    cl = ev.classes
    K = cl.k
    nf = len(ev.firm_ids)
    t = ev.table
    mv = t["mover"].to_numpy()
    if mv.sum() < 2 or (~mv).sum() < 2:
        fail(f"{int(mv.sum())} movers and {int((~mv).sum())} stayers; CRE needs both", "data", worker)
    y1m, y2m = t["y1"].to_numpy()[mv], t["y2"].to_numpy()[mv]
    j1, j2 = t["j1"].to_numpy()[mv], t["j2"].to_numpy()[mv]
    g1, g2 = t["g1"].to_numpy()[mv], t["g2"].to_numpy()[mv]
    ys, js, gs = t["y1"].to_numpy()[~mv], t["j1"].to_numpy()[~mv], t["g1"].to_numpy()[~mv]
    ys2 = t["y2"].to_numpy()[~mv]
    # between: mu from wage changes of movers (normal equations of (D2 - D1) mu = dy, last class fixed at 0)
    M = np.zeros((K, K))
    np.add.at(M, (g2, g2), 1.0)
    np.add.at(M, (g1, g1), 1.0)
    np.add.at(M, (g1, g2), -1.0)
    np.add.at(M, (g2, g1), -1.0)
    dy = y2m - y1m
    rhs = np.bincount(g2, dy, minlength=K) - np.bincount(g1, dy, minlength=K)
    mu = np.zeros(K)
    mu[:-1] = np.linalg.lstsq(M[:-1, :-1], rhs[:-1], rcond=None)[0]
    cell = g1 * K + g2
    s, n_ = _group_mean(cell, 0.5 * (y1m - mu[g1] + y2m - mu[g2]), K * K)
    mx_m = (s / np.maximum(n_, 1))[cell]
    s, n_ = _group_mean(gs, ys - mu[gs], K)
    mx_s = (s / np.maximum(n_, 1))[gs]
    psi_c = np.r_[mu[gs], mu[g1]]
    mx_c = np.r_[mx_s, mx_m]
    var_bw, cov_bw = _cov(psi_c, psi_c), _cov(psi_c, mx_c)
    # within: residual wages and firm-level means
    y1n, y2n = y1m - mu[g1] - mx_m, y2m - mu[g2] - mx_m
    sn = ys - mu[gs] - mx_s
    s_sum, s_n = _group_mean(js, sn, nf)
    l1_1, n1 = _group_mean(j1, y1n, nf)
    l1_2 = np.bincount(j1, y2n, minlength=nf)
    a2_1, n2 = _group_mean(j2, y1n, nf)
    a2_2 = np.bincount(j2, y2n, minlength=nf)
    c1 = j1 * K + g2  # leavers of j1 towards class g2
    c1_1, n1c = _group_mean(c1, y1n, nf * K)
    c1_2 = np.bincount(c1, y2n, minlength=nf * K)
    c2 = j2 * K + g1  # joiners of j2 from class g1
    c2_1, n2c = _group_mean(c2, y1n, nf * K)
    c2_2 = np.bincount(c2, y2n, minlength=nf * K)
    mom = {}
    both = (n1[js] > 0) & (n2[js] > 0)  # stayers at firms with leavers and joiners
    snb, jsb = sn[both], js[both]
    lo = s_n[jsb] > 1
    mom["y1s_y1s"] = _cov(snb[lo], ((s_sum[jsb] - snb) / np.maximum(s_n[jsb] - 1, 1))[lo])
    mom["y1s_y1m1"] = _cov(snb, (l1_1 / np.maximum(n1, 1))[jsb])
    mom["y1s_y2m1"] = _cov(snb, (l1_2 / np.maximum(n1, 1))[jsb])
    mom["y1s_y1m2"] = _cov(snb, (a2_1 / np.maximum(n2, 1))[jsb])
    mom["y1s_y2m2"] = _cov(snb, (a2_2 / np.maximum(n2, 1))[jsb])
    mom["y1m1_y1m1"], mom["y2m1_y1m1"], mom["y2m1_y2m1"] = _leave_class_out(
        j1, c1, l1_1, l1_2, n1, c1_1, c1_2, n1c, y1n, y2n)
    mom["y1m2_y1m2"], mom["y2m2_y1m2"], mom["y2m2_y2m2"] = _leave_class_out(
        j2, c2, a2_1, a2_2, n2, c2_1, c2_2, n2c, y1n, y2n)
    dif = g1 != g2
    mom["dym_dym"] = _cov((y2n - y1n)[dif], (y2n - y1n)[dif])
    p = {}
    p["cov_Am1Am1"] = mom["y2m1_y2m1"]
    p["cov_Am1Psi1"] = mom["y2m1_y1m1"] - p["cov_Am1Am1"]
    p["var_psi_m1"] = mom["y1m1_y1m1"] - p["cov_Am1Am1"] - 2 * p["cov_Am1Psi1"]
    p["cov_Am2Am2"] = mom["y1m2_y1m2"]
    p["cov_Am2Psi2"] = mom["y2m2_y1m2"] - p["cov_Am2Am2"]
    p["var_psi_m2"] = mom["y2m2_y2m2"] - p["cov_Am2Am2"] - 2 * p["cov_Am2Psi2"]
    p["psi_plus_cov1"] = mom["y1s_y1m1"] - mom["y1s_y2m1"]
    p["psi_plus_cov2"] = mom["y1s_y2m2"] - mom["y1s_y1m2"]
    p["var_psi"] = (p["var_psi_m1"] + p["var_psi_m2"]) / 2
    p["cov_AsPsi1"] = p["psi_plus_cov1"] + p["psi_plus_cov2"] - p["var_psi"]
    p["cov_AsAs"] = mom["y1s_y1s"] - p["var_psi"] - 2 * p["cov_AsPsi1"]
    ns, nm = int((~mv).sum()), int(mv.sum())
    var_wt = p["var_psi"]
    cov_wt = (ns * p["cov_AsPsi1"] + nm * p["cov_Am1Psi1"]) / (ns + nm)
    yc = np.r_[ys, y1m]
    var_y = float(yc.var())
    two = ~np.isnan(ys2)
    var_e = float(np.var(ys2[two] - ys[two]) / 2) if two.sum() > 1 else float("nan")
    var_psi, cov = var_bw + var_wt, cov_bw + cov_wt
    dec = VarianceDecomposition(
        method="cre", var_y=var_y, var_alpha=float(var_y - var_psi - 2 * cov - var_e), var_psi=float(var_psi),
        cov_alpha_psi=float(cov), var_xb=0.0, cov_xb_effects=0.0, var_resid=var_e, n_obs=len(yc),
        details={"var_bw": var_bw, "var_wt": var_wt, "cov_bw": cov_bw, "cov_wt": cov_wt, "classes": K,
                 "movers": nm, "stayers": ns})
    table = pd.DataFrame({"component": ["var_psi", "cov_alpha_psi"], "between": [var_bw, cov_bw],
                          "within": [var_wt, cov_wt], "total": [var_psi, cov]})
    return CREResult(table=table, decomposition=dec, moments=mom, params=p, class_effects=mu, classes=cl,
                     n_movers=nm, n_stayers=ns)


# --------------------------------------------------------------------------------------------------- design


def simulate(n_workers: int = 20_000, n_firms: int = 400, years: int = 2, n_types: int = 4, n_classes: int = 4,
             move: float = 0.3, sd_alpha: float = 0.4, sd_psi: float = 0.25, sorting: float = 1.0,
             within_psi: float = 0.0, sd_eps: float = 0.2, seed: int = 0) -> pd.DataFrame:
    """A BLM design for tests and benchmarks: ``n_types`` worker types and ``n_classes`` firm classes.

    Firms get a class at random (equal shares) and an effect ``psi_j = psi(k_j) + u_j`` (class effects evenly
    spaced with s.d. ``sd_psi``, ``u_j ~ N(0, within_psi^2)``); types have evenly spaced effects with s.d.
    ``sd_alpha``. Sorting: a worker of type ``l`` draws the class of each new firm with probabilities
    ``softmax(sorting * z_l * z_k)`` (``z``: standardised type and class ranks), then a firm of that class at
    random; in each later period the worker moves with probability ``move``. ``y = alpha + psi_j + e``,
    ``e ~ N(0, sd_eps^2)``. Columns ``worker, firm, year, y, type, cls, alpha_true, psi_true``.
    (Test support, like :mod:`prosperity.testing`; kept here beside the estimators it is designed for.)"""
    rng = np.random.default_rng(seed)
    zl = np.linspace(-1, 1, n_types) if n_types > 1 else np.zeros(1)
    zk = np.linspace(-1, 1, n_classes) if n_classes > 1 else np.zeros(1)
    a_l = zl / (zl.std() or 1) * sd_alpha
    p_k = zk / (zk.std() or 1) * sd_psi
    fcls = rng.permutation(np.arange(n_firms) % n_classes)
    psi_f = p_k[fcls] + within_psi * rng.standard_normal(n_firms)
    by_cls = np.argsort(fcls, kind="stable")  # firms grouped by class
    sizes = np.bincount(fcls, minlength=n_classes)
    offset = np.r_[0, np.cumsum(sizes)[:-1]]
    typ = rng.integers(n_types, size=n_workers)
    P = np.exp(sorting * zl[:, None] * zk[None, :])
    P /= P.sum(1, keepdims=True)
    cum = P.cumsum(1)
    n = n_workers * years
    worker = np.repeat(np.arange(n_workers), years)
    year = np.tile(np.arange(years), n_workers)
    draw = (year == 0) | (rng.random(n) < move)
    kk = np.minimum((rng.random(n)[:, None] > cum[typ[worker]]).sum(1), n_classes - 1)
    pick = by_cls[offset[kk] + np.minimum((rng.random(n) * sizes[kk]).astype(np.int64), sizes[kk] - 1)]
    last = np.where(draw, np.arange(n), 0)
    np.maximum.accumulate(last, out=last)
    f = pick[last]
    # a redraw can land on the same firm: then it is not a move, which is fine
    alpha = a_l[typ[worker]]
    yv = alpha + psi_f[f] + sd_eps * rng.standard_normal(n)
    return pd.DataFrame({"worker": worker, "firm": f, "year": year + 2005, "y": yv, "type": typ[worker],
                         "cls": fcls[f], "alpha_true": alpha, "psi_true": psi_f[f]})

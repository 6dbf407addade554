"""The worker-firm mobility network: movers, connected sets and the leave-one-out connected set.

Firm effects in the AKM model are identified only from workers who move between firms, and only relative to other
firms in the same connected component of the bipartite graph whose nodes are workers and firms and whose edges are
employment spells (Abowd, Creecy and Kramarz 2002; Card, Heining and Kline 2013, *QJE*). The usual estimation
sample is the **largest connected set**. The leave-out bias correction of Kline, Saggio and Solvsten (2020,
*Econometrica* 88(5):1859-1898) needs more: every firm must stay connected to the rest after removing **any single
worker** (otherwise some leverage ``P_ll = 1`` and the leave-out estimate does not exist). Their computational
appendix (and the ``pruning_unbal_v3`` routine of the LeaveOutTwoWay code) finds it by repeatedly removing the
movers who are articulation points of the worker-firm graph and re-taking the largest connected set; workers left
with a single observation (leave-observation-out) or a single match (leave-match-out) are then dropped because
their own effect cannot be estimated without that observation.

Every function takes a plain DataFrame and column names. Every restriction records what it removed in a ledger
(``step, rows_in, rows_out, dropped, workers_dropped, firms_dropped, reason``): no row is dropped silently.

The largest connected set is the component with the most rows (person-years); ties are broken in favour of the
component of the firm that appears first in the data.

Computation: every restriction keeps or drops whole workers, so after one pass over the rows (factorising the ids
and counting the distinct worker-firm matches) the pruning works on worker masks and matches only. Components come
from ``scipy.sparse.csgraph`` on the graph of firms linked by movers (stayers are leaves and cannot connect
anything). Articulation workers come from the parallel biconnectivity algorithm of Tarjan and Vishkin (1985,
*SIAM J. Comput.* 14(4):862-874), vectorised over a breadth-first spanning tree: linear in the size of the graph,
no Python loop over vertices and no depth-first search (which is quadratic in a vertex's degree in scipy, and
whose igraph version spends most of its time converting the edge list from numpy).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

__all__ = [
    "movers",
    "components",
    "summarize",
    "connected_set",
    "largest_connected_set",
    "leave_one_out_set",
    "ConnectedSet",
]

LEDGER_COLUMNS = ["step", "rows_in", "rows_out", "dropped", "workers_dropped", "firms_dropped", "reason"]


def _validate(data: pd.DataFrame, worker: str, firm: str, table: str = "data") -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"{table} must be a pandas DataFrame, got {type(data).__name__}")
    for c in (worker, firm):
        if c not in data.columns:
            raise KeyError(f"{table} has no column {c!r}; available: {list(data.columns)[:20]}")
        bad = data[c].isna().to_numpy()
        if bad.any():
            rows = np.flatnonzero(bad)[:5].tolist()
            other = firm if c == worker else worker
            raise ValueError(f"{table}.{c} has {int(bad.sum())} missing id(s) (rows {rows}; "
                             f"{other} = {data[other].iloc[rows].tolist()})")


def _codes(data, worker, firm, sort: bool = False):
    wc, wid = pd.factorize(data[worker], sort=sort)
    fc, fid = pd.factorize(data[firm], sort=sort)
    return wc.astype(np.int32), fc.astype(np.int32), len(wid), len(fid), wid, fid


def _id_codes(s: pd.Series) -> tuple[np.ndarray, int]:
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


# ----------------------------------------------------------------------------------------------------------------
# integer-coded kernels (no pandas)


def _component_labels(wc: np.ndarray, fc: np.ndarray, nw: int, nf: int) -> tuple[int, np.ndarray]:
    """Connected components of the bipartite graph; returns (count, label of every firm)."""
    A = sp.csr_matrix((np.ones(len(wc), dtype=np.int8), (wc, fc)), shape=(nw, nf))
    # firms are linked through shared workers: components of the bipartite graph restricted to firms equal the
    # components of the graph on workers + firms; build the symmetric bipartite adjacency.
    B = sp.bmat([[None, A], [A.T, None]], format="csr")
    ncomp, labels = connected_components(B, directed=False)
    return ncomp, labels[nw:]


class _Matches:
    """Distinct (worker, firm) matches of a panel, sorted by worker: the network at the level of matches.

    Every restriction in :func:`connected_set` keeps or drops whole workers (a worker is one vertex of the
    worker-firm graph), so all its steps work on worker masks and these matches (about a fifth of the rows of a
    typical panel), never on the rows themselves.
    """

    def __init__(self, wc: np.ndarray, fc: np.ndarray, nw: int, nf: int, first_row=None):
        # first_row(firm_mask): (row, firm code) of the first row of the data whose firm is in the mask (ties)
        self.first_row = first_row
        A = sp.csr_matrix((np.ones(len(wc), dtype=np.int32), (wc, fc)), shape=(nw, nf))
        A.sum_duplicates()
        self.nw, self.nf = nw, nf
        self.n_firms = np.diff(A.indptr)  # distinct firms per worker
        self.pw = np.repeat(np.arange(nw, dtype=np.int32), self.n_firms)  # worker of each match
        self.pf = A.indices  # firm of each match
        self.rows = A.data  # rows (person-periods) in each match
        self.n_obs = np.bincount(self.pw, weights=self.rows, minlength=nw).astype(np.int64)  # rows per worker
        self.mover = self.n_firms > 1
        # a firm of each worker (all its rows are in one component): the first of its matches
        self.first_firm = self.pf[np.minimum(A.indptr[:-1], max(len(self.pf) - 1, 0))]

    def firms_present(self, keep_w: np.ndarray) -> np.ndarray:
        return np.bincount(self.pf[keep_w[self.pw]], minlength=self.nf) > 0

    def counts(self, keep_w: np.ndarray) -> tuple[int, int, int]:
        """(rows, workers, firms) of the kept workers."""
        return (int(self.n_obs[keep_w].sum()), int(np.count_nonzero(keep_w)),
                int(np.count_nonzero(self.firms_present(keep_w))))

    def firm_components(self, keep_w: np.ndarray) -> tuple[int, np.ndarray]:
        """Connected components of the kept network, as a label for every firm (firms without kept rows are
        singletons). Stayers are leaves of the worker-firm graph, so firms are connected exactly when a chain of
        movers links them: the graph on firms with an edge between consecutive firms of every kept mover."""
        k = keep_w[self.pw]
        same = k[1:] & (self.pw[1:] == self.pw[:-1])
        G = sp.csr_matrix((np.ones(int(same.sum()), dtype=np.int8), (self.pf[:-1][same], self.pf[1:][same])),
                          shape=(self.nf, self.nf))
        return connected_components(G, directed=True, connection="weak")

    def largest(self, keep_w: np.ndarray) -> tuple[np.ndarray, int]:
        """Workers of the component with the most rows, and the number of components with rows. Ties go to the
        component of the firm that appears first in the data."""
        if not keep_w.any():
            return keep_w.copy(), 0
        ncomp, flab = self.firm_components(keep_w)
        k = keep_w[self.pw]
        rows_per = np.bincount(flab[self.pf[k]], weights=self.rows[k], minlength=ncomp)
        present = self.firms_present(keep_w)
        n_used = int(np.count_nonzero(np.bincount(flab[present], minlength=ncomp)))
        top = np.flatnonzero(rows_per == rows_per.max())
        if top.size == 1:
            best = top[0]
        else:
            tied = np.zeros(ncomp, dtype=bool)
            tied[top] = True
            if self.first_row is None:  # codes in order of first appearance
                best = flab[np.flatnonzero(tied[flab])[0]]
            else:
                best = flab[self.first_row(tied[flab])[1]]
        return keep_w & (flab[self.first_firm] == best), n_used

    def articulation_workers(self, keep_w: np.ndarray) -> np.ndarray:
        """Mask of the kept movers who are articulation points of the graph of kept movers and their firms."""
        k = keep_w[self.pw] & self.mover[self.pw]
        pw, pf = self.pw[k], self.pf[k]
        out = np.zeros(self.nw, dtype=bool)
        if pw.size == 0:
            return out
        # compact numbering: movers 0..a-1, their firms a..a+b-1
        wu, wi = _compact(pw, self.nw)
        fu, fi = _compact(pf, self.nf)
        ap = _articulation_points(len(wu) + len(fu), wi, fi + len(wu))
        out[wu[ap[:len(wu)]]] = True
        return out

    def summary(self, keep_w: np.ndarray) -> pd.Series:
        """The statistics of :func:`summarize` for the kept workers."""
        if not keep_w.any():
            return pd.Series({"rows": 0, "workers": 0, "firms": 0, "movers": 0, "components": 0,
                              "movers_per_firm": np.nan, "median_movers_per_firm_weighted": np.nan})
        k = keep_w[self.pw]
        rows_f = np.bincount(self.pf[k], weights=self.rows[k], minlength=self.nf)
        present = self.firms_present(keep_w)
        mk = k & self.mover[self.pw]
        mpf = np.bincount(self.pf[mk], minlength=self.nf)[present]
        rows_f = rows_f[present]
        o = np.argsort(mpf, kind="stable")
        cw = np.cumsum(rows_f[o])
        med = float(mpf[o][np.searchsorted(cw, cw[-1] / 2.0)])
        ncomp, flab = self.firm_components(keep_w)
        n_comp_used = int(np.count_nonzero(np.bincount(flab[present], minlength=ncomp)))
        return pd.Series({"rows": int(self.n_obs[keep_w].sum()), "workers": int(np.count_nonzero(keep_w)),
                          "firms": int(present.sum()), "movers": int(np.count_nonzero(keep_w & self.mover)),
                          "components": n_comp_used, "movers_per_firm": float(mpf.mean()),
                          "median_movers_per_firm_weighted": med})


def _compact(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(distinct codes in increasing order, position of each element among them), in linear time."""
    used = np.zeros(size, dtype=bool)
    used[codes] = True
    u = np.flatnonzero(used)
    pos = np.cumsum(used, dtype=np.int64) - 1
    return u, pos[codes]


def _articulation_points(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Articulation points (cut vertices) of the undirected graph with ``n`` vertices and edges ``(u[i], v[i])``.

    The parallel biconnectivity algorithm of Tarjan and Vishkin (1985, *SIAM J. Comput.* 14(4):862-874), run in
    vectorised numpy on a breadth-first spanning tree (so it needs no depth-first search, which would be a Python
    loop or, in ``scipy.sparse.csgraph.depth_first_order``, quadratic in the degree of a vertex):

    1. a BFS tree ``T`` (scipy); its preorder numbers ``pre`` and subtree sizes ``nd``, level by level;
    2. ``low(v)``/``high(v)``: the smallest/largest ``pre`` reached from the subtree of ``v`` by one non-tree edge;
    3. the tree edges are the vertices of an auxiliary graph, linked when (a) a non-tree edge joins two unrelated
       vertices (neither an ancestor of the other): their parent edges; (b) ``w``'s subtree reaches outside the
       subtree of its parent ``v`` (``low(w) < pre(v)`` or ``high(w) >= pre(v) + nd(v)``): the edges
       ``(p(v), v)`` and ``(v, w)``. Its connected components are the biconnected components (blocks) of the graph;
    4. a vertex is an articulation point iff its tree edges lie in two or more blocks.

    Parallel edges and self-loops are allowed (they do not change articulation points). Work ``O(n + m)`` in a
    number of numpy calls proportional to the depth of ``T`` (tens on labour-market networks; a bare path of 20,000
    vertices takes about 0.8 s). Returns a boolean mask of length ``n``.
    """
    from scipy.sparse.csgraph import breadth_first_order

    itype = np.int32 if n < 2**31 - 2 else np.int64
    u = np.asarray(u, dtype=itype)
    v = np.asarray(v, dtype=itype)
    ap = np.zeros(n, dtype=bool)
    if n < 3 or u.size == 0:
        return ap
    deg = np.bincount(u, minlength=n) + np.bincount(v, minlength=n)

    def bfs(u, v, N, root):
        S = sp.csr_matrix((np.ones(2 * u.size), (np.r_[u, v], np.r_[v, u])), shape=(N, N))
        return breadth_first_order(S, root, directed=True, return_predecessors=True)

    N, root, ncomp = n, int(np.argmax(deg)), 1
    order, pred = bfs(u, v, N, root)
    if order.size < n:
        # several components: a super-root joined to one vertex (the one of largest degree) of every component; its
        # edges are bridges in blocks of their own, and the representatives are treated as roots of their trees
        G = sp.csr_matrix((np.ones(u.size), (u, v)), shape=(n, n))
        ncomp, lab = connected_components(G, directed=True, connection="weak")
        best = np.lexsort((-deg, lab))
        reps = best[np.r_[0, np.flatnonzero(np.diff(lab[best])) + 1]].astype(itype)
        u = np.concatenate([u, np.full(ncomp, n, dtype=itype)])
        v = np.concatenate([v, reps])
        N, root = n + 1, n
        order, pred = bfs(u, v, N, root)
    # everything below is indexed by BFS position: the root is 0, parents come before their children, the children
    # of a vertex are consecutive and the parent positions P are non-decreasing
    pos = np.empty(N, dtype=np.int64)
    pos[order] = np.arange(N)
    P = np.empty(N, dtype=np.int64)
    P[0] = -1
    P[1:] = pos[pred[order[1:]]]
    a, b = pos[u], pos[v]
    tree = (P[b] == a) | (P[a] == b)
    a, b = a[~tree], b[~tree]
    # levels: level k occupies positions bounds[k]:bounds[k+1]
    bounds = [0, 1]
    while bounds[-1] < N:
        nxt = int(np.searchsorted(P, bounds[-1], side="left"))
        if nxt <= bounds[-1]:
            raise RuntimeError("breadth-first tree does not span the graph")
        bounds.append(nxt)
    levels = list(zip(bounds[1:-1], bounds[2:]))
    nd = np.ones(N, dtype=np.int64)
    for lo, hi in reversed(levels):
        np.add.at(nd, P[lo:hi], nd[lo:hi])
    pre = np.zeros(N, dtype=np.int64)
    for lo, hi in levels:
        par, s = P[lo:hi], nd[lo:hi]
        cs = np.cumsum(s)
        start = np.r_[True, par[1:] != par[:-1]]
        first = np.flatnonzero(start)
        grp = np.cumsum(start) - 1
        pre[lo:hi] = pre[par] + 1 + (cs - s) - (cs[first] - s[first])[grp]
    low, high = pre.copy(), pre.copy()
    np.minimum.at(low, a, pre[b])
    np.minimum.at(low, b, pre[a])
    np.maximum.at(high, a, pre[b])
    np.maximum.at(high, b, pre[a])
    for lo, hi in reversed(levels):
        np.minimum.at(low, P[lo:hi], low[lo:hi])
        np.maximum.at(high, P[lo:hi], high[lo:hi])
    # auxiliary graph on tree edges (tree edge (P[w], w) is vertex w)
    a_desc_b = (pre[a] <= pre[b]) & (pre[b] < pre[a] + nd[a])
    b_desc_a = (pre[b] <= pre[a]) & (pre[a] < pre[b] + nd[b])
    unrelated = ~(a_desc_b | b_desc_a)
    w = np.arange(1, N)
    pv = P[1:]
    rootlike = np.zeros(N, dtype=bool)
    rootlike[0] = True
    if ncomp > 1:
        rootlike[1:][pv == 0] = True
    joined = ~rootlike[pv] & ((low[w] < pre[pv]) | (high[w] >= pre[pv] + nd[pv]))
    ea = np.r_[a[unrelated], pv[joined]]
    eb = np.r_[b[unrelated], w[joined]]
    H = sp.csr_matrix((np.ones(ea.size), (ea.astype(itype), eb.astype(itype))), shape=(N, N))
    _, block = connected_components(H, directed=True, connection="weak")
    # reference block of each vertex: its parent edge, or (roots) the edge to its first child
    first_child = np.searchsorted(P, np.arange(N), side="left").clip(max=N - 1)
    ref = np.where(rootlike, block[first_child], block)
    ap_pos = np.zeros(N, dtype=bool)
    ap_pos[pv[block[w] != ref[pv]]] = True
    ap_v = np.empty(N, dtype=bool)
    ap_v[order] = ap_pos
    return ap_v[:n]


# ----------------------------------------------------------------------------------------------------------------
# public functions


def movers(data: pd.DataFrame, worker: str, firm: str) -> pd.DataFrame:
    """One row per worker: ``n_obs`` (rows), ``n_firms`` (distinct firms) and ``mover`` (worked for 2+ firms)."""
    _validate(data, worker, firm)
    g = data.groupby(worker, sort=True, observed=True)[firm]
    out = pd.DataFrame({"n_obs": g.size(), "n_firms": g.nunique()})
    out["mover"] = out["n_firms"] > 1
    return out.reset_index()


def movers_per_firm(data: pd.DataFrame, worker: str, firm: str) -> pd.Series:
    """Distinct movers (workers seen at two or more firms) who ever worked at each firm, indexed by firm id
    (firms without movers count 0). With few movers per firm, firm effects are noisy: limited-mobility bias
    (Andrews et al. 2008, JRSS-A; Bonhomme et al. 2023, JOLE)."""
    m = movers(data, worker, firm)
    is_mover = data[worker].isin(m.loc[m["mover"], worker])
    counts = data.loc[is_mover].groupby(firm, observed=True)[worker].nunique()
    return counts.reindex(pd.unique(data[firm]), fill_value=0).rename("movers")


def components(data: pd.DataFrame, worker: str, firm: str) -> pd.DataFrame:
    """Connected components of the worker-firm graph, one row per firm.

    Columns: the firm id, ``component`` (0 = the largest by rows, then by decreasing size), ``component_rows``,
    ``component_firms``.
    """
    _validate(data, worker, firm)
    wc, fc, nw, nf, _, fid = _codes(data, worker, firm, sort=True)
    ncomp, flab = _component_labels(wc, fc, nw, nf)
    rows_per = np.bincount(flab[fc], minlength=ncomp)
    firms_per = np.bincount(flab, minlength=ncomp)
    order = np.lexsort((np.arange(ncomp), -rows_per))
    rank = np.empty(ncomp, dtype=np.int64)
    rank[order] = np.arange(ncomp)
    return pd.DataFrame({firm: fid, "component": rank[flab], "component_rows": rows_per[flab],
                         "component_firms": firms_per[flab]})


def summarize(data: pd.DataFrame, worker: str, firm: str) -> pd.Series:
    """Size of a worker-firm sample: rows, workers, firms, movers, components, movers per firm.

    ``movers_per_firm`` is the mean over firms of the number of distinct movers who ever worked there;
    ``median_movers_per_firm_weighted`` is its median weighted by firm rows (the statistic of Bonhomme et al.
    2023, Table 1).
    """
    _validate(data, worker, firm)
    wc, nw = _id_codes(data[worker])
    fc, nf = _id_codes(data[firm])
    return _Matches(wc, fc, nw, nf).summary(np.ones(nw, dtype=bool))


@dataclass(frozen=True)
class ConnectedSet:
    """A restricted worker-firm sample and the ledger of what each step removed.

    Attributes: ``data`` (the kept rows, original columns and index), ``ledger`` (DataFrame, one row per step:
    ``step, rows_in, rows_out, dropped, workers_dropped, firms_dropped, reason``), ``summary`` (DataFrame with a
    column per stage: ``input`` and ``kept``, rows as in :func:`summarize`), ``leave_out`` (None, "obs" or
    "match"), ``worker``, ``firm`` (column names), ``iterations`` (pruning rounds).
    """

    data: pd.DataFrame = field(repr=False)
    ledger: pd.DataFrame
    summary: pd.DataFrame
    leave_out: str | None
    worker: str
    firm: str
    iterations: int = 0

    def to_frame(self) -> pd.DataFrame:
        return self.ledger.copy()


def connected_set(data: pd.DataFrame, worker: str, firm: str, leave_out: str | None = None,
                  max_iter: int = 100) -> ConnectedSet:
    """Restrict a worker-firm panel to its largest connected set, or to the leave-one-out connected set.

    Steps (each recorded in the ledger):

    1. ``largest connected set``: keep the component of the worker-firm graph with the most rows.
    2. (``leave_out`` given) ``articulation workers, round k``: drop every mover who is an articulation point of the
       graph of movers and firms (removing that one worker would cut some firms off), then re-take the largest
       connected set (``largest connected set, round k``); repeat until no articulation worker is left. This is the
       leave-one-out connected set of Kline, Saggio and Solvsten (2020), computational appendix, as in
       LeaveOutTwoWay's ``pruning_unbal_v3``.
    3. (``leave_out="obs"``) drop workers with a single row (their leverage is 1); (``leave_out="match"``) drop
       workers with a single worker-firm match (stayers: their effect is not estimable leaving their only match
       out), as LeaveOutTwoWay does for its collapsed leave-match-out estimator. Step 2 is repeated if this
       disconnects anything (it cannot: it drops only stayers, leaves of the graph, so the articulation check of
       the unchanged graph of movers is not recomputed; the round is still recorded).

    Articulation workers are found in one pass per round by the vectorised Tarjan-Vishkin algorithm (see the
    module docstring); the result is the same as removing each mover in turn and checking connectivity.

    Parameters
    ----------
    data : DataFrame with one row per worker-period (other columns are carried along).
    worker, firm : id columns.
    leave_out : None (largest connected set only), ``"obs"`` or ``"match"``; ``"worker"`` is accepted as an alias
        of ``"match"`` for the pruning (the graph condition is the same).

    Returns
    -------
    :class:`ConnectedSet`. Its ``data`` is ``data`` itself (not a copy) when no row is dropped, so a large panel is
    not duplicated; copy it before modifying it in place.
    """
    _validate(data, worker, firm)
    if leave_out not in (None, "obs", "match", "worker"):
        raise ValueError(f"leave_out must be None, 'obs' or 'match', got {leave_out!r}")
    lo = "match" if leave_out == "worker" else leave_out
    wc, nw = _id_codes(data[worker])
    fc, nf = _id_codes(data[firm])

    def first_row(firm_mask):
        codes, _ = _id_codes(data[firm])  # recomputed only to break a tie between components
        i = int(np.argmax(firm_mask[codes]))
        return i, int(codes[i])

    net = _Matches(wc, fc, nw, nf, first_row=first_row)
    del fc
    # every step keeps or drops whole workers: the state is a mask over workers
    keep = np.ones(nw, dtype=bool)
    ledger = []

    def record(step, before, after, reason):
        rb, wb, fb = net.counts(before)
        ra, wa, fa = net.counts(after)
        ledger.append({"step": step, "rows_in": rb, "rows_out": ra, "dropped": rb - ra, "workers_dropped": wb - wa,
                       "firms_dropped": fb - fa, "reason": reason})

    def largest(mask, step):
        new, ncomp = net.largest(mask)
        record(step, mask, new, f"firms outside the largest connected component ({ncomp} components)")
        return new

    keep = largest(keep, "largest connected set")
    it = 0
    ap_checked = None  # movers of the last articulation check that found none
    if lo is not None:
        while True:
            if it >= max_iter:
                raise RuntimeError(f"leave-one-out pruning did not settle in {max_iter} rounds")
            it += 1
            kept_movers = keep & net.mover
            if ap_checked is not None and np.array_equal(kept_movers, ap_checked):
                ap = np.zeros(nw, dtype=bool)  # same graph of movers as the last check: still none
            else:
                ap = net.articulation_workers(keep)
            if ap.any():
                new = keep & ~ap
                record(f"articulation workers, round {it}", keep, new,
                       f"{int(ap.sum())} movers each of whose removal would disconnect the graph")
                keep = largest(new, f"largest connected set, round {it}")
                continue
            ap_checked = kept_movers
            if lo == "obs":
                single = net.n_obs == 1
                step, reason = "single-observation workers", "workers with one observation (leverage 1 when left out)"
            else:
                single = net.n_firms == 1
                step, reason = "single-match workers", "workers with one match (stayers: not estimable leaving it out)"
            new = keep & ~single
            if np.count_nonzero(new) < np.count_nonzero(keep):
                record(f"{step}, round {it}", keep, new, reason)
                keep = largest(new, f"largest connected set, round {it} (after {step})")
                continue
            break
    led = pd.DataFrame(ledger, columns=LEDGER_COLUMNS)
    summ = pd.DataFrame({"input": net.summary(np.ones(nw, dtype=bool)), "kept": net.summary(keep)})
    if keep.all():
        kept = data  # nothing dropped: no copy of the panel
    else:
        kept = data.iloc[np.flatnonzero(keep[wc])]
    return ConnectedSet(data=kept, ledger=led, summary=summ, leave_out=lo, worker=worker, firm=firm, iterations=it)


def largest_connected_set(data: pd.DataFrame, worker: str, firm: str) -> ConnectedSet:
    """The largest connected set (see :func:`connected_set`)."""
    return connected_set(data, worker, firm, leave_out=None)


def leave_one_out_set(data: pd.DataFrame, worker: str, firm: str, leave_out: str = "obs") -> ConnectedSet:
    """The leave-one-out connected set of Kline, Saggio and Solvsten (2020) (see :func:`connected_set`)."""
    return connected_set(data, worker, firm, leave_out=leave_out)

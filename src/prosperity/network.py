"""The worker-firm mobility network: movers, connected sets and the leave-one-out connected set.

Firm effects in the AKM model are identified only from workers who move between firms, and only relative to other
firms in the same connected component of the bipartite graph whose nodes are workers and firms and whose edges are
employment spells (Abowd, Creecy and Kramarz 2002; Card, Heining and Kline 2013, *QJE*). The usual estimation
sample is the **largest connected set**. The leave-out bias correction of Kline, Saggio and Solvsten (2020,
*Econometrica* 88(5):1859-1898) needs more: every firm must stay connected to the rest after removing **any single
worker** (otherwise some leverage ``P_ll = 1`` and the leave-out estimate does not exist). Their computational
appendix (and the ``pruning_unbal_v3`` routine of the LeaveOutTwoWay code) finds it by repeatedly removing the
movers who are articulation points of the worker-firm graph and re-taking the largest connected set; workers with
a single observation are then dropped, because their own effect cannot be estimated without that observation.
This worker rule is the same for leave-one-observation-out (``leave_out="obs"``) and leave-one-match-out
(``leave_out="match"``): under leave-match-out a stayer (one match) with two or more observations is kept and
gets a leave-one-observation-out variance, as in LeaveOutTwoWay and bipartitepandas; the stricter movers-only
sample of earlier versions (every single-match worker dropped) is ``leave_out="match_movers"``. Beside this KSS
rule, ``pruning="matches"`` applies the less strict rule of bipartitepandas (cut the bridge matches, not whole
articulation workers; see :func:`connected_set`).

Every function takes a plain DataFrame and column names. Every restriction records what it removed in a ledger
(``step, rows_in, rows_out, dropped, workers_dropped, firms_dropped, reason``): no row is dropped silently.

The largest connected set is the component with the most rows (person-years); ties are broken in favour of the
component of the firm that appears first in the data.

Computation: one integer kernel, :func:`prune`, works on int32 worker and firm codes (:func:`connected_set` codes
a DataFrame's ids and calls it; :func:`prosperity.akm.fit` calls it on the codes it fits with, so the ids are
factorised once). Every restriction keeps or drops whole workers, so after one pass over the rows (counting the
distinct worker-firm matches) the pruning works on worker masks and matches only. Components come from
``scipy.sparse.csgraph`` on the graph of firms linked by movers (stayers are leaves and cannot connect anything).
Articulation workers come from the parallel biconnectivity algorithm of Tarjan and Vishkin (1985, *SIAM J.
Comput.* 14(4):862-874), vectorised over a breadth-first spanning tree: linear in the size of the graph, no
Python loop over vertices and no depth-first search (which is quadratic in a vertex's degree in scipy, and whose
igraph version spends most of its time converting the edge list from numpy).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components

from . import _checks
from ._results import Result
from ._sparse import component_labels as _component_labels, id_codes as _id_codes

__all__ = [
    "movers",
    "movers_per_firm",
    "components",
    "summarize",
    "connected_set",
    "largest_connected_set",
    "leave_one_out_set",
    "prune",
    "prune_matches",
    "Pruned",
    "ConnectedSet",
    "LEAVE_OUT",
    "PRUNING",
]

LEDGER_COLUMNS = ["step", "rows_in", "rows_out", "dropped", "workers_dropped", "firms_dropped", "reason"]
#: accepted ``leave_out`` values (``"worker"`` is an alias of ``"match"``)
LEAVE_OUT = (None, "obs", "match", "match_movers", "worker")


def _check_ids(data: pd.DataFrame, worker: str, firm: str, table: str = "data") -> None:
    """The id columns exist, have no missing value and hold one type of value each (``1`` and ``"1"`` would be
    two workers)."""
    _checks.require_columns(data, [worker, firm], table)
    _checks.require_complete(data, [worker, firm], table, id_cols=[worker, firm],
                             hint="an id is needed on every row (no row is dropped silently)")
    for c in (worker, firm):
        _checks.require_one_type(data, c, table)


# ----------------------------------------------------------------------------------------------------------------
# integer-coded kernels (no pandas)


class _Matches:
    """Distinct (worker, firm) matches of a panel, sorted by worker then firm: the network at the level of matches.

    Every restriction in :func:`prune` keeps or drops whole matches (the KSS rule drops whole workers, i.e. all
    their matches), so all its steps work on boolean masks over these matches (about a fifth of the rows of a
    typical panel), never on the rows themselves. ``fc`` (the firm code of every row) is kept by reference, only
    to break ties between components of equal size by the first row of the data.
    """

    def __init__(self, wc: np.ndarray | None, fc: np.ndarray | None, nw: int, nf: int, matches=None):
        self.nw, self.nf = nw, nf
        self._memo = []  # (method, mask, value): each mask is asked for its counts and components several times
        if matches is not None:  # already collapsed: (worker, firm, rows) per match, sorted by worker then firm
            self.pw, self.pf, self.rows = matches
            self.fc = self.pf  # ties between components go to the firm of the first match
            return
        self.fc = fc
        A = sp.csr_matrix((np.ones(len(wc), dtype=np.int32), (wc, fc)), shape=(nw, nf))
        A.sum_duplicates()  # canonical: sorted by worker, then firm
        self.pw = np.repeat(np.arange(nw, dtype=np.int32), np.diff(A.indptr))  # worker of each match
        self.pf = A.indices  # firm of each match
        self.rows = A.data  # rows (person-periods) in each match

    def _cached(self, name: str, km: np.ndarray, fn):
        for n, m, v in self._memo:
            if n == name and m is km:
                return v
        v = fn(km)
        self._memo = (self._memo + [(name, km, v)])[-8:]
        return v

    def per_worker(self, km: np.ndarray, what: str) -> np.ndarray:
        """Kept ``"rows"`` or ``"matches"`` of every worker."""
        return np.bincount(self.pw[km], weights=self.rows[km] if what == "rows" else None,
                           minlength=self.nw).astype(np.int64)

    def mover_matches(self, km: np.ndarray) -> np.ndarray:
        """Kept matches of workers with two or more kept matches."""
        return km & (self.per_worker(km, "matches")[self.pw] > 1)

    def counts(self, km: np.ndarray) -> tuple[int, int, int]:
        """(rows, workers, firms) of the kept matches."""
        return self._cached("counts", km, self._counts)

    def _counts(self, km):
        pw = self.pw[km]  # sorted: a new worker starts wherever the worker code changes
        return (int(self.rows[km].sum()), int(pw.size and 1 + np.count_nonzero(pw[1:] != pw[:-1])),
                int(np.count_nonzero(np.bincount(self.pf[km], minlength=self.nf))))

    def firm_components(self, km: np.ndarray) -> tuple[int, np.ndarray]:
        """Connected components of the kept network, as a label for every firm (firms without kept rows are
        singletons). Stayers are leaves of the worker-firm graph, so firms are connected exactly when a chain of
        movers links them: the graph on firms with an edge between consecutive kept firms of every worker."""
        return self._cached("components", km, self._components)

    def _components(self, km):
        idx = np.flatnonzero(km)
        pw, pf = self.pw[idx], self.pf[idx]
        same = pw[1:] == pw[:-1]
        G = sp.csr_matrix((np.ones(int(same.sum()), dtype=np.int8), (pf[:-1][same], pf[1:][same])),
                          shape=(self.nf, self.nf))
        return connected_components(G, directed=True, connection="weak")

    def largest(self, km: np.ndarray, link: np.ndarray | None = None) -> tuple[np.ndarray, int]:
        """Kept matches at the firms of the component with the most kept rows, and the number of components with
        rows. Components are those of the matches ``link`` (default ``km``; :func:`prune` passes ``km`` without
        its bridge matches). Ties go to the component of the firm that appears first in the data."""
        if not km.any():
            return km.copy(), 0
        ncomp, flab = self.firm_components(km if link is None else link)
        rows_per = np.bincount(flab[self.pf[km]], weights=self.rows[km], minlength=ncomp)
        n_used = int(np.count_nonzero(rows_per))
        top = np.flatnonzero(rows_per == rows_per.max())
        best = top[0]
        if top.size > 1:
            tied = np.zeros(ncomp, dtype=bool)
            tied[top] = True
            best = flab[self.fc[int(np.argmax(tied[flab][self.fc]))]]
        return km & (flab[self.pf] == best), n_used

    def cut(self, km: np.ndarray, what: str) -> np.ndarray:
        """The kept movers who are articulation points of the graph of kept movers and their firms (``what=
        "workers"``: a mask over workers), or its bridges (``"matches"``: a mask over matches; an edge is a bridge
        iff the vertex subdividing it is an articulation point, and distinct matches are never parallel edges)."""
        mk = np.flatnonzero(self.mover_matches(km))
        n_out = self.nw if what == "workers" else len(self.pw)
        out = np.zeros(n_out, dtype=bool)
        if mk.size == 0:
            return out
        # compact numbering: movers 0..a-1, their firms a..a+b-1 (and the matches a+b.. when subdividing)
        wu, wi = _compact(self.pw[mk], self.nw)
        fu, fi = _compact(self.pf[mk], self.nf)
        a, b = len(wu), len(fu)
        if what == "workers":
            ap = _articulation_points(a + b, wi, fi + a)
            out[wu[ap[:a]]] = True
        else:
            m = np.arange(a + b, a + b + mk.size)
            ap = _articulation_points(a + b + mk.size, np.r_[wi, fi + a], np.r_[m, m])
            out[mk[ap[a + b:]]] = True
        return out

    def stats(self, km: np.ndarray) -> pd.Series:
        """The statistics of :func:`summarize` for the kept matches."""
        if not km.any():
            return pd.Series({"rows": 0, "workers": 0, "firms": 0, "movers": 0, "components": 0,
                              "movers_per_firm": np.nan, "median_movers_per_firm_weighted": np.nan})
        rows_f = np.bincount(self.pf[km], weights=self.rows[km], minlength=self.nf)
        present = np.bincount(self.pf[km], minlength=self.nf) > 0
        mk = self.mover_matches(km)
        mpf = np.bincount(self.pf[mk], minlength=self.nf)[present]
        rows_f = rows_f[present]
        o = np.argsort(mpf, kind="stable")
        cw = np.cumsum(rows_f[o])
        med = float(mpf[o][np.searchsorted(cw, cw[-1] / 2.0)])
        ncomp, flab = self.firm_components(km)
        n_comp_used = int(np.count_nonzero(np.bincount(flab[present], minlength=ncomp)))
        rows, workers, firms = self.counts(km)
        return pd.Series({"rows": rows, "workers": workers, "firms": firms, "movers": self.counts(mk)[1],
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
# the pruning kernel on integer codes


class Pruned(NamedTuple):
    """What :func:`prune` returns: ``rows`` (boolean mask over the rows: the kept ones), ``keep`` (boolean mask
    over worker codes: workers with a kept row), ``ledger`` (one row per step, :data:`LEDGER_COLUMNS`), ``counts``
    (DataFrame, columns ``input`` and ``kept``, rows as in :func:`summarize`), ``leave_out`` (the rule applied,
    aliases resolved), ``pruning`` and ``iterations`` (pruning rounds)."""

    rows: np.ndarray
    keep: np.ndarray
    ledger: pd.DataFrame
    counts: pd.DataFrame
    leave_out: str | None
    pruning: str
    iterations: int


_WORKER_RULES = {
    "obs": ("single-observation workers", "workers with one observation (leverage 1 when left out)", "rows"),
    "match": ("single-observation workers", "workers with one observation (leverage 1 when left out; stayers "
              "with two or more are kept, leave-one-observation-out)", "rows"),
    "match_movers": ("single-match workers", "workers with one match (stayers: not estimable leaving it out)",
                     "matches"),
}
PRUNING = ("kss", "matches")


def prune(wc: np.ndarray, fc: np.ndarray, nw: int, nf: int, leave_out: str | None = None,
          pruning: str = "kss", max_iter: int = 100) -> Pruned:
    """The largest connected set, or the leave-one-out connected set, of a panel given as integer codes.

    ``wc``, ``fc``: worker and firm codes of every row (integers ``0..nw-1`` and ``0..nf-1``, in any order; the
    row order matters only to break a tie between components of equal size). Steps and rules as in
    :func:`connected_set`, which codes a DataFrame's ids and calls this; :func:`prosperity.akm.fit` calls it on
    the codes it fits with. No pandas object is touched but the small ledger and counts at the end.
    """
    _checks.require_choice(leave_out, "leave_out", LEAVE_OUT)
    _checks.require_choice(pruning, "pruning", PRUNING)
    net = _Matches(wc, fc, nw, nf)
    km, ledger, counts, lo, it = _prune(net, leave_out, pruning, max_iter)
    keep = np.bincount(net.pw[km], minlength=nw) > 0
    if pruning == "kss" or km.all():
        rows = keep[wc]
    else:  # the match of every row: matches are sorted by (worker, firm), so by this key
        key = wc.astype(np.int64) * nf + fc
        rows = km[np.searchsorted(net.pw.astype(np.int64) * nf + net.pf, key)]
    return Pruned(rows, keep, ledger, counts, lo, pruning, it)


def prune_matches(mw: np.ndarray, mf: np.ndarray, rows: np.ndarray, nw: int, nf: int,
                  leave_out: str | None = None, pruning: str = "kss", max_iter: int = 100) -> Pruned:
    """:func:`prune` on a panel already collapsed to its distinct worker-firm matches.

    ``mw``, ``mf``: worker and firm code of every match (int32, ``0..nw-1`` and ``0..nf-1``), sorted by worker
    then firm, each pair once; ``rows``: the person-periods of each match. Every step of :func:`prune` keeps or
    drops whole matches and counts person-periods only through these counts, so the kept matches, the ledger and
    the counts are exactly those of :func:`prune` on the person-periods, with one exception: a tie between two
    components with the same number of rows goes to the component of the first match (in worker, firm order)
    instead of the first row of the data. Used by :func:`prosperity.akm.fit_panel`, which never holds the
    person-periods. Returns a :class:`Pruned` whose ``rows`` is a mask over the **matches**."""
    _checks.require_choice(leave_out, "leave_out", LEAVE_OUT)
    _checks.require_choice(pruning, "pruning", PRUNING)
    mw = np.asarray(mw)
    mf = np.asarray(mf)
    if len(mw) > 1:
        key = mw.astype(np.int64) * nf + mf
        if not (np.diff(key) > 0).all():
            raise ValueError("prune_matches: the matches must be distinct and sorted by worker, then firm")
    net = _Matches(None, None, nw, nf, matches=(mw, mf, np.asarray(rows)))
    km, ledger, counts, lo, it = _prune(net, leave_out, pruning, max_iter)
    keep = np.bincount(net.pw[km], minlength=nw) > 0
    return Pruned(km, keep, ledger, counts, lo, pruning, it)


def _prune(net: _Matches, leave_out, pruning: str, max_iter: int):
    """The steps of :func:`prune` on a :class:`_Matches`: (kept matches, ledger, counts, rule, rounds)."""
    lo = "match" if leave_out == "worker" else leave_out
    ledger = []

    def record(step, before, after, reason):
        rb, wb, fb = net.counts(before)
        ra, wa, fa = net.counts(after)
        ledger.append({"step": step, "rows_in": rb, "rows_out": ra, "dropped": rb - ra, "workers_dropped": wb - wa,
                       "firms_dropped": fb - fa, "reason": reason})

    def largest(mask, step, link=None, reason=None):
        new, ncomp = net.largest(mask, link)
        record(step, mask, new, reason or f"firms outside the largest connected component ({ncomp} components)")
        return new

    # the state is a mask over matches (the KSS rule drops all the matches of a worker at once)
    everything = np.ones(len(net.pw), dtype=bool)
    km = largest(everything, "largest connected set")
    it = 0
    checked = None  # mover matches of the last articulation check that found none
    if lo is not None:
        step, reason, what = _WORKER_RULES[lo]
        while True:
            if it >= max_iter:
                raise RuntimeError(f"leave-one-out pruning did not settle in {max_iter} rounds")
            it += 1
            movers_now = net.mover_matches(km)
            if checked is not None and np.array_equal(movers_now, checked):
                pass  # same graph of movers as the last check: still no articulation worker or bridge
            elif pruning == "kss":
                ap = net.cut(km, "workers")
                if ap.any():
                    new = km & ~ap[net.pw]
                    record(f"articulation workers, round {it}", km, new,
                           f"{int(ap.sum())} movers each of whose removal would disconnect the graph")
                    km = largest(new, f"largest connected set, round {it}")
                    continue
            else:
                br = net.cut(km, "matches")
                if br.any():
                    km = largest(km, f"articulation matches, round {it}", link=km & ~br,
                                 reason=f"{int(br.sum())} matches each of whose removal would disconnect the graph: "
                                 "the side of each with fewer rows goes (a worker keeps her matches on the kept "
                                 "side)")
                    continue
            checked = movers_now
            new = km & (net.per_worker(km, what)[net.pw] > 1)
            if np.count_nonzero(new) < np.count_nonzero(km):
                record(f"{step}, round {it}", km, new, reason)
                km = largest(new, f"largest connected set, round {it} (after {step})")
                continue
            break
    counts = pd.DataFrame({"input": net.stats(everything), "kept": net.stats(km)})
    return km, pd.DataFrame(ledger, columns=LEDGER_COLUMNS), counts, lo, it


# ----------------------------------------------------------------------------------------------------------------
# public functions


def movers(data: pd.DataFrame, worker: str, firm: str) -> pd.DataFrame:
    """One row per worker: ``n_obs`` (rows), ``n_firms`` (distinct firms) and ``mover`` (worked for 2+ firms)."""
    _check_ids(data, worker, firm)
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
    _check_ids(data, worker, firm)
    wc, nw = _id_codes(data[worker])
    fc, fid = pd.factorize(data[firm], sort=True)
    ncomp, flab = _component_labels(wc, fc, nw, len(fid))
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
    _check_ids(data, worker, firm)
    wc, nw = _id_codes(data[worker])
    fc, nf = _id_codes(data[firm])
    net = _Matches(wc, fc, nw, nf)
    return net.stats(np.ones(len(net.pw), dtype=bool))


@dataclass(frozen=True, repr=False)
class ConnectedSet(Result):
    """A restricted worker-firm sample and the ledger of what each step removed.

    Attributes: ``data`` (the kept rows, original columns and index), ``ledger`` (DataFrame, one row per step:
    ``step, rows_in, rows_out, dropped, workers_dropped, firms_dropped, reason``), ``counts`` (DataFrame with a
    column per stage, ``input`` and ``kept``, rows as in :func:`summarize`: rows, workers, firms, movers,
    components, movers per firm), ``leave_out`` (None, ``"obs"``, ``"match"`` or ``"match_movers"``), ``worker``,
    ``firm`` (column names), ``iterations`` (pruning rounds), ``pruning`` (``"kss"`` or ``"matches"``).

    ``table`` is the ledger: what a restriction produces besides the kept rows is the account of what it removed
    (the rows themselves are ``data``, not copied); ``to_frame()`` is a copy of the ledger, as before.
    ``summary()`` is a short text (the counts, as a DataFrame, are ``counts``; this field was called ``summary``
    before version 0.2.0).
    """

    data: pd.DataFrame
    ledger: pd.DataFrame
    counts: pd.DataFrame
    leave_out: str | None
    worker: str
    firm: str
    iterations: int = 0
    pruning: str = "kss"

    @property
    def table(self) -> pd.DataFrame:
        """The ledger (see the class docstring)."""
        return self.ledger

    def summary(self) -> str:
        c = self.counts
        kind = ("largest connected set" if self.leave_out is None
                else f"leave-one-out connected set (leave_out={self.leave_out!r}, pruning={self.pruning!r})")
        lines = [f"Connected set of {self.worker} x {self.firm}: {kind}"]
        for what in ("rows", "workers", "firms", "movers"):
            lines.append(f"  {what}: {int(c.loc[what, 'kept']):,} kept of {int(c.loc[what, 'input']):,}")
        lines.append(f"  components in the input: {int(c.loc['components', 'input']):,}; movers per firm "
                     f"{c.loc['movers_per_firm', 'kept']:.1f} (median, row-weighted: "
                     f"{c.loc['median_movers_per_firm_weighted', 'kept']:.0f})")
        lines.append(f"  ledger: {int(self.ledger['dropped'].sum()):,} rows dropped in {len(self.ledger)} step(s)"
                     + (f", {self.iterations} pruning round(s)" if self.leave_out is not None else ""))
        return "\n".join(lines)


def connected_set(data: pd.DataFrame, worker: str, firm: str, leave_out: str | None = None,
                  pruning: str = "kss", max_iter: int = 100) -> ConnectedSet:
    """Restrict a worker-firm panel to its largest connected set, or to the leave-one-out connected set.

    Steps (each recorded in the ledger):

    1. ``largest connected set``: keep the component of the worker-firm graph with the most rows.
    2. (``leave_out`` given) ``articulation workers, round k``: drop every mover who is an articulation point of the
       graph of movers and firms (removing that one worker would cut some firms off), then re-take the largest
       connected set (``largest connected set, round k``); repeat until no articulation worker is left. This is the
       leave-one-out connected set of Kline, Saggio and Solvsten (2020), computational appendix, as in
       LeaveOutTwoWay's ``pruning_unbal_v3``.
    3. The worker rule, then step 2 again if it disconnected anything (it cannot: it drops only stayers, leaves of
       the graph, so the articulation check of the unchanged graph of movers is not recomputed; the round is still
       recorded):

       - ``"obs"`` and ``"match"``: drop workers with a single row (``single-observation workers``): their
         leverage is 1. Under leave-match-out (``"match"``) stayers with two or more rows are **kept**: a stayer's
         only match cannot be left out whole, so KSS (2020, section 3 and the computational appendix) give it a
         leave-one-observation-out variance, as LeaveOutTwoWay's ``leave_out_level="matches"`` and
         bipartitepandas' ``drop_single_stayers`` do. The sample is therefore the same as under ``"obs"``; the
         estimators differ (:mod:`prosperity.variance`).
       - ``"match_movers"``: drop every worker with a single worker-firm match (``single-match workers``): the
         movers-only sample of earlier versions of this package (a different estimand: stayers do not enter).
       - ``"worker"`` is an alias of ``"match"``.

    Articulation workers are found in one pass per round by the vectorised Tarjan-Vishkin algorithm (see the
    module docstring); the result is the same as removing each mover in turn and checking connectivity. The
    pruning itself is :func:`prune`, on integer codes.

    ``pruning="matches"`` replaces step 2 by the less strict rule of bipartitepandas (Lamadon, Bonhomme,
    Manresa et al.; ``clean_params({"connectedness": "leave_out_match"})``, ``_get_articulation_matches`` and
    ``_leave_out_observation_spell_match`` in ``bipartitelongbase.py``): the unit that must not disconnect the
    graph is a **match**, not a worker. Each round finds the bridges of the graph of movers and firms (matches
    whose removal would cut some firms off), removes them to find the components, and keeps the component with
    the most rows together with every match at its firms (``articulation matches, round k``). A mover whose
    match is a bridge therefore keeps the part of her history on the kept side (she may become a stayer there),
    where the KSS rule drops her whole. On the result no single match (so no single observation) disconnects
    the firms: enough for leave-one-observation-out and leave-match-out leverages below 1, though not for leaving
    a whole worker out. Bridges are found as the articulation points
    of the graph with every match subdivided by a vertex. Differences from bipartitepandas: the component kept is
    the one with the most rows (bipartitepandas: most firms, by default), and only the largest component is
    pruned further each round (bipartitepandas recurses into every component and keeps the largest result), the
    same greedy order as the KSS rule here; matches stand for spells (this module does not order periods, so a
    worker who returns to an employer has one match there, as bipartitepandas' ``leave_out_match``).

    Parameters
    ----------
    data : DataFrame with one row per worker-period (other columns are carried along).
    worker, firm : id columns (no missing value, one value type per column).
    leave_out : None (largest connected set only), ``"obs"``, ``"match"``, ``"match_movers"`` (or ``"worker"``).
    pruning : ``"kss"`` (drop articulation workers, the default) or ``"matches"`` (drop the cut-off side of each
        bridge match, see above); used only with ``leave_out``.

    Returns
    -------
    :class:`ConnectedSet`. Its ``data`` is ``data`` itself (not a copy) when no row is dropped, so a large panel is
    not duplicated; copy it before modifying it in place.
    """
    _check_ids(data, worker, firm)
    _checks.require_choice(leave_out, "leave_out", LEAVE_OUT)
    wc, nw = _id_codes(data[worker])
    fc, nf = _id_codes(data[firm])
    pr = prune(wc, fc, nw, nf, leave_out, pruning=pruning, max_iter=max_iter)
    kept = data if pr.rows.all() else data.iloc[np.flatnonzero(pr.rows)]  # nothing dropped: no copy
    return ConnectedSet(data=kept, ledger=pr.ledger, counts=pr.counts, leave_out=pr.leave_out, worker=worker,
                        firm=firm, iterations=pr.iterations, pruning=pr.pruning)


def largest_connected_set(data: pd.DataFrame, worker: str, firm: str) -> ConnectedSet:
    """The largest connected set (see :func:`connected_set`)."""
    return connected_set(data, worker, firm, leave_out=None)


def leave_one_out_set(data: pd.DataFrame, worker: str, firm: str, leave_out: str = "obs") -> ConnectedSet:
    """The leave-one-out connected set of Kline, Saggio and Solvsten (2020) (see :func:`connected_set`)."""
    return connected_set(data, worker, firm, leave_out=leave_out)

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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

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


def _largest_mask(wc, fc, nw, nf) -> tuple[np.ndarray, int]:
    ncomp, flab = _component_labels(wc, fc, nw, nf)
    rows_per = np.bincount(flab[fc], minlength=ncomp)
    # ties: the component containing the smallest firm code
    first_firm = np.full(ncomp, nf, dtype=np.int64)
    np.minimum.at(first_firm, flab, np.arange(nf))
    order = np.lexsort((first_firm, -rows_per))
    best = order[0]
    return flab[fc] == best, int((rows_per > 0).sum())


def _pairs(wc: np.ndarray, fc: np.ndarray, nw: int, nf: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (worker, firm) pairs, by a sparse count matrix (linear time, no sort of the rows)."""
    A = sp.csr_matrix((np.ones(len(wc), dtype=np.int32), (wc, fc)), shape=(nw, nf))
    A.sum_duplicates()
    pw = np.repeat(np.arange(nw, dtype=np.int64), np.diff(A.indptr))
    return pw, A.indices.astype(np.int64)


def _articulation_workers(wc: np.ndarray, fc: np.ndarray, nw: int, nf: int) -> np.ndarray:
    """Worker codes (among movers) that are articulation points of the worker-firm graph of movers."""
    import igraph as ig

    pw, pf_ = _pairs(wc, fc, nw, nf)
    nfirms_per_worker = np.bincount(pw, minlength=nw)
    is_mover = nfirms_per_worker[pw] > 1
    pw, pf_ = pw[is_mover], pf_[is_mover]
    if pw.size == 0:
        return np.zeros(0, dtype=np.int64)
    # compact numbering of the movers and their firms: workers 0..a-1, firms a..a+b-1
    wmap = np.full(nw, -1, dtype=np.int64)
    wu = np.flatnonzero(np.bincount(pw, minlength=nw))
    wmap[wu] = np.arange(len(wu))
    fmap = np.full(nf, -1, dtype=np.int64)
    fu = np.flatnonzero(np.bincount(pf_, minlength=nf))
    fmap[fu] = np.arange(len(fu)) + len(wu)
    edges = np.stack([wmap[pw], fmap[pf_]], axis=1)
    g = ig.Graph(n=len(wu) + len(fu), edges=edges, directed=False)
    ap = np.asarray(g.articulation_points(), dtype=np.int64)
    ap = ap[ap < len(wu)]
    return wu[ap]


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


def _summary_codes(wc: np.ndarray, fc: np.ndarray, nw: int, nf: int) -> pd.Series:
    if len(wc) == 0:
        return pd.Series({"rows": 0, "workers": 0, "firms": 0, "movers": 0, "components": 0,
                          "movers_per_firm": np.nan, "median_movers_per_firm_weighted": np.nan})
    pw, pf_ = _pairs(wc, fc, nw, nf)
    nfirms = np.bincount(pw, minlength=nw)
    mover = nfirms > 1
    rows_f = np.bincount(fc, minlength=nf)
    present = rows_f > 0
    mpf = np.bincount(pf_[mover[pw]], minlength=nf)[present]
    rows_f = rows_f[present]
    o = np.argsort(mpf, kind="stable")
    cw = np.cumsum(rows_f[o])
    med = float(mpf[o][np.searchsorted(cw, cw[-1] / 2.0)])
    ncomp, flab = _component_labels(wc, fc, nw, nf)
    n_comp_used = int(np.count_nonzero(np.bincount(flab[fc], minlength=ncomp)))
    return pd.Series({"rows": int(len(wc)), "workers": int(np.count_nonzero(nfirms)), "firms": int(present.sum()),
                      "movers": int(mover.sum()), "components": n_comp_used, "movers_per_firm": float(mpf.mean()),
                      "median_movers_per_firm_weighted": med})


def summarize(data: pd.DataFrame, worker: str, firm: str) -> pd.Series:
    """Size of a worker-firm sample: rows, workers, firms, movers, components, movers per firm.

    ``movers_per_firm`` is the mean over firms of the number of distinct movers who ever worked there;
    ``median_movers_per_firm_weighted`` is its median weighted by firm rows (the statistic of Bonhomme et al.
    2023, Table 1).
    """
    _validate(data, worker, firm)
    wc, fc, nw, nf, _, _ = _codes(data, worker, firm)
    return _summary_codes(wc, fc, nw, nf)


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
       disconnects anything.

    Parameters
    ----------
    data : DataFrame with one row per worker-period (other columns are carried along).
    worker, firm : id columns.
    leave_out : None (largest connected set only), ``"obs"`` or ``"match"``; ``"worker"`` is accepted as an alias
        of ``"match"`` for the pruning (the graph condition is the same).
    """
    _validate(data, worker, firm)
    if leave_out not in (None, "obs", "match", "worker"):
        raise ValueError(f"leave_out must be None, 'obs' or 'match', got {leave_out!r}")
    lo = "match" if leave_out == "worker" else leave_out
    wc, fc, nw, nf, _, _ = _codes(data, worker, firm)
    keep = np.ones(len(wc), dtype=bool)
    ledger = []

    def distinct(codes, mask, size):
        return int(np.count_nonzero(np.bincount(codes[mask], minlength=size)))

    def record(step, before, after, reason):
        kb, ka = before, after
        wd = distinct(wc, kb, nw) - distinct(wc, ka, nw)
        fd = distinct(fc, kb, nf) - distinct(fc, ka, nf)
        ledger.append({"step": step, "rows_in": int(kb.sum()), "rows_out": int(ka.sum()),
                       "dropped": int(kb.sum() - ka.sum()), "workers_dropped": int(wd), "firms_dropped": int(fd),
                       "reason": reason})

    def largest(mask, step):
        idx = np.flatnonzero(mask)
        m, ncomp = _largest_mask(wc[idx], fc[idx], nw, nf)
        new = np.zeros_like(mask)
        new[idx[m]] = True
        record(step, mask, new, f"firms outside the largest connected component ({ncomp} components)")
        return new

    keep = largest(keep, "largest connected set")
    it = 0
    if lo is not None:
        while True:
            if it >= max_iter:
                raise RuntimeError(f"leave-one-out pruning did not settle in {max_iter} rounds")
            it += 1
            idx = np.flatnonzero(keep)
            ap = _articulation_workers(wc[idx], fc[idx], nw, nf)
            if ap.size:
                new = keep & np.isin(wc, ap, invert=True)
                record(f"articulation workers, round {it}", keep, new,
                       f"{ap.size} movers each of whose removal would disconnect the graph")
                keep = largest(new, f"largest connected set, round {it}")
                continue
            if lo == "obs":
                n_obs = np.bincount(wc[idx], minlength=nw)
                single = n_obs[wc] == 1
                step, reason = "single-observation workers", "workers with one observation (leverage 1 when left out)"
            else:
                pw_, _ = _pairs(wc[idx], fc[idx], nw, nf)
                n_match = np.bincount(pw_, minlength=nw)
                single = n_match[wc] == 1
                step, reason = "single-match workers", "workers with one match (stayers: not estimable leaving it out)"
            new = keep & ~single
            if new.sum() < keep.sum():
                record(f"{step}, round {it}", keep, new, reason)
                keep = largest(new, f"largest connected set, round {it} (after {step})")
                continue
            break
    kept = data.iloc[np.flatnonzero(keep)]
    led = pd.DataFrame(ledger, columns=LEDGER_COLUMNS)
    summ = pd.DataFrame({"input": _summary_codes(wc, fc, nw, nf),
                         "kept": _summary_codes(wc[keep], fc[keep], nw, nf)})
    return ConnectedSet(data=kept, ledger=led, summary=summ, leave_out=lo, worker=worker, firm=firm, iterations=it)


def largest_connected_set(data: pd.DataFrame, worker: str, firm: str) -> ConnectedSet:
    """The largest connected set (see :func:`connected_set`)."""
    return connected_set(data, worker, firm, leave_out=None)


def leave_one_out_set(data: pd.DataFrame, worker: str, firm: str, leave_out: str = "obs") -> ConnectedSet:
    """The leave-one-out connected set of Kline, Saggio and Solvsten (2020) (see :func:`connected_set`)."""
    return connected_set(data, worker, firm, leave_out=leave_out)

"""AKM where the panel lives in Spark: sufficient statistics on the cluster, the firm-sized solve on the driver.

The model and the estimator are those of :func:`prosperity.akm.fit` without time effects or controls (Abowd,
Kramarz and Margolis 1999, *Econometrica* 67(2):251-333; the route of Abowd, Creecy and Kramarz 2002)::

    y_it = alpha_i + psi_J(i,t) + e_it.

Partialling the worker effects out leaves the firm-sized normal equations ``L psi = b`` with

    L_fg = [f = g] d_f - sum_i n_if n_ig / T_i,     d_f = sum_i n_if,
    b_f  = sum_i (s_if - n_if Y_i / T_i),

where ``n_if`` and ``s_if`` are the rows and the sum of ``y`` of worker ``i`` at firm ``f`` (a *match*), and
``T_i``, ``Y_i`` the worker's rows and sum of ``y``. Nothing else of the rows enters: the matches with their
counts and sums are sufficient statistics. Stayers (one match) contribute exactly zero to ``L`` and ``b``, so
only movers' matches enter the two aggregations. The worker effects are ``alpha_i = (Y_i - sum_f n_if psi_f)
/ T_i``.

What runs where (:func:`fit`):

1. Spark: the input checks (missing, non-finite and constant values, duplicated records), and the matches
   ``(worker, firm, n, s)`` by one ``groupBy``, brought to the driver (as every table collected here: written
   by the executors as Parquet parts into a scratch folder and read by the driver's Python,
   :func:`prosperity.link.spark.spill`, so none passes whole through the driver's JVM and
   ``spark.driver.maxResultSize`` does not bound it).
2. Driver: the largest connected set, or the leave-one-out connected set of Kline, Saggio and Solvsten (2020,
   *Econometrica* 88(5):1859-1898), by :func:`prosperity.network.prune` on the collapsed match graph, with the
   same ledger and counts as :func:`prosperity.akm.fit`.
3. Spark: the kept movers' matches (sent back as integer codes) give ``L`` (a self-join on worker and a
   ``groupBy`` of firm pairs) and ``b`` (a ``groupBy`` of firms); both are collected.
4. Driver: ``L psi = b`` by the package's Jacobi-preconditioned conjugate gradients
   (:func:`prosperity._sparse.block_pcg`), the normalisation of :func:`prosperity.akm.fit` (firm effects with
   person-year-weighted mean zero) and the worker effects from the matches.
5. Spark: the effects as Spark DataFrames, and the estimation sample with ``alpha``, ``psi`` and the residual
   joined back (:attr:`SparkAKMResult.panel`).

Driver memory: the match graph (about 20 bytes per match, plus the row codes the pruning works on: 8 bytes per
row) and ``L`` (about 24 bytes per non-zero, twice while it is assembled); see ``book/spark.md`` for England.

Differences from :func:`prosperity.akm.fit` on the same rows: the effects agree to the solver's tolerance (the
sums are added in Spark's order); a tie between two connected components with the same number of rows goes to
the component of the first match in (worker, firm) order (the pandas path: the firm of the earliest row, an
order a Spark DataFrame does not have).
"""

from __future__ import annotations

import shutil
import time as _time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
from pyspark.sql import DataFrame as SparkDataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from . import _checks, network
from ._results import Result
from ._sparse import block_pcg
from .akm import _NORMALISATION, ConvergenceWarning, _check_identified
from .link.spark import scratch_folder, spill

__all__ = ["fit", "SparkAKMResult"]

_TABLE = "data"


@dataclass(frozen=True, repr=False)
class SparkAKMResult(Result):
    """AKM fitted on a Spark DataFrame (see :func:`fit`).

    Attributes
    ----------
    firm_effects : pandas DataFrame ``[<firm>, "psi", "n_obs"]`` sorted by firm id (firm-sized: on the driver).
    worker_effects : Spark DataFrame ``[<worker>, "alpha", "n_obs"]``.
    panel : Spark DataFrame: the estimation sample (the input rows kept) with ``alpha``, ``psi`` and ``resid``
        (``y = alpha + psi + resid``).
    sample : network counts (``input``, ``kept``), as :attr:`prosperity.akm.AKMResult.sample`.
    ledger : what each sample restriction removed (as :attr:`prosperity.akm.AKMResult.ledger`).
    connected, leave_out, normalisation, diagnostics, n_obs, names: as on :class:`prosperity.akm.AKMResult`;
    ``diagnostics`` adds the seconds of each stage and the sizes collected to the driver (``matches``,
    ``nonzeros``).

    ``table`` is ``firm_effects`` (``to_frame()`` a copy).
    """

    firm_effects: pd.DataFrame = field(repr=False)
    worker_effects: SparkDataFrame = field(repr=False)
    panel: SparkDataFrame = field(repr=False)
    sample: pd.DataFrame = field(repr=False)
    ledger: pd.DataFrame = field(repr=False)
    connected: str
    leave_out: str | None
    normalisation: str
    diagnostics: dict
    n_obs: int
    names: dict

    @property
    def table(self) -> pd.DataFrame:
        """The firm effects (``firm_effects``)."""
        return self.firm_effects

    def summary(self) -> str:
        n, s, d = self.names, self.sample["kept"], self.diagnostics
        return "\n".join([
            f"AKM on Spark: {n['y']} ~ alpha[{n['worker']}] + psi[{n['firm']}]",
            f"  sample: {self.connected} connected set" + (f" (leave-{self.leave_out}-out)" if self.leave_out else "")
            + f"; {int(s['rows']):,} rows, {int(s['workers']):,} workers, {int(s['firms']):,} firms, "
            f"{int(s['movers']):,} movers",
            f"  dropped: {int(self.ledger['dropped'].sum()):,} rows in {len(self.ledger)} step(s)",
            f"  driver: {d['matches']:,} matches, L with {d['nonzeros']:,} non-zeros; sd(psi) "
            f"{d['sd_psi']:.4f} (person-year weighted)",
            f"  solver: {d['iterations']} CG iterations, relative residual {d['rel_residual']:.1e}, converged "
            f"{d['converged']}" + ("" if d["converged"] else " -- NOT converged: raise maxiter"),
            f"  normalisation: {self.normalisation}",
        ])


def _arrow(df: SparkDataFrame, scratch: str, name: str) -> pa.Table:
    """``df`` on the driver as an Arrow table, through Parquet parts in ``scratch`` (not ``toArrow``)."""
    return spill(df, Path(scratch) / name).table()


def _check(df: SparkDataFrame, y: str, worker: str, firm: str) -> SparkDataFrame:
    """The checks of :func:`prosperity.akm.fit` that can be made on Spark, in two passes over the rows; returns the
    rows counted by ``(worker, firm, y)`` (materialised), from which the matches follow."""
    if not isinstance(df, SparkDataFrame):
        _checks.fail(f"must be a Spark DataFrame (or a pandas DataFrame with spark=), got {type(df).__name__}",
                     _TABLE, kind=_checks.InputTypeError)
    cols = [y, worker, firm]
    if len(set(cols)) < 3:
        _checks.fail(f"y, worker and firm must be three different columns, got {cols}", _TABLE, y)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        _checks.fail(f"no column(s) {missing}; columns present: {df.columns}", _TABLE, missing[0],
                     kind=_checks.MissingColumnError)
    types = dict(df.dtypes)
    if not isinstance(df.schema[y].dataType, T.NumericType):
        _checks.fail(f"must be numeric, got type {types[y]}; put categorical variables among the effects", _TABLE,
                     y, kind=_checks.InputTypeError)
    for c in (worker, firm):
        if not isinstance(df.schema[c].dataType, (T.IntegralType, T.StringType)):
            _checks.fail(f"has type {types[c]}, expected an integer or string id", _TABLE, c,
                         kind=_checks.InputTypeError)
    yd = F.col(y).cast("double")
    bad = {c: F.col(c).isNull() for c in (worker, firm)}
    bad[y] = F.col(y).isNull() | F.isnan(yd) | (F.abs(yd) == float("inf"))
    row = df.agg(F.count(F.lit(1)).alias("n"), F.min(yd).alias("lo"), F.max(yd).alias("hi"),
                 *[F.sum(b.cast("long")).alias(f"bad_{c}") for c, b in bad.items()]).first()
    n = int(row["n"])
    if n == 0:
        _checks.fail("has no rows", _TABLE)
    for c in (y, worker, firm):
        k = int(row[f"bad_{c}"] or 0)
        if k:  # named by worker (by firm for a missing worker id), the smallest first: Spark has no row order
            by = firm if c == worker else worker
            ids = [r[0] for r in df.where(bad[c]).select(by).orderBy(by).limit(_checks.N_IDS).collect()]
            _checks.fail(f"{k} missing or non-finite value(s); drop or impute them explicitly before fitting (no "
                         "row is dropped silently)", _TABLE, c, ids, by)
    if row["lo"] == row["hi"]:
        _checks.fail(f"is constant (every value is {row['lo']!r}): there is no variation for the effects to "
                     "explain", _TABLE, y)
    # rows by (worker, firm, y): the duplicate check here, the matches from it (fit), one pass over the rows
    cells = df.groupBy(worker, firm, F.col(y).cast("double").alias("_y")).count().localCheckpoint()
    dup = cells.where(F.col("count") > 1)
    k = dup.agg(F.sum("count")).first()[0]
    if k:  # every copy is named, as akm.fit does (first in (worker, firm) order: Spark has no row order)
        first = dup.orderBy(worker, firm).limit(_checks.N_IDS).collect()
        ids = [(r[0], r[1]) for r in first for _ in range(int(r["count"]))][:_checks.N_IDS]
        _checks.fail(f"{int(k)} rows are identical in every column used ({worker}, {firm}, {y}); duplicated "
                     "records, not two periods (no time column is used): drop the copies", _TABLE, worker, ids,
                     f"({worker}, {firm})")
    return cells


def fit(data, y: str, worker: str, firm: str, *, spark=None, connected: str = "largest", leave_out: str = "obs",
        pruning: str = "kss", tol: float = 1e-10, maxiter: int = 10000) -> SparkAKMResult:
    """Fit the AKM model ``y_it = alpha_i + psi_J(i,t) + e_it`` on a panel held in Spark.

    The estimator, the sample restrictions (``connected``, ``leave_out``, ``pruning``), the normalisation and the
    solver tolerance are those of :func:`prosperity.akm.fit` (without ``time`` or ``controls``); the work is split
    between Spark and the driver as the module docstring describes. Abowd, Kramarz and Margolis (1999,
    *Econometrica*); Abowd, Creecy and Kramarz (2002); Kline, Saggio and Solvsten (2020, *Econometrica*) for the
    leave-one-out connected set.

    Parameters
    ----------
    data : Spark DataFrame (e.g. ``spark.table("db.panel")``), or a pandas DataFrame with ``spark=``.
    y, worker, firm : column names (numeric outcome; integer or string ids).
    spark : SparkSession, needed only for a pandas ``data``.
    connected, leave_out, pruning, tol, maxiter : as in :func:`prosperity.akm.fit`.

    Raises
    ------
    prosperity._checks.InputError
        Missing columns, a non-numeric outcome, ids that are not integers or strings, missing or non-finite
        values (the first worker ids named), a constant outcome, rows identical in worker, firm and ``y``
        (duplicated records), or a connected set with fewer than two firms.
    """
    _checks.require_choice(connected, "connected", ("largest", "leave_one_out"))
    _checks.require_choice(leave_out, "leave_out", network.LEAVE_OUT)
    t0 = _time.perf_counter()
    if isinstance(data, pd.DataFrame):
        if spark is None:
            raise ValueError("akm_spark.fit: a pandas DataFrame needs spark=<SparkSession>")
        data = spark.createDataFrame(pa.Table.from_pandas(data, preserve_index=False))  # Arrow: no row pickling
    cells = _check(data, y, worker, firm)
    session = data.sparkSession
    scratch = scratch_folder(session, prefix="prosperity_akm_spark_")
    try:
        return _fit(data, cells, session, scratch, y, worker, firm, connected, leave_out, pruning, tol, maxiter, t0)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _fit(data, cells, session, scratch, y, worker, firm, connected, leave_out, pruning, tol, maxiter, t0):
    """:func:`fit` after the input checks; tables reach the driver through ``scratch`` (:func:`_arrow`)."""
    t_check = _time.perf_counter()
    # 1. the matches, collected
    m = _arrow(cells.groupBy(worker, firm).agg(F.sum("count").alias("n"), F.sum(F.col("_y") * F.col("count"))
                                               .alias("s")), scratch, "matches")
    wid = m.column(worker).to_pandas()
    fid = m.column(firm).to_pandas()
    wc, wids = pd.factorize(wid, sort=True)
    fc, fids = pd.factorize(fid, sort=True)
    n_m = m.column("n").to_numpy().astype(np.int64)
    s_m = m.column("s").to_numpy()
    o = np.lexsort((fc, wc))  # matches sorted by worker, then firm (the order of network's match graph)
    wc, fc, n_m, s_m = wc[o].astype(np.int32), fc[o].astype(np.int32), n_m[o], s_m[o]
    nw, nf = len(wids), len(fids)
    t_match = _time.perf_counter()
    # 2. the connected set on the driver: one row code per person-period, in match order
    pr = network.prune(np.repeat(wc, n_m), np.repeat(fc, n_m), nw, nf,
                       leave_out if connected == "leave_one_out" else None, pruning)
    first = np.concatenate([[0], np.cumsum(n_m)[:-1]])
    km = pr.rows[first]  # the kept matches (every row of a match shares its fate)
    ledger, counts, lo = pr.ledger, pr.counts, pr.leave_out
    del pr
    _check_identified(counts, connected, firm)
    wc, fc, n_m, s_m = wc[km], fc[km], n_m[km], s_m[km]
    t_prune = _time.perf_counter()
    # 3. L and b on Spark from the kept movers' matches
    per_w = np.bincount(wc, minlength=nw)
    mover = per_w[wc] > 1
    mv = session.createDataFrame(pa.table({"w": wc[mover], "f": fc[mover], "n": n_m[mover].astype(np.float64),
                                           "s": s_m[mover]}))
    mv = mv.join(mv.groupBy("w").agg(F.sum("n").alias("T"), F.sum("s").alias("Y")), "w").localCheckpoint()
    rhs = _arrow(mv.groupBy("f").agg(F.sum("n").alias("d"), F.sum(F.col("s") - F.col("n") * F.col("Y")
                                                                  / F.col("T")).alias("b")), scratch, "rhs")
    a, b = mv.select("w", "f", "n", "T").alias("a"), mv.select("w", "f", "n").alias("b")
    pairs = _arrow(a.join(b, "w").groupBy(F.col("a.f").alias("f"), F.col("b.f").alias("g"))
                   .agg(F.sum(F.col("a.n") * F.col("b.n") / F.col("a.T")).alias("c")), scratch, "pairs")
    t_stats = _time.perf_counter()
    # 4. the solve on the driver
    d = np.zeros(nf)
    bvec = np.zeros(nf)
    rf = rhs.column("f").to_numpy()
    d[rf] = rhs.column("d").to_numpy()
    bvec[rf] = rhs.column("b").to_numpy()
    L = sp.csr_matrix((-pairs.column("c").to_numpy(), (pairs.column("f").to_numpy(), pairs.column("g").to_numpy())),
                      shape=(nf, nf)) + sp.diags(d)
    L.sum_duplicates()
    diag = L.diagonal()
    unidentified = diag <= 1e-12 * max(1.0, float(diag.max(initial=0.0)))
    bvec[unidentified] = 0.0
    precond = np.where(unidentified, 0.0, 1.0 / np.where(unidentified, 1.0, diag))
    psi, it, rel = block_pcg(lambda X: L @ X, bvec, precond, tol=tol, maxiter=maxiter)
    rel = float(np.max(rel))
    nf_rows = np.bincount(fc, weights=n_m, minlength=nf)
    n_obs = int(n_m.sum())
    psi = psi - float(nf_rows @ psi) / n_obs
    T_w = np.bincount(wc, weights=n_m, minlength=nw)
    kept_w = T_w > 0
    alpha = (np.bincount(wc, weights=s_m, minlength=nw) - np.bincount(wc, weights=n_m * psi[fc], minlength=nw)
             )[kept_w] / T_w[kept_w]
    kept_f = nf_rows > 0
    fe = pd.DataFrame({firm: fids[kept_f], "psi": psi[kept_f], "n_obs": nf_rows[kept_f].astype(np.int64)})
    fe = fe.reset_index(drop=True)
    t_solve = _time.perf_counter()
    # 5. the effects back on Spark
    we_sp = session.createDataFrame(pa.table({worker: pa.array(np.asarray(wids[kept_w])), "alpha": alpha,
                                              "n_obs": T_w[kept_w].astype(np.int64)}))
    fe_sp = session.createDataFrame(pa.Table.from_pandas(fe[[firm, "psi"]], preserve_index=False))
    panel = (data.join(we_sp.select(worker, "alpha"), worker).join(fe_sp, firm)
             .withColumn("resid", F.col(y).cast("double") - F.col("alpha") - F.col("psi")))
    converged = bool(rel <= tol * 10)
    diagnostics = {"backend": "spark", "iterations": int(it), "rel_residual": rel, "converged": converged,
                   "n_unidentified": int((unidentified & (nf_rows > 0)).sum()), "matches": int(len(km)),
                   "nonzeros": int(L.nnz), "sd_psi": float(np.sqrt(nf_rows @ psi ** 2 / n_obs)),
                   "seconds": {"checks": t_check - t0, "matches": t_match - t_check, "prune": t_prune - t_match,
                               "statistics": t_stats - t_prune, "solve": t_solve - t_stats}, "pruning": pruning}
    if not converged:
        warnings.warn(f"akm_spark.fit: conjugate gradients stopped after {it} iterations with relative residual "
                      f"{rel:.1e} (not converged); raise maxiter", ConvergenceWarning, stacklevel=2)
    return SparkAKMResult(firm_effects=fe, worker_effects=we_sp, panel=panel, sample=counts, ledger=ledger,
                          connected=connected, leave_out=lo, normalisation=_NORMALISATION, diagnostics=diagnostics,
                          n_obs=n_obs, names={"y": y, "worker": worker, "firm": firm})

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
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _checks, network, variance
from ._results import Result
from ._sparse import Collinear, System, codes as _codes, recode as _recode, solve_effects as _solve_effects
from ._sparse import block_pcg  # noqa: F401  (re-exported as akm.block_pcg, see CHANGELOG.md)

__all__ = [
    "fit_fixed_effects",
    "MultiwayResult",
    "fit",
    "fit_panel",
    "AKMResult",
    "ConvergenceWarning",
    "event_study",
    "event_study_symmetry",
    "residual_grid",
]


class ConvergenceWarning(UserWarning):
    """The conjugate-gradient solver stopped at ``maxiter`` before reaching ``tol``: the effects are not the
    least-squares solution to the requested accuracy (``diagnostics["converged"]`` is False and ``summary()``
    says so). Raise ``maxiter``, or check the sample (a barely connected network converges slowly)."""


# ---------------------------------------------------------------------------------------------------------------
# input checks (all through prosperity._checks: one message format naming table, column and ids)

_TABLE = "data"


def _check_inputs(data, y: str, ids: Sequence[str], numeric: Sequence[str], table: str = _TABLE) -> None:
    """The checks every fit shares: a non-empty DataFrame with each column once in one role; numeric outcome and
    controls (booleans are not numbers here); no missing or infinite value; one value type per id column
    (``1`` and ``"1"`` would be two workers); values whose squares fit in double precision; a ``y`` that varies."""
    ids, numeric = list(ids), list(numeric)
    _checks.require_columns(data, [y] + ids + numeric, table)
    _checks.require_rows(data, table)
    _checks.require_numeric(data, [y] + numeric, table, hint="; put categorical variables among the effects")
    _checks.require_complete(data, [y] + ids + numeric, table, id_cols=ids[0],
                             hint="drop or impute them explicitly before fitting (no row is dropped silently)")
    for c in ids:
        _checks.require_one_type(data, c, table)
    for c in [y] + numeric:
        v = data[c].to_numpy(dtype=float)
        with np.errstate(over="ignore"):
            sq = np.dot(v, v)
        if not np.isfinite(sq):  # then some |v| > sqrt(max / n): sums of squares overflow
            bad = np.abs(v) > np.sqrt(np.finfo(float).max / len(v))
            ids_, name = _checks.first_ids(data, bad, ids[0])
            _checks.fail(f"{int(bad.sum())} value(s) so large that sums of their squares overflow double "
                         f"precision (largest |value| {np.abs(v).max():.3g}); rescale the column", table, c,
                         ids_, name)
    yv = data[y].to_numpy()
    if yv.min() == yv.max():
        _checks.fail(f"is constant (every value is {yv[:1].tolist()[0]!r}): there is no variation for the effects "
                     "to explain", table, y)


def _check_duplicates(data, keys: Sequence[np.ndarray], names: Sequence[str], what: str, hint: str,
                      table: str = _TABLE) -> None:
    """No two rows share the values of ``keys`` (integer codes or numbers, one array per column ``names``).

    Two dense integer keys (worker and period codes) are counted in one ``bincount``. Otherwise the keys are
    folded into one 64-bit hash (integers as they are, floats by their bits, -0.0 as 0.0) whose repeats are found
    by sorting; only rows whose hash repeats are compared exactly (collisions are never reported)."""
    if len(keys) == 2 and all(k.dtype.kind in "iu" for k in keys):
        n1 = int(keys[1].max()) + 1
        if (int(keys[0].max()) + 1) * n1 <= 4 * len(keys[0]):
            key = keys[0].astype(np.int64) * n1 + keys[1]
            if (np.bincount(key).max(initial=0) <= 1):
                return
    h = np.zeros(len(keys[0]), dtype=np.uint64)
    for k in keys:
        bits = (k + 0.0).view(np.uint64) if k.dtype.kind == "f" else k.astype(np.uint64)
        h = h * np.uint64(0x9E3779B97F4A7C15) + bits  # wraps modulo 2**64
    s = np.sort(h)
    rep = s[1:][s[1:] == s[:-1]]
    if rep.size == 0:
        return
    cand = np.flatnonzero(np.isin(h, rep))
    dup = np.zeros(len(h), dtype=bool)
    dup[cand] = pd.DataFrame({i: k[cand] for i, k in enumerate(keys)}).duplicated(keep=False).to_numpy()
    if dup.any():
        ids, name = _checks.first_ids(data, dup, list(names))
        _checks.fail(f"{int(dup.sum())} rows are {what}; {hint}", table, names[0], ids, name)


def _check_worker_periods(data, wc: np.ndarray, tc: np.ndarray, worker: str, time: str) -> None:
    """One row per worker and period (codes ``wc``, ``tc``); the error names the first duplicated pairs."""
    _check_duplicates(data, [wc, tc], [worker, time], f"duplicated worker-periods ({worker}, {time})",
                      "keep one row per worker and period (e.g. the main job) or aggregate explicitly")


def _solve(sys_, yv, Xv, tol, maxiter, controls, table=_TABLE):
    """:func:`prosperity._sparse.solve_effects`, with collinear controls reported by name (and with what)."""
    try:
        return _solve_effects(sys_, yv, Xv, tol, maxiter)
    except Collinear as e:
        names = [controls[i] for i in e.positions]
        with_ = [f"{controls[i]!r} with " + (" and ".join(repr(controls[k]) for k in p) + " and " if p else "")
                 + "the fixed effects" for i, p in zip(e.positions, e.partners)]
        _checks.fail(f"control column(s) {names} are collinear ({'; '.join(with_)}): nothing is left of them after "
                     "partialling out; remove them from controls", table, names[0])


def _warn_convergence(diag: dict, what: str) -> None:
    if not diag["converged"]:
        warnings.warn(f"{what}: conjugate gradients stopped after {diag['iterations']} iterations with relative "
                      f"residual {diag['rel_residual']:.1e} (not converged); raise maxiter", ConvergenceWarning,
                      stacklevel=3)


# ---------------------------------------------------------------------------------------------------------------
# the generic multi-way solver


@dataclass(frozen=True, repr=False)
class MultiwayResult(Result):
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

    The main table (property ``table``, built on demand; ``to_frame()`` returns a copy) stacks all effects:
    columns ``effect_set, id, effect, n_obs``.
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
        return _summary_text(lines, self.coef, self.diagnostics, self.normalisation)

    @property
    def table(self) -> pd.DataFrame:
        """All effects stacked: columns ``effect_set, id, effect, n_obs``."""
        parts = []
        for name in self.effect_names:
            e = self.effects[name].rename(columns={name: "id"})
            e.insert(0, "effect_set", name)
            parts.append(e)
        return pd.concat(parts, ignore_index=True)

    def to_frame(self) -> pd.DataFrame:
        """All effects stacked (``table``, built afresh on every call, so already a copy)."""
        return self.table


def _summary_text(lines: list, coef: pd.Series, d: dict, normalisation: str) -> str:
    """The common tail of the result summaries: slope coefficients, solver diagnostics (with a warning line when
    CG did not converge), normalisation."""
    lines = lines + [f"  {k}: {v:.6f}" for k, v in coef.items()]
    lines.append(f"  solver: {d.get('iterations')} CG iterations, relative residual "
                 f"{d.get('rel_residual', float('nan')):.1e}, converged {d.get('converged')}, "
                 f"{d.get('seconds', float('nan')):.2f} s")
    if not d.get("converged", True):
        lines.append("  WARNING: the solver did NOT converge: effects are not the least-squares solution "
                     "(raise maxiter)")
    lines.append(f"  normalisation: {normalisation}")
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
    data : DataFrame with the outcome, the effect columns and the controls. Refused with an error naming the
        column and the first offending ids (:mod:`prosperity._checks`): no rows, a column given for two roles,
        missing or infinite values, a non-numeric (or boolean) outcome, control or weight, an id column mixing
        value types (``1`` and ``"1"``), values so large that their squares overflow, a constant outcome, and
        controls collinear with the effects or with each other (named). Rows are not checked for duplicates here
        (there is no period column; :func:`fit` checks worker-periods).
    y : outcome column (numeric).
    effects : two or more columns whose levels get a fixed effect; the first is partialled out (most levels).
        A single column is allowed (then it is the group-mean regression).
    controls : numeric control columns (slope coefficients). Categorical controls: add them to ``effects``.
    weights : optional column of positive row weights (weighted least squares).
    tol : relative residual of the normal equations at which CG stops (1e-10: effects accurate to about 1e-8).
    maxiter : CG iteration cap; ``diagnostics["converged"]`` says whether ``tol`` was reached, and a
        :class:`ConvergenceWarning` is issued when it was not.
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
    effects = _checks.as_list(effects)
    controls = _checks.as_list(controls)
    if len(effects) < 1:
        raise ValueError("effects must name at least one column")
    _check_inputs(data, y, effects, controls + ([weights] if weights else []))
    w = None
    if weights:
        _checks.require_positive(data, weights, _TABLE, id_cols=effects[0])
        w = data[weights].to_numpy(dtype=float)
    yv = data[y].to_numpy(dtype=float)
    Xv = data[controls].to_numpy(dtype=float) if controls else None
    coded = [_codes(data[c]) for c in effects]
    g0, ids0 = coded[0]
    gs = [c for c, _ in coded[1:]]
    ms = [len(u) for _, u in coded[1:]]
    if not gs:  # one set of effects: group means
        gs_dummy = [np.zeros(len(yv), dtype=np.int32)]
        sys_ = System(g0, len(ids0), gs_dummy, [1], w)
    else:
        sys_ = System(g0, len(ids0), gs, ms, w)
    beta, alpha, psi, resid, it, rel = _solve(sys_, yv, Xv, tol, maxiter, controls)
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
    _warn_convergence(diag, "fit_fixed_effects")
    return MultiwayResult(y=y, effect_names=tuple(effects), effects=out,
                          coef=pd.Series(beta, index=controls, dtype=float), fitted=fitted, resid=resid,
                          normalisation=norm, diagnostics=diag, n_obs=len(yv),
                          r2=1.0 - rss / tss if tss > 0 else float("nan"), rmse=float(np.sqrt(rss / W)))


# ---------------------------------------------------------------------------------------------------------------
# AKM


@dataclass(frozen=True, repr=False)
class AKMResult(Result):
    """An estimated AKM model (see :func:`fit`).

    Attributes
    ----------
    worker_effects : DataFrame ``[<worker>, "alpha", "n_obs"]`` keyed by the original worker ids.
    firm_effects : DataFrame ``[<firm>, "psi", "n_obs"]`` keyed by the original firm ids.
    time_effects : DataFrame ``[<time>, "effect", "n_obs"]`` or None.
    coef : slope coefficients of the controls (Series).
    sample : network counts (DataFrame, columns ``input`` and ``kept``: rows, workers, firms, movers, components,
        movers per firm), as :attr:`prosperity.network.ConnectedSet.counts`.
    ledger : what each sample restriction removed (``step, rows_in, rows_out, dropped, ..., reason``).
    connected : "largest" or "leave_one_out"; ``leave_out``: None, "obs", "match" or "match_movers" (the worker
        rule of the pruning; ``diagnostics["pruning"]``: "kss" or "matches").
    normalisation : the normalisation of the effects (a sentence).
    diagnostics : solver diagnostics (backend, iterations, relative residual, converged, seconds).
    n_obs, r2, rmse : fit statistics on the estimation sample; ``n_params`` the number of free parameters.
    names : dict with the column names used (``y, worker, firm, time, controls``).

    The main table (property ``table``, built on demand; ``to_frame()`` returns a copy) is the estimation sample,
    one row per observation.
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

    @property
    def table(self) -> pd.DataFrame:
        """The estimation sample, one row per observation: ids, ``y``, ``alpha``, ``psi``, ``xb`` (controls and
        time effects), ``resid`` (so ``y = alpha + psi + xb + resid`` exactly), indexed like the input rows.

        Built on demand from integer codes, the outcome and the residuals, which is all the result keeps per row
        (so that a fit on hundreds of millions of rows does not hold seven copies of them).

        A fit collapsed to matches (``collapse="matches"``) has one row per worker-firm match instead: ids,
        ``n_obs`` (person-years), ``y`` (the match mean), ``alpha``, ``psi``, ``xb`` (0) and ``resid`` (the mean
        residual of the match), with a default index."""
        r, nm = self._rows, self.names
        alpha, psi = self._effect("alpha"), self._effect("psi")
        if isinstance(r, _MatchRows):
            return pd.DataFrame({nm["worker"]: self.worker_effects[nm["worker"]].to_numpy()[r["wcode"]],
                                 nm["firm"]: self.firm_effects[nm["firm"]].to_numpy()[r["fcode"]],
                                 "n_obs": r["weights"].astype(np.int64), nm["y"]: r["y_mean"], "alpha": alpha,
                                 "psi": psi, "xb": r["y_mean"] - alpha - psi - r["resid_mean"],
                                 "resid": r["resid_mean"]})
        frame = pd.DataFrame({nm["worker"]: self.worker_effects[nm["worker"]].to_numpy()[r["wcode"]],
                              nm["firm"]: self.firm_effects[nm["firm"]].to_numpy()[r["fcode"]]}, index=r["index"])
        if nm["time"]:
            frame[nm["time"]] = r["time"]
        frame[nm["y"]] = r["y"]
        frame["alpha"], frame["psi"] = alpha, psi
        frame["xb"] = r["y"] - alpha - psi - r["resid"]
        frame["resid"] = r["resid"]
        return frame

    def to_frame(self) -> pd.DataFrame:
        """The estimation sample (``table``, built afresh on every call, so already a copy)."""
        return self.table

    def summary(self) -> str:
        n = self.names
        s = self.sample["kept"]
        w = self._rows["weights"] if isinstance(self._rows, _MatchRows) else None
        sd_a, sd_p = (float(np.sqrt(np.cov(self._effect(k), aweights=w, ddof=0))) for k in ("alpha", "psi"))
        lines = [
            f"AKM: {n['y']} ~ alpha[{n['worker']}] + psi[{n['firm']}]"
            + (f" + year[{n['time']}]" if n["time"] else "")
            + (" + " + " + ".join(n["controls"]) if n["controls"] else "") + f"   (backend: {self.backend})",
            f"  sample: {self.connected} connected set" + (f" (leave-{self.leave_out}-out)" if self.leave_out else "")
            + f"; {int(s['rows']):,} rows, {int(s['workers']):,} workers, {int(s['firms']):,} firms, "
            f"{int(s['movers']):,} movers ({s['movers_per_firm']:.1f} per firm)",
            f"  dropped: {int(self.ledger['dropped'].sum()):,} rows in {len(self.ledger)} step(s)",
            f"  R^2 {self.r2:.4f}; RMSE {self.rmse:.4f}; sd(alpha) {sd_a:.4f}; "
            f"sd(psi) {sd_p:.4f} (person-year weighted)",
        ]
        if w is not None:
            lines.append(f"  collapsed to {len(w):,} worker-firm matches (person-year weights)")
        return _summary_text(lines, self.coef, self.diagnostics, self.normalisation)

    def decompose(self, method: str = "plugin", **options):
        """Variance decomposition of ``y`` into worker effects, firm effects, sorting, controls and residual.

        ``method``: ``"plugin"``, ``"homoskedastic"`` (Andrews et al. 2008) or ``"kss"`` (Kline, Saggio and
        Solvsten 2020). Options are passed to :func:`prosperity.variance.decompose`.
        """
        return variance.decompose(self, method=method, **options)


_NORMALISATION = ("firm effects have person-year-weighted mean zero in the estimation sample "
                  "(sum_j n_j psi_j = 0); time effects, if any, likewise; worker effects absorb the level")


def _check_identified(counts: pd.DataFrame, connected: str, firm: str, table: str = _TABLE) -> None:
    """At least two firms in the estimation sample (else no firm effect is identified: they are relative to
    other firms linked by movers, Abowd, Creecy and Kramarz 2002)."""
    k, i = counts["kept"], counts["input"]
    if k["firms"] < 2:
        why = ("the data have a single firm" if i["firms"] < 2 else
               "no worker moves between firms" if i["movers"] == 0 else
               "the component with the most rows is a single firm" if connected == "largest" else
               "leave-one-out pruning left a single firm (its movers were articulation workers)")
        _checks.fail(f"the {connected.replace('_', '-')} connected set has {int(k['firms'])} firm(s) "
                     f"({int(i['firms'])} firm(s) and {int(i['movers'])} mover(s) in the input): {why}, so firm "
                     "effects are not identified (they are measured relative to other firms linked by movers)",
                     table, firm)


def fit(data: pd.DataFrame, y: str, worker: str, firm: str, time: str | None = None, controls: Sequence[str] = (),
        backend: str = "sparse", connected: str = "largest", leave_out: str = "obs", pruning: str = "kss",
        tol: float = 1e-10, maxiter: int = 10000, collapse: str | None = None) -> AKMResult:
    """Fit the AKM model ``y_it = alpha_i + psi_J(i,t) + [year_t] + x_it'b + e_it`` on a worker-period panel.

    Abowd, Kramarz and Margolis (1999, *Econometrica* 67(2):251-333); estimation on the largest connected set as in
    Abowd, Creecy and Kramarz (2002) and Card, Heining and Kline (2013, *QJE* 128(3):967-1015).

    Steps: check the input (below); restrict to the largest connected set of the worker-firm graph, or with
    ``connected="leave_one_out"`` to the leave-one-out connected set of Kline, Saggio and Solvsten (2020) needed
    by the KSS correction (``leave_out="obs"``, ``"match"`` or ``"match_movers"``, and ``pruning="kss"`` or the
    less strict ``"matches"`` of bipartitepandas: see :func:`prosperity.network.connected_set`), recording every
    dropped row in ``ledger``; fit by least squares;
    normalise. The ids are coded once (int32, sorted); the pruning (:func:`prosperity.network.prune`) and the
    solver work on those codes.

    Checks (each an error naming the column and the first offending ids, through :mod:`prosperity._checks`):
    everything :func:`fit_fixed_effects` checks (no rows, a column in two roles, missing or infinite values,
    non-numeric or boolean outcome or controls, ids mixing ``1`` and ``"1"``, overflowing or constant ``y``,
    collinear controls named, in both backends); duplicated worker-periods when ``time`` is given (the error
    names the worker ids and periods: keep one row per worker and period, e.g. the main job); without ``time``,
    rows identical in every column used (worker, firm, ``y``, controls), which are duplicated records rather
    than two periods; and a connected set with fewer than two firms (a single firm, or no movers): firm effects
    are identified only relative to other firms linked by movers, so there is nothing to estimate and CG is
    not started. A solve that stops at ``maxiter`` issues a :class:`ConvergenceWarning` and ``summary()`` says so.

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

    Collapsing to matches (``collapse="matches"``). In the two-way model without time effects and controls every
    regressor is constant within a worker-firm match (spell), so the least-squares problem over person-years is
    ``sum_m c_m (ybar_m - alpha_i - psi_j)^2`` plus the within-match sum of squares ``ss_m``: weighted least
    squares on the match means ``ybar_m`` with weights ``c_m`` (person-years) gives the same effects (as the
    collapsed estimators of LeaveOutTwoWay, ``leave_out_KSS_coll``, and pytwoway's ``collapse()``). The sample
    is pruned on the person-years first (the leave-one-out rules count person-years), then each kept match is
    reduced to ``(c_m, ybar_m, ss_m)``. Unchanged by collapsing, exactly: the sample, the ledger and counts, the
    worker and firm effects, ``n_obs``, ``r2``, ``rmse`` and the residual sum of squares (``ss_m`` is kept), and
    every quantity that depends on the data only through ``(c_m, ybar_m, ss_m)``: the person-year moments of the
    plug-in decomposition, the leverages, and the KSS estimates (leave-match-out, whose units are the movers'
    matches and the stayers' person-years, and leave-one-observation-out, whose ``sigma_l^2`` summed over a match
    is ``(ss_m + c_m (ybar_m - ybar) ebar_m) / (1 - P_m)``); see :class:`prosperity.variance._Matches`. Not kept:
    the person-year residuals themselves (``table`` has one row per match, with ``n_obs``, the match mean of ``y``
    and the mean residual), so time effects, controls (they vary within a match: refused) and
    :func:`residual_grid` (refused) need the uncollapsed fit. Memory: the result holds four arrays per match
    instead of four per person-year (about a fifth as many rows on a typical panel).

    Returns an :class:`AKMResult`.
    """
    controls = _checks.as_list(controls)
    _checks.require_choice(collapse, "collapse", (None, "matches"))
    if collapse and (time or controls or backend != "sparse"):
        _checks.fail("collapse='matches' fits the two-way model on worker-firm match means, which is exact only "
                     "when every regressor is constant within a match: time effects and controls vary within a "
                     "match; fit without collapse (or partial them out of y first), backend='sparse'",
                     _TABLE, time or (controls[0] if controls else None))
    _checks.require_choice(backend, "backend", ("sparse", "pyfixest"))
    _checks.require_choice(connected, "connected", ("largest", "leave_one_out"))
    _checks.require_choice(leave_out, "leave_out", network.LEAVE_OUT)
    _check_inputs(data, y, [worker, firm] + ([time] if time else []), controls)
    t0 = _time.perf_counter()
    # ids to int32 codes once: the duplicate check, the network pruning and the solver all work on these codes
    wc, wid = _codes(data[worker])
    fc, fid = _codes(data[firm])
    tcode = tid = None
    if time:
        tcode, tid = _codes(data[time])
        _check_worker_periods(data, wc, tcode, worker, time)
    else:
        _check_duplicates(data, [wc, fc, data[y].to_numpy()] + [data[c].to_numpy() for c in controls],
                          [worker, firm], f"identical in every column used ({', '.join([worker, firm, y] + controls)})",
                          "duplicated records, not two periods (no time column is given): drop the copies or pass "
                          "time=")
    pr = network.prune(wc, fc, len(wid), len(fid), leave_out if connected == "leave_one_out" else None, pruning)
    t_net = _time.perf_counter() - t0
    ledger, summary, lo = pr.ledger, pr.counts, pr.leave_out
    _check_identified(summary, connected, firm)
    pos = None if pr.rows.all() else np.flatnonzero(pr.rows)
    del pr  # the ledger and counts are what is kept of the network step

    def take(a):
        return a if pos is None else a[pos]

    wc, wid = _recode(take(wc), wid)
    fc, fid = _recode(take(fc), fid)
    yv = take(data[y].to_numpy(dtype=float))
    if collapse:
        return _fit_collapsed(wc, wid, fc, fid, yv, ledger, summary, connected, lo, pruning, t_net, tol, maxiter,
                              {"y": y, "worker": worker, "firm": firm, "time": None, "controls": ()})
    index = data.index if pos is None else data.index[pos]
    if time:
        tcode, tid = _recode(take(tcode), tid)
    if backend == "sparse":
        t1 = _time.perf_counter()
        Xv = take(data[controls].to_numpy(dtype=float)) if controls else None
        gs, ms = [fc] + ([tcode] if time else []), [len(fid)] + ([len(tid)] if time else [])
        sys_ = System(wc, len(wid), gs, ms)
        beta, alpha, theta, resid, it, rel = _solve(sys_, yv, Xv, tol, maxiter, controls)
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
    diag["pruning"] = pruning
    _warn_convergence(diag, "akm.fit")
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


def _panel_source(source) -> tuple[str, str]:
    """(DuckDB relation, table name for messages) of a :func:`fit_panel` source: a ``link.build_panel(...,
    output=)`` folder (verified against its manifest, sizes and row counts; its ``workers.parquet``), a Parquet
    file, or a folder or glob of Parquet files."""
    from pathlib import Path

    from . import _io

    p = Path(source)
    lit = lambda q: "'" + str(q).replace("'", "''") + "'"  # noqa: E731
    if p.is_dir() and (p / _io.MANIFEST).is_file():
        man = _io.verify(p, checksums=False)
        if man.get("kind") == "linked_panel":
            return f"read_parquet({lit(p / 'workers.parquet')})", "workers"
        _checks.fail(f"{p} is a {man.get('kind')!r} folder, not a linked panel (link.build_panel(..., output=)) or "
                     "a folder of Parquet files", "source", kind=_checks.InputError)
    if p.is_dir():
        if not any(p.rglob("*.parquet")):
            _checks.fail(f"{p} holds no Parquet file", "source")
        return f"read_parquet({lit(p / '**' / '*.parquet')})", p.name
    if p.is_file() or any(ch in str(source) for ch in "*?["):
        return f"read_parquet({lit(source)})", p.stem
    _checks.fail(f"{source}: no such file or folder", "source")


def fit_panel(source, y: str = "lhw", worker: str = "piden", firm: str = "entref", connected: str = "largest",
              leave_out: str = "obs", pruning: str = "kss", where: str | None = None, tol: float = 1e-10,
              maxiter: int = 10000, memory_limit: str | None = "4GB", threads: int | None = None,
              temp_directory: str | None = None, time: str | None = "year") -> AKMResult:
    """The two-way AKM model fitted from a worker-year panel on disk, collapsed to worker-firm matches in DuckDB.

    The population-scale path: ``source`` is the folder written by ``link.build_panel(..., output=folder)`` (its
    ``workers.parquet``, checked against the folder's manifest), or any Parquet file, folder or glob with one row
    per worker-year. No person-year array is ever held in Python. Stages, each releasing its memory before the
    next:

    1. DuckDB (``memory_limit``, spilling to ``temp_directory``) checks the columns (numeric ``y``; no missing
       worker, firm or ``y``; no infinite ``y``: errors name the column and the first ids) and collapses the
       person-years to matches: ``(worker, firm, count, mean y, sum of (y - mean)^2)``, the workers and firms coded
       to sorted int32 codes (the order of :func:`fit`), sorted by worker then firm;
    2. :func:`prosperity.network.prune_matches` restricts the matches to the largest or the leave-one-out connected
       set, counting person-years per match (every rule of :func:`prosperity.network.prune` keeps or drops whole
       matches, so the kept sample, ledger and counts are those of the person-year pruning);
    3. weighted least squares on the match means (weights: person-years), exactly as
       ``fit(..., collapse="matches")``: see :func:`fit` for what collapsing leaves unchanged (the effects, the
       sample, the fit statistics, the plug-in moments, leverages and the KSS estimates, leave-one-observation-out
       and leave-match-out).

    Returns the same :class:`AKMResult` as ``fit(panel, y, worker, firm, connected=..., collapse="matches")`` on the
    panel read into memory (the same effects to CG tolerance, tested in ``tests/test_england_path.py``), with
    ``diagnostics["source"]`` and ``diagnostics["collapse_seconds"]``; :meth:`AKMResult.decompose` runs on it
    (``"kss"``, ``se=True`` included). One difference: a tie between two connected components with the same number
    of person-years goes to the component of the first match (worker, firm order) rather than of the first row.

    No time effects or controls (they vary within a match); partial them out of ``y`` first if needed.
    ``where``: an optional SQL condition on the panel's columns (e.g. ``"year >= 2010"``), applied before collapsing.
    ``time``: the period column (default ``"year"``); when the panel has it, two rows of one worker in one period
    are refused, naming the first workers (a duplicated person-year would otherwise enter its match twice and
    silently re-weight it). ``time=None`` skips the check (one aggregation over the panel). Memory: DuckDB's ``memory_limit`` in stage 1, then about 40 bytes per match (matches are about a
    fifth of the person-years of a typical panel) plus the firm-sized Laplacian.
    """
    import duckdb

    from . import _io

    _checks.require_choice(connected, "connected", ("largest", "leave_one_out"))
    _checks.require_choice(leave_out, "leave_out", network.LEAVE_OUT)
    _checks.require_choice(pruning, "pruning", network.PRUNING)
    if len({y, worker, firm}) < 3:
        _checks.fail(f"y, worker and firm must be three different columns, got {y!r}, {worker!r}, {firm!r}", "source")
    rel, table = _panel_source(source)
    t0 = _time.perf_counter()
    con = _io.duckdb_connect(memory_limit, temp_directory, threads)
    q = lambda c: '"' + c.replace('"', '""') + '"'  # noqa: E731
    try:
        cols = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {rel})").fetchall())
        missing = [c for c in (y, worker, firm) if c not in cols]
        if missing:
            _checks.fail(f"missing column(s) {missing} (has {sorted(cols)})", table, missing[0])
        if not _io.duckdb_numeric(cols[y]):
            _checks.fail(f"must be numeric, got type {cols[y]}", table, y)
        has_t = time is not None and time in cols
        src = f"(SELECT {q(worker)} AS w, {q(firm)} AS f, CAST({q(y)} AS DOUBLE) AS y" + \
            (f", {q(time)} AS t" if has_t else "") + f" FROM {rel}" + (f" WHERE {where})" if where else ")")
        con.execute(f"CREATE TEMP VIEW src AS {src}")
        bad = con.execute("SELECT count(*) FILTER (w IS NULL), count(*) FILTER (f IS NULL), "
                          "count(*) FILTER (y IS NULL OR isinf(y) OR isnan(y)), count(*) FROM src").fetchone()
        for k, (c, cond) in enumerate(((worker, "w IS NULL"), (firm, "f IS NULL"),
                                       (y, "y IS NULL OR isinf(y) OR isnan(y)"))):
            if bad[k]:
                ids = [r[0] for r in con.execute(f"SELECT w FROM src WHERE {cond} LIMIT 5").fetchall()]
                _checks.fail(f"{bad[k]:,} missing{' or infinite' if c == y else ''} value(s); drop or impute them "
                             "explicitly before fitting (no row is dropped silently)", table, c, ids, worker)
        if bad[3] == 0:
            _checks.fail("has no rows" + (f" where {where}" if where else ""), table)
        if has_t:
            dup = con.execute("SELECT w, t, count(*) AS n FROM src GROUP BY w, t HAVING count(*) > 1 "
                              "ORDER BY w, t LIMIT 5").fetchall()
            if dup:
                n_dup = con.execute("SELECT count(*) FROM (SELECT 1 FROM src GROUP BY w, t HAVING count(*) > 1)"
                                    ).fetchone()[0]
                _checks.fail(f"{n_dup:,} (worker, {time}) pair(s) appear more than once (e.g. {dup[0][0]!r} in "
                             f"{dup[0][1]!r}, {dup[0][2]} rows): one row per worker and period is needed "
                             "(link.build_panel keeps the main job); deduplicate first, or pass time=None if the "
                             "rows are distinct jobs on purpose", table, time, [r[0] for r in dup], worker)
        con.execute("CREATE TEMP TABLE m AS SELECT w, f, count(*)::INTEGER AS c, avg(y) AS ybar, "
                    "coalesce(var_pop(y), 0) * count(*) AS ss FROM src GROUP BY w, f")
        con.execute("CREATE TEMP TABLE wk AS SELECT w, (row_number() OVER (ORDER BY w) - 1)::INTEGER AS i "
                    "FROM (SELECT DISTINCT w FROM m)")
        con.execute("CREATE TEMP TABLE fk AS SELECT f, (row_number() OVER (ORDER BY f) - 1)::INTEGER AS j "
                    "FROM (SELECT DISTINCT f FROM m)")
        arr = con.execute("SELECT wk.i, fk.j, m.c, m.ybar, m.ss FROM m JOIN wk USING (w) JOIN fk USING (f) "
                          "ORDER BY wk.i, fk.j").fetchnumpy()
        con.execute("DROP TABLE m")
        wid = con.sql("SELECT w FROM wk ORDER BY i").to_arrow_table().column(0).to_pandas()
        fid = con.sql("SELECT f FROM fk ORDER BY j").to_arrow_table().column(0).to_pandas()
    except duckdb.Error as exc:  # an unreadable file, a bad `where` condition, a column of the wrong type
        _checks.fail(f"DuckDB could not read or collapse {source}"
                     f"{f' with where={where!r}' if where else ''}: {exc}", table)
    finally:
        con.close()
    mi, mj = (np.asarray(arr[k], dtype=np.int32) for k in ("i", "j"))
    c = np.asarray(arr["c"], dtype=np.int64)
    ybar, ss = (np.asarray(arr[k], dtype=float) for k in ("ybar", "ss"))
    del arr
    wid, fid = pd.Index(wid, name=worker), pd.Index(fid, name=firm)
    if ybar.min() == ybar.max() and not ss.any():
        _checks.fail(f"is constant (every value is {ybar[0]!r}): there is no variation for the effects to explain",
                     table, y)
    t_collapse = _time.perf_counter() - t0
    pr = network.prune_matches(mi, mj, c, len(wid), len(fid), leave_out if connected == "leave_one_out" else None,
                               pruning)
    t_net = _time.perf_counter() - t0 - t_collapse
    ledger, summary, lo = pr.ledger, pr.counts, pr.leave_out
    _check_identified(summary, connected, firm, table)
    if not pr.rows.all():
        keep = np.flatnonzero(pr.rows)
        mi, mj, c, ybar, ss = mi[keep], mj[keep], c[keep], ybar[keep], ss[keep]
        del keep
    del pr
    mi, wid = _recode(mi, wid)
    mj, fid = _recode(mj, fid)
    res = _fit_matches(mi, mj, c.astype(float), ybar, ss, wid, fid, ledger, summary, connected, lo, pruning, t_net,
                       tol, maxiter, {"y": y, "worker": worker, "firm": firm, "time": None, "controls": ()},
                       _time.perf_counter())
    res.diagnostics.update(source=str(source), collapse_seconds=t_collapse)
    return res


def _collapse_matches(wc: np.ndarray, fc: np.ndarray, yv: np.ndarray, nw: int, nf: int):
    """Worker-firm matches of a panel given as integer codes: ``(mi, mj, c, ybar, ss, row_match)``.

    ``mi``, ``mj``: worker and firm code of each match, sorted by worker then firm; ``c``: person-years;
    ``ybar``: mean of ``yv``; ``ss``: within-match sum of squares ``sum (y - ybar_m)^2`` (two passes, so no
    cancellation); ``row_match``: the match of every row. Linear time (a CSR count matrix, no sort of the rows)."""
    A = sp.csr_matrix((np.ones(len(wc), dtype=np.int32), (wc, fc)), shape=(nw, nf))
    A.sum_duplicates()
    nm = A.nnz
    mi = np.repeat(np.arange(nw, dtype=np.int32), np.diff(A.indptr))
    mj = A.indices.astype(np.int32, copy=False)
    c = A.data.astype(float)
    idx = sp.csr_matrix((np.arange(nm, dtype=np.int64), A.indices, A.indptr), shape=A.shape)
    del A
    rm = np.asarray(idx[wc, fc]).ravel()
    del idx
    ybar = np.bincount(rm, weights=yv, minlength=nm) / c
    ss = np.bincount(rm, weights=np.square(yv - ybar[rm]), minlength=nm)
    return mi, mj, c, ybar, ss, rm


def _fit_collapsed(wc, wid, fc, fid, yv, ledger, summary, connected, lo, pruning, t_net, tol, maxiter, names):
    """:func:`fit` with ``collapse="matches"``: weighted least squares on the match means (see :func:`fit`)."""
    t1 = _time.perf_counter()
    mi, mj, c, ybar, ss, _ = _collapse_matches(wc, fc, yv, len(wid), len(fid))
    del wc, fc, yv
    return _fit_matches(mi, mj, c, ybar, ss, wid, fid, ledger, summary, connected, lo, pruning, t_net, tol, maxiter,
                        names, t1)


def _fit_matches(mi, mj, c, ybar, ss, wid, fid, ledger, summary, connected, lo, pruning, t_net, tol, maxiter, names,
                 t1):
    """Weighted least squares on match means: ``mi``, ``mj`` int32 codes sorted by worker then firm, ``c``
    person-years, ``ybar`` match means, ``ss`` within-match sums of squares; ``wid``, ``fid`` the ids of the
    codes. Shared by :func:`fit` (``collapse="matches"``) and :func:`fit_panel`."""
    n = int(round(float(c.sum())))
    sys_ = System(mi, len(wid), [mj], [len(fid)], c)
    _, alpha, theta, ebar, it, rel = _solve(sys_, ybar, None, tol, maxiter, [])
    psi = theta[:len(fid)]
    nf_rows = np.bincount(mj, weights=c, minlength=len(fid))
    dot = lambda a, b: float(np.einsum("i,i->", a, b))  # noqa: E731  (no BLAS: the same bytes for any thread count)
    shift = dot(nf_rows, psi) / n
    psi, alpha = psi - shift, alpha + shift
    we = pd.DataFrame({names["worker"]: wid, "alpha": alpha,
                       "n_obs": np.bincount(mi, weights=c, minlength=len(wid)).astype(np.int64)})
    fe = pd.DataFrame({names["firm"]: fid, "psi": psi, "n_obs": nf_rows.astype(np.int64)})
    diag = {"iterations": int(it), "rel_residual": rel, "converged": bool(rel <= tol * 10),
            "n_unidentified": int(sys_.unidentified.sum()), "seconds": _time.perf_counter() - t1,
            "backend": "sparse", "network_seconds": t_net, "pruning": pruning, "collapse": "matches",
            "matches": int(len(c))}
    del sys_
    _warn_convergence(diag, "akm.fit")
    ymean = dot(c, ybar) / n
    rss = dot(c, np.square(ebar)) + float(ss.sum())
    tss = dot(c, np.square(ybar - ymean)) + float(ss.sum())
    n_params = len(we) + len(fe) - 1
    rows = _MatchRows(wcode=mi, fcode=mj, weights=c, y_mean=ybar, resid_mean=ebar, y_ss=ss)
    return AKMResult(worker_effects=we, firm_effects=fe, time_effects=None, coef=pd.Series([], dtype=float),
                     sample=summary, ledger=ledger, connected=connected, leave_out=lo, normalisation=_NORMALISATION,
                     diagnostics=diag, n_obs=n, n_params=int(n_params), r2=1 - rss / tss if tss > 0 else float("nan"),
                     rmse=float(np.sqrt(rss / n)), names=names, backend="sparse", _rows=rows)


class _MatchRows(dict):
    """The per-row arrays of a fit collapsed to matches: one row per worker-firm match, keys ``wcode``,
    ``fcode``, ``weights`` (person-years), ``y_mean``, ``resid_mean`` (match means) and ``y_ss`` (within-match
    sum of squares of y). Asking it for a person-year array (``"y"``, ``"resid"``, ...) is an error naming what
    to do, so that no code reads match means as if they were person-years."""

    def __missing__(self, key):
        _checks.fail(f"this AKM fit was collapsed to worker-firm matches (akm.fit(..., collapse='matches')): it "
                     f"keeps match means and person-year weights, not the person-year array {key!r}; this "
                     "function needs the person-year fit (fit without collapse=)", "result", kind=_checks.InputError)


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
            # pyfixest dropped them as collinear: name them, and what they are collinear with, by the sparse check
            # (the same error as the sparse backend); its tolerance differs from ours, hence the fallback
            gs, ms = [fc] + ([tc] if time else []), [len(fid)] + ([len(tid)] if time else [])
            _solve(System(wc, len(wid), gs, ms), df["_y"].to_numpy(), df[names].to_numpy(), 1e-10, 10000,
                   list(controls))
            dropped = [controls[i] for i in np.flatnonzero(cf.isna().to_numpy())]
            _checks.fail(f"control column(s) {dropped} were dropped by pyfixest as collinear with the fixed effects "
                         "or the other controls; remove them from controls", _TABLE, dropped[0])
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

    Checks as in :func:`fit` (through :mod:`prosperity._checks`), and ``time`` must be numeric with one row per
    worker and period (a duplicated worker-period would make a spurious "move" within a year).
    """
    _check_inputs(data, y, [worker, firm, time], [])
    _checks.require_numeric(data, [time], _TABLE, hint="; event time is counted in consecutive periods")
    wc, _ = _codes(data[worker])
    tc, _ = _codes(data[time])
    _check_worker_periods(data, wc, tc, worker, time)
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
    origin, dest = q[i - 1], q[i]
    frames = []
    for k, off in zip((-2, -1, 0, 1), (-2, -1, 0, 1)):
        frames.append(pd.DataFrame({"origin": origin, "destination": dest, "event_time": k, "y": yv[i + off]}))
    ev = pd.concat(frames, ignore_index=True)
    out = (ev.groupby(["origin", "destination", "event_time"]).agg(mean_y=("y", "mean"), moves=("y", "size"))
           .reset_index())
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
    if not isinstance(result, AKMResult):
        _checks.fail(f"must be an akm.AKMResult (from akm.fit), got {type(result).__name__}", "result",
                     kind=_checks.InputTypeError)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or not 2 <= bins <= result.n_obs:
        raise ValueError(f"bins must be an integer between 2 and the number of rows ({result.n_obs}), got {bins!r}")
    if isinstance(result._rows, _MatchRows):
        _checks.fail("residual_grid needs the person-year residuals, which a fit collapsed to matches "
                     "(collapse='matches') does not keep: fit without collapse=", "result")
    fr = result.table
    a = pd.qcut(fr["alpha"].rank(method="first"), bins, labels=range(1, bins + 1))
    p = pd.qcut(fr["psi"].rank(method="first"), bins, labels=range(1, bins + 1))
    g = fr.groupby([a.rename("alpha_decile"), p.rename("psi_decile")], observed=False)["resid"].mean()
    return g.unstack("psi_decile")

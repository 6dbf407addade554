"""Place effects and the people / firms / place decomposition of England's spatial pay gaps.

Five questions, one function each (plus the pure helpers :func:`gap_components`, :func:`variance_across_places`
and :func:`characteristics`):

- :func:`place_effects`: how much more does the *same* worker earn in one place than in another? Three models,
  side by side (Card, Rothstein and Yi 2021, "Location, location, location", US Census Bureau CES WP 21-32;
  Combes, Duranton and Gobillon 2008, *J. Urban Econ.* 63(2):723-742):

  (a) ``"worker+place"``: ``y_it = alpha_i + phi_l(i,t) [+ tau_t + x'b] + e``; place effects are identified by
      workers who move between places, within the connected set of the worker-place graph. They absorb the
      average firm premium of each place.
  (b) ``"worker+firm+place"``: ``y_it = alpha_i + psi_J(i,t) + phi_l(i,t) [+ tau_t + x'b] + e``. Movers identify the
      differences between *establishment cells* (firm x place); the split of a cell's premium between its firm and
      its place is identified only by enterprises with sites in several places (multi-site enterprises). The
      model is fitted on the largest set connected in both senses: the worker-cell graph and the firm-place graph.
  (c) ``"worker+place×industry"``: ``y_it = alpha_i + gamma_{l,k(i,t)} [+ tau_t + x'b] + e`` (CRY 2021 version),
      then ``gamma_lk = mu_l + eta_k + interaction`` by employment-weighted least squares; ``mu_l`` is the place
      effect net of industry composition.

- :func:`collapse_panel`: a worker-year panel on disk collapsed in DuckDB to worker x enterprise x place x industry
  cells (:class:`PanelCells`), on which :func:`place_effects` and :func:`decompose_gaps` give the person-year
  answer exactly at a fraction of the memory (the population path).
- :func:`decompose_gaps`: each place's mean log pay gap against England, split exactly into people (mean worker
  effect and observed characteristics), industry mix (national industry premiums weighted by the place's industry
  shares), firms within industries (the rest of the mean firm premium), the place effect and the residual; and
  the variance of the gaps across places split into variances and covariances (sorting) of the components,
  plug-in and split-sample bias-corrected, with headline shares from :func:`gap_shares`; with ``se=True``
  delete-a-group jackknife standard errors (over groups of workers) on every place's components and the shares.
- :func:`movers`: the pay change of workers who move between places against the difference in the places' mean
  pay (Finkelstein, Gentzkow and Williams 2016, *QJE* 131(4):1681-1726, design; CRY 2024).
- :func:`explain_place_effects`: place effects regressed on place characteristics with their estimation noise
  accounted for (precision-weighted feasible GLS with a method-of-moments between-place variance, as in
  meta-regression; empirical-Bayes shrinkage toward the regression line).
- :func:`rolling`: the decomposition re-estimated on rolling windows of years (Card, Heining and Kline 2013, *QJE*
  128(3):967-1015, do the same for AKM), with :meth:`RollingResult.changes` testing changes between windows.

Every fixed-effect model is solved by :func:`prosperity.akm.fit_fixed_effects` (on cells by
:func:`prosperity._sparse.solve_cells`, the same least squares from cell-level data); connected sets come from the
shared kernel :func:`prosperity._sparse.component_labels`; input checks go through :mod:`prosperity._checks`; results
derive from :class:`prosperity._results.Result` (main table ``table``). This module only builds samples, checks
identification and aggregates. Vocabulary: ``level`` is the geography column places are keyed by, ``place`` the
place component of a gap, ``people`` the people component.
"""

from __future__ import annotations

import os
import time as _time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats
from tqdm.auto import tqdm

from . import _sparse, akm, geography
from ._checks import (InputTypeError, fail, first_ids, require_choice, require_columns, require_complete,
                      require_numeric, require_positive, require_unique)
from ._results import Result
from ._sparse import component_labels, id_codes

__all__ = [
    "MODELS",
    "COMPONENTS",
    "SHARES",
    "PlaceEffects",
    "place_effects",
    "PanelCells",
    "collapse_panel",
    "GapDecomposition",
    "decompose_gaps",
    "gap_components",
    "variance_across_places",
    "population_variance_across_places",
    "gap_shares",
    "MoversResult",
    "movers",
    "CharacteristicsRegression",
    "explain_place_effects",
    "characteristics",
    "RollingResult",
    "rolling",
]

MODELS = ("worker+place", "worker+firm+place", "worker+place×industry")
_MODEL_ALIASES = {"worker+place*industry": "worker+place×industry", "worker+placexindustry": "worker+place×industry",
                  "cry": "worker+place×industry", "a": "worker+place", "b": "worker+firm+place",
                  "c": "worker+place×industry"}
#: The additive components of a place's gap, in order.
COMPONENTS = ("people", "industry_mix", "firm_within", "place", "residual")
#: The headline shares of the variance of gaps across places (:func:`gap_shares`), in order.
SHARES = ("people", "firms", "place", "sorting", "other")
_LEVELS = ("lad", "itl3", "region")


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _panel(linked, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The worker-year panel: ``linked.workers`` of a :class:`prosperity.link.LinkedData`, a DataFrame, or the
    folder written by ``link.build_panel(..., output=folder)`` (checked against its manifest; only ``columns`` of
    its ``workers.parquet`` are read, text columns as categoricals, so that a population panel is read at a few
    bytes per column and person-year rather than as Python strings)."""
    if isinstance(linked, pd.DataFrame):
        return linked
    if isinstance(linked, (str, os.PathLike)):
        import pyarrow.parquet as pq

        from . import _io

        folder = Path(linked)
        man = _io.verify(folder, "linked_panel", checksums=False)
        if "workers.parquet" not in man["files"]:
            fail(f"{folder} has no workers.parquet (a linked panel without a worker panel)", "workers")
        path = folder / "workers.parquet"
        have = pq.read_schema(path).names
        cols = have if columns is None else [c for c in dict.fromkeys(columns) if c in have]
        return pq.read_table(path, columns=cols).to_pandas(strings_to_categorical=True)
    workers = getattr(linked, "workers", None)
    if isinstance(workers, pd.DataFrame):
        return workers
    if isinstance(linked, PanelCells):
        fail("collapsed cells (collapse_panel) serve place_effects and decompose_gaps only: this function needs the "
             "person-year panel (for rolling windows, collapse each window with collapse_panel(where=...))",
             "workers", kind=InputTypeError)
    fail(f"expected a LinkedData (with a .workers DataFrame) or a DataFrame, got {type(linked).__name__}",
         "workers", kind=InputTypeError)


def _require(df: pd.DataFrame, cols: Sequence[str | None], table: str, ids: str | None = None) -> None:
    """The columns exist and have no missing value (errors name the table, the column and the first ids)."""
    require_columns(df, list(dict.fromkeys(c for c in cols if c is not None)), table)
    require_complete(df, cols, table, id_cols=ids)


def _largest_component(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Rows (boolean mask) in the largest connected component (by rows, or by the sum of ``weights``: person-years
    of collapsed cells) of the bipartite graph with edges (a_r, b_r), and the number of components (the shared
    kernel :func:`prosperity._sparse.component_labels`)."""
    ca, na = id_codes(pd.Series(a))
    cb, nb = id_codes(pd.Series(b))
    n, lab = component_labels(ca, cb, na, nb)
    if n == 1:
        return np.ones(len(ca), dtype=bool), 1
    row_lab = lab[cb]
    sizes = np.bincount(row_lab, weights=weights, minlength=n)
    return row_lab == int(np.argmax(sizes)), int(n)


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.dot(x, w) / w.sum())


def _norm_model(model: str) -> str:
    m = _MODEL_ALIASES.get(model, model)
    require_choice(m, "model", MODELS)
    return m


# ---------------------------------------------------------------------------------------------------------------
# place effects


@dataclass(frozen=True, repr=False)
class PlaceEffects(Result):
    """Place effects from one model (see :func:`place_effects`).

    Attributes
    ----------
    model
        ``"worker+place"``, ``"worker+firm+place"`` or ``"worker+place×industry"``.
    level
        the geography column the places are keyed by (``"lad"``, ``"itl3"`` or ``"region"``).
    table
        one row per place: ``<level>, effect, n_obs, n_people, n_firms`` (person-years, distinct workers and
        distinct enterprises in the estimation sample) and ``se`` (delete-a-group jackknife over workers) when asked.
        Effects have person-year-weighted mean zero. ``effects`` is a read-only alias of ``table``.
    identification
        counts that state what identifies the model (see :meth:`summary`).
    rows
        the estimation sample, one row per person-year, with the fitted components ``alpha`` (worker),
        ``psi`` (firm; for model (c) ``gamma - mu``: industry premium plus interaction; 0 for model (a)), ``phi``
        (place), ``tau`` (year), ``xb`` (controls) and ``resid``, so that ``y = alpha + psi + phi + tau + xb + resid``.
    cells
        model (c) only: ``<level>, industry, gamma, mu, eta, interaction, n_obs``.
    fit
        the underlying :class:`prosperity.akm.MultiwayResult`.
    columns
        the column names and fitting options used (so that refits, e.g. the split-sample halves, match).
    replicates
        with ``se=True``, the place effects of every jackknife fold (``<level>, fold0, fold1, ...``),
        for :func:`explain_place_effects` (estimation errors are correlated across places).
    worker_folds
        with ``se=True``, the jackknife fold of every worker of the estimation sample (indexed by worker id).
    fold_components
        with ``se=True`` and an industry column, every fold's gap components by place (:func:`gap_components`
        on the fold's re-fitted rows; columns ``fold, <level>, gap, people, ..., n_obs``): the replicates from
        which :func:`decompose_gaps` (``se=True``) gets standard errors at any level without re-fitting.
    """

    model: str
    level: str
    table: pd.DataFrame
    identification: dict
    rows: pd.DataFrame = field(repr=False)
    cells: pd.DataFrame | None = field(default=None, repr=False)
    fit: object = field(default=None, repr=False)
    columns: dict = field(default_factory=dict, repr=False)
    replicates: pd.DataFrame | None = field(default=None, repr=False)
    worker_folds: pd.Series | None = field(default=None, repr=False)
    fold_components: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def effects(self) -> pd.DataFrame:
        """Alias of :attr:`table` (the place effects, one row per place), kept for earlier code."""
        return self.table

    def summary(self) -> str:
        d = self.identification
        lines = [f"Place effects, model {self.model} (places: {self.level})",
                 f"  estimation sample: {d['n_obs']:,} person-years, {d['n_workers']:,} workers, "
                 f"{d['n_firms']:,} enterprises, {d['n_places']:,} places "
                 f"({d['dropped_obs']:,} person-years outside the identified set dropped)",
                 f"  movers between places: {d['n_place_movers']:,} workers"]
        if self.model == "worker+firm+place":
            lines.append(f"  enterprises with sites in two or more places: {d['n_multi_place_firms']:,} "
                         f"({d['share_obs_multi_place_firms']:.1%} of person-years); firm-place graph "
                         f"components before restriction: {d['firm_place_components']}")
        if self.model == "worker+place×industry":
            lines.append(f"  place x industry cells: {d['n_cells']:,}")
        lines.append(f"  worker-{d['graph']} graph components before restriction: {d['worker_components']}")
        e = self.table["effect"].to_numpy()
        w = self.table["n_obs"].to_numpy(dtype=float)
        lines.append(f"  sd of place effects (person-year weighted): {np.sqrt(_wmean(e**2, w) - _wmean(e, w)**2):.4f}")
        if "se" in self.table:
            lines.append(f"  mean jackknife se: {np.nanmean(self.table['se']):.4f}")
        return "\n".join(lines)


def _identified_sample(df: pd.DataFrame, model: str, worker: str, firm: str, level: str, industry: str,
                       weights: np.ndarray | None = None):
    """Restrict to the set on which the model's effects are identified; return mask and counts. ``weights``: the
    person-years of each row when the rows are collapsed cells (components are then largest by person-years)."""
    info = {}
    keep = np.ones(len(df), dtype=bool)
    if model == "worker+place":
        cell = df[level].to_numpy()
        info["graph"] = "place"
    elif model == "worker+firm+place":
        cell = df.groupby([firm, level], sort=False, observed=True).ngroup().to_numpy()
        info["graph"] = "establishment (firm x place)"
    else:
        cell = df.groupby([level, industry], sort=False, observed=True).ngroup().to_numpy()
        info["graph"] = "place x industry"
    wk = df[worker].to_numpy()
    if model == "worker+firm+place":
        info["firm_place_components"] = _largest_component(df[firm].to_numpy(), df[level].to_numpy())[1]
    first = True
    for _ in range(20):  # iterate the two restrictions to a fixed point (one or two rounds in practice)
        m, ncomp = _largest_component(wk[keep], cell[keep], None if weights is None else weights[keep])
        if first:
            info["worker_components"] = ncomp
        new = keep.copy()
        new[np.flatnonzero(keep)[~m]] = False
        if model == "worker+firm+place":
            sub = df.loc[new, [firm, level]]
            m2, _ = _largest_component(sub[firm].to_numpy(), sub[level].to_numpy(),
                                       None if weights is None else weights[new])
            idx = np.flatnonzero(new)
            new[idx[~m2]] = False
        first = False
        if new.sum() == keep.sum():
            keep = new
            break
        keep = new
    return keep, info


def place_effects(linked, model: str = "worker+firm+place", *, level: str = "lad", y: str = "lhw",
                  worker: str = "piden", firm: str = "entref", industry: str = "industry",
                  time: str | None = "year", controls: Sequence[str] = (), se: bool = False, folds: int = 10,
                  seed: int = 0, tol: float = 1e-10, quiet: bool = True) -> PlaceEffects:
    """Estimate place effects from one of three models (Card, Rothstein and Yi 2021, CES WP 21-32).

    Parameters
    ----------
    linked : a :class:`prosperity.link.LinkedData` (its ``.workers`` panel is used), a worker-year DataFrame, the
        folder of ``link.build_panel(..., output=folder)`` (only the columns used are read from its
        ``workers.parquet``),
        or the :class:`PanelCells` of :func:`collapse_panel` (the population path: the same estimates, with the
        columns and controls chosen at the collapse; ``rows`` then has one row per cell, its person-years in
        ``n_obs`` and the cell means of ``y, alpha, psi, phi, tau, xb, resid``).
    model : ``"worker+place"`` (a), ``"worker+firm+place"`` (b) or ``"worker+place×industry"`` (c); see the module
        docstring for the equations and what identifies each.
    level : the geography column the places are keyed by: ``"lad"`` (district), ``"itl3"`` or ``"region"``.
    y, worker, firm, industry, time : column names (``time=None`` for no year effects).
    controls : numeric time-varying controls (e.g. a centred cubic in age without its linear term, which is
        collinear with worker and year effects).
    se : also compute standard errors of the place effects by a delete-a-group jackknife over ``folds`` random
        groups of workers (robust to heteroskedasticity and to serial correlation within workers). Each fold is
        re-normalised to the full sample's person-year weights so that a common shift does not count as noise.
    seed : seed of the fold assignment.
    quiet : hide the progress bar of the jackknife.

    Identification is checked, not assumed: the sample is restricted to the largest connected set of the graph
    linking workers to places (a), to establishment cells (b) or to place x industry cells (c); for (b) also to the
    largest connected component of the firm-place graph (the split of a cell premium between firm and place needs
    enterprises observed in several places). ``identification`` reports what was dropped.

    Returns
    -------
    PlaceEffects
    """
    model = _norm_model(model)
    if isinstance(linked, PanelCells):
        _cells_arguments(linked, dict(y=y, worker=worker, firm=firm, industry=industry, time=time, level=level),
                         controls)
        return _place_effects_cells(linked, model, se=se, folds=folds, seed=seed, tol=tol, quiet=quiet)
    df = _panel(linked, [y, worker, firm, industry, time, *controls, *_LEVELS])
    cols = [y, worker, level] + ([firm] if model != "worker+place" else []) + \
        ([industry] if model == "worker+place×industry" else []) + ([time] if time else []) + list(controls)
    # the firm and industry columns are carried along when present, for counts and the gap decomposition
    carry = [c for c in dict.fromkeys((firm, industry) + _LEVELS) if c in df.columns and c not in cols]
    _require(df, cols, "workers", ids=worker)
    require_numeric(df, [y] + list(controls), "workers")
    work = df[cols + carry].reset_index(drop=True)
    n_in = len(work)
    keep, info = _identified_sample(work, model, worker, firm, level, industry)
    work = work.loc[keep].reset_index(drop=True)
    if len(work) == 0:
        fail("no identified sample (no worker links any two places)", "workers", level)

    res, rows, cells = _fit_model(work, model, y=y, worker=worker, firm=firm, level=level, industry=industry,
                                  time=time, controls=controls, tol=tol)
    eff = _effects_table(rows, level, worker, firm)

    # identification counts
    nplaces_w = work.groupby(worker, sort=False)[level].nunique()
    info.update(
        n_obs=int(len(work)), dropped_obs=int(n_in - len(work)), n_workers=int(work[worker].nunique()),
        n_firms=int(work[firm].nunique()) if firm in work else 0, n_places=int(work[level].nunique()),
        n_place_movers=int((nplaces_w > 1).sum()),
    )
    if firm in work:
        nplaces_f = work.groupby(firm, sort=False)[level].nunique()
        multi = nplaces_f.index[nplaces_f > 1]
        info["n_multi_place_firms"] = int(len(multi))
        info["share_obs_multi_place_firms"] = float(work[firm].isin(multi).mean())
    if cells is not None:
        info["n_cells"] = int(len(cells))
    info["solver"] = dict(res.diagnostics)

    replicates = fold_of = fold_comps = None
    if se:
        se_tab, replicates, fold_of, fold_comps = _jackknife_se(
            work, model, eff, folds=folds, seed=seed, quiet=quiet, y=y, worker=worker, firm=firm, level=level,
            industry=industry, time=time, controls=controls, tol=tol)
        eff = eff.merge(se_tab, on=level, how="left")
    colmap = dict(y=y, worker=worker, firm=firm, level=level, industry=industry, time=time,
                  controls=tuple(controls), tol=tol)
    return PlaceEffects(model=model, level=level, table=eff, identification=info, rows=rows, cells=cells,
                        fit=res, columns=colmap, replicates=replicates, worker_folds=fold_of,
                        fold_components=fold_comps)


def _fit_model(work, model, *, y, worker, firm, level, industry, time, controls, tol):
    n = len(work)
    yv = work[y].to_numpy(dtype=float)
    rows = pd.DataFrame({c: work[c].to_numpy() for c in dict.fromkeys((worker, firm, level, industry, time) + _LEVELS)
                         if c and c in work.columns})
    rows["y"] = yv
    cells = None
    if model == "worker+place":
        effs = [worker, level]
    elif model == "worker+firm+place":
        effs = [worker, firm, level]
    else:
        work = work.assign(_cell=work.groupby([level, industry], sort=False, observed=True).ngroup().to_numpy())
        effs = [worker, "_cell"]
    if time:
        effs = effs + [time]
    res = akm.fit_fixed_effects(work, y, effects=effs, controls=list(controls), tol=tol)
    if not res.diagnostics["converged"]:
        raise RuntimeError(f"place_effects: the fixed-effect solver did not converge ({res.diagnostics})")
    E = res.effects

    def lookup(col, src=None):
        t = E[col]
        s = pd.Series(t["effect"].to_numpy(), index=t[col].to_numpy())
        return s.reindex((work[src or col]).to_numpy()).to_numpy()

    rows["alpha"] = lookup(worker)
    rows["tau"] = lookup(time) if time else 0.0
    rows["xb"] = work[list(controls)].to_numpy(dtype=float) @ res.coef.to_numpy() if len(controls) else 0.0
    if model == "worker+place":
        rows["psi"] = 0.0
        rows["phi"] = lookup(level)
    elif model == "worker+firm+place":
        rows["psi"] = lookup(firm)
        rows["phi"] = lookup(level)
    else:
        rows["gamma"] = lookup("_cell")
        rows, cells = _split_cells(rows, level, industry, tol)
    rows["resid"] = res.resid
    # sanity: the components add up to y (the solver's own identity)
    total = rows["alpha"] + rows["psi"] + rows["phi"] + rows["tau"] + rows["xb"] + rows["resid"]
    err = float(np.max(np.abs(total - yv))) if n else 0.0
    if err > 1e-6:
        raise RuntimeError(f"place_effects: components do not add up to {y} (max error {err:.2e})")
    return res, rows, cells


def _split_cells(rows: pd.DataFrame, level: str, industry: str, tol: float, weights: str | None = None):
    """Model (c)'s second stage: ``gamma_lk = mu_l + eta_k + interaction`` by employment-weighted least squares
    (CRY 2021) on the place x industry cells of ``rows`` (person-years, or collapsed rows with person-years in
    ``weights``); returns the rows with ``phi = mu`` and ``psi = gamma - mu`` in place of ``gamma``, and the cells."""
    c = pd.DataFrame({level: rows[level].to_numpy(), industry: rows[industry].to_numpy(),
                      "gamma": rows["gamma"].to_numpy(),
                      "_n": 1 if weights is None else rows[weights].to_numpy()})
    cells = (c.groupby([level, industry], sort=True, observed=True)
             .agg(gamma=("gamma", "first"), n_obs=("_n", "sum")).reset_index())
    two = akm.fit_fixed_effects(cells, "gamma", effects=[level, industry], weights="n_obs", tol=tol)
    mu = two.effects[level].set_index(level)["effect"]
    eta = two.effects[industry].set_index(industry)["effect"]
    cells["mu"] = cells[level].map(mu).to_numpy()
    cells["eta"] = cells[industry].map(eta).to_numpy()
    cells["interaction"] = cells["gamma"] - cells["mu"] - cells["eta"]
    # make mu have person-year mean zero; the level goes to the industry/firm part
    mbar = _wmean(cells["mu"].to_numpy(), cells["n_obs"].to_numpy(dtype=float))
    cells["mu"] -= mbar
    cells["eta"] += mbar
    rows["phi"] = rows[level].map(cells.groupby(level, observed=True)["mu"].first()).to_numpy()
    rows["psi"] = rows["gamma"] - rows["phi"]
    return rows.drop(columns="gamma"), cells


def _effects_table(rows: pd.DataFrame, level: str, worker: str, firm: str, weights: str | None = None) -> pd.DataFrame:
    g = rows.groupby(level, sort=True, observed=True)
    n_obs = g.size() if weights is None else g[weights].sum()
    out = pd.DataFrame({"effect": g["phi"].first(), "n_obs": n_obs, "n_people": g[worker].nunique()})
    out["n_firms"] = g[firm].nunique() if firm in rows else 0
    return out.reset_index()


def _jackknife(est: np.ndarray) -> np.ndarray:
    """Delete-a-group jackknife standard errors from the ``(K, p)`` estimates of the ``K`` folds (Quenouille-Tukey:
    ``var = (K - 1) / K * sum_k (theta_k - theta_bar)^2``); ``nan`` where some fold has no estimate."""
    K = est.shape[0]
    n_ok = np.isfinite(est).sum(axis=0)
    mean = np.nanmean(np.where(n_ok[None, :] > 0, est, 0.0), axis=0)
    var = (K - 1) / K * np.nansum((est - mean) ** 2, axis=0)
    var[n_ok < K] = np.nan  # a unit lost in some fold has no reliable jackknife
    return np.sqrt(var)


def _worker_folds(work: pd.DataFrame, worker: str, folds: int, seed: int) -> pd.Series:
    """A random fold ``0..folds-1`` for every worker of ``work`` (``default_rng(seed)``, in order of appearance)."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    ids = work[worker].unique()
    return pd.Series(np.random.default_rng(seed).integers(0, folds, len(ids)), index=ids, name="fold")


def _refit(sub: pd.DataFrame, model: str, **kw) -> pd.DataFrame:
    """The estimation rows of ``model`` re-fitted on ``sub`` (identified set re-done)."""
    keep, _ = _identified_sample(sub, model, kw["worker"], kw["firm"], kw["level"], kw["industry"])
    return _fit_model(sub.loc[keep].reset_index(drop=True), model, **kw)[1]


def _jackknife_se(work, model, eff, *, folds, seed, quiet=True, refit=None, **kw):
    """Jackknife over random groups of workers: the place effects of every fold, their standard errors, the
    fold of every worker, and (when the panel has the industry column) each fold's gap components by place.
    ``refit(mask)``: the estimation rows re-fitted on the rows ``mask`` of ``work`` (default: the person-year
    refit of :func:`_refit`; collapsed cells pass their own)."""
    level, worker = kw["level"], kw["worker"]
    if refit is None:
        def refit(mask):
            return _refit(work.loc[mask].reset_index(drop=True), model, **kw)
    fold_of = _worker_folds(work, worker, folds, seed)
    f = fold_of.reindex(work[worker].to_numpy()).to_numpy()
    base = eff.set_index(level)
    w = base["n_obs"].astype(float)
    est, comps = [], []
    for k in tqdm(range(folds), disable=quiet, desc="jackknife folds"):
        rows = refit(f != k)
        e = rows.groupby(level, sort=True, observed=True)["phi"].first().reindex(base.index)
        ok = e.notna()
        e = e - _wmean(e[ok].to_numpy(), w[ok].to_numpy())  # same normalisation as the full sample
        est.append(e.to_numpy())
        if kw["industry"] in rows and rows[kw["industry"]].notna().all():
            comps.append(_components(rows, kw, level).assign(fold=k))
    est = np.vstack(est)
    reps = pd.DataFrame(est.T, columns=[f"fold{k}" for k in range(folds)])
    reps.insert(0, level, base.index.to_numpy())
    fold_comps = pd.concat(comps, ignore_index=True) if comps else None
    return pd.DataFrame({level: base.index, "se": _jackknife(est)}), reps, fold_of, fold_comps


# ---------------------------------------------------------------------------------------------------------------
# the population path: a worker-year panel collapsed to cells


@dataclass(frozen=True, repr=False)
class PanelCells(Result):
    """A worker-year panel collapsed to cells (see :func:`collapse_panel`): what :func:`place_effects` and
    :func:`decompose_gaps` take instead of the person-year panel at population scale.

    Attributes
    ----------
    table
        one row per cell, a worker's person-years in one enterprise, place (``level``) and industry: ``_w``,
        ``_f`` (integer codes into ``workers`` and ``firms``), ``<level>``, ``<industry>`` and the coarser
        geography of the place (categoricals), ``n_obs`` (person-years), ``y`` (the cell mean of the outcome),
        ``ss`` (the within-cell sum of squares of the outcome), ``_bits`` (the periods present: bit ``t`` for
        ``times[t]``) and ``_x0, _x1, ...`` (the cell sums of the controls); sorted by worker, firm, place and
        industry code.
    person_years
        the arrays behind the within-cell moments of any subset of cells, sorted by cell and period (a cell's
        person-years are the next ``n_obs`` rows): ``t`` (int8 period code), ``y`` (float64) and ``X`` (float64,
        one column per control): 9 + 8 k bytes a person-year.
    workers, firms
        the ids behind the codes, sorted.
    times
        the period values in code order (one, 0, with ``time=None``).
    columns
        the names: ``y, worker, firm, industry, level, time, controls`` (the controls' names; a control given as
        an SQL expression is named by its key) and ``levels`` (the geography columns carried).
    n_obs, source, seconds
        person-years collapsed, the source (for messages) and the time the collapse took.
    """

    table: pd.DataFrame = field(repr=False)
    person_years: dict = field(repr=False)
    workers: pd.Index = field(repr=False)
    firms: pd.Index = field(repr=False)
    times: np.ndarray
    columns: dict
    n_obs: int
    source: str
    seconds: float

    def summary(self) -> str:
        c = self.columns
        k = len(c["controls"])
        return "\n".join([
            f"Panel collapsed to cells (worker x enterprise x {c['level']} x {c['industry']}) from {self.source}",
            f"  {self.n_obs:,} person-years in {len(self.table):,} cells; {len(self.workers):,} workers, "
            f"{len(self.firms):,} enterprises, {self.table[c['level']].nunique():,} places, "
            f"{len(self.times)} period(s)",
            f"  controls: {', '.join(c['controls']) or 'none'}; {self.seconds:.1f} s; person-year arrays "
            f"{(9 + 8 * k) * self.n_obs / 2**20:,.0f} MiB"])


def collapse_panel(source, *, y: str = "lhw", worker: str = "piden", firm: str = "entref",
                   industry: str = "industry", level: str = "lad", time: str | None = "year",
                   controls: Sequence[str] | dict = (), where: str | None = None, memory_limit: str | None = "4GB",
                   threads: int | None = None, temp_directory: str | None = None) -> PanelCells:
    """Collapse a worker-year panel on disk to worker x enterprise x place x industry cells, in DuckDB.

    The input of the place models at population scale: ``place_effects(cells, ...)`` and
    ``decompose_gaps(cells, ...)`` give what they give on the person-year panel (the same effects, to CG tolerance,
    tested in ``tests/test_places_cells.py``) while holding about ``9 + 8 k`` bytes per person-year (``k``
    controls) and some 60 bytes per cell, against several hundred bytes per person-year for the in-memory path.

    Why it is exact. In the three place models every fixed effect (worker, firm, place, place x industry) is
    constant within a cell, so the person-year normal equations of the effects involve the outcome only through
    the cell sums; year effects and controls vary within a cell and enter through their within-cell scatter
    (:func:`prosperity._sparse.solve_cells`, Frisch-Waugh-Lovell in two parts). The gap components are person-year
    means, hence cell-weighted means. Nothing is approximated.

    ``source``: the folder of ``link.build_panel(..., output=folder)`` (its ``workers.parquet``, checked against
    the manifest), a Parquet file, folder or glob, or a DataFrame. ``controls``: column names, or a mapping of
    names to SQL expressions over the panel's columns (e.g. ``{"agesq": "((age - 40) / 10) ^ 2"}``).
    ``where``: an optional SQL condition applied first (e.g. ``"year BETWEEN 2010 AND 2014"``). The coarser
    geography (``itl3``, ``region`` when present) must be a function of ``level``; it is carried per place.

    Refused, naming the table, column and first worker ids: missing columns, a non-numeric outcome, missing or
    infinite values, two rows of one worker in one period (``time``), more than 63 periods, a place with two
    values of a coarser geography. DuckDB (``memory_limit``, spilling to ``temp_directory``, ``threads``) does the
    grouping and sorting; every sum is taken afterwards in a fixed order, so the result does not depend on the
    number of threads.
    """
    import duckdb

    from . import _io

    t0 = _time.perf_counter()
    require_choice(level, "level", _LEVELS)
    ctrl = dict(controls) if isinstance(controls, dict) else {c: None for c in controls}
    roles = [y, worker, firm, industry, level] + ([time] if time else [])
    if len(set(roles)) < len(roles):
        fail(f"y, worker, firm, industry, level and time must be different columns, got {roles}", "workers")
    shadow = [c for c in ctrl if c in roles]
    if shadow:
        fail(f"control(s) {shadow} would shadow the column of another role", "workers", shadow[0])
    con = _io.duckdb_connect(memory_limit, temp_directory, threads)
    q = lambda c: '"' + str(c).replace('"', '""') + '"'  # noqa: E731
    try:
        if isinstance(source, pd.DataFrame):
            con.register("panel_frame", source)
            rel, table, label = "panel_frame", "workers", "a DataFrame"
        else:
            rel, table = akm._panel_source(source)
            label = str(source)
        cols = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {rel})").fetchall())
        missing = [c for c in roles + [c for c, e in ctrl.items() if e is None] if c not in cols]
        if missing:
            fail(f"missing column(s) {missing} (has {sorted(cols)})", table, missing[0])
        for c in [y] + [c for c, e in ctrl.items() if e is None]:
            if not _io.duckdb_numeric(cols[c]):
                fail(f"must be numeric, got type {cols[c]}", table, c)
        extra = [g for g in _LEVELS if g != level and g in cols]
        xs = [f"CAST({e if e is not None else q(c)} AS DOUBLE) AS x{j}" for j, (c, e) in enumerate(ctrl.items())]
        sel = [f"{q(worker)} AS w", f"{q(firm)} AS f", f"{q(level)} AS l", f"{q(industry)} AS k",
               (f"{q(time)} AS t" if time else "0 AS t"), f"CAST({q(y)} AS DOUBLE) AS y", *xs,
               *[f"{q(g)} AS e{m}" for m, g in enumerate(extra)]]
        con.execute(f"CREATE TEMP VIEW src AS SELECT {', '.join(sel)} FROM {rel}"
                    + (f" WHERE {where}" if where else ""))
        xnames = [f"x{j}" for j in range(len(ctrl))]
        checks = [(worker, "w IS NULL", "missing"), (firm, "f IS NULL", "missing"), (level, "l IS NULL", "missing"),
                  (industry, "k IS NULL", "missing"), (y, "y IS NULL OR isnan(y) OR isinf(y)", "missing or infinite")]
        if time:
            checks.append((time, "t IS NULL", "missing"))
        checks += [(c, f"{x} IS NULL OR isnan({x}) OR isinf({x})", "missing or infinite") for c, x in zip(ctrl, xnames)]
        checks += [(g, f"e{m} IS NULL", "missing") for m, g in enumerate(extra)]
        counts = con.execute("SELECT " + ", ".join(f"count(*) FILTER ({cond})" for _, cond, _ in checks)
                             + ", count(*) FROM src").fetchone()
        for (c, cond, what), n_bad in zip(checks, counts):
            if n_bad:
                ids = [r[0] for r in con.execute(f"SELECT w FROM src WHERE {cond} LIMIT 5").fetchall()]
                fail(f"{n_bad:,} {what} value(s); drop or impute them explicitly first (no row is dropped "
                     "silently)", table, c, ids, worker)
        n = int(counts[-1])
        if n == 0:
            fail("has no rows" + (f" where {where}" if where else ""), table)
        if time:
            dup = con.execute("SELECT w, t, count(*) FROM src GROUP BY w, t HAVING count(*) > 1 ORDER BY w, t "
                              "LIMIT 5").fetchall()
            if dup:
                fail(f"(worker, {time}) pairs appear more than once (e.g. {dup[0][0]!r} in {dup[0][1]!r}, {dup[0][2]} "
                     "rows): one row per worker and period is needed (link.build_panel keeps the main job)",
                     table, time, [r[0] for r in dup], worker)
        for m, g in enumerate(extra):
            bad = con.execute(f"SELECT l FROM src GROUP BY l HAVING count(DISTINCT e{m}) > 1 ORDER BY l LIMIT 5"
                              ).fetchall()
            if bad:
                fail(f"is not a function of {level}: {len(bad)}+ {level} value(s) have two {g} values",
                     table, g, [r[0] for r in bad], level)
        for name, col in (("wk", "w"), ("fk", "f"), ("tk", "t"), ("kk", "k")):
            con.execute(f"CREATE TEMP TABLE {name} AS SELECT {col}, (row_number() OVER (ORDER BY {col}) - 1)"
                        f"::INTEGER AS {col}_ FROM (SELECT DISTINCT {col} FROM src)")
        agg = ", ".join(f"any_value(e{m}) AS e{m}" for m in range(len(extra)))
        con.execute(f"CREATE TEMP TABLE lk AS SELECT l, (row_number() OVER (ORDER BY l) - 1)::INTEGER AS l_"
                    f"{', ' + ', '.join(f'e{m}' for m in range(len(extra))) if extra else ''} FROM "
                    f"(SELECT l{', ' + agg if extra else ''} FROM src GROUP BY l)")
        T = con.execute("SELECT count(*) FROM tk").fetchone()[0]
        if T > 63:
            fail(f"has {T} distinct periods; at most 63 are supported (pass where= to select years)", table, time)
        con.execute("CREATE TEMP VIEW coded AS SELECT w_, f_, l_, k_, t_, y" + "".join(f", {x}" for x in xnames)
                    + " FROM src JOIN wk USING (w) JOIN fk USING (f) JOIN lk USING (l) JOIN kk USING (k) "
                    "JOIN tk USING (t)")
        con.execute("CREATE TEMP TABLE cel AS SELECT (row_number() OVER (ORDER BY w_, f_, l_, k_) - 1)::INTEGER "
                    "AS id, * FROM (SELECT w_, f_, l_, k_, count(*)::INTEGER AS c, bit_or(1::BIGINT << t_) AS bits "
                    "FROM coded GROUP BY w_, f_, l_, k_)")
        cel = con.execute("SELECT w_, f_, l_, k_, c, bits FROM cel ORDER BY id").fetchnumpy()
        wid = con.sql("SELECT w FROM wk ORDER BY w_").to_arrow_table().column(0).to_pandas()
        fid = con.sql("SELECT f FROM fk ORDER BY f_").to_arrow_table().column(0).to_pandas()
        tvals = con.sql("SELECT t FROM tk ORDER BY t_").to_arrow_table().column(0).to_numpy()
        kvals = con.sql("SELECT k FROM kk ORDER BY k_").to_arrow_table().column(0).to_pandas()
        lk = con.sql("SELECT * FROM lk ORDER BY l_").to_arrow_table().to_pandas()
        cell = np.empty(n, dtype=np.int32)
        tt = np.empty(n, dtype=np.int8)
        yv = np.empty(n)
        X = np.empty((n, len(ctrl)))
        reader = con.sql("SELECT id, t_, y" + "".join(f", {x}" for x in xnames) + " FROM coded JOIN cel "
                         "USING (w_, f_, l_, k_) ORDER BY id, t_").to_arrow_reader(1 << 20)
        pos = 0
        for batch in reader:
            m = batch.num_rows
            cell[pos:pos + m] = batch.column(0).to_numpy()
            tt[pos:pos + m] = batch.column(1).to_numpy()
            yv[pos:pos + m] = batch.column(2).to_numpy()
            for j in range(len(ctrl)):
                X[pos:pos + m, j] = batch.column(3 + j).to_numpy()
            pos += m
        if pos != n:
            raise RuntimeError(f"collapse_panel: {pos:,} person-years came back from the cells, {n:,} went in")
    except duckdb.Error as exc:  # an unreadable file, a bad `where` or control expression
        fail(f"DuckDB could not read or collapse {label}{f' with where={where!r}' if where else ''}: {exc}", table)
    finally:
        con.close()
    c = np.asarray(cel["c"], dtype=np.int32)
    nc = len(c)
    ybar = np.bincount(cell, weights=yv, minlength=nc) / c
    ss = np.bincount(cell, weights=(yv - ybar[cell]) ** 2, minlength=nc)
    frame = {"_w": np.asarray(cel["w_"], dtype=np.int32), "_f": np.asarray(cel["f_"], dtype=np.int32)}
    lcode = np.asarray(cel["l_"], dtype=np.int32)
    frame[level] = pd.Categorical.from_codes(lcode, categories=pd.Index(lk["l"]))
    for m, g in enumerate(extra):
        gv = lk[f"e{m}"]
        cats = pd.Index(sorted(gv.unique()))
        frame[g] = pd.Categorical.from_codes(cats.get_indexer(gv)[lcode], categories=cats)
    frame[industry] = pd.Categorical.from_codes(np.asarray(cel["k_"], dtype=np.int32), categories=pd.Index(kvals))
    frame.update(n_obs=c, y=ybar, ss=ss, _bits=np.asarray(cel["bits"], dtype=np.int64))
    for j in range(len(ctrl)):
        frame[f"_x{j}"] = np.bincount(cell, weights=X[:, j], minlength=nc)
    del cel
    del cell  # the rows are sorted by cell: a cell's person-years are the next n_obs rows
    return PanelCells(table=pd.DataFrame(frame), person_years={"t": tt, "y": yv, "X": X},
                      workers=pd.Index(wid, name=worker), firms=pd.Index(fid, name=firm), times=tvals,
                      columns={"y": y, "worker": worker, "firm": firm, "industry": industry, "level": level,
                               "time": time, "controls": tuple(ctrl), "levels": (level, *extra)},
                      n_obs=n, source=label, seconds=_time.perf_counter() - t0)


def _cell_moments(pc: PanelCells, keep: np.ndarray, chunk: int = 1 << 19) -> dict:
    """Person-year moments of the cells ``keep`` (boolean over ``pc.table``), summed in a fixed order: per
    period the count, sum of y and sums of the controls; the controls' cross-products with themselves and y.
    Works through ``chunk`` cells at a time (their person-years are consecutive rows of ``pc.person_years``)."""
    py = pc.person_years
    T, k = len(pc.times), py["X"].shape[1]
    out = {"n_t": np.zeros(T), "y_t": np.zeros(T), "x_t": np.zeros((T, k)), "xx": np.zeros((k, k)),
           "xy": np.zeros(k)}
    c = pc.table["n_obs"].to_numpy()
    off = np.concatenate([[0], np.cumsum(c, dtype=np.int64)])
    for a in range(0, len(c), chunk):
        b = min(len(c), a + chunk)
        s, e = off[a], off[b]
        m = np.repeat(keep[a:b], c[a:b])
        t = py["t"][s:e][m]
        yv = py["y"][s:e][m]
        X = py["X"][s:e][m]
        out["n_t"] += np.bincount(t, minlength=T)
        out["y_t"] += np.bincount(t, weights=yv, minlength=T)
        for j in range(k):
            out["x_t"][:, j] += np.bincount(t, weights=X[:, j], minlength=T)
        out["xx"] += np.einsum("ij,ik->jk", X, X)
        out["xy"] += np.einsum("ij,i->j", X, yv)
    return out


def _fit_cells(pc: PanelCells, model: str, keep: np.ndarray | None, tol: float, maxiter: int = 10000):
    """The place model ``model`` on the cells ``keep`` of ``pc`` (all when None): identified set, least squares
    (:func:`prosperity._sparse.solve_cells`), and the estimation rows, one per cell. Returns
    ``(MultiwayResult, rows, cells of model (c) or None, identification counts, rows of pc.table fitted)``."""
    t0 = _time.perf_counter()
    c = pc.columns
    worker, firm, level, industry, time = c["worker"], c["firm"], c["level"], c["industry"], c["time"]
    tab = pc.table if keep is None else pc.table.loc[keep]
    idx_all = np.arange(len(pc.table)) if keep is None else np.flatnonzero(keep)
    wts = tab["n_obs"].to_numpy(dtype=float)
    n_in = int(wts.sum())
    ok, info = _identified_sample(tab[["_w", "_f", level, industry]], model, "_w", "_f", level, industry,
                                  weights=wts)
    if not ok.any():
        fail("no identified sample (no worker links any two places)", "workers", level)
    tab = tab.loc[ok] if not ok.all() else tab
    idx = idx_all[ok]
    w = tab["n_obs"].to_numpy(dtype=float)
    N = float(w.sum())
    # codes of the levels present, in sorted order (linear time); the second value maps them to the original codes
    wc, wids = _sparse.recode(tab["_w"].to_numpy(), np.arange(len(pc.workers)))
    fcodes = tab["_f"].to_numpy()
    lc, lids = _sparse.recode(tab[level].cat.codes.to_numpy().astype(np.int32),
                              np.arange(len(tab[level].cat.categories)))
    sets = []
    if model == "worker+firm+place":
        fc, fids = _sparse.recode(fcodes, np.arange(len(pc.firms)))
        sets = [("firm", fc, fids), ("level", lc, lids)]
    elif model == "worker+place":
        sets = [("level", lc, lids)]
    else:
        cellc, cells_u = pd.factorize(pd.MultiIndex.from_arrays([tab[level].cat.codes.to_numpy(),
                                                                tab[industry].cat.codes.to_numpy()]), sort=True)
        sets = [("cell", cellc.astype(np.int32), np.arange(len(cells_u)))]
    sys_ = _sparse.System(wc, len(wids), [g for _, g, _ in sets], [len(u) for _, _, u in sets], w)
    mask = np.zeros(len(pc.table), dtype=bool)
    mask[idx] = True
    mo = _cell_moments(pc, mask)
    present = np.flatnonzero(mo["n_t"] > 0)
    dummies = present[1:] if time else present[:0]
    nd, k = len(dummies), len(c["controls"])
    bits = tab["_bits"].to_numpy()
    xs = [tab[f"_x{j}"].to_numpy() for j in range(k)]

    def cell_sum(j, sl=slice(None)):  # cell sums of control j (time dummies first), on the cells sl
        return ((bits[sl] >> dummies[j]) & 1).astype(float) if j < nd else xs[j - nd][sl]

    p = nd + k
    # person-year cross-products, then the within-cell scatter: X'X - sum_m s_m s_m' / c_m
    XX = np.zeros((p, p))
    Xy = np.zeros(p)
    XX[:nd, :nd] = np.diag(mo["n_t"][dummies])
    XX[:nd, nd:] = mo["x_t"][dummies]
    XX[nd:, :nd] = mo["x_t"][dummies].T
    XX[nd:, nd:] = mo["xx"]
    Xy[:nd], Xy[nd:] = mo["y_t"][dummies], mo["xy"]
    ysum = tab["y"].to_numpy() * w
    Zs = np.zeros((p, p))
    Zy = np.zeros(p)
    for s in range(0, len(w) if p else 0, 1 << 20):
        sl = slice(s, s + (1 << 20))
        S = np.column_stack([cell_sum(j, sl) for j in range(p)])
        Zs += np.einsum("ij,ik->jk", S / w[sl, None], S)
        Zy += np.einsum("ij,i->j", S, ysum[sl] / w[sl])
    Sxx, Sxy = XX - Zs, Xy - Zy
    sums = np.concatenate([mo["n_t"][dummies], mo["x_t"].sum(axis=0)])
    raw = np.sqrt(np.maximum(np.diag(XX) - sums ** 2 / N, 0.0))
    names = [f"{time}={v}" for v in pc.times[dummies]] + list(c["controls"])
    try:
        beta, alpha, psi, resid, it, rel = _sparse.solve_cells(
            sys_, tab["y"].to_numpy(), lambda j: cell_sum(j) / w, p, Sxx, Sxy, tol, maxiter, raw=raw)
    except _sparse.Collinear as e:
        bad = [names[i] for i in e.positions]
        fail(f"control column(s) {bad} are collinear with the fixed effects and the controls before them: "
             "nothing is left of them after partialling out; remove them from controls", "workers", bad[0])
    diag = {"iterations": int(it), "rel_residual": rel, "converged": bool(rel <= tol * 10),
            "n_unidentified": int(sys_.unidentified.sum()), "collapsed_cells": int(len(w)),
            "seconds": _time.perf_counter() - t0}
    if not diag["converged"]:
        raise RuntimeError(f"place_effects: the fixed-effect solver did not converge ({diag})")
    # normalisation as fit_fixed_effects: every later set (and the year effects) has person-year mean zero
    tau_t = np.zeros(len(pc.times))
    tau_t[dummies] = beta[:nd]
    tmean = float(mo["n_t"] @ tau_t) / N
    tau_t[present] -= tmean
    alpha = alpha + tmean
    eff = {}
    for s_i, (name, g, ids) in enumerate(sets):
        o, m = sys_.offsets[s_i], len(ids)
        blk = psi[o:o + m].copy()
        mean_k = float(np.einsum("i,i->", w, blk[g])) / N
        blk -= mean_k
        alpha = alpha + mean_k
        eff[name] = (g, blk, ids)
    rows = {worker: pd.Categorical.from_codes(tab["_w"].to_numpy(), categories=pc.workers),
            firm: pd.Categorical.from_codes(fcodes, categories=pc.firms)}
    for col in (*c["levels"], industry):
        rows[col] = tab[col].array
    rows["n_obs"] = tab["n_obs"].to_numpy()
    rows["y"] = tab["y"].to_numpy()
    rows["alpha"] = alpha[wc]
    rows["tau"] = sum((((bits >> t) & 1) * tau_t[t] for t in present), np.zeros(len(w))) / w
    bx = beta[nd:]
    rows["xb"] = sum((xs[j] * bx[j] for j in range(k)), np.zeros(len(w))) / w
    rows = pd.DataFrame(rows)
    cells = None
    if model == "worker+place":
        rows["psi"] = 0.0
        rows["phi"] = eff["level"][1][lc]
    elif model == "worker+firm+place":
        rows["psi"] = eff["firm"][1][eff["firm"][0]]
        rows["phi"] = eff["level"][1][lc]
    else:
        rows["gamma"] = eff["cell"][1][eff["cell"][0]]
        rows, cells = _split_cells(rows, level, industry, tol, weights="n_obs")
    rows["resid"] = resid
    total = rows["alpha"] + rows["psi"] + rows["phi"] + rows["tau"] + rows["xb"] + rows["resid"]
    err = float(np.max(np.abs(total - rows["y"]))) if len(rows) else 0.0
    if err > 1e-6:
        raise RuntimeError(f"place_effects: components do not add up to the cell means of {c['y']} (max error "
                           f"{err:.2e})")
    ss = float(np.einsum("i->", tab["ss"].to_numpy()))
    rss = float(np.einsum("i,i->", w, resid ** 2)) + ss - 2 * float(beta @ Sxy) + float(beta @ Sxx @ beta)
    ybar_all = float(np.einsum("i->", ysum)) / N
    tss = ss + float(np.einsum("i,i->", w, (tab["y"].to_numpy() - ybar_all) ** 2))
    effects = {worker: pd.DataFrame({worker: pc.workers[wids], "effect": alpha,
                                     "n_obs": np.bincount(wc, weights=w).astype(np.int64)})}
    labels = {"firm": (firm, lambda ids: pc.firms[ids]), "level": (level, lambda ids: tab[level].cat.categories[ids]),
              "cell": ("_cell", lambda ids: ids)}
    for name, (g, blk, ids) in eff.items():
        col, lab = labels[name]
        effects[col] = pd.DataFrame({col: lab(ids), "effect": blk,
                                     "n_obs": np.bincount(g, weights=w, minlength=len(ids)).astype(np.int64)})
    if time:
        effects[time] = pd.DataFrame({time: pc.times[present], "effect": tau_t[present],
                                      "n_obs": mo["n_t"][present].astype(np.int64)})
    names_fx = [worker] + [labels[nm][0] for nm, _, _ in sets] + ([time] if time else [])
    res = akm.MultiwayResult(
        y=c["y"], effect_names=tuple(names_fx), effects=effects, coef=pd.Series(bx, index=list(c["controls"]),
                                                                              dtype=float),
        fitted=rows["y"].to_numpy() - resid, resid=resid,
        normalisation=f"cells: sets after the first ({', '.join(names_fx[1:])}) have person-year mean zero; the "
                      f"first ({worker}) absorbs the level; fitted and resid are cell means",
        diagnostics=diag, n_obs=int(N), r2=1.0 - rss / tss if tss > 0 else float("nan"),
        rmse=float(np.sqrt(max(rss, 0.0) / N)))
    info["n_in"] = n_in
    return res, rows, cells, info, idx


def _cells_arguments(pc: PanelCells, given: dict, controls) -> None:
    """Column arguments given beside collapsed cells must be those of the collapse (or place_effects' defaults)."""
    import inspect

    defaults = inspect.signature(place_effects).parameters
    for k, v in given.items():
        if v != pc.columns[k] and v != defaults[k].default:
            fail(f"{k}={v!r} differs from the collapse's {k}={pc.columns[k]!r}; columns are chosen in "
                 "collapse_panel", "cells", k)
    if tuple(controls) and tuple(controls) != tuple(pc.columns["controls"]):
        fail(f"controls={list(controls)} differ from the collapse's {list(pc.columns['controls'])}; controls are "
             "chosen in collapse_panel", "cells", "controls")


def _place_effects_cells(pc: PanelCells, model: str, *, se: bool = False, folds: int = 10, seed: int = 0,
                         tol: float = 1e-10, quiet: bool = True, keep: np.ndarray | None = None) -> PlaceEffects:
    """:func:`place_effects` on collapsed cells (``keep``: a boolean mask over ``pc.table``, e.g. a half of the
    workers). ``rows`` then has one row per cell, with its person-years in ``n_obs`` and cell means of ``y``,
    ``tau``, ``xb`` and ``resid``."""
    c = pc.columns
    worker, firm, level, industry = c["worker"], c["firm"], c["level"], c["industry"]
    res, rows, cells, info, idx = _fit_cells(pc, model, keep, tol)
    eff = _effects_table(rows, level, worker, firm, weights="n_obs")
    w = rows["n_obs"].to_numpy(dtype=float)
    wcode = rows[worker].cat.codes.to_numpy()
    lcode = rows[level].cat.codes.to_numpy().astype(np.int64)
    wl = np.unique(wcode.astype(np.int64) * (int(lcode.max()) + 1) + lcode) // (int(lcode.max()) + 1)
    fcode = rows[firm].cat.codes.to_numpy().astype(np.int64)
    fl = np.unique(fcode * (int(lcode.max()) + 1) + lcode) // (int(lcode.max()) + 1)
    nplaces_f = np.bincount(fl, minlength=len(pc.firms))
    multi = nplaces_f[fcode] > 1
    info.update(n_obs=int(w.sum()), dropped_obs=int(info.pop("n_in") - w.sum()),
                n_workers=int(len(res.effects[worker])), n_firms=int((np.bincount(fcode) > 0).sum()),
                n_places=int(rows[level].nunique()),
                n_place_movers=int((np.bincount(wl, minlength=len(pc.workers)) > 1).sum()),
                n_multi_place_firms=int((nplaces_f > 1).sum()),
                share_obs_multi_place_firms=float(w[multi].sum() / w.sum()))
    if cells is not None:
        info["n_cells"] = int(len(cells))
    info["solver"] = dict(res.diagnostics)
    colmap = dict(y=c["y"], worker=worker, firm=firm, level=level, industry=industry, time=c["time"],
                  controls=tuple(c["controls"]), tol=tol, weights="n_obs")
    replicates = fold_of = fold_comps = None
    if se:
        def refit(mask):
            m = np.zeros(len(pc.table), dtype=bool)
            m[idx[mask]] = True
            return _fit_cells(pc, model, m, tol)[1]  # noqa: B023

        se_tab, replicates, fold_of, fold_comps = _jackknife_se(
            rows, model, eff, folds=folds, seed=seed, quiet=quiet, refit=refit, **colmap)
        eff = eff.merge(se_tab, on=level, how="left")
    return PlaceEffects(model=model, level=level, table=eff, identification=info, rows=rows, cells=cells,
                        fit=res, columns=colmap, replicates=replicates, worker_folds=fold_of,
                        fold_components=fold_comps)



# ---------------------------------------------------------------------------------------------------------------
# gap decomposition


def gap_components(rows: pd.DataFrame, level: str, *, y: str = "y", people: str | Sequence[str] = "alpha",
                   firm_premium: str = "psi", place: str = "phi", industry: str = "industry",
                   worker: str | None = "piden", firm: str | None = "entref",
                   weights: str | None = None) -> pd.DataFrame:
    """Exact decomposition of each place's mean gap from person-year rows with known (or estimated) components.

    For place ``p`` with person-year shares ``s_pk`` in industries ``k`` and national shares ``s_k``:

        gap_p          = ybar_p - ybar
        people_p       = mean_p(alpha [+ x'b]) - mean(alpha [+ x'b])
        industry_mix_p = sum_k (s_pk - s_k) eta_k,      eta_k = national mean firm premium in industry k
        firm_within_p  = [mean_p(psi) - mean(psi)] - industry_mix_p
        place_p        = mean_p(phi) - mean(phi)
        residual_p     = gap_p - people_p - industry_mix_p - firm_within_p - place_p

    so the five components add up to ``gap`` exactly (to floating-point rounding). ``people`` may name several
    columns (e.g. ``["alpha", "xb"]``), which are summed. Means are person-year weighted (or by ``weights``, e.g.
    the person-years ``n_obs`` of rows collapsed to cells; ``n_obs`` is then the sum of the weights).

    Returns one row per place: ``<level>, gap, people, industry_mix, firm_within, place, residual, n_obs`` and
    ``n_people``, ``n_firms`` (distinct workers and enterprises) when ``worker``/``firm`` columns are given.
    """
    people = [people] if isinstance(people, str) else list(people)
    cols = [level, y, firm_premium, place, industry] + people + ([weights] if weights else [])
    _require(rows, cols, "rows", ids=worker if worker in rows else None)
    require_numeric(rows, [y, firm_premium, place] + people + ([weights] if weights else []), "rows")
    w = rows[weights].to_numpy(dtype=float) if weights else np.ones(len(rows))
    if len(rows) == 0:
        fail("is empty", "rows")
    d = pd.DataFrame({
        "_p": rows[level].to_numpy(), "_k": rows[industry].to_numpy(), "_w": w,
        "y": rows[y].to_numpy(dtype=float) * w,
        "people": rows[people].to_numpy(dtype=float).sum(axis=1) * w,
        "psi": rows[firm_premium].to_numpy(dtype=float) * w,
        "place": rows[place].to_numpy(dtype=float) * w,
    })
    W = w.sum()
    nat = d[["y", "people", "psi", "place"]].sum() / W
    # national industry premiums and shares
    gk = d.groupby("_k", sort=True, observed=True)[["_w", "psi"]].sum()
    eta = gk["psi"] / gk["_w"]
    s_nat = gk["_w"] / W
    gp = d.groupby("_p", sort=True, observed=True)[["_w", "y", "people", "psi", "place"]].sum()
    means = gp[["y", "people", "psi", "place"]].div(gp["_w"], axis=0)
    pk = d.groupby(["_p", "_k"], sort=True, observed=True)["_w"].sum().unstack(fill_value=0.0)
    pk = pk.reindex(columns=eta.index, fill_value=0.0)
    s_pk = pk.div(pk.sum(axis=1), axis=0)
    mix = (s_pk - s_nat.to_numpy()[None, :]) @ eta.to_numpy()
    out = pd.DataFrame(index=gp.index)
    out["gap"] = means["y"] - nat["y"]
    out["people"] = means["people"] - nat["people"]
    out["industry_mix"] = mix.reindex(out.index).to_numpy()
    out["firm_within"] = (means["psi"] - nat["psi"]) - out["industry_mix"]
    out["place"] = means["place"] - nat["place"]
    out["residual"] = out["gap"] - out[["people", "industry_mix", "firm_within", "place"]].sum(axis=1)
    out["n_obs"] = (rows.groupby(level, sort=True, observed=True).size() if weights is None
                    else gp["_w"]).reindex(out.index).to_numpy()
    if worker is not None and worker in rows:
        out["n_people"] = rows.groupby(level, sort=True, observed=True)[worker].nunique().reindex(out.index).to_numpy()
    if firm is not None and firm in rows:
        out["n_firms"] = rows.groupby(level, sort=True, observed=True)[firm].nunique().reindex(out.index).to_numpy()
    out.index.name = level
    return out.reset_index()


def _wcov(A: np.ndarray, B: np.ndarray, w: np.ndarray) -> np.ndarray:
    w = w / w.sum()
    Ac = A - w @ A
    Bc = B - w @ B
    return (Ac * w[:, None]).T @ Bc


def _terms(C: np.ndarray) -> pd.Series:
    comps = list(COMPONENTS)
    out = {}
    for i, a in enumerate(comps):
        out[f"Var({a})"] = C[i, i]
    for i, a in enumerate(comps):
        for j in range(i + 1, len(comps)):
            out[f"2Cov({a},{comps[j]})"] = C[i, j] + C[j, i]
    return pd.Series(out)


def variance_across_places(frame: pd.DataFrame, other: pd.DataFrame | None = None, *, level: str | None = None,
                           weights: str = "n_obs") -> pd.DataFrame:
    """Variance of place gaps across places split into the variances and covariances of its components.

    ``Var(gap) = sum_c Var(c) + sum_{c<d} 2 Cov(c, d)`` over ``COMPONENTS``, weighted by the column ``weights``
    (person-years):
    exact, since the components add up to the gap. The covariances with ``people`` are the sorting terms
    (high-wage workers in high-premium firms and places).

    With ``other`` (the same decomposition from an independent half of the workers), the bias-corrected version is
    the split-sample cross-covariance ``(Cov(c^A, d^B) + Cov(c^B, d^A)) / 2`` over places present in both halves:
    estimation noise that is independent across halves (worker effects, place means of residuals, and the noise
    of place and firm effects estimated from different workers) drops out of every variance and covariance. The
    target is then the variance of the population place means, not of the realised sample's.

    Returns a frame indexed by term with ``value`` and ``share`` (of Var(gap)); the row ``Var(gap)`` is the total.
    """
    level = level or frame.columns[0]
    comps = list(COMPONENTS)
    for name, t in (("frame", frame), ("other", other)):
        if t is not None:
            _require(t, [level, weights] + comps, name, ids=level)
    if other is None:
        X = frame[comps].to_numpy(dtype=float)
        w = frame[weights].to_numpy(dtype=float)
        C = _wcov(X, X, w)
    else:
        m = frame[[level, weights] + comps].merge(other[[level, weights] + comps], on=level, suffixes=("", "_b"))
        if len(m) < 3:
            fail(f"{len(m)} place(s) in both halves; at least 3 needed", "other", level)
        A = m[comps].to_numpy(dtype=float)
        B = m[[c + "_b" for c in comps]].to_numpy(dtype=float)
        w = m[weights].to_numpy(dtype=float) + m[weights + "_b"].to_numpy(dtype=float)
        C = 0.5 * (_wcov(A, B, w) + _wcov(B, A, w))
    t = _terms(C)
    total = float(C.sum())
    t = pd.concat([pd.Series({"Var(gap)": total}), t])
    return pd.DataFrame({"value": t, "share": t / total})


def _population_covariance(rows: pd.DataFrame, level: str, y: str, people, firm_premium: str, place: str,
                           industry: str, worker: str) -> tuple[np.ndarray, np.ndarray]:
    """(population, in-sample) covariance matrices across places of the true components' place means (order
    ``COMPONENTS``); see :func:`population_variance_across_places`."""
    people = [people] if isinstance(people, str) else list(people)
    _require(rows, [level, y, firm_premium, place, industry, worker, *people], "rows", ids=level)
    if len(rows) == 0:
        fail("has no rows", "rows")
    a = rows[people].to_numpy(dtype=float).sum(axis=1)
    psi, phi = rows[firm_premium].to_numpy(dtype=float), rows[place].to_numpy(dtype=float)
    eta = rows.groupby(industry, observed=True)[firm_premium].transform("mean").to_numpy(dtype=float)
    Z = np.column_stack([a, eta, psi - eta, phi, rows[y].to_numpy(dtype=float) - a - psi - phi])
    p = pd.factorize(rows[level])[0]
    n = np.bincount(p).astype(float)
    wp = n / n.sum()
    means = np.column_stack([np.bincount(p, Z[:, j]) for j in range(Z.shape[1])]) / n[:, None]
    dev = means - wp @ means
    C = (dev * wp[:, None]).T @ dev
    # worker-clustered sums of deviations from the place mean, one row per (place, worker)
    cl = pd.DataFrame(Z - means[p]).groupby([p, rows[worker].to_numpy()], sort=False).sum()
    cp = cl.index.get_level_values(0).to_numpy()
    G = np.bincount(cp, minlength=len(n)).astype(float)
    scale = wp * (1 - wp) * G / np.maximum(G - 1, 1) / n ** 2
    U = cl.to_numpy() * np.sqrt(scale[cp])[:, None]
    return C - U.T @ U, C


def population_variance_across_places(rows: pd.DataFrame, level: str = "lad", *, y: str = "lhw",
                                      people: Sequence[str] = ("alpha", "xb"), firm_premium: str = "psi",
                                      place: str = "phi", industry: str = "industry",
                                      worker: str = "piden") -> pd.DataFrame:
    """The truth the split-sample corrected decomposition estimates: the variance across places of the
    *population* place means of the true components, from person-year rows that carry them (synthetic data).

    :func:`variance_across_places` of :func:`gap_components` on the true effects gives the variance of the
    *realised* place means, which includes the noise of which workers happen to be in each place; the
    split-sample correction removes that noise, so its target is the population version (the two differ most
    where places are small or the components noisy within places, e.g. pay per day of part-time workers).

    Derivation. Row ``r`` (a person-year) in place ``p`` carries the vector ``z_r`` of people (the sum of
    ``people``), industry premium ``eta_k(r)`` (national mean ``firm_premium`` of its industry), firm premium within
    industry (``firm_premium - eta``), place (``place``) and residual (``y - people - firm_premium - place``), so
    that the components of :func:`gap_components` are ``zbar_p - zbar``. With ``n_p`` person-years in ``p``,
    ``w_p = n_p / N`` and the in-sample covariance ``C = sum_p w_p (zbar_p - zbar)(zbar_p - zbar)'``: if workers
    are independent draws, ``zbar_p = mu_p + e_p`` with ``e_p`` the mean over the place's workers of their summed
    deviations, and ``E[C] = C_pop + sum_p w_p (1 - w_p) V_p`` (``V_p = Var(e_p)``). The population covariance is
    therefore ``C - sum_p w_p (1 - w_p) V_p``, with ``V_p`` estimated worker-clustered (``G_p / (G_p - 1)`` small-
    sample factor over the ``G_p`` workers of ``p``; Liang and Zeger 1986, *Biometrika* 73(1):13-22). ``eta`` is
    treated as known (its noise is of order ``1 / N``), and a worker's rows in two places as independent.
    Checked in ``tests/test_rti_truth.py`` on a world where the answer is known (workers placed at random).

    Returns a frame indexed by term with ``value`` and ``share``, as :func:`variance_across_places`, so that
    :func:`gap_shares` applies.
    """
    C, _ = _population_covariance(rows, level, y, people, firm_premium, place, industry, worker)
    t = _terms(C)
    total = float(C.sum())
    t = pd.concat([pd.Series({"Var(gap)": total}), t])
    return pd.DataFrame({"value": t, "share": t / total})


def gap_shares(variance: pd.DataFrame) -> pd.DataFrame:
    """The headline shares of the variance of gaps across places, from any table of :func:`variance_across_places`.

    ``people`` = Var(people), ``firms`` = Var(industry mix) + Var(firms within) + 2 Cov(industry mix, firms within),
    ``place`` = Var(place), ``sorting`` = every covariance involving people (2 Cov(people, .)), ``other`` =
    everything else (the covariances of firms and place, and the residual terms), each divided by Var(gap); the five
    add up to one. Returns a DataFrame with columns ``component, share`` (rows in the order of :data:`SHARES`).
    """
    require_columns(variance, ["value"], "variance")
    v = variance["value"]
    need = ["Var(gap)", "Var(people)", "Var(industry_mix)", "Var(firm_within)", "Var(place)",
            "2Cov(industry_mix,firm_within)"]
    missing = [k for k in need if k not in v.index]
    if missing:
        fail(f"no term(s) {missing}; expected the index of variance_across_places", "variance", "value")
    tot = v["Var(gap)"]
    firms = v["Var(industry_mix)"] + v["Var(firm_within)"] + v["2Cov(industry_mix,firm_within)"]
    sorting = sum(v[k] for k in v.index if k.startswith("2Cov(people,"))
    out = [v["Var(people)"] / tot, firms / tot, v["Var(place)"] / tot, sorting / tot]
    out.append(1.0 - sum(out))
    return pd.DataFrame({"component": list(SHARES), "share": np.asarray(out, dtype=float)})


def _share_values(values: pd.Series) -> np.ndarray:
    """The :data:`SHARES` of a Series of variance terms (the ``value`` column of :func:`variance_across_places`)."""
    return gap_shares(values.to_frame("value"))["share"].to_numpy()


@dataclass(frozen=True, repr=False)
class GapDecomposition(Result):
    """The people / firms / place decomposition of place gaps (see :func:`decompose_gaps`).

    ``table``: one row per place with ``gap, people, industry_mix, firm_within, place, residual`` (adding up to
    ``gap`` exactly) and ``n_obs, n_people, n_firms``; with ``se=True`` also the jackknife standard errors
    ``gap_se, people_se, ...`` of every component (``frame`` is a read-only alias of ``table``). ``variance``: the
    plug-in decomposition of the variance of gaps across places (:func:`variance_across_places`);
    ``variance_corrected``: the split-sample bias-corrected one (or ``None``). ``effects``: the fitted
    :class:`PlaceEffects`. ``shares_se``: with ``se=True``, the jackknife standard errors of the shares
    (index :data:`SHARES`, columns ``plugin`` and ``corrected``) over ``folds`` groups of workers.
    """

    level: str
    table: pd.DataFrame
    variance: pd.DataFrame
    variance_corrected: pd.DataFrame | None
    effects: PlaceEffects = field(repr=False)
    correction: str = "split-sample cross-covariance over random halves of workers"
    shares_se: pd.DataFrame | None = None
    folds: int = 0

    @property
    def frame(self) -> pd.DataFrame:
        """Alias of :attr:`table` (one row per place), kept for earlier code."""
        return self.table

    def shares(self, corrected: bool = True) -> pd.DataFrame:
        """Shares of Var(gap) across places (:func:`gap_shares`): columns ``component, share`` with rows people,
        firms, place, sorting, other; bias-corrected when ``corrected`` and available. With jackknife standard
        errors (``decompose_gaps(..., se=True)``) also ``se`` and a 95% interval ``lower, upper`` (Student t with
        ``folds - 1`` degrees of freedom, the reference distribution of a delete-a-group jackknife)."""
        use = corrected and self.variance_corrected is not None
        out = gap_shares(self.variance_corrected if use else self.variance)
        if self.shares_se is not None:
            se = self.shares_se["corrected" if use else "plugin"].reindex(out["component"]).to_numpy()
            q = float(stats.t.ppf(0.975, self.folds - 1))
            out = out.assign(se=se, lower=out["share"] - q * se, upper=out["share"] + q * se)
        return out

    def summary(self) -> str:
        lines = [f"Decomposition of mean log pay gaps across {len(self.table)} places ({self.level}); "
                 f"model {self.effects.model}",
                 f"  Var(gap) plug-in {self.variance.loc['Var(gap)', 'value']:.5f}"]
        cols = {"plug-in": self.variance["share"]}
        if self.variance_corrected is not None:
            lines[-1] += f"; corrected {self.variance_corrected.loc['Var(gap)', 'value']:.5f} ({self.correction})"
            cols["corrected"] = self.variance_corrected["share"]
        tab = pd.DataFrame(cols)
        lines.append(tab.to_string(float_format=lambda x: f"{x:7.3f}"))
        if self.shares_se is not None:
            sh = self.shares().set_index("component")
            lines.append(f"  headline shares with jackknife se ({self.folds} groups of workers):")
            lines.append(sh.to_string(float_format=lambda x: f"{x:7.3f}"))
        return "\n".join(lines)


def _components(rows: pd.DataFrame, c: dict, level: str) -> pd.DataFrame:
    """:func:`gap_components` of fitted estimation rows (people = worker effects, year effects and controls)."""
    return gap_components(rows, level, y="y", people=["alpha", "tau", "xb"], firm_premium="psi", place="phi",
                          industry=c["industry"], worker=c["worker"], firm=c["firm"], weights=c.get("weights"))


def _geo_map(rows: pd.DataFrame, fit_level: str, level: str, geo: pd.DataFrame | None) -> pd.Series:
    """The ``level`` of every ``fit_level`` place: from the rows when they carry it, else from ``geo``."""
    if level in rows:
        m = rows[[fit_level, level]].drop_duplicates(fit_level)
    elif geo is not None:
        m = geo
    else:
        fail(f"no column {level!r} and no lookup from {fit_level!r}", "rows", level)
    return m.set_index(fit_level)[level]


def _gap_frame(pe: PlaceEffects, level: str, geo: pd.DataFrame | None) -> pd.DataFrame:
    c = pe.columns
    rows = pe.rows
    require_columns(rows, [c["industry"]], "rows", hint=" (decompose_gaps needs the industry column in the panel)")
    if level != pe.level and level not in rows:
        lvl = rows[pe.level].map(_geo_map(rows, pe.level, level, geo))
        bad = lvl.isna().to_numpy()
        if bad.any():
            ids, _ = first_ids(rows, bad, pe.level)
            fail(f"no {level} for {int(bad.sum())} row(s)", "rows", pe.level, list(dict.fromkeys(ids)), pe.level)
        rows = rows.assign(**{level: lvl.to_numpy()})
    return _components(rows, c, level)


def _aggregate(frame: pd.DataFrame, fit_level: str, level: str, lookup: pd.Series) -> pd.DataFrame:
    """Gap components of ``fit_level`` places aggregated to ``level``: person-year-weighted means (exact, since
    every component is a person-year mean minus England's)."""
    if level == fit_level:
        return frame
    cols = ["gap"] + list(COMPONENTS)
    d = frame[cols].mul(frame["n_obs"], axis=0).assign(n_obs=frame["n_obs"],
                                                        **{level: frame[fit_level].map(lookup).to_numpy()})
    g = d.groupby(level, sort=True, observed=True).sum()
    g[cols] = g[cols].div(g["n_obs"], axis=0)
    return g.reset_index()


def decompose_gaps(linked, level: str = "lad", *, effects: PlaceEffects | None = None,
                   model: str = "worker+firm+place", fit_level: str = "lad", correct: bool = True, seed: int = 0,
                   splits: int = 1, se: bool = False, folds: int = 10, quiet: bool = True,
                   **kwargs) -> GapDecomposition:
    """Decompose each place's mean log pay gap against England into people, firms and place.

    Fits :func:`place_effects` (model (b), worker + firm + place, by default; pass ``effects=`` to reuse a fit)
    on districts (``fit_level``), then aggregates person-year components to ``level`` (``"lad"``, ``"itl3"`` or
    ``"region"``) with :func:`gap_components`:

    - ``people``: mean worker effect plus observed characteristics: the year effects and ``x'b`` of the
      controls (as in the truth of :mod:`prosperity.synthetic`, whose ``xb`` holds the age profile and year effects),
    - ``industry_mix``: national industry premiums (mean firm effect by SIC section) weighted by the place's
      industry shares minus England's,
    - ``firm_within``: the rest of the place's mean firm premium (better or worse firms within industries),
    - ``place``: the person-year-weighted mean place effect,
    - ``residual``: the rest, the place's mean residual (zero in every district when place effects are fitted by
      least squares, so non-zero only when aggregating a model without place effects or a sub-sample).

    The gap is measured on the identified estimation sample. The variance of gaps across places is split into
    component variances and covariances (sorting), plug-in and, with ``correct=True``, bias-corrected by
    split-sample cross-covariances: the model is re-fitted on two random halves of the workers (``seed``), so that
    estimation noise, independent across halves, drops out (see :func:`variance_across_places`). The correction is
    unbiased but noisy in short panels; ``splits > 1`` averages it over that many independent random splits
    (two more fits each).

    ``se=True``: delete-a-group jackknife standard errors (Quenouille-Tukey; the grouped jackknife over clusters of
    Shao and Tu 1995, *The Jackknife and Bootstrap*, ch. 2) over ``folds`` random groups of workers, which keeps
    each worker's years together (robust to serial correlation within workers and to heteroskedasticity):

    - every place's components (columns ``gap_se, people_se, ...``) and the plug-in shares come from the ``folds``
      re-fits of ``place_effects(..., se=True)`` (``effects.fold_components``; a given ``effects`` must have been
      fitted with ``se=True``): no further fit, at any ``level``, since the components of a region are the
      person-year-weighted means of its districts';
    - the bias-corrected shares, a function of two independent half samples, get the two-sample jackknife
      (Arvesen 1969, *Ann. Math. Statist.* 40(6):2076-2100): each half is split into ``folds`` random groups of
      workers and re-fitted without each group in turn, the other half held fixed; the variance is the sum of the
      two halves' jackknife variances (``2 * folds`` more half-sample fits per split; the halves, hence the point
      estimate, are those of ``se=False``). Deleting a whole fold of the full sample from one half instead would
      remove a large part of that half, a perturbation too far from linear for the jackknife. With ``splits > 1``
      the variance is the mean of the splits' variances, an upper bound for the variance of their mean.

    :meth:`GapDecomposition.shares` then reports ``se`` and a 95% interval. Where a place drops out of the identified
    set in some fold its standard errors are ``nan``. Unlike a bootstrap, which would re-fit the model hundreds of
    times, the jackknife costs ``folds`` fits; with few groups its intervals use Student t with ``folds - 1``
    degrees of freedom.

    ``linked`` may be the :class:`PanelCells` of :func:`collapse_panel` (the population path): the halves and the
    jackknife groups are then drawn over the workers in sorted order, which is their order of appearance in a panel
    sorted by worker, so that the cells and the sorted person-year panel give the same answer.

    Card, Rothstein and Yi (2021, CES WP 21-32); Combes, Duranton and Gobillon (2008, *J. Urban Econ.*).
    """
    require_choice(level, "level", _LEVELS)
    if splits < 1:
        raise ValueError(f"splits must be at least 1, got {splits}")
    pc = linked if isinstance(linked, PanelCells) else None
    df = pc.table if pc is not None else _panel(
        linked, [kwargs.get("y", "lhw"), kwargs.get("worker", "piden"), kwargs.get("firm", "entref"),
                 kwargs.get("industry", "industry"), kwargs.get("time", "year"), *kwargs.get("controls", ()),
                 *_LEVELS])
    if pc is not None and fit_level != pc.columns["level"]:
        fail(f"fit_level={fit_level!r} differs from the collapse's level {pc.columns['level']!r}", "cells", "level")
    if effects is None:
        effects = place_effects(linked if pc is not None else df, model=model, level=fit_level, se=se, folds=folds,
                                seed=seed, quiet=quiet, **kwargs)
    if se and effects.fold_components is None:
        fail("has no jackknife replicates; fit it with place_effects(..., se=True) (and an industry column)",
             "effects")
    geo = None
    if level != effects.level and level not in effects.rows:
        cols = [c for c in (effects.level, level) if c in df.columns]
        if len(cols) == 2:
            geo = df[cols].drop_duplicates(effects.level)
        else:
            geo = geography.districts()[["lad", "itl3", "region"]]
    frame = _gap_frame(effects, level, geo)
    var = variance_across_places(frame, level=level)
    shares_se, K = None, 0
    if se:
        K = effects.replicates.shape[1] - 1
        fc = effects.fold_components
        lookup = None if level == effects.level else _geo_map(effects.rows, effects.level, level, geo)
        reps = [_aggregate(fc[fc["fold"] == k], effects.level, level, lookup) for k in range(K)]
        cols = ["gap"] + list(COMPONENTS)
        est = np.stack([r.set_index(level)[cols].reindex(frame[level]).to_numpy(dtype=float) for r in reps])
        se_c = _jackknife(est.reshape(K, -1)).reshape(len(frame), len(cols))
        frame = frame.assign(**{f"{c}_se": se_c[:, j] for j, c in enumerate(cols)})
        plug = np.stack([_share_values(variance_across_places(r, level=level)["value"]) for r in reps])
        shares_se = pd.DataFrame({"plugin": _jackknife(plug), "corrected": np.nan}, index=pd.Index(SHARES))
    var_c = None
    if correct:
        c = effects.columns
        rng = np.random.default_rng(seed)
        if pc is not None:  # workers in code order: the order of appearance of a panel sorted by worker
            wcode = df["_w"].to_numpy()

            def per_row(a):
                return np.asarray(a)[wcode]

            n_ids = len(pc.workers)
        else:
            wk = df[c["worker"]]
            ids = wk.unique()
            n_ids = len(ids)

            def per_row(a):
                return pd.Series(a, index=ids).reindex(wk.to_numpy()).to_numpy()
        # the halves are fitted exactly as the full sample was (same columns, controls and tolerance)
        kw = dict(level=effects.level, y=c["y"], worker=c["worker"], firm=c["firm"], industry=c["industry"],
                  time=c["time"], controls=c.get("controls", ()), tol=c.get("tol", 1e-10))

        def fit(part):
            if pc is not None:
                return _gap_frame(_place_effects_cells(pc, effects.model, tol=kw["tol"], keep=part), level, geo)
            return _gap_frame(place_effects(df.loc[part], model=effects.model, **kw), level, geo)

        def cross(pair):
            return variance_across_places(pair[0], pair[1], level=level)["value"]

        if se:  # groups of workers within each half, drawn apart from the halves (which stay those of se=False)
            g = per_row(np.random.default_rng([seed, 1]).integers(0, K, n_ids))
        values, var_s = [], []
        for _ in range(splits):
            h = per_row(rng.integers(0, 2, n_ids).astype(bool))
            parts = (h, ~h)
            halves = [fit(part) for part in parts]
            values.append(cross(halves))
            if se:  # two-sample jackknife: delete each group from each half in turn, the other half held fixed
                vs = np.zeros(len(SHARES))
                for j in (0, 1):
                    reps = []
                    for k in tqdm(range(K), disable=quiet, desc=f"jackknife of half {j + 1}"):
                        pair = list(halves)
                        pair[j] = fit(parts[j] & (g != k))
                        reps.append(_share_values(cross(pair)))
                    vs += _jackknife(np.stack(reps)) ** 2
                var_s.append(vs)
        v = pd.concat(values, axis=1).mean(axis=1)
        var_c = pd.DataFrame({"value": v, "share": v / v["Var(gap)"]})
        if se:  # the mean over splits of the variances bounds the variance of the mean over splits
            shares_se["corrected"] = np.sqrt(np.mean(var_s, axis=0))
    correction = "split-sample cross-covariance over random halves of workers"
    return GapDecomposition(level=level, table=frame, variance=var, variance_corrected=var_c, effects=effects,
                            correction=correction, shares_se=shares_se, folds=K)


# ---------------------------------------------------------------------------------------------------------------
# movers across places


@dataclass(frozen=True, repr=False)
class MoversResult(Result):
    """Pay changes of workers who move between places (see :func:`movers`).

    ``slope`` (with ``se``, heteroskedasticity-robust HC1) is the share of the difference in places' mean pay that a
    mover gains: the place-and-firm part of the gap; ``1 - slope`` is the part that stays with the person.
    ``table``: binned scatter (``x`` mean difference in destination-origin mean pay, ``dy`` mean pay change,
    ``n``; ``bins`` is a read-only alias). ``moves``: one row per move.
    """

    slope: float
    se: float
    intercept: float
    n_moves: int
    table: pd.DataFrame
    moves: pd.DataFrame = field(repr=False)
    level: str = "lad"

    @property
    def bins(self) -> pd.DataFrame:
        """Alias of :attr:`table` (the binned scatter), kept for earlier code."""
        return self.table

    def summary(self) -> str:
        return (f"Movers between places ({self.level}): {self.n_moves:,} moves; slope of the pay change on the "
                f"difference in mean pay {self.slope:.3f} (se {self.se:.3f}): a mover gains "
                f"{self.slope:.0%} of the gap; {1 - self.slope:.0%} stays with the person")

    def plot(self, ax=None):
        """Binned scatter of pay changes against the difference in places' mean pay, with the fitted line and the
        45-degree line (everything moves with the place) and the flat line (everything is people)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4.5))
        b = self.table
        ax.scatter(b["x"], b["dy"], s=25, color="#0072B2", zorder=3, label="movers (binned means)")
        xs = np.array([b["x"].min(), b["x"].max()])
        ax.plot(xs, self.intercept + self.slope * xs, color="#D55E00",
                label=f"fitted slope {self.slope:.2f}")
        ax.plot(xs, xs + self.intercept, color="0.5", linestyle="--", linewidth=0.8, label="slope 1 (all place)")
        ax.axhline(self.intercept, color="0.5", linestyle=":", linewidth=0.8, label="slope 0 (all people)")
        ax.set_xlabel("destination minus origin mean log pay")
        ax.set_ylabel("change in log pay (net of stayers' growth)")
        ax.legend(fontsize="small")
        return ax


def movers(linked, level: str = "lad", *, y: str = "lhw", worker: str = "piden", time: str = "year",
           bins: int = 20) -> MoversResult:
    """Pay changes of workers who change place between consecutive years against the gap between the places.

    For each move of worker ``i`` from place ``o`` (year ``t-1``) to place ``d`` (year ``t``), regress
    ``Delta y_i - g_t`` on ``ybar_d - ybar_o`` with a constant (OLS, HC1 standard errors). ``g_t`` is the mean pay
    growth of stayers (same place in both years) in year ``t``, removing common growth and ageing. ``ybar_p`` is the
    place's mean pay over all person-years *leaving out the worker's own*, so the mover's own pay does not enter both
    sides. Under the additive model the slope is the share of the difference in mean pay due to place and
    firm premiums (what a mover gains), and one minus it the share due to people (Finkelstein, Gentzkow and
    Williams 2016, *QJE*; Card, Rothstein and Yi 2021, CES WP 21-32).
    """
    df = _panel(linked)
    _require(df, [y, worker, time, level], "workers", ids=worker)
    require_numeric(df, [y, time], "workers")
    d = df[[worker, time, level, y]].copy()
    require_unique(d, [worker, time], "workers", hint=" (movers needs one row per worker and year)")
    # leave-worker-out place means
    sp_ = d.groupby(level, observed=True)[y].agg(["sum", "size"])
    si = d.groupby([level, worker], observed=True)[y].agg(["sum", "size"])
    lo = si.join(sp_, on=level, rsuffix="_p")
    lo["loo"] = (lo["sum_p"] - lo["sum"]) / (lo["size_p"] - lo["size"])
    d = d.sort_values([worker, time])
    prev = d.groupby(worker, sort=False).shift(1)
    cons = (d[time] - prev[time]) == 1
    pairs = pd.DataFrame({worker: d[worker], time: d[time], "orig": prev[level], "dest": d[level],
                          "dy": d[y] - prev[y]})[cons.to_numpy()]
    stay = pairs["orig"] == pairs["dest"]
    g = pairs.loc[stay].groupby(time)["dy"].mean()
    mv = pairs.loc[~stay].copy()
    if len(mv) < 10:
        fail(f"only {len(mv)} moves between places in consecutive years; at least 10 needed", "workers", level)
    mv["dy"] = mv["dy"] - mv[time].map(g).fillna(0.0).to_numpy()
    loo = lo["loo"]
    mv["ybar_o"] = loo.reindex(pd.MultiIndex.from_arrays([mv["orig"], mv[worker]])).to_numpy()
    mv["ybar_d"] = loo.reindex(pd.MultiIndex.from_arrays([mv["dest"], mv[worker]])).to_numpy()
    mv = mv[np.isfinite(mv["ybar_o"]) & np.isfinite(mv["ybar_d"])]
    mv["dx"] = mv["ybar_d"] - mv["ybar_o"]
    x = mv["dx"].to_numpy()
    yv = mv["dy"].to_numpy()
    X = np.column_stack([np.ones_like(x), x])
    XtX_inv = np.linalg.inv(X.T @ X)
    b = XtX_inv @ X.T @ yv
    e = yv - X @ b
    n = len(yv)
    V = XtX_inv @ (X.T * e**2) @ X @ XtX_inv * n / (n - 2)
    q = pd.qcut(x, q=min(bins, max(2, n // 20)), labels=False, duplicates="drop")
    bn = pd.DataFrame({"q": q, "x": x, "dy": yv}).groupby("q").agg(x=("x", "mean"), dy=("dy", "mean"),
                                                                  n=("dy", "size")).reset_index(drop=True)
    return MoversResult(slope=float(b[1]), se=float(np.sqrt(V[1, 1])), intercept=float(b[0]), n_moves=int(n),
                        table=bn, moves=mv.reset_index(drop=True), level=level)


# ---------------------------------------------------------------------------------------------------------------
# what place effects are made of


@dataclass(frozen=True, repr=False)
class CharacteristicsRegression(Result):
    """Place effects regressed on place characteristics (see :func:`explain_place_effects`).

    ``table``: one row per regressor with ``estimate, se, ci_low, ci_high`` (95%; ``coef`` is a read-only alias).
    ``tau2``: estimated variance of the place effects not explained by the characteristics (net of estimation
    noise). ``shrunk``: empirical-Bayes posterior means of the place effects, shrunk toward the regression line.
    ``method``: ``"fgls"`` or ``"ols"``.
    """

    method: str
    table: pd.DataFrame
    tau2: float
    n_places: int
    r2: float
    shrunk: pd.DataFrame = field(repr=False)

    @property
    def coef(self) -> pd.DataFrame:
        """Alias of :attr:`table` (the coefficients), kept for earlier code (``policy`` uses it)."""
        return self.table

    def summary(self) -> str:
        head = (f"Place effects on characteristics ({self.method}, {self.n_places} places); "
                f"between-place variance net of noise tau^2 = {self.tau2:.5f}; R^2 {self.r2:.3f}")
        return head + "\n" + self.table.to_string(float_format=lambda x: f"{x:9.4f}")


def explain_place_effects(effects: pd.DataFrame, characteristics: pd.DataFrame, covariates: Sequence[str], *,
                          level: str = "lad", effect: str = "effect", se: str | None = "se",
                          method: str = "fgls", replicates: pd.DataFrame | None = None) -> CharacteristicsRegression:
    """Regress estimated place effects on place characteristics, accounting for their estimation noise.

    Model: ``phi_hat_l = z_l' gamma + u_l + v_l`` with the structural part ``u_l ~ (0, tau^2)`` and the
    estimation noise ``v_l ~ (0, s_l^2)`` (``s_l`` = the ``se`` column, e.g. jackknife standard errors from
    :func:`place_effects`). Noise in the dependent variable does not bias least squares, but it makes the errors
    heteroskedastic, so plain OLS is inefficient and its conventional standard errors are wrong; and shrinking the
    effects toward their grand mean before regressing *does* bias the slopes toward zero.

    ``method="fgls"`` (default): feasible GLS with weights ``1 / (tau^2 + s_l^2)`` (precision weighting, as in
    random-effects meta-regression; Raudenbush and Bryk 1985), ``tau^2`` by the method of moments
    (``mean(e_l^2 - s_l^2)`` from OLS residuals, iterated to a fixed point), HC1 sandwich standard errors;
    empirical-Bayes posterior means ``z'gamma + tau^2/(tau^2+s^2) (phi_hat - z'gamma)`` are returned in ``shrunk``
    (Morris 1983, *JASA* 78(381):47-55).
    ``method="ols"``: unweighted OLS with conventional (homoskedastic) standard errors, the naive benchmark.

    ``replicates`` (``PlaceEffects.replicates``, from ``place_effects(..., se=True)``): the estimation errors of
    place effects are correlated *across* places (districts share the multi-site enterprises and movers that
    identify them), which the sandwich, treating places as independent, misses. With replicates, the variance of
    the coefficients is the delete-a-group jackknife variance of the coefficients re-estimated on each fold's
    effects (same weights; the estimation-noise part, correlations included) plus ``tau^2 A X'W^2X A`` (the
    structural part, ``A = (X'WX)^-1``).

    ``characteristics`` has one row per place (average district-year panels over years first).
    """
    require_choice(method, "method", ("fgls", "ols"))
    covariates = list(covariates)
    _require(effects, [level, effect], "effects", ids=level)
    if se and method == "fgls":
        _require(effects, [se], "effects", ids=level)  # a missing se: drop those places explicitly or use 'ols'
    require_unique(effects, level, "effects")
    _require(characteristics, [level] + covariates, "characteristics", ids=level)
    require_numeric(characteristics, covariates, "characteristics")
    require_unique(characteristics, level, "characteristics", hint=f" (one row per {level}: average panels over "
                   "years first)")
    m = effects.merge(characteristics[[level] + covariates], on=level, how="left", validate="1:1")
    miss = m[covariates].isna().any(axis=1).to_numpy()
    if miss.any():
        ids, _ = first_ids(m, miss, level)
        fail(f"no values for {int(miss.sum())} place(s) of the effects", "characteristics", level, ids, level)
    yv = m[effect].to_numpy(dtype=float)
    X = np.column_stack([np.ones(len(m)), m[covariates].to_numpy(dtype=float)])
    names = ["const"] + covariates
    n, k = X.shape
    if n <= k + 1:
        fail(f"{n} places for {k} coefficients; at least {k + 2} needed", "effects", level)
    s2 = m[se].to_numpy(dtype=float) ** 2 if (se and method == "fgls") else np.zeros(n)

    def wls(w):
        Xw = X * w[:, None]
        A = np.linalg.inv(X.T @ Xw)
        b = A @ (Xw.T @ yv)
        return b, A

    if method == "ols":
        b, A = wls(np.ones(n))
        e = yv - X @ b
        sig2 = float(e @ e) / (n - k)
        V = A * sig2
        tau2 = max(sig2 - float(np.mean(s2)), 0.0)
    else:
        b, _ = wls(np.ones(n))
        e = yv - X @ b
        tau2 = max(float(np.mean(e**2 - s2)) * n / (n - k), 0.0)
        for _ in range(100):
            w = 1.0 / (tau2 + s2 + 1e-12)
            b, A = wls(w)
            e = yv - X @ b
            # weighted moment: sum w (e^2 - s^2 - tau2) = 0 at the fixed point
            new = max(float(np.sum(w**2 * (e**2 * n / (n - k) - s2)) / np.sum(w**2)), 0.0)
            if abs(new - tau2) <= 1e-10 * max(tau2, 1e-12):
                tau2 = new
                break
            tau2 = new
        w = 1.0 / (tau2 + s2 + 1e-12)
        b, A = wls(w)
        e = yv - X @ b
        if replicates is None:
            meat = (X * (w * e)[:, None]).T @ (X * (w * e)[:, None])
            V = A @ meat @ A * n / (n - k)
        else:
            R = m[[level]].merge(replicates, on=level, how="left").drop(columns=level).to_numpy(dtype=float)
            bad = ~np.isfinite(R).all(axis=1)
            if bad.any():
                ids, _ = first_ids(m, bad, level)
                fail(f"missing fold estimates for {int(bad.sum())} place(s)", "replicates", level, ids, level)
            K = R.shape[1]
            Bk = A @ (X * w[:, None]).T @ R  # (k, K): coefficients on each fold's effects
            dev = Bk - Bk.mean(axis=1, keepdims=True)
            V_noise = (K - 1) / K * dev @ dev.T
            V_struct = tau2 * A @ (X * (w**2)[:, None]).T @ X @ A
            V = V_noise + V_struct
    sd = np.sqrt(np.diag(V))
    coef = pd.DataFrame({"estimate": b, "se": sd, "ci_low": b - 1.959964 * sd, "ci_high": b + 1.959964 * sd},
                        index=pd.Index(names, name="term"))
    fit = X @ b
    lam = tau2 / (tau2 + s2) if tau2 > 0 else np.zeros(n)
    shrunk = pd.DataFrame({level: m[level].to_numpy(), "estimate": yv, "fitted": fit,
                           "shrinkage": 1.0 - lam, "eb": fit + lam * (yv - fit)})
    r2 = 1.0 - float(np.var(yv - fit)) / float(np.var(yv)) if np.var(yv) > 0 else float("nan")
    return CharacteristicsRegression(method=method, table=coef, tau2=float(tau2), n_places=int(n), r2=r2,
                                     shrunk=shrunk)


# ---------------------------------------------------------------------------------------------------------------
# over time


@dataclass(frozen=True, repr=False)
class RollingResult(Result):
    """The gap decomposition re-estimated on windows of years (see :func:`rolling`).

    ``table``: one row per window with ``window, start, end, n_obs, var_gap`` and the shares ``people, firms,
    place, sorting, other`` (bias-corrected when ``corrected``), plus ``*_plugin`` versions; with ``se=True`` also
    their jackknife standard errors ``people_se, ...`` and ``people_plugin_se, ...`` (``frame`` is a read-only
    alias of ``table``). ``decompositions``: the :class:`GapDecomposition` of each window.
    """

    table: pd.DataFrame
    decompositions: tuple = field(repr=False)
    level: str = "lad"

    @property
    def frame(self) -> pd.DataFrame:
        """Alias of :attr:`table` (one row per window), kept for earlier code (``policy.over_time`` uses it)."""
        return self.table

    def changes(self, corrected: bool = True) -> pd.DataFrame:
        """Each share's change from the first window to every later one, with its standard error and z statistic.

        Windows are disjoint sets of years but share workers, so their estimates are not independent; the
        standard error ``sqrt(se_1^2 + se_w^2)`` treats them as independent, which overstates it when the
        windows' errors are positively correlated (the test is conservative). Needs ``rolling(..., se=True)``.
        Returns ``window, component, change, se, z``."""
        sfx = "" if corrected else "_plugin"
        need = [f"{c}{sfx}_se" for c in SHARES]
        require_columns(self.table, need, "rolling", hint=" (run rolling(..., se=True))")
        t, out = self.table, []
        for i in range(1, len(t)):
            for c in SHARES:
                d = float(t[f"{c}{sfx}"].iloc[i] - t[f"{c}{sfx}"].iloc[0])
                e = float(np.hypot(t[f"{c}{sfx}_se"].iloc[i], t[f"{c}{sfx}_se"].iloc[0]))
                out.append({"window": t["window"].iloc[i], "component": c, "change": d, "se": e, "z": d / e})
        return pd.DataFrame(out)

    def summary(self) -> str:
        cols = ["window", "n_obs", "var_gap", *SHARES] + [f"{c}_se" for c in SHARES if f"{c}_se" in self.table]
        return (f"Shares of the variance of place gaps ({self.level}) by window\n"
                + self.table[cols].to_string(index=False, float_format=lambda x: f"{x:.4f}"))

    def plot(self, ax=None, corrected: bool = True):
        """Shares of the variance of place gaps by window (lines, fixed component colours)."""
        import matplotlib.pyplot as plt  # lazy: importing places does not load matplotlib

        from .plots import COMPONENT_COLOURS

        if ax is None:
            _, ax = plt.subplots(figsize=(6.5, 4))
        x = np.arange(len(self.table))
        for comp in ("people", "firms", "place", "sorting"):
            col = comp if corrected else f"{comp}_plugin"
            ax.plot(x, self.table[col], marker="o", color=COMPONENT_COLOURS[comp], label=comp)
            if f"{col}_se" in self.table:  # 95% jackknife intervals (Student t, folds - 1 d.f., as shares())
                q = float(stats.t.ppf(0.975, self.decompositions[0].folds - 1))
                ax.errorbar(x, self.table[col], yerr=q * self.table[f"{col}_se"], fmt="none",
                            ecolor=COMPONENT_COLOURS[comp], capsize=3, linewidth=1)
        ax.set_xticks(x, self.table["window"])
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set_ylabel("share of Var(place gap)")
        ax.legend(fontsize="small")
        return ax


def rolling(linked, windows: Sequence[tuple[int, int]] = ((2005, 2009), (2010, 2014), (2015, 2019)), *,
            level: str = "lad", time: str = "year", model: str = "worker+firm+place", correct: bool = True,
            seed: int = 0, quiet: bool = True, **kwargs) -> RollingResult:
    """Re-estimate place effects and the gap decomposition on each window of years (inclusive bounds).

    Each window is a separate sample: the identified set, the worker, firm and place effects, and the
    split-sample correction are all re-done, as Card, Heining and Kline (2013, *QJE*) do for AKM over four
    intervals. Shares of the variance of place gaps (people, firms, place, sorting) are compared across windows.
    Other keyword arguments go to :func:`decompose_gaps` and :func:`place_effects` (e.g. ``controls``,
    ``splits``; ``se=True, folds=K`` adds jackknife standard errors of every window's shares, and
    :meth:`RollingResult.changes` tests the changes between windows).
    """
    df = _panel(linked)
    _require(df, [time], "workers")
    require_numeric(df, [time], "workers")
    recs, decs = [], []
    for lo, hi in tqdm(list(windows), disable=quiet, desc="windows"):
        sub = df[(df[time] >= lo) & (df[time] <= hi)]
        if len(sub) == 0:
            fail(f"no rows in window {lo}-{hi}", "workers", time)
        dec = decompose_gaps(sub, level=level, model=model, correct=correct, seed=seed, time=time, **kwargs)
        decs.append(dec)
        rec = {"window": f"{lo}-{hi}", "start": lo, "end": hi, "n_obs": dec.effects.identification["n_obs"]}
        v = dec.variance_corrected if dec.variance_corrected is not None else dec.variance
        rec["var_gap"] = float(v.loc["Var(gap)", "value"])
        rec.update(_share_record(dec.shares(corrected=True), ""))
        rec["var_gap_plugin"] = float(dec.variance.loc["Var(gap)", "value"])
        rec.update(_share_record(dec.shares(corrected=False), "_plugin"))
        recs.append(rec)
    return RollingResult(table=pd.DataFrame(recs), decompositions=tuple(decs), level=level)


def _share_record(shares: pd.DataFrame, suffix: str) -> dict:
    """``{component+suffix: share}`` (and ``component+suffix+"_se"`` when there are standard errors)."""
    sh = shares.set_index("component")
    rec = {f"{k}{suffix}": float(v) for k, v in sh["share"].items()}
    if "se" in sh:
        rec.update({f"{k}{suffix}_se": float(v) for k, v in sh["se"].items()})
    return rec


def characteristics(places: pd.DataFrame, covariates: Sequence[str] = ("density", "transport_access",
                                                                       "housing_cost", "amenities"), *,
                    level: str = "lad", time: str = "year", log: Sequence[str] = ("density", "housing_cost"),
                    standardise: bool = True) -> pd.DataFrame:
    """One row per place of time-averaged characteristics from a place-year panel (``LinkedData.places``).

    Each covariate is averaged over years, the ones in ``log`` are logged first (density and housing cost are
    skewed), and with ``standardise=True`` each is standardised to mean 0 and standard deviation 1 across places
    (unweighted), so coefficients read as log points of pay per standard deviation.
    """
    covariates = list(covariates)
    if isinstance(places, pd.DataFrame):
        panel = places
    else:
        panel = getattr(places, "places", None)
        if not isinstance(panel, pd.DataFrame):
            fail(f"expected a place-year DataFrame or a LinkedData, got {type(places).__name__}", "places",
                 kind=InputTypeError)
    _require(panel, [level] + covariates, "places", ids=level)
    require_numeric(panel, covariates, "places")
    d = panel[[level] + ([time] if time in panel else []) + covariates].copy()
    for c in log:
        if c in covariates:
            require_positive(d, c, "places", id_cols=level)  # logs
            d[c] = np.log(d[c].astype(float))
    out = d.groupby(level, sort=True, observed=True)[covariates].mean()
    if standardise:
        sd = out.std(ddof=0).replace(0, np.nan)
        out = (out - out.mean()) / sd
    return out.reset_index()

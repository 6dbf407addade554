"""AKM on Spark (issue 15): sufficient statistics aggregated on Spark, the firm-sized solve on the driver, the same
estimates, sample and ledger as :func:`prosperity.akm.fit` on the same rows (to 1e-8), and the same input errors.

Uses the session of ``tests/test_spark.py`` (one local-mode session per test run)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from prosperity import _checks, akm, akm_spark, link, synthetic, testing
from test_spark import result_limit, spark  # noqa: F401 - the session-wide fixture

TOL = 1e-12  # the CG tolerance of both fits, so that the two solutions agree far below the 1e-8 asked


def _agree(ref: akm.AKMResult, res: akm_spark.SparkAKMResult, worker: str, firm: str, y: str, rows: bool = True):
    pd.testing.assert_frame_equal(res.ledger, ref.ledger)
    pd.testing.assert_frame_equal(res.sample, ref.sample)
    assert res.n_obs == ref.n_obs
    fe = res.firm_effects
    assert fe[firm].tolist() == ref.firm_effects[firm].tolist()
    assert (fe["n_obs"].to_numpy() == ref.firm_effects["n_obs"].to_numpy()).all()
    assert np.abs(fe["psi"].to_numpy() - ref.firm_effects["psi"].to_numpy()).max() < 1e-8
    we = res.worker_effects.toPandas().sort_values(worker).reset_index(drop=True)
    assert we[worker].tolist() == ref.worker_effects[worker].tolist()
    assert (we["n_obs"].to_numpy() == ref.worker_effects["n_obs"].to_numpy()).all()
    assert np.abs(we["alpha"].to_numpy() - ref.worker_effects["alpha"].to_numpy()).max() < 1e-8
    assert res.diagnostics["n_unidentified"] == ref.diagnostics["n_unidentified"]
    if not rows:
        return
    keys = [worker, firm, y]  # unique (duplicated records are refused)
    panel = res.panel.toPandas().sort_values(keys)
    table = ref.table.sort_values(keys)
    assert len(panel) == res.n_obs
    assert np.abs(panel["resid"].to_numpy() - table["resid"].to_numpy()).max() < 1e-8


def test_workshop_akm_is_the_same_on_both_engines(spark):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", link.LinkWarning)
        workers = link.build_panel(synthetic.england(size="workshop", seed=0)).workers
    panel = workers[["piden", "entref", "year", "lhw"]]
    ref = akm.fit(panel, "lhw", "piden", "entref", tol=TOL)
    data = spark.createDataFrame(pa.Table.from_pandas(panel, preserve_index=False))
    with result_limit(spark):  # 59 thousand matches (about 2 MB) reach the driver through Parquet, not toArrow
        res = akm_spark.fit(data, "lhw", "piden", "entref", tol=TOL)
    assert ref.n_obs > 100_000 and len(ref.firm_effects) > 1_000
    assert res.diagnostics["converged"] and res.diagnostics["nonzeros"] > len(ref.firm_effects)
    _agree(ref, res, "piden", "entref", "lhw", rows=False)  # the rows joined back: the small panels below
    assert "AKM on Spark" in res.summary() and res.to_frame().equals(res.firm_effects)


@pytest.fixture(scope="module")
def small():
    """A simulated panel with articulation workers and single-observation workers to prune."""
    d = testing.simulate(n_workers=1_500, years=3, n_firms=150, move=0.15, seed=3)
    return d.rename(columns={"worker": "w", "firm": "f"})[["w", "f", "year", "y"]]


@pytest.mark.parametrize("pruning", ["kss", "matches"])
def test_leave_one_out_set_is_the_same_on_both_engines(spark, small, pruning):
    i = np.arange(len(small))
    d = small.iloc[np.flatnonzero((i % 2 == 0) | (i % 5 == 1))]  # thinned: single-observation workers, cut vertices
    ref = akm.fit(d, "y", "w", "f", connected="leave_one_out", pruning=pruning, tol=TOL)
    res = akm_spark.fit(d, "y", "w", "f", spark=spark, connected="leave_one_out", pruning=pruning, tol=TOL)
    assert ref.ledger["dropped"].sum() > 0  # the pruning removed something
    _agree(ref, res, "w", "f", "y")


def _bad(small):
    d = small.head(600).copy()
    return {
        "missing y": (d.assign(y=np.where(d.index == 7, np.nan, d["y"])), {}),
        "infinite y": (d.assign(y=np.where(d.index == 9, np.inf, d["y"])), {}),
        "constant y": (d.assign(y=1.0), {}),
        "a missing column": (d.drop(columns="y"), {}),
        "a string outcome": (d.assign(y=d["y"].astype(str)), {}),
        "duplicated records": (pd.concat([d, d.iloc[[3]]], ignore_index=True).drop(columns="year"), {}),
        "a single firm": (d.assign(f=0), {}),
    }


@pytest.mark.parametrize("case", ["missing y", "infinite y", "constant y", "a missing column", "a string outcome",
                                  "duplicated records", "a single firm"])
def test_bad_inputs_raise_the_errors_of_akm_fit(spark, small, case):
    data, kw = _bad(small)[case]
    with pytest.raises(_checks.InputError) as a:
        akm.fit(data, "y", "w", "f", **kw)
    with pytest.raises(_checks.InputError) as b:
        akm_spark.fit(data, "y", "w", "f", spark=spark, **kw)
    a, b = a.value, b.value
    assert (type(a), a.table, a.column, a.ids) == (type(b), b.table, b.column, b.ids), (str(a), str(b))

"""Hostile inputs to AKM (issue 12): nothing wrong passes silently.

Each case is an error naming the table, the column and the first offending ids (one format, through
``prosperity._checks``), or a warning that also shows in ``summary()``. Every test says how HEAD 6a07b8d behaved
(each fails there). The exceptions are caught as ``ValueError`` / ``TypeError`` / ``KeyError``, which the
``_checks`` classes subclass, so the old code is tested by the same assertions.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

from prosperity import akm, network
from prosperity.testing import simulate


@pytest.fixture(scope="module")
def panel():
    df = simulate(n_workers=400, years=4, n_firms=30, move=0.3, seed=2)
    rng = np.random.default_rng(0)
    df["x1"] = rng.standard_normal(len(df))
    return df


# ---------------------------------------------------------------------------------------------------------------
# duplicates and mixed-type ids


def test_duplicated_worker_periods_are_an_error_naming_workers_and_periods(panel):
    # HEAD 6a07b8d: accepted, the duplicated row counted twice and changed the effects
    df = pd.concat([panel, panel.iloc[[5]].assign(y=panel["y"].iloc[5] + 1.0)], ignore_index=True)
    w, t = int(panel["worker"].iloc[5]), int(panel["year"].iloc[5])
    with pytest.raises(ValueError, match=r"column 'worker': 2 rows are duplicated worker-periods .*"
                                         rf"\(e\.g\. \(worker, year\) \[\({w}, {t}\), \({w}, {t}\)\]\)"):
        akm.fit(df, "y", "worker", "firm", time="year")
    with pytest.raises(ValueError, match="duplicated worker-periods"):
        akm.event_study(df, "y", "worker", "firm", "year")


def test_identical_rows_without_time_are_an_error(panel):
    # decision: without a time column a verbatim copy of a row (same worker, firm, y and controls) is a duplicated
    # record, not a second period; rows that differ in any used column are accepted (HEAD: accepted the copy)
    df = pd.concat([panel, panel.iloc[[7]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"2 rows are identical in every column used \(worker, firm, y, x1\)"):
        akm.fit(df, "y", "worker", "firm", controls=["x1"])
    other = df.copy()
    other.loc[len(other) - 1, "y"] += 0.5  # same worker and firm, different pay: a second period
    assert akm.fit(other, "y", "worker", "firm", controls=["x1"]).n_obs > 0


def test_the_same_id_as_int_and_str_is_an_error(panel):
    # HEAD 6a07b8d: 1 and "1" became two workers (or firms) without a word
    df = panel.astype({"worker": object, "firm": object})
    df.loc[df.index[:3], "worker"] = df.loc[df.index[:3], "worker"].astype(str)
    with pytest.raises(TypeError, match=r"column 'worker': mixes value types \['int', 'str'\]"):
        akm.fit(df, "y", "worker", "firm")
    with pytest.raises(TypeError, match="mixes value types"):
        akm.fit_fixed_effects(df, "y", ["worker", "firm"])
    with pytest.raises(TypeError, match="mixes value types"):
        network.connected_set(df, "worker", "firm")
    df2 = panel.astype({"firm": object})
    df2.loc[df2.index[10], "firm"] = str(df2.loc[df2.index[10], "firm"])
    with pytest.raises(TypeError, match=r"column 'firm': mixes value types"):
        akm.fit(df2, "y", "worker", "firm", time="year")


# ---------------------------------------------------------------------------------------------------------------
# collinear controls


@pytest.mark.parametrize("backend", ["sparse", "pyfixest"])
def test_collinear_controls_are_named(panel, backend):
    # HEAD 6a07b8d: sparse backend returned a minimum-norm split of the two coefficients silently; pyfixest backend
    # named only the dropped column, not what it is collinear with
    df = panel.assign(x2=2.0 * panel["x1"] - 1.0)
    with pytest.raises(ValueError, match=r"\['x2'\] are collinear \('x2' with 'x1' and the fixed effects\)"):
        akm.fit(df, "y", "worker", "firm", controls=["x1", "x2"], backend=backend)
    # a control constant within worker is collinear with the fixed effects alone
    df["xw"] = df["worker"] % 7 * 1.0
    with pytest.raises(ValueError, match=r"\['xw'\] are collinear \('xw' with the fixed effects\)"):
        akm.fit(df, "y", "worker", "firm", controls=["x1", "xw"], backend=backend)


def test_collinear_controls_in_the_multiway_solver(panel):
    # HEAD 6a07b8d: accepted (lstsq split the coefficient between x1 and x3 silently)
    df = panel.assign(x3=panel["x1"] + 0.5 * (panel["worker"] % 5))  # x1 plus a worker constant
    with pytest.raises(ValueError, match=r"\['x3'\] are collinear \('x3' with 'x1' and the fixed effects\)"):
        akm.fit_fixed_effects(df, "y", ["worker", "firm"], controls=["x1", "x3"])


# ---------------------------------------------------------------------------------------------------------------
# degenerate networks and non-convergence


def test_single_firm_or_no_movers_is_a_clear_error_before_any_iteration(panel):
    # HEAD 6a07b8d: ran 10,000 CG iterations and returned converged=False effects with no warning
    one = panel.assign(firm=1)
    with pytest.raises(ValueError, match=r"column 'firm': .*1 firm\(s\).*the data have a single firm, so firm "
                                         r"effects are not identified"):
        akm.fit(one, "y", "worker", "firm")
    stayers = panel.assign(firm=panel["worker"] % 9)  # every worker at one firm: nobody moves
    with pytest.raises(ValueError, match=r"0 mover\(s\) in the input\): no worker moves between firms"):
        akm.fit(stayers, "y", "worker", "firm", connected="leave_one_out")
    chain = pd.DataFrame({"w": [1, 1, 2, 2, 3, 3], "f": ["A", "B", "B", "C", "C", "C"], "t": [0, 1, 0, 1, 0, 1],
                          "y": [1.0, 1.5, 0.2, 0.9, 2.0, 2.1]})
    with pytest.raises(ValueError, match="leave-one-out pruning left a single firm"):
        akm.fit(chain, "y", "w", "f", time="t", connected="leave_one_out")


def test_non_convergence_warns_and_shows_in_summary(panel):
    # HEAD 6a07b8d: no warning class, converged=False only in diagnostics, nothing in summary()
    assert issubclass(akm.ConvergenceWarning, UserWarning)
    with pytest.warns(akm.ConvergenceWarning, match="not converged"):
        r = akm.fit(panel, "y", "worker", "firm", time="year", maxiter=2)
    assert r.diagnostics["converged"] is False and "did NOT converge" in r.summary()
    with pytest.warns(akm.ConvergenceWarning):
        m = akm.fit_fixed_effects(panel, "y", ["worker", "firm"], maxiter=1)
    assert "did NOT converge" in m.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("error", akm.ConvergenceWarning)
        ok = akm.fit(panel, "y", "worker", "firm", time="year")  # converges: no warning
    assert "NOT" not in ok.summary()


# ---------------------------------------------------------------------------------------------------------------
# the outcome: overflow, constant, empty


def test_y_whose_squares_overflow_is_an_error(panel):
    # HEAD 6a07b8d: returned effects after 0 CG iterations
    big = panel.assign(y=panel["y"] * 1e200)
    with pytest.raises(ValueError, match=r"column 'y': \d+ value\(s\) so large that sums of their squares overflow"):
        akm.fit(big, "y", "worker", "firm")
    with pytest.raises(ValueError, match="overflow"):
        akm.fit_fixed_effects(big, "y", ["worker", "firm"])
    with pytest.raises(ValueError, match=r"column 'x1': .*overflow"):
        akm.fit(panel.assign(x1=panel["x1"] * 1e200), "y", "worker", "firm", controls=["x1"])


def test_constant_y_and_empty_data_are_errors(panel):
    # HEAD 6a07b8d: ZeroDivisionError (constant y) and a crash deep in the solver (empty data)
    with pytest.raises(ValueError, match=r"column 'y': is constant \(every value is 2\.5\)"):
        akm.fit(panel.assign(y=2.5), "y", "worker", "firm")
    with pytest.raises(ValueError, match="is constant"):
        akm.fit_fixed_effects(panel.assign(y=2.5), "y", ["worker", "firm"])
    empty = panel.iloc[:0]
    with pytest.raises(ValueError, match=r"table 'data': has 0 row\(s\)"):
        akm.fit(empty, "y", "worker", "firm")
    with pytest.raises(ValueError, match=r"table 'data': has 0 row\(s\)"):
        akm.fit_fixed_effects(empty, "y", ["worker", "firm"])


# ---------------------------------------------------------------------------------------------------------------
# wrong types and roles


def test_wrong_types_and_roles_follow_the_one_format(panel):
    # HEAD 6a07b8d: three message formats ("data.y must be numeric", "data must be a pandas DataFrame", "given more
    # than once"), none naming the table as table 'data'
    with pytest.raises(TypeError, match=r"table 'data': must be a pandas DataFrame, got dict"):
        akm.fit(panel.to_dict("list"), "y", "worker", "firm")
    with pytest.raises(TypeError, match=r"table 'data', column 'y': must be numeric, got dtype object"):
        akm.fit(panel.assign(y=panel["y"].astype(str)), "y", "worker", "firm")
    with pytest.raises(TypeError, match=r"column 'flag': must be numeric, got dtype bool"):
        akm.fit(panel.assign(flag=panel["x1"] > 0), "y", "worker", "firm", controls=["flag"])
    with pytest.raises(ValueError, match=r"column 'worker': column\(s\) \['worker'\] given for more than one role"):
        akm.fit(panel, "y", "worker", "worker")
    with pytest.raises(ValueError, match=r"column\(s\) \['x1'\] given for more than one role"):
        akm.fit_fixed_effects(panel, "x1", ["worker", "firm"], controls=["x1"])
    with pytest.raises(TypeError, match=r"table 'data', column 'year': must be numeric"):
        akm.event_study(panel.assign(year=panel["year"].astype(str)), "y", "worker", "firm", "year")


def test_residual_grid_checks_its_arguments(panel):
    # HEAD 6a07b8d: an AttributeError on a DataFrame, a pandas error on bins=1
    with pytest.raises(TypeError, match=r"table 'result': must be an akm.AKMResult"):
        akm.residual_grid(panel)
    r = akm.fit(panel, "y", "worker", "firm")
    with pytest.raises(ValueError, match="bins must be an integer between 2"):
        akm.residual_grid(r, bins=1)
    assert akm.residual_grid(r, bins=4).shape == (4, 4)

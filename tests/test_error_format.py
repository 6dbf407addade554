"""Every public function's input checks speak one language (issue 11): fed a table without a column it needs, each
raises a ``prosperity._checks.InputError`` whose message starts ``table '<T>', column '<C>':`` and whose
attributes name the table and the column. One case per public entry point that takes a DataFrame; the modules'
own tests cover the other checks (missing values, types, duplicated keys, empty tables).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prosperity import _checks, akm, groups, network, places, plots, policy, sdc, synthetic
from prosperity import link
from prosperity.testing import simulate


@pytest.fixture(scope="module")
def panel():
    return simulate(n_workers=600, years=4, n_firms=60, move=0.3, seed=1)


@pytest.fixture(scope="module")
def england():
    return synthetic.england("workshop", seed=2, n_workers=3000, n_enterprises=300)


def _without(df, col):
    return df.drop(columns=[col])


def _cases(panel, england):
    p = _without(panel, "firm")
    t = england.tables
    gap_rows = pd.DataFrame({"lad": ["a", "b"], "y": [0.1, 0.2], "alpha": [0.0, 0.1], "psi": [0.1, 0.0],
                             "phi": [0.0, 0.1], "industry": ["C", "G"], "piden": [1, 2], "entref": [5, 6]})
    counts = pd.DataFrame({"lad": ["a", "b"], "n_people": [20, 30], "n_firms": [12, 15]})
    micro = pd.DataFrame({"region": ["x"] * 12, "gva": np.arange(12.0), "entref": np.arange(12)})
    ledger = pd.DataFrame({"step": ["a"], "rows_in": [2], "rows_out": [1], "dropped": [1], "reason": ["r"]})
    return [
        ("akm.fit", lambda: akm.fit(p, "y", "worker", "firm"), "firm"),
        ("akm.fit_fixed_effects", lambda: akm.fit_fixed_effects(p, "y", ["worker", "firm"]), "firm"),
        ("akm.event_study", lambda: akm.event_study(p, "y", "worker", "firm", "year"), "firm"),
        ("network.connected_set", lambda: network.connected_set(p, "worker", "firm"), "firm"),
        ("network.movers", lambda: network.movers(p, "worker", "firm"), "firm"),
        ("network.summarize", lambda: network.summarize(p, "worker", "firm"), "firm"),
        ("network.components", lambda: network.components(p, "worker", "firm"), "firm"),
        ("groups.firm_classes", lambda: groups.firm_classes(p, y="y", firm="firm"), "firm"),
        ("places.gap_components", lambda: places.gap_components(_without(gap_rows, "alpha"), "lad", y="y",
                                                                people="alpha", firm_premium="psi"), "alpha"),
        ("link.build_panel", lambda: link.build_panel({**t, "jobs": _without(t["jobs"], "gpay")}, quiet=True),
         "gpay"),
        ("sdc.check", lambda: sdc.check(_without(counts, "n_firms"), keys="lad"), "n_firms"),
        ("sdc.check_magnitudes", lambda: sdc.check_magnitudes(_without(micro, "gva"), by="region", value="gva"),
         "gva"),
        ("sdc.check_statistic", lambda: sdc.check_statistic(_without(micro, "gva"), by="region", value="gva",
                                                            stat="mean"), "gva"),
        ("plots.ledger_funnel", lambda: plots.ledger_funnel(_without(ledger, "rows_out")), "rows_out"),
        ("policy.dispersion", lambda: policy.dispersion(pd.DataFrame({"scenario": ["a"], "gap": [0.1]})), None),
    ]


def test_missing_column_errors_name_table_and_column(panel, england):
    for name, call, column in _cases(panel, england):
        with pytest.raises(_checks.InputError) as e:
            call()
        err = e.value
        assert isinstance(err, (_checks.MissingColumnError, link.LinkError)), f"{name}: {type(err)}"
        assert err.table, f"{name}: the error names no table: {err}"
        assert str(err).startswith(f"table {err.table!r}, column "), f"{name}: {err}"
        if column is not None:
            assert err.column == column, f"{name}: names column {err.column!r}, not {column!r}: {err}"


def test_offending_ids_are_named(panel):
    bad = panel.copy()
    bad.loc[bad.index[:3], "y"] = np.nan
    with pytest.raises(_checks.InputError) as e:
        akm.fit(bad, "y", "worker", "firm")
    err = e.value
    assert err.column == "y" and err.ids and str(err).endswith(f"(e.g. {err.id_name} {err.ids[:5]})")

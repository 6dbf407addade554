"""Figures of :mod:`prosperity.plots` that carry logic (what is drawn, what is refused)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from prosperity import plots  # noqa: E402
from prosperity._checks import InputError, MissingColumnError  # noqa: E402

LEDGER = pd.DataFrame({
    "step": ["raw_jobs", "missing_luref", "join_sites", "main_job", "other_table"],
    "table": ["jobs", "jobs", "jobs", "jobs", "local_units"],
    "rows_in": [1000, 1000, 980, 980, 50],
    "rows_out": [1000, 980, 980, 900, 40],
    "dropped": [0, 20, 0, 80, 10],
    "reason": ["", "no local unit", "", "secondary jobs", "dead units"],
})


def _bars(ax):
    return [p for p in ax.patches]


def test_ledger_funnel_draws_jobs_steps_that_drop_rows():
    ax = plots.ledger_funnel(LEDGER)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # first step always shown; steps dropping nothing hidden; other tables' steps never drawn
    assert labels == ["raw jobs", "missing luref", "main job"]
    bars = _bars(ax)
    assert len(bars) == 2 * 3
    kept = sorted(b.get_width() for b in bars[:3])
    assert kept == [900, 980, 1000]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == ["-20", "-80"]
    plt.close(ax.figure)


def test_ledger_funnel_all_steps_and_given_axes():
    fig, ax = plt.subplots()
    out = plots.ledger_funnel(LEDGER, ax=ax, drops_only=False)
    assert out is ax
    assert len(ax.get_yticklabels()) == 4
    plt.close(fig)


def test_ledger_funnel_refuses_bad_ledgers():
    with pytest.raises(MissingColumnError, match="table 'ledger', column 'dropped'"):
        plots.ledger_funnel(LEDGER.drop(columns="dropped"))
    with pytest.raises(InputError, match="table 'ledger'"):
        plots.ledger_funnel(LEDGER[LEDGER["table"] == "local_units"])

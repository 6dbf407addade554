"""The real-data mapping (issue 16): every entry of ``link.REAL_DATA_COLUMNS`` is verified with a citation or
unverified with what was searched, and the guide's tables (book/using-the-real-data.md) are the code's, produced by
the page's own cells (no hand-kept copy)."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import myst_nb
import pandas as pd
import pytest

from prosperity import link, synthetic
from prosperity.link import schema

PAGE = Path(__file__).resolve().parents[1] / "book" / "using-the-real-data.md"
CORPORA = ("pages:", "docs:", "code:", "find_string:", "read_file:")


def _entries():
    return [(t, c, e) for t, cols in link.REAL_DATA_COLUMNS.items() for c, e in cols.items()]


def test_every_entry_is_verified_with_a_citation_or_unverified_with_what_was_searched():
    entries = _entries()
    assert {(t, c) for t, c, _ in entries} == {(t, c) for t, cols in link.TABLE_COLUMNS.items() for c in cols}
    for table, col, e in entries:
        where = f"{table}.{col}"
        assert isinstance(e, schema.RealColumn) and e.real.strip(), where
        assert e.status in ("V", "U"), where
        if e.status == "V":
            # a citation names the document and an address, and shows the very name being mapped
            assert e.citation.strip(), where
            assert re.search(r"https?://|github\.com/", e.citation), where
            assert e.real.lower() in e.citation.lower(), where
        else:
            assert e.searched.strip() and not e.citation, where
            assert any(k in e.searched for k in CORPORA) or "not a variable of any extract" in e.searched, where
    assert set(schema.STATUSES) == {"V", "U"}
    assert {e.status for _, _, e in entries} == {"V", "U"}


def test_table_and_mapping_are_the_dict():
    table = link.real_data_columns()
    assert list(table.columns) == ["table", "column", "real", "status", "note", "citation", "searched"]
    entries = _entries()
    assert len(table) == len(entries)
    for row, (t, c, e) in zip(table.itertuples(index=False), entries):
        assert (row.table, row.column) == (t, c) and tuple(row)[2:] == tuple(e)
    mapping = link.real_data_mapping()
    assert mapping == {t: {c: e.real for c, e in cols.items()} for t, cols in link.REAL_DATA_COLUMNS.items()}
    # the findings of issue 16: the directories' own 'itl' field is an LAU1 code, never mapped as ITL3
    assert mapping["postcode_lookup"]["itl3"] != "itl"
    assert mapping["postcode_lookup"] == {"postcode": "pcds", "lad": "laua", "itl3": "ITL321CD", "region": "rgn"}


def _run_page(monkeypatch):
    """Execute the page's code cells in order; return the namespace and what they glued."""
    glued = {}
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: glued.__setitem__(name, value))
    nb = jupytext.read(PAGE)
    assert nb.metadata["kernelspec"]["name"] == "python3"  # the book build executes the page
    ns: dict = {}
    cells = [c for c in nb.cells if c.cell_type == "code"]
    assert cells
    for cell in cells:
        exec(compile(cell.source, f"{PAGE.name} cell", "exec"), ns)
    return nb, ns, glued


def test_the_page_tables_are_produced_by_the_code(monkeypatch):
    nb, ns, glued = _run_page(monkeypatch)
    table = link.real_data_columns()
    pd.testing.assert_frame_equal(ns["mapping"], table)
    pd.testing.assert_frame_equal(ns["shown"], table[["table", "column", "real", "status", "note"]])
    pd.testing.assert_frame_equal(ns["verified"].reset_index(drop=True),
                                  table.loc[table.status == "V", ["table", "column", "real", "citation"]]
                                  .reset_index(drop=True))
    pd.testing.assert_frame_equal(ns["searched"].reset_index(drop=True),
                                  table.loc[table.status == "U", ["table", "column", "real", "searched"]]
                                  .reset_index(drop=True))
    pd.testing.assert_frame_equal(ns["rti"], synthetic.rti_columns())
    counts = table["status"].value_counts()
    assert glued == {"n_entries": len(table), "n_verified": counts["V"], "n_unverified": counts["U"],
                     "n_tables": len(link.TABLE_COLUMNS)}
    # every glued name the prose uses is glued by the page
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert set(re.findall(r"\{glue:text\}`(\w+)", prose)) == set(glued)


def test_no_hand_kept_mapping_table_in_the_prose():
    nb = jupytext.read(PAGE)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    tables = "|".join(link.TABLE_COLUMNS)
    keyed = re.compile(rf"^\|\s*`({tables})\.\w+`", re.M)  # a markdown row keyed by package table.column
    assert not keyed.findall(prose)
    # and no markdown row restating a real name next to its package column
    rows = [ln for ln in prose.splitlines() if ln.startswith("|")]
    for t, c, e in _entries():
        for ln in rows:
            assert not (f"`{c}`" in ln and f"`{e.real}`" in ln and c != e.real), (t, c, ln)


@pytest.mark.parametrize("bad", ["S", "", "v"])
def test_an_unknown_status_would_fail(bad, monkeypatch):
    """The status check can fail: a patched entry with another status is caught."""
    broken = {t: dict(cols) for t, cols in link.REAL_DATA_COLUMNS.items()}
    broken["jobs"]["piden"] = broken["jobs"]["piden"]._replace(status=bad)
    monkeypatch.setattr(link, "REAL_DATA_COLUMNS", broken)
    with pytest.raises(AssertionError):
        test_every_entry_is_verified_with_a_citation_or_unverified_with_what_was_searched()

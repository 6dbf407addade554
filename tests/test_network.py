"""Connected sets and the leave-one-out connected set on small hand-built networks."""

import numpy as np
import pandas as pd
import pytest

from prosperity import network


def panel(spells):
    """spells: {worker: [firm, firm, ...]} -> one row per worker-year."""
    rows = [(w, f, t) for w, firms in spells.items() for t, f in enumerate(firms)]
    return pd.DataFrame(rows, columns=["w", "f", "t"])


# two triangles of firms (A,B,C) and (D,E,F), joined only by worker 7; a separate pair (X,Y); stayers
BASE = {1: ["A", "B"], 2: ["B", "C"], 3: ["C", "A"], 4: ["D", "E"], 5: ["E", "F"], 6: ["F", "D"],
        7: ["C", "D"], 8: ["A", "A", "A"], 9: ["D", "D"], 10: ["X", "Y"], 11: ["Y", "X"]}


def test_components_and_largest_set():
    df = panel(BASE)
    comp = network.components(df, "w", "f").set_index("f")
    assert comp.loc[list("ABCDEF"), "component"].eq(0).all()
    assert comp.loc[["X", "Y"], "component"].eq(1).all()
    cs = network.largest_connected_set(df, "w", "f")
    assert set(cs.data["f"]) == set("ABCDEF")
    assert cs.ledger.loc[0, "dropped"] == 4 and cs.ledger.loc[0, "firms_dropped"] == 2
    assert cs.ledger["rows_out"].iloc[-1] == len(cs.data)
    assert cs.summary.loc["components", "input"] == 2 and cs.summary.loc["components", "kept"] == 1


def test_articulation_worker_removed_and_larger_side_kept():
    df = panel(BASE)
    lo = network.leave_one_out_set(df, "w", "f", leave_out="obs")
    # worker 7 is the only link between the triangles: removed; the side with more rows (A,B,C + stayer 8) is kept
    assert 7 not in set(lo.data["w"])
    assert set(lo.data["f"]) == set("ABC")
    assert set(lo.data["w"]) == {1, 2, 3, 8}
    assert lo.ledger["step"].str.startswith("articulation workers").any()
    # ledger accounts for every dropped row
    assert lo.ledger["dropped"].sum() == len(df) - len(lo.data)


def test_pendant_firm_and_singleton_firm():
    # firm P is reached by a single mover (worker 20): P must go; firm S has only a stayer: own component
    sp = dict(BASE)
    del sp[7]
    sp.update({20: ["A", "P"], 21: ["P", "P"], 22: ["S", "S", "S", "S", "S", "S", "S", "S"]})
    df = panel(sp)
    lcs = network.largest_connected_set(df, "w", "f")
    assert "S" not in set(lcs.data["f"]) and "P" in set(lcs.data["f"])
    lo = network.leave_one_out_set(df, "w", "f")
    assert "P" not in set(lo.data["f"]) and 20 not in set(lo.data["w"]) and 21 not in set(lo.data["w"])
    assert set(lo.data["f"]) == set("ABC")


def test_bridge_needs_two_movers():
    # two triangles joined by TWO movers: nobody is an articulation point, everything stays
    sp = dict(BASE)
    sp[12] = ["B", "E"]
    df = panel(sp)
    lo = network.leave_one_out_set(df, "w", "f")
    assert set(lo.data["f"]) == set("ABCDEF")
    assert not lo.ledger["step"].str.startswith("articulation").any()


def test_chain_is_pruned_iteratively():
    # a chain of firms A-B-C-D linked by single movers collapses completely: every mover is an articulation point
    df = panel({1: ["A", "B"], 2: ["B", "C"], 3: ["C", "D"], 4: ["A", "A"], 5: ["B", "B"]})
    lo = network.leave_one_out_set(df, "w", "f")
    assert lo.data["f"].nunique() == 1
    assert lo.ledger["dropped"].sum() == len(df) - len(lo.data)


def test_single_observation_and_single_match_workers():
    sp = dict(BASE)
    sp[30] = ["A"]  # one person-year
    df = panel(sp)
    obs = network.leave_one_out_set(df, "w", "f", leave_out="obs")
    assert 30 not in set(obs.data["w"]) and 8 in set(obs.data["w"])
    match = network.leave_one_out_set(df, "w", "f", leave_out="match")
    assert 8 not in set(match.data["w"])  # a stayer has a single match
    assert set(match.data["w"]) == {1, 2, 3}


def test_movers_and_summary():
    df = panel(BASE)
    mv = network.movers(df, "w", "f").set_index("w")
    assert mv.loc[8, "mover"] == False and mv.loc[7, "mover"] == True and mv.loc[8, "n_obs"] == 3  # noqa: E712
    s = network.summarize(df, "w", "f")
    assert s["workers"] == 11 and s["firms"] == 8 and s["movers"] == 9 and s["components"] == 2


def test_bad_input_names_column_and_ids():
    df = panel(BASE)
    df.loc[3, "f"] = None
    with pytest.raises(ValueError, match=r"data\.f has 1 missing"):
        network.connected_set(df, "w", "f")
    with pytest.raises(KeyError, match="no column 'firm'"):
        network.connected_set(panel(BASE), "w", "firm")
    with pytest.raises(ValueError, match="leave_out"):
        network.connected_set(panel(BASE), "w", "f", leave_out="year")


def test_movers_per_firm_counts_distinct_movers_with_zeros():
    import pandas as pd

    from prosperity import network

    df = pd.DataFrame({"w": [1, 1, 2, 2, 2, 3, 4], "f": ["a", "b", "a", "a", "c", "c", "d"]})
    mpf = network.movers_per_firm(df, "w", "f")
    assert mpf.to_dict() == {"a": 2, "b": 1, "c": 1, "d": 0}

"""Connected sets and the leave-one-out connected set: small hand-built networks, and random networks against the
brute-force definition (remove each mover, check connectivity) and igraph."""

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
    assert cs.counts.loc["components", "input"] == 2 and cs.counts.loc["components", "kept"] == 1


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
    # leave-match-out keeps stayers with two or more rows (KSS; LeaveOutTwoWay; bipartitepandas) and drops the
    # single-row worker: the same sample as leave-obs-out (fails on HEAD 6a07b8d, which dropped every stayer)
    match = network.leave_one_out_set(df, "w", "f", leave_out="match")
    assert 8 in set(match.data["w"]) and 30 not in set(match.data["w"])
    assert match.data.equals(obs.data) and match.leave_out == "match"
    assert network.leave_one_out_set(df, "w", "f", leave_out="worker").data.equals(match.data)  # alias
    # the movers-only sample of earlier versions, under its own name: every single-match worker goes
    movers_only = network.leave_one_out_set(df, "w", "f", leave_out="match_movers")
    assert set(movers_only.data["w"]) == {1, 2, 3}
    assert movers_only.ledger["step"].str.startswith("single-match workers").any()


def test_movers_and_summary():
    df = panel(BASE)
    mv = network.movers(df, "w", "f").set_index("w")
    assert mv.loc[8, "mover"] == False and mv.loc[7, "mover"] == True and mv.loc[8, "n_obs"] == 3  # noqa: E712
    s = network.summarize(df, "w", "f")
    assert s["workers"] == 11 and s["firms"] == 8 and s["movers"] == 9 and s["components"] == 2


def test_bad_input_names_column_and_ids():
    df = panel(BASE)
    df.loc[3, "f"] = None
    with pytest.raises(ValueError, match=r"table 'data', column 'f': 1 missing.*\(e\.g\. w \[2\]\)"):
        network.connected_set(df, "w", "f")
    with pytest.raises(KeyError, match=r"column 'firm': no column\(s\) \['firm'\]"):
        network.connected_set(panel(BASE), "w", "firm")
    with pytest.raises(ValueError, match="leave_out"):
        network.connected_set(panel(BASE), "w", "f", leave_out="year")


def test_movers_per_firm_counts_distinct_movers_with_zeros():
    import pandas as pd

    from prosperity import network

    df = pd.DataFrame({"w": [1, 1, 2, 2, 2, 3, 4], "f": ["a", "b", "a", "a", "c", "c", "d"]})
    mpf = network.movers_per_firm(df, "w", "f")
    assert mpf.to_dict() == {"a": 2, "b": 1, "c": 1, "d": 0}


# ---------------------------------------------------------------------------------------------------------------
# the leave-one-out connected set against its brute-force definition


def test_parallel_movers_between_the_same_two_firms_are_not_articulation_points():
    # the two triangles are joined by two workers with the SAME pair of firms (C, D): parallel edges, so neither
    # worker alone disconnects anything; with one of them only, it is an articulation worker
    sp = dict(BASE)
    sp[12] = ["D", "C"]
    lo = network.leave_one_out_set(panel(sp), "w", "f")
    assert set(lo.data["f"]) == set("ABCDEF") and {7, 12} <= set(lo.data["w"])
    assert not lo.ledger["step"].str.startswith("articulation").any()
    assert 7 not in set(network.leave_one_out_set(panel(BASE), "w", "f").data["w"])


def test_three_firm_workers_articulation_or_not():
    # worker 40 works at A, B and P; P is reached by nobody else: 40 is an articulation worker (P hangs on it)
    sp = dict(BASE)
    del sp[7]
    sp[40] = ["A", "B", "P"]
    sp[41] = ["P", "P"]
    lo = network.leave_one_out_set(panel(sp), "w", "f")
    assert 40 not in set(lo.data["w"]) and "P" not in set(lo.data["f"])
    # worker 42 works at A, B and C, all linked without it: not an articulation worker
    sp2 = dict(BASE)
    del sp2[7]
    sp2[42] = ["A", "B", "C"]
    lo2 = network.leave_one_out_set(panel(sp2), "w", "f")
    assert 42 in set(lo2.data["w"]) and set(lo2.data["f"]) == set("ABC")


def test_articulation_appears_after_a_removal():
    # 50 (A, B, P) and 51 (A, B) are the only links between A and B; P hangs on 50. Round 1 removes 50 (P goes),
    # which leaves 51 as the only link between A and B: round 2 removes it
    df = panel({50: ["A", "B", "P"], 51: ["A", "B"], 52: ["A", "Q"], 53: ["Q", "A"], 54: ["B", "B"],
                55: ["A", "A", "A"], 56: ["P", "P"]})
    lo = network.leave_one_out_set(df, "w", "f")
    steps = lo.ledger["step"].tolist()
    assert "articulation workers, round 1" in steps and "articulation workers, round 2" in steps
    assert set(lo.data["w"]) == {52, 53, 55} and set(lo.data["f"]) == {"A", "Q"}
    assert lo.ledger["dropped"].sum() == len(df) - len(lo.data)


def test_nothing_dropped_returns_the_input_frame():
    df = panel({1: ["A", "B"], 2: ["B", "A"], 3: ["A", "A"], 4: ["B", "B"]})
    assert network.connected_set(df, "w", "f", leave_out="obs").data is df
    assert network.connected_set(df, "w", "f").data is df


def _brute_components(pairs, workers):
    """Firm components of the network of the given workers (dict firm -> label), by graph search."""
    adj = {}
    for w, f in pairs:
        if w in workers:
            adj.setdefault(("f", f), set()).add(("w", w))
            adj.setdefault(("w", w), set()).add(("f", f))
    label, k = {}, 0
    for start in adj:
        if start in label:
            continue
        stack = [start]
        label[start] = k
        while stack:
            x = stack.pop()
            for y in adj[x]:
                if y not in label:
                    label[y] = k
                    stack.append(y)
        k += 1
    return {f: lab for (kind, f), lab in label.items() if kind == "f"}


def _brute_articulation(pairs, workers):
    """Movers whose removal disconnects the graph of the other movers and all the firms of the movers."""
    firms_of = {}
    for w, f in pairs:
        if w in workers:
            firms_of.setdefault(w, set()).add(f)
    movers = {w for w, fs in firms_of.items() if len(fs) > 1}
    all_firms = set().union(*[firms_of[w] for w in movers]) if movers else set()
    out = set()
    for m in movers:
        rest = movers - {m}
        comp = _brute_components(pairs, rest)
        labels = {comp.get(f, ("alone", f)) for f in all_firms}
        if len(labels) > 1:
            out.add(m)
    return out


def _brute_loo(df, leave_out):
    """The leave-one-out connected set straight from its definition (slow; small networks only)."""
    pairs = list(zip(df["w"], df["f"]))
    n_obs = df.groupby("w").size().to_dict()
    n_match = df.groupby("w")["f"].nunique().to_dict()
    first_row_of_firm = {f: i for i, f in reversed(list(enumerate(df["f"])))}
    keep = set(df["w"])

    def largest(keep):
        comp = _brute_components(pairs, keep)
        rows = {}
        for w, f in pairs:
            if w in keep:
                rows[comp[f]] = rows.get(comp[f], 0) + 1
        first = {}
        for f, c in comp.items():
            first[c] = min(first.get(c, len(df)), first_row_of_firm[f])
        if not rows:
            return set()
        best = min(rows, key=lambda c: (-rows[c], first[c]))
        return {w for w, f in pairs if w in keep and comp[f] == best}

    keep = largest(keep)
    while leave_out is not None:
        ap = _brute_articulation(pairs, keep)
        if ap:
            keep = largest(keep - ap)
            continue
        single = {w for w in keep if (n_match[w] if leave_out == "match_movers" else n_obs[w]) == 1}
        if single:
            keep = largest(keep - single)
            continue
        break
    return keep


def _random_panel(rng):
    n_workers = int(rng.integers(3, 40))
    n_firms = int(rng.integers(2, 15))
    rows = []
    for w in range(n_workers):
        f = int(rng.integers(n_firms))
        for t in range(int(rng.integers(1, 5))):
            if t and rng.random() < 0.35:
                f = int(rng.integers(n_firms))
            rows.append((w, f"F{f}", t))
    df = pd.DataFrame(rows, columns=["w", "f", "t"])
    if rng.random() < 0.5:  # integer firm ids (coded through a lookup table rather than hashed)
        df["f"] = df["f"].str[1:].astype(int)
    return df.iloc[rng.permutation(len(df))].reset_index(drop=True)


@pytest.mark.parametrize("leave_out", [None, "obs", "match", "match_movers"])
def test_leave_one_out_set_matches_brute_force_on_random_networks(leave_out):
    rng = np.random.default_rng(11)
    n_pruned = 0
    for _ in range(150):
        df = _random_panel(rng)
        cs = network.connected_set(df, "w", "f", leave_out=leave_out)
        assert set(cs.data["w"]) == _brute_loo(df, leave_out)
        assert cs.ledger["dropped"].sum() == len(df) - len(cs.data)
        n_pruned += cs.ledger["step"].str.startswith("articulation").any()
        if leave_out is not None and len(cs.data):
            # the defining property: no single worker disconnects the kept firms
            kept = set(cs.data["w"])
            assert not _brute_articulation(list(zip(cs.data["w"], cs.data["f"])), kept)
    if leave_out is not None:
        assert n_pruned > 20  # the random networks do exercise the pruning


def _random_graph(rng):
    n = int(rng.integers(1, 30))
    m = int(rng.integers(0, 2 * n + 1))
    u = rng.integers(0, n, m)
    v = rng.integers(0, n, m)
    kind = rng.integers(4)
    if kind == 0:  # a tree plus a few extra edges
        parent = [int(rng.integers(0, i)) for i in range(1, n)]
        u = np.r_[np.arange(1, n), u[: m // 4]]
        v = np.r_[parent, v[: m // 4]]
    elif kind == 1:  # a cycle with chords
        u = np.r_[np.arange(n), u[: m // 5]]
        v = np.r_[(np.arange(n) + 1) % n, v[: m // 5]]
    return n, u.astype(np.int64), v.astype(np.int64)


def _brute_cut_vertices(n, u, v):
    def n_components(removed):
        adj = {i: set() for i in range(n) if i != removed}
        for a, b in zip(u, v):
            if removed not in (a, b):
                adj[a].add(b)
                adj[b].add(a)
        seen, k = set(), 0
        for s in adj:
            if s not in seen:
                k += 1
                stack = [s]
                seen.add(s)
                while stack:
                    x = stack.pop()
                    for y in adj[x] - seen:
                        seen.add(y)
                        stack.append(y)
        return k

    # a cut vertex: removing it (and its edges) leaves more components than the graph had
    base = n_components(None)
    return {x for x in range(n) if n_components(x) > base}


def test_articulation_points_match_brute_force_and_igraph():
    # random graphs with self-loops, parallel edges, isolated vertices and several components
    ig = pytest.importorskip("igraph")
    rng = np.random.default_rng(5)
    for _ in range(400):
        n, u, v = _random_graph(rng)
        got = set(np.flatnonzero(network._articulation_points(n, u, v)).tolist())
        assert got == _brute_cut_vertices(n, u, v), (n, u.tolist(), v.tolist())
        g = ig.Graph(n=n, edges=list(zip(u.tolist(), v.tolist())))
        assert got == set(g.articulation_points())
    # a larger sparse graph (deep breadth-first tree, many blocks) against igraph
    n = 3000
    u = rng.integers(0, n, 3300)
    v = (u + rng.integers(1, 40, u.size)) % n
    got = np.flatnonzero(network._articulation_points(n, u, v))
    g = ig.Graph(n=n, edges=list(zip(u.tolist(), v.tolist())))
    assert got.tolist() == sorted(g.articulation_points()) and got.size > 50


@pytest.mark.parametrize("ids", ["int", "str", "large_int"])
def test_tie_between_components_goes_to_the_firm_seen_first(ids):
    # two components with the same number of rows; firm 20 appears first in the data although 10 sorts first
    df = pd.DataFrame({"w": [7, 7, 8, 8, 3, 3, 4, 4], "f": [20, 21, 21, 20, 10, 11, 11, 10]})
    if ids == "str":
        df["f"] = df["f"].astype(str)
    elif ids == "large_int":  # hashed, not through the lookup table
        df["f"] = df["f"] + 10**12
    cs = network.connected_set(df, "w", "f")
    assert set(cs.data["w"]) == {7, 8}
    assert network.connected_set(df.iloc[::-1], "w", "f").data["w"].isin([3, 4]).all()


def test_connected_set_is_a_result_with_counts_and_a_text_summary():
    # HEAD 6a07b8d: ConnectedSet.summary was a DataFrame field and the class was not a Result
    from prosperity._results import Result

    cs = network.leave_one_out_set(panel(BASE), "w", "f")
    assert isinstance(cs, Result) and isinstance(cs.counts, pd.DataFrame)
    assert list(cs.counts.columns) == ["input", "kept"] and cs.counts.loc["workers", "input"] == 11
    text = cs.summary()
    assert "leave-one-out connected set (leave_out='obs', pruning='kss')" in text and "workers: 4 kept of 11" in text
    assert text in repr(cs)
    assert cs.table is cs.ledger and cs.to_frame().equals(cs.ledger) and cs.to_frame() is not cs.ledger


@pytest.mark.parametrize("leave_out", [None, "obs", "match_movers"])
def test_prune_on_integer_codes_is_the_kernel_of_connected_set(leave_out):
    # the integer kernel used by akm.fit: same kept workers, ledger and counts as the DataFrame API, for any coding
    rng = np.random.default_rng(4)
    for _ in range(30):
        df = _random_panel(rng)
        cs = network.connected_set(df, "w", "f", leave_out=leave_out)
        wc, wid = pd.factorize(df["w"], sort=True)
        fc, fid = pd.factorize(df["f"], sort=True)
        pr = network.prune(wc.astype(np.int32), fc.astype(np.int32), len(wid), len(fid), leave_out)
        assert set(wid[pr.keep]) == set(cs.data["w"])
        assert pr.ledger.equals(cs.ledger) and pr.counts.equals(cs.counts) and pr.iterations == cs.iterations


def test_match_pruning_keeps_the_connected_part_of_an_articulation_workers_history():
    # worker 40 works at A, B and P; P (with stayer 41) hangs on 40 alone. The KSS rule drops 40 whole; the
    # bipartitepandas rule (pruning="matches") cuts only the bridge match (40, P): 40 keeps her rows at A and B
    sp = dict(BASE)
    del sp[7]
    sp[40] = ["A", "B", "P"]
    sp[41] = ["P", "P"]
    df = panel(sp)
    kss = network.leave_one_out_set(df, "w", "f")
    assert 40 not in set(kss.data["w"]) and kss.pruning == "kss"
    m = network.connected_set(df, "w", "f", leave_out="obs", pruning="matches")
    assert set(m.data.loc[m.data["w"] == 40, "f"]) == {"A", "B"} and "P" not in set(m.data["f"])
    assert set(m.data["w"]) == set(kss.data["w"]) | {40} and len(m.data) == len(kss.data) + 2
    assert m.ledger["step"].str.startswith("articulation matches").any() and "pruning='matches'" in m.summary()
    assert m.ledger["dropped"].sum() == len(df) - len(m.data)
    # the only link between the two triangles (worker 7: C, D) has two bridge matches: she keeps her C row, the
    # side with more rows, and then goes as a single-observation worker: the same sample as the KSS rule
    both = network.connected_set(panel(BASE), "w", "f", leave_out="obs", pruning="matches")
    assert set(both.data["w"]) == {1, 2, 3, 8}
    assert "single-observation workers, round 2" in both.ledger["step"].tolist()
    with pytest.raises(ValueError, match="pruning"):
        network.connected_set(df, "w", "f", leave_out="obs", pruning="spells")


def _brute_bridges(pairs):
    """Distinct (worker, firm) matches of movers whose removal disconnects the firms of the kept rows."""
    firms_of = {}
    for w, f in pairs:
        firms_of.setdefault(w, set()).add(f)
    all_firms = {f for _, f in pairs}
    out = set()
    for w, fs in firms_of.items():
        if len(fs) < 2:
            continue
        for f in fs:
            rest = [(a, b) for a, b in pairs if (a, b) != (w, f)]
            comp = _brute_components(rest, {a for a, _ in rest})
            if len({comp.get(x, ("alone", x)) for x in all_firms}) > 1:
                out.add((w, f))
    return out


def test_match_pruning_leaves_no_bridge_on_random_networks():
    rng = np.random.default_rng(21)
    n_cut = n_more = 0
    for _ in range(120):
        df = _random_panel(rng)
        m = network.connected_set(df, "w", "f", leave_out="obs", pruning="matches")
        kss = network.connected_set(df, "w", "f", leave_out="obs")
        assert m.ledger["dropped"].sum() == len(df) - len(m.data)
        n_cut += m.ledger["step"].str.startswith("articulation matches").any()
        if len(m.data):
            pairs = list(zip(m.data["w"], m.data["f"]))
            assert not _brute_bridges(pairs)  # the defining property: no single match disconnects the firms
            assert len(set(_brute_components(pairs, set(m.data["w"])).values())) == 1
            assert m.data.groupby("w").size().min() >= 2  # the worker rule still holds
        n_more += len(m.data) > len(kss.data)
    assert n_cut > 20 and n_more > 10  # the rule is exercised, and often keeps more rows than the KSS rule

"""The data-source switch (``prosperity.source``): synthetic by default, a real extract with the truth cells skipped.

Covers: ``load("synthetic")`` is ``synthetic.england`` with the same arguments; an extract folder of raw tables
(written from a synthetic world, without its truth) loads with ``truth`` None, links to the same panel, and makes the
``%%truth`` / ``%%synthetic`` / ``%%microdata`` cells skip; a broken extract is refused with ``check_extract``'s
report naming the table and column; ``PROSPERITY_DATA`` sets the default; bad values give clear errors; and every
chapter starts with the switch and marks every cell that reads the truth.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from prosperity import _checks, link, source, synthetic

SMALL = dict(size="workshop", seed=3, years=(2015, 2017), n_workers=2500)
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def world():
    return synthetic.england(**SMALL)


@pytest.fixture(scope="module")
def extract(world, tmp_path_factory):
    """A real-extract folder: the raw tables only, one Parquet file each (no truth, no manifest)."""
    d = tmp_path_factory.mktemp("extract")
    for name, df in world.tables.items():
        df.to_parquet(d / f"{name}.parquet", index=False)
    return d


@pytest.fixture()
def shell():
    sh = InteractiveShell.instance()
    assert source.register_magics(sh)
    return sh


def test_synthetic_load_is_synthetic_england(world):
    se = source.load("synthetic", **SMALL)
    assert se.is_synthetic and se.location == "synthetic" and se.world is not None and se.check is None
    assert list(se.tables) == list(world.tables)
    for name, df in world.tables.items():
        pd.testing.assert_frame_equal(se.tables[name], df)
    assert se.truth.variance == world.truth.variance
    pd.testing.assert_frame_equal(se.truth.person_years, world.truth.person_years)
    pd.testing.assert_frame_equal(se.describe(), world.describe())
    ov = se.overview()
    assert ov.loc["jobs", "rows"] == len(world.tables["jobs"])
    assert ov.loc["jobs", "columns"] == ", ".join(world.tables["jobs"].columns)
    assert "truth known" in se.summary()


def test_extract_folder_loads_without_truth_and_links_the_same(world, extract):
    real = source.load(extract)
    assert not real.is_synthetic and real.truth is None and real.world is None
    assert real.location == str(extract) and real.check.ok
    assert set(real.tables) == set(world.tables) and all(isinstance(p, Path) for p in real.tables.values())
    pd.testing.assert_frame_equal(real.read("cpi"), world.tables["cpi"])
    ov = real.overview()
    assert ov.loc["jobs", "rows"] == len(world.tables["jobs"])
    assert ov.loc["jobs", "columns"] == ", ".join(world.tables["jobs"].columns)
    assert (real.describe()["rows"].to_numpy() == ov["rows"].to_numpy()).all()
    assert "no truth" in real.summary()
    # size and seed are ignored on a real extract (the same chapter line works); the linked panel is the same
    assert source.load(extract, size="research", seed=9).truth is None
    pd.testing.assert_frame_equal(link.build_panel(real).workers, link.build_panel(world).workers)
    with pytest.raises(_checks.InputError, match="no table 'pay_periods'"):
        real.read("pay_periods")


def test_synthetic_folder_keeps_its_truth(world, tmp_path):
    world.to_parquet(tmp_path / "england")
    se = source.load(tmp_path / "england")
    assert se.is_synthetic and se.truth.variance == world.truth.variance


def test_truth_cells_run_on_synthetic_and_skip_on_real(world, extract, shell, capsys):
    syn = source.load("synthetic", **SMALL)
    real = source.load(extract)  # loaded last: the magics' default
    shell.user_ns.update(syn=syn, real=real)
    shell.user_ns.pop("x", None)
    for kind in source.MAGICS:
        res = shell.run_cell(f"%%{kind}\nx = 1\nx + 1")
        assert res.success and res.result is None and "x" not in shell.user_ns
        out = capsys.readouterr().out
        assert out.count("\n") == 1 and f"skipped on real data, {extract}] %%{kind}" in out
    # the named source: runs, the last expression is the cell's value, a failing assert fails the cell
    res = shell.run_cell("%%truth syn\nx = len(syn.truth.person_years)\nx + 1")
    assert res.success and res.result == len(world.truth.person_years) + 1 and shell.user_ns["x"] == res.result - 1
    res = shell.run_cell("%%truth syn\nassert x < 0, 'a truth check that fails'")
    assert isinstance(res.error_in_exec, AssertionError)
    res = shell.run_cell("%%synthetic syn\ny = 2;")
    assert res.success and res.result is None and shell.user_ns["y"] == 2
    res = shell.run_cell("%%microdata real\ny = 3")
    assert shell.user_ns["y"] == 2
    res = shell.run_cell("%%truth nothing_here\nx = 0")
    assert isinstance(res.error_in_exec, _checks.InputError)


def test_run_cell_directly(world, extract, capsys):
    syn = source.load("synthetic", **SMALL)
    ns = {"syn": syn}
    assert source.run_cell("truth", "syn", "a = 2\na * 3", ns) == 6 and ns["a"] == 2
    real = source.load(extract)
    ns = {"real": real}
    assert source.run_cell("truth", "", "a = 2\na * 3", ns) is None and "a" not in ns
    assert "skipped on real data" in capsys.readouterr().out
    with pytest.raises(_checks.InputError, match="unknown cell kind"):
        source.run_cell("truths", "", "a = 1", ns)


def test_broken_extract_is_refused_naming_table_and_column(world, tmp_path):
    for name, df in world.tables.items():
        df = df.drop(columns="gpay") if name == "jobs" else df
        df.to_parquet(tmp_path / f"{name}.parquet", index=False)
    with pytest.raises(_checks.InputError) as err:
        source.load(tmp_path)
    assert (err.value.table, err.value.column) == ("jobs", "gpay")
    msg = str(err.value)
    assert "would fail to link" in msg and "column 'gpay' missing" in msg and "ExtractCheck (ashe): will fail" in msg


def test_environment_variable_sets_the_default(extract, monkeypatch):
    monkeypatch.setenv(source.ENV, str(extract))
    assert source.default() == str(extract)
    assert source.load().location == str(extract)
    monkeypatch.setenv(source.ENV, "")
    assert source.default() == "synthetic"
    monkeypatch.delenv(source.ENV)
    assert source.default() == "synthetic"


def test_bad_data_values(extract, tmp_path):
    with pytest.raises(_checks.InputTypeError, match="data must be 'synthetic' or the path"):
        source.load(42)
    with pytest.raises(TypeError):
        source.load(True)
    with pytest.raises(_checks.InputError, match="does not exist"):
        source.load(tmp_path / "no_such_extract")
    with pytest.raises(_checks.InputError, match="empty string"):
        source.load("  ")
    (tmp_path / "a_file.parquet").write_text("x")
    with pytest.raises(_checks.InputError, match="is a file, not a folder"):
        source.load(tmp_path / "a_file.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(_checks.InputError, match="no Parquet table"):
        source.load(tmp_path / "empty")
    with pytest.raises(_checks.InputError, match=r"\['firm_sort'\] describe a synthetic world"):
        source.load(extract, firm_sort=0.6)
    with pytest.raises(_checks.InputError, match="profile must be one of"):
        source.load("synthetic", profile="idbr")


def test_register_magics_outside_ipython():
    # pytest runs without an IPython shell unless a test made one: with an explicit shell it always works
    assert source.register_magics(InteractiveShell.instance())


# ---------------------------------------------------------------------------------------------------------------
# The chapters
# ---------------------------------------------------------------------------------------------------------------

SWITCH = 'DATA = os.environ.get("PROSPERITY_DATA", "synthetic")'
CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```$", re.M | re.S)


def _code_cells(path: Path) -> list[tuple[list[str], str]]:
    """(tags, code) of every code cell of a MyST chapter (option lines removed from the code)."""
    out = []
    for m in CELL.finditer(path.read_text()):
        lines = m.group(1).split("\n")
        opts = [ln for ln in lines if ln.startswith(":")]
        tags = next((re.findall(r"[\w-]+", o.split(":", 2)[2]) for o in opts if o.startswith(":tags:")), [])
        out.append((tags, "\n".join(ln for ln in lines if not ln.startswith(":"))))
    return out


CHAPTERS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.md"))


def test_every_chapter_is_listed_including_06_and_11():
    names = [p.name[:2] for p in CHAPTERS]
    assert {"06", "11"} <= set(names) and len(names) >= 14, names


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_starts_with_the_switch(path):
    """The first code cell a reader sees (not removed) holds the switch and loads the source with it."""
    visible = [code for tags, code in _code_cells(path) if "remove-cell" not in tags]
    assert visible, path
    first = visible[0]
    assert SWITCH in first and "source.load(DATA" in first, (
        f"{path.name}: the first visible code cell must set {SWITCH} and call source.load(DATA, ...)")
    assert "synthetic.england(" not in first, f"{path.name}: load the data through source.load, not synthetic.england"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_truth_cell_is_marked(path):
    """A code cell that reads the truth (``se.truth``, ``truth.<field>``) starts with a magic, or guards the read with
    ``is_synthetic``; ``truth = se.truth`` in the set-up is allowed (None on real data)."""
    unmarked = []
    for _, code in _code_cells(path):
        if code.lstrip().startswith("%%"):
            continue
        body = "\n".join(ln for ln in code.split("\n") if not re.match(r"^\s*truth\s*=\s*\w+\.truth\s*(#.*)?$", ln))
        if re.search(r"\.truth\b|\btruth\.\w", body) and "is_synthetic" not in body:
            unmarked.append(code.split("\n")[0][:80])
    assert not unmarked, f"{path.name}: cells reading the truth without %%truth: {unmarked}"

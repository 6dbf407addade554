"""The participants' pack runs: every chapter as a Jupyter notebook, executed cell by cell, shows its figures and
has no MyST markup left in its prose (issue 18).

Marked ``pack``: ``make pack`` runs it after the book build (``make test`` does both), so the glued numbers come
from the book's executed chapters in ``_build/jupyter_execute``; run alone, it executes each chapter first.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.pack


def _tool():
    spec = importlib.util.spec_from_file_location("workshop_tool", ROOT / "tools" / "workshop.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    tool = _tool()
    out = tmp_path_factory.mktemp("pack")
    return tool, tool.write_notebooks(ROOT / "notebooks", out)


def test_pack_has_every_chapter(pack):
    tool, written = pack
    assert [p.stem for p in written] == [p.stem for p in tool.chapters(ROOT / "notebooks")]
    assert len(written) >= 12


@pytest.mark.parametrize("stem", [p.stem for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.md"))])
def test_pack_notebook_runs_and_shows_every_figure(pack, stem):
    import nbformat
    from nbclient import NotebookClient

    tool, written = pack
    path = next(p for p in written if p.stem == stem)
    nb = nbformat.read(path, as_version=4)
    renderer = tool._pack_renderer()
    assert renderer.leftover_markup(nb) == [], "MyST markup left in the prose"
    expected = sum(renderer.image_attachments(c) for c in nb.cells if c.cell_type == "markdown")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    shown = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))
    assert shown >= expected, f"{stem}: {shown} figures displayed, {expected} in the prose"

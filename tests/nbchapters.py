"""Pytest plugin that runs the book's chapters (jupytext MyST-Markdown notebooks) as tests.

nbval only collects ``.ipynb`` files. Chapters are kept in git as ``.md`` text notebooks, so this plugin
reads them with :func:`jupytext.read` and hands them to nbval's own notebook collector: nothing is
written to disk, the kernel runs in the chapter's folder (as in the book build), and a failing cell
reads ``notebooks/05_x.md::Cell 7`` with its source and traceback. Assertions in cells are the tests.

A chapter whose cells take longer than ``--chapter-timeout`` seconds in total (default 120) fails with
a final ``chapter time`` item, so slow chapters are caught before they slow the book down.

Use it with ``pytest -p tests.nbchapters --nbval-lax --nbval-current-env notebooks``; the repository's
root ``conftest.py`` loads it already.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from nbval.plugin import IPyNbFile

DEFAULT_CHAPTER_TIMEOUT = 120.0


def pytest_addoption(parser):
    group = parser.getgroup("chapters", "executable chapters (jupytext .md)")
    group.addoption(
        "--chapter-timeout",
        action="store",
        type=float,
        default=DEFAULT_CHAPTER_TIMEOUT,
        help="fail a chapter whose cells take longer than this many seconds in total (default 120)",
    )


def _is_text_notebook(path: Path) -> bool:
    """A MyST-Markdown file with a jupytext header naming a kernel is an executable chapter."""
    if path.suffix != ".md":
        return False
    with open(path, encoding="utf-8") as fh:
        head = fh.read(2000)
    return head.startswith("---") and "jupytext" in head and "kernelspec" in head


def pytest_collect_file(file_path, parent):
    opt = parent.config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)):
        return None
    if _is_text_notebook(Path(file_path)):
        return TextNotebookFile.from_parent(parent, path=file_path)
    return None


class TextNotebookFile(IPyNbFile):
    """nbval's notebook collector, fed from a jupytext text notebook, plus a total-time check."""

    def collect(self):
        import jupytext
        import nbformat

        nb = jupytext.read(str(self.path))
        # nbval re-reads the file with nbformat inside collect(); give it the converted notebook instead.
        original_read = nbformat.read
        try:
            nbformat.read = lambda *args, **kwargs: nb
            items = list(super().collect())
        finally:
            nbformat.read = original_read
        yield from items
        yield ChapterTime.from_parent(self, name="chapter time")

    def setup(self):
        super().setup()
        self.started = time.perf_counter()


class ChapterTime(pytest.Item):
    """Fails when the chapter's cells together took longer than the allowed time."""

    def runtest(self):
        limit = self.config.getoption("chapter_timeout")
        elapsed = time.perf_counter() - self.parent.started
        self.user_properties.append(("chapter_seconds", round(elapsed, 1)))
        if elapsed > limit:
            raise ChapterTooSlow(f"{self.parent.path.name} took {elapsed:.0f} s (limit {limit:.0f} s)")

    def repr_failure(self, excinfo, style=None):
        return str(excinfo.value)

    def reportinfo(self):
        return self.path, None, f"{self.parent.path.name}::chapter time"


class ChapterTooSlow(AssertionError):
    """A chapter exceeded its time budget."""

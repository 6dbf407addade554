"""Every executable page of the book ran, without error, within its time limit, in the book build itself.

``make test`` executes each chapter once in the strict book build (``nb_execution_raise_on_error``: a cell that
raises, an ``assert`` against the truth included, fails the build) and once more in the participants' pack. This
check reads the execution records the build leaves in its jupyter-cache (``_build/.jupyter_cache``) instead of
running the chapters a third time through nbval: every page with a jupytext header must have a record newer than
its source and an execution time under :data:`LIMIT` seconds. ``make chapters`` (nbval, cell by cell) is still
there for reading a failure cell by cell.

Marked ``pack``: ``make pack`` runs it after ``make book-strict``; without a build it fails and says so.
"""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

import pytest

from tests.nbchapters import DEFAULT_CHAPTER_TIMEOUT, _is_text_notebook

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "_build" / ".jupyter_cache"
LIMIT = DEFAULT_CHAPTER_TIMEOUT  # seconds, as for nbval's chapter-time item
pytestmark = pytest.mark.pack

PAGES = sorted(p for d in ("notebooks", "book") for p in (ROOT / d).glob("*.md") if _is_text_notebook(p))


@pytest.fixture(scope="module")
def records():
    from jupyter_cache import get_cache

    if not (CACHE / "global.db").exists():
        pytest.fail(f"no execution records in {CACHE}: run `make book-strict` first (make test does)")
    newest = {}
    for rec in get_cache(str(CACHE)).list_cache_records():
        uri = Path(rec.uri).resolve()
        if uri not in newest or rec.pk > newest[uri].pk:  # the latest record of a page (pks only grow)
            newest[uri] = rec
    return newest


def test_the_book_has_executable_chapters():
    assert len([p for p in PAGES if p.parent.name == "notebooks"]) >= 14


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_page_was_executed_within_its_time_limit(records, page):
    rec = records.get(page.resolve())
    assert rec is not None, f"{page.relative_to(ROOT)}: no execution record in the book build"
    created = rec.created.replace(tzinfo=timezone.utc)  # jupyter-cache stores naive UTC; set once per build process
    assert created.timestamp() >= page.stat().st_mtime - 1, (
        f"{page.relative_to(ROOT)}: the execution record predates the file (stale build: run make book-strict)")
    seconds = rec.data.get("execution_seconds")
    assert seconds is not None, f"{page.relative_to(ROOT)}: the record has no execution time"
    assert seconds < LIMIT, f"{page.relative_to(ROOT)}: executed in {seconds:.1f} s, limit {LIMIT:.0f} s"

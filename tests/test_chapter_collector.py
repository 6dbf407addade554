"""The chapter collector (tests/nbchapters.py) must turn a failing assertion in a chapter into a failing test."""

import subprocess
import sys
import os
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HEADER = textwrap.dedent(
    """\
    ---
    jupytext:
      text_representation:
        extension: .md
        format_name: myst
        format_version: 0.13
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---

    # A tiny chapter
    """
)


def _chapter(cells):
    body = "".join(f"\n```{{code-cell}} ipython3\n{src}\n```\n" for src in cells)
    return HEADER + body


def _run(tmp_path, *args):
    cmd = [sys.executable, "-m", "pytest", "-p", "tests.nbchapters", "--nbval-lax", "--nbval-current-env",
           "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


def test_failing_assertion_fails_the_chapter(tmp_path):
    (tmp_path / "01_broken.md").write_text(_chapter(["x = 1 + 1", "assert x == 3, 'recovered value is wrong'"]))
    res = _run(tmp_path, "01_broken.md")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "01_broken.md::Cell 1" in out
    assert "recovered value is wrong" in out
    assert "1 failed" in out


def test_passing_chapter_passes_and_is_timed(tmp_path):
    (tmp_path / "02_fine.md").write_text(_chapter(["x = 1 + 1", "assert x == 2"]))
    res = _run(tmp_path, "02_fine.md")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "3 passed" in out  # two cells and the chapter-time check


def test_slow_chapter_fails(tmp_path):
    (tmp_path / "03_slow.md").write_text(_chapter(["import time; time.sleep(2)"]))
    res = _run(tmp_path, "03_slow.md", "--chapter-timeout", "1")
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert "03_slow.md took" in out


def test_plain_markdown_is_not_collected(tmp_path):
    (tmp_path / "README.md").write_text("# Not a chapter\n\n```python\nassert False\n```\n")
    res = _run(tmp_path, ".")
    assert res.returncode == 5, res.stdout + res.stderr  # pytest: no tests collected

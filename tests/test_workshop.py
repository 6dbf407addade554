"""tools/workshop.py builds the participants' pack: notebooks keep the exercises and lose the solutions."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHAPTER = '''---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
    jupytext_version: 1.19.6
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

(ch-test)=
# A test chapter

```{code-cell} ipython3
x = 41
```

:::{exercise}
:label: ex-one

Add one to `x`.
:::

:::{solution} ex-one
:class: dropdown

SECRET-ONE: `x + 1` is 42.
:::

````{exercise}
:label: ex-two

What is the answer?
````

````{solution} ex-two
:class: dropdown

SECRET-TWO, with a nested block:

```python
print("SECRET-NESTED")
```
````

```{exercise-start}
:label: ex-three
```

Compute the square of `x`.

```{exercise-end}
```

```{solution-start} ex-three
:class: dropdown
```

SECRET-THREE text inside the gated solution.

```{code-cell} ipython3
print("SECRET-CODE", x ** 2)
```

```{solution-end}
```

```{code-cell} ipython3
:tags: [remove-cell]
assert x ** 2 == 1681  # SECRET-CHECK of the solution, hidden in the book
```

## After the exercises

```{code-cell} ipython3
y = x + 1
```
'''


def _load_tool():
    spec = importlib.util.spec_from_file_location("workshop_tool", ROOT / "tools" / "workshop.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _text(nb_path: Path) -> str:
    nb = json.loads(nb_path.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"])


def test_solutions_are_removed_and_exercises_kept(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "99_test.md").write_text(CHAPTER)
    out = tmp_path / "pack"
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "workshop.py"), "--out", str(out), "--notebooks",
                          str(notebooks), "--no-data", "--no-wheel", "--no-zip"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    nb_path = out / "notebooks" / "99_test.ipynb"
    text = _text(nb_path)
    assert "SECRET" not in text
    assert "{solution" not in text
    for kept in ("ex-one", "ex-two", "ex-three", "Add one to `x`", "What is the answer?", "Compute the square",
                 "x = 41", "y = x + 1", "After the exercises"):
        assert kept in text, kept
    nb = json.loads(nb_path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) == 2 and all(c["outputs"] == [] for c in code)
    assert "README.md" in {p.name for p in out.iterdir()}


def test_unclosed_solution_is_an_error():
    tool = _load_tool()
    import jupytext

    broken = CHAPTER.replace("```{solution-end}\n```\n", "")
    with pytest.raises(ValueError, match="never closed"):
        tool.strip_solutions(jupytext.reads(broken, fmt="md:myst"))


def test_book_chapters_strip_cleanly():
    """Every chapter in the book goes through the stripper with no solution left and every exercise kept."""
    tool = _load_tool()
    import jupytext

    chapters = tool.chapters(ROOT / "notebooks")
    if not chapters:
        pytest.skip("no chapters yet")
    for p in chapters:
        nb = jupytext.read(p)
        stripped = tool.strip_solutions(nb)
        before = sum(c.source.count("{exercise") for c in nb.cells)
        after = sum(c.source.count("{exercise") for c in stripped.cells)
        assert after == before, p.name

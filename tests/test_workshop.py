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
    for kept in ("**Exercise 1**", "**Exercise 2**", "**Exercise 3**", "Add one to `x`", "What is the answer?",
                 "Compute the square", "x = 41", "y = x + 1", "After the exercises"):
        assert kept in text, kept
    assert "{exercise" not in text and ":label:" not in text  # MyST markup is rendered for Jupyter
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


HEADER = CHAPTER[:CHAPTER.index("(ch-test)=")]  # the jupytext front matter of a chapter

GLUED = HEADER + """(ch-glued)=
# A chapter with glued numbers

```{code-cell} ipython3
:tags: [remove-cell]
from myst_nb import glue
import matplotlib.pyplot as plt
```

```{code-cell} ipython3
share = 0.123456
glue("share", float(share), display=False)
fig, ax = plt.subplots()
ax.plot([0, 1], [0, share])
glue("fig-line", fig, display=False)
plt.close(fig)
```

The share is {glue:text}`share:.3f`, as {cite:t}`kline2020leave` would compute it; see {numref}`fig-line`
and {ref}`ch-glued` {cite:p}`kline2020leave`.

```{glue:figure} fig-line
:name: fig-line
:alt: A rising line.

A line rising to {glue:text}`share:.2f`.
```

:::{admonition} Note
Nothing here is real.
:::
"""


def test_pack_notebooks_render_glue_figures_citations_and_references(tmp_path):
    """The prose is plain Jupyter Markdown: numbers filled in, the figure attached, citations and references as
    text, no MyST markup left; running the notebook shows the figure inline."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "98_glued.md").write_text(GLUED)
    out = tmp_path / "pack"
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "workshop.py"), "--out", str(out), "--notebooks",
                          str(notebooks), "--no-data", "--no-wheel", "--no-zip"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    nb = json.loads((out / "notebooks" / "98_glued.ipynb").read_text())
    md = [c for c in nb["cells"] if c["cell_type"] == "markdown"]
    text = "\n".join("".join(c["source"]) for c in md)
    assert "The share is 0.123" in text and "A line rising to 0.12" in text
    assert "Kline et al. (2020)" in text and "(Kline et al. 2020)" in text
    assert "*A chapter with glued numbers*" in text
    assert "{" not in text.replace("{glue", "X") and "`share" not in text, text  # no role or directive left
    figs = [c for c in md if "attachments" in c]
    assert len(figs) == 1 and "image/png" in figs[0]["attachments"]["fig-line.png"]
    assert "![A rising line.](attachment:fig-line.png)" in "".join(figs[0]["source"])
    assert "> **Note**" in text
    # run the participant's notebook: the figure is displayed inline
    import nbformat
    from nbclient import NotebookClient

    run = nbformat.read(out / "notebooks" / "98_glued.ipynb", as_version=4)
    NotebookClient(run, timeout=120, kernel_name="python3").execute()
    images = [o for c in run.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1


def test_unresolved_glue_is_an_error(tmp_path):
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "97_bad.md").write_text(GLUED.replace("{glue:text}`share:.3f`", "{glue:text}`nosuch:.3f`"))
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "workshop.py"), "--out", str(tmp_path / "pack"),
                          "--notebooks", str(notebooks), "--no-data", "--no-wheel", "--no-zip"], capture_output=True,
                         text=True)
    assert res.returncode != 0 and "glue:nosuch" in res.stderr

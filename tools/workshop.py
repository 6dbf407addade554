"""Build the workshop participants' pack: chapters without solutions, the data, and set-up instructions.

    .venv/bin/python tools/workshop.py --out workshop          # or: make workshop

The pack (a folder; ``workshop-pack.zip`` inside it holds the same files, to send, unless ``--no-zip``)::

    workshop/
      README.md                      set-up instructions and the day plans' chapter list
      requirements.txt               the pinned environment (same as the book's)
      requirements-lab.txt           the same plus JupyterLab (what participants install)
      prosperity-<version>-py3-none-any.whl   the helper package
      notebooks/NN_name.ipynb        every chapter as a notebook, exercises kept, solutions removed, no outputs;
                                     the prose rendered for Jupyter (numbers and figures filled in, citations and
                                     cross-references as text: book/_ext/notebook_pack.py)
      data/synthetic_england/        the workshop-size synthetic England as Parquet (SyntheticEngland.to_parquet)

Solutions are removed from the jupytext-read chapters: sphinx-exercise ``{solution}`` directives (backtick or
colon fences, any fence length, nested blocks included), gated ``{solution-start}`` ... ``{solution-end}``
blocks with every cell between them, cells tagged ``solution``, and hidden (``remove-cell``/``remove-input``)
cells right after a solution, which test it. ``{exercise}`` blocks stay. The script fails if a solution marker
is left.

The prose's numbers and figures come from the chapter executed once: from the book build's
``_build/jupyter_execute/notebooks/NN_name.ipynb`` when it is newer than the chapter (``make book`` or
``make test`` made it), else by running the chapter here (nbclient, in ``notebooks/``). The script fails if a
glued name, citation or reference cannot be resolved, or if any MyST markup is left in the prose.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ROOT / "_build" / "jupyter_execute" / "notebooks"
ZIP_NAME = "workshop-pack.zip"

_FENCE = re.compile(r"^\s*(`{3,}|:{3,})\s*(\{([\w:-]+)\})?(.*)$")
SOLUTION_MARKERS = ("{solution}", "{solution-start}", "{solution-end}")


class _Stripper:
    """Removes solution blocks from a sequence of cells, carrying the gated state across cells."""

    def __init__(self):
        self.in_gated = False  # between {solution-start} and {solution-end}
        self.after_solution = False  # the last markdown text ended with a removed solution
        self.removed = 0

    def _lines(self, text: str) -> list[str]:
        """Strip one markdown cell's text; updates the gated state."""
        out: list[str] = []
        lines = text.split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            m = _FENCE.match(line)
            name = m.group(3) if m else None
            if m and name in ("solution", "solution-start", "solution-end"):
                end = _block_end(lines, i)
                i = end + 1
                if name == "solution":
                    self.removed += 1
                elif name == "solution-start":
                    self.in_gated = True
                    self.removed += 1
                else:
                    self.in_gated = False
                self.after_solution = True
                continue
            if not self.in_gated:
                out.append(line)
                if line.strip():
                    self.after_solution = False
            i += 1
        return out

    def cell(self, cell) -> bool:
        """Strip a cell in place; return False if the cell should be dropped."""
        if cell.cell_type == "markdown":
            had = cell.source.strip() != ""
            cell.source = "\n".join(self._lines(cell.source)).strip("\n")
            return cell.source.strip() != "" or not had
        if self.in_gated:  # code and raw cells inside a gated solution
            return False
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "solution" in tags:  # a cell tagged as part of a solution
            return False
        if self.after_solution and tags & {"remove-cell", "remove-input"}:
            # a hidden cell right after a solution checks that solution: it would give the answer away
            return False
        self.after_solution = False
        return True


def _block_end(lines: list[str], start: int) -> int:
    """Index of the line closing the fenced block opened at ``start`` (nested fences respected)."""
    stack = []
    m = _FENCE.match(lines[start])
    stack.append((m.group(1)[0], len(m.group(1))))
    for j in range(start + 1, len(lines)):
        m = _FENCE.match(lines[j])
        if not m:
            continue
        char, n = m.group(1)[0], len(m.group(1))
        opener = bool(m.group(2) or m.group(4).strip())
        top_char, top_n = stack[-1]
        if not opener and char == top_char and n >= top_n:
            stack.pop()
            if not stack:
                return j
        elif opener:
            stack.append((char, n))
    raise ValueError(f"unclosed directive block opened at line {start + 1}: {lines[start]!r}")


def strip_solutions(nb):
    """Return a copy of a notebook (nbformat) with every sphinx-exercise solution removed, outputs cleared."""
    import copy

    nb = copy.deepcopy(nb)
    stripper = _Stripper()
    cells = []
    for cell in nb.cells:
        if stripper.cell(cell):
            if cell.cell_type == "code":
                cell.outputs = []
                cell.execution_count = None
            cells.append(cell)
    if stripper.in_gated:
        raise ValueError("a {solution-start} block is never closed by {solution-end}")
    nb.cells = cells
    left = [c.source[:80] for c in nb.cells if any(s in c.source for s in SOLUTION_MARKERS)]
    if left:
        raise ValueError(f"solution markers left after stripping: {left}")
    return nb


def chapters(notebooks: Path) -> list[Path]:
    """The executable chapters (jupytext MyST-Markdown files), in order."""
    out = []
    for p in sorted(notebooks.glob("[0-9][0-9]_*.md")):
        head = p.read_text(encoding="utf-8")[:2000]
        if head.startswith("---") and "jupytext" in head and "kernelspec" in head:
            out.append(p)
    return out


def _pack_renderer():
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    try:
        import notebook_pack
    finally:
        sys.path.pop(0)
    return notebook_pack


def executed_chapter(path: Path, executed_dir: Path | None = EXECUTED, timeout: int = 600) -> dict:
    """The glued values of the chapter at ``path``: from the book build's executed copy if it is newer than the
    chapter, else from running the chapter now."""
    import jupytext

    pack = _pack_renderer()
    if executed_dir is not None:
        built = Path(executed_dir) / (path.stem + ".ipynb")
        if built.exists() and built.stat().st_mtime >= path.stat().st_mtime:
            return pack.read_executed(built)
    from nbclient import NotebookClient

    nb = jupytext.read(path)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
                   ).execute()
    return pack.glue_values(nb)


def write_notebooks(notebooks: Path, out: Path, executed_dir: Path | None = EXECUTED) -> list[Path]:
    """Every chapter as a participant's notebook: solutions removed, prose rendered, no outputs."""
    import jupytext
    import nbformat

    pack = _pack_renderer()
    pages = pack.toc_pages()
    in_book = {q.resolve() for q in pages}
    pages += [p for p in chapters(notebooks) if p.resolve() not in in_book]  # chapters not (yet) in the toc
    bib, labels = pack.bibliography(), pack.book_labels(pages)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for p in chapters(notebooks):
        nb = strip_solutions(jupytext.read(p))
        nb, problems = pack.render_notebook(nb, executed_chapter(p, executed_dir), keep_solutions=False, bib=bib,
                                            labels=labels)
        left = pack.leftover_markup(nb)
        if problems or left:
            raise ValueError(f"{p.name}: could not render for Jupyter: unresolved {problems[:8]}, "
                             f"markup left {left[:5]}")
        target = out / (p.stem + ".ipynb")
        nbformat.write(nb, target)
        written.append(target)
    return written


def write_data(out: Path, seed: int) -> Path:
    from prosperity import synthetic

    data = synthetic.england(size="workshop", seed=seed)
    return Path(data.to_parquet(out / "synthetic_england"))


def build_wheel(out: Path) -> Path:
    """A wheel of the package, built from a clean copy of the sources (no stale build/ or egg-info)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, Path(tmp) / name)
        shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                              "--disable-pip-version-check", tmp, "-w", str(out)], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"building the prosperity wheel failed:\n{res.stderr[-3000:]}")
    return sorted(out.glob("prosperity-*.whl"))[-1]


README = """# People, Firms and Places: workshop pack

This pack has everything for the workshop: the chapters as Jupyter notebooks (exercises included,
solutions removed: they are in the online book), the synthetic England the chapters run on, and the
`prosperity` helper package.

## Set-up (before the day, about 10 minutes)

You need Python 3.11 and about 2 GB of disk space.

```bash
python3.11 -m venv .venv
source .venv/bin/activate            # Windows: .venv\\Scripts\\activate
python -m pip install -r requirements-lab.txt     # the book's pinned set plus JupyterLab
python -m pip install --no-deps {wheel}
python -c "import prosperity; print(prosperity.__version__)"
jupyter lab notebooks/
```

With no internet (e.g. in a training room behind a firewall), ask the organisers for the wheelhouse
(`make wheelhouse` in the book's repository) and install from it:
`python -m pip install --no-index --find-links wheelhouse -r wheelhouse/requirements.txt`.

## The data

`data/synthetic_england/` is the workshop-size synthetic England (seed {seed}) written with
`SyntheticEngland.to_parquet`. Load it in a notebook with

```python
from prosperity import synthetic
england = synthetic.load("../data/synthetic_england")
```

or regenerate the same data with `synthetic.england(size="workshop", seed={seed})`: both give the same tables.
Everything is synthetic: no real person or firm is in it.

## The notebooks

{chapters}

Work through the exercises in each notebook; the solutions are in the online book, under each exercise.
"""


def build(out: Path, *, notebooks: Path = ROOT / "notebooks", data: bool = True, wheel: bool = True,
          seed: int = 0, zip_pack: bool = True, executed_dir: Path | None = EXECUTED) -> Path:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    nbs = write_notebooks(notebooks, out / "notebooks", executed_dir)
    if not nbs:
        raise SystemExit(f"workshop.py: no chapters found in {notebooks}")
    wheel_name = "prosperity-<version>-py3-none-any.whl"
    if wheel:
        wheel_name = build_wheel(out).name
    if data:
        write_data(out / "data", seed)
    for req in ("requirements.txt", "requirements-lab.txt"):
        shutil.copy(ROOT / req, out / req)
    listing = "\n".join(f"- `notebooks/{p.name}`" for p in nbs)
    (out / "README.md").write_text(README.format(wheel=wheel_name, seed=seed, chapters=listing), encoding="utf-8")
    if zip_pack:  # the whole pack in one file to send, inside the (git-ignored) output folder
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            archive = shutil.make_archive(str(Path(tmp) / ZIP_NAME.removesuffix(".zip")), "zip", root_dir=out.parent,
                                          base_dir=out.name)
            shutil.move(archive, out / ZIP_NAME)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="workshop", help="output folder (replaced if it exists)")
    ap.add_argument("--notebooks", default=str(ROOT / "notebooks"), help="folder with the .md chapters")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic England in the pack")
    ap.add_argument("--no-data", action="store_true", help="leave the data out")
    ap.add_argument("--no-wheel", action="store_true", help="leave the package wheel out")
    ap.add_argument("--no-zip", action="store_true", help="do not zip the pack")
    a = ap.parse_args(argv)
    out = build(Path(a.out), notebooks=Path(a.notebooks), data=not a.no_data, wheel=not a.no_wheel, seed=a.seed,
                zip_pack=not a.no_zip)
    n = len(list((out / "notebooks").glob("*.ipynb")))
    print(f"workshop pack: {out} ({n} notebooks{'' if a.no_data else ', data'}{'' if a.no_wheel else ', wheel'})")


if __name__ == "__main__":
    main()

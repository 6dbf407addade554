"""Chapters as plain Jupyter notebooks a reader can run: MyST rendered for Jupyter, numbers and figures filled in.

A chapter is a jupytext MyST-Markdown file whose prose uses MyST roles and directives that only the book build
understands: ``{glue:text}`` numbers, ``{glue:figure}`` figures, ``{cite:t}`` citations, ``{ref}`` /
``{numref}`` / ``{doc}`` cross-references, ``{exercise}`` and ``{admonition}`` blocks. Opened in JupyterLab they
show as markup. :func:`render_notebook` turns a chapter into an ``.ipynb`` whose markdown cells are plain
Jupyter Markdown:

- glued numbers are replaced by their values, formatted as in the book (``myst_nb``'s own formatter), taken from
  the chapter's executed notebook (the book build writes it to ``_build/jupyter_execute``);
- glued figures become images attached to the cell (``attachment:``), with their number and caption;
- citations become "Author (Year)" / "(Author Year)" from ``book/references.bib``; cross-references become the
  referenced title or "Fig. N" (figures numbered through the book in table-of-contents order, as the HTML book
  numbers them);
- exercise, solution and admonition blocks become bold headings and block quotes;
- the chapter's ``from myst_nb import glue`` is replaced by a small ``glue`` that shows figures and tables, so
  that running the notebook displays every figure inline (the book glues them with ``display=False``).

Code cells are kept as they are, without outputs. Used by ``tools/workshop.py`` (the participants' pack, with
solutions removed) and, as a Sphinx extension, to offer each chapter as an ``.ipynb`` download (the theme's
download menu) with solutions kept, as on the page.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GLUE_PREFIX = "application/papermill.record/"

PACK_GLUE = '''def glue(name, value, display=False):
    """In the book, glue() hands a value to the text. In this notebook it shows figures and tables."""
    from IPython.display import display as _show
    if hasattr(value, "savefig") or hasattr(value, "to_html"):
        _show(value)'''

_ROLE = re.compile(r"\{([a-z]+(?::[a-z]*)?)\}`([^`]*)`")
_FENCE = re.compile(r"^(\s*)(`{3,}|:{3,})\s*\{([\w:-]+)\}\s*(.*)$")
_LABEL = re.compile(r"^\(([\w:.-]+)\)=\s*$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")


# ---------------------------------------------------------------------------------------------------------------
# what the prose refers to


def bibliography(path: Path = ROOT / "book" / "references.bib") -> dict[str, tuple[str, str]]:
    """Citation key -> (authors as cited, year): "Card", "Card and Kline", "Card et al."."""
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        last = [" ".join(p.last_names).replace("{", "").replace("}", "") for p in people]
        if not last:
            names = entry.fields.get("institution", entry.fields.get("organization", key)).strip("{}")
        elif len(last) == 1:
            names = last[0]
        elif len(last) == 2:
            names = f"{last[0]} and {last[1]}"
        else:
            names = f"{last[0]} et al."
        out[key.lower()] = (names, str(entry.fields.get("year", "n.d.")))
    return out


def toc_pages(root: Path = ROOT) -> list[Path]:
    """The book's pages in table-of-contents order."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return [root / f"{f}.md" for f in files if (root / f"{f}.md").exists()]


def book_labels(pages: list[Path]) -> tuple[dict[str, str], dict[str, int], dict[str, str]]:
    """(label -> title of the heading it marks, figure name -> book-wide number, page stem -> its title)."""
    titles, figures, docs = {}, {}, {}
    n_fig = 0
    for page in pages:
        lines = page.read_text(encoding="utf-8").split("\n")
        pending = None
        for line in lines:
            m = _LABEL.match(line)
            if m:
                pending = m.group(1)
                continue
            h = _HEADING.match(line)
            if h:
                if page.stem not in docs and h.group(1) == "#":
                    docs[page.stem] = h.group(2)
                if pending:
                    titles[pending] = h.group(2)
                pending = None
                continue
            f = _FENCE.match(line)
            if f and f.group(3) in ("figure", "glue:figure"):
                n_fig += 1
                figures[f"__pending_{n_fig}"] = n_fig
            name = re.match(r"^\s*:name:\s*(\S+)", line)
            if name and f"__pending_{n_fig}" in figures:
                figures[name.group(1)] = figures.pop(f"__pending_{n_fig}")
            if line.strip():
                pending = pending if _LABEL.match(line) else None
    return titles, {k: v for k, v in figures.items() if not k.startswith("__pending_")}, docs


def glue_values(executed) -> dict[str, dict]:
    """Glued name -> its MIME bundle (prefix stripped), from an executed notebook (nbformat) or from the dict a
    book build writes beside it (``_build/jupyter_execute/<page>.glue.json``: myst-nb moves the glued outputs
    there and out of the notebook)."""
    out = {}
    if isinstance(executed, dict) and "cells" not in executed:  # a .glue.json: name -> output
        outputs = executed.values()
    else:
        outputs = (o for cell in executed.cells for o in cell.get("outputs", []))
    for o in outputs:
        name = o.get("metadata", {}).get("scrapbook", {}).get("name")
        if name:
            out[name] = {k.removeprefix(GLUE_PREFIX): v for k, v in o.get("data", {}).items()}
    return out


def read_executed(path: Path) -> dict[str, dict]:
    """The glued values of a chapter the book build executed: from ``<page>.glue.json`` and the notebook."""
    import json

    import nbformat

    path = Path(path)
    glue = glue_values(nbformat.read(path, as_version=4))
    side = path.with_suffix(".glue.json")
    if side.exists():
        glue.update(glue_values(json.loads(side.read_text(encoding="utf-8"))))
    return glue


# ---------------------------------------------------------------------------------------------------------------
# rendering


class _Context:
    def __init__(self, glue: dict, bib: dict, titles: dict, figures: dict, docs: dict, keep_solutions: bool):
        self.glue, self.bib, self.titles, self.figures, self.docs = glue, bib, titles, figures, docs
        self.keep_solutions = keep_solutions
        self.exercises: dict[str, int] = {}
        self.missing: list[str] = []


def _cite(ctx: _Context, keys: str, parenthetical: bool) -> str:
    parts = []
    for k in (s.strip() for s in keys.split(",")):
        names, year = ctx.bib.get(k.lower(), (k, ""))
        if k.lower() not in ctx.bib:
            ctx.missing.append(f"cite:{k}")
        parts.append(f"{names} {year}" if parenthetical else f"{names} ({year})")
    return "(" + "; ".join(parts) + ")" if parenthetical else ", ".join(parts)


def _text_value(ctx: _Context, spec: str) -> str:
    from myst_nb.core.variables import format_plain_text

    key, _, fmt = spec.rpartition(":") if ":" in spec else (spec, "", "s")
    if not key:
        key, fmt = spec, "s"
    data = ctx.glue.get(key)
    if data is None or "text/plain" not in data:
        ctx.missing.append(f"glue:{key}")
        return f"[{key}]"
    return format_plain_text(data["text/plain"], fmt or "s")


def _role(ctx: _Context, m: re.Match) -> str:
    name, body = m.group(1), m.group(2)
    explicit = re.match(r"^(.*\S)\s*<([^>]+)>$", body, flags=re.S)
    text, target = (explicit.group(1), explicit.group(2)) if explicit else (None, body)
    if name in ("glue:text", "glue", "glue:", "glue:any"):
        return _text_value(ctx, body)
    if name == "cite:t":
        return _cite(ctx, body, False)
    if name in ("cite:p", "cite"):
        return _cite(ctx, body, True)
    if name == "numref":
        n = ctx.figures.get(target)
        if n is None:
            ctx.missing.append(f"numref:{target}")
        return text.replace("%s", str(n)) if text else f"Fig. {n}"
    if name == "ref":
        if text:
            return text
        if target not in ctx.titles:
            ctx.missing.append(f"ref:{target}")
        return f"*{ctx.titles.get(target, target)}*"
    if name == "doc":
        if text:
            return text
        return f"*{ctx.docs.get(Path(target).name, Path(target).name)}*"
    if name in ("func", "class", "meth", "mod", "attr", "py:func", "py:class"):
        return f"`{target.lstrip('~')}`"
    if name == "eq":
        return f"equation ({target})"
    if name in ("math",):
        return f"${body}$"
    ctx.missing.append(f"role:{name}")
    return body


def render_roles(ctx: _Context, text: str) -> str:
    return _ROLE.sub(lambda m: _role(ctx, m), text)


def _block_end(lines: list[str], start: int, fence: str) -> int:
    ch, n = fence[0], len(fence)
    depth = 0
    for j in range(start + 1, len(lines)):
        s = lines[j].strip()
        m = _FENCE.match(lines[j])
        if m and m.group(2)[0] == ch:
            depth += 1
            continue
        if s and set(s) == {ch} and len(s) >= n:
            if depth == 0:
                return j
            depth -= 1
    return len(lines) - 1


def render_markdown(ctx: _Context, text: str, attachments: dict) -> str:
    """One markdown cell: directives to plain Markdown, then roles to text."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _FENCE.match(line)
        if _LABEL.match(line):  # (label)= targets mean nothing in Jupyter
            i += 1
            continue
        if not m:
            out.append(line)
            i += 1
            continue
        indent, fence, name, arg = m.groups()
        end = _block_end(lines, i, fence)
        body = lines[i + 1:end]
        opts = {}
        while body and re.match(r"^\s*:[\w-]+:", body[0]):
            k, _, v = body.pop(0).strip()[1:].partition(":")
            opts[k] = v.strip()
        content = "\n".join(body).strip("\n")
        i = end + 1
        if name == "glue:figure":
            key = arg.strip()
            data = ctx.glue.get(key, {})
            n = ctx.figures.get(opts.get("name", key))
            if "image/png" in data:
                fname = f"{key}.png"
                attachments[fname] = {"image/png": data["image/png"]}
                out.append(f"![{opts.get('alt', key)}](attachment:{fname})")
            else:
                ctx.missing.append(f"glue:figure:{key}")
            out += ["", f"*Fig. {n}. {render_markdown(ctx, content, attachments).strip()}*" if n else
                    f"*{render_markdown(ctx, content, attachments).strip()}*"]
        elif name in ("exercise", "exercise-start"):
            num = len(ctx.exercises) + 1
            ctx.exercises[opts.get("label", f"ex-{num}")] = num
            title = f"**Exercise {num}**" + (f" ({arg.strip()})" if arg.strip() else "")
            out += [title, "", render_markdown(ctx, content, attachments)]
        elif name == "solution-start":
            num = ctx.exercises.get(arg.strip(), "")
            out.append(f"**Solution to Exercise {num}**")
            rest = render_markdown(ctx, content, attachments).strip()
            if rest:
                out += ["", rest]
        elif name in ("solution-end", "exercise-end"):
            pass
        elif name == "solution":
            num = ctx.exercises.get(arg.strip(), "")
            out += [f"**Solution to Exercise {num}**", "", render_markdown(ctx, content, attachments)]
        elif name in ("admonition", "note", "tip", "warning", "important", "seealso", "caution", "attention",
                      "hint", "dropdown", "topic"):
            title = arg.strip() or name.capitalize()
            inner = render_markdown(ctx, content, attachments).split("\n")
            out += [f"> **{render_roles(ctx, title)}**", ">"] + [f"> {x}".rstrip() for x in inner]
        elif name in ("math",):
            out += ["$$", content, "$$"]
        elif name in ("figure", "image"):
            out.append(f"![{opts.get('alt', '')}]({arg.strip()})")
            if content:
                out += ["", f"*{render_markdown(ctx, content, attachments).strip()}*"]
        else:  # an unknown directive: keep its content, drop the markup
            ctx.missing.append(f"directive:{name}")
            out.append(render_markdown(ctx, content, attachments))
    return render_roles(ctx, "\n".join(out))


def render_notebook(nb, executed=None, *, keep_solutions: bool = True, bib=None, labels=None):
    """A copy of the chapter notebook ``nb`` (nbformat, as read by jupytext) rendered for Jupyter.

    ``executed``: the executed notebook of the same chapter, or its glued values (a dict from
    :func:`read_executed`), for the numbers and figures. Returns
    ``(notebook, problems)``: ``problems`` lists what could not be resolved (a glued name with no value, a
    reference to an unknown label...), empty when the rendering is complete."""
    import nbformat

    bib = bibliography() if bib is None else bib
    titles, figures, docs = book_labels(toc_pages()) if labels is None else labels
    if executed is None:
        glue = {}
    elif isinstance(executed, dict) and "cells" not in executed:
        glue = executed
    else:
        glue = glue_values(executed)
    ctx = _Context(glue, bib, titles, figures, docs, keep_solutions)
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type == "markdown":
            att: dict = {}
            cell.source = render_markdown(ctx, cell.source, att).strip("\n")
            if att:
                cell["attachments"] = att
        elif cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if "from myst_nb import glue" in cell.source:
                cell.source = cell.source.replace("from myst_nb import glue", PACK_GLUE)
    out.metadata.pop("jupytext", None)
    nbformat.validate(out)
    return out, sorted(set(ctx.missing))


def leftover_markup(nb) -> list[str]:
    """MyST roles or directive fences left in the markdown cells of ``nb`` (empty when fully rendered)."""
    left = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        left += [m.group(0) for m in _ROLE.finditer(cell.source)]
        left += [ln for ln in cell.source.split("\n") if _FENCE.match(ln)]
    return left


def image_attachments(cell) -> int:
    return sum(1 for a in cell.get("attachments", {}).values() if "image/png" in a)


# ---------------------------------------------------------------------------------------------------------------
# Sphinx: an .ipynb download for every executed chapter


def _page_context(app, pagename, templatename, context, doctree):
    if not pagename.startswith("notebooks/"):  # the chapters; executable reference pages stay HTML only
        return
    src = Path(app.srcdir) / f"{pagename}.md"
    executed = Path(app.outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    if not (src.exists() and executed.exists()):
        return
    import jupytext
    import nbformat

    if not hasattr(app, "_pack_labels"):
        app._pack_labels = (bibliography(Path(app.srcdir) / "book" / "references.bib"),
                            book_labels(toc_pages(Path(app.srcdir))))
    bib, labels = app._pack_labels
    nb, problems = render_notebook(jupytext.read(src), read_executed(executed), keep_solutions=True, bib=bib,
                                   labels=labels)
    if problems:
        from sphinx.util import logging

        logging.getLogger(__name__).warning(f"{pagename}.ipynb download: unresolved {problems[:5]}")
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def setup(app):
    app.connect("html-page-context", _page_context, priority=400)  # before the theme's header buttons (501)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


__all__ = ["render_notebook", "leftover_markup", "bibliography", "book_labels", "toc_pages", "glue_values",
           "read_executed",
           "image_attachments", "PACK_GLUE", "setup"]

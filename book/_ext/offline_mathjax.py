"""Serve MathJax from the built book so that equations render without internet access.

MathJax 3.2.2 (the full distribution: TeX input, CommonHTML output and its web fonts) ships inside the
``sphinx-mathjax-offline`` package, pinned in requirements.txt. This extension copies it into
``_build/html/_static/mathjax`` at the end of an HTML build; ``_config.yml`` points ``mathjax_path`` at it.
Nothing is fetched from a CDN, so the book works in workshops and secure research environments.
"""

from __future__ import annotations

import shutil
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path


def _mathjax_source() -> Path:
    try:
        src = Path(distribution("sphinx-mathjax-offline").locate_file("sphinx-mathjax-offline/static/mathjax"))
    except PackageNotFoundError as err:
        raise RuntimeError("offline_mathjax: install sphinx-mathjax-offline (pinned in requirements.txt)") from err
    if not (src / "tex-mml-chtml.js").exists():
        raise RuntimeError(f"offline_mathjax: tex-mml-chtml.js not found in {src}")
    return src


def _copy(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / "mathjax"
    if not (dest / "tex-mml-chtml.js").exists():
        shutil.copytree(_mathjax_source(), dest, dirs_exist_ok=True)


def setup(app):
    _mathjax_source()  # fail early, with a clear message, if the package is missing
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

"""Serve MathJax from the built book so that equations render without internet access.

The MathJax 2.7 distribution ships inside the ``jupyter-server-mathjax`` package (pinned in requirements.txt).
This extension copies it into ``_build/html/_static/mathjax`` at the end of an HTML build; ``_config.yml`` points
``mathjax_path`` at it. Nothing is fetched from a CDN.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def _mathjax_source() -> Path:
    import jupyter_server_mathjax

    src = Path(jupyter_server_mathjax.__file__).parent / "static"
    if not (src / "MathJax.js").exists():
        raise RuntimeError(f"offline_mathjax: MathJax.js not found in {src}")
    return src


def _copy(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    dest = Path(app.outdir) / "_static" / "mathjax"
    if (dest / "MathJax.js").exists():
        return
    src = _mathjax_source()
    shutil.copytree(src, dest, dirs_exist_ok=True)


def setup(app):
    _mathjax_source()  # fail early, with a clear message, if the package is missing
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

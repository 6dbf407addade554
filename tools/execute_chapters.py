"""Execute the book's executable pages in parallel into the build's jupyter-cache, before ``jupyter-book build``.

The book executes its chapters in ``cache`` mode (``_config.yml``: ``execute_notebooks: cache``): for each page,
myst-nb looks the notebook up in ``_build/.jupyter_cache`` by a hash of its code cells and kernel, and executes it
only when no record matches. It executes one page at a time. This script fills the same cache first, running
``--jobs`` pages at once (default: every core), with jupyter-cache's own execution worker and the reader myst-nb
itself uses for MyST text notebooks (``myst_nb_md``), so the records it writes are the ones the build matches: the
build then executes nothing and only renders. Nothing about the build's strictness changes: a page that fails
here is not cached, so the build executes it again itself and fails on it with its usual report
(``nb_execution_raise_on_error``).

Usage: ``python tools/execute_chapters.py [--jobs N] [--cache _build/.jupyter_cache]`` (``make book`` and
``make book-strict`` call it). Prints one line per page: its execution time, or the error it stopped on.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
READ_DATA = {"type": "plugin", "name": "myst_nb_md"}  # what myst-nb passes to jupyter-cache for these pages


def toc_pages(root: Path = ROOT) -> list[Path]:
    """The pages listed in ``_toc.yml`` (root and every ``file:`` entry), as existing ``.md`` paths."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                names.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk({k: v for k, v in toc.items() if k != "root"})
    out = []
    for name in names:
        p = root / name
        p = p if p.suffix else p.with_suffix(".md")
        if p.exists() and p not in out:
            out.append(p)
    return out


def executable_pages(root: Path = ROOT) -> list[Path]:
    """The pages of the table of contents that are MyST text notebooks (the ones the build executes)."""
    from myst_nb.core.read import is_myst_markdown_notebook

    return [p for p in toc_pages(root) if is_myst_markdown_notebook(p.read_text(encoding="utf-8"))]


def _config(root: Path) -> dict:
    cfg = yaml.safe_load((root / "_config.yml").read_text()) or {}
    return cfg.get("execute", {}) or {}


def _run(args):
    """Execute one staged notebook in a worker process; return (uri, status, seconds, message)."""
    cache_path, pk, uri, timeout = args
    from jupyter_cache import get_cache
    from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData

    t0 = time.perf_counter()
    cache = get_cache(cache_path)
    status, _ = ExecutionWorkerLocalMProc()(ProcessData(pk, uri, cache, timeout, False))
    msg = ""
    if status:
        rec = cache.get_project_record(uri)
        msg = (rec.traceback or "").strip().splitlines()[-1:] if rec.traceback else ["(no traceback recorded)"]
        msg = msg[0] if msg else ""
    return uri, status, time.perf_counter() - t0, msg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="pages executed at once (default: cores)")
    ap.add_argument("--cache", default=str(ROOT / "_build" / ".jupyter_cache"))
    args = ap.parse_args(argv)
    if args.jobs < 1:
        ap.error(f"--jobs must be at least 1, got {args.jobs}")
    from jupyter_cache import get_cache

    conf = _config(ROOT)
    if conf.get("execute_notebooks", "cache") != "cache":
        print(f"execute_notebooks is {conf.get('execute_notebooks')!r}, not 'cache': nothing to pre-execute")
        return 0
    timeout = int(conf.get("timeout", 30))
    cache = get_cache(args.cache)
    pages = executable_pages(ROOT)
    staged = [cache.add_nb_to_project(str(p), read_data=READ_DATA) for p in pages]
    # only pages without a matching cached execution (an unchanged rebuild executes nothing)
    todo = [r for r in staged if cache.get_cached_project_nb(r.pk) is None]
    print(f"execute_chapters: {len(pages)} executable pages, {len(todo)} to execute, {args.jobs} at a time")
    if not todo:
        return 0
    # longest first (source size as the proxy), one page per task: the pool stays busy until the end
    todo.sort(key=lambda r: -Path(r.uri).stat().st_size)
    t0 = time.perf_counter()
    failed = []
    work = [(args.cache, r.pk, r.uri, timeout) for r in todo]
    ctx = mp.get_context("spawn")  # fresh interpreters: no state shared with this process
    with ctx.Pool(processes=min(args.jobs, len(work))) as pool:
        for uri, status, secs, msg in pool.imap_unordered(_run, work, chunksize=1):
            rel = os.path.relpath(uri, ROOT)
            if status:
                failed.append(rel)
                print(f"  FAILED {rel} after {secs:.1f} s: {msg}  (the book build re-runs it and reports it)")
            else:
                print(f"  {rel}: {secs:.1f} s")
            sys.stdout.flush()
    print(f"execute_chapters: {len(todo) - len(failed)} executed, {len(failed)} failed, "
          f"{time.perf_counter() - t0:.1f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Atomic output folders with a manifest: a folder is either complete and verified, or refused.

Writers (``link.build_panel(..., output=d)``, ``SyntheticEngland.to_parquet(d)``, ``synthetic.write_population``)
write everything into a temporary folder beside the target (``.<name>.partial-<pid>-<random>``), then write
``manifest.json`` (every file with its size in bytes, its row count for Parquet, its SHA-256; the package version;
the kind of folder; the seed and options given by the writer) and only then swap the folder into place by
renames. An interrupted writer leaves the earlier folder untouched (or no folder) and a ``.partial`` folder that no
reader accepts. Readers call :func:`verify` and refuse a folder without a manifest, with a missing, extra-sized or
edited file, or of another kind.

Private module: the data modules use it; it imports nothing from the package but the version.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
from pathlib import Path

__all__ = ["MANIFEST", "OutputFolderError", "atomic_folder", "write_manifest", "verify", "sha256"]

MANIFEST = "manifest.json"
FORMAT = 1
_FULL_CHECKSUM_BYTES = 256 * 2**20  # files up to this size are re-hashed by verify(checksums="auto")


class OutputFolderError(ValueError):
    """A folder that is not a complete, unmodified output of the expected kind."""


def sha256(path: Path, chunk: int = 2**22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _parquet_rows(path: Path) -> int | None:
    if path.suffix != ".parquet":
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _version() -> str:
    from . import __version__

    return __version__


def write_manifest(folder: Path, kind: str, meta: dict | None = None) -> dict:
    """Describe every file under ``folder`` (recursively, the manifest itself excepted) in ``manifest.json``."""
    folder = Path(folder)
    files = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != MANIFEST:
            rel = p.relative_to(folder).as_posix()
            files[rel] = {"bytes": p.stat().st_size, "rows": _parquet_rows(p), "sha256": sha256(p)}
    man = {"format": FORMAT, "kind": kind, "complete": True, "package_version": _version(),
           "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "meta": meta or {}, "files": files}
    tmp = folder / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(man, indent=1, sort_keys=True, default=str))
    os.replace(tmp, folder / MANIFEST)
    return man


def _swap_in(tmp: Path, target: Path) -> None:
    """Put ``tmp`` at ``target`` by renames (the old folder, if any, is moved aside first, then removed)."""
    old = None
    if target.exists():
        if not target.is_dir():
            raise OutputFolderError(f"{target} exists and is not a folder; refusing to replace it")
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(target, kind: str, meta: dict | None = None):
    """Context manager: yields a temporary folder beside ``target``; on success writes the manifest and swaps it
    into place; on any exception removes it and leaves ``target`` as it was.

    ``meta`` (a dict, JSON-serialisable) is stored in the manifest; the body may add to it before it ends."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")
    tmp.mkdir()
    meta = {} if meta is None else meta
    try:
        yield tmp
        write_manifest(tmp, kind, meta)
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def verify(folder, kind: str | None = None, checksums: str | bool = "auto") -> dict:
    """Check ``folder`` against its manifest and return the manifest; raise :class:`OutputFolderError` otherwise.

    Every listed file must exist with its recorded size (and Parquet row count); no Parquet file may be present
    that the manifest does not list. ``checksums``: ``True`` re-hashes every file, ``"auto"`` the files up to
    256 MiB, ``False`` none (sizes and row counts only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputFolderError(f"{folder}: no such folder")
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise OutputFolderError(f"{folder}: no {MANIFEST}; the folder is incomplete (an interrupted write) or was "
                                "not written by prosperity; write it again")
    try:
        man = json.loads(mpath.read_text())
    except ValueError as exc:
        raise OutputFolderError(f"{folder}/{MANIFEST} is not valid JSON ({exc}); write the folder again") from None
    if not man.get("complete") or not isinstance(man.get("files"), dict):
        raise OutputFolderError(f"{folder}: the manifest does not mark the folder complete")
    if kind is not None and man.get("kind") != kind:
        raise OutputFolderError(f"{folder}: a {man.get('kind')!r} folder, expected {kind!r}")
    bad = []
    for rel, info in man["files"].items():
        p = folder / rel
        if not p.is_file():
            bad.append(f"{rel} missing")
            continue
        if p.stat().st_size != info["bytes"]:
            bad.append(f"{rel} has {p.stat().st_size} bytes, manifest {info['bytes']}")
            continue
        if info.get("rows") is not None:
            try:
                rows = _parquet_rows(p)
            except Exception as exc:  # unreadable Parquet footer
                bad.append(f"{rel} unreadable ({type(exc).__name__})")
                continue
            if rows != info["rows"]:
                bad.append(f"{rel} has {rows} rows, manifest {info['rows']}")
                continue
        if checksums is True or (checksums == "auto" and info["bytes"] <= _FULL_CHECKSUM_BYTES):
            if sha256(p) != info["sha256"]:
                bad.append(f"{rel} was modified after it was written (checksum differs)")
    extra = [p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")
             if p.relative_to(folder).as_posix() not in man["files"]]
    bad += [f"{e} is not in the manifest" for e in extra]
    if bad:
        raise OutputFolderError(f"{folder}: does not match its manifest: " + "; ".join(bad[:5])
                                + ("" if len(bad) <= 5 else f" (+{len(bad) - 5} more)"))
    return man


#: DuckDB's numeric column types (``DECIMAL(p, s)`` too, by its prefix): what an outcome or control must be.
DUCKDB_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "FLOAT", "REAL", "DOUBLE")


def duckdb_numeric(column_type: str) -> bool:
    """Whether a DuckDB column type (as ``DESCRIBE`` prints it) is numeric."""
    return column_type in DUCKDB_NUMERIC or column_type.startswith("DECIMAL")


def duckdb_connect(memory_limit=None, temp_directory=None, threads=None):
    """An in-memory DuckDB connection with the package's settings: insertion order not preserved (joins and
    aggregations may stream), ``memory_limit`` (spilling to ``temp_directory``, created if missing) and
    ``threads`` when given. Shared by the linker and :func:`prosperity.akm.fit_panel`."""
    import duckdb

    config = {"preserve_insertion_order": False}
    if memory_limit is not None:
        config["memory_limit"] = str(memory_limit)
    if threads is not None:
        config["threads"] = int(threads)
    if temp_directory is not None:
        Path(temp_directory).mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    return duckdb.connect(":memory:", config=config)

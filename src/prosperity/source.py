"""The data source of a chapter: the synthetic England (the default) or a real extract, behind one switch.

Every chapter starts with::

    DATA = os.environ.get("PROSPERITY_DATA", "synthetic")  # or the folder of a real extract (Parquet tables)
    se = source.load(DATA, size="workshop", seed=0)

``load("synthetic", ...)`` simulates :func:`prosperity.synthetic.england` with the same arguments and keeps its
``truth``. ``load(folder)`` opens a real extract: a folder of raw tables as Parquet with the names
:func:`prosperity.link.build_panel` reads (``jobs.parquet`` or a ``jobs/`` folder of parts, ``local_units``,
``enterprises``, ``accounts``, ``postcode_lookup``, ``entref_continuity``, ``place_characteristics``, ``cpi``;
the PAYE RTI tables with ``profile="paye_rti"``; columns as in :data:`prosperity.link.TABLE_COLUMNS`, the real
names they stand for in :data:`prosperity.link.REAL_DATA_COLUMNS`). It runs :func:`prosperity.link.check_extract`
first (schemas and a sample only, seconds) and refuses an extract the linker would refuse, with the check's
report. The tables stay on disk (``tables`` maps each name to its Parquet path; ``build_panel`` reads them in
place with DuckDB) and there is no ``truth`` (``None``). The environment variable :data:`ENV`
(``PROSPERITY_DATA``) switches every chapter at once without editing any: the chapters read it, and so does
``load()`` called without a source.

**Cells that only make sense on synthetic data** are marked by a cell magic on their first line, registered by
``load()`` when it runs inside IPython / Jupyter:

- ``%%truth``: the cell compares estimates with the truth of the synthetic world;
- ``%%synthetic``: the cell needs the synthetic world itself (another draw: a DGP variant such as
  ``firm_sort=``, a ``sample="ashe"`` draw, the other delivery format);
- ``%%microdata``: the cell shows rows of microdata (a ``.head()`` of a worker table, one firm's effect) or cells
  no disclosure check has passed; on real data such output must go through :mod:`prosperity.sdc` instead.

On synthetic data the cell runs exactly as without the magic (errors and failed ``assert`` s propagate, the value
of the last expression is shown). On real data it does not run and prints one line saying so and why. A magic
rather than an ``if se.truth is not None:`` block: the code of the cell stays as readers would type it (no extra
indentation, the last expression still displays), the mark is the first thing read, and a test can find every
marked cell. Each magic takes an optional variable name (``%%truth se_rti``) when a chapter loads more than one
source; by default it asks the source loaded last.

A folder written by :meth:`prosperity.synthetic.SyntheticEngland.to_parquet` (it carries a ``manifest.json`` of
kind ``synthetic_england``) is read with :func:`prosperity.synthetic.load`, truth included: it is synthetic.
"""

from __future__ import annotations

import ast
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from . import link, synthetic
from ._checks import InputError, InputTypeError, fail
from ._results import Result

__all__ = ["ENV", "SYNTHETIC", "MAGICS", "DataSource", "load", "default", "register_magics"]

#: The environment variable naming the default data source (``"synthetic"`` or an extract folder).
ENV = "PROSPERITY_DATA"
#: The name of the synthetic source.
SYNTHETIC = "synthetic"
#: The cell magics and the line each prints when it skips a cell on real data.
MAGICS = {
    "truth": "the cell compares estimates with the truth of the synthetic world, which real data do not have",
    "synthetic": "the cell needs the synthetic world itself (another simulated draw, a DGP variant or format)",
    "microdata": "the cell shows microdata rows or unchecked small cells; on real data outputs go through "
                 "prosperity.sdc",
}
#: Arguments of ``synthetic.england`` that a real extract has no use for (ignored there): the size and the seed.
_IGNORED_ON_REAL = ("size", "seed")

_last: list = []  # the source loaded last (the magics' default)


@dataclass(frozen=True, repr=False)
class DataSource(Result):
    """A chapter's data: raw ``tables`` and, on synthetic data only, the ``truth``.

    - ``tables``: ``{table: DataFrame}`` (synthetic) or ``{table: Path}`` (a real extract, read in place by
      :func:`prosperity.link.build_panel`); :meth:`read` gives a DataFrame either way.
    - ``truth``: the :class:`prosperity.synthetic.Truth` of the synthetic world, or ``None``.
    - ``location``: ``"synthetic"`` or the extract folder; ``profile``: ``"ashe"`` or ``"paye_rti"``.
    - ``world``: the :class:`prosperity.synthetic.SyntheticEngland` (synthetic only, else ``None``).
    - ``check``: the :class:`prosperity.link.ExtractCheck` of a real extract (else ``None``).
    - ``meta``: the synthetic world's meta (size, seed, DGP) or ``{}``.

    ``table`` (and ``to_frame()``): :meth:`describe`."""

    tables: dict
    truth: object | None
    location: str
    profile: str = "ashe"
    world: object | None = None
    check: object | None = None
    meta: dict = field(default_factory=dict)

    @property
    def is_synthetic(self) -> bool:
        """True for the synthetic England (the truth is known)."""
        return self.truth is not None

    def read(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Table ``name`` as a DataFrame (from its Parquet file or folder on a real extract)."""
        if name not in self.tables:
            fail(f"no table {name!r} in the data source {self.location!r} (it has {sorted(self.tables)})", name)
        t = self.tables[name]
        if isinstance(t, pd.DataFrame):
            return t[columns].copy() if columns else t
        return pd.read_parquet(t, columns=columns)

    def overview(self) -> pd.DataFrame:
        """Rows and columns of every table, indexed by table name: ``rows`` (int), ``columns`` (comma-separated
        names); read from the Parquet footers on a real extract (no table is loaded)."""
        rows, cols = {}, {}
        for name, t in self.tables.items():
            if isinstance(t, pd.DataFrame):
                rows[name], cols[name] = len(t), ", ".join(t.columns)
            else:
                files = sorted(Path(t).rglob("*.parquet")) if Path(t).is_dir() else [Path(t)]
                rows[name] = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
                cols[name] = ", ".join(pq.ParquetFile(files[0]).schema_arrow.names)
        return pd.DataFrame({"rows": rows, "columns": cols})

    def describe(self) -> pd.DataFrame:
        """Synthetic: :meth:`prosperity.synthetic.SyntheticEngland.describe` (tables, then the truth's headline
        numbers). Real: ``section, name, rows, columns, value`` of every table (:meth:`overview`)."""
        if self.world is not None:
            return self.world.describe()
        o = self.overview()
        return pd.DataFrame({"section": "table", "name": o.index, "rows": o["rows"].to_numpy(),
                             "columns": o["columns"].to_numpy(), "value": float("nan")})

    @property
    def table(self) -> pd.DataFrame:
        """:meth:`describe`."""
        return self.describe()

    def summary(self) -> str:
        if self.is_synthetic:
            return (f"DataSource: synthetic England ({self.meta.get('size')}, seed={self.meta.get('seed')}, "
                    f"profile {self.profile}), {len(self.tables)} tables, truth known")
        return (f"DataSource: real extract {self.location} (profile {self.profile}), {len(self.tables)} tables, "
                f"no truth; extract check: {self.check.verdict}")


def default() -> str:
    """The default data source: the value of ``PROSPERITY_DATA`` if set (and not empty), else ``"synthetic"``."""
    return os.environ.get(ENV) or SYNTHETIC


def _extract_tables(folder: Path) -> dict:
    """``{table: Parquet path}`` of an extract folder: ``{table}.parquet`` files and ``{table}/`` folders of parts,
    or the same under a ``tables/`` subfolder (the folder rule of :func:`prosperity.link.check_extract`)."""
    from .link.extract import _tables_of

    return _tables_of(folder)


def _is_synthetic_folder(folder: Path) -> bool:
    man = folder / "manifest.json"
    if not man.is_file():
        return False
    try:
        return json.loads(man.read_text()).get("kind") == synthetic.KIND
    except (OSError, ValueError):
        return False


def load(data: str | os.PathLike | None = None, *, profile: str = "ashe", size: str = "workshop", seed: int = 0,
         sample_rows: int = 100_000, **synthetic_options) -> DataSource:
    """Open a chapter's data source: ``"synthetic"`` or the folder of a real extract.

    ``data``: ``"synthetic"``, a folder path, or ``None`` for :func:`default` (the ``PROSPERITY_DATA`` environment
    variable, else synthetic). ``profile``: ``"ashe"`` (ASHE / BSD / ABS tables) or ``"paye_rti"`` (PAYE RTI
    tables; ``synthetic.england(source="paye_rti")`` on synthetic data). ``size``, ``seed`` and
    ``synthetic_options`` (``years``, ``sample``, any :class:`prosperity.synthetic.DGP` field) are passed to
    :func:`prosperity.synthetic.england`; on a real extract ``size`` and ``seed`` are ignored and any other option
    is refused (it would describe a synthetic world the extract is not). ``sample_rows``: rows per table read by
    :func:`prosperity.link.check_extract` on a real extract.

    A real extract is checked before anything else; a verdict of ``"will fail"`` raises an ``InputError`` naming the
    first failing table and column, with the whole report (``ExtractCheck.summary()``) in the message. Inside
    IPython, ``load`` registers the ``%%truth``, ``%%synthetic`` and ``%%microdata`` cell magics (module docstring)
    and makes the returned source their default."""
    if data is None:
        data = default()
    if isinstance(data, bool) or not isinstance(data, (str, os.PathLike)):
        fail(f"source.load: data must be {SYNTHETIC!r} or the path of an extract folder, got "
             f"{type(data).__name__} {data!r}", kind=InputTypeError)
    if profile not in synthetic.SOURCES:
        fail(f"source.load: profile must be one of {list(synthetic.SOURCES)}, got {profile!r}")
    if isinstance(data, str) and data.strip() == "":
        fail(f"source.load: data is an empty string; use {SYNTHETIC!r} or the path of an extract folder")
    if isinstance(data, str) and data == SYNTHETIC:
        se = synthetic.england(size=size, seed=seed, source=profile, **synthetic_options)
        out = DataSource(tables=se.tables, truth=se.truth, location=SYNTHETIC, profile=profile, world=se,
                         meta=se.meta)
    else:
        folder = Path(data).expanduser()
        if not folder.exists():
            fail(f"source.load: {str(folder)!r} does not exist; data must be {SYNTHETIC!r} or the path of an "
                 f"extract folder (set it in the chapter's DATA line or in ${ENV})")
        if not folder.is_dir():
            fail(f"source.load: {str(folder)!r} is a file, not a folder of Parquet tables")
        if _is_synthetic_folder(folder):
            se = synthetic.load(folder)
            out = DataSource(tables=se.tables, truth=se.truth, location=str(folder),
                             profile=se.meta.get("source", "ashe"), world=se, meta=se.meta)
        else:
            extra = sorted(set(synthetic_options))
            if extra:
                fail(f"source.load: {extra} describe a synthetic world and cannot apply to the real extract "
                     f"{str(folder)!r}; drop them, or use data={SYNTHETIC!r}")
            tables = _extract_tables(folder)
            if not tables:
                fail(f"source.load: no Parquet table in {str(folder)!r} (expected jobs.parquet or a jobs/ folder "
                     "of parts, local_units, postcode_lookup, cpi, ...)")
            check = link.check_extract(tables, source=profile, sample_rows=sample_rows)
            if not check.ok:
                bad = check.problems()
                first = bad[bad["status"] == "fail"].iloc[0]
                raise InputError(f"the extract {str(folder)!r} would fail to link (link.check_extract, profile "
                                 f"{profile!r}): {first['action']}\n{check.summary()}", str(first["table"]),
                                 str(first["column"]))
            out = DataSource(tables=tables, truth=None, location=str(folder), profile=profile, check=check)
    _last[:] = [out]
    register_magics()
    return out


# --------------------------------------------------------------------------------------------------------------
# The cell magics
# --------------------------------------------------------------------------------------------------------------

def _source_for(line: str, user_ns: dict) -> DataSource:
    name = line.strip()
    if name:
        obj = user_ns.get(name)
        if not isinstance(obj, DataSource):
            fail(f"%%magic {name}: {name!r} is not a data source in this session (make it with source.load)")
        return obj
    if not _last:
        fail("no data source loaded in this session: call source.load(DATA) before a %%truth, %%synthetic or "
             "%%microdata cell")
    return _last[0]


def run_cell(kind: str, line: str, cell: str, user_ns: dict, transform=None):
    """What the magic ``%%{kind}`` does: run ``cell`` in ``user_ns`` if the data source (``line`` names it, else the
    one loaded last) is synthetic and return the value of its last expression; otherwise print one line saying the
    cell was skipped and why, and return None. ``transform``: IPython's cell transformer (``%`` and ``!`` lines)."""
    if kind not in MAGICS:
        fail(f"unknown cell kind {kind!r}; one of {list(MAGICS)}")
    src = _source_for(line, user_ns)
    if not src.is_synthetic:
        print(f"[skipped on real data, {src.location}] %%{kind}: {MAGICS[kind]}")
        return None
    code = transform(cell) if transform is not None else cell
    tree = ast.parse(code, filename=f"<%%{kind} cell>")
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not code.rstrip().endswith(";"):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, f"<%%{kind} cell>", "exec"), user_ns)
    return eval(compile(last, f"<%%{kind} cell>", "eval"), user_ns) if last is not None else None


def register_magics(shell=None) -> bool:
    """Register ``%%truth``, ``%%synthetic`` and ``%%microdata`` in ``shell`` (default: the running IPython, if
    any). Returns whether there was a shell to register them in."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython is installed with Jupyter
            return False
        shell = get_ipython()
        if shell is None:
            return False
    for kind in MAGICS:
        def magic(line, cell, _kind=kind):
            return run_cell(_kind, line, cell, shell.user_ns, transform=shell.transform_cell)
        magic.__doc__ = f"Run this cell on synthetic data only; on real data skip it ({MAGICS[kind]})."
        shell.register_magic_function(magic, magic_kind="cell", magic_name=kind)
    return True

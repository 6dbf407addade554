"""Input checks shared by every module: one error type, one message format.

Every check error reads

    table 'jobs', column 'piden': 12 missing value(s); no row is dropped silently (e.g. row [3, 17, 40])

that is: the table, the column, what is wrong with how many rows, a hint, and the first offending ids (named by
their id column where there is one, else by row position). The exception is an :class:`InputError` (a
``ValueError``) carrying ``table``, ``column`` and ``ids`` as attributes; a missing column is a
:class:`MissingColumnError` (also a ``KeyError``), a wrong type an :class:`InputTypeError` (also a
``TypeError``), so ``except KeyError`` / ``except TypeError`` written against earlier versions still catch them.

Private module: the public functions of :mod:`prosperity.akm`, :mod:`prosperity.network`, :mod:`prosperity.places`,
:mod:`prosperity.productivity`, :mod:`prosperity.sdc`, :mod:`prosperity.policy` and :mod:`prosperity.link` call
these helpers instead of writing their own checks.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "InputError", "MissingColumnError", "InputTypeError", "fail", "as_list", "first_ids", "plain",
    "require_frame", "require_columns", "require_complete", "require_numeric", "require_positive",
    "require_unique", "require_one_type", "require_rows", "require_choice",
]

N_IDS = 5  # how many offending ids an error message shows


def plain(xs) -> list:
    """Values as plain Python objects for messages (``'L5'``, not ``np.str_('L5')``)."""
    return [x.item() if isinstance(x, np.generic) else x for x in xs]


def _fmt_ids(ids: Sequence, id_name: str | None) -> str:
    shown = plain(list(ids)[:N_IDS])
    name = id_name or "row"
    return f" (e.g. {name} {shown})"


class InputError(ValueError):
    """Bad input: names the table, the column and the first offending ids.

    Attributes ``table``, ``column``, ``ids`` (a list, at most :data:`N_IDS` shown in the message) and ``id_name``
    (the id column the ids come from, or ``"row"`` for row positions)."""

    def __init__(self, message: str, table: str | None = None, column: str | None = None, ids: Iterable = (),
                 id_name: str | None = None):
        self.table = table
        self.column = column
        self.ids = list(ids)
        self.id_name = id_name
        self.problem = message
        where = ""
        if table is not None:
            where = f"table {table!r}" + (f", column {column!r}" if column is not None else "") + ": "
        elif column is not None:
            where = f"column {column!r}: "
        self.text = f"{where}{message}" + (_fmt_ids(self.ids, id_name) if self.ids else "")
        super().__init__(self.text)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.text

    def __reduce__(self):  # picklable (errors cross process boundaries in tests and Spark)
        return (type(self), (self.problem, self.table, self.column, self.ids, self.id_name))


class MissingColumnError(InputError, KeyError):
    """A required column is absent (also a ``KeyError``)."""


class InputTypeError(InputError, TypeError):
    """A table or column has the wrong type (also a ``TypeError``)."""


def fail(message: str, table: str | None = None, column: str | None = None, ids: Iterable = (),
         id_name: str | None = None, kind: type[InputError] = InputError):
    """Raise ``kind(message, table, column, ids, id_name)``."""
    raise kind(message, table, column, ids, id_name)


def as_list(x) -> list:
    """``None`` -> ``[]``, a string -> ``[x]``, any other iterable -> ``list(x)``."""
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def first_ids(df: pd.DataFrame, mask, id_cols: Sequence[str] | str | None = None, k: int = N_IDS):
    """The first ``k`` offending ids of ``df`` where ``mask`` is true, and the name to show them under.

    ``id_cols``: one column (its values are returned), several (tuples), or none / absent (row positions)."""
    mask = np.asarray(mask, dtype=bool)
    cols = [c for c in as_list(id_cols) if c in df.columns]
    pos = np.flatnonzero(mask)[:k]
    if not cols:
        return pos.tolist(), "row"
    sub = df[cols].iloc[pos]
    if len(cols) == 1:
        return sub.iloc[:, 0].tolist(), cols[0]
    return [tuple(r) for r in sub.itertuples(index=False, name=None)], "(" + ", ".join(cols) + ")"


def require_frame(df, table: str) -> pd.DataFrame:
    """``df`` must be a DataFrame whose column names are unique strings-or-labels."""
    if not isinstance(df, pd.DataFrame):
        fail(f"must be a pandas DataFrame, got {type(df).__name__}", table, kind=InputTypeError)
    if df.columns.has_duplicates:
        dup = df.columns[df.columns.duplicated()].unique().tolist()
        fail(f"column name(s) {dup} appear more than once; rename or drop the copies", table, dup[0])
    return df


def require_columns(df, columns: Sequence[str | None], table: str, hint: str = "") -> None:
    """``df`` is a DataFrame holding every (non-None) column of ``columns``, each named once in ``columns``."""
    require_frame(df, table)
    cols = [c for c in columns if c is not None]
    missing = [c for c in cols if c not in df.columns]
    if missing:
        avail = list(df.columns)[:25]
        fail(f"no column(s) {missing}; available: {avail}{hint}", table, missing[0], kind=MissingColumnError)
    seen, dup = set(), []
    for c in cols:
        if c in seen and c not in dup:
            dup.append(c)
        seen.add(c)
    if dup:
        fail(f"column(s) {dup} given for more than one role", table, dup[0])


def _bad_values(s: pd.Series) -> np.ndarray:
    bad = s.isna().to_numpy()
    if pd.api.types.is_float_dtype(s) or (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
                                          and not pd.api.types.is_integer_dtype(s)):
        with np.errstate(invalid="ignore"):
            bad = bad | ~np.isfinite(s.to_numpy(dtype=float, na_value=np.nan))
    return bad


def require_complete(df: pd.DataFrame, columns: Sequence[str | None], table: str,
                     id_cols: Sequence[str] | str | None = None, hint: str = "drop or impute them explicitly "
                     "(no row is dropped silently)") -> None:
    """No missing (or, in float columns, infinite) value in ``columns``."""
    for c in columns:
        if c is None:
            continue
        bad = _bad_values(df[c])
        if bad.any():
            ids, name = first_ids(df, bad, [i for i in as_list(id_cols) if i != c] or None)
            fail(f"{int(bad.sum())} missing or non-finite value(s); {hint}", table, c, ids, name)


def require_numeric(df: pd.DataFrame, columns: Sequence[str | None], table: str, hint: str = "") -> None:
    """Each column is numeric (booleans are not numbers here)."""
    for c in columns:
        if c is None:
            continue
        s = df[c]
        if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
            fail(f"must be numeric, got dtype {s.dtype}{hint}", table, c, kind=InputTypeError)


def require_positive(df: pd.DataFrame, column: str, table: str, id_cols: Sequence[str] | str | None = None,
                     strict: bool = True) -> None:
    """Every value of ``column`` is > 0 (``strict``) or >= 0."""
    v = df[column].to_numpy(dtype=float, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        bad = (v <= 0) if strict else (v < 0)
    if bad.any():
        ids, name = first_ids(df, bad, id_cols)
        what = "zero or negative" if strict else "negative"
        fail(f"{int(bad.sum())} {what} value(s)", table, column, ids, name)


def require_unique(df: pd.DataFrame, keys: Sequence[str] | str, table: str, hint: str = "") -> None:
    """No two rows share the key ``keys``."""
    keys = as_list(keys)
    dup = df.duplicated(keys, keep=False).to_numpy()
    if dup.any():
        ids, name = first_ids(df, dup, keys)
        fail(f"{int(dup.sum())} rows share a key {keys}{hint}", table, keys[0] if len(keys) == 1 else None,
             ids, name)


def require_one_type(df: pd.DataFrame, column: str, table: str) -> None:
    """An object column holds values of one Python type (``1`` and ``"1"`` would be two different ids)."""
    s = df[column]
    if s.dtype != object or len(s) == 0:
        return
    types = s.map(type)
    kinds = types.value_counts()
    if len(kinds) > 1:
        main = kinds.index[0]
        bad = (types != main).to_numpy()
        ids, _ = first_ids(df, bad, column)
        names = sorted(t.__name__ for t in kinds.index)
        fail(f"mixes value types {names} (e.g. 1 and '1' would be two different ids); convert the column to one "
             f"type", table, column, ids, column, kind=InputTypeError)


def require_rows(df: pd.DataFrame, table: str, minimum: int = 1, what: str = "row") -> None:
    """At least ``minimum`` rows."""
    if len(df) < minimum:
        fail(f"has {len(df)} {what}(s); at least {minimum} needed", table)


def require_choice(value, name: str, choices: Sequence) -> None:
    """``value`` is one of ``choices`` (an argument check: names the argument)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")

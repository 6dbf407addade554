"""The result pattern every estimator and decomposition follows.

A result is a small frozen dataclass deriving from :class:`Result`:

- ``summary() -> str``: a short plain-text report (the estimator, the sample, the headline numbers, caveats);
- ``table``: the result's main table, a DataFrame, under that one name on every result (a field or a property);
- ``to_frame() -> DataFrame``: a copy of ``table`` (tidy, one row per unit or component);
- ``repr(result)`` shows the class name and the summary (``Result.__repr__``; declare subclasses with
  ``@dataclass(frozen=True, repr=False)`` so that the dataclass does not replace it).

Where a result has a second table of shares, it is ``shares() -> DataFrame`` with a ``component`` column.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["Result"]


class Result:
    """Base of the result dataclasses: ``summary()``, ``table``, ``to_frame()`` and a readable ``repr``.

    Subclasses define ``summary`` and either a ``table`` field or a ``table`` property."""

    __slots__ = ()

    def summary(self) -> str:  # pragma: no cover - every subclass defines it (tests/test_house.py checks)
        return type(self).__name__

    def to_frame(self) -> pd.DataFrame:
        """A copy of the main table (``self.table``)."""
        t = self.table
        return t.copy() if isinstance(t, pd.DataFrame) else pd.DataFrame(t)

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__name__}>\n{self.summary()}"

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(repr(self))

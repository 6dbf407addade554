"""Statistical disclosure control (SDC) of outputs, on top of ``acro``.

Every table, statistic and regression that leaves a secure research environment is checked by hand by an
output checker. This module runs the checks the checker will run *before* you ask, on the package's own
tables, and writes the output log the checker reads. The rules themselves are ``acro``'s
(Automatic Checking of Research Outputs, from the SACRO project,
`AI-SDC/ACRO <https://github.com/AI-SDC/ACRO>`_): this module computes the evidence acro needs (counts of
people and of enterprises behind each cell, the contributions of the largest enterprises, residual degrees of
freedom) from the book's tables, hands it to :class:`acro.sdcchecks.SDCChecks`, reads acro's verdicts back cell
by cell, suppresses what fails, and records each output in an :class:`acro.ACRO` session whose ``finalise``
writes the log (``results.json``, one CSV per output, ``config.json``, checksums).

Rules (:class:`Rules`, preset :data:`ONS_SRS`):

- **threshold**: at least ``min_people`` people and, for business data, ``min_firms`` enterprises behind every
  cell and every statistic; zero cells are disclosive (class disclosure);
- **dominance** for business magnitudes (totals and means of GVA, turnover, employment): the ``(n, k)`` rule
  (the largest ``n`` enterprises hold less than ``k`` of the cell total) and the ``p%`` rule (enterprises
  3..N together hold at least ``p`` of the largest one), both on contributions aggregated to the enterprise;
- **no minima or maxima** (a maximum is one record's value);
- **residual degrees of freedom** of at least ``min_dof`` for regressions.

References: Hundepool, Domingo-Ferrer, Franconi, Giessing, Nordholt, Spicer and de Wolf (2012),
*Statistical Disclosure Control*, Wiley, ch. 4 (the (n, k) and p% rules); Griffiths, Greci, Kotrotsios,
Parker, Scott, Welpton, Wolters and Woods (2019), *Handbook on Statistical Disclosure Control for Outputs*,
Safe Data Access Professionals; Green, Ritchie, Smith et al. (2023), *The SACRO guide to statistical output
checking*, doi:10.5281/zenodo.10054629. The numerical thresholds of the ONS Secure Research Service's own
guidance were not available to us: :data:`ONS_SRS` uses acro's defaults, which are the common "rules of
thumb"; confirm them with your output checker and change them with :func:`dataclasses.replace`.

Example
-------
>>> log = OutputLog()                                   # doctest: +SKIP
>>> report = check(table, people="n_people", firms="n_firms", name="gaps_by_district", log=log)
>>> report.failures                                      # cell, column, rule, reason
>>> report.safe_table                                    # failing cells suppressed, reason in column "sdc"
>>> log.finalise("outputs_for_checking")                 # the files the output checker reads
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def _import_acro_quietly():
    """Import acro without leaving its ``logging.basicConfig(level=INFO)`` on the root logger."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    import acro  # noqa: F401  (configures the root logger at import)
    from acro import sdcchecks

    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    return acro, sdcchecks


_acro, _sdcchecks = _import_acro_quietly()


def _acro_version() -> str:
    from importlib.metadata import version

    return version("acro")

__all__ = [
    "ONS_SRS",
    "PRESETS",
    "OutputLog",
    "Rules",
    "SDCReport",
    "check",
    "check_magnitudes",
    "check_regression",
    "check_statistic",
]

# Rule names used in ``SDCReport.failures["rule"]``.
RULE_PEOPLE = "min_people"
RULE_FIRMS = "min_firms"
RULE_ZERO = "zero"
RULE_NK = "dominance_nk"
RULE_P = "dominance_p"
RULE_NEGATIVE = "negative"
RULE_EXTREME = "extreme"
RULE_DOF = "min_dof"

_EXTREME_STATS = {"min", "max"}
_STATS = {"mean", "median", "std", "min", "max", "sum", "count"}


@contextlib.contextmanager
def _quiet():
    """Silence acro's INFO logging and pandas warnings raised inside acro."""
    names = ("acro", "acro:records", "acro:summary")
    loggers = [logging.getLogger(n) for n in names]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lvl in zip(loggers, old):
            lg.setLevel(lvl)


# --------------------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rules:
    """The output-checking rules of one secure environment.

    Attributes
    ----------
    name : str
        Label written into the output log.
    min_people, min_firms : int
        Minimum number of distinct people, and of distinct enterprises (business data), behind every cell
        and every statistic (threshold rule).
    nk_n, nk_k : int, float
        Dominance ``(n, k)`` rule: the largest ``nk_n`` contributors must hold less than ``nk_k`` of the cell
        total.
    p_ratio : float
        ``p%`` rule: contributors 3..N together must hold at least ``p_ratio`` times the largest contributor.
    min_dof : int
        Minimum residual degrees of freedom of a model.
    zeros_disclosive : bool
        Whether zero cells are disclosive (class disclosure).
    extremes_allowed : bool
        Whether minima and maxima may be released.
    source : str
        Where the values come from, and what is still to be confirmed.
    """

    name: str
    min_people: int = 10
    min_firms: int = 10
    nk_n: int = 2
    nk_k: float = 0.90
    p_ratio: float = 0.10
    min_dof: int = 10
    zeros_disclosive: bool = True
    extremes_allowed: bool = False
    source: str = ""

    def __post_init__(self):
        for attr in ("min_people", "min_firms", "nk_n", "min_dof"):
            v = getattr(self, attr)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Rules.{attr} must be a positive integer, got {v!r}")
        if not 0 < self.nk_k <= 1:
            raise ValueError(f"Rules.nk_k must be in (0, 1], got {self.nk_k!r}")
        if not 0 <= self.p_ratio <= 1:
            raise ValueError(f"Rules.p_ratio must be in [0, 1], got {self.p_ratio!r}")

    def acro_config(self, threshold: int | None = None) -> dict[str, Any]:
        """The rules as an acro risk-appetite dictionary (the keys of acro's ``default.yaml``)."""
        return {
            "safe_threshold": int(self.min_people if threshold is None else threshold),
            "safe_dof_threshold": int(self.min_dof),
            "safe_nk_n": int(self.nk_n),
            "safe_nk_k": float(self.nk_k),
            "safe_pratio_p": float(self.p_ratio),
            "check_missing_values": False,
            "survival_safe_threshold": int(self.min_people),
            "zeros_are_disclosive": bool(self.zeros_disclosive),
            "safe_round_base": 5,
            "federated": False,
        }

    def to_frame(self) -> pd.DataFrame:
        """The rules as a two-column table (rule, value)."""
        rows = [
            ("minimum people per cell or statistic", self.min_people),
            ("minimum enterprises per cell or statistic (business data)", self.min_firms),
            (f"dominance (n, k): largest {self.nk_n} hold less than", f"{self.nk_k:.0%}"),
            ("p% rule: contributors 3..N hold at least, of the largest", f"{self.p_ratio:.0%}"),
            ("minimum residual degrees of freedom", self.min_dof),
            ("zeros disclosive", self.zeros_disclosive),
            ("minima and maxima released", self.extremes_allowed),
        ]
        return pd.DataFrame(rows, columns=["rule", "value"])


#: ONS Secure Research Service preset. The values are acro 1.0.2's defaults (threshold 10, (2, 90%), p = 10%,
#: residual df 10, zeros disclosive), which are the usual rules of thumb, plus the SRS practice of releasing
#: no minima or maxima and of counting enterprises, not jobs, behind business cells.
ONS_SRS = Rules(
    name="ONS SRS (rules of thumb)",
    source=(
        "acro 1.0.2 default.yaml (threshold 10, nk (2, 0.90), p 0.10, dof 10, zeros disclosive); ONS SRS output "
        "checking guidance v1.1 (2022, revised 2023) is principles-based and its numerical rules of thumb were "
        "not read here: confirm with the SRS output checkers."
    ),
)

#: Named presets accepted by ``rules=``.
PRESETS: dict[str, Rules] = {"ons_srs": ONS_SRS}


def _rules(rules: str | Rules) -> Rules:
    if isinstance(rules, Rules):
        return rules
    if isinstance(rules, str) and rules in PRESETS:
        return PRESETS[rules]
    raise ValueError(f"rules must be a Rules object or one of {sorted(PRESETS)}, got {rules!r}")


_CHECKERS: dict[tuple, Any] = {}


def _checker(rules: Rules, threshold: int | None = None):
    """acro's SDCChecks with the risk appetite of ``rules`` (cached: it reads four JSON files)."""
    cfg = rules.acro_config(threshold)
    key = tuple(sorted(cfg.items()))
    if key not in _CHECKERS:
        _CHECKERS[key] = _sdcchecks.SDCChecks(cfg)
    return _CHECKERS[key]


# --------------------------------------------------------------------------------------------------------------
# Report and log
# --------------------------------------------------------------------------------------------------------------
_FAILURE_COLUMNS = ["cell", "column", "rule", "reason"]


@dataclass(frozen=True)
class SDCReport:
    """The result of checking one output.

    Attributes
    ----------
    name : str
        The output's name (its id in the output log).
    kind : str
        ``"table"``, ``"magnitudes"``, ``"statistic"`` or ``"regression"``.
    status : str
        acro's status in the log: ``"pass"``; ``"review"`` (cells failed and were suppressed: the checker
        reviews the safe table); ``"fail"`` (nothing can be released, e.g. a regression with too few residual
        degrees of freedom).
    failures : DataFrame
        One row per failing cell and rule: ``cell`` (the cell's key), ``column`` (the suppressed column, or
        ``"*"`` for the whole row), ``rule`` (one of ``min_people``, ``min_firms``, ``zero``,
        ``dominance_nk``, ``dominance_p``, ``negative``, ``extreme``, ``min_dof``) and ``reason``.
    safe_table : DataFrame
        The table to release. If nothing failed it is the input table, unchanged. Otherwise failing values
        are set to missing and a last column ``sdc`` says, row by row, ``"ok"`` or what was suppressed and why.
    rules : Rules
        The rules applied.
    acro_summary : str
        acro's own summary of the checks (also in the log).
    """

    name: str
    kind: str
    status: str
    failures: pd.DataFrame
    safe_table: pd.DataFrame
    rules: Rules
    acro_summary: str = ""

    @property
    def passed(self) -> bool:
        """True when no cell failed any rule."""
        return self.failures.empty

    def summary(self) -> str:
        """A few lines: what was checked, what failed, by rule."""
        lines = [f"SDC check of '{self.name}' ({self.kind}) under {self.rules.name}: {self.status}"]
        if self.passed:
            lines.append("  all cells pass")
        else:
            cells = self.failures["cell"].astype(str).nunique()
            lines.append(f"  {cells} cell(s) failing, suppressed in safe_table")
            for rule, n in self.failures["rule"].value_counts().sort_index().items():
                lines.append(f"  {rule}: {n}")
        return "\n".join(lines)

    def to_frame(self) -> pd.DataFrame:
        """The safe table (what can be released)."""
        return self.safe_table


class OutputLog:
    """The output log for the output checker: an acro session that records every checked output.

    Pass it as ``log=`` to the ``check*`` functions; each checked output is recorded with its status, acro's
    summary, the cell-by-cell outcome and the *safe* table. :meth:`finalise` writes acro's files
    (``results.json``, one CSV per output, ``config.json`` with the rules, checksums) into a new folder:
    that folder is what you hand to the output checker. The underlying :class:`acro.ACRO` object is
    :attr:`acro`, for acro's own functions (``crosstab``, ``pivot_table``, ``ols``, ``custom_output``); their
    outputs land in the same log.
    """

    def __init__(self, rules: str | Rules = "ons_srs"):
        self.rules = _rules(rules)
        with _quiet():
            self.acro = _acro.ACRO(suppress=True)
        # one shared dict: acro's SDCChecks reads the same object, so acro's own functions apply these rules
        self.acro.config.update(self.rules.acro_config())
        self.acro.config["rules"] = self.rules.name
        self.acro.config["rules_source"] = self.rules.source
        self.acro.config["extremes_allowed"] = self.rules.extremes_allowed
        self.acro.config["min_firms"] = self.rules.min_firms

    def __len__(self) -> int:
        return len(self.acro.results.results)

    def add(self, report: SDCReport, outcome: pd.DataFrame | None = None, sdc: dict | None = None,
            command: str = "", comment: str | None = None) -> str:
        """Record a checked output (called by the ``check*`` functions); returns its id in the log."""
        if report.name in self.acro.results.results:
            raise ValueError(f"OutputLog already has an output named {report.name!r}; give each output a unique name")
        with _quiet():
            self.acro.results.add(
                status=report.status,
                output_type="regression" if report.kind == "regression" else "table",
                properties={"method": f"prosperity.sdc ({report.kind})", "rules": report.rules.name},
                sdc=sdc or {},
                fair={},
                command=command,
                summary=report.acro_summary,
                outcome=outcome if outcome is not None else pd.DataFrame(),
                output=[report.safe_table],
                comments=[comment] if comment else [],
            )
            uid = f"output_{self.acro.results.output_id - 1}"
            if report.status == "review":
                self.acro.results.add_exception(uid, "Suppression automatically applied where needed")
            self.acro.results.rename(uid, report.name)
        return report.name

    def add_exception(self, name: str, reason: str) -> None:
        """Ask the output checker for an exception for output ``name`` (e.g. a structural zero), with a reason."""
        if name not in self.acro.results.results:
            raise KeyError(f"OutputLog has no output {name!r}; outputs: {list(self.acro.results.results)}")
        with _quiet():
            self.acro.results.add_exception(name, reason)

    def add_comment(self, name: str, comment: str) -> None:
        """Add a comment to output ``name`` for the output checker."""
        if name not in self.acro.results.results:
            raise KeyError(f"OutputLog has no output {name!r}; outputs: {list(self.acro.results.results)}")
        with _quiet():
            self.acro.results.add_comments(name, comment)

    def to_frame(self) -> pd.DataFrame:
        """One row per output: name, type, status, exception requested, acro's summary."""
        rows = [
            {"output": uid, "type": r.output_type, "status": r.status, "exception": r.exception,
             "summary": " ".join(str(r.summary).split())}
            for uid, r in self.acro.results.results.items()
        ]
        return pd.DataFrame(rows, columns=["output", "type", "status", "exception", "summary"])

    def finalise(self, path: str | Path, ext: str = "json") -> Path:
        """Write the log for the output checker into the new folder ``path`` (``ext``: ``json`` or ``xlsx``)."""
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"OutputLog.finalise: {path} already exists; acro writes into a new folder only")
        if len(self) == 0:
            raise ValueError("OutputLog.finalise: the log is empty; check some outputs first")
        with _quiet():
            self.acro.finalise(str(path), ext)
        return path


# --------------------------------------------------------------------------------------------------------------
# Internals: evidence -> acro -> per-cell verdicts
# --------------------------------------------------------------------------------------------------------------
class _Cells:
    """The minimal 'table model' acro's checks consult: the cells and the variables defining them."""

    model_type = "table"

    def __init__(self, labels: pd.Index, dims: list[str]):
        self.labels = labels
        self.dims = dims

    def get_allfalse_table(self) -> pd.DataFrame:
        return pd.DataFrame(False, index=self.labels, columns=["cell"])

    def get_dimension_names(self) -> list[str]:
        return list(self.dims)


def _frame(values, labels: pd.Index) -> pd.DataFrame:
    return pd.DataFrame({"cell": np.asarray(values)}, index=labels)


def _mask(outcome: Any, labels: pd.Index) -> np.ndarray:
    """acro's cell mask as a boolean vector (True = disclosive); anything else is an error, never a pass."""
    if isinstance(outcome, pd.DataFrame) and outcome.shape[0] == len(labels) and outcome.shape[1] >= 1:
        return outcome.fillna(True).astype(bool).to_numpy()[:, 0]
    raise RuntimeError(f"prosperity.sdc: unexpected check result from acro {_acro_version()} "
                       f"({type(outcome).__name__}); the checks were written for acro 1.0.2")


def _threshold(counts: np.ndarray, labels: pd.Index, dims: list[str], rules: Rules, threshold: int,
               what: str, rule: str) -> tuple[list[tuple[int, str, str]], str]:
    """acro's FrequencyTable checks (threshold and zeros) on a vector of counts."""
    checker = _checker(rules, threshold)
    model = _Cells(labels, dims)
    ev = _sdcchecks.SDCEvidence(interim_tables={"count_table": _frame(counts, labels)})
    with _quiet():
        res = checker.run_checks_for_analysis("FrequencyTable", ev, model)
    out = []
    small = _mask(res.outcomes.get("MinimumThresholdCheck"), labels)
    zero = _mask(res.outcomes.get("PresenceOfZeroCheck"), labels)
    for i in np.flatnonzero(small):
        out.append((i, rule, f"{int(counts[i])} {what} < {threshold} (minimum {what} per cell)"))
    for i in np.flatnonzero(zero):
        out.append((i, RULE_ZERO, f"zero {what}: zero cells are disclosive (class disclosure)"))
    return out, f"[{what}] {res.summaries.strip()}"


def _dominance(ev_frame: pd.DataFrame, labels: pd.Index, dims: list[str], rules: Rules, value: str,
               unit_word: str, negative: str) -> tuple[list[tuple[int, str, str]], str]:
    """acro's NK and p% checks on per-cell evidence (sum, max, top-2 sum, top-n sum, count of negatives)."""
    checker = _checker(rules, rules.min_firms)
    out: list[tuple[int, str, str]] = []
    summaries = []
    neg = ev_frame["num_negative"].to_numpy() > 0
    groups = [(np.flatnonzero(~neg), False), (np.flatnonzero(neg), True)] if negative == "review" else [
        (np.arange(len(labels)), False)]
    for pos, is_neg in groups:
        if len(pos) == 0:
            continue
        sub = ev_frame.iloc[pos]
        sub_labels = labels[pos]
        ev = _sdcchecks.SDCEvidence(interim_tables={
            "count_table": _frame(sub["count"], sub_labels),
            "sum": _frame(sub["sum"], sub_labels),
            "max": _frame(sub["max"], sub_labels),
            "top_2_sum": _frame(sub["top_2_sum"], sub_labels),
            "top_n_sum": _frame(sub["top_n_sum"], sub_labels),
            "num_negative": _frame(sub["num_negative"], sub_labels),
        })
        with _quiet():
            nk_status, nk_summary, nk_mask = checker.check_nk_dominance("Sum", ev, _Cells(sub_labels, dims))
            p_status, p_summary, p_mask = checker.check_ppercent_dominance("Sum", ev, _Cells(sub_labels, dims))
        summaries.append(f"NKCheck: {nk_summary.strip()} PPercentCheck: {p_summary.strip()}")
        nk_m, p_m = _mask(nk_mask, sub_labels), _mask(p_mask, sub_labels)
        for j, i in enumerate(pos):
            row = sub.iloc[j]
            if is_neg and (nk_m[j] or p_m[j]):
                out.append((i, RULE_NEGATIVE, f"{int(row['num_negative'])} {unit_word} with negative {value}: "
                            "dominance is not defined (acro: review); suppressed"))
                continue
            total = row["sum"]
            if nk_m[j]:
                share = row["top_n_sum"] / total if total else np.nan
                out.append((i, RULE_NK, f"largest {rules.nk_n} {unit_word} hold {share:.1%} of {value} "
                            f">= {rules.nk_k:.0%} (dominance ({rules.nk_n}, {rules.nk_k:.0%}))"))
            if p_m[j]:
                rest = (row["sum"] - row["top_2_sum"]) / row["max"] if row["max"] else np.nan
                out.append((i, RULE_P, f"{unit_word} 3..N hold {rest:.1%} of the largest's {value} "
                            f"< {rules.p_ratio:.0%} (p% rule)"))
    return out, " ".join(summaries)


def _label(key) -> str:
    return " | ".join(map(str, key)) if isinstance(key, tuple) else str(key)


def _finish(name: str, kind: str, table: pd.DataFrame, keys: list[str] | None, labels: pd.Index,
            verdicts: list[tuple[int, str, str]], column_verdicts: list[tuple[str, str, str]],
            protected: list[str], rules: Rules, summary: str, log: OutputLog | None, command: str,
            comment: str | None, whole_output: tuple[str, str] | None = None) -> SDCReport:
    """Build failures, the safe table, the outcome, and record in the log."""
    seen: set[tuple[int, str]] = set()
    unique = []
    for i, rule, reason in verdicts:  # one verdict per cell and rule (a zero cell has zero people and firms)
        if (i, rule) not in seen:
            seen.add((i, rule))
            unique.append((i, rule, reason))
    verdicts = unique
    rows = []
    for i, rule, reason in verdicts:
        rows.append((labels[i], "*", rule, reason))
    for col, rule, reason in column_verdicts:
        rows.append(("*", col, rule, reason))
    if whole_output is not None:  # e.g. a regression: the whole output fails
        rows.append(("*", "*", whole_output[0], whole_output[1]))
        verdicts = [(i, whole_output[0], whole_output[1]) for i in range(len(labels))]
    failures = pd.DataFrame(rows, columns=_FAILURE_COLUMNS)
    if not failures.empty:
        order = {lab: k for k, lab in enumerate(labels)}
        failures["_o"] = failures["cell"].map(lambda c: order.get(c, -1))
        failures = failures.sort_values(["_o", "rule"], kind="stable").drop(columns="_o").reset_index(drop=True)

    bad_rows = sorted({i for i, _, _ in verdicts})
    bad_cols = [c for c, _, _ in column_verdicts]
    if failures.empty:
        safe = table.copy()
        status = "pass"
    else:
        safe = table.copy()
        values = [c for c in safe.columns if c not in protected]
        for c in values:
            if pd.api.types.is_integer_dtype(safe[c]) and not isinstance(safe[c].dtype, pd.CategoricalDtype):
                safe[c] = safe[c].astype("Int64")
            elif pd.api.types.is_bool_dtype(safe[c]):
                safe[c] = safe[c].astype("boolean")
            elif not pd.api.types.is_float_dtype(safe[c]):
                safe[c] = safe[c].astype(object)
        if bad_rows:
            safe.iloc[bad_rows, [safe.columns.get_loc(c) for c in values]] = np.nan
        for c in bad_cols:
            safe[c] = np.nan
        notes = [[] for _ in range(len(safe))]
        for i, rule, _ in verdicts:
            if rule not in notes[i]:
                notes[i].append(rule)
        col_note = "; ".join(f"{c} suppressed ({r})" for c, r, _ in column_verdicts)
        sdc_col = []
        for n in notes:
            parts = [f"suppressed: {', '.join(n)}"] if n else []
            if col_note:
                parts.append(col_note)
            sdc_col.append("; ".join(parts) if parts else "ok")
        safe["sdc"] = sdc_col
        status = "fail" if whole_output is not None else "review"

    report = SDCReport(name=name, kind=kind, status=status, failures=failures, safe_table=safe, rules=rules,
                       acro_summary=summary)
    if log is not None:
        outcome = pd.DataFrame({"outcome": ["ok"] * len(labels)}, index=[_label(x) for x in labels])
        reasons: dict[int, list[str]] = {}
        for i, _, reason in verdicts:
            reasons.setdefault(i, []).append(reason)
        for i, rs in reasons.items():
            outcome.iloc[i, 0] = "; ".join(rs)
        for col, _, reason in column_verdicts:
            outcome[col] = reason
        cells: dict[str, list] = {}
        for i, rule, _ in verdicts:
            cells.setdefault(rule, []).append([int(i), 0])
        sdc = {"summary": {r: len(v) for r, v in cells.items()}, "cells": cells}
        log.add(report, outcome=outcome, sdc=sdc, command=command, comment=comment)
    return report


def _require_columns(df: pd.DataFrame, cols: list[str], table: str, hint: str = "") -> None:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{table} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{table} has no column(s) {missing}; its columns are {list(df.columns)}{hint}")


def _check_counts(df: pd.DataFrame, col: str, table: str, labels: pd.Index) -> np.ndarray:
    s = df[col]
    if not pd.api.types.is_numeric_dtype(s):
        raise TypeError(f"{table}.{col} must hold counts (numbers), got dtype {s.dtype}")
    vals = s.to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(vals) | (vals < 0) | (vals != np.round(vals)))
    if len(bad):
        ids = [labels[i] for i in bad[:5]]
        raise ValueError(f"{table}.{col} must be non-negative whole counts with no missing values; "
                         f"{len(bad)} bad cell(s), e.g. {ids}")
    return vals.astype(np.int64)


def _cell_labels(df: pd.DataFrame, keys: list[str] | None, table: str) -> pd.Index:
    if keys:
        idx = pd.MultiIndex.from_frame(df[keys]) if len(keys) > 1 else pd.Index(df[keys[0]])
    else:
        idx = df.index
    if idx.has_duplicates:
        dup = list(idx[idx.duplicated()].unique()[:5])
        raise ValueError(f"{table}: cells must be unique ({'columns ' + str(keys) if keys else 'the index'}); "
                         f"duplicated cells, e.g. {dup}")
    if keys:
        nulls = df[keys].isna().any(axis=1).to_numpy()
        if nulls.any():
            raise ValueError(f"{table}: missing values in key columns {keys} at rows {list(np.flatnonzero(nulls)[:5])}")
    return idx


def _listify(x) -> list[str]:
    if x is None:
        return []
    return [x] if isinstance(x, str) else list(x)


# --------------------------------------------------------------------------------------------------------------
# Public checks
# --------------------------------------------------------------------------------------------------------------
def check(table: pd.DataFrame, people: str | None = "n_people", firms: str | None = "n_firms", *,
          keys: str | list[str] | None = None, extremes: str | list[str] = (), rules: str | Rules = "ons_srs",
          name: str = "table", log: OutputLog | None = None, comment: str | None = None) -> SDCReport:
    """Check a published table whose rows are cells and which carries the counts behind each cell.

    Every row is a cell (a district, a region, a region by industry...). ``people`` and ``firms`` name the
    columns with the number of distinct people and of distinct enterprises behind the cell: the threshold
    rule (acro's ``MinimumThresholdCheck``, with ``min_people`` and ``min_firms``) and the zero rule
    (``PresenceOfZeroCheck``) are applied to them. A failing cell has *all* its values suppressed (its
    counts too). Columns listed in ``extremes`` hold minima or maxima (single records): unless the rules
    allow them they are suppressed in every cell. Dominance needs the individual contributions, which a
    summary table does not carry: use :func:`check_magnitudes` on the microdata for business totals.

    Parameters
    ----------
    table : DataFrame
        The table, e.g. ``places.decompose_gaps(...).to_frame()`` with ``n_people`` and ``n_firms`` columns.
    people, firms : str or None
        Count columns. Pass ``firms=None`` for tables with no business dimension (and ``people=None`` for a
        table of enterprises only); at least one is needed.
    keys : str or list of str, optional
        Columns identifying the cells (never suppressed). Default: the index.
    extremes : str or list of str
        Columns holding a minimum or a maximum.
    rules : str or Rules
        ``"ons_srs"`` (default) or a :class:`Rules` object.
    name : str
        The output's name in the log.
    log : OutputLog, optional
        Record the output (its safe table and the outcome per cell) in this log.
    comment : str, optional
        A note for the output checker.

    Returns
    -------
    SDCReport
    """
    rules = _rules(rules)
    keys_l = _listify(keys)
    extremes_l = _listify(extremes)
    if people is None and firms is None:
        raise ValueError("check: give at least one count column (people= and/or firms=)")
    counts_cols = [c for c in (people, firms) if c is not None]
    _require_columns(table, counts_cols + keys_l + extremes_l, f"table '{name}'",
                     hint=" (pass firms=None for a table with no business dimension)"
                     if firms is not None and firms not in getattr(table, "columns", []) else "")
    labels = _cell_labels(table, keys_l, f"table '{name}'")
    dims = keys_l or [str(n) for n in (table.index.names if table.index.names != [None] else ["index"])]
    verdicts: list[tuple[int, str, str]] = []
    summaries = []
    if people is not None:
        v, s = _threshold(_check_counts(table, people, f"table '{name}'", labels), labels, dims, rules,
                          rules.min_people, "people", RULE_PEOPLE)
        verdicts += v
        summaries.append(s)
    if firms is not None:
        v, s = _threshold(_check_counts(table, firms, f"table '{name}'", labels), labels, dims, rules,
                          rules.min_firms, "enterprises", RULE_FIRMS)
        verdicts += v
        summaries.append(s)
    column_verdicts = []
    if not rules.extremes_allowed:
        for c in extremes_l:
            column_verdicts.append((c, RULE_EXTREME, f"{c} is a minimum or maximum (a single record's value): "
                                    f"not released under {rules.name}"))
            summaries.append(f"ExtremesCheck ({rules.name}): fail - column {c} is a minimum or maximum.")
    command = f"prosperity.sdc.check({name!r}, people={people!r}, firms={firms!r}, extremes={extremes_l!r})"
    return _finish(name, "table", table, keys_l, labels, verdicts, column_verdicts, keys_l, rules,
                   " ".join(summaries), log, command, comment)


def _prepare_micro(microdata: pd.DataFrame, by: list[str], value: str, ids: list[str], table: str) -> None:
    _require_columns(microdata, by + [value] + ids, table)
    if not pd.api.types.is_numeric_dtype(microdata[value]):
        raise TypeError(f"{table}.{value} must be numeric, got dtype {microdata[value].dtype}")
    for c in by + ids + [value]:
        na = microdata[c].isna().to_numpy()
        if na.any():
            who = microdata.loc[na, ids[0]].head(5).tolist() if ids and c != ids[0] else list(np.flatnonzero(na)[:5])
            raise ValueError(f"{table}.{c} has {int(na.sum())} missing value(s) (e.g. {ids[0] if ids and c != ids[0] else 'rows'} "
                             f"{who}); drop or impute them, and record why, before tabulating")


def check_magnitudes(microdata: pd.DataFrame, by: str | list[str], value: str, unit: str = "entref", *,
                     people: str | None = None, stat: str = "sum", negative: str = "review",
                     rules: str | Rules = "ons_srs", name: str = "magnitudes", log: OutputLog | None = None,
                     comment: str | None = None) -> SDCReport:
    """Tabulate a business magnitude (a total or mean of GVA, turnover...) by cell from microdata, and check it.

    Contributions are first summed to the enterprise (``unit``) within each cell (DuckDB), because the
    threshold counts enterprises and dominance is about enterprises, not rows (two local units of one firm
    are one contributor). acro then applies, per cell, the threshold rule to the number of enterprises (and
    of distinct ``people`` if given), the dominance ``(n, k)`` rule and the ``p%`` rule (Hundepool et al. 2012,
    sec. 4.2) to the enterprise contributions.

    Parameters
    ----------
    microdata : DataFrame
        One row per record (enterprise-year, local unit, job) with the ``by`` columns, ``value`` and ``unit``.
    by : str or list of str
        The cell keys (e.g. ``["region"]`` or ``["lad", "industry"]``).
    value : str
        The magnitude (e.g. ``"gva"``).
    unit : str
        The contributor id (the enterprise reference).
    people : str, optional
        A person id column (for job-level microdata): adds the people threshold.
    stat : {"sum", "mean"}
        The published statistic: the total, or the mean per enterprise.
    negative : {"review", "absolute"}
        acro does not define dominance when a cell has negative contributions (GVA can be negative) and marks
        it for review. ``"review"`` (default) suppresses such cells; ``"absolute"`` applies the rules to the
        absolute contributions, the usual convention for magnitudes with negative values.
    rules, name, log, comment
        As in :func:`check`.

    Returns
    -------
    SDCReport
        ``safe_table`` has the ``by`` columns, ``value`` (the total or mean), ``n_firms`` and, if ``people``
        is given, ``n_people``.
    """
    import duckdb

    rules = _rules(rules)
    by_l = _listify(by)
    if stat not in ("sum", "mean"):
        raise ValueError(f"check_magnitudes: stat must be 'sum' or 'mean', got {stat!r}")
    if negative not in ("review", "absolute"):
        raise ValueError(f"check_magnitudes: negative must be 'review' or 'absolute', got {negative!r}")
    table = f"microdata '{name}'"
    _prepare_micro(microdata, by_l, value, [unit] + ([people] if people else []), table)
    if not by_l:
        raise ValueError("check_magnitudes: by= must name at least one column")

    q = lambda c: '"' + c.replace('"', '""') + '"'  # noqa: E731
    keys_sql = ", ".join(q(c) for c in by_l)
    con = duckdb.connect()
    try:
        con.register("micro", microdata[by_l + [value, unit] + ([people] if people else [])])
        contrib = con.execute(
            f"SELECT {keys_sql}, {q(unit)} AS unit, SUM({q(value)}) AS v FROM micro GROUP BY ALL"
        ).df()
        n_people = None
        if people:
            n_people = con.execute(
                f"SELECT {keys_sql}, COUNT(DISTINCT {q(people)}) AS n FROM micro GROUP BY ALL"
            ).df()
    finally:
        con.close()

    contrib["c"] = contrib["v"].abs() if negative == "absolute" else contrib["v"]
    contrib = contrib.sort_values(by_l + ["c"], ascending=[True] * len(by_l) + [False], kind="stable")
    rank = contrib.groupby(by_l, sort=False, observed=True).cumcount()
    g = contrib.assign(top2=np.where(rank < 2, contrib["c"], 0.0), topn=np.where(rank < rules.nk_n, contrib["c"], 0.0),
                       neg=(contrib["v"] < 0).astype(int)).groupby(by_l, sort=True, observed=True)
    ev = pd.DataFrame({
        "count": g.size(), "sum": g["c"].sum(), "max": g["c"].max(), "top_2_sum": g["top2"].sum(),
        "top_n_sum": g["topn"].sum(), "num_negative": g["neg"].sum() if negative == "review" else 0,
        "total": g["v"].sum(),
    })
    out = ev.reset_index()[by_l].copy()
    out[value] = (ev["total"] if stat == "sum" else ev["total"] / ev["count"]).to_numpy()
    out["n_firms"] = ev["count"].to_numpy().astype(np.int64)
    if n_people is not None:
        out = out.merge(n_people.rename(columns={"n": "n_people"}), on=by_l, how="left", validate="one_to_one")
        out["n_people"] = out["n_people"].astype(np.int64)
    labels = pd.MultiIndex.from_frame(out[by_l]) if len(by_l) > 1 else pd.Index(out[by_l[0]])

    verdicts: list[tuple[int, str, str]] = []
    summaries = []
    v, s = _threshold(out["n_firms"].to_numpy(), labels, by_l, rules, rules.min_firms, "enterprises", RULE_FIRMS)
    verdicts += v
    summaries.append(s)
    if people:
        v, s = _threshold(out["n_people"].to_numpy(), labels, by_l, rules, rules.min_people, "people", RULE_PEOPLE)
        verdicts += v
        summaries.append(s)
    v, s = _dominance(ev.reset_index(drop=True), labels, by_l, rules, value, "enterprises", negative)
    verdicts += v
    summaries.append(s)
    command = (f"prosperity.sdc.check_magnitudes({name!r}, by={by_l!r}, value={value!r}, unit={unit!r}, "
               f"stat={stat!r})")
    return _finish(name, "magnitudes", out, by_l, labels, verdicts, [], by_l, rules, " ".join(summaries), log,
                   command, comment)


def check_statistic(microdata: pd.DataFrame, by: str | list[str], value: str, stat: str, *,
                    people: str | None = None, firms: str | None = None, rules: str | Rules = "ons_srs",
                    name: str = "statistic", log: OutputLog | None = None,
                    comment: str | None = None) -> SDCReport:
    """Tabulate a statistic of people-level microdata by cell (mean, median, std, percentile, min, max) and check it.

    Every statistic needs the threshold number of distinct people (``people`` id column, or rows if not
    given) and, if ``firms`` is given, of distinct enterprises behind it (acro's threshold and zero checks).
    Minima and maxima are one record's value: unless the rules allow them they fail in every cell
    (rule ``extreme``). Use a percentile (``stat="p90"``) of a large enough group, or top-code, instead.
    Percentiles pass on the threshold alone here; near the ends of a distribution, ask the checker.

    Returns
    -------
    SDCReport
        ``safe_table`` has the ``by`` columns, ``value`` (the statistic), ``n_people`` and maybe ``n_firms``.
    """
    rules = _rules(rules)
    by_l = _listify(by)
    q = re.fullmatch(r"p(\d{1,2})", stat)
    if stat not in _STATS and not (q and 1 <= int(q.group(1)) <= 99):
        raise ValueError(f"check_statistic: stat must be one of {sorted(_STATS)} or a percentile 'p1'..'p99', "
                         f"got {stat!r}")
    ids = [c for c in (people, firms) if c]
    _prepare_micro(microdata, by_l, value, ids, f"microdata '{name}'")
    import duckdb

    qn = lambda c: '"' + c.replace('"', '""') + '"'  # noqa: E731
    v = qn(value)
    agg = {"mean": f"avg({v})", "median": f"quantile_cont({v}, 0.5)", "std": f"stddev_samp({v})",
           "min": f"min({v})", "max": f"max({v})", "sum": f"sum({v})", "count": "count(*)"}
    expr = f"quantile_cont({v}, {int(q.group(1)) / 100})" if q else agg[stat]
    keys_sql = ", ".join(qn(c) for c in by_l)
    counts = f"count(DISTINCT {qn(people)}) AS n_people" if people else "count(*) AS n_people"
    if firms:
        counts += f", count(DISTINCT {qn(firms)}) AS n_firms"
    con = duckdb.connect()
    try:
        con.register("micro", microdata[list(dict.fromkeys(by_l + [value] + ids))])
        out = con.execute(f"SELECT {keys_sql}, {expr} AS {v}, {counts} "
                          f"FROM micro GROUP BY ALL ORDER BY {keys_sql}").df()
    finally:
        con.close()
    for c in ("n_people", "n_firms"):
        if c in out:
            out[c] = out[c].astype(np.int64)
    labels = pd.MultiIndex.from_frame(out[by_l]) if len(by_l) > 1 else pd.Index(out[by_l[0]])
    verdicts: list[tuple[int, str, str]] = []
    summaries = []
    v, s = _threshold(out["n_people"].to_numpy(), labels, by_l, rules, rules.min_people,
                      "people" if people else "records", RULE_PEOPLE)
    verdicts += v
    summaries.append(s)
    if firms:
        v, s = _threshold(out["n_firms"].to_numpy(), labels, by_l, rules, rules.min_firms, "enterprises", RULE_FIRMS)
        verdicts += v
        summaries.append(s)
    column_verdicts = []
    if stat in _EXTREME_STATS and not rules.extremes_allowed:
        column_verdicts.append((value, RULE_EXTREME, f"the {'maximum' if stat == 'max' else 'minimum'} of {value} "
                                f"is a single record's value: not released under {rules.name}"))
        summaries.append(f"ExtremesCheck ({rules.name}): fail - {stat} of {value} is a single record.")
    command = f"prosperity.sdc.check_statistic({name!r}, by={by_l!r}, value={value!r}, stat={stat!r})"
    return _finish(name, "statistic", out, by_l, labels, verdicts, column_verdicts, by_l, rules,
                   " ".join(summaries), log, command, comment)


def _regression_dof(result) -> tuple[int, pd.DataFrame]:
    """Residual degrees of freedom and the coefficient table of a fitted model."""
    if hasattr(result, "_N") and hasattr(result, "_k") and hasattr(result, "tidy"):  # pyfixest Feols / Fepois
        k_fe = getattr(result, "_k_fe", None)
        n_fe = len(k_fe) if k_fe is not None else 0
        n_params = int(result._k) + (int(np.sum(k_fe)) - (n_fe - 1) if n_fe else 0)
        return int(result._N) - n_params, result.tidy().copy()
    if hasattr(result, "df_resid") and hasattr(result, "params"):  # statsmodels results
        params = pd.DataFrame({"coef": result.params, "std err": result.bse})
        return int(result.df_resid), params
    if hasattr(result, "df_resid"):
        coefs = result.to_frame() if hasattr(result, "to_frame") else pd.DataFrame()
        return int(result.df_resid), coefs
    raise TypeError(f"check_regression: cannot read residual degrees of freedom from {type(result).__name__}; "
                    "pass df_resid= (and coefficients=)")


def check_regression(result: Any = None, *, df_resid: int | None = None, coefficients: pd.DataFrame | None = None,
                     rules: str | Rules = "ons_srs", name: str = "regression", log: OutputLog | None = None,
                     comment: str | None = None) -> SDCReport:
    """Check a regression's residual degrees of freedom (acro's ``MinimumDoFCheck``).

    A model with fewer than ``min_dof`` residual degrees of freedom is close to a look-up table of its
    observations, so its coefficients can disclose them. Accepts a statsmodels results object, a pyfixest
    fit (fixed-effect levels count as parameters), any object with ``df_resid``, or ``df_resid=`` directly.

    Returns
    -------
    SDCReport
        ``safe_table`` is the coefficient table; if the check fails every value is suppressed and the status
        is ``"fail"``.
    """
    rules = _rules(rules)
    if result is not None:
        dof, coefs = _regression_dof(result)
    elif df_resid is not None:
        dof, coefs = int(df_resid), pd.DataFrame()
    else:
        raise ValueError("check_regression: pass a fitted model or df_resid=")
    if coefficients is not None:
        if isinstance(coefficients, pd.Series):
            coefficients = coefficients.to_frame(coefficients.name or "coef")
        if not isinstance(coefficients, pd.DataFrame):
            raise TypeError(f"check_regression: coefficients must be a DataFrame or Series, "
                            f"got {type(coefficients).__name__}")
        coefs = coefficients.copy()
    ev = _sdcchecks.SDCEvidence(dof=int(dof))
    with _quiet():
        res = _checker(rules).run_checks_for_analysis("LinearRegressionCoefficients", ev, None)
    failed = res.outcomes.get("MinimumDoFCheck") is not None and res.overall_status == "fail"
    labels = pd.Index(coefs.index) if len(coefs) else pd.Index(["model"])
    table = coefs if len(coefs) else pd.DataFrame({"df_resid": [dof]}, index=labels)
    whole = (RULE_DOF, f"residual degrees of freedom {dof} < {rules.min_dof}") if failed else None
    command = f"prosperity.sdc.check_regression({name!r}, df_resid={dof})"
    return _finish(name, "regression", table, None, labels, [], [], [], rules, res.summaries.strip(), log,
                   command, comment, whole_output=whole)

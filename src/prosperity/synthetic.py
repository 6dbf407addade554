"""A synthetic England: linked workers, firms and places on the 296 real districts, with the truth kept apart.

:func:`england` simulates a population of workers who are employed, year after year, at the local units
(sites) of enterprises located in England's 296 local authority districts (2023 codes), and returns the
records as the real data are delivered (ASHE/PAYE-like ``jobs``, IDBR/BSD-like ``local_units`` and
``enterprises``, ABS-like ``accounts``, an ONSPD-like ``postcode_lookup``, an enterprise-reference
``entref_continuity`` table, ``place_characteristics`` and the ``cpi``), messy in stated amounts, together
with the true effects and decompositions (:class:`Truth`) against which every estimator in the book is checked.
``england(..., source="paye_rti")`` delivers the same world and truth as a PAYE Real Time Information linked
extract (LEED: monthly pay-period records under employer PAYE schemes, a scheme -> enterprise lookup, the business
register; no paid hours), documented column by column in :data:`RTI_COLUMNS` (issue 16).

Data-generating process (log real hourly wage of worker *i* in year *t*, main job at local unit *u* of
enterprise *j* in district *l*, industry *k(j)*)::

    lhw_it = alpha_i + psi_j + phi_l + xb_it + eps_it
    alpha_i = a_edu[e_i] + a_occ[soc_i] + a_female * female_i + u_i,          u_i ~ N(0, sigma_u^2)
    psi_j   = eta_k + rho * omega_j + v_j                                        (rent sharing, rho)
    phi_l   = g_0 + sum_c gamma_c * xbar_lc + xi_l                               (place characteristics)
    xb_it   = b_0 + b_1 (age-40)/10 + b_2 ((age-40)/10)^2 + delta_t
    eps_it ~ N(0, s_it^2),  s_it = sigma_e (1 + h_pt * parttime_i + h_young * [age < 25])   (heteroskedastic)

Match effects and endogenous mobility (issue 18; off by default, when nothing above changes): with ``sd_match``
or ``match_complementarity`` set, log pay gains a match effect ``m_ij = sd_match * xi_ij + match_complementarity *
za_i * zpsi_j`` (``xi_ij`` ~ N(0, 1) drawn once per worker-enterprise pair; ``za``, ``zpsi`` the standardised worker
effect and premium), and with ``mobility_on_match`` > 0 a worker leaves a job with the voluntary-move probability
multiplied by ``exp(-k z - k^2 / 2)``, ``z`` the standardised match (bad matches are left more often). AKM's
additive separability then fails the way Card, Heining & Kline (2013, section V) test for: mover gains are no longer
symmetric (leavers of bad matches gain either way) and the mean residual by (alpha decile, psi decile) is no longer
flat under complementarity. Because good matches are kept, mobility falls below the calibrated rate.

Firm value added per hour of each job: ``log va_it = log(va_0) + mu_k + omega_j + theta * alpha_i + tau_l +
g_t``, with enterprise-year shocks; enterprise GVA sums it over the enterprise's jobs. Sorting: workers
choose districts with a skill-dependent attraction (``place_sort``) and within a district choose sites
by a Gaussian copula between their skill and the site's enterprise premium (``firm_sort``); managers and
professionals (SOC 1-2) are drawn to head offices, which concentrate in prosperous places. Job-to-job moves
(about 9% a year) follow a Markov chain over years with distance decay between district centroids.

Abowd, Kramarz & Margolis (1999, Econometrica 67(2)); Card, Heining & Kline (2013, QJE 128(3)); Card,
Rothstein & Yi (2021, CES WP 21-32); Card, Cardoso, Heining & Kline (2018, JOLE 36(S1)).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import _io, geography
from ._checks import InputTypeError, fail, require_columns, require_complete
from ._results import Result
from .classifications import sic_division_ranges

__all__ = [
    "SIZES",
    "DGP",
    "SyntheticEngland",
    "Truth",
    "PopulationWrite",
    "england",
    "load",
    "write_population",
    "calibration",
    "cpih",
    "main_job",
    "MESS_KINDS",
    "ASHE_RULE_SQL",
    "in_ashe_sample",
    "SOURCES",
    "CENTRAL_PAYROLL",
    "RTI_COLUMNS",
    "RTI_REQUIRED_TABLES",
    "RTI_MESS_KINDS",
    "rti_columns",
    "PART_TIME_HOURS",
    "FULL_TIME_HOURS",
    "expected_log_hours",
]

#: The kind of folder :meth:`SyntheticEngland.to_parquet` and :func:`write_population` write (in the manifest).
KIND = "synthetic_england"

#: The ASHE-style 1% sample: people whose ``piden`` ends in 14 (ASHE samples NINOs ending in a fixed pair).
ASHE_RULE_SQL = "piden % 100 = 14"


def in_ashe_sample(piden) -> np.ndarray:
    """Boolean mask of the ASHE-style 1% sample rule (``piden % 100 == 14``)."""
    return (np.asarray(piden, dtype=np.int64) % 100) == 14

#: Default number of workers (people ever employed in the window) and enterprises per size.
SIZES = {
    "workshop": dict(n_workers=30_000, n_enterprises=2_500),
    "research": dict(n_workers=270_000, n_enterprises=22_500),
    "population": dict(n_workers=27_000_000, n_enterprises=2_250_000),
}

#: Kinds of injected mess, in the order they are injected (see :func:`england`).
MESS_KINDS = (
    "secondary_job",
    "missing_luref",
    "missing_entref",
    "unknown_luref",
    "nonpositive_pay",
    "implausible_hours",
    "exact_duplicate",
    "reorganised_entref",
)

# ----------------------------------------------------------------------------------------------------------
# Published reference numbers hard-coded with their vintage (no download at run time)
# ----------------------------------------------------------------------------------------------------------

#: CPIH annual averages, 2015 = 100 (ONS series L522). APPROXIMATE: reconstructed from rounded annual CPIH
#: inflation rates, not read from the ONS series; check against L522 before quoting a level.
_CPIH = {
    2002: 76.1, 2003: 77.1, 2004: 78.0, 2005: 79.7, 2006: 81.5, 2007: 83.4, 2008: 86.3, 2009: 87.9,
    2010: 90.1, 2011: 93.5, 2012: 95.9, 2013: 98.1, 2014: 99.6, 2015: 100.0, 2016: 101.0, 2017: 103.6,
    2018: 106.0, 2019: 107.8, 2020: 108.9, 2021: 111.6, 2022: 120.5, 2023: 128.6,
}

#: Employment shares by SIC 2007 section used as targets (percent of employee jobs). Wholesale & retail (15.2)
#: and health (13.2) are BRES 2018 [S, econ_facts 2.5]; the others are rounded approximations of BRES
#: shares for England [U]: replace them with the Nomis BRES table before quoting them.
INDUSTRY_SHARES = {
    "A": 0.4, "B": 0.2, "C": 8.0, "D": 0.4, "E": 0.7, "F": 4.8, "G": 15.2, "H": 5.0, "I": 7.5, "J": 4.3,
    "K": 3.5, "L": 1.7, "M": 8.7, "N": 9.0, "O": 4.2, "P": 8.5, "Q": 13.2, "R": 2.5, "S": 1.8,
}
_IND = list(INDUSTRY_SHARES)  # industry index order

#: Industry wage premiums eta_k (log points; employment-weighted mean about zero).
_ETA = {
    "A": -0.12, "B": 0.16, "C": 0.03, "D": 0.16, "E": 0.02, "F": 0.02, "G": -0.09, "H": 0.0, "I": -0.19,
    "J": 0.13, "K": 0.22, "L": 0.04, "M": 0.09, "N": -0.06, "O": 0.05, "P": 0.0, "Q": -0.02, "R": -0.08,
    "S": -0.06,
}
#: Industry productivity levels mu_k (log value added per hour relative to the average).
_MU = {
    "A": -0.4, "B": 1.0, "C": 0.15, "D": 1.0, "E": 0.2, "F": 0.0, "G": -0.2, "H": 0.0, "I": -0.6, "J": 0.5,
    "K": 0.6, "L": 0.4, "M": 0.2, "N": -0.3, "O": 0.0, "P": -0.2, "Q": -0.3, "R": -0.3, "S": -0.4,
}
#: Value added as a share of turnover by industry (for turnover and purchases).
_VA_SHARE = {"C": 0.3, "G": 0.18, "B": 0.45, "D": 0.25, "F": 0.35, "K": 0.6, "L": 0.6, "H": 0.4, "A": 0.35}
#: How industries cluster by place: loading of the district's (prosperity g, London, North & Midlands, rural).
_CLUSTER = {
    "K": (0.7, 1.3, 0.0, 0.0), "J": (0.6, 0.9, 0.0, 0.0), "M": (0.5, 0.6, 0.0, 0.0), "L": (0.2, 0.4, 0, 0),
    "C": (-0.2, -1.2, 0.6, 0.3), "A": (0.0, -2.5, 0.0, 1.2), "B": (0.0, -2.0, 0.2, 0.8), "E": (0, -0.5, 0.1, 0.3),
    "H": (0.0, 0.0, 0.2, 0.2), "I": (0.0, 0.3, 0.0, 0.0), "N": (0.1, 0.3, 0.0, 0.0), "R": (0.0, 0.2, 0.0, 0.0),
}
#: SOC 2020 major group shares (percent) and occupation premiums in the worker effect.
_SOC_SHARES = np.array([11.0, 22.0, 14.0, 10.0, 10.0, 9.0, 7.0, 6.0, 11.0])
_SOC_PREMIUM = np.array([0.35, 0.30, 0.15, -0.05, 0.0, -0.20, -0.25, -0.15, -0.30])
#: Real year effects delta_t (log points, 2005 = 0): growth to 2008, the long squeeze, partial recovery.
_YEAR_EFFECT = {
    2002: -0.04, 2003: -0.025, 2004: -0.01, 2005: 0.0, 2006: 0.01, 2007: 0.02, 2008: 0.02, 2009: 0.01,
    2010: -0.005, 2011: -0.025, 2012: -0.04, 2013: -0.05, 2014: -0.055, 2015: -0.04, 2016: -0.03,
    2017: -0.03, 2018: -0.02, 2019: -0.005, 2020: 0.0, 2021: 0.005, 2022: -0.02, 2023: -0.02,
}
_CHARS = ("density", "transport_access", "housing_cost", "amenities")


def cpih(years=None) -> pd.DataFrame:
    """CPIH annual index (2015 = 100) as a ``year, cpih`` table.

    Approximate values reconstructed from rounded annual CPIH inflation rates (ONS series L522 / L55O);
    they serve as the synthetic deflator and must be replaced by the published series for real work.
    """
    df = pd.DataFrame({"year": list(_CPIH), "cpih": list(_CPIH.values())})
    if years is not None:
        lo, hi = years
        df = df[(df.year >= lo) & (df.year <= hi)].reset_index(drop=True)
    return df.astype({"year": "int64", "cpih": "float64"})


# ----------------------------------------------------------------------------------------------------------
# Parameters
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DGP:
    """Parameters of the data-generating process; any field can be overridden in :func:`england`.

    Every parameter has the type of its default (an integer, a finite number, or a tuple of as many numbers) and
    a range; a wrong one raises an ``InputError`` (``InputTypeError`` for a wrong type) naming it. ``sd_match``,
    ``match_complementarity`` and ``mobility_on_match`` switch on match effects and endogenous mobility (module
    docstring); e.g. ``england(sd_match=0.1, match_complementarity=0.08, mobility_on_match=1.0)``.
    """

    n_workers: int = 30_000
    n_enterprises: int = 2_500
    # worker effect
    a_edu: tuple = (0.0, 0.10, 0.25)
    p_edu: tuple = (0.30, 0.35, 0.35)
    a_female: float = -0.10
    sigma_u: float = 0.22
    # firm premium and productivity
    rent_sharing: float = 0.12
    sigma_omega: float = 0.55
    omega_place: float = 0.04
    sigma_v: float = 0.14
    theta_skill: float = 0.4
    tau_place: float = 0.10
    firm_size_pareto: float = 1.05
    size_productivity: float = 0.3
    # place effect phi = g0 + gamma . xbar + xi
    gamma: tuple = (0.008, 0.016, 0.0, 0.008)  # density, transport_access, housing_cost, amenities
    sigma_xi: float = 0.012
    # sorting
    firm_sort: float = 0.30
    place_sort: float = 0.20
    hq_bonus: float = 4.0
    # mobility
    move_rate: float = 0.058
    distance_km: float = 25.0
    distance_floor: float = 0.02
    p_gap: float = 0.04
    # wages
    intercept: float = 2.45
    age_b1: float = 0.08
    age_b2: float = -0.07
    sigma_e: float = 0.15
    het_parttime: float = 0.3
    het_young: float = 0.2
    # firm dynamics
    entry_share: float = 0.25
    exit_hazard: float = 0.05
    # mess (rates per main-job row unless stated)
    secondary_rate: float = 0.04
    duplicate_rate: float = 0.004
    missing_luref_rate: float = 0.002
    missing_entref_rate: float = 0.002
    unknown_luref_rate: float = 0.001
    nonpositive_pay_rate: float = 0.001
    implausible_hours_rate: float = 0.0015
    reorg_rate: float = 0.03  # share of enterprises reorganised (new reference) in the window
    # business survey
    abs_census_size: int = 50
    abs_sample_rate: float = 0.25
    # match effects and endogenous mobility (off by default: issue 18's world where AKM's diagnostics fail)
    sd_match: float = 0.0
    match_complementarity: float = 0.0
    mobility_on_match: float = 0.0

    def __post_init__(self):
        for f in fields(self):
            _check_param(f.name, getattr(self, f.name), f.default)
        for name in ("n_workers", "n_enterprises", "abs_census_size"):
            if getattr(self, name) < 1:
                fail(f"DGP: {name} must be at least 1, got {getattr(self, name)}")
        for name in ("move_rate", "p_gap", "secondary_rate", "duplicate_rate", "missing_luref_rate",
                     "missing_entref_rate", "unknown_luref_rate", "nonpositive_pay_rate",
                     "implausible_hours_rate", "reorg_rate", "abs_sample_rate", "entry_share", "exit_hazard"):
            v = getattr(self, name)
            if not 0.0 <= v < 1.0:
                fail(f"DGP: {name} must be in [0, 1), got {v}")
        for name in ("sigma_u", "sigma_omega", "sigma_v", "sigma_xi", "sigma_e", "het_parttime", "het_young",
                     "sd_match", "mobility_on_match"):
            if getattr(self, name) < 0:
                fail(f"DGP: {name} must be non-negative, got {getattr(self, name)}")
        if min(self.p_edu) < 0 or sum(self.p_edu) <= 0:
            fail(f"DGP: p_edu must be non-negative with a positive sum, got {self.p_edu}")
        if not -1.0 < self.firm_sort < 1.0:
            fail(f"DGP: firm_sort must be in (-1, 1), got {self.firm_sort}")
        for name in ("hq_bonus", "distance_km", "firm_size_pareto"):
            if getattr(self, name) <= 0:
                fail(f"DGP: {name} must be positive, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        """Every parameter as plain Python values (tuples as lists; JSON-serialisable)."""
        py = lambda x: x.item() if isinstance(x, np.generic) else x  # noqa: E731
        return {f.name: ([py(x) for x in v] if isinstance(v := getattr(self, f.name), tuple) else py(v))
                for f in fields(self)}


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_real(v) -> bool:
    return (_is_int(v) or isinstance(v, (float, np.floating))) and math.isfinite(v)


def _check_param(name: str, value, default) -> None:
    """A DGP parameter has the type of its default: an integer, a finite number, or a tuple of as many numbers."""
    if isinstance(default, tuple):
        ok, want = (isinstance(value, tuple) and len(value) == len(default) and all(map(_is_real, value)),
                    f"a sequence of {len(default)} finite numbers")
    elif isinstance(default, int):
        ok, want = _is_int(value), "an integer"
    else:
        ok, want = _is_real(value), "a finite number"
    if not ok:
        fail(f"DGP: {name} must be {want}, got {value!r} ({type(value).__name__})", kind=InputTypeError)


def _check_seed(seed, fn: str) -> int:
    if not _is_int(seed):
        fail(f"{fn}: seed must be a non-negative integer, got {seed!r} ({type(seed).__name__})", kind=InputTypeError)
    if seed < 0:
        fail(f"{fn}: seed must be a non-negative integer, got {seed}")
    return int(seed)


def _make_dgp(size: str, overrides: dict, fn: str = "england") -> DGP:
    if not isinstance(size, str) or size not in SIZES:
        fail(f"{fn}: size must be one of {list(SIZES)}, got {size!r}")
    known = {f.name for f in fields(DGP)}
    bad = sorted(set(overrides) - known)
    if bad:
        fail(f"{fn}: unknown DGP overrides {bad}; known: {sorted(known)}", kind=InputTypeError)
    kw = dict(SIZES[size])
    kw.update({k: (tuple(v) if isinstance(v, (list, np.ndarray)) else v) for k, v in overrides.items()})
    return DGP(**kw)


# ----------------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------------


def _ndtri(p):
    from scipy.special import ndtri

    return ndtri(p)


def _ndtr(x):
    from scipy.special import ndtr

    return ndtr(x)


#: Weekly paid hours of a part-time worker-year: uniform on this range, then rounded to 0.1 h.
PART_TIME_HOURS = (8.0, 29.9)
#: Weekly paid hours of a full-time worker-year: normal (mean, s.d.) clipped to [low, high], rounded to 0.1 h.
FULL_TIME_HOURS = (38.0, 3.0, 30.0, 60.0)


def _draw_hours(rng, parttime: np.ndarray) -> np.ndarray:
    """Weekly paid hours of each worker-year (the one definition of the hours distributions)."""
    a, b = PART_TIME_HOURS
    m, sd, low, high = FULL_TIME_HOURS
    n = len(parttime)
    return np.round(np.where(parttime, rng.uniform(a, b, n), np.clip(rng.normal(m, sd, n), low, high)), 1)


def expected_log_hours() -> dict[int, float]:
    """E[log weekly hours] of a worker-year by the full-time flag ``ft`` (1 full time, 2 part time), exactly, under
    the hours distributions of synthetic England (:data:`PART_TIME_HOURS`, :data:`FULL_TIME_HOURS`, with the
    rounding to 0.1 h).

    It is the truth a pay-per-day outcome needs: log pay per day = log hourly pay + log hours + log(52 / days), so on
    PAYE RTI's ``ldw`` the true worker effect is ``alpha + expected_log_hours()[ft]`` (chapter 14)."""
    def mean_log(grid, lo, hi, cdf):
        p = cdf(hi) - cdf(lo)
        return float(np.sum(p * np.log(grid)) / np.sum(p))

    a, b = PART_TIME_HOURS
    g = np.arange(round(a * 10), round(b * 10) + 1) / 10
    part = mean_log(g, np.maximum(g - 0.05, a), np.minimum(g + 0.05, b), lambda x: (x - a) / (b - a))
    m, sd, low, high = FULL_TIME_HOURS
    g = np.arange(round(low * 10), round(high * 10) + 1) / 10
    lo, hi = g - 0.05, g + 0.05
    lo[0], hi[-1] = -np.inf, np.inf  # the clipped tails are rounded onto the end points
    full = mean_log(g, lo, hi, lambda x: _ndtr((x - m) / sd))
    return {1: full, 2: part}


def _splitmix(x: np.ndarray, seed: int) -> np.ndarray:
    """Vectorised splitmix64 hash of integer ids (deterministic pseudo-random digits, independent of blocks)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 * (seed + 1)) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _piden(index: np.ndarray, seed: int) -> np.ndarray:
    """Person ids: 10 digits, unique, with pseudo-random last two digits (so ``piden % 100 == 14`` is a 1% rule)."""
    digits = (_splitmix(index, seed) % np.uint64(100)).astype(np.int64)
    return 1_000_000_000 + index.astype(np.int64) * 100 + digits


def _sinkhorn(base: np.ndarray, rows: np.ndarray, cols: np.ndarray, iters: int = 200) -> np.ndarray:
    """Scale a positive matrix to the given row and column sums (iterative proportional fitting)."""
    m = base.astype(np.float64).copy()
    for _ in range(iters):
        m *= (rows / np.maximum(m.sum(1), 1e-300))[:, None]
        m *= (cols / np.maximum(m.sum(0), 1e-300))[None, :]
    return m


def _rowwise_search(cdf: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """For each i, the first column c with cdf[rows[i], c] > u[i] (vectorised binary search over rows)."""
    ncol = cdf.shape[1]
    flat = cdf.reshape(-1)
    base = rows.astype(np.int64) * ncol
    lo = np.zeros(len(u), dtype=np.int64)
    hi = np.full(len(u), ncol - 1, dtype=np.int64)
    while True:
        active = lo < hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        go_right = flat[base + mid] <= u
        lo = np.where(active & go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)
    return lo


def _uniq(x: np.ndarray) -> np.ndarray:
    """Sorted unique values (sort-based: faster than numpy's hash-based unique on large integer arrays)."""
    x = np.sort(x)
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if len(x) else x


def _isin_sorted(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``np.isin(x, ref)`` for a sorted ``ref``, by binary search."""
    if len(ref) == 0:
        return np.zeros(len(x), dtype=bool)
    pos = np.minimum(np.searchsorted(ref, x), len(ref) - 1)
    return ref[pos] == x


def _unique_ids(rng, n: int, low: int, high: int, exclude=None) -> np.ndarray:
    """n distinct random integers in [low, high), none in ``exclude``, in random order."""
    out = np.empty(0, dtype=np.int64)
    ex = np.sort(np.asarray(exclude if exclude is not None else [], dtype=np.int64))
    while len(out) < n:
        k = int((n - len(out)) * 1.05) + 16
        cand = np.concatenate([out, rng.integers(low, high, size=k, dtype=np.int64)])
        cand.sort()
        cand = cand[np.concatenate([[True], cand[1:] != cand[:-1]])]
        if len(ex):
            pos = np.minimum(np.searchsorted(ex, cand), len(ex) - 1)
            cand = cand[ex[pos] != cand]
        out = cand
    return rng.permutation(out)[:n]


# ----------------------------------------------------------------------------------------------------------
# Places
# ----------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _centroids_km() -> pd.DataFrame:
    b = geography.boundaries().to_crs(27700)
    c = b.geometry.representative_point()
    return pd.DataFrame({"lad": b["lad"].to_numpy(), "x": c.x.to_numpy() / 1000, "y": c.y.to_numpy() / 1000})


def _std(x):
    x = np.asarray(x, dtype=float)
    return (x - x.mean()) / x.std()


@dataclass
class _Places:
    table: pd.DataFrame  # one row per district (index = district index)
    jobs_share: np.ndarray
    g: np.ndarray  # standardised log real GVA per hour
    attract: np.ndarray  # skill attraction index S_l
    phi: np.ndarray
    tau: np.ndarray
    chars: pd.DataFrame  # district-year characteristics
    xbar: np.ndarray  # (L, 4) standardised time-mean characteristics
    xbar_mean: np.ndarray
    xbar_sd: np.ndarray
    phi_char: np.ndarray
    xi: np.ndarray
    dist: np.ndarray  # (L, L) km


def _places(dgp: DGP, years: tuple[int, int], seed: int) -> _Places:
    rng = np.random.default_rng([seed, 11])
    d = geography.districts()
    cen = _centroids_km().set_index("lad").loc[d["lad"]]
    L = len(d)
    jobs = d["filled_jobs"].to_numpy(float)
    jobs_share = jobs / jobs.sum()
    g = _std(np.log(d["gva_per_hour"].to_numpy(float)))
    pay = np.log(d["median_weekly_pay"].to_numpy(float))
    pay = np.where(np.isfinite(pay), pay, np.nan)
    pay_std = (pay - np.nanmean(pay)) / np.nanstd(pay)
    pay_std = np.where(np.isfinite(pay_std), pay_std, g)
    attract = _std(0.5 * g + 0.5 * pay_std)
    london = (d["region"] == "E12000007").to_numpy()

    # place characteristics by year: density is real (population / area), the others are synthetic indices
    ts = geography.district_timeseries()[["lad", "year", "population"]]
    y0, y1 = years
    yrs = np.arange(y0, y1 + 1)
    pop = ts.pivot(index="lad", columns="year", values="population").reindex(d["lad"])
    popm = np.column_stack([pop[min(max(y, min(pop.columns)), max(pop.columns))].to_numpy(float) for y in yrs])
    area = d["area_km2"].to_numpy(float)
    density = popm / area[:, None]  # persons per km2, (L, T)
    ldens = _std(np.log(density.mean(1)))
    transport = _std(0.45 * g + 0.55 * ldens + 0.45 * rng.standard_normal(L) + 0.8 * london)
    amen = _std(0.35 * g + 0.25 * ldens + 0.8 * rng.standard_normal(L))
    lhouse = 11.9 + 0.25 * g + 0.08 * ldens + 0.35 * london + 0.12 * rng.standard_normal(L)
    T = len(yrs)
    trend = np.arange(T)
    tr_t = transport[:, None] * 15 + 60 + 0.3 * trend[None, :] + 1.0 * rng.standard_normal((L, T))
    am_t = amen[:, None] * 10 + 50 + 0.7 * rng.standard_normal((L, T))
    # house prices: real growth with a dip after 2008, faster in London and the South
    cycle = np.array([0.06 * min(y - y0, 3) - 0.12 * max(0, min(y - 2008, 2)) + 0.035 * max(0, y - 2012)
                      for y in yrs])
    ho_t = np.exp(lhouse[:, None] + cycle[None, :] * (1 + 0.5 * g[:, None]) + 0.02 * rng.standard_normal((L, T)))
    chars = pd.DataFrame({
        "lad": np.repeat(d["lad"].to_numpy(), T),
        "year": np.tile(yrs, L).astype("int64"),
        "density": density.reshape(-1),
        "transport_access": tr_t.reshape(-1),
        "housing_cost": ho_t.reshape(-1),
        "amenities": am_t.reshape(-1),
    })
    # standardised time means (log density, log housing cost) -> phi
    raw = np.column_stack([np.log(density).mean(1), tr_t.mean(1), np.log(ho_t).mean(1), am_t.mean(1)])
    xm, xs = raw.mean(0), raw.std(0)
    xbar = (raw - xm) / xs
    gamma = np.asarray(dgp.gamma, dtype=float)
    xi = dgp.sigma_xi * rng.standard_normal(L)
    phi_char = xbar @ gamma
    phi0 = -float(np.sum(jobs_share * (phi_char + xi)))
    phi = phi0 + phi_char + xi
    tau = dgp.tau_place * g
    c = cen[["x", "y"]].to_numpy()
    dist = np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    table = d[["lad", "lad_name", "itl3", "region"]].copy()
    table["phi0"] = phi0
    return _Places(table, jobs_share, g, attract, phi, tau, chars, xbar, xm, xs, phi_char, xi, dist)


# ----------------------------------------------------------------------------------------------------------
# Firms
# ----------------------------------------------------------------------------------------------------------


@dataclass
class _World:
    dgp: DGP
    years: tuple[int, int]
    seed: int
    places: _Places
    # enterprises (index j)
    ent_industry: np.ndarray  # industry index
    ent_sic: np.ndarray  # 5-digit strings
    ent_omega: np.ndarray
    ent_psi: np.ndarray
    ent_eta: np.ndarray
    ent_weight: np.ndarray
    ent_birth: np.ndarray
    ent_death: np.ndarray  # last year alive, or 9999
    ent_refs: np.ndarray  # (J, 3) references: original, after 1st, after 2nd reorganisation (-1 if none)
    ent_reorg_year: np.ndarray  # (J, 2), 9999 if none
    ent_foreign: np.ndarray
    # local units (index u), sorted by (district, psi)
    lu_ent: np.ndarray
    lu_lad: np.ndarray
    lu_weight: np.ndarray
    lu_hq: np.ndarray  # head office of a multi-site enterprise
    lu_ref: np.ndarray
    lu_postcode: np.ndarray  # index into postcodes
    lu_start: np.ndarray  # first index of each district in the sorted LU arrays (L+1)
    postcodes: pd.DataFrame
    # place choice tables
    place_cdf: np.ndarray  # (B, L) entrants
    move_cdf: np.ndarray  # (B*L, L) movers by (skill bin, origin)
    alpha_mean: float
    alpha_sd: float


_N_BINS = 10


def _sic_codes(rng, industry_idx: np.ndarray) -> np.ndarray:
    ranges = sic_division_ranges().set_index("section")
    lo = np.array([ranges.loc[k, "first_division"] for k in _IND])
    hi = np.array([ranges.loc[k, "last_division"] for k in _IND])
    div = lo[industry_idx] + (rng.random(len(industry_idx)) * (hi - lo + 1)[industry_idx]).astype(int)
    rest = rng.integers(10, 100, size=len(industry_idx)) * 10 + rng.integers(0, 10, size=len(industry_idx)) // 5
    # five digits: division (2) + group/class (2) + subclass (1)
    codes = div * 1000 + rest
    return np.char.zfill(codes.astype(str), 5).astype(object)


def _postcode_strings(lad_idx: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Synthetic postcodes 'AAn[n] nUU' (area letters from the district, the rest from k), built as bytes."""
    area = np.frombuffer(b"ABCDEFGHJKLMNOPRSTUWYZ", dtype=np.uint8)
    unit = np.frombuffer(b"ABDEFGHJLNPQRSTUWXYZ", dtype=np.uint8)
    n = len(k)
    num = 1 + k // 4000
    two = num >= 10
    m = np.full((n, 8), ord(" "), dtype=np.uint8)
    m[:, 0] = area[lad_idx // len(area) % len(area)]
    m[:, 1] = area[lad_idx % len(area)]
    m[:, 2] = np.where(two, ord("0") + num // 10 % 10, ord("0") + num % 10)
    m[:, 3] = np.where(two, ord("0") + num % 10, ord(" "))
    c = np.where(two, 5, 4)
    rows = np.arange(n)
    m[rows, c] = ord("0") + k // 400 % 10
    m[rows, c + 1] = unit[k % 400 // 20]
    m[rows, c + 2] = unit[k % 20]
    s = m.view("S8").reshape(-1)
    return np.char.rstrip(s.astype("U8")).astype(object)


def _world(dgp: DGP, years: tuple[int, int], seed: int) -> _World:
    rng = np.random.default_rng([seed, 22])
    y0, y1 = years
    P = _places(dgp, years, seed)
    L = len(P.table)
    J = int(dgp.n_enterprises)
    K = len(_IND)
    # reference worker effects for standardisation
    ref = _draw_workers(dgp, np.arange(200_000), seed=seed + 10_007)
    alpha_mean, alpha_sd = float(ref["alpha"].mean()), float(ref["alpha"].std())

    # firm productivity and size (Pareto weights, bigger when more productive)
    omega_raw = dgp.sigma_omega * rng.standard_normal(J)
    weight = (1.0 - rng.random(J)) ** (-1.0 / dgp.firm_size_pareto)
    weight *= np.exp(dgp.size_productivity * omega_raw)
    weight = np.minimum(weight, weight.sum() * 0.01)
    n_active = dgp.n_workers * 0.75
    exp_size = weight / weight.sum() * n_active
    n_sites = np.ones(J, dtype=np.int64)
    big = exp_size > 20
    n_sites[big] += rng.poisson(np.minimum((exp_size[big] / 25.0) ** 0.85, 400))
    n_sites = np.minimum(n_sites, np.maximum(1, (exp_size / 3).astype(np.int64)))
    multi = n_sites > 1

    # industry first (national shares), then the head-office district given the industry: industries cluster
    # by place (Sinkhorn-scaled so districts keep their share of enterprises), and multi-site enterprises put
    # their head offices in prosperous places
    london = (P.table["region"] == "E12000007").to_numpy()
    north_mid = P.table["region"].isin(["E12000001", "E12000002", "E12000003", "E12000004", "E12000005"]).to_numpy()
    ldens = _std(P.xbar[:, 0])
    feats = np.column_stack([P.g, london, north_mid, -ldens])
    load = np.array([_CLUSTER.get(k, (0, 0, 0, 0)) for k in _IND], dtype=float)
    shares = np.array([INDUSTRY_SHARES[k] for k in _IND], dtype=float)
    shares /= shares.sum()
    base = P.jobs_share[:, None] * shares[None, :] * np.exp(feats @ load.T)
    M = _sinkhorn(base, P.jobs_share, shares)  # (L, K) enterprise mass by district and industry
    # industries in proportion to (expected) employment: systematic PPS over a random order of firms
    perm = rng.permutation(J)
    cw = np.cumsum(weight[perm]) / weight.sum()
    mid = (cw - 0.5 * weight[perm] / weight.sum() + rng.random()) % 1.0
    ind = np.empty(J, dtype=np.int64)
    ind[perm] = np.minimum(np.searchsorted(np.cumsum(shares), mid, side="right"), K - 1)
    pl_single = (M / M.sum(0, keepdims=True)).T  # (K, L): P(district | industry)
    pl_multi = pl_single * np.exp(0.5 * P.g)[None, :]
    pl_multi /= pl_multi.sum(1, keepdims=True)
    cdf_single, cdf_multi = np.cumsum(pl_single, 1), np.cumsum(pl_multi, 1)
    u = rng.random(J)
    hq = np.where(multi, _rowwise_search(cdf_multi, ind, u * cdf_multi[ind, -1]),
                  _rowwise_search(cdf_single, ind, u * cdf_single[ind, -1]))
    eta = np.array([_ETA[k] for k in _IND])[ind]
    omega = omega_raw + dgp.omega_place * P.g[hq]
    v = dgp.sigma_v * rng.standard_normal(J)
    psi = eta + dgp.rent_sharing * omega + v
    psi = psi - float(np.sum(weight * psi) / weight.sum())

    # firm births and deaths (last year alive); the biggest firms live through the window
    born_in = rng.random(J) < dgp.entry_share
    birth = np.where(born_in, rng.integers(y0 + 1, y1 + 1, size=J), y0 - 1 - rng.geometric(0.08, size=J))
    hazard = np.where(exp_size > 50, dgp.exit_hazard * 0.2, dgp.exit_hazard)
    life = rng.geometric(np.maximum(hazard, 1e-6), size=J)
    death = birth + life - 1
    death = np.where(death < y0, y0 + rng.integers(0, y1 - y0 + 1, size=J), death)
    immortal = exp_size >= np.quantile(exp_size, 0.97)
    death = np.where(immortal | (death > y1), 9999, death)
    birth = np.where(immortal, np.minimum(birth, y0 - 1), birth)

    # local units: head office + other sites (near the head office, spread by jobs)
    n_lu = int(n_sites.sum())
    lu_ent = np.repeat(np.arange(J), n_sites)
    first = np.zeros(n_lu, dtype=bool)
    first[np.concatenate([[0], np.cumsum(n_sites)[:-1]])] = True
    lu_lad = np.empty(n_lu, dtype=np.int64)
    lu_lad[first] = hq
    other = ~first
    if other.any():
        kern = P.jobs_share[None, :] * (np.exp(-P.dist / 120.0) + 0.15)
        cdf_site = np.cumsum(kern / kern.sum(1, keepdims=True), 1)
        lu_lad[other] = _rowwise_search(cdf_site, hq[lu_ent[other]], rng.random(int(other.sum())))
    share = np.where(first, 0.2, rng.exponential(1.0, n_lu))
    other_sum = np.bincount(lu_ent, weights=np.where(first, 0.0, share), minlength=J)
    lu_w = np.where(first, np.where(multi[lu_ent], 0.2, 1.0),
                    0.8 * share / np.maximum(other_sum[lu_ent], 1e-12)) * weight[lu_ent]
    lu_hq = first & multi[lu_ent]

    # anchors: every district gets a site of an immortal multi-site enterprise, so it always has a live site
    alive_all = death == 9999
    has_anchor = np.zeros(L, dtype=bool)
    has_anchor[np.unique(lu_lad[alive_all[lu_ent] & (birth[lu_ent] < y0)])] = True
    need = np.flatnonzero(~has_anchor)
    if len(need):
        donors = np.flatnonzero(immortal)
        add_ent = donors[rng.integers(0, len(donors), size=len(need))]
        lu_ent = np.concatenate([lu_ent, add_ent])
        lu_lad = np.concatenate([lu_lad, need])
        lu_w = np.concatenate([lu_w, weight[add_ent] * 0.02 + P.jobs_share[need] * n_active * 0.02])
        lu_hq = np.concatenate([lu_hq, np.zeros(len(need), dtype=bool)])
    # sort sites by district, then by enterprise premium (for the sorting copula)
    order = np.lexsort((psi[lu_ent], lu_lad))
    lu_ent, lu_lad, lu_w, lu_hq = lu_ent[order], lu_lad[order], lu_w[order], lu_hq[order]
    n_lu = len(lu_ent)
    lu_start = np.searchsorted(lu_lad, np.arange(L + 1))

    # references: enterprise (9 digits), local unit (10 digits), reorganisations
    n_reorg = int(round(dgp.reorg_rate * J))
    refs = np.full((J, 3), -1, dtype=np.int64)
    reorg_year = np.full((J, 2), 9999, dtype=np.int64)
    first_year = np.maximum(birth, y0)
    last_year = np.minimum(death, y1)
    eligible = np.flatnonzero(last_year - first_year >= 1)
    chosen = rng.choice(eligible, size=min(n_reorg, len(eligible)), replace=False)
    r1 = first_year[chosen] + 1 + (rng.random(len(chosen)) * (last_year[chosen] - first_year[chosen])).astype(int)
    reorg_year[chosen, 0] = r1
    twice = chosen[(rng.random(len(chosen)) < 0.15) & (last_year[chosen] > r1)]
    r1t = reorg_year[twice, 0]
    reorg_year[twice, 1] = r1t + 1 + (rng.random(len(twice)) * (last_year[twice] - r1t)).astype(int)
    n_refs = J + len(chosen) + len(twice)
    all_refs = _unique_ids(rng, n_refs, 100_000_000, 1_000_000_000)
    refs[:, 0] = all_refs[:J]
    refs[chosen, 1] = all_refs[J : J + len(chosen)]
    refs[twice, 2] = all_refs[J + len(chosen) :]
    lu_ref = _unique_ids(rng, n_lu, 1_000_000_000, 10_000_000_000)
    foreign = rng.random(J) < np.clip(0.02 + 0.08 * np.log1p(exp_size) / 5 + 0.05 * (omega > 0.5), 0, 0.6)

    # postcodes: a pool per district, sites draw from their district's pool
    n_lu_d = np.bincount(lu_lad, minlength=L)
    n_pc = n_lu_d // 2 + 3
    pc_lad = np.repeat(np.arange(L), n_pc)
    pc_k = np.arange(len(pc_lad)) - np.repeat(np.concatenate([[0], np.cumsum(n_pc)[:-1]]), n_pc)
    pc_k = pc_k * 7 + (pc_lad * 13) % 7  # spread codes inside the district's postcode space
    pcs = _postcode_strings(pc_lad, pc_k)
    pc_first = np.concatenate([[0], np.cumsum(n_pc)[:-1]])
    lu_pc = pc_first[lu_lad] + (rng.random(n_lu) * n_pc[lu_lad]).astype(np.int64)
    postcodes = pd.DataFrame({
        "postcode": pcs,
        "lad": P.table["lad"].to_numpy()[pc_lad],
        "itl3": P.table["itl3"].to_numpy()[pc_lad],
        "region": P.table["region"].to_numpy()[pc_lad],
    })

    # place-choice tables: entrants by skill bin (Sinkhorn so that district employment follows filled jobs)
    centres = _ndtri((np.arange(_N_BINS) + 0.5) / _N_BINS)
    base = np.exp(dgp.place_sort * centres[:, None] * P.attract[None, :])
    T = _sinkhorn(base * P.jobs_share[None, :], np.full(_N_BINS, 1.0 / _N_BINS), P.jobs_share)
    place_cdf = np.cumsum(T / T.sum(1, keepdims=True), 1)
    kern = np.exp(-P.dist / dgp.distance_km) + dgp.distance_floor
    mv = T[:, None, :] * kern[None, :, :]  # (B, L_origin, L_dest)
    mv /= mv.sum(2, keepdims=True)
    move_cdf = np.cumsum(mv, 2).reshape(_N_BINS * L, L)

    return _World(
        dgp, years, seed, P, ind, _sic_codes(rng, ind), omega, psi, eta, weight, birth, death, refs,
        reorg_year, foreign, lu_ent, lu_lad, lu_w, lu_hq, lu_ref, lu_pc, lu_start, postcodes, place_cdf,
        move_cdf, alpha_mean, alpha_sd,
    )


# ----------------------------------------------------------------------------------------------------------
# Workers
# ----------------------------------------------------------------------------------------------------------


def _draw_workers(dgp: DGP, index: np.ndarray, seed: int, years=(2005, 2019)) -> dict:
    """Time-invariant worker attributes for global worker indices (deterministic per index block)."""
    rng = np.random.default_rng([seed, 33, int(index[0]) if len(index) else 0, len(index)])
    n = len(index)
    y0, y1 = years
    female = rng.random(n) < 0.5
    edu = rng.choice(3, size=n, p=np.asarray(dgp.p_edu) / np.sum(dgp.p_edu))
    latent = np.asarray(dgp.a_edu)[edu] / 0.12 + rng.standard_normal(n)
    cuts = np.quantile(latent, np.cumsum(_SOC_SHARES[::-1])[:-1] / _SOC_SHARES.sum()) if n > 50 else None
    if cuts is None:
        cuts = np.quantile(rng.standard_normal(1000), np.cumsum(_SOC_SHARES[::-1])[:-1] / _SOC_SHARES.sum())
    soc = 9 - np.searchsorted(cuts, latent)  # high latent skill -> SOC 1
    # shuffle a little across neighbouring groups
    soc = np.clip(soc + rng.choice([-1, 0, 0, 0, 1], size=n), 1, 9)
    u = dgp.sigma_u * rng.standard_normal(n)
    alpha = np.asarray(dgp.a_edu)[edu] + _SOC_PREMIUM[soc - 1] + dgp.a_female * female + u
    birth = rng.integers(y0 - 64, y1 - 18 + 1, size=n)
    pt_prob = np.where(female, 0.38, 0.12) + 0.08 * (soc >= 6)
    parttime = rng.random(n) < pt_prob
    return dict(female=female, edu=edu, soc=soc.astype(np.int64), alpha=alpha, birth=birth, parttime=parttime)


def _site_cdf(world: _World, year: int, hq_group: bool) -> tuple[np.ndarray, np.ndarray]:
    """Within-district cumulative site weights (district index + share in [0, 1]) for live sites in a year."""
    cache = world.__dict__.setdefault("_site_static", {})
    if not cache:
        ent = world.lu_ent
        cache["birth"] = world.ent_birth[ent]
        cache["death"] = world.ent_death[ent]
        cache[True] = np.where(world.lu_hq, world.lu_weight * world.dgp.hq_bonus, world.lu_weight)
        cache[False] = np.where(world.lu_hq, world.lu_weight * 0.6, world.lu_weight)
    alive = (cache["birth"] <= year) & (cache["death"] >= year)
    cs = np.cumsum(np.where(alive, cache[hq_group], 0.0))
    start = world.lu_start
    cs0 = np.concatenate([[0.0], cs])
    before = cs0[start[:-1]]
    total = cs0[start[1:]] - before
    L = len(start) - 1
    lad = world.lu_lad
    C = lad + (cs - before[lad]) / np.maximum(total, 1e-300)[lad]
    live = np.flatnonzero(alive)
    pos = np.searchsorted(lad[live], np.arange(L), side="right") - 1
    last_live = np.where(pos >= 0, live[np.maximum(pos, 0)], -1)
    return C, last_live


def _choose_site(world, C, last_live, district, q):
    x = district + np.clip(q, 0.0, 1.0 - 1e-12)
    idx = np.searchsorted(C, x, side="right")
    idx = np.minimum(idx, len(C) - 1)
    bad = world.lu_lad[idx] != district
    if bad.any():
        idx[bad] = last_live[district[bad]]
    return idx


def _simulate_block(world: _World, index: np.ndarray, site_cdfs=None) -> dict:
    """Simulate the careers of workers with global indices ``index``: one row per person-year main job,
    plus secondary jobs. Vectorised over workers, looping over years (a Markov chain)."""
    dgp = world.dgp
    y0, y1 = world.years
    seed = world.seed
    W = _draw_workers(dgp, index, seed, world.years)
    rng = np.random.default_rng([seed, 44, int(index[0]), len(index)])
    n = len(index)
    za = (W["alpha"] - world.alpha_mean) / world.alpha_sd
    skill_bin = np.clip(np.searchsorted(_ndtri(np.arange(1, _N_BINS) / _N_BINS), za), 0, _N_BINS - 1)
    hqg = W["soc"] <= 2
    L = len(world.places.table)
    rho = dgp.firm_sort
    cur = np.full(n, -1, dtype=np.int64)
    rows_w, rows_y, rows_u, rows_move = [], [], [], []
    prev_ent = np.full(n, -1, dtype=np.int64)
    for year in range(y0, y1 + 1):
        if site_cdfs is not None:
            (Ch, lh), (Co, lo) = site_cdfs[year]
        else:
            Ch, lh = _site_cdf(world, year, True)
            Co, lo = _site_cdf(world, year, False)
        age = year - W["birth"]
        active = (age >= 18) & (age <= 64)
        cur[~active] = -1
        entrant = active & (cur < 0)
        cont = active & (cur >= 0)
        ent_cur = world.lu_ent[np.maximum(cur, 0)]
        dead = cont & ~((world.ent_birth[ent_cur] <= year) & (world.ent_death[ent_cur] >= year))
        m_age = dgp.move_rate * np.clip(1.7 - 0.028 * (age - 18), 0.5, 1.7)
        if dgp.mobility_on_match > 0 and _match_on(dgp):  # bad matches are left more often (the mean
            # factor is 1 over a fresh N(0, 1) draw of matches; kept good matches lower the rate over time)
            k = dgp.mobility_on_match
            z = _match(world, index, za, ent_cur) / math.hypot(dgp.sd_match, dgp.match_complementarity)
            m_age = np.minimum(m_age * np.exp(-k * z - 0.5 * k * k), 0.95)
        vol = cont & (rng.random(n) < m_age)
        mover = dead | vol
        # choose districts
        d_new = np.full(n, -1, dtype=np.int64)
        e = np.flatnonzero(entrant)
        if len(e):
            d_new[e] = _rowwise_search(world.place_cdf, skill_bin[e], rng.random(len(e)))
        m = np.flatnonzero(mover)
        if len(m):
            origin = world.lu_lad[cur[m]]
            d_new[m] = _rowwise_search(world.move_cdf, skill_bin[m] * L + origin, rng.random(len(m)))
        chooser = np.flatnonzero(d_new >= 0)
        if len(chooser):
            q = _ndtr(rho * za[chooser] + math.sqrt(1 - rho**2) * rng.standard_normal(len(chooser)))
            dd = d_new[chooser]
            site = np.empty(len(chooser), dtype=np.int64)
            h = hqg[chooser]
            site[h] = _choose_site(world, Ch, lh, dd[h], q[h])
            site[~h] = _choose_site(world, Co, lo, dd[~h], q[~h])
            cur[chooser] = site
        present = active & (rng.random(n) >= dgp.p_gap)
        p = np.flatnonzero(present)
        rows_w.append(p)
        rows_y.append(np.full(len(p), year, dtype=np.int64))
        rows_u.append(cur[p].copy())
        ent_now = world.lu_ent[cur[p]]
        rows_move.append(prev_ent[p])
        prev_ent[:] = -1
        prev_ent[p] = ent_now
    wi = np.concatenate(rows_w)
    return dict(W=W, wi=wi, year=np.concatenate(rows_y), lu=np.concatenate(rows_u), rng=rng, index=index,
                prev_ent=np.concatenate(rows_move), za=za)


def _match_on(dgp: DGP) -> bool:
    return dgp.sd_match > 0 or dgp.match_complementarity != 0


def _match(world: _World, index: np.ndarray, za: np.ndarray, ent: np.ndarray) -> np.ndarray:
    """True match effects of (worker, enterprise) pairs: ``sd_match * xi_ij + match_complementarity * za_i * zpsi_j``.

    ``xi_ij`` ~ N(0, 1) is a hash of the worker's global index and the enterprise (the same pair always gets the
    same draw, in any block, without touching the random streams, so the default world is unchanged); ``za`` and
    ``zpsi`` are the standardised worker effect and enterprise premium (a complementarity of skill and premium:
    the interaction that the residual grid of Card, Heining & Kline 2013, Fig. VI, is designed to detect)."""
    dgp = world.dgp
    zpsi = world.__dict__.get("_zpsi")
    if zpsi is None:
        w = world.ent_weight / world.ent_weight.sum()
        sd = math.sqrt(float(np.sum(w * world.ent_psi**2)))  # psi has weighted mean zero
        zpsi = world.__dict__["_zpsi"] = world.ent_psi / sd if sd > 0 else np.zeros_like(world.ent_psi)
    h = _splitmix(index.astype(np.uint64) * np.uint64(len(world.ent_psi)) + ent.astype(np.uint64), world.seed + 101)
    xi = _ndtri(((h >> np.uint64(11)).astype(np.float64) + 0.5) / 2.0**53)
    return dgp.sd_match * xi + dgp.match_complementarity * za * zpsi[ent]


def _person_years(world: _World, block: dict) -> pd.DataFrame:
    """Wages and hours of the main jobs of a simulated block (the truth, one row per person-year)."""
    dgp = world.dgp
    W, wi, year, lu, rng = block["W"], block["wi"], block["year"], block["lu"], block["rng"]
    ent = world.lu_ent[lu]
    lad = world.lu_lad[lu]
    age = year - W["birth"][wi]
    alpha = W["alpha"][wi]
    psi = world.ent_psi[ent]
    phi = world.places.phi[lad]
    a = (age - 40) / 10.0
    ye = np.array([_YEAR_EFFECT[y] for y in range(world.years[0], world.years[1] + 1)])
    xb = dgp.intercept + dgp.age_b1 * a + dgp.age_b2 * a * a + ye[year - world.years[0]]
    pt = W["parttime"][wi]
    sd = dgp.sigma_e * (1 + dgp.het_parttime * pt + dgp.het_young * (age < 25))
    eps = sd * rng.standard_normal(len(wi))
    lhw = alpha + psi + phi + xb + eps
    extra = {}
    if _match_on(dgp):
        extra["match"] = _match(world, block["index"][wi], block["za"][wi], ent)
        lhw = lhw + extra["match"]
    hours = _draw_hours(rng, pt)
    resolved = world.ent_refs[ent, 0].copy()
    for k in (1, 2):
        r = world.ent_refs[ent, k]
        resolved = np.where(r >= 0, r, resolved)
    return pd.DataFrame({
        "piden": _piden(block["index"][wi], world.seed),
        "year": year.astype(np.int64),
        "entref": resolved,
        "luref": world.lu_ref[lu],
        "lad": world.places.table["lad"].to_numpy()[lad],
        "industry": np.array(_IND, dtype=object)[world.ent_industry[ent]],
        "alpha": alpha, "psi": psi, "phi": phi, "xb": xb, "eps": eps, **extra, "lhw": lhw,
        # helpers (dropped before publishing the truth)
        "_w": wi, "_lu": lu, "_ent": ent, "_lad": lad, "_age": age, "_hours": hours, "_pt": pt,
        "_sd": sd, "_prev_ent": block["prev_ent"],
    })


def _ent_ref_in_year(world: _World, ent: np.ndarray, year: np.ndarray) -> np.ndarray:
    """The enterprise reference a record carries in a year (old reference before a reorganisation)."""
    k = (year >= world.ent_reorg_year[ent, 0]).astype(np.int64) + (year >= world.ent_reorg_year[ent, 1])
    return world.ent_refs[ent, k]


def _jobs(world: _World, py: pd.DataFrame, W: dict, index: np.ndarray, rng) -> tuple[pd.DataFrame, int]:
    """Clean raw job rows (main + secondary jobs) for the person-years in ``py``."""
    dgp = world.dgp
    cpi = np.array([_CPIH[y] for y in range(world.years[0], world.years[1] + 1)]) / 100.0
    year = py["year"].to_numpy()
    wi = py["_w"].to_numpy()
    hours = py["_hours"].to_numpy()
    gpay = np.exp(py["lhw"].to_numpy()) * hours * cpi[year - world.years[0]]
    main = pd.DataFrame({
        "piden": py["piden"].to_numpy(),
        "year": year,
        "entref": _ent_ref_in_year(world, py["_ent"].to_numpy(), year),
        "luref": py["luref"].to_numpy(),
        "gpay": gpay,
        "hours": hours,
        "age": py["_age"].to_numpy().astype(np.int64),
        "sex": np.where(W["female"][wi], 2, 1).astype(np.int64),
        "soc": W["soc"][wi].astype(np.int64),
        "ft": np.where(py["_pt"].to_numpy(), 2, 1).astype(np.int64),
    })
    # secondary jobs: another live site in the same district, part-time, paid less than the main job
    n2 = int(round(dgp.secondary_rate * len(main)))
    sec_rows = rng.choice(len(main), size=n2, replace=False) if n2 else np.empty(0, dtype=np.int64)
    if n2:
        lad = py["_lad"].to_numpy()[sec_rows]
        lu_main = py["_lu"].to_numpy()[sec_rows]
        start, stop = world.lu_start[lad], world.lu_start[lad + 1]
        lu2 = start + (rng.random(n2) * (stop - start)).astype(np.int64)
        e2 = world.lu_ent[lu2]
        y2 = year[sec_rows]
        alive = (world.ent_birth[e2] <= y2) & (world.ent_death[e2] >= y2) & (lu2 != lu_main)
        # fall back to a random live site anywhere of a national employer if needed
        if (~alive).any():
            cand = np.flatnonzero(world.ent_death[world.lu_ent] == 9999)
            cand = cand[world.ent_birth[world.lu_ent[cand]] < world.years[0]]
            pick = cand[rng.integers(0, len(cand), size=int((~alive).sum()))]
            same = pick == lu_main[~alive]
            pick[same] = cand[(np.searchsorted(cand, pick[same]) + 1) % len(cand)]
            lu2[~alive] = pick
            e2 = world.lu_ent[lu2]
        h2 = np.round(rng.uniform(4, 16, n2), 1)
        lhw2 = (py["alpha"].to_numpy()[sec_rows] + world.ent_psi[e2] + world.places.phi[world.lu_lad[lu2]]
                + py["xb"].to_numpy()[sec_rows] + 0.1 * rng.standard_normal(n2))
        g2 = np.exp(lhw2) * h2 * cpi[y2 - world.years[0]]
        g2 = np.minimum(g2, 0.8 * main["gpay"].to_numpy()[sec_rows])
        sec = main.iloc[sec_rows].copy()
        sec["entref"] = _ent_ref_in_year(world, e2, y2)
        sec["luref"] = world.lu_ref[lu2]
        sec["gpay"] = g2
        sec["hours"] = h2
        sec["ft"] = 2
        sec["_lu"] = lu2
        main["_lu"] = py["_lu"].to_numpy()
        main["_single"] = True
        main.loc[sec_rows, "_single"] = False
        sec["_single"] = False
        jobs = pd.concat([main, sec], ignore_index=True)
    else:
        main["_lu"] = py["_lu"].to_numpy()
        main["_single"] = True
        jobs = main
    return jobs, n2


def _inject_mess(world: _World, jobs: pd.DataFrame, n_main: int, rng, known_lurefs: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """Corrupt disjoint sets of rows of single-job person-years (one kind per row) and add exact duplicates."""
    dgp = world.dgp
    counts = {}
    single = np.flatnonzero(jobs["_single"].to_numpy())
    kinds = [
        ("missing_luref", dgp.missing_luref_rate), ("missing_entref", dgp.missing_entref_rate),
        ("unknown_luref", dgp.unknown_luref_rate), ("nonpositive_pay", dgp.nonpositive_pay_rate),
        ("implausible_hours", dgp.implausible_hours_rate),
    ]
    want = [int(round(r * n_main)) for _, r in kinds]
    n_dup = int(round(dgp.duplicate_rate * n_main))
    total = sum(want) + n_dup
    if total > len(single):
        raise ValueError("england: mess rates too high for the number of single-job person-years")
    pick = rng.choice(single, size=total, replace=False)
    entref = jobs["entref"].to_numpy(dtype=np.int64).copy()
    luref = jobs["luref"].to_numpy(dtype=np.int64).copy()
    ent_na = np.zeros(len(jobs), dtype=bool)
    lu_na = np.zeros(len(jobs), dtype=bool)
    gpay = jobs["gpay"].to_numpy().copy()
    hours = jobs["hours"].to_numpy().copy()
    pos = 0
    for (kind, _), k in zip(kinds, want):
        rows = pick[pos : pos + k]
        pos += k
        counts[kind] = k
        if kind == "missing_luref":
            lu_na[rows] = True
        elif kind == "missing_entref":
            ent_na[rows] = True
        elif kind == "unknown_luref":
            luref[rows] = _unique_ids(rng, k, 1_000_000_000, 10_000_000_000, exclude=known_lurefs)
        elif kind == "nonpositive_pay":
            gpay[rows] = np.where(rng.random(k) < 0.5, 0.0, -np.round(rng.uniform(1, 500, k), 2))
        elif kind == "implausible_hours":
            hours[rows] = np.where(rng.random(k) < 0.5, rng.choice([0.0, -1.0], k), np.round(rng.uniform(100.1, 168, k), 1))
    dup_rows = pick[pos : pos + n_dup]
    counts["exact_duplicate"] = n_dup
    # duplicates appended, then rows shuffled (records arrive in no useful order); one gather per column
    order = np.concatenate([np.arange(len(jobs)), dup_rows])[rng.permutation(len(jobs) + n_dup)]
    cols = {}
    for c in ("piden", "year", "entref", "luref", "gpay", "hours", "age", "sex", "soc", "ft"):
        if c == "entref":
            cols[c] = pd.arrays.IntegerArray(entref[order], ent_na[order])
        elif c == "luref":
            cols[c] = pd.arrays.IntegerArray(luref[order], lu_na[order])
        elif c == "gpay":
            cols[c] = gpay[order]
        elif c == "hours":
            cols[c] = hours[order]
        else:
            cols[c] = jobs[c].to_numpy()[order]
    out = pd.DataFrame(cols)
    return out, counts


# ----------------------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Truth(Result):
    """The true effects and decompositions behind a :class:`SyntheticEngland` (never used by estimators).

    ``table`` (and ``to_frame()``): the true variance decomposition as ``quantity, value`` rows;
    ``shares()``: the shares of var(y) as ``component, share`` (adding up to one).

    - ``worker_effects``: ``piden, alpha`` (+ ``education`` 0/1/2, ``soc``, ``female``).
    - ``firm_effects``: ``entref, psi`` (+ ``industry``, ``eta``, ``omega``), keyed by the RESOLVED enterprise
      reference: the last reference of a chain in ``entref_continuity``.
    - ``place_effects``: ``lad, phi`` (+ ``phi_characteristics`` = g0 + gamma'xbar, ``phi_residual`` = xi,
      ``tau`` = place productivity).
    - ``industry_effects``: ``industry`` (SIC section letter), ``eta`` (wage premium), ``mu`` (productivity).
    - ``coefficients``: dict of the DGP's true coefficients (age profile, year effects, place-characteristic
      coefficients gamma with the standardisation of xbar, rent-sharing elasticity, noise, sorting, mobility).
    - ``person_years``: one row per person-year MAIN job: ``piden, year, entref`` (resolved), ``luref, lad,
      industry, alpha, psi, phi, xb, eps, lhw``; ``lhw`` = log real hourly wage (2015 prices) = alpha + psi +
      phi + xb + eps exactly, and equals ``log(gpay / hours / (cpih / 100))`` of the main job row in ``jobs``.
      With match effects on (``sd_match`` or ``match_complementarity``), a ``match`` column (the true match effect
      of the person-year's job) and ``lhw`` = alpha + psi + phi + xb + eps + match.
    - ``variance``: dict, the true variance decomposition over ``person_years`` (var_*, cov_*, share_*). With
      match effects on, ``var_eps`` / ``share_eps`` (and the ``residual`` of ``place_gaps``) are of the AKM error
      eps + match, and ``var_match`` / ``share_match`` give the match part.
    - ``place_gaps``: per district, the mean log real hourly pay gap vs England (person-year weighted, by
      workplace) split into ``people`` (alpha + xb), ``industry_mix`` (eta), ``firm_within`` (psi - eta),
      ``place`` (phi), ``residual`` (eps); the parts add up to ``gap`` exactly.
    - ``mess``: ``kind, table, rows``: every kind of injected mess and how many rows carry it. In the PAYE RTI
      format (``source="paye_rti"``) the kinds are :data:`RTI_MESS_KINDS`: ``secondary_job`` (records of
      employments that are not the person-year's main job), ``central_payroll`` (records under an enterprise-wide
      scheme of a multi-site enterprise: placeable only at the enterprise's address), ``unknown_scheme`` (records
      whose scheme the lookup does not hold), counted before duplication; ``duplicate_period`` (extra copies of
      records); ``reorganised_entref`` (scheme-lookup rows carrying an old enterprise reference).
    - ``place_productivity``: district-year true value added (2015 prices, GBP) and paid hours of every main
      job located there (workplace basis, whole population even for ``sample="ashe"``) and ``gva_per_hour``.
    """

    worker_effects: pd.DataFrame
    firm_effects: pd.DataFrame
    place_effects: pd.DataFrame
    industry_effects: pd.DataFrame
    coefficients: dict
    person_years: pd.DataFrame
    variance: dict
    place_gaps: pd.DataFrame
    mess: pd.DataFrame
    place_productivity: pd.DataFrame

    def summary(self) -> str:
        v = self.variance
        return (f"Truth: {len(self.person_years):,} person-years; var(y) {v['var_y']:.3f}; firm share "
                f"{v['share_psi']:.3f}; sorting share {v['share_sorting']:.3f}; corr(alpha, psi) "
                f"{v['corr_alpha_psi']:.3f}; mobility {v['mobility_rate']:.3f}")

    @property
    def table(self) -> pd.DataFrame:
        """The true variance decomposition over ``person_years``: ``quantity, value``."""
        return pd.DataFrame({"quantity": list(self.variance), "value": list(self.variance.values())})

    def shares(self) -> pd.DataFrame:
        """Shares of var(y) in the truth: ``alpha, psi, sorting`` (2 cov(alpha, psi)), ``phi``, ``place_sorting``
        (2 cov(alpha, phi)), ``xb``, ``eps`` and ``other`` (the remaining covariances), adding up to one."""
        v = self.variance
        comp = ["alpha", "psi", "sorting", "phi", "place_sorting", "xb", "eps"]
        share = [float(v[f"share_{c}"]) for c in comp]
        return pd.DataFrame({"component": comp + ["other"], "share": share + [1.0 - sum(share)]})


def _write_truth(truth: Truth, folder: Path, skip=()) -> None:
    for f in fields(Truth):
        if f.name in skip:
            continue
        v = getattr(truth, f.name)
        if isinstance(v, pd.DataFrame):
            v.to_parquet(folder / "truth" / f"{f.name}.parquet", index=False)
        else:
            (folder / "truth" / f"{f.name}.json").write_text(json.dumps(v, indent=1))


def _folder_meta(meta: dict, dgp: dict, writer: str) -> dict:
    """What the manifest records: the writer, seed, size, years, sample and every DGP parameter."""
    keys = ("seed", "size", "years", "sample", "overrides") + tuple(k for k in ("source", "central_payroll")
                                                                     if k in meta)
    return {"writer": writer, **{k: meta.get(k) for k in keys}, "dgp": dgp}


@dataclass(frozen=True, repr=False)
class SyntheticEngland(Result):
    """A synthetic England: raw ``tables`` as delivered, and the ``truth`` behind them (see :func:`england`).

    ``table`` (and ``to_frame()``): :meth:`describe`, the rows and columns of every raw table and the truth's
    headline numbers."""

    tables: dict
    truth: Truth
    meta: dict = field(default_factory=dict)

    def to_parquet(self, directory) -> Path:
        """Write every table and the truth to ``directory`` (Parquet + JSON); :func:`load` reads it back exactly.

        The write is atomic (``prosperity._io.atomic_folder``): everything goes to a temporary folder beside
        ``directory`` with a ``manifest.json`` (each file's size, Parquet row count and SHA-256; the seed, size,
        years, sample and DGP parameters), which is renamed into place only when complete. An interrupted write
        leaves an earlier folder at ``directory`` as it was; :func:`load` refuses a folder whose files do not match
        its manifest (a partial write, an edited file, a file swapped in from another seed's folder)."""
        meta = _folder_meta(self.meta, self.truth.coefficients.get("dgp", {}), "SyntheticEngland.to_parquet")
        with _io.atomic_folder(directory, kind=KIND, meta=meta) as tmp:
            (tmp / "tables").mkdir()
            (tmp / "truth").mkdir()
            for name, df in self.tables.items():
                df.to_parquet(tmp / "tables" / f"{name}.parquet", index=False)
            _write_truth(self.truth, tmp)
            (tmp / "meta.json").write_text(json.dumps(self.meta, indent=1))
        return Path(directory)

    def describe(self) -> pd.DataFrame:
        """Rows and columns of every raw table, then the truth's headline numbers."""
        rows = [("table", name, len(df), ", ".join(df.columns), np.nan) for name, df in self.tables.items()]
        v = self.truth.variance
        for key in ("var_y", "share_alpha", "share_psi", "share_sorting", "share_phi", "corr_alpha_psi",
                    "mobility_rate"):
            rows.append(("truth", key, np.nan, "", float(v[key])))
        rows.append(("truth", "mess rows", int(self.truth.mess["rows"].sum()), "", np.nan))
        return pd.DataFrame(rows, columns=["section", "name", "rows", "columns", "value"])

    @property
    def table(self) -> pd.DataFrame:
        """:meth:`describe`."""
        return self.describe()

    def summary(self) -> str:
        return f"SyntheticEngland({self.meta.get('size')}, seed={self.meta.get('seed')}); " + self.truth.summary()


@dataclass(frozen=True, repr=False)
class PopulationWrite(Result):
    """What :func:`write_population` wrote: directory, rows per table, time, and the truth's headline numbers.

    ``table`` (and ``to_frame()``): ``table, rows``, the rows written per table."""

    directory: Path
    rows: dict
    seconds: float
    workers: int
    variance: dict

    def summary(self) -> str:
        return f"{self.workers:,} workers, {self.rows.get('jobs', 0):,} job rows in {self.seconds:.1f} s -> {self.directory}"

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"table": list(self.rows), "rows": list(self.rows.values())})


# ----------------------------------------------------------------------------------------------------------
# Truth summaries (accumulated, so that streaming and in-memory give the same numbers)
# ----------------------------------------------------------------------------------------------------------

_MOM = ("lhw", "alpha", "psi", "phi", "xb", "eps", "eta")


class _Moments:
    def __init__(self, n_lad: int):
        k = len(_MOM)
        self.n = 0
        self.s = np.zeros(k)
        self.ss = np.zeros((k, k))
        self.lad_n = np.zeros(n_lad)
        self.lad_s = np.zeros((n_lad, 6))
        self.pairs = 0
        self.moves = 0
        self.match = None  # (sum, sum of squares) of the match effects, when the world has them

    def add(self, py: pd.DataFrame, eta: np.ndarray):
        cols = [py[c].to_numpy(float) for c in _MOM[:-1]]
        if "match" in py:  # the AKM error is match + eps: it enters var_eps and the gaps' residual
            m = py["match"].to_numpy(float)
            cols[5] = cols[5] + m
            s, ss = self.match or (0.0, 0.0)
            self.match = (s + float(m.sum()), ss + float(m @ m))
        X = np.column_stack(cols + [eta])
        self.n += len(X)
        self.s += X.sum(0)
        self.ss += X.T @ X
        lad = py["_lad"].to_numpy()
        self.lad_n += np.bincount(lad, minlength=len(self.lad_n))
        comp = np.column_stack([X[:, 0], X[:, 1] + X[:, 4], eta, X[:, 2] - eta, X[:, 3], X[:, 5]])
        for c in range(6):
            self.lad_s[:, c] += np.bincount(lad, weights=comp[:, c], minlength=len(self.lad_n))
        # mobility: the same person observed in consecutive years, enterprise changed (resolved references
        # differ exactly when the enterprises differ)
        prev = py["_prev_ent"].to_numpy()
        pair = prev >= 0
        self.pairs += int(pair.sum())
        self.moves += int((pair & (prev != py["_ent"].to_numpy())).sum())

    def variance(self) -> dict:
        mean = self.s / self.n
        cov = self.ss / self.n - np.outer(mean, mean)
        i = {c: k for k, c in enumerate(_MOM)}
        v = lambda a: float(cov[i[a], i[a]])  # noqa: E731
        c = lambda a, b: float(cov[i[a], i[b]])  # noqa: E731
        vy = v("lhw")
        out = {
            "n": int(self.n), "mean_y": float(mean[0]), "var_y": vy,
            "var_alpha": v("alpha"), "var_psi": v("psi"), "var_phi": v("phi"), "var_xb": v("xb"),
            "var_eps": v("eps"), "var_eta": v("eta"), "var_psi_phi": v("psi") + v("phi") + 2 * c("psi", "phi"),
            "cov_alpha_psi": c("alpha", "psi"), "cov_alpha_phi": c("alpha", "phi"), "cov_psi_phi": c("psi", "phi"),
            "cov_alpha_xb": c("alpha", "xb"), "cov_psi_xb": c("psi", "xb"), "cov_phi_xb": c("phi", "xb"),
        }
        denom = math.sqrt(max(out["var_alpha"] * out["var_psi"], 0.0))  # zero with one worker or one firm
        out["corr_alpha_psi"] = out["cov_alpha_psi"] / denom if denom > 0 else float("nan")
        out["share_alpha"] = out["var_alpha"] / vy
        out["share_psi"] = out["var_psi"] / vy
        out["share_sorting"] = 2 * out["cov_alpha_psi"] / vy
        out["share_phi"] = out["var_phi"] / vy
        out["share_place_sorting"] = 2 * out["cov_alpha_phi"] / vy
        out["share_eps"] = out["var_eps"] / vy
        out["share_xb"] = out["var_xb"] / vy
        out["mobility_rate"] = self.moves / max(self.pairs, 1)
        if self.match is not None:
            out["var_match"] = self.match[1] / self.n - (self.match[0] / self.n) ** 2
            out["share_match"] = out["var_match"] / vy
        return out

    def place_gaps(self, lads: np.ndarray) -> pd.DataFrame:
        nat = self.lad_s.sum(0) / self.lad_n.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            m = self.lad_s / self.lad_n[:, None]
        g = m - nat[None, :]
        df = pd.DataFrame({"lad": lads, "n": self.lad_n.astype(np.int64), "gap": g[:, 0], "people": g[:, 1],
                           "industry_mix": g[:, 2], "firm_within": g[:, 3], "place": g[:, 4], "residual": g[:, 5]})
        # exact adding-up (the gap is by construction the sum of its parts)
        df["gap"] = df[["people", "industry_mix", "firm_within", "place", "residual"]].sum(1)
        return df[df["n"] > 0].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------
# Firm tables
# ----------------------------------------------------------------------------------------------------------


def _firm_tables(world: _World, lu_emp: np.ndarray, ent_va: np.ndarray, ent_cost: np.ndarray, year: int) -> dict:
    """local_units, enterprises and accounts of one year from accumulated LU-year employment and
    enterprise-year value added and labour costs (one year at a time, so the population can be streamed)."""
    y0 = world.years[0]
    t = year - y0
    dgp = world.dgp
    rng = np.random.default_rng([world.seed, 77, year])
    # local units alive this year
    ent_alive = (world.ent_birth <= year) & (world.ent_death >= year)
    uu = np.flatnonzero(ent_alive[world.lu_ent])
    ent = world.lu_ent[uu]
    yy = np.full(len(uu), year, dtype=np.int64)
    death = world.ent_death[ent]
    local_units = pd.DataFrame({
        "luref": world.lu_ref[uu],
        "entref": _ent_ref_in_year(world, ent, yy),
        "year": yy,
        "postcode": world.postcodes["postcode"].to_numpy()[world.lu_postcode[uu]],
        "sic07": world.ent_sic[ent],
        "employment": lu_emp[uu, t].astype(np.int64),
        "birth_year": world.ent_birth[ent].astype(np.int64),
        "death_year": pd.array(np.where(death == 9999, pd.NA, death), dtype="Int64"),
    }).sort_values("luref", kind="stable").reset_index(drop=True)
    # enterprises alive this year
    jj = np.flatnonzero(ent_alive)
    emp = np.bincount(world.lu_ent[uu], weights=lu_emp[uu, t], minlength=len(ent_alive))[jj].astype(np.int64)
    yy2 = np.full(len(jj), year, dtype=np.int64)
    vs = np.array([_VA_SHARE.get(k, 0.45) for k in _IND])[world.ent_industry[jj]]
    gva = ent_va[jj, t] * np.exp(0.1 * rng.standard_normal(len(jj)))
    turnover = gva / vs
    refs = _ent_ref_in_year(world, jj, yy2)
    enterprises = pd.DataFrame({
        "entref": refs, "year": yy2, "sic07": world.ent_sic[jj], "employment": emp,
        "turnover": np.round(turnover / 1000.0, 3),  # GBP thousand, as in the BSD
        "foreign_owned": world.ent_foreign[jj].astype(np.int64),
    }).sort_values("entref", kind="stable").reset_index(drop=True)
    # accounts: every enterprise with employment >= abs_census_size, a sample of the others with employees
    census = emp >= dgp.abs_census_size
    k = np.flatnonzero(census | ((emp > 0) & (rng.random(len(jj)) < dgp.abs_sample_rate)))
    accounts = pd.DataFrame({
        "entref": refs[k], "year": yy2[k],
        "gva": np.round(gva[k] / 1000.0, 3), "turnover": np.round(turnover[k] / 1000.0, 3),
        "purchases": np.round((turnover[k] - gva[k]) / 1000.0, 3),
        "employment_costs": np.round(ent_cost[jj[k], t] / 1000.0, 3),
    }).sort_values("entref", kind="stable").reset_index(drop=True)
    return {"local_units": local_units, "enterprises": enterprises, "accounts": accounts}


def _place_productivity(world: _World, lad_va: np.ndarray, lad_hours: np.ndarray) -> pd.DataFrame:
    L, T = lad_va.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        gph = lad_va / lad_hours
    return pd.DataFrame({
        "lad": np.repeat(world.places.table["lad"].to_numpy(), T),
        "year": np.tile(np.arange(world.years[0], world.years[1] + 1), L).astype(np.int64),
        "gva": lad_va.reshape(-1), "hours": lad_hours.reshape(-1), "gva_per_hour": gph.reshape(-1),
    })


def _continuity(world: _World) -> pd.DataFrame:
    rows = []
    for k in (1, 2):
        j = np.flatnonzero(world.ent_refs[:, k] >= 0)
        rows.append(pd.DataFrame({"old_entref": world.ent_refs[j, k - 1], "new_entref": world.ent_refs[j, k],
                                  "year": world.ent_reorg_year[j, k - 1]}))
    return pd.concat(rows, ignore_index=True).astype("int64").sort_values(["year", "old_entref"]).reset_index(drop=True)


def _resolved_refs(world: _World) -> np.ndarray:
    r = world.ent_refs[:, 0].copy()
    for k in (1, 2):
        r = np.where(world.ent_refs[:, k] >= 0, world.ent_refs[:, k], r)
    return r


def _accumulate_firms(world, py, jobs_clean, lu_emp, ent_va, ent_cost, lad_va, lad_hours):
    """Add a block's jobs to LU-year employment and its value added / labour costs to enterprise-years."""
    dgp = world.dgp
    y0 = world.years[0]
    T = world.years[1] - y0 + 1
    t_all = jobs_clean["year"].to_numpy() - y0
    lu_all = jobs_clean["_lu"].to_numpy()
    ent_all = world.lu_ent[lu_all]
    cost_all = jobs_clean["gpay"].to_numpy() * 52 * 1.2  # employer costs: pay plus NICs and pensions
    t = py["year"].to_numpy() - y0
    ent = py["_ent"].to_numpy()
    lad = py["_lad"].to_numpy()
    cpi = np.array([_CPIH[y] for y in range(y0, world.years[1] + 1)]) / 100.0
    mu = np.array([_MU[k] for k in _IND])[world.ent_industry[ent]]
    growth = 0.01 * np.minimum(t, 3) + 0.004 * np.maximum(t - 3, 0)
    lva = (math.log(32.0) + mu + world.ent_omega[ent] + dgp.theta_skill * py["alpha"].to_numpy()
           + world.places.tau[lad] + growth)
    hours_year = py["_hours"].to_numpy() * 52
    va_real = np.exp(lva) * hours_year
    n_lu, J, L = lu_emp.shape[0], ent_va.shape[0], lad_va.shape[0]
    for k in range(T):  # one year at a time: bincount is much faster than ufunc.at, with small transients
        a = t_all == k
        if a.any():
            lu_emp[:, k] += np.bincount(lu_all[a], minlength=n_lu).astype(lu_emp.dtype)
            ent_cost[:, k] += np.bincount(ent_all[a], weights=cost_all[a], minlength=J)
        b = t == k
        if b.any():
            ent_va[:, k] += np.bincount(ent[b], weights=va_real[b] * cpi[k], minlength=J)
            lad_va[:, k] += np.bincount(lad[b], weights=va_real[b], minlength=L)
            lad_hours[:, k] += np.bincount(lad[b], weights=hours_year[b], minlength=L)
    return va_real


def main_job(jobs: pd.DataFrame) -> pd.DataFrame:
    """The main job of each person-year, by the rule the truth uses: the highest gross weekly pay ``gpay``,
    ties broken by the smallest ``luref``. Rows with missing ``piden``/``year`` raise an error."""
    require_columns(jobs, ["piden", "year", "gpay", "luref"], "jobs")
    require_complete(jobs, ["piden", "year"], "jobs", id_cols=["piden", "year"])
    order = jobs.sort_values(["piden", "year", "gpay", "luref"], ascending=[True, True, False, True])
    return order.drop_duplicates(["piden", "year"], keep="first").reset_index(drop=True)


# ----------------------------------------------------------------------------------------------------------
# The PAYE RTI / LEED raw-table format (issue 16): the same world delivered as a payroll extract
# ----------------------------------------------------------------------------------------------------------

#: The sources :func:`england` can deliver the world as (``source=``).
SOURCES = ("ashe", "paye_rti")

#: Share of multi-site enterprises that run one enterprise-wide PAYE scheme (central payroll) by default: their
#: employees can be placed only at the enterprise's address, not at their workplace.
CENTRAL_PAYROLL = 0.3

# Where the documentation below comes from (read for this project through the search tool; the names of the
# variables in the ONS / ESCoE LEED extract itself are not public: every such name is marked unverified).
_RTI_DOC = "HMRC, Guidance on RTI Data Items (2017-18 v1-3; April 2019; April 2021), Full Payment Submission items"
_LEED_BLOG = "ONS blog, 1 July 2025, 'Data linkage to shine new light on UK labour market' (C. Palmou)"
_ESCOE_LEED = ("ESCoE project page 'Developing a new Linked Employer Employee Dataset for the UK' (Bryson & Forth): "
               "LEED spine = calendarised monthly PAYE RTI linked to the quarterly Longitudinal Business Database")
_BSD = ("UK Data Service SN 6697 catalogue record and the ERC BSD dataset page: enterprise and local-unit files, "
        "employment, turnover, foreign ownership, SIC, birth and death years, postcodes of enterprises and local units")
_UNVERIFIED = "unverified: searched the ONS LEED blog, the ESCoE LEED pages and HMRC's RTI data-item guidance"

#: Every column of the PAYE RTI format's own tables, as a dict of tables, each a dict of columns mapping to
#: (kind, meaning, real variable, status). Kinds as in ``link.TABLE_COLUMNS`` (id, int, num, str, bool, any).
#: Status "S": the concept is documented in the cited public source (the column name in an ONS extract may still
#: differ); "U": unverified (with what was searched). The other tables (local units, accounts, postcode lookup,
#: enterprise continuity, place characteristics, cpi) are those of the ASHE format; enterprises gain a postcode.
RTI_COLUMNS: dict[str, dict[str, tuple[str, str, str, str]]] = {
    "pay_periods": {
        "person_id": ("id", "employee (person) identifier, stable over years and employers; the same value as "
                      "``piden`` in the ASHE format and in the truth",
                      "a pseudonymised person key derived from the NINO and personal details", "U",
                      f"{_UNVERIFIED}; {_LEED_BLOG} says workers' pay and limited demographics are linked"),
        "paye_ref": ("id", "employer PAYE scheme reference, 'NNN/XNNNN' (HMRC office number / employer reference)",
                     "Employer PAYE Reference (FPS data items 1 and 2)", "S", _RTI_DOC),
        "employment_id": ("id", "the employment within the scheme (one job spell of the person at one workplace: "
                          "a person with two jobs under one scheme has two employments)",
                          "Payroll ID (FPS)", "S", f"{_RTI_DOC}; name in the LEED extract {_UNVERIFIED}"),
        "tax_year": ("int", "tax year, labelled by its first calendar year (2005 = 6 April 2005 - 5 April 2006); "
                     "the ASHE-format ``year`` of the same job", "tax year of the FPS", "S",
                     f"{_RTI_DOC}; ESCoE (Dorsett & Hug) use tax years 2014/15-2017/18"),
        "tax_month": ("int", "tax month 1-12 (1 = 6 April - 5 May); one record per employment and tax month",
                      "Tax month number (FPS)", "S",
                      f"{_RTI_DOC}; the LEED spine uses calendarised monthly RTI ({_ESCOE_LEED})"),
        "payment_date": ("any", "date of payment (the 25th of the calendar month inside the tax month)",
                         "Payment date (FPS)", "S", _RTI_DOC),
        "pay": ("num", "taxable pay in the period, GBP, nominal (pounds and pence); the 12 periods of a job-year add "
                "up to 52 x the ASHE-format weekly ``gpay``", "Taxable pay in this pay period (FPS)", "S", _RTI_DOC),
        "hours_band": ("str", "normal weekly hours band: A < 16, B 16-23.99, C 24-29.99, D 30 or more (the "
                       "full-time proxy: D is full time, the ASHE ``ft == 1``); no paid hours are reported",
                       "Number of normal hours worked (FPS band)", "U",
                       f"the band letters {_UNVERIFIED}; the FPS carries a band, never paid hours"),
    },
    "employees": {
        "person_id": ("id", "as in pay_periods", "pseudonymised person key", "U", _UNVERIFIED),
        "sex": ("any", "'M' or 'F'", "Gender (FPS, mandatory)", "S", _RTI_DOC),
        "birth_year": ("int", "year of birth (age in a tax year = tax_year - birth_year, the ASHE-format age)",
                       "Date of birth (FPS, mandatory), released as a year or an age", "U",
                       f"the released form {_UNVERIFIED}"),
    },
    "paye_schemes": {
        "paye_ref": ("id", "PAYE scheme reference", "Employer PAYE Reference", "S", _RTI_DOC),
        "tax_year": ("int", "tax year of the link", "", "U", _UNVERIFIED),
        "entref": ("id", "IDBR enterprise reference in force that year (an OLD reference before a reorganisation: "
                   "resolve it through entref_continuity)", "IDBR PAYE unit -> enterprise link", "S",
                   f"{_BSD}: the IDBR is built from VAT and PAYE records; {_LEED_BLOG}"),
        "luref": ("id", "local unit of a site-level scheme; missing (NA) for an enterprise-wide scheme (central "
                  "payroll of a multi-site enterprise: its employees can be placed only at the enterprise's address)",
                  "", "U", f"whether the IDBR links PAYE schemes to local units: {_UNVERIFIED}"),
    },
    "enterprises": {
        "postcode": ("str", "postcode of the enterprise's address (the head office)", "BSD enterprise postcode", "S",
                     _BSD),
    },
}

#: Tables of the PAYE RTI format without which no panel can be built.
RTI_REQUIRED_TABLES = ("pay_periods", "paye_schemes", "enterprises", "local_units", "postcode_lookup", "cpi")

#: Kinds of mess in the PAYE RTI format (``truth.mess`` rows with ``table`` pay_periods or paye_schemes).
RTI_MESS_KINDS = ("secondary_job", "central_payroll", "unknown_scheme", "duplicate_period", "reorganised_entref")


def rti_columns() -> pd.DataFrame:
    """:data:`RTI_COLUMNS` as a table: ``table, column, kind, meaning, real, status, source``."""
    rows = [(t, c, *v) for t, cols in RTI_COLUMNS.items() for c, v in cols.items()]
    return pd.DataFrame(rows, columns=["table", "column", "kind", "meaning", "real", "status", "source"])


def _paye_refs(rng, n: int) -> np.ndarray:
    """n distinct scheme references 'NNN/XNNNN' (HMRC office number, '/', a letter and four digits)."""
    letters = np.array(list("ABCDEFGHJKLMNPRSTWXYZ"))
    code = _unique_ids(rng, n, 0, 900 * len(letters) * 10_000)
    office = 100 + code // (len(letters) * 10_000)
    letter = letters[code // 10_000 % len(letters)]
    return np.char.add(np.char.add(office.astype(str), "/"),
                       np.char.add(letter, np.char.zfill((code % 10_000).astype(str), 4))).astype(object)


def _rti_tables(world: _World, clean: pd.DataFrame, tables: dict, central_payroll: float) -> tuple[dict, list]:
    """The PAYE RTI format of the same world: ``pay_periods`` (one record per employment and tax month),
    ``employees``, ``paye_schemes`` (scheme -> enterprise, and local unit for site-level schemes),
    ``enterprises`` with the head-office postcode; the other tables are those of the ASHE format.

    Built from the clean job rows (``clean``: every job-year with its local unit ``_lu``), so each ASHE-format job
    is one employment-year whose 12 periods add up to 52 x its weekly pay. Returns the tables and the mess rows
    (``kind, table, rows``)."""
    rng = np.random.default_rng([world.seed, 88])
    y0, y1 = world.years
    n_lu, J = len(world.lu_ent), len(world.ent_psi)
    # head office of each enterprise: its flagged head office, else its first site; sites per enterprise
    n_sites = np.bincount(world.lu_ent, minlength=J)
    hq = np.full(J, -1, dtype=np.int64)
    order = np.lexsort((np.arange(n_lu), ~world.lu_hq, world.lu_ent))  # per enterprise: head office first
    first = np.concatenate([[True], world.lu_ent[order][1:] != world.lu_ent[order][:-1]])
    hq[world.lu_ent[order][first]] = order[first]
    central = (n_sites > 1) & (rng.random(J) < central_payroll)
    # schemes: one per enterprise for central payrolls, else one per local unit
    site_scheme = ~central[world.lu_ent]
    n_site, n_ent = int(site_scheme.sum()), int(central.sum())
    refs = _paye_refs(rng, n_site + n_ent)
    lu_scheme = np.full(n_lu, -1, dtype=np.int64)
    lu_scheme[site_scheme] = np.arange(n_site)
    ent_scheme = np.full(J, -1, dtype=np.int64)
    ent_scheme[central] = n_site + np.arange(n_ent)
    lu_scheme[~site_scheme] = ent_scheme[world.lu_ent[~site_scheme]]
    scheme_lu = np.full(n_site + n_ent, -1, dtype=np.int64)
    scheme_lu[lu_scheme[site_scheme]] = np.flatnonzero(site_scheme)
    scheme_ent = np.empty(n_site + n_ent, dtype=np.int64)
    scheme_ent[:n_site] = world.lu_ent[site_scheme]
    scheme_ent[n_site:] = np.flatnonzero(central)
    # the scheme lookup: one row per scheme and tax year the enterprise is alive
    yrs = np.arange(y0, y1 + 1)
    sj = np.repeat(np.arange(n_site + n_ent), len(yrs))
    sy = np.tile(yrs, n_site + n_ent)
    e = scheme_ent[sj]
    alive = (world.ent_birth[e] <= sy) & (world.ent_death[e] >= sy)
    sj, sy, e = sj[alive], sy[alive], e[alive]
    lu = scheme_lu[sj]
    schemes = pd.DataFrame({
        "paye_ref": refs[sj], "tax_year": sy.astype(np.int64), "entref": _ent_ref_in_year(world, e, sy),
        "luref": pd.array(np.where(lu >= 0, world.lu_ref[np.maximum(lu, 0)], 0), dtype="Int64"),
    })
    schemes.loc[lu < 0, "luref"] = pd.NA
    schemes = schemes.sort_values(["tax_year", "paye_ref"], kind="stable").reset_index(drop=True)

    # employment-years: the clean jobs, each under its workplace's scheme
    c = clean.sort_values(["piden", "year", "luref"], kind="stable").reset_index(drop=True)
    jlu = c["_lu"].to_numpy()
    piden = c["piden"].to_numpy(dtype=np.int64)
    scheme = lu_scheme[jlu]
    emp_id = (_splitmix(piden.astype(np.uint64) * np.uint64(n_lu) + jlu.astype(np.uint64), world.seed + 202)
              % np.uint64(900_000_000)).astype(np.int64) + 100_000_000
    annual = np.round(c["gpay"].to_numpy() * 52, 2)
    n_unknown = int(round(world.dgp.unknown_luref_rate * len(c)))
    unknown = rng.choice(len(c), size=n_unknown, replace=False)
    spare = _paye_refs(np.random.default_rng([world.seed, 89]), n_unknown + len(refs))
    spare = spare[~np.isin(spare, refs)][:n_unknown]  # references the scheme lookup does not hold
    ref_code = scheme.copy()
    ref_code[unknown] = len(refs) + np.arange(n_unknown)
    band = np.searchsorted([16.0, 24.0, 30.0], c["hours"].to_numpy(), side="right")  # A, B, C, D
    # twelve tax months; eleven equal payments to the penny, the last takes the remainder (exact annual sum)
    m = 12
    month_pay = np.floor(annual / m * 100) / 100
    last_pay = np.round(annual - (m - 1) * month_pay, 2)
    # records: every (employment-year, month), plus exact duplicates, in a random order (one gather per column)
    n_rec = len(c) * m
    n_dup = int(round(world.dgp.duplicate_rate * n_rec))
    dup = rng.choice(n_rec, size=n_dup, replace=False)
    rec = np.concatenate([np.arange(n_rec), dup])[rng.permutation(n_rec + n_dup)]
    row, k = rec // m, rec % m + 1
    ty = c["year"].to_numpy(dtype=np.int64)[row]
    cal_month = (k + 2) % 12 + 1
    cal_year = ty + (k >= 10)
    dates = ((cal_year - 1970) * 12 + cal_month - 1).astype("datetime64[M]").astype("datetime64[D]") + 24
    periods = pd.DataFrame({
        "person_id": piden[row],
        "paye_ref": pd.Categorical.from_codes(ref_code[row], categories=np.concatenate([refs, spare]))
        .remove_unused_categories(),
        "employment_id": emp_id[row], "tax_year": ty, "tax_month": k.astype(np.int64), "payment_date": dates,
        "pay": np.where(k == m, last_pay[row], month_pay[row]),
        "hours_band": pd.Categorical.from_codes(band[row], categories=list("ABCD")),
    })

    by_person = c.drop_duplicates("piden")
    employees = pd.DataFrame({
        "person_id": by_person["piden"].to_numpy(dtype=np.int64),
        "sex": np.where(by_person["sex"].to_numpy() == 2, "F", "M").astype(object),
        "birth_year": (by_person["year"] - by_person["age"]).to_numpy(dtype=np.int64),
    })
    ent = tables["enterprises"].copy()
    ref_ent = {}
    for k_ in range(3):  # every reference an enterprise ever carries -> its head-office postcode
        has = world.ent_refs[:, k_] >= 0
        ref_ent.update(zip(world.ent_refs[has, k_].tolist(), np.flatnonzero(has).tolist()))
    ent_idx = np.array([ref_ent[r] for r in ent["entref"].tolist()], dtype=np.int64)
    ent["postcode"] = world.postcodes["postcode"].to_numpy()[world.lu_postcode[hq[ent_idx]]]

    main = c.sort_values(["piden", "year", "gpay", "luref"], ascending=[True, True, False, True]).duplicated(
        ["piden", "year"])
    on_central = central[world.lu_ent[jlu]]
    on_central[unknown] = False  # their records carry an unknown reference instead
    old = np.sort(_continuity(world)["old_entref"].to_numpy())
    mess = [("secondary_job", "pay_periods", m * int(main.sum())),
            ("central_payroll", "pay_periods", m * int(on_central.sum())),
            ("unknown_scheme", "pay_periods", m * n_unknown),
            ("duplicate_period", "pay_periods", n_dup),
            ("reorganised_entref", "paye_schemes", int(_isin_sorted(schemes["entref"].to_numpy(), old).sum()))]
    out = {"pay_periods": periods, "employees": employees, "paye_schemes": schemes,
           "local_units": tables["local_units"], "enterprises": ent}
    out |= {k_: v for k_, v in tables.items() if k_ not in ("jobs", "local_units", "enterprises")}
    return out, mess


def _coefficients(world: _World) -> dict:
    dgp = world.dgp
    P = world.places
    y0, y1 = world.years
    return {
        "intercept": dgp.intercept,
        "age": {"b1": dgp.age_b1, "b2": dgp.age_b2, "centre": 40, "scale": 10,
                "formula": "b1*(age-40)/10 + b2*((age-40)/10)**2"},
        "year_effects": {str(y): _YEAR_EFFECT[y] for y in range(y0, y1 + 1)},
        "xb_formula": "intercept + age profile + year effect",
        "place": {
            "phi0": float(P.table["phi0"].iloc[0]),
            "gamma": dict(zip(_CHARS, map(float, dgp.gamma))),
            "xbar_definition": "time means over the window of log(density), transport_access, log(housing_cost), "
                               "amenities, standardised across the 296 districts (unweighted) with xbar_mean/xbar_sd",
            "xbar_mean": dict(zip(_CHARS, map(float, P.xbar_mean))),
            "xbar_sd": dict(zip(_CHARS, map(float, P.xbar_sd))),
            "sigma_xi": dgp.sigma_xi,
        },
        "rent_sharing": dgp.rent_sharing,
        "rent_sharing_definition": "d psi / d omega, omega = firm log productivity term of log value added per hour",
        "theta_skill": dgp.theta_skill,
        "tau_place": dgp.tau_place,
        "worker": {"a_edu": list(dgp.a_edu), "a_soc": dict(zip(map(str, range(1, 10)), map(float, _SOC_PREMIUM))),
                   "a_female": dgp.a_female, "sigma_u": dgp.sigma_u},
        "noise": {"sigma_e": dgp.sigma_e, "het_parttime": dgp.het_parttime, "het_young": dgp.het_young,
                  "formula": "sd = sigma_e*(1 + het_parttime*[ft==2] + het_young*[age<25])"},
        "sorting": {"firm_sort": dgp.firm_sort, "place_sort": dgp.place_sort, "hq_bonus": dgp.hq_bonus},
        "mobility": {"move_rate": dgp.move_rate, "distance_km": dgp.distance_km, "distance_floor": dgp.distance_floor},
        "dgp": dgp.to_dict(),
    }


def _effects_tables(world: _World) -> tuple:
    P = world.places
    resolved = _resolved_refs(world)
    firm = pd.DataFrame({"entref": resolved, "psi": world.ent_psi,
                         "industry": np.array(_IND, dtype=object)[world.ent_industry],
                         "eta": world.ent_eta, "omega": world.ent_omega})
    place = pd.DataFrame({"lad": P.table["lad"].to_numpy(), "phi": P.phi,
                          "phi_characteristics": P.table["phi0"].to_numpy() + P.phi_char, "phi_residual": P.xi,
                          "tau": P.tau})
    industry = pd.DataFrame({"industry": _IND, "eta": [_ETA[k] for k in _IND], "mu": [_MU[k] for k in _IND]})
    return firm, place, industry


def england(size: str = "workshop", seed: int = 0, years=(2005, 2019), sample=None, source: str = "ashe",
            central_payroll: float = CENTRAL_PAYROLL, **overrides) -> SyntheticEngland:
    """Simulate a synthetic England of linked workers, firms and places, with the truth kept apart.

    Parameters
    ----------
    size : ``"workshop"`` (30,000 workers, about 2 s), ``"research"`` (270,000 workers, about 1/100 of
        England) or ``"population"`` (use :func:`write_population`, which streams to Parquet).
    seed : the random seed; the same seed gives identical tables.
    years : first and last year (inclusive), within 2002-2023.
    sample : ``None`` (every worker) or ``"ashe"``: the 1% of people whose ``piden`` ends in 14, followed
        every year; their co-workers are unseen. Firm tables (local units, enterprises, accounts) still
        describe every firm, and the truth describes the sampled person-years.
    source : ``"ashe"`` (the default: ASHE / BSD / ABS tables, below) or ``"paye_rti"``: the SAME world and truth
        delivered as a PAYE Real Time Information linked extract (LEED): ``pay_periods`` (one record per employment
        and tax month: ``person_id, paye_ref, employment_id, tax_year, tax_month, payment_date, pay,
        hours_band``), ``employees`` (``person_id, sex, birth_year``), ``paye_schemes`` (scheme -> enterprise in
        force that tax year, and the local unit of a site-level scheme), ``enterprises`` with the head-office
        ``postcode``, and the ASHE format's ``local_units``, ``accounts``, ``postcode_lookup``,
        ``entref_continuity``, ``place_characteristics``, ``cpi``; no ``jobs`` table, no paid hours (a band:
        the full-time proxy), no occupation. Every column, its meaning, the real variable it stands for and how
        sure we are of the name: :data:`RTI_COLUMNS` / :func:`rti_columns`. The 12 tax-month payments of an
        employment-year add up to 52 x the ASHE-format weekly ``gpay`` of the same job (``person_id`` =
        ``piden``, ``tax_year`` = ``year``), so the truth (keyed by ``piden``, resolved ``entref``, ``lad``,
        ``year``) is the ASHE format's, unchanged; ``truth.mess`` lists the RTI kinds (:data:`RTI_MESS_KINDS`).
    central_payroll : with ``source="paye_rti"``, the share of multi-site enterprises paying every employee
        through one enterprise-wide scheme (no local unit in ``paye_schemes``): their employees can be placed only
        at the enterprise's address (``truth.mess`` kind ``central_payroll`` counts their records).
    **overrides : any field of :class:`DGP` (``n_workers``, ``move_rate``, ``sigma_u``, mess rates...).

    Notes
    -----
    **Tables** (``.tables``).
    ``jobs`` (ASHE/PAYE-like, one row per job per year): ``piden`` int64, ``year``, ``entref`` Int64 (the
    reference in force that year: an OLD reference before a reorganisation), ``luref`` Int64, ``gpay``
    (gross weekly pay, GBP, nominal), ``hours`` (paid weekly hours), ``age``, ``sex`` (1 male, 2 female),
    ``soc`` (SOC 2020 major group 1-9), ``ft`` (1 full-time, 2 part-time). ``local_units`` (BSD-like):
    ``luref, entref, year, postcode, sic07, employment, birth_year, death_year`` (death_year = last year
    alive, NA if alive at the end). ``enterprises``: ``entref, year, sic07, employment, turnover`` (GBP
    thousand), ``foreign_owned`` (0/1). ``accounts`` (ABS-like; all enterprise-years with employment
    >= ``abs_census_size``, a ``abs_sample_rate`` sample of the others with employees): ``entref, year,
    gva, turnover, purchases, employment_costs`` (GBP thousand; aGVA = turnover - purchases).
    ``postcode_lookup``: ``postcode, lad, itl3, region`` (synthetic postcodes inside real districts).
    ``entref_continuity``: ``old_entref, new_entref, year`` (year the new reference takes effect; chains
    possible). ``place_characteristics``: ``lad, year, density`` (real residents per km2), ``transport_access``,
    ``housing_cost`` (GBP, synthetic), ``amenities``. ``cpi``: ``year, cpih`` (2015 = 100).

    **Main job and mess.**
    The main job of a person-year is the job with the highest ``gpay`` (ties: smallest ``luref``; see
    :func:`main_job`); secondary jobs always pay at most 80% of the main job. ``truth.mess`` counts, in the
    final ``jobs`` table: ``secondary_job`` (extra job rows beyond the main one), and, each on a disjoint set
    of rows drawn among person-years with a single job, ``missing_luref``, ``missing_entref``,
    ``unknown_luref`` (a luref not in ``local_units``), ``nonpositive_pay`` (gpay <= 0), ``implausible_hours``
    (hours <= 0 or > 100); ``exact_duplicate`` (extra copies of clean single-job rows); and
    ``reorganised_entref``: rows carrying an old reference (in ``jobs``, ``local_units``, ``enterprises``
    and ``accounts``, one row each in ``mess``; a duplicated row is counted twice). Dropping the broken rows
    and duplicates leaves, for every remaining person-year, its true main job.

    Returns a :class:`SyntheticEngland` (``.tables``, ``.truth``, ``.to_parquet``, ``.describe``).
    """
    t0 = time.perf_counter()
    if isinstance(size, str) and size == "population":
        fail("england: size='population' does not fit in memory; use "
             "synthetic.write_population(directory, seed=...) to stream it to Parquet")
    seed = _check_seed(seed, "england")
    _check_sample(sample)
    if not (isinstance(source, str) and source in SOURCES):
        fail(f"england: source must be one of {list(SOURCES)}, got {source!r}")
    if not _is_real(central_payroll) or not 0 <= central_payroll <= 1:
        fail(f"england: central_payroll must be a number in [0, 1], got {central_payroll!r}")
    years = _check_years(years)
    dgp = _make_dgp(size, overrides)
    world = _world(dgp, years, seed)
    acc = _Accumulator(world)
    jobs, py, workers, clean = _process_block(world, np.arange(dgp.n_workers, dtype=np.int64), sample, 0, acc,
                                              keep_clean=True)
    per_year = [_firm_tables(world, acc.lu_emp, acc.ent_va, acc.ent_cost, y) for y in range(years[0], years[1] + 1)]
    firm_tables = {k: pd.concat([p[k] for p in per_year], ignore_index=True) for k in per_year[0]}
    cont = _continuity(world)
    tables = {
        "jobs": jobs,
        **firm_tables,
        "postcode_lookup": world.postcodes.copy(),
        "entref_continuity": cont,
        "place_characteristics": world.places.chars.copy(),
        "cpi": cpih(years),
    }
    old = cont["old_entref"].to_numpy()
    for name in ("local_units", "enterprises", "accounts"):
        acc.reorg[name] += int(_isin_sorted(tables[name]["entref"].to_numpy(), np.sort(old)).sum())
    truth = _truth(world, acc, workers, py)
    extra = {}
    if source == "paye_rti":
        tables, mess = _rti_tables(world, clean, tables, float(central_payroll))
        truth = replace(truth, mess=pd.DataFrame(mess, columns=["kind", "table", "rows"]).astype({"rows": "int64"}))
        extra = {"source": source, "central_payroll": float(central_payroll)}
    del clean
    meta = {"size": size, "seed": seed, "years": list(years), "sample": sample, **extra,
            "overrides": {k: dgp.to_dict()[k] for k in overrides},
            "people_total": acc.people_total, "dgp": dgp.to_dict(), "seconds": round(time.perf_counter() - t0, 3)}
    return SyntheticEngland(tables=tables, truth=truth, meta=meta)


def _check_sample(sample, fn: str = "england"):
    if not (sample is None or (isinstance(sample, str) and sample == "ashe")):
        fail(f"{fn}: sample must be None or 'ashe', got {sample!r}")


class _Accumulator:
    """Everything summed over blocks of workers: firm-year totals, truth moments, mess counts."""

    def __init__(self, world: _World):
        T = world.years[1] - world.years[0] + 1
        L = len(world.places.table)
        J = len(world.ent_psi)
        self.lu_emp = np.zeros((len(world.lu_ent), T), dtype=np.int32)
        self.ent_va = np.zeros((J, T))
        self.ent_cost = np.zeros((J, T))
        self.lad_va = np.zeros((L, T))
        self.lad_hours = np.zeros((L, T))
        self.moments = _Moments(L)
        self.counts = {k: 0 for k in MESS_KINDS[:-1]}
        self.reorg = {"jobs": 0, "local_units": 0, "enterprises": 0, "accounts": 0}
        self.people_total = 0
        self.old_refs = np.sort(_continuity(world)["old_entref"].to_numpy())


def _process_block(world: _World, index: np.ndarray, sample, block_no: int, acc: _Accumulator,
                   keep_clean: bool = False):
    """Simulate one block of workers; add it to the accumulators; return its (messy) jobs, truth person-years
    and worker effects (restricted to the ASHE sample if asked), and with ``keep_clean`` the clean job rows
    before any mess (with the local-unit index ``_lu``: what the PAYE RTI format is built from)."""
    seed = world.seed
    block = _simulate_block(world, index)
    py = _person_years(world, block)
    jobs_clean, _ = _jobs(world, py, block["W"], index, np.random.default_rng([seed, 55, block_no]))
    _accumulate_firms(world, py, jobs_clean, acc.lu_emp, acc.ent_va, acc.ent_cost, acc.lad_va, acc.lad_hours)
    W = block["W"]
    acc.people_total += int(len(_uniq(py["_w"].to_numpy())))
    if sample == "ashe":
        py = py[in_ashe_sample(py["piden"])].reset_index(drop=True)
        jobs_clean = jobs_clean[in_ashe_sample(jobs_clean["piden"])].reset_index(drop=True)
    n_main = len(py)
    jobs, counts = _inject_mess(world, jobs_clean, n_main, np.random.default_rng([seed, 66, block_no]), world.lu_ref)
    counts["secondary_job"] = len(jobs_clean) - n_main
    for k, v in counts.items():
        acc.counts[k] += int(v)
    e = jobs["entref"]
    acc.reorg["jobs"] += int(_isin_sorted(e[e.notna()].to_numpy(dtype=np.int64), acc.old_refs).sum())
    acc.moments.add(py, world.ent_eta[py["_ent"].to_numpy()])
    people = _uniq(py["_w"].to_numpy())
    workers = pd.DataFrame({"piden": _piden(index[people], seed), "alpha": W["alpha"][people],
                            "education": W["edu"][people].astype(np.int64), "soc": W["soc"][people],
                            "female": W["female"][people].astype(np.int64)})
    public = py[[c for c in py.columns if not c.startswith("_")]].sort_values(["piden", "year"]).reset_index(drop=True)
    if keep_clean:
        return jobs, public, workers, jobs_clean
    return jobs, public, workers


def _truth(world: _World, acc: _Accumulator, workers, person_years) -> Truth:
    firm, place, industry = _effects_tables(world)
    rows = [(k, "jobs", int(acc.counts[k])) for k in MESS_KINDS[:-1]]
    rows += [("reorganised_entref", name, int(n)) for name, n in acc.reorg.items()]
    mess = pd.DataFrame(rows, columns=["kind", "table", "rows"]).astype({"rows": "int64"})
    return Truth(
        worker_effects=workers,
        firm_effects=firm,
        place_effects=place,
        industry_effects=industry,
        coefficients=_coefficients(world),
        person_years=person_years,
        variance=acc.moments.variance(),
        place_gaps=acc.moments.place_gaps(world.places.table["lad"].to_numpy()),
        mess=mess,
        place_productivity=_place_productivity(world, acc.lad_va, acc.lad_hours),
    )


_TABLE_ORDER = ("jobs", "local_units", "enterprises", "accounts", "postcode_lookup", "entref_continuity",
                "place_characteristics", "cpi")


def _check_years(years, fn: str = "england") -> tuple[int, int]:
    if isinstance(years, (str, bytes, dict)) or not hasattr(years, "__len__") or len(years) != 2:
        fail(f"{fn}: years must be a pair (first, last), got {years!r}", kind=InputTypeError)
    if not all(map(_is_int, years)):
        fail(f"{fn}: years must be two integers, got {tuple(years)!r}", kind=InputTypeError)
    y0, y1 = int(years[0]), int(years[1])
    if y0 > y1:
        fail(f"{fn}: years ({y0}, {y1}) are reversed; pass (first, last), e.g. ({y1}, {y0})")
    if not (min(_CPIH) <= y0 and y1 <= max(_CPIH)):
        fail(f"{fn}: years must be within {min(_CPIH)}-{max(_CPIH)} (the CPIH series), got ({y0}, {y1})")
    if y1 - y0 < 1:
        fail(f"{fn}: years ({y0}, {y1}): need at least two years")
    return y0, y1


def load(directory) -> SyntheticEngland:
    """Read a :class:`SyntheticEngland` written by :meth:`SyntheticEngland.to_parquet` or :func:`write_population`
    (an exact round trip).

    The folder is checked against its manifest first (``prosperity._io.verify``): a folder without a manifest (an
    interrupted write, or not written by this package), of another kind (e.g. a linked panel), with a missing,
    truncated or edited file, or with a Parquet file the manifest does not list is refused with an
    ``OutputFolderError`` (a ``ValueError``) saying which file is wrong. Files are read as listed in the manifest, so
    the tables and the truth are the ones written together, with the recorded seed."""
    d = Path(directory)
    try:
        man = _io.verify(d, kind=KIND)
    except _io.OutputFolderError as exc:
        raise _io.OutputFolderError(f"synthetic.load: {exc}") from None
    listed = set(man["files"])
    need = ["meta.json"] + [f"truth/{f.name}.{'json' if f.name in ('coefficients', 'variance') else 'parquet'}"
                            for f in fields(Truth)]
    missing = [n for n in need if n not in listed]
    if missing or not any(n.startswith("tables/") for n in listed):
        raise _io.OutputFolderError(f"synthetic.load: {d}: the manifest lists no {missing or ['tables/*.parquet']}; "
                                    "not a complete synthetic England")
    names = sorted(Path(n).stem for n in listed if n.startswith("tables/") and n.endswith(".parquet"))
    tables = {k: pd.read_parquet(d / "tables" / f"{k}.parquet") for k in _TABLE_ORDER if k in names}
    tables |= {k: pd.read_parquet(d / "tables" / f"{k}.parquet") for k in names if k not in _TABLE_ORDER}
    kw = {}
    for f in fields(Truth):
        pq, js = d / "truth" / f"{f.name}.parquet", d / "truth" / f"{f.name}.json"
        kw[f.name] = json.loads(js.read_text()) if f.name in ("coefficients", "variance") else pd.read_parquet(pq)
    return SyntheticEngland(tables=tables, truth=Truth(**kw), meta=json.loads((d / "meta.json").read_text()))


def write_population(directory, seed: int = 0, years=(2005, 2019), sample=None, fraction: float = 1.0,
                     block_size: int = 250_000, quiet: bool = False, **overrides) -> PopulationWrite:
    """Stream an England-sized synthetic population (``size="population"``: 27 million workers) to Parquet.

    Firms and places are generated first (in memory: about 2.3 million enterprises); then workers are simulated
    in blocks of ``block_size`` (each block runs the whole year loop), and each block's ``jobs``, truth
    ``person_years`` and ``worker_effects`` are appended to Parquet files as row groups, so memory stays bounded
    by the firm arrays plus one block. Firm-year totals, the truth's moments, place gaps and mess counts are
    accumulated across blocks; the firm tables are written one year at a time at the end. The directory has
    the layout of :meth:`SyntheticEngland.to_parquet`, so :func:`load` reads it (only sensible for a small
    ``fraction`` or ``sample="ashe"``; use DuckDB or pyarrow datasets on the full files).

    ``fraction`` < 1 simulates only the first ``fraction`` of the population's workers against the full
    set of firms (for benchmarks and tests); firm employment then counts only those workers. Results depend
    on ``block_size`` (it seeds the blocks), and are deterministic given (seed, block_size).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    fn = "write_population"
    seed = _check_seed(seed, fn)
    _check_sample(sample, fn)
    years = _check_years(years, fn)
    if not _is_real(fraction) or not 0 < fraction <= 1:
        fail(f"{fn}: fraction must be a number in (0, 1], got {fraction!r}")
    if not _is_int(block_size) or block_size < 1:
        fail(f"{fn}: block_size must be a positive integer, got {block_size!r}")
    dgp = _make_dgp("population", overrides, fn)
    world = _world(dgp, years, seed)
    acc = _Accumulator(world)
    d = Path(directory)
    n = int(round(dgp.n_workers * fraction))
    overrides = {k: dgp.to_dict()[k] for k in overrides}
    meta = {"size": "population", "seed": seed, "years": list(years), "sample": sample, "fraction": fraction,
            "block_size": int(block_size), "workers": n, "overrides": overrides}
    writers: dict = {}
    rows: dict = {}
    with _io.atomic_folder(d, kind=KIND, meta=_folder_meta(meta, dgp.to_dict(), fn)) as tmp:
        (tmp / "tables").mkdir()
        (tmp / "truth").mkdir()

        def write(path: Path, df: pd.DataFrame, key: str):
            table = pa.Table.from_pandas(df, preserve_index=False)
            if key not in writers:
                writers[key] = pq.ParquetWriter(path, table.schema)
            writers[key].write_table(table.cast(writers[key].schema))
            rows[key] = rows.get(key, 0) + len(df)

        starts = list(range(0, n, int(block_size)))
        try:
            from tqdm.auto import tqdm

            it = tqdm(starts, desc="population blocks", disable=quiet)
        except ImportError:  # pragma: no cover
            it = starts
        for b, start in enumerate(it):
            index = np.arange(start, min(start + int(block_size), n), dtype=np.int64)
            jobs, py, workers = _process_block(world, index, sample, b, acc)
            write(tmp / "tables" / "jobs.parquet", jobs, "jobs")
            write(tmp / "truth" / "person_years.parquet", py, "person_years")
            write(tmp / "truth" / "worker_effects.parquet", workers, "worker_effects")
            del jobs, py, workers
        cont = _continuity(world)
        old = cont["old_entref"].to_numpy()
        for y in range(years[0], years[1] + 1):
            ft = _firm_tables(world, acc.lu_emp, acc.ent_va, acc.ent_cost, y)
            for name, df in ft.items():
                acc.reorg[name] += int(_isin_sorted(df["entref"].to_numpy(), np.sort(old)).sum())
                write(tmp / "tables" / f"{name}.parquet", df, name)
        for w in writers.values():
            w.close()
        small = {"postcode_lookup": world.postcodes, "entref_continuity": cont,
                 "place_characteristics": world.places.chars, "cpi": cpih(years)}
        for name, df in small.items():
            df.to_parquet(tmp / "tables" / f"{name}.parquet", index=False)
            rows[name] = len(df)
        empty = pd.DataFrame()
        truth = _truth(world, acc, empty, empty)
        _write_truth(truth, tmp, skip=("person_years", "worker_effects"))
        seconds = time.perf_counter() - t0
        meta |= {"people_total": acc.people_total, "dgp": dgp.to_dict(), "seconds": round(seconds, 3)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    return PopulationWrite(directory=d, rows=rows, seconds=seconds, workers=n, variance=truth.variance)


# ----------------------------------------------------------------------------------------------------------
# Calibration
# ----------------------------------------------------------------------------------------------------------


def _district_pay(se: SyntheticEngland) -> pd.DataFrame:
    py = se.truth.person_years
    return py.groupby("lad").agg(mean_lhw=("lhw", "mean"), n=("lhw", "size")).reset_index()


def _district_productivity(se: SyntheticEngland) -> pd.DataFrame:
    pp = se.truth.place_productivity.groupby("lad")[["gva", "hours"]].sum()
    pp = pp[pp["hours"] > 0]
    return pd.DataFrame({"lad": pp.index, "gva_per_hour": (pp["gva"] / pp["hours"]).to_numpy()})


def calibration(se: SyntheticEngland) -> pd.DataFrame:
    """Every calibration target beside its simulated value: ``target, source, low, high, simulated, met,
    applies`` (``applies`` is False where a target is not comparable at this size or sample, e.g. the
    large-firm employment share in the scaled-down workshop England).

    Sources are those of the project's research note (``econ_facts.md``): BHLMMS = Bonhomme, Holzheu,
    Lamadon, Manresa, Mogstad & Setzler (2023, JOLE); GOP = Gibbons, Overman & Pelkonen (2014, OBES);
    CRY = Card, Rothstein & Yi (2021); ONS subregional productivity (June 2024) and ASHE 2023 from the
    geography kit; BPE = DBT Business Population Estimates.
    """
    if not isinstance(se, SyntheticEngland):
        fail(f"calibration: needs a synthetic.SyntheticEngland (from synthetic.england or synthetic.load), got "
             f"{type(se).__name__}", kind=InputTypeError)
    v = se.truth.variance
    d = geography.districts()
    region = d.set_index("lad")["region"]
    py = se.truth.person_years
    size = se.meta.get("size", "workshop")
    ashe = se.meta.get("sample") == "ashe"
    small = size == "workshop" or ashe
    rows = []

    def add(target, source, low, high, sim, applies=True):
        rows.append((target, source, low, high, float(sim), bool(low <= sim <= high) if applies else np.nan, applies))

    add("var(log real hourly pay)", "ASHE P90/P10 hourly 4.0 (2005-10) -> log-normal var 0.29; 0.23 by 2019 (derived)",
        0.24, 0.31, v["var_y"])
    add("firm share var(psi)/var(y)", "BHLMMS 2023: bias-corrected 5-16%, plug-in IQR 15-25%", 0.09, 0.16, v["share_psi"])
    add("sorting share 2cov(alpha,psi)/var(y)", "BHLMMS 2023: bias-corrected 5-20%", 0.08, 0.17, v["share_sorting"])
    add("corr(alpha, psi)", "BHLMMS 2023 eq. 8: lower bounds 0.24-0.34 (CRE, FE-HO)", 0.15, 0.40, v["corr_alpha_psi"])
    add("place share var(phi)/var(y)", "GOP 2014: area effects < 1% of individual wage variance", 0.0, 0.012,
        v["share_phi"])
    lad_mean = py.groupby("lad")["lhw"].transform("mean")
    add("between-district share of var(log pay)", "GOP 2014: raw between-area share about 6-7% (labour markets; "
        "districts are smaller)", 0.03, 0.12, float(lad_mean.var(ddof=0) / v["var_y"]), applies=not small)
    add("annual job-to-job mobility", "ONS Economic Review Apr 2019: about 9% a year (5.7-10.9%)", 0.07, 0.11,
        v["mobility_rate"])
    lon = py["lad"].map(region).to_numpy() == "E12000007"
    real_lp = np.log(d["median_weekly_pay"])
    ok = real_lp.notna().to_numpy()
    rl = (d["region"] == "E12000007").to_numpy()
    w = d["filled_jobs"].to_numpy()
    real_lon = np.average(real_lp[rl & ok], weights=w[rl & ok]) - np.average(real_lp[~rl & ok], weights=w[~rl & ok])
    add("London pay premium (mean log hourly pay vs rest of England)" + (" [1% sample]" if ashe else ""),
        f"ASHE 2023 median weekly pay, London vs rest: {real_lon:.2f} log points (resident basis; workplace gaps larger)",
        0.20, 0.40, float(py["lhw"][lon].mean() - py["lhw"][~lon].mean()), applies=not ashe)
    pp = se.truth.place_productivity.groupby("lad")[["gva", "hours"]].sum()
    plon = pp.index.map(region) == "E12000007"
    sim_lon = pp["gva"][plon].sum() / pp["hours"][plon].sum() / (pp["gva"].sum() / pp["hours"].sum()) - 1
    gv, hr = d["gva_per_hour"].to_numpy(), d["hours_worked_per_week"].to_numpy()
    real_plon = (gv * hr)[rl].sum() / hr[rl].sum() / ((gv * hr).sum() / hr.sum()) - 1
    tol = 0.2 if small else 0.12  # at workshop size a few large firms move London's figure
    add("London GVA per hour vs England", f"ONS subregional productivity 2022 (kit): +{real_plon:.0%}",
        real_plon - tol, real_plon + tol, float(sim_lon))
    gaps = se.truth.place_gaps
    gw = gaps["n"].to_numpy(float)
    vg = np.cov(gaps["gap"], gaps["gap"], aweights=gw)[0, 1]
    share = lambda c: float(np.cov(gaps[c], gaps["gap"], aweights=gw)[0, 1] / vg)  # noqa: E731
    add("skill (people) share of district pay gaps", "CRY 2021: worker skill explains about half", 0.35, 0.65,
        share("people"))
    add("industry-mix share of district pay gaps", "CRY 2021; ONS 2017, 2019: industry composition explains little",
        -0.05, 0.20, share("industry_mix"))
    dp = _district_pay(se).merge(d[["lad", "median_weekly_pay", "gva_per_hour"]], on="lad")
    thr_pay, thr_prod = (0.4, 0.3) if small else (0.65, 0.55)
    add(f"Spearman: district mean log pay vs ONS median pay (>= {thr_pay})", "ASHE 2023 by district (kit)",
        thr_pay, 1.0, dp["mean_lhw"].corr(dp["median_weekly_pay"], method="spearman"), applies=not ashe)
    dq = _district_productivity(se).merge(d[["lad", "gva_per_hour"]], on="lad", suffixes=("", "_ons"))
    add(f"Spearman: district GVA per hour vs ONS (>= {thr_prod})", "ONS subregional productivity 2022 (kit)",
        thr_prod, 1.0, dq["gva_per_hour"].corr(dq["gva_per_hour_ons"], method="spearman"))
    ind = py["industry"].value_counts(normalize=True)
    tgt = pd.Series(INDUSTRY_SHARES) / sum(INDUSTRY_SHARES.values())
    add("industry shares: max abs deviation (SIC sections)", "BRES 2018 (G 15.2%, Q 13.2%) and rounded BRES shares",
        0.0, 0.04 if small else 0.03, float((ind.reindex(tgt.index).fillna(0) - tgt).abs().max()))
    ent = se.tables["enterprises"]
    ent = ent[ent["employment"] > 0]
    add("share of employing enterprises with < 50 employees", "BPE 2023: 36,900 medium + 8,000 large of about "
        "1.4m employers (derived: 0.97)", 0.90, 0.995, float((ent["employment"] < 50).mean()), applies=size != "workshop")
    add("employment share of enterprises with 250+ employees", "BPE 2015: large firms 10.3m of 25.9m (0.40)",
        0.30, 0.50, float(ent["employment"][ent["employment"] >= 250].sum() / ent["employment"].sum()),
        applies=size != "workshop")
    if se.meta.get("sample") == "ashe":
        add("ASHE sample: share of people", "ASHE QMI: 1% of PAYE jobs (NINO suffix)", 0.0085, 0.0115,
            len(se.truth.worker_effects) / float(se.meta.get("people_total", np.nan)))
    out = pd.DataFrame(rows, columns=["target", "source", "low", "high", "simulated", "met", "applies"])
    return out

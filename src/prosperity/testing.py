"""Simulated two-way (AKM) panels for tests, benchmarks and exercises (as ``numpy.testing`` / ``pandas.testing``).

A small two-way data-generating process for the unit tests and the benchmarks (``from prosperity.testing import
simulate``). The book's chapters are collected as tests by ``tests/nbchapters.py``, not by this module.

Workers with effects alpha_i ~ N(0, sd_alpha^2) are matched to firms with effects psi_j ~ N(0, sd_psi^2); the
firm is drawn each time a worker moves (probability ``move`` a year) with sorting: the firm's psi rank follows a
latent ``rho * z(alpha) + sqrt(1 - rho^2) * noise``. Errors are heteroskedastic (their s.d. rises with the
firm's psi rank) and independent. Vectorised: a million rows in well under a second.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr


def simulate(n_workers: int = 20_000, years: int = 5, n_firms: int = 2_000, move: float = 0.1,
             sd_alpha: float = 0.4, sd_psi: float = 0.2, rho: float = 0.5, sd_eps: tuple = (0.15, 0.45),
             seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    za = rng.standard_normal(n_workers)
    psi_sorted = np.sort(rng.standard_normal(n_firms)) * sd_psi  # firm j has the j-th smallest psi
    cols = _workers(rng, za, years, psi_sorted, move, sd_alpha, rho, sd_eps)
    # shuffle firm labels so ids carry no information
    perm = rng.permutation(n_firms)
    cols["firm"] = perm[cols["firm"]]
    return pd.DataFrame(cols)


def simulate_blocks(n_workers: int, years: int, n_firms: int, block_workers: int = 1_000_000, move: float = 0.1,
                    sd_alpha: float = 0.4, sd_psi: float = 0.2, rho: float = 0.5, sd_eps: tuple = (0.15, 0.45),
                    seed: int = 0):
    """The DGP of :func:`simulate` for panels too large to hold several times over: the same firms for every block
    of ``block_workers`` workers, independent worker draws per block. Yields DataFrames (worker ids continue
    across blocks)."""
    rng_f = np.random.default_rng([seed, 0])
    psi_sorted = np.sort(rng_f.standard_normal(n_firms)) * sd_psi
    perm = rng_f.permutation(n_firms)
    for b, w0 in enumerate(range(0, n_workers, block_workers)):
        rng = np.random.default_rng([seed, 1, b])
        za = rng.standard_normal(min(block_workers, n_workers - w0))
        cols = _workers(rng, za, years, psi_sorted, move, sd_alpha, rho, sd_eps)
        cols["firm"] = perm[cols["firm"]]
        cols["worker"] += w0
        yield pd.DataFrame(cols)


def _workers(rng, za, years, psi_sorted, move, sd_alpha, rho, sd_eps) -> dict:
    """Careers of the workers with standardised effects ``za`` (firm codes in psi order)."""
    n_workers, n_firms = len(za), len(psi_sorted)
    n = n_workers * years
    alpha = sd_alpha * za
    worker = np.repeat(np.arange(n_workers, dtype=np.int64), years)
    year = np.tile(np.arange(years, dtype=np.int64), n_workers)
    latent = rho * za[worker] + np.sqrt(1 - rho ** 2) * rng.standard_normal(n)
    cand = np.minimum((ndtr(latent) * n_firms).astype(np.int64), n_firms - 1)
    draw = (year == 0) | (rng.random(n) < move)
    last = np.where(draw, np.arange(n), 0)
    np.maximum.accumulate(last, out=last)
    firm = cand[last]
    sd = sd_eps[0] + (sd_eps[1] - sd_eps[0]) * (firm / max(n_firms - 1, 1))
    eps = sd * rng.standard_normal(n)
    y = 1.0 + alpha[worker] + psi_sorted[firm] + eps
    return {"worker": worker, "firm": firm, "year": year + 2005, "y": y, "alpha_true": alpha[worker],
            "psi_true": psi_sorted[firm], "eps": eps}


def truth(df: pd.DataFrame) -> dict:
    """True components on the rows of ``df`` (person-year weighted, denominator n)."""
    a, p = df["alpha_true"].to_numpy(), df["psi_true"].to_numpy()
    a, p = a - a.mean(), p - p.mean()
    return {"var_alpha": float(a @ a / len(a)), "var_psi": float(p @ p / len(p)), "cov_alpha_psi": float(a @ p / len(a))}

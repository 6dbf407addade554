"""Variance decompositions of an AKM model: plug-in, homoskedastic-corrected and leave-out (KSS).

On the person-year scale (Bonhomme et al. 2023, *JOLE* 41(2), eq. 3),

    Var(y) = Var(alpha) + Var(psi) + 2 Cov(alpha, psi) + Var(xb) + 2 Cov(xb, alpha + psi) + Var(e).

The **plug-in** estimator puts the estimated effects into these moments. Because every estimated effect carries
sampling error, its variance is biased upwards and the covariance downwards ("limited-mobility bias"; Andrews,
Gill, Schank and Upward 2008, *JRSS-A* 171(3):673-697). For a quadratic form ``theta = beta' A beta`` in the AKM
coefficients, ``E[theta_PI] = theta + sum_l B_ll sigma_l^2`` with ``B_ll = z_l' S^-1 A S^-1 z_l``, ``S = Z'Z``
(Kline, Saggio and Solvsten 2020, *Econometrica* 88(5):1859-1898, hereafter KSS). Two corrections:

- ``"homoskedastic"`` (Andrews et al. 2008): ``theta_HO = theta_PI - sigma^2 sum_l B_ll`` with
  ``sigma^2 = SSR / (n - number of parameters)``.
- ``"kss"`` (KSS 2020): ``theta_KSS = theta_PI - sum_l B_ll sigma_l^2`` with the unbiased leave-out estimate
  ``sigma_l^2 = (y_l - ybar)(y_l - z_l' beta_{-l}) = (y_l - ybar) e_l / (1 - P_ll)``, ``P_ll = z_l' S^-1 z_l``;
  the outcome is centred at its person-year mean, as in LeaveOutTwoWay and pytwoway, so no estimate moves when a
  constant is added to y (uncentred, ``y_l e_l / (1 - P_ll)`` is unbiased too but noisier, and not invariant).
  Valid under arbitrary heteroskedasticity, it needs ``P_ll < 1``: fit on the leave-one-out connected set
  (``akm.fit(..., connected="leave_one_out")``). The unit left out is:

  - ``leave_out="obs"``: one person-year;
  - ``leave_out="match"`` (KSS's leave-match-out, on the sample ``network.connected_set(..., leave_out="match")``
    keeps: stayers with at least two person-years stay): a mover's worker-firm match is left out whole (collapsed
    to its length-weighted mean, ``sqrt(c) ybar_m`` on ``sqrt(c) z_m``, as in LeaveOutTwoWay's
    ``leave_out_KSS_coll``), a stayer's person-years one at a time with ``P_ll = 1 / T_i`` (LeaveOutTwoWay's
    ``sigma_for_stayers.m``, bipartitepandas). This allows serial correlation within movers' matches; within a
    stayer's job it does not (a stayer's errors enter only its own worker effect, so var(alpha) is then biased
    upwards and the intervals of var(alpha) and cov(alpha, psi) under-cover; LeaveOutTwoWay bounds that part
    separately, ``bounds_variance_person_effects_stayers.m``);
  - ``leave_out="match_movers"``: every match left out whole, on the movers-only sample of
    ``leave_out="match_movers"`` pruning (the ``"match"`` estimator of version 0.3): robust to serial correlation
    within every match, for a sample without stayers.

The truth of a simulation, decomposed the same way on the same rows, is :func:`of_effects` (``method="truth"``).

Computation. Every ``B_ll`` and ``P_ll`` depends only on the worker-firm match of ``l``; the worker effects are
eliminated in closed form, so all that is needed are firm-sized solves with the matrix ``L = F' M_D F`` (the
mobility-network Laplacian): ``c_m = L^+ x_m`` with ``x_m = e_j - mbar_i`` (the firm indicator minus the worker's
employment shares). ``leverage="exact"`` factorises ``L`` (grounded at one firm) and forms ``c_m`` for every mover
match in chunks (memory: firms^2, never observations^2). ``leverage="jla"`` uses random projections, as in the
computational appendix of KSS: the leverages ``P_ll`` by the Johnson-Lindenstrauss approximation with ``draws``
(default 200) Rademacher vectors, one block preconditioned-CG solve per draw; then the bias term
``sum_l B_ll sigma_l^2`` as a trace, ``tr(A S^-1 Z' diag(sigma^2) Z S^-1)``, by Hutchinson's estimator with
``trace_draws`` Rademacher vectors (by default as many as needed for a Monte Carlo s.e. of at most 1e-4 var(y) on
each component, up to ``max_trace_draws`` = 1000; ``details["trace_target_met"]`` says whether that target was
reached and a ``RuntimeWarning`` and the summary say when the cap stopped the draws), two weighted AKM solves per
draw for all three components (as pytwoway does, which uses 5 draws). The Monte Carlo standard error of each
corrected component is reported in ``mc_se`` (the noise of the leverages themselves, which enters
``sigma_l^2``, is not included in it). ``1 / (1 - P_hat)`` is biased upwards even when ``P_hat`` is unbiased, so
(i) the leverages whose ``1 / (1 - P)`` has a relative Monte Carlo variance above 0.3% (for the unit left out: a
person-year, or a match left out whole; judged on an independent pilot of ``draws // 10`` draws, grown by as many while it flags more units than it has
draws, up to ``draws // 2``; ``details["exact_target_met"]`` is False and a ``RuntimeWarning`` says so when more
than ``jla_exact`` are flagged) are recomputed
exactly, the worst ``jla_exact`` = 1000 at most (single-precision solves to 1e-6), as pytwoway recomputes its
JLA leverages above 0.98; (ii) the others get the non-linear correction of Di Addario, Kline, Saggio and Solvsten (2023,
*J. Econometrics* 235(2)) used by LeaveOutTwoWay, ``sigma_l^2 (1 - V_l / (1 - P_l)^2)``, with the Monte Carlo
variance ``V_l`` of each leverage estimated from its draws (:func:`_jla_fix`). On a low-mobility test panel
(``tests/test_kss_reference.py``; 30 seeds) the bias of the JLA bias term fell from 0.0025 (3.3 Monte Carlo s.e.)
to 0.00002 (0.3 s.e.), and the mean of 20 JLA estimates is within one s.e. of the exact one.
``leverages(..., leverage="jla")`` gives per-match JLA estimates of every ``B_ll`` as well.
Controls and time effects are partialled out first at their estimated values (as in KSS and LeaveOutTwoWay).

Inference (``se=True``, ``method="kss"`` only). The KSS estimate is a quadratic form ``theta_KSS = y'Cy`` with
``C = B - (D M + M D)/2``, ``M = I - P``, ``D = diag(B_ll / M_ll)`` (KSS write it as
``sum_l sum_{k != l} C_lk y_l y_k``): ``C`` has a zero diagonal, so for independent errors

    V[theta_KSS] = 4 sum_l (C mu)_l^2 sigma_l^2 + 2 sum_{l != k} C_lk^2 sigma_l^2 sigma_k^2,   mu = E[y],

and theta_KSS is asymptotically normal when no eigenvalue of the quadratic form dominates (KSS section 5, the
"strong identification" case q = 0). We estimate it as the authors' LeaveOutTwoWay code does
(``leave_out_estimation_two_way.m``, version 1.x, "SE under q=0"):

    V_hat = 4 sum_l (C y)_l^2 s_l - 2 sum_{l != k} C_lk^2 s_l s_k,

with ``s_l`` a smoothed estimate of ``sigma_l^2``. Because ``C`` has a zero diagonal, ``(Cy)_l`` does not involve
``y_l`` and ``E[(Cy)_l^2] = (C mu)_l^2 + sum_k C_lk^2 sigma_k^2``; the second term removes that excess. The
smoother differs from LeaveOutTwoWay's (a local-linear regression of ``sigma_hat_l^2`` on ``(P_ll, B_ll)``, its
``llr_fit.m``): here ``s_l`` is the mean of the unbiased leave-out ``sigma_hat^2`` (outcome demeaned) over the
person-years (or matches) of ``l``'s firm, floored at 0, which follows firm-level heteroskedasticity. In this
package's Monte Carlo (errors whose variance rises with the firm effect) a binned fit on ``(P_ll, B_ll)`` gave
90-92% coverage for cov(alpha, psi) where the firm mean gave 94-95%. Any consistent ``s_l`` is valid for q = 0;
with very small firms the firm means are noisy and the standard errors came out slightly conservative (3-5% too
large) in our simulations.
The double sum is ``2 tr(C S C S)``, ``S = diag(s)``: exact with ``se_draws=0`` (dense columns of ``C``; tiny
data only) or Hutchinson's estimator with ``se_draws`` Rademacher vectors (default 10). ``C`` is applied as an
operator: seven firm-sized solves per vector (the least-squares fit, then for each component one for ``B`` and
one for ``M D``), with the dense Cholesky factor of the grounded Laplacian (``leverage="exact"``) or block PCG.
The Monte Carlo s.e. of each standard error is reported in ``se_mc``. Under ``leverage="jla"``, ``D`` uses the
JLA estimates of ``B_ll`` (as :func:`leverages`, ``draws`` draws); their noise is not in ``se_mc`` (up to about
2% of the standard error with 200 draws in our tests). The same formula with two components gives their covariance
(``vcov``), hence the s.e. of corr(alpha, psi) by the delta method. Shares are divided by var(y), which is treated
as fixed. Intervals are ``estimate -/+ z se``; they leave out the simulation error of a JLA point estimate
(``mc_se``, at most 1e-4 var(y) by default). The independent units are those left out: person-years, movers'
matches and stayers' person-years (``"match"``), or matches (``"match_movers"``). Under JLA the weights ``D`` of
``C`` use the JLA leverages without the non-linear correction.

Weak identification (``se=True``, ``ci_method="auto"`` or ``"q1"``; KSS section 5.3, LeaveOutTwoWay's
``eigen_diagno`` option). Write ``B = sum_s lambda_s w_s w_s'`` (unit eigenvectors ``w_s``; the ``lambda_s`` are the
eigenvalues of KSS's A-tilde divided by n). When one eigenvalue is not negligible in ``sum_s lambda_s^2`` (q = 1:
typical of var(psi) when blocks of firms are linked by few movers), ``theta_KSS = lambda_1 (b_1^2 - V_1) +
theta_1`` with ``b_1 = w_1'y``, ``V_1 = sum_u w_u1^2 sigma_hat_u^2`` and ``theta_1 = y'C_2 y`` (``C_2`` the
leave-out operator of ``B - lambda_1 w_1 w_1'``) is not normal: it is a quadratic function of the normal
``b_1``, whose mean may be near zero. KSS instead treat ``(b_1, theta_1)`` as jointly normal (covariance estimated
as in LeaveOutTwoWay's ``leave_out_estimation_two_way.m``: ``var(b_1) = sum w_u1^2 s_u``, ``cov = 2 sum w_u1 s_u
(C_2 y)_u``, ``var(theta_1)`` the q = 0 formula for ``C_2``) and invert the test of Andrews and Mikusheva (2016,
*Econometrica* 84(4)): the interval is the image under ``lambda_1 b^2 + t`` of the ellipse ``{(b, t): distance to
(b_1, theta_1) <= z}`` (LeaveOutTwoWay's ``AM_CI.m`` finds its ends as roots of a quartic; we search the
ellipse's boundary, and a test checks the two agree), with ``z`` the curvature-adjusted critical value: the
quantile of the distance from a bivariate normal point to a circle of the null curve's curvature ``C =
2 |lambda_1| var(b_1) / (sd(theta_1) sqrt(1 - rho^2))``. LeaveOutTwoWay reads it from a simulated table; we compute
it exactly (noncentral chi-square) and take the largest over curvatures in ``[0, C]`` (the quantile dips below
1.96 at moderate curvature), so ``z`` runs from 1.96 to 2.45. Reported: ``eigen_share`` (``lambda_1^2 / sum
lambda^2``), ``lambda_max``, the Lindeberg ratio ``max_u w_u1^2`` (KSS need it small for ``b_1`` to be normal),
both intervals (``ci_q0``, ``ci_q1``) and ``ci_method``. The rule (``"auto"``): the q = 1 interval for a component
whose ``eigen_share`` is at least 5%, else the normal one; with a small share the curvature is small and the two
nearly coincide (within 0.3% of their width in ``tests/test_variance_weakid.py``). corr(alpha, psi) keeps its
delta-method interval. Eigenvalues: dense in the coefficient space (generalised problem ``A q = lambda S q``) up
to 500 workers + firms, else Lanczos (``scipy.sparse.linalg.eigsh``) on the implicit unit operator (two
firm-sized solves per step); ``sum lambda^2`` exactly (dense), or the three leading ``lambda^2`` plus a Hutchinson
estimate of the deflated remainder (``se_draws`` draws). Where ``var(theta_1)`` is estimated non-positive (the
remainder is tiny), its first term ``4 sum (C_2 y)_u^2 s_u`` alone is used (conservative;
``weak_id[k]["var_theta1_floored"]``). In the Monte Carlo of ``tests/test_variance_weakid.py`` (two blocks of
firms joined by three movers, leading share 0.93-0.99) the normal intervals cover 50-62% of the time, mostly
because the q = 0 variance estimate (unbiased, not constrained positive) is not positive in 36-50% of the draws,
leaving no interval (where it is positive they cover 0.96-0.99); the q = 1 ones always exist and cover 96-99%
(conservative for var(psi)). q = 2 is not implemented.

Second-stage regressions (:func:`lincom`): firm effects on firm covariates with leave-out standard errors (KSS
Proposition 1 and Remark 9, LeaveOutTwoWay's ``lincom_KSS.m``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _checks
from ._results import Result
from ._sparse import System, block_pcg

__all__ = ["decompose", "of_effects", "VarianceDecomposition", "table", "leverages", "lincom", "Lincom"]

METHODS = ("plugin", "homoskedastic", "kss")
_JLA_TOL = 1e-4  # CG tolerance of the random-projection leverage solves (their Monte Carlo error is ~10%)
# JLA leverages whose 1 / (1 - P) has an estimated relative Monte Carlo variance above this are recomputed exactly
# (one firm-sized solve each, at most ``jla_exact`` of them), as pytwoway recomputes its leverages above 0.98
_JLA_EXACT_SCORE = 0.003
_JLA_EXACT_TOL = 1e-6  # single-precision CG tolerance of those exact solves


_SHARES = (("alpha", "share_alpha", "var_alpha", 1), ("psi", "share_psi", "var_psi", 1),
           ("sorting", "share_sorting", "cov_alpha_psi", 2), ("xb", "share_xb", None, 1),
           ("resid", "share_resid", None, 1))


@dataclass(frozen=True, repr=False)
class VarianceDecomposition(Result):
    """Components of Var(y) on the person-year scale (variances with denominator n).

    ``var_y, var_alpha, var_psi, cov_alpha_psi, var_xb, cov_xb_effects`` (= Cov(xb, alpha + psi)), ``var_resid``;
    ``corr_alpha_psi``; shares of var_y: ``share_alpha, share_psi, share_sorting`` (= 2 cov / var_y),
    ``share_xb, share_resid`` (also as a DataFrame: :meth:`shares`). ``method`` (``"plugin"``,
    ``"homoskedastic"``, ``"kss"``; ``"truth"`` for :func:`of_effects`; other estimators, e.g. ``"blm"``,
    ``"cre"``, fill the same fields), ``leave_out``, ``leverage`` ("exact" / "jla" / None), ``draws``,
    ``mc_se`` (dict: Monte Carlo standard errors of the corrected var_alpha, var_psi and cov_alpha_psi under JLA),
    ``sigma2`` (homoskedastic error variance, for "homoskedastic"), ``n_obs``, ``details`` (counts: matches,
    movers' matches, clipped leverages, JLA leverages recomputed exactly, trace draws, their Monte Carlo target and
    whether it was met, seconds).

    With ``decompose(..., method="kss", se=True)`` (empty / None otherwise): ``se`` (dict: standard errors of
    var_alpha, var_psi, cov_alpha_psi, the three shares and corr_alpha_psi; KSS q = 0, see the module docstring),
    ``ci`` (dict: ``(lower, upper)`` normal intervals at ``level``), ``se_mc`` (Monte Carlo s.e. of the standard
    errors of the components and shares, from the Hutchinson trace estimate; 0 when exact), ``vcov`` (3 x 3
    DataFrame: estimated covariance matrix of var_alpha, var_psi, cov_alpha_psi), ``level``.

    Weak identification (``se=True`` with ``ci_method="auto"`` or ``"q1"``; KSS section 5.3, see the
    module docstring): ``eigen_share`` (dict: for var_alpha, var_psi, cov_alpha_psi, the share
    ``lambda_1^2 / sum_s lambda_s^2`` of the leading eigenvalue of the component's quadratic form), ``lambda_max``
    (dict: that eigenvalue ``lambda_1``, on the scale of the component: the variance it adds per unit of
    ``b_1^2``), ``ci_q0`` (the normal intervals), ``ci_q1`` (the weak-identification intervals of the three
    components and their shares), ``ci_method`` (dict: ``"q=0"`` or ``"q=1"``, which of the two ``ci`` reports for
    each quantity) and ``weak_id`` (dict of dicts: the three leading eigenvalues, their shares, ``sum_sq``, the
    Lindeberg ratio ``max_u w_u1^2``, ``b1``, ``theta1``, their covariance, the curvature and critical value of
    the interval). ``ci`` itself holds the interval ``ci_method`` names.

    ``table`` (and its copy ``to_frame()``): the components as rows, see :attr:`table`.
    """

    method: str
    var_y: float
    var_alpha: float
    var_psi: float
    cov_alpha_psi: float
    var_xb: float
    cov_xb_effects: float
    var_resid: float
    n_obs: int
    leave_out: str | None = None
    leverage: str | None = None
    draws: int | None = None
    mc_se: dict = field(default_factory=dict)
    sigma2: float | None = None
    details: dict = field(default_factory=dict)
    se: dict = field(default_factory=dict)
    ci: dict = field(default_factory=dict)
    se_mc: dict = field(default_factory=dict)
    vcov: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    level: float | None = None
    ci_method: dict = field(default_factory=dict)
    ci_q0: dict = field(default_factory=dict)
    ci_q1: dict = field(default_factory=dict)
    eigen_share: dict = field(default_factory=dict)
    lambda_max: dict = field(default_factory=dict)
    weak_id: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def corr_alpha_psi(self) -> float:
        d = self.var_alpha * self.var_psi
        return float(self.cov_alpha_psi / np.sqrt(d)) if d > 0 else float("nan")

    @property
    def sum_of_parts(self) -> float:
        return float(self.var_alpha + self.var_psi + 2 * self.cov_alpha_psi + self.var_xb
                     + 2 * self.cov_xb_effects + self.var_resid)

    @property
    def share_alpha(self) -> float:
        return float(self.var_alpha / self.var_y)

    @property
    def share_psi(self) -> float:
        return float(self.var_psi / self.var_y)

    @property
    def share_sorting(self) -> float:
        return float(2 * self.cov_alpha_psi / self.var_y)

    @property
    def share_xb(self) -> float:
        return float((self.var_xb + 2 * self.cov_xb_effects) / self.var_y)

    @property
    def share_resid(self) -> float:
        return float(self.var_resid / self.var_y)

    def shares(self) -> pd.DataFrame:
        """Shares of var(y): one row per ``component`` (``alpha``, ``psi``, ``sorting`` = 2 cov / var_y, ``xb``
        = (var_xb + 2 cov_xb_effects) / var_y, ``resid``) with ``share``; with standard errors (``se=True``) also
        ``se``, ``lower`` and ``upper`` (the ``level`` interval; NaN for ``xb`` and ``resid``)."""
        out = pd.DataFrame({"component": [c for c, *_ in _SHARES],
                            "share": [getattr(self, a) for _, a, _, _ in _SHARES]})
        if self.se:
            nan = (float("nan"), float("nan"))
            out["se"] = [self.se.get(a, float("nan")) for _, a, _, _ in _SHARES]
            out["lower"] = [self.ci.get(a, nan)[0] for _, a, _, _ in _SHARES]
            out["upper"] = [self.ci.get(a, nan)[1] for _, a, _, _ in _SHARES]
        return out

    @property
    def table(self) -> pd.DataFrame:
        """Components as rows, one column named after the method. ``sum_of_parts`` should equal ``var_y``: exactly
        for the plug-in (least-squares orthogonality), approximately for the corrections (their residual variance
        is itself estimated) and for the truth (its errors are not exactly orthogonal to the effects in a sample).
        With standard errors (``se=True``) three more columns: ``"<method> s.e."`` and the interval bounds
        ``"<method> 95% CI lower"`` / ``"... upper"`` (NaN on rows without one); with the weak-identification
        diagnostic (``ci_method="auto"`` or ``"q1"``) two more: ``"<method> CI"`` (``"q=0"`` or ``"q=1"``: which
        interval the row reports) and ``"<method> eigen share"`` (``lambda_1^2 / sum lambda^2`` of the component)."""
        rows = {
            "var_y": self.var_y, "var_alpha": self.var_alpha, "var_psi": self.var_psi,
            "2cov_alpha_psi": 2 * self.cov_alpha_psi, "var_xb": self.var_xb,
            "2cov_xb_effects": 2 * self.cov_xb_effects, "var_resid": self.var_resid,
            "sum_of_parts": self.sum_of_parts, "gap (var_y - sum)": self.var_y - self.sum_of_parts,
            "corr_alpha_psi": self.corr_alpha_psi, "share_alpha": self.share_alpha,
            "share_psi": self.share_psi, "share_sorting": self.share_sorting,
        }
        out = pd.DataFrame({self.method: pd.Series(rows, dtype=float)})
        if self.se:
            m, pct = self.method, f"{100 * self.level:g}%"
            keys = {"var_alpha": ("var_alpha", 1), "var_psi": ("var_psi", 1), "2cov_alpha_psi": ("cov_alpha_psi", 2),
                    "corr_alpha_psi": ("corr_alpha_psi", 1), "share_alpha": ("share_alpha", 1),
                    "share_psi": ("share_psi", 1), "share_sorting": ("share_sorting", 1)}
            out[f"{m} s.e."] = pd.Series({r: f * self.se[k] for r, (k, f) in keys.items()}, dtype=float)
            out[f"{m} {pct} CI lower"] = pd.Series({r: f * self.ci[k][0] for r, (k, f) in keys.items()}, dtype=float)
            out[f"{m} {pct} CI upper"] = pd.Series({r: f * self.ci[k][1] for r, (k, f) in keys.items()}, dtype=float)
            if self.ci_method:  # which interval each row reports, and the eigenvalue diagnostic behind the choice
                out[f"{m} CI"] = pd.Series({r: self.ci_method.get(k) for r, (k, _) in keys.items()}, dtype=object)
                comp = {"var_alpha": "var_alpha", "var_psi": "var_psi", "2cov_alpha_psi": "cov_alpha_psi",
                        "share_alpha": "var_alpha", "share_psi": "var_psi", "share_sorting": "cov_alpha_psi"}
                out[f"{m} eigen share"] = pd.Series({r: self.eigen_share.get(c, float("nan"))
                                                     for r, c in comp.items()}, dtype=float)
        return out

    def summary(self) -> str:
        s = (f"Variance decomposition ({self.method}{', leave-' + self.leave_out + '-out' if self.leave_out else ''}"
             f"{', ' + self.leverage + ' leverages' if self.leverage else ''}), n = {self.n_obs:,}\n")
        s += self.table.to_string(float_format=lambda v: f"{v:.4f}")
        if self.mc_se:
            s += "\n  Monte Carlo s.e. (JLA, {} draws): ".format(self.draws) + ", ".join(
                f"{k} {v:.5f}" for k, v in self.mc_se.items())
        if self.details.get("trace_target_met") is False:
            s += (f"\n  warning: the trace draws stopped at their cap ({self.details['trace_draws']}) before the "
                  f"Monte Carlo s.e. reached its target ({self.details['trace_target']:.2g}); raise max_trace_draws")
        if self.se:
            tr = self.details.get("se_trace", "")
            s += (f"\n  s.e.: Kline, Saggio and Solvsten (2020) normal approximation, q = 0 (strong identification); "
                  f"trace term {tr}")
            if any(v > 0 for v in self.se_mc.values()):
                s += "; Monte Carlo s.e. of the s.e.: " + ", ".join(
                    f"{k} {self.se_mc[k]:.2g}" for k in _SE_COMPS)
            if not self.eigen_share:
                s += "\n  (decompose(..., ci_method='auto') adds the weak-identification diagnostic and q = 1 intervals)"
            if self.eigen_share:
                s += ("\n  weak identification (KSS section 5.3): leading eigenvalue lambda_1, its share of "
                      "sum lambda^2, Lindeberg ratio max w_1^2, and the interval reported:")
                for k in _SE_COMPS:
                    d = self.weak_id.get(k, {})
                    s += (f"\n    {k}: lambda_1 {self.lambda_max[k]:.3g}, share {self.eigen_share[k]:.3f}, "
                          f"Lindeberg {d.get('lindeberg', float('nan')):.3f}; {self.ci_method[k]} interval "
                          f"[{self.ci[k][0]:.4f}, {self.ci[k][1]:.4f}] (q=0 [{self.ci_q0[k][0]:.4f}, "
                          f"{self.ci_q0[k][1]:.4f}], q=1 [{self.ci_q1[k][0]:.4f}, {self.ci_q1[k][1]:.4f}])")
                s += (f"\n    rule ({self.details.get('ci_rule', '')}); corr_alpha_psi: q=0 (delta method) only")
        return s


def table(*decompositions: VarianceDecomposition) -> pd.DataFrame:
    """Several decompositions side by side: components as rows, methods as columns."""
    return pd.concat([d.table for d in decompositions], axis=1)


# ---------------------------------------------------------------------------------------------------------------


def _wvar(a, b=None):
    """Covariance with denominator n, from dot products (no centred copies of the arrays)."""
    b = a if b is None else b
    n = len(a)
    # einsum, not np.dot: OpenBLAS threads long dot products, so their rounding depended on the thread count
    return float(np.einsum("i,i->", a, b) / n - (a.sum() / n) * (b.sum() / n))


def _row_arrays(result) -> dict:
    """Per-row arrays of an AKM fit, without building a DataFrame: worker and firm codes (``g``, ``j``: 0-based,
    in the order of ``result.worker_effects`` / ``firm_effects``), ``y``, ``alpha``, ``psi``, ``xb``, ``resid``."""
    r = result._rows
    alpha, psi = result._effect("alpha"), result._effect("psi")
    if "weights" in r:  # a fit collapsed to matches: one row per match, y and resid are match means
        y, e = r["y_mean"], r["resid_mean"]
        return {"g": r["wcode"], "j": r["fcode"], "y": y, "alpha": alpha, "psi": psi, "xb": y - alpha - psi - e,
                "resid": e, "w": r["weights"], "ss": r["y_ss"]}
    return {"g": r["wcode"], "j": r["fcode"], "y": r["y"], "alpha": alpha, "psi": psi,
            "xb": r["y"] - alpha - psi - r["resid"], "resid": r["resid"]}


def _plugin(a: dict) -> dict:
    yv, al, ps, xb, e = (a[c] for c in ("y", "alpha", "psi", "xb", "resid"))
    w = a.get("w")
    if w is not None:  # rows are matches (person-year weights w); the within-match variation of y is residual
        W, ss = float(w.sum()), float(a["ss"].sum())

        def wv(p, q=None):
            q = p if q is None else q
            return float(np.einsum("i,i,i->", w, p, q) / W
                         - np.einsum("i,i->", w, p) / W * (np.einsum("i,i->", w, q) / W))

        return dict(var_y=wv(yv) + ss / W, var_alpha=wv(al), var_psi=wv(ps), cov_alpha_psi=wv(al, ps),
                    var_xb=wv(xb), cov_xb_effects=wv(xb, al + ps), var_resid=wv(e) + ss / W)
    return dict(var_y=_wvar(yv), var_alpha=_wvar(al), var_psi=_wvar(ps), cov_alpha_psi=_wvar(al, ps),
                var_xb=_wvar(xb), cov_xb_effects=_wvar(xb, al + ps), var_resid=_wvar(e))


class _Matches:
    """The estimation sample collapsed to worker-firm matches, with the network matrices (person-year weights).

    ``a`` holds per-row arrays (:func:`_row_arrays`): one row per person-year, or, for a fit collapsed to matches
    (``akm.fit(..., collapse="matches")``), one row per match with its person-years ``a["w"]`` and the
    within-match sum of squares of the outcome ``a["ss"]``. Every statistic kept here depends on the person-years
    only through a match's count, its means of the outcome and the residual and ``ye`` = sum over the match of
    ``(y_l - ybar) e_l``, which for a collapsed row is ``ss_m + c_m (ybar_m - ybar) ebar_m`` (the residual is
    ``e_l = (y_l - ybar_m) + ebar_m``): so leverages, weights and the KSS estimates computed from it are the same
    for a collapsed and an uncollapsed fit, to rounding. ``rss``: the person-year residual sum of squares."""

    def __init__(self, a: dict):
        g, j = a["g"], a["j"]
        w = a.get("w")  # person-years per row (a fit collapsed to matches), else one per row
        self.nw, self.nf = int(g.max()) + 1, int(j.max()) + 1
        # distinct (worker, firm) pairs sorted by worker then firm: a canonical CSR count matrix (linear time, no
        # sort of the rows); each row's match number is read back from a second matrix holding 0..matches-1
        A = sp.csr_matrix((np.ones(len(g), dtype=np.int32) if w is None else w, (g, j)), shape=(self.nw, self.nf))
        A.sum_duplicates()
        nmatch = A.nnz
        self.mi = np.repeat(np.arange(self.nw, dtype=np.int32), np.diff(A.indptr))
        self.mj = A.indices.astype(np.int32, copy=False)
        self.c = A.data.astype(float)  # person-years per match
        idx = sp.csr_matrix((np.arange(nmatch, dtype=np.int64), A.indices, A.indptr), shape=A.shape)
        del A
        minv = np.asarray(idx[g, j]).ravel()
        del idx
        self.row_match = minv
        self.n = float(len(g)) if w is None else float(w.sum())
        # outcome net of controls / time effects, centred at its person-year mean: the leave-out sigma_l^2 use
        # (y_l - ybar) e_l / (1 - P_ll), as LeaveOutTwoWay and pytwoway do, so no estimate moves with the level of y
        ytil = a["y"] - a["xb"]
        e = a["resid"]
        if w is None:
            self.ymean = float(ytil.mean())
            ytil = ytil - self.ymean
            self.ye = np.bincount(minv, weights=ytil * e)  # sum over the match of (y_l - ybar) e_l
            self.ybar = np.bincount(minv, weights=ytil) / self.c  # match means of the centred outcome
            self.ebar = np.bincount(minv, weights=e) / self.c
            self.rss = float(np.einsum("i,i->", e, e))  # no BLAS: the same bytes whatever the thread count
        else:  # rows are matches: weighted means, and the within-match sum of squares ss_m completes ye and rss
            ss = np.bincount(minv, weights=a["ss"], minlength=nmatch)
            self.ymean = float(np.einsum("i,i->", w, ytil)) / self.n
            ytil = ytil - self.ymean
            self.ybar = np.bincount(minv, weights=w * ytil, minlength=nmatch) / self.c
            self.ebar = np.bincount(minv, weights=w * e, minlength=nmatch) / self.c
            self.ye = ss + self.c * self.ybar * self.ebar
            self.rss = float(np.einsum("i,i,i->", self.c, self.ebar, self.ebar) + ss.sum())
        self.sys = System(self.mi, self.nw, [self.mj], [self.nf], self.c)
        self.T = self.sys.T
        self.nj = np.bincount(self.mj, weights=self.c, minlength=self.nf)
        self.s = self.nj / self.n
        self.t = self.T / self.n
        self.Mbar = sp.csr_matrix(self.sys.FD.T.multiply(1.0 / self.T[:, None]))  # workers x firms shares
        nfirms = np.bincount(self.mi, minlength=self.nw)
        self.mover_match = nfirms[self.mi] > 1
        nm = len(self.c)
        ones = np.ones(nm)
        # incidence matrices (firms x matches, workers x matches) for multi-column aggregation in C
        self.FtM = sp.csr_matrix((ones, (self.mj, np.arange(nm))), shape=(self.nf, nm))
        self.DtM = sp.csr_matrix((ones, (self.mi, np.arange(nm))), shape=(self.nw, nm))

    def single_precision_system(self):
        """The firm Laplacian and its Jacobi preconditioner in single precision (for the random-projection solves)."""
        if not hasattr(self, "_sp32"):
            self._sp32 = (self.sys.L.astype(np.float32), self.sys.precond.astype(np.float32))
        return self._sp32

    def x_rows(self, idx):
        """Sparse rows x_m = e_j - mbar_i for the matches idx."""
        E = sp.csr_matrix((np.ones(len(idx)), (np.arange(len(idx)), self.mj[idx])), shape=(len(idx), self.nf))
        return (E - self.Mbar[self.mi[idx]]).tocsr()


def _exact(mt: _Matches, chunk: int = 4000):
    """Exact P2_m = x'L^+x and B_m for psi, alpha, cov for every match (dense firm-sized inverse, chunks of rows).

    Uses L c = x (c = L^+ x, x in the range of L), so c'Qc = sum_j n_j c_j^2 - x'c with Q = diag(n_j) - L."""
    from scipy.linalg import lapack

    Lg = mt.sys.L[1:, 1:].toarray()
    cf, info = lapack.dpotrf(Lg, lower=0)
    if info != 0:
        raise np.linalg.LinAlgError("the firm Laplacian is not positive definite: is the sample connected?")
    inv, info = lapack.dpotri(cf, lower=0)
    del Lg, cf
    inv = np.triu(inv) + np.triu(inv, 1).T
    Linv = np.zeros((mt.nf, mt.nf))
    Linv[1:, 1:] = inv
    del inv
    idx_all = np.flatnonzero(mt.mover_match)
    nm = len(mt.c)
    P2, Bp, Ba, Bc = np.zeros(nm), np.zeros(nm), np.zeros(nm), np.zeros(nm)
    n = mt.n
    for a in range(0, len(idx_all), chunk):
        idx = idx_all[a:a + chunk]
        Mb = mt.Mbar[mt.mi[idx]]
        C = Linv[mt.mj[idx]] - np.asarray(Mb @ Linv)
        rows = np.repeat(np.arange(len(idx)), np.diff(Mb.indptr))
        u = np.bincount(rows, weights=Mb.data * C[rows, Mb.indices], minlength=len(idx))
        xc = C[np.arange(len(idx)), mt.mj[idx]] - u
        sc = C @ mt.s
        c2n = (C * C) @ mt.nj
        cQc = c2n - xc
        P2[idx] = xc
        Bp[idx] = c2n - n * sc ** 2
        Ti = mt.T[mt.mi[idx]]
        Ba[idx] = 1 / Ti - 2 * u + cQc - (1 - n * sc) ** 2 / n
        Bc[idx] = u - cQc - (1 - n * sc) * sc
    st = ~mt.mover_match
    Ba[st] = 1 / mt.T[mt.mi[st]] - 1 / n
    return P2, Bp / n, Ba / n, Bc / n, None


def _jla(mt: _Matches, draws: int, seed: int, tol: float, batch: int | None, quiet: bool, need_P: bool = True):
    """Johnson-Lindenstrauss approximation (KSS computational appendix) of P2 and B for every mover match.

    Returns P2 (zeros unless ``need_P``), B_psi, B_alpha, B_cov (arrays over matches) and the per-draw projections
    needed for the Monte Carlo error. The solves run in single precision to ``_JLA_TOL``, as in :func:`_jla_P`."""

    rng = np.random.default_rng(seed)
    jla_tol = max(tol, _JLA_TOL)  # CG accuracy far below the Monte Carlo error of the projections
    nm = len(mt.c)
    mov = np.flatnonzero(mt.mover_match)
    sq = np.sqrt(mt.c)
    n = mt.n
    P2 = np.zeros(nm)
    Bp, Ba, Bc = np.zeros(nm), np.zeros(nm), np.zeros(nm)
    if batch is None:
        batch = int(max(1, min(50, 2e7 // max(nm, 1))))
    G = min(10, draws)  # draw groups for the Monte Carlo error
    grp = {k: np.zeros((G, len(mov))) for k in ("psi", "alpha", "cov")}
    sys_ = mt.sys
    Ti_m = mt.T[mt.mi[mov]]
    mi_m = mt.mi[mov]
    Xm = mt.x_rows(mov).astype(np.float32)  # rows x_m = e_j - mbar_i of the mover matches
    L32, pre32 = mt.single_precision_system()
    it_total, worst = 0, 0.0
    for b0, b in _batches(draws, batch, quiet, "JLA draws"):
        SR = _rademacher(rng, nm, b) * sq[:, None]
        # P: Y'r = F'W M_D (r / sqrt(c))
        FtSR = mt.FtM @ SR
        DtSR = mt.DtM @ SR
        rhsP = FtSR - sys_.FD @ (DtSR / mt.T[:, None]) if need_P else None
        tot = SR.sum(axis=0)
        rhsV = FtSR - np.outer(mt.s, tot)
        Ur = DtSR - np.outer(mt.t, tot)
        rhsA = mt.Mbar.T @ Ur
        rhs = np.hstack([rhsP, rhsV, rhsA] if need_P else [rhsV, rhsA]).astype(np.float32)
        Xs, it, rel = block_pcg(L32.__matmul__, rhs, pre32, tol=jla_tol, maxiter=20000)
        it_total += it
        worst = max(worst, float(rel.max()))
        # projections in single precision: their Monte Carlo error (~sqrt(2/draws)) dwarfs rounding
        Ur = Ur.astype(np.float32)
        if need_P:
            pv = Xm @ Xs[:, :b]
            P2[mov] += np.einsum("ij,ij->i", pv, pv, dtype=np.float64)
            Xs = Xs[:, b:]
        u, z = Xs[:, :b], Xs[:, b:]
        pu = Xm @ u
        pa = Ur[mi_m] / Ti_m[:, None] - Xm @ z
        Bp[mov] += np.einsum("ij,ij->i", pu, pu, dtype=np.float64)
        Ba[mov] += np.einsum("ij,ij->i", pa, pa, dtype=np.float64)
        Bc[mov] += np.einsum("ij,ij->i", pa, pu, dtype=np.float64)
        for col in range(b):
            gi = (b0 + col) % G
            grp["psi"][gi] += np.square(pu[:, col], dtype=np.float64)
            grp["alpha"][gi] += np.square(pa[:, col], dtype=np.float64)
            grp["cov"][gi] += pa[:, col].astype(np.float64) * pu[:, col]
    P2 /= draws
    Bp /= draws * n
    Ba /= draws * n
    Bc /= draws * n
    st = ~mt.mover_match
    Ba[st] = (1 / mt.T[mt.mi[st]] - 1 / n) / n
    info = {"cg_iterations": it_total, "cg_rel_residual": worst, "mov": mov,
            "groups": {k: (v_ / (n * np.bincount(np.arange(draws) % G, minlength=G)[:, None])).T
                       for k, v_ in grp.items()}}
    return P2, Bp, Ba, Bc, info


def _batches(draws: int, batch: int, quiet: bool, desc: str):
    """(first draw, number of draws) of each batch of random-projection draws, with a progress bar unless quiet."""
    starts = range(0, draws, batch)
    if not quiet:
        from tqdm.auto import tqdm
        starts = tqdm(starts, desc=desc)
    for b0 in starts:
        yield b0, min(batch, draws - b0)


def _rademacher(rng: np.random.Generator, n: int, b: int, dtype=np.float64) -> np.ndarray:
    """An (n, b) matrix of independent +-1 draws (from random bits: one byte gives eight draws)."""
    bits = np.unpackbits(rng.integers(0, 256, size=(n * b + 7) // 8, dtype=np.uint8))[: n * b]
    return (1 - 2 * bits.view(np.int8)).astype(dtype).reshape(n, b)


def _jla_P(mt: _Matches, draws: int, seed: int, tol: float, batch: int | None, quiet: bool, exact_max: int = 1000,
           collapsed: np.ndarray | None = None):
    """JLA estimate of P2_m = x_m' L^+ x_m for every mover match (one solve per Rademacher draw).

    P2_m = ||Y L^+ x_m||^2 with Y = diag(sqrt(c)) X (rows of mover matches), so with r Rademacher over mover
    matches, (r'Y L^+ x_m)^2 = (x_m' v)^2 with L v = Y'r is unbiased (KSS computational appendix); the sample variance
    of the draws over their number estimates the Monte Carlo variance of each P2_m (``info["var_P2"]``), which the
    non-linear bias correction of :func:`decompose` uses. Everything is in single precision and the solves stop at
    relative residual ``_JLA_TOL`` = 1e-4: the Monte Carlo error of each leverage, about sqrt(2 / draws) = 10% with
    200 draws, dwarfs both (measured on the 5M-row benchmark panel: the leverages move by at most 0.01% relative to
    double-precision solves to 1e-6).

    Where that error is large relative to ``1 - P`` the correction is not enough (the bias of ``1 / (1 - P_hat)`` is
    then of higher order), so, as pytwoway recomputes its JLA leverages above 0.98 exactly, the matches whose
    ``1 / (1 - P)`` has a relative Monte Carlo variance above ``_JLA_EXACT_SCORE`` are recomputed exactly, worst
    first, at most ``exact_max``. The variance is judged at the level of the unit actually left out: ``P_row`` =
    ``1/T_i + P2`` with variance ``V`` for a person-year, ``c P_row`` with variance ``c^2 V`` for a match left out
    whole (``collapsed``, a mask over matches; default none, i.e. ``leave_out="obs"``). Judging every match
    collapsed, as before, selected matches whose person-years are never near leverage 1: on the 1M-row benchmark
    panel (``leave_out="obs"``, 190k matches) it recomputed 431 leverages (4.1 of the 7.3 CPU-s of the KSS step)
    where the person-year rule needs none (largest person-year score 0.0021 with the full draws, below 0.003);
    on the low-mobility panel of ``tests/test_kss_reference.py`` the bias of the weights stays within one Monte
    Carlo s.e. either way. The residual bias after the correction of :func:`_jla_fix` is of order ``score^2`` per
    unit, so the rule is a per-unit noise threshold: the number of solves grows with the number of noisy units
    (short matches of workers with few years, or long matches left out whole), not with the number of matches.
    They are chosen on an independent pilot: choosing them on the estimates themselves would leave a selection
    bias (the matches kept would be those whose draws came out low). The pilot starts with ``max(10, draws // 10)``
    draws and grows by as many while it flags more units than it has draws, up to ``draws // 2``: a short pilot's
    noisy ``P`` in the denominator ``1 - c P`` flags many units falsely, and each costs an exact solve where a pilot
    draw costs one solve for all units. Measured on the benchmark panels under ``leave_out="match"``: 1M rows,
    the 20-draw pilot flagged 431 (about 22 truly noisy by a 1000-draw estimate), the grown pilot (80 draws) 67,
    and ``_jla_P`` fell from 2.3 to 1.5 CPU-s; 5M rows, 1,940 flagged and the 1000 cap hit silently before, 180
    flagged after (KSS step 37 -> 19 CPU-s). When more units are flagged than ``exact_max``, the worst are
    recomputed, ``info["exact_target_met"]`` is False and a ``RuntimeWarning`` says so.

    Cost, linear in the panel: each batch of ``batch`` draws (default up to 100, see below) is one block CG solve on
    the firm Laplacian plus, per block of mover matches, two sparse products whose (block x batch) arrays stay in
    cache. Before (the whole (matches x batch) array, batch capped at 4e7 / matches), the batch fell to 13 draws at
    20M rows and every row read by a sparse product served 13 draws instead of 100: on the benchmark panels
    (``leave_out="obs"``, profiled) ``_jla_P`` took 7.7 CPU-s at 5M rows and 60 at 20M (7.8x for 4x the rows);
    after, 6.6 and 31 (4.7x), and the whole KSS step 2.0, 2.1 and 2.2 CPU-microseconds per row at 1M, 5M and 20M
    rows (1.7, 2.3 and 3.9 before). No threaded BLAS reduction is used: the bytes do not depend on the thread
    count."""
    mov = np.flatnonzero(mt.mover_match)
    if batch is None:  # draws per solve: every sparse product below reads a row of ``batch`` floats per nonzero;
        # up to 100, with the firm-sized (firms x batch) CG arrays at most 100 MB each
        batch = int(max(16, min(100, 2.5e7 // max(mt.nf, 1))))
    # The mover matches in blocks of rows (a multiple of 32, so that the Rademacher bits of a batch are the same
    # stream drawn block by block as at once): the (matches x batch) arrays are never held whole, and each block's
    # are small enough to stay in cache. Holding the whole array instead forced the batch down as the panel grew
    # (to 13 draws per solve at 20M rows), and with it the reuse of every row read by the sparse products. Y' r is
    # summed over the blocks; a block's part touches only the firms of its workers, so it is formed on those firms
    # (the block's columns of Y, compressed) and added to them: no firm-sized array is written per block (that
    # would cost firms x blocks, quadratic in the panel). The projections x_m' v are formed block by block.
    rows_blk = max(32, int(2e6 // batch) // 32 * 32)
    blocks = []
    for a in range(0, len(mov), rows_blk):
        Xb = mt.x_rows(mov[a:a + rows_blk])
        Yb = (sp.diags(np.sqrt(mt.c[mov[a:a + rows_blk]])) @ Xb).tocsr()
        Fb = np.unique(Yb.indices)  # the firms this block touches
        Yc = sp.csr_matrix((Yb.data, np.searchsorted(Fb, Yb.indices), Yb.indptr), shape=(Yb.shape[0], len(Fb)))
        blocks.append((a, Xb.astype(np.float32), Fb, Yc.T.tocsr().astype(np.float32)))
    L32, pre32 = mt.single_precision_system()
    cg = [0, 0.0]

    def accumulate(st, n_draws, rng, desc):
        """Add ``n_draws`` projections to the sums ``st = [sum q, sum q^2, draws]`` of every mover match."""
        for _, b in _batches(n_draws, batch, quiet, desc):
            rhs = np.zeros((mt.nf, b), dtype=np.float32)
            for a, _, Fb, YTb in blocks:
                rhs[Fb] += YTb @ _rademacher(rng, YTb.shape[1], b, np.float32)
            V, it, rel = block_pcg(L32.__matmul__, rhs, pre32, tol=max(tol, _JLA_TOL), maxiter=20000)
            del rhs
            cg[0] += it
            cg[1] = max(cg[1], float(rel.max()))
            for a, Xb, _, _ in blocks:
                q = np.square(Xb @ V, dtype=np.float64)
                st[0][a:a + Xb.shape[0]] += q.sum(axis=1)
                st[1][a:a + Xb.shape[0]] += np.square(q).sum(axis=1)
            st[2] += b
        return st

    def moments(st):
        """Mean and Monte Carlo variance of the mean of the projections, for every match."""
        n_draws = st[2]
        m, v = np.zeros(len(mt.c)), np.zeros(len(mt.c))
        m[mov] = st[0] / n_draws
        if n_draws > 1:  # the per-draw sample variance over the number of draws
            v[mov] = np.maximum(st[1] - n_draws * m[mov] ** 2, 0.0) / ((n_draws - 1) * n_draws)
        return m, v

    P2, V2 = moments(accumulate([np.zeros(len(mov)), np.zeros(len(mov)), 0], draws, np.random.default_rng(seed),
                                "JLA leverages"))
    c = np.where(collapsed, mt.c, 1.0) if collapsed is not None else 1.0  # length of the unit left out
    # the pilot: relative variance of 1 / (1 - P) of the unit left out, for the full number of draws, judged on
    # independent draws; grown in steps of ``step`` draws while it flags more units than it has draws (the false
    # positives of a short pilot cost one exact solve each, a pilot draw one solve for all units), to draws // 2
    step = max(10, draws // 10)
    cap = max(step, draws // 2)
    prng = np.random.default_rng([seed, 3])
    st = [np.zeros(len(mov)), np.zeros(len(mov)), 0]
    score = np.zeros(len(mt.c))
    while exact_max > 0 and st[2] < cap:
        accumulate(st, min(step, cap - st[2]), prng, "JLA pilot")
        p_m, v_m = moments(st)
        score = c ** 2 * v_m * (st[2] / draws) / np.square(1 - np.minimum(c * (1 / mt.T[mt.mi] + p_m), 0.99))
        if np.count_nonzero(score > _JLA_EXACT_SCORE) <= st[2]:
            break
    redo = np.flatnonzero(score > _JLA_EXACT_SCORE)
    n_noisy = len(redo)
    redo = redo[np.argsort(-score[redo], kind="stable")][:exact_max]
    if n_noisy > len(redo) > 0:
        warnings.warn(f"decompose: {n_noisy:,} JLA leverages are too noisy for the non-linear correction (relative "
                      f"Monte Carlo variance of 1 / (1 - P) above {_JLA_EXACT_SCORE}); only the worst "
                      f"jla_exact={exact_max:,} were recomputed exactly: raise jla_exact or draws",
                      RuntimeWarning, stacklevel=3)
    for a in range(0, len(redo), 200):
        idx = redo[a:a + 200]
        Xi = mt.x_rows(idx)
        Cx, it, _ = block_pcg(L32.__matmul__, Xi.T.toarray().astype(np.float32), pre32, tol=_JLA_EXACT_TOL,
                              maxiter=20000)
        cg[0] += it
        P2[idx] = np.asarray(Xi.multiply(Cx.T).sum(axis=1)).ravel()
        V2[idx] = 0.0
    return P2, {"cg_iterations": cg[0], "cg_rel_residual": cg[1], "var_P2": V2, "exact_leverages": int(len(redo)),
                "noisy_leverages": n_noisy, "pilot_draws": int(st[2]), "exact_target_met": n_noisy <= len(redo)}


#: memory for the (matches x draws) and (workers x draws) working arrays of one pass of the trace and the
#: standard-error draws: the number of draws per pass is capped so that they stay within it (1 GiB)
_PASS_BYTES = 2**30


def _draws_per_pass(nm: int, nw: int, per_draw: tuple = (5, 6)) -> int:
    """Random-projection draws per pass over the data that keep the working arrays of one pass within
    ``_PASS_BYTES``: about ``per_draw[0]`` match-sized and ``per_draw[1]`` worker-sized float64 columns per draw
    (:func:`_trace_bias`: ``U``, its aggregates and the worker effects of two right-hand sides per draw). Below a
    few million matches the cap is above the batch sizes used (so small problems draw exactly as before); at the
    size of England it is one or two draws per pass, so memory stays flat as the panel grows and the cost stays
    linear (each pass is one block CG solve on the firm Laplacian and a few sparse products)."""
    return int(max(1, _PASS_BYTES // (8 * (per_draw[0] * max(nm, 1) + per_draw[1] * max(nw, 1)))))


def _trace_bias(mt: _Matches, K: np.ndarray, draws, seed: int, tol: float, mc_target: float | None = None,
                max_draws: int = 1000):
    """Hutchinson estimate of the bias sum_m K_m B_m of the three plug-in components.

    With Z the match-level design (person-year weights c), sum_m K_m z_m' S^-1 A S^-1 z_m = E[g1' A g2] with
    g1 = S^-1 Z' diag(K) r, g2 = S^-1 Z' r and r Rademacher over matches: two weighted AKM solves per draw give
    the bias of var(alpha), var(psi) and cov(alpha, psi) at once. ``draws`` is a number, or ``"auto"``: batches
    of 10 draws, then batches sized by the projected need (s.e. falls as 1/sqrt(draws)), until the Monte Carlo s.e.
    of every component is at most ``mc_target`` or ``max_draws`` are used.
    Returns {component: (mean, Monte Carlo s.e.)}, the number of draws, the CG iterations and whether the target
    was met (None when the number of draws is fixed)."""

    rng = np.random.default_rng([seed, 7])
    nm, n = len(mt.c), mt.n
    sys_ = mt.sys
    FDT = sys_.FD.T.tocsr()  # workers x firms, person-years of each match
    auto = draws == "auto"
    total = max_draws if auto else int(draws)
    cap = _draws_per_pass(nm, mt.nw)
    step = min(10, cap) if auto else int(max(1, min(50, cap, 1e7 // max(nm, 1))))
    out = {"psi": [], "alpha": [], "cov": []}
    it_total, done = 0, 0
    res: dict = {}
    while done < total:
        b = min(step, total - done)
        WU = np.empty((nm, 2 * b))  # weighted outcomes whose WLS fits are S^-1 Z' diag(K) r, S^-1 Z' r
        WU[:, b:] = _rademacher(rng, nm, b)
        np.multiply(WU[:, b:], K[:, None], out=WU[:, :b])
        DtWU = mt.DtM @ WU
        rhs = mt.FtM @ WU - sys_.FD @ (DtWU / mt.T[:, None])  # F'W M_D U
        del WU
        Psi, it, _ = block_pcg(sys_.matvec, rhs, sys_.precond, tol=max(tol, 1e-8), maxiter=20000)
        it_total += it
        Alpha = (DtWU - FDT @ Psi) / mt.T[:, None]  # worker means of U - psi_j
        Psi -= np.einsum("j,jk->k", mt.nj, Psi) / n  # einsum, not BLAS: the same bytes for any thread count
        Alpha -= np.einsum("i,ik->k", mt.T, Alpha) / n
        p1, p2 = Psi[:, :b], Psi[:, b:]
        a1, a2 = Alpha[:, :b], Alpha[:, b:]
        out["psi"].append(np.einsum("j,jk,jk->k", mt.nj, p1, p2) / n)
        out["alpha"].append(np.einsum("i,ik,ik->k", mt.T, a1, a2) / n)
        out["cov"].append(0.5 * (np.einsum("ik,ik->k", a1, FDT @ p2) + np.einsum("ik,ik->k", a2, FDT @ p1)) / n)
        done += b
        res = {}
        for k, v in out.items():
            v = np.concatenate(v)
            res[k] = (float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan"))
        if auto and mc_target is not None:
            worst = max(se / mc_target for _, se in res.values())
            if worst <= 1:
                return res, done, it_total, True
            # projected total for the target (10% margin), in batches of at most 50 draws
            step = int(min(50, cap, max(10, np.ceil(done * (1.1 * worst ** 2 - 1)))))
    return res, done, it_total, (all(se <= mc_target for _, se in res.values()) if auto and mc_target else None)


def leverages(result, leave_out: str = "obs", leverage: str = "exact", draws: int = 200, seed: int = 0,
              tol: float = 1e-8) -> pd.DataFrame:
    """Per-match statistical leverages and KSS weights ``B`` of an AKM fit, by exact solves or JLA.

    One row per worker-firm match: worker id, firm id, ``n_obs`` (person-years), ``P`` (leverage of one of its
    person-years, ``1/T_i + x'L^+x``), ``B_psi``, ``B_alpha``, ``B_cov`` (the weight of one person-year in the
    bias of the plug-in var(psi), var(alpha), cov(alpha, psi)). Used by :func:`decompose`; exposed for checks.
    """
    nm = result.names
    mt = _Matches(_row_arrays(result))
    if leverage == "exact":
        P2, Bp, Ba, Bc, _ = _exact(mt)
    else:
        P2, Bp, Ba, Bc, _ = _jla(mt, draws, seed, tol, None, True)
    wid = result.worker_effects[nm["worker"]].to_numpy()
    fid = result.firm_effects[nm["firm"]].to_numpy()
    return pd.DataFrame({nm["worker"]: wid[mt.mi], nm["firm"]: fid[mt.mj], "n_obs": mt.c.astype(int),
                         "P": 1 / mt.T[mt.mi] + P2, "B_psi": Bp, "B_alpha": Ba, "B_cov": Bc})


def _bias(mt, K, Bp, Ba, Bc, trace_draws, seed, tol, mc_target, max_draws):
    """sum_m K_m B_m for the three components: exact weights if given, else the Hutchinson trace estimate.

    Returns the corrections, their Monte Carlo s.e. (empty when exact), the number of trace draws used and whether
    their Monte Carlo target was met (None when exact or the number of draws is fixed); warns when it was not."""
    if Bp is not None:
        return {"psi": float(K @ Bp), "alpha": float(K @ Ba), "cov": float(K @ Bc)}, {}, 0, None
    est, done, _, met = _trace_bias(mt, K, trace_draws, seed, tol, mc_target=mc_target, max_draws=max_draws)
    corr = {k: v[0] for k, v in est.items()}
    names = {"psi": "var_psi", "alpha": "var_alpha", "cov": "cov_alpha_psi"}
    if met is False:
        warnings.warn(f"decompose: the trace draws stopped at max_trace_draws={max_draws} with a Monte Carlo s.e. of "
                      f"{max(v[1] for v in est.values()):.3g}, above the target {mc_target:.3g} (mc_tol * var_y); "
                      f"raise max_trace_draws or mc_tol", RuntimeWarning, stacklevel=4)
    return corr, {names[k]: v[1] for k, v in est.items()}, done, met


# ---------------------------------------------------------------------------------------------------------------
# inference for the KSS estimates (q = 0: strong identification)

_SE_COMPS = ("var_alpha", "var_psi", "cov_alpha_psi")


def _collapsed(mt: _Matches, lo: str) -> np.ndarray:
    """Which matches are left out whole (collapsed to one length-weighted unit): none under ``"obs"``, the movers'
    matches under ``"match"`` (a stayer's person-years are left out one at a time, as in LeaveOutTwoWay and
    bipartitepandas), every match under ``"match_movers"``."""
    if lo == "obs":
        return np.zeros(len(mt.c), dtype=bool)
    return mt.mover_match.copy() if lo == "match" else np.ones(len(mt.c), dtype=bool)


class _Units:
    """The observations of the leave-out regression and the operator ``C`` of ``theta_KSS = y'Cy``.

    Person-year units have the outcome net of ``xb`` (centred) and design row ``z_l``; a collapsed match (every
    mover's match under ``leave_out="match"``, every match under ``"match_movers"``) has outcome ``sqrt(c_m) ybar_m``
    and design row ``sqrt(c_m) z_m`` (the length-weighted collapsed regression, whose KSS estimate leaves the whole
    match out). The least-squares fit is the person-year one either way. ``C = B - (D M + M D)/2`` with ``D = diag(B_uu / M_uu)``, applied
    to a block of vectors with firm-sized solves (dense Cholesky of the grounded Laplacian, or block PCG)."""

    def __init__(self, mt, ytil, resid, lo, P_row, Bm, factorise: bool, tol: float, pmax: float = 1.0):
        self.mt = mt
        coll = _collapsed(mt, lo)
        rows = np.flatnonzero(~coll[mt.row_match])  # person-years that are units of their own
        cm = np.flatnonzero(coll)  # matches collapsed into one unit
        self.um = np.concatenate([mt.row_match[rows], cm])
        self.s = np.concatenate([np.ones(len(rows)), np.sqrt(mt.c[cm])])
        self.y = np.concatenate([np.asarray(ytil, float)[rows] - mt.ymean, np.sqrt(mt.c[cm]) * mt.ybar[cm]])
        self.e = np.concatenate([np.asarray(resid, float)[rows], np.sqrt(mt.c[cm]) * mt.ebar[cm]])
        self.nu = len(self.y)
        s2 = self.s ** 2
        self.P = np.minimum(s2 * P_row[self.um], pmax)
        self.d = {k: s2 * Bm[k][self.um] / (1 - self.P) for k in _SE_COMPS}
        self.U2M = sp.csr_matrix((self.s, (self.um, np.arange(self.nu))), shape=(len(mt.c), self.nu))
        self.tol = tol
        self.lu = None
        self.cg_iterations = 0
        if factorise:  # dense Cholesky of the grounded Laplacian (firm-sized; LAPACK solves many columns at once)
            from scipy.linalg import cho_factor

            self.lu = cho_factor(mt.sys.L[1:, 1:].toarray(), lower=False, check_finite=False)

    def _solve(self, rD, rF):
        """(alpha, psi) solving S gamma = (rD, rF) (any solution: the quadratic forms do not depend on it)."""
        mt = self.mt
        rhs = rF - mt.sys.FD @ (rD / mt.T[:, None])
        if self.lu is not None:
            from scipy.linalg import cho_solve

            psi = np.zeros_like(rhs)
            psi[1:] = cho_solve(self.lu, rhs[1:], check_finite=False)
        else:

            psi, it, _ = block_pcg(mt.sys.matvec, rhs, mt.sys.precond, tol=self.tol, maxiter=20000)
            self.cg_iterations += it
        return (rD - mt.sys.FD.T @ psi) / mt.T[:, None], psi

    def _fit(self, V):
        """Least-squares coefficients of the columns of V on the two-way design: S^-1 Z'V."""
        a = self.U2M @ V
        return self._solve(self.mt.DtM @ a, self.mt.FtM @ a)

    def _Zg(self, alpha, psi):
        mt = self.mt
        val = alpha[mt.mi]
        val += psi[mt.mj]
        out = val[self.um]
        out *= self.s[:, None]
        return out

    def _A(self, alpha, psi, comp):
        """A gamma for the person-year-weighted (co)variance ``comp`` (so that theta = gamma' A gamma)."""
        mt = self.mt
        n = mt.n
        if comp == "var_psi":
            return np.zeros_like(alpha), mt.nj[:, None] * (psi - mt.nj @ psi / n) / n
        if comp == "var_alpha":
            return mt.T[:, None] * (alpha - mt.T @ alpha / n) / n, np.zeros_like(psi)
        gD = (mt.sys.FD.T @ psi - np.outer(mt.T, mt.nj @ psi / n)) / (2 * n)
        gF = (mt.sys.FD @ alpha - np.outer(mt.nj, mt.T @ alpha / n)) / (2 * n)
        return gD, gF

    def C(self, V):
        """{component: C V} for a (units, r) block V.

        ``C V = B V - (D M V + M D V)/2 = Z (g_B + g_D / 2) - D (M V + V) / 2`` with ``g_B = S^-1 A S^-1 Z'V`` and
        ``g_D = S^-1 Z' D V``, so each component costs two firm-sized solves and one gather."""
        a, p = self._fit(V)
        MVV = self._Zg(a, p)
        np.subtract(2 * V, MVV, out=MVV)  # M V + V
        out = {}
        for k in _SE_COMPS:
            d = self.d[k][:, None]
            ba, bp = self._solve(*self._A(a, p, k))
            fa, fp = self._fit(d * V)
            res = self._Zg(ba + 0.5 * fa, bp + 0.5 * fp)
            res -= 0.5 * d * MVV
            out[k] = res
        return out

    def sigma_firm(self):
        """sigma~_u^2: the mean over the units of u's firm of the unbiased leave-out sigma_v^2 (floored at 0)."""
        sig = self.y * self.e / (1 - self.P)  # the outcome is centred (see _Matches)
        f = self.mt.mj[self.um]
        sf = np.bincount(f, weights=sig, minlength=self.mt.nf) / np.maximum(np.bincount(f, minlength=self.mt.nf), 1)
        return np.maximum(sf[f], 0.0)


def _kss_vcov(U: _Units, sigma, draws: int, seed: int, exact_max: int = 0, batch: int | None = None):
    """KSS (q = 0) covariance matrix of the three leave-out estimates (order ``_SE_COMPS``).

    ``V_ab = 4 sum_u (C_a y)_u (C_b y)_u s_u - 2 tr(C_a S C_b S)``, ``S = diag(sigma)``. The trace is exact (dense
    ``C S^1/2``, when ``units <= exact_max``) or a Hutchinson estimate with ``draws`` Rademacher vectors. Returns
    (V, Monte Carlo s.e. of V (zeros if exact), theta = y'C y (a check))."""
    W = {k: v[:, 0] for k, v in U.C(U.y[:, None]).items()}
    theta = np.array([U.y @ W[k] for k in _SE_COMPS])
    U.tol = max(U.tol, 1e-6)  # CG error of the trace draws: far below their Monte Carlo error
    T1 = np.array([[4 * np.sum(W[a] * W[b] * sigma) for b in _SE_COMPS] for a in _SE_COMPS])
    sq = np.sqrt(sigma)
    if U.nu <= exact_max:
        T2 = np.zeros((3, 3))
        step = 500
        for c0 in range(0, U.nu, step):
            cols = np.arange(c0, min(c0 + step, U.nu))
            E = np.zeros((U.nu, len(cols)))
            E[cols, np.arange(len(cols))] = sq[cols]
            G = {k: sq[:, None] * v for k, v in U.C(E).items()}
            T2 += np.array([[np.sum(G[a] * G[b]) for b in _SE_COMPS] for a in _SE_COMPS])
        return T1 - 2 * T2, np.zeros((3, 3)), theta
    rng = np.random.default_rng([seed, 11])
    if batch is None:  # about 16 MB per (units x batch) array
        batch = int(max(1, min(draws, 2e6 // max(U.nu, 1))))
    est = []
    for b0 in range(0, draws, batch):
        b = min(batch, draws - b0)
        R = _rademacher(rng, U.nu, b)
        R *= sq[:, None]
        G = U.C(R)
        del R
        for v in G.values():
            v *= sq[:, None]
        est.append(np.array([[np.einsum("ij,ij->j", G[a], G[b_]) for b_ in _SE_COMPS] for a in _SE_COMPS]))
        del G
    est = np.concatenate(est, axis=-1)
    T2 = est.mean(-1)
    T2se = est.std(-1, ddof=1) / np.sqrt(est.shape[-1]) if est.shape[-1] > 1 else np.full((3, 3), np.nan)
    return T1 - 2 * T2, 2 * T2se, theta


def _se_results(V, Vmc, point: dict, var_y: float, level: float):
    """Standard errors, Monte Carlo errors and intervals of the components, shares and correlation."""
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    se, se_mc = {}, {}
    for i, k in enumerate(_SE_COMPS):
        ok = V[i, i] > 0
        se[k] = float(np.sqrt(V[i, i])) if ok else float("nan")
        se_mc[k] = float(Vmc[i, i] / (2 * se[k])) if ok else float("nan")
        if not ok:  # an unbiased variance estimate can come out non-positive; say so rather than leave a bare NaN
            warnings.warn(f"decompose: the estimated sampling variance of {k} is {V[i, i]:.3g} (not positive; its "
                          f"Monte Carlo error {Vmc[i, i]:.3g}), so its standard error and interval are NaN; raise "
                          "se_draws (or use exact leverages) to reduce the noise of the estimate", RuntimeWarning,
                          stacklevel=4)
    for k, c, f in (("share_alpha", "var_alpha", 1), ("share_psi", "var_psi", 1),
                    ("share_sorting", "cov_alpha_psi", 2)):
        se[k], se_mc[k] = f * se[c] / var_y, f * se_mc[c] / var_y
    va, vp, cv = point["var_alpha"], point["var_psi"], point["cov_alpha_psi"]
    se["corr_alpha_psi"] = float("nan")
    if va > 0 and vp > 0:  # delta method
        rho = cv / np.sqrt(va * vp)
        g = np.array([-rho / (2 * va), -rho / (2 * vp), 1 / np.sqrt(va * vp)])
        v = float(g @ V @ g)
        se["corr_alpha_psi"] = float(np.sqrt(v)) if v > 0 else float("nan")
    ci = {k: (float(point[k] - z * s), float(point[k] + z * s)) for k, s in se.items()}
    vcov = pd.DataFrame(V, index=list(_SE_COMPS), columns=list(_SE_COMPS))
    return se, se_mc, ci, vcov


def _kss_se(result, mt, lo, P_row, leverage, Bex, cache, draws, seed, tol, batch, se_draws):
    """KSS (q = 0) covariance matrix of the leave-out estimates, its Monte Carlo error, details and the units."""
    import time as _t

    t0 = _t.perf_counter()
    if leverage == "exact":
        Bp, Ba, Bc = Bex
    else:  # per-match JLA estimates of B_ll (as leverages(..., leverage="jla")), computed once per fit
        key = ("jla_B", draws, seed, tol)
        if key not in cache:
            # batches of 10 draws, fewer where the (matches x batch) arrays would outgrow _PASS_BYTES
            cache[key] = _jla(mt, draws, seed + 1, tol, batch or min(10, _draws_per_pass(len(mt.c), mt.nw, (4, 3))),
                              True, need_P=False)[1:4]
        Bp, Ba, Bc = cache[key]
    rows = _row_arrays(result)
    U = _Units(mt, rows["y"] - rows["xb"], rows["resid"], lo, P_row,
               {"var_psi": Bp, "var_alpha": Ba, "cov_alpha_psi": Bc}, factorise=leverage == "exact", tol=tol,
               pmax=0.99 if leverage == "jla" else 1.0)
    del rows
    if se_draws == 0 and U.nu > 20_000:
        raise ValueError(f"se_draws=0 (exact trace term) builds dense columns of C and allows at most 20,000 "
                         f"units; this fit has {U.nu:,} (leave-{lo}-out): use se_draws > 0")
    V, Vmc, _ = _kss_vcov(U, U.sigma_firm(), se_draws, seed, exact_max=U.nu if se_draws == 0 else 0, batch=batch)
    info = {"se_trace": "exact" if se_draws == 0 else f"by Hutchinson's estimator, {se_draws} draws",
            "se_units": int(U.nu), "se_seconds": _t.perf_counter() - t0}
    if U.lu is None:
        info["se_cg_iterations"] = int(U.cg_iterations)
    return V, Vmc, info, U


# ---------------------------------------------------------------------------------------------------------------
# inference for the KSS estimates under weak identification (q = 1)

_Q1_SHARE = 0.05  # ci_method="auto": the q = 1 interval where the leading eigenvalue carries >= 5% of sum lambda^2


def _B_apply(U: _Units, comp: str):
    """The operator ``B = Z_u S^+ A S^+ Z_u'`` of component ``comp`` on a (units, r) block (two firm-sized solves);
    ``theta_PI = y'By``, and its eigenvalues are those of ``S^-1/2 A S^-1/2`` (KSS's A-tilde, divided by n)."""
    def apply(V):
        a, p = U._fit(V)
        return U._Zg(*U._solve(*U._A(a, p, comp)))
    return apply


def _eigen(U: _Units, comp: str, k: int, tol: float):
    """The ``k`` leading eigenpairs of B (largest; largest in absolute value for the covariance, whose B is
    indefinite), by Lanczos (``scipy.sparse.linalg.eigsh``) on the implicit operator; dense on tiny data."""
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

    apply = _B_apply(U, comp)
    which = "LM" if comp == "cov_alpha_psi" else "LA"
    if U.nu <= 200:  # dense (tiny data)
        lam, W = np.linalg.eigh(apply(np.eye(U.nu)))
    else:
        op = LinearOperator((U.nu, U.nu), matvec=lambda v: apply(v.reshape(-1, 1))[:, 0], matmat=apply,
                            dtype=float)
        v0 = np.random.default_rng(17).standard_normal(U.nu)
        try:
            lam, W = eigsh(op, k=k, which=which, tol=tol, ncv=min(U.nu - 1, max(4 * k, 20)), v0=v0)
        except ArpackNoConvergence as err:  # keep the converged pairs (the leading one converges first)
            lam, W = err.eigenvalues, err.eigenvectors
            if len(lam) == 0:
                raise
    order = np.argsort(-np.abs(lam) if which == "LM" else -lam, kind="stable")[:k]
    return lam[order], W[:, order]


_EIGEN_DENSE_MAX = 500  # up to this many coefficients (workers + firms), the eigenproblem is solved densely
# (chapter 06's ASHE sample, 887 coefficients: Lanczos 1.7 s, the dense solver 4.9 s)


def _eigen_dense(U: _Units):
    """Every eigenvalue of each component's B, as the generalised symmetric problem ``A q = lambda S q`` in the
    coefficient space (``S = Z'Z``, grounded at the last firm: both matrices annihilate the normalisation
    direction, so grounding keeps the non-zero spectrum); the unit eigenvectors of B are ``w = Z q`` (unit length,
    as ``q'Sq = 1``). Small designs only (``workers + firms <= _EIGEN_DENSE_MAX``): cheaper and exact there.
    Returns {component: (eigenvalues in the order of :func:`_eigen`, the leading three unit vectors w)}."""
    from scipy.linalg import eigh

    mt = U.mt
    n = mt.n
    nw, nf = mt.nw, mt.nf
    FD = mt.sys.FD.toarray()  # firms x workers person-years
    T, nj = mt.T, mt.nj
    S = np.block([[np.diag(T), FD.T], [FD, np.diag(nj)]])
    Z = np.zeros((nw + nf, nw + nf))
    A = {"var_alpha": Z.copy(), "var_psi": Z.copy(), "cov_alpha_psi": Z.copy()}
    A["var_alpha"][:nw, :nw] = (np.diag(T) - np.outer(T, T) / n) / n
    A["var_psi"][nw:, nw:] = (np.diag(nj) - np.outer(nj, nj) / n) / n
    X = (FD.T - np.outer(T, nj) / n) / (2 * n)
    A["cov_alpha_psi"][:nw, nw:] = X
    A["cov_alpha_psi"][nw:, :nw] = X.T
    keep = slice(0, nw + nf - 1)  # grounded: psi of the last firm is 0
    Sg = S[keep, keep]
    out = {}
    for k, Ak in A.items():
        lam, Q = eigh(Ak[keep, keep], Sg)
        order = np.argsort(-np.abs(lam) if k == "cov_alpha_psi" else -lam, kind="stable")
        lam = lam[order]
        q = Q[:, order[:3]]
        W = U._Zg(q[:nw], np.vstack([q[nw:], np.zeros((1, q.shape[1]))]))
        out[k] = (lam, W)
    return out


def _sum_sq_eigen(U: _Units, comp: str, lam, W, draws: int, seed: int, exact: bool):
    """``sum_s lambda_s^2 = tr(B^2)``: exact (columns of B, ``exact``) or the known leading ``lam^2`` plus a
    Hutchinson estimate of ``tr(B_k^2)`` for B deflated by its leading pairs (far less noisy than on B itself when
    one eigenvalue dominates). Returns the value and its Monte Carlo s.e. (0 when exact)."""
    apply = _B_apply(U, comp)
    if exact:
        tot = 0.0
        for c0 in range(0, U.nu, 500):
            cols = np.arange(c0, min(c0 + 500, U.nu))
            E = np.zeros((U.nu, len(cols)))
            E[cols, np.arange(len(cols))] = 1.0
            tot += float(np.sum(np.square(apply(E))))
        return tot, 0.0
    R = _rademacher(np.random.default_rng([seed, 13]), U.nu, max(int(draws), 2))
    G = apply(R) - W @ (lam[:, None] * (W.T @ R))
    est = np.einsum("ij,ij->j", G, G)
    return float(np.sum(lam ** 2) + est.mean()), float(est.std(ddof=1) / np.sqrt(est.size))


class _Deflated:
    """``C_2 = C - lambda_1 w_1 w_1' + (E M + M E) / 2`` with ``E = diag(lambda_1 w_1^2 / M_uu)`` for each component:
    the leave-out operator of ``B_2 = B - lambda_1 w_1 w_1'`` (B without its leading eigenvector), so that
    ``y'C y = y'C_2 y + lambda_1 (b_1^2 - sum_u w_u1^2 sigma_hat_u^2)`` (KSS 2020, section 5.3). Duck-types
    :class:`_Units` for :func:`_kss_vcov`."""

    def __init__(self, U: _Units, lead: dict):
        self.U, self.lead = U, lead
        self.y, self.nu = U.y, U.nu
        self.e = {k: lam * np.square(w) / (1 - U.P) for k, (lam, w) in lead.items()}

    @property
    def tol(self):
        return self.U.tol

    @tol.setter
    def tol(self, v):
        self.U.tol = v

    def _P(self, V):
        return self.U._Zg(*self.U._fit(V))

    def C(self, V):
        out = self.U.C(V)
        MV = V - self._P(V)
        for k, (lam, w) in self.lead.items():
            e = self.e[k][:, None]
            eV = e * V
            out[k] += -lam * np.outer(w, w @ V) + 0.5 * (e * MV + eV - self._P(eV))
        return out


def _am_critical(curvature: float, level: float) -> float:
    """Curvature-adjusted critical value of Andrews and Mikusheva (2016, *Econometrica* 84(4)): the ``level``
    quantile of the distance from a standard bivariate normal point to a circle of curvature ``curvature``
    through its mean, maximised over curvatures in ``[0, C]``. ``||X - c||^2`` is noncentral chi-square (2 degrees of freedom, noncentrality ``1/C^2``), so
    the quantile is computed exactly (LeaveOutTwoWay reads it from a simulated table, ``tabulation_10K.mat``).
    It rises from the normal ``z`` (C = 0: a straight line) to ``sqrt(chi2_2 quantile)`` (C -> infinity)."""
    from statistics import NormalDist

    from scipy.optimize import brentq
    from scipy.stats import chi2, ncx2

    z0 = NormalDist().inv_cdf(0.5 + level / 2)
    top = float(np.sqrt(chi2.ppf(level, 2)))
    if not np.isfinite(curvature):
        return top
    if curvature < 1e-3:
        return z0

    def quantile(c):
        R = 1.0 / c

        def excess(z):
            return ncx2.cdf((R + z) ** 2, 2, R ** 2) - ncx2.cdf(max(R - z, 0.0) ** 2, 2, R ** 2) - level

        return brentq(excess, 0.5 * z0, 1.5 * top, xtol=1e-10)

    # the quantile dips below z0 at moderate curvature (1.85 at C = 0.6 for level 0.95), then rises: the largest
    # over curvatures in [0, C] (the bound for any curve whose curvature is at most C) is max(z0, quantile(C))
    return float(max(z0, quantile(curvature)))


def _am_interval(lam: float, b1: float, t1: float, S: np.ndarray, z: float):
    """The q = 1 interval for ``theta = lam b^2 + t``: the image under that map of the ellipse
    ``{(b, t): (b - b1, t - t1) S^-1 (b - b1, t - t1)' <= z^2}`` (the test inversion of KSS's ``AM_CI.m``; the
    extremes of ``lam b^2 + t`` lie on the boundary, whose gradient never vanishes). Found on a grid of the
    boundary's angle, refined by a bounded scalar search."""
    from scipy.optimize import minimize_scalar

    try:
        L = np.linalg.cholesky(S)
    except np.linalg.LinAlgError:
        return float("nan"), float("nan")

    def g(phi):
        b = b1 + z * L[0, 0] * np.cos(phi)
        t = t1 + z * (L[1, 0] * np.cos(phi) + L[1, 1] * np.sin(phi))
        return lam * b * b + t

    grid = np.linspace(0, 2 * np.pi, 2001)
    vals = g(grid)
    h = grid[1] - grid[0]
    i, j = int(np.argmin(vals)), int(np.argmax(vals))
    lo = minimize_scalar(g, bounds=(grid[i] - h, grid[i] + h), method="bounded", options={"xatol": 1e-12})
    hi = minimize_scalar(lambda p: -g(p), bounds=(grid[j] - h, grid[j] + h), method="bounded",
                         options={"xatol": 1e-12})
    return float(min(lo.fun, vals[i])), float(max(-hi.fun, vals[j]))


def _weak_id(U: _Units, sigma, point: dict, se_draws: int, seed: int, level: float, exact_max: int, batch):
    """KSS (2020, section 5.3) inference with one dominant eigenvalue (q = 1) for each of the three components.

    ``theta_KSS = lambda_1 (b_1^2 - V_1) + theta_1`` with ``b_1 = w_1'y`` (``w_1``: the leading unit eigenvector of
    B), ``V_1 = sum_u w_u1^2 sigma_hat_u^2`` and ``theta_1 = y'C_2 y``. ``(b_1, theta_1)`` is asymptotically normal
    with covariance ``Sigma`` = ``[[sum w^2 s, 2 sum w s (C_2 y)], [., V(theta_1)]]`` (``s`` the smoothed
    ``sigma_u^2``, ``V(theta_1)`` the q = 0 variance of the quadratic form ``C_2``), estimated as LeaveOutTwoWay's
    ``leave_out_estimation_two_way.m`` does. ``theta_1`` is taken as ``point - lambda_1 (b_1^2 - V_1)`` with the
    reported estimate ``point`` (with exact leverages this is ``y'C_2 y`` to rounding; under JLA it keeps the
    interval consistent with the trace-based point estimate). Returns {component: diagnostics and the interval}.

    Coverage. The interval is conservative where the curvature is large, as KSS's is: it is the test inversion of
    Andrews and Mikusheva's (2016) curvature-adjusted statistic, whose critical value bounds the distance to any
    curve of curvature at most C and tends to sqrt(chi2_2 quantile) = 2.45 (at 95%) as C grows, where the interval
    approaches the projection of a 2-D 95% ellipse (coverage up to P(chi2_1 <= 5.99) = 0.986 for a locally flat
    curve). Measured (issue 13; two blocks of 8 firms joined by 3 movers, 738 rows, 400 error draws): coverage
    0.970, 0.995, 0.988 (var_alpha, var_psi, cov; normal interval 0.55, 0.65, 0.51, counting as misses the 36-50% of
    draws where its variance estimate is not positive and it does not exist) at curvatures 2.3, 7.3, 10.5
    (medians). Not from the 1.96 floor of ``_am_critical`` (the critical values are 2.03-2.43; it never binds), nor
    from the estimate of Sigma (mean estimates within 10% of the Monte Carlo moments; with the Monte Carlo Sigma
    itself coverage is 0.963, 0.990, 0.973). KSS's critical value (their Appendix C.6.1 and ``AM_CI.m``'s simulated
    table: the quantile of sqrt(chi2_1 + (chi_1 + 1/C)^2) - 1/C, the point on the convex side) is larger than ours
    (2.33, 2.40, 2.42 there) and covers 0.983, 0.995, 0.990. We keep the exact circle quantile floored at the
    normal value (smaller: it averages over both sides of the circle where AM's bound takes the worst one); that it
    stays valid beyond designs like this one is checked by Monte Carlo here, not proved."""
    exact = U.nu <= exact_max
    dense = U.mt.nw + U.mt.nf <= _EIGEN_DENSE_MAX
    full = _eigen_dense(U) if dense else {}
    lead, out = {}, {}
    for k in _SE_COMPS:
        if dense:  # every eigenvalue: the sum of squares is exact
            lam_all, W = full[k]
            lam, ssq, ssq_mc = lam_all[:3], float(np.sum(lam_all ** 2)), 0.0
        else:
            lam, W = _eigen(U, k, 3, 1e-10 if exact else 1e-6)
            ssq, ssq_mc = _sum_sq_eigen(U, k, lam, W, se_draws, seed, exact)
        lead[k] = (float(lam[0]), W[:, 0])
        out[k] = {"lambda": lam.tolist(), "sum_sq": ssq, "sum_sq_mc": ssq_mc,
                  "eigen_shares": (lam ** 2 / ssq).tolist(), "lindeberg": float(np.max(W[:, 0] ** 2))}
    D = _Deflated(U, lead)
    V2, V2mc, theta1 = _kss_vcov(D, sigma, se_draws, seed + 1, exact_max=exact_max, batch=batch)
    W2 = D.C(U.y[:, None])
    sig_hat = U.y * U.e / (1 - U.P)  # unbiased leave-out sigma_u^2 (outcome centred)
    for i, k in enumerate(_SE_COMPS):
        lam, w = lead[k]
        b1 = float(w @ U.y)
        t1 = float(point[k] - lam * (b1 * b1 - np.sum(w * w * sig_hat)))
        s11 = float(np.sum(w * w * sigma))
        s12 = float(2 * np.sum(w * sigma * W2[k][:, 0]))
        s22 = float(V2[i, i])
        floored = not s22 > 0 or s12 * s12 >= s11 * s22
        if floored:  # the estimate of V(theta_1) is not positive (or Sigma is singular): use its first term alone,
            # 4 sum (C_2 y)^2 s, which omits the (positive) correction for the noise in C_2 y: conservative
            s22 = max(float(4 * np.sum(np.square(W2[k][:, 0]) * sigma)), s12 * s12 / s11 * (1 + 1e-9)
                      if s11 > 0 else 0.0)
        S = np.array([[s11, s12], [s12, s22]])
        d = out[k]
        rho = s12 / np.sqrt(s11 * s22) if s11 > 0 and s22 > 0 else float("nan")
        gamma = lam * s11 / np.sqrt(s22) if s22 > 0 else float("inf")
        curv = 2 * abs(gamma) / np.sqrt(1 - rho ** 2) if abs(rho) < 1 else float("inf")
        z = _am_critical(curv, level)
        d.update(lambda_1=lam, b1=b1, var_b1=s11, theta1=t1, theta1_quadratic=float(theta1[i]), var_theta1=s22,
                 var_theta1_mc=float(V2mc[i, i]), var_theta1_floored=bool(floored), cov_b1_theta1=s12, rho=float(rho),
                 F=b1 * b1 / s11 if s11 > 0 else float("nan"), curvature=float(curv), crit=z,
                 ci=_am_interval(lam, b1, t1, S, z))
    return out


def _weak_results(wid: dict, ci_q0: dict, var_y: float, ci_method: str) -> dict:
    """Result fields of the q = 1 analysis: both intervals, the rule's choice and the diagnostics."""
    ci_q1, method = {}, {}
    for k, share, f in (("var_alpha", "share_alpha", 1), ("var_psi", "share_psi", 1),
                        ("cov_alpha_psi", "share_sorting", 2)):
        lo_, hi = wid[k]["ci"]
        ci_q1[k], ci_q1[share] = (lo_, hi), (f * lo_ / var_y, f * hi / var_y)
        q1 = ci_method == "q1" or wid[k]["eigen_shares"][0] >= _Q1_SHARE
        method[k] = method[share] = "q=1" if q1 and np.isfinite(lo_) else "q=0"
    method["corr_alpha_psi"] = "q=0"
    ci = {k: (ci_q1[k] if method.get(k) == "q=1" else v) for k, v in ci_q0.items()}
    return {"ci": ci, "ci_q0": dict(ci_q0), "ci_q1": ci_q1, "ci_method": method,
            "eigen_share": {k: float(wid[k]["eigen_shares"][0]) for k in _SE_COMPS},
            "lambda_max": {k: float(wid[k]["lambda_1"]) for k in _SE_COMPS}, "weak_id": wid}


LEAVE_OUT = ("obs", "match", "match_movers")


def decompose(result, method: str = "plugin", leave_out: str | None = None, leverage: str = "auto",
              draws: int = 200, seed: int = 0, exact_max_firms: int = 3000, tol: float = 1e-8,
              batch: int | None = None, quiet: bool = True, trace_draws: int | str = "auto",
              mc_tol: float = 1e-4, max_trace_draws: int = 1000, jla_exact: int = 1000, se: bool = False,
              se_draws: int = 10, level: float = 0.95, ci_method: str = "q0") -> VarianceDecomposition:
    """Decompose Var(y) of an :class:`prosperity.akm.AKMResult` (plug-in, homoskedastic or KSS leave-out).

    Parameters
    ----------
    result : an AKM fit. For ``"kss"`` it must be fit on the leave-one-out connected set
        (``akm.fit(..., connected="leave_one_out", leave_out=...)``).
    method : ``"plugin"``, ``"homoskedastic"`` (Andrews et al. 2008) or ``"kss"`` (Kline, Saggio and Solvsten 2020).
    leave_out : ``"obs"`` (leave one person-year out), ``"match"`` (KSS leave-match-out: a mover's worker-firm
        match is left out whole, robust to serial correlation within matches; a stayer's person-years one at a
        time) or ``"match_movers"`` (every match left out whole: the estimator on a movers-only sample, as
        before version 0.4); defaults to the level used to prune the sample, else "obs".
    leverage : ``"exact"`` (sparse/dense firm-sized factorisation), ``"jla"`` (random projection) or ``"auto"``
        (exact up to ``exact_max_firms`` firms).
    draws : JLA Rademacher draws for the leverages ``P_ll`` (200 as LeaveOutTwoWay). ``seed``: their seed.
    jla_exact : under JLA, how many of the noisiest leverages (relative Monte Carlo variance of ``1 / (1 - P)``
        above 0.3%, for the unit left out) are recomputed exactly, worst first (default 1000; 0 turns it off).
        Each costs one firm-sized single-precision solve; ``details["exact_leverages"]`` reports the number.
    trace_draws : with ``leverage="jla"``, Rademacher draws of the Hutchinson estimate of the bias term
        ``sum_l B_ll sigma_l^2`` (two weighted AKM solves per draw give all three components); its Monte Carlo
        standard errors are reported in ``mc_se``. ``"auto"`` (default) draws until every component's Monte Carlo
        s.e. is at most ``mc_tol * var(y)`` (default 1e-4: simulation noise of at most 0.01 percentage points on
        each share), up to ``max_trace_draws`` (default 1000); ``details["trace_target_met"]`` says whether the
        target was reached, and a ``RuntimeWarning`` (and the summary) says when the cap stopped it. An integer
        fixes the number of draws. ``details["trace_draws"]`` records how many were used. ``tol``: CG tolerance.
    se : with ``method="kss"``, also estimate standard errors and ``level`` confidence intervals (the q = 0
        variance of KSS section 5, estimated as in LeaveOutTwoWay; see the module docstring) into ``se``, ``ci``,
        ``se_mc`` and ``vcov``. Off by default: it costs about ``7 (se_draws + 1)`` firm-sized solves, plus the JLA
        weights ``B_ll`` (``draws`` draws, three solves each) under ``leverage="jla"``.
    se_draws : Rademacher draws of the Hutchinson estimate of the trace term of that variance (default 10; its
        Monte Carlo error is reported in ``se_mc``); ``0`` computes the term exactly from dense columns of ``C``
        (small data only: at most 20,000 units, person-years or collapsed matches).
    level : confidence level of the intervals in ``ci`` (default 0.95).
    ci_method : with ``se=True``, which interval ``ci`` reports for var_alpha, var_psi, cov_alpha_psi and their
        shares: ``"q0"`` (default: the normal interval, q = 0; the eigenvalue diagnostic is not computed),
        ``"auto"`` (KSS 2020, section 5: the eigenvalue diagnostic, and the weak-identification interval, q = 1,
        for a component whose leading eigenvalue carries at least 5% of the sum of squared eigenvalues of its
        quadratic form, else the normal one) or ``"q1"`` (the diagnostic and always the q = 1 interval). The
        diagnostic costs three eigen-solves (dense up to 500 workers + firms, else Lanczos with two
        firm-sized solves per step) and a second trace estimate (``se_draws`` draws): measured on chapter 06's
        population (28,620 workers, 2,132 firms) 16 s on top of the 16 s of the q = 0 standard errors; see the
        module docstring. (Off by default so that existing callers keep their cost and intervals.)

    The plug-in components are exact moments of the fitted effects. The corrected ones subtract
    ``sum_l B_ll sigma_l^2`` (see the module docstring); the corrected ``var_resid`` is the mean of the unbiased
    ``sigma_l^2`` (KSS) or ``SSR/(n - k)`` (homoskedastic), so their parts add up to var(y) only approximately.
    """
    import time as _t

    _checks.require_choice(method, "method", METHODS)
    if se and method != "kss":
        raise ValueError(f"se=True: standard errors are implemented for the leave-out estimator only "
                         f"(method='kss'), got method={method!r}")
    if se and not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")
    if se:
        _checks.require_choice(ci_method, "ci_method", ("auto", "q0", "q1"))
    if se and (int(se_draws) != se_draws or se_draws < 0 or se_draws == 1):
        raise ValueError(f"se_draws must be 0 (exact) or an integer >= 2, got {se_draws!r}")
    t0 = _t.perf_counter()
    rows = _row_arrays(result)
    pi = _plugin(rows)
    n = int(round(float(rows["w"].sum()))) if "w" in rows else len(rows["y"])  # person-years
    if method == "plugin":
        return VarianceDecomposition(method="plugin", n_obs=n, **pi)
    if method == "kss" and result.connected != "leave_one_out":
        raise ValueError("the KSS correction needs every leverage below 1: fit on the leave-one-out connected set, "
                         "akm.fit(..., connected='leave_one_out', leave_out='obs' or 'match')")
    lo = leave_out or result.leave_out or "obs"
    _checks.require_choice(lo, "leave_out", LEAVE_OUT)
    cache = getattr(result, "_cache", None)
    cache = cache if isinstance(cache, dict) else {}
    if "matches" not in cache:
        cache["matches"] = _Matches(rows)
    del rows
    mt = cache["matches"]
    if leverage == "auto":
        leverage = "exact" if mt.nf <= exact_max_firms else "jla"
    _checks.require_choice(leverage, "leverage", ("exact", "jla", "auto"))
    coll = _collapsed(mt, lo)
    if se and "weights" in result._rows and not coll.all():
        raise ValueError(f"se=True on a fit collapsed to matches (akm.fit(..., collapse='matches')) needs every "
                         f"unit left out to be a whole match (leave_out='match_movers'); leave-{lo}-out has "
                         "person-year units, whose outcomes a collapsed fit does not keep: use the person-year fit")
    # leverages depend on the design only (which JLA ones are recomputed exactly, on the leave-out level too):
    # computed once per fit and reused
    key = ("exact",) if leverage == "exact" else ("jla", draws, seed, tol, jla_exact, lo)
    if key not in cache:
        cache[key] = (_exact(mt) if leverage == "exact"
                      else _jla_P(mt, draws, seed, tol, batch, quiet, jla_exact, coll if coll.any() else None))
    if leverage == "exact":
        P2, Bp, Ba, Bc, info = cache[key]
        V2 = np.zeros_like(P2)
    else:
        (P2, info), Bp, Ba, Bc = cache[key], None, None, None
        V2 = info["var_P2"]
    P_row = 1.0 / mt.T[mt.mi] + P2  # leverage of a single person-year of match m
    details = {"matches": int(len(mt.c)), "mover_matches": int(mt.mover_match.sum()), "leverage": leverage}
    inference = {}
    mc_target = mc_tol * pi["var_y"]
    if method == "homoskedastic":
        k = result.n_params
        sigma2 = float(mt.rss / (n - k))
        w = sigma2 * mt.c  # sum over person-years of B_l sigma^2
        var_resid = sigma2
        corr, mc, n_trace, met = _bias(mt, w, Bp, Ba, Bc, trace_draws, seed, tol, mc_target, max_trace_draws)
    else:
        sigma2 = None
        # the leverage of a unit: one person-year, or a collapsed, length-weighted match (c_m times that)
        P = np.where(coll, mt.c * P_row, P_row)
        bad = P >= 1 - 1e-10
        if leverage == "jla":
            details["clipped_leverages"] = int((P > 0.99).sum())
            P = np.minimum(P, 0.99)
            bad = np.zeros_like(bad)
        if bad.any():
            raise ValueError(f"{int(bad.sum())} match(es) have leverage 1 under leave-{lo}-out: fit with "
                             f"connected='leave_one_out', leave_out='{lo}'")
        # sum over the unit's person-years of (y_l - ybar) e_l / (1 - P): one term per person-year, or
        # c^2 ybar_m ebar_m / (1 - c P) for a collapsed match
        K = np.where(coll, mt.c ** 2 * mt.ybar * mt.ebar, mt.ye) / (1 - P)
        K *= _jla_fix(P, np.where(coll, mt.c ** 2, 1.0) * V2)
        corr, mc, n_trace, met = _bias(mt, K, Bp, Ba, Bc, trace_draws, seed, tol, mc_target, max_trace_draws)
        # residual variance: mean over person-years of the unbiased sigma_l^2 (person-year leave-out)
        Pr = np.minimum(P_row, 0.99 if leverage == "jla" else 1 - 1e-12)
        var_resid = float((mt.ye / (1 - Pr) * _jla_fix(Pr, V2)).sum() / n)
        if se:
            V, Vmc, se_info, U = _kss_se(result, mt, lo, P_row, leverage, (Bp, Ba, Bc), cache, draws, seed, tol,
                                         batch, int(se_draws))
            details.update(se_info)
            point = {"var_alpha": pi["var_alpha"] - corr["alpha"], "var_psi": pi["var_psi"] - corr["psi"],
                     "cov_alpha_psi": pi["cov_alpha_psi"] - corr["cov"]}
            va, vp, cv = point["var_alpha"], point["var_psi"], point["cov_alpha_psi"]
            vy = pi["var_y"]
            point.update(share_alpha=va / vy, share_psi=vp / vy, share_sorting=2 * cv / vy,
                         corr_alpha_psi=cv / np.sqrt(va * vp) if va > 0 and vp > 0 else float("nan"))
            inference = dict(zip(("se", "se_mc", "ci", "vcov"), _se_results(V, Vmc, point, pi["var_y"], level)))
            inference["level"] = level
            if ci_method != "q0":
                t1 = _t.perf_counter()
                wid = _weak_id(U, U.sigma_firm(), point, int(se_draws), seed, level,
                               U.nu if int(se_draws) == 0 else 0, batch)
                inference.update(_weak_results(wid, inference["ci"], vy, ci_method))
                details["ci_rule"] = ("q=1 where lambda_1^2 / sum lambda^2 >= " f"{_Q1_SHARE:g}, else q=0"
                                      if ci_method == "auto" else "q=1 for every component")
                details["weak_id_seconds"] = _t.perf_counter() - t1
            del U
    if info is not None:
        details.update(cg_iterations=info["cg_iterations"], cg_rel_residual=info["cg_rel_residual"],
                       exact_leverages=info["exact_leverages"])
        for k in ("noisy_leverages", "pilot_draws", "exact_target_met"):  # the JLA pilot (helper C)
            if k in info:
                details[k] = info[k]
    if leverage == "jla" or n_trace:
        details.update(trace_draws=n_trace, trace_target=mc_target, trace_target_met=met)
    details["seconds"] = _t.perf_counter() - t0
    return VarianceDecomposition(
        method=method, var_y=pi["var_y"], var_alpha=pi["var_alpha"] - corr["alpha"],
        var_psi=pi["var_psi"] - corr["psi"], cov_alpha_psi=pi["cov_alpha_psi"] - corr["cov"],
        var_xb=pi["var_xb"], cov_xb_effects=pi["cov_xb_effects"], var_resid=var_resid, n_obs=n,
        leave_out=lo if method == "kss" else None, leverage=leverage,
        draws=draws if leverage == "jla" else None, mc_se=mc, sigma2=sigma2, details=details, **inference)


def _jla_fix(P, V):
    """Non-linear bias correction of 1 / (1 - P_hat) for a leverage estimated with Monte Carlo variance ``V``.

    ``E[1 / (1 - P_hat)] = (1 / (1 - P)) (1 + V / (1 - P)^2 + ...)`` for an unbiased ``P_hat``, so the leave-out
    ``sigma_l^2`` are multiplied by ``1 - V / (1 - P_hat)^2`` (floored at 0). This is the second-order correction
    of Di Addario, Kline, Saggio and Solvsten (2023, *J. Econometrics* 235(2), appendix), used by LeaveOutTwoWay
    (``leverages.m``: ``correction_JLA = 1 - V_i / M_ii^2 + B_i / M_ii``). Their ``B_i`` term is the bias of the
    ratio estimator ``P_hat / (P_hat + M_hat)`` they use; our ``P_hat`` is the plain unbiased JLA mean (only the
    firm part ``x'L^+x`` is random, the worker part ``1/T_i`` is exact), so that term is zero. pytwoway's
    ``_estimate_Sii_he`` uses the closed form ``1 - (3 P^3 + P^2) / (p (1 - P))`` instead; we estimate ``V``
    from the draws themselves (:func:`_jla_P`). With exact leverages ``V = 0`` and the factor is 1.

    Measured on a low-mobility test panel (3,000 workers, 300 firms, movers' leverages up to 0.9, 200 draws), the
    relative bias of the mean of ``1 / (1 - P_hat)`` over movers fell from +1.8% to -0.6% (a jackknife over ten draw
    groups gave the same -0.6%: what is left is of higher order, from leverages near 1 whose JLA estimates have a
    relative s.e. comparable to ``1 - P``)."""
    return np.maximum(1.0 - V / np.square(1.0 - P), 0.0)


def of_effects(frame: pd.DataFrame, y: str, alpha: str, psi: str, xb: str | None = None,
               table: str = "frame") -> VarianceDecomposition:
    """The decomposition of Var(y) implied by given effects (e.g. the true ones) on the rows of ``frame``.

    ``method="truth"``: ``var_alpha``, ``var_psi``, ``cov_alpha_psi`` (and ``var_xb``, ``cov_xb_effects`` when
    ``xb`` names a column, else 0) are the person-year moments (denominator n) of the columns ``alpha``, ``psi``,
    ``xb`` over the rows given; ``var_resid`` is the variance of ``y - alpha - psi - xb``. So an estimate and the
    truth on the same rows (e.g. ``akm_result.sample`` joined to the true effects) are compared like with like:
    ``variance.table(of_effects(...), fit.decompose("kss"))``, or their :meth:`~VarianceDecomposition.shares`.
    Unlike a least-squares fit, the true errors are not exactly orthogonal to the effects in a sample, so
    ``sum_of_parts`` equals ``var_y`` only approximately. Bad input raises an :class:`prosperity._checks.InputError`
    naming table ``table`` and the column."""
    cols = [y, alpha, psi, xb]
    _checks.require_columns(frame, cols, table)
    _checks.require_numeric(frame, cols, table)
    _checks.require_complete(frame, cols, table)
    _checks.require_rows(frame, table)
    v = {c: frame[c].to_numpy(dtype=float) for c in cols if c is not None}
    x = v[xb] if xb is not None else np.zeros(len(frame))
    eff = v[alpha] + v[psi]
    return VarianceDecomposition(
        method="truth", var_y=_wvar(v[y]), var_alpha=_wvar(v[alpha]), var_psi=_wvar(v[psi]),
        cov_alpha_psi=_wvar(v[alpha], v[psi]), var_xb=_wvar(x), cov_xb_effects=_wvar(x, eff),
        var_resid=_wvar(v[y] - eff - x), n_obs=int(len(frame)))


# ---------------------------------------------------------------------------------------------------------------
# linear combinations of the firm effects: second-stage regressions with leave-out standard errors


@dataclass(frozen=True, repr=False)
class Lincom(Result):
    """A regression of estimated firm effects on firm covariates with KSS leave-out standard errors (:func:`lincom`).

    ``table`` (and its copy ``to_frame()``): one row per ``term`` (``"const"``, then the covariates) with ``coef``,
    ``se``, ``ci_low``, ``ci_high`` (normal intervals at ``level``). ``vcov``: the estimated covariance matrix of
    the coefficients (DataFrame). ``on`` (the firm id column of the covariates), ``weights`` (``"person_years"``,
    ``None`` for one weight per firm, or the weight column), ``leave_out``, ``leverage``, ``n_firms``, ``n_obs``
    (person-years of the estimation sample), ``n_unused`` (covariate rows for firms outside the estimation
    sample, which do not enter), ``details``."""

    table: pd.DataFrame
    vcov: pd.DataFrame = field(repr=False, compare=False)
    on: str
    weights: str | None
    level: float
    leave_out: str
    leverage: str
    n_firms: int
    n_obs: int
    n_unused: int
    details: dict = field(default_factory=dict)

    def summary(self) -> str:
        w = {"person_years": "person-year weighted", None: "one weight per firm"}.get(self.weights,
                                                                                     f"weights {self.weights!r}")
        pct = f"{100 * self.level:g}%"
        t = self.table.rename(columns={"ci_low": f"{pct} low", "ci_high": f"{pct} high"}).set_index("term")
        s = (f"Firm effects on firm covariates (psi ~ {' + '.join(self.table['term'][1:])}; {w}), "
             f"{self.n_firms:,} firms, {self.n_obs:,} person-years\n")
        s += t.to_string(float_format=lambda v: f"{v:.4f}")
        s += (f"\n  s.e.: Kline, Saggio and Solvsten (2020) leave-{self.leave_out}-out ({self.leverage} leverages): "
              f"robust to heteroskedasticity and to the estimation error of the firm effects; psi centred at its "
              f"person-year mean (the constant reflects that normalisation)")
        if self.n_unused:
            s += f"\n  {self.n_unused:,} covariate row(s) for firms outside the estimation sample not used"
        return s


def lincom(result, covariates: pd.DataFrame, on: str | None = None, terms=None, weights: str | None = "person_years",
           leave_out: str | None = None, leverage: str = "auto", draws: int = 200, seed: int = 0,
           exact_max_firms: int = 3000, tol: float = 1e-8, jla_exact: int = 1000, level: float = 0.95,
           table: str = "covariates") -> Lincom:
    """Regress the estimated firm effects on firm covariates, with leave-out standard errors (KSS 2020).

    The coefficients are the weighted least-squares fit of ``psi_hat_j`` (centred at its person-year mean) on a
    constant and ``terms`` over the firms of the estimation sample, weighted by person-years (``weights=
    "person_years"``: the regression of every person-year's firm effect on its firm's covariates, as in KSS's
    ``lincom_KSS.m``), one weight per firm (``None``) or a positive column of ``covariates``. Each coefficient is a
    linear combination ``v'beta_hat`` of the AKM coefficients, so, for independent units, its variance is
    ``sum_u (z_u'S^-1 v)^2 sigma_u^2`` (``S = Z'Z``), estimated without bias by the leave-out
    ``sigma_hat_u^2 = (y_u - ybar)(y_u - z_u'beta_{-u})`` (Kline, Saggio and Solvsten 2020, *Econometrica*
    88(5), Proposition 1 and Remark 9). This counts the estimation error of every ``psi_hat_j``, which a
    heteroskedasticity-robust second-stage regression treating ``psi_hat`` as data would miss, and it is valid
    with many regressors (few movers per firm). The unit left out follows ``leave_out`` as in :func:`decompose`
    (a person-year, or a mover's whole match under ``"match"``: robust to serial correlation within those
    matches). Intervals are normal (a fixed number of linear combinations: no weak-identification issue).

    Where we differ from LeaveOutTwoWay's ``lincom_KSS.m``: it uses ``y_u`` uncentred in ``sigma_hat_u^2``
    (unbiased too, but it moves with the level of y; as in :func:`decompose` we centre); it works on the
    person-year design with covariates given per person-year, where here they are given per firm; the joint
    test of all slopes is not implemented.

    Bad input (a missing column, a non-numeric or incomplete covariate, duplicated or missing firm ids,
    collinear covariates, non-positive weights) raises :class:`prosperity._checks.InputError` naming table
    ``table``, the column and the offending ids.

    Parameters
    ----------
    result : an AKM fit on the leave-one-out connected set (``akm.fit(..., connected="leave_one_out")``).
    covariates : one row per firm: the firm id column ``on`` (default: the fit's firm column) and numeric
        covariates. Place characteristics enter by merging them onto firms first. Every firm of the estimation
        sample needs a row; rows for other firms are counted (``n_unused``) and not used.
    terms : the covariate columns (default: every column but ``on`` and a weight column).
    leverage, draws, seed, exact_max_firms, tol, jla_exact : how the leverages ``P_uu`` are computed, as in
        :func:`decompose` (exact up to ``exact_max_firms`` firms, else JLA with the non-linear correction).
    level : confidence level of the intervals.
    """
    if not (hasattr(result, "_rows") and hasattr(result, "firm_effects") and hasattr(result, "names")):
        _checks.fail(f"lincom needs an AKM fit (prosperity.akm.fit), got {type(result).__name__}", "result",
                     kind=_checks.InputTypeError)
    if result.connected != "leave_one_out":
        raise ValueError("lincom needs every leverage below 1: fit on the leave-one-out connected set, "
                         "akm.fit(..., connected='leave_one_out')")
    if not 0 < level < 1:
        raise ValueError(f"level must be strictly between 0 and 1, got {level!r}")
    fname = result.names["firm"]
    on = fname if on is None else on
    _checks.require_frame(covariates, table)
    wcol = weights if weights not in ("person_years", None) else None
    if terms is None:
        terms = [c for c in covariates.columns if c not in (on, wcol)]
    terms = _checks.as_list(terms)
    if not terms:
        _checks.fail("no covariate column besides the firm id", table, on)
    if "const" in terms:
        _checks.fail("a column named 'const' clashes with the constant the regression adds; rename it", table,
                     "const")
    _checks.require_columns(covariates, [on] + terms + [wcol], table)
    _checks.require_numeric(covariates, terms + [wcol], table)
    _checks.require_complete(covariates, [on] + terms + [wcol], table, id_cols=on)
    _checks.require_one_type(covariates, on, table)
    _checks.require_unique(covariates, on, table, hint=" (one row per firm)")
    if wcol is not None:
        _checks.require_positive(covariates, wcol, table, id_cols=on)
    fid = result.firm_effects[fname]
    pos = pd.Index(covariates[on]).get_indexer(fid)
    if (pos < 0).any():
        miss = fid.to_numpy()[pos < 0]
        _checks.fail(f"{int((pos < 0).sum())} firm(s) of the estimation sample have no row; every firm needs its "
                     f"covariates (no firm is dropped silently)", table, on, miss, on)
    n_unused = int(len(covariates) - len(fid))
    cov = covariates.iloc[pos]
    Zf = np.column_stack([np.ones(len(fid))] + [cov[c].to_numpy(dtype=float) for c in terms])

    lo = leave_out or result.leave_out or "obs"
    _checks.require_choice(lo, "leave_out", LEAVE_OUT)
    cache = getattr(result, "_cache", None)
    cache = cache if isinstance(cache, dict) else {}
    rows = _row_arrays(result)
    if "matches" not in cache:
        cache["matches"] = _Matches(rows)
    mt = cache["matches"]
    if leverage == "auto":
        leverage = "exact" if mt.nf <= exact_max_firms else "jla"
    _checks.require_choice(leverage, "leverage", ("exact", "jla"))
    coll = _collapsed(mt, lo)
    key = ("exact",) if leverage == "exact" else ("jla", draws, seed, tol, jla_exact, lo)
    if key not in cache:  # the same leverages as decompose (computed once per fit)
        cache[key] = (_exact(mt) if leverage == "exact"
                      else _jla_P(mt, draws, seed, tol, None, True, jla_exact, coll if coll.any() else None))
    if leverage == "exact":
        P2, V2 = cache[key][0], np.zeros(len(mt.c))
    else:
        P2, V2 = cache[key][0], cache[key][1]["var_P2"]
    P_row = 1.0 / mt.T[mt.mi] + P2
    zero = np.zeros(len(mt.c))
    U = _Units(mt, rows["y"] - rows["xb"], rows["resid"], lo, P_row,
               {k: zero for k in _SE_COMPS}, factorise=leverage == "exact", tol=tol,
               pmax=0.99 if leverage == "jla" else 1.0)
    del rows
    if leverage == "exact" and (U.P >= 1 - 1e-10).any():
        raise ValueError(f"{int((U.P >= 1 - 1e-10).sum())} unit(s) have leverage 1 under leave-{lo}-out: fit with "
                         f"connected='leave_one_out', leave_out='{lo}'")

    w = mt.nj if weights == "person_years" else (np.ones(mt.nf) if weights is None
                                                  else cov[wcol].to_numpy(dtype=float))
    ZW = Zf * w[:, None]
    rank = np.linalg.matrix_rank(Zf * np.sqrt(w)[:, None])
    if rank < Zf.shape[1]:  # name the first covariate that adds nothing to the ones before it
        names = ["const"] + terms
        for k in range(2, Zf.shape[1] + 1):
            if np.linalg.matrix_rank(Zf[:, :k] * np.sqrt(w)[:, None]) < k:
                _checks.fail(f"covariate is collinear with the constant and {names[1:k - 1] or 'nothing else'} on "
                             f"the {mt.nf:,} firms of the estimation sample; drop or combine it", table,
                             names[k - 1])
    G = np.linalg.solve(Zf.T @ ZW, ZW.T)  # (terms, firms): coefficients = G psi
    Vc = G.T - np.outer(mt.nj, G.sum(axis=1)) / mt.n  # v for psi centred at its person-year mean
    psi = result.firm_effects["psi"].to_numpy(dtype=float)
    coef = Vc.T @ psi
    ga, gp = U._solve(np.zeros((mt.nw, Vc.shape[1])), Vc)  # S^+ (0, v): any solution (v is orthogonal to 1)
    a = U._Zg(ga, gp)  # z_u' S^+ v for every unit: coef = a'y
    sig = U.y * U.e / (1 - U.P) * _jla_fix(U.P, np.square(U.s) * V2[U.um])
    V = a.T @ (a * sig[:, None])
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + level / 2)
    se = np.sqrt(np.where(np.diag(V) > 0, np.diag(V), np.nan))
    names = ["const"] + terms
    tab = pd.DataFrame({"term": names, "coef": coef, "se": se, "ci_low": coef - z * se, "ci_high": coef + z * se})
    details = {"units": int(U.nu), "coef_check": float(np.max(np.abs(a.T @ U.y - coef))) if U.nu else 0.0}
    return Lincom(table=tab, vcov=pd.DataFrame(V, index=names, columns=names), on=on,
                  weights=weights, level=level, leave_out=lo, leverage=leverage, n_firms=int(mt.nf),
                  n_obs=int(mt.n), n_unused=n_unused, details=details)

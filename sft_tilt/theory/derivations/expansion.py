"""Result 4 of the theory: expansion of the single-step code-length change to third order, coefficients = cumulants.

    dL(P) = lam (E_q s - E_P s) + lam^2/2 Var_q(s) + lam^3/6 kappa_3 + O(lam^4),

since ``dL = -lam E_P s + K_q(lam)`` and ``K_q(lam) = sum_k kappa_k lam^k / k!``. Symbolic: the Maclaurin
series of ``K = log sum_i q_i e^{lam s_i}`` for 3 outcomes (symbolic ``q``, ``s``) is computed by SymPy and its
coefficients compared with the cumulants written from the definitions (``kappa_1 = E s``,
``kappa_2 = E(s-mu)^2``, ``kappa_3 = E(s-mu)^3``). Numeric: the remainder equals ``lam^4 kappa_4 / 24`` up to ``(lam max|s - E_q s|)^5``
on 1,000 random instances; the truncation equals ``sft_tilt.theory.tilt_expansion``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from scipy.special import log_softmax

from sft_tilt.theory.derivations.finite import finite_tilt, normalised, random_instances
from sft_tilt.theory.derivations.registry import Result, derivation, max_abs_diff, numeric_check, symbolic_zero

ASSUMPTIONS = (
    "finite outcome set, s real (all moments finite), q > 0 on the support of P",
    "one step is the exponential tilt q_lam = q e^{lam s} / Z(lam)",
    "the O(lam^4) remainder is for lam -> 0 at fixed (P, q, s)",
)

TRUE_COEFFICIENTS = (1, sp.Rational(1, 2), sp.Rational(1, 6))  # multiply kappa_1 (with -E_P s), kappa_2, kappa_3


def coefficient_checks(claimed=TRUE_COEFFICIENTS):
    """Check ``[lam^k] dL = claimed[k-1] * (cumulant term)``; a wrong claimed factor must fail."""
    T = finite_tilt(3)
    P = normalised("P", 3)
    dL = -T.lam * T.mean(P) + T.K
    series = sp.series(dL, T.lam, 0, 4).removeO()
    expected = (T.mu - T.mean(P), T.central_moment(2), T.central_moment(3))
    names = ("E_q s - E_P s", "Var_q s", "kappa_3")
    checks = [symbolic_zero("[lam^0] dL = 0", series.coeff(T.lam, 0))]
    for k, (c, e, nm) in enumerate(zip(claimed, expected, names), start=1):
        checks.append(symbolic_zero(f"[lam^{k}] dL = {c} * ({nm}) (series of K vs cumulants, 3 outcomes)", series.coeff(T.lam, k) - c * e))
    return checks


def _numeric():
    import sft_tilt.theory

    P, q, s, lam = random_instances(5, 1000, 6)
    exact = lambda l: np.sum(P * (np.log(q) - log_softmax(np.log(q) + l[:, None] * s, -1)), -1)  # noqa: E731
    mu = np.sum(q * s, -1)
    d = s - mu[:, None]
    k2, k3, m4 = (np.sum(q * d**k, -1) for k in (2, 3, 4))
    k4 = m4 - 3 * k2**2
    M = np.abs(d).max(-1)
    small = 0.02 / M  # lam M = 0.02
    series = lambda l: l * (mu - np.sum(P * s, -1)) + l**2 / 2 * k2 + l**3 / 6 * k3  # noqa: E731
    # remainder = lam^4 kappa_4 / 24 + O((lam M)^5): compare with the next cumulant term
    rem = exact(small) - series(small)
    err = np.abs(rem - small**4 * k4 / 24)
    tol = (small * M) ** 5 + 1e-14 * np.abs(exact(small))
    e = max_abs_diff(series(lam), sft_tilt.theory.tilt_expansion(P, q, s, lam, order=3))
    return bool(np.all(err <= tol) and e < 1e-9), (
        f"1000 instances at lam max|s - E_q s| = 0.02: |remainder - lam^4 kappa_4/24| <= (lam M)^5 on all "
        f"(max ratio {np.max(err / tol):.2f}); |series - sft_tilt.theory.tilt_expansion| {e:.1e}")


@derivation("tilt_expansion", number=4)
def derive() -> Result:
    lam, EqS, EPs, var, k3 = sp.symbols("lambda E_q[s] E_P[s] Var_q[s] kappa_3")
    dL = sp.Function("Delta L")(sp.Symbol("P"))
    return Result(
        name="tilt_expansion",
        number=4,
        title="Third-order expansion of dL with cumulant coefficients",
        statement=(sp.Eq(dL, lam * (EqS - EPs) + lam**2 / 2 * var + lam**3 / 6 * k3 + sp.O(lam**4)),),
        text="dL(P) = lam (E_q s - E_P s) + lam^2/2 Var_q(s) + lam^3/6 kappa_3(s; q) + O(lam^4)",
        assumptions=ASSUMPTIONS,
        checks=tuple(coefficient_checks()) + (numeric_check("float64: remainder is lam^4 kappa_4/24 + O(lam^5); truncation equals sft_tilt.theory.tilt_expansion", _numeric),),
    )

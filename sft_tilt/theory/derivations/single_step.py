"""Results 2 and 3 of the theory: the exact single-step identity and the exact one-step trade-off.

    dL(P) = E_P[-log q_lam] - E_P[-log q] = -lam E_P[s] + K_q(lam),      K_q(lam) = log E_q[e^{lam s}]
    D + G = dL(P1) - dL(P2) = lam (E_P2[s] - E_P1[s])                       (the model q cancels)

Symbolic proof for 3 outcomes with symbolic probabilities, direction and step; numeric check on
1,000 random instances against log-sum-exp in NumPy and the ``theory`` exports.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from scipy.special import log_softmax

from sft_tilt.theory.derivations.finite import finite_tilt, normalised, numpy_cgf, random_instances
from sft_tilt.theory.derivations.registry import Result, derivation, max_abs_diff, numeric_check, symbolic_zero

ASSUMPTIONS = (
    "finite outcome set; q > 0 on the support of P (else dL = +inf)",
    "one step is the exponential tilt q_lam = q e^{lam s} / Z(lam), s real, lam >= 0",
    "P, P1, P2 are probability distributions (sum to 1)",
)


def _code_length_change(T, P):
    return sum(Pi * (sp.log(qi) - sp.log(ti)) for Pi, qi, ti in zip(P, T.q, T.tilted))


def identity_checks(claimed_sign: int = -1):
    """``claimed_sign = +1`` states ``dL = +lam E_P s + K`` (false: must fail)."""
    T = finite_tilt(3)
    P = normalised("P", 3)
    dL = _code_length_change(T, P)
    return [symbolic_zero("dL(P) = -lam E_P s + K_q(lam) (3 outcomes, symbolic q, s, P, lam)",
                          sp.expand_log(dL - (claimed_sign * T.lam * T.mean(P) + T.K), force=True))]


def tradeoff_checks(claimed_factor=1):
    T = finite_tilt(3)
    P1, P2 = normalised("Pa", 3), normalised("Pb", 3)
    D = _code_length_change(T, P1)
    G = -_code_length_change(T, P2)
    return [symbolic_zero("D + G = lam (E_P2 s - E_P1 s), q cancels (3 outcomes)",
                          sp.expand_log(D + G - claimed_factor * T.lam * (T.mean(P2) - T.mean(P1)), force=True))]


def _numeric_identity():
    import sft_tilt.theory

    P, q, s, lam = random_instances(2, 1000, 7)
    log_q_lam = log_softmax(np.log(q) + lam[:, None] * s, -1)
    direct = np.sum(P * (np.log(q) - log_q_lam), -1)
    formula = -lam * np.sum(P * s, -1) + numpy_cgf(q, s, lam)
    exported = np.asarray(sft_tilt.theory.single_step_code_length_change(P, q, s, lam))
    via_tilt = np.asarray(sft_tilt.theory.code_length_change(P, q, sft_tilt.theory.tilt(q, s, lam)))
    e = [max_abs_diff(direct, formula), max_abs_diff(direct, exported), max_abs_diff(direct, via_tilt)]
    return max(e) < 1e-9, f"1000 random instances (V=7): |direct - formula| {e[0]:.1e}, sft_tilt.theory.single_step_code_length_change {e[1]:.1e}, sft_tilt.theory.code_length_change(tilt) {e[2]:.1e}"


def _numeric_tradeoff():
    import sft_tilt.theory

    P1, q, s, lam = random_instances(3, 1000, 7)
    P2, *_ = random_instances(4, 1000, 7)
    log_q_lam = log_softmax(np.log(q) + lam[:, None] * s, -1)
    D = np.sum(P1 * (np.log(q) - log_q_lam), -1)
    G = -np.sum(P2 * (np.log(q) - log_q_lam), -1)
    rhs = lam * (np.sum(P2 * s, -1) - np.sum(P1 * s, -1))
    e = [max_abs_diff(D + G, rhs), max_abs_diff(D + G, np.asarray(sft_tilt.theory.tradeoff_sum(P1, P2, s, lam)))]
    return max(e) < 1e-9, f"1000 random instances: |D + G - rhs| {e[0]:.1e}, vs sft_tilt.theory.tradeoff_sum {e[1]:.1e}"


@derivation("single_step_identity", number=2)
def derive_identity() -> Result:
    lam, EPs = sp.symbols("lambda E_P[s]")
    K = sp.Function("K_q")
    return Result(
        name="single_step_identity",
        number=2,
        title="Exact single-step identity dL(P) = -lam E_P s + K_q(lam)",
        statement=(sp.Eq(sp.Function("Delta L")(sp.Symbol("P")), -lam * EPs + K(lam)),),
        text="dL(P) = E_P[-log q_lam] - E_P[-log q] = -lam E_P[s] + K_q(lam), K_q(lam) = log E_q[exp(lam s)]",
        assumptions=ASSUMPTIONS,
        checks=tuple(identity_checks()) + (numeric_check("float64: direct code-length change vs formula vs theory exports", _numeric_identity),),
    )


@derivation("tradeoff_identity", number=3)
def derive_tradeoff() -> Result:
    lam, E1, E2, D, G = sp.symbols("lambda E_P1[s] E_P2[s] D G")
    return Result(
        name="tradeoff_identity",
        number=3,
        title="Exact one-step trade-off D + G = lam (E_P2 s - E_P1 s)",
        statement=(sp.Eq(D + G, lam * (E2 - E1)),),
        text="D + G = lam (E_P2[s] - E_P1[s]) with D = dL(P1) (general degradation), G = -dL(P2) (domain gain); independent of q",
        assumptions=ASSUMPTIONS,
        checks=tuple(tradeoff_checks()) + (numeric_check("float64: D + G vs lam (E_P2 s - E_P1 s) vs sft_tilt.theory.tradeoff_sum", _numeric_tradeoff),),
    )

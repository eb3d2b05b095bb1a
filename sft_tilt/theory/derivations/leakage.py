"""Result 6 of the theory: the leakage form of the one-step trade-off.

With ``V = K_q(lam) - lam E_q s`` (the tilt excess, ``= KL(q || q_lam)``) and leakage
``rho = (E_q s - E_P1 s) / (E_P2 s - E_q s)`` (first-order general loss per unit first-order domain gain):

    D = rho G + (1 + rho) V,      0 <= V <= lam^2 (b - a)^2 / 8,

hence, given the domain gain ``G``,
``rho G + min(0, (1+rho) V_max) <= D <= rho G + max(0, (1+rho) V_max)``, ``V_max = lam^2 (b-a)^2/8``.
Checked symbolically: the identity on a 3-outcome tilt (``D``, ``G`` from the code-length changes),
``V = KL(q || q_lam)``; the bounds on ``V`` are the Jensen and Hoeffding results (results 5a, 5b).
Checked numerically: identity on 1,000 instances; the bounds on 100,000, against ``sft_tilt.theory.leakage``,
``sft_tilt.theory.tilt_excess``, ``sft_tilt.theory.degradation_given_gain_bounds``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from scipy.special import log_softmax

from sft_tilt.theory.derivations.finite import finite_tilt, normalised, numpy_cgf, random_instances
from sft_tilt.theory.derivations.registry import Result, derivation, max_abs_diff, numeric_check, symbolic_zero

ASSUMPTIONS = (
    "P1 (general) and P2 (domain) live on the same finite outcome set, tilted by the same q_lam = q e^{lam s}/Z",
    "first-order domain gain rate E_P2 s - E_q s != 0 (rho defined)",
    "a <= s <= b on supp q; lam >= 0; q > 0 on the supports of P1, P2",
)


def identity_checks(claimed_v_factor=None):
    """``claimed_v_factor`` replaces ``(1 + rho)`` (e.g. ``1``: the wrong form ``D = rho G + V`` must fail)."""
    T = finite_tilt(3)
    P1, P2 = normalised("Pa", 3), normalised("Pb", 3)
    D = sum(p * (sp.log(qi) - sp.log(ti)) for p, qi, ti in zip(P1, T.q, T.tilted))
    G = -sum(p * (sp.log(qi) - sp.log(ti)) for p, qi, ti in zip(P2, T.q, T.tilted))
    V = T.K - T.lam * T.mu
    rho = (T.mu - T.mean(P1)) / (T.mean(P2) - T.mu)
    factor = 1 + rho if claimed_v_factor is None else claimed_v_factor
    kl = sum(qi * (sp.log(qi) - sp.log(ti)) for qi, ti in zip(T.q, T.tilted))
    lhs = sp.expand_log(D - rho * G - factor * V, force=True)
    return [
        symbolic_zero("D = rho G + (1 + rho) V (3 outcomes, symbolic q, s, P1, P2, lam)", sp.numer(sp.together(lhs))),
        symbolic_zero("V = K_q(lam) - lam E_q s = KL(q || q_lam)", sp.expand_log(kl - V, force=True)),
    ]


def _numeric():
    import sft_tilt.theory

    P1, q, s, lam = random_instances(10, 100_000, 5)
    P2, *_ = random_instances(11, 100_000, 5)
    logq_lam = log_softmax(np.log(q) + lam[:, None] * s, -1)
    D = np.sum(P1 * (np.log(q) - logq_lam), -1)
    G = -np.sum(P2 * (np.log(q) - logq_lam), -1)
    mu = np.sum(q * s, -1)
    rho = (mu - np.sum(P1 * s, -1)) / (np.sum(P2 * s, -1) - mu)
    V = numpy_cgf(q, s, lam) - lam * mu
    ident = np.abs(D - rho * G - (1 + rho) * V) / np.maximum(1.0, np.abs(rho) * np.abs(G) + np.abs(1 + rho) * np.abs(V))
    vmax = lam**2 * (s.max(-1) - s.min(-1)) ** 2 / 8
    lo, hi = (np.asarray(b) for b in sft_tilt.theory.degradation_given_gain_bounds(G, rho, lam, s.max(-1) - s.min(-1)))
    tol = 1e-9 * np.maximum(1.0, np.abs(D))
    e_rho = float(np.max(np.abs(rho - np.asarray(sft_tilt.theory.leakage(P1, P2, q, s))) / np.maximum(1.0, np.abs(rho))))
    e_v = max_abs_diff(V, sft_tilt.theory.tilt_excess(q, s, lam))
    ok = ident.max() < 1e-9 and np.all(V >= -1e-12) and np.all(V <= vmax * (1 + 1e-12) + 1e-15) and np.all(lo <= D + tol) and np.all(D <= hi + tol)
    ok = ok and e_rho < 1e-9 and e_v < 1e-9
    return bool(ok), (f"100,000 instances: max relative identity error {ident.max():.1e}; V in [0, lam^2 (b-a)^2/8] on all "
                      f"(max V/V_max {np.max(V / vmax):.3f}); D within the bounds given G on all; sft_tilt.theory.leakage rel. err {e_rho:.1e}, "
                      f"sft_tilt.theory.tilt_excess {e_v:.1e}")


@derivation("leakage_form", number=6)
def derive() -> Result:
    D, G, V, rho, lam, a, b = sp.symbols("D G V rho lambda a b")
    return Result(
        name="leakage_form",
        number=6,
        title="Leakage form D = rho G + (1 + rho) V with 0 <= V <= lam^2 (b-a)^2/8",
        statement=(sp.Eq(D, rho * G + (1 + rho) * V), sp.Le(0, V), sp.Le(V, lam**2 * (b - a) ** 2 / 8)),
        text="D = rho G + (1 + rho) V, rho = (E_q s - E_P1 s)/(E_P2 s - E_q s), V = K_q(lam) - lam E_q s = KL(q||q_lam) in [0, lam^2 (b-a)^2/8]; "
        "so rho G + min(0, (1+rho) V_max) <= D <= rho G + max(0, (1+rho) V_max)",
        assumptions=ASSUMPTIONS,
        checks=tuple(identity_checks()) + (numeric_check("float64: identity and bounds on 100,000 instances vs theory exports", _numeric),),
    )

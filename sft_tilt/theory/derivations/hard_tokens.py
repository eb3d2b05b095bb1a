"""Result 8 of the theory: hard tokens and the safe step size (Theorem 3.2); numerics in ``sft_tilt.theory._hard_tokens``.

    ||e_y - q||_2 in [1 - p_y, sqrt(2) (1 - p_y)],
    lam_safe(eps, Delta*, m) = sup{lam : B(lam, m) <= eps} is non-increasing in the hard-token mass m,

with ``B`` the relaxed matched-gain bound under ``rho_max = sqrt2 kappa delta1 m / g_min``,
``s_range = g_max = 2 kappa m`` (separate contexts, ``c1 = c2 = kappa^2 m^2 / 2``).
Checked symbolically (V = 4): ``||e_y - q||^2 = (1-p_y)^2 + sum_{x != y} q_x^2``; Lagrange/Cauchy-Schwarz identity
``3 sum q^2 - (sum q)^2 = sum_{i<j} (q_i - q_j)^2`` (lower bound) and ``(sum q)^2 - sum q^2 = 2 sum_{i<j} q_i q_j``
(upper bound); sharpness of ``sqrt 2``; ``range(s) <= sqrt2 ||s||_2``; ``dB/dm >= 0`` and ``dB/dlam > 0`` as
rational functions with non-negative coefficients in positive variables (so ``d lam_safe/dm = -B_m/B_lam <= 0``).
Checked numerically: norms of ``e_y - q`` for 100,000 random ``q``; ``lam_safe`` monotone on 1,000 random pairs.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from sft_tilt.theory.derivations.registry import Result, derivation, nonnegative_rational, numeric_check, symbolic_check, symbolic_zero

ASSUMPTIONS = (
    "softmax cross-entropy on target y: logit gradient q - e_y, p_y = q_y",
    "logits linear in the parameters along the step (exact for a linear head; first order otherwise); SGD step of size lam",
    "loss weights w on the simplex (stop-gradient); hard-token mass m = sum_i w_i (1 - p_i) bounds the mass at every step",
    "coupling kappa >= ||J_h J_i^T||_2, general misfit delta1 >= RMS_h ||q_h - P1_h||_2, gain rate g_t >= g_min > 0 along the run",
    "the matched-gain premise g_min > lam c2 (lam_safe is searched below g_min / c2)",
)


def norm_checks(claimed_upper=sp.sqrt(2)):
    """``claimed_upper`` is the factor of (1 - p_y) in the upper bound (the true, sharp one is sqrt 2)."""
    q = sp.symbols("q2:5", positive=True)
    p = 1 - sum(q)
    e_minus_q = [1 - p] + [-qi for qi in q]
    sq = sum(qi**2 for qi in q)
    pairs = [(i, j) for i in range(3) for j in range(i + 1, 3)]
    M, m_ = sp.symbols("M m", real=True)
    c = sp.nsimplify(claimed_upper)
    t = sp.Symbol("t", positive=True)
    sharp = (sum(v**2 for v in [1 - (1 - t), -t, 0, 0]))  # remaining mass t = 1 - p_y on one other token
    return [
        symbolic_zero("||e_y - q||^2 = (1 - p_y)^2 + sum_{x != y} q_x^2 (V = 4)", sum(v**2 for v in e_minus_q) - ((1 - p) ** 2 + sq)),
        symbolic_zero("lower: (V-1) sum q_x^2 - (sum q_x)^2 = sum_{i<j} (q_i - q_j)^2 >= 0, so sum q_x^2 >= (1-p_y)^2/(V-1)",
                      3 * sq - sum(q) ** 2 - sum((q[i] - q[j]) ** 2 for i, j in pairs)),
        symbolic_zero("upper: (sum q_x)^2 - sum q_x^2 = 2 sum_{i<j} q_i q_j >= 0, so sum q_x^2 <= (1-p_y)^2",
                      sum(q) ** 2 - sq - 2 * sum(q[i] * q[j] for i, j in pairs)),
        symbolic_check(f"claimed upper factor {c}: sharp case (remaining mass on one token) has ||e_y - q||^2 = 2 (1-p_y)^2 <= ({c} (1-p_y))^2",
                       lambda: sp.simplify(sharp - 2 * t**2) == 0 and bool(c**2 >= 2)),
        symbolic_zero("range(s) <= sqrt2 ||s||_2: 2 (M^2 + m^2) - (M - m)^2 = (M + m)^2", 2 * (M**2 + m_**2) - (M - m_) ** 2 - (M + m_) ** 2),
    ]


def bound_in_mass():
    """``B(lam, m)`` with the hard-token constants, premise slack ``d = g - lam c2 > 0`` as a positive variable."""
    lam, m, kappa, delta1, d, Dstar = sp.symbols("lambda m kappa delta_1 d Delta^*", positive=True)
    c2 = kappa**2 * m**2 / 2
    g = d + lam * c2
    rho = sp.sqrt(2) * kappa * delta1 * m / g
    C = c2 + rho * c2
    B = rho * Dstar + lam * (rho * 2 * kappa * m + C * Dstar / (g - lam * c2) + C * lam)
    return B, (lam, m, kappa, delta1, d, Dstar), g


def monotonicity_checks():
    B, syms, g = bound_in_mass()
    lam, m, kappa, delta1, d, Dstar = syms
    # differentiate at fixed g_min: B depends on m through c2 and rho with g held fixed
    G = sp.Symbol("g", positive=True)
    B_g = B.subs(d, G - lam * kappa**2 * m**2 / 2)
    dB_dm = sp.diff(B_g, m).subs(G, g)
    dB_dlam = sp.diff(B_g, lam).subs(G, g)
    return [
        symbolic_check("dB/dm >= 0 at fixed g_min (rational function, all coefficients >= 0 in positive variables)",
                       lambda: nonnegative_rational(dB_dm, list(syms))),
        symbolic_check("dB/dlam >= 0 (so B is increasing in lam and lam_safe is its unique root)",
                       lambda: nonnegative_rational(dB_dlam, list(syms))),
        symbolic_check("B(0+, m) = k1 Delta* = sqrt2 kappa delta1 m Delta* / g_min (the floor below which no step is safe)",
                       lambda: sp.simplify(sp.limit(B_g, lam, 0) - sp.sqrt(2) * kappa * delta1 * m * Dstar / G) == 0),
    ]


def _numeric():
    import sft_tilt.theory

    rng = np.random.default_rng(13)
    n = 100_000
    V = 8
    g = rng.gamma(np.exp(rng.uniform(np.log(0.02), np.log(5), (n, 1))), size=(n, V)) + 1e-300
    q = g / g.sum(-1, keepdims=True)
    y = rng.integers(0, V, n)
    norm = np.linalg.norm(np.eye(V)[y] - q, axis=-1)
    lo, hi = (np.asarray(b) for b in sft_tilt.theory.ce_update_norm_bounds(q[np.arange(n), y]))
    ok_norm = np.all(norm >= lo - 1e-12) and np.all(norm <= hi + 1e-12)
    k = 1000
    m1, m2 = np.sort(rng.uniform(0, 1, (2, k)), 0)
    kw = dict(coupling=rng.uniform(0.1, 3, k), general_misfit=rng.uniform(0, 0.5, k), g_min=rng.uniform(0.05, 1, k))
    eps, ds = rng.uniform(0, 2, k), rng.uniform(0.1, 3, k)
    l1 = np.asarray(sft_tilt.theory.safe_step_size(eps, ds, m1, **kw))
    l2 = np.asarray(sft_tilt.theory.safe_step_size(eps, ds, m2, **kw))
    mono = np.all(l2 <= l1 * (1 + 1e-9))
    hard = 1 - q[np.arange(n), y]
    ratio = norm[hard > 1e-12] / hard[hard > 1e-12]
    return bool(ok_norm and mono), (f"100,000 random q (V={V}): ||e_y - q|| / (1 - p_y) in [{ratio.min():.4f}, "
                                    f"{ratio.max():.4f}] within [1, 1.4142]; lam_safe non-increasing in m on {k} random pairs "
                                    f"(strictly on {np.mean(l2 < l1 * (1 - 1e-6)):.0%})")


@derivation("hard_tokens_safe_step", number=8)
def derive() -> Result:
    p, lam, eps, m = sp.symbols("p_y lambda epsilon m")
    norm = sp.Symbol("||e_y - q||_2")
    lam_safe = sp.Function("lambda_safe")(eps, m)
    return Result(
        name="hard_tokens_safe_step",
        number=8,
        title="Hard tokens drive the update; the safe step size is non-increasing in the hard-token mass",
        statement=(sp.Le(1 - p, norm), sp.Le(norm, sp.sqrt(2) * (1 - p)), sp.Le(sp.Derivative(lam_safe, m), 0)),
        text="||e_y - q||_2 in [1 - p_y, sqrt2 (1 - p_y)] (sqrt2 sharp); with m = sum_i w_i (1 - p_i): rho_max = sqrt2 kappa delta1 m/g_min, "
        "ranges 2 kappa m; lam_safe(eps) = sup{lam: k1 Delta* + k2 lam <= eps} is non-increasing in m, = 0 when eps <= k1 Delta*",
        assumptions=ASSUMPTIONS,
        checks=tuple(norm_checks()) + tuple(monotonicity_checks()) + (numeric_check("float64: norms of e_y - q and monotonicity of sft_tilt.theory.safe_step_size", _numeric),),
    )

"""Result 9 of the theory: TALR weights as the KKT solution of entropy-regularised loss minimisation on the simplex.

    min_{w in simplex} sum_i w_i l_i + tau sum_i w_i log w_i   ==>   w* = softmax(-l / tau)  (w_i ∝ p_i^{1/tau}),
    optimum  -tau log sum_i e^{-l_i/tau};   tau -> inf: uniform;   tau -> 0+: one-hot on argmin l;
    hard-token mass  sum_i w*_i (1 - p_i) <= mean_i (1 - p_i)   (TALR never increases it, so lam_safe can only grow).

Checked symbolically (n = 3): Lagrangian stationarity solved by SymPy, normalisation solved for the
multiplier, the solution equals the softmax; Hessian ``diag(tau / w_i)`` positive (strictly convex, so the KKT
point is the global minimum); the optimal value; both limits (with ``l_1 < l_2 < l_3``); Chebyshev's sum identity
``n sum w_i a_i - (sum w)(sum a) = 1/2 sum_{i,j} (w_i - w_j)(a_i - a_j)`` for n = 2, 3, with ``w`` increasing and
``a = 1 - p`` decreasing in ``p`` (each term <= 0); the n = 2 mass difference in closed form.
Checked numerically: ``sft_tilt.theory.talr_weights`` = NumPy softmax on 1,000 instances; no random simplex point has a
lower objective; the optimal value equals ``sft_tilt.theory.talr_objective_value``; mass never increases on 10,000 batches
(with and without a weight floor, which keeps the weights non-decreasing in ``p``).
"""

from __future__ import annotations

import numpy as np
import sympy as sp
from scipy.special import logsumexp, softmax

from sft_tilt.theory.derivations.registry import Result, derivation, numeric_check, symbolic_check, symbolic_zero

ASSUMPTIONS = (
    "n supervised tokens with losses l_i = -log p_i (finite), temperature tau > 0",
    "weights on the probability simplex, treated as constants for the gradient (stop-gradient)",
    "for the mass comparison: any weights non-decreasing in p (softmax(-l/tau), also after a floor max(w, w_min))",
)


def kkt_checks(claimed_sign=-1):
    """``claimed_sign=+1`` states w = softmax(+l/tau) (false: must fail)."""
    n = 3
    l = sp.symbols("l1:4", real=True)
    tau = sp.Symbol("tau", positive=True)
    w = sp.symbols("w1:4", positive=True)
    nu = sp.Symbol("nu", real=True)
    Lag = sum(wi * li for wi, li in zip(w, l)) + tau * sum(wi * sp.log(wi) for wi in w) + nu * (sum(w) - 1)
    sol = [sp.solve(sp.diff(Lag, wi), wi) for wi in w]
    w_of_nu = [s_[0] for s_ in sol]
    nu_star = sp.solve(sp.Eq(sum(w_of_nu), 1), nu)
    w_star = [sp.simplify(wi.subs(nu, nu_star[0])) for wi in w_of_nu]
    claimed = [sp.exp(claimed_sign * li / tau) / sum(sp.exp(claimed_sign * lj / tau) for lj in l) for li in l]
    value = sum(wi * li for wi, li in zip(w_star, l)) + tau * sum(wi * sp.log(wi) for wi in w_star)
    hess = sp.hessian(Lag, w)
    d2, d3 = sp.symbols("d2 d3", positive=True)
    ordered = {l[1]: l[0] + d2, l[2]: l[0] + d2 + d3}
    return [
        symbolic_check("stationarity dL/dw_i = l_i + tau (log w_i + 1) + nu = 0 has one solution per i", lambda: all(len(s_) == 1 for s_ in sol) and len(nu_star) == 1),
        *[symbolic_zero(f"KKT solution w_{i + 1} equals the claimed closed form", sp.simplify(ws - c)) for i, (ws, c) in enumerate(zip(w_star, claimed))],
        symbolic_check("Hessian of the Lagrangian = diag(tau / w_i), positive definite: strictly convex, the KKT point is the global minimum",
                       lambda: hess == sp.diag(*[tau / wi for wi in w]) and all((tau / wi).is_positive for wi in w)),
        symbolic_zero("optimal value = -tau log sum_i exp(-l_i / tau)",
                      sp.simplify(sp.expand_log(value + tau * sp.log(sum(sp.exp(-li / tau) for li in l)), force=True))),
        symbolic_check("tau -> inf: w_i -> 1/n (uniform weights: plain SFT)",
                       lambda: all(sp.limit(c, tau, sp.oo) == sp.Rational(1, n) for c in w_star)),
        symbolic_check("tau -> 0+: all weight on the smallest loss (l_1 < l_2 < l_3)",
                       lambda: [sp.limit(sp.simplify(c.subs(ordered)), tau, 0, "+") for c in w_star] == [1, 0, 0]),
    ]


def chebyshev_checks():
    checks = []
    for n in (2, 3):
        w = sp.symbols(f"w1:{n + 1}", real=True)
        a = sp.symbols(f"a1:{n + 1}", real=True)
        lhs = n * sum(wi * ai for wi, ai in zip(w, a)) - sum(w) * sum(a)
        rhs = sp.Rational(1, 2) * sum((w[i] - w[j]) * (a[i] - a[j]) for i in range(n) for j in range(n))
        checks.append(symbolic_zero(f"Chebyshev identity, n = {n}: n sum w a - sum w sum a = 1/2 sum_ij (w_i - w_j)(a_i - a_j)", lhs - rhs))
    p, tau = sp.symbols("p tau", positive=True)
    checks.append(symbolic_check("w(p) = p^{1/tau} is increasing in p (derivative p^{1/tau - 1}/tau > 0), a(p) = 1 - p decreasing: every term <= 0",
                                 lambda: sp.simplify(sp.diff(p ** (1 / tau), p) - p ** (1 / tau - 1) / tau) == 0 and (p ** (1 / tau - 1) / tau).is_positive
                                 and sp.diff(1 - p, p) == -1))
    p1, p2, e = sp.symbols("p1 p2 e", positive=True)
    u1, u2 = p1**e, p2**e  # e = 1/tau
    m_talr = (u1 * (1 - p1) + u2 * (1 - p2)) / (u1 + u2)
    m_unif = ((1 - p1) + (1 - p2)) / 2
    closed = (u1 - u2) * (p1 - p2) / (2 * (u1 + u2))
    checks.append(symbolic_zero("n = 2: m_uniform - m_TALR = (p1^e - p2^e)(p1 - p2) / (2 (p1^e + p2^e)) >= 0 (same signs), e = 1/tau",
                                sp.simplify(m_unif - m_talr - closed)))
    return checks


def _numeric():
    import sft_tilt.theory

    rng = np.random.default_rng(14)
    n, k = 1000, 12
    l = rng.exponential(size=(n, k)) * rng.uniform(0.1, 5, (n, 1))
    tau = np.exp(rng.uniform(np.log(0.05), np.log(20), n))
    w = np.asarray(sft_tilt.theory.talr_weights(l, tau))
    ref = softmax(-l / tau[:, None], -1)
    e_w = float(np.max(np.abs(w - ref)))
    obj = lambda v: np.sum(v * l, -1) + tau * np.sum(np.where(v > 0, v * np.log(np.where(v > 0, v, 1)), 0), -1)  # noqa: E731
    best = obj(ref)
    worse = all(np.all(obj(rng.dirichlet(np.ones(k), n)) >= best - 1e-12) for _ in range(20))
    val = -tau * logsumexp(-l / tau[:, None], -1)
    e_v = float(np.max(np.abs(val - np.asarray(sft_tilt.theory.talr_objective_value(l, tau)))))
    e_b = float(np.max(np.abs(val - best)))
    p = rng.beta(0.3, 0.1, (10_000, 32))
    taus = np.exp(rng.uniform(np.log(0.01), np.log(100), 10_000))
    mass_ok = True
    for floor in (None, 0.01):
        wt = np.asarray(sft_tilt.theory.talr_weights(-np.log(np.maximum(p, 1e-300)), taus, floor=floor))
        mass_ok &= bool(np.all(np.sum(wt * (1 - p), -1) <= np.mean(1 - p, -1) + 1e-12))
    ok = e_w < 1e-12 and worse and e_v < 1e-9 and e_b < 1e-9 and mass_ok
    return bool(ok), (f"1000 instances: |sft_tilt.theory.talr_weights - softmax| {e_w:.1e}; 20,000 random simplex points never beat w*; "
                      f"|value - sft_tilt.theory.talr_objective_value| {e_v:.1e}; mass never increased on 10,000 batches (floor none/0.01)")


@derivation("talr_kkt", number=9)
def derive() -> Result:
    tau, n = sp.symbols("tau n", positive=True)
    i = sp.Symbol("i", integer=True)
    l, w, p = sp.IndexedBase("l"), sp.IndexedBase("w"), sp.IndexedBase("p")
    j = sp.Symbol("j", integer=True)
    Z = sp.Sum(sp.exp(-l[j] / tau), (j, 1, n))
    return Result(
        name="talr_kkt",
        number=9,
        title="TALR: KKT closed form softmax(-l/tau), optimum, limits, and no increase of hard-token mass",
        statement=(
            sp.Eq(w[i], sp.exp(-l[i] / tau) / Z),
            sp.Eq(sp.Symbol("min"), -tau * sp.log(Z)),
            sp.Le(sp.Sum(w[i] * (1 - p[i]), (i, 1, n)), sp.Sum(1 - p[i], (i, 1, n)) / n),
        ),
        text="argmin_{w in simplex} sum w_i l_i + tau sum w_i log w_i = softmax(-l/tau) ∝ p^{1/tau}; optimum -tau log sum exp(-l_i/tau); "
        "tau -> inf uniform, tau -> 0+ one-hot on argmin l; sum_i w_i (1 - p_i) <= mean_i (1 - p_i) (Chebyshev): TALR never raises the hard-token mass. At a fixed gain rate g_min the safe step is non-increasing in the mass, but TALR also lowers the gain rate, so no ordering of TALR's and SFT's safe steps follows",
        assumptions=ASSUMPTIONS,
        checks=tuple(kkt_checks()) + tuple(chebyshev_checks()) + (numeric_check("float64: closed form, optimality, value and mass vs theory exports", _numeric),),
    )



"""A symbolic finite distribution and its exponential tilt, shared by the single-step derivations.

``n`` outcomes; ``q_i`` positive symbols with ``q_n = 1 - sum_{i<n} q_i``; tilt direction ``s_i`` real;
step ``lam >= 0``; the tilted model ``q_lam,i = q_i e^{lam s_i} / Z(lam)``, ``Z = sum_i q_i e^{lam s_i}``,
and the cumulant generating function ``K(lam) = log Z(lam)`` of ``s`` under ``q``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.special import log_softmax, logsumexp

__all__ = ["FiniteTilt", "finite_tilt", "normalised", "random_instances", "numpy_cgf"]


@dataclass(frozen=True)
class FiniteTilt:
    n: int
    lam: sp.Symbol
    q: tuple  # probabilities (last one 1 - sum of the others)
    s: tuple
    Z: sp.Expr
    K: sp.Expr
    tilted: tuple

    def mean(self, weights, values=None):
        values = self.s if values is None else values
        return sum(w * v for w, v in zip(weights, values))

    @property
    def mu(self):
        return self.mean(self.q)

    def central_moment(self, k: int, weights=None):
        weights = self.q if weights is None else weights
        m = self.mean(weights)
        return sum(w * (v - m) ** k for w, v in zip(weights, self.s))


def normalised(prefix: str, n: int) -> tuple:
    """``n`` probabilities: ``n-1`` positive symbols and their complement to 1."""
    free = sp.symbols(f"{prefix}1:{n}", positive=True)
    return tuple(free) + (1 - sum(free),)


def finite_tilt(n: int = 3) -> FiniteTilt:
    lam = sp.Symbol("lambda", nonnegative=True)
    q = normalised("q", n)
    s = sp.symbols(f"s1:{n + 1}", real=True)
    Z = sum(qi * sp.exp(lam * si) for qi, si in zip(q, s))
    return FiniteTilt(n=n, lam=lam, q=q, s=tuple(s), Z=Z, K=sp.log(Z), tilted=tuple(qi * sp.exp(lam * si) / Z for qi, si in zip(q, s)))


def random_instances(seed: int, n: int, V: int):
    """Float64 random (P, q, s, lam) with mixed concentrations, including near-degenerate ones."""
    rng = np.random.default_rng(seed)
    conc = np.exp(rng.uniform(np.log(0.05), np.log(5.0), size=(n, 1)))
    P = rng.gamma(conc, size=(n, V)) + 1e-300
    P /= P.sum(-1, keepdims=True)
    q = np.exp(log_softmax(rng.normal(size=(n, V)) * rng.uniform(0.1, 4.0, size=(n, 1)), -1))
    s = rng.normal(size=(n, V)) * rng.uniform(0.1, 3.0, size=(n, 1))
    lam = np.exp(rng.uniform(np.log(1e-3), np.log(5.0), size=n))
    return P, q, s, lam


def numpy_cgf(q, s, lam):
    """``K_q(lam) = log sum_i q_i e^{lam s_i}`` by log-sum-exp (independent of the jax exports)."""
    return logsumexp(np.log(q) + lam[:, None] * s, axis=-1)



"""Experiment 2: adversarial search for the smallest slack of each single-step bound.

For every bound, ``sft_tilt.theory.adversarial_slack_search`` runs Adam over ``(q, s, learning_rate)`` (vmapped restarts) to
minimise the normalised slack ``(bound - actual) / scale`` (upper bounds) or ``(actual - bound) / scale``
(lower bounds), where ``actual`` is the *measured* code-length change
``dL(P) = sft_tilt.theory.code_length_change(P, q, sft_tilt.theory.tilt(q, s, learning_rate))`` and ``scale`` the bound's second-order term.
``bound(P) - dL(P)`` does not depend on ``P`` (both share the first-order term ``learning_rate (E_q s - E_P s)``), so the
search evaluates both at ``P = q`` (first-order term exactly 0): with a general ``P`` the float64 difference
loses the second-order parts under the first-order term's round-off and the search converges to round-off
artefacts (it reported normalised slacks of ``-600`` and ``-1e285`` for Bennett that way). Even at ``P = q`` the
float64 *measured* ``V`` loses its precision where ``V`` is tiny (very peaked ``q``, small ``learning_rate``), which is where
the Bennett bound is tightest; the search's own float64 minimum for Bennett is therefore still a round-off value
(about ``-2.7``), and only the exact re-check below decides
(so the search is not drawn to the trivial ``learning_rate -> 0``). A valid bound has ``min slack >= 0`` (up to round-off);
because the search drives the normalising scale toward ``1e-14`` and below, where the float64 measured ``dL``
carries comparable round-off (the float64 search can report absurd slacks such as ``-1e285`` when the scale
underflows), the worst instance is re-checked exactly: ``bound(P) - dL(P)`` equals the bound's second-order term
minus ``V = log E_q exp(learning_rate (s - E_q s))`` for every ``P``, so the bound is evaluated at ``P = q`` (pure
second-order term, full float64 relative precision) and ``V`` in 60-digit arithmetic (:func:`exact_excess`,
mpmath); ``violated`` is decided on that exact slack;
the regression control ``hoeffding_halved`` (Hoeffding with the constant ``1/8`` replaced by ``1/16``) is not a
bound, and the search must find a negative slack for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import sft_tilt.theory
from sft_tilt.synthetic.experiments._sweep import cached_result, check_preset, run_cells
from sft_tilt.theory import ensure_float64

__all__ = ["AdversarialConfig", "BOUNDS", "measured_change", "run"]

NAME = "adversarial"


def measured_change(P, q, s, learning_rate):
    """``dL(P)`` measured from the tilted distribution (not the closed form)."""
    return sft_tilt.theory.code_length_change(P, q, sft_tilt.theory.tilt(q, s, learning_rate))


def exact_change(P, q, s, learning_rate, digits: int = 60) -> float:
    """``dL(P)`` of the tilt evaluated in ``digits``-digit arithmetic (mpmath) from the float64 instance:
    ``sum_x P(x) (log q(x) - log q_tilted(x))``, ``log q_tilted = log q + learning_rate s - log sum_x q e^{learning_rate s}``.
    Used to re-check the worst instance, whose float64 ``dL`` can carry round-off comparable to a tiny slack."""
    import mpmath

    with mpmath.workdps(digits):
        P = [mpmath.mpf(float(x)) for x in np.ravel(P)]
        q = [mpmath.mpf(float(x)) for x in np.ravel(q)]
        s = [mpmath.mpf(float(x)) for x in np.ravel(s)]
        learning_rate = mpmath.mpf(float(learning_rate))
        zP, zq = mpmath.fsum(P), mpmath.fsum(q)
        P = [x / zP for x in P]
        q = [x / zq for x in q]
        logZ = mpmath.log(mpmath.fsum(qi * mpmath.exp(learning_rate * si) for qi, si in zip(q, s) if qi > 0))
        return float(mpmath.fsum(Pi * (logZ - learning_rate * si) for Pi, qi, si in zip(P, q, s) if Pi > 0))


def exact_excess(q, s, learning_rate, digits: int = 60) -> float:
    """Second-order part ``V = dL(P) - learning_rate (E_q s - E_P s) = log sum_x q(x) exp(learning_rate (s(x) - E_q s))`` in
    ``digits``-digit arithmetic (independent of ``P``)."""
    import mpmath

    with mpmath.workdps(digits):
        q = [mpmath.mpf(float(x)) for x in np.ravel(q)]
        s = [mpmath.mpf(float(x)) for x in np.ravel(s)]
        learning_rate = mpmath.mpf(float(learning_rate))
        zq = mpmath.fsum(q)
        q = [x / zq for x in q]
        mu = mpmath.fsum(qi * si for qi, si in zip(q, s))
        return float(mpmath.log(mpmath.fsum(qi * mpmath.exp(learning_rate * (si - mu)) for qi, si in zip(q, s) if qi > 0)))


def _hoeffding_term(P, q, s, learning_rate):
    a, b = sft_tilt.theory.support_range(q, s)
    return learning_rate**2 * (b - a) ** 2 / 8.0 + 1e-300


def _first(P, q, s, learning_rate):
    return sft_tilt.theory.jensen_lower_bound(P, q, s, learning_rate)


def _hoeffding_halved(P, q, s, learning_rate):
    return _first(P, q, s, learning_rate) + 0.5 * (sft_tilt.theory.hoeffding_upper_bound(P, q, s, learning_rate) - _first(P, q, s, learning_rate))


def _bennett_term(P, q, s, learning_rate):
    # the bound's second-order term, evaluated at P = q (first-order term exactly 0): no cancellation
    return sft_tilt.theory.bennett_upper_bound(q, q, s, learning_rate) + 1e-300


def _jensen_scale(P, q, s, learning_rate):
    return sft_tilt.theory.tilt_excess(q, s, learning_rate) + _hoeffding_term(P, q, s, learning_rate)


# name -> (bound_fn, kind, scale_fn, expected_valid)
BOUNDS = {
    "jensen": (sft_tilt.theory.jensen_lower_bound, "lower", _hoeffding_term, True),
    "hoeffding": (sft_tilt.theory.hoeffding_upper_bound, "upper", _hoeffding_term, True),
    "bennett": (sft_tilt.theory.bennett_upper_bound, "upper", _bennett_term, True),
    "hoeffding_halved": (_hoeffding_halved, "upper", _hoeffding_term, False),
}


@dataclass(frozen=True)
class AdversarialConfig:
    n_outcomes: int = 6
    n_restarts: int = 64
    n_steps: int = 300
    learning_rate_lo: float = 1e-2
    learning_rate_hi: float = 20.0
    tol: float = 1e-9
    seed: int = 0
    bounds: tuple = tuple(BOUNDS)

    def __post_init__(self):
        for name in ("n_outcomes", "n_restarts", "n_steps"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= (2 if name == "n_outcomes" else 1)):
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        if not (0 < self.learning_rate_lo <= self.learning_rate_hi < np.inf):
            raise ValueError(f"learning_rate_lo: need 0 < learning_rate_lo <= learning_rate_hi < inf, got {self.learning_rate_lo!r}, {self.learning_rate_hi!r}")
        unknown = [b for b in self.bounds if b not in BOUNDS]
        if unknown or not self.bounds:
            raise ValueError(f"bounds: unknown or empty {unknown or self.bounds}; choose from {tuple(BOUNDS)}")

    @classmethod
    def preset(cls, name: str) -> "AdversarialConfig":
        check_preset(name)
        if name == "ci":
            return cls(n_restarts=16, n_steps=150)
        if name == "large":
            return cls(n_outcomes=12, n_restarts=512, n_steps=2000)
        return cls()


def _at_model(fn):
    """``fn`` evaluated at ``P = q``: ``bound(P) - dL(P)`` does not depend on ``P`` (the first-order term is common
    to both), and at ``P = q`` that term is exactly 0, so float64 keeps the second-order parts at full relative
    precision instead of losing them under a large first-order term (which misleads the search to round-off)."""

    def at_q(P, q, s, learning_rate):
        return fn(q, q, s, learning_rate)

    return at_q


def _search(config: AdversarialConfig, name: str) -> dict:
    bound_fn, kind, scale_fn, valid = BOUNDS[name]
    res = sft_tilt.theory.adversarial_slack_search(
        _at_model(bound_fn),
        _at_model(measured_change),
        jax.random.fold_in(jax.random.key(config.seed), list(BOUNDS).index(name)),
        config.n_outcomes,
        n_restarts=config.n_restarts,
        n_steps=config.n_steps,
        lam_range=(config.learning_rate_lo, config.learning_rate_hi),  # the theory's name of the tilt parameter
        kind=kind,
        scale_fn=_at_model(scale_fn),
    )
    # Re-check the worst instance exactly. bound(P) - dL(P) = (bound - first order) - V does not depend on P (the
    # first-order term learning_rate (E_q s - E_P s) is common to both), so evaluate the bound at P = q, where its first-order
    # term is exactly 0 and the float64 value is the pure second-order term at full relative precision, and compare
    # with V in 60-digit arithmetic. (At P != q the float64 difference can lose the whole second-order part.)
    P, q, s, learning_rate = (np.asarray(res.P), np.asarray(res.q), np.asarray(res.s), float(res.lam))
    term = float(bound_fn(q, q, s, learning_rate))
    V = exact_excess(q, s, learning_rate)
    sc = float(scale_fn(q, q, s, learning_rate))
    exact_slack = ((term - V) if kind == "upper" else (V - term)) / sc
    return {
        "bound": name,
        "kind": kind,
        "expected_valid": valid,
        "min_slack": float(res.min_slack),
        "min_slack_exact": exact_slack,
        "violated": bool(exact_slack < -config.tol),
        "P": np.asarray(res.P),
        "q": np.asarray(res.q),
        "s": np.asarray(res.s),
        "learning_rate": float(res.lam),
        "restart_slacks": np.asarray(res.restart_slacks),
    }


def run(config: AdversarialConfig | None = None, *, progress: bool = True) -> dict:
    """``{bound name: result dict}`` (min slack, violated flag, the worst instance, per-restart slacks)."""
    config = config or AdversarialConfig.preset("default")
    ensure_float64()

    def compute():
        results = run_cells(NAME, config, list(config.bounds), lambda b: _search(config, b), progress=progress)
        return {r["bound"]: r for r in results}

    return cached_result(NAME, config, compute)

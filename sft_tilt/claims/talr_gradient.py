"""Claim 9: the TALR gradient with stop-gradient weights is sum_i w_i grad l_i; a token whose loss exceeds the
smallest by k tau has relative weight e^-k; weights are floored.

Evidence: the derivation ``talr_kkt`` (the closed form softmax(-l/tau) the relative weights follow from), plus
float64 evidence it does not provide: the autodiff gradient of ``sft_tilt.theory.talr_loss`` against
sum_i w_i (q_i - e_yi) in NumPy, the same without stop-gradient (which must differ), the relative weights at
k = 1 and 3, and the floor.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims.exact_evidence import COMMAND, GROUP, SETTING, cached_evidence, derivation_summary, derivations_verified, \
    describe_derivations
from sft_tilt.claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["GRADIENT_TOLERANCE", "STOP_GRADIENT_EFFECT", "measure", "decide", "describe"]

DERIVATIONS = ("talr_kkt",)
CONFIG = dict(n_batches=100, tokens=16, vocab=7, floor=0.01, seed=19)
# autodiff vs the NumPy closed form agree to float64 rounding (~1e-16); 1e-12 leaves a wide margin.
GRADIENT_TOLERANCE = 1e-12
# without stop-gradient the weights' own derivative adds an O(1) term; above 1e-6 it is not rounding.
STOP_GRADIENT_EFFECT = 1e-6
# the floored weight is compared with floor / (1 + n floor) up to float64 rounding of a sum of ~50 weights.
FLOOR_ROUNDING = 1e-15


def _evidence(cfg: dict) -> dict:
    import jax
    import jax.numpy as jnp
    from scipy.special import softmax

    import sft_tilt.theory

    rng = np.random.default_rng(cfg["seed"])
    grad_err, nosg_diff = 0.0, 0.0
    T, V = cfg["tokens"], cfg["vocab"]
    for _ in range(cfg["n_batches"]):
        z = rng.standard_normal((T, V)) * rng.uniform(0.5, 4)
        y = rng.integers(0, V, T)
        tau = float(rng.uniform(0.2, 3))

        def total(zz):
            return sft_tilt.theory.talr_loss(-jax.nn.log_softmax(zz)[jnp.arange(T), y], tau, floor=cfg["floor"])

        def no_stop(zz):
            losses = -jax.nn.log_softmax(zz)[jnp.arange(T), y]
            w = jnp.maximum(jax.nn.softmax(-losses / tau), cfg["floor"])
            return jnp.sum(w / w.sum() * losses)

        g = np.asarray(jax.grad(total)(jnp.asarray(z)))
        q = softmax(z, axis=-1)
        losses = -np.log(q[np.arange(T), y])
        w = np.maximum(softmax(-losses / tau), cfg["floor"])
        w /= w.sum()
        ref = w[:, None] * (q - np.eye(V)[y])
        grad_err = max(grad_err, float(np.abs(g - ref).max()))
        nosg_diff = max(nosg_diff, float(np.abs(np.asarray(jax.grad(no_stop)(jnp.asarray(z))) - ref).max()))
    tau = 0.7
    k = np.array([0.0, 1.0, 3.0])
    w = np.asarray(sft_tilt.theory.talr_weights(0.3 + k * tau, tau))
    n = 50
    lf = np.concatenate([[0.0], np.full(n - 1, 40.0)])
    wf = np.asarray(sft_tilt.theory.talr_weights(lf, 1.0, floor=cfg["floor"]))
    return dict(grad_err=grad_err, nosg_diff=nosg_diff, rel=(w / w[0]).tolist(), floor_min=float(wf.min()),
                floor_bound=cfg["floor"] / (1 + n * cfg["floor"]), floor_n=n, batches=cfg["n_batches"])


def measure() -> dict:
    from sft_tilt.theory import ensure_float64

    ensure_float64()
    return {"derivations": {n: derivation_summary(n) for n in DERIVATIONS},
            "numeric": cached_evidence(__name__, "claim9", CONFIG, lambda: _evidence(CONFIG))}


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Holds when ``talr_kkt`` is verified, autodiff matches sum_i w_i (q_i - e_yi) to GRADIENT_TOLERANCE, dropping
    the stop-gradient changes it by more than STOP_GRADIENT_EFFECT, the relative weights are e^-1 and e^-3 to
    GRADIENT_TOLERANCE, and the floored weight is >= floor / (1 + n floor) - FLOOR_ROUNDING; fails otherwise.

    ``threshold_scale`` multiplies GRADIENT_TOLERANCE, STOP_GRADIENT_EFFECT and FLOOR_ROUNDING."""
    tol = GRADIENT_TOLERANCE * threshold_scale
    ok, bad = derivations_verified(m["derivations"])
    e = m["numeric"]
    rel = e["rel"]
    failed = [what for what, good in [
        (f"derivation not verified: {', '.join(bad)}", ok),
        (f"autodiff gradient off by {e['grad_err']:.1e}", e["grad_err"] < tol),
        (f"stop-gradient makes no difference ({e['nosg_diff']:.1e})", e["nosg_diff"] > STOP_GRADIENT_EFFECT * threshold_scale),
        (f"relative weights {rel[1]:.6f}, {rel[2]:.6f} are not e^-1, e^-3",
         abs(rel[1] - np.exp(-1)) < tol and abs(rel[2] - np.exp(-3)) < tol),
        (f"floored weight {e['floor_min']:.5f} below {e['floor_bound']:.5f}", e["floor_min"] >= e["floor_bound"] - FLOOR_ROUNDING * threshold_scale),
    ] if not good]
    if failed:
        return "fails", "; ".join(failed) + "."
    return "holds", "gradient, relative weights and floor as stated."


def describe(m: dict) -> str:
    e = m["numeric"]
    rel = e["rel"]
    return (describe_derivations(m["derivations"]) + f" Beyond it: autodiff gradient of sft_tilt.theory.talr_loss (stop-gradient weights, floor "
            f"{CONFIG['floor']}) vs sum_i w_i (q_i - e_yi) in NumPy over {e['batches']} random softmax batches: max error "
            f"{e['grad_err']:.1e}; without stop-gradient the gradient differs by up to {e['nosg_diff']:.2e}. Relative weight of a token "
            f"with loss l_min + k tau: k=1 {rel[1]:.4f} (paper 0.37), k=3 {rel[2]:.4f} (paper 0.05) = e^-k. Floor: with "
            f"{e['floor_n'] - 1} hopeless tokens the smallest weight is {e['floor_min']:.5f} (floor {CONFIG['floor']} applied before "
            f"renormalising; guaranteed >= floor/(1+n floor) = {e['floor_bound']:.5f}).")


@check(9, SETTING, GROUP)
def exact() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    e = m["numeric"]
    ours = (f"relative weights k=1 {e['rel'][1]:.4f}, k=3 {e['rel'][2]:.4f}; autodiff error {e['grad_err']:.1e}; without "
            f"stop-gradient {e['nosg_diff']:.2e}; smallest floored weight {e['floor_min']:.5f} >= {e['floor_bound']:.5f}")
    return Verdict(verdict, describe(m) + " " + reason, COMMAND, ours=ours, seeds=f"{e['batches']} random batches (seed {CONFIG['seed']})",
                   rule=rule_of(decide), sensitivity=sensitivity(decide, m))

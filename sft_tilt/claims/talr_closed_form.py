"""Claim 8 (exact): TALR's weights are softmax(-l/tau), the optimum is -tau logsumexp(-l/tau), with the
uniform (tau -> inf) and one-hot (tau -> 0) limits.

Evidence: the derivation ``talr_kkt`` (KKT solution, convexity, value and limits symbolically; closed form,
optimality against random simplex points and value against the exports in float64), plus what it does not
cover: a constrained numerical minimiser (SciPy SLSQP) against the closed form, and the export
``sft_tilt.theory.talr_weights`` at the extreme temperatures inf, 1e-300 (with tied minimal losses) and 1e8.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims.exact_evidence import COMMAND, GROUP, SETTING, cached_evidence, derivation_summary, derivations_verified, \
    describe_derivations
from sft_tilt.claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["MINIMISER_TOLERANCE", "LIMIT_TOLERANCE", "measure", "decide", "describe"]

DERIVATIONS = ("talr_kkt",)
CONFIG = dict(n_instances=20, n_tokens=6, seed=18)
LOSSES = [2.0, 0.5, 3.0, 0.5]  # two tied minimal losses: tau -> 0 must split the weight between them
# SLSQP stops at ftol 1e-14 in the objective, i.e. ~1e-7 in the weights; 1e-4 separates that from a wrong optimum.
MINIMISER_TOLERANCE = 1e-4
# at tau = 1e8 the weights differ from uniform by O(max l / tau) ~ 1e-8; 1e-7 leaves a 10x margin.
LIMIT_TOLERANCE = 1e-7


def _objective(x, losses, tau):
    x = np.clip(x, 1e-300, None)
    return float((x * losses).sum() + tau * (x * np.log(x)).sum())


def _evidence(cfg: dict) -> dict:
    from scipy.optimize import minimize

    import sft_tilt.theory

    rng = np.random.default_rng(cfg["seed"])
    B, n = cfg["n_instances"], cfg["n_tokens"]
    losses = rng.exponential(1.5, (B, n))
    tau = 10 ** rng.uniform(-1.5, 1.5, B)
    w = np.asarray(sft_tilt.theory.talr_weights(losses, tau))
    slsqp = 0.0
    for i in range(B):
        res = minimize(_objective, np.full(n, 1 / n), args=(losses[i], tau[i]), method="SLSQP", bounds=[(0, 1)] * n,
                       constraints=[{"type": "eq", "fun": lambda x: x.sum() - 1}], options={"ftol": 1e-14, "maxiter": 500})
        slsqp = max(slsqp, float(np.abs(res.x - w[i]).max()))
    l0 = np.array(LOSSES)
    return dict(n_slsqp=B, slsqp=slsqp, uniform=np.asarray(sft_tilt.theory.talr_weights(l0, np.inf)).tolist(),
                onehot=np.asarray(sft_tilt.theory.talr_weights(l0, 1e-300)).tolist(),
                near_inf=float(np.abs(np.asarray(sft_tilt.theory.talr_weights(l0, 1e8)) - 1 / len(l0)).max()))


def measure() -> dict:
    from sft_tilt.theory import ensure_float64

    ensure_float64()
    return {"derivations": {n: derivation_summary(n) for n in DERIVATIONS},
            "numeric": cached_evidence(__name__, "claim8", CONFIG, lambda: _evidence(CONFIG))}


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Holds when ``talr_kkt`` is verified, SLSQP lands within MINIMISER_TOLERANCE of the closed form, tau = inf
    gives exactly uniform weights, tau = 1e-300 exactly splits the weight over the tied minimal losses and
    tau = 1e8 is within LIMIT_TOLERANCE of uniform; fails otherwise.

    ``threshold_scale`` multiplies MINIMISER_TOLERANCE and LIMIT_TOLERANCE; the exact limits have none."""
    ok, bad = derivations_verified(m["derivations"])
    e = m["numeric"]
    n = len(e["uniform"])
    mins = [i for i, v in enumerate(LOSSES) if v == min(LOSSES)]
    onehot = [1 / len(mins) if i in mins else 0.0 for i in range(len(LOSSES))]
    failed = [what for what, good in [
        (f"derivation not verified: {', '.join(bad)}", ok),
        (f"SLSQP minimiser {e['slsqp']:.1e} from the closed form", e["slsqp"] < MINIMISER_TOLERANCE * threshold_scale),
        (f"tau = inf gives {e['uniform']}, not uniform", e["uniform"] == [1 / n] * n),
        (f"tau = 1e-300 gives {e['onehot']}, not {onehot}", e["onehot"] == onehot),
        (f"tau = 1e8 is {e['near_inf']:.1e} from uniform", e["near_inf"] < LIMIT_TOLERANCE * threshold_scale),
    ] if not good]
    if failed:
        return "fails", "; ".join(failed) + "."
    return "holds", "closed form, optimum and limits all confirmed."


def describe(m: dict) -> str:
    e = m["numeric"]
    return (describe_derivations(m["derivations"]) + f" Beyond it: SLSQP minimiser on {e['n_slsqp']} random (losses, tau in [0.03, 30]) "
            f"within {e['slsqp']:.1e} of sft_tilt.theory.talr_weights. Limits of sft_tilt.theory.talr_weights on losses {LOSSES}: tau=inf -> {e['uniform']} "
            f"(uniform), tau=1e-300 -> {e['onehot']} (one-hot on the min loss, ties split), tau=1e8 within {e['near_inf']:.1e} of uniform.")


@check(8, SETTING, GROUP)
def exact() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    e = m["numeric"]
    ours = f"SLSQP within {e['slsqp']:.1e} of the closed form; tau = 1e8 within {e['near_inf']:.1e} of uniform; exact limits at inf, 1e-300"
    return Verdict(verdict, describe(m) + " " + reason, COMMAND, ours=ours, seeds=f"{e['n_slsqp']} random instances (seed {CONFIG['seed']})",
                   rule=rule_of(decide), sensitivity=sensitivity(decide, m))

"""Experiment 1: the exact single-step identities and every single-step bound, on many random instances.

For each random problem ``(q, P1, P2, s, learning_rate)`` (``sft_tilt.synthetic.worlds.random_tilt_instances``) with
``q_tilted = sft_tilt.theory.tilt(q, s, learning_rate)``, ``D = dL(P1) = sft_tilt.theory.code_length_change(P1, q, q_tilted)`` (measured, from the
tilted distribution) and ``G = -dL(P2)``, check against the theory package's closed forms:

* identity ``D = -learning_rate E_P1[s] + K_q(learning_rate)`` (``sft_tilt.theory.single_step_code_length_change``): error ``|D - D_id|``;
* trade-off ``D + G = learning_rate (E_P2 s - E_P1 s)`` (``sft_tilt.theory.tradeoff_sum``);
* bounds ``jensen <= D <= hoeffding``, ``D <= bennett``, the leakage bounds
  ``sft_tilt.theory.degradation_given_gain_bounds(G, rho, learning_rate, b - a)``, and for one-token CE directions
  ``||e_y - q|| in [1 - p_y, sqrt2 (1 - p_y)]`` (``sft_tilt.theory.ce_update_norm_bounds``).

Tightness of the upper bounds is the ratio of their second-order parts to the actual one,
``(bound - first order) / (D - first order) >= 1`` (first order ``learning_rate (E_q s - E_P1 s)`` is shared by all), i.e.
``learning_rate^2 (b-a)^2/8 / V`` for Hoeffding. Slacks are normalised by ``1 + |first order| + V`` and a violation is a
normalised slack below ``-tol`` (round-off tolerance, default ``1e-9``).
Everything runs as one jit + vmap over instances, sharded over devices (``sft_tilt.synthetic.sharding``), in cached chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

import sft_tilt.theory
from sft_tilt.synthetic.experiments._sweep import cached_result, check_preset, run_cells
from sft_tilt.theory import ensure_float64
from sft_tilt.synthetic.sharding import map_sharded
from sft_tilt.synthetic.worlds import random_tilt_instances

__all__ = ["SingleStepConfig", "check_instance", "run"]

NAME = "single_step"


@dataclass(frozen=True)
class SingleStepConfig:
    n_instances: int = 100_000
    vocab: int = 16
    chunk: int = 25_000
    learning_rate_lo: float = 1e-3
    learning_rate_hi: float = 10.0
    tol: float = 1e-9
    seed: int = 0

    def __post_init__(self):
        for name in ("n_instances", "vocab", "chunk"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= (2 if name == "vocab" else 1)):
                raise ValueError(f"{name}: must be a positive integer (vocab >= 2), got {v!r}")
        if not (0 < self.learning_rate_lo < self.learning_rate_hi < np.inf):
            raise ValueError(f"learning_rate_lo: need 0 < learning_rate_lo < learning_rate_hi < inf, got {self.learning_rate_lo!r}, {self.learning_rate_hi!r}")
        if not (self.tol >= 0):
            raise ValueError(f"tol: must be >= 0, got {self.tol!r}")

    @classmethod
    def preset(cls, name: str) -> "SingleStepConfig":
        check_preset(name)
        if name == "ci":
            import os

            n = int(os.environ.get("SIMS_TEST_INSTANCES", "2000"))
            return cls(n_instances=n, chunk=max(n, 1))
        if name == "large":
            return cls(n_instances=1_000_000, vocab=32, chunk=100_000)
        return cls()


def check_instance(q, p1, p2, s, learning_rate, kind):
    """All checks for one instance (vmapped). Returns a dict of scalars."""
    q_tilted = sft_tilt.theory.tilt(q, s, learning_rate)
    D = sft_tilt.theory.code_length_change(p1, q, q_tilted)
    G = -sft_tilt.theory.code_length_change(p2, q, q_tilted)
    first = sft_tilt.theory.jensen_lower_bound(p1, q, s, learning_rate)
    V = sft_tilt.theory.tilt_excess(q, s, learning_rate)
    scale = 1.0 + jnp.abs(first) + V
    d_id = sft_tilt.theory.single_step_code_length_change(p1, q, s, learning_rate)
    hoeff = sft_tilt.theory.hoeffding_upper_bound(p1, q, s, learning_rate)
    benn = sft_tilt.theory.bennett_upper_bound(p1, q, s, learning_rate)
    a, b = sft_tilt.theory.support_range(q, s)
    rho = sft_tilt.theory.leakage(p1, p2, q, s)
    lo, hi = sft_tilt.theory.degradation_given_gain_bounds(G, rho, learning_rate, b - a)
    leak_ok = jnp.isfinite(rho)
    # one-token CE direction: s = e_y - q
    y = jnp.argmax(s + q)
    p_y = q[y]
    n_lo, n_hi = sft_tilt.theory.ce_update_norm_bounds(p_y)
    norm = jnp.linalg.norm(s)
    is_tok = kind == 0
    second = jnp.where(V > 0, V, jnp.nan)
    return {
        "identity_error": jnp.abs(D - d_id) / scale,
        "tradeoff_error": jnp.abs(D + G - sft_tilt.theory.tradeoff_sum(p1, p2, s, learning_rate)) / (1.0 + jnp.abs(D) + jnp.abs(G)),
        "jensen_slack": (D - first) / scale,
        "hoeffding_slack": (hoeff - D) / scale,
        "bennett_slack": (benn - D) / scale,
        "leakage_lower_slack": jnp.where(leak_ok, (D - lo) / (1.0 + jnp.abs(D) + jnp.abs(lo)), jnp.inf),
        "leakage_upper_slack": jnp.where(leak_ok, (hi - D) / (1.0 + jnp.abs(D) + jnp.abs(hi)), jnp.inf),
        "leakage_defined": leak_ok,
        "ce_norm_lower_slack": jnp.where(is_tok, norm - n_lo, jnp.inf),
        "ce_norm_upper_slack": jnp.where(is_tok, n_hi - norm, jnp.inf),
        "hoeffding_tightness": (hoeff - first) / second,
        "bennett_tightness": (benn - first) / second,
        "general_change": D,
        "learning_rate": learning_rate,
        "kind": kind,
    }


def _chunk(config: SingleStepConfig, index: int) -> dict:
    n = min(config.chunk, config.n_instances - index * config.chunk)
    key = jax.random.fold_in(jax.random.key(config.seed), index)
    inst = random_tilt_instances(key, n, config.vocab, (config.learning_rate_lo, config.learning_rate_hi))
    out = map_sharded(check_instance, inst.q, inst.p1, inst.p2, inst.s, inst.learning_rate, inst.kind)
    return {k: np.asarray(v) for k, v in out.items()}


SLACKS = ("jensen_slack", "hoeffding_slack", "bennett_slack", "leakage_lower_slack", "leakage_upper_slack",
          "ce_norm_lower_slack", "ce_norm_upper_slack")


def run(config: SingleStepConfig | None = None, *, progress: bool = True) -> dict:
    """Per-instance arrays plus summaries: ``max_identity_error``, ``max_tradeoff_error``, for each slack
    ``min_<slack>`` and ``violations_<slack>`` (count below ``-tol``), tightness quantiles."""
    config = config or SingleStepConfig.preset("default")
    ensure_float64()

    def compute():
        n_chunks = -(-config.n_instances // config.chunk)
        parts = run_cells(NAME, config, list(range(n_chunks)), lambda i: _chunk(config, i), progress=progress)
        arrays = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        summary = {
            "n_instances": config.n_instances,
            "max_identity_error": float(np.max(arrays["identity_error"])),
            "max_tradeoff_error": float(np.max(arrays["tradeoff_error"])),
            "n_leakage_defined": int(arrays["leakage_defined"].sum()),
            "n_ce_token": int(np.sum(arrays["kind"] == 0)),
        }
        for name in SLACKS:
            vals = arrays[name][np.isfinite(arrays[name])]
            summary[f"min_{name}"] = float(vals.min()) if vals.size else float("nan")
            summary[f"violations_{name}"] = int(np.sum(vals < -config.tol))
        for name in ("hoeffding_tightness", "bennett_tightness"):
            vals = arrays[name][np.isfinite(arrays[name])]
            summary[f"{name}_quantiles"] = np.quantile(vals, [0.0, 0.01, 0.5, 0.99]).tolist()
            summary[f"{name}_n"] = int(vals.size)
        return {"arrays": arrays, "summary": summary}

    return cached_result(NAME, config, compute)

"""Experiment 3: general change at a matched domain gain across step sizes (the paper's Theorem 3.1).

For each required gain ``Delta*`` (``target_gain`` in results and arguments: a fraction of the initial domain loss) and each step size ``learning_rate`` of a
geometric grid, train (SGD, full batch, CE) until the domain gain reaches ``Delta*``
(``sft_tilt.synthetic.training.train_to_gain``) and measure

* ``D_matched``: general change at the exact point of the last update segment where ``G = Delta*``
  (no last-step overshoot): the quantity the shape fits use;
* ``D_T``: general change after the full stopping step ``T`` (the quantity ``sft_tilt.theory.matched_gain_bound`` bounds),
  and the bound itself from constants measured along that trajectory (constant-rate theorem, ``gain_decay = 0``
  with ``g_min``; the decaying-rate variant with ``g_initial`` and the measured ``gain_decay``; and the
  growing-leakage variant, ``rho_t <= rho_0 + gamma Gamma_t``, whose ``Delta*^2`` term does not vanish with ``learning_rate``).

Fits over all cells (least squares, two parameters each)::

    linear shape:     D = k1 Delta* + k2 Delta*   learning_rate
    quadratic shape:  D = k1 Delta* + k2 Delta*^2 learning_rate      (the paper's k1 D* + k2 D*^2 learning_rate)

and, per ``Delta*``, the local slope ``dD/dlam`` from a line through the smallest step sizes; the exponent
``p`` of ``slope ~ Delta*^p`` separates the two shapes (``p = 1`` vs ``p = 2``).

Control (claim 5): the same matched-gain run with a *fixed* tilt direction (``W_{t+1} = W_t + learning_rate U`` with
``U`` the first step's update direction per unit step) must give a ``learning_rate``-independent general change, since tilts
along one direction compose exactly; the CE run's ``learning_rate``-dependence then comes from the state-dependent
direction. The gradient-flow value is estimated by Richardson extrapolation ``2 D(learning_rate_min) - D(2 learning_rate_min)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

import sft_tilt.theory
from sft_tilt.synthetic.experiments._sweep import cached_result, check_preset, run_cells
from sft_tilt.synthetic.sharding import map_sharded
from sft_tilt.synthetic.models import ModelConfig, build_model, init_params
from sft_tilt.synthetic.training import TrainConfig, general_change, domain_code_length, domain_gain, train_to_gain
from sft_tilt.synthetic.worlds import WorldConfig, make_world

__all__ = ["MatchedGainConfig", "run"]

NAME = "matched_gain"


@dataclass(frozen=True)
class MatchedGainConfig:
    world: WorldConfig = field(default_factory=lambda: WorldConfig(n_general=24, n_domain=12, overlap=0.5, seed=0))
    model: ModelConfig = field(default_factory=lambda: ModelConfig("shared", dim=64, coupling=0.3, seed=0))
    learning_rates: tuple = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    target_fractions: tuple = (0.2, 0.35, 0.5, 0.65)
    max_steps: int = 3000
    n_slope: int = 3  # smallest step sizes used for the local slope per Delta*

    def __post_init__(self):
        if not isinstance(self.world, WorldConfig):
            raise ValueError("world: expected a WorldConfig")
        if not isinstance(self.model, ModelConfig):
            raise ValueError("model: expected a ModelConfig")
        learning_rates = np.asarray(self.learning_rates, dtype=float)
        if learning_rates.ndim != 1 or learning_rates.size < 2 or np.any(learning_rates <= 0) or np.any(np.diff(learning_rates) <= 0):
            raise ValueError(f"learning_rates: need >= 2 increasing positive step sizes, got {self.learning_rates!r}")
        fr = np.asarray(self.target_fractions, dtype=float)
        if fr.ndim != 1 or fr.size < 2 or np.any(fr <= 0) or np.any(fr >= 1):
            raise ValueError(f"target_fractions: need >= 2 values in (0, 1), got {self.target_fractions!r}")
        if not (isinstance(self.max_steps, int) and self.max_steps >= 1):
            raise ValueError(f"max_steps: must be a positive integer, got {self.max_steps!r}")
        if not (isinstance(self.n_slope, int) and 2 <= self.n_slope <= learning_rates.size):
            raise ValueError(f"n_slope: must be an integer in [2, len(learning_rates)], got {self.n_slope!r}")

    @classmethod
    def preset(cls, name: str) -> "MatchedGainConfig":
        check_preset(name)
        if name == "ci":
            return cls(
                world=WorldConfig(n_general=8, n_domain=6, overlap=0.5, n_answer_contexts=2, n_sequences=12, cot_length=3),
                model=ModelConfig("shared", dim=24, coupling=0.3),
                learning_rates=(1.0, 2.0, 4.0), target_fractions=(0.2, 0.4), max_steps=600,
            )
        if name == "large":
            return cls(learning_rates=tuple(0.03125 * 2.0 ** np.arange(10)), target_fractions=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7), max_steps=20000)
        return cls()


def _fixed_direction_run(model, world, learning_rate, target, max_steps):
    """Steps ``W += learning_rate U`` (fixed ``U = -grad`` of the CE at ``W0``) to gain ``target``; exact last segment."""
    W0 = init_params(model)
    loss = lambda W: domain_code_length(model, W, world)  # noqa: E731
    U = -jax.grad(loss)(W0)
    gain = lambda W: domain_gain(model, W, world)  # noqa: E731

    def cond(c):
        t, g = c
        return (g < target) & (t < max_steps)

    def body(c):
        t, _ = c
        return t + 1, gain(W0 + (t + 1) * learning_rate * U)

    T, g_T = jax.lax.while_loop(cond, body, (jnp.asarray(0), jnp.asarray(0.0, W0.dtype)))

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        below = gain(W0 + (T - 1 + mid) * learning_rate * U) < target
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    _, hi = jax.lax.fori_loop(0, 60, bisect, (jnp.asarray(0.0, W0.dtype), jnp.asarray(1.0, W0.dtype)))
    W = W0 + (T - 1 + hi) * learning_rate * U
    return {"steps": T, "reached": g_T >= target, "matched_general_change": general_change(model, W, world)}


def _cell(config: MatchedGainConfig, fraction: float) -> dict:
    world = make_world(config.world)
    model = build_model(world, config.model)
    L0 = float(domain_code_length(model, init_params(model), world))
    target = fraction * L0
    learning_rates = jnp.asarray(config.learning_rates, dtype=float)

    def ce(learning_rate):
        return train_to_gain(model, world, TrainConfig(), learning_rate, target, config.max_steps, constants=True)

    def fixed(learning_rate):
        return _fixed_direction_run(model, world, learning_rate, target, config.max_steps)

    out = {k: np.asarray(v) for k, v in map_sharded(ce, learning_rates).items()}
    fx = {f"fixed_{k}": np.asarray(v) for k, v in map_sharded(fixed, learning_rates).items()}
    learning_rates_np = np.asarray(config.learning_rates, dtype=float)
    # the theory's bound with the constants measured along each trajectory
    const = sft_tilt.theory.matched_gain_bound(
        target, learning_rates_np, out["c_rho_max"], out["c_g_min"], out["c_s_range"],
        g_max=out["c_g_max"], s_range_general=out["c_s_range_general"],
    )
    decay = sft_tilt.theory.matched_gain_bound(
        target, learning_rates_np, out["c_rho_max"], out["c_g_initial"], out["c_s_range"],
        g_max=out["c_g_max"], s_range_general=out["c_s_range_general"], gain_decay=out["c_gain_decay"],
    )
    growing = sft_tilt.theory.matched_gain_bound(
        target, learning_rates_np, out["c_rho_initial"], out["c_g_initial"], out["c_s_range"],
        g_max=out["c_g_max"], s_range_general=out["c_s_range_general"], gain_decay=out["c_gain_decay"],
        leakage_growth=out["c_leakage_growth"],
    )
    return {
        **out, **fx,
        "bound_growing_leakage": np.asarray(growing.bound),
        "target_gain": target, "fraction": fraction, "initial_domain_loss": L0, "learning_rates": learning_rates_np,
        "bound_constant_gain_rate": np.asarray(const.bound), "bound_constant_gain_rate_relaxed": np.asarray(const.bound_relaxed),
        "bound_decaying_gain_rate": np.asarray(decay.bound), "k1": np.asarray(const.k1), "k2": np.asarray(const.k2),
    }


def run(config: MatchedGainConfig | None = None, *, progress: bool = True) -> dict:
    """Per-cell arrays stacked over ``Delta*`` (rows) and ``learning_rate`` (columns), the fits and the summaries."""
    config = config or MatchedGainConfig.preset("default")

    def compute():
        cells = run_cells(NAME, config, list(config.target_fractions), lambda f: _cell(config, f), progress=progress)
        keys = [k for k in cells[0] if np.ndim(cells[0][k]) == 1 and k != "learning_rates"]
        res = {k: np.stack([c[k] for c in cells]) for k in keys}
        res["target_gain"] = np.array([c["target_gain"] for c in cells])
        res["learning_rates"] = cells[0]["learning_rates"]
        res["initial_domain_loss"] = cells[0]["initial_domain_loss"]
        D = res["matched_general_change"]
        ok = res["reached"].astype(bool)
        dgrid = np.broadcast_to(res["target_gain"][:, None], D.shape)
        lgrid = np.broadcast_to(res["learning_rates"][None, :], D.shape)
        res["fits"] = sft_tilt.theory.fit_matched_gain_shapes(dgrid[ok], lgrid[ok], D[ok])
        # local slopes through the n_slope smallest learning_rate, per Delta*
        k = config.n_slope
        slopes, intercepts = [], []
        for i in range(D.shape[0]):
            b, a = np.polyfit(res["learning_rates"][:k], D[i, :k], 1)
            slopes.append(b)
            intercepts.append(a)
        res["slopes"], res["intercepts"] = np.array(slopes), np.array(intercepts)
        pos = res["slopes"] > 0
        res["slope_exponent"] = (
            float(np.polyfit(np.log(res["target_gain"][pos]), np.log(res["slopes"][pos]), 1)[0]) if pos.sum() >= 2 else float("nan")
        )
        res["flow_estimate"] = 2 * D[:, 0] - D[:, 1] if res["learning_rates"][1] == 2 * res["learning_rates"][0] else D[:, 0]
        res["bound_holds"] = (res["general_change"] <= res["bound_constant_gain_rate"]) | ~ok
        res["bound_decay_holds"] = (res["general_change"] <= res["bound_decaying_gain_rate"]) | ~ok
        res["bound_growing_holds"] = (res["general_change"] <= res["bound_growing_leakage"]) | ~ok
        return res

    return cached_result(NAME, config, compute)

"""Experiment 4: the largest safe step size versus hard-token mass; chain-of-thought versus label-only.

Worlds share everything (seed, contexts, initial model) except the domain responses: chain-of-thought worlds
(``cot_length`` reasoning tokens, a fraction ``hard_fraction`` of the reasoning contexts hard, then the answer)
for each ``hard_fraction`` of a grid, and one label-only world (the answer token only). For each world and each
step size ``learning_rate`` of a geometric grid, SGD on the CE of the responses runs until the **answer-token** code length
has improved by ``target_gain`` nats (the analogue of the paper's matched domain accuracy; matched on the exact
point of the last segment), and the general change ``D(learning_rate)`` is measured there.

* hard-token mass ``m = sft_tilt.theory.hard_token_mass(p0)`` (``mean (1 - p0)`` over the supervised targets under the
  initial model, uniform weights), and the mean number of hard targets (``p0 <= 0.2``) per response;
* measured ``safe_learning_rate(eps)``: the largest ``learning_rate`` with ``D(learning_rate) <= eps``, by linear interpolation of ``D`` in
  ``log learning_rate`` at the first grid crossing (censored at the grid ends: ``0`` flagged ``below_grid`` when even the
  smallest step exceeds ``eps``, the largest grid value flagged ``above_grid`` when no step does);
* the same with a relative tolerance ``eps_rel = (1 + excess_tolerance) D(learning_rate_min)`` (the step-size-induced
  excess over the small-step general change; on these worlds ``D`` at matched gain depends on ``learning_rate`` only weakly, so
  an absolute ``eps`` mostly decides all-or-nothing);
* the theory's ``sft_tilt.theory.safe_step_size(eps, target_gain_all_tokens, m, coupling, general_misfit, g_min)`` with constants
  measured on the world: ``coupling = max |<f_h, f_i>|`` over contexts ``h`` and domain contexts ``i`` (the
  feature Gram matrix: ``J_h J_i^T = <f_h, f_i> I``), ``general_misfit`` the RMS ``||q - P1||`` over general
  contexts at the matched point of the largest step, ``g_min`` the smallest first-order gain rate along all
  trajectories, ``target_gain_all_tokens`` the all-token gain at the matched point of the smallest step.

Claim 7 predicts ``safe_learning_rate`` non-increasing in ``m`` and larger for label-only than for CoT targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import jax.numpy as jnp
import numpy as np

import sft_tilt.theory
from sft_tilt.synthetic.experiments._sweep import cached_result, check_preset, run_cells
from sft_tilt.synthetic.sharding import map_sharded
from sft_tilt.synthetic.models import ModelConfig, all_log_probs, build_model, init_params
from sft_tilt.synthetic.training import TrainConfig, domain_gain, train_to_gain
from sft_tilt.synthetic.worlds import WorldConfig, make_world
from sft_tilt.theory import HARD_TOKEN_THRESHOLD

__all__ = ["HardTokensConfig", "safe_step_from_curve", "run"]

NAME = "hard_tokens"


@dataclass(frozen=True)
class HardTokensConfig:
    world: WorldConfig = field(
        default_factory=lambda: WorldConfig(n_general=24, n_domain=16, n_answer_contexts=4, overlap=0.5, cot_length=6, seed=1)
    )
    model: ModelConfig = field(default_factory=lambda: ModelConfig("shared", dim=64, coupling=0.3, seed=0))
    hard_fractions: tuple = (0.0, 0.25, 0.5, 0.75, 1.0)
    learning_rates: tuple = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
    target_gain: float = 1.0  # the matched gain Delta*: nats of answer-token code length
    eps: float = 0.02  # tolerated general change (nats/token)
    excess_tolerance: float = 0.05  # relative: D(learning_rate) <= (1 + r) D(learning_rate_min)
    max_steps: int = 4000

    def __post_init__(self):
        if not isinstance(self.world, WorldConfig) or not isinstance(self.model, ModelConfig):
            raise ValueError("world: expected a WorldConfig and model a ModelConfig")
        hf = np.asarray(self.hard_fractions, dtype=float)
        if hf.ndim != 1 or hf.size < 2 or np.any((hf < 0) | (hf > 1)):
            raise ValueError(f"hard_fractions: need >= 2 values in [0, 1], got {self.hard_fractions!r}")
        learning_rates = np.asarray(self.learning_rates, dtype=float)
        if learning_rates.ndim != 1 or learning_rates.size < 2 or np.any(learning_rates <= 0) or np.any(np.diff(learning_rates) <= 0):
            raise ValueError(f"learning_rates: need >= 2 increasing positive values, got {self.learning_rates!r}")
        if not (self.target_gain > 0):
            raise ValueError(f"target_gain: must be > 0, got {self.target_gain!r}")
        if not (self.eps > 0):
            raise ValueError(f"eps: must be > 0, got {self.eps!r}")
        if not (isinstance(self.max_steps, int) and self.max_steps >= 1):
            raise ValueError(f"max_steps: must be a positive integer, got {self.max_steps!r}")
        if not (self.excess_tolerance > 0):
            raise ValueError(f"excess_tolerance: must be > 0, got {self.excess_tolerance!r}")

    @classmethod
    def preset(cls, name: str) -> "HardTokensConfig":
        check_preset(name)
        if name == "ci":
            return cls(
                world=WorldConfig(n_general=8, n_domain=8, n_answer_contexts=2, overlap=0.5, cot_length=3, n_sequences=12, seed=1),
                model=ModelConfig("shared", dim=24, coupling=0.3),
                hard_fractions=(0.0, 1.0), learning_rates=(1.0, 4.0, 16.0), target_gain=0.5, eps=0.01, max_steps=800,
            )
        if name == "large":
            return cls(hard_fractions=tuple(np.linspace(0, 1, 11)), learning_rates=tuple(0.125 * 2.0 ** np.arange(10)), max_steps=20000)
        return cls()

    def worlds(self) -> list[tuple[str, float]]:
        return [("cot", float(h)) for h in self.hard_fractions] + [("label", 0.0)]


def safe_step_from_curve(learning_rates, D, eps) -> tuple[float, str]:
    """Largest ``learning_rate`` with ``D(learning_rate) <= eps`` on a grid (module docstring): ``(value, flag)`` with flag
    ``"interior"`` (linear interpolation of ``D`` in ``log learning_rate`` at the first crossing), ``"below_grid"`` (value
    ``0.0``: even the smallest step exceeds ``eps``) or ``"above_grid"`` (value ``max(learning_rates)``: no step does)."""
    learning_rates, D = np.asarray(learning_rates, dtype=float), np.asarray(D, dtype=float)
    over = np.nonzero(D > eps)[0]
    if over.size == 0:
        return float(learning_rates[-1]), "above_grid"
    i = int(over[0])
    if i == 0:
        return 0.0, "below_grid"
    x0, x1 = np.log(learning_rates[i - 1]), np.log(learning_rates[i])
    t = (eps - D[i - 1]) / (D[i] - D[i - 1])
    return float(np.exp(x0 + t * (x1 - x0))), "interior"


def _cell(config: HardTokensConfig, cell: tuple[str, float]) -> dict:
    fmt, hf = cell
    world = make_world(replace(config.world, response_format=fmt, hard_fraction=hf))
    model = build_model(world, config.model)
    learning_rates = jnp.asarray(config.learning_rates, dtype=float)

    def run_one(learning_rate):
        return train_to_gain(model, world, TrainConfig(), learning_rate, config.target_gain, config.max_steps,
                             constants=True, gain_mask=world.answer)

    out = {k: np.asarray(v) for k, v in map_sharded(run_one, learning_rates).items()}
    W0 = init_params(model)
    on = np.asarray(world.mask) > 0
    p0 = np.exp(np.asarray(all_log_probs(model, W0)))[np.asarray(world.contexts), np.asarray(world.targets)][on]
    mass = float(sft_tilt.theory.hard_token_mass(jnp.asarray(p0)))
    hard_per_response = float(np.sum(p0 <= HARD_TOKEN_THRESHOLD) / world.contexts.shape[0])
    safe_learning_rate, flag = safe_step_from_curve(config.learning_rates, out["matched_general_change"], config.eps)
    eps_rel = (1.0 + config.excess_tolerance) * float(out["matched_general_change"][0])
    safe_learning_rate_rel, flag_rel = safe_step_from_curve(config.learning_rates, out["matched_general_change"], eps_rel)
    # constants for the theory's safe step size
    F = np.asarray(model.features)
    dom = np.unique(np.asarray(world.contexts))
    coupling = float(np.max(np.abs(F @ F[dom].T)))
    gen = np.nonzero(np.asarray(world.general_weights) > 0)[0]
    p1 = np.exp(np.asarray(world.log_p1))[gen]
    gw = np.asarray(world.general_weights)[gen]
    q_last = np.exp(np.asarray(all_log_probs(model, out["matched_params"][-1])))[gen]
    misfit = float(np.sqrt(np.sum(gw / gw.sum() * np.sum((q_last - p1) ** 2, axis=-1))))
    g_min = float(np.min(out["c_g_min"]))
    delta_all = float(domain_gain(model, jnp.asarray(out["matched_params"][0]), world))
    learning_rate_theory = float(sft_tilt.theory.safe_step_size(config.eps, delta_all, mass, coupling=coupling, general_misfit=misfit, g_min=g_min))
    out.pop("matched_params")
    return {
        **out, "format": fmt, "hard_fraction": hf, "hard_token_mass": mass, "hard_per_response": hard_per_response,
        "safe_learning_rate": safe_learning_rate, "safe_learning_rate_flag": flag, "safe_learning_rate_theory": learning_rate_theory,
        "safe_learning_rate_relative": safe_learning_rate_rel, "safe_learning_rate_relative_flag": flag_rel, "eps_relative": eps_rel, "coupling": coupling,
        "general_misfit": misfit, "g_min": g_min, "target_gain_all_tokens": delta_all, "learning_rates": np.asarray(config.learning_rates, dtype=float),
    }


def run(config: HardTokensConfig | None = None, *, progress: bool = True) -> dict:
    """``{"cells": [per-world dicts], "learning_rates": ...}`` (each cell: ``matched_general_change[learning_rate]``, ``safe_learning_rate``, mass...)."""
    config = config or HardTokensConfig.preset("default")

    def compute():
        cells = run_cells(NAME, config, config.worlds(), lambda c: _cell(config, c), progress=progress)
        return {"cells": cells, "learning_rates": np.asarray(config.learning_rates, dtype=float), "eps": config.eps, "target_gain": config.target_gain}

    return cached_result(NAME, config, compute)

"""Experiment 5: SFT, TALR, DFT, FLOW, EAFT, ASFT, SFT-KL and L2 across step sizes, with seed variation.

Each method trains the shared-parameter model on the domain responses with minibatch SGD for ``n_epochs``
epochs at each learning rate of a grid, for several seeds (the seed draws the world, the features and the
minibatches). Recorded per epoch: domain gain ``G`` and general change ``D`` (nats/token,
``sft_tilt.synthetic.training``). Derived:

* the end-of-training point ``(G, D)`` per (method, learning_rate, seed): the Pareto front of each method (mean over seeds
  with a min-max interval);
* the general change at a matched gain ``Delta*`` (linear interpolation of ``D`` against ``G`` between the two
  epochs around the first crossing; NaN when a run never reaches ``Delta*``), and the general change per unit gain
  ``D(Delta*) / Delta*``.

Methods from the registry (:mod:`sft_tilt.methods.registry`) under display names. The weighting methods are compared at
equal effective step: TALR, DFT, FLOW, EAFT and ASFT use weights of mean one over the batch's supervised tokens
(``normalization="mean"``; for TALR the registered ``talr-mean``), so a step moves the model as far as an SFT step
of the same learning rate and only the distribution of the weight over tokens differs. DiSC's unnormalised TALR
(``talr-disc``, raw weights ``max(p^(1/tau), 0.01)`` below one) takes smaller effective steps; it is kept as its
own method, never as "the" TALR of a comparison, because a smaller effective step alone lowers the general change at
matched gain (claim 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import jax
import numpy as np

from sft_tilt.synthetic.experiments._sweep import cached_result, check_preset, run_cells
from sft_tilt.synthetic.sharding import map_sharded
from sft_tilt.synthetic.models import ModelConfig, build_model
from sft_tilt.synthetic.training import TrainConfig, train_epochs
from sft_tilt.methods.registry import MethodConfig
from sft_tilt.analysis.matched_gain import matched_general_change
from sft_tilt.synthetic.worlds import WorldConfig, make_world

__all__ = ["METHOD_CONFIGS", "COMPARED_TALR", "UNNORMALISED_TALR", "MethodsConfig", "run"]

NAME = "methods"

#: display name (the result key) -> registered method with its hyper-parameters
METHOD_CONFIGS = {
    "SFT": MethodConfig("sft"),
    "TALR (mean 1)": MethodConfig("talr-mean", tau_mode="dynamic", floor=0.01),
    "TALR (DiSC, unnormalised)": MethodConfig("talr-disc", tau_mode="dynamic", floor=0.01),
    "DFT (mean 1)": MethodConfig("dft", normalization="mean"),
    "FLOW (mean 1)": MethodConfig("flow", normalization="mean"),
    "EAFT (mean 1)": MethodConfig("eaft", normalization="mean"),
    "ASFT (mean 1)": MethodConfig("asft", normalization="mean"),
    "SFT-KL": MethodConfig("sft-kl"),
    "L2": MethodConfig("l2", mu=1e-2),
}

#: the TALR every comparison uses (equal effective step), and the unnormalised variant reported on its own
COMPARED_TALR = "TALR (mean 1)"
UNNORMALISED_TALR = "TALR (DiSC, unnormalised)"


@dataclass(frozen=True)
class MethodsConfig:
    world: WorldConfig = field(
        default_factory=lambda: WorldConfig(n_general=24, n_domain=16, n_answer_contexts=4, overlap=0.5, cot_length=6,
                                            hard_fraction=0.25, n_sequences=48)
    )
    model: ModelConfig = field(default_factory=lambda: ModelConfig("shared", dim=64, coupling=0.3))
    methods: tuple = tuple(METHOD_CONFIGS)
    learning_rates: tuple = (1.0, 3.0, 10.0, 30.0)
    seeds: tuple = (0, 1, 2, 3, 4)  # >= 5 paired seeds: a 95% t interval of a paired difference needs them
    n_epochs: int = 20
    batch_size: int = 12
    target_gain: float = 0.3  # the matched domain gain Delta* (nats/token)

    def __post_init__(self):
        if not isinstance(self.world, WorldConfig) or not isinstance(self.model, ModelConfig):
            raise ValueError("world: expected a WorldConfig and model a ModelConfig")
        unknown = [m for m in self.methods if m not in METHOD_CONFIGS]
        if unknown or not self.methods:
            raise ValueError(f"methods: unknown or empty {unknown or self.methods}; choose from {tuple(METHOD_CONFIGS)}")
        learning_rates = np.asarray(self.learning_rates, dtype=float)
        if learning_rates.ndim != 1 or learning_rates.size < 1 or np.any(learning_rates <= 0):
            raise ValueError(f"learning_rates: need positive learning rates, got {self.learning_rates!r}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: need distinct seeds, got {self.seeds!r}")
        if not (isinstance(self.n_epochs, int) and self.n_epochs >= 1):
            raise ValueError(f"n_epochs: must be a positive integer, got {self.n_epochs!r}")
        if not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= self.world.n_sequences):
            raise ValueError(f"batch_size: must be an integer in [1, n_sequences], got {self.batch_size!r}")
        if not (self.target_gain > 0):
            raise ValueError(f"target_gain: must be > 0, got {self.target_gain!r}")

    @classmethod
    def preset(cls, name: str) -> "MethodsConfig":
        check_preset(name)
        if name == "ci":
            return cls(
                world=WorldConfig(n_general=8, n_domain=8, n_answer_contexts=2, overlap=0.5, cot_length=3, n_sequences=12),
                model=ModelConfig("shared", dim=24, coupling=0.3),
                methods=("SFT", "TALR (mean 1)"), learning_rates=(1.0, 10.0), seeds=(0, 1), n_epochs=4, batch_size=6,
                target_gain=0.1,
            )
        if name == "large":
            return cls(learning_rates=(0.3, 1.0, 3.0, 10.0, 30.0, 100.0), seeds=tuple(range(8)), n_epochs=40)
        return cls()


_RUNNERS: dict = {}


def _runner(config: MethodsConfig, method: str):
    key = (config, method)
    if key not in _RUNNERS:
        method_config = METHOD_CONFIGS[method]
        steps = config.world.n_sequences // config.batch_size

        def fn(learning_rate, world, model, seed):
            cfg = TrainConfig(optimizer="sgd", batch_size=config.batch_size, method=method_config, seed=0)
            out = train_epochs(model, world, cfg, learning_rate, config.n_epochs, steps, key=jax.random.key(seed))
            return {k: v for k, v in out.items() if k != "token_prob"}

        _RUNNERS[key] = fn
    return _RUNNERS[key]


def _cell(config: MethodsConfig, method: str) -> dict:
    learning_rates, seeds = np.asarray(config.learning_rates, dtype=float), list(config.seeds)
    worlds, models, lr_flat, seed_flat = [], [], [], []
    for s in seeds:
        world = make_world(replace(config.world, seed=s))
        model = build_model(world, replace(config.model, seed=s))
        for learning_rate in learning_rates:
            worlds.append(world)
            models.append(model)
            lr_flat.append(learning_rate)
            seed_flat.append(s)
    stack = lambda xs: jax.tree_util.tree_map(lambda *a: np.stack(a), *xs)  # noqa: E731
    out = map_sharded(_runner(config, method), np.asarray(lr_flat), stack(worlds), stack(models), np.asarray(seed_flat))
    shape = (len(seeds), len(learning_rates))
    res = {k: np.asarray(v).reshape(shape + np.shape(v)[1:]) for k, v in out.items()}
    res["matched_general_change"] = np.array(
        [[matched_general_change(res["domain_gain"][i, j], res["general_change"][i, j], config.target_gain) for j in range(shape[1])] for i in range(shape[0])]
    )
    res["method"] = method
    return res


def run(config: MethodsConfig | None = None, *, progress: bool = True) -> dict:
    """``{method: {gain [seed, learning_rate, epoch], general_change [...], tau, frac_easy, median_prob, matched_general_change
    [seed, learning_rate]}}`` plus ``learning_rates``, ``seeds``, ``target_gain``."""
    config = config or MethodsConfig.preset("default")

    def compute():
        cells = run_cells(NAME, config, list(config.methods), lambda m: _cell(config, m), progress=progress)
        return {"per_method": {c["method"]: c for c in cells}, "learning_rates": np.asarray(config.learning_rates, dtype=float),
                "seeds": np.asarray(config.seeds), "target_gain": config.target_gain}

    return cached_result(NAME, config, compute)

"""Experiment 6: target-token probability statistics over epochs, SFT versus TALR (the paper's Figure 3 analogue).

Minibatch SGD on the domain responses with plain SFT and with TALR (dynamic tau, floor 0.01), several seeds.
At the start and after every epoch, for every supervised target token of the training set: its model probability
``p``; summarised as the fraction with ``p > 0.2`` (the paper's statistic), the median ``p``, a histogram of
``log10 p``, and TALR's dynamic temperature ``tau`` (median over responses of the mean token loss, computed on the
whole training set). Claim 10 predicts ``tau`` decreasing and the fraction with ``p > 0.2`` increasing epoch over
epoch.
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
from sft_tilt.synthetic.worlds import WorldConfig, make_world

__all__ = ["TokenStatsConfig", "METHODS", "run", "HIST_EDGES"]

NAME = "token_stats"
HIST_EDGES = np.linspace(-3.0, 0.0, 31)  # log10 p bins
#: display name (the result key) -> registered method with its hyper-parameters
METHODS = {"SFT": MethodConfig("sft"), "TALR (dynamic tau)": MethodConfig("talr", tau_mode="dynamic", floor=0.01)}


@dataclass(frozen=True)
class TokenStatsConfig:
    world: WorldConfig = field(
        default_factory=lambda: WorldConfig(n_general=24, n_domain=24, n_answer_contexts=6, overlap=0.5, cot_length=10,
                                            hard_fraction=0.2, n_sequences=64)
    )
    model: ModelConfig = field(default_factory=lambda: ModelConfig("shared", dim=64, coupling=0.3))
    learning_rate: float = 10.0
    n_epochs: int = 15
    batch_size: int = 16
    seeds: tuple = (0, 1, 2)

    def __post_init__(self):
        if not isinstance(self.world, WorldConfig) or not isinstance(self.model, ModelConfig):
            raise ValueError("world: expected a WorldConfig and model a ModelConfig")
        if not (self.learning_rate > 0):
            raise ValueError(f"learning_rate: must be > 0, got {self.learning_rate!r}")
        if not (isinstance(self.n_epochs, int) and self.n_epochs >= 1):
            raise ValueError(f"n_epochs: must be a positive integer, got {self.n_epochs!r}")
        if not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= self.world.n_sequences):
            raise ValueError(f"batch_size: must be an integer in [1, n_sequences], got {self.batch_size!r}")
        if len(self.seeds) < 1 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: need distinct seeds, got {self.seeds!r}")

    @classmethod
    def preset(cls, name: str) -> "TokenStatsConfig":
        check_preset(name)
        if name == "ci":
            return cls(
                world=WorldConfig(n_general=8, n_domain=8, n_answer_contexts=2, overlap=0.5, cot_length=4, n_sequences=16),
                model=ModelConfig("shared", dim=24, coupling=0.3), n_epochs=4, batch_size=8, seeds=(0,),
            )
        if name == "large":
            return cls(n_epochs=30, seeds=tuple(range(8)))
        return cls()


_RUNNERS: dict = {}


def _runner(config: TokenStatsConfig, name: str):
    key = (config, name)
    if key not in _RUNNERS:
        steps = config.world.n_sequences // config.batch_size
        cfg = TrainConfig(optimizer="sgd", batch_size=config.batch_size, method=METHODS[name])

        def fn(world, model, seed):
            return train_epochs(model, world, cfg, config.learning_rate, config.n_epochs, steps, key=jax.random.key(seed))

        _RUNNERS[key] = fn
    return _RUNNERS[key]


def _cell(config: TokenStatsConfig, name: str) -> dict:
    worlds = [make_world(replace(config.world, seed=s)) for s in config.seeds]
    models = [build_model(w, replace(config.model, seed=s)) for w, s in zip(worlds, config.seeds)]
    stack = lambda xs: jax.tree_util.tree_map(lambda *a: np.stack(a), *xs)  # noqa: E731
    out = {k: np.asarray(v) for k, v in map_sharded(_runner(config, name), stack(worlds), stack(models), np.asarray(config.seeds)).items()}
    p = out.pop("token_prob")  # [seed, epoch, N, T] (all positions supervised in these worlds)
    logp = np.log10(np.clip(p, 10.0 ** HIST_EDGES[0], 1.0))
    hist = np.stack([[np.histogram(logp[s, e].ravel(), bins=HIST_EDGES)[0] for e in range(p.shape[1])] for s in range(p.shape[0])])
    return {**out, "hist": hist, "name": name}


def run(config: TokenStatsConfig | None = None, *, progress: bool = True) -> dict:
    """``{name: {frac_easy [seed, epoch], median_prob, tau, domain_gain, general_change, hist [seed, epoch, bin]}}``."""
    config = config or TokenStatsConfig.preset("default")

    def compute():
        cells = run_cells(NAME, config, list(METHODS), lambda n: _cell(config, n), progress=progress)
        return {"per_method": {c["name"]: c for c in cells}, "hist_edges": HIST_EDGES}

    return cached_result(NAME, config, compute)

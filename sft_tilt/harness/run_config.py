"""The configuration of one fine-tuning run: everything that determines its results, and so its key.

Its fields enter the run key by name (:func:`sft_tilt.harness.stored_runs.run_key`): renaming one would change the key
of every stored run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from sft_tilt.harness.data_config import DataConfig
from sft_tilt.harness.medcalc import FORMATS
from sft_tilt.harness.optimizers import check_optimizer
from sft_tilt.harness.schedules import SCHEDULES
from sft_tilt.methods.registry import MethodConfig, averaging_bases

__all__ = ["RunConfig", "MAX_SEED", "ENGINES", "check_engine"]

#: The engines a run can be computed by (:mod:`sft_tilt.harness.engines`); the first is the default (and the one the
#: committed runs used).
ENGINES = ("reference", "fast")


def check_engine(engine) -> str:
    """``engine`` if it is one of :data:`ENGINES`, else a ValueError naming the argument."""
    if engine not in ENGINES:
        raise ValueError(f"engine: must be one of {ENGINES}, got {engine!r}")
    return engine

#: The largest seed: ``jax.random.key`` keeps 32 bits of a seed unless 64-bit mode is on (and refuses more than 63
#: bits even then), so a larger seed would give another run's key or fail after the session is built.
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run's results.

    ``method`` is a registered method with its hyper-parameters (:class:`sft_tilt.methods.registry.MethodConfig`);
    ``averaging_alphas`` are the mixing weights ``a`` of post-hoc averaging ``(1 - a) theta_0 + a theta``
    evaluated after training (allowed for an averaging method and the method whose training it reuses).
    ``optimizer`` is one of :data:`sft_tilt.harness.optimizers.OPTIMIZERS`.
    ``engine`` is how the run computes its numbers (:mod:`sft_tilt.harness.engines`: ``"reference"``, the code every
    committed run used, or ``"fast"``, the same numbers to float32 round-off with less work).
    """

    model: str
    data: DataConfig
    fmt: str = "cot"
    method: MethodConfig = field(default_factory=MethodConfig)
    learning_rate: float = 1e-4
    optimizer: str = "adam"
    batch_size: int = 4
    steps: int = 8
    eval_every: int = 4
    seed: int = 0
    tokenizer: str | None = None
    averaging_alphas: tuple[float, ...] = ()
    final_accuracy: bool = True
    averaging_accuracy: bool = False
    checkpoint_state: bool = True
    mesh: tuple[int, int] = (1, 1)
    schedule: str = "constant"
    warmup_steps: int = 0
    monitor_every: int = 0  # measure every N-th step with the step monitor (sft_tilt.harness.step_monitoring); 0: off
    engine: str = "reference"

    def __post_init__(self):
        check_engine(self.engine)
        if self.fmt not in FORMATS:
            raise ValueError(f"fmt: must be one of {FORMATS}, got {self.fmt!r}")
        if not isinstance(self.method, MethodConfig):
            raise ValueError(f"method: expected a sft_tilt.methods.registry.MethodConfig, got {type(self.method).__name__}")
        if not (isinstance(self.learning_rate, (int, float)) and np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate: must be a finite number > 0, got {self.learning_rate!r}")
        check_optimizer(self.optimizer, "optimizer")
        for name in ("batch_size", "steps", "eval_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}: must be a positive int, got {v!r}")
        if self.batch_size > self.data.n_train:
            raise ValueError(f"batch_size: {self.batch_size} exceeds n_train={self.data.n_train}")
        if (not isinstance(self.mesh, tuple) or len(self.mesh) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in self.mesh)):
            raise ValueError(f"mesh: must be (data, model), two positive ints, got {self.mesh!r}")
        if self.batch_size % self.mesh[0]:
            raise ValueError(f"mesh: the data axis ({self.mesh[0]}) must divide batch_size={self.batch_size}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: must be one of {SCHEDULES}, got {self.schedule!r}")
        if (isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int)
                or not 0 <= self.warmup_steps < self.steps):
            raise ValueError(f"warmup_steps: must be an int in [0, steps={self.steps}), got {self.warmup_steps!r}")
        if isinstance(self.monitor_every, bool) or not isinstance(self.monitor_every, int) or self.monitor_every < 0:
            raise ValueError(f"monitor_every: must be an int >= 0 (0: no monitor), got {self.monitor_every!r}")
        if self.monitor_every and self.mesh != (1, 1):
            raise ValueError(f"monitor_every: the step monitor runs on one device, not on the mesh {self.mesh}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed: must be an int in [0, {MAX_SEED}] (2**32 - 1), got {self.seed!r}")
        if any(not 0.0 <= a <= 1.0 for a in self.averaging_alphas):
            raise ValueError(f"averaging_alphas: must lie in [0, 1], got {self.averaging_alphas}")
        if self.averaging_alphas and not (self.method.spec.averaging or self.method.name in averaging_bases()):
            raise ValueError(f"averaging_alphas: model averaging interpolates the run of an averaging method or of "
                             f"{sorted(averaging_bases())}, not {self.method.name!r}")

    @property
    def steps_per_epoch(self) -> int:
        return self.data.n_train // self.batch_size

    @property
    def eval_steps(self) -> list[int]:
        pts = list(range(self.eval_every, self.steps + 1, self.eval_every))
        return pts if pts and pts[-1] == self.steps else pts + [self.steps]

    def label(self) -> str:
        return f"{self.method.name} {self.fmt} learning_rate={self.learning_rate:g} seed={self.seed}"

    def describe(self) -> dict:
        d = asdict(self)
        d["method"] = self.method.canonical()
        d["method_name"] = self.method.name
        if not self.monitor_every:  # off: the description, and so the key, of every run from before the monitor
            d.pop("monitor_every")
        return d

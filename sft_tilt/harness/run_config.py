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

__all__ = ["RunConfig", "WarmStart", "MAX_SEED", "ENGINES", "check_engine"]

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
class WarmStart:
    """A warm-up phase run before a run's own training: the run then starts from the warm model it ends at.

    The warm-up is the harness's own training loop (:func:`sft_tilt.harness.runs.run_one`) on the run's model, data,
    optimiser, batch size, mesh and engine, with ``method`` (full-parameter training only) at ``learning_rate`` for
    ``steps`` optimiser steps under ``schedule`` (``warmup_steps`` of linear rise first), batches drawn with ``seed``,
    targets in format ``fmt``: exactly the run :meth:`run_config` returns, which has a run key and run folder of its
    own. Its final parameters are stored in the user cache, keyed by that run key and checksummed, never in the
    repository: a fresh clone recomputes them.

    Frozen and validated: a bad value raises ``ValueError`` naming the field.
    """

    learning_rate: float
    steps: int
    method: MethodConfig = field(default_factory=MethodConfig)
    schedule: str = "constant"
    warmup_steps: int = 0
    seed: int = 0
    fmt: str = "cot"

    def __post_init__(self):
        if not isinstance(self.method, MethodConfig):
            raise ValueError(f"method: expected a sft_tilt.methods.registry.MethodConfig, got {type(self.method).__name__}")
        spec = self.method.spec
        if spec.trainable != "full" or spec.averaging:
            raise ValueError(f"method: a warm-up trains every parameter; {self.method.name!r} trains "
                             f"{'no parameters of its own' if spec.averaging else 'adapters'}")
        if (isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float))
                or not np.isfinite(self.learning_rate) or self.learning_rate <= 0):
            raise ValueError(f"learning_rate: must be a finite number > 0, got {self.learning_rate!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps: must be a positive int, got {self.steps!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule: must be one of {SCHEDULES}, got {self.schedule!r}")
        if (isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int)
                or not 0 <= self.warmup_steps < self.steps):
            raise ValueError(f"warmup_steps: must be an int in [0, steps={self.steps}), got {self.warmup_steps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed: must be an int in [0, {MAX_SEED}] (2**32 - 1), got {self.seed!r}")
        if self.fmt not in FORMATS:
            raise ValueError(f"fmt: must be one of {FORMATS}, got {self.fmt!r}")

    def describe(self) -> dict:
        """The warm-up's part of the run key (JSON-able)."""
        return {"method": self.method.canonical(), "learning_rate": self.learning_rate, "steps": self.steps,
                "schedule": self.schedule, "warmup_steps": self.warmup_steps, "seed": self.seed, "fmt": self.fmt}

    def run_config(self, run: "RunConfig") -> "RunConfig":
        """The warm-up phase of ``run`` as a run of its own (no warm start, one evaluation at its end, no accuracy
        or model averaging)."""
        return RunConfig(model=run.model, tokenizer=run.tokenizer, data=run.data, fmt=self.fmt, method=self.method,
                         learning_rate=self.learning_rate, optimizer=run.optimizer, batch_size=run.batch_size,
                         steps=self.steps, eval_every=self.steps, seed=self.seed, final_accuracy=False,
                         checkpoint_state=run.checkpoint_state, mesh=run.mesh, schedule=self.schedule,
                         warmup_steps=self.warmup_steps, engine=run.engine)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run's results.

    ``method`` is a registered method with its hyper-parameters (:class:`sft_tilt.methods.registry.MethodConfig`);
    ``averaging_alphas`` are the mixing weights ``a`` of post-hoc averaging ``(1 - a) theta_0 + a theta``
    evaluated after training (allowed for an averaging method and the method whose training it reuses).
    ``optimizer`` is one of :data:`sft_tilt.harness.optimizers.OPTIMIZERS`.
    ``engine`` is how the run computes its numbers (:mod:`sft_tilt.harness.engines`: ``"reference"``, the code every
    committed run used, or ``"fast"``, the same numbers to float32 round-off with less work).
    ``warm_start`` (a :class:`WarmStart`, or None) trains the model file's parameters first; the run then starts
    from that warm model, with a fresh optimiser state, and measures its gains and general changes from it (see
    :mod:`sft_tilt.harness.runs`). None (the default) is left out of the description, so every run without a
    warm start keeps its key.
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
    warm_start: WarmStart | None = None
    # the sets that are costly to score (multiple choice, real MedCalc-Bench notes) at every k-th evaluation point and
    # the last one (the others score the held-out, unseen and general sets); 1 (every point) stays out of the key
    wide_eval_every: int = 1

    def __post_init__(self):
        check_engine(self.engine)
        if (isinstance(self.wide_eval_every, bool) or not isinstance(self.wide_eval_every, int)
                or self.wide_eval_every < 1):
            raise ValueError(f"wide_eval_every: must be a positive int, got {self.wide_eval_every!r}")
        if self.warm_start is not None and not isinstance(self.warm_start, WarmStart):
            raise ValueError(f"warm_start: expected a sft_tilt.harness.run_config.WarmStart or None, got "
                             f"{type(self.warm_start).__name__}")
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

    def wide_evaluation_at(self, step: int) -> bool:
        """Whether the evaluation after ``step`` steps scores the costly sets too: every ``wide_eval_every``-th
        evaluation point, and the last."""
        points = self.eval_steps
        if step not in points:
            raise ValueError(f"step: {step} is not an evaluation step of the run ({points})")
        return step == self.steps or (points.index(step) + 1) % self.wide_eval_every == 0

    def label(self) -> str:
        own = f"{self.method.name} {self.fmt} learning_rate={self.learning_rate:g} seed={self.seed}"
        if self.warm_start is None:
            return own
        ws = self.warm_start
        return f"{own} after {ws.method.name} learning_rate={ws.learning_rate:g} x {ws.steps} steps"

    def describe(self) -> dict:
        d = asdict(self)
        d["data"] = self.data.describe()
        d["method"] = self.method.canonical()
        d["method_name"] = self.method.name
        if not self.monitor_every:  # off: the description, and so the key, of every run from before the monitor
            d.pop("monitor_every")
        if self.wide_eval_every == 1:  # every point: the description, and so the key, of every run from before it
            d.pop("wide_eval_every")
        if self.warm_start is None:  # absent: the description, and so the key, of every run from before warm starts
            d.pop("warm_start")
        else:
            d["warm_start"] = self.warm_start.describe()
        return d

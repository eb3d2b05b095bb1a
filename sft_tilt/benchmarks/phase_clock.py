"""Where a fine-tuning run's wall time goes: a clock that splits ``run_one`` into phases.

:func:`timed_run` computes a run with the harness's own code and attributes every second of its wall time to one of

* ``session``: building the session (loading the model, tokenizer, encoding every set);
* ``base evaluation``: the initial model's evaluation (read from the cache when an earlier process computed it);
* ``training steps``: the compiled optimiser steps, each waited for until its outputs are ready;
* ``evaluation``: the evaluation points (``Session.evaluate``);
* ``generation``: greedy decoding for the answer accuracy (``Session.accuracy``);
* ``checkpoints and records``: writing the checkpoint, the points and the result;
* ``compilation``: tracing, lowering and compiling programs (or reading them from the persistent compilation cache),
  wherever it happens, taken out of the phase it happened in;
* ``other``: the rest of the run (assembling batches, the finite checks of the reference engine, progress).

Compilation is measured by JAX's own compile events (``jax.monitoring``: ``/jax/core/compile/*_duration``), not
guessed from first calls. Phases do not nest: the outermost one owns its time (the base evaluation calls
``Session.evaluate``, and that time stays the base evaluation's). The run's code is not edited: the clock wraps the
functions ``run_one`` calls for the duration of one run and restores them afterwards.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field

__all__ = ["PHASES", "COMPILE_EVENTS", "PhaseTimes", "PhaseClock", "timed_run"]

PHASES = ("session", "base evaluation", "training steps", "evaluation", "generation", "checkpoints and records",
          "compilation", "other")
#: JAX's compile events (tracing, lowering to MLIR, XLA compilation or a persistent-cache read), wall seconds each.
COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                  "/jax/core/compile/backend_compile_duration")


@dataclass
class PhaseTimes:
    """Wall seconds and calls per phase of one run (``other`` = total less every other phase), the process's CPU
    seconds over the run (all threads; below the wall time when the process waited for a CPU) and per phase, there
    with the phase's compilation included (JAX reports compilation in wall time only; ``cpu["compilation"]`` is 0)."""

    wall: dict = field(default_factory=lambda: {p: 0.0 for p in PHASES})
    calls: dict = field(default_factory=lambda: {p: 0 for p in PHASES})
    cpu: dict = field(default_factory=lambda: {p: 0.0 for p in PHASES})
    total_wall: float = 0.0
    total_cpu: float = 0.0

    def share(self, phase: str) -> float:
        return self.wall[phase] / self.total_wall if self.total_wall > 0 else float("nan")

    def as_dict(self) -> dict:
        return {"wall_s": dict(self.wall), "calls": dict(self.calls), "cpu_s": dict(self.cpu),
                "total_wall_s": self.total_wall, "total_cpu_s": self.total_cpu}


class PhaseClock:
    """Accumulates wall time per phase; compile events are moved from the phase they happen in to ``compilation``."""

    def __init__(self):
        self.wall = defaultdict(float)
        self.cpu = defaultdict(float)
        self.calls = defaultdict(int)
        self.compile_in = defaultdict(float)
        self.active: str | None = None

    @contextlib.contextmanager
    def phase(self, name: str):
        if name not in PHASES:
            raise ValueError(f"name: unknown phase {name!r}; known {PHASES}")
        if self.active is not None:  # an inner phase belongs to the outer one
            yield
            return
        self.active, start, start_cpu = name, time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall[name] += time.perf_counter() - start
            self.cpu[name] += time.process_time() - start_cpu
            self.calls[name] += 1
            self.active = None

    def on_event(self, event: str, duration: float, **_):
        if event in COMPILE_EVENTS:
            self.compile_in[self.active or "other"] += duration

    def wrap(self, name: str, fn, wait: bool = False):
        """``fn`` timed as phase ``name``; with ``wait``, the phase ends when its outputs are computed (a compiled
        call returns before its arrays are ready)."""
        import jax

        def timed(*args, **kwargs):
            with self.phase(name):
                out = fn(*args, **kwargs)
                return jax.block_until_ready(out) if wait else out

        if hasattr(fn, "optimizer"):  # a training step carries the optimiser its state is initialised with
            timed.optimizer = fn.optimizer
        return timed

    def times(self, total_wall: float, total_cpu: float) -> PhaseTimes:
        out = PhaseTimes(total_wall=total_wall, total_cpu=total_cpu)
        for name in PHASES:
            out.wall[name] = self.wall[name] - self.compile_in[name]
            out.calls[name] = self.calls[name]
            out.cpu[name] = self.cpu[name]
        out.wall["compilation"] = sum(self.compile_in.values())
        out.wall["other"] = total_wall - sum(v for k, v in out.wall.items() if k != "other")
        out.cpu["other"] = total_cpu - sum(v for k, v in out.cpu.items() if k != "other")
        return out


def timed_run(cfg, *, runs_root, progress: bool = False) -> tuple[dict | list, PhaseTimes]:
    """``run_one(cfg, runs_root=runs_root)`` with its wall time split into :data:`PHASES`; returns the result and the
    times. The session and its base evaluation are timed too when this process has not built them yet."""
    import jax

    from sft_tilt.harness import runs
    from sft_tilt.harness.session import Session

    clock = PhaseClock()
    originals = {"get_session": runs.get_session, "make_train_step": runs.make_train_step,
                 "_save_state": runs._save_state, "_write_points": runs._write_points, "_finish": runs._finish}
    methods = {"base": Session.base, "evaluate": Session.evaluate, "accuracy": Session.accuracy}

    def make_train_step(*args, **kwargs):
        return clock.wrap("training steps", originals["make_train_step"](*args, **kwargs), wait=True)

    runs.get_session = clock.wrap("session", originals["get_session"])
    runs.make_train_step = make_train_step
    for name in ("_save_state", "_write_points", "_finish"):
        setattr(runs, name, clock.wrap("checkpoints and records", originals[name]))
    Session.base = clock.wrap("base evaluation", methods["base"])
    Session.evaluate = clock.wrap("evaluation", methods["evaluate"])
    Session.accuracy = clock.wrap("generation", methods["accuracy"])
    jax.monitoring.register_event_duration_secs_listener(clock.on_event)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    try:
        result = runs.run_one(cfg, progress=progress, runs_root=runs_root)
    finally:
        total_wall, total_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        jax.monitoring.unregister_event_duration_listener(clock.on_event)
        for name, fn in originals.items():
            setattr(runs, name, fn)
        for name, fn in methods.items():
            setattr(Session, name, fn)
    return result, clock.times(total_wall, total_cpu)

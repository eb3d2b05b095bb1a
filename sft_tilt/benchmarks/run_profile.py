"""Profile of one fine-tuning run (a script, not a test): the share of its wall time in each phase.

    python -m sft_tilt.benchmarks.run_profile --preset cpu --steps 20 [--method sft] [--format cot]
        [--learning-rate LR] [--engine reference|fast] [--threads 1] [--docs docs/performance_profile.md]

The run is the preset's first planned run of ``--method`` in ``--format`` (at ``--learning-rate`` when given),
shortened to ``--steps`` optimiser steps (its evaluation interval and warm-up fraction kept), and computed by
``--engine`` (:mod:`sft_tilt.harness.engines`) in a temporary run folder with no committed results in view, so
nothing stored is read or written but the session's caches (the base evaluation, the base model's responses). Like
one sweep worker it runs with ``--threads`` XLA threads (default 1).

Printed (Markdown): the machine (CPU model, cores, load average before and after), the run, and one row per phase of
:mod:`sft_tilt.benchmarks.phase_clock` (start-up: session and base evaluation; training steps; evaluation;
generation; checkpoints and records; compilation; other) with its wall seconds, share of the run's wall time,
calls and CPU seconds (compilation included: JAX reports compilation in wall time only); then the cost per optimiser step and per evaluation point, and those costs scaled to the preset's full run
(its steps and evaluation points, compilation and start-up left out: a sweep worker pays them once for many runs).
The process's CPU time over the run's wall time says whether it had a core to itself (about 1 with one thread on an
idle machine). With ``--docs PAGE`` the same text replaces the page's generated section of that engine (between
:data:`BEGIN_MARKER` and :data:`END_MARKER`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["BEGIN_MARKER", "END_MARKER", "planned_config", "shortened", "profiled_run", "projected_full_run",
           "profile_text", "replace_generated_section",
           "main"]

#: The lines around a page's generated section of one engine's profile (``.format(engine=...)``).
BEGIN_MARKER = "<!-- BEGIN GENERATED: python -m sft_tilt.benchmarks.run_profile --engine {engine} -->"
END_MARKER = "<!-- END GENERATED: python -m sft_tilt.benchmarks.run_profile --engine {engine} -->"


def planned_config(preset, method: str, fmt: str, learning_rate: float | None = None):
    """The preset's first planned run (lowest seed) of ``method`` (the method's own name or the one it trains as) in
    ``fmt``, at ``learning_rate`` when given."""
    from sft_tilt.harness.sweep_plan import planned_runs

    configs = planned_runs(preset)
    matching = [c for c in configs if method in (c.method.name, c.method.trains_as) and c.fmt == fmt
                and (learning_rate is None or c.learning_rate == learning_rate)]
    if not matching:
        known = sorted({(c.method.name, c.fmt, c.learning_rate) for c in configs})
        raise ValueError(f"method: the {preset.name} preset plans no run of {method!r} in {fmt!r}"
                         f"{'' if learning_rate is None else f' at learning rate {learning_rate:g}'}; planned: {known}")
    return min(matching, key=lambda c: c.seed)


def shortened(cfg, steps: int, engine: str, warmup_fraction: float):
    """``cfg`` cut to ``steps`` optimiser steps (its evaluation interval kept, at most ``steps``; the warm-up
    ``round(warmup_fraction * steps)`` steps) and computed by ``engine``."""
    from dataclasses import replace

    from sft_tilt.harness.engines import check_engine

    check_engine(engine)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: must be a positive int, got {steps!r}")
    warmup = min(int(round(warmup_fraction * steps)), steps - 1)
    return replace(cfg, steps=steps, eval_every=min(cfg.eval_every, steps), warmup_steps=warmup, engine=engine)


def profiled_run(cfg, folder: Path):
    """``phase_clock.timed_run`` of ``cfg`` with its run folder under ``folder`` and no committed results in view (a
    committed run of the same key would be read instead of computed)."""
    from sft_tilt.benchmarks.phase_clock import timed_run

    previous = os.environ.get("SFT_RESULTS_DIR")
    os.environ["SFT_RESULTS_DIR"] = str(Path(folder) / "no-results")
    try:
        return timed_run(cfg, runs_root=Path(folder) / "runs")
    finally:
        if previous is None:
            os.environ.pop("SFT_RESULTS_DIR")
        else:
            os.environ["SFT_RESULTS_DIR"] = previous


def projected_full_run(times, cfg, full) -> dict:
    """Wall seconds per phase that the full run ``full`` would take at the costs measured on its shortened run
    ``cfg`` (``times``, :class:`sft_tilt.benchmarks.phase_clock.PhaseTimes`): the cost per step times its steps, per
    evaluation times its evaluations (one per point and one per model-averaging weight), the generation as measured
    (once, at the end, in both), the checkpoints and records per point times its points. Start-up and compilation are
    left out: a sweep worker pays them once for many runs."""
    points, full_points = len(cfg.eval_steps), len(full.eval_steps)
    per_step = times.wall["training steps"] / max(times.calls["training steps"], 1)
    per_eval = times.wall["evaluation"] / max(times.calls["evaluation"], 1)
    return {"training steps": per_step * full.steps,
            "evaluation": per_eval * (times.calls["evaluation"] + full_points - points),
            "generation": times.wall["generation"],
            "checkpoints and records": times.wall["checkpoints and records"] * full_points / max(points, 1)}


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def profile_text(preset, cfg, full, times, *, threads: int, load_before, load_after) -> str:
    """The profile of run ``cfg`` (``full``: the preset's run it shortens) as Markdown (module docstring)."""
    from sft_tilt.benchmarks.phase_clock import PHASES
    from sft_tilt.harness.runs import _machine

    machine = _machine()
    points = len(cfg.eval_steps)
    lines = [f"Run: {preset.name} preset, {cfg.label()}, {cfg.steps} steps of batch {cfg.batch_size}, {points} "
             f"evaluation points, engine `{cfg.engine}`, {threads} XLA thread(s).",
             f"Machine: {machine['processor']}, {machine['logical_cores']} logical cores; 1-minute load average "
             f"{load_before} before, {load_after} after (this process counts about {threads}).",
             f"Wall time {times.total_wall:.1f} s; the process's CPU time {times.total_cpu:.1f} s "
             f"({times.total_cpu / times.total_wall:.2f} cores busy on average).", "",
             "| phase | wall s | share | calls | CPU s, its compilation included |", "|---|---|---|---|---|"]
    for phase in PHASES:
        calls = times.calls[phase] if phase not in ("compilation", "other") else ""
        cpu = f"{times.cpu[phase]:.1f}" if phase != "compilation" else ""
        lines.append(f"| {phase} | {times.wall[phase]:.1f} | {100 * times.share(phase):.1f}% | {calls} | {cpu} |")
    per_step = times.wall["training steps"] / max(times.calls["training steps"], 1)
    per_eval = times.wall["evaluation"] / max(times.calls["evaluation"], 1)
    full_points = len(full.eval_steps)
    lines += ["", f"Per optimiser step {per_step:.2f} s; per evaluation {per_eval:.2f} s (compilation left out).", ""]
    scaled = projected_full_run(times, cfg, full)
    total = sum(scaled.values())
    lines.append(f"Scaled to the preset's full run ({full.steps} steps, {full_points} evaluation points; start-up and "
                 f"compilation left out, generation as measured, checkpoints and records per point): {total:.0f} s")
    lines += ["", "| phase | s | share |", "|---|---|---|"]
    lines += [f"| {k} | {v:.1f} | {100 * v / total:.1f}% |" for k, v in scaled.items()]
    return "\n".join(lines) + "\n"


def replace_generated_section(page: Path, engine: str, text: str) -> None:
    """Put ``text`` between the page's :data:`BEGIN_MARKER` and :data:`END_MARKER` lines of ``engine`` (each exactly
    once, the beginning first); the rest of the page is kept as it is."""
    page = Path(page)
    head, _, tail = _split_at_section(page, engine)
    page.write_text(f"{head}{BEGIN_MARKER.format(engine=engine)}\n{text}{END_MARKER.format(engine=engine)}{tail}")


def _split_at_section(page: Path, engine: str) -> tuple[str, str, str]:
    """``(before, section, after)`` of the page's generated section of ``engine``, markers left out."""
    content = Path(page).read_text()
    begin, end = BEGIN_MARKER.format(engine=engine), END_MARKER.format(engine=engine)
    if content.count(begin) != 1 or content.count(end) != 1 or content.index(begin) > content.index(end):
        raise ValueError(f"page: {page} must hold {begin!r} and then {end!r}, once each")
    head, rest = content.split(begin)
    section, tail = rest.split(end)
    return head, section, tail


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(prog="python -m sft_tilt.benchmarks.run_profile", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--method", default="sft")
    parser.add_argument("--format", dest="fmt", default="cot")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--engine", default="reference")
    parser.add_argument("--threads", type=int, default=1, help="XLA threads, as one sweep worker (default 1)")
    parser.add_argument("--docs", type=Path, default=None, help="write the profile into this page's generated section")
    parser.add_argument("--model", default=None, help="the model file of a preset that takes one (tiny)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.threads < 1:
        parser.error("--steps and --threads must be positive")
    if args.docs is not None:
        try:
            _split_at_section(args.docs, args.engine)
        except (OSError, ValueError) as err:
            parser.error(f"--docs: {err}")

    from sft_tilt.harness.sweep_workers import worker_environment

    if "jax" in sys.modules:
        raise RuntimeError("run_profile.main: JAX is already imported, so its thread count can no longer be set")
    os.environ.update(worker_environment(os.environ, args.threads))
    start = time.perf_counter()
    from sft_tilt.harness.compilation_cache import enable_compilation_cache
    from sft_tilt.harness.presets import get_preset

    imports_s = time.perf_counter() - start
    enable_compilation_cache()
    preset = get_preset(args.preset, args.model)
    full = planned_config(preset, args.method, args.fmt, args.learning_rate)
    cfg = shortened(full, args.steps, args.engine, preset.warmup_fraction)
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="sft-profile-") as tmp:
        _, times = profiled_run(cfg, Path(tmp))
    text = profile_text(preset, cfg, full, times, threads=args.threads, load_before=load_before, load_after=_load())
    text += f"\nImporting the toolkit and JAX took {imports_s:.1f} s before the run (not in the table).\n"
    print(text, flush=True)
    if args.docs is not None:
        replace_generated_section(args.docs, args.engine, text)
        print(f"written into {args.docs}")
    return text


if __name__ == "__main__":
    main()

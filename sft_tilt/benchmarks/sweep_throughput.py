"""Benchmark (a script, not a test): fine-tuning runs per hour, the reference engine against the fast one.

    python -m sft_tilt.benchmarks.sweep_throughput [--preset cpu] [--steps 20] [--methods sft talr-mean]
        [--formats cot label] [--rounds 1] [--threads 1] [--out FILE.json]

A fixed sample of the preset's runs, each of ``--methods`` in each of ``--formats`` at the method's small learning rate,
seed 0 (``sft_tilt.harness.experiments.method_config``), shortened to ``--steps`` optimiser steps with its evaluation
interval kept, is computed by both engines (:mod:`sft_tilt.harness.engines`) in this one process, as one sweep worker
computes its runs: the session and the base evaluation are built once before the timed runs, and compiled programs
are reused from run to run. The runs are interleaved, ``reference, fast`` for the first configuration and ``fast,
reference`` for the next, so that a drift in the machine's speed hits both engines alike; each run is computed from
step 0 in a fresh folder with no committed results in view.

Printed: the CPU model, the core count and the 1-minute load average before and after the sample (and the highest
reading between runs); per run its wall time and its phases (:mod:`sft_tilt.benchmarks.phase_clock`); per engine
the runs per hour of the sample (3600 x runs / their wall time), the same without compilation (which a long sweep pays
once per process), projected to the preset's full runs (each run's cost per step, per evaluation, its generation
and checkpoints scaled to the full run's steps and points), and per hour of the process's CPU time (what the runs
cost when other work shares the machine); and the ratio fast / reference of each. The sample is
marked NOT COMPARABLE when a load reading exceeds the threads this benchmark uses by more than half a core (other work
competed for the CPUs). The evaluation points of the two engines' runs are compared too: the largest difference of a
loss must stay within ``engines.TOLERANCE``. ``--workers 2`` sweeps compute two such streams side by side, so a
sweep's rate is about the workers times one worker's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["OTHER_LOAD_ALLOWANCE", "sample_configs", "loss_difference", "run_sample",
           "report_text", "main"]

#: Load (in cores) that other processes may add before a sample stops being comparable.
OTHER_LOAD_ALLOWANCE = 0.5


def sample_configs(preset, methods, formats, steps: int) -> list[tuple]:
    """``(full, shortened)`` configurations of the sample: each method in each format at its small learning rate,
    seed 0, the shortened one cut to ``steps`` steps (reference engine; the benchmark sets the engine)."""
    from sft_tilt.benchmarks.run_profile import shortened
    from sft_tilt.harness.experiments import method_config

    out = []
    for method in methods:
        for fmt in formats:
            full = method_config(preset, method, preset.learning_rates_of(method)[0], 0, fmt)
            out.append((full, shortened(full, steps, "reference", preset.warmup_fraction)))
    return out


def loss_difference(reference: dict, fast: dict) -> float:
    """The largest absolute difference between two results' losses (nats/token): every point's domain loss and
    general losses, and every training step's loss."""
    worst = 0.0
    for a, b in zip(reference["points"], fast["points"], strict=True):
        if a["step"] != b["step"]:
            raise ValueError(f"fast: its points are at other steps than the reference's ({a['step']} / {b['step']})")
        pairs = [(a.get("domain_loss"), b.get("domain_loss"))]
        pairs += [(a["general"][k], b["general"][k]) for k in a.get("general", {})]
        pairs += [(x["loss"], y["loss"]) for x, y in zip(a["train_steps"], b["train_steps"], strict=True)]
        worst = max([worst] + [abs(x - y) for x, y in pairs if x is not None and y is not None])
    return worst


def _load() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return float("nan")


def run_sample(preset, sample, rounds: int = 1, progress: bool = True) -> dict:
    """Compute every configuration of ``sample`` (:func:`sample_configs`) with both engines, interleaved, ``rounds``
    times; the measurements as a dict (see :func:`report_text`)."""
    from dataclasses import replace

    from sft_tilt.benchmarks.run_profile import profiled_run, projected_full_run
    from sft_tilt.harness.engines import ENGINES
    from sft_tilt.harness.runs import _machine
    from sft_tilt.harness.session import get_session

    first = sample[0][1]
    setup = time.perf_counter()
    get_session(first.model, first.tokenizer, first.data, progress).base()  # once per worker, not timed per run
    setup = time.perf_counter() - setup
    machine = _machine()
    out = {"preset": preset.name, "processor": machine["processor"], "logical_cores": machine["logical_cores"],
           "setup_s": setup, "load_before": _load(), "runs": [], "differences": []}
    loads = [out["load_before"]]
    position = 0
    with tempfile.TemporaryDirectory(prefix="sft-sweep-bench-") as tmp:
        for r in range(rounds):
            for full, cfg in sample:
                order = ENGINES if position % 2 == 0 else ENGINES[::-1]
                position += 1
                results = {}
                for engine in order:
                    run_cfg = replace(cfg, engine=engine)
                    result, times = profiled_run(run_cfg, Path(tmp) / f"{r}-{position}-{engine}")
                    loads.append(_load())
                    results[engine] = result
                    out["runs"].append({"engine": engine, "label": run_cfg.label(), "round": r, "load_after": loads[-1],
                                        "projected_full_s": sum(projected_full_run(times, run_cfg, full).values()),
                                        **times.as_dict()})
                    if progress:
                        print(f"  {engine:9s} {run_cfg.label()}: {times.total_wall:.1f} s (load {loads[-1]})", flush=True)
                out["differences"].append({"label": cfg.label(), "largest": loss_difference(results["reference"],
                                                                                            results["fast"])})
    out["load_after"] = loads[-1]
    out["load_max"] = max(loads)
    return out


def _per_engine(measured: dict) -> dict:
    from sft_tilt.harness.engines import ENGINES

    out = {}
    for engine in ENGINES:
        runs = [r for r in measured["runs"] if r["engine"] == engine]
        wall = sum(r["total_wall_s"] for r in runs)
        compile_s = sum(r["wall_s"]["compilation"] for r in runs)
        projected = sum(r["projected_full_s"] for r in runs)
        cpu = sum(r["total_cpu_s"] for r in runs)
        out[engine] = {"runs": len(runs), "wall_s": wall, "compilation_s": compile_s, "cpu_s": cpu,
                       "per_cpu_hour": 3600 * len(runs) / cpu,
                       "per_hour": 3600 * len(runs) / wall, "per_hour_without_compilation": 3600 * len(runs) / (wall - compile_s),
                       "projected_full_per_hour": 3600 * len(runs) / projected}
    return out


def report_text(measured: dict, threads: int) -> str:
    """The benchmark's report (Markdown): conditions, one row per run, and runs per hour per engine with the ratio."""
    from sft_tilt.harness.engines import TOLERANCE

    engines = _per_engine(measured)
    lines = []
    limit = threads + OTHER_LOAD_ALLOWANCE
    if measured["load_max"] > limit:
        lines.append(f"**NOT COMPARABLE: the 1-minute load average reached {measured['load_max']:.2f} > {threads} "
                     f"thread(s) + {OTHER_LOAD_ALLOWANCE} (other work competed for the CPUs).**\n")
    lines.append(f"CPU: {measured['processor']}, {measured['logical_cores']} logical cores; {threads} XLA thread(s); "
                 f"1-minute load average {measured['load_before']} before, {measured['load_after']} after, at most "
                 f"{measured['load_max']}. Session and base evaluation (once per worker, not in the rates): "
                 f"{measured['setup_s']:.1f} s.\n")
    lines.append("| engine | run | wall s | CPU s | training | evaluation | generation | compilation | "
                 "projected full run s |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in measured["runs"]:
        w = r["wall_s"]
        lines.append(f"| {r['engine']} | {r['label']} | {r['total_wall_s']:.1f} | {r['total_cpu_s']:.1f} | "
                     f"{w['training steps']:.1f} | {w['evaluation']:.1f} | {w['generation']:.1f} | "
                     f"{w['compilation']:.1f} | {r['projected_full_s']:.0f} |")
    lines += ["", "| engine | runs | runs per hour (sample) | without compilation | projected full runs per hour | "
                  "runs per CPU hour (sample) |", "|---|---|---|---|---|---|"]
    for engine, e in engines.items():
        lines.append(f"| {engine} | {e['runs']} | {e['per_hour']:.2f} | {e['per_hour_without_compilation']:.2f} | "
                     f"{e['projected_full_per_hour']:.2f} | {e['per_cpu_hour']:.2f} |")
    ref, fast = engines["reference"], engines["fast"]
    lines.append(f"| fast / reference | | {fast['per_hour'] / ref['per_hour']:.2f}x | "
                 f"{fast['per_hour_without_compilation'] / ref['per_hour_without_compilation']:.2f}x | "
                 f"{fast['projected_full_per_hour'] / ref['projected_full_per_hour']:.2f}x | "
                 f"{fast['per_cpu_hour'] / ref['per_cpu_hour']:.2f}x |")
    worst = max(d["largest"] for d in measured["differences"])
    lines.append(f"\nLargest difference of a loss between the engines' runs: {worst:.1e} nats/token "
                 f"(tolerance {TOLERANCE:.0e}).")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m sft_tilt.benchmarks.sweep_throughput",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--model", default=None, help="the model file of a preset that takes one (tiny)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=["sft", "talr-mean"])
    parser.add_argument("--formats", nargs="+", default=["cot", "label"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="XLA threads, as one sweep worker (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="also write the measurements as JSON")
    args = parser.parse_args(argv)
    if min(args.steps, args.rounds, args.threads) < 1:
        parser.error("--steps, --rounds and --threads must be positive")

    from sft_tilt.harness.sweep_workers import worker_environment

    if "jax" in sys.modules:
        raise RuntimeError("sweep_throughput.main: JAX is already imported, so its thread count can no longer be set")
    os.environ.update(worker_environment(os.environ, args.threads))
    from sft_tilt.harness.compilation_cache import enable_compilation_cache
    from sft_tilt.harness.presets import get_preset

    enable_compilation_cache()
    preset = get_preset(args.preset, args.model)
    sample = sample_configs(preset, args.methods, args.formats, args.steps)
    print(f"sweep_throughput: {len(sample)} configurations x 2 engines x {args.rounds} round(s), {args.steps} steps each",
          flush=True)
    measured = run_sample(preset, sample, args.rounds)
    measured.update(threads=args.threads, steps=args.steps, argv=list(sys.argv[1:] if argv is None else argv))
    print(report_text(measured, args.threads), flush=True)
    if args.out is not None:
        args.out.write_text(json.dumps(measured, indent=1))
    return measured


if __name__ == "__main__":
    main()

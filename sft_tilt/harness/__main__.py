"""Command line of the real-LM harness.

    python -m sft_tilt.harness run    --preset default --method talr --learning-rate 2.5e-4 --fmt cot --seed 0
    python -m sft_tilt.harness sweep  --preset default [--experiment lr|methods|tokens|single-step|base|early|all]
                                  [--cheapest-first] [--method NAME ...]
                                  [--workers N]
    python -m sft_tilt.harness report --preset default [--out report.md]
    python -m sft_tilt.harness plan   --model DIR|NAME --devices N --batch B --seq T [--device-memory 80GB]
    python -m sft_tilt.harness export --preset cpu [--results-dir DIR] [--prune]
    python -m sft_tilt.harness summary --preset cpu [--out summary.md]

``--mesh DATAxMODEL`` (run, sweep, report; default 1x1: one device, as before) runs every train step on
``DATA x MODEL`` devices: the batch split over DATA, parameters, gradients and Adam state sharded over MODEL
(:mod:`sft_tilt.lm.sharding`); a sharded run has its own run key. Several hosts: set ``JAX_COORDINATOR_ADDRESS``,
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` (or launch under Slurm / Open MPI) and start the same command on
every host; ``jax.distributed`` is initialised from them before any device is touched.

``--method`` is any registered method (:mod:`sft_tilt.methods.registry`); ``--lr`` is a short alias of
``--learning-rate``. ``--model PATH`` selects the model file (GGUF) or checkpoint folder (Hugging Face) for the ``tiny``
preset (``paper`` reads ``$SFT_PAPER_MODEL``). ``--domain-data FILE`` replaces the generated MedCalc-Bench problems
with a file's (a MedCalc-Bench CSV or a JSONL of prompt/response[/answer/lower/upper]); ``--general-data FILE``
(JSONL of text, or of prompt/response) adds the general set "data" (:mod:`sft_tilt.harness.data_files`). Finished runs are read from their run folders
(``$SFT_RUNS_DIR`` or ``runs/`` in the cache folder), or from the committed results when a run's key matches; an
interrupted sweep resumes where it stopped. ``--workers N`` computes a sweep's runs in N processes, each pinned to
its own CPUs (:mod:`sft_tilt.harness.sweep_workers`: on two cores, two one-thread workers finish more runs per hour than
one two-thread process). ``export`` copies every finished planned run of a preset to
``results/<preset>/<key>/`` with an ``index.json`` and a ``MANIFEST.json`` of every committed file's SHA-256
(:mod:`sft_tilt.harness.results_export`, :mod:`sft_tilt.harness.manifest`), ready to commit.
``--results-dir DIR`` names the folder of committed results (default: ``$SFT_RESULTS_DIR``, else ``results/`` in
the checkout, else in the user's data folder; :func:`sft_tilt.store.results_dir`); summaries, reports and sweeps
say which folder they read.

Every subcommand checks what it is given before any work starts: numbers against their ranges, the model path,
data files row by row, and (for a run to compute) that the run and cache folders can be written; a model or data
file found unusable when loaded is a usage error too, before any run folder is made.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")  # like `python -m sft_tilt.figures`: float64 available; the LM sets float32 itself

from sft_tilt.harness.compilation_cache import enable_compilation_cache  # noqa: E402


def positive_finite_float(text: str) -> float:
    """argparse type: a finite number > 0 that float32 holds as a normal number (the learning rate: the optimiser
    keeps it in float32, where a smaller one would be rounded towards zero and a larger one become infinite)."""
    import numpy as np

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    low, high = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"must lie in float32's normal range [{low:.4g}, {high:.4g}] (the optimiser "
                                         f"holds it in float32), got {text}")
    return value


def _integer(text: str, low: int, high: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    if value > high:
        raise argparse.ArgumentTypeError(f"must be <= {high} ({what}), got {value}")
    return value


#: The most optimiser steps: optax counts Adam's steps in an int32.
MAX_STEPS = 2**31 - 1
#: The most devices or processes an option may name (the memory plan enumerates every mesh of N devices).
MAX_DEVICES = 2**20


def non_negative_int(text: str) -> int:
    """argparse type: an integer in ``[0, 2**20]`` (a worker's index)."""
    return _integer(text, 0, MAX_DEVICES, "at most 2**20")


def positive_int(text: str) -> int:
    """argparse type: an integer in ``[1, 2**20]`` (devices, workers)."""
    return _integer(text, 1, MAX_DEVICES, "at most 2**20")


def seed(text: str) -> int:
    """argparse type: a seed, an integer in ``[0, 2**32 - 1]`` (:data:`sft_tilt.harness.runs.MAX_SEED`)."""
    from sft_tilt.harness.runs import MAX_SEED

    return _integer(text, 0, MAX_SEED, "jax.random.key keeps 32 bits of a seed")


def step_count(text: str) -> int:
    """argparse type: a number of optimiser steps, an integer in ``[1, 2**31 - 1]``."""
    return _integer(text, 1, MAX_STEPS, "optax counts Adam's steps in an int32")


def size(text: str) -> int:
    """argparse type: a batch size or sequence length, an integer >= 1 (the memory plan's arithmetic is exact)."""
    return _integer(text, 1, 2**63 - 1, "at most 2**63 - 1")


def mesh_shape(text: str) -> tuple[int, int]:
    """argparse type: ``DATAxMODEL``, two positive integers (``2x4``)."""
    from sft_tilt.lm.sharding import parse_mesh

    try:
        return parse_mesh(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("mesh: ")) from None


def writable_file(text: str) -> Path:
    """argparse type: a file path whose folder exists and can be written (checked before any work starts)."""
    path = Path(text)
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"folder {folder} is not writable")
    return path


_NUMBER_OPTIONS = ("--learning-rate", "--lr")


def _attach_negative_numbers(argv: list[str]) -> list[str]:
    """``--lr -1e-3`` -> ``--lr=-1e-3``: argparse reads a token such as ``-1e-3`` as an option name and would
    answer "expected one argument"; attached, the value reaches the type check and gets a clear error."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in _NUMBER_OPTIONS and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            try:
                float(argv[i + 1])
            except ValueError:
                pass
            else:
                out.append(f"{token}={argv[i + 1]}")
                i += 2
                continue
        out.append(token)
        i += 1
    return out


def _add_plan_parser(sub) -> None:
    help_ = "print the bytes per device of a train step on each mesh of N devices (sft_tilt.lm.memory_plan)"
    p = sub.add_parser("plan", help=help_, description=help_)
    p.add_argument("--model", required=True,
                   help="a folder with a Hugging Face config.json, or a published model's name: "
                        "Qwen2.5-3B-Instruct, Qwen3-4B, gemma-3-4b-it")
    p.add_argument("--devices", type=positive_int, required=True, help="number of devices N")
    p.add_argument("--batch", type=size, required=True, help="global batch size (sequences per step)")
    p.add_argument("--seq", type=size, required=True, help="tokens per sequence")
    p.add_argument("--mesh", type=mesh_shape, default=None, metavar="DATAxMODEL",
                   help="only this mesh (DATA x MODEL must equal --devices)")
    p.add_argument("--device-memory", default=None, metavar="SIZE",
                   help="memory of one device (e.g. 80GB, 141GiB): also print the smallest mesh that fits")
    p.set_defaults(func=_plan)


def _plan(args, parser) -> int:
    from sft_tilt.lm.memory_plan import format_bytes, load_model_config, parse_bytes, plan_memory, smallest_mesh

    if args.mesh is not None and args.mesh[0] * args.mesh[1] != args.devices:
        parser.error(f"--devices: {args.devices} is not the mesh's {args.mesh[0]}x{args.mesh[1]} = "
                     f"{args.mesh[0] * args.mesh[1]} devices")
    try:
        memory = None if args.device_memory is None else parse_bytes(args.device_memory)
    except ValueError as exc:
        parser.error(f"--device-memory: {str(exc).removeprefix('device_memory: ')}")
    try:
        config = load_model_config(args.model)
    except ValueError as exc:
        parser.error(f"--model: {exc}")
    meshes = [args.mesh] if args.mesh else [(d, args.devices // d) for d in range(args.devices, 0, -1)
                                            if args.devices % d == 0 and args.batch % d == 0]
    if not meshes or args.batch % meshes[0][0]:
        parser.error(f"--batch: {args.batch} is not divisible by the data axis of "
                     f"{'the mesh' if args.mesh else 'any mesh of the devices'}")
    try:
        plans = [plan_memory(config, d, m, args.batch, args.seq) for d, m in meshes]
    except ValueError as exc:
        parser.error(f"--{exc}")
    print(f"{args.model}: {config.n_params() / 1e9:.3f}B parameters, batch {args.batch} x {args.seq} tokens, float32, "
          f"Adam; bytes per device")
    cols = ("mesh", "parameters", "gradients", "Adam moments", "gathered", "activations", "act. no remat",
            "total", "total no remat")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for p in plans:
        vals = (p.parameters, p.gradients, p.optimizer, p.gathered, p.activations_remat, p.activations_no_remat,
                p.total, p.total_no_remat)
        print(f"| {p.data}x{p.model} | " + " | ".join(format_bytes(v) for v in vals) + " |")
    base = 4 * config.n_params()
    print(f"the harness also keeps the base model ({format_bytes(base)}, float32) on its first device for evaluation"
          " and model averaging; on a mesh, evaluation gathers the trained weights there too (another "
          f"{format_bytes(base)}, while the step's gradients and activations are free)")
    if memory is not None:
        best = smallest_mesh(config, args.batch, args.seq, memory, reserve=base)
        if best is None:
            print(f"no mesh of up to 4096 devices fits {format_bytes(memory)} per device")
        else:
            print(f"smallest mesh that fits {format_bytes(memory)} per device with the base model on the first: "
                  f"{best.data}x{best.model} ({best.devices} devices, {format_bytes(best.total)} per device "
                  f"+ {format_bytes(base)} on the first)")
    return 0


_HELPS = {"run": "fine-tune once and print the run's domain gain and general change",
          "sweep": "run an experiment's grid of runs (finished runs are read, not recomputed)",
          "report": "print (and with --out write) the Markdown report of every experiment",
          "export": "copy every finished planned run of the preset to results/<preset>/ for committing",
          "summary": "tabulate the preset's finished runs (run folders and results/) without computing anything"}


def _add_preset_options(p) -> None:
    """The options every subcommand but ``plan`` shares: the preset, its model and data, the mesh, progress bars."""
    from sft_tilt.harness.presets import PRESETS, presets_taking_a_model

    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="experiment size (default: default)")
    p.add_argument("--model", default=None,
                   help=f"model file (GGUF) or Hugging Face folder; only for the presets {sorted(presets_taking_a_model())}")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--domain-data", default=None, metavar="FILE",
                   help="domain problems from FILE instead of the generated ones: a MedCalc-Bench CSV or a JSONL "
                        "with prompt, response and optionally answer, lower, upper")
    p.add_argument("--general-data", default=None, metavar="FILE",
                   help="an extra general set 'data' from a JSONL with text, or with prompt and response")
    p.add_argument("--mesh", type=mesh_shape, default=(1, 1), metavar="DATAxMODEL",
                   help="devices of the train step: batch over DATA, parameters/gradients/Adam state sharded "
                        "over MODEL (default: 1x1, one device)")
    p.add_argument("--results-dir", type=Path, default=None, metavar="DIR",
                   help="folder of committed results (default: $SFT_RESULTS_DIR, else results/ in the checkout, "
                        "else results/ in the user's data folder); sets $SFT_RESULTS_DIR")


def _add_run_parser(sub) -> None:
    from sft_tilt.methods.registry import method_names

    p = sub.add_parser("run", help=_HELPS["run"], description=_HELPS["run"])
    _add_preset_options(p)
    p.add_argument("--method", default="sft", choices=method_names(),
                   help="a registered fine-tuning method (sft_tilt.methods.registry; default: sft)")
    p.add_argument("--learning-rate", "--lr", dest="learning_rate", type=positive_finite_float, required=True,
                   help="optimiser learning rate, a finite number > 0")
    p.add_argument("--fmt", default="cot", choices=("cot", "label"),
                   help="target format: chain-of-thought explanation or label only (default: cot)")
    p.add_argument("--seed", type=seed, default=0,
                   help="seed of the batch order and adapters, an integer in [0, 2**32 - 1] (default: 0)")
    p.add_argument("--steps", type=step_count, default=None, help="optimiser steps (default: the preset's)")
    p.set_defaults(func=_run_command)


def _add_sweep_parser(sub) -> None:
    p = sub.add_parser("sweep", help=_HELPS["sweep"], description=_HELPS["sweep"])
    _add_preset_options(p)
    p.add_argument("--experiment", default="all",
                   choices=("lr", "methods", "tokens", "single-step", "base", "early", "all"),
                   help="which experiment's runs (default: all); early: the first steps of the learning-rate "
                        "grid's runs evaluated at every step (the preset's early_until; sft_tilt.harness.early_points); "
                        "base: only what is measured on the base model (target-token statistics, the "
                        "single-step theory and one step of SFT and TALR under each optimiser; "
                        "sft_tilt.harness.base_model_analyses, sft_tilt.harness.optimizer_step), no run")
    p.add_argument("--cheapest-first", action="store_true",
                   help="first compute the experiment's planned runs in order of their planned cost (label-only "
                        "SFT first), so a sweep stopped early leaves the most finished runs to commit")
    p.add_argument("--method", action="append", default=None, metavar="NAME", dest="only_methods",
                   help="only the runs of this method (repeatable; in the order given, so a sweep can finish the "
                        "runs one claim reads first); the experiment's tables are then not assembled")
    p.add_argument("--workers", type=positive_int, default=1,
                   help="compute the planned runs in N processes, each pinned to its own CPUs and claiming "
                        "runs one at a time (sft_tilt.harness.sweep_workers; default: 1, this process)")
    p.add_argument("--worker-index", type=non_negative_int, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_sweep_command)


def _add_report_parser(sub) -> None:
    p = sub.add_parser("report", help=_HELPS["report"], description=_HELPS["report"])
    _add_preset_options(p)
    p.add_argument("--out", type=writable_file, default=None, help="also write the report to this file")
    p.set_defaults(func=_report_command)


def _add_export_parser(sub) -> None:
    p = sub.add_parser("export", help=_HELPS["export"], description=_HELPS["export"])
    _add_preset_options(p)
    p.add_argument("--prune", action="store_true",
                   help="delete the committed runs of this preset that no planned run of the current code is "
                        "(stale keys: the code, the model or the preset changed since)")
    p.set_defaults(func=_export_command)


def _add_summary_parser(sub) -> None:
    p = sub.add_parser("summary", help=_HELPS["summary"], description=_HELPS["summary"])
    _add_preset_options(p)
    p.add_argument("--out", type=writable_file, default=None, help="also write the summary to this file")
    p.set_defaults(func=_summary_command)


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subparser per subcommand, each with ``func``, the function that carries it out."""
    parser = argparse.ArgumentParser(prog="python -m sft_tilt.harness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_plan_parser(sub)
    for add in (_add_run_parser, _add_sweep_parser, _add_report_parser, _add_export_parser, _add_summary_parser):
        add(sub)
    return parser


def _prepared_preset(args, parser):
    """The preset of ``args`` with its model, data files and mesh, every one checked first (usage errors)."""
    from dataclasses import replace

    from sft_tilt.harness.presets import get_preset, presets_taking_a_model

    if args.model is not None and args.preset not in presets_taking_a_model():
        parser.error(f"--model: the {args.preset!r} preset does not take a model (only {sorted(presets_taking_a_model())});"
                     " the paper preset reads $SFT_PAPER_MODEL")

    if getattr(args, "workers", 1) > 1 and args.worker_index is None:
        from sft_tilt.harness.sweep_workers import cpu_groups

        if args.mesh != (1, 1):
            parser.error("--workers: each worker runs on one device; it cannot be combined with --mesh")
        try:
            cpu_groups(args.workers)
        except ValueError as err:
            parser.error(f"--workers: {err}")

    from sft_tilt.harness.data_files import DataFile, read_domain_file, read_general_file, split_examples

    files, rows = {}, {}
    for option, name, read in (("--domain-data", "domain_data", read_domain_file), ("--general-data", "general_data", read_general_file)):
        path = getattr(args, name)
        if path is not None:
            try:  # every malformed row is a usage error before any work starts
                files[name] = DataFile.from_path(path, name)
                rows[name] = read(files[name], name)
            except ValueError as err:
                parser.error(f"{option}: {err}")

    if args.mesh != (1, 1):  # before anything touches a device
        import jax

        from sft_tilt.lm.sharding import initialize_distributed

        initialize_distributed()
        if args.mesh[0] * args.mesh[1] != jax.device_count():
            parser.error(f"--mesh: {args.mesh[0]}x{args.mesh[1]} needs {args.mesh[0] * args.mesh[1]} devices, "
                         f"there are {jax.device_count()}")
    enable_compilation_cache()
    preset = replace(get_preset(args.preset, args.model), mesh=args.mesh)
    model_option = "--model" if args.model is not None else "--preset"
    from sft_tilt.lm.gguf_io import DefaultModelMissing

    try:
        model = preset.resolved_model()
    except DefaultModelMissing:  # main() prints its one line: the command that installs the model
        raise
    except FileNotFoundError as err:  # $SFT_MODEL_PATH names nothing
        parser.error(f"{model_option}: {err}")
    why = _model_problem(model)
    if why is not None:
        parser.error(f"{model_option}: {why}")
    if preset.batch_size % args.mesh[0]:
        parser.error(f"--mesh: the data axis ({args.mesh[0]}) must divide the preset's batch size {preset.batch_size}")
    if files:
        calculators = None if "domain_data" in files else preset.data.calculators
        preset = replace(preset, data=replace(preset.data, calculators=calculators, **files))
    if "domain_data" in rows:  # enough rows for the preset's splits
        try:
            split_examples(rows["domain_data"], preset.data.n_train, preset.data.n_heldout, preset.data.data_seed)
        except ValueError as err:
            parser.error(f"--domain-data: {files['domain_data'].path}: {err}")
    return preset


def _model_problem(model: str) -> str | None:
    """Why ``model`` is not a model file or checkpoint folder at first sight (it is fully checked when loaded), or
    None: missing, a folder without ``config.json``, or a file that does not start with GGUF's magic bytes."""
    path = Path(model)
    if not path.exists():
        return f"{model} does not exist"
    if path.is_dir():
        if not (path / "config.json").is_file():
            return (f"{model} is a folder without config.json (a Hugging Face checkpoint folder has one; a GGUF model "
                    "is a file)")
        return None
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        return f"{model} cannot be read ({err.strerror or err})"
    if magic != b"GGUF":
        return f"{model} is not a GGUF file (it does not start with the bytes GGUF) nor a checkpoint folder"
    return None


def _check_can_compute(parser, configs: list, *, cache: bool = False, runs: bool = False) -> None:
    """Before anything is computed: each run's folder holds no directory (or other non-file) where a run writes a
    file, and, when a run of ``configs`` is to be computed (``cache`` / ``runs``: also otherwise), the run folders
    and the cache can be written. Usage errors naming the path, or the variable that chose it."""
    from sft_tilt.harness.runs import check_run_folder, run_key, runs_dir, unwritable
    from sft_tilt.store import cache_root

    for cfg in dict.fromkeys(configs):
        try:
            check_run_folder(runs_dir() / run_key(cfg), writable=False)
        except ValueError as err:
            parser.error(str(err))
    pending = bool(_pending(configs))
    for variable, folder, needed in (("SFT_RUNS_DIR", runs_dir(), pending or runs),
                                     ("SFT_CACHE_DIR", cache_root(), pending or cache)):
        why = unwritable(folder) if needed else None
        if why is not None:
            source = f"${variable}={os.environ[variable]}" if variable in os.environ else str(folder)
            parser.error(f"{source}: {why}; the {'run folders' if variable == 'SFT_RUNS_DIR' else 'cache'} must be "
                         "writable to compute")


def _pending(configs: list) -> list:
    """The runs of ``configs`` with neither a finished run folder nor a committed result (nothing is computed)."""
    import warnings

    from sft_tilt.harness.runs import committed_result, run_key, runs_dir
    from sft_tilt.store import read_record

    out = []
    for cfg in dict.fromkeys(configs):
        key = run_key(cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged file is reported when the run meets it
            path = runs_dir() / key / "result.json"
            done = path.is_file() and isinstance(read_record(path, key=key, discard=False), dict)
            done = done or committed_result(key) is not None
        if not done:
            out.append(cfg)
    return out


def _run_command(args, parser) -> int:
    from dataclasses import replace

    from sft_tilt.harness import experiments as ex
    from sft_tilt.harness.runs import run_one

    preset = _prepared_preset(args, parser)
    cfg = ex.method_config(preset, args.method, args.learning_rate, args.seed, args.fmt)
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps, warmup_steps=min(int(round(preset.warmup_fraction * args.steps)), args.steps - 1))
    _check_can_compute(parser, [cfg])
    result = run_one(cfg, progress=not args.quiet)
    s = ex.summarise_run(result)
    if s["diverged"]:
        print(f"run {s['key']}: {cfg.label()}  diverged at step {s['diverged_step']} (non-finite loss, parameters or evaluation)")
        return 0
    if s["collapsed"]:
        from sft_tilt.harness.collapse import COLLAPSE_TOLERANCE

        print(f"run {s['key']}: {cfg.label()}  collapsed at step {s['collapsed_step']}: the model gives every token "
              f"probability 1/V (held-out and general losses within {COLLAPSE_TOLERANCE:g} nats of log V); no domain "
              "gain or general change to report")
        return 0
    sets = {k: round(v, 4) for k, v in s["general_change_sets"].items()}
    print(f"run {s['key']}: {cfg.label()}  domain gain G={s['domain_gain']:+.4f}  general change D={s['general_change']:+.4f} "
          f"nats/token  D per set={sets}")
    for a in s["averaging"]:
        print(f"  averaging alpha={a['alpha']:g}: G={a['domain_gain']:+.4f}  D={a['general_change']:+.4f}")
    return 0


def _summary_command(args, parser) -> int:
    from sft_tilt.harness.results_summary import (finished_results, matched_gain_rows, render_matched_gain,
                                              render_summary, summary_rows)

    preset = _prepared_preset(args, parser)
    results, n_planned = finished_results(preset)
    from sft_tilt.store import describe_results_dir

    text = (render_summary(*summary_rows(results), len(results), n_planned, preset.name,
                           source=describe_results_dir())
            + render_matched_gain(matched_gain_rows(results, early_until=preset.early_until)))
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)
    return 0


def _export_command(args, parser) -> int:
    from sft_tilt.harness import experiments as ex
    from sft_tilt.harness.results_export import export_runs, prune_stale_runs, stale_runs
    from sft_tilt.harness.runs import results_dir, run_key
    from sft_tilt.harness.sweep_plan import planned_runs

    preset = _prepared_preset(args, parser)
    if args.results_dir is not None and args.results_dir.exists() and not args.results_dir.is_dir():
        parser.error(f"--results-dir: {args.results_dir} is not a directory")
    from sft_tilt.harness.runs import unwritable

    why = unwritable((args.results_dir or results_dir()) / preset.name)
    if why is not None:
        parser.error(f"{'--results-dir' if args.results_dir is not None else 'results folder'}: {why}")
    configs = planned_runs(preset)
    exported = export_runs(configs, preset.name, args.results_dir)
    where = (args.results_dir or results_dir()) / preset.name
    with_result = {p.name for p in exported} | {p.parent.name for p in where.glob("*/result.json")}
    finished = sum(run_key(c) in with_result for c in configs)  # committed earlier or exported now
    print(f"export {preset.name}: {len(exported)} finished runs of the run folders exported to {where}; "
          f"{finished} of {len(configs)} planned runs finished and committed there, {len(configs) - finished} missing")
    if preset.early_until:
        from sft_tilt.harness.results_export import export_early

        grid = list(dict.fromkeys(ex.sft_configs(preset)))
        early = export_early(grid, preset.early_until, preset.name, args.results_dir)
        committed = sum((where / "early" / f"{run_key(c)}.json").is_file() for c in grid)
        print(f"export {preset.name}: early points of {len(early)} learning-rate-grid runs exported to "
              f"{where / 'early'}; {committed} of {len(grid)} committed there")
    from sft_tilt.harness.base_model_analyses import NAMESPACES, committed_path
    from sft_tilt.harness.results_export import export_base_analyses, stale_base_analyses

    analyses = export_base_analyses(preset, args.results_dir)
    # a committed record counts when its file is there under the current key (it is verified when read)
    there = sum(committed_path(preset, a, args.results_dir) is not None for a in NAMESPACES)
    print(f"export {preset.name}: {len(analyses)} base-model analyses exported to {where / 'base'}; {there} of "
          f"{len(NAMESPACES)} committed there" + ("" if there == len(NAMESPACES) else
                                                 " (`sweep --experiment base` computes the others)"))
    stale_analyses = stale_base_analyses(preset, args.results_dir)
    if args.prune:
        for folder in prune_stale_runs(configs, preset.name, args.results_dir):
            print(f"removed stale run {folder}")
        for path in stale_analyses:
            path.unlink()
            print(f"removed stale base-model analysis {path}")
    else:
        stale = stale_runs(configs, preset.name, args.results_dir)
        if stale:
            print(f"{len(stale)} committed runs in {where} are not planned runs of the current code (stale keys: "
                  f"{', '.join(p.name for p in stale)}); --prune deletes them")
        if stale_analyses:
            print(f"{len(stale_analyses)} committed base-model analyses are of older keys "
                  f"({', '.join(str(p) for p in stale_analyses)}); --prune deletes them")
    if where.is_dir():  # after every file written or removed above: the hashes committed results are read against
        from sft_tilt.harness.manifest import write_manifest

        print(f"export {preset.name}: {write_manifest(where)} lists the SHA-256 of every committed file")
    return 0


def _sweep_runs(args, preset) -> list:
    """The experiment's distinct planned runs, in sweep order or cheapest first, restricted to ``--method``."""
    from sft_tilt.harness import experiments as ex
    from sft_tilt.harness.sweep_plan import REFERENCE_RATES, planned_runs, run_cost

    if args.experiment == "early":
        configs = list(dict.fromkeys(ex.sft_configs(preset)))
    elif args.experiment == "all":
        configs = planned_runs(preset)
    else:
        made = {"lr": ex.sft_configs, "methods": ex.method_configs, "tokens": ex.token_configs,
                "single-step": lambda p: [], "base": lambda p: []}[args.experiment](preset)
        configs = list(dict.fromkeys(made))
    if args.cheapest_first:
        configs = sorted(configs, key=lambda c: run_cost(c).seconds(REFERENCE_RATES))
    if args.only_methods:
        configs = sorted((c for c in configs if c.method.name in args.only_methods),
                         key=lambda c: args.only_methods.index(c.method.name))
    return configs


def _sweep_command(args, parser) -> int:
    from sft_tilt.harness import experiments as ex
    from sft_tilt.harness.base_model_analyses import single_step, target_token_statistics
    from sft_tilt.harness.optimizer_step import optimizer_step
    from sft_tilt.harness.runs import run_many, run_one
    from sft_tilt.harness.sweep_plan import describe_pending, describe_plan

    preset = _prepared_preset(args, parser)
    progress = not args.quiet
    if args.experiment == "early" and not preset.early_until:
        parser.error(f"--experiment early: the {preset.name!r} preset recomputes no early points (early_until = 0)")
    early = args.experiment == "early"
    if args.only_methods:
        known = {"sft", *preset.methods}
        unknown = [m for m in args.only_methods if m not in known]
        if unknown:
            parser.error(f"--method: {unknown} not among the {preset.name!r} preset's methods {sorted(known)}")
        if early or args.experiment in ("single-step", "base"):
            parser.error(f"--method: the {args.experiment!r} experiment has no method runs to choose from")

    if args.worker_index is None:  # the workers of a --workers sweep were checked by the sweep that started them
        from sft_tilt.harness.base_model_analyses import NAMESPACES, committed_path

        analyses = args.experiment in ("base", "single-step", "tokens", "all")
        _check_can_compute(parser, [] if early else _sweep_runs(args, preset), runs=early,
                           cache=analyses and any(committed_path(preset, a) is None for a in NAMESPACES))

    if args.worker_index is not None:  # one of the processes a --workers sweep started
        from sft_tilt.harness import sweep_workers
        from sft_tilt.harness.runs import run_key

        if early:
            from sft_tilt.harness.early_points import ensure_early

            done = sweep_workers.run_claimed(_sweep_runs(args, preset), lambda c: "early" + run_key(c),
                                             lambda c: ensure_early(c, preset.early_until, progress),
                                             sweep_workers.claims_folder())
        else:
            done = sweep_workers.run_claimed(_sweep_runs(args, preset), run_key, lambda c: run_one(c, progress=progress),
                                             sweep_workers.claims_folder())
        print(f"worker {args.worker_index}: {len(done)} runs", flush=True)
        return 0
    from sft_tilt.store import describe_results_dir

    print(describe_results_dir(), flush=True)
    if early:
        from sft_tilt.harness.sweep_plan import describe_early_plan

        print("planned: " + describe_early_plan(preset), flush=True)
    elif args.experiment == "all":
        print("planned: " + describe_plan(preset), flush=True)
        print("pending: " + describe_pending(preset, workers=args.workers), flush=True)
    elif _sweep_runs(args, preset):
        print("planned: " + describe_plan(preset), flush=True)
        print("pending: " + describe_pending(preset, workers=args.workers, configs=_sweep_runs(args, preset),
                                             scope=f"experiment {args.experiment}"), flush=True)
    else:  # single-step and base: the base model only
        print(f"planned: {preset.name}, experiment {args.experiment}: no fine-tuning run, the base model only",
              flush=True)
    if args.workers > 1:
        from sft_tilt.harness import sweep_workers

        sweep_workers.clear_claims(sweep_workers.claims_folder())
        codes = sweep_workers.launch_workers(sweep_workers.harness_command(args.raw_argv), args.workers)
        if any(codes):
            print(f"sweep: worker exit codes {codes}; finished runs are kept, rerun the command to resume",
                  file=sys.stderr, flush=True)
            return 1
    elif early:
        from sft_tilt.harness.early_points import ensure_early

        for cfg in _sweep_runs(args, preset):
            ensure_early(cfg, preset.early_until, progress)
    elif args.cheapest_first or args.only_methods:
        run_many(_sweep_runs(args, preset), progress=progress,
                 desc=f"runs of {', '.join(args.only_methods)}" if args.only_methods else "planned runs, cheapest first")
    if _sweep_runs(args, preset):
        print("pending: " + describe_pending(preset), flush=True)
    if args.only_methods:  # the experiment's tables would compute the other methods' runs too
        print(f"sweep {args.experiment} ({preset.name}) finished: the runs of {', '.join(args.only_methods)}")
        return 0
    steps = {
        "lr": [ex.lr_tradeoff],
        "methods": [ex.method_comparison],
        "tokens": [ex.token_analysis],
        "single-step": [ex.single_step_theory],
        "base": [target_token_statistics, single_step, optimizer_step],
        "early": [],
        "all": [ex.run_all],
    }[args.experiment]
    for fn in steps:
        fn(preset, progress)
    print(f"sweep {args.experiment} ({preset.name}) finished")
    return 0


def _report_command(args, parser) -> int:
    from sft_tilt.harness import experiments as ex
    from sft_tilt.harness.report import render_report

    from sft_tilt.harness.base_model_analyses import NAMESPACES, committed_path
    from sft_tilt.harness.sweep_plan import planned_runs

    preset = _prepared_preset(args, parser)
    _check_can_compute(parser, planned_runs(preset), cache=any(committed_path(preset, a) is None for a in NAMESPACES))
    from sft_tilt.store import describe_results_dir

    text = render_report(ex.run_all(preset, not args.quiet), preset.name, source=describe_results_dir())
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    raw_argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(_attach_negative_numbers(raw_argv))
    args.raw_argv = raw_argv  # a --workers sweep starts its workers with the same command line
    if args.func is _plan:
        return _plan(args, parser)
    if args.results_dir is not None:
        if args.results_dir.exists() and not args.results_dir.is_dir():
            parser.error(f"--results-dir: {args.results_dir} is not a directory")
        if args.command != "export" and not args.results_dir.is_dir():
            parser.error(f"--results-dir: {args.results_dir} does not exist")
        # every reader of committed results (and a sweep's worker processes) looks there
        os.environ["SFT_RESULTS_DIR"] = str(args.results_dir.resolve())
    from sft_tilt.harness.session import UnusableInput

    from sft_tilt.lm.gguf_io import DefaultModelMissing

    try:
        return args.func(args, parser)
    except DefaultModelMissing as err:  # one line saying how to install the default model
        print(f"python -m sft_tilt.harness: error: {err}", file=sys.stderr)
        return 2
    except UnusableInput as err:  # a model or data file found unusable when loaded, before anything is computed
        option = {"model": "--model" if args.model is not None else "--preset", "tokenizer": "--preset",
                  "domain_data": "--domain-data", "general_data": "--general-data"}.get(err.argument, "--preset")
        parser.error(f"{option}: {err}")


if __name__ == "__main__":
    sys.exit(main())

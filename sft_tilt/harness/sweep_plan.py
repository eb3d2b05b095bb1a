"""What a preset's sweep will compute, and about how long it takes, before any run starts.

``planned_runs(preset)`` lists the distinct run configurations of every experiment (a run shared by two
experiments, e.g. the SFT baseline of the learning-rate grid and of the method comparison, counts once);
``plan(preset)`` counts, per run and in total,

    train tokens   = steps x batch_size x seq_len(fmt)                      (padded rows, forward + backward)
    eval tokens    = points x [(n_heldout + n_unseen) x seq_len(fmt) + (n_self + n_docs + n_code) x seq_len_general]
                     + wide points x [5 n_choice x 57 + real rows x seq_len_real]
                     + number of averaging weights x (the same point, wide when every point is)
                                     (held-out and unseen domain and general sets at every point; <= 5 choices in
                                      windows of about 57 tokens and the real MedCalc-Bench rows at the wide points,
                                      RunConfig.wide_evaluation_at)
    decode tokens  = n_accuracy x accuracy_max_new_tokens(fmt)             (runs that score greedy accuracy)

plus, once per distinct warm-up (``RunConfig.warm_start``), the warm-up run's own cost.

and turns them into an ETA with throughputs measured on this project's reference machine (2 cores, SmolLM2-135M,
float32; :data:`REFERENCE_RATES`, from ``python -m sft_tilt.benchmarks.harness_step`` and timed greedy decoding). The ETA scales
with the model's parameter count and says which machine the rates come from; the first run of a sweep also pays
the session's base-model evaluation and compilation, which the estimate adds once.

``pending(preset)`` says which planned runs will be read instead of computed: committed to ``results/``
(:func:`sft_tilt.harness.stored_runs.committed_result`), finished in the run folders, or still to compute, with the ETA of
those alone. It hashes the model file once and reads one JSON file per finished run; it loads no model.

The reference rates come from step benchmarks, and whole runs take longer (compilation, checkpoints, batches of 2
that use the cores less well than the benchmark's 8). So ``pending`` also gives the pace of the preset's own
finished runs on the machine that ran them,

    pace(format) = median over finished runs of that format of  wall_s / estimate(run),
    ETA at that pace = sum over runs to compute of  pace(format) x estimate(run)  (+ setup x the median over all),

which follows the machine a sweep actually runs on (a run's ``wall_s`` adds the segments of a resumed run). The pace
is taken per format because the reference rates miss the formats by different factors (:func:`describe_pending`
prints each format's pace); a format with no finished run takes the median over all finished runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["REFERENCE_RATES", "RunCost", "planned_runs", "run_cost", "early_cost", "describe_early_plan", "setup_cost",
           "plan", "describe_plan", "pending", "describe_pending"]

#: tokens per second of SmolLM2-135M-Instruct on the reference machine (2 cores, idle): training and evaluation of
#: the harness's chat-formatted examples (``python -m sft_tilt.benchmarks.harness_step``, workload "sft", jax-fast: 121 and 467
#: padded tokens/s), greedy decoding with the KV cache (``generate_greedy_many``: 12 prompts of 100-300 tokens, 40 new
#: tokens each, in 26 s once compiled, about 18 new tokens/s), and the session's one-off setup (base-model evaluation,
#: general-set generation, compilation). ``setup_s`` is the fixed part of a session's setup (loading, compiling); the
#: base model's evaluation, which grows with the data, is :func:`setup_cost`. The fixed setup is an estimate, not yet
#: calibrated on an idle sweep.
REFERENCE_RATES = {"parameters": 134.5e6, "train": 121.0, "eval": 467.0, "decode": 18.0, "setup_s": 120.0}


@dataclass(frozen=True)
class RunCost:
    """Token counts of one run (see the module docstring)."""

    train_tokens: int
    eval_tokens: int
    decode_tokens: int

    def seconds(self, rates: dict, scale: float = 1.0) -> float:
        return scale * (self.train_tokens / rates["train"] + self.eval_tokens / rates["eval"]
                        + self.decode_tokens / rates["decode"])


def planned_runs(preset) -> list:
    """The distinct ``RunConfig`` of every experiment of ``preset`` (learning-rate grid, methods, token statistics),
    in the order a full sweep meets them."""
    from sft_tilt.harness.experiment_runs import method_configs, sft_configs, token_configs

    seen, out = set(), []
    for cfg in sft_configs(preset) + method_configs(preset) + token_configs(preset):
        if cfg not in seen:
            seen.add(cfg)
            out.append(cfg)
    return out


def _real_rows(data) -> int:
    """How many real MedCalc-Bench rows a session scores (``n_real`` per trained and, with ``n_unseen``, per unseen
    calculator)."""
    from sft_tilt.harness.medcalc_bench_test import real_calculator_groups

    return data.n_real * sum(len(group) for group in real_calculator_groups(data).values())


def _point_tokens(cfg, wide: bool = True) -> int:
    d = cfg.data
    every = ((d.n_heldout + d.n_unseen) * d.seq_len(cfg.fmt) + (d.n_self + d.n_docs + d.n_code) * d.seq_len_general)
    return every + (5 * d.n_choice * 57 + _real_rows(d) * d.seq_len_real if wide else 0)


def run_cost(cfg) -> RunCost:
    """Token counts of one run configuration (its warm-up, shared by many runs, is not included: :func:`plan`)."""
    d = cfg.data
    wide = sum(cfg.wide_evaluation_at(step) for step in cfg.eval_steps)
    averaging = len(cfg.averaging_alphas)
    decode = d.n_accuracy * (d.accuracy_max_new_tokens_cot if cfg.fmt == "cot" else d.accuracy_max_new_tokens_label)
    return RunCost(train_tokens=cfg.steps * cfg.batch_size * d.seq_len(cfg.fmt),
                   eval_tokens=(len(cfg.eval_steps) - wide) * _point_tokens(cfg, wide=False) + wide * _point_tokens(cfg)
                   + averaging * _point_tokens(cfg, wide=cfg.wide_eval_every == 1),
                   decode_tokens=decode if cfg.final_accuracy else 0)


def _warm_up_costs(configs) -> list[RunCost]:
    """The cost of each distinct warm-up among ``configs`` (computed once, then read from the cache)."""
    warm = dict.fromkeys(c.warm_start.run_config(c) for c in configs if c.warm_start is not None)
    return [run_cost(w) for w in warm]


def early_cost(cfg, until: int) -> RunCost:
    """Token counts of recomputing the first ``until`` steps of run ``cfg`` with an evaluation at every step
    (:mod:`sft_tilt.harness.early_points`)."""
    return RunCost(train_tokens=until * cfg.batch_size * cfg.data.seq_len(cfg.fmt), eval_tokens=until * _point_tokens(cfg),
                   decode_tokens=0)


def describe_early_plan(preset, parameters: float | None = None) -> str:
    """One line for the command line: how many early recomputations the preset plans, their tokens and ETA."""
    from sft_tilt.harness.experiment_runs import sft_configs

    rates = REFERENCE_RATES
    scale = (parameters or rates["parameters"]) / rates["parameters"]
    costs = [early_cost(c, preset.early_until) for c in dict.fromkeys(sft_configs(preset))]
    eta = rates["setup_s"] * scale + setup_cost(preset.data).seconds(rates, scale) + sum(c.seconds(rates, scale) for c in costs)
    return (f"{preset.name}: the first {preset.early_until} steps of {len(costs)} learning-rate-grid runs, evaluated at "
            f"every step: {sum(c.train_tokens for c in costs) / 1e6:.2f}M train + {sum(c.eval_tokens for c in costs) / 1e6:.2f}M "
            f"eval tokens; about {eta / 60:.0f} min on an idle 2-core CPU (stored early points are read, not recomputed)")


def setup_cost(data) -> RunCost:
    """Token counts of a session's one-off base-model evaluation (``Session.base``): every training, held-out and
    unseen problem in both formats, the general sets and the multiple-choice rows (evaluation tokens), the base
    model's responses to the ``n_self`` instructions and greedy accuracy in both formats (decoded tokens)."""
    problems = (data.n_train + data.n_heldout + data.n_unseen) * (data.seq_len_cot + data.seq_len_label)
    general = 2 * ((data.n_self + data.n_docs + data.n_code) * data.seq_len_general + 5 * data.n_choice * 57
                   + _real_rows(data) * data.seq_len_real)
    decode = (data.n_self * data.self_max_new_tokens
              + data.n_accuracy * (data.accuracy_max_new_tokens_cot + data.accuracy_max_new_tokens_label))
    return RunCost(train_tokens=0, eval_tokens=problems + general, decode_tokens=decode)


def plan(preset, parameters: float | None = None, rates: dict | None = None) -> dict:
    """``{"runs", "train_tokens", "eval_tokens", "decode_tokens", "eta_s", "rates"}`` of a full sweep of ``preset``;
    ``parameters`` (the model's parameter count, default the reference model's) scales the reference rates."""
    rates = dict(REFERENCE_RATES if rates is None else rates)
    scale = (parameters or rates["parameters"]) / rates["parameters"]
    if not scale > 0:
        raise ValueError(f"parameters: must be > 0, got {parameters!r}")
    configs = planned_runs(preset)
    costs = [run_cost(c) for c in configs] + _warm_up_costs(configs)
    return {"runs": len(configs), "train_tokens": sum(c.train_tokens for c in costs),
            "eval_tokens": sum(c.eval_tokens for c in costs), "decode_tokens": sum(c.decode_tokens for c in costs),
            "eta_s": (rates["setup_s"] * scale + setup_cost(preset.data).seconds(rates, scale)
                      + sum(c.seconds(rates, scale) for c in costs)), "rates": rates}


def describe_plan(preset, parameters: float | None = None) -> str:
    """One line for the command line: runs, tokens and the ETA on the reference machine."""
    p = plan(preset, parameters)
    return (f"{preset.name}: {p['runs']} runs, {p['train_tokens'] / 1e6:.2f}M train + {p['eval_tokens'] / 1e6:.2f}M eval + "
            f"{p['decode_tokens'] / 1e3:.1f}k decoded tokens; about {p['eta_s'] / 60:.0f} min on an idle 2-core CPU "
            f"(finished runs are read, not recomputed)")


def pending(preset, parameters: float | None = None, rates: dict | None = None, configs=None) -> dict:
    """``{"planned", "committed", "cached", "to_compute", "eta_s", "pace", "pace_by_format", "pace_runs",
    "eta_at_pace_s"}`` of a sweep
    of ``preset``: the number of planned runs, the keys of those read from ``results/`` and from the run folders, the
    keys still to compute, the ETA of those (reference rates as in :func:`plan`, setup included only when something
    is computed), and the pace of the finished runs (over all of them, and per format) with the ETA at that pace
    (module docstring; None when no finished run recorded its wall time).
    ``configs`` (a sequence of ``RunConfig``; default every planned run of ``preset``) limits the counts and the ETA
    to those runs, e.g. one experiment's; the pace still comes from every finished run among the preset's planned
    runs and ``configs``, so a sweep of a few runs is timed from all the runs finished so far.
    A run folder's result wins over a committed one, as in ``run_one``; nothing is deleted or written."""
    import warnings

    from sft_tilt.harness.run_config import RunConfig
    from sft_tilt.harness.stored_runs import committed_result, run_key, runs_dir
    from sft_tilt.store import read_record

    rates = dict(REFERENCE_RATES if rates is None else rates)
    scale = (parameters or rates["parameters"]) / rates["parameters"]
    if not scale > 0:
        raise ValueError(f"parameters: must be > 0, got {parameters!r}")
    every = planned_runs(preset)
    if configs is None:
        scope = set(every)
    else:
        if isinstance(configs, (str, bytes)) or not hasattr(configs, "__iter__"):
            raise ValueError(f"configs: must be a sequence of RunConfig, got {type(configs).__name__}")
        configs = list(configs)
        wrong = [type(c).__name__ for c in configs if not isinstance(c, RunConfig)]
        if wrong:
            raise ValueError(f"configs: must hold only RunConfig, got {', '.join(sorted(set(wrong)))}")
        scope = set(configs)
        every = list(dict.fromkeys(every + configs))
    out = {"planned": 0, "committed": [], "cached": [], "to_compute": [], "eta_s": 0.0}
    ratios, to_compute = {}, []  # ratios: format -> measured / estimated wall time of its finished runs
    for cfg in every:
        key = run_key(cfg)  # the model file's fingerprint, no session
        estimate = run_cost(cfg).seconds(rates, scale)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # run_one reports a damaged file when it meets it
            result = read_record(runs_dir() / key / "result.json", key=key, discard=False)
        if isinstance(result, dict):
            where = "cached"
        elif (result := committed_result(key)) is not None:
            where = "committed"
        else:
            where = "to_compute"
        if cfg in scope:
            out["planned"] += 1
            out[where].append(key)
            if where == "to_compute":
                out["eta_s"] += estimate
                to_compute.append((cfg.fmt, estimate))
        if where == "to_compute":
            continue
        wall = result.get("wall_s")
        if isinstance(wall, (int, float)) and wall > 0 and estimate > 0:
            ratios.setdefault(cfg.fmt, []).append(wall / estimate)
    setup = rates["setup_s"] * scale + setup_cost(preset.data).seconds(rates, scale)
    if out["to_compute"]:  # the base evaluation is cached on disk apart from the runs: counted as still to do
        out["eta_s"] += setup
    every_ratio = [r for rs in ratios.values() for r in rs]
    out["pace"] = float(np.median(every_ratio)) if every_ratio else None
    out["pace_by_format"] = {fmt: float(np.median(rs)) for fmt, rs in sorted(ratios.items())}
    out["pace_runs"] = len(every_ratio)
    if every_ratio:
        paced = sum(estimate * out["pace_by_format"].get(fmt, out["pace"]) for fmt, estimate in to_compute)
        out["eta_at_pace_s"] = paced + (setup * out["pace"] if to_compute else 0.0)
    else:
        out["eta_at_pace_s"] = None
    return out


def describe_pending(preset, parameters: float | None = None, workers: int = 1, configs=None,
                     scope: str | None = None) -> str:
    """One line for the command line: how many planned runs are committed, cached, to compute, and the ETA; with
    ``workers`` > 1 also the wall time when that many processes share the runs, each at the finished runs' pace
    (``eta_at_pace_s / workers``: a run's recorded wall time is what it took in its own process, alone or beside
    other workers). ``configs`` limits the line to those runs (:func:`pending`), ``scope`` names them
    (e.g. ``"experiment lr"``)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: must be a positive int, got {workers!r}")
    if scope is not None and (not isinstance(scope, str) or not scope.strip()):
        raise ValueError(f"scope: must be a non-empty str, got {scope!r}")
    p = pending(preset, parameters, configs=configs)
    name = preset.name if scope is None else f"{preset.name}, {scope}"
    line = (f"{name}: {p['planned']} planned runs: {len(p['committed'])} committed (results/), "
            f"{len(p['cached'])} finished in the run folders, {len(p['to_compute'])} to compute")
    if p["to_compute"]:
        line += f", about {p['eta_s'] / 60:.0f} min on an idle 2-core CPU at the reference rates"
        if p["pace"] is not None:
            paces = ", ".join(f"{fmt} {pace:.2f}" for fmt, pace in p["pace_by_format"].items())
            line += (f", about {p['eta_at_pace_s'] / 60:.0f} min at the pace of its {p['pace_runs']} finished runs "
                     f"({paces} x their estimate)")
            if workers > 1:
                line += f", so about {p['eta_at_pace_s'] / workers / 60:.0f} min of wall time with {workers} workers"
    return line

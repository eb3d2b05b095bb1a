"""What a preset's finished runs say so far, without computing anything.

    python -m sft_tilt.harness summary --preset cpu [--out summary.md]

A preset such as ``cpu`` is computed over several sittings, its finished runs committed as they complete
(``results/``). This table reads only the planned runs that have finished, from a run folder or from ``results/``,
and leaves the rest out. It gives one row per (method, format, learning rate): the seeds found and, at each run's
final point, the mean over seeds of

* ``G``, the held-out domain gain (nats/token; > 0: the domain loss fell), and ``D``, the mean general loss change
  over the general sets (> 0: degradation), each with its 95 % Student-t interval over seeds,
  ``mean +- t_{0.975, n-1} sd / sqrt(n)`` with ``sd`` over seeds at ddof 1 (:mod:`sft_tilt.analysis.intervals`, the convention of
  ``claims``); no interval from one seed;
* the held-out answer-token accuracy (answer tokens that are the model's top-1 given the reference reasoning),
  general multiple-choice accuracy, top-1 agreement with the base model's own greedy responses, and greedy answer
  accuracy within the row's limits where the run measured it.

The base model's values and the chance levels head the table. A second table per format gives the general change
at matched domain gain, the quantity the paper's learning-rate and method claims compare: for each target gain
``Delta*`` and each (method, learning rate), the mean over seeds of ``D`` where the run's trajectory first reaches
``G = Delta*`` (linear interpolation between evaluation points,
:func:`sft_tilt.analysis.matched_gain.general_change_at_gain`), with its t interval. The targets are fractions
(:func:`sft_tilt.analysis.matched_gain.matched_targets`)
0.25 / 0.5 / 0.75 / 1 of the smallest, over the format's finished SFT runs, of a run's largest gain, so every SFT
run reaches them; a run of another method that never reaches a target is counted as such.

These are summaries of what has finished, not verdicts. The claims are decided from the complete preset by the
tested rules behind ``paper_checks.md``.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict

import numpy as np

from sft_tilt.analysis.intervals import Interval, paired_interval

__all__ = ["finished_results", "summary_rows", "matched_gain_rows", "render_summary", "render_matched_gain"]


def finished_results(preset) -> tuple[list[dict], int]:
    """(the finished planned runs of ``preset``, each read from its run folder or else from ``results/``; the number
    of planned runs). Nothing is computed; a file that does not verify counts as unfinished."""
    from sft_tilt.harness.stored_runs import committed_result, run_key, runs_dir
    from sft_tilt.harness.sweep_plan import planned_runs
    from sft_tilt.store import read_record

    configs = planned_runs(preset)
    found = []
    for cfg in configs:
        key = run_key(cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a damaged file is reported when a run meets it, not here
            result = read_record(runs_dir() / key / "result.json", key=key, discard=False)
        if not isinstance(result, dict):
            result = committed_result(key)
        if result is not None:
            found.append(result)
    return found, len(configs)


def _mean(values) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(values)) if values else None


def _final(summary: dict, name: str):
    return summary["accuracy_trajectory"][-1].get(name)


def _agreement(accuracies: dict):
    return (accuracies.get("general_top1_sets") or {}).get("self")


def summary_rows(results: list[dict]) -> tuple[list[dict], dict]:
    """(one row per (method, format, learning rate), sorted; the base model's accuracies and the chance levels).

    A row holds ``method``, ``fmt``, ``learning_rate``, ``seeds`` (finished, neither diverged nor collapsed),
    ``diverged`` and ``collapsed`` (their seeds; :mod:`sft_tilt.harness.collapse`),
    ``G`` and ``D`` (:class:`~sft_tilt.analysis.intervals.Interval` over the seeds' final values) and the means over seeds of
    ``answer_token_accuracy``, ``choice``, ``agreement`` and ``greedy_accuracy`` (None where not measured)."""
    from sft_tilt.harness.experiment_results import failed, summarise_run

    groups: dict[tuple, list[dict]] = defaultdict(list)
    for result in results:
        s = summarise_run(result)
        groups[(s["method"], s["fmt"], s["learning_rate"])].append(s)
    rows, base = [], {}
    for (method, fmt, learning_rate), runs in sorted(groups.items()):
        ok = sorted((s for s in runs if not failed(s)), key=lambda s: s["seed"])
        rows.append({
            "method": method, "fmt": fmt, "learning_rate": learning_rate,
            "seeds": [s["seed"] for s in ok],
            "diverged": sorted(s["seed"] for s in runs if s["diverged"]),
            "collapsed": sorted(s["seed"] for s in runs if s["collapsed"] and not s["diverged"]),
            "G": paired_interval([s["domain_gain"] for s in ok]),
            "D": paired_interval([s["general_change"] for s in ok]),
            "answer_token_accuracy": _mean(_final(s, "answer_token_accuracy") for s in ok),
            "choice": _mean(_final(s, "choice") for s in ok),
            "agreement": _mean(_agreement(s["accuracy_trajectory"][-1]) for s in ok),
            "greedy_accuracy": _mean(s["accuracy"] for s in ok),
        })
        for s in ok:
            if not base:
                first = s["accuracy_trajectory"][0]
                base = {"answer_token_accuracy": first.get("answer_token_accuracy"), "choice": first.get("choice"),
                        "agreement": _agreement(first), "greedy_accuracy": s["base_accuracy"],
                        "chance": dict(s["chance"])}
    return rows, base


MATCHED_FRACTIONS = (0.25, 0.5, 0.75, 1.0)


def matched_gain_rows(results: list[dict], fractions=MATCHED_FRACTIONS, early_until: int = 0) -> dict[str, dict]:
    """Per format with a finished SFT run: ``{"targets": [Delta*], "rows": [{"method", "learning_rate", "n", "cells"}]}``, one
    row per (method, learning rate) sorted, each cell the :class:`~sft_tilt.analysis.intervals.Interval` over the seeds that reach
    that target (``n``: the finished seeds; a cell's ``.n`` the seeds that reached it; ``from_base``, per target, the
    seeds that reached it before their first evaluation point, whose value is a chord from the base model). With
    ``early_until`` the runs' stored early points fill their trajectories first (:mod:`sft_tilt.harness.early_points`)."""
    from sft_tilt.analysis.matched_gain import from_base, general_change_at_gain, matched_targets
    from sft_tilt.harness.experiment_results import failed, summarise_run

    from sft_tilt.harness.stored_early_points import with_early

    summaries = with_early(list(map(summarise_run, results)), {r["key"]: r for r in results}, early_until)
    runs = [s for s in summaries if not failed(s)]
    out = {}
    for fmt in sorted({s["fmt"] for s in runs}):
        sft = [s for s in runs if s["fmt"] == fmt and s["method"] == "sft"]
        if not sft:
            continue
        targets = matched_targets([s["trajectory"] for s in sft], fractions)
        if not targets:
            out[fmt] = {"targets": [], "rows": []}
            continue
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for s in runs:
            if s["fmt"] == fmt:
                groups[(s["method"], s["learning_rate"])].append(s)
        rows = []
        for (method, learning_rate), group in sorted(groups.items(), key=lambda kv: (kv[0][0] != "sft", kv[0])):
            cells = [paired_interval([general_change_at_gain(s["trajectory"], t) for s in group]) for t in targets]
            early = [sum(from_base(s["trajectory"], t) for s in group) for t in targets]
            rows.append({"method": method, "learning_rate": learning_rate, "n": len(group), "cells": cells, "from_base": early})
        out[fmt] = {"targets": targets, "rows": rows}
    return out


def render_matched_gain(matched: dict[str, dict]) -> str:
    """The Markdown tables of :func:`matched_gain_rows`, one per format."""
    lines = []
    for fmt, m in matched.items():
        lines += ["", f"General change D at matched domain gain, `{fmt}` (nats/token; mean over the seeds that reach "
                  "the gain, 95% t interval; k/n: seeds that reach it of the finished):", ""]
        if not m["targets"]:
            lines.append("No target: an SFT run of this format made no domain gain.")
            continue
        lines += ["| method | learning rate | " + " | ".join(f"Δ* = {t:.3g}" for t in m["targets"]) + " |",
                  "|---|---|" + "---|" * len(m["targets"])]
        for r in m["rows"]:
            early = r.get("from_base", [0] * len(r["cells"]))
            cells = [("not reached" if c.n == 0 else c.text("+.4f")) + ("" if c.n == r["n"] else f" ({c.n}/{r['n']})")
                     + (f" †{k}" if k else "") for c, k in zip(r["cells"], early)]
            lines.append(f"| {r['method']} | {r['learning_rate']:g} | " + " | ".join(cells) + " |")
        if any(k for r in m["rows"] for k in r.get("from_base", [])):
            lines += ["", "†k: k seeds reach Δ* before their first evaluation point, so their D there is interpolated "
                      "between the base model and that point (a chord, as coarse as the first interval)."]
    return "\n".join(lines) + ("\n" if lines else "")


def _interval_cell(interval: Interval) -> str:
    return "-" if interval.n == 0 else interval.text("+.4f")


def _cell(x, fmt=".3f") -> str:
    return "-" if x is None else f"{x:{fmt}}"


def render_summary(rows: list[dict], base: dict, n_finished: int, n_planned: int, preset_name: str,
                   source: str | None = None) -> str:
    """The Markdown table of :func:`summary_rows`, headed by the count of finished runs, ``source`` (which results
    folder was read) and the base model's row."""
    lines = [f"# Finished runs of the `{preset_name}` preset: {n_finished} of {n_planned}", ""]
    if source:
        lines += [source, ""]
    lines += ["Final point of each run; G = held-out domain gain, D = mean general loss change (nats/token), each the "
              "mean over seeds with its 95% t interval. Summaries of what has finished, not verdicts.", ""]
    if base:
        chance = base.get("chance") or {}
        lines += ["Base model: answer-token accuracy " + _cell(base.get("answer_token_accuracy"))
                  + ", multiple choice " + _cell(base.get("choice"))
                  + ", agreement with its own greedy responses " + _cell(base.get("agreement"))
                  + ", greedy answer accuracy " + _cell(base.get("greedy_accuracy"))
                  + (". Chance: " + ", ".join(f"{k} {_cell(v, '.4g')}" for k, v in sorted(chance.items()))
                     if chance else "") + ".", ""]
    lines += ["| method | format | learning rate | seeds | G | D | answer-token acc. | choice | agreement | greedy acc. |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        seeds = ",".join(map(str, r["seeds"])) + "".join(
            f" ({what}: {','.join(map(str, r.get(what, [])))})" for what in ("diverged", "collapsed") if r.get(what))
        lines.append(f"| {r['method']} | {r['fmt']} | {r['learning_rate']:g} | {seeds} | {_interval_cell(r['G'])} | "
                     f"{_interval_cell(r['D'])} | {_cell(r['answer_token_accuracy'])} | {_cell(r['choice'])} | "
                     f"{_cell(r['agreement'])} | {_cell(r['greedy_accuracy'])} |")
    return "\n".join(lines) + "\n"

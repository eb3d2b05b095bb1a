"""Accuracies of the real-LM learning-rate grid, beside the base model's and chance: the paper's Figure 1 reads
benchmark accuracies, so the losses of the real-LM claims are shown here with the accuracies of the same runs.

For each format and learning rate of the preset's SFT grid, over the seeds whose runs are finished, the 95% t
interval of the change from the base model (``final - base``; the base model is the same in every seed) of

* held-out greedy answer accuracy: the share of held-out problems whose greedily decoded response gives an answer
  within the row's lower and upper limits (MedCalc-Bench's rule), measured once, after training (chance ~ 0);
* held-out answer accuracy, teacher-forced: the share of held-out problems whose answer tokens are all the model's
  top-1 given the reference response before them (chance ~ 0). In the chain-of-thought format the reference
  reasoning already spells the answer out, so the model can copy it and this accuracy starts near 1; the greedy
  accuracy is the one that asks the model to reason;
* unseen-calculator answer accuracy (the same, on calculators never trained on), where the preset measures it;
* general multiple-choice accuracy (log-likelihood scoring of offline-generated questions; chance = mean 1/#choices);
* general next-token accuracy (top-1 rate over the three general sets; on the base model's own greedy responses it
  is the agreement with them; chance = 1/V).

Only finished runs are read (committed under ``results/`` or in the run cache); nothing is computed here.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.analysis.intervals import paired_interval

__all__ = ["ACCURACIES", "PRESET", "measure", "render_accuracy_table"]

#: The preset whose learning-rate grid the table shows (the one the real-LM claims are decided on).
PRESET = "cpu"

#: (key of ``summarise_run``'s accuracy trajectory, what the column says); ``greedy_accuracy`` is read from the
#: run's final greedy decoding (``summarise_run``'s ``accuracy`` and ``base_accuracy``)
ACCURACIES = (("greedy_accuracy", "held-out greedy answer acc."),
              ("answer_accuracy", "held-out answer acc. (teacher-forced)"),
              ("answer_token_accuracy", "held-out answer-token acc. (teacher-forced)"),
              ("unseen_accuracy", "unseen-calculator answer acc. (teacher-forced)"),
              ("choice", "general multiple choice"), ("general_top1", "general next-token acc."))


def measure(preset=None) -> dict:
    """``{"preset", "scale", "rows": [{fmt, learning_rate, n, base: {key: v}, change: {key: Interval}}], "chance",
    "missing"}`` from the finished SFT runs of ``preset`` (default: :data:`PRESET`, as read)."""
    from sft_tilt.claims import real_lm_results as real
    from sft_tilt.harness.experiment_results import failed, summarise_run
    from sft_tilt.harness.experiment_runs import sft_configs
    from sft_tilt.harness.stored_runs import load_result

    preset = real.preset(PRESET) if preset is None else preset
    rows, chance, missing = [], {}, 0
    for fmt in preset.formats:
        for learning_rate in preset.learning_rate_grid:
            runs = []
            for cfg in (c for c in sft_configs(preset) if c.fmt == fmt and c.learning_rate == learning_rate):
                result = load_result(cfg)
                if result is None:
                    missing += 1
                elif not failed(summarise_run(result)):  # a diverged or collapsed run is no point
                    runs.append(summarise_run(result))
            if not runs:
                continue
            chance = chance or runs[0].get("chance") or {}
            base = {**runs[0]["accuracy_trajectory"][0], "greedy_accuracy": runs[0]["base_accuracy"]}
            change = {}
            for key, _ in ACCURACIES:
                finals = [r["accuracy"] if key == "greedy_accuracy" else r["accuracy_trajectory"][-1][key]
                          for r in runs]
                if base[key] is not None and all(v is not None for v in finals):
                    change[key] = paired_interval(np.asarray(finals, float) - base[key])
            rows.append({"fmt": fmt, "learning_rate": learning_rate, "n": len(runs), "base": {k: base[k] for k, _ in ACCURACIES}, "change": change})
    return {"preset": preset.name, "scale": f"{preset.steps} steps x batch {preset.batch_size}", "rows": rows,
            "chance": chance, "missing": missing}


def render_accuracy_table(m: dict | None = None) -> list[str]:
    """Markdown lines of the section (a line saying so when no finished run has accuracies)."""
    m = measure() if m is None else m
    lines = ["", f"## Accuracies of the real-LM learning-rate grid ({m['preset']} preset, {m['scale']})", ""]
    rows = [r for r in m["rows"] if r["change"]]
    if not rows:
        return lines + ["No finished run of this preset measured accuracies yet "
                        f"({m['missing']} runs of the grid not finished)."]
    chance = m["chance"]
    lines += [f"Change from the base model after fine-tuning, mean [95% t interval] over seeds; base value in "
              f"parentheses. Chance: multiple choice {chance.get('choice', float('nan')):.3f}, next token "
              f"{chance.get('top1', float('nan')):.1e} (an answer token alike), whole answer ~0."
              + (f" {m['missing']} runs of the grid are not finished." if m["missing"] else ""), "",
              "| format | learning rate | seeds | " + " | ".join(label for _, label in ACCURACIES) + " |",
              "|---|---|---|" + "---|" * len(ACCURACIES)]
    for r in rows:
        cells = []
        for key, _ in ACCURACIES:
            iv = r["change"].get(key)
            cells.append("-" if iv is None else f"{iv.text('+.3f')} ({r['base'][key]:.3f})")
        lines.append(f"| {r['fmt']} | {r['learning_rate']:g} | {r['n']} | " + " | ".join(cells) + " |")
    return lines

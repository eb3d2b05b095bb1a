"""A plain-text (markdown) report of every real-LM experiment, from :func:`sft_tilt.harness.experiment_results.read_all` (or the sweep's
:func:`sft_tilt.harness.experiments.run_all`, which computes first).

The results carry named quantities (``domain_gain``, ``general_change``); the report shows them under the
theory's letters, ``G`` = domain gain and ``D`` = general degradation (general loss change).
"""

from __future__ import annotations

import numpy as np

__all__ = ["render_report"]


def _f(x, d=4) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:.{d}f}" if isinstance(x, float) else str(x)


def render_report(results: dict, preset_name: str, source: str | None = None) -> str:
    """Markdown tables: learning-rate grid, methods, token statistics, single step, matched gain, safe LR; headed by
    ``source`` (which results folder was read) when given."""
    lines = [f"# Real-LM harness report (preset `{preset_name}`)", ""] + ([source, ""] if source else []) + [
             "G = held-out domain gain (> 0: the domain loss fell), D = mean general loss change over the self/docs/code sets "
             "(nats/token; D > 0 is degradation).", ""]

    lines += ["## 1. Learning-rate grid (SFT, final point, mean over seeds)", "", "| format | learning rate | G (domain gain) | D (general change) | accuracy | n |", "|---|---|---|---|---|---|"]
    runs = results["learning_rate_tradeoff"]
    failed = results.get("diverged", []) + results.get("collapsed", [])
    grid = runs + [r for r in failed if r["method"] == "sft"]
    for fmt in sorted({r["fmt"] for r in grid}):
        for learning_rate in sorted({r["learning_rate"] for r in grid}):
            sel = [r for r in runs if r["fmt"] == fmt and r["learning_rate"] == learning_rate]
            if not sel:  # every run at this learning rate diverged or collapsed (listed in sections 5 and 6)
                what = "collapsed" if all(r.get("collapsed") and not r["diverged"] for r in failed
                                          if (r["method"], r["fmt"], r["learning_rate"]) == ("sft", fmt, learning_rate)) else "diverged"
                lines.append(f"| {fmt} | {learning_rate:g} | {what} | {what} | - | 0 |")
                continue
            accs = [r["accuracy"] for r in sel if r["accuracy"] is not None]
            lines.append(f"| {fmt} | {learning_rate:g} | {_f(float(np.mean([r['domain_gain'] for r in sel])))} | "
                         f"{_f(float(np.mean([r['general_change'] for r in sel])))} | "
                         f"{_f(float(np.mean(accs)) if accs else None, 2)} | {len(sel)} |")
    lines += ["", "## 2. Methods (chain-of-thought; mean +- sd over seeds; below_front < 0: better than the SFT LR curve)", "",
              "| method | learning rate | G (domain gain) | D (general change) | D/G | below_front |", "|---|---|---|---|---|---|"]
    for row in results["method_front"]["rows"]:
        lines.append(f"| {row['method']} | {row['learning_rate']:g} | {_f(row['domain_gain'])} +- {_f(row['domain_gain_sd'])} | "
                     f"{_f(row['general_change'])} +- {_f(row['general_change_sd'])} | "
                     f"{_f(row['general_change_per_gain'], 3)} | {_f(row['below_front'])} |")
    ta = results["token_analysis"]
    lines += ["", "## 3. Target tokens under the base model (training set)", "",
              "| format | tokens | median p | frac p > 0.2 | hard fraction | hard mass | hard tokens by kind |", "|---|---|---|---|---|---|---|"]
    for fmt, st in ta["formats"].items():
        lines.append(f"| {fmt} | {st['n_tokens']} | {_f(st['median_p'], 3)} | {_f(st['frac_above'], 3)} | {_f(st['hard_fraction'], 3)} | "
                     f"{_f(st['hard_token_mass'], 3)} | {st['hard_kinds']} |")
    for method, ep in ta["epochs"].items():
        fr = [[v["frac_above"] for _, v in sorted(seed.items(), key=lambda kv: int(kv[0]))] for seed in ep["per_seed"]]
        lines.append(f"\nfraction of training tokens with p > 0.2 per epoch, {method} at learning rate {ep['learning_rate']:g}: {fr}")
    for method, cp in ta.get("checkpoints", {}).items():
        fr = [[round(v["frac_above"], 4) for _, v in sorted(seed.items(), key=lambda kv: int(kv[0]))] for seed in cp["per_seed"]]
        lines.append(f"\nfraction of held-out domain tokens with p > 0.2 at each evaluation point, {method} at learning rate {cp['learning_rate']:g}: {fr}")
    ss = results["single_step"]
    lines += ["", "## 4a. One optimiser step: measured vs predicted change (nats/token)", "",
              "| format | set | learning rate | measured | predicted (2nd order) | 1st order only |", "|---|---|---|---|---|---|"]
    for fmt, sets in ss["formats"].items():
        for name, r in sets.items():
            for learning_rate, m, p, f1 in zip(ss["learning_rates"], r["measured"], r["predicted"], r["predicted_first_order"]):
                lines.append(f"| {fmt} | {name} | {learning_rate:g} | {m:+.5f} | {p:+.5f} | {f1:+.5f} |")
    lines += ["", "## 4b. Matched-gain fits", ""]
    for fmt, mg in results["matched_gain"].items():
        if mg.get("fit"):
            fit = mg["fit"]
            lines.append(f"- {fmt}: D monotone in the learning rate at every matched gain Delta*: {all(mg['monotone'].values())}; "
                         f"D = k1 Delta* + k2 Delta* eta: k1={fit['linear']['k1']:.3g}, k2={fit['linear']['k2']:.3g}, rmse={fit['linear']['rmse']:.3g}; "
                         f"D = k1 Delta* + k2 Delta*^2 eta: k1={fit['quadratic']['k1']:.3g}, k2={fit['quadratic']['k2']:.3g}, rmse={fit['quadratic']['rmse']:.3g}; "
                         f"better: {fit['better']}")
        else:
            lines.append(f"- {fmt}: no fit ({mg.get('note', 'too few cells')})")
    sl = results["safe_learning_rate"]
    lines += ["", f"## 4c. Safe learning rate (general increase <= {sl['eps']} nats/token)", "",
              "| format | hard mass | hard fraction | safe learning rate (final) | safe learning rate (matched gain) |", "|---|---|---|---|---|"]
    for fmt, r in sl["formats"].items():
        lines.append(f"| {fmt} | {_f(r['hard_token_mass'], 3)} | {_f(r['hard_fraction'], 3)} | {r['safe_learning_rate']} | {r['safe_learning_rate_matched']} |")
    diverged = results.get("diverged", [])
    if diverged:
        lines += ["", "## 5. Diverged runs (non-finite loss, parameters or evaluation; left out of every table above)", "",
                  "| method | format | learning rate | seed | diverged at step | run |", "|---|---|---|---|---|---|"]
        for r in diverged:
            lines.append(f"| {r['method']} | {r['fmt']} | {r['learning_rate']:g} | {r['seed']} | {r['diverged_step']} | {r['key']} |")
    collapsed = results.get("collapsed", [])
    if collapsed:
        lines += ["", "## 6. Collapsed runs (finite, but the model gives every token probability 1/V: the held-out and "
                  "every general loss at log V; left out of every table above)", "",
                  "| method | format | learning rate | seed | collapsed at step | run |", "|---|---|---|---|---|---|"]
        for r in collapsed:
            lines.append(f"| {r['method']} | {r['fmt']} | {r['learning_rate']:g} | {r['seed']} | {r['collapsed_step']} | {r['key']} |")
    lines.append("")
    return "\n".join(lines)

"""Figures of the real LM (SmolLM2-135M-Instruct by default), group "real_lm"; the claims they bear on are
checked in ``sft_tilt/claims/``.

Every figure draws the experiment tables of :mod:`sft_tilt.harness.experiment_results`, read from the stored runs of
the preset named here (:data:`PRESET`, the one the real-LM claims are decided on; ``$SFT_REAL_LM_PRESET`` replaces it
for every figure at once). Drawing never trains: a run that is not stored is an error naming the sweep that computes
it (``python -m sft_tilt.harness sweep --preset ...``). Domain gain and general loss change are in nats/token
(held-out). The harness results name their quantities (``domain_gain``, ``general_change``, ``learning_rate``); the
drawings label them with the theory's letters, G and D.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sft_tilt.figures._registry import figure, save_figure

GROUP = "real_lm"


#: The preset the real-LM figures draw: its runs are committed complete under results/cpu.
PRESET = "cpu"


def _setup(methods: tuple[str, ...] | None = None):
    """The preset a figure draws (:data:`PRESET` as read: :func:`sft_tilt.harness.presets.read_preset`), restricted
    to the comparison of ``methods`` when given."""
    from sft_tilt.harness.presets import read_preset

    return read_preset(PRESET, methods)


def _config(preset) -> dict:
    from dataclasses import asdict

    d = asdict(preset)
    d["model"] = preset.resolved_model()
    return d


def _symlog_if_one_value_dominates(ax, values, ratio: float = 20.0) -> None:
    """A symmetric-log y axis, linear (over as much height as three decades) within twice the 75th percentile of
    ``|values|``, when the largest ``|value|`` is
    more than ``ratio`` times that percentile: one degraded run then no longer flattens the differences among the
    others."""
    v = np.abs(np.asarray([x for x in values if x is not None and np.isfinite(x)], float))
    if v.size == 0:
        return
    typical = float(np.percentile(v, 75))
    if typical > 0 and v.max() > ratio * typical:
        ax.set_yscale("symlog", linthresh=2 * typical, linscale=3)


def _mean_sd(values):
    v = np.asarray(values, float)
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else 0.0)


# ----------------------------------------------------------------------------- figures


@figure("real_lm_lr_tradeoff", "SFT learning-rate trade-off on SmolLM2: domain gain vs general loss change, CoT and label-only (Fig. 1)", GROUP)
def real_lm_lr_tradeoff(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sft_tilt.harness.experiment_results import lr_tradeoff

    preset = _setup()
    runs = lr_tradeoff(preset)
    fig, axes = plt.subplots(1, len(preset.formats), figsize=(5.2 * len(preset.formats), 4.2), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(preset.learning_rate_grid)))
    for ax, fmt in zip(axes[0], preset.formats):
        for c, lr in zip(colors, preset.learning_rate_grid):
            sel = [r for r in runs if r["fmt"] == fmt and r["learning_rate"] == lr]
            for r in sel:
                t = np.array([(gain, change) for _, gain, change in r["trajectory"]])
                ax.plot(t[:, 0], t[:, 1], "-", color=c, alpha=0.35, lw=1)
            gain, gain_sd = _mean_sd([r["domain_gain"] for r in sel])
            change, change_sd = _mean_sd([r["general_change"] for r in sel])
            ax.errorbar(gain, change, xerr=gain_sd, yerr=change_sd, fmt="o", color=c, capsize=3, label=f"lr {lr:g}")
        ax.axhline(0, color="grey", lw=0.6)
        ax.plot(0, 0, "k*", ms=9, label="initial model")
        ax.set_xlabel("held-out domain gain $G$ (nats/token)")
        ax.set_ylabel("general loss change $D$ (nats/token, mean of 3 sets)")
        ax.set_title(f"SFT, {'chain-of-thought' if fmt == 'cot' else 'label-only'} targets")
        ax.legend(fontsize=8)
    fig.suptitle(f"Learning rate trades domain gain for general loss ({preset.name} preset; mean +- sd over {len(preset.seeds)} seeds; lines: trajectories)", fontsize=9)
    return save_figure(fig, out_dir, "real_lm_lr_tradeoff", {"preset": _config(preset), "runs": [{k: r[k] for k in ("fmt", "learning_rate", "seed", "domain_gain", "general_change", "general_change_sets", "accuracy")} for r in runs]})


@figure("real_lm_accuracy", "SFT learning rates on SmolLM2 as the paper's Fig. 1 draws them: domain accuracy vs general accuracy, with the base model, chance and the NLL view beside", GROUP)
def real_lm_accuracy(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sft_tilt.harness.experiment_results import lr_tradeoff

    preset = _setup()
    runs = lr_tradeoff(preset)
    panels = (("answer_accuracy", "choice", "held-out answer accuracy (teacher-forced)", "general multiple-choice accuracy"),
              ("answer_accuracy", "general_top1", "held-out answer accuracy (teacher-forced)",
               "general next-token accuracy (agreement with base)"),
              ("unseen_accuracy", "choice", "unseen-calculator answer accuracy", "general multiple-choice accuracy"))
    fig, axes = plt.subplots(len(preset.formats), len(panels) + 2, figsize=(4.6 * (len(panels) + 2), 4.0 * len(preset.formats)),
                             squeeze=False)
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(preset.learning_rate_grid)))
    rows = []
    for row, fmt in zip(axes, preset.formats):
        name = "chain-of-thought" if fmt == "cot" else "label-only"
        # the paper's own axes: greedy answer accuracy (MedCalc-Bench's rule), measured once, after training
        ax = row[0]
        drawn = False
        for c, lr in zip(colors, preset.learning_rate_grid):
            finals = [(r["accuracy"], r["accuracy_trajectory"][-1]["choice"]) for r in runs
                      if r["fmt"] == fmt and r["learning_rate"] == lr and r.get("accuracy") is not None
                      and r.get("accuracy_trajectory") and r["accuracy_trajectory"][-1]["choice"] is not None]
            if finals:
                drawn = True
                x, x_sd = _mean_sd([f[0] for f in finals])
                y, y_sd = _mean_sd([f[1] for f in finals])
                ax.errorbar(x, y, xerr=x_sd, yerr=y_sd, fmt="o", color=c, capsize=3, label=f"lr {lr:g}")
                rows.append({"fmt": fmt, "learning_rate": lr, "x": "greedy_accuracy", "y": "choice", "x_mean": x, "y_mean": y,
                             "n": len(finals)})
        base = next((r for r in runs if r["fmt"] == fmt and r.get("base_accuracy") is not None
                     and r.get("accuracy_trajectory") and r["accuracy_trajectory"][0]["choice"] is not None), None)
        if drawn and base is not None:
            ax.plot(base["base_accuracy"], base["accuracy_trajectory"][0]["choice"], "k*", ms=10, label="initial model")
            chance = base.get("chance") or {}
            if "choice" in chance:
                ax.axhline(chance["choice"], color="grey", ls=":", lw=1, label="chance")
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "greedy accuracy not measured by this preset's runs", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8)
        n_acc = preset.data.n_accuracy
        ax.set_xlabel(f"held-out greedy answer accuracy ({n_acc} problems, after training)", fontsize=8)
        ax.set_ylabel("general multiple-choice accuracy", fontsize=8)
        ax.set_title(f"SFT, {name} (the paper's Fig. 1 axes)", fontsize=9)
        for ax, (x_key, y_key, x_label, y_label) in zip(row[1:], panels):
            drawn = False
            for c, lr in zip(colors, preset.learning_rate_grid):
                sel = [r for r in runs if r["fmt"] == fmt and r["learning_rate"] == lr]
                finals = [(r["accuracy_trajectory"][-1][x_key], r["accuracy_trajectory"][-1][y_key]) for r in sel
                          if r.get("accuracy_trajectory") and r["accuracy_trajectory"][-1][x_key] is not None
                          and r["accuracy_trajectory"][-1][y_key] is not None]
                if not finals:
                    continue
                drawn = True
                for r in sel:
                    t = np.array([(a[x_key], a[y_key]) for a in r["accuracy_trajectory"]
                                  if a[x_key] is not None and a[y_key] is not None], dtype=float)
                    ax.plot(t[:, 0], t[:, 1], "-", color=c, alpha=0.3, lw=1)
                x, x_sd = _mean_sd([f[0] for f in finals])
                y, y_sd = _mean_sd([f[1] for f in finals])
                ax.errorbar(x, y, xerr=x_sd, yerr=y_sd, fmt="o", color=c, capsize=3, label=f"lr {lr:g}")
                rows.append({"fmt": fmt, "learning_rate": lr, "x": x_key, "y": y_key, "x_mean": x, "y_mean": y, "n": len(finals)})
            base = next((r["accuracy_trajectory"][0] for r in runs if r["fmt"] == fmt and r.get("accuracy_trajectory")), None)
            if drawn and base is not None and base[x_key] is not None and base[y_key] is not None:
                ax.plot(base[x_key], base[y_key], "k*", ms=10, label="initial model")
                chance = next((r["chance"] for r in runs if r.get("chance")), {})
                if y_key == "choice" and "choice" in chance:
                    ax.axhline(chance["choice"], color="grey", ls=":", lw=1, label="chance")
            if not drawn:
                ax.text(0.5, 0.5, "not measured by this preset's runs", ha="center", va="center", transform=ax.transAxes,
                        fontsize=8)
            ax.set_xlabel(x_label, fontsize=8)
            ax.set_ylabel(y_label, fontsize=8)
            ax.set_title(f"SFT, {name}", fontsize=9)
            if drawn:
                ax.legend(fontsize=7)
        ax = row[-1]
        for c, lr in zip(colors, preset.learning_rate_grid):
            sel = [r for r in runs if r["fmt"] == fmt and r["learning_rate"] == lr]
            if sel:
                gain, gain_sd = _mean_sd([r["domain_gain"] for r in sel])
                change, change_sd = _mean_sd([r["general_change"] for r in sel])
                ax.errorbar(gain, change, xerr=gain_sd, yerr=change_sd, fmt="o", color=c, capsize=3, label=f"lr {lr:g}")
        ax.axhline(0, color="grey", lw=0.6)
        ax.plot(0, 0, "k*", ms=9, label="initial model")
        ax.set_xlabel("held-out domain gain (nats/token)", fontsize=8)
        ax.set_ylabel("general loss change (nats/token)", fontsize=8)
        ax.set_title(f"the same runs in NLL, {name}", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(f"Domain vs general performance per learning rate ({preset.name} preset; mean +- sd over "
                 f"{len(preset.seeds)} seeds; lines: trajectories from the initial model)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_dir, "real_lm_accuracy", {"preset": _config(preset), "points": rows})


@figure("real_lm_methods_pareto", "Methods at a small and a large learning rate on SmolLM2: domain gain vs general loss, with seed intervals (Fig. 2)", GROUP)
def real_lm_methods_pareto(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sft_tilt.claims.method_ranking import PAPER_ORDER
    from sft_tilt.claims.real_lm_results import matched_along_trajectories
    from sft_tilt.harness.experiment_results import method_comparison, method_front

    preset = _setup()
    front = method_front(preset)
    comparison = method_comparison(preset)  # read once: the trajectories and the matched gains
    runs = [r for r in comparison if r.get("alpha") is None and r.get("trajectory")]
    from sft_tilt.methods.registry import plot_style

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    paths, targets = {}, {}
    for ax, lr in zip(axes, preset.comparison_learning_rates):
        ax.plot(front["front"]["domain_gain"], front["front"]["general_change"], "k--", lw=1, label="SFT learning-rate curve (final points)")
        for row in front["rows"]:
            if row["learning_rate"] != lr or row["n"] == 0:
                continue
            st = plot_style(row["method_name"])
            label = st.label if row["alpha"] is None else f"{st.label} (a={row['alpha']:g})"
            if row["method_name"].startswith("talr"):
                label = f"{label} [{row['method_name']}]"  # which TALR variant
            ax.errorbar(row["domain_gain"], row["general_change"], xerr=row["domain_gain_sd"], yerr=row["general_change_sd"],
                        fmt=st.marker, color=st.color, capsize=3, label=label, alpha=0.85)
            if row["alpha"] is None:
                path = mean_trajectory([r["trajectory"] for r in runs if r["method"] == row["method_name"] and r["learning_rate"] == row["method_learning_rate"]])
                if path:
                    ax.plot([g for _, g, _ in path], [d for _, _, d in path], "-", color=st.color, lw=0.9, alpha=0.6)
                    paths[f"{row['method_name']}@{row['method_learning_rate']:g}"] = path
        target = matched_along_trajectories(preset, lr, PAPER_ORDER, comparison)["target"]
        targets[f"{lr:g}"] = target
        if target is not None:
            ax.axvline(target, color="grey", ls=":", lw=1, label=f"matched gain Δ* = {target:.3f} (TALR/FLOW/L2/SFT)")
        ax.axhline(0, color="grey", lw=0.6)
        ax.plot(0, 0, "k*", ms=9)
        ax.set_xlabel("held-out domain gain $G$ (nats/token)")
        ax.set_ylabel("general loss change $D$ (nats/token)")
        ax.set_title(f"learning rate {lr:g} (chain-of-thought)")
        ax.legend(fontsize=6)
    fig.suptitle("Methods against the SFT trade-off curve (markers: end of training, mean +- sd over seeds; lines: seed-mean "
                 "trajectories; lower is better retention)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_dir, "real_lm_methods_pareto", {"preset": _config(preset), "rows": front["rows"], "front": front["front"],
                                                                 "trajectories": paths, "matched_gain": targets})


def mean_trajectory(trajectories) -> list[tuple[int, float, float]]:
    """The seed-mean ``(step, domain_gain, general_change)`` path over the steps every trajectory has (empty when
    none is given)."""
    if not trajectories:
        return []
    steps = sorted(set.intersection(*({int(s) for s, _, _ in t} for t in trajectories)))
    at = [{int(s): (g, d) for s, g, d in t} for t in trajectories]
    return [(s, float(np.mean([a[s][0] for a in at])), float(np.mean([a[s][1] for a in at]))) for s in steps]


def _draw_target_tokens(axes, formats: dict) -> None:
    """Panels (b) and (a) of the paper's Figure 3 on ``axes[0]`` and ``axes[1]``: the base model's target-token
    probabilities per format, and which kinds of token are hard (p <= 0.2) against all targets."""
    for fmt, st in formats.items():
        axes[0].hist(st["p"], bins=20, range=(0, 1), alpha=0.55, label=f"{fmt}: median p={st['median_p']:.3f}, hard={st['hard_fraction']:.2f}")
    axes[0].axvline(0.2, color="r", lw=0.8, ls="--")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("target-token probability p under the initial model")
    axes[0].set_ylabel("tokens")
    axes[0].set_title("(b) distribution of target-token probabilities")
    axes[0].legend(fontsize=7)
    kinds = sorted({k for st in formats.values() for k in st["all_kinds"]})
    width = 0.8 / max(len(formats), 1)
    for i, (fmt, st) in enumerate(formats.items()):
        hard_total = max(sum(st["hard_kinds"].values()), 1)
        all_total = max(sum(st["all_kinds"].values()), 1)
        x = np.arange(len(kinds)) + i * width
        axes[1].bar(x, [st["hard_kinds"].get(k, 0) / hard_total for k in kinds], width, label=f"{fmt}: hard tokens")
        axes[1].plot(x, [st["all_kinds"].get(k, 0) / all_total for k in kinds], "k_", ms=14)
    axes[1].set_xticks(np.arange(len(kinds)) + 0.4 - width / 2, kinds)
    axes[1].set_ylabel("share of tokens")
    axes[1].set_title("(a) which tokens are hard (bars: p <= 0.2; dashes: all targets)", fontsize=9)
    axes[1].legend(fontsize=7)


@figure("real_lm_target_tokens", "Target-token probabilities under the base SmolLM2 and which tokens are hard, per format (Fig. 3a-b; no fine-tuning run)", GROUP)
def real_lm_target_tokens(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sft_tilt.harness.experiment_results import target_token_statistics

    preset = _setup()
    formats = target_token_statistics(preset)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    _draw_target_tokens(axes, formats)
    fig.suptitle("Target tokens of the training problems under the base model", fontsize=9)
    fig.tight_layout()
    cfg = {"preset": _config(preset), "formats": {f: {k: v for k, v in st.items() if k != "p"} for f, st in formats.items()}}
    return save_figure(fig, out_dir, "real_lm_target_tokens", cfg)


@figure("real_lm_token_stats", "Target-token probabilities under SmolLM2, hard tokens by kind, fraction with p > 0.2 per epoch (or evaluation point) for SFT and TALR (Fig. 3)", GROUP)
def real_lm_token_stats(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sft_tilt.claims.talr_curriculum import METHODS, pick_unit
    from sft_tilt.harness.experiment_results import token_analysis

    preset = _setup(METHODS)  # the runs claim 10 reads
    ta = token_analysis(preset)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    _draw_target_tokens(axes, ta["formats"])
    from sft_tilt.methods.registry import plot_style

    by_point = pick_unit(ta, preset.compared_talr)["unit"] != "epoch"
    series = ta["checkpoints"] if by_point else ta["epochs"]
    for method, ep in series.items():
        st = plot_style(method)
        for i, seed_rows in enumerate(ep["per_seed"]):
            rows = {int(k): v for k, v in seed_rows.items()}
            xs = sorted(rows)
            axes[2].plot([x if by_point else x + 1 for x in xs], [rows[x]["frac_above"] for x in xs], st.marker + st.linestyle, color=st.color,
                         label=f"{st.label}{' [' + method + ']' if method.startswith('talr') else ''} (lr {ep['learning_rate']:g})" if i == 0 else None, alpha=0.8)
    if by_point:
        axes[2].set_xlabel("step (runs shorter than two epochs: each evaluation point)")
        axes[2].set_ylabel("held-out domain targets with p > 0.2")
        axes[2].set_title("(c) p > 0.2 along training (same held-out tokens)", fontsize=10)
    else:
        axes[2].set_xlabel("epoch")
        axes[2].set_ylabel("fraction of training target tokens with p > 0.2")
        axes[2].set_title("(c) p > 0.2 across epochs (each step's batch, before its update)")
    axes[2].legend(fontsize=7)
    fig.suptitle("Token-level analysis on the generated clinical-calculation domain", fontsize=9)
    fig.tight_layout()
    cfg = {"preset": _config(preset), "formats": {f: {k: v for k, v in st.items() if k != "p"} for f, st in ta["formats"].items()}, "epochs": ta["epochs"],
           "checkpoints": ta["checkpoints"]}
    return save_figure(fig, out_dir, "real_lm_token_stats", cfg)


@figure("real_lm_single_step", "One optimiser step on SmolLM2: measured domain gain and general loss change vs the second-order prediction from gradients and curvature (Exp. 4a)", GROUP)
def real_lm_single_step(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sft_tilt.harness.experiment_results import single_step_theory

    preset = _setup()
    ss = single_step_theory(preset)
    fig, axes = plt.subplots(1, len(ss["formats"]), figsize=(5.4 * len(ss["formats"]), 4.4), squeeze=False)
    for ax, (fmt, sets) in zip(axes[0], ss["formats"].items()):
        allv = []
        for name, r in sets.items():
            ax.plot(r["predicted"], r["measured"], "o-", label=f"{name} (2nd order)")
            ax.plot(r["predicted_first_order"], r["measured"], "x:", alpha=0.5, label=f"{name} (1st order)")
            allv += r["predicted"] + r["measured"]
        lo, hi = min(allv), max(allv)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.6)
        ax.set_xscale("symlog", linthresh=1e-4)
        ax.set_yscale("symlog", linthresh=1e-4)
        ax.set_xlabel("predicted loss change (nats/token)")
        ax.set_ylabel("measured loss change (nats/token)")
        ax.set_title(f"{fmt}: first step at lr {', '.join(f'{x:g}' for x in ss['learning_rates'])}")
        ax.legend(fontsize=6)
    fig.suptitle(r"Theory vs measurement for one step: $\Delta L \approx \lambda \langle \nabla L, d\rangle + \frac{\lambda^2}{2} d^\top H d$ (domain: held-out; y = x line)", fontsize=9)
    return save_figure(fig, out_dir, "real_lm_single_step", {"preset": _config(preset), "single_step": ss})


@figure("real_lm_optimizer_step", "One step of SFT and TALR from the base SmolLM2 under SGD and under Adam, at rates matched to the same first-order domain gains: general loss change vs measured domain gain, with the tilt band, and the update norm per unit rate (claim 18, one step)", GROUP)
def real_lm_optimizer_step(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    from sft_tilt.harness.experiment_results import optimizer_step_analysis
    from sft_tilt.methods.registry import plot_style

    preset = _setup()
    record = optimizer_step_analysis(preset)
    formats = list(record["formats"])
    optimizers = list(record["plan"]["optimizers"])
    fig, axes = plt.subplots(len(formats), len(optimizers) + 1, figsize=(4.6 * (len(optimizers) + 1), 3.9 * len(formats)),
                             squeeze=False)
    for row, fmt in zip(axes, formats):
        res = record["formats"][fmt]
        for ax, opt in zip(row, optimizers):
            for method, arm in res["arms"][opt].items():
                st = plot_style(method)
                steps = sorted(arm["steps"], key=lambda s: s["learning_rate"])
                gains = [s["domain_gain"] for s in steps]
                ax.plot(gains, [s["measured_change"] for s in steps], st.marker + "-", color=st.color,
                        label=f"{st.label} [{method}]")
                ax.fill_between(gains, [s["band_lower"] for s in steps], [s["band_upper"] for s in steps],
                                color=st.color, alpha=0.12, lw=0)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # the minor labels of a short log range overlap
            ax.set_xlabel("measured domain gain G of the step (nats/token, training batch)")
            ax.set_ylabel("general loss change D (nats/token, probe)")
            ax.set_title(f"{fmt}, one {opt} step (shade: [Jensen, min(Hoeffding, Bennett)])", fontsize=8)
            ax.legend(fontsize=6)
        ax = row[-1]
        methods = list(res["arms"][optimizers[0]])
        x = np.arange(len(methods))
        for i, opt in enumerate(optimizers):
            norms = [res["arms"][opt][m]["unit_update_norm"] / res["arms"][opt]["sft"]["unit_update_norm"] for m in methods]
            ax.bar(x + (i - (len(optimizers) - 1) / 2) * 0.35, norms, 0.35, label=opt)
        ax.set_xticks(x, methods)
        ax.set_ylabel("update norm per unit rate / SFT's")
        ax.set_title(f"{fmt}: how much TALR's weights shorten the step", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"One optimiser step from the base model ({preset.name} preset): rates matched per arm so the first-order "
                 f"domain gain is {', '.join(f'{f:g}' for f in record['plan']['gain_fractions'])} of the batch's loss", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_dir, "real_lm_optimizer_step", {"preset": _config(preset), "optimizer_step": record})


@figure("real_lm_matched_gain", "SmolLM2 general loss change at matched domain gain vs learning rate, with the k1 Delta* + k2 Delta* lam and k1 Delta* + k2 Delta*^2 lam fits (Exp. 4b)", GROUP)
def real_lm_matched_gain(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sft_tilt.harness.experiment_results import matched_gain

    preset = _setup()
    mg = matched_gain(preset)
    fig, axes = plt.subplots(1, len(mg), figsize=(5.4 * len(mg), 4.2), squeeze=False)
    for ax, (fmt, r) in zip(axes[0], mg.items()):
        lam = np.geomspace(min(preset.learning_rate_grid), max(preset.learning_rate_grid), 50)
        for target in r["target_gains"]:
            cells = [c for c in r["cells"] if c["target_gain"] == target]
            if not cells:
                continue
            line = ax.errorbar([c["learning_rate"] for c in cells], [c["general_change"] for c in cells], yerr=[c["general_change_sd"] for c in cells],
                               fmt="o", capsize=3, label=rf"$\Delta^*$ = {target:.3f}")
            color = line[0].get_color()
            if r["fit"]:
                f1, f2 = r["fit"]["linear"], r["fit"]["quadratic"]
                ax.plot(lam, f1["k1"] * target + f1["k2"] * target * lam, "-", color=color, lw=0.8)
                ax.plot(lam, f2["k1"] * target + f2["k2"] * target**2 * lam, ":", color=color, lw=1.2)
        ax.set_xscale("log")
        _symlog_if_one_value_dominates(ax, [c["general_change"] for c in r["cells"]])
        ax.set_xlabel(r"learning rate $\lambda$")
        ax.set_ylabel("general loss change $D$ at matched gain (nats/token)")
        fit = r.get("fit")
        sub = f"rmse linear {fit['linear']['rmse']:.2g} / quadratic {fit['quadratic']['rmse']:.2g}" if fit else "no fit"
        ax.set_title(rf"{fmt}: solid $k_1\Delta^* + k_2\Delta^*\lambda$, dotted $k_1\Delta^* + k_2\Delta^{{*2}}\lambda$" + f"\n{sub}", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"Matched-gain degradation vs learning rate (Theorem 3.1's shape), SFT ({preset.name} preset; "
                 f"mean +- sd over {len(preset.seeds)} seeds)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out_dir, "real_lm_matched_gain", {"preset": _config(preset), "matched_gain": mg})


@figure("real_lm_safe_lr", "SmolLM2: hard-token mass of CoT vs label-only targets against the largest safe learning rate at matched gain (Exp. 4c)", GROUP)
def real_lm_safe_lr(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sft_tilt.analysis.intervals import paired_interval
    from sft_tilt.claims.safe_step_size import measure_real_lm, safe_range

    preset = _setup()
    m = measure_real_lm()  # what claim 7 decides on: D at matched domain gain, per seed
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    fmts = list(m["formats"])
    axes[0].bar(fmts, [m["formats"][f]["hard_token_mass"] for f in fmts], color=["C0", "C1"][: len(fmts)])
    axes[0].set_ylabel("hard-token mass  mean(1 - p) of training targets")
    for k, f in enumerate(fmts):
        x = m["formats"][f]
        lrs = sorted(x["per_seed"])
        ivs = [paired_interval(np.array(list(x["per_seed"][lr].values()), float)) for lr in lrs]
        mean = np.array([iv.mean for iv in ivs])
        lo = np.array([iv.lo if np.isfinite(iv.lo) else iv.mean for iv in ivs])
        hi = np.array([iv.hi if np.isfinite(iv.hi) else iv.mean for iv in ivs])
        known, possible = safe_range(x, m["learning_rate_grid"], m["eps"])
        shift = 1.0 + 0.04 * (k - 0.5)  # side by side on the log axis
        axes[1].errorbar(np.array(lrs) * shift, mean, yerr=[mean - lo, hi - mean], fmt="o-", capsize=3,
                         label=f"{f} (Δ* = {x['target_gain']:.3f}): safe lr certain {known}, possible {possible}")
    axes[1].axhline(m["eps"], color="r", ls="--", lw=0.8, label=rf"$\epsilon$ = {m['eps']}")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("learning rate")
    axes[1].set_ylabel("$D$ at matched domain gain (nats/token)")
    axes[1].set_title("mean and 95% t interval over seeds", fontsize=9)
    axes[1].legend(fontsize=6)
    axes[0].set_title("hard-token mass under the initial model", fontsize=9)
    fig.suptitle("Theorem 3.2: fewer hard tokens should allow a larger safe step", fontsize=9)
    fig.tight_layout()
    sl = {"eps": m["eps"], "learning_rate_grid": m["learning_rate_grid"], "formats": {f: {**x, "per_seed": {str(lr): v for lr, v in x["per_seed"].items()}}
                                                                 for f, x in m["formats"].items()}}
    return save_figure(fig, out_dir, "real_lm_safe_lr", {"preset": _config(preset), "safe_learning_rate": sl})

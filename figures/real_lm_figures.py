"""Figures and paper-claim checks: the real LM (SmolLM2-135M-Instruct by default).

Every figure and check calls the cached experiment functions of :mod:`sims.harness.experiments`
with the preset named by ``$SFT_REAL_LM_PRESET`` (default ``"default"``); the first call runs the
sweep (about 20 minutes cold on a 2-core CPU), later calls read the run folders. Domain gain and
general loss change are in nats/token (held-out); the paper reports benchmark accuracies, so checks
compare directions and orderings, never magnitudes.

Notation: everything this module shows follows the theory's letters, ``D`` = general degradation (general
loss change) and ``G`` = domain gain. The harness's result dictionaries use the opposite keys (``"D"`` holds
the domain gain, ``"G"`` the general change), so ``r["D"]`` is displayed as G and ``r["G"]`` as D.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from figures._claims import Verdict, claim
from figures._registry import figure, save_figure

_PRESET_NAME = os.environ.get("SFT_REAL_LM_PRESET", "default")
SETTING = {
    "default": "real LM (SmolLM2-135M-Instruct)",
    "paper": f"real LM (paper preset: {os.environ.get('SFT_PAPER_MODEL', '?')})",
}.get(_PRESET_NAME, f"real LM ({_PRESET_NAME} preset)")
GROUP = "real_lm"


def _preset():
    from sims.harness.presets import get_preset

    return get_preset(os.environ.get("SFT_REAL_LM_PRESET", "default"))


def _command(name: str | None = None) -> str:
    prefix = "" if _PRESET_NAME == "default" else f"SFT_REAL_LM_PRESET={_PRESET_NAME} "
    return f"{prefix}python -m figures {name}" if name else f"python -m sims.harness report --preset {_PRESET_NAME}"


def _setup():
    from sims.harness.__main__ import enable_compilation_cache

    enable_compilation_cache()
    return _preset()


def _config(preset) -> dict:
    from dataclasses import asdict

    d = asdict(preset)
    d["model"] = preset.resolved_model()
    return d


def _mean_sd(values):
    v = np.asarray(values, float)
    return float(v.mean()), (float(v.std(ddof=1)) if v.size > 1 else 0.0)


# ----------------------------------------------------------------------------- figures


@figure("real_lm_lr_tradeoff", "SFT learning-rate trade-off on SmolLM2: domain gain vs general loss change, CoT and label-only (Fig. 1)", GROUP)
def real_lm_lr_tradeoff(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sims.harness.experiments import lr_tradeoff

    preset = _setup()
    runs = lr_tradeoff(preset)
    fig, axes = plt.subplots(1, len(preset.formats), figsize=(5.2 * len(preset.formats), 4.2), squeeze=False)
    colors = plt.cm.viridis(np.linspace(0.1, 0.85, len(preset.lr_grid)))
    for ax, fmt in zip(axes[0], preset.formats):
        for c, lr in zip(colors, preset.lr_grid):
            sel = [r for r in runs if r["fmt"] == fmt and r["lr"] == lr]
            for r in sel:
                t = np.array([(d, g) for _, d, g in r["trajectory"]])
                ax.plot(t[:, 0], t[:, 1], "-", color=c, alpha=0.35, lw=1)
            d, dsd = _mean_sd([r["D"] for r in sel])
            g, gsd = _mean_sd([r["G"] for r in sel])
            ax.errorbar(d, g, xerr=dsd, yerr=gsd, fmt="o", color=c, capsize=3, label=f"lr {lr:g}")
        ax.axhline(0, color="grey", lw=0.6)
        ax.plot(0, 0, "k*", ms=9, label="initial model")
        ax.set_xlabel("held-out domain gain G (nats/token)")
        ax.set_ylabel("general loss change D (nats/token, mean of 3 sets)")
        ax.set_title(f"SFT, {'chain-of-thought' if fmt == 'cot' else 'label-only'} targets")
        ax.legend(fontsize=8)
    fig.suptitle(f"Learning rate trades domain gain for general loss ({preset.name} preset; mean +- sd over {len(preset.seeds)} seeds; lines: trajectories)", fontsize=9)
    return save_figure(fig, out_dir, "real_lm_lr_tradeoff", {"preset": _config(preset), "runs": [{k: r[k] for k in ("fmt", "lr", "seed", "D", "G", "G_sets", "accuracy")} for r in runs]})


@figure("real_lm_methods_pareto", "Methods at a small and a large learning rate on SmolLM2: domain gain vs general loss, with seed intervals (Fig. 2)", GROUP)
def real_lm_methods_pareto(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sims.harness.experiments import method_front

    preset = _setup()
    front = method_front(preset)
    from sims.methods import plot_style

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, lr in zip(axes, preset.method_lrs):
        ax.plot(front["front"]["D"], front["front"]["G"], "k--", lw=1, label="SFT learning-rate curve")
        for row in front["rows"]:
            if row["lr"] != lr or row["n"] == 0:
                continue
            st = plot_style(row["method_name"])
            label = st.label if row["alpha"] is None else f"{st.label} (a={row['alpha']:g})"
            ax.errorbar(row["D"], row["G"], xerr=row["D_sd"], yerr=row["G_sd"], fmt=st.marker, color=st.color, capsize=3,
                        label=label, alpha=0.85)
        ax.axhline(0, color="grey", lw=0.6)
        ax.plot(0, 0, "k*", ms=9)
        ax.set_xlabel("held-out domain gain G (nats/token)")
        ax.set_ylabel("general loss change D (nats/token)")
        ax.set_title(f"learning rate {lr:g} (chain-of-thought)")
        ax.legend(fontsize=7)
    fig.suptitle("Methods against the SFT trade-off curve (mean +- sd over seeds; lower is better retention)", fontsize=9)
    return save_figure(fig, out_dir, "real_lm_methods_pareto", {"preset": _config(preset), "rows": front["rows"], "front": front["front"]})


@figure("real_lm_token_stats", "Target-token probabilities under SmolLM2, hard tokens by kind, fraction with p > 0.2 per epoch for SFT and TALR (Fig. 3)", GROUP)
def real_lm_token_stats(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sims.harness.experiments import token_analysis

    preset = _setup()
    ta = token_analysis(preset)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for fmt, st in ta["formats"].items():
        axes[0].hist(st["p"], bins=20, range=(0, 1), alpha=0.55, label=f"{fmt}: median p={st['median_p']:.3f}, hard={st['hard_fraction']:.2f}")
    axes[0].axvline(0.2, color="r", lw=0.8, ls="--")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("target-token probability p under the initial model")
    axes[0].set_ylabel("tokens")
    axes[0].set_title("(b) distribution of target-token probabilities")
    axes[0].legend(fontsize=7)
    kinds = sorted({k for st in ta["formats"].values() for k in st["all_kinds"]})
    width = 0.8 / max(len(ta["formats"]), 1)
    for i, (fmt, st) in enumerate(ta["formats"].items()):
        hard_total = max(sum(st["hard_kinds"].values()), 1)
        all_total = max(sum(st["all_kinds"].values()), 1)
        x = np.arange(len(kinds)) + i * width
        axes[1].bar(x, [st["hard_kinds"].get(k, 0) / hard_total for k in kinds], width, label=f"{fmt}: hard tokens")
        axes[1].plot(x, [st["all_kinds"].get(k, 0) / all_total for k in kinds], "k_", ms=14)
    axes[1].set_xticks(np.arange(len(kinds)) + 0.4 - width / 2, kinds)
    axes[1].set_ylabel("share of tokens (bars: hard p <= 0.2; dashes: all targets)")
    axes[1].set_title("(a) which tokens are hard")
    axes[1].legend(fontsize=7)
    from sims.methods import plot_style

    for method, ep in ta["epochs"].items():
        st = plot_style(method)
        for seed_rows in ep["per_seed"]:
            epochs = sorted(int(e) for e in seed_rows)
            axes[2].plot([e + 1 for e in epochs], [seed_rows[e]["frac_above"] if e in seed_rows else seed_rows[str(e)]["frac_above"] for e in epochs],
                         st.marker + st.linestyle, color=st.color, label=f"{st.label} (lr {ep['lr']:g})", alpha=0.8)
    axes[2].set_xlabel("epoch")
    axes[2].set_ylabel("fraction of training target tokens with p > 0.2")
    axes[2].set_title("(c) p > 0.2 across epochs (each step's batch, before its update)")
    axes[2].legend(fontsize=7)
    fig.suptitle("Token-level analysis on the generated clinical-calculation domain", fontsize=9)
    cfg = {"preset": _config(preset), "formats": {f: {k: v for k, v in st.items() if k != "p"} for f, st in ta["formats"].items()}, "epochs": ta["epochs"]}
    return save_figure(fig, out_dir, "real_lm_token_stats", cfg)


@figure("real_lm_single_step", "One optimiser step on SmolLM2: measured domain gain and general loss change vs the second-order prediction from gradients and curvature (Exp. 4a)", GROUP)
def real_lm_single_step(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sims.harness.experiments import single_step_theory

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
        ax.set_title(f"{fmt}: first step at lr {', '.join(f'{x:g}' for x in ss['lrs'])}")
        ax.legend(fontsize=6)
    fig.suptitle("Theory vs measurement for one step: dL ~ lam <grad L, d> + lam^2/2 d^T H d (domain: held-out; y = x line)", fontsize=9)
    return save_figure(fig, out_dir, "real_lm_single_step", {"preset": _config(preset), "single_step": ss})


@figure("real_lm_matched_gain", "SmolLM2 general loss change at matched domain gain vs learning rate, with the k1 D* + k2 D* lam and k1 D* + k2 D*^2 lam fits (Exp. 4b)", GROUP)
def real_lm_matched_gain(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sims.harness.experiments import matched_gain

    preset = _setup()
    mg = matched_gain(preset)
    fig, axes = plt.subplots(1, len(mg), figsize=(5.4 * len(mg), 4.2), squeeze=False)
    for ax, (fmt, r) in zip(axes[0], mg.items()):
        lam = np.geomspace(min(preset.lr_grid), max(preset.lr_grid), 50)
        for i, d_star in enumerate(r["d_stars"]):
            cells = [c for c in r["cells"] if c["d_star"] == d_star]
            if not cells:
                continue
            line = ax.errorbar([c["lr"] for c in cells], [c["G"] for c in cells], yerr=[c["G_sd"] for c in cells], fmt="o", capsize=3,
                               label=f"D* = {d_star:.3f}")
            color = line[0].get_color()
            if r["fit"]:
                f1, f2 = r["fit"]["linear"], r["fit"]["quadratic"]
                ax.plot(lam, f1["k1"] * d_star + f1["k2"] * d_star * lam, "-", color=color, lw=0.8)
                ax.plot(lam, f2["k1"] * d_star + f2["k2"] * d_star**2 * lam, ":", color=color, lw=1.2)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate lam")
        ax.set_ylabel("general loss change at matched gain (nats/token)")
        fit = r.get("fit")
        sub = f"rmse linear {fit['linear']['rmse']:.2g} / quadratic {fit['quadratic']['rmse']:.2g}" if fit else "no fit"
        ax.set_title(f"{fmt}: solid k1 D* + k2 D* lam, dotted k1 D* + k2 D*^2 lam\n{sub}", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("Matched-gain degradation vs learning rate (Theorem 3.1's shape), SFT", fontsize=9)
    return save_figure(fig, out_dir, "real_lm_matched_gain", {"preset": _config(preset), "matched_gain": mg})


@figure("real_lm_safe_lr", "SmolLM2: hard-token mass of CoT vs label-only targets against the largest safe learning rate (Exp. 4c)", GROUP)
def real_lm_safe_lr(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    from sims.harness.experiments import safe_lr

    preset = _setup()
    sl = safe_lr(preset)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    fmts = list(sl["formats"])
    axes[0].bar(fmts, [sl["formats"][f]["hard_token_mass"] for f in fmts], color=["C0", "C1"][: len(fmts)])
    axes[0].set_ylabel("hard-token mass  mean(1 - p) of training targets")
    axes[0].set_title("hard-token mass under the initial model")
    for f in fmts:
        g = sl["formats"][f]["G_final"]
        axes[1].plot(list(map(float, g.keys())), list(g.values()), "o-", label=f"{f}: safe lr {sl['formats'][f]['safe_lr']}")
    axes[1].axhline(sl["eps"], color="r", ls="--", lw=0.8, label=f"eps = {sl['eps']}")
    axes[1].set_xscale("log")
    axes[1].set_xlabel("learning rate")
    axes[1].set_ylabel("general loss change after training (nats/token)")
    axes[1].set_title("largest learning rate keeping D <= eps")
    axes[1].legend(fontsize=7)
    fig.suptitle("Theorem 3.2: fewer hard tokens should allow a larger safe step", fontsize=9)
    return save_figure(fig, out_dir, "real_lm_safe_lr", {"preset": _config(preset), "safe_lr": sl})


# ----------------------------------------------------------------------------- claim checks

_DIRECTIONS = "Paper numbers are benchmark accuracies of 3-4B models; ours are held-out nats/token on SmolLM2-135M and a generated domain: only directions and orderings are compared."


def _rows(lr):
    from sims.harness.experiments import method_front

    return {r["method"]: r for r in method_front(_preset(), progress=False)["rows"] if r["lr"] == lr}


@claim(3, SETTING, requires=("real_lm_matched_gain",))
def check_claim_3() -> Verdict:
    from sims.harness.experiments import matched_gain

    mg = matched_gain(_preset(), progress=False)
    parts, mono_all, mono_any, better = [], True, False, []
    for fmt, r in mg.items():
        if not r.get("fit"):
            parts.append(f"{fmt}: no matched-gain cells ({r.get('note')})")
            mono_all = False
            continue
        mono = list(r["monotone"].values())
        mono_all &= all(mono)
        mono_any |= any(mono)
        fit = r["fit"]
        better.append(fit["better"])
        cells = "; ".join(f"D*={c['d_star']:.3f} lr={c['lr']:g}: D={c['G']:+.4f}" for c in r["cells"])
        parts.append(f"{fmt}: D non-decreasing in lr at {sum(mono)}/{len(mono)} matched gains ({cells}); fits k1 D*+k2 D* lam "
                     f"(k1={fit['linear']['k1']:.3g}, k2={fit['linear']['k2']:.3g}, rmse {fit['linear']['rmse']:.2g}) vs k1 D*+k2 D*^2 lam "
                     f"(k1={fit['quadratic']['k1']:.3g}, k2={fit['quadratic']['k2']:.3g}, rmse {fit['quadratic']['rmse']:.2g})")
    k1_positive = all(r["fit"][r["fit"]["better"]]["k1"] > 0 for r in mg.values() if r.get("fit"))
    if mono_all and k1_positive:
        verdict = "holds"
    elif mono_any:
        verdict = "partly holds"
    else:
        verdict = "fails"
    floor = "" if k1_positive else " The fitted floor k1 D* is not positive: at the smallest lr general loss does not rise (it falls slightly), so 'reducing lr never drives degradation to zero' is not seen here."
    return Verdict(verdict, "Paper: matched-gain degradation non-decreasing in lr, <= k1 D* + k2 D*^2 lam with a positive floor k1 D*. Ours (SFT): " + " | ".join(parts)
                   + f". Better-fitting shape per format: {better}." + floor + " " + _DIRECTIONS, _command("real_lm_matched_gain"))


@claim(7, SETTING, requires=("real_lm_safe_lr",))
def check_claim_7() -> Verdict:
    from sims.harness.experiments import safe_lr

    sl = safe_lr(_preset(), progress=False)["formats"]
    if "cot" not in sl or "label" not in sl:
        return Verdict("inconclusive", "needs both formats", _command("real_lm_safe_lr"))
    c, l = sl["cot"], sl["label"]
    preset = _preset()
    from sims.harness.experiments import token_analysis

    ta = token_analysis(preset, progress=False)["formats"]
    per_ex = {f: ta[f]["hard_fraction"] * ta[f]["n_tokens"] / preset.data.n_train for f in ("cot", "label")}
    above = [lr for lr in preset.lr_grid if c["safe_lr"] is None or lr > c["safe_lr"]]
    label_better_above = bool(above) and all(l["G_final"][lr] < c["G_final"][lr] for lr in above)
    label_worse_above = bool(above) and all(l["G_final"][lr] > c["G_final"][lr] for lr in above)
    ev = (f"Paper: label-only targets (fewer hard tokens) tolerate larger LRs (5e-6 fine) than CoT (5e-6 degrades). Ours: hard tokens (p <= 0.2) per "
          f"training example CoT {per_ex['cot']:.1f} vs label {per_ex['label']:.1f}, but hard-token mass mean(1-p) per target token CoT "
          f"{c['hard_token_mass']:.3f} vs label {l['hard_token_mass']:.3f} (hard fraction {c['hard_fraction']:.3f} vs {l['hard_fraction']:.3f}); "
          f"final D by lr CoT { {k: round(v, 4) for k, v in c['G_final'].items()} } label { {k: round(v, 4) for k, v in l['G_final'].items()} }; "
          f"safe lr (D <= {preset.safe_eps}) CoT {c['safe_lr']} vs label {l['safe_lr']}. " + _DIRECTIONS)
    rank = lambda x: -1.0 if x is None else x  # noqa: E731
    cmd = _command("real_lm_safe_lr")
    if rank(l["safe_lr"]) > rank(c["safe_lr"]):
        return Verdict("holds", ev, cmd)
    if rank(l["safe_lr"]) < rank(c["safe_lr"]):
        return Verdict("fails", ev, cmd)
    if label_worse_above:
        return Verdict("fails", ev + " Equal safe lr on this grid, and above it label-only degrades general ability more than CoT.", cmd)
    if label_better_above:
        return Verdict("partly holds", ev + " Equal safe lr on this grid; above it label-only degrades less.", cmd)
    return Verdict("inconclusive", ev + " (equal safe lr on this grid)", cmd)


@claim(11, SETTING, requires=("real_lm_token_stats",))
def check_claim_11() -> Verdict:
    from sims.harness.experiments import token_analysis

    ta = token_analysis(_preset(), progress=False)
    st = ta["formats"]["cot"]
    hard_total = max(sum(st["hard_kinds"].values()), 1)
    all_total = max(sum(st["all_kinds"].values()), 1)
    digit_hard = st["hard_kinds"].get("digit", 0) / hard_total
    digit_all = st["all_kinds"].get("digit", 0) / all_total
    median_ok = st["median_p"] >= 0.9
    minority = st["hard_fraction"] <= 0.25
    concentrated = digit_hard > digit_all
    examples = ", ".join(repr(t) for t, _ in st["hard_tokens"][:10])
    ev = (f"Paper: median target-token p ~ 1.0 under the initial model; hard tokens a small minority at domain content (conversion factors). "
          f"Ours (CoT training targets, {st['n_tokens']} tokens): median p = {st['median_p']:.3f}, fraction p <= 0.2 = {st['hard_fraction']:.3f}; "
          f"digits are {digit_hard:.2f} of hard tokens vs {digit_all:.2f} of all targets; hardest: {examples}. " + _DIRECTIONS)
    n_ok = median_ok + minority + concentrated
    verdict = "holds" if n_ok == 3 else ("partly holds" if n_ok >= 1 else "fails")
    return Verdict(verdict, ev, _command("real_lm_token_stats"))


@claim(12, SETTING, requires=("real_lm_lr_tradeoff",))
def check_claim_12() -> Verdict:
    from sims.harness.experiments import lr_tradeoff

    preset = _preset()
    runs = lr_tradeoff(preset, progress=False)
    small, large = preset.method_lrs

    def mean(key, lr):
        return float(np.mean([r[key] for r in runs if r["fmt"] == "cot" and r["lr"] == lr]))

    d_s, d_l, g_s, g_l = mean("D", small), mean("D", large), mean("G", small), mean("G", large)
    acc = {lr: [r["accuracy"] for r in runs if r["fmt"] == "cot" and r["lr"] == lr and r["accuracy"] is not None] for lr in (small, large)}
    dd, dg = d_l - d_s, g_l - g_s
    avg_cost = g_s / d_s if d_s > 0 else float("inf")
    marginal = dg / dd if dd > 0 else float("inf")
    ev = (f"Paper (MedCalc, 3-model avg): SFT 1e-6 -> 5e-6 gives domain +0.024 for general -0.311. Ours (SFT, CoT, {small:g} -> {large:g}, "
          f"{large / small:g}x): domain gain {d_s:.4f} -> {d_l:.4f} ({dd:+.4f}), general loss change {g_s:+.4f} -> {g_l:+.4f} ({dg:+.4f}) nats/token; "
          f"marginal general cost per unit domain gain {marginal:.3g} vs {avg_cost:.3g} at the small lr; greedy accuracy "
          f"{ {lr: (round(float(np.mean(v)), 2) if v else None) for lr, v in acc.items()} }. " + _DIRECTIONS)
    if dg > 0 and marginal > avg_cost:
        return Verdict("holds", ev, _command("real_lm_lr_tradeoff"))
    if dg > 0:
        return Verdict("partly holds", ev + " (larger lr degrades more, but not at a worse exchange rate)", _command("real_lm_lr_tradeoff"))
    return Verdict("fails", ev, _command("real_lm_lr_tradeoff"))


def _g_order(rows, names):
    return sorted((n for n in names if n in rows and rows[n]["n"] > 0), key=lambda n: rows[n]["G"])


@claim(13, SETTING, requires=("real_lm_methods_pareto",))
def check_claim_13() -> Verdict:
    preset = _preset()
    rows = _rows(preset.method_lrs[1])
    names = ["talr", "flow", "l2", "sft"]
    order = _g_order(rows, names)
    desc = ", ".join(f"{n}: G={rows[n]['D']:.4f}+-{rows[n]['D_sd']:.4f}, D={rows[n]['G']:+.4f}+-{rows[n]['G_sd']:.4f}" for n in order)
    ev = (f"Paper (5e-6): general TALR 0.502 > FLOW 0.450 > L2 0.395 > SFT 0.381, domain 0.542/0.553/0.555/0.558. Ours (lr {preset.method_lrs[1]:g}, "
          f"best retention first): {desc}. " + _DIRECTIONS)
    if len(order) < 4:
        return Verdict("inconclusive", ev + " (missing methods)", _command("real_lm_methods_pareto"))
    if order == names:
        return Verdict("holds", ev, _command("real_lm_methods_pareto"))
    if order[0] == "talr":
        return Verdict("partly holds", ev + " (TALR best, ordering of the others differs)", _command("real_lm_methods_pareto"))
    return Verdict("fails", ev, _command("real_lm_methods_pareto"))


@claim(14, SETTING, requires=("real_lm_methods_pareto",))
def check_claim_14() -> Verdict:
    preset = _preset()
    small, large = (_rows(lr) for lr in preset.method_lrs)
    names = [n for n in ("sft", "l2", "talr") if n in small and n in large]
    spread = lambda rows, k: max(rows[n][k] for n in names) - min(rows[n][k] for n in names)  # noqa: E731
    gs, gl, ds, dl = spread(small, "G"), spread(large, "G"), spread(small, "D"), spread(large, "D")
    best_small = min(names, key=lambda n: small[n]["G"])
    ev = (f"Paper (1e-6): SFT/L2/TALR within 0.033 domain and 0.025 general; at 5e-6 general spread 0.121. Ours ({', '.join(names)}): spread of D "
          f"{gs:.4f} at lr {preset.method_lrs[0]:g} vs {gl:.4f} at {preset.method_lrs[1]:g}; spread of G {ds:.4f} vs {dl:.4f}; best general at small lr: "
          f"{best_small}. " + _DIRECTIONS)
    if gs < gl and ds <= dl:
        v = "holds"
    elif gs < gl or ds < dl:
        v = "partly holds"
    else:
        v = "fails"
    return Verdict(v, ev, _command("real_lm_methods_pareto"))


@claim(15, SETTING, requires=("real_lm_methods_pareto",))
def check_claim_15() -> Verdict:
    preset = _preset()
    rows = _rows(preset.method_lrs[0])
    sft = rows["sft"]
    cands = [n for n in ("lora", "averaging(0.5)") if n in rows and rows[n]["n"] > 0]
    parts, ok = [], []
    for n in cands:
        r = rows[n]
        frac = r["D"] / sft["D"] if sft["D"] > 0 else float("nan")
        keeps = r["G"] <= sft["G"]
        loses = frac <= 0.5
        ok.append(keeps and loses)
        parts.append(f"{n}: G={r['D']:.4f} ({frac:.2f} of SFT's {sft['D']:.4f}), D={r['G']:+.4f} vs SFT {sft['G']:+.4f}")
    ev = (f"Paper (1e-6): LoRA domain 0.181, WiSE-FT 0.198 vs SFT 0.534 (about 1/3), WiSE-FT general 0.727 vs SFT 0.692. Ours (lr {preset.method_lrs[0]:g}): "
          + "; ".join(parts) + ". Criterion: D <= SFT's and G <= 0.5 x SFT's. " + _DIRECTIONS)
    if not cands:
        return Verdict("inconclusive", ev, _command("real_lm_methods_pareto"))
    return Verdict("holds" if all(ok) else ("partly holds" if any(ok) else "fails"), ev, _command("real_lm_methods_pareto"))


@claim(16, SETTING, requires=("real_lm_methods_pareto",))
def check_claim_16() -> Verdict:
    preset = _preset()
    small, large = (_rows(lr) for lr in preset.method_lrs)
    names = [n for n in small if n in large and small[n]["n"] > 0 and large[n]["n"] > 0]
    worse = {n: large[n]["G"] > small[n]["G"] for n in names}
    ev = (f"Paper: every method's general score is lower at 5e-6 than at 1e-6. Ours, D at {preset.method_lrs[0]:g} -> {preset.method_lrs[1]:g}: "
          + ", ".join(f"{n} {small[n]['G']:+.4f} -> {large[n]['G']:+.4f}" for n in names) + ". " + _DIRECTIONS)
    n_worse = sum(worse.values())
    v = "holds" if n_worse == len(names) else ("partly holds" if n_worse > len(names) / 2 else "fails")
    return Verdict(v, ev, _command("real_lm_methods_pareto"))


@claim(17, SETTING, requires=("real_lm_methods_pareto",))
def check_claim_17() -> Verdict:
    preset = _preset()
    rows = _rows(preset.method_lrs[1])
    t, f = rows.get("talr"), rows.get("flow")
    if not t or not f or t["n"] == 0 or f["n"] == 0:
        return Verdict("inconclusive", "TALR or FLOW runs missing", _command("real_lm_methods_pareto"))
    diff = f["G"] - t["G"]
    se = float(np.sqrt(t["G_sd"] ** 2 / t["n"] + f["G_sd"] ** 2 / f["n"]))
    ev = (f"Paper (5e-6): general TALR 0.502 vs FLOW 0.450 (domain 0.542 vs 0.553). Ours (lr {preset.method_lrs[1]:g}): D TALR {t['G']:+.4f}+-{t['G_sd']:.4f} "
          f"vs FLOW {f['G']:+.4f}+-{f['G_sd']:.4f} (difference {diff:+.4f}, standard error {se:.4f}); G TALR {t['D']:.4f} vs FLOW {f['D']:.4f}. " + _DIRECTIONS)
    if abs(diff) <= 2 * se:
        return Verdict("inconclusive", ev + " (difference within 2 standard errors over seeds)", _command("real_lm_methods_pareto"))
    return Verdict("holds" if diff > 0 else "fails", ev, _command("real_lm_methods_pareto"))


@claim(18, SETTING, requires=("real_lm_lr_tradeoff", "real_lm_methods_pareto"))
def check_claim_18() -> Verdict:
    from sims.harness.experiments import lr_tradeoff

    preset = _preset()
    runs = lr_tradeoff(preset, progress=False)
    ratios = []
    for lr in preset.lr_grid:
        sel = [r["G"] / r["D"] for r in runs if r["fmt"] == "cot" and r["lr"] == lr and r["D"] > 0]
        ratios.append(float(np.mean(sel)) if sel else float("nan"))
    increasing = all(b >= a for a, b in zip(ratios[:-1], ratios[1:])) and np.all(np.isfinite(ratios))
    small, large = (_rows(lr) for lr in preset.method_lrs)
    red = {}
    for name, rows in (("small", small), ("large", large)):
        if "talr" in rows and "sft" in rows:
            red[name] = rows["sft"]["ratio"] - rows["talr"]["ratio"]
    talr_more_at_large = len(red) == 2 and red["large"] > red["small"] and red["large"] > 0
    ev = (f"Prediction (I): D/G grows with lr; TALR lowers it mainly at large lr. Ours (SFT, CoT) D/G by lr "
          f"{ {f'{lr:g}': round(x, 3) for lr, x in zip(preset.lr_grid, ratios)} }; SFT minus TALR D/G: "
          f"{ {k: round(v, 3) for k, v in red.items()} }. " + _DIRECTIONS)
    v = "holds" if increasing and talr_more_at_large else ("partly holds" if increasing or talr_more_at_large else "fails")
    return Verdict(v, ev, _command())

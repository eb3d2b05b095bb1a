"""Figures of the synthetic simulations, group "synthetic" (the claims they bear on are checked in ``sft_tilt/claims/``).

Every figure reads its experiment through ``sft_tilt.synthetic.experiments.<name>.run(preset "default")``, which
returns the cached result when the code, configuration and libraries are unchanged, and computes it otherwise.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict

import numpy as np

from sft_tilt.figures._registry import figure, save_figure

GROUP = "synthetic"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _log_lam_axis(ax, lams):
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.set_xticks(lams, [f"{v:g}" for v in lams])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _config_dict(config) -> dict:
    return {"preset": "default", "config": asdict(config)}


# ---------------------------------------------------------------------------------------------------
# Experiment 1: single-step identities and bounds
# ---------------------------------------------------------------------------------------------------

def _single_step():
    from sft_tilt.synthetic.experiments import single_step as ex

    cfg = ex.SingleStepConfig.preset("default")
    return cfg, ex.run(cfg)


@figure("synthetic_single_step_tightness", "Tightness (bound / actual second-order part) of the Hoeffding and Bennett bounds on 1e5 random tilt steps", GROUP)
def draw_single_step(out_dir):
    plt = _plt()
    cfg, res = _single_step()
    a, s = res["arrays"], res["summary"]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    bins = np.logspace(0, 5, 61)
    for name, color in (("hoeffding_tightness", "C0"), ("bennett_tightness", "C1")):
        v = a[name][np.isfinite(a[name])]
        ax.hist(np.clip(v, 1, 1e5), bins=bins, histtype="step", color=color, lw=1.5,
                label=f"{name.split('_')[0].capitalize()} (median {np.median(v):.3g}, violations {s['violations_' + name.replace('tightness', 'slack')]})")
    ax.set_xscale("log")
    ax.set_xlabel("tightness = (bound - first order) / (dL - first order)   [ratio, >= 1]")
    ax.set_ylabel("instances")
    ax.set_title(f"Single-step bounds on {s['n_instances']:,} random instances (V = {cfg.vocab}, float64)\n"
                 f"max identity error {s['max_identity_error']:.1e}, max trade-off error {s['max_tradeoff_error']:.1e}", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, out_dir, "synthetic_single_step_tightness", {**_config_dict(cfg), "summary": s})


# ---------------------------------------------------------------------------------------------------
# Experiment 2: adversarial search
# ---------------------------------------------------------------------------------------------------

def _adversarial():
    from sft_tilt.synthetic.experiments import adversarial as ex

    cfg = ex.AdversarialConfig.preset("default")
    return cfg, ex.run(cfg)


@figure("synthetic_adversarial_slack", "Smallest normalised slack found by gradient search for each single-step bound (and a deliberately wrong one)", GROUP)
def draw_adversarial(out_dir):
    plt = _plt()
    cfg, res = _adversarial()
    names = list(res)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    vals = [res[n]["min_slack_exact"] for n in names]
    colors = ["C3" if res[n]["violated"] else "C2" for n in names]
    ax.bar(range(len(names)), vals, color=colors)
    ax.set_yscale("symlog", linthresh=1e-12)
    top = max(1.0, max(vals))
    ax.set_ylim(min(-1.0, min(vals)) * 10, top * 10)
    for i, v in enumerate(vals):
        ax.text(i, top * 2 if v < 0 else v * 3 + 1e-12, f"{v:.2g}", ha="center", fontsize=8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(names)), [f"{n}\n({res[n]['kind']})" for n in names], fontsize=8)
    ax.set_ylabel("min slack / second-order scale\n(exact dL re-check)")
    ax.set_title(f"Adversarial search ({cfg.n_restarts} restarts x {cfg.n_steps} Adam steps, V = {cfg.n_outcomes});\n"
                 "red = violated (expected only for the halved Hoeffding control)", fontsize=9)
    summary = {n: {k: v for k, v in r.items() if not isinstance(v, np.ndarray)} for n, r in res.items()}
    return save_figure(fig, out_dir, "synthetic_adversarial_slack", {**_config_dict(cfg), "results": summary})


# ---------------------------------------------------------------------------------------------------
# Experiment 3: matched gain
# ---------------------------------------------------------------------------------------------------

def _matched_gain():
    from sft_tilt.synthetic.experiments import matched_gain as ex

    cfg = ex.MatchedGainConfig.preset("default")
    return cfg, ex.run(cfg)


@figure("synthetic_matched_gain", "General degradation at matched domain gain vs step size, with the k1 Delta* + k2 Delta* lam and k1 Delta* + k2 Delta*^2 lam fits and the theory's bound", GROUP)
def draw_matched_gain(out_dir):
    plt = _plt()
    cfg, r = _matched_gain()
    lams, ds = r["learning_rates"], r["target_gain"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    fits = r["fits"]
    grid = np.geomspace(lams[0], lams[-1], 100)
    for i, d in enumerate(ds):
        c = f"C{i}"
        ax.plot(lams, r["matched_general_change"][i], "o", color=c, label=rf"$\Delta^*$ = {d:.3f}")
        ax.plot(lams, r["fixed_matched_general_change"][i], "x", color=c, ms=5)
        ax.plot(grid, fits["linear"]["k1"] * d + fits["linear"]["k2"] * d * grid, "--", color=c, lw=1)
        ax.plot(grid, fits["quadratic"]["k1"] * d + fits["quadratic"]["k2"] * d**2 * grid, ":", color=c, lw=1.5)
    _log_lam_axis(ax, lams)
    ax.set_yscale("log")
    ax.set_xlabel(r"step size $\lambda$ (SGD learning rate)")
    ax.set_ylabel(r"general degradation $D$ at matched gain [nats/token]")
    ax.set_title(rf"o: CE steps, x: fixed-direction tilts; fits: -- $k_1\Delta^* + k_2\Delta^*\lambda$ (rel rms {fits['linear']['rel_rms']:.2f}),"
                 "\n" + rf": $k_1\Delta^* + k_2\Delta^{{*2}}\lambda$ (rel rms {fits['quadratic']['rel_rms']:.2f}); local slope $\propto \Delta^{{*{r['slope_exponent']:.2f}}}$", fontsize=8)
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, d in enumerate(ds):
        ax.plot(lams, r["general_change"][i], "o-", color=f"C{i}", label=rf"$D_T$, $\Delta^*$ = {d:.3f}")
        ax.plot(lams, r["bound_constant_gain_rate"][i], "s--", color=f"C{i}", mfc="none", lw=1)
    _log_lam_axis(ax, lams)
    ax.set_yscale("log")
    ax.set_xlabel(r"step size $\lambda$")
    ax.set_ylabel(r"degradation after stopping step $T$ [nats/token]")
    ax.set_title(f"sft_tilt.theory.matched_gain_bound with constants measured along each trajectory (squares);\n"
                 f"holds in {int(r['bound_holds'].sum())}/{r['bound_holds'].size} cells " + r"(inf = premise $g_{min} > \lambda c_2$ fails)", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, out_dir, "synthetic_matched_gain", {**_config_dict(cfg), "fits": fits, "slope_exponent": r["slope_exponent"]})


# ---------------------------------------------------------------------------------------------------
# Experiment 4: hard tokens
# ---------------------------------------------------------------------------------------------------

def _hard_tokens():
    from sft_tilt.synthetic.experiments import hard_tokens as ex

    cfg = ex.HardTokensConfig.preset("default")
    return cfg, ex.run(cfg)


@figure("synthetic_safe_step_size", "Largest safe step size vs hard-token mass at matched answer gain: chain-of-thought vs label-only targets", GROUP)
def draw_hard_tokens(out_dir):
    plt = _plt()
    cfg, r = _hard_tokens()
    cells = r["cells"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    cot = [c for c in cells if c["format"] == "cot"]
    lab = [c for c in cells if c["format"] == "label"]
    for group, marker, name in ((cot, "o-", "CoT"), (lab, "*", "label-only")):
        m = [c["hard_token_mass"] for c in group]
        v = [c["safe_learning_rate_relative"] for c in group]
        ax.plot(m, v, marker, ms=10 if name == "label-only" else 6, label=rf"{name}: $D \leq$ (1+{cfg.excess_tolerance:g}) $D(\lambda_{{min}})$")
        for c in group:
            if c["safe_learning_rate_relative_flag"] != "interior":
                ax.annotate(c["safe_learning_rate_relative_flag"], (c["hard_token_mass"], c["safe_learning_rate_relative"]), fontsize=6)
        va = [max(c["safe_learning_rate"], r["learning_rates"][0] / 2) for c in group]
        ax.plot(m, va, marker.replace("-", "--"), mfc="none", alpha=0.6, label=rf"{name}: $D \leq$ {cfg.eps:g} (0 plotted at $\lambda_{{min}}/2$)")
    ax.set_yscale("log")
    ax.set_xlabel(r"hard-token mass $m$ = mean$(1 - p_0)$ over targets (sft_tilt.theory.hard_token_mass)")
    ax.set_ylabel(r"largest safe step size $\lambda_{safe}$")
    ax.set_title(rf"matched answer gain $\Delta^*$ = {cfg.target_gain:g} nats; hard targets per response:" + "\n"
                 + ", ".join(f"{c['format']}{'' if c['format'] == 'label' else ' ' + format(c['hard_fraction'], 'g')}: {c['hard_per_response']:.1f}" for c in cells), fontsize=8)
    ax.legend(fontsize=7)
    ax = axes[1]
    for i, c in enumerate(cells):
        lbl = "label-only" if c["format"] == "label" else f"CoT, hard fraction {c['hard_fraction']:g} (m={c['hard_token_mass']:.2f})"
        ax.plot(r["learning_rates"], c["matched_general_change"], "o-", color=f"C{i}", label=lbl)
    ax.axhline(cfg.eps, color="k", ls=":", lw=1)
    _log_lam_axis(ax, r["learning_rates"])
    ax.set_yscale("log")
    ax.set_xlabel(r"step size $\lambda$")
    ax.set_ylabel("general degradation $D$ at matched gain [nats/token]")
    ax.set_title(f"sft_tilt.theory.safe_step_size with measured constants: {[round(c['safe_learning_rate_theory'], 4) for c in cells]}", fontsize=8)
    ax.legend(fontsize=6)
    fig.tight_layout()
    summary = [{k: v for k, v in c.items() if not isinstance(v, np.ndarray)} for c in cells]
    return save_figure(fig, out_dir, "synthetic_safe_step_size", {**_config_dict(cfg), "cells": summary})


# ---------------------------------------------------------------------------------------------------
# Experiment 5: methods
# ---------------------------------------------------------------------------------------------------

def _methods():
    from sft_tilt.synthetic.experiments import methods as ex

    cfg = ex.MethodsConfig.preset("default")
    return cfg, ex.run(cfg)


@figure("synthetic_methods_pareto", "Domain gain vs general degradation of SFT/TALR/DFT/FLOW/L2 across learning rates (mean and min-max over seeds)", GROUP)
def draw_methods(out_dir):
    plt = _plt()
    cfg, r = _methods()
    from sft_tilt.methods.registry import plot_styles
    from sft_tilt.synthetic.experiments.methods import METHOD_CONFIGS

    styles = plot_styles([METHOD_CONFIGS[name] for name in r["per_method"]])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    for st, (name, c) in zip(styles, r["per_method"].items()):
        G, D = c["domain_gain"][:, :, -1], c["general_change"][:, :, -1]  # [seed, lr]
        ax.errorbar(G.mean(0), D.mean(0), xerr=[G.mean(0) - G.min(0), G.max(0) - G.mean(0)],
                    yerr=[D.mean(0) - D.min(0), D.max(0) - D.mean(0)], fmt=st.marker + st.linestyle, color=st.color, capsize=2,
                    label=st.label, ms=4)
    ax.set_yscale("log")
    ax.set_xlabel(f"domain gain $G$ after {cfg.n_epochs} epochs [nats/token]")
    ax.set_ylabel("general degradation $D$ [nats/token]")
    ax.set_title(f"end points over lr = {r['learning_rates'].tolist()} (bars: min-max over {len(r['seeds'])} seeds);\n"
                 "TALR, DFT, FLOW, EAFT, ASFT with mean-one weights (equal effective step); DiSC's TALR unnormalised", fontsize=8)
    ax.legend(fontsize=7)
    ax = axes[1]
    for st, (name, c) in zip(styles, r["per_method"].items()):
        ratio = c["matched_general_change"] / r["target_gain"]
        ratio = np.where(np.isfinite(ratio).all(0), ratio, np.nan)  # a lr counts only if every seed reached the matched gain
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(ratio, axis=0)
            lo, hi = np.nanmin(ratio, 0), np.nanmax(ratio, 0)
        ax.plot(r["learning_rates"], mean, st.marker + st.linestyle, color=st.color, label=st.label)
        ax.fill_between(r["learning_rates"], lo, hi, color=st.color, alpha=0.15)
    _log_lam_axis(ax, r["learning_rates"])
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(rf"degradation per unit gain $D/\Delta^*$ at $\Delta^*$ = {r['target_gain']:g}")
    ax.set_title(r"matched gain, mean and min-max over seeds (missing: some seed never reached $\Delta^*$)", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_dir, "synthetic_methods_pareto", _config_dict(cfg))


# ---------------------------------------------------------------------------------------------------
# Experiment 6: token statistics
# ---------------------------------------------------------------------------------------------------

def _token_stats():
    from sft_tilt.synthetic.experiments import token_stats as ex

    cfg = ex.TokenStatsConfig.preset("default")
    return cfg, ex.run(cfg)


@figure("synthetic_token_stats", "Target-token probabilities over epochs for SFT vs TALR: fraction with p > 0.2, dynamic tau, distribution", GROUP)
def draw_token_stats(out_dir):
    plt = _plt()
    cfg, r = _token_stats()
    from sft_tilt.methods.registry import plot_styles
    from sft_tilt.synthetic.experiments.token_stats import METHODS

    styles = plot_styles([METHODS[name] for name in r["per_method"]])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    edges = r["hist_edges"]
    centers = 0.5 * (edges[1:] + edges[:-1])
    for i, (st, (name, c)) in enumerate(zip(styles, r["per_method"].items())):
        ep = np.arange(c["frac_easy"].shape[1])
        axes[0].plot(ep, c["frac_easy"].mean(0), st.marker + st.linestyle, color=st.color, label=st.label, ms=3)
        axes[0].fill_between(ep, c["frac_easy"].min(0), c["frac_easy"].max(0), color=st.color, alpha=0.2)
        axes[1].plot(ep, c["tau"].mean(0), st.marker + st.linestyle, color=st.color, label=st.label, ms=3)
        h = c["hist"].sum(0)
        axes[2].step(centers, h[-1] / h[-1].sum(), where="mid", color=st.color, label=f"{st.label}, epoch {ep[-1]}")
        if i == 0:
            axes[2].step(centers, h[0] / h[0].sum(), where="mid", color="k", ls=":", label="initial model")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("fraction of target tokens with p > 0.2")
    axes[1].set_xlabel("epoch")
    axes[1].set_ylabel(r"dynamic $\tau$ (median per-response mean loss) [nats]")
    axes[2].set_xlabel("log10 p(target)")
    axes[2].set_ylabel("fraction of target tokens")
    axes[2].set_yscale("log")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.suptitle(f"Token statistics under training (SGD learning rate {cfg.learning_rate:g}, batch {cfg.batch_size}, {len(cfg.seeds)} seeds)", fontsize=9, y=1.03)
    return save_figure(fig, out_dir, "synthetic_token_stats", _config_dict(cfg))

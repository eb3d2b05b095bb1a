"""Figures of the exact theory of one tilt step (float64 numerics), group "theory".

  * ``theory_single_step_bounds``: exact code-length change ``dL(P)`` of one tilt step against its
    expansion (orders 1, 2, 3) and the Jensen / Hoeffding / Bennett bounds, as functions of ``lam``.
  * ``theory_talr_weights``: TALR weights against token probability for several temperatures.

The claims these results decide (1, 2, 6, 8, 9 of ``sft_tilt.claims.table``) are checked in ``sft_tilt/claims/``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sft_tilt.theory import ensure_float64
from sft_tilt.figures._registry import figure, save_figure

GROUP = "theory"


def _softmax_rows(z):
    from scipy.special import logsumexp

    return np.exp(z - logsumexp(z, axis=-1, keepdims=True))



# ----------------------------------------------------------------------------- figures

FIG_A_CONFIG = dict(n_outcomes=6, seed=3, lam_min=1e-3, lam_max=3.0, n_lam=200, q_logit_scale=1.5, p1_noise=0.4, s_scale=1.0)


def _figure_a_instance(cfg):
    rng = np.random.default_rng(cfg["seed"])
    n = cfg["n_outcomes"]
    q = _softmax_rows(cfg["q_logit_scale"] * rng.standard_normal(n))
    P = _softmax_rows(np.log(q) + cfg["p1_noise"] * rng.standard_normal(n))  # general data: near q
    s = cfg["s_scale"] * rng.standard_normal(n)
    return P, q, s


@figure("theory_single_step_bounds", "Exact one-step code-length change vs its step-size expansion (orders 1-3) and the Jensen/Hoeffding/Bennett bounds", GROUP)
def theory_single_step_bounds(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    import sft_tilt.theory

    ensure_float64()
    cfg = dict(FIG_A_CONFIG)
    P, q, s = _figure_a_instance(cfg)
    lam = np.geomspace(cfg["lam_min"], cfg["lam_max"], cfg["n_lam"])
    exact = np.asarray(sft_tilt.theory.single_step_code_length_change(P, q, s, lam))
    curves = {
        "order 1": np.asarray(sft_tilt.theory.tilt_expansion(P, q, s, lam, order=1)),
        "order 2": np.asarray(sft_tilt.theory.tilt_expansion(P, q, s, lam, order=2)),
        "order 3": np.asarray(sft_tilt.theory.tilt_expansion(P, q, s, lam, order=3)),
    }
    bounds = {
        "Jensen (lower)": np.asarray(sft_tilt.theory.jensen_lower_bound(P, q, s, lam)),
        "Hoeffding (upper)": np.asarray(sft_tilt.theory.hoeffding_upper_bound(P, q, s, lam)),
        "Bennett (upper)": np.asarray(sft_tilt.theory.bennett_upper_bound(P, q, s, lam)),
    }
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.2))
    ax0.plot(lam, exact, "k-", lw=2.2, label=r"exact $\Delta L(P)$")
    for (name, y), style in zip(curves.items(), [":", "--", "-."]):
        ax0.plot(lam, y, style, color="tab:blue", label=f"expansion, {name}")
    for (name, y), color in zip(bounds.items(), ["tab:green", "tab:red", "tab:orange"]):
        ax0.plot(lam, y, "-", color=color, alpha=0.8, label=name)
    ax0.set_xlabel(r"step size $\lambda$")
    ax0.set_ylabel(r"code-length change $\Delta L(P)$ (nats)")
    ax0.set_title(r"One tilt step $q \to q\,e^{\lambda s}/Z$ on general data $P$")
    ax0.set_ylim(min(exact.min(), bounds["Jensen (lower)"].min()) - 0.05, exact.max() * 2 + 0.05)
    ax0.legend(fontsize=7.5)
    for (name, y), style in zip(curves.items(), [":", "--", "-."]):
        ax1.loglog(lam, np.abs(exact - y), style, color="tab:blue", label=f"|exact - {name}|")
    for (name, y), color in zip(bounds.items(), ["tab:green", "tab:red", "tab:orange"]):
        ax1.loglog(lam, np.abs(y - exact), "-", color=color, alpha=0.8, label=f"slack, {name}")
    ax1.set_xlabel(r"step size $\lambda$")
    ax1.set_ylabel("absolute error / slack (nats)")
    ax1.set_title(r"Remainders scale as $\lambda^2, \lambda^3, \lambda^4$; bound slacks as $\lambda^2$")
    ax1.legend(fontsize=7.5)
    fig.tight_layout()
    config = {**cfg, "P": P.tolist(), "q": q.tolist(), "s": s.tolist(),
              "min_slack": {k: float(np.min((v - exact) if "upper" in k else (exact - v))) for k, v in bounds.items()}}
    return save_figure(fig, out_dir, "theory_single_step_bounds", config)


# A floor on *normalised* weights must scale like 1/n: floor 0.01 with n = 400 tokens (mean weight 0.0025)
# would lift every weight to the floor and give back plain SFT. The figure therefore floors at floor / n.
FIG_B_CONFIG = dict(taus=[0.1, 0.3, 1.0, 3.0, "inf"], floor=0.01, n_tokens=400, hard_fraction=0.1, seed=0)


@figure("theory_talr_weights", "TALR weights softmax(-l/tau) against token probability for several tau (with and without floor)", GROUP)
def theory_talr_weights(out_dir: Path) -> dict:
    import matplotlib.pyplot as plt

    import sft_tilt.theory

    ensure_float64()
    cfg = dict(FIG_B_CONFIG)
    taus = [np.inf if t == "inf" else float(t) for t in cfg["taus"]]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.4))
    p_grid = np.geomspace(1e-3, 1.0, 300)
    losses_grid = np.concatenate([[0.0], -np.log(p_grid)])  # include a p = 1 reference token
    colors = plt.cm.plasma(np.linspace(0.05, 0.85, len(taus)))
    for tau, c in zip(taus, colors):
        w = np.asarray(sft_tilt.theory.talr_weights(losses_grid, tau))
        ax0.loglog(p_grid, w[1:] / w[0], color=c, label=rf"$\tau$ = {tau:g}")
        u = np.asarray(sft_tilt.theory.talr_weights_unnormalised(-np.log(p_grid), tau, floor=cfg["floor"]))
        ax0.loglog(p_grid, u, ":", color=c, lw=1)
    ax0.axhline(np.exp(-1), color="grey", ls="--", lw=0.6)
    ax0.axhline(np.exp(-3), color="grey", ls="--", lw=0.6)
    ax0.set_ylim(1e-6, 2)
    ax0.set_xlabel("token probability p under the current model")
    ax0.set_ylabel("weight relative to a token with p = 1")
    ax0.set_title(rf"$w \propto p^{{1/\tau}}$ (solid); dotted: $\max(p^{{1/\tau}}$, {cfg['floor']}); dashed: $e^{{-1}}, e^{{-3}}$", fontsize=9)
    ax0.legend(fontsize=8)
    # a batch: mostly easy tokens, a few hard ones
    rng = np.random.default_rng(cfg["seed"])
    n, n_hard = cfg["n_tokens"], int(cfg["hard_fraction"] * cfg["n_tokens"])
    p = np.concatenate([rng.beta(20, 1, n - n_hard), rng.beta(1, 4, n_hard)])
    losses = -np.log(p)
    order = np.argsort(p)
    for tau, c in zip(taus, colors):
        w = np.asarray(sft_tilt.theory.talr_weights(losses, tau))
        ax1.semilogy(p[order], w[order] * n, "-", color=c, label=rf"$\tau$ = {tau:g}")
        wf = np.asarray(sft_tilt.theory.talr_weights(losses, tau, floor=cfg["floor"] / n))
        ax1.semilogy(p[order], wf[order] * n, ":", color=c, lw=1)
    ax1.axhline(1.0, color="grey", lw=0.6)
    ax1.set_ylim(1e-4, 10)
    ax1.set_xlabel("token probability p")
    ax1.set_ylabel("n x normalised weight (1 = plain SFT)")
    ax1.set_title(f"One batch of n={n} tokens ({n_hard} hard); dotted: floor {cfg['floor']}/n, renormalised", fontsize=9)
    ax1.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, out_dir, "theory_talr_weights", cfg)

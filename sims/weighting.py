"""Token loss weightings for fine-tuning: SFT, TALR, DFT, FLOW, and the L2 pull toward the start.

Pure ``jax.numpy`` functions shared by the synthetic simulator (``sims.synthetic.training``) and the
real-LM harness. Conventions (all weightings):

* ``losses`` ``[B, T]``: the per-token loss ``l_bt = -log q(y_bt | context_bt)`` (NLL of the target token,
  nats); ``mask`` ``[B, T]``: ``1.0`` on supervised (response) tokens, ``0.0`` elsewhere.
* ``token_weights`` returns ``w`` ``[B, T]`` wrapped in ``jax.lax.stop_gradient`` (the weights are constants
  for the gradient, as in the paper's section 4.3 and every peer implementation) and exactly ``0`` where
  ``mask == 0``.
* ``weighted_loss`` is ``sum_bt w_bt l_bt m_bt / sum_bt m_bt``: normalised by the number of supervised
  tokens ``N``, not by ``sum w``. This is the token-mean cross-entropy for SFT (``w = 1``); dividing by a count
  rather than by the weights keeps gradient accumulation exact (the denominator does not depend on the
  micro-batch's weights: the transformers ``num_items_in_batch`` convention, also FLOW's and DiSC's) and makes
  the unnormalised weightings shrink the effective step size, which is their documented behaviour.

Weightings (``w`` before the mask; ``p = exp(-l)`` the detached target-token probability):

* ``sft``:  ``w = 1``.
* ``talr``: ``w = max(exp(-l / tau), floor)`` with ``tau`` fixed or dynamic
  (``tau = max(median_b mean_{t in b} l_bt, 1e-6)``, the median over sequences of the per-sequence mean
  supervised loss; detached and recomputed every call). ``exp(-l/tau) = p^(1/tau)``.
* ``dft``:  ``w = exp(-l) = p`` (Dynamic Fine-Tuning, arXiv 2508.05629). No floor.
* ``flow``: ``w_bt = sequence_weights_b``: static per-sequence weights ``exp(-f_b(theta0) / tau)`` computed
  once from the *initial* model by :func:`flow_sequence_weights` (Sanyal et al., ICML 2025). No floor.

Normalisation of the weights over the supervised tokens of the batch (``normalization``):

* ``"none"``: the raw weights above (the third-party DiSC TALR: unnormalised ``max(p^(1/tau), 0.01)``
  divided by the token count). This is the **default**: it is what the only readable TALR implementation does.
* ``"mean"``: ``w <- N w / sum w`` (mean weight one over supervised tokens; the "optional" line of the paper's
  reconstructed Algorithm 1, section 4.4 of shared/paper.md): keeps the SFT step-size scale.
* ``"simplex"``: weights on the probability simplex over the batch's supervised tokens, the paper's KKT
  solution ``w = softmax(-l / tau)`` of ``min_{w in simplex} sum w_i l_i + tau sum w_i log w_i`` (section 4.1),
  computed by ``theory.talr_weights``; there the floor is applied to the *simplex* weight and the result
  renormalised (the theory package's convention), so a floor in this mode should be of order ``1/N``.

The exponential weights come from the theory package's closed forms (``theory.talr_weights_unnormalised`` for
``"none"``/``"mean"``, ``theory.talr_weights`` for ``"simplex"``; DFT is the ``tau = 1``, no-floor case).
Without a binding floor the three normalisations differ only by a positive per-batch scale factor
(``sum w`` and ``N``), so they give parallel gradients; with a floor, ``"none"`` and ``"mean"`` still agree up to
scale (floor on the raw weight, then rescale: Algorithm 1's order). Whether the paper re-normalises after
flooring is not known (shared/paper.md 4.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import theory

__all__ = [
    "METHODS",
    "TAU_MODES",
    "NORMALIZATIONS",
    "TAU_MIN",
    "LossWeighting",
    "token_nll",
    "sequence_mean_losses",
    "dynamic_tau",
    "flow_sequence_weights",
    "token_weights",
    "weighted_loss",
    "reweighted_loss",
    "l2_penalty",
]

METHODS = ("sft", "talr", "dft", "flow")
TAU_MODES = ("dynamic", "fixed")
NORMALIZATIONS = ("none", "mean", "simplex")
TAU_MIN = 1e-6  # lower clamp of the dynamic temperature (DiSC's value)


@dataclass(frozen=True)
class LossWeighting:
    """Which token weighting to apply; see the module docstring for the formulas.

    Attributes:
        method: ``"sft" | "talr" | "dft" | "flow"``.
        tau_mode: TALR temperature rule, ``"dynamic"`` (batch median of per-sequence mean loss) or ``"fixed"``.
        tau: the fixed TALR temperature (used when ``tau_mode == "fixed"``), ``> 0``.
        floor: TALR weight floor ``w_min`` in ``[0, 1)`` applied to the raw weight ``p^(1/tau)`` (DiSC uses 0.01)
            for ``"none"``/``"mean"``, to the simplex weight for ``"simplex"``; ``0`` disables it. Only TALR uses it.
        normalization: ``"none" | "mean" | "simplex"``.
    """

    method: str = "sft"
    tau_mode: str = "dynamic"
    tau: float = 1.0
    floor: float = 0.01
    normalization: str = "none"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method: {self.method!r} is not one of {METHODS}")
        if self.tau_mode not in TAU_MODES:
            raise ValueError(f"tau_mode: {self.tau_mode!r} is not one of {TAU_MODES}")
        if not (isinstance(self.tau, (int, float)) and np.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau: must be a finite number > 0, got {self.tau!r}")
        if not (isinstance(self.floor, (int, float)) and 0.0 <= self.floor < 1.0):
            raise ValueError(f"floor: must lie in [0, 1), got {self.floor!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization: {self.normalization!r} is not one of {NORMALIZATIONS}")

    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``talr(dyn, floor=0.01, none)``."""
        if self.method == "talr":
            tau = "dyn" if self.tau_mode == "dynamic" else f"tau={self.tau:g}"
            return f"talr({tau}, floor={self.floor:g}, {self.normalization})"
        if self.normalization != "none":
            return f"{self.method}({self.normalization})"
        return self.method


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_batch(losses, mask, name_losses: str = "losses") -> tuple[jax.Array, jax.Array]:
    losses = jnp.asarray(losses)
    mask = jnp.asarray(mask, dtype=losses.dtype)
    if losses.ndim != 2:
        raise ValueError(f"{name_losses}: expected shape [B, T], got {losses.shape}")
    if mask.shape != losses.shape:
        raise ValueError(f"mask: shape {mask.shape} does not match {name_losses} shape {losses.shape}")
    if _concrete(losses):
        sup = np.asarray(losses)[np.asarray(mask) > 0]
        if np.any(np.isnan(sup)):
            raise ValueError(f"{name_losses}: NaN on a supervised token")
        if np.any(sup < 0):
            raise ValueError(f"{name_losses}: a negative NLL on a supervised token ({sup.min()!r})")
    if _concrete(mask):
        m = np.asarray(mask)
        if not np.all((m == 0) | (m == 1)):
            raise ValueError("mask: entries must be 0 or 1")
    return losses, mask


def token_nll(logits, targets) -> jax.Array:
    """Per-token loss ``l = -log softmax(logits)[target] = logsumexp(logits) - logits[target]``.

    Args:
        logits: ``[..., V]`` unnormalised log-probabilities (``-inf`` entries allowed, not at the target).
        targets: integer ``[...]`` target indices.
    Returns:
        ``[...]`` non-negative NLL in nats; invariant to adding a constant to the logits.
    """
    logits = jnp.asarray(logits)
    targets = jnp.asarray(targets)
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"targets: shape {targets.shape} does not match logits batch shape {logits.shape[:-1]}")
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.take_along_axis(logp, targets[..., None].astype(jnp.int32), axis=-1)[..., 0]


def sequence_mean_losses(losses, mask) -> jax.Array:
    """Per-sequence mean supervised loss ``f_b = sum_t l_bt m_bt / sum_t m_bt``; ``NaN`` for a sequence with no
    supervised token (so that medians can skip it)."""
    losses, mask = _check_batch(losses, mask)
    count = mask.sum(axis=-1)
    total = jnp.where(mask > 0, losses, 0.0).sum(axis=-1)
    return jnp.where(count > 0, total / jnp.maximum(count, 1.0), jnp.nan)


def dynamic_tau(losses, mask) -> jax.Array:
    """TALR's dynamic temperature ``tau = max(median_b f_b, 1e-6)``, ``f_b`` = per-sequence mean supervised loss.

    Sequences without supervised tokens are skipped; a batch with none at all gets ``tau = 1e-6``. The result
    is detached (``stop_gradient``): the temperature is a constant of the step.
    """
    per_seq = sequence_mean_losses(losses, mask)
    med = jnp.nanmedian(per_seq)
    tau = jnp.where(jnp.isnan(med), TAU_MIN, jnp.maximum(med, TAU_MIN))
    return jax.lax.stop_gradient(tau)


def flow_sequence_weights(initial_sequence_losses, tau=None) -> jax.Array:
    """FLOW's static sample weights ``w_b = exp(-f_b(theta0) / tau)``, ``tau = median_b f_b(theta0)`` by default.

    ``f_b(theta0)`` is each training sequence's loss under the *initial* model (here: mean supervised token NLL,
    :func:`sequence_mean_losses`), computed once before training. The weights solve
    ``min_{pi in simplex} sum pi_b f_b + tau sum pi_b log pi_b`` up to the normalising constant, which FLOW drops
    (its trainer divides by the token count). ``tau`` is clamped below at ``1e-6``.

    Args:
        initial_sequence_losses: ``[N]`` finite, non-negative losses of the whole training set at ``theta0``.
        tau: optional fixed temperature ``> 0``; default the median of ``initial_sequence_losses``.
    Returns:
        ``[N]`` weights in ``(0, 1]``.
    """
    f = jnp.asarray(initial_sequence_losses)
    if f.ndim != 1 or f.shape[0] == 0:
        raise ValueError(f"initial_sequence_losses: expected a non-empty 1-D array, got shape {f.shape}")
    if _concrete(f) and (not np.all(np.isfinite(np.asarray(f))) or np.any(np.asarray(f) < 0)):
        raise ValueError("initial_sequence_losses: must be finite and non-negative")
    if tau is None:
        tau = jnp.maximum(jnp.median(f), TAU_MIN)
    elif _concrete(tau) and not (np.isfinite(float(tau)) and float(tau) > 0):
        raise ValueError(f"tau: must be a finite number > 0, got {tau!r}")
    return jnp.exp(-f / tau)


def _exp_weights(losses, mask, tau, floor, normalization):
    """``exp(-l / tau)`` weights over the batch's supervised tokens via the theory package's closed forms:
    ``theory.talr_weights`` (simplex) and ``theory.talr_weights_unnormalised`` (raw, DiSC)."""
    flat_l = losses.reshape(-1)
    flat_m = (mask > 0).reshape(-1)
    floor = floor if floor > 0 else None
    if normalization == "simplex":
        w = theory.talr_weights(flat_l, tau, floor=floor, mask=flat_m)
    else:
        w = theory.talr_weights_unnormalised(flat_l, tau, floor=floor, mask=flat_m)
        if normalization == "mean":
            total = w.sum()
            w = jnp.where(total > 0, w * (flat_m.sum() / jnp.where(total > 0, total, 1.0)), 0.0)
    return w.reshape(losses.shape)


def _sequence_weight_table(losses, sequence_weights):
    if sequence_weights is None:
        raise ValueError("sequence_weights: FLOW needs the static per-sequence weights (flow_sequence_weights)")
    sw = jnp.asarray(sequence_weights, dtype=losses.dtype)
    if sw.shape != losses.shape[:1]:
        raise ValueError(f"sequence_weights: expected shape {losses.shape[:1]}, got {sw.shape}")
    if _concrete(sw) and (not np.all(np.isfinite(np.asarray(sw))) or np.any(np.asarray(sw) < 0)):
        raise ValueError("sequence_weights: must be finite and non-negative")
    return jnp.broadcast_to(sw[:, None], losses.shape)


def _normalise(w, mask, normalization):
    if normalization == "none":
        return w
    total = w.sum()
    scale = mask.sum() if normalization == "mean" else 1.0
    return jnp.where(total > 0, w * (scale / jnp.where(total > 0, total, 1.0)), 0.0)


def token_weights(weighting: LossWeighting, losses, mask, sequence_weights=None) -> jax.Array:
    """Detached token weights ``w`` ``[B, T]`` of ``weighting`` (module docstring), zero where ``mask == 0``.

    ``normalization`` then rescales over the supervised tokens of the whole batch: ``"mean"``:
    ``N w / sum w``; ``"simplex"``: ``theory.talr_weights`` over the batch (needs at least one supervised token).
    Masked-out tokens never influence the weights of supervised ones (their losses may be anything, even NaN).
    """
    if not isinstance(weighting, LossWeighting):
        raise ValueError(f"weighting: expected a LossWeighting, got {type(weighting).__name__}")
    losses, mask = _check_batch(losses, mask)
    on = mask > 0
    safe_losses = jnp.where(on, losses, 0.0)
    if weighting.method == "sft":
        w = _normalise(mask, mask, weighting.normalization)
    elif weighting.method == "flow":
        w = _normalise(jnp.where(on, _sequence_weight_table(losses, sequence_weights), 0.0), mask, weighting.normalization)
    elif weighting.method == "dft":
        w = _exp_weights(safe_losses, mask, 1.0, 0.0, weighting.normalization)
    else:
        tau = dynamic_tau(safe_losses, mask) if weighting.tau_mode == "dynamic" else weighting.tau
        w = _exp_weights(safe_losses, mask, tau, weighting.floor, weighting.normalization)
    return jax.lax.stop_gradient(jnp.where(on, w, 0.0))


def weighted_loss(losses, mask, weights) -> jax.Array:
    """Scalar ``sum_bt w_bt l_bt m_bt / sum_bt m_bt`` (``0`` for a batch with no supervised token).

    Normalised by the supervised-token count ``N``, not by ``sum w`` (module docstring: gradient accumulation
    stays exact and SFT is the token-mean CE). Gradients flow through ``losses`` only if ``weights`` were
    detached (they are when they come from :func:`token_weights`).
    """
    losses, mask = _check_batch(losses, mask)
    weights = jnp.asarray(weights, dtype=losses.dtype)
    if weights.shape != losses.shape:
        raise ValueError(f"weights: shape {weights.shape} does not match losses shape {losses.shape}")
    on = mask > 0
    total = jnp.where(on, weights * losses, 0.0).sum()
    return total / jnp.maximum(mask.sum(), 1.0)


def reweighted_loss(weighting: LossWeighting, losses, mask, sequence_weights=None) -> jax.Array:
    """``weighted_loss(losses, mask, token_weights(weighting, losses, mask, sequence_weights))``: the training
    objective of one batch, whose gradient is ``(1/N) sum_i w_i grad l_i`` with ``w`` held fixed."""
    return weighted_loss(losses, mask, token_weights(weighting, losses, mask, sequence_weights))


def l2_penalty(params: Any, params0: Any, mu: float) -> jax.Array:
    """``mu / 2 * ||theta - theta0||_2^2`` summed over every leaf of the parameter pytrees (L2-Reg baseline)."""
    if _concrete(mu) and not (np.isfinite(float(mu)) and float(mu) >= 0):
        raise ValueError(f"mu: must be a finite number >= 0, got {mu!r}")
    leaves = jax.tree_util.tree_leaves(params)
    leaves0 = jax.tree_util.tree_leaves(params0)
    if len(leaves) != len(leaves0) or jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(params0):
        raise ValueError("params0: pytree structure does not match params")
    sq = sum(jnp.sum((jnp.asarray(a) - jnp.asarray(b)) ** 2) for a, b in zip(leaves, leaves0))
    return 0.5 * mu * sq

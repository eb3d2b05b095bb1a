"""Token loss weightings for fine-tuning: SFT, TALR and its variants, DFT, FLOW, custom functions, and the L2 pull.

Pure ``jax.numpy`` functions shared by the synthetic simulator (``sft_tilt.synthetic.training``) and the
real-LM harness; the named fine-tuning methods built from them live in the registry :mod:`sft_tilt.methods.registry`.
Conventions (all weightings):

* ``losses`` ``[B, T]``: the per-token loss ``l_bt = -log q(y_bt | context_bt)`` (NLL of the target token,
  nats); ``mask`` ``[B, T]``: ``1.0`` on supervised (response) tokens, ``0.0`` elsewhere; ``N = sum_bt m_bt``.
* ``token_weights`` returns ``w`` ``[B, T]`` wrapped in ``jax.lax.stop_gradient`` (the weights are constants
  for the gradient, Lin et al. 2026, Sec. 4.3, and every peer implementation) and exactly ``0`` where
  ``mask == 0``.
* ``weighted_loss`` is ``sum_bt w_bt l_bt m_bt / N``: normalised by the number of supervised tokens, not by
  ``sum w``. This is the token-mean cross-entropy for SFT (``w = 1``); dividing by a count rather than by the
  weights keeps gradient accumulation exact (the denominator does not depend on the micro-batch's weights: the
  transformers ``num_items_in_batch`` convention, also FLOW's and DiSC's) and makes the unnormalised weightings
  shrink the effective step size, which is their documented behaviour.

Weighting kinds (``w`` before the mask; ``p = exp(-l)`` the detached target-token probability):

* ``sft``:  ``w = 1``.
* ``talr``: ``w = max(max(p, min_prob)^(1/tau), floor)`` with ``tau`` fixed or dynamic,
  ``tau = max(median_b f_b, 1e-6)``, ``f_b = sum_t l_bt m_bt / sum_t m_bt`` the per-sequence mean supervised
  loss (detached, recomputed every call). ``median`` is ``"average"`` (mean of the two middle values for an
  even count, NumPy) or ``"lower"`` (the lower middle value, ``torch.median``); ``empty_sequences`` is
  ``"skip"`` (a sequence without supervised tokens is left out of the median) or ``"zero"`` (it counts as
  ``f_b = 0``, DiSC's ``sum / clamp(count, 1)``). ``min_prob = 0`` disables the probability clamp.
* ``dft``:  ``w = p`` (Dynamic Fine-Tuning, Wu et al. 2025, arXiv 2508.05629; TRL's ``dft`` loss). No floor.
* ``flow``: ``w_bt = sequence_weights_b``: static per-sequence weights ``exp(-f_b(theta0) / tau)`` computed
  once from the *initial* model by :func:`flow_sequence_weights` (Sanyal et al., ICML 2025). No floor.
* ``eaft``: ``w = (H_k / entropy_scale)^alpha``, ``H_k = -sum_j pi_j log pi_j`` the entropy of the softmax over
  the ``k`` largest logits at the position (detached; :func:`topk_entropy`): entropy-adaptive fine-tuning (EAFT,
  Diao et al. 2026, arXiv 2601.02151) as LLaMA-Factory's ``use_eaft_loss`` computes it (``k = 20``,
  ``entropy_scale = 3.0``, about ``log 20``; ``alpha`` is ``eaft_alpha``). Confident predictions (low entropy),
  right or wrong, get small weights. Needs the per-token entropies (``entropies`` argument).
* ``function``: ``w = function(l, m)`` for a user function of the detached losses (``0`` off the mask) and the
  mask, e.g. ``w = p^2`` (how a new method is added without editing this module).

A KL anchor to the initial model (ASFT, SFT-KL) is a term added to the objective, not a weighting:
:func:`kl_to_reference` gives ``(1/N) sum_t m_t KL(q_0(.|t) || q_theta(.|t))``.

Normalisation of the weights over the supervised tokens of the batch (``normalization``):

* ``"none"``: the raw weights above; the loss is ``sum w l / N`` (DiSC ``talr_loss(normalize="mean")``, which
  divides the weighted sum by the supervised-token count).
* ``"batch_size"``: ``w <- w N / B``, so the loss is ``sum w l / B`` with ``B`` the number of sequences in the
  batch, empty ones included (DiSC ``talr_loss(normalize="sum")``, which divides by ``logits.size(0)``).
* ``"mean"``: ``w <- N w / sum w`` (mean weight one over supervised tokens; the "optional" line of the paper's
  Algorithm 1, Lin et al. 2026, Sec. 4.4): keeps the SFT step-size scale.
* ``"simplex"``: weights on the probability simplex over the batch's supervised tokens, the paper's KKT
  solution ``w = softmax(-l / tau)`` of ``min_{w in simplex} sum w_i l_i + tau sum w_i log w_i`` (Sec. 4.1),
  computed by ``sft_tilt.theory.talr_weights``; there the floor is applied to the *simplex* weight and the result
  renormalised (the theory package's convention), so a floor in this mode should be of order ``1/N``.

The exponential weights come from the theory package's closed forms (``sft_tilt.theory.talr_weights_unnormalised`` for
the unnormalised modes, ``sft_tilt.theory.talr_weights`` for ``"simplex"``; DFT is the ``tau = 1``, no-floor case; the
``min_prob`` clamp is ``l <- min(l, -log min_prob)`` before them). Without a binding floor the normalisations
differ only by a positive per-batch scale factor, so they give parallel gradients; with a floor, ``"none"``,
``"batch_size"`` and ``"mean"`` still agree up to scale (floor on the raw weight, then rescale: Algorithm 1's
order). Whether the paper re-normalises after flooring is not stated (Lin et al. 2026, Sec. 4.3).

How the registered TALR variants (:mod:`sft_tilt.methods.registry`) differ, on one batch of ``B = 4`` sequences with target
probabilities ``(0.02, 0.01)``, ``(0.5, 1e-9)``, ``(0.03)`` and one with no supervised token (``N = 5``; per-
sequence mean losses 4.2586, 10.7082, 3.5066; the ``1e-9`` token is "hopeless"):

==================  ==========================================  ======  =======  ======  ======
variant             tau rule; min_prob; normalisation           tau     w(1e-9)  w(0.5)  loss
==================  ==========================================  ======  =======  ======  ======
talr                average median, skip empty; 0; none         4.2586  0.01000  0.8498  1.0917
talr-disc           lower median, empty = 0; 1e-6; none         3.5066  0.01945  0.8206  0.9565
talr-disc (sum)     as talr-disc; batch_size (loss / B)         3.5066  0.02431  1.0258  1.1956
talr-mean           as talr; mean (mean weight 1)               4.2586  0.02455  2.0860  2.6797
talr-simplex        as talr, floor 0; simplex (sum w = 1)       4.2586  0.00379  0.4177  0.5319
==================  ==========================================  ======  =======  ======  ======

(``w`` after normalisation; ``loss = sum w l / N``; computed by ``token_weights`` and ``weighted_loss``.) DiSC's
hopeless-token weight is ``max(1e-6^(1/tau), 0.01)``: here ``0.01945``, not the floor ``0.01`` (at ``tau = 3.8``:
``0.026``), and its lower median with the empty sequence counted as 0 gives a smaller ``tau``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

import sft_tilt.theory

__all__ = [
    "KINDS",
    "TAU_MODES",
    "NORMALIZATIONS",
    "MEDIANS",
    "EMPTY_SEQUENCES",
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
    "topk_entropy",
    "kl_to_reference",
]

KINDS = ("sft", "talr", "dft", "flow", "eaft", "function")
TAU_MODES = ("dynamic", "fixed")
NORMALIZATIONS = ("none", "batch_size", "mean", "simplex")
MEDIANS = ("average", "lower")
EMPTY_SEQUENCES = ("skip", "zero")
TAU_MIN = 1e-6  # lower clamp of the dynamic temperature (DiSC's value)


@dataclass(frozen=True)
class LossWeighting:
    """Which token weighting to apply; see the module docstring for the formulas.

    Attributes:
        kind: ``"sft" | "talr" | "dft" | "flow" | "function"``.
        tau_mode: TALR temperature rule, ``"dynamic"`` (median over sequences of the per-sequence mean loss) or
            ``"fixed"``.
        tau: the fixed TALR temperature (used when ``tau_mode == "fixed"``), ``> 0``.
        floor: TALR weight floor ``w_min`` in ``[0, 1)`` applied to the raw weight ``p^(1/tau)`` (DiSC uses 0.01)
            for the unnormalised modes, to the simplex weight for ``"simplex"``; ``0`` disables it. Only TALR uses it.
        normalization: ``"none" | "batch_size" | "mean" | "simplex"``.
        min_prob: TALR clamp ``p <- max(p, min_prob)`` before ``p^(1/tau)``, in ``[0, 1)``; ``0`` disables it
            (DiSC: ``1e-6``).
        median: dynamic-tau median of an even number of sequences, ``"average"`` or ``"lower"`` (``torch.median``).
        empty_sequences: a sequence without supervised tokens in the dynamic tau: ``"skip"`` or ``"zero"``.
        function: for ``kind == "function"``, ``function(losses, mask) -> w`` ``[B, T]`` (jax-traceable; gets
            the detached losses with ``0`` off the mask).
        eaft_alpha: EAFT's exponent ``alpha > 0`` of the normalised entropy.
        eaft_k: EAFT's number of largest logits whose softmax entropy is the token's entropy (``>= 2``).
        entropy_scale: EAFT's divisor of the entropy (``> 0``; LLaMA-Factory: 3.0).
    """

    kind: str = "sft"
    tau_mode: str = "dynamic"
    tau: float = 1.0
    floor: float = 0.01
    normalization: str = "none"
    min_prob: float = 0.0
    median: str = "average"
    empty_sequences: str = "skip"
    function: Callable[[Any, Any], Any] | None = None
    eaft_alpha: float = 1.0
    eaft_k: int = 20
    entropy_scale: float = 3.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {KINDS}")
        if self.tau_mode not in TAU_MODES:
            raise ValueError(f"tau_mode: {self.tau_mode!r} is not one of {TAU_MODES}")
        if not (isinstance(self.tau, (int, float)) and np.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"tau: must be a finite number > 0, got {self.tau!r}")
        if not (isinstance(self.floor, (int, float)) and 0.0 <= self.floor < 1.0):
            raise ValueError(f"floor: must lie in [0, 1), got {self.floor!r}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization: {self.normalization!r} is not one of {NORMALIZATIONS}")
        if not (isinstance(self.min_prob, (int, float)) and 0.0 <= self.min_prob < 1.0):
            raise ValueError(f"min_prob: must lie in [0, 1), got {self.min_prob!r}")
        if self.median not in MEDIANS:
            raise ValueError(f"median: {self.median!r} is not one of {MEDIANS}")
        if self.empty_sequences not in EMPTY_SEQUENCES:
            raise ValueError(f"empty_sequences: {self.empty_sequences!r} is not one of {EMPTY_SEQUENCES}")
        if (self.kind == "function") != callable(self.function):
            raise ValueError("function: a callable is required for kind 'function' and only there")
        if not (isinstance(self.eaft_alpha, (int, float)) and np.isfinite(self.eaft_alpha) and self.eaft_alpha > 0):
            raise ValueError(f"eaft_alpha: must be a finite number > 0, got {self.eaft_alpha!r}")
        if not (isinstance(self.eaft_k, int) and not isinstance(self.eaft_k, bool) and self.eaft_k >= 2):
            raise ValueError(f"eaft_k: must be an integer >= 2, got {self.eaft_k!r}")
        if not (isinstance(self.entropy_scale, (int, float)) and np.isfinite(self.entropy_scale) and self.entropy_scale > 0):
            raise ValueError(f"entropy_scale: must be a finite number > 0, got {self.entropy_scale!r}")

    @property
    def needs_entropies(self) -> bool:
        """True when the weights need each token's top-k entropy (EAFT)."""
        return self.kind == "eaft"
    @property
    def label(self) -> str:
        """Short human-readable name, e.g. ``talr(dyn, floor=0.01, none)``."""
        if self.kind == "talr":
            tau = "dyn" if self.tau_mode == "dynamic" else f"tau={self.tau:g}"
            extra = "".join([f", min_prob={self.min_prob:g}" if self.min_prob > 0 else "",
                             f", {self.median} median" if self.median != "average" else "",
                             f", empty={self.empty_sequences}" if self.empty_sequences != "skip" else ""])
            return f"talr({tau}, floor={self.floor:g}, {self.normalization}{extra})"
        name = getattr(self.function, "__name__", "function") if self.kind == "function" else self.kind
        if self.normalization != "none":
            return f"{name}({self.normalization})"
        return name


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


def dynamic_tau(losses, mask, median: str = "average", empty_sequences: str = "skip") -> jax.Array:
    """TALR's dynamic temperature ``tau = max(median_b f_b, 1e-6)``, ``f_b`` = per-sequence mean supervised loss.

    Args:
        losses, mask: ``[B, T]`` (module docstring).
        median: ``"average"``: the mean of the two middle values for an even count (NumPy); ``"lower"``: the lower
            middle value ``sorted(f)[(n - 1) // 2]`` (``torch.median``, DiSC).
        empty_sequences: ``"skip"``: sequences without supervised tokens are left out (a batch with none at all
            gets ``tau = 1e-6``); ``"zero"``: they count as ``f_b = 0`` (DiSC's ``sum / clamp(count, 1)``).
    Returns:
        The detached (``stop_gradient``) scalar temperature: a constant of the step.
    """
    if median not in MEDIANS:
        raise ValueError(f"median: {median!r} is not one of {MEDIANS}")
    if empty_sequences not in EMPTY_SEQUENCES:
        raise ValueError(f"empty_sequences: {empty_sequences!r} is not one of {EMPTY_SEQUENCES}")
    per_seq = sequence_mean_losses(losses, mask)
    if empty_sequences == "zero":
        per_seq = jnp.where(jnp.isnan(per_seq), 0.0, per_seq)
    if median == "average":
        med = jnp.nanmedian(per_seq)
    else:  # lower middle of the non-NaN values; NaN sorts last
        k = jnp.sum(~jnp.isnan(per_seq))
        med = jnp.where(k > 0, jnp.sort(per_seq)[jnp.maximum((k - 1) // 2, 0)], jnp.nan)
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
    ``sft_tilt.theory.talr_weights`` (simplex) and ``sft_tilt.theory.talr_weights_unnormalised`` (raw, DiSC), then rescaled."""
    if _concrete(mask) and not np.any(np.asarray(mask) > 0):
        return jnp.zeros_like(losses)  # no supervised token: nothing to weight (the loss is 0, as in DiSC)
    flat_l = losses.reshape(-1)
    flat_m = (mask > 0).reshape(-1)
    floor = floor if floor > 0 else None
    if normalization == "simplex":
        w = sft_tilt.theory.talr_weights(flat_l, tau, floor=floor, mask=flat_m)
    else:
        w = sft_tilt.theory.talr_weights_unnormalised(flat_l, tau, floor=floor, mask=flat_m)
        if normalization == "mean":
            total = w.sum()
            w = jnp.where(total > 0, w * (flat_m.sum() / jnp.where(total > 0, total, 1.0)), 0.0)
        elif normalization == "batch_size":
            w = w * (flat_m.sum() / losses.shape[0])
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
    if normalization == "batch_size":
        return w * (mask.sum() / mask.shape[0])
    total = w.sum()
    scale = mask.sum() if normalization == "mean" else 1.0
    return jnp.where(total > 0, w * (scale / jnp.where(total > 0, total, 1.0)), 0.0)


def _sft_weights(weighting, losses, mask, sequence_weights):
    return _normalise(mask, mask, weighting.normalization)


def _flow_weights(weighting, losses, mask, sequence_weights):
    table = _sequence_weight_table(losses, sequence_weights)
    return _normalise(jnp.where(mask > 0, table, 0.0), mask, weighting.normalization)


def _dft_weights(weighting, losses, mask, sequence_weights):
    return _exp_weights(losses, mask, 1.0, 0.0, weighting.normalization)


def _talr_weights(weighting, losses, mask, sequence_weights):
    fixed = weighting.tau_mode == "fixed"
    tau = weighting.tau if fixed else dynamic_tau(losses, mask, weighting.median, weighting.empty_sequences)
    if weighting.min_prob > 0:  # p <- max(p, min_prob)  <=>  l <- min(l, -log min_prob)
        losses = jnp.minimum(losses, -np.log(weighting.min_prob))
    return _exp_weights(losses, mask, tau, weighting.floor, weighting.normalization)


def _function_weights(weighting, losses, mask, sequence_weights):
    w = jnp.asarray(weighting.function(losses, mask), dtype=losses.dtype)
    if w.shape != losses.shape:
        raise ValueError(f"function: returned weights of shape {w.shape}, expected {losses.shape}")
    return _normalise(jnp.where(mask > 0, w, 0.0), mask, weighting.normalization)


_RAW_WEIGHTS = {"sft": _sft_weights, "flow": _flow_weights, "dft": _dft_weights, "talr": _talr_weights,
                "function": _function_weights}


def _eaft_weights(weighting, entropies, mask):
    h = jnp.maximum(jax.lax.stop_gradient(entropies), 0.0)
    w = (h / weighting.entropy_scale) ** weighting.eaft_alpha
    return _normalise(jnp.where(mask > 0, w, 0.0), mask, weighting.normalization)


def topk_entropy(logits, k: int) -> jax.Array:
    """``H_k = -sum_j pi_j log pi_j`` with ``pi = softmax`` of the ``k`` largest of ``logits`` (last axis), per
    position (``logits.shape[:-1]``); EAFT's cheap stand-in for the full predictive entropy. ``-inf`` logits
    (masked vocabulary entries) contribute nothing; a row with fewer than ``k`` finite logits uses those."""
    logits = jnp.asarray(logits)
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(f"k: must be a positive integer, got {k!r}")
    top, _ = jax.lax.top_k(logits, min(k, logits.shape[-1]))
    logp = jax.nn.log_softmax(top, axis=-1)
    p = jnp.exp(logp)
    return -jnp.sum(jnp.where(p > 0, p * logp, 0.0), axis=-1)


def kl_to_reference(log_probs, reference_log_probs, mask) -> jax.Array:
    """``(1/N) sum_bt m_bt KL(q_0(.|bt) || q_theta(.|bt))``, ``KL(q_0 || q) = sum_v q_0(v) (log q_0(v) - log q(v))``:
    the anchor of ASFT and SFT-KL (LLaMA-Factory's ``F.kl_div(log_softmax(policy), softmax(reference))``, whose
    first argument is the trained model) over the supervised positions, ``N = sum m`` (0 when ``N = 0``).
    ``log_probs``/``reference_log_probs`` ``[B, T, V]`` normalised log-probabilities; the reference is a constant
    (no gradient). Terms with ``q_0(v) = 0`` are 0 even where ``log q(v) = -inf``."""
    log_probs, ref = jnp.asarray(log_probs), jax.lax.stop_gradient(jnp.asarray(reference_log_probs))
    mask = jnp.asarray(mask, dtype=log_probs.dtype)
    if log_probs.shape != ref.shape:
        raise ValueError(f"reference_log_probs: shape {ref.shape} does not match log_probs {log_probs.shape}")
    if mask.shape != log_probs.shape[:-1]:
        raise ValueError(f"mask: shape {mask.shape} does not match the positions {log_probs.shape[:-1]}")
    q0 = jnp.exp(ref)
    on = q0 > 0
    per = jnp.sum(jnp.where(on, q0 * (jnp.where(on, ref, 0.0) - jnp.where(on, log_probs, 0.0)), 0.0), axis=-1)
    n = mask.sum()
    return jnp.where(n > 0, jnp.sum(per * mask) / jnp.where(n > 0, n, 1.0), 0.0)


def token_weights(weighting: LossWeighting, losses, mask, sequence_weights=None, entropies=None) -> jax.Array:
    """Detached token weights ``w`` ``[B, T]`` of ``weighting`` (module docstring), zero where ``mask == 0``.

    ``normalization`` then rescales over the supervised tokens of the whole batch: ``"batch_size"``: ``N w / B``;
    ``"mean"``: ``N w / sum w``; ``"simplex"``: ``sft_tilt.theory.talr_weights`` over the batch (needs at least one
    supervised token). Masked-out tokens never influence the weights of supervised ones (their losses may be
    anything, even NaN).
    """
    if not isinstance(weighting, LossWeighting):
        raise ValueError(f"weighting: expected a LossWeighting, got {type(weighting).__name__}")
    losses, mask = _check_batch(losses, mask)
    on = mask > 0
    safe_losses = jax.lax.stop_gradient(jnp.where(on, losses, 0.0))
    if weighting.needs_entropies:
        if entropies is None:
            raise ValueError("entropies: EAFT weights need each token's top-k entropy (topk_entropy of its logits)")
        entropies = jnp.asarray(entropies, dtype=losses.dtype)
        if entropies.shape != losses.shape:
            raise ValueError(f"entropies: shape {entropies.shape} does not match losses {losses.shape}")
        w = _eaft_weights(weighting, jnp.where(on, entropies, 0.0), mask)
    else:
        w = _RAW_WEIGHTS[weighting.kind](weighting, safe_losses, mask, sequence_weights)
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


def reweighted_loss(weighting: LossWeighting, losses, mask, sequence_weights=None, entropies=None) -> jax.Array:
    """``weighted_loss(losses, mask, token_weights(weighting, losses, mask, sequence_weights, entropies))``: the
    training objective of one batch, whose gradient is ``(1/N) sum_i w_i grad l_i`` with ``w`` held fixed."""
    return weighted_loss(losses, mask, token_weights(weighting, losses, mask, sequence_weights, entropies))


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

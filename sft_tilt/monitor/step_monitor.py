"""One optimiser step measured against the single-step theory (Lin et al., ICLR 2026, Sec. 3.3-3.5).

Notation. A probe batch of general text has ``N`` scored target tokens. At target ``i`` the next-token logits are
``z_i`` before the step and ``z'_i`` after it, ``q_i = softmax(z_i)``, ``y_i`` is the observed token. The step moves
the parameters by ``u = theta_1 - theta_0`` at learning rate ``eta``.

Measured: the probe's per-token log-loss change ``dL = (1/N) sum_i [-log q'_i(y_i) + log q_i(y_i)]``.

Realised tilt (an identity, so only a numerical check). Every change of a next-token distribution is a tilt,
``q'_i = q_i e^{s_i} / E_{q_i} e^{s_i}`` with ``s_i = z'_i - z_i`` at step 1, so (Prop. 3.1 applied to the tilt,
``sft_tilt.theory.single_step_code_length_change`` with ``P`` the observed token)

    dL = (1/N) sum_i (E_{q_i} s_i - s_i(y_i))  +  (1/N) sum_i V_i(1),    V_i(lam) = log E_{q_i} exp(lam (s_i - E_{q_i} s_i)) >= 0,

the first-order mismatch term and the curvature (cumulant) term; ``identity_residual`` is ``dL`` minus their sum.

Prediction before the step. Linearise the logits along the update, ``t_i = J_i u`` (``jax.jvp`` of the logits). With
the direction per unit learning rate ``r_i = t_i / eta`` and the step ``lam = eta`` (only ``lam r_i = t_i`` enters):

    first order   l = (1/N) sum_i lam (E_{q_i} r_i - r_i(y_i))                    (the Jensen lower bound, since V >= 0)
    exact on it   l + (1/N) sum_i V_i(lam; r_i)                                    (predicted_change)
    Hoeffding     l + (1/N) sum_i lam^2 (max r_i - min r_i)^2 / 8
    Bennett       l + (1/N) sum_i Var_{q_i}(r_i) lam^2 h(lam c_i),  h(x) = (e^x - 1 - x) / x^2,  c_i = max r_i - E_{q_i} r_i

(``sft_tilt.theory.jensen_lower_bound``, ``hoeffding_upper_bound``, ``bennett_upper_bound`` per target, averaged:
an average of bounds bounds the average). The predicted band is ``[Jensen, min(Hoeffding, Bennett)]``. Where the logits
are linear in the parameters along ``u`` (free logits, a softmax head on frozen features) ``t_i = z'_i - z_i`` and the
measured change is the predicted one; a step too large for the linearisation can leave the band, and ``left_band``
says so when the distance exceeds ``measurement_resolution`` (one rounding of the logits: the machine epsilon of the
logits' dtype times the mean of ``max|z_i| + max|z'_i|``, so a float32 model's rounding does not count as leaving).

The domain batch (the step's training batch, before the step; ``M`` targets of probability ``p_j``): the hard-token
fraction (``p_j <= HARD_TOKEN_THRESHOLD``) and mass ``m = mean_j (1 - p_j)`` (``sft_tilt.theory.hard_token_mass``),
TALR's dynamic temperature (``sft_tilt.methods.weighting.dynamic_tau``: the median over sequences of the mean target
loss), and the first-order domain gain rate per unit learning rate ``g = (1/M) sum_j (r_j(y_j) - E_{q_j} r_j)``.

Safe learning rate: ``sft_tilt.theory.safe_step_size(tolerance, target_gain, m, coupling, general_misfit, g_min)``
with constants read from this step: ``g_min = g``; ``general_misfit = sqrt((1/N) sum_i ||q_i - e_{y_i}||^2)`` on the
probe; ``coupling`` the settings' value or, by default, the smallest value the theorem's premise
``||s(h)|| <= sqrt(2) kappa m`` allows for this step's own tilt, ``max ||r - mean r||_2 / (sqrt(2) m)`` over the
probe's and the domain batch's targets (the centred norm: a constant added to a context's logits changes nothing).
That default underestimates the true coupling, so the rate is an optimistic reading of the theorem; it is in units of
the learning rate (for SGD on the mean token loss ``r`` is exactly the theorem's tilt direction). With the default the
hard-token mass cancels (``kappa m`` is the tilt's size); a fixed ``coupling`` lets it act as in the theorem.
``safe_step_floor`` is ``k1 target_gain`` (``k1`` the leakage bound ``rho_max``): no positive rate is certified unless it
is below ``tolerance``, and then the rate is 0.

Cost of one call: one forward pass on the probe after the step and one forward-mode Jacobian-vector product
(``jax.jvp``, no backward pass; it gives the logits before the step as well) on the probe and one on the domain
batch at the parameters before the step, plus compiled float64 work on blocks of ``chunk`` target rows of the
vocabulary.
Call it every N steps (:func:`is_monitored_step`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.methods.weighting import dynamic_tau
from sft_tilt.theory import (
    HARD_TOKEN_THRESHOLD,
    bennett_upper_bound,
    hard_token_constants,
    hard_token_mass,
    hoeffding_upper_bound,
    jensen_lower_bound,
    safe_step_size,
    tilt_excess,
)

__all__ = ["MONITOR_KEYS", "MonitorSettings", "measure_step", "is_monitored_step"]

#: The numbers :func:`measure_step` returns, in order (module docstring): the probe's measurement, its realised
#: decomposition, the linearised prediction and band, then the domain batch and the safe learning rate.
MONITOR_KEYS = (
    "learning_rate",
    "probe_tokens",
    "measured_change",
    "realised_first_order",
    "realised_curvature",
    "identity_residual",
    "predicted_first_order",
    "predicted_curvature",
    "predicted_change",
    "linearisation_error",
    "jensen_lower_bound",
    "hoeffding_upper_bound",
    "bennett_upper_bound",
    "band_lower",
    "band_upper",
    "measurement_resolution",
    "left_band",
    "domain_tokens",
    "domain_loss",
    "hard_token_fraction",
    "hard_token_mass",
    "dynamic_tau",
    "domain_gain_rate",
    "general_loss_rate",
    "first_order_leakage",
    "coupling",
    "general_misfit",
    "safe_step_floor",
    "safe_learning_rate",
)


@dataclass(frozen=True)
class MonitorSettings:
    """What the safe learning rate is asked to guarantee, and the float64 block size.

    Attributes:
        tolerance: tolerated cumulative general degradation ``eps`` (nats/token, ``>= 0``); the default is the
            toolkit's ``safe_eps`` of the real-LM presets.
        target_gain: the domain gain ``Delta*`` to reach (nats/token, ``> 0``); the default is the synthetic hard-token
            experiment's matched gain.
        coupling: the coupling ``kappa > 0`` of the theorem, or None for this step's own estimate (module docstring).
        chunk: target rows per float64 block (host memory is a few arrays of ``chunk x vocabulary`` float64).
    """

    tolerance: float = 0.02
    target_gain: float = 1.0
    coupling: float | None = None
    chunk: int = 32

    def __post_init__(self):
        if not (_is_real(self.tolerance) and math.isfinite(self.tolerance) and self.tolerance >= 0):
            raise ValueError(f"tolerance: must be a finite number >= 0, got {self.tolerance!r}")
        if not (_is_real(self.target_gain) and math.isfinite(self.target_gain) and self.target_gain > 0):
            raise ValueError(f"target_gain: must be a finite number > 0, got {self.target_gain!r}")
        if self.coupling is not None and not (_is_real(self.coupling) and math.isfinite(self.coupling) and self.coupling > 0):
            raise ValueError(f"coupling: must be None or a finite number > 0, got {self.coupling!r}")
        if isinstance(self.chunk, bool) or not isinstance(self.chunk, int) or self.chunk < 1:
            raise ValueError(f"chunk: must be a positive int, got {self.chunk!r}")


def is_monitored_step(step: int, every: int) -> bool:
    """Whether optimiser step ``step`` (0-based) is measured when measuring every ``every`` steps: steps
    ``every - 1, 2 every - 1, ...``, so the record of the ``k``-th step (1-based) falls at ``k = every, 2 every, ...``."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every: must be a positive int, got {every!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step: must be a non-negative int, got {step!r}")
    return (step + 1) % every == 0


def _is_real(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


@partial(jax.jit, static_argnums=0)
def _linearised_logits(logits_fn, params, update, tokens, constants):
    """``(logits(params), d/de logits(params + e update) at e = 0)``: one forward-mode pass."""
    if constants is None:
        return jax.jvp(lambda p: logits_fn(p, tokens), (params,), (update,))
    return jax.jvp(lambda p: logits_fn(p, tokens, constants), (params,), (update,))


@partial(jax.jit, static_argnums=0)
def _logits(logits_fn, params, tokens, constants):
    return logits_fn(params, tokens) if constants is None else logits_fn(params, tokens, constants)


def _check_batch(name: str, batch) -> tuple[np.ndarray, np.ndarray]:
    """``(tokens [B, T] int, target mask [B, T-1] bool)`` of a ``{"tokens", "loss_mask"}`` batch (the harness's
    convention: ``loss_mask[b, t] = 1`` makes token ``t`` a target of the logits at ``t - 1``)."""
    if not isinstance(batch, dict) or "tokens" not in batch or "loss_mask" not in batch:
        raise ValueError(f"{name}: must be a dict with 'tokens' and 'loss_mask' [batch, time], got {type(batch).__name__}")
    tokens, loss_mask = np.asarray(batch["tokens"]), np.asarray(batch["loss_mask"])
    if tokens.ndim != 2 or tokens.shape[1] < 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"{name}: 'tokens' must be integer ids of shape [batch, time >= 2], got {tokens.dtype}{list(tokens.shape)}")
    if loss_mask.shape != tokens.shape:
        raise ValueError(f"{name}: 'loss_mask' has shape {list(loss_mask.shape)}, 'tokens' {list(tokens.shape)}")
    if not (np.issubdtype(loss_mask.dtype, np.number) or loss_mask.dtype == np.bool_) or not np.isfinite(loss_mask.astype(float)).all():
        raise ValueError(f"{name}: 'loss_mask' must be finite numbers (1 = target, 0 = not)")
    targets = loss_mask[:, 1:] > 0
    if not targets.any():
        raise ValueError(f"{name}: has no target token (loss_mask[:, 1:] is 0 everywhere)")
    return tokens, targets


def _check_params(params_before, params_after, update):
    if (params_after is None) == (update is None):
        raise ValueError("params_after, update: give exactly one (the parameters after the step, or the step's update)")
    other_name, other = ("params_after", params_after) if update is None else ("update", update)
    before_leaves, before_def = jax.tree_util.tree_flatten(params_before)
    other_leaves, other_def = jax.tree_util.tree_flatten(other)
    if before_def != other_def:
        raise ValueError(f"{other_name}: its tree structure differs from params_before's")
    for i, (a, b) in enumerate(zip(before_leaves, other_leaves)):
        if np.shape(a) != np.shape(b):
            raise ValueError(f"{other_name}: leaf {i} has shape {np.shape(b)}, params_before's {np.shape(a)}")
        if not jnp.issubdtype(jnp.result_type(a), jnp.floating):
            raise ValueError(f"params_before: leaf {i} is not floating ({jnp.result_type(a)}); a step moves real parameters")
    if update is None:
        update = jax.tree_util.tree_map(lambda a, b: (jnp.asarray(b) - jnp.asarray(a)).astype(jnp.result_type(a)),
                                        params_before, params_after)
    else:
        update = jax.tree_util.tree_map(lambda a, u: jnp.asarray(u).astype(jnp.result_type(a)), params_before, update)
        params_after = jax.tree_util.tree_map(lambda a, u: jnp.asarray(a) + u, params_before, update)
    if not all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree_util.tree_leaves(update)):
        raise ValueError(f"{other_name}: the step's update has non-finite entries")
    return params_after, update


def _rows(array, targets: np.ndarray) -> jax.Array:
    """The rows ``[N, V]`` of ``array [B, T, V]`` at the target positions (the logits at ``t`` predict token ``t + 1``),
    gathered where the array lives."""
    return jnp.asarray(array)[:, :-1][jnp.asarray(targets)]


def _centred_norms(r: jax.Array) -> jax.Array:
    return jnp.linalg.norm(r - r.mean(axis=-1, keepdims=True), axis=-1)


def _nll(z: jax.Array, y: jax.Array) -> jax.Array:
    return jax.nn.logsumexp(z, axis=-1) - jnp.take_along_axis(z, y[:, None], axis=-1)[:, 0]


# Per-target statistics of one block of rows, compiled once per block shape and run with float64 on. The theory's
# functions are traced here, so their per-call checks of the values (which need the values on the host) are skipped;
# the monitor's own checks (finite logits, token ids in range) stand in for them.


@jax.jit
def _probe_block(z0, z1, t, y, lam):
    z0, z1, t = (a.astype(jnp.float64) for a in (z0, z1, t))
    q, P = jax.nn.softmax(z0, axis=-1), jax.nn.one_hot(y, z0.shape[-1], dtype=jnp.float64)
    s, r = z1 - z0, t / lam
    return {
        "measured": _nll(z1, y) - _nll(z0, y),
        "realised_first": jensen_lower_bound(P, q, s, 1.0),
        "realised_curvature": tilt_excess(q, s, 1.0),
        "first": jensen_lower_bound(P, q, r, lam),
        "curvature": tilt_excess(q, r, lam),
        "hoeffding": hoeffding_upper_bound(P, q, r, lam),
        "bennett": bennett_upper_bound(P, q, r, lam),
        "misfit_sq": jnp.sum((q - P) ** 2, axis=-1),
        "resolution": jnp.max(jnp.abs(z0), axis=-1) + jnp.max(jnp.abs(z1), axis=-1),
        "norm": _centred_norms(r),
    }


@jax.jit
def _domain_block(z0, t, y, lam):
    z0, t = z0.astype(jnp.float64), t.astype(jnp.float64)
    q, P = jax.nn.softmax(z0, axis=-1), jax.nn.one_hot(y, z0.shape[-1], dtype=jnp.float64)
    r = t / lam
    return {"nll": _nll(z0, y), "gain_rate": -jensen_lower_bound(P, q, r, 1.0), "norm": _centred_norms(r)}


def _per_row(kernel, arrays, y: np.ndarray, lam: float, chunk: int) -> dict[str, np.ndarray]:
    """``kernel`` over blocks of ``chunk`` rows (the last block padded with its first row, the padding dropped after),
    concatenated per key as float64 NumPy arrays."""
    parts: dict[str, list] = {}
    lam = jnp.asarray(lam, jnp.float64)
    for start in range(0, len(y), chunk):
        n = min(chunk, len(y) - start)
        pick = np.concatenate([np.arange(start, start + n), np.full(chunk - n, start)]) if len(y) > chunk else np.arange(start, start + n)
        out = kernel(*(a[pick] for a in arrays), jnp.asarray(y[pick]), lam)
        for k, v in out.items():
            parts.setdefault(k, []).append(np.asarray(v, np.float64)[:n])
    return {k: np.concatenate(v) for k, v in parts.items()}


def measure_step(
    logits_fn: Callable[[Any, Any], Any],
    params_before,
    probe: dict,
    domain: dict,
    *,
    learning_rate: float,
    params_after=None,
    update=None,
    settings: MonitorSettings | None = None,
    constants=None,
) -> dict[str, float]:
    """The monitor's numbers for one optimiser step (module docstring; keys :data:`MONITOR_KEYS`).

    Args:
        logits_fn: ``logits_fn(params, tokens) -> logits [B, T, V]`` (the next-token logits at every position);
            pass the same function object at every call, it is compiled once.
        params_before: the parameters before the step (a pytree of floating arrays).
        probe: general text, ``{"tokens": [B, T] int, "loss_mask": [B, T]}`` (``loss_mask[b, t] = 1``: token ``t`` is
            scored given the tokens before it).
        domain: the step's training batch in the same form (its targets are the ones the loss scored).
        learning_rate: the learning rate the step used (``> 0``).
        params_after: the parameters after the step; or instead
        update: the step's update ``params_after - params_before`` (e.g. optax's ``updates``).
        settings: :class:`MonitorSettings` (default ``MonitorSettings()``).
        constants: a pytree the step did not move (a frozen base model under adapters, say), passed to the model as
            ``logits_fn(params, tokens, constants)`` when given; it is an argument of the compiled passes, not a
            constant folded into them.
    Returns:
        ``{key: float}`` in the order of :data:`MONITOR_KEYS` (``left_band`` is 1.0 or 0.0).

    References: Lin et al. (ICLR 2026), Prop. 3.1 and Sec. 3.3 (the tilt), Theorem 3.2 (hard tokens, safe step
      size); toolkit derivations `sft_tilt.theory.derivations.jensen`, `.hoeffding`, `.bennett`, `.hard_tokens`.
    """
    if not callable(logits_fn):
        raise ValueError(f"logits_fn: must be callable (params, tokens) -> logits, got {type(logits_fn).__name__}")
    if not (_is_real(learning_rate) and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate: must be a finite number > 0, got {learning_rate!r}")
    settings = MonitorSettings() if settings is None else settings
    if not isinstance(settings, MonitorSettings):
        raise ValueError(f"settings: must be a MonitorSettings, got {type(settings).__name__}")
    probe_tokens, probe_targets = _check_batch("probe", probe)
    domain_tokens, domain_targets = _check_batch("domain", domain)
    params_after, update = _check_params(params_before, params_after, update)
    lam = float(learning_rate)

    # the model runs in the caller's precision; everything after it in float64
    z0_probe, t_probe = _linearised_logits(logits_fn, params_before, update, jnp.asarray(probe_tokens), constants)
    z1_probe = _logits(logits_fn, params_after, jnp.asarray(probe_tokens), constants)
    z0_domain, t_domain = _linearised_logits(logits_fn, params_before, update, jnp.asarray(domain_tokens), constants)
    for name, logits, tokens in (("probe", z1_probe, probe_tokens), ("domain", z0_domain, domain_tokens)):
        if np.ndim(logits) != 3 or np.shape(logits)[:2] != tokens.shape:
            raise ValueError(f"logits_fn: returned {name} logits of shape {np.shape(logits)}, expected "
                             f"[batch, time, vocabulary] with [batch, time] = {list(tokens.shape)}")
    for name, tokens, vocab in (("probe", probe_tokens, np.shape(z1_probe)[-1]), ("domain", domain_tokens, np.shape(z0_domain)[-1])):
        if tokens.min() < 0 or tokens.max() >= vocab:
            raise ValueError(f"{name}: token ids must lie in [0, {vocab}) (the logits' vocabulary), got {tokens.min()}..{tokens.max()}")
    dtype_eps = float(jnp.finfo(z0_probe.dtype).eps)
    y_probe = probe_tokens[:, 1:][probe_targets]
    y_domain = domain_tokens[:, 1:][domain_targets]
    with jax.enable_x64(True):
        probe_rows = [_rows(a, probe_targets) for a in (z0_probe, z1_probe, t_probe)]
        domain_rows = [_rows(a, domain_targets) for a in (z0_domain, t_domain)]
        for name, block in (("probe", probe_rows), ("domain", domain_rows)):
            if not all(bool(jnp.all(jnp.isfinite(a))) for a in block):
                raise ValueError(f"logits_fn: non-finite {name} logits or logit changes; nothing can be measured")
        probe_stats = _per_row(_probe_block, probe_rows, y_probe, lam, settings.chunk)
        domain_stats = _per_row(_domain_block, domain_rows, y_domain, lam, settings.chunk)
        sums = {k: float(np.sum(v)) for k, v in probe_stats.items()}
        nll = domain_stats["nll"]
        gain = float(np.sum(domain_stats["gain_rate"]))
        norm_max = float(max(probe_stats["norm"].max(), domain_stats["norm"].max()))
        losses = np.zeros(domain_targets.shape)
        losses[domain_targets] = nll
        tau = float(dynamic_tau(jnp.asarray(losses), jnp.asarray(domain_targets, np.float64)))
        p = np.exp(-nll)
        fraction = float(hard_token_mass(jnp.asarray(p), threshold=HARD_TOKEN_THRESHOLD))
        mass = float(hard_token_mass(jnp.asarray(p)))

        n, n_domain = len(y_probe), len(y_domain)
        out = {"learning_rate": lam, "probe_tokens": float(n)}
        out["measured_change"] = sums["measured"] / n
        out["realised_first_order"] = sums["realised_first"] / n
        out["realised_curvature"] = sums["realised_curvature"] / n
        out["identity_residual"] = out["measured_change"] - (out["realised_first_order"] + out["realised_curvature"])
        out["predicted_first_order"] = sums["first"] / n
        out["predicted_curvature"] = sums["curvature"] / n
        out["predicted_change"] = out["predicted_first_order"] + out["predicted_curvature"]
        out["linearisation_error"] = out["measured_change"] - out["predicted_change"]
        out["jensen_lower_bound"] = out["predicted_first_order"]
        out["hoeffding_upper_bound"] = sums["hoeffding"] / n
        out["bennett_upper_bound"] = sums["bennett"] / n
        out["band_lower"] = out["jensen_lower_bound"]
        out["band_upper"] = min(out["hoeffding_upper_bound"], out["bennett_upper_bound"])
        out["measurement_resolution"] = dtype_eps * sums["resolution"] / n
        outside = max(out["band_lower"] - out["measured_change"], out["measured_change"] - out["band_upper"])
        out["left_band"] = float(outside > out["measurement_resolution"])
        out["domain_tokens"] = float(n_domain)
        out["domain_loss"] = float(np.mean(nll))
        out["hard_token_fraction"] = fraction
        out["hard_token_mass"] = mass
        out["dynamic_tau"] = tau
        g = gain / n_domain
        out["domain_gain_rate"] = g
        out["general_loss_rate"] = out["predicted_first_order"] / lam
        out["first_order_leakage"] = out["general_loss_rate"] / g if g != 0 else math.copysign(math.inf, out["general_loss_rate"])
        misfit = math.sqrt(sums["misfit_sq"] / n)
        kappa = settings.coupling if settings.coupling is not None else (
            norm_max / (math.sqrt(2.0) * mass) if mass > 0 else math.inf)
        out["coupling"] = float(kappa)
        out["general_misfit"] = misfit
        out.update(_safe_rate(settings, mass, kappa, misfit, g))
    return {k: float(out[k]) for k in MONITOR_KEYS}


def _safe_rate(settings: MonitorSettings, mass: float, kappa: float, misfit: float, gain_rate: float) -> dict:
    """``safe_step_floor`` and ``safe_learning_rate`` (module docstring): ``+inf`` when the tilt is zero (nothing
    leaks), ``0`` with an infinite floor when the step does not raise the domain batch's likelihood at first order
    (the theorem needs ``g_min > 0``)."""
    if mass == 0 or kappa == 0 or not math.isfinite(kappa):
        return {"safe_step_floor": 0.0, "safe_learning_rate": math.inf}
    if not gain_rate > 0:
        return {"safe_step_floor": math.inf, "safe_learning_rate": 0.0}
    constants = hard_token_constants(mass, kappa, misfit, gain_rate)
    rate = safe_step_size(settings.tolerance, settings.target_gain, mass, coupling=kappa, general_misfit=misfit, g_min=gain_rate)
    return {"safe_step_floor": float(constants.rho_max) * settings.target_gain, "safe_learning_rate": float(rate)}

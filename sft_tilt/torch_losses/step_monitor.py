"""The single-step monitor in PyTorch: what one optimiser step cost a probe of general text, the band the linearised tilt
predicted, and the domain batch's hard tokens, dynamic temperature and safe learning rate, logged by a Hugging Face
``Trainer`` (TRL's ``SFTTrainer`` included) every N steps.

    from sft_tilt.torch_losses.step_monitor import StepMonitorCallback, probe_from_texts

    trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    probe = probe_from_texts(tokenizer, general_texts, max_length=128)
    trainer.add_callback(StepMonitorCallback(trainer, probe, every=10))
    trainer.train()        # logs "step_monitor/measured_change", ".../band_lower", ... at steps 10, 20, ...

The numbers and their formulas are those of the toolkit's JAX function ``sft_tilt.monitor.measure_step`` (same keys,
:data:`MONITOR_KEYS`; a test compares the two on one model and step). In short, with ``z, z'`` a probe target's logits
before and after the step, ``q = softmax(z)``, ``y`` the observed token, ``t = J u`` the logits' Jacobian-vector
product with the parameter update ``u`` (forward-mode, ``torch.autograd.forward_ad``) and ``r = t / eta`` (``eta`` the learning rate):

* ``measured_change``: mean over probe targets of ``-log q'(y) + log q(y)`` (nats/token);
* ``realised_first_order + realised_curvature``: its exact decomposition on the realised tilt ``s = z' - z``,
  ``(E_q s - s(y)) + log E_q exp(s - E_q s)`` (``identity_residual``: rounding);
* ``predicted_first_order`` (= ``jensen_lower_bound``), ``predicted_change`` (exact on the linearised tilt),
  ``hoeffding_upper_bound`` (``+ eta^2 range(r)^2 / 8``), ``bennett_upper_bound`` (``+ Var_q(r) eta^2 h(eta c)``,
  ``h(x) = (e^x - 1 - x) / x^2``, ``c = max r - E_q r``); the band ``[band_lower, band_upper]`` and ``left_band``
  (1.0 when the measured change lies outside it by more than ``measurement_resolution``);
* the domain batch (the micro-batches of the monitored step, captured from the model's forward calls, or a batch
  given to the callback): ``domain_loss``, ``hard_token_fraction`` (``p <= 0.2``), ``hard_token_mass``
  (``mean(1 - p)``), TALR's ``dynamic_tau`` (median over sequences of the mean target loss), ``domain_gain_rate``
  (``mean(r(y) - E_q r)``);
* ``safe_learning_rate``: the largest learning rate the matched-gain theorem (toolkit's ``safe_step_size``) certifies
  for ``tolerance`` nats of general degradation at ``target_gain`` nats of domain gain, with this step's constants
  (coupling ``max ||r - mean r|| / (sqrt(2) m)`` unless given, general misfit ``sqrt(mean ||q - e_y||^2)`` on the
  probe, gain-rate floor ``domain_gain_rate``), and ``safe_step_floor`` (``k1 target_gain``: 0 is certified unless it
  is below ``tolerance``).

Cost of a monitored step: one copy of the trainable parameters (taken before the optimiser step), one forward pass on
the probe after the step, and one forward-mode Jacobian-vector product (no backward pass; it gives the logits before
the step too) on the probe and on each domain micro-batch; ``compute_dtype`` casts a copy of every parameter for
those passes. The passes run in evaluation mode, in the parameters' dtype (a mixed-precision trainer's autocast is
bypassed) and with PyTorch's math attention kernel (the fused kernels have no forward-mode derivative). Other steps
cost nothing.

This module imports only ``torch``; ``transformers`` is imported when :class:`StepMonitorCallback` is first used.
"""

from __future__ import annotations

import contextlib
import inspect
import math

import torch

from sft_tilt.torch_losses.losses import logits_of
from sft_tilt.torch_losses.weights import TAU_MIN, sequence_mean_losses

__all__ = ["MONITOR_KEYS", "HARD_TOKEN_THRESHOLD", "IGNORE_INDEX", "measure_step", "probe_from_texts", "is_monitored_step",
           "StepMonitorCallback"]

#: The numbers :func:`measure_step` returns, in order (the JAX monitor's keys).
MONITOR_KEYS = (
    "learning_rate", "probe_tokens", "measured_change", "realised_first_order", "realised_curvature", "identity_residual",
    "predicted_first_order", "predicted_curvature", "predicted_change", "linearisation_error", "jensen_lower_bound",
    "hoeffding_upper_bound", "bennett_upper_bound", "band_lower", "band_upper", "measurement_resolution", "left_band",
    "domain_tokens", "domain_loss", "hard_token_fraction", "hard_token_mass", "dynamic_tau", "domain_gain_rate",
    "general_loss_rate", "first_order_leakage", "coupling", "general_misfit", "safe_step_floor", "safe_learning_rate",
)

#: A target token is hard when the model gives it probability at most this (the toolkit's threshold).
HARD_TOKEN_THRESHOLD = 0.2
#: Label of a token that is not a target (transformers' convention).
IGNORE_INDEX = -100
_SERIES_BELOW = 1e-3  # |x| below which e^x - 1 - x and (e^x - 1 - x)/x^2 use their Taylor series
_SAFE_RATE_BISECTIONS = 200  # as the toolkit's safe_step_size: float64 resolution of the root


def is_monitored_step(step: int, every: int) -> bool:
    """Whether optimiser step ``step`` (0-based) is measured when measuring every ``every`` steps: the ``k``-th step
    (1-based) for ``k = every, 2 every, ...``, logged at global step ``k``."""
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ValueError(f"every: must be a positive int, got {every!r}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step: must be a non-negative int, got {step!r}")
    return (step + 1) % every == 0


# ----------------------------------------------------------------------------------------------- tilt statistics


def _expm1mx(x: torch.Tensor) -> torch.Tensor:
    """``e^x - 1 - x`` without cancellation near 0."""
    small = x.abs() < _SERIES_BELOW
    xs = torch.where(small, x, torch.zeros_like(x))
    series = xs * xs * (0.5 + xs * (1.0 / 6 + xs * (1.0 / 24 + xs / 120)))
    return torch.where(small, series, torch.expm1(x) - x)


def _expm1mx_over_square(x: torch.Tensor) -> torch.Tensor:
    """``h(x) = (e^x - 1 - x) / x^2``, ``h(0) = 1/2``."""
    small = x.abs() < _SERIES_BELOW
    xs = torch.where(small, x, torch.zeros_like(x))
    xl = torch.where(small, torch.ones_like(x), x)
    return torch.where(small, 0.5 + xs * (1.0 / 6 + xs * (1.0 / 24 + xs / 120)), (torch.expm1(xl) - xl) / (xl * xl))


def _tilt_statistics(q: torch.Tensor, s: torch.Tensor, y: torch.Tensor, lam: float) -> dict:
    """Per row of a tilt ``lam s`` of ``q`` (rows ``[n, V]``, float64): the first-order term ``lam (E_q s - s(y))``,
    the excess ``V = log E_q exp(lam (s - E_q s))``, and the Hoeffding and Bennett increments, all over the support
    ``q > 0``."""
    support = q > 0
    mean = (q * s).sum(-1)
    d = torch.where(support, s - mean[:, None], torch.zeros_like(s))
    top = torch.where(support, d, torch.full_like(d, -math.inf)).max(-1).values.clamp_min(0.0)
    low = torch.where(support, d, torch.full_like(d, math.inf)).min(-1).values
    # V: log1p of a sum of non-negative terms while no exponential can overflow, else a shifted log-sum-exp
    small = lam * top <= 700.0
    series = torch.log1p((q * _expm1mx(lam * d)).sum(-1))
    shifted = lam * top + torch.logsumexp(torch.where(support, q.log() + lam * (d - top[:, None]), torch.full_like(d, -math.inf)), -1)
    excess = torch.where(small, series, shifted)
    variance = (q * d * d).sum(-1)
    first = lam * (mean - s.gather(-1, y[:, None])[:, 0])
    return {"first": first, "excess": excess, "hoeffding": lam ** 2 * (top - low) ** 2 / 8.0,
            "bennett": variance * lam ** 2 * _expm1mx_over_square(lam * top)}


def _nll(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(z, -1) - z.gather(-1, y[:, None])[:, 0]


def _centred_norm_max(r: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(r - r.mean(-1, keepdim=True), dim=-1).max())


# ----------------------------------------------------------------------------------------------- model passes


def _check_batch(name: str, batch) -> dict:
    if not isinstance(batch, dict) or "input_ids" not in batch or "labels" not in batch:
        raise ValueError(f"{name}: must be a dict with 'input_ids' and 'labels' [batch, time] (labels -100 = not "
                         f"scored), got {type(batch).__name__}")
    ids, labels = torch.as_tensor(batch["input_ids"]), torch.as_tensor(batch["labels"])
    if ids.ndim != 2 or ids.shape[1] < 2 or ids.is_floating_point():
        raise ValueError(f"{name}: 'input_ids' must be integer ids of shape [batch, time >= 2], got {tuple(ids.shape)}")
    if labels.shape != ids.shape:
        raise ValueError(f"{name}: 'labels' has shape {tuple(labels.shape)}, 'input_ids' {tuple(ids.shape)}")
    if not bool((labels[:, 1:] != IGNORE_INDEX).any()):
        raise ValueError(f"{name}: has no target token (every label after the first is {IGNORE_INDEX})")
    return {k: v for k, v in batch.items() if k in ("input_ids", "labels", "attention_mask", "position_ids") and v is not None}


@contextlib.contextmanager
def _measuring(model: torch.nn.Module, device: torch.device):
    """Evaluation mode (no dropout, no activation checkpointing), the math attention kernel, and no mixed precision:
    the forward that ``accelerate`` wraps in an autocast context for mixed-precision training (the trainer's
    ``bf16``/``fp16``, TRL's default) is replaced by the model's own for the duration, and autocast is off, so the
    passes run in the parameters' dtype. Everything is restored after."""
    was_training = model.training
    wrapped, original = model.__dict__.get("forward"), model.__dict__.get("_original_forward")
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        kernel = sdpa_kernel([SDPBackend.MATH])
    except ImportError:  # older PyTorch: no kernel choice, the default is used
        kernel = contextlib.nullcontext()
    model.eval()
    if wrapped is not None and original is not None:
        model.forward = original
    try:
        with kernel, torch.autocast(device_type=device.type, enabled=False):
            yield
    finally:
        if wrapped is not None and original is not None:
            model.forward = wrapped
        model.train(was_training)


def _forward_kwargs(model: torch.nn.Module, batch: dict, device) -> dict:
    kwargs = {k: torch.as_tensor(v).to(device) for k, v in batch.items() if k != "labels"}
    try:
        if "use_cache" in inspect.signature(model.forward).parameters:
            kwargs["use_cache"] = False
    except (TypeError, ValueError):
        pass
    return kwargs


def _rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return logits[:, :-1][targets]


class _Passes:
    """The model's logits at given parameters, and their Jacobian-vector product along the update."""

    def __init__(self, model, params_before, update, compute_dtype):
        self.model = model
        self.device = next(iter(params_before.values())).device
        cast = (lambda t: t) if compute_dtype is None else (lambda t: t.to(compute_dtype) if t.is_floating_point() else t)
        self.before = {k: cast(v.detach()) for k, v in params_before.items()}
        self.update = {k: cast(v.detach()) for k, v in update.items()}
        # the parameters and buffers the step did not move, in the compute dtype (they are the module's own otherwise)
        self.fixed = {}
        if compute_dtype is not None:
            for name, t in list(model.named_parameters()) + list(model.named_buffers()):
                if name not in self.before:
                    self.fixed[name] = cast(t.detach())

    def logits(self, params, batch):
        out = torch.func.functional_call(self.model, {**self.fixed, **params}, args=(),
                                         kwargs=_forward_kwargs(self.model, batch, self.device), strict=False)
        return logits_of(out)

    def linearised(self, batch):
        """``(logits, J u)`` by forward-mode differentiation with dual tensors (``torch.autograd.forward_ad``):
        ``torch.func.jvp`` would refuse the ``requires_grad_`` hooks transformers installs on the embeddings for
        gradient checkpointing and adapters, which dual tensors pass through."""
        import torch.autograd.forward_ad as forward_ad

        with torch.no_grad(), forward_ad.dual_level():
            dual = {k: forward_ad.make_dual(v, self.update[k]) for k, v in self.before.items()}
            primal, tangent = forward_ad.unpack_dual(self.logits(dual, batch))
        if tangent is None:  # the logits do not depend on the parameters the step moved
            tangent = torch.zeros_like(primal)
        return primal, tangent


def measure_step(model: torch.nn.Module, params_before: dict, probe: dict, domain, *, learning_rate: float,
                 params_after: dict | None = None, update: dict | None = None, tolerance: float = 0.02,
                 target_gain: float = 1.0, coupling: float | None = None, compute_dtype: torch.dtype | None = None,
                 chunk: int = 32) -> dict[str, float]:
    """The monitor's numbers for one optimiser step (module docstring; keys :data:`MONITOR_KEYS`).

    Args:
        model: the ``torch.nn.Module`` (its forward takes ``input_ids`` and optionally ``attention_mask`` /
            ``position_ids`` and returns logits ``[B, T, V]`` or an output with ``.logits``).
        params_before: ``{name: tensor}`` of the parameters the step moved (``model.named_parameters()`` names),
            before the step; the model's other parameters and buffers are taken as they are.
        probe: general text ``{"input_ids", "labels", "attention_mask" (optional)}``, labels ``-100`` where not scored
            (:func:`probe_from_texts`).
        domain: the step's training batch in the same form, or a list of them (the micro-batches of the step).
        learning_rate: the learning rate the step used (``> 0``).
        params_after: the parameters after the step (same names); or instead ``update``: their change.
        tolerance, target_gain, coupling: what the safe learning rate guarantees (nats/token) and the theorem's
            coupling (None: this step's estimate), as ``sft_tilt.monitor.MonitorSettings``.
        compute_dtype: dtype of the monitor's passes (e.g. ``torch.float64``); None: the model's. The statistics are
            float64 in any case.
        chunk: target rows per float64 block.
    """
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model: must be a torch.nn.Module, got {type(model).__name__}")
    if not (isinstance(learning_rate, (int, float)) and not isinstance(learning_rate, bool)
            and math.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate: must be a finite number > 0, got {learning_rate!r}")
    for name, value, low in (("tolerance", tolerance, 0.0), ("target_gain", target_gain, None)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and (value >= low if low is not None else value > 0)):
            raise ValueError(f"{name}: must be a finite number {'>= 0' if low is not None else '> 0'}, got {value!r}")
    if coupling is not None and not (isinstance(coupling, (int, float)) and math.isfinite(coupling) and coupling > 0):
        raise ValueError(f"coupling: must be None or a finite number > 0, got {coupling!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk: must be a positive int, got {chunk!r}")
    if not isinstance(params_before, dict) or not params_before:
        raise ValueError("params_before: must be a non-empty dict {name: tensor} of the parameters the step moved")
    known = dict(model.named_parameters())
    unknown = sorted(set(params_before) - set(known))
    if unknown:
        raise ValueError(f"params_before: {unknown[:3]} are not parameters of the model")
    if (params_after is None) == (update is None):
        raise ValueError("params_after, update: give exactly one (the parameters after the step, or the step's update)")
    other_name, other = ("params_after", params_after) if update is None else ("update", update)
    if not isinstance(other, dict) or set(other) != set(params_before):
        raise ValueError(f"{other_name}: must be a dict with the names of params_before")
    for k in params_before:
        if tuple(other[k].shape) != tuple(params_before[k].shape):
            raise ValueError(f"{other_name}: {k!r} has shape {tuple(other[k].shape)}, params_before's {tuple(params_before[k].shape)}")
    with torch.no_grad():
        if update is None:
            update = {k: params_after[k].detach() - params_before[k].detach() for k in params_before}
            after = {k: params_after[k].detach() for k in params_before}
        else:
            update = {k: update[k].detach().to(params_before[k].dtype) for k in params_before}
            after = {k: params_before[k].detach() + update[k] for k in params_before}
    if not all(bool(torch.isfinite(u).all()) for u in update.values()):
        raise ValueError(f"{other_name}: the step's update has non-finite entries")
    probe = _check_batch("probe", probe)
    domains = [domain] if isinstance(domain, dict) else list(domain) if isinstance(domain, (list, tuple)) else None
    if not domains:
        raise ValueError(f"domain: must be a batch dict or a non-empty list of them, got {type(domain).__name__}")
    domains = [_check_batch(f"domain[{i}]", d) for i, d in enumerate(domains)]
    lam = float(learning_rate)

    passes = _Passes(model, params_before, update, compute_dtype)
    after = {k: (v if compute_dtype is None or not v.is_floating_point() else v.to(compute_dtype)) for k, v in after.items()}
    with _measuring(model, passes.device):
        with torch.no_grad():
            z1 = passes.logits(after, probe).detach()
        z0, t = passes.linearised(probe)
        domain_passes = [passes.linearised(d) for d in domains]
    dtype_eps = torch.finfo(z0.dtype).eps

    # probe: float64 statistics over blocks of target rows
    targets = (probe["labels"][:, 1:] != IGNORE_INDEX).to(z0.device)
    y = probe["labels"][:, 1:].to(z0.device)[targets].long()
    rows = [_rows(a.detach(), targets) for a in (z0, z1, t)]
    vocab = z0.shape[-1]
    for name, ids in [("probe", y)] + [(f"domain[{i}]", d["labels"][:, 1:][d["labels"][:, 1:] != IGNORE_INDEX]) for i, d in enumerate(domains)]:
        if ids.min() < 0 or ids.max() >= vocab:
            raise ValueError(f"{name}: target ids must lie in [0, {vocab}) (the logits' vocabulary)")
    sums = dict.fromkeys(("measured", "realised_first", "realised_curvature", "first", "curvature", "hoeffding",
                          "bennett", "misfit_sq", "resolution"), 0.0)
    norm_max = 0.0
    for start in range(0, len(y), chunk):
        z0b, z1b, tb = (a[start:start + chunk].double() for a in rows)
        yb = y[start:start + chunk]
        if not (torch.isfinite(z0b).all() and torch.isfinite(z1b).all() and torch.isfinite(tb).all()):
            raise ValueError("model: non-finite probe logits or logit changes; nothing can be measured")
        q = torch.softmax(z0b, -1)
        realised = _tilt_statistics(q, z1b - z0b, yb, 1.0)
        r = tb / lam
        predicted = _tilt_statistics(q, r, yb, lam)
        sums["measured"] += float((_nll(z1b, yb) - _nll(z0b, yb)).sum())
        sums["realised_first"] += float(realised["first"].sum())
        sums["realised_curvature"] += float(realised["excess"].sum())
        sums["first"] += float(predicted["first"].sum())
        sums["curvature"] += float(predicted["excess"].sum())
        sums["hoeffding"] += float((predicted["first"] + predicted["hoeffding"]).sum())
        sums["bennett"] += float((predicted["first"] + predicted["bennett"]).sum())
        one_hot = torch.zeros_like(q).scatter_(-1, yb[:, None], 1.0)
        sums["misfit_sq"] += float(((q - one_hot) ** 2).sum())
        sums["resolution"] += float((z0b.abs().max(-1).values + z1b.abs().max(-1).values).sum())
        norm_max = max(norm_max, _centred_norm_max(r))

    # domain: target losses before the step, the gain rate of the linearised tilt, the sequences' mean losses
    nll_all, sequence_losses, gain = [], [], 0.0
    for d, (zd, td) in zip(domains, domain_passes):
        on = (d["labels"][:, 1:] != IGNORE_INDEX).to(zd.device)
        yd = d["labels"][:, 1:].to(zd.device)[on].long()
        zr, tr = _rows(zd.detach(), on), _rows(td.detach(), on)
        losses = torch.zeros(on.shape, dtype=torch.float64, device=zd.device)
        parts = []
        for start in range(0, len(yd), chunk):
            zb, tb, yb = zr[start:start + chunk].double(), tr[start:start + chunk].double(), yd[start:start + chunk]
            if not (torch.isfinite(zb).all() and torch.isfinite(tb).all()):
                raise ValueError("model: non-finite domain logits or logit changes; nothing can be measured")
            r = tb / lam
            gain -= float(_tilt_statistics(torch.softmax(zb, -1), r, yb, 1.0)["first"].sum())
            parts.append(_nll(zb, yb))
            norm_max = max(norm_max, _centred_norm_max(r))
        nll = torch.cat(parts)
        losses[on] = nll
        nll_all.append(nll)
        sequence_losses.append(sequence_mean_losses(losses, on))
    nll = torch.cat(nll_all)
    per_sequence = torch.cat(sequence_losses)
    per_sequence = per_sequence[~torch.isnan(per_sequence)]
    tau = float(torch.quantile(per_sequence, 0.5).clamp_min(TAU_MIN)) if per_sequence.numel() else TAU_MIN
    p = torch.exp(-nll)

    n, n_domain = len(y), len(nll)
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
    out["domain_loss"] = float(nll.mean())
    out["hard_token_fraction"] = float((p <= HARD_TOKEN_THRESHOLD).double().mean())
    out["hard_token_mass"] = mass = float((1.0 - p).mean())
    out["dynamic_tau"] = tau
    out["domain_gain_rate"] = g = gain / n_domain
    out["general_loss_rate"] = out["predicted_first_order"] / lam
    out["first_order_leakage"] = out["general_loss_rate"] / g if g != 0 else math.copysign(math.inf, out["general_loss_rate"])
    misfit = math.sqrt(sums["misfit_sq"] / n)
    kappa = coupling if coupling is not None else (norm_max / (math.sqrt(2.0) * mass) if mass > 0 else math.inf)
    out["coupling"] = float(kappa)
    out["general_misfit"] = misfit
    out["safe_step_floor"], out["safe_learning_rate"] = _safe_learning_rate(tolerance, target_gain, mass, kappa, misfit, g)
    return {k: float(out[k]) for k in MONITOR_KEYS}


def _safe_learning_rate(tolerance: float, target_gain: float, mass: float, kappa: float, misfit: float,
                        gain_rate: float) -> tuple[float, float]:
    """``(k1 target_gain, largest learning rate whose relaxed matched-gain bound stays <= tolerance)``.

    The bound under the hard-token constants (``rho = sqrt2 kappa misfit m / g``, range ``R = 2 kappa m``,
    ``c2 = R^2 / 8``, separate general and domain contexts) is ``rho D + (max(rho, 0) R + C D / a + C lam) lam`` with
    ``C = (1 + max(rho, 0)) c2``, ``a = g - lam c2 > 0``; it increases in ``lam`` on ``(0, g / c2)``, so the rate is its
    root, found by bisection. ``+inf`` when nothing leaks, ``0`` when the floor ``rho D`` already reaches the tolerance
    or the step does not raise the domain likelihood at first order (then the floor is ``+inf``).
    """
    if mass == 0 or kappa == 0 or not math.isfinite(kappa):
        return 0.0, math.inf
    if not gain_rate > 0:
        return math.inf, 0.0
    rho = math.sqrt(2.0) * kappa * misfit * mass / gain_rate
    width = 2.0 * kappa * mass
    c2 = width ** 2 / 8.0
    floor = rho * target_gain
    if tolerance <= floor:
        return floor, 0.0
    second = c2 + max(rho, 0.0) * c2

    def bound(lam: float) -> float:
        a = gain_rate - lam * c2
        if not (lam > 0 and a > 0):
            return math.inf
        return floor + (max(rho, 0.0) * width + second * target_gain / a + second * lam) * lam

    lo, hi = 0.0, gain_rate / c2
    for _ in range(_SAFE_RATE_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if bound(mid) <= tolerance:
            lo = mid
        else:
            hi = mid
    return floor, lo


# ----------------------------------------------------------------------------------------------- probes and the callback


def probe_from_texts(tokenizer, texts: list[str], max_length: int = 128) -> dict:
    """A probe batch from general texts: ``{"input_ids", "attention_mask", "labels"}`` (right-padded; every real
    token after the first scored, padding ``-100``). ``tokenizer`` is a Hugging Face tokenizer with a pad token."""
    if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise ValueError("texts: must be a non-empty list of non-empty strings")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"max_length: must be an int >= 2, got {max_length!r}")
    if getattr(tokenizer, "pad_token_id", None) is None:
        raise ValueError("tokenizer: has no pad token (set tokenizer.pad_token first)")
    side = getattr(tokenizer, "padding_side", "right")
    tokenizer.padding_side = "right"  # positions count from the first token of each row
    try:
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    finally:
        tokenizer.padding_side = side
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = IGNORE_INDEX
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


def _callback_class():
    from transformers import TrainerCallback

    class StepMonitorCallback(TrainerCallback):
        """Measure every ``every``-th optimiser step against the single-step theory and log the numbers through the
        trainer (``trainer.log``: the console, ``trainer.state.log_history``, TensorBoard, Weights & Biases, ...) under
        ``prefix + key`` (module docstring; keys :data:`MONITOR_KEYS`).

        Args:
            trainer: the ``transformers.Trainer`` (or TRL trainer) it is added to (``trainer.add_callback(...)``).
            probe: the general-text batch (:func:`probe_from_texts`).
            every: measure steps ``every, 2 every, ...`` (1-based global steps).
            domain: None (the monitored step's own micro-batches, read from the model's forward calls that carry
                ``labels``) or a fixed batch in the probe's form.
            tolerance, target_gain, coupling, compute_dtype, chunk: as :func:`measure_step`.
            prefix: prepended to every logged key.

        The learning rate is the first parameter group's at the optimiser step; a step taken at learning rate 0 (the
        first step of a warm-up from 0) moves nothing and is not measured. ``history`` keeps every measurement with
        its ``step``.
        """

        def __init__(self, trainer, probe: dict, every: int = 10, *, domain: dict | None = None, tolerance: float = 0.02,
                     target_gain: float = 1.0, coupling: float | None = None, compute_dtype: torch.dtype | None = None,
                     chunk: int = 32, prefix: str = "step_monitor/"):
            if not callable(getattr(trainer, "log", None)):
                raise ValueError(f"trainer: must be a transformers Trainer (with .log), got {type(trainer).__name__}")
            is_monitored_step(0, every)  # validates every
            self.trainer, self.every, self.prefix = trainer, every, str(prefix)
            self.probe = _check_batch("probe", probe)
            self.domain = None if domain is None else _check_batch("domain", domain)
            self.settings = {"tolerance": tolerance, "target_gain": target_gain, "coupling": coupling,
                             "compute_dtype": compute_dtype, "chunk": chunk}
            self.history: list[dict] = []
            self._hook = None
            self._captured: list[dict] = []
            self._busy = False
            self._before = None
            self._pending = None

        def _capture(self, module, args, kwargs):
            if self._busy or not module.training or kwargs.get("labels") is None:
                return
            batch = {k: kwargs[k].detach() for k in ("input_ids", "labels", "attention_mask", "position_ids")
                     if torch.is_tensor(kwargs.get(k))}
            if "input_ids" in batch:
                self._captured.append(batch)

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            if self.domain is None and model is not None and self._hook is None:
                self._hook = model.register_forward_pre_hook(self._capture, with_kwargs=True)

        def on_train_end(self, args, state, control, **kwargs):
            if self._hook is not None:
                self._hook.remove()
                self._hook = None

        def on_step_begin(self, args, state, control, **kwargs):
            self._captured = []

        def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
            self._before = None
            if model is None or optimizer is None or not is_monitored_step(state.global_step, self.every):
                return
            rate = float(optimizer.param_groups[0]["lr"])
            if rate <= 0:
                return
            self._before = (rate, {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad})

        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            if self._before is None:
                return
            rate, before = self._before
            self._before = None
            domain = [self.domain] if self.domain is not None else self._captured
            if not domain:
                return
            after = {k: p.detach() for k, p in model.named_parameters() if k in before}
            self._busy = True
            try:
                self._pending = measure_step(model, before, self.probe, domain, learning_rate=rate, params_after=after,
                                             **self.settings)
            finally:
                self._busy = False

        def on_step_end(self, args, state, control, **kwargs):
            if self._pending is None:
                return
            numbers, self._pending = self._pending, None
            self.history.append({"step": state.global_step, **numbers})
            # trainer.log resets control.should_log, which would drop the trainer's own log of this step
            should_log = control.should_log
            self.trainer.log({self.prefix + k: v for k, v in numbers.items()})
            control.should_log = should_log

    StepMonitorCallback.__module__ = __name__
    return StepMonitorCallback


_LAZY: dict = {}


def __getattr__(name: str):
    """``StepMonitorCallback`` is built on first use, so importing this module does not import transformers."""
    if name == "StepMonitorCallback":
        if name not in _LAZY:
            _LAZY[name] = _callback_class()
        return _LAZY[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

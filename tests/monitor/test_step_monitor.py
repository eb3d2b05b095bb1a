"""The step monitor (``sft_tilt.monitor.measure_step``) against cases whose answer is known.

* Free logits (a bigram table: the logits of each context are parameters): every update is exactly a tilt of the
  next-token distributions along ``J u``, so the linearised prediction is the measurement. Every number is checked
  against an independent NumPy computation of its formula, and the band against the theory's own functions called
  here on the same tilts.
* A saturating head (``3 tanh(W)``) and a step that harms the probe at first order: the linearised tilt's Jensen
  bound grows with the step while the head caps every loss, so a large step must leave the band, and the monitor
  reports it (a small one stays inside); the linearised logits are computed here in closed form, without
  ``jax.jvp``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sft_tilt.theory as theory
from sft_tilt.monitor import MONITOR_KEYS, MonitorSettings, is_monitored_step, measure_step

VOCAB, ROWS, TIME = 11, 3, 9


def _batch(seed: int) -> dict:
    """Token ids and a loss mask with a prompt (first two tokens) and one row cut short (padding)."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, VOCAB, (ROWS, TIME))
    mask = np.ones((ROWS, TIME))
    mask[:, :2] = 0.0
    mask[1, 6:] = 0.0
    return {"tokens": tokens, "loss_mask": mask}


PROBE, DOMAIN = _batch(1), _batch(2)


def bigram(params, tokens):
    return params["W"][tokens]


def tanh_head(params, tokens):
    return 3.0 * jnp.tanh(params["W"][tokens])


def _mean_loss(logits_fn, params, batch):
    tokens, mask = jnp.asarray(batch["tokens"]), jnp.asarray(batch["loss_mask"])[:, 1:]
    z = logits_fn(params, tokens)[:, :-1]
    nll = jax.nn.logsumexp(z, -1) - jnp.take_along_axis(z, tokens[:, 1:, None], -1)[..., 0]
    return jnp.sum(nll * mask) / jnp.sum(mask)


def _optimiser_update(logits_fn, params, optimiser):
    """The update of one real optax step on the domain batch's mean token loss."""
    grads = jax.grad(lambda p: _mean_loss(logits_fn, p, DOMAIN))(params)
    updates, _ = optimiser.update(grads, optimiser.init(params), params)
    return updates


def _targets(batch):
    on = np.asarray(batch["loss_mask"])[:, 1:] > 0
    return on, np.asarray(batch["tokens"])[:, 1:][on]


def _numpy_log_softmax(z):
    top = z.max(-1, keepdims=True)
    return z - top - np.log(np.exp(z - top).sum(-1, keepdims=True))


def _numpy_monitor(W0, dW_linear, W1, lr, settings):
    """Every number of the monitor, by NumPy from the free-logit tables (``dW_linear``: the linearised logit change
    per context, which is ``W1 - W0`` for free logits)."""
    on, y = _targets(PROBE)
    ctx = np.asarray(PROBE["tokens"])[:, :-1][on]
    z0, z1, t = W0[ctx], W1[ctx], dW_linear[ctx]
    lq0, lq1 = _numpy_log_softmax(z0), _numpy_log_softmax(z1)
    q = np.exp(lq0)
    rows = np.arange(len(y))
    measured = np.mean(lq0[rows, y] - lq1[rows, y])

    def split(s):  # first-order term and cumulant term of the tilt s (at step 1) of q, per row
        mean = (q * s).sum(-1)
        first = mean - s[rows, y]
        excess = np.log((q * np.exp(s - mean[:, None])).sum(-1))
        return first, excess

    first_real, v_real = split(z1 - z0)
    first_lin, v_lin = split(t)
    centred = t - (q * t).sum(-1, keepdims=True)
    width = t.max(-1) - t.min(-1)
    c = centred.max(-1)
    h = np.where(c > 0, (np.expm1(c) - c) / np.where(c > 0, c, 1.0) ** 2, 0.5)
    out = {
        "measured_change": measured,
        "realised_first_order": first_real.mean(),
        "realised_curvature": v_real.mean(),
        "predicted_first_order": first_lin.mean(),
        "predicted_curvature": v_lin.mean(),
        "hoeffding_upper_bound": np.mean(first_lin + width**2 / 8),
        "bennett_upper_bound": np.mean(first_lin + (q * centred**2).sum(-1) * h),
        "general_misfit": math.sqrt(np.mean(((q - np.eye(VOCAB)[y]) ** 2).sum(-1))),
    }
    d_on, d_y = _targets(DOMAIN)
    d_ctx = np.asarray(DOMAIN["tokens"])[:, :-1][d_on]
    dl = _numpy_log_softmax(W0[d_ctx])
    nll = -dl[np.arange(len(d_y)), d_y]
    p = np.exp(-nll)
    losses = np.zeros(d_on.shape)
    losses[d_on] = nll
    per_sequence = [losses[b][d_on[b]].mean() for b in range(ROWS) if d_on[b].any()]
    r_dom = dW_linear[d_ctx] / lr
    q_dom = np.exp(dl)
    gain = np.mean(r_dom[np.arange(len(d_y)), d_y] - (q_dom * r_dom).sum(-1))
    norms = [np.linalg.norm(r - r.mean(-1, keepdims=True), axis=-1).max() for r in (t / lr, r_dom)]
    mass = np.mean(1 - p)
    out.update(domain_loss=nll.mean(), hard_token_fraction=np.mean(p <= 0.2), hard_token_mass=mass,
               dynamic_tau=float(np.median(per_sequence)), domain_gain_rate=gain,
               coupling=max(norms) / (math.sqrt(2) * mass) if settings.coupling is None else settings.coupling)
    return out


def _params(seed, scale=1.0):
    return {"W": jnp.asarray(np.random.default_rng(seed).normal(scale=scale, size=(VOCAB, VOCAB)))}


@pytest.mark.parametrize("optimiser_name", ["sgd", "adam"])
@pytest.mark.parametrize("learning_rate", [0.05, 2.0])
def test_a_free_logit_step_is_its_linearised_tilt_and_every_number_matches_numpy(optimiser_name, learning_rate):
    params = _params(0)
    update = _optimiser_update(bigram, params, getattr(optax, optimiser_name)(learning_rate))
    settings = MonitorSettings(target_gain=1e-3)  # a small target gain: the safe rate is then a root, not 0
    out = measure_step(bigram, params, PROBE, DOMAIN, learning_rate=learning_rate, update=update, settings=settings)
    assert list(out) == list(MONITOR_KEYS) and all(isinstance(v, float) for v in out.values())

    W0 = np.asarray(params["W"])
    dW = np.asarray(update["W"])
    want = _numpy_monitor(W0, dW, W0 + dW, learning_rate, settings)
    for key, value in want.items():
        assert out[key] == pytest.approx(value, rel=1e-10, abs=1e-13), key
    # the realised tilt is the linearised one: the prediction is the measurement, inside its band
    scale = abs(out["measured_change"])
    assert abs(out["linearisation_error"]) <= 1e-12 * scale
    assert abs(out["identity_residual"]) <= 1e-12 * scale
    assert out["band_lower"] <= out["measured_change"] <= out["band_upper"] and out["left_band"] == 0.0
    assert out["jensen_lower_bound"] == out["predicted_first_order"] == out["band_lower"]
    assert out["band_upper"] == min(out["hoeffding_upper_bound"], out["bennett_upper_bound"])
    assert out["learning_rate"] == learning_rate
    assert out["probe_tokens"] == np.sum(_targets(PROBE)[0]) and out["domain_tokens"] == np.sum(_targets(DOMAIN)[0])


def test_the_band_is_the_theory_functions_on_each_target_averaged():
    """The monitor's bounds equal the theory's ``jensen_lower_bound``, ``hoeffding_upper_bound``,
    ``bennett_upper_bound`` and ``tilt_excess`` called here per target on the linearised tilt and averaged."""
    learning_rate = 0.5
    params = _params(3)
    update = _optimiser_update(bigram, params, optax.adam(learning_rate))
    out = measure_step(bigram, params, PROBE, DOMAIN, learning_rate=learning_rate, update=update)
    on, y = _targets(PROBE)
    ctx = np.asarray(PROBE["tokens"])[:, :-1][on]
    q = np.exp(_numpy_log_softmax(np.asarray(params["W"])[ctx]))
    P = np.eye(VOCAB)[y]
    r = np.asarray(update["W"])[ctx] / learning_rate
    for key, fn in (("jensen_lower_bound", theory.jensen_lower_bound), ("hoeffding_upper_bound", theory.hoeffding_upper_bound),
                    ("bennett_upper_bound", theory.bennett_upper_bound)):
        assert out[key] == pytest.approx(float(np.mean(fn(P, q, r, learning_rate))), rel=1e-12), key
    exact = np.mean(theory.single_step_code_length_change(P, q, r, learning_rate))
    assert out["predicted_change"] == pytest.approx(float(exact), rel=1e-12)
    assert out["predicted_curvature"] == pytest.approx(float(np.mean(theory.tilt_excess(q, r, learning_rate))), rel=1e-12)


def test_the_safe_learning_rate_is_the_theorys_root_with_the_steps_constants():
    learning_rate = 0.05
    params = _params(0)
    update = _optimiser_update(bigram, params, optax.sgd(learning_rate))
    settings = MonitorSettings(tolerance=0.02, target_gain=1e-3)
    out = measure_step(bigram, params, PROBE, DOMAIN, learning_rate=learning_rate, update=update, settings=settings)
    mass, kappa, misfit, g = (out[k] for k in ("hard_token_mass", "coupling", "general_misfit", "domain_gain_rate"))
    rate = out["safe_learning_rate"]
    assert 0 < rate < math.inf and 0 < out["safe_step_floor"] < settings.tolerance
    consts = theory.hard_token_constants(mass, kappa, misfit, g)

    def bound(lam):
        return float(theory.matched_gain_bound(settings.target_gain, lam, consts.rho_max, g, consts.s_range, g_max=consts.g_max,
                                               s_range_general=consts.s_range_general).bound_relaxed)

    # the rate is where the relaxed matched-gain bound reaches the tolerance
    assert bound(rate) <= settings.tolerance < bound(rate * (1 + 1e-9))
    assert out["safe_step_floor"] == pytest.approx(float(consts.rho_max) * settings.target_gain, rel=1e-12)
    # an unreachable tolerance: the floor k1 Delta* is above it and nothing is certified
    strict = measure_step(bigram, params, PROBE, DOMAIN, learning_rate=learning_rate, update=update,
                          settings=MonitorSettings(tolerance=0.5 * out["safe_step_floor"], target_gain=1e-3))
    assert strict["safe_learning_rate"] == 0.0
    # a fixed coupling is used as given, and a larger one certifies less
    fixed = measure_step(bigram, params, PROBE, DOMAIN, learning_rate=learning_rate, update=update,
                         settings=MonitorSettings(target_gain=1e-3, coupling=2 * kappa))
    assert fixed["coupling"] == 2 * kappa and fixed["safe_learning_rate"] < rate


def _repeating(pattern) -> dict:
    tokens = np.array([[pattern[t % len(pattern)] for t in range(TIME)] for _ in range(ROWS)])
    mask = np.ones(tokens.shape)
    mask[:, 0] = 0.0
    return {"tokens": tokens, "loss_mask": mask}


def test_a_large_step_of_a_saturating_head_leaves_the_band_and_is_reported():
    """The domain text teaches token 1 after token 0, the probe has token 2 there: at first order the step harms the
    probe by ``lam l`` with ``l > 0``, without bound as ``lam`` grows. The head ``3 tanh(W)`` keeps every logit in
    ``[-3, 3]``, so no step can raise a token's loss above ``6 + log(V - 1)``: once the linearised tilt's Jensen
    bound exceeds that, the measured change must lie below the band."""
    domain, probe = _repeating([0, 1]), _repeating([0, 2])
    params = _params(0, scale=0.5)
    grads = jax.grad(lambda p: _mean_loss(tanh_head, p, domain))(params)
    W0 = np.asarray(params["W"])
    rows_on, y = _targets(probe)
    ctx = np.asarray(probe["tokens"])[:, :-1][rows_on]
    rows = np.arange(len(y))
    ceiling = 6.0 + math.log(VOCAB - 1)  # the largest loss any logits in [-3, 3] give a token
    flags = {}
    for learning_rate in (0.01, 100.0):
        update = {"W": -learning_rate * grads["W"]}  # one SGD step
        out = measure_step(tanh_head, params, probe, domain, learning_rate=learning_rate, update=update)
        # independently: the logits before and after, and their linearisation 3 sech^2(W) u, in closed form
        dW = np.asarray(update["W"])
        z0, z1, t = 3 * np.tanh(W0), 3 * np.tanh(W0 + dW), 3 * (1 - np.tanh(W0) ** 2) * dW
        lq0, lq1 = _numpy_log_softmax(z0[ctx]), _numpy_log_softmax(z1[ctx])
        measured = np.mean(lq0[rows, y] - lq1[rows, y])
        jensen = np.mean((np.exp(lq0) * t[ctx]).sum(-1) - t[ctx][rows, y])
        assert out["measured_change"] == pytest.approx(measured, rel=1e-10)
        assert out["band_lower"] == pytest.approx(jensen, rel=1e-10)
        assert jensen > 0  # the step harms the probe at first order
        assert abs(out["identity_residual"]) <= 1e-12 * abs(measured)  # the realised identity holds at any step
        flags[learning_rate] = out["left_band"]
        if learning_rate == 100.0:
            assert -lq1[rows, y].max() < ceiling < jensen  # no loss can reach the band, so the step left it
            assert out["measured_change"] < out["band_lower"] - out["measurement_resolution"]
        else:
            assert out["band_lower"] <= measured <= out["band_upper"]
    assert flags == {0.01: 0.0, 100.0: 1.0}


def test_float32_rounding_is_not_reported_as_leaving_the_band():
    """Free logits in float32: the measurement equals the prediction up to float32 rounding, which the monitor's
    resolution covers, while a float64 band alone would be narrower than that rounding."""
    learning_rate = 1e-3
    params = {"W": _params(0)["W"].astype(jnp.float32)}
    update = _optimiser_update(bigram, params, optax.sgd(learning_rate))
    out = measure_step(bigram, params, PROBE, DOMAIN, learning_rate=learning_rate, update=update)
    assert out["measurement_resolution"] > 1e3 * np.finfo(np.float64).eps
    assert abs(out["linearisation_error"]) <= out["measurement_resolution"]
    assert out["left_band"] == 0.0


def test_blocks_of_rows_and_the_two_ways_of_giving_the_step_agree():
    learning_rate = 0.3
    params = _params(5)
    update = _optimiser_update(bigram, params, optax.adam(learning_rate))
    after = optax.apply_updates(params, update)
    one = measure_step(bigram, params, PROBE, DOMAIN, learning_rate=learning_rate, update=update,
                       settings=MonitorSettings(chunk=1))
    whole = measure_step(bigram, params, PROBE, DOMAIN, learning_rate=learning_rate, params_after=after,
                         settings=MonitorSettings(chunk=1000))
    for key in MONITOR_KEYS:
        if key != "identity_residual":  # rounding-level on both sides
            assert one[key] == pytest.approx(whole[key], rel=1e-10, abs=1e-15), key


def test_bad_input_is_refused_naming_the_argument():
    params = _params(0)
    update = _optimiser_update(bigram, params, optax.sgd(0.1))
    call = dict(learning_rate=0.1, update=update)
    cases = [
        (dict(call, learning_rate=0.0), "learning_rate"),
        (dict(call, learning_rate=float("nan")), "learning_rate"),
        (dict(call, params_after=params), "params_after, update"),
        (dict(learning_rate=0.1), "params_after, update"),
        (dict(call, update={"W": update["W"][:3]}), "update"),
        (dict(call, update={"V": update["W"]}), "update"),
        (dict(call, update={"W": update["W"].at[0, 0].set(jnp.inf)}), "update"),
        (dict(call, settings="strict"), "settings"),
    ]
    for kwargs, name in cases:
        with pytest.raises(ValueError, match=f"^{name}"):
            measure_step(bigram, params, PROBE, DOMAIN, **kwargs)
    empty = dict(PROBE, loss_mask=np.zeros((ROWS, TIME)))
    for probe, name in ((empty, "probe"), ({"tokens": PROBE["tokens"]}, "probe"),
                        (dict(PROBE, tokens=PROBE["tokens"] + VOCAB), "probe")):
        with pytest.raises(ValueError, match=f"^{name}"):
            measure_step(bigram, params, probe, DOMAIN, **call)
    with pytest.raises(ValueError, match="^domain"):
        measure_step(bigram, params, PROBE, dict(DOMAIN, loss_mask=DOMAIN["loss_mask"][:, :4]), **call)
    with pytest.raises(ValueError, match="^logits_fn"):
        measure_step("bigram", params, PROBE, DOMAIN, **call)
    for field, value in (("tolerance", -1.0), ("target_gain", 0.0), ("coupling", -2.0), ("chunk", 0)):
        with pytest.raises(ValueError, match=f"^{field}"):
            MonitorSettings(**{field: value})


def test_monitored_steps_are_every_nth():
    assert [s for s in range(10) if is_monitored_step(s, 3)] == [2, 5, 8]
    assert all(is_monitored_step(s, 1) for s in range(4))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="^every"):
            is_monitored_step(0, bad)
    with pytest.raises(ValueError, match="^step"):
        is_monitored_step(-1, 2)

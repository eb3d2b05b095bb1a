"""The method registry (sft_tilt.methods.registry): a method registered here, in the test, runs through the synthetic trainer,
the real-LM harness (CLI included) and a figure's legend with no other file touched; the TALR variants match their
sources (DiSC's talr_loss transcribed independently in NumPy, TRL's DFT loss)."""

import os
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.methods.registry import (
    L2Penalty,
    Method,
    MethodConfig,
    PlotStyle,
    get_method,
    method_names,
    plot_style,
    plot_styles,
    register_method,
    unregister_method,
)
from sft_tilt.methods.weighting import LossWeighting, reweighted_loss, token_nll, token_weights
from tiny_harness import tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")

TOY = "toy-p2"


def _p_squared(losses, mask):
    """The toy weighting ``w = p^2 = exp(-2 l)``."""
    return jnp.exp(-2.0 * losses)


@pytest.fixture
def toy():
    """Register ``w = p^2`` for one test and always unregister it."""
    spec = register_method(Method(TOY, LossWeighting("function", function=_p_squared), formula="w = p^2",
                                  source="a toy for the registry test", style=PlotStyle("toy p^2", "C9", "*")))
    try:
        yield spec
    finally:
        unregister_method(TOY)
    assert TOY not in method_names()


# ----------------------------------------------------------------------------------------------- synthetic


def test_registered_method_trains_end_to_end_in_the_synthetic_trainer(toy):
    from sft_tilt.synthetic.models import ModelConfig, build_model
    from sft_tilt.synthetic.training import TrainConfig, train_epochs, train_to_gain
    from sft_tilt.synthetic.worlds import WorldConfig, make_world

    world = make_world(WorldConfig(n_general=6, n_domain=6, n_answer_contexts=2, cot_length=3, n_sequences=10, seed=2))
    model = build_model(world, ModelConfig("shared", dim=16, coupling=0.3))
    out = train_to_gain(model, world, TrainConfig(method=MethodConfig(TOY)), 3.0, 0.2, 400)
    assert bool(out["reached"]) and float(out["matched_domain_gain"]) == pytest.approx(0.2, abs=1e-9)
    # independent: p^2 = p^(1/tau) at tau = 1/2 without floor, the built-in TALR kind
    ref = train_to_gain(model, world, TrainConfig(method=MethodConfig("talr", tau_mode="fixed", tau=0.5, floor=0.0)), 3.0, 0.2, 400)
    assert int(out["steps"]) == int(ref["steps"])
    assert float(out["matched_general_change"]) == pytest.approx(float(ref["matched_general_change"]), rel=1e-10)
    epochs = train_epochs(model, world, TrainConfig(batch_size=5, method=MethodConfig(TOY)), 1.0, 2, 2)
    assert float(epochs["domain_gain"][-1]) > 0
    assert TrainConfig(method=MethodConfig(TOY)).label == "toy p^2"


# ----------------------------------------------------------------------------------------------- harness


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny GGUF model on disk, private cache and run folders, and the tiny preset."""
    with tiny_harness_env(tmp_path_factory.mktemp("registry")) as environment:
        yield environment


def test_registered_method_runs_through_the_harness_cli_and_a_figure_legend(toy, env, tmp_path, monkeypatch, capsys):
    from sft_tilt.figures import real_lm_figures
    from sft_tilt.harness import experiment_results as tables
    from sft_tilt.harness import experiments as ex
    from sft_tilt.harness.__main__ import main
    from sft_tilt.harness.methods import init_trainable, make_objective
    from sft_tilt.harness.stored_runs import load_result
    from sft_tilt.harness.session import get_session
    from sft_tilt.lm.model import forward

    preset = env["preset"]
    session = get_session(preset.resolved_model(), preset.tokenizer, preset.data)
    # the objective against an independent float64 NumPy computation of sum p^2 l / N
    enc = session.train["label"]
    tokens, loss_mask = enc.tokens[:2], enc.loss_mask[:2]
    logits = np.asarray(forward(session.params, session.config, jnp.asarray(tokens)), np.float64)[:, :-1]
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    l = logz - np.take_along_axis(logits, np.asarray(tokens)[:, 1:, None], -1)[..., 0]
    m = np.asarray(loss_mask, np.float64)[:, 1:]
    method = MethodConfig(TOY)
    trainable, frozen = init_trainable(method, session.params, jax.random.key(0))
    loss, _ = make_objective(method, session.config)(trainable, frozen, {"tokens": jnp.asarray(tokens), "loss_mask": jnp.asarray(loss_mask)})
    assert float(loss) == pytest.approx((np.exp(-2 * l) * l * m).sum() / m.sum(), rel=2e-5)

    # the command line offers the new method and runs it (the CLI flag --lr maps to learning_rate)
    assert main(["run", "--preset", "tiny", "--method", TOY, "--lr", "4e-3", "--fmt", "label", "--steps", "1", "--quiet"]) == 0
    assert "run " in capsys.readouterr().out
    cfg = replace(ex.method_config(preset, TOY, 4e-3, 0, "label"), steps=1)
    result = load_result(cfg)
    assert result is not None and result["config"]["method"] == {"name": TOY}
    assert result["config"]["learning_rate"] == 4e-3
    summary = ex.summarise_run(result)
    assert summary["method"] == TOY and np.isfinite(summary["domain_gain"])

    # a drawn figure's legend shows the registry's label, colour and marker of the new method
    row = {"method": TOY, "method_name": TOY, "alpha": None, "learning_rate": preset.comparison_learning_rates[0], "method_learning_rate": preset.comparison_learning_rates[0], "n": 1,
           "domain_gain": summary["domain_gain"], "general_change": summary["general_change"], "domain_gain_sd": 0.0,
           "general_change_sd": 0.0}
    sft = dict(row, method="sft", method_name="sft")
    monkeypatch.setattr(tables, "method_front", lambda preset, **k: {"rows": [sft, row], "front": {"domain_gain": [0.0, 1.0], "general_change": [0.0, 0.1]}})
    monkeypatch.setattr(tables, "method_comparison", lambda preset, **k: [{**summary, "learning_rate": preset.comparison_learning_rates[0], "seed": 0, "alpha": None}])
    drawn = {}

    def capture(fig, out_dir, name, config):
        drawn["fig"] = fig
        return config

    monkeypatch.setattr(real_lm_figures, "save_figure", capture)
    real_lm_figures.real_lm_methods_pareto(tmp_path)
    ax = drawn["fig"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "toy p^2" in labels and "SFT" in labels
    line = next(c for c in ax.containers if c.get_label() == "toy p^2").lines[0]
    assert line.get_marker() == "*" and line.get_color() == "C9"
    # its trajectory is drawn in the same colour
    assert any(ln.get_color() == "C9" and ln.get_linestyle() == "-" and len(ln.get_xdata()) == len(summary["trajectory"]) for ln in ax.lines)
    assert plot_style(TOY) == PlotStyle("toy p^2", "C9", "*")


def test_cli_refuses_an_unregistered_method():
    from sft_tilt.harness.__main__ import main

    with pytest.raises(SystemExit):
        main(["run", "--preset", "tiny", "--method", TOY, "--lr", "1e-3"])


# ----------------------------------------------------------------------------------------------- TALR variants


def _disc_talr_numpy(losses, mask, tau=None, min_prob=1e-6, weight_floor=0.01, normalize="mean"):
    """DiSC's documented talr_loss, transcribed in NumPy: ``p = max(exp(log p), min_prob)``; dynamic tau =
    ``max(torch.median(per-sequence sum(nll * valid) / clamp(count, 1)), 1e-6)`` with torch's lower median over
    all sequences; ``w = max(p^(1/tau), floor) * valid``; loss = ``sum(w * nll * valid)`` over the valid-token
    count ("mean") or over the number of sequences ("sum"); 0 for a batch without valid tokens.
    Returns ``(loss, weights)``."""
    valid = mask > 0
    if valid.sum() == 0:
        return 0.0, np.zeros_like(losses)
    nll = np.where(valid, losses, 0.0)
    probs = np.maximum(np.exp(-nll), min_prob)
    if tau is None:
        per_seq = nll.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
        tau = max(np.sort(per_seq)[(per_seq.size - 1) // 2], 1e-6)
    weights = np.maximum(probs ** (1.0 / tau), weight_floor) * valid
    total = (weights * nll * valid).sum()
    return (total / valid.sum() if normalize == "mean" else total / losses.shape[0]), weights


def _random_batch(rng):
    # few distinct shapes, so the eagerly dispatched JAX ops compile once per shape, not once per batch
    B, T = int(rng.choice([1, 2, 3, 4, 6])), int(rng.choice([1, 5]))
    losses = rng.exponential(rng.choice([0.3, 1.5, 4.0]), size=(B, T))
    hopeless = rng.random((B, T)) < 0.15
    losses[hopeless] = rng.uniform(13.9, 40.0, size=hopeless.sum())  # p < 1e-6
    mask = (rng.random((B, T)) > rng.choice([0.0, 0.3, 0.6])).astype(float)
    mask[rng.random(B) < 0.25] = 0.0  # sequences with no supervised token
    losses[mask == 0] = np.where(rng.random((mask == 0).sum()) < 0.5, np.nan, 1e3)  # never read
    return losses, mask


def test_talr_disc_matches_an_independent_numpy_transcription_of_disc():
    rng = np.random.default_rng(20260)
    seen = {"even": 0, "empty_seq": 0, "hopeless": 0, "empty_batch": 0}
    for i in range(240):
        losses, mask = _random_batch(rng)
        seen["even"] += losses.shape[0] % 2 == 0
        seen["empty_seq"] += bool(np.any(mask.sum(1) == 0))
        seen["hopeless"] += bool(np.any((losses > -np.log(1e-6)) & (mask > 0)))
        seen["empty_batch"] += mask.sum() == 0
        fixed = i % 5 == 4
        tau = float(rng.uniform(0.2, 6.0)) if fixed else None
        for normalization, normalize in (("none", "mean"), ("batch_size", "sum")):
            hp = {"normalization": normalization, **({"tau_mode": "fixed", "tau": tau} if fixed else {})}
            weighting = MethodConfig("talr-disc", hp).weighting()
            expected, w_disc = _disc_talr_numpy(losses, mask, tau=tau, normalize=normalize)
            got = float(reweighted_loss(weighting, losses, mask))
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-300), (i, normalization)
            w = np.asarray(token_weights(weighting, losses, mask))
            scale = 1.0 if normalization == "none" else mask.sum() / losses.shape[0]  # loss / B == sum (w N/B) l / N
            np.testing.assert_allclose(w, w_disc * scale, rtol=1e-12, atol=0)
    assert min(seen.values()) >= 5 and seen["even"] >= 100, seen


def test_talr_disc_hopeless_token_weight_and_lower_median():
    # one hopeless token (p = 1e-9) at tau = 3.8: DiSC gives 1e-6^(1/3.8) = 0.026, the toolkit's talr the floor
    l, m = np.array([[-np.log(1e-9)]]), np.ones((1, 1))
    fixed = {"tau_mode": "fixed", "tau": 3.8}
    assert float(token_weights(MethodConfig("talr-disc", fixed).weighting(), l, m)[0, 0]) == pytest.approx(1e-6 ** (1 / 3.8), rel=1e-12)
    assert float(token_weights(MethodConfig("talr", fixed).weighting(), l, m)[0, 0]) == 0.01
    assert 1e-6 ** (1 / 3.8) == pytest.approx(0.0264, abs=1e-4)
    # four sequences with mean losses 1, 2, 3, 4: average median 2.5, lower 2; an empty fifth counts as 0 for DiSC
    losses = np.array([[1.0], [2.0], [3.0], [4.0], [0.0]])
    mask = np.array([[1.0], [1.0], [1.0], [1.0], [0.0]])
    from sft_tilt.methods.weighting import dynamic_tau

    assert float(dynamic_tau(losses, mask)) == 2.5
    assert float(dynamic_tau(losses[:4], mask[:4], median="lower")) == 2.0
    assert float(dynamic_tau(losses, mask, median="lower", empty_sequences="zero")) == 2.0  # sorted 0,1,2,3,4
    assert float(dynamic_tau(losses, mask, median="lower", empty_sequences="skip")) == 2.0
    assert float(dynamic_tau(np.ones((2, 1)), np.zeros((2, 1)), median="lower", empty_sequences="zero")) == 1e-6


def test_the_weighting_docstring_table_is_what_the_code_computes():
    from sft_tilt.methods.weighting import dynamic_tau, weighted_loss

    P = [[0.02, 0.01], [0.5, 1e-9], [0.03, None], [None, None]]
    losses = np.array([[-np.log(p) if p else 0.0 for p in row] for row in P])
    mask = np.array([[1.0 if p else 0.0 for p in row] for row in P])
    table = {  # variant: (tau, w(1e-9), w(0.5), loss), as printed in sft_tilt/methods/weighting.py
        "talr": ({}, 4.2586, 0.01000, 0.8498, 1.0917),
        "talr-disc": ({}, 3.5066, 0.01945, 0.8206, 0.9565),
        "talr-disc (sum)": ({"normalization": "batch_size"}, 3.5066, 0.02431, 1.0258, 1.1956),
        "talr-mean": ({}, 4.2586, 0.02455, 2.0860, 2.6797),
        "talr-simplex": ({}, 4.2586, 0.00379, 0.4177, 0.5319),
    }
    for name, (hp, tau, w_hopeless, w_half, loss) in table.items():
        weighting = MethodConfig(name.split(" ")[0], hp).weighting()
        w = np.asarray(token_weights(weighting, losses, mask))
        assert float(dynamic_tau(losses, mask, weighting.median, weighting.empty_sequences)) == pytest.approx(tau, abs=5e-5)
        assert w[1, 1] == pytest.approx(w_hopeless, abs=5e-6)
        assert w[1, 0] == pytest.approx(w_half, abs=5e-5)
        assert float(weighted_loss(losses, mask, w)) == pytest.approx(loss, abs=5e-5)


def test_talr_mean_and_simplex_are_normalisations_of_talr():
    rng = np.random.default_rng(1)
    losses, mask = rng.exponential(2.0, size=(4, 5)), (rng.random((4, 5)) > 0.3).astype(float)
    mask[:, 0] = 1.0
    raw = np.asarray(token_weights(MethodConfig("talr").weighting(), losses, mask))
    mean = np.asarray(token_weights(MethodConfig("talr-mean").weighting(), losses, mask))
    np.testing.assert_allclose(mean, raw * mask.sum() / raw.sum(), rtol=1e-12)
    simplex = np.asarray(token_weights(MethodConfig("talr-simplex").weighting(), losses, mask))
    unfloored = np.asarray(token_weights(MethodConfig("talr", floor=0.0).weighting(), losses, mask))
    np.testing.assert_allclose(simplex, unfloored / unfloored.sum(), rtol=1e-12)


def test_dft_is_trls_definition():
    """TRL's dft_loss: ``per_token = -p.detach() * log p``, summed over label tokens and divided by their count;
    its gradient is ``(1/N) sum p grad(-log p)``."""
    rng = np.random.default_rng(5)
    theta = jnp.asarray(rng.normal(0, 2, size=(3, 4, 6)))
    targets = jnp.asarray(rng.integers(0, 6, size=(3, 4)))
    mask = jnp.asarray((rng.random((3, 4)) > 0.3).astype(float)).at[:, 0].set(1.0)
    weighting = MethodConfig("dft").weighting()

    def ours(th):
        return reweighted_loss(weighting, token_nll(th, targets), mask)

    def trl(th):
        logp = jax.nn.log_softmax(th, -1)
        lp = jnp.take_along_axis(logp, targets[..., None], -1)[..., 0]
        return jnp.sum(-jax.lax.stop_gradient(jnp.exp(lp)) * lp * mask) / jnp.sum(mask)

    assert float(ours(theta)) == pytest.approx(float(trl(theta)), rel=1e-13)
    np.testing.assert_allclose(jax.grad(ours)(theta), jax.grad(trl)(theta), rtol=1e-11, atol=1e-15)


# ----------------------------------------------------------------------------------------------- the registry


def test_every_registered_method_resolves_and_has_a_formula_source_and_style():
    for name in method_names():
        spec = get_method(name)
        cfg = MethodConfig(name)
        assert spec.formula and spec.source and isinstance(spec.style, PlotStyle)
        assert cfg.canonical()["name"] == name and hash(cfg) == hash(MethodConfig(name))
        assert isinstance(cfg.weighting(), LossWeighting)
    assert {"sft", "talr", "talr-disc", "talr-mean", "talr-simplex", "dft", "flow", "eaft", "asft", "sft-kl", "l2", "lora",
            "averaging"} <= set(method_names())
    assert MethodConfig("asft").kl_coefficient == 0.1 and MethodConfig("sft").kl_coefficient is None
    assert MethodConfig("eaft").weighting().needs_entropies and not MethodConfig("dft").weighting().needs_entropies
    assert MethodConfig("l2").l2_coefficient == 1.0 and MethodConfig("talr").l2_coefficient is None
    assert MethodConfig("flow").spec.needs_initial_losses and not MethodConfig("talr").spec.needs_initial_losses
    assert MethodConfig("averaging").trains_as == "sft" and get_method("lora").trainable == "lora"
    assert MethodConfig("talr", tau_mode="fixed", tau=0.7).label == "TALR (tau=0.7, tau_mode=fixed)"
    colours = [get_method(n).style.color for n in method_names()]
    assert len(set(colours)) == len(colours), "two registered methods share a colour: figures could not tell them apart"
    a, b = plot_styles([MethodConfig("talr"), MethodConfig("talr", tau=0.5, tau_mode="fixed")])
    assert a.color == b.color and (a.marker, a.linestyle) != (b.marker, b.linestyle)


@pytest.mark.parametrize(
    "build, name",
    [
        (lambda: MethodConfig("magic"), "name"),
        (lambda: MethodConfig("talr", talr_tau=1.0), "hyperparameters"),
        (lambda: MethodConfig("talr", tau=-1.0, tau_mode="fixed"), "tau"),
        (lambda: MethodConfig("talr", floor=1.5), "floor"),
        (lambda: MethodConfig("talr-disc", normalization="mean"), "normalization"),
        (lambda: MethodConfig("talr-disc", min_prob=1.0), "min_prob"),
        (lambda: MethodConfig("l2", mu=float("nan")), "mu"),
        (lambda: MethodConfig("lora", rank=0), "rank"),
        (lambda: LossWeighting("talr", median="upper"), "median"),
        (lambda: LossWeighting("talr", empty_sequences="drop"), "empty_sequences"),
        (lambda: LossWeighting("function"), "function"),
        (lambda: register_method(Method("sft", LossWeighting("sft"))), "method"),
        (lambda: Method("x", LossWeighting("sft"), penalty=L2Penalty("mu")), "penalty"),
        (lambda: Method("x", LossWeighting("sft"), trainable="adapters"), "trainable"),
        (lambda: unregister_method("never-registered"), "name"),
    ],
)
def test_bad_input_raises_naming_the_argument(build, name):
    with pytest.raises(ValueError, match=name):
        build()

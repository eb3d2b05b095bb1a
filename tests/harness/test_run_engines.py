"""The fast run engine against the reference engine: the same evaluation points to within ``engines.TOLERANCE``.

The reference engine is the code every committed run was computed with; the fast engine cuts batches to their targets,
sorts evaluation rows by length, checks finiteness inside the step and checkpoints less often
(:mod:`sft_tilt.harness.engines`). A run of the ``tiny`` preset (a random model written to disk) is computed both ways
for methods that take every path of the objective; the ``smoke`` preset (SmolLM2 itself) is the slow counterpart.
"""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.harness import engines
from tiny_harness import tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("engines")) as environment:
        yield environment


@pytest.fixture(scope="module")
def session(env):
    from sft_tilt.harness.session import get_session

    p = env["preset"]
    return get_session(p.resolved_model(), p.tokenizer, p.data)


def _wide_data(preset):
    """The tiny preset's data with the sets it leaves out: unseen calculators and general multiple choice."""
    from sft_tilt.harness.presets import SHORT_UNSEEN_CALCULATORS

    return replace(preset.data, n_unseen=2, unseen_calculators=SHORT_UNSEEN_CALCULATORS, n_choice=4)


def _loss_numbers(point: dict) -> dict:
    """Every loss a point holds (nats/token): domain, each general set, unseen, and each training step's loss."""
    out = {"domain_loss": point["domain_loss"], "domain_gain": point["domain_gain"]}
    out.update({f"general.{k}": v for k, v in point["general"].items()})
    out.update({f"general_change.{k}": v for k, v in point["general_change"].items()})
    if "unseen" in point:
        out["unseen.loss"] = point["unseen"]["loss"]
    out.update({f"train_step.{r['step']}.loss": r["loss"] for r in point["train_steps"]})
    return out


def _assert_same_points(reference: dict, fast: dict) -> None:
    assert [p["step"] for p in fast["points"]] == [p["step"] for p in reference["points"]]
    for a, b in zip(reference["points"], fast["points"]):
        assert set(a) == set(b)
        assert [r["n_tokens"] for r in a["train_steps"]] == [r["n_tokens"] for r in b["train_steps"]]
        assert a["heldout_stats"]["n_tokens"] == b["heldout_stats"]["n_tokens"]
        la, lb = _loss_numbers(a), _loss_numbers(b)
        assert set(la) == set(lb)
        worst = max(abs(la[k] - lb[k]) for k in la)
        assert worst <= engines.TOLERANCE, (a["step"], {k: (la[k], lb[k]) for k in la if abs(la[k] - lb[k]) == worst})
    for a, b in zip(reference["averaging"], fast["averaging"]):
        assert abs(a["domain_loss"] - b["domain_loss"]) <= engines.TOLERANCE
        assert max(abs(a["general"][k] - b["general"][k]) for k in a["general"]) <= engines.TOLERANCE


def test_target_extents_trimmed_lengths_and_batches():
    mask = np.zeros((4, 12), np.float32)
    mask[0, 3:7] = 1
    mask[1, 10] = 1
    mask[2, [2, 5]] = 1  # a gap inside the response
    # row 3 has no target
    expected = []
    for row in mask:  # 1 + the last target's position, by a plain loop
        last = max((t for t in range(len(row)) if row[t] != 0), default=0)
        expected.append(last + 1)
    np.testing.assert_array_equal(engines.target_extents(mask), expected)
    assert engines.trimmed_length(7, 4, 12) == 8 and engines.trimmed_length(11, 4, 12) == 12
    assert engines.trimmed_length(1, 4, 12) == 4 and engines.trimmed_length(1, 1, 12) == 2
    tokens = np.arange(48).reshape(4, 12)
    batch = {"tokens": tokens[:2], "loss_mask": mask[[0, 2]], "sequence_weights": np.array([0.5, 2.0])}
    cut = engines.trim_batch(batch, bucket=4)
    np.testing.assert_array_equal(cut["tokens"], tokens[:2, :8])
    np.testing.assert_array_equal(cut["loss_mask"], mask[[0, 2], :8])
    assert cut["sequence_weights"] is batch["sequence_weights"]
    assert engines.trim_batch({"tokens": tokens[:2], "loss_mask": mask[:2]}, bucket=4)["tokens"].shape == (2, 12)
    with pytest.raises(ValueError, match="extent"):
        engines.trimmed_length(13, 4, 12)
    with pytest.raises(ValueError, match="bucket"):
        engines.trimmed_length(3, 0, 12)
    with pytest.raises(ValueError, match="engine"):
        engines.check_engine("turbo")


def test_trimmed_scores_match_an_independent_float64_forward(env):
    """Per-token losses of the sorted, trimmed batches against float64 NumPy from the full-window logits, and against
    the reference engine's scoring, on sets with rows of different lengths and a last batch that is not full."""
    from sft_tilt.harness.measure import set_token_scores
    from sft_tilt.harness.session import Session
    from sft_tilt.lm.model import forward

    p = env["preset"]
    session = Session(p.resolved_model(), p.tokenizer, _wide_data(p))
    for enc in (session.heldout["cot"], session.unseen["cot"], session.choice_set[0]):
        extents = engines.target_extents(enc.loss_mask)
        assert extents.max() < enc.seq_len  # the windows have padding to cut
        losses, top1, mask = engines.trimmed_set_token_scores(session.params, session.config, enc, 3)
        logits = np.asarray(forward(session.params, session.config, jnp.asarray(enc.tokens)), np.float64)[:, :-1]
        logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
        picked = np.take_along_axis(logits, enc.tokens[:, 1:, None].astype(np.int64), -1)[..., 0]
        expected = (logz - picked) * mask
        assert np.abs(losses - expected).max() <= engines.TOLERANCE
        assert np.all(losses[mask == 0] == 0) and np.all(top1[mask == 0] == 0)
        clear = (mask > 0) & (np.abs(picked - logits.max(-1)) > 1e-3)  # top-1 decided beyond round-off
        np.testing.assert_array_equal(top1[clear] > 0, (picked >= logits.max(-1) - 1e-9)[clear])
        ref_losses, _, ref_mask = set_token_scores(session.params, session.config, enc, 3)
        np.testing.assert_array_equal(mask, ref_mask)
        assert np.abs(losses - ref_losses).max() <= engines.TOLERANCE


def test_the_reference_engine_keeps_the_run_keys_and_the_fast_engine_has_its_own(env):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiments import sft_config
    from sft_tilt.harness.session import model_fingerprint

    cfg = sft_config(env["preset"], 4e-3, "cot", 0)
    assert cfg.engine == "reference"
    fingerprint = model_fingerprint(cfg.model)
    material = runs._material(cfg, fingerprint)
    assert "engine" not in material["run"]  # as before the engines existed: the committed runs keep their keys
    fast = replace(cfg, engine="fast")
    assert runs._material(fast, fingerprint)["run"]["engine"] == {"name": "fast", "version": engines.FAST_ENGINE_VERSION}
    assert runs.run_key(fast) != runs.run_key(cfg)
    with pytest.raises(ValueError, match="engine"):
        replace(cfg, engine="turbo")


def _fast_batch_lengths(monkeypatch, runs) -> list:
    """Make ``runs.run_one``'s training steps record the window length of every batch they get."""
    lengths = []
    make = runs.make_train_step

    def recording(*a, **k):
        step = make(*a, **k)

        def recorded(trainable, opt_state, frozen, batch):
            lengths.append(int(np.shape(batch["tokens"])[1]))
            return step(trainable, opt_state, frozen, batch)

        recorded.optimizer = step.optimizer  # the run initialises its optimiser state from the step's
        return recorded

    monkeypatch.setattr(runs, "make_train_step", recording)
    return lengths


#: SFT in both formats (on chain-of-thought at a method learning rate it also evaluates model averaging and the final
#: accuracy), TALR (a dynamic temperature from the batch's losses), FLOW (per-sequence weights from the base model),
#: LoRA (adapters) and SFT-KL (the full logits and a second forward pass of the initial model)
TINY_RUNS = [("sft", "cot"), ("sft", "label"), ("talr-mean", "cot"), ("flow", "cot"), ("lora", "cot"), ("sft-kl", "cot")]


@pytest.mark.parametrize("method, fmt", TINY_RUNS)
def test_a_tiny_run_gives_the_same_points_with_both_engines(env, session, monkeypatch, method, fmt):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiments import method_config, sft_config

    preset = env["preset"]
    if method == "sft":
        cfg = sft_config(preset, preset.comparison_learning_rates[0], fmt, 0)
    else:
        cfg = method_config(preset, method, preset.learning_rates_of(method)[0], 0, fmt)
    reference = runs.run_one(cfg, progress=False)
    lengths = _fast_batch_lengths(monkeypatch, runs)
    fast = runs.run_one(replace(cfg, engine="fast"), progress=False)
    assert fast["key"] != reference["key"]
    assert lengths and max(lengths) < session.data.seq_len(fmt)  # the fast engine really trained on cut batches
    _assert_same_points(reference, fast)
    assert fast["config"]["engine"] == "fast" and reference["config"]["engine"] == "reference"


def test_a_tiny_run_with_unseen_calculators_and_multiple_choice_gives_the_same_points(env, monkeypatch):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiments import sft_config

    cfg = sft_config(env["preset"], env["preset"].learning_rate_grid[0], "cot", 0)
    cfg = replace(cfg, data=_wide_data(env["preset"]))
    reference = runs.run_one(cfg, progress=False)
    fast = runs.run_one(replace(cfg, engine="fast"), progress=False)
    assert "unseen" in fast["points"][0] and "choice" in fast["points"][0]
    _assert_same_points(reference, fast)


def test_the_fast_engine_finds_divergence_where_the_reference_engine_does(env, session):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiments import sft_config

    cfg = replace(sft_config(env["preset"], 1e29, "label", 0), steps=4, eval_every=4, final_accuracy=False)
    reference = runs.run_one(cfg, progress=False)
    fast = runs.run_one(replace(cfg, engine="fast"), progress=False)
    assert reference["diverged"] and fast["diverged"]
    assert fast["diverged_step"] == reference["diverged_step"]
    assert [p["step"] for p in fast["points"]] == [p["step"] for p in reference["points"]]


def test_the_fast_engine_checkpoints_once_the_interval_has_passed(env, session, monkeypatch):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiments import sft_config

    cfg = replace(sft_config(env["preset"], 4e-3, "label", 1), engine="fast", final_accuracy=False,
                  averaging_alphas=(), steps=3, eval_every=1)
    # within the interval: an interrupted run leaves its points but no checkpoint, and restarts from step 0
    monkeypatch.setattr(engines, "CHECKPOINT_INTERVAL_S", 1e9)
    with pytest.raises(runs.Interrupted):
        runs.run_one(cfg, progress=False, interrupt_after=2)
    folder = runs.run_folder(cfg)
    assert [p["step"] for p in runs._read_points(folder)] == [1, 2] and not (folder / "state.npz").exists()
    # past the interval at every point: checkpoints as the reference engine writes them, and the run resumes there
    monkeypatch.setattr(engines, "CHECKPOINT_INTERVAL_S", 0.0)
    with pytest.raises(runs.Interrupted):
        runs.run_one(cfg, progress=False, interrupt_after=2)
    assert (folder / "state.npz").exists()
    steps = _fast_batch_lengths(monkeypatch, runs)
    resumed = runs.run_one(cfg, progress=False)
    assert len(steps) == 1 and resumed["provenance"]["resumed_at_step"] == 2


@pytest.mark.slow
def test_a_smoke_run_gives_the_same_points_with_both_engines(tmp_path, monkeypatch):
    """SmolLM2 itself (the ``smoke`` preset): one TALR run on chain-of-thought, both engines, private folders."""
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiments import method_config
    from sft_tilt.harness.presets import get_preset

    for name in ("SFT_RUNS_DIR", "SFT_CACHE_DIR", "SFT_RESULTS_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    preset = get_preset("smoke")
    cfg = method_config(preset, "talr-mean", preset.comparison_learning_rates[1], 0, "cot")
    reference = runs.run_one(cfg, progress=False)
    lengths = _fast_batch_lengths(monkeypatch, runs)
    fast = runs.run_one(replace(cfg, engine="fast"), progress=False)
    assert lengths and max(lengths) < preset.data.seq_len_cot
    _assert_same_points(reference, fast)

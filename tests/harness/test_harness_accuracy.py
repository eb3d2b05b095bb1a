"""Teacher-forced accuracies, the answer-token mask and the recorded learning rates of the real-LM harness, each
against an independent computation."""

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.harness.measure import answer_accuracy, top1_rate
from sft_tilt.harness.schedules import learning_rate_schedule
from sft_tilt.lm.model import forward
from tiny_harness import tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


# ----------------------------------------------------------------------------- accuracies on hand-built arrays


def test_top1_rate_and_answer_accuracy_on_known_arrays():
    top1 = np.array([[1, 0, 1, 1], [1, 1, 0, 1], [0, 0, 0, 0]], float)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [0, 1, 1, 0]], float)
    assert top1_rate(top1, mask) == pytest.approx(5 / 9)  # top-1 at scored targets: 2 + 3 + 0 of 3 + 4 + 2
    answer = np.array([[0, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 0]], float)
    assert answer_accuracy(top1, answer) == pytest.approx(1 / 3)  # row 0 right; row 1 misses t=2; row 2 misses
    with pytest.raises(ValueError, match="answer_mask"):
        answer_accuracy(top1, np.zeros_like(answer))
    with pytest.raises(ValueError, match="mask"):
        top1_rate(top1, np.zeros_like(mask))


# ----------------------------------------------------------------------------- the real tokenizer and a tiny model


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("accuracy")) as environment:
        yield environment


@pytest.fixture(scope="module")
def session(env):
    from sft_tilt.harness.session import get_session

    p = env["preset"]
    from sft_tilt.harness.presets import SHORT_UNSEEN_CALCULATORS

    data = replace(p.data, n_unseen=2, unseen_calculators=SHORT_UNSEEN_CALCULATORS, n_choice=4)
    return get_session(p.resolved_model(), p.tokenizer, data)


def test_answer_mask_covers_exactly_the_tokens_that_spell_the_answer(session):
    """Decoding the masked targets of every held-out and unseen window gives the text after its last 'Answer:'
    (up to the space BPE fuses onto the first digit); the mask lies inside the response's loss mask."""
    from sft_tilt.harness.medcalc import answer_start

    for split, examples, sets in (("heldout", session.splits.heldout, session.heldout),
                                  ("unseen", session.splits.unseen, session.unseen)):
        assert examples, split
        for fmt, enc in sets.items():
            mask = session.answer_masks[split, fmt]
            assert np.all(mask <= enc.loss_mask[:, 1:])
            for n, ex in enumerate(examples):
                response = ex.response(fmt)
                tokens = enc.tokens[n, 1:][mask[n] > 0]
                assert session.tokenizer.decode(tokens.tolist()).strip() == response[answer_start(response):].strip()


def test_teacher_forced_accuracies_equal_an_independent_argmax(session):
    """evaluate()'s answer accuracy and general next-token accuracy against an argmax of the full forward logits."""
    params = session.params
    ev = session.evaluate(params, "label")

    def argmax_hits(enc):
        logits = np.asarray(forward(params, session.config, jnp.asarray(enc.tokens)), np.float64)[:, :-1]
        target = np.take_along_axis(logits, enc.tokens[:, 1:, None].astype(np.int64), -1)[..., 0]
        return target >= logits.max(-1)

    hits = argmax_hits(session.heldout["label"])
    answer = session.answer_masks["heldout", "label"] > 0
    expected = np.mean([np.all(hits[n][answer[n]]) for n in range(len(hits))])
    assert ev["answer_accuracy"] == pytest.approx(expected)
    assert ev["answer_token_accuracy"] == pytest.approx(hits[answer].mean())
    for name, enc in session.general.items():
        m = enc.loss_mask[:, 1:] > 0
        assert ev["general_top1"][name] == pytest.approx(argmax_hits(enc)[m].mean()), name
    assert set(ev["unseen"]) == {"loss", "answer_accuracy", "answer_token_accuracy", "top1"}
    assert np.isfinite(ev["unseen"]["loss"])
    unseen_mask = session.unseen["label"].loss_mask[:, 1:] > 0
    assert ev["unseen"]["top1"] == pytest.approx(argmax_hits(session.unseen["label"])[unseen_mask].mean())
    assert 0.0 <= ev["choice"]["accuracy"] <= 1.0 and ev["choice"]["n"] == 4


def test_chance_levels_are_what_guessing_scores(session):
    chance = session.chance_levels()
    assert chance["top1"] == chance["answer_token_accuracy"] == pytest.approx(1 / session.config.vocab_size)
    _, _, items = session.choice_set
    assert chance["choice"] == pytest.approx(np.mean([1 / len(item.choices) for item in items]))


def test_a_run_records_its_schedule_and_accuracies(env, session):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiment_runs import sft_config
    from sft_tilt.harness.experiment_results import summarise_run

    cfg = replace(sft_config(env["preset"], 4e-3, "label", 0), data=session.data, final_accuracy=False, steps=3,
                  eval_every=1, warmup_steps=1)
    res = runs.run_one(cfg, progress=False)
    rates = [s["learning_rate"] for p in res["points"] for s in p["train_steps"]]
    assert rates == [learning_rate_schedule(4e-3, 3, 1)(k) for k in range(3)]  # the float64 values themselves
    traj = summarise_run(res)["accuracy_trajectory"]
    assert [a["step"] for a in traj] == [0, 1, 2, 3]
    assert traj[0]["answer_accuracy"] == res["base"]["answer_accuracy"]
    assert all(0.0 <= a["choice"] <= 1.0 and 0.0 <= a["general_top1"] <= 1.0 for a in traj)
    assert res["chance"]["choice"] == pytest.approx(session.chance_levels()["choice"])

"""The learning-rate schedule is an optax schedule with exactly the values the committed runs were trained with."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.harness.schedules import SCHEDULES, learning_rate_schedule


def _committed_formula(step, learning_rate, steps, warmup_steps, schedule):
    """The schedule as the committed runs computed it (the harness's formula before it became an optax schedule),
    written out independently: float64 Python arithmetic in this order."""
    if schedule == "constant":
        return float(learning_rate)
    if step < warmup_steps:
        return float(learning_rate) * (step + 1) / warmup_steps
    return float(learning_rate) * (steps - step) / (steps - warmup_steps)


@pytest.mark.parametrize("steps, warmup_steps", [(100, 10), (4, 0), (8, 1), (2, 1), (3, 1), (128, 13), (1, 0), (37, 36)])
@pytest.mark.parametrize("learning_rate", [3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 2.5e-3, 4e-3])
def test_every_step_has_exactly_the_committed_runs_value(steps, warmup_steps, learning_rate):
    """Bit for bit at every step, for every grid learning rate of the presets: the float64 value the records hold and
    its float32 rounding, which the optimiser receives."""
    for schedule in SCHEDULES:
        fn = learning_rate_schedule(learning_rate, steps, warmup_steps, schedule)
        for k in range(steps):
            want = _committed_formula(k, learning_rate, steps, warmup_steps, schedule)
            got = fn(k)
            assert type(got) is float and got == want, (schedule, k)
            assert np.float32(fn(np.int64(k))) == np.float32(want)


def test_the_linear_schedule_warms_up_then_decays_without_a_zero_step():
    fn = learning_rate_schedule(1e-4, 10, 3)
    got = [fn(k) for k in range(10)]
    np.testing.assert_allclose(got, [1e-4 / 3, 2e-4 / 3, 1e-4] + [1e-4 * (10 - k) / 7 for k in range(3, 10)], rtol=1e-15)
    assert max(got) == pytest.approx(1e-4) and min(got) > 0


def test_a_traced_step_follows_the_same_schedule():
    """Inside ``jax.jit`` the pieces are joined by ``optax.join_schedules``; with float64 enabled the values are the
    host's to round-off."""
    for steps, warmup in ((100, 10), (4, 0), (8, 1)):
        fn = learning_rate_schedule(1e-4, steps, warmup)
        traced = np.asarray(jax.jit(fn)(jnp.arange(steps)))
        np.testing.assert_allclose(traced, [fn(k) for k in range(steps)], rtol=1e-6 if traced.dtype == np.float32 else 1e-15)


@pytest.mark.parametrize("args, name", [((1e-4, 10, 10), "warmup_steps"), ((1e-4, 10, -1), "warmup_steps"),
                                        ((1e-4, 0, 0), "steps"), ((0.0, 10, 0), "learning_rate"),
                                        ((float("nan"), 10, 0), "learning_rate"), ((1e-4, 10, True), "warmup_steps")])
def test_bad_arguments_are_named(args, name):
    with pytest.raises(ValueError, match=name):
        learning_rate_schedule(*args)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate_schedule(1e-4, 10, 0, "cosine")

"""The step monitor inside the harness's runs (``RunConfig.monitor_every``), on the tiny random model.

Off by default, the field is not part of a run's description, so every existing key (the committed runs' included)
is unchanged; on, a run trains exactly as without it and every N-th step's record carries the monitor's numbers, whose
domain loss is the loss the step itself computed.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import jax
import pytest

from sft_tilt.monitor import MONITOR_KEYS
from sft_tilt.store import CHECKOUT_ROOT
from tiny_harness import tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("step_monitoring")) as environment:
        yield environment


def test_off_by_default_the_description_and_so_the_key_are_those_of_before(env):
    from sft_tilt.harness.experiments import sft_config
    from sft_tilt.harness.runs import RunConfig, run_key

    cfg = sft_config(env["preset"], 4e-3, "label", 0)
    assert cfg.monitor_every == 0 and "monitor_every" not in cfg.describe()
    on = replace(cfg, monitor_every=2)
    assert on.describe()["monitor_every"] == 2 and run_key(on) != run_key(cfg)
    # a committed run's stored configuration has exactly the fields an unmonitored configuration describes
    committed = sorted((CHECKOUT_ROOT / "results").glob("*/*/result.json"))
    if committed:
        stored = json.loads(committed[0].read_text())["value"]["config"]
        # the engine came after the committed runs: the reference one, which leaves their keys as they were
        assert set(stored) == set(cfg.describe()) - {"engine"} and cfg.engine == "reference"
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="^monitor_every"):
            RunConfig(model=env["model"], data=env["preset"].data, monitor_every=bad)
    with pytest.raises(ValueError, match="^monitor_every"):
        RunConfig(model=env["model"], data=env["preset"].data, monitor_every=1, mesh=(2, 1), batch_size=2)


@pytest.mark.parametrize("method", ["sft", "lora"])
def test_a_monitored_run_trains_as_the_unmonitored_one_and_records_each_step(env, method):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiments import method_config

    cfg = replace(method_config(env["preset"], method, env["preset"].learning_rates_of(method)[-1], 0, fmt="label"),
                  final_accuracy=False, averaging_alphas=())
    plain = runs.run_one(cfg, progress=False)
    watched = runs.run_one(replace(cfg, monitor_every=1), progress=False)
    assert watched["key"] != plain["key"]
    for a, b in zip(plain["points"], watched["points"], strict=True):
        assert a["domain_loss"] == b["domain_loss"] and a["general"] == b["general"]
        for step_a, step_b in zip(a["train_steps"], b["train_steps"], strict=True):
            assert "monitor" not in step_a
            numbers = step_b.pop("monitor")
            assert step_a == step_b  # the step itself is unchanged
            assert set(numbers) == set(MONITOR_KEYS)  # stored with sorted keys
            assert all(math.isfinite(v) for k, v in numbers.items() if k not in ("safe_step_floor", "safe_learning_rate"))
            assert numbers["learning_rate"] == step_b["learning_rate"]
            # the monitor read the step's own batch: its domain loss (float64, before the step) is the step's loss
            assert numbers["domain_loss"] == pytest.approx(step_b["loss"], rel=1e-5)
            assert numbers["domain_tokens"] == step_b["n_tokens"]
            assert abs(numbers["identity_residual"]) <= 1e-12 * max(abs(numbers["measured_change"]), 1e-300)
            assert numbers["probe_tokens"] > 0

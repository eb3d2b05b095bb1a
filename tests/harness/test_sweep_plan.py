"""The sweep plan counts each distinct run once and its tokens by the documented formulas."""

from dataclasses import replace

import pytest

from sft_tilt.harness.presets import get_preset
from sft_tilt.harness.sweep_plan import REFERENCE_RATES, describe_plan, plan, planned_runs, run_cost


def test_the_default_sweep_counts_shared_sft_runs_once():
    p = get_preset("default")
    runs = planned_runs(p)
    sft = len(p.formats) * len(p.learning_rate_grid) * len(p.seeds)
    trained = [m for m in p.methods if m != "averaging"]
    # the SFT runs at the method learning rates (chain-of-thought) are the learning-rate grid's own runs
    assert set(p.comparison_learning_rates) <= set(p.learning_rate_grid)
    assert len(runs) == sft + len(trained) * 2 * len(p.seeds)
    assert len(set(runs)) == len(runs)
    lora = [c for c in runs if c.method.name == "lora"]
    assert sorted({c.learning_rate for c in lora}) == sorted(p.learning_rates_of("lora"))


def test_run_cost_follows_the_formulas():
    p = get_preset("default")
    cfg = [c for c in planned_runs(p) if c.method.name == "sft" and c.fmt == "cot" and c.learning_rate == p.comparison_learning_rates[0]][0]
    d = cfg.data
    points = cfg.steps // cfg.eval_every
    # held-out and unseen problems in the format's window, the general sets in theirs, <= 5 choices of ~57 tokens
    per_point = (d.n_heldout + d.n_unseen) * d.seq_len_cot + (d.n_self + d.n_docs + d.n_code) * d.seq_len_general + 5 * 57 * d.n_choice
    assert d.n_unseen > 0 and d.n_choice > 0  # the default preset measures both
    c = run_cost(cfg)
    assert c.train_tokens == cfg.steps * cfg.batch_size * d.seq_len_cot
    assert c.eval_tokens == (points + len(cfg.averaging_alphas)) * per_point
    assert c.decode_tokens == d.n_accuracy * d.accuracy_max_new_tokens_cot
    assert run_cost(replace(cfg, final_accuracy=False)).decode_tokens == 0


def test_the_eta_scales_with_the_model_and_bad_sizes_are_refused():
    p = get_preset("default")
    base = plan(p)["eta_s"]
    assert plan(p, parameters=2 * REFERENCE_RATES["parameters"])["eta_s"] == pytest.approx(2 * base)
    with pytest.raises(ValueError, match="parameters"):
        plan(p, parameters=-1.0)
    assert "runs" in describe_plan(p) and "min" in describe_plan(p)


def test_every_preset_that_fixes_its_model_has_a_plan_and_the_cpu_preset_its_promised_size():
    for name in ("smoke", "default", "cpu"):
        p = plan(get_preset(name))
        assert p["runs"] > 0 and p["eta_s"] > 0
    cpu = get_preset("cpu")
    points = cpu.steps // cpu.eval_every + (cpu.steps % cpu.eval_every > 0)
    assert cpu.data.n_train >= 256 and cpu.steps >= 100 and len(cpu.seeds) >= 3 and points >= 10
    assert all(len(cpu.learning_rate_grid) >= 5 for _ in cpu.formats)
    assert {"eaft", "asft", "sft-kl"} <= set(cpu.methods)


def test_setup_cost_counts_the_base_evaluation_of_both_formats():
    """The base model's evaluation: every train, held-out and unseen problem in both formats, the general sets and
    the choice rows in both formats, and the decoded self responses and greedy answers (written out by hand)."""
    from sft_tilt.harness.sweep_plan import setup_cost

    d = get_preset("cpu").data
    c = setup_cost(d)
    assert c.train_tokens == 0
    assert c.eval_tokens == (256 + 16 + 4) * (320 + 160) + 2 * ((8 + 4 + 4) * 64 + 5 * 16 * 57)
    assert c.decode_tokens == 8 * 40 + 8 * (200 + 10)
    small = setup_cost(get_preset("default").data)
    assert small.eval_tokens < c.eval_tokens / 10  # the default preset's setup is a small fraction of the cpu one's


def test_early_points_cost_until_steps_and_one_evaluation_per_step():
    from sft_tilt.harness.experiment_runs import sft_configs
    from sft_tilt.harness.sweep_plan import describe_early_plan, early_cost

    preset = get_preset("cpu")
    cfg = sft_configs(preset)[0]
    d = cfg.data
    per_point = ((d.n_heldout + d.n_unseen) * d.seq_len(cfg.fmt) + (d.n_self + d.n_docs + d.n_code) * d.seq_len_general
                 + 5 * d.n_choice * 57)
    c = early_cost(cfg, 10)
    assert (c.train_tokens, c.eval_tokens, c.decode_tokens) == (10 * cfg.batch_size * d.seq_len(cfg.fmt), 10 * per_point, 0)
    n = len(set(sft_configs(preset)))
    assert n == len(preset.learning_rate_grid) * len(preset.formats) * len(preset.seeds)
    assert f"the first 10 steps of {n} learning-rate-grid runs" in describe_early_plan(preset)


def test_wide_points_real_rows_and_one_warm_up_are_counted():
    p = get_preset("cpu-v2-warm")
    runs = planned_runs(p)
    cfg = next(c for c in runs if c.method.name == "sft")  # evaluates model averaging at three weights too
    d = cfg.data
    # 128 steps evaluated every 16: 8 points, the 4th and the 8th wide
    assert [s for s in cfg.eval_steps if cfg.wide_evaluation_at(s)] == [64, 128]
    every = (d.n_heldout + d.n_unseen) * d.seq_len_cot + (d.n_self + d.n_docs + d.n_code) * d.seq_len_general
    real_rows = d.n_real * (8 + 4)  # 8 trained and 4 unseen calculators
    wide = every + 5 * 57 * d.n_choice + real_rows * d.seq_len_real
    assert len(cfg.averaging_alphas) == 3  # model averaging, judged on losses: narrow evaluations
    assert run_cost(cfg).eval_tokens == 6 * every + 2 * wide + 3 * every
    # every run shares one warm-up: the plan adds its cost once
    warm = run_cost(cfg.warm_start.run_config(cfg))
    assert plan(p)["eval_tokens"] == sum(run_cost(c).eval_tokens for c in runs) + warm.eval_tokens
    assert plan(p)["train_tokens"] == sum(run_cost(c).train_tokens for c in runs) + warm.train_tokens

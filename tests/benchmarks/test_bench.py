"""The LM benchmark's pure parts: workloads, the comparability rule and the table (the timed run is a script)."""

import numpy as np
import pytest

from sft_tilt.benchmarks.lm_step import Workload, markdown_table, not_comparable_because, plain_workload


def test_a_run_is_comparable_only_below_the_core_count_with_five_repetitions():
    assert not_comparable_because([0.3, 1.9, 2.0, 2.1], cores=2, reps=5) == []  # the benchmark's own 2 threads
    assert not_comparable_because([0.3, 2.5], cores=2, reps=5) == []
    assert "2.60 > 2 cores" in not_comparable_because([0.3, 2.6], cores=2, reps=5)[0]
    assert not_comparable_because([0.1], cores=2, reps=4) == ["only 4 timed repetitions (< 5)"]


def test_plain_workload_supervises_every_token_and_rejects_bad_sizes():
    w = plain_workload(100, batch=3, seq=7)
    assert w.tokens.shape == (3, 7) and w.tokens.dtype == np.int32 and w.tokens.max() < 100
    assert w.n_targets == 3 * 6 and w.tokens_per_step == 21
    for kwargs, name in [(dict(batch=0), "batch"), (dict(seq=1), "seq")]:
        with pytest.raises(ValueError, match=name):
            plain_workload(100, **kwargs)
    with pytest.raises(ValueError, match="loss_mask"):
        Workload("x", "", w.tokens, w.loss_mask[:, 1:], w.attention_mask)
    with pytest.raises(ValueError, match="implementations"):
        Workload("x", "", w.tokens, w.loss_mask, w.attention_mask, implementations=("numpy",))


def test_the_sft_workload_is_the_harness_encoding_with_loss_on_responses_only():
    from sft_tilt.benchmarks.harness_step import sft_workload

    from sft_tilt.harness.presets import get_preset

    w = sft_workload(batch=2)
    assert w.tokens.shape == (2, get_preset("default").data.seq_len_cot)  # the default preset's window
    real = w.attention_mask.sum(axis=1)
    assert list(real) == w.notes["real_lengths"]
    assert 0 < w.n_targets < real.sum() - 2  # responses only, not prompts
    assert np.all(w.loss_mask[w.attention_mask == 0] == 0)  # padding is never a target


def _entry(rate, rss=1024.0):
    return {"peak_rss_mb": rss, **{p: {"tokens_per_s_median": rate, "tokens_per_s_min": rate - 1,
                                       "tokens_per_s_max": rate + 1, "seconds": [1.0]} for p in ("eval", "train")}}


def test_the_table_gives_ratios_to_torch_and_flags_a_loaded_run():
    result = {"comparable": False, "not_comparable_because": ["the 1-minute load average reached 3.00 > 2 cores"],
              "reps": 5, "threads": 2, "cpu_count": 2, "load_average_start": 0.5, "load_average_max": 3.0,
              "load_average_end": 1.0,
              "workloads": [{"workload": "plain", "description": "d", "tokens_per_step": 8, "targets_per_step": 6,
                             "loss_max_abs_diff": {"jax vs torch": 2e-5},
                             "implementations": {"jax": _entry(300.0), "torch": _entry(200.0),
                                                 "jax-fast": {"error": "boom"}}}]}
    table = markdown_table(result)
    assert table.startswith("**NOT COMPARABLE")
    assert "| plain | eval | jax | 300 | 299-301 | 1.50x | 1.00 GB |" in table
    assert "| plain | | jax-fast | boom |" in table
    assert "jax vs torch 2.0e-05" in table


def test_the_matmul_products_of_a_step_are_six_flops_per_weight_per_row():
    from sft_tilt.lm.config import ModelConfig
    from sft_tilt.benchmarks.matmul_ceiling import step_products

    config = ModelConfig.smollm2_135m()
    rows = 24
    products = step_products(config, rows)
    # independent count: every weight matrix of the model (embedding tied, so the head is the embedding's transpose)
    D, F, V, L = config.dim, config.hidden_dim, config.vocab_size, config.n_layers
    Q, KV = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
    matrix_params = L * (D * Q + 2 * D * KV + Q * D + 3 * D * F) + D * V
    assert sum(p["flops"] * p["count"] for p in products) == 6 * rows * matrix_params
    for p in products:  # the operand shapes multiply as stated, to [rows, m], [rows, n] or [n, m]
        a = p["a"][::-1] if p["transpose_a"] else p["a"]
        b = p["b"][::-1] if p["transpose_b"] else p["b"]
        assert a[1] == b[0] and p["flops"] == 2 * a[0] * a[1] * b[1]
    assert {p["kind"] for p in products} == {"forward", "input_grad", "weight_grad"}
    with pytest.raises(ValueError, match="rows"):
        step_products(config, 0)


def test_the_matmul_ceiling_is_torch_time_over_jax_time_weighted_by_count():
    from sft_tilt.benchmarks.matmul_ceiling import summarise

    products = [{"name": "w", "kind": "forward", "a": [2, 3], "b": [3, 4], "flops": 48, "count": 10},
                {"name": "w", "kind": "weight_grad", "a": [2, 3], "b": [2, 4], "flops": 48, "count": 10},
                {"name": "head", "kind": "forward", "a": [2, 3], "b": [3, 9], "flops": 108, "count": 1}]
    seconds = {"jax": [[1.0, 3.0, 2.0], [4.0, 4.0, 5.0], [0.5, 0.5, 0.5]],
               "torch": [[1.0, 1.0, 1.0], [2.0, 2.0, 9.0], [1.5, 1.0, 2.0]]}
    out = summarise(products, seconds)
    # medians: jax 2, 4, 0.5; torch 1, 2, 1.5
    assert out["totals"]["jax"]["train_s"] == pytest.approx(10 * 2 + 10 * 4 + 0.5)
    assert out["totals"]["torch"]["eval_s"] == pytest.approx(10 * 1 + 1.5)
    assert out["ceiling"]["train"] == pytest.approx((10 + 20 + 1.5) / 60.5)
    assert out["ceiling"]["eval"] == pytest.approx(11.5 / 20.5)
    assert out["products"][2]["torch"]["gflops"] == pytest.approx(108 / 1.5 / 1e9)
    assert "ceiling" not in summarise(products, {"jax": seconds["jax"]})


def test_the_native_ceiling_is_torch_time_over_native_time():
    from sft_tilt.benchmarks.matmul_ceiling import summarise

    products = [{"name": "w", "kind": "forward", "a": [2, 3], "b": [3, 4], "flops": 48, "count": 2},
                {"name": "w", "kind": "input_grad", "a": [2, 4], "b": [3, 4], "flops": 48, "count": 2}]
    seconds = {"jax": [[2.0], [2.0]], "jax-native": [[1.0], [3.0]], "torch": [[1.0], [1.0]]}
    out = summarise(products, seconds)
    assert out["native_ceiling"]["train"] == pytest.approx(4 / 8)
    assert out["native_ceiling"]["eval"] == pytest.approx(2 / 2)
    assert out["ceiling"]["train"] == pytest.approx(4 / 8)
    assert "native_ceiling" not in summarise(products, {k: seconds[k] for k in ("jax", "torch")})

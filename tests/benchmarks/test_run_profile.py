"""The run profile and the sweep benchmark's bookkeeping (their timings are not tested: they are measurements)."""

import time
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.benchmarks import phase_clock, run_profile, sweep_throughput
from sft_tilt.store import CHECKOUT_ROOT
from tiny_harness import tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("profile")) as environment:
        yield environment


def test_compilation_is_taken_out_of_the_phase_it_happens_in_and_phases_do_not_nest():
    clock = phase_clock.PhaseClock()
    jax.monitoring.register_event_duration_secs_listener(clock.on_event)
    try:
        fresh = jax.jit(lambda x: jnp.sin(x) * 3.0 + x.size)  # a program this process has not compiled
        with clock.phase("evaluation"):
            fresh(np.arange(11.0)).block_until_ready()
        compiled = clock.compile_in["evaluation"]
        assert compiled > 0
        with clock.phase("evaluation"):
            fresh(np.arange(11.0)).block_until_ready()  # the same shapes: no compilation
        assert clock.compile_in["evaluation"] == compiled
        with clock.phase("base evaluation"):
            with clock.phase("evaluation"):  # inside another phase: that phase's time
                time.sleep(0.05)
    finally:
        jax.monitoring.unregister_event_duration_listener(clock.on_event)
    assert clock.calls["evaluation"] == 2 and clock.calls["base evaluation"] == 1
    assert clock.wall["base evaluation"] >= 0.05
    times = clock.times(total_wall=100.0, total_cpu=90.0)
    assert times.wall["compilation"] == pytest.approx(compiled)
    assert times.wall["evaluation"] == pytest.approx(clock.wall["evaluation"] - compiled)
    assert times.wall["other"] == pytest.approx(100.0 - clock.wall["evaluation"] - clock.wall["base evaluation"])
    with pytest.raises(ValueError, match="phase"):
        with clock.phase("lunch"):
            pass


def test_a_timed_tiny_run_counts_every_phase_and_restores_the_harness(env, tmp_path):
    from sft_tilt.harness import runs
    from sft_tilt.harness.session import Session

    preset = env["preset"]
    full = run_profile.planned_config(preset, "sft", "cot", preset.comparison_learning_rates[0])
    assert full.averaging_alphas and full.final_accuracy  # SFT at a method learning rate: averaging, accuracy
    cfg = run_profile.shortened(full, 2, "fast", preset.warmup_fraction)
    assert (cfg.steps, cfg.engine, cfg.learning_rate) == (2, "fast", full.learning_rate)
    originals = (runs.make_train_step, runs.get_session, Session.evaluate, Session.accuracy)
    start = time.perf_counter()
    result, times = run_profile.profiled_run(cfg, tmp_path)
    outside = time.perf_counter() - start
    assert (runs.make_train_step, runs.get_session, Session.evaluate, Session.accuracy) == originals
    assert times.calls["training steps"] == cfg.steps
    assert times.calls["evaluation"] == len(cfg.eval_steps) + len(cfg.averaging_alphas)
    assert times.calls["generation"] == 1
    assert times.calls["checkpoints and records"] >= len(cfg.eval_steps) + 1  # points, result (and checkpoints)
    assert all(v >= -1e-6 for v in times.wall.values()), times.wall
    assert times.total_wall <= outside
    assert sum(times.wall.values()) == pytest.approx(times.total_wall)
    assert result["config"]["engine"] == "fast" and not (tmp_path / "no-results").exists()
    text = run_profile.profile_text(preset, cfg, full, times, threads=1, load_before=None, load_after=None)
    for phase in phase_clock.PHASES:
        assert f"| {phase} |" in text
    scaled = run_profile.projected_full_run(times, cfg, full)
    per_step = times.wall["training steps"] / cfg.steps
    assert scaled["training steps"] == pytest.approx(per_step * full.steps)
    assert scaled["generation"] == times.wall["generation"]
    with pytest.raises(ValueError, match="plans no run"):
        run_profile.planned_config(preset, "sft", "cot", 0.123)


def test_the_docs_page_has_a_generated_section_per_engine_and_only_it_is_replaced(tmp_path):
    from sft_tilt.harness.engines import ENGINES

    committed = CHECKOUT_ROOT / "docs" / "performance_profile.md"
    page = tmp_path / "page.md"
    page.write_text(committed.read_text())
    run_profile.replace_generated_section(page, "fast", "| phase | wall s |\n")
    old, new = committed.read_text(), page.read_text()
    begin, end = run_profile.BEGIN_MARKER.format(engine="fast"), run_profile.END_MARKER.format(engine="fast")
    assert new.split(begin)[0] == old.split(begin)[0] and new.split(end)[1] == old.split(end)[1]
    assert new.split(begin)[1].split(end)[0] == "\n| phase | wall s |\n"
    for engine in ENGINES:  # every engine's section is there for --docs to fill
        assert run_profile.BEGIN_MARKER.format(engine=engine) in old
    page.write_text("no sections here\n")
    with pytest.raises(ValueError, match="must hold"):
        run_profile.replace_generated_section(page, "fast", "x")


def _point(step, domain, general, steps):
    return {"step": step, "domain_loss": domain, "general": general,
            "train_steps": [{"step": s, "loss": loss} for s, loss in steps]}


def test_the_sweep_benchmark_compares_losses_and_counts_runs_per_hour():
    a = {"points": [_point(1, 2.0, {"docs": 3.0}, [(0, 5.0)]), _point(2, 1.5, {"docs": 3.1}, [(1, 4.0)])]}
    b = {"points": [_point(1, 2.0 + 3e-6, {"docs": 3.0}, [(0, 5.0)]), _point(2, 1.5, {"docs": 3.1 - 7e-6}, [(1, 4.0)])]}
    assert sweep_throughput.loss_difference(a, b) == pytest.approx(7e-6)
    b["points"][1]["step"] = 3
    with pytest.raises(ValueError, match="other steps"):
        sweep_throughput.loss_difference(a, b)

    def run(engine, wall, compile_s, projected):
        w = dict.fromkeys(phase_clock.PHASES, 1.0)
        w["compilation"] = compile_s
        return {"engine": engine, "label": "x", "total_wall_s": wall, "total_cpu_s": wall / 2, "wall_s": w,
                "projected_full_s": projected}

    measured = {"processor": "cpu", "logical_cores": 2, "setup_s": 1.0, "load_before": 0.2, "load_after": 1.0,
                "load_max": 1.1, "differences": [{"label": "x", "largest": 2e-6}],
                "runs": [run("reference", 300.0, 30.0, 1200.0), run("fast", 200.0, 50.0, 600.0),
                         run("reference", 100.0, 10.0, 400.0), run("fast", 60.0, 20.0, 200.0)]}
    text = sweep_throughput.report_text(measured, threads=1)
    assert "NOT COMPARABLE" not in text
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in text.splitlines()
            if line.startswith("| reference | 2") or line.startswith("| fast | 2") or line.startswith("| fast / ")}
    assert float(rows["reference"][1]) == pytest.approx(3600 * 2 / 400, abs=0.01)
    assert float(rows["fast"][2]) == pytest.approx(3600 * 2 / (260 - 70), abs=0.01)
    assert float(rows["fast / reference"][3].rstrip("x")) == pytest.approx((1600 / 800), abs=0.01)
    assert float(rows["fast / reference"][4].rstrip("x")) == pytest.approx((400 / 260), abs=0.01)
    assert "NOT COMPARABLE" in sweep_throughput.report_text(dict(measured, load_max=1.6), threads=1)


def test_the_sample_is_each_method_in_each_format_cut_to_the_steps(env):
    preset = env["preset"]
    sample = sweep_throughput.sample_configs(preset, ["sft", "talr-mean"], ["cot", "label"], 1)
    assert [(s.method.name, s.fmt) for _, s in sample] == [("sft", "cot"), ("sft", "label"), ("talr-mean", "cot"),
                                                           ("talr-mean", "label")]
    for full, short in sample:
        assert short.steps == 1 and full.steps == preset.steps and short.seed == 0
        assert replace(short, steps=full.steps, eval_every=full.eval_every, warmup_steps=full.warmup_steps) == full

"""The harness command line rejects bad input before any work starts, with argparse's usage error."""

import pytest

from sft_tilt.harness.__main__ import main
from sft_tilt.harness.presets import get_preset


def _usage_error(capsys, argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1e-3", "nan", "0", "inf", "abc"])
@pytest.mark.parametrize("attached", [True, False])
def test_bad_learning_rates_are_usage_errors_not_tracebacks(capsys, value, attached):
    argv = ["run", "--preset", "tiny", f"--lr={value}"] if attached else ["run", "--preset", "tiny", "--lr", value]
    err = _usage_error(capsys, argv)
    assert "--learning-rate/--lr" in err
    assert "expected one argument" not in err
    assert "Traceback" not in err


@pytest.mark.parametrize("flag, value", [("--seed", "-1"), ("--seed", "1.5"), ("--steps", "0"),
                                         ("--seed", str(2**32)), ("--seed", "1180591620717411303424"),
                                         ("--steps", str(2**31)), ("--lr", "1e-39"), ("--lr", "1e39")])
def test_bad_seed_steps_and_rates_are_usage_errors_before_any_work(capsys, monkeypatch, tmp_path, flag, value):
    """A seed beyond 32 bits (jax.random.key keeps 32 bits without 64-bit mode and fails beyond 63), more steps than
    optax's int32 step counter holds, or a learning rate outside float32's normal range (the optimiser's dtype) is
    refused by argparse, naming the option; no run folder is made."""
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))
    err = _usage_error(capsys, ["run", "--preset", "tiny", "--lr", "1e-3", f"{flag}={value}"])
    assert flag in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def test_the_largest_seeds_are_refused_by_the_run_configuration_too():
    from sft_tilt.harness.runs import MAX_SEED, RunConfig
    from sft_tilt.harness.session import DataConfig

    assert RunConfig(model="m.gguf", data=DataConfig(), seed=MAX_SEED).seed == 2**32 - 1
    for bad in (2**32, 2**70, -1, True):
        with pytest.raises(ValueError, match=r"seed: must be an int in \[0, 4294967295\]"):
            RunConfig(model="m.gguf", data=DataConfig(), seed=bad)


@pytest.mark.parametrize("flag, value", [("--devices", str(10**12)), ("--batch", "0"), ("--seq", "x")])
def test_plan_sizes_are_checked_by_argparse(capsys, flag, value):
    """``plan --devices 10**12`` once enumerated every divisor; now every size is bounded up front."""
    argv = ["plan", "--model", "Qwen3-4B", "--devices", "8", "--batch", "8", "--seq", "128"]
    argv[argv.index(flag) + 1] = value
    err = _usage_error(capsys, argv)
    assert flag in err


def test_model_with_a_preset_that_fixes_its_model_is_refused(capsys):
    err = _usage_error(capsys, ["run", "--preset", "default", "--model", "x.gguf", "--lr", "1e-3"])
    assert "--model" in err and "default" in err
    with pytest.raises(ValueError, match="model"):
        get_preset("default", "x.gguf")


def test_report_out_in_a_missing_folder_fails_before_the_sweep(capsys, tmp_path, monkeypatch):
    import sft_tilt.harness.experiments as ex

    monkeypatch.setattr(ex, "run_all", lambda *a, **k: pytest.fail("the sweep ran before the --out check"))
    err = _usage_error(capsys, ["report", "--preset", "tiny", "--out", str(tmp_path / "no" / "such" / "r.md")])
    assert "--out" in err and "does not exist" in err


def test_every_run_option_has_help_text(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = capsys.readouterr().out
    for flag, words in [("--learning-rate", "learning rate"), ("--method", "method"), ("--fmt", "format"),
                        ("--seed", "seed"), ("--steps", "steps")]:
        assert flag in out and words in out


def test_every_progress_bar_of_the_harness_obeys_quiet():
    """``--quiet`` reaches the harness as ``progress=False``; a bar without ``disable=`` would still draw."""
    import ast
    from pathlib import Path

    import sft_tilt.harness

    missing = []
    for path in sorted(Path(sft_tilt.harness.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "tqdm":
                if not any(k.arg == "disable" for k in node.keywords):
                    missing.append(f"{path.name}:{node.lineno}")
    assert missing == []


def test_cheapest_first_computes_the_planned_runs_in_order_of_planned_cost(capsys, monkeypatch):
    """``sweep --cheapest-first`` hands every planned run of the experiment to run_many, label-only (half the window)
    before chain-of-thought, before the experiments read them."""
    import sft_tilt.harness.experiments as ex
    import sft_tilt.harness.runs as runs
    from sft_tilt.harness.sweep_plan import planned_runs

    seen = []
    monkeypatch.setattr(runs, "run_many", lambda cfgs, **k: seen.append(list(cfgs)) or [])
    monkeypatch.setattr(ex, "lr_tradeoff", lambda *a, **k: seen.append("experiment"))
    monkeypatch.setattr("sft_tilt.harness.__main__.enable_compilation_cache", lambda: None)
    assert main(["sweep", "--preset", "default", "--experiment", "lr", "--cheapest-first", "--quiet"]) == 0
    ordered, after = seen
    assert after == "experiment"
    lr_runs = set(ex.sft_configs(get_preset("default")))
    assert len(ordered) == len(lr_runs) and set(ordered) == lr_runs
    assert lr_runs < set(planned_runs(get_preset("default")))  # the methods' runs are not the lr experiment's
    formats = [c.fmt for c in ordered]
    assert formats == sorted(formats, key=lambda f: f != "label")  # every label-only run before any CoT run


def test_sweep_of_named_methods_computes_only_their_runs_in_the_order_given(capsys, monkeypatch):
    """``sweep --method l2 --method sft-kl`` hands run_many the L2 runs, then the SFT-KL ones, nothing else, and does
    not assemble the experiment's tables (they would compute every other method's runs)."""
    import sft_tilt.harness.experiments as ex
    import sft_tilt.harness.runs as runs

    seen = []
    monkeypatch.setattr(runs, "run_many", lambda cfgs, **k: seen.append(list(cfgs)) or [])
    monkeypatch.setattr(ex, "method_comparison", lambda *a, **k: seen.append("experiment"))
    monkeypatch.setattr("sft_tilt.harness.__main__.enable_compilation_cache", lambda: None)
    assert main(["sweep", "--preset", "default", "--experiment", "methods", "--method", "l2", "--method", "sft", "--quiet"]) == 0
    assert len(seen) == 1
    names = [c.method.name for c in seen[0]]
    p = get_preset("default")
    expected = [c for c in dict.fromkeys(ex.method_configs(p)) if c.method.name in ("l2", "sft")]
    assert sorted(seen[0], key=repr) == sorted(expected, key=repr) and set(names) == {"l2", "sft"}
    assert names == sorted(names, key=lambda n: n != "l2")  # every L2 run before any SFT run
    assert "finished: the runs of l2, sft" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["sweep", "--preset", "default", "--method", "no-such-method", "--quiet"])
    assert "--method: ['no-such-method'] not among" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sweep", "--preset", "default", "--experiment", "base", "--method", "sft", "--quiet"])


def test_sweep_of_one_experiment_reports_that_experiments_pending_runs(capsys, monkeypatch):
    """``sweep --experiment lr`` counts the learning-rate grid's runs in its pending line (not the whole preset's);
    ``--experiment base`` trains nothing and computes the two base-model analyses."""
    import sft_tilt.harness.base_model_analyses as bma
    import sft_tilt.harness.experiments as ex
    import sft_tilt.harness.runs as runs

    ran, analysed = [], []
    monkeypatch.setattr(runs, "run_many", lambda cfgs, **k: ran.append(list(cfgs)) or [])
    monkeypatch.setattr(ex, "lr_tradeoff", lambda *a, **k: None)
    monkeypatch.setattr(bma, "target_token_statistics", lambda preset, progress: analysed.append("tokens"))
    monkeypatch.setattr(bma, "single_step", lambda preset, progress: analysed.append("single-step"))
    monkeypatch.setattr("sft_tilt.harness.optimizer_step.optimizer_step",
                        lambda preset, progress: analysed.append("optimizer-step"))
    monkeypatch.setattr("sft_tilt.harness.__main__.enable_compilation_cache", lambda: None)
    monkeypatch.setenv("SFT_RESULTS_DIR", "/nonexistent-results")  # nothing committed: every run is pending
    monkeypatch.setenv("SFT_RUNS_DIR", "/nonexistent-runs")
    assert main(["sweep", "--preset", "default", "--experiment", "lr", "--cheapest-first", "--quiet"]) == 0
    out = capsys.readouterr().out
    n_lr = len(set(ex.sft_configs(get_preset("default"))))
    assert f"pending: default, experiment lr: {n_lr} planned runs: 0 committed (results/), 0 finished in the run " \
           f"folders, {n_lr} to compute" in out
    ran.clear()
    assert main(["sweep", "--preset", "default", "--experiment", "base", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "experiment base: no fine-tuning run" in out and "pending" not in out
    assert ran == [] and analysed == ["tokens", "single-step", "optimizer-step"]

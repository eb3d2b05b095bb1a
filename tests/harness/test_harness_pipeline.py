"""The real-LM harness end to end on a tiny random-weight model written to disk (fast, CI).

The tiny model has SmolLM2's vocabulary size so the real tokenizer (read from the default model file)
drives it; its numbers mean nothing, the plumbing is what is tested: every method's objective against an
independent NumPy computation, LoRA and averaging transforms, runs, caching, resume after an
interruption, the experiments, the report, figures and claim checks, and what each result key means.
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.gguf_io import default_model_path, save_gguf
from sft_tilt.lm.model import forward, init_params
from tiny_harness import counting_train_steps as _counting_steps, tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A tiny GGUF model on disk, private cache and run folders, and the tiny preset."""
    with tiny_harness_env(tmp_path_factory.mktemp("harness")) as environment:
        yield environment


@pytest.fixture(scope="module")
def session(env):
    from sft_tilt.harness.session import get_session

    p = env["preset"]
    return get_session(p.resolved_model(), p.tokenizer, p.data)


def _np_token_nll(params, config, tokens, loss_mask):
    """Independent per-token NLL: log-softmax of the forward logits in float64 NumPy, targets shifted by one."""
    logits = np.asarray(forward(params, config, jnp.asarray(tokens)), np.float64)[:, :-1]
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    tgt = np.asarray(tokens)[:, 1:]
    picked = np.take_along_axis(logits, tgt[..., None], -1)[..., 0]
    return (logz - picked), np.asarray(loss_mask, np.float64)[:, 1:]


@pytest.mark.parametrize("name", ["sft", "talr", "dft", "flow", "l2", "lora"])
def test_every_method_objective_matches_an_independent_computation(session, name):
    from sft_tilt.harness.methods import MethodConfig, init_trainable, make_objective

    enc = session.train["label"]
    batch = {"tokens": jnp.asarray(enc.tokens[:2]), "loss_mask": jnp.asarray(enc.loss_mask[:2])}
    method = MethodConfig(name, {"mu": 0.7} if name == "l2" else {})
    trainable, frozen = init_trainable(method, session.params, jax.random.key(1))
    l, m = _np_token_nll(session.params, session.config, enc.tokens[:2], enc.loss_mask[:2])
    n = m.sum()
    if name == "flow":
        sw = np.array([0.3, 0.9])
        batch["sequence_weights"] = jnp.asarray(sw)
        expected = (sw[:, None] * l * m).sum() / n
    elif name == "talr":
        seq_mean = (l * m).sum(1) / m.sum(1)
        tau = np.median(seq_mean)
        w = np.maximum(np.exp(-l / tau), 0.01)
        expected = (w * l * m).sum() / n
    elif name == "dft":
        expected = (np.exp(-l) * l * m).sum() / n
    else:  # sft, l2 at theta_0 (penalty 0), lora at init (B = 0 so W' = W)
        expected = (l * m).sum() / n
    loss, aux = make_objective(method, session.config)(trainable, frozen, batch)
    assert float(loss) == pytest.approx(expected, rel=2e-5)
    if name == "talr":
        assert float(aux["tau"]) == pytest.approx(tau, rel=1e-5)
    if name == "l2":  # move one leaf: the penalty is mu/2 ||delta||^2
        moved = dict(trainable, final_norm=trainable["final_norm"] + 0.1)
        loss2, _ = make_objective(method, session.config)(moved, frozen, batch)
        l2_term = 0.5 * 0.7 * 0.01 * trainable["final_norm"].size
        assert float(loss2) - float(loss) == pytest.approx(l2_term, rel=0.05, abs=0.05 * l2_term)


@pytest.mark.parametrize("name", ["eaft", "asft", "sft-kl"])
def test_entropy_and_kl_anchored_objectives_match_numpy(session, name):
    """EAFT (top-20 entropy / 3 weights), ASFT (DFT + 0.1 KL(q_0 || q)) and SFT-KL (SFT + 0.1 KL) on the real
    model, at a point moved away from theta_0 so the anchor is not zero, against float64 NumPy from the logits."""
    from sft_tilt.harness.methods import MethodConfig, init_trainable, make_objective

    enc = session.train["label"]
    tokens, loss_mask = enc.tokens[:2], enc.loss_mask[:2]
    batch = {"tokens": jnp.asarray(tokens), "loss_mask": jnp.asarray(loss_mask)}
    method = MethodConfig(name)
    trainable, frozen = init_trainable(method, session.params, jax.random.key(1))
    moved = dict(trainable, final_norm=trainable["final_norm"] * 1.3)

    def np_log_softmax(params):
        z = np.asarray(forward(params, session.config, jnp.asarray(tokens)), np.float64)[:, :-1]
        return z - (np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) + z.max(-1, keepdims=True))

    logp, logq0 = np_log_softmax(moved), np_log_softmax(session.params)
    m = np.asarray(loss_mask, np.float64)[:, 1:]
    n = m.sum()
    l = -np.take_along_axis(logp, np.asarray(tokens)[:, 1:, None], -1)[..., 0]
    kl = (np.exp(logq0) * (logq0 - logp)).sum(-1)
    if name == "eaft":
        top = -np.sort(-logp, axis=-1)[..., :20]
        pi = np.exp(top - top.max(-1, keepdims=True))
        pi /= pi.sum(-1, keepdims=True)
        w = -(pi * np.log(pi)).sum(-1) / 3.0
        expected = (w * l * m).sum() / n
    elif name == "asft":
        expected = (np.exp(-l) * l * m).sum() / n + 0.1 * (kl * m).sum() / n
    else:
        expected = (l * m).sum() / n + 0.1 * (kl * m).sum() / n
    loss, _ = make_objective(method, session.config)(moved, frozen, batch)
    # float32 sums of terms up to ~10 nats: absolute round-off ~1e-7 even where DFT's p-weighted loss is tiny
    assert float(loss) == pytest.approx(expected, rel=2e-5, abs=1e-7)
    if name != "eaft":
        assert (kl * m).sum() / n > 1e-4  # the anchor is really exercised


def test_lora_merge_and_gradients_touch_only_adapters(session):
    from sft_tilt.harness.lora import LoraConfig, init_lora, interpolate_params, lora_param_count, merge_lora

    lc = LoraConfig(rank=2, alpha=4.0, targets=("wq", "w_up"))
    ad = init_lora(session.params, lc, jax.random.key(0))
    ad = jax.tree_util.tree_map(lambda x: x + 0.01, ad)
    merged = merge_lora(session.params, ad, lc)
    for name in ("wq", "w_up"):
        a, b = np.asarray(ad[name]["A"], np.float64), np.asarray(ad[name]["B"], np.float64)
        w = np.asarray(session.params["layers"][name], np.float64)
        np.testing.assert_allclose(np.asarray(merged["layers"][name]), w + 2.0 * np.einsum("lir,lro->lio", a, b), rtol=1e-5, atol=1e-6)
        assert np.linalg.matrix_rank(np.asarray(merged["layers"][name][0] - session.params["layers"][name][0], np.float64), tol=1e-5) <= 2
    np.testing.assert_array_equal(np.asarray(merged["layers"]["wk"]), np.asarray(session.params["layers"]["wk"]))
    assert lora_param_count(ad) == sum(x.size for x in jax.tree_util.tree_leaves(ad))
    half = interpolate_params(session.params, merged, 0.5)
    np.testing.assert_allclose(np.asarray(half["layers"]["wq"]),
                               0.5 * np.asarray(session.params["layers"]["wq"]) + 0.5 * np.asarray(merged["layers"]["wq"]), rtol=1e-6)
    with pytest.raises(ValueError, match="targets"):
        init_lora(session.params, LoraConfig(targets=("nope",)), jax.random.key(0))
    with pytest.raises(ValueError, match="alpha"):
        interpolate_params(session.params, merged, 1.5)


def test_general_sets_are_distinct_and_scored(session):
    g = session.general
    assert set(g) == {"self", "docs", "code"}
    for enc in g.values():
        assert enc.n_targets > 0
    # the self set scores only response tokens; docs and code score every real token
    assert g["docs"].loss_mask.sum() == (g["docs"].loss_mask > 0).sum()
    assert (g["self"].loss_mask.sum(1) < (g["self"].tokens != session.pad_id).sum(1)).all()


def test_run_is_cached_and_resumes_after_an_interruption(env, session, monkeypatch, tmp_path):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiment_runs import sft_config

    cfg = replace(sft_config(env["preset"], 4e-3, "label", 0), checkpoint_state=True, final_accuracy=False, averaging_alphas=(0.5,))
    # an interrupted run leaves its first point and a state checkpoint, not a result
    with pytest.raises(runs.Interrupted):
        runs.run_one(cfg, progress=False, interrupt_after=1)
    folder = runs.run_folder(cfg)
    assert not (folder / "result.json").exists()
    assert [p["step"] for p in runs._read_points(folder)] == [1]
    assert (folder / "state.npz").exists()
    calls = _counting_steps(monkeypatch, runs)
    resumed = runs.run_one(cfg, progress=False)
    assert len(calls) == 1  # restarted from the checkpoint, not from step 0
    assert [p["step"] for p in resumed["points"]] == [1, 2]
    assert not (folder / "state.npz").exists()
    # the same run uninterrupted, in a fresh run folder, gives the same trajectory
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "fresh"))
    fresh = runs.run_one(cfg, progress=False)
    for a, b in zip(resumed["points"], fresh["points"]):
        assert a["domain_loss"] == pytest.approx(b["domain_loss"], rel=1e-6)
        assert a["general"] == pytest.approx(b["general"], rel=1e-6)
    assert resumed["averaging"][0]["domain_loss"] == pytest.approx(fresh["averaging"][0]["domain_loss"], rel=1e-6)
    # a finished run is read back, never recomputed
    monkeypatch.setattr(runs, "make_train_step", lambda *a, **k: pytest.fail("recomputed a finished run"))
    again = runs.run_one(cfg, progress=False)
    assert again == fresh
    # a different configuration gets a different folder
    assert runs.run_folder(replace(cfg, learning_rate=1e-3)) != runs.run_folder(cfg)
    config = json.loads((runs.run_folder(cfg) / "config.json").read_text())
    assert config["config"]["learning_rate"] == 4e-3 and "code" in config["key_material"]


def test_a_warm_started_run_resumes_after_an_interruption(env, session, monkeypatch, tmp_path):
    """An interrupted warm-started run resumes from its checkpoint and reads its warm model from the cache; with
    the warm model's record gone, the warm-up is recomputed and the run still ends where the uninterrupted one does."""
    from sft_tilt.harness import runs, warm_starts
    from sft_tilt.harness.experiment_runs import sft_config
    from sft_tilt.harness.run_config import WarmStart
    from sft_tilt.harness.stored_runs import run_key

    warm = WarmStart(learning_rate=4e-3, steps=2, fmt="label")
    cfg = replace(sft_config(env["preset"], 1e-3, "label", 0), steps=3, final_accuracy=False, averaging_alphas=(),
                  warm_start=warm)
    record = warm_starts.params_path(run_key(warm.run_config(cfg)))
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "uninterrupted"))
    with pytest.warns(UserWarning, match=str(record)):
        uninterrupted = runs.run_one(cfg, progress=False)
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "interrupted"))
    for lose_the_warm_model in (False, True):
        folder = runs.run_folder(cfg)
        with pytest.raises(runs.Interrupted):
            runs.run_one(cfg, progress=False, interrupt_after=1)
        assert [p["step"] for p in runs._read_points(folder)] == [1] and (folder / "state.npz").exists()
        if lose_the_warm_model:
            record.unlink()
        calls = _counting_steps(monkeypatch, runs)
        resumed = runs.run_one(cfg, progress=False)
        assert len(calls) == (warm.steps if lose_the_warm_model else 0) + cfg.steps - 1
        assert resumed["provenance"]["resumed_at_step"] == 1
        assert _without_wall(resumed) == _without_wall(uninterrupted)
        (folder / "result.json").unlink()
        monkeypatch.undo()  # the counting step
        monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "interrupted"))
    assert record.is_file()


def test_averaging_at_alpha_zero_is_the_base_model(env, session):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiment_runs import sft_config

    cfg = replace(sft_config(env["preset"], 4e-3, "label", 1), final_accuracy=False, averaging_alphas=(0.0, 1.0))
    res = runs.run_one(cfg, progress=False)
    a0, a1 = res["averaging"]
    assert a0["domain_gain"] == pytest.approx(0.0, abs=1e-6)
    assert a0["general_change_mean"] == pytest.approx(0.0, abs=1e-6)
    assert a1["domain_loss"] == pytest.approx(res["points"][-1]["domain_loss"], rel=1e-6)


def test_result_keys_say_what_they_measure(env, session):
    """domain_gain is the fall of the held-out domain loss (> 0 when it falls); general_change the rise of the
    general losses (per set and averaged); the same keys in the trajectory, the averaging points, matched-gain
    cells and method rows."""
    from sft_tilt.harness import runs
    from sft_tilt.analysis.matched_gain import general_change_at_gain
    from sft_tilt.harness.experiment_runs import sft_config
    from sft_tilt.harness.experiment_results import _front_row, summarise_run

    cfg = replace(sft_config(env["preset"], 4e-3, "label", 1), final_accuracy=False, averaging_alphas=(0.0, 1.0))
    res = runs.run_one(cfg, progress=False)
    s = summarise_run(res)
    base, final = res["base"], res["points"][-1]
    assert final["domain_loss"] < base["domain_loss"]  # SFT on the domain lowers its held-out loss
    assert s["domain_gain"] > 0
    assert s["domain_gain"] == pytest.approx(base["domain_loss"] - final["domain_loss"])
    per_set = {k: final["general"][k] - base["general"][k] for k in base["general"]}
    assert s["general_change_sets"] == pytest.approx(per_set)
    assert s["general_change"] == pytest.approx(np.mean(list(per_set.values())))
    assert s["trajectory"][0] == (0, 0.0, 0.0)
    assert s["trajectory"][-1] == (final["step"], pytest.approx(s["domain_gain"]), pytest.approx(s["general_change"]))
    at_one = s["averaging"][1]  # alpha = 1: the fine-tuned model itself
    assert at_one["domain_gain"] == pytest.approx(s["domain_gain"], rel=1e-5)
    assert at_one["general_change"] == pytest.approx(s["general_change"], rel=1e-5, abs=1e-6)
    # matched gain: the general change where the domain gain first reaches the target (interpolated)
    assert general_change_at_gain([(0, 0.0, 0.0), (1, 0.2, 0.02), (2, 0.4, 0.06)], 0.3) == pytest.approx(0.04)
    assert general_change_at_gain([(0, 0.0, 0.0), (1, -0.1, 0.02)], 0.05) is None  # the domain loss rose: never reached
    runs_ = [{"seed": 0, "domain_gain": 0.4, "general_change": 0.02, "accuracy": None},
             {"seed": 1, "domain_gain": 0.2, "general_change": 0.04, "accuracy": None}]
    row = _front_row("sft", 1e-3, runs_, np.array([0.0, 1.0]), np.array([0.0, 0.1]), "sft")
    assert row["domain_gain"] == pytest.approx(0.3) and row["general_change"] == pytest.approx(0.03)
    assert row["general_change_per_gain"] == pytest.approx(np.mean([0.05, 0.2]))
    assert row["general_change_front"] == pytest.approx(0.03) and row["below_front"] == pytest.approx(0.0)
    assert row["per_seed"][0] == {"seed": 0, "domain_gain": 0.4, "general_change": 0.02}


def test_every_experiment_report_figure_and_claim_runs_on_the_tiny_model(env, tmp_path, monkeypatch):
    import sft_tilt.claims
    from sft_tilt.figures import FIGURES
    from sft_tilt.harness import optimizer_step_plan
    from sft_tilt.harness.experiments import run_all
    from sft_tilt.harness.report import render_report

    # the optimiser-step analysis at its smallest (its own tests measure the full plan): one format, one gain
    monkeypatch.setattr(optimizer_step_plan, "PLAN", optimizer_step_plan.OptimizerStepPlan(
        methods=("sft", "talr-mean"), formats=("label",), gain_fractions=(0.02,)))

    # a learning rate at which every run diverges is left out of the aggregates and listed in the report
    preset = replace(env["preset"], learning_rate_grid=env["preset"].learning_rate_grid + (1e30,))
    with pytest.warns(UserWarning, match="diverged at step"):
        res = run_all(preset, progress=False)
    text = render_report(res, "tiny")
    for section in ("## 1.", "## 2.", "## 3.", "## 4a.", "## 4b.", "## 4c.", "## 5."):
        assert section in text
    for fmt, mg in res["matched_gain"].items():
        for c in mg["cells"]:
            assert set(c) == {"target_gain", "learning_rate", "general_change", "general_change_sd", "n", "per_seed", "from_base"}
            assert c["n"] == len(c["per_seed"]) and c["general_change"] == pytest.approx(np.mean(list(c["per_seed"].values())))
            assert 0 <= c["from_base"] <= c["n"]  # seeds whose value there is a chord from the base model
    for fmt, sl in res["safe_learning_rate"]["formats"].items():
        assert set(sl["general_change_final"]) == set(preset.learning_rate_grid) and "domain_gain_final" in sl
    assert sorted((r["fmt"], r["learning_rate"]) for r in res["diverged"]) == [("cot", 1e30), ("label", 1e30)]
    assert all(r["learning_rate"] < 1e30 for r in res["learning_rate_tradeoff"])
    assert all(r["safe_learning_rate"] != 1e30 for r in res["safe_learning_rate"]["formats"].values())
    assert "| label | 1e+30 | diverged | diverged |" in text
    methods = {r["method"] for r in res["method_front"]["rows"]}
    assert {"sft", "talr-mean", "flow", "l2", "lora", "averaging(0.5)"} <= methods  # registry names
    # single-step: every set has a measured change and a prediction at every learning rate (that the prediction's
    # error shrinks like lr^3 is asserted on SmolLM2 itself by notebooks/04_real_model_one_step.py, run by
    # tests/package/test_notebooks.py)
    for sets in res["single_step"]["formats"].values():
        for r in sets.values():
            assert len(r["measured"]) == len(r["predicted"]) == len(res["single_step"]["learning_rates"])
            assert np.all(np.isfinite(r["measured"])) and np.all(np.isfinite(r["predicted"]))
    for name, fig in FIGURES.items():
        if fig.group == "real_lm":
            fig.draw(tmp_path)
            assert (tmp_path / f"{name}.png").exists() and (tmp_path / f"{name}.json").exists()
    checks = sft_tilt.claims.select_checks(["real_lm"])
    assert sorted(c.number for c in checks) == [3, 4, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 18, 18]  # 18: also one SGD and one Adam step
    for c in checks:
        assert isinstance(c.check(), sft_tilt.claims.Verdict)

    # the accuracy table: each change is the mean over seeds of the final minus the base value, read here from the
    # stored results themselves (greedy decoding once after training; teacher-forced at the last point)
    from sft_tilt.claims.real_lm_accuracy_table import measure, render_accuracy_table
    from sft_tilt.harness.experiment_runs import sft_configs
    from sft_tilt.harness.runs import load_result

    table = measure(preset)
    assert {(r["fmt"], r["learning_rate"]) for r in table["rows"]} == {(f, lr) for f in preset.formats for lr in env["preset"].learning_rate_grid}
    for row in table["rows"]:
        results = [load_result(c) for c in sft_configs(preset) if (c.fmt, c.learning_rate) == (row["fmt"], row["learning_rate"])]
        assert row["n"] == len(results) and all(r is not None and not r["diverged"] for r in results)
        greedy = [r["accuracy"]["accuracy"] - r["base"]["accuracy"]["accuracy"] for r in results]
        teacher = [r["points"][-1]["answer_accuracy"] - r["base"]["answer_accuracy"] for r in results]
        assert row["change"]["greedy_accuracy"].mean == pytest.approx(np.mean(greedy))
        assert row["change"]["answer_accuracy"].mean == pytest.approx(np.mean(teacher))
        assert row["base"]["greedy_accuracy"] == results[0]["base"]["accuracy"]["accuracy"]
    text = "\n".join(render_accuracy_table(table))
    assert "held-out greedy answer acc." in text and "held-out answer acc. (teacher-forced)" in text


def test_bad_configurations_raise_naming_the_argument(env):
    from sft_tilt.harness.methods import MethodConfig
    from sft_tilt.harness.runs import RunConfig
    from sft_tilt.harness.session import DataConfig

    data = env["preset"].data
    with pytest.raises(ValueError, match="learning_rate"):
        RunConfig(model=env["model"], data=data, learning_rate=-1.0)
    with pytest.raises(ValueError, match="fmt"):
        RunConfig(model=env["model"], data=data, fmt="xml")
    with pytest.raises(ValueError, match="batch_size"):
        RunConfig(model=env["model"], data=data, batch_size=99)
    with pytest.raises(ValueError, match="name"):
        MethodConfig(name="magic")
    with pytest.raises(ValueError, match="n_accuracy"):
        DataConfig(n_heldout=2, n_accuracy=3)
    with pytest.raises(ValueError, match="averaging_alphas"):
        RunConfig(model=env["model"], data=data, method=MethodConfig(name="talr"), averaging_alphas=(0.5,))


# ----------------------------------------------------------------------------- run folders: resume, divergence, damage

REPO = Path(__file__).resolve().parents[2]

# The child builds the same configuration as `_config` below, then pauses once the checkpoint of the
# first evaluation point is on disk, so the test can kill it there with SIGKILL.
_CHILD = """
import time
from dataclasses import replace
from sft_tilt.harness import runs
from sft_tilt.harness.experiment_runs import sft_config
from sft_tilt.harness.presets import get_preset

save = runs._save_state
def save_then_pause(folder, step, *state):
    save(folder, step, *state)
    time.sleep(600)
runs._save_state = save_then_pause
cfg = replace(sft_config(get_preset("tiny"), 4e-3, "label", 0), steps=3, final_accuracy=False, averaging_alphas=(0.5,))
runs.run_one(cfg, progress=False)
"""


def _config(preset, **kw):
    from sft_tilt.harness.experiment_runs import sft_config

    return replace(sft_config(preset, 4e-3, "label", 0), **{"steps": 3, "final_accuracy": False, "averaging_alphas": (0.5,), **kw})


def _without_wall(result):
    """The result without what differs between two computations of one run: wall time and provenance (which
    holds the wall time, the finishing time and the machine's load)."""
    return {k: v for k, v in result.items() if k not in ("wall_s", "provenance")}


def test_a_killed_run_resumes_from_its_checkpoint(env, session, monkeypatch, tmp_path):
    from sft_tilt.harness import runs

    cfg = _config(env["preset"])
    assert env["preset"].data.n_train // cfg.batch_size < cfg.steps  # the run crosses an epoch boundary
    # the uninterrupted run, in its own runs folder
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "uninterrupted"))
    uninterrupted = runs.run_one(cfg, progress=False)
    assert uninterrupted["diverged"] is False and uninterrupted["diverged_step"] is None
    # the same run in a subprocess, killed once its first point and checkpoint are written
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "killed"))
    folder = runs.run_folder(cfg)
    log = open(tmp_path / "child.log", "wb")
    child = subprocess.Popen([sys.executable, "-c", _CHILD], cwd=REPO, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (runs._read_points(folder) and (folder / "state.npz").exists()):
            assert child.poll() is None, f"the run exited before its first point: {(tmp_path / 'child.log').read_text()}"
            assert time.monotonic() < deadline, "no point written within 120 s"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        log.close()
    assert [p["step"] for p in runs._read_points(folder)] == [1]
    assert not (folder / "result.json").exists()
    from sft_tilt.store import read_record

    first_segment_s = read_record(folder / "state.npz", key=folder.name)["wall_s"]
    assert first_segment_s > 0
    # restarted, it computes only the steps after the checkpoint and ends where the uninterrupted run ends
    calls = _counting_steps(monkeypatch, runs)
    t0 = time.perf_counter()
    resumed = runs.run_one(cfg, progress=False)
    second_segment_s = time.perf_counter() - t0
    assert len(calls) == cfg.steps - 1
    assert _without_wall(resumed) == _without_wall(uninterrupted)
    # the wall time counts both segments (the killed one up to its checkpoint), and says where it resumed
    assert first_segment_s < resumed["provenance"]["wall_s"] <= first_segment_s + second_segment_s
    assert resumed["provenance"]["resumed_at_step"] == 1 and uninterrupted["provenance"]["resumed_at_step"] is None
    assert runs._read_points(folder) == uninterrupted["points"]
    assert not (folder / "state.npz").exists()


def test_a_diverged_run_is_a_result(env, session, monkeypatch, capsys):
    from sft_tilt.harness import __main__ as cli
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiment_runs import sft_config
    from sft_tilt.harness.experiment_results import summarise_run

    monkeypatch.setattr(cli, "enable_compilation_cache", lambda: None)  # no process-wide setting from a test
    assert cli.main(["run", "--preset", "tiny", "--lr", "1e30", "--steps", "2", "--quiet"]) == 0
    cfg = replace(sft_config(env["preset"], 1e30, "cot", 0), steps=2)
    folder = runs.run_folder(cfg)
    result = runs.load_result(cfg)
    k = result["diverged_step"]
    assert result["diverged"] is True and k in (1, 2)
    assert f"diverged at step {k}" in capsys.readouterr().out
    assert "accuracy" not in result and result["averaging"] == []
    point = result["points"][-1]  # the run stopped at the step where it diverged, without evaluating it
    assert [p["step"] for p in result["points"]] == list(range(1, k + 1))
    assert point["diverged"] is True and "domain_loss" not in point
    assert [r["step"] for r in point["train_steps"]] == [k - 1]
    assert runs._read_points(folder)[-1]["diverged"] is True
    assert not (folder / "state.npz").exists()
    s = summarise_run(result)
    assert s["diverged"] and s["diverged_step"] == k and s["learning_rate"] == 1e30
    # divergence found between evaluation points (non-finite loss or parameters) stops the run at that step
    cfg = replace(cfg, learning_rate=1e29, steps=4, eval_every=4, final_accuracy=False)
    result = runs.run_one(cfg, progress=False)
    assert result["diverged"] and result["diverged_step"] < 4
    assert result["points"][-1]["step"] == result["diverged_step"]
    # and it is read back, not recomputed
    monkeypatch.setattr(runs, "make_train_step", lambda *a, **k: pytest.fail("recomputed a diverged run"))
    assert runs.run_one(cfg, progress=False) == result


@pytest.mark.parametrize("damage", ["garbage", "empty record", "edited number"])
def test_a_damaged_result_is_reported_and_recomputed(env, session, monkeypatch, damage):
    from sft_tilt.harness import runs

    cfg = _config(env["preset"], steps=1, averaging_alphas=(), seed=2)
    first = runs.run_one(cfg, progress=False)
    path = runs.run_folder(cfg) / "result.json"
    if damage == "garbage":
        path.write_bytes(b"\x00not json{")
    elif damage == "empty record":
        path.write_text("{}")
    else:
        text = path.read_text()
        number = repr(first["points"][0]["domain_loss"])
        assert number in text
        path.write_text(text.replace(number, repr(first["points"][0]["domain_loss"] + 1.0), 1))
    calls = _counting_steps(monkeypatch, runs)
    with pytest.warns(UserWarning, match=str(path)):
        again = runs.run_one(cfg, progress=False)
    assert len(calls) == cfg.steps
    assert _without_wall(again) == _without_wall(first)


def test_a_torn_or_edited_points_line_ends_the_read(env, tmp_path):
    from sft_tilt.harness import runs

    points = [{"step": s, "domain_loss": 1.0 / s} for s in (1, 2, 3)]
    runs._write_points(tmp_path, points)
    path = tmp_path / "points.jsonl"
    assert runs._read_points(tmp_path) == points
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])  # a torn last line
    with pytest.warns(UserWarning, match=f"{path}: line 3"):
        assert runs._read_points(tmp_path) == points[:2]
    path.write_text(lines[0] + lines[1].replace("0.5", "0.25") + lines[2])  # an edited middle line
    with pytest.warns(UserWarning, match=f"{path}: line 2"):
        assert runs._read_points(tmp_path) == points[:1]


@pytest.mark.parametrize("bad", ["another configuration", "wrong shapes"])
def test_a_checkpoint_that_does_not_fit_the_run_is_ignored(env, session, monkeypatch, bad):
    from sft_tilt.harness import runs

    cfg = _config(env["preset"], steps=2, averaging_alphas=(), seed=3 if bad == "wrong shapes" else 4)
    with pytest.raises(runs.Interrupted):
        runs.run_one(cfg, progress=False, interrupt_after=1)
    folder = runs.run_folder(cfg)
    state = folder / "state.npz"
    if bad == "another configuration":
        other = replace(cfg, learning_rate=1e-3)
        with pytest.raises(runs.Interrupted):
            runs.run_one(other, progress=False, interrupt_after=1)
        (runs.run_folder(other) / "state.npz").replace(state)  # same shapes, another run's key
    else:
        import jax.numpy as jnp

        from sft_tilt.harness.methods import make_optimizer

        small = {"w": jnp.zeros((2, 3), jnp.float32)}
        runs._save_state(folder, 1, small, make_optimizer(cfg.learning_rate).init(small), wall_s=1.0)
    calls = _counting_steps(monkeypatch, runs)
    with pytest.warns(UserWarning, match=str(state)):
        resumed = runs.run_one(cfg, progress=False)
    assert len(calls) == cfg.steps  # restarted from step 0
    monkeypatch.setenv("SFT_RUNS_DIR", str(env["root"] / f"fresh-{bad.replace(' ', '-')}"))
    assert _without_wall(resumed) == _without_wall(runs.run_one(cfg, progress=False))

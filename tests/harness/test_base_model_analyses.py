"""The analyses measured on the base model alone: their values, and how they are cached, committed and read back
without loading the model (``sft_tilt.harness.base_model_analyses``), on the tiny random model."""

from dataclasses import replace

import jax
import numpy as np
import pytest

from sft_tilt.store import content_key
from tiny_harness import tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("base_analyses")) as environment:
        yield environment


@pytest.fixture
def dirs(env, monkeypatch, tmp_path):
    """Private cache and results folders per test, so every test computes and commits its own records."""
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SFT_RESULTS_DIR", str(tmp_path / "results"))
    return {"cache": tmp_path / "cache", "results": tmp_path / "results"}


def _session(preset):
    from sft_tilt.harness.session import get_session

    return get_session(preset.resolved_model(), preset.tokenizer, preset.data, False)


def test_token_kinds():
    from sft_tilt.harness.base_model_analyses import token_kind

    assert [token_kind(t) for t in (" 12", "7", "=", " /", ".,", " ", "\n", "mg", " BMI", "x2")] == [
        "digit", "digit", "symbol", "symbol", "symbol", "whitespace", "whitespace", "word", "word", "word"]


def test_the_key_needs_no_session_and_is_the_sessions_identity(env):
    """The key material is computed from the preset alone; its identity part is what the session's own cache keys
    hold, so a committed record is found for exactly the model, tokenizer and data a session would load."""
    from sft_tilt.harness import stored_base_analyses as bma

    preset = env["preset"]
    assert content_key(bma._identity(preset)) == content_key(_session(preset).key_material())
    m = bma.material(preset, "single_step")
    # the key material keeps the name "lrs" (renamed, it would change the committed records' keys)
    assert m["lrs"] == tuple(preset.single_step_learning_rates) and m["batch"] == preset.single_step_batch
    other = replace(preset, single_step_learning_rates=(2e-3,))
    assert content_key(bma.material(other, "single_step")) != content_key(m)
    assert content_key(bma.material(other, "target_token_statistics")) == content_key(
        bma.material(preset, "target_token_statistics"))  # the token statistics do not read the step sizes
    with pytest.raises(ValueError, match="analysis"):
        bma.material(preset, "tokens")


def test_target_token_statistics_are_the_base_evaluation_of_the_training_targets(env, dirs):
    from sft_tilt.harness.base_model_analyses import HARD_BELOW, target_token_statistics

    preset = env["preset"]
    stats = target_token_statistics(preset, progress=False)
    session = _session(preset)
    assert set(stats) == set(preset.formats)
    for fmt, st in stats.items():
        losses, mask = session.base()[fmt]["train_token_losses"]
        p = np.exp(-np.asarray(losses, np.float64))[np.asarray(mask) > 0]
        assert isinstance(st["p"], np.ndarray) and st["p"].dtype == np.float32
        np.testing.assert_allclose(st["p"], p, rtol=1e-6)
        assert sum(st["all_kinds"].values()) == p.size == int(np.asarray(mask).sum())
        assert sum(st["hard_kinds"].values()) == int((p <= HARD_BELOW).sum())
        hardest = [q for _, q in st["hard_tokens"]]
        assert hardest == sorted(hardest) and len(hardest) == min(40, int((p <= HARD_BELOW).sum()))
        np.testing.assert_allclose(hardest, np.sort(p[p <= HARD_BELOW])[:40])


def test_committed_records_are_read_without_the_model_and_checked(env, dirs, monkeypatch, capsys):
    from sft_tilt.harness import __main__ as cli
    from sft_tilt.harness import base_model_analyses as bma
    from sft_tilt.harness.optimizer_step import optimizer_step
    from sft_tilt.harness.results_export import export_base_analyses, stale_base_analyses

    from sft_tilt.harness import optimizer_step_plan

    monkeypatch.setattr(cli, "enable_compilation_cache", lambda: None)
    # the smallest plan of the optimiser-step analysis (its own tests measure the full one): this test is about
    # committing and reading records
    small = optimizer_step_plan.OptimizerStepPlan(methods=("sft", "talr"), optimizers=("sgd",), formats=("label",),
                                                    gain_fractions=(0.02,))
    monkeypatch.setattr(optimizer_step_plan, "PLAN", small)
    preset = env["preset"]
    assert export_base_analyses(preset) == []  # nothing computed yet: nothing to commit
    stats = bma.target_token_statistics(preset, progress=False)
    step = bma.single_step(preset, progress=False)
    arms = optimizer_step(preset, progress=False)
    for sets in step["formats"].values():
        for r in sets.values():
            assert len(r["measured"]) == len(r["predicted"]) == len(preset.single_step_learning_rates)
            assert np.all(np.isfinite(r["measured"] + r["predicted"]))

    assert cli.main(["export", "--preset", "tiny", "--quiet"]) == 0
    folder = dirs["results"] / "tiny" / bma.FOLDER
    committed = {a: bma.committed_path(preset, a) for a in bma.NAMESPACES}
    assert all(p is not None and p.parent.parent == folder for p in committed.values())
    assert committed["target_token_statistics"].suffix == ".npz"  # the probabilities are an array
    assert stale_base_analyses(preset) == []

    # a fresh clone: no cache; the committed records are read, and no session is created for them
    for a in bma.NAMESPACES:
        bma.stored_path(preset, a).unlink()

    def no_session(*args, **kwargs):
        raise AssertionError("a committed record was not used")

    with monkeypatch.context() as m:
        m.setattr(bma, "_session", no_session)
        again = bma.target_token_statistics(preset, progress=False)
        assert bma.single_step(preset, progress=False) == step
        assert optimizer_step(preset, progress=False) == arms
    for fmt in stats:
        np.testing.assert_array_equal(again[fmt]["p"], stats[fmt]["p"])
        assert {k: v for k, v in again[fmt].items() if k != "p"} == {k: v for k, v in stats[fmt].items() if k != "p"}
    assert all(bma.stored_path(preset, a) is None for a in bma.NAMESPACES)  # read, not copied into the cache
    capsys.readouterr()
    assert cli.main(["export", "--preset", "tiny", "--quiet"]) == 0  # nothing in the cache, all of it committed
    n = len(bma.NAMESPACES)
    assert f"0 base-model analyses exported to {folder}; {n} of {n} committed there\n" in capsys.readouterr().out

    # a committed record that does not verify is named and recomputed into the cache; the file is left as it is
    path = committed["single_step"]
    data = bytearray(path.read_bytes())
    i = data.index(b'"measured"') + 20
    data[i] = ord("7") if data[i] != ord("7") else ord("8")
    path.write_bytes(bytes(data))
    # (the manifest of the preset's committed files catches the edit first: its hash is not the listed one)
    with pytest.warns(UserWarning, match=str(path).replace("\\", "\\\\") + ".*(not served|does not verify)"):
        recomputed = bma.single_step(preset, progress=False)
    assert path.read_bytes() == bytes(data) and bma.stored_path(preset, "single_step") is not None
    assert recomputed == step  # the same computation again

    # another configuration has another key: the committed record of the old one is stale, and pruned on request
    other = replace(preset, single_step_learning_rates=(2e-3,))
    assert bma.committed_path(other, "single_step") is None
    from sft_tilt.harness import presets

    monkeypatch.setitem(presets.PRESETS, "tiny", lambda model=None: other)
    monkeypatch.setattr(cli, "enable_compilation_cache", lambda: None)
    assert stale_base_analyses(other) == [path]
    assert cli.main(["export", "--preset", "tiny", "--quiet", "--prune"]) == 0
    assert not path.exists() and committed["target_token_statistics"].exists()

"""Committed real-LM results: provenance, the lookup in ``results/``, export, pending work and replay.

The tiny random model (``tests/tiny_harness.py``) tests the plumbing in seconds; the last test reads the
repository's own ``results/`` (the committed runs of the real model) and replays the cheapest of them.
"""

import hashlib
import json
import math
import re
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import jax
import numpy as np
import pytest

from sft_tilt.harness.versions import TRAINING_VERSION
from sft_tilt.store import CHECKOUT_ROOT, code_key, library_versions, read_record
from tiny_harness import counting_train_steps as _counting_steps, tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("committed")) as environment:
        yield environment


@pytest.fixture
def dirs(env, monkeypatch, tmp_path):
    """Private run and results folders per test (the model and the session cache are shared)."""
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("SFT_RESULTS_DIR", str(tmp_path / "results"))
    return {"runs": tmp_path / "runs", "results": tmp_path / "results"}


def _config(preset, **kw):
    from sft_tilt.harness.experiment_runs import sft_config

    return replace(sft_config(preset, 4e-3, "label", 0), **{"steps": 2, "final_accuracy": False,
                                                            "averaging_alphas": (), **kw})


def _without_provenance(result):
    return {k: v for k, v in result.items() if k not in ("wall_s", "provenance")}


def _measured(point) -> dict:
    """The measured numbers of a point: domain loss, every general loss and every held-out statistic."""
    out = {"domain_loss": point["domain_loss"]}
    out.update({f"general.{k}": v for k, v in point["general"].items()})

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix] = value

    walk("heldout_stats", point["heldout_stats"])
    return out


def _assert_points_match(replayed, stored, tol):
    assert [p["step"] for p in replayed] == [p["step"] for p in stored]
    for a, b in zip(replayed, stored):
        ma, mb = _measured(a), _measured(b)
        assert ma.keys() == mb.keys() and len(ma) > 3
        far = {k: (ma[k], mb[k]) for k in ma if not abs(ma[k] - mb[k]) <= tol}
        assert not far, f"step {a['step']}: replayed vs stored differ by more than {tol}: {far}"


def _flip_a_digit(path: Path) -> None:
    """Change one byte of ``path``: the last digit of the first ``domain_loss`` number."""
    data = bytearray(path.read_bytes())
    m = re.search(rb'"domain_loss": -?[0-9.]+[0-9]', bytes(data))
    assert m is not None
    i = m.end() - 1
    data[i] = ord("1") if data[i] != ord("1") else ord("2")
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------- lookup in results/


def test_an_exported_run_is_read_from_results_without_computing(env, dirs, monkeypatch):
    from sft_tilt.harness import runs
    from sft_tilt.harness.results_export import export_runs

    cfg = _config(env["preset"])
    first = runs.run_one(cfg, progress=False)
    [exported] = export_runs([cfg], "tiny", verbose=False)
    assert exported == dirs["results"] / "tiny" / first["key"]
    shutil.rmtree(dirs["runs"])
    monkeypatch.setattr(runs, "make_train_step", lambda *a, **k: pytest.fail("computed a committed run"))
    assert runs.run_one(cfg, progress=False) == first
    assert not dirs["runs"].exists()  # nothing written to the cache
    assert runs.load_result(cfg) == first


@pytest.mark.parametrize("damage", ["one byte", "another key"])
def test_a_damaged_committed_result_is_reported_and_recomputed_into_the_cache(env, dirs, monkeypatch, damage):
    from sft_tilt.harness import runs
    from sft_tilt.harness.results_export import export_runs

    cfg = _config(env["preset"], seed=1)
    first = runs.run_one(cfg, progress=False)
    [exported] = export_runs([cfg], "tiny", verbose=False)
    committed = exported / "result.json"
    if damage == "one byte":
        _flip_a_digit(committed)
    else:  # a verified record, but of another run
        other = runs.run_one(replace(cfg, seed=2), progress=False)
        shutil.copyfile(runs.run_folder(replace(cfg, seed=2)) / "result.json", committed)
        assert other["key"] != first["key"]
    damaged = committed.read_bytes()
    shutil.rmtree(runs.run_folder(cfg))
    calls = _counting_steps(monkeypatch, runs)
    with pytest.warns(UserWarning, match=re.escape(str(committed))):
        again = runs.run_one(cfg, progress=False)
    assert len(calls) == cfg.steps  # recomputed
    assert _without_provenance(again) == _without_provenance(first)
    assert committed.read_bytes() == damaged  # the committed file is neither repaired nor deleted
    assert read_record(runs.run_folder(cfg) / "result.json", key=first["key"]) == again  # into the cache


def test_a_committed_result_edited_after_the_export_is_not_served(env, dirs, monkeypatch):
    """An edit that recomputes the record's own checksum and keeps its key (a valid record, other numbers) no longer
    has the SHA-256 the preset's manifest lists: reported by path, not served, the run recomputed; a result the
    manifest does not list at all (written after the export) is not served either."""
    from sft_tilt.harness import runs
    from sft_tilt.harness.results_export import export_runs
    from sft_tilt.store import write_record

    cfg = _config(env["preset"], seed=9)
    first = runs.run_one(cfg, progress=False)
    [exported] = export_runs([cfg], "tiny", verbose=False)
    manifest = json.loads((exported.parent / "MANIFEST.json").read_text())["files"]
    assert set(manifest) == {"index.json"} | {f"{exported.name}/{f}" for f in ("config.json", "points.jsonl", "result.json")}
    assert all(manifest[name] == hashlib.sha256((exported.parent / name).read_bytes()).hexdigest() for name in manifest)
    shutil.rmtree(runs.run_folder(cfg))
    assert runs.committed_result(first["key"]) == first  # served while it is what the export wrote
    edited = json.loads(json.dumps(first))
    edited["points"][-1]["domain_gain"] += 0.5
    write_record(exported / "result.json", edited, key=first["key"])
    assert read_record(exported / "result.json", key=first["key"], discard=False) == edited  # a valid record
    calls = _counting_steps(monkeypatch, runs)
    with pytest.warns(UserWarning, match=re.escape(str(exported / "result.json")) + ".*not the one"):
        again = runs.run_one(cfg, progress=False)
    assert len(calls) == cfg.steps and _without_provenance(again) == _without_provenance(first)
    assert read_record(exported / "result.json", key=first["key"], discard=False) == edited  # left as it is
    (exported.parent / "MANIFEST.json").unlink()
    with pytest.warns(UserWarning, match="no manifest"):
        assert runs.committed_result(first["key"]) is None


def test_committed_early_points_and_base_analyses_are_served_only_as_the_manifest_lists_them(env, dirs):
    from sft_tilt.harness import base_model_analyses as bma
    from sft_tilt.harness import early_points
    from sft_tilt.harness.manifest import write_manifest
    from sft_tilt.store import content_key, write_record

    preset = env["preset"]
    key = "0" * 20
    early = dirs["results"] / "tiny" / "early" / f"{key}.json"
    record = {"run_key": key, "until": 1, "code_keys": early_points._code_keys(), "label": "x",
              "points": [{"step": 1, "domain_loss": 2.0, "general": {"docs": 3.0}}]}
    write_record(early, record, key=key)
    analysis = "single_step"
    base = dirs["results"] / "tiny" / "base" / bma.NAMESPACES[analysis] / f"{content_key(bma.material(preset, analysis))}.json"
    write_record(base, {"value": {"measured": 1.0}}, key=content_key(bma.material(preset, analysis)))
    write_manifest(dirs["results"] / "tiny")
    assert early_points.read_early(key, 1) == record
    assert bma._stored_or_computed(preset, analysis, lambda: pytest.fail("computed")) == {"measured": 1.0}
    write_record(early, {**record, "label": "edited"}, key=key)
    write_record(base, {"value": {"measured": 2.0}}, key=content_key(bma.material(preset, analysis)))
    with pytest.warns(UserWarning, match=re.escape(str(early))):
        assert early_points.read_early(key, 1) is None
    with pytest.warns(UserWarning, match=re.escape(str(base))):
        assert bma._stored_or_computed(preset, analysis, lambda: {"measured": 3.0}) == {"measured": 3.0}


# ----------------------------------------------------------------------------- replay


def test_replay_recomputes_the_first_points_of_a_finished_run(env, dirs, monkeypatch):
    from sft_tilt.harness import runs

    cfg = _config(env["preset"], steps=3, seed=3)
    finished = runs.run_one(cfg, progress=False)
    folder = runs.run_folder(cfg)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    calls = _counting_steps(monkeypatch, runs)
    replayed = runs.replay_points(cfg, 2)
    assert len(calls) == 2  # computed from step 0, not read
    _assert_points_match(replayed, finished["points"][:2], 1e-6)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # the run folder is untouched
    with pytest.raises(ValueError, match="n_points"):
        runs.replay_points(cfg, len(cfg.eval_steps) + 1)
    with pytest.raises(ValueError, match="stop_after"):
        runs.run_one(cfg, progress=False, stop_after=0)


# ----------------------------------------------------------------------------- provenance


def test_a_result_carries_its_provenance(env, dirs, tmp_path):
    from sft_tilt.harness import runs

    cfg = _config(env["preset"], seed=4)
    result = runs.run_one(cfg, progress=False)
    p = result["provenance"]
    assert set(p) == {"training_version", "code_key", "model_sha256", "data_hash", "libraries", "machine", "wall_s",
                      "finished_utc", "resumed_at_step"}
    assert p["training_version"] == TRAINING_VERSION
    assert p["resumed_at_step"] is None  # computed in one go

    assert p["training_version"] == TRAINING_VERSION
    assert p["model_sha256"] == hashlib.sha256(Path(env["model"]).read_bytes()).hexdigest()
    assert p["code_key"] == code_key("sft_tilt.harness.runs")
    assert p["libraries"] == library_versions()
    assert isinstance(p["data_hash"], str) and re.fullmatch(r"[0-9a-f]{64}", p["data_hash"])
    assert p["data_hash"] != runs.data_hash(replace(cfg.data, data_seed=cfg.data.data_seed + 1))
    m = p["machine"]
    assert all(isinstance(m[k], str) and m[k] for k in ("platform", "python", "processor"))
    assert isinstance(m["logical_cores"], int) and m["logical_cores"] >= 1
    assert isinstance(m["loadavg"], list) and len(m["loadavg"]) == 3 and all(x >= 0 for x in m["loadavg"])
    assert p["wall_s"] == result["wall_s"] > 0
    assert datetime.fromisoformat(p["finished_utc"]).utcoffset().total_seconds() == 0
    # a checkpoint folder: each file as name, NUL, its SHA-256, in name order
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    (folder / "b.safetensors").write_bytes(b"\x01\x02")
    (folder / "a.json").write_text("{}")
    expected = hashlib.sha256()
    for name in ("a.json", "b.safetensors"):
        expected.update(name.encode() + b"\0" + hashlib.sha256((folder / name).read_bytes()).digest())
    assert runs.model_sha256(folder) == expected.hexdigest()
    with pytest.raises(ValueError, match="path"):
        runs.model_sha256(tmp_path / "absent.gguf")


# ----------------------------------------------------------------------------- export and pending work


def test_export_writes_deterministic_files_and_skips_unfinished_runs(env, dirs, tmp_path, capsys):
    from sft_tilt.harness import runs
    from sft_tilt.harness.results_export import export_runs

    done = [_config(env["preset"], seed=5), _config(env["preset"], seed=6, learning_rate=1e-3)]
    for cfg in done:
        runs.run_one(cfg, progress=False)
    unfinished = _config(env["preset"], seed=7)
    with pytest.raises(runs.Interrupted):
        runs.run_one(unfinished, progress=False, interrupt_after=1)
    never = _config(env["preset"], seed=8)
    configs = [done[0], unfinished, done[1], never]

    a = export_runs(configs, "tiny", tmp_path / "a")
    out = capsys.readouterr().out
    assert unfinished.label() in out and never.label() in out and "skipped" in out
    assert [p.name for p in a] == [runs.run_folder(c).name for c in done]
    b = export_runs(list(reversed(configs)), "tiny", tmp_path / "b", verbose=False)
    again = export_runs(configs, "tiny", tmp_path / "a", verbose=False)
    assert again == a

    def files(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert sorted(files(tmp_path / "a")) == sorted(["tiny/index.json", "tiny/MANIFEST.json"]
                                                   + [f"tiny/{p.name}/{f}" for p in a
                                                      for f in ("config.json", "points.jsonl", "result.json")])
    for p in a:  # byte copies of the run folders
        for name in ("config.json", "points.jsonl", "result.json"):
            assert (p / name).read_bytes() == (runs_dir_of(p.name) / name).read_bytes()
    index = json.loads((tmp_path / "a" / "tiny" / "index.json").read_text())
    assert set(index) == {p.name for p in a}
    row = index[runs.run_folder(done[1]).name]
    assert row["label"] == done[1].label() and row["format"] == "label" and row["method"] == "sft"
    assert row["learning_rate"] == 1e-3 and "lr" not in row and row["seed"] == 6 and row["wall_s"] > 0
    with pytest.raises(ValueError, match="preset_name"):
        export_runs(configs, "../x", tmp_path / "a")
    # a later sitting on a fresh machine: a run committed earlier, gone from the run folders, is not called skipped
    shutil.rmtree(runs_dir_of(runs.run_folder(done[0]).name))
    capsys.readouterr()
    assert export_runs(configs, "tiny", tmp_path / "a") == a[1:]
    out = capsys.readouterr().out
    assert unfinished.label() in out and never.label() in out and done[0].label() not in out
    assert set(json.loads((tmp_path / "a" / "tiny" / "index.json").read_text())) == {p.name for p in a}


def runs_dir_of(key: str) -> Path:
    from sft_tilt.harness.runs import runs_dir

    return runs_dir() / key


def test_pending_and_the_export_command_line(env, dirs, monkeypatch, capsys):
    from sft_tilt.harness import __main__ as cli
    from sft_tilt.harness import runs
    from sft_tilt.harness.sweep_plan import REFERENCE_RATES, describe_pending, pending, planned_runs, run_cost, setup_cost

    monkeypatch.setattr(cli, "enable_compilation_cache", lambda: None)
    preset = env["preset"]
    planned = planned_runs(preset)
    first = planned[0]
    second = next(c for c in planned if c.fmt != first.fmt)  # one finished run of each format
    remaining = [c for c in planned if c not in (first, second)]
    walls = [runs.run_one(cfg, progress=False)["wall_s"] for cfg in (first, second)]
    p = pending(preset)
    assert p["planned"] == len(planned) and p["committed"] == []
    assert p["cached"] == [runs.run_folder(first).name, runs.run_folder(second).name]
    assert len(p["to_compute"]) == len(planned) - 2
    rest = sum(run_cost(c).seconds(REFERENCE_RATES) for c in remaining)
    setup = REFERENCE_RATES["setup_s"] + setup_cost(preset.data).seconds(REFERENCE_RATES)
    assert p["eta_s"] == pytest.approx(rest + setup)  # the model is the reference's scale
    # the pace: the median (of two: the mean) of measured over estimated wall time of the finished runs, and per
    # format (one run each); each run to compute is timed at its format's pace, the setup at the overall one
    ratios = [w / (run_cost(c).train_tokens / REFERENCE_RATES["train"] + run_cost(c).eval_tokens / REFERENCE_RATES["eval"]
                   + run_cost(c).decode_tokens / REFERENCE_RATES["decode"]) for w, c in zip(walls, (first, second))]
    assert p["pace_runs"] == 2 and p["pace"] == pytest.approx(sum(ratios) / 2)
    assert p["pace_by_format"] == pytest.approx({first.fmt: ratios[0], second.fmt: ratios[1]})
    by_format = {first.fmt: ratios[0], second.fmt: ratios[1]}
    assert p["eta_at_pace_s"] == pytest.approx(sum(by_format[c.fmt] * run_cost(c).seconds(REFERENCE_RATES)
                                                   for c in remaining) + p["pace"] * setup)
    assert f"{first.fmt} {ratios[0]:.2f}" in describe_pending(preset)
    assert "at the pace of its 2 finished runs" in describe_pending(preset)
    assert "workers" not in describe_pending(preset)
    two = describe_pending(preset, workers=2)
    assert f"about {p['eta_at_pace_s'] / 2 / 60:.0f} min of wall time with 2 workers" in two
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            describe_pending(preset, workers=bad)

    # limited to some runs (one experiment's): their counts and ETA; the pace still from every finished run
    third = remaining[0]
    some = pending(preset, configs=[second, third])
    assert some["planned"] == 2 and some["committed"] == [] and some["cached"] == [runs.run_folder(second).name]
    assert some["to_compute"] == [runs.run_folder(third).name]
    assert some["eta_s"] == pytest.approx(run_cost(third).seconds(REFERENCE_RATES) + setup)
    assert some["pace_runs"] == 2 and some["pace"] == pytest.approx(p["pace"])
    line = describe_pending(preset, configs=[second, third], scope="experiment lr")
    assert line.startswith(f"{preset.name}, experiment lr: 2 planned runs: 0 committed (results/), "
                           "1 finished in the run folders, 1 to compute, about ")
    done = pending(preset, configs=[first])
    assert done["planned"] == 1 and done["to_compute"] == [] and done["eta_s"] == 0.0
    assert pending(preset, configs=[])["planned"] == 0
    for bad in ("lr", 3, [first, "lr"]):
        with pytest.raises(ValueError, match="configs"):
            pending(preset, configs=bad)
    for bad in ("", "  ", 3):
        with pytest.raises(ValueError, match="scope"):
            describe_pending(preset, scope=bad)
    # a format with no finished run is timed at the median over every finished run
    aside = shutil.move(runs.run_folder(second), dirs["runs"] / "aside")
    alone = pending(preset)
    assert alone["pace_by_format"] == pytest.approx({first.fmt: ratios[0]}) and alone["pace"] == pytest.approx(ratios[0])
    assert alone["eta_at_pace_s"] == pytest.approx(ratios[0] * alone["eta_s"])
    shutil.move(aside, runs.run_folder(second))

    assert cli.main(["export", "--preset", "tiny", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"2 of {len(planned)} planned runs finished" in out and f"{len(planned) - 2} missing" in out
    assert (dirs["results"] / "tiny" / "index.json").exists()
    shutil.rmtree(runs.run_folder(first))  # now read from results/ only
    p = pending(preset)
    assert p["committed"] == [runs.run_folder(first).name] and p["cached"] == [runs.run_folder(second).name]
    line = describe_pending(preset)
    assert f"{len(planned)} planned runs: 1 committed" in line and "1 finished in the run folders" in line
    assert f"{len(planned) - 2} to compute" in line and "min" in line

    # a committed run no plan of the current code produces (a key of older code) is named, then pruned on request
    stale = dirs["results"] / "tiny" / "0123456789abcdef0123"
    shutil.copytree(dirs["results"] / "tiny" / runs.run_folder(first).name, stale)
    assert cli.main(["export", "--preset", "tiny", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "1 committed runs" in out and stale.name in out and "--prune deletes them" in out and stale.is_dir()
    assert cli.main(["export", "--preset", "tiny", "--quiet", "--prune"]) == 0
    assert f"removed stale run {stale}" in capsys.readouterr().out and not stale.exists()
    assert (dirs["results"] / "tiny" / runs.run_folder(first).name).is_dir()
    index = json.loads((dirs["results"] / "tiny" / "index.json").read_text())
    assert stale.name not in index and runs.run_folder(first).name in index


def test_run_keys_do_not_depend_on_export_or_the_sweep_plan():
    """The run key hashes runs.py and every repository module it imports: export and the pending-work message
    live outside that closure, so editing them keeps the committed results valid."""
    from sft_tilt.store import dependency_closure

    closure = set(dependency_closure("sft_tilt.harness.runs"))
    assert "sft_tilt.harness.session" in closure  # the import graph was read
    assert not closure & {"sft_tilt.harness.results_export", "sft_tilt.harness.sweep_plan", "sft_tilt.harness.__main__",
                          "sft_tilt.harness.results_summary", "sft_tilt.analysis.intervals", "sft_tilt.harness.early_points"}


# ----------------------------------------------------------------------------- the repository's committed runs


RESULTS = CHECKOUT_ROOT / "results"


def _finite_numbers(value, where="") -> list[str]:
    """Paths of the non-finite numbers in ``value`` (none expected in a measured point)."""
    if isinstance(value, dict):
        return [w for k, v in value.items() for w in _finite_numbers(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [w for i, v in enumerate(value) for w in _finite_numbers(v, f"{where}[{i}]")]
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return [where]
    return []


def _planned_config(preset_name: str, result: dict):
    """The planned run of preset ``preset_name`` whose key is the result's, else whose configuration (model path
    aside, which differs between machines) is the result's; None if there is none."""
    from sft_tilt.harness.presets import PRESETS, get_preset
    from sft_tilt.harness.runs import _jsonable, run_key
    from sft_tilt.harness.sweep_plan import planned_runs

    if preset_name not in PRESETS or preset_name == "tiny":
        return None
    configs = planned_runs(get_preset(preset_name))

    def portable(described):
        return {k: v for k, v in json.loads(json.dumps(_jsonable(described), default=str)).items()
                if k not in ("model", "tokenizer")}

    return (next((c for c in configs if run_key(c) == result["key"]), None)
            or next((c for c in configs if portable(c.describe()) == portable(result["config"])), None))


def test_every_committed_file_has_the_hash_its_presets_manifest_lists():
    """Each ``results/<preset>/MANIFEST.json`` lists every file of its folder, no other, each with the SHA-256 of its
    bytes: an edit to a committed file changes the manifest too (visible in review) or fails here."""
    presets = sorted(p for p in RESULTS.iterdir() if p.is_dir())
    assert presets, f"{RESULTS} holds no preset folder"
    for folder in presets:
        listed = json.loads((folder / "MANIFEST.json").read_text())["files"]
        present = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                         if p.is_file() and p.name != "MANIFEST.json")
        assert sorted(listed) == present, f"{folder / 'MANIFEST.json'}: does not list exactly the folder's files"
        wrong = [name for name in present if hashlib.sha256((folder / name).read_bytes()).hexdigest() != listed[name]]
        assert not wrong, f"{folder}: files whose SHA-256 is not the manifest's: {wrong}"


def test_the_committed_early_points_verify_and_continue_their_committed_runs():
    """Every ``results/*/early/<key>.json`` verifies for its key and holds finite evaluations at steps 1..until; where
    its run's result is committed too, the record's point at ``until`` reproduces the run's own (``splice``)."""
    from sft_tilt.harness.stored_early_points import splice
    from sft_tilt.harness.experiment_results import summarise_run

    for path in sorted(RESULTS.glob("*/early/*.json")):
        key = path.stem
        record = read_record(path, key=key, discard=False)
        assert isinstance(record, dict) and record["run_key"] == key, f"{path}: does not verify for key {key}"
        assert [p["step"] for p in record["points"]] == list(range(1, record["until"] + 1)), path
        bad = [w for p in record["points"] for w in _finite_numbers({"d": p["domain_loss"], **p["general"]}, f"step {p['step']}")]
        assert not bad, f"{path}: non-finite numbers at {bad}"
        run = path.parent.parent / key / "result.json"
        if run.exists():
            result = read_record(run, key=key, discard=False)
            spliced = splice(summarise_run(result), result["base"], record)  # raises unless step `until` agrees
            assert [t[0] for t in spliced["trajectory"]][:record["until"] + 1] == list(range(record["until"] + 1))


def test_the_committed_base_model_analyses_verify():
    """Every ``results/*/base/<namespace>/<key>.(json|npz)`` is a record of a known analysis that verifies for its key
    and holds finite numbers; the key's code part covers the analyses' own module and what it imports, not the
    experiment glue, the figures or the export, so editing those keeps the committed records."""
    from sft_tilt.harness.base_model_analyses import NAMESPACES
    from sft_tilt.store import dependency_closure

    closure = set(dependency_closure("sft_tilt.harness.base_model_analyses"))
    assert "sft_tilt.harness.session" in closure
    assert not closure & {"sft_tilt.harness.experiments", "sft_tilt.harness.results_export", "sft_tilt.harness.__main__",
                          "sft_tilt.figures", "sft_tilt.claims"}
    for path in sorted(RESULTS.glob("*/base/*/*")):
        assert path.parent.name in NAMESPACES.values(), f"{path}: not a namespace of {sorted(NAMESPACES.values())}"
        record = read_record(path, key=path.stem, discard=False)
        assert isinstance(record, dict) and "value" in record, f"{path}: does not verify for key {path.stem}"
        numbers = json.loads(json.dumps(record["value"], default=lambda a: a.tolist()))
        assert not _finite_numbers(numbers), f"{path}: non-finite numbers at {_finite_numbers(numbers)}"


@pytest.mark.real_model
@pytest.mark.execution_bound
def test_the_committed_real_results_verify_and_the_cheapest_reproduces():
    """Every ``results/*/*/result.json`` verifies for its folder's key, carries provenance, has finite points that
    its ``points.jsonl`` repeats line by line; the cheapest committed run (label-only first, then the fewest steps
    to its second evaluation point) is recomputed for two points and matches the stored numbers to 1e-5."""
    from sft_tilt.harness.runs import _read_points

    files = sorted(RESULTS.glob("*/*/result.json"))
    assert files, (f"{RESULTS} holds no committed run: run a preset's sweep (python -m sft_tilt.harness sweep --preset "
                   "cpu), export it (python -m sft_tilt.harness export --preset cpu) and commit results/")
    candidates = []
    for path in files:
        key = path.parent.name
        result = read_record(path, key=key, discard=False)
        assert isinstance(result, dict), f"{path}: does not verify for key {key}"
        prov = result.get("provenance")
        assert isinstance(prov, dict) and re.fullmatch(r"[0-9a-f]{64}", str(prov.get("model_sha256"))), \
            f"{path}: no provenance"
        assert {"code_key", "data_hash", "libraries", "machine", "wall_s", "finished_utc"} <= set(prov), path
        assert result["points"], f"{path}: no points"
        measured = [p for p in result["points"] if not p.get("diverged")]
        bad = [w for p in measured for w in _finite_numbers(_measured(p), f"step {p['step']}")]
        assert not bad, f"{path}: non-finite numbers at {bad}"
        # committed before point lines held the run key: each line is checked against the keyed result's points
        assert _read_points(path.parent, unkeyed=True) == result["points"], f"{path.parent / 'points.jsonl'}: does not match"
        index = json.loads((path.parent.parent / "index.json").read_text())
        assert key in index, f"{path.parent.parent / 'index.json'}: does not list {key}"
        if len(measured) >= 2 and not result["diverged"]:
            candidates.append((result["config"]["fmt"] != "label", measured[1]["step"], key, path, result))
    assert candidates, f"{RESULTS}: no committed run has two evaluation points to replay"
    for *_, path, result in sorted(candidates, key=lambda c: c[:3]):
        cfg = _planned_config(path.parent.parent.name, result)
        if cfg is not None:
            break
    else:
        pytest.fail(f"{RESULTS}: no committed run is a planned run of its folder's preset under the current code; "
                    "rerun the sweep and export it")
    from sft_tilt.harness.runs import replay_points

    _assert_points_match(replay_points(cfg, 2), result["points"][:2], 1e-5)


def test_the_real_lm_tables_read_from_the_committed_runs_use_one_name_per_quantity(tmp_path, monkeypatch):
    """Every table the claims and figures read (the summaries, matched-gain cells, front rows, token statistics, the
    single-step record committed before the names were unified) names its quantities ``learning_rate``,
    ``domain_gain`` and ``general_change``; read from ``results/cpu`` alone."""
    from record_names import misnamed_keys
    from sft_tilt.harness.experiment_results import read_all
    from sft_tilt.harness.presets import get_preset

    monkeypatch.setenv("SFT_RESULTS_DIR", str(RESULTS))
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))  # empty: every run is read from results/
    tables = read_all(get_preset("cpu"))
    assert tables["learning_rate_tradeoff"] and tables["single_step"]["learning_rates"]
    assert misnamed_keys(tables) == []


def test_claims_and_figures_read_the_preset_they_name_whatever_is_stored(env, dirs, monkeypatch):
    """Every real-LM claim names the preset it is decided on in its registration, and the figures name theirs; with
    nothing stored (empty run and results folders here) they still read that preset, never a smaller one, and
    ``$SFT_REAL_LM_PRESET`` replaces it for all of them at once."""
    import sft_tilt.claims
    import sft_tilt.claims.real_lm_results as real
    import sft_tilt.figures.real_lm_figures as real_lm_figures
    import sft_tilt.harness.presets as presets

    checks = sft_tilt.claims.select_checks(["real_lm"])
    assert checks and {c.preset for c in checks} == {"cpu"} == {real_lm_figures.PRESET}
    assert all(c.preset is None for c in sft_tilt.claims.CHECKS if c.group != "real_lm")
    # the test environment replaces the named preset with the tiny model's
    assert real.preset("cpu").name == "tiny" and real_lm_figures._setup().name == "tiny"
    assert real.setting("cpu").startswith("real LM (tiny preset")
    assert real.command("real_lm_matched_gain", "cpu") == "SFT_REAL_LM_PRESET=tiny python -m sft_tilt.figures real_lm_matched_gain"
    monkeypatch.delenv(presets.PRESET_OVERRIDE_ENV)
    cpu = presets.get_preset("cpu")
    assert real.preset("cpu") == cpu and real_lm_figures._setup() == cpu  # nothing stored: still the named preset
    assert real.setting("cpu").startswith("real LM (cpu preset, 100 steps x batch 2, 3 seeds; TALR = talr-mean")
    assert real.command("real_lm_matched_gain", "cpu") == "python -m sft_tilt.figures real_lm_matched_gain"
    assert real.command(None, "cpu") == "python -m sft_tilt.harness report --preset cpu"
    restricted = real.preset("cpu", ("talr", "flow"))
    assert restricted.methods == ("talr-mean", "flow") and restricted.data == cpu.data
    assert real_lm_figures._setup(("talr",)).methods == ("talr-mean",)
    with pytest.raises(ValueError, match="names: need one or more"):
        presets.restrict_to_methods(cpu, ())
    with pytest.raises(ValueError, match="no-such"):
        presets.restrict_to_methods(cpu, ("no-such",))
    with pytest.raises(ValueError, match="named: unknown preset"):
        presets.read_preset_name("large")
    monkeypatch.setenv(presets.PRESET_OVERRIDE_ENV, "huge")
    with pytest.raises(ValueError, match="SFT_REAL_LM_PRESET: unknown preset 'huge'"):
        real.preset("cpu")


def test_a_missing_result_names_the_sweep_that_computes_it_and_nothing_trains(env, dirs, monkeypatch):
    """With nothing stored, a claim, a figure and the tables they read raise ``MissingResults`` whose message is the
    command that computes what is missing; no optimiser step runs and no run folder is written."""
    import sft_tilt.figures.real_lm_figures  # noqa: F401  (registers the figures)
    from sft_tilt.claims import learning_rate_exchange, target_token_statistics, token_vs_sample_weighting
    from sft_tilt.figures import FIGURES
    from sft_tilt.harness import experiment_results, runs
    from sft_tilt.harness.stored_early_points import with_early
    from sft_tilt.harness.stored_runs import MissingResults

    steps = _counting_steps(monkeypatch, runs)
    monkeypatch.delenv("SFT_REAL_LM_PRESET")  # the claims' own preset, cpu, of which nothing is stored here
    with pytest.raises(MissingResults, match=r"compute them with `python -m sft_tilt.harness sweep --preset cpu --experiment lr --method sft`"):
        learning_rate_exchange.measure()
    with pytest.raises(MissingResults, match=r"--preset cpu --experiment methods --method flow --method sft --method talr-mean`"):
        token_vs_sample_weighting.measure_real_lm()
    with pytest.raises(MissingResults, match=r"compute it with `python -m sft_tilt.harness sweep --preset cpu --experiment base`"):
        target_token_statistics.measure()
    with pytest.raises(MissingResults, match="--preset cpu --experiment lr"):
        FIGURES["real_lm_lr_tradeoff"].draw(dirs["runs"] / "figures")
    summary = {"key": "a" * 20, "diverged": False, "trajectory": [(0, 0.0, 0.0), (10, 0.5, 0.01)]}
    with pytest.raises(MissingResults, match="compute them with `python -m sft_tilt.harness sweep --preset cpu --experiment early`"):
        with_early([summary], {summary["key"]: {"base": {}}}, 10, require="cpu")
    assert with_early([summary], {summary["key"]: {"base": {}}}, 10) == [summary]  # the sweep's tables: no requirement
    monkeypatch.setenv("SFT_REAL_LM_PRESET", "tiny")
    with pytest.raises(MissingResults, match="--preset tiny --experiment methods"):
        experiment_results.method_front(env["preset"])
    assert steps == [] and not dirs["runs"].exists()


def test_the_accuracy_figure_draws_the_papers_axes_from_the_committed_runs(tmp_path, monkeypatch):
    """The first panel of ``real_lm_accuracy`` (the paper's Figure 1 axes) is, per format and learning rate, the mean
    over seeds of the committed ``default`` runs' greedy answer accuracy after training and their general
    multiple-choice accuracy at the last point; nothing is computed (a run that is not committed fails the test)."""
    import sft_tilt.figures.real_lm_figures  # noqa: F401  (registers the figures)
    from sft_tilt.figures import FIGURES
    from sft_tilt.harness.experiment_runs import sft_configs
    from sft_tilt.harness.presets import get_preset
    from sft_tilt.harness.stored_runs import load_result

    monkeypatch.setenv("SFT_REAL_LM_PRESET", "default")
    monkeypatch.setenv("SFT_RESULTS_DIR", str(RESULTS))  # the repository's, whatever another test's fixture set
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))  # empty: every run is read from results/
    FIGURES["real_lm_accuracy"].draw(tmp_path)  # a figure only reads: a run not committed fails it
    drawn = [r for r in json.loads((tmp_path / "real_lm_accuracy.json").read_text())["points"]
             if r["x"] == "greedy_accuracy"]
    preset = get_preset("default")
    assert {(r["fmt"], r["learning_rate"]) for r in drawn} == {(f, eta) for f in preset.formats for eta in preset.learning_rate_grid}
    for row in drawn:
        results = [load_result(c) for c in sft_configs(preset)
                   if (c.fmt, c.learning_rate) == (row["fmt"], row["learning_rate"])]
        assert row["n"] == len(results) == len(preset.seeds)
        assert row["x_mean"] == pytest.approx(np.mean([r["accuracy"]["accuracy"] for r in results]))
        assert row["y_mean"] == pytest.approx(np.mean([r["points"][-1]["choice"]["accuracy"] for r in results]))

"""Unusable models, data and folders are refused before any work: a usage error naming the option and the path,
no run folder made, nothing trained; the same problems reach a library caller as a ValueError naming the file."""

import json
from dataclasses import replace

import jax
import pytest

from tiny_harness import tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("early-errors")) as environment:
        yield environment


@pytest.fixture
def cli(env, monkeypatch, tmp_path):
    """The harness's ``main`` with private run folders and nothing allowed to train."""
    from sft_tilt.harness import __main__ as cli
    from sft_tilt.harness import runs

    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(cli, "enable_compilation_cache", lambda: None)
    monkeypatch.setattr(runs, "make_train_step", lambda *a, **k: pytest.fail("training started"))
    return cli


def _refused(cli, capsys, *extra) -> str:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "--preset", "tiny", "--lr", "1e-3", "--quiet", *extra])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    return err


def _tiny_model(path, **changes):
    from sft_tilt.lm.config import ModelConfig
    from sft_tilt.lm.gguf_io import save_gguf
    from sft_tilt.lm.model import init_params

    cfg = ModelConfig.tiny(**{"vocab_size": 49152, "max_seq_len": 512, **changes})
    save_gguf(path, cfg, init_params(cfg, jax.random.key(0)))
    return path


def _rows(n, long_response_bytes=0):
    rows = [{"prompt": f"What is {i} + {i}?", "response": f"{i} + {i} = {2 * i}", "answer": 2 * i} for i in range(n)]
    if long_response_bytes:
        rows[0]["response"] = "x " * (long_response_bytes // 2)
    return rows


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ----------------------------------------------------------------------------- the model


def test_a_missing_model_a_folder_and_a_file_that_is_not_gguf_are_named(cli, capsys, tmp_path):
    err = _refused(cli, capsys, "--model", str(tmp_path / "absent.gguf"))
    assert f"--model: {tmp_path / 'absent.gguf'} does not exist" in err
    (tmp_path / "folder").mkdir()
    err = _refused(cli, capsys, "--model", str(tmp_path / "folder"))
    assert f"--model: {tmp_path / 'folder'} is a folder without config.json" in err
    (tmp_path / "notes.gguf").write_text("not a model")
    err = _refused(cli, capsys, "--model", str(tmp_path / "notes.gguf"))
    assert "--model: " in err and "is not a GGUF file" in err
    assert not (tmp_path / "runs").exists()


def test_a_vocabulary_smaller_than_the_tokenizers_is_refused(cli, capsys, tmp_path):
    model = _tiny_model(tmp_path / "small-vocab.gguf", vocab_size=1000)
    err = _refused(cli, capsys, "--model", str(model))
    assert f"--model: model: {model}: a vocabulary of 1000 tokens, fewer than the tokenizer's 49152" in err
    assert not (tmp_path / "runs").exists()


def test_a_context_shorter_than_the_windows_is_refused(cli, capsys, env, tmp_path):
    model = _tiny_model(tmp_path / "short.gguf", max_seq_len=128)
    longest = max(env["preset"].data.seq_len_cot, env["preset"].data.seq_len_label, env["preset"].data.seq_len_general)
    assert longest > 128
    err = _refused(cli, capsys, "--model", str(model))
    assert f"--model: model: {model}: a context of 128 tokens, shorter than the data configuration's window" in err
    assert f"={longest}" in err and not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- the data


def test_domain_data_with_too_few_rows_is_refused_before_the_model_loads(cli, capsys, env, monkeypatch, tmp_path):
    import sft_tilt.harness.session as session

    monkeypatch.setattr(session, "_load_model", lambda *a: pytest.fail("the model was loaded"))
    need = env["preset"].data.n_train + env["preset"].data.n_heldout
    path = _jsonl(tmp_path / "few.jsonl", _rows(need - 1))
    err = _refused(cli, capsys, "--domain-data", str(path))
    assert f"--domain-data: {path.resolve()}: domain_data: {need - 1} rows" in err
    assert f"n_train={env['preset'].data.n_train}" in err


def test_a_row_of_megabytes_is_refused_without_tokenizing_it(cli, capsys, env, monkeypatch, tmp_path):
    """A 30 MB response cannot fit a window of a few hundred tokens whatever its text: it is refused from its byte
    count (no token covers more bytes than the longest vocabulary entry), never handed to the tokenizer."""
    from sft_tilt.harness.session import longest_token_bytes
    from sft_tilt.lm.tokenizer import Tokenizer

    encode = Tokenizer.encode_chat_example

    def guarded(self, prompt, response, system=None):
        assert len(prompt) + len(response) < 1_000_000, "a megabyte row reached the tokenizer"
        return encode(self, prompt, response, system)

    monkeypatch.setattr(Tokenizer, "encode_chat_example", guarded)
    size = 30_000_000
    path = _jsonl(tmp_path / "long.jsonl", _rows(8, long_response_bytes=size))
    err = _refused(cli, capsys, "--domain-data", str(path))
    tok = Tokenizer.from_gguf(env["preset"].tokenizer)
    per_token = longest_token_bytes(tok)
    assert per_token >= max(len(tok.decode([i]).encode()) for i in range(tok.vocab_size))  # an upper bound indeed
    at_least = -(-(len("What is 0 + 0?") + size) // per_token)  # the prompt's and the response's bytes
    assert (f"--domain-data: domain_data: {path.resolve()}: line 1: the chain-of-thought example needs at least "
            f"{at_least} tokens, more than its window seq_len_cot={env['preset'].data.seq_len_cot}") in err
    assert not (tmp_path / "runs").exists()


def test_a_row_just_too_long_for_its_window_is_named_by_line(cli, capsys, env, tmp_path):
    """A row under the byte bound but over the window once tokenized: found when the sets are encoded, named by line."""
    window = env["preset"].data.seq_len_label
    rows = _rows(8)
    rows[3]["prompt"] = " ".join(["word"] * (window + 10))  # some window + 10 tokens: over every window of the preset
    path = _jsonl(tmp_path / "over.jsonl", rows)
    err = _refused(cli, capsys, "--domain-data", str(path))
    assert f"--domain-data: domain_data: {path.resolve()}: line 4: the " in err and "more than its window" in err
    assert not (tmp_path / "runs").exists()


def test_general_data_that_encodes_to_one_token_is_refused(cli, capsys, tmp_path):
    path = _jsonl(tmp_path / "general.jsonl", [{"text": "a"}, {"text": "a longer text of several tokens"}])
    err = _refused(cli, capsys, "--general-data", str(path))
    assert f"--general-data: general_data: {path.resolve()}: texts[0]: encodes to fewer than 2 tokens" in err
    assert not (tmp_path / "runs").exists()


def test_a_lone_surrogate_is_refused_before_the_model_loads(cli, capsys, monkeypatch, tmp_path):
    import sft_tilt.harness.session as session

    monkeypatch.setattr(session, "_load_model", lambda *a: pytest.fail("the model was loaded"))
    path = tmp_path / "surrogate.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows(7)) + '{"prompt": "x \\udc80", "response": "y"}\n')
    err = _refused(cli, capsys, "--domain-data", str(path))
    assert "--domain-data: domain_data: " in err and "line 8, column 'prompt': character 2 is U+DC80" in err


# ----------------------------------------------------------------------------- the folders


@pytest.mark.parametrize("variable", ["SFT_RUNS_DIR", "SFT_CACHE_DIR"])
def test_a_folder_that_cannot_be_written_is_refused_naming_the_variable(cli, capsys, monkeypatch, tmp_path, variable):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(variable, str(blocker / "sub"))
    monkeypatch.setattr("sft_tilt.harness.session._load_model", lambda *a: pytest.fail("the model was loaded"))
    err = _refused(cli, capsys)
    assert f"${variable}={blocker / 'sub'}: {blocker} is a file, not a directory" in err


def test_a_result_json_that_is_a_directory_is_refused_before_anything_runs(cli, capsys, env, monkeypatch):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiments import method_config

    cfg = method_config(env["preset"], "sft", 1e-3, 0, "cot")
    folder = runs.run_folder(cfg)
    (folder / "result.json").mkdir(parents=True)
    monkeypatch.setattr("sft_tilt.harness.session._load_model", lambda *a: pytest.fail("the model was loaded"))
    err = _refused(cli, capsys)
    assert f"{folder / 'result.json'}: is a directory" in err
    with pytest.raises(ValueError, match="result.json: is a directory"):
        runs.run_one(cfg, progress=False)
    assert sorted(p.name for p in folder.iterdir()) == ["result.json"]


# ----------------------------------------------------------------------------- the library


def test_a_session_names_the_file_in_its_errors(env, tmp_path):
    from sft_tilt.harness.data_files import DataFile
    from sft_tilt.harness.session import Session, UnusableInput

    preset = env["preset"]
    with pytest.raises(UnusableInput, match="model: .*absent.gguf") as err:
        Session(str(tmp_path / "absent.gguf"), preset.tokenizer, preset.data)
    assert err.value.argument == "model"
    rows = _rows(8)
    rows[5]["response"] = "y " * 20_000
    path = _jsonl(tmp_path / "long.jsonl", rows)
    data = replace(preset.data, calculators=None, domain_data=DataFile.from_path(path))
    with pytest.raises(UnusableInput, match=f"domain_data: {path.resolve()}: line 6: the .* example needs") as err:
        Session(preset.resolved_model(), preset.tokenizer, data)
    assert err.value.argument == "domain_data"

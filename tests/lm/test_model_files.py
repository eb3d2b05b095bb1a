"""Model files from outside: a checkpoint's safetensors header, fuzzed (its 8-byte length, and each tensor's dtype,
shape and data offsets), and a FIFO or other non-regular file where a checkpoint, tokenizer or GGUF file belongs
(refused by name at once; opening a FIFO would block until a writer appears).

``load_hf_checkpoint`` documents two errors, FileNotFoundError and ValueError naming the file; nothing else may
escape (the Rust reader raises its own ``SafetensorError`` and could panic, which Python sees as a BaseException).
A header the reader accepts may still describe other tensors (another dtype, shape or byte range): then the loader
either refuses them by name or every parameter it returns is finite and, where the tensor's entry is unchanged,
equal to what was saved.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.hf_io import load_hf_checkpoint, save_hf_checkpoint
from sft_tilt.lm.model import param_shapes

LLAMA = ModelConfig.tiny()
# example counts and deadlines from the loaded profile (conftest: "ci" by default, HYPOTHESIS_PROFILE=thorough)
_FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _params(config: ModelConfig) -> dict:
    rng = np.random.default_rng(0)
    return {k: {n: (0.02 * rng.standard_normal(s)).astype(np.float32) for n, s in v.items()} if isinstance(v, dict)
            else (0.02 * rng.standard_normal(v)).astype(np.float32) for k, v in param_shapes(config).items()}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The tiny checkpoint's config.json, safetensors header (parsed) and data bytes, and the loaded parameters."""
    folder = tmp_path_factory.mktemp("hf")
    save_hf_checkpoint(folder, LLAMA, _params(LLAMA))
    raw = (folder / "model.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    _, params = load_hf_checkpoint(folder)
    return (folder / "config.json").read_text(), json.loads(raw[8:8 + n]), raw[8 + n:], params


def _write(folder: Path, config: str, header: dict, data: bytes, length: int | None = None) -> Path:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    (folder / "config.json").write_text(config)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(text) if length is None else length) + text + data)
    return folder


_entry_edits = st.one_of(
    st.tuples(st.just("dtype"), st.sampled_from(["F32", "F16", "BF16", "F64", "I32", "U8", "BOOL", "F8_E4M3", "X", 3])),
    st.tuples(st.just("shape"), st.lists(st.integers(-1, 2**64), max_size=3) | st.sampled_from([None, "4", [2.5]])),
    st.tuples(st.just("data_offsets"), st.lists(st.integers(-1, 2**64) | st.integers(0, 10**5), max_size=3)
              | st.sampled_from([None, [0, "16"]])),
    st.tuples(st.just("drop"), st.none()),
    st.tuples(st.just("extra"), st.sampled_from([None, 1, "x", {}])),
)


@_FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10**4), _entry_edits), min_size=1, max_size=3),
       metadata=st.none() | st.dictionaries(st.text(max_size=4), st.text(max_size=4) | st.integers(), max_size=2),
       length=st.sampled_from([None] * 6) | st.integers(0, 2**64 - 1) | st.integers(0, 4096),
       tail=st.sampled_from(["keep"] * 4 + ["cut", "extend"]))
def test_fuzz_safetensors_header(tmp_path_factory, saved, edits, metadata, length, tail):
    config, header, data, originals = saved
    header = json.loads(json.dumps(header))
    names = sorted(k for k in header if k != "__metadata__")
    changed = set()
    for index, (field, value) in edits:
        name = names[index % len(names)]
        if name not in header:
            continue
        changed.add(name)
        if field == "drop":
            del header[name]
        elif field == "extra":
            header[name]["extra"] = value
        else:
            header[name][field] = value
    if metadata is not None:
        header["__metadata__"] = metadata
    data = {"keep": data, "cut": data[:-4], "extend": data + b"\0" * 8}[tail]
    folder = _write(tmp_path_factory.mktemp("hf"), config, header, data, length)
    try:
        _, params = load_hf_checkpoint(folder)
    except (ValueError, FileNotFoundError) as err:
        event(f"{type(err).__name__}: {str(err).split(': ')[1][:40] if ': ' in str(err) else str(err)[:40]}")
        assert str(folder) in str(err), str(err)
        return
    event("loaded")
    for key, value in params.items():
        leaves = value.items() if isinstance(value, dict) else [(key, value)]
        for name, leaf in leaves:
            assert np.isfinite(leaf).all(), name
    for key, entry in (("embed", "model.embed_tokens.weight"), ("final_norm", "model.norm.weight")):
        if entry not in changed:  # same dtype, shape and byte range as saved: the same values
            assert np.array_equal(params[key], originals[key])


def test_a_header_length_beyond_the_file_is_refused_naming_it(tmp_path, saved):
    config, header, data, _ = saved
    folder = _write(tmp_path, config, header, data, length=2**40)
    with pytest.raises(ValueError, match=rf"{tmp_path}/model\.safetensors: not a readable safetensors file"):
        load_hf_checkpoint(folder)


def test_a_tensor_whose_offsets_alias_another_is_refused(tmp_path, saved):
    """Two entries over the same bytes leave a hole elsewhere: safetensors requires the data covered exactly once."""
    config, header, data, _ = saved
    header = json.loads(json.dumps(header))
    k, v = "model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight"
    header[k]["data_offsets"] = header[v]["data_offsets"]
    folder = _write(tmp_path, config, header, data)
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file .*invalid offset"):
        load_hf_checkpoint(folder)


def test_the_fixture_checkpoint_reads_back_unchanged(tmp_path, saved):
    """The premise of the fuzz test: writing the parsed header back gives the same parameters."""
    config, header, data, originals = saved
    _, params = load_hf_checkpoint(_write(tmp_path, config, header, data))
    assert np.array_equal(params["embed"], originals["embed"])
    assert all(np.array_equal(params["layers"][k], originals["layers"][k]) for k in originals["layers"])


def _refused_within(seconds, load, *args):
    import signal

    def expire(signum, frame):
        raise TimeoutError(f"still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        with pytest.raises(ValueError) as err:
            load(*args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return str(err.value)


@pytest.mark.parametrize("name", ["config.json", "model-2.safetensors"])
def test_a_fifo_in_a_checkpoint_folder_is_refused_without_blocking(tmp_path, saved, name):
    config, header, data, _ = saved
    folder = _write(tmp_path, config, header, data)
    if name == "config.json":
        (folder / name).unlink()
    os.mkfifo(folder / name)
    assert _refused_within(10, load_hf_checkpoint, folder) == f"{folder / name}: not a regular file"


@pytest.mark.parametrize("name", ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"])
def test_a_fifo_in_a_tokenizer_folder_is_refused_without_blocking(tmp_path, name):
    from sft_tilt.lm.tokenizer import Tokenizer

    os.mkfifo(tmp_path / name)
    assert _refused_within(10, Tokenizer.from_hf, tmp_path) == f"{tmp_path / name}: not a regular file"


def test_a_fifo_in_place_of_a_gguf_file_is_refused_without_blocking(tmp_path):
    from sft_tilt.lm.gguf_io import load_gguf
    from sft_tilt.lm.tokenizer import Tokenizer

    os.mkfifo(tmp_path / "m.gguf")
    for load in (load_gguf, Tokenizer.from_gguf):
        assert _refused_within(10, load, tmp_path / "m.gguf") == f"{tmp_path / 'm.gguf'}: not a regular file"

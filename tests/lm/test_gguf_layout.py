"""Where a GGUF file's tensor data lies: llama.cpp's layout rule, enforced before the gguf library reads the file.

The files are written by the gguf library's own writer (which lays tensors out as llama.cpp does) and then edited
in place through ``gguf.GGUFReader(path, "r+")``, which maps the header's fields onto the file's bytes. The gguf
library alone takes an edited offset as written; these tests show that first, then that ``load_gguf``,
``check_gguf_header`` and ``Tokenizer.from_gguf`` refuse the file with a ValueError naming it and the tensor.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.gguf_header import check_gguf_header
from sft_tilt.lm.gguf_io import _write_gguf, load_gguf
from sft_tilt.lm.model import param_shapes
from sft_tilt.lm.tokenizer import Tokenizer

LLAMA = ModelConfig.tiny()
_TOKENIZER = {  # a tiny byte-level vocabulary, so the same file also carries a tokenizer
    "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm",
    "tokenizer.ggml.tokens": ["<|im_start|>", "<|im_end|>", *"abc", "Ġ", "ab"],
    "tokenizer.ggml.merges": ["a b"], "tokenizer.ggml.token_type": [3, 3, 1, 1, 1, 1, 1],
}


def _params(config: ModelConfig, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)

    def fill(shapes):
        return {k: fill(v) if isinstance(v, dict) else (0.02 * rng.standard_normal(v)).astype(np.float32)
                for k, v in shapes.items()}

    return fill(param_shapes(config))


def _model_file(tmp_path: Path, tensor_type: str = "F32") -> Path:
    return _write_gguf(tmp_path / "m.gguf", LLAMA, _params(LLAMA), tensor_type, dict(_TOKENIZER))


def _edit(path: Path, change) -> None:
    """Apply ``change(reader)`` to the file's bytes through the reader's writable memory map."""
    reader = gguf.GGUFReader(str(path), "r+")
    change(reader)
    reader.data.flush()
    del reader


def _tensor(reader, name: str):
    (t,) = [t for t in reader.tensors if t.name == name]
    return t


def _set_offset(name: str, target: str):
    def change(reader):
        _tensor(reader, name).field.parts[-1][0] = _tensor(reader, target).data_offset - reader.data_offset
    return change


def _refused(path: Path, *fragments: str) -> None:
    for load in (load_gguf, Tokenizer.from_gguf, check_gguf_header):
        with pytest.raises(ValueError) as err:
            load(path)
        assert str(path) in str(err.value)
        for fragment in fragments:
            assert fragment in str(err.value), (load.__name__, str(err.value))


def test_a_key_offset_pointing_at_the_value_data_is_refused(tmp_path):
    path = _model_file(tmp_path)
    _edit(path, _set_offset("blk.0.attn_k.weight", "blk.0.attn_v.weight"))
    alone = gguf.GGUFReader(str(path))  # what the library alone would load: K's weights are V's bytes
    assert np.array_equal(_tensor(alone, "blk.0.attn_k.weight").data, _tensor(alone, "blk.0.attn_v.weight").data)
    del alone
    _refused(path, "'blk.0.attn_k.weight'", "points into tensor 'blk.0.attn_v.weight'")


def test_two_equal_sized_tensors_with_swapped_offsets_are_refused(tmp_path):
    """K and V have the same shape: swapped offsets keep every byte used once, but load each as the other."""
    path = _model_file(tmp_path, "Q8_0")

    def swap(reader):
        k, v = _tensor(reader, "blk.1.attn_k.weight"), _tensor(reader, "blk.1.attn_v.weight")
        k_at, v_at = int(k.field.parts[-1][0]), int(v.field.parts[-1][0])
        k.field.parts[-1][0], v.field.parts[-1][0] = v_at, k_at

    _edit(path, swap)
    _refused(path, "'blk.1.attn_k.weight'", "points into tensor 'blk.1.attn_v.weight'")


@pytest.mark.parametrize("shift", [4, 32, -32])
def test_an_offset_off_by_a_few_bytes_or_a_whole_block_is_refused(tmp_path, shift):
    path = _model_file(tmp_path)

    def move(reader):
        reader_field = _tensor(reader, "blk.1.ffn_up.weight").field.parts[-1]
        reader_field[0] = int(reader_field[0]) + shift

    _edit(path, move)
    _refused(path, "'blk.1.ffn_up.weight'", "has data offset")


def test_bytes_appended_after_the_data_section_are_refused(tmp_path):
    path = _model_file(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0" * 32)
    _refused(path, "bytes after the data section")


def test_a_data_section_cut_inside_the_last_tensor_is_refused(tmp_path):
    path = _model_file(tmp_path)
    path.write_bytes(path.read_bytes()[:-1])
    _refused(path, "(truncated)")


def _vectors_file(path: Path, sizes: list[int], alignment: int | None = None) -> Path:
    """A GGUF file of float32 vectors of ``sizes`` (gguf's writer pads each tensor to the alignment)."""
    writer = gguf.GGUFWriter(str(path), "llama")
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    for i, n in enumerate(sizes):
        writer.add_tensor(f"t{i}", np.arange(n, dtype=np.float32) + 100 * i)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("alignment", [None, 8, 64, 256])
def test_files_written_by_the_gguf_writer_pass_at_any_alignment(tmp_path, alignment):
    path = _vectors_file(tmp_path / "v.gguf", [3, 5, 16, 1], alignment)
    check_gguf_header(path)
    reader = gguf.GGUFReader(str(path))
    for i, (t, n) in enumerate(zip(reader.tensors, [3, 5, 16, 1])):
        assert np.array_equal(t.data, np.arange(n, dtype=np.float32) + 100 * i)


def test_a_file_without_the_last_tensors_padding_passes_and_one_byte_less_does_not(tmp_path):
    """llama.cpp maps the file and needs each tensor's bytes inside it, not the padding after the last one."""
    path = _vectors_file(tmp_path / "v.gguf", [4, 3])  # t1: 12 bytes, padded to 32
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    check_gguf_header(path)
    assert np.array_equal(gguf.GGUFReader(str(path)).tensors[1].data, np.arange(3, dtype=np.float32) + 100)
    path.write_bytes(data[:-21])
    with pytest.raises(ValueError, match=r"v\.gguf: the file is \d+ bytes, but its 2 tensors' data ends .*truncated"):
        check_gguf_header(path)


def test_an_alignment_that_disagrees_with_the_layout_is_refused(tmp_path):
    path = _vectors_file(tmp_path / "v.gguf", [3, 5], alignment=64)
    _edit(path, lambda reader: reader.fields["general.alignment"].parts[-1].__setitem__(0, 32))
    with pytest.raises(ValueError, match=r"v\.gguf: tensor 't1' has data offset 64, but the previous tensors' data "
                                         r"ends at 32 .*aligned to 32 bytes"):
        check_gguf_header(path)


@pytest.mark.parametrize("alignment", [0, 3, 48])
def test_an_alignment_that_is_not_a_power_of_two_is_refused(tmp_path, alignment):
    path = _vectors_file(tmp_path / "v.gguf", [8], alignment=64)
    _edit(path, lambda reader: reader.fields["general.alignment"].parts[-1].__setitem__(0, alignment))
    with pytest.raises(ValueError, match=rf"v\.gguf: metadata 'general\.alignment' = {alignment} is not a power of two"):
        check_gguf_header(path)


def test_an_unknown_tensor_type_is_refused_naming_the_tensor(tmp_path):
    path = _model_file(tmp_path)
    _edit(path, lambda reader: _tensor(reader, "blk.0.ffn_gate.weight").field.parts[4].__setitem__(0, 99))
    _refused(path, "'blk.0.ffn_gate.weight' has unknown ggml type 99")


def test_a_quantised_row_that_is_not_a_whole_number_of_blocks_is_refused(tmp_path):
    path = _model_file(tmp_path, "Q8_0")
    _edit(path, lambda reader: _tensor(reader, "blk.0.ffn_gate.weight").field.parts[3].__setitem__(0, 33))
    _refused(path, "'blk.0.ffn_gate.weight' has rows of 33 elements, not a multiple of its type's block of 32")


def _handmade(*kv: bytes, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, 0, len(kv)) + b"".join(kv)


def _u32_entry(key: bytes, value: int) -> bytes:
    return struct.pack("<Q", len(key)) + key + struct.pack("<II", 4, value)


@pytest.mark.parametrize("data, message", [
    (_handmade(_u32_entry(b"a.b", 1), _u32_entry(b"a.b", 2)), "metadata key 'a.b' appears twice"),
    (_handmade(_u32_entry(b"a.b", 1), version=1), "GGUF version 1 is not supported"),
    (_handmade(struct.pack("<Q", 17) + b"general.alignment" + struct.pack("<IQ", 10, 32)),
     "'general.alignment' must be a uint32"),
    (_handmade(_u32_entry(b"a.b", 1)) + b"\0" * 40, "bytes after the data section"),
])
def test_handmade_headers_are_refused_naming_the_field(tmp_path, data, message):
    path = tmp_path / "h.gguf"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"h\.gguf: ") as err:
        check_gguf_header(path)
    assert message in str(err.value)


def test_a_header_only_file_passes_with_or_without_its_padding(tmp_path):
    path = tmp_path / "h.gguf"
    data = _handmade(_u32_entry(b"a.b", 1))
    for body in (data, data + b"\0" * (-len(data) % 32)):
        path.write_bytes(body)
        check_gguf_header(path)
        assert gguf.GGUFReader(str(path)).fields["a.b"].contents() == 1


# ----------------------------------------------------------------------------------------------------------
# Fuzzing: random tensor lists the gguf writer lays out pass; a changed offset, type, dimension or alignment
# either is refused (a ValueError naming the file) or leaves every tensor reading disjoint bytes inside the file
# ----------------------------------------------------------------------------------------------------------

# example counts and deadlines from the loaded profile (conftest: "ci" by default, HYPOTHESIS_PROFILE=thorough)
_FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
_TYPES = {"F32": np.float32, "F16": np.float16, "Q8_0": None}


def _fuzz_file(folder: Path, tensors: list[tuple[str, int, int]], alignment: int | None) -> Path:
    from gguf.quants import quantize

    path = folder / f"f-{os.urandom(6).hex()}.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    rng = np.random.default_rng(len(tensors))
    for i, (kind, rows, cols) in enumerate(tensors):
        values = rng.standard_normal((rows, cols * (32 if kind == "Q8_0" else 1))).astype(np.float32)
        if kind == "Q8_0":
            q = quantize(values, gguf.GGMLQuantizationType.Q8_0)
            writer.add_tensor(f"t{i}", q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(f"t{i}", values.astype(_TYPES[kind]))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _byte_ranges_are_disjoint_and_inside(path: Path) -> None:
    """The gguf library's own view of an accepted file: tensor byte ranges in order, disjoint, inside the file."""
    reader = gguf.GGUFReader(str(path))
    ranges = sorted((int(t.data_offset), int(t.data_offset) + int(t.n_bytes)) for t in reader.tensors)
    assert all(hi <= lo for (_, hi), (lo, _) in zip(ranges, ranges[1:])), ranges
    assert all(reader.data_offset <= lo and hi <= path.stat().st_size for lo, hi in ranges)
    assert [int(t.data_offset) for t in reader.tensors] == [lo for lo, _ in ranges]  # in header order


_tensor_lists = st.lists(st.tuples(st.sampled_from(sorted(_TYPES)), st.integers(1, 3), st.integers(1, 9)),
                         min_size=1, max_size=5)


@_FUZZ
@given(tensors=_tensor_lists, alignment=st.none() | st.sampled_from([1, 2, 8, 32, 64, 128]))
def test_fuzz_files_laid_out_by_the_gguf_writer_pass(tmp_path_factory, tensors, alignment):
    path = _fuzz_file(tmp_path_factory.mktemp("gguf"), tensors, alignment)
    check_gguf_header(path)
    _byte_ranges_are_disjoint_and_inside(path)


@_FUZZ
@given(
    tensors=_tensor_lists, alignment=st.none() | st.sampled_from([8, 32, 64]),
    field=st.sampled_from(["offset", "type", "dim", "alignment"]), index=st.integers(0, 10),
    value=st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 300), st.sampled_from([0, 1, 32, 64, 2**63])),
)
def test_fuzz_a_changed_tensor_field_is_refused_or_harmless(tmp_path_factory, tensors, alignment, field, index, value):
    path = _fuzz_file(tmp_path_factory.mktemp("gguf"), tensors, alignment)

    def change(reader):
        t = reader.tensors[index % len(reader.tensors)]
        if field == "alignment":
            if "general.alignment" in reader.fields:
                reader.fields["general.alignment"].parts[-1][0] = value % 2**32
        elif field == "offset":
            t.field.parts[-1][0] = value
        elif field == "type":
            t.field.parts[4][0] = value % 2**32
        else:
            t.field.parts[3][0] = value

    _edit(path, change)
    try:
        check_gguf_header(path)
    except ValueError as err:
        assert str(err).startswith(f"{path}: "), str(err)
        return
    _byte_ranges_are_disjoint_and_inside(path)


_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF value type -> bytes
_ELEMENT = {0: (1, 4), 1: (1, 2), 8: (32, 34)}  # the ggml types drawn here -> (block, bytes per block)


@st.composite
def _kv_entry(draw) -> bytes:
    """One metadata entry: well formed, or with one length field (or the type) replaced by an arbitrary number."""
    key = draw(st.sampled_from([b"a", b"b.c", b"general.alignment", b"d"]))
    vtype = draw(st.sampled_from([*_FIXED, 8, 9]))
    payload = draw(st.binary(max_size=24))
    wrong = draw(st.none() | st.sampled_from([0, 1, 3, 13, 2**40, 2**64 - 1]))
    if key == b"general.alignment":
        vtype, payload = 4, struct.pack("<I", draw(st.sampled_from([1, 8, 32, 64, 3])))
    if vtype == 8:
        body = struct.pack("<Q", len(payload) if wrong is None else wrong) + payload
    elif vtype == 9:
        etype = draw(st.sampled_from(sorted(_FIXED)))
        count = len(payload) // _FIXED[etype]
        body = struct.pack("<IQ", etype, count if wrong is None else wrong) + payload[: count * _FIXED[etype]]
    else:
        body = payload[: _FIXED[vtype]].ljust(_FIXED[vtype], b"\0")
        if wrong is not None:
            vtype = wrong % 2**32
    return struct.pack("<Q", len(key)) + key + struct.pack("<I", vtype) + body


@st.composite
def _gguf_file(draw) -> bytes:
    """A GGUF file laid out by llama.cpp's rule, then possibly damaged: an offset, a dimension, the padding or the
    data section's length replaced by an arbitrary value."""
    version = draw(st.sampled_from([3] * 6 + [2, 1]))
    kvs = list({kv[8:11]: kv for kv in draw(st.lists(_kv_entry(), max_size=4))}.values())  # mostly distinct keys
    if kvs and draw(st.integers(0, 5)) == 0:
        kvs.append(kvs[0])  # a repeated key
    alignment = 32
    for kv in kvs:  # the alignment the file declares (a later duplicate is refused anyway)
        if kv.startswith(struct.pack("<Q", 17) + b"general.alignment" + struct.pack("<I", 4)):
            alignment = struct.unpack("<I", kv[-4:])[0]
            break
    infos, offset, sizes = [], 0, []
    for name in draw(st.lists(st.sampled_from([b"t0", b"t1", b"t2"]), max_size=3, unique=True)):
        ggml_type = draw(st.sampled_from(sorted(_ELEMENT)))
        block, block_bytes = _ELEMENT[ggml_type]
        dims = [block * draw(st.integers(1, 3)), *draw(st.lists(st.integers(1, 3), max_size=2))]
        nbytes = int(np.prod(dims)) // block * block_bytes
        declared = offset
        if draw(st.integers(0, 4)) == 0:  # damage
            what = draw(st.sampled_from(["offset", "dim"]))
            value = draw(st.sampled_from([0, 1, 32, 64, 2**63, 2**64 - 1]) | st.integers(0, 400))
            declared = value if what == "offset" else offset
            dims[draw(st.integers(0, len(dims) - 1))] = value if what == "dim" else dims[0]
        infos.append(struct.pack("<Q", len(name)) + name + struct.pack("<I", len(dims))
                     + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", ggml_type, declared))
        sizes.append(nbytes)
        offset += -(-nbytes // max(alignment, 1)) * max(alignment, 1) if alignment & (alignment - 1) == 0 else nbytes
    header = b"GGUF" + struct.pack("<IQQ", version, len(infos), len(kvs)) + b"".join(kvs) + b"".join(infos)
    pad = -len(header) % max(alignment, 1) if draw(st.integers(0, 4)) else draw(st.integers(0, 40))
    data = draw(st.binary(min_size=offset, max_size=offset)) if offset <= 2000 else b""
    cut = draw(st.sampled_from([0] * 4 + [1, 4, 40, -8]))
    return header + b"\0" * pad + (data[: len(data) - cut] if cut >= 0 else data + b"\0" * -cut)


@_FUZZ
@given(data=_gguf_file())
def test_fuzz_a_header_the_check_accepts_is_one_the_gguf_library_reads(tmp_path_factory, data):
    """Handmade files, well formed or damaged in one length field, offset or dimension: the check refuses with a
    ValueError naming the file, or the gguf library reads the file and every tensor's bytes are its own, inside
    the file."""
    path = tmp_path_factory.mktemp("gguf") / "h.gguf"
    path.write_bytes(data)
    try:
        check_gguf_header(path)
    except ValueError as err:
        event("refused: " + re.sub(r"[\d']+", "#", str(err)[len(str(path)) + 2:])[:30])
        assert str(err).startswith(f"{path}: "), str(err)
        return
    reader = gguf.GGUFReader(str(path))
    event(f"accepted with {len(reader.tensors)} tensors")
    del reader
    _byte_ranges_are_disjoint_and_inside(path)

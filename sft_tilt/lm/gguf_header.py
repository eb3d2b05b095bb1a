"""A check of a GGUF file's layout, run before the ``gguf`` library parses it: header lengths and tensor offsets.

**Lengths.** The library trusts the counts in the header: a damaged or crafted file that declares a string of 2^40
bytes or an array of 2^40 elements makes it allocate without limit (a 20 GB process was seen on a 2 MB file). This
walk reads only the header's length fields and refuses any count that cannot fit in the bytes that remain, any
unknown value or tensor type, a repeated metadata key or tensor name, and any tensor whose declared size exceeds
the file.

**Offsets.** The library also takes each tensor's data offset as written, so a file whose ``blk.0.attn_k.weight``
points at ``blk.0.attn_v.weight``'s bytes would load V's weights as K's. The walk enforces llama.cpp's rule
(``gguf_init_from_file`` in ``ggml/src/gguf.cpp``): with ``A`` the alignment (metadata ``general.alignment``, a
uint32 power of two; 32 when absent), the data section starts at the first multiple of ``A`` after the header,
and, in the header's order, tensor ``i``'s offset (relative to that start) is where the previous one ends,
padded to ``A``:

    offset_0 = 0,    offset_{i+1} = offset_i + pad_A(nbytes_i),    pad_A(n) = A * ceil(n / A)
    nbytes_i = (ne_0 / block_size) * type_size * ne_1 * ne_2 * ...    (ne_0 a multiple of the type's block)

where ``ne_0`` is the tensor's first (fastest-varying) ggml dimension and ``block_size`` / ``type_size`` are the
type's values in ``gguf.constants.GGML_QUANT_SIZES``. The data section must hold every tensor and nothing but
padding after the last one: ``start + offset_last + nbytes_last <= file size <= start + offset_last +
pad_A(nbytes_last)`` (a file without tensors ends between the header's end and ``start``).

Every refusal is a ``ValueError`` naming the file and the field or tensor.
"""

from __future__ import annotations

import math
import mmap
import struct
from pathlib import Path

__all__ = ["check_gguf_header"]

# GGUF value types -> fixed byte size (None: string / array, walked separately)
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: None, 9: None, 10: 8, 11: 8, 12: 8}
_UINT32 = 4
_MAX_DIMS = 8
_GGML_DIMS = 4  # ggml pads a tensor's shape with 1s to four dimensions
_VERSIONS = (2, 3)  # the versions the gguf library reads (version 1 used 32-bit counts)
_DEFAULT_ALIGNMENT = 32  # llama.cpp's GGUF_DEFAULT_ALIGNMENT
_ALIGNMENT_KEY = "general.alignment"


def _type_sizes() -> dict[int, tuple[int, int]]:
    """ggml tensor type -> (elements per block, bytes per block), from the gguf library's table."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(t): (int(block), int(size)) for t, (block, size) in GGML_QUANT_SIZES.items()}


def _padded(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


class _Cursor:
    def __init__(self, data, size: int, path: Path):
        self.data, self.size, self.pos, self.path = data, size, 0, path

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise ValueError(f"{self.path}: {what} needs {n} bytes at offset {self.pos}, beyond the file's {self.size}")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack("<Q", self.take(8, what))[0]

    def string(self, what: str) -> bytes:
        return self.take(self.u64(f"{what} length"), what)

    def value(self, vtype: int, what: str, depth: int = 0) -> None:
        if vtype not in _SIZES:
            raise ValueError(f"{self.path}: {what} has unknown value type {vtype}")
        if vtype == 8:
            self.string(what)
        elif vtype == 9:
            if depth > 2:
                raise ValueError(f"{self.path}: {what} nests arrays too deeply")
            etype, count = self.u32(f"{what} element type"), self.u64(f"{what} element count")
            if etype not in _SIZES:
                raise ValueError(f"{self.path}: {what} has unknown element type {etype}")
            least = _SIZES[etype] or 8  # a string or array element takes at least its 8-byte length
            if count * least > self.size - self.pos:
                raise ValueError(f"{self.path}: {what} declares {count} elements, more than the file can hold")
            if _SIZES[etype] is not None:
                self.take(count * _SIZES[etype], what)
            else:
                for i in range(count):
                    self.value(etype, f"{what}[{i}]", depth + 1)
        else:
            self.take(_SIZES[vtype], what)


def check_gguf_header(path: str | Path) -> None:
    """Raise ``ValueError`` (naming ``path`` and the field or tensor) unless the GGUF header's lengths fit in the
    file and every tensor's data lies where llama.cpp's layout rule puts it (see the module docstring)."""
    path = Path(path)
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size == 0:
            raise ValueError(f"{path}: not a GGUF file (empty)")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:  # only the header's pages are read
            _check(_Cursor(data, size, path))


def _check(cur: _Cursor) -> None:
    path, size = cur.path, cur.size
    if cur.take(4, "magic") != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file (bad magic)")
    version = cur.u32("version")
    if version not in _VERSIONS:
        raise ValueError(f"{path}: GGUF version {version} is not supported (versions {_VERSIONS}, little-endian)")
    n_tensors, n_kv = cur.u64("tensor count"), cur.u64("metadata count")
    if n_kv * 12 > size or n_tensors * 24 > size:
        raise ValueError(f"{path}: header declares {n_kv} metadata entries and {n_tensors} tensors, more than the file can hold")
    alignment = _DEFAULT_ALIGNMENT
    keys: set[str] = set()
    for i in range(n_kv):
        key = cur.string(f"metadata key {i}").decode("utf-8", errors="replace")
        if key in keys:
            raise ValueError(f"{path}: metadata key {key!r} appears twice")
        keys.add(key)
        vtype = cur.u32(f"type of {key!r}")
        if key == _ALIGNMENT_KEY:
            if vtype != _UINT32:
                raise ValueError(f"{path}: metadata {key!r} must be a uint32 (value type {_UINT32}), has type {vtype}")
            alignment = cur.u32(f"metadata {key!r}")
            if alignment == 0 or alignment & (alignment - 1):
                raise ValueError(f"{path}: metadata {key!r} = {alignment} is not a power of two")
        else:
            cur.value(vtype, f"metadata {key!r}")

    type_sizes = _type_sizes()
    tensors: list[tuple[str, int, int]] = []  # (name, declared offset, bytes of data)
    names: set[str] = set()
    for i in range(n_tensors):
        name = cur.string(f"tensor name {i}").decode("utf-8", errors="replace")
        if name in names:
            raise ValueError(f"{path}: duplicated tensor {name!r} (the name appears twice in the header)")
        names.add(name)
        n_dims = cur.u32(f"tensor {name!r} rank")
        if n_dims > _MAX_DIMS:
            raise ValueError(f"{path}: tensor {name!r} declares rank {n_dims}")
        dims = [cur.u64(f"tensor {name!r} dimension {d}") for d in range(n_dims)]
        tensor_type = cur.u32(f"tensor {name!r} type")
        offset = cur.u64(f"tensor {name!r} offset")
        elements = math.prod(dims)
        if elements > 2 * size:  # the densest GGUF types pack 2 elements per byte (4-bit)
            raise ValueError(f"{path}: tensor {name!r} declares {elements} elements, more than the file can hold")
        if tensor_type not in type_sizes:
            raise ValueError(f"{path}: tensor {name!r} has unknown ggml type {tensor_type}")
        block, block_bytes = type_sizes[tensor_type]
        row = (dims + [1] * _GGML_DIMS)[0]
        if row % block:
            raise ValueError(f"{path}: tensor {name!r} has rows of {row} elements, not a multiple of its type's "
                             f"block of {block}")
        tensors.append((name, offset, elements // block * block_bytes))

    header_end = cur.pos
    start = _padded(header_end, alignment)
    rule, expected = [], 0  # each tensor's offset by the rule
    for _, _, nbytes in tensors:
        rule.append(expected)
        expected += _padded(nbytes, alignment)
    for (name, offset, _), at in zip(tensors, rule):
        if offset != at:
            inside = [other for (other, _, nbytes), lo in zip(tensors, rule) if lo <= offset < lo + nbytes]
            where = f"; it points into tensor {inside[0]!r}'s data" if inside else ""
            raise ValueError(
                f"{path}: tensor {name!r} has data offset {offset}, but the previous tensors' data ends at {at} "
                f"(offsets must follow each other in header order, each aligned to {alignment} bytes){where}")
    if tensors:
        least, most = start + tensors[-1][1] + tensors[-1][2], start + expected
        what = f"its {len(tensors)} tensors' data ends at byte {least}"
    else:
        least, most = header_end, start
        what = f"its header ends at byte {least}"
    if size < least:
        raise ValueError(f"{path}: the file is {size} bytes, but {what} (truncated)")
    if size > most:
        raise ValueError(f"{path}: the file is {size} bytes, but {what} (padded to {most}): "
                         f"{size - most} bytes after the data section")

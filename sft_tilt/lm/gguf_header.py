"""A bounds check of a GGUF file's header, run before the ``gguf`` library parses it.

The library trusts the counts in the header: a damaged or crafted file that declares a string of 2^40 bytes or an
array of 2^40 elements makes it allocate without limit (a 20 GB process was seen on a 2 MB file). This walk reads
only the header's length fields and refuses, with a ``ValueError`` naming the file and the field, any count that
cannot fit in the bytes that remain, any unknown value type, and any tensor whose declared size exceeds the file.
"""

from __future__ import annotations

import struct
from pathlib import Path

__all__ = ["check_gguf_header"]

# GGUF value types -> fixed byte size (None: string / array, walked separately)
_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: None, 9: None, 10: 8, 11: 8, 12: 8}
_MAX_DIMS = 8


class _Cursor:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"{self.path}: {what} needs {n} bytes at offset {self.pos}, beyond the file's {len(self.data)}")
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
            if count * least > len(self.data) - self.pos:
                raise ValueError(f"{self.path}: {what} declares {count} elements, more than the file can hold")
            if _SIZES[etype] is not None:
                self.take(count * _SIZES[etype], what)
            else:
                for i in range(count):
                    self.value(etype, f"{what}[{i}]", depth + 1)
        else:
            self.take(_SIZES[vtype], what)


def check_gguf_header(path: str | Path) -> None:
    """Raise ``ValueError`` (naming ``path`` and the field) if a length in the GGUF header cannot fit in the file."""
    path = Path(path)
    data = path.read_bytes()
    cur = _Cursor(data, path)
    if cur.take(4, "magic") != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file (bad magic)")
    cur.u32("version")
    n_tensors, n_kv = cur.u64("tensor count"), cur.u64("metadata count")
    if n_kv * 12 > len(data) or n_tensors * 24 > len(data):
        raise ValueError(f"{path}: header declares {n_kv} metadata entries and {n_tensors} tensors, more than the file can hold")
    for i in range(n_kv):
        key = cur.string(f"metadata key {i}").decode("utf-8", errors="replace")
        cur.value(cur.u32(f"type of {key!r}"), f"metadata {key!r}")
    for i in range(n_tensors):
        name = cur.string(f"tensor name {i}").decode("utf-8", errors="replace")
        n_dims = cur.u32(f"tensor {name!r} rank")
        if n_dims > _MAX_DIMS:
            raise ValueError(f"{path}: tensor {name!r} declares rank {n_dims}")
        elements = 1
        for d in range(n_dims):
            elements *= cur.u64(f"tensor {name!r} dimension {d}")
        cur.u32(f"tensor {name!r} type")
        cur.u64(f"tensor {name!r} offset")
        if elements > 2 * len(data):  # the densest GGUF types pack 2 elements per byte (4-bit)
            raise ValueError(f"{path}: tensor {name!r} declares {elements} elements, more than the file can hold")

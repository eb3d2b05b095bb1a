"""A float32 matrix product computed by a native BLAS sgemm inside compiled JAX programs (XLA's FFI, CPU only).

    native_matmul(x, w) = x @ w          x [..., K], w [K, N]  ->  [..., N]

    gradients:  dx = dy @ w^T            (sgemm reading w transposed, no copy)
                dw = x^T @ dy            (sgemm reading x transposed, rows flattened over the leading axes)

Why: XLA's CPU backend computes matrix products with its own kernels, which run below the rate of the BLAS that
torch calls (``python -m sft_tilt.benchmarks.matmul_ceiling`` measures the ratio). A training step of a dense
decoder is mostly such products, so that rate caps how fast the toolkit can train on a CPU. This module calls the
OpenBLAS library that NumPy already ships (its ILP64 CBLAS entry point ``scipy_cblas_sgemm64_``): nothing new to
install. The handler is a few lines of C++ (``native_matmul.cc``, next to this file), compiled on first use with the
system's C++ compiler against the FFI headers that jaxlib ships, and cached under ``<cache>/native/``, keyed by the
source, the jaxlib version and the compiler's version. The library's SHA-256 is stored beside it and checked
before loading; a library that fails the check is rebuilt, with a message naming its path.

Unlike ``jax.pure_callback`` (tried earlier for the same purpose, and slower than XLA's own product because of
the round trip through Python), the call runs on XLA's own buffers: no Python, no copies.

The product is exact float32 BLAS arithmetic, so it agrees with ``jnp.dot`` to float32 round-off (the summation
order differs), not bit for bit. The thread count is OpenBLAS's own (``OPENBLAS_NUM_THREADS`` when NumPy is first
imported, else all cores).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["native_matmul", "native_product", "available", "library_path"]

SOURCE = Path(__file__).with_suffix(".cc")
TARGET = "sft_toolkit_native_matmul"
_FLAGS = ("-O2", "-shared", "-fPIC", "-std=c++17")
_loaded: list = []  # the CDLL handles, kept alive for the process: XLA holds pointers into them


def _openblas_file() -> Path:
    """NumPy's bundled OpenBLAS (``numpy.libs/libscipy_openblas64_*.so``)."""
    import numpy

    found = sorted((Path(numpy.__file__).resolve().parent.parent / "numpy.libs").glob("libscipy_openblas64_*.so"))
    if not found:
        raise RuntimeError("native_matmul: NumPy's bundled OpenBLAS (numpy.libs/libscipy_openblas64_*.so) was not found; "
                           "this NumPy was not installed from a PyPI wheel")
    return found[0]


def _compiler() -> str:
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError("native_matmul: no C++ compiler (g++, c++ or clang++) on PATH to build native_matmul.cc")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def library_path() -> Path:
    """The compiled handler, built if absent or if it fails its stored checksum."""
    import jax
    import jaxlib

    from sft_tilt.store import atomic_write_bytes, cache_root, content_key

    compiler = _compiler()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    key = content_key({"source": _sha256(SOURCE), "jaxlib": jaxlib.__version__, "compiler": version, "flags": _FLAGS})
    lib = cache_root() / "native" / f"native_matmul-{key[:16]}.so"
    checksum = lib.with_suffix(".sha256")
    if lib.exists():
        if checksum.exists() and checksum.read_text().strip() == _sha256(lib):
            return lib
        print(f"native_matmul: {lib} does not match its stored checksum; rebuilding it", file=sys.stderr)
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=lib.parent) as tmp:
        out = Path(tmp) / lib.name
        built = subprocess.run([compiler, *_FLAGS, "-I", jax.ffi.include_dir(), str(SOURCE), "-o", str(out)],
                               capture_output=True, text=True)
        if built.returncode != 0:
            raise RuntimeError(f"native_matmul: compiling {SOURCE} failed:\n{built.stderr[-4000:]}")
        data = out.read_bytes()
    atomic_write_bytes(lib, data)
    atomic_write_bytes(checksum, (hashlib.sha256(data).hexdigest() + "\n").encode())
    return lib


@functools.cache
def _register() -> None:
    import jax

    handler = ctypes.CDLL(str(library_path()))
    blas = ctypes.CDLL(str(_openblas_file()))
    handler.native_matmul_set_sgemm.argtypes = [ctypes.c_void_p]
    handler.native_matmul_set_sgemm(ctypes.cast(blas.scipy_cblas_sgemm64_, ctypes.c_void_p))
    _loaded.extend([handler, blas])
    jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(handler.NativeMatmul), platform="cpu")


def available() -> str | None:
    """``None`` when the native product can be used here, else the reason it cannot (no compiler, no OpenBLAS)."""
    try:
        _register()
    except (RuntimeError, OSError, AttributeError) as err:
        return str(err)
    return None


def native_product(a, b, transpose_a: bool = False, transpose_b: bool = False):
    """``op(a) @ op(b)`` for 2-D float32 ``a``, ``b``, ``op`` transposing where asked (read transposed, not copied)."""
    import jax
    import jax.numpy as jnp

    for name, x in (("a", a), ("b", b)):
        if getattr(x, "ndim", None) != 2:
            raise ValueError(f"{name}: must be a 2-D array, got shape {getattr(x, 'shape', None)}")
        if x.dtype != jnp.float32:
            raise ValueError(f"{name}: must be float32, got {x.dtype}")
    m, k = (a.shape[1], a.shape[0]) if transpose_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if transpose_b else b.shape
    if k != kb:
        raise ValueError(f"b: contracted size {kb} differs from a's {k} (a {a.shape}, b {b.shape}, "
                         f"transpose_a={transpose_a}, transpose_b={transpose_b})")
    _register()
    call = jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct((m, n), jnp.float32), vmap_method="sequential")
    return call(a, b, trans_a=bool(transpose_a), trans_b=bool(transpose_b))


def _check(x, w):
    import jax.numpy as jnp

    if getattr(w, "ndim", None) != 2:
        raise ValueError(f"w: must be a 2-D [K, N] array, got shape {getattr(w, 'shape', None)}")
    if getattr(x, "ndim", 0) < 1:
        raise ValueError(f"x: must have at least one axis, got shape {getattr(x, 'shape', None)}")
    if x.shape[-1] != w.shape[0]:
        raise ValueError(f"x: last axis {x.shape[-1]} differs from w's first axis {w.shape[0]}")
    for name, v in (("x", x), ("w", w)):
        if v.dtype != jnp.float32:
            raise ValueError(f"{name}: must be float32, got {v.dtype}")


def _forward(x, w):
    rows = x.reshape(-1, x.shape[-1])
    return native_product(rows, w).reshape(*x.shape[:-1], w.shape[1])


def _make():
    import jax

    @jax.custom_vjp
    def product(x, w):
        return _forward(x, w)

    def fwd(x, w):
        return _forward(x, w), (x, w)

    def bwd(saved, dy):
        x, w = saved
        rows, dy_rows = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
        dx = native_product(dy_rows, w, transpose_b=True).reshape(x.shape)
        dw = native_product(rows, dy_rows, transpose_a=True)
        return dx, dw

    product.defvjp(fwd, bwd)
    return product


_product = None


def native_matmul(x, w):
    """``x @ w`` for float32 ``x`` [..., K] and ``w`` [K, N], by the native sgemm, with its own gradient rule."""
    global _product
    _check(x, w)
    if _product is None:
        _product = _make()
    return _product(x, w)

"""The FFI sgemm product against NumPy's float64 product and XLA's own dot, with gradients, edges and bad input."""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from sft_tilt.lm import native_matmul as nm

pytestmark = pytest.mark.skipif(nm.available() is not None, reason=f"native product unavailable: {nm.available()}")


def _rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _close(got, want64, k):
    # float32 round-off of a k-term sum: a few ulp of the largest partial sums
    scale = np.sqrt(k) * np.max(np.abs(want64)) + 1.0
    np.testing.assert_allclose(np.asarray(got, np.float64), want64, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_every_transpose_combination_matches_numpy_in_float64(transpose_a, transpose_b):
    rng = np.random.default_rng(1)
    m, k, n = 37, 129, 23
    a = _rand(rng, *((k, m) if transpose_a else (m, k)))
    b = _rand(rng, *((n, k) if transpose_b else (k, n)))
    got = jax.jit(lambda a, b: nm.native_product(a, b, transpose_a, transpose_b))(a, b)
    a64 = a.astype(np.float64).T if transpose_a else a.astype(np.float64)
    b64 = b.astype(np.float64).T if transpose_b else b.astype(np.float64)
    assert got.shape == (m, n) and got.dtype == jnp.float32
    _close(got, a64 @ b64, k)


def test_leading_axes_are_rows_and_gradients_match_xla_and_the_formula():
    rng = np.random.default_rng(2)
    x, w, c = _rand(rng, 3, 5, 64), _rand(rng, 64, 48), _rand(rng, 3, 5, 48)

    def loss(mm):
        return lambda x, w: jnp.sum(jnp.tanh(mm(x, w)) * c)

    y = jax.jit(nm.native_matmul)(x, w)
    _close(y, x.astype(np.float64) @ w.astype(np.float64), 64)
    dx, dw = jax.jit(jax.grad(loss(nm.native_matmul), argnums=(0, 1)))(x, w)
    rx, rw = jax.grad(loss(jnp.matmul), argnums=(0, 1))(x, w)
    np.testing.assert_allclose(dx, rx, rtol=0, atol=2e-5)
    np.testing.assert_allclose(dw, rw, rtol=0, atol=2e-5)
    # the chain rule by hand, in float64: dL/dy = c (1 - tanh^2), dx = dy w^T, dw = sum over rows of x^T dy
    y64 = x.astype(np.float64) @ w.astype(np.float64)
    dy = c * (1 - np.tanh(y64) ** 2)
    np.testing.assert_allclose(dw, np.einsum("btk,btn->kn", x.astype(np.float64), dy), rtol=0, atol=5e-5)
    np.testing.assert_allclose(dx, dy @ w.astype(np.float64).T, rtol=0, atol=5e-5)


def test_empty_contraction_gives_zeros_and_empty_rows_give_an_empty_result():
    z = nm.native_product(jnp.zeros((4, 0), jnp.float32), jnp.zeros((0, 3), jnp.float32))
    assert z.shape == (4, 3) and np.all(np.asarray(z) == 0)
    assert nm.native_matmul(jnp.zeros((0, 5), jnp.float32), jnp.ones((5, 2), jnp.float32)).shape == (0, 2)


def test_under_vmap_each_member_gets_its_own_product():
    rng = np.random.default_rng(3)
    x, w = _rand(rng, 4, 6, 8), _rand(rng, 4, 8, 5)
    got = jax.vmap(nm.native_matmul)(x, w)
    _close(got, np.einsum("bik,bkn->bin", x.astype(np.float64), w.astype(np.float64)), 8)


def test_non_finite_inputs_propagate_like_numpy():
    x = np.ones((2, 3), np.float32)
    x[0, 1] = np.inf
    w = np.ones((3, 2), np.float32)
    got = np.asarray(nm.native_matmul(jnp.asarray(x), jnp.asarray(w)))
    assert np.all(np.isinf(got[0])) and np.all(got[1] == 3)


def test_bad_input_names_the_argument():
    f32 = jnp.ones((3, 4), jnp.float32)
    with pytest.raises(ValueError, match="w: must be a 2-D"):
        nm.native_matmul(f32, jnp.ones((4,), jnp.float32))
    with pytest.raises(ValueError, match="x: last axis 4 differs"):
        nm.native_matmul(f32, jnp.ones((5, 2), jnp.float32))
    with pytest.raises(ValueError, match="w: must be float32"):
        nm.native_matmul(f32, jnp.ones((4, 2), jnp.int32))
    with pytest.raises(ValueError, match="b: contracted size"):
        nm.native_product(f32, f32)
    with pytest.raises(ValueError, match="a: must be a 2-D"):
        nm.native_product(jnp.ones((2, 3, 4), jnp.float32), f32)


def test_a_library_failing_its_checksum_is_rebuilt_with_a_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    lib = nm.library_path()
    good = lib.read_bytes()
    assert lib.is_relative_to(tmp_path) and lib.with_suffix(".sha256").read_text().strip() == __import__("hashlib").sha256(good).hexdigest()
    assert nm.library_path() == lib and "rebuilding" not in capsys.readouterr().err  # a valid entry is reused
    lib.write_bytes(good[:-100] + b"\0" * 100)
    assert nm.library_path() == lib
    assert f"{lib} does not match its stored checksum" in capsys.readouterr().err
    assert lib.read_bytes() == good  # the same compiler and source rebuild the same bytes


def test_without_a_compiler_the_reason_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(nm.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        nm.library_path()

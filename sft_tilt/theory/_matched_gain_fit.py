"""Which shape does measured matched-gain degradation follow: ``k1 Δ* + k2 Δ* λ`` or ``k1 Δ* + k2 Δ*² λ``?

The paper's Theorem 3.1 bounds the general degradation at matched domain gain by ``k1 Δ* + k2 Δ*² λ``; the
toolkit's own multi-step bound (``sft_tilt.theory.matched_gain_bound``) is linear in ``Δ*``, ``k1 Δ* + k2 Δ* λ``, unless the
gain rate decays or the leakage grows. :func:`fit_matched_gain_shapes` fits both shapes to measured cells
``(Δ*, λ, D)`` by least squares so experiments on synthetic worlds and on a real LM can tell them apart, with one
implementation for both.
"""

from __future__ import annotations

import numpy as np
from jax.typing import ArrayLike

__all__ = ["fit_matched_gain_shapes"]


def fit_matched_gain_shapes(target_gain: ArrayLike, step_size: ArrayLike, degradation: ArrayLike) -> dict:
    """Least-squares fits of ``D = k1 Δ* + k2 Δ*^p λ`` for ``p = 1`` ("linear") and ``p = 2`` ("quadratic").

    Args:
        target_gain: ``[n]`` matched domain gains ``Δ*`` of the cells (nats/token).
        step_size: ``[n]`` step sizes ``λ`` (or learning rates) of the cells.
        degradation: ``[n]`` measured general degradation ``D`` at matched gain (nats/token).

    Returns:
        ``{"linear": fit, "quadratic": fit, "better": "linear" | "quadratic"}`` where each ``fit`` has ``k1``, ``k2``,
        ``rss`` (residual sum of squares), ``rmse``, ``rel_rms`` (RMS residual / RMS of ``D``), ``r2`` (against the
        mean of ``D``; NaN if ``D`` is constant), and ``k2_free_intercepts`` / ``rss_free_intercepts``: the refit with
        a free intercept per distinct ``Δ*`` (``D = a(Δ*) + k2 Δ*^p λ``), which compares only the ``λ``-dependence of
        the two shapes. ``better`` is the shape with the smaller ``rss``.

    References:
        Lin et al. 2026, Theorem 3.1 (Sec. 3.4); the toolkit's derivation ``sft_tilt.theory.derivations.matched_gain``.
    """
    arrays = {}
    for name, x in (("target_gain", target_gain), ("step_size", step_size), ("degradation", degradation)):
        try:
            a = np.asarray(x, dtype=float).ravel()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: must be a real array ({exc})") from None
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: must be finite")
        arrays[name] = a
    delta, lam, D = arrays["target_gain"], arrays["step_size"], arrays["degradation"]
    if not (delta.shape == lam.shape == D.shape):
        raise ValueError(f"step_size: target_gain, step_size and degradation need equal lengths, got "
                         f"{delta.size}, {lam.size}, {D.size}")
    if delta.size < 3:
        raise ValueError(f"target_gain: at least 3 cells are needed to fit two coefficients, got {delta.size}")
    levels, inverse = np.unique(delta, return_inverse=True)
    onehot = (inverse[:, None] == np.arange(levels.size)[None, :]).astype(float)
    sst = float(np.sum((D - D.mean()) ** 2))
    out: dict = {}
    for name, p in (("linear", 1), ("quadratic", 2)):
        A = np.stack([delta, delta**p * lam], axis=1)
        coef, *_ = np.linalg.lstsq(A, D, rcond=None)
        res = D - A @ coef
        rss = float(res @ res)
        Af = np.concatenate([onehot, (delta**p * lam)[:, None]], axis=1)
        cf, *_ = np.linalg.lstsq(Af, D, rcond=None)
        rf = D - Af @ cf
        rms_d = float(np.sqrt(np.mean(D**2)))
        out[name] = {
            "k1": float(coef[0]), "k2": float(coef[1]), "rss": rss, "rmse": float(np.sqrt(rss / D.size)),
            "rel_rms": float(np.sqrt(np.mean(res**2)) / rms_d) if rms_d > 0 else float("nan"),
            "r2": float(1.0 - rss / sst) if sst > 0 else float("nan"),
            "k2_free_intercepts": float(cf[-1]), "rss_free_intercepts": float(rf @ rf),
        }
    out["better"] = "linear" if out["linear"]["rss"] <= out["quadratic"]["rss"] else "quadratic"
    return out

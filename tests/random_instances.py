"""Random test instances shared by the theory tests (independent NumPy, not the code under test)."""

import numpy as np
from scipy.special import logsumexp


def random_simplex(rng, shape, scale=2.0, zero_frac=0.0):
    """Random distributions on the last axis: softmax of Gaussian logits with std ``scale``.

    ``zero_frac`` of the outcomes (never outcome 0) get logit -inf, i.e. probability exactly 0.
    """
    z = scale * rng.standard_normal(shape)
    if zero_frac:
        zeros = rng.random(shape) < zero_frac
        zeros[..., 0] = False
        z = np.where(zeros, -np.inf, z)
    return np.exp(z - logsumexp(z, axis=-1, keepdims=True))

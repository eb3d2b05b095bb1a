"""Machine-checked theory of one fine-tuning step as a log-space (exponential) tilt.

The numerics of Lin et al., "SFT Doesn't Always Hurt General Capabilities", ICLR 2026 (every public
docstring names its section in a ``References:`` line, or the toolkit derivation it comes from).
Derivations live in SymPy (``python -m sft_tilt.theory`` prints them with their verification status);
every result is exported as a jit- and vmap-safe ``jax.numpy`` function with typed signatures
(``jax.typing.ArrayLike`` in, ``jax.Array`` out). Arrays carry outcomes on the last axis and any batch
shape in front. Bad input raises ``ValueError`` whose message starts with the argument's name.

Float64 policy (details in :mod:`sft_tilt.theory._precision`): the bound and identity formulas need float64.

* With ``JAX_ENABLE_X64=1`` (or ``jax_enable_x64`` on) they run unchanged.
* In JAX's default float32 mode, an eager call computes in float64 inside ``jax.enable_x64(True)`` (thread-local,
  restored on return: the caller's global setting never changes) and returns float64 arrays; a call traced by
  the caller's ``jit``/``vmap``/``grad`` raises ``RuntimeError`` asking for ``JAX_ENABLE_X64=1``, because a traced
  computation cannot change precision safely.
* The TALR weights and ``hard_token_mass`` are training-time quantities and follow their inputs' dtype.

:func:`ensure_float64` (turn float64 on for the whole process) remains the entry-point guard of programs.
"""

from sft_tilt.theory import _adversarial, _bounds, _code_length, _hard_tokens, _leakage, _matched_gain, _matched_gain_fit, _precision
from sft_tilt.theory import _single_step, _talr, _tilt

# Each module sets __all__; the wildcard imports re-export its public names. The input validators
# (sft_tilt.theory._validate: check_*, is_concrete, PROBABILITY_TOLERANCE) are internal and deliberately not re-exported.
from sft_tilt.theory._precision import *  # noqa: F401,F403,E402
from sft_tilt.theory._tilt import *  # noqa: F401,F403,E402
from sft_tilt.theory._code_length import *  # noqa: F401,F403,E402
from sft_tilt.theory._single_step import *  # noqa: F401,F403,E402
from sft_tilt.theory._bounds import *  # noqa: F401,F403,E402
from sft_tilt.theory._leakage import *  # noqa: F401,F403,E402
from sft_tilt.theory._talr import *  # noqa: F401,F403,E402
from sft_tilt.theory._adversarial import *  # noqa: F401,F403,E402
from sft_tilt.theory._hard_tokens import *  # noqa: F401,F403,E402
from sft_tilt.theory._matched_gain import *  # noqa: F401,F403,E402
from sft_tilt.theory._matched_gain_fit import *  # noqa: F401,F403,E402

__all__ = [
    name
    for module in (
        _precision,
        _tilt,
        _code_length,
        _single_step,
        _bounds,
        _leakage,
        _talr,
        _adversarial,
        _hard_tokens,
        _matched_gain,
        _matched_gain_fit,
    )
    for name in module.__all__
]

"""Machine-checked theory of one fine-tuning step as a log-space (exponential) tilt.

Derivations live in SymPy (``python -m theory`` prints them with their verification status);
every result is exported as a jit- and vmap-safe ``jax.numpy`` function. Arrays carry outcomes on
the last axis and any batch shape in front.
"""

from theory import _adversarial, _bounds, _code_length, _hard_tokens, _leakage, _matched_gain, _precision
from theory import _single_step, _talr, _tilt

# Each module sets __all__; the wildcard imports re-export its public names. The input validators
# (theory._validate: check_*, is_concrete, PROBABILITY_TOLERANCE) are internal and deliberately not re-exported.
from theory._precision import *  # noqa: F401,F403,E402
from theory._tilt import *  # noqa: F401,F403,E402
from theory._code_length import *  # noqa: F401,F403,E402
from theory._single_step import *  # noqa: F401,F403,E402
from theory._bounds import *  # noqa: F401,F403,E402
from theory._leakage import *  # noqa: F401,F403,E402
from theory._talr import *  # noqa: F401,F403,E402
from theory._adversarial import *  # noqa: F401,F403,E402
from theory._hard_tokens import *  # noqa: F401,F403,E402
from theory._matched_gain import *  # noqa: F401,F403,E402

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
    )
    for name in module.__all__
]

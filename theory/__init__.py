"""Machine-checked theory of one fine-tuning step as a log-space (exponential) tilt.

Derivations live in SymPy (``python -m theory`` prints them with their verification status);
every result is exported as a jit- and vmap-safe ``jax.numpy`` function. Arrays carry outcomes on
the last axis and any batch shape in front.
"""

# Each module sets __all__; the wildcard imports re-export its public names.
from theory._validate import *  # noqa: F401,F403
from theory._precision import *  # noqa: F401,F403
from theory._tilt import *  # noqa: F401,F403
from theory._code_length import *  # noqa: F401,F403
from theory._single_step import *  # noqa: F401,F403
from theory._bounds import *  # noqa: F401,F403
from theory._leakage import *  # noqa: F401,F403
from theory._talr import *  # noqa: F401,F403
from theory._adversarial import *  # noqa: F401,F403
from theory._hard_tokens import *  # noqa: F401,F403
from theory._matched_gain import *  # noqa: F401,F403

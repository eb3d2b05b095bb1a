"""Machine-checked derivations of the tilt theory (issue items 1-9); ``python -m theory`` prints them.

One module per result; each registers ``derive() -> Result`` in :mod:`theory.derivations.registry`.
"""

from theory.derivations.registry import DERIVATIONS, Check, Result, derive, derive_all  # noqa: F401
# importing a result module registers it
from theory.derivations import code_length, single_step, expansion, jensen, hoeffding, bennett, leakage  # noqa: F401,E402
from theory.derivations import matched_gain, hard_tokens, talr  # noqa: F401,E402

__all__ = ["DERIVATIONS", "Check", "Result", "derive", "derive_all"]

"""Machine-checked derivations of the tilt theory (issue items 1-9); ``python -m theory`` prints them.

One module per result; each registers ``derive() -> Result`` in :mod:`theory.derivations.registry`.
"""

from theory.derivations.registry import DERIVATIONS, Check, Result, derive, derive_all  # noqa: F401
from theory.derivations import code_length, single_step, expansion  # noqa: F401,E402  (register items 1-4)

__all__ = ["DERIVATIONS", "Check", "Result", "derive", "derive_all"]

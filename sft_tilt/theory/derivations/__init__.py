"""Machine-checked derivations of the tilt theory; ``python -m sft_tilt.theory`` prints them.

One module per result; each registers ``derive() -> Result`` in :mod:`sft_tilt.theory.derivations.registry` under the
number of the result it derives:

1. code length as a KL difference and its token-tree form (``code_length``);
2. the single-step change ``dL(P) = -lam E_P s + K_q(lam)`` (``single_step``);
3. the trade-off identity ``D + G = lam (E_P2 s - E_P1 s)`` (``single_step``);
4. the third-order expansion with cumulant coefficients (``expansion``);
5. single-step bounds: Jensen (lower), Hoeffding and Bennett/Bernstein (upper) (``jensen``, ``hoeffding``,
   ``bennett``);
6. the leakage form ``D = rho G + (1 + rho) V`` (``leakage``);
7. the multi-step matched-gain bound (``matched_gain``);
8. hard tokens and the safe step size (``hard_tokens``);
9. TALR's KKT solution, its limits, and that it never increases hard-token mass (``talr``).
"""

from sft_tilt.theory.derivations.registry import DERIVATIONS, Check, Result, derive, derive_all  # noqa: F401
# importing a result module registers it
from sft_tilt.theory.derivations import code_length, single_step, expansion, jensen, hoeffding, bennett, leakage  # noqa: F401,E402
from sft_tilt.theory.derivations import matched_gain, hard_tokens, talr  # noqa: F401,E402

__all__ = ["DERIVATIONS", "Check", "Result", "derive", "derive_all"]

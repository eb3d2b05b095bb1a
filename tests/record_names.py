"""The names the records use for their quantities: one name per quantity, checked on every record a test has at hand.

The learning rate is ``learning_rate`` (``learning_rates`` for several), the fall of the domain loss ``domain_gain``,
the rise of the general loss ``general_change``. A key is split at ``_`` into words after the learning rate's own name
and the theory's gain rate (``gain_rate``, the domain gain per unit step: another quantity) are taken out; a word in :data:`FORBIDDEN_WORDS` is another name for one of those quantities, and a key that is only
``gain`` leaves open which gain (``domain_gain``; a matched or target gain says so: ``target_gain``).
"""

from __future__ import annotations

import re

import numpy as np

FORBIDDEN_WORDS = frozenset({"lr", "lrs", "lam", "lams", "lambda", "eta", "rate", "rates", "peak", "degradation"})
FORBIDDEN_KEYS = frozenset({"gain"})


def misnamed(key: str) -> bool:
    """Whether the record key ``key`` names a quantity other than by its one name."""
    if key in FORBIDDEN_KEYS:
        return True
    words = re.sub(r"learning_rates?|gain_rates?", "", key).split("_")
    return any(w in FORBIDDEN_WORDS for w in words)


def misnamed_keys(record, where: str = "") -> list[str]:
    """The paths of the misnamed string keys anywhere in ``record`` (dicts and lists nested; arrays are leaves)."""
    if isinstance(record, dict):
        out = []
        for k, v in record.items():
            path = f"{where}.{k}"
            if isinstance(k, str) and misnamed(k):
                out.append(path)
            out += misnamed_keys(v, path)
        return out
    if isinstance(record, (list, tuple)) and not isinstance(record, np.ndarray):
        return [p for i, v in enumerate(record) for p in misnamed_keys(v, f"{where}[{i}]")]
    return []

"""What the exact claims (1, 2, 6, 8, 9) read: the machine-checked derivations of :mod:`sft_tilt.theory.derivations`,
and float64 evidence the derivations do not provide, computed from fixed seeds and cached on disk.

:func:`derivation_summary` turns a derivation result into plain measurements (verified or not, how many
symbolic and numeric checks, which failed, the numeric checks' details) so the decision rules stay pure.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["SETTING", "GROUP", "COMMAND", "derivation_summary", "derivations_verified", "describe_derivations", "cached_evidence",
           "softmax_rows"]

SETTING = "exact (float64 numerics)"
GROUP = "theory"
COMMAND = "python -m sft_tilt.figures all --group theory"


def derivation_summary(name: str) -> dict:
    """``{"name", "verified", "symbolic", "numeric", "failed": [descriptions], "numeric_details": [details]}``
    of ``sft_tilt.theory.derivations.derive(name)`` (cached by the derivation's code)."""
    from sft_tilt.theory.derivations import derive

    r = derive(name)
    return {
        "name": name,
        "verified": bool(r.verified),
        "symbolic": sum(c.kind == "symbolic" for c in r.checks),
        "numeric": sum(c.kind == "numeric" for c in r.checks),
        "failed": [c.description for c in r.checks if not c.passed],
        "numeric_details": [c.detail for c in r.checks if c.kind == "numeric"],
    }


def derivations_verified(derivations: dict[str, dict]) -> tuple[bool, list[str]]:
    """Whether every derivation is verified, and the ones that are not (with their failed checks)."""
    bad = [f"{d['name']} ({'; '.join(d['failed']) or 'no symbolic check'})" for d in derivations.values() if not d["verified"]]
    return not bad and bool(derivations), bad


def describe_derivations(derivations: dict[str, dict]) -> str:
    parts = []
    for d in derivations.values():
        status = "verified" if d["verified"] else "NOT verified"
        details = "; ".join(d["numeric_details"])
        parts.append(f"{d['name']} {status} ({d['symbolic']} symbolic, {d['numeric']} float64 checks{': ' + details if details else ''})")
    return "Derivations (python -m sft_tilt.theory): " + " | ".join(parts) + "."


def cached_evidence(module: str, name: str, config: dict, compute: Callable[[], dict]) -> dict:
    """``compute()`` cached under the check ``name``, its ``config``, the code key of ``module`` and the library
    versions (a change to the check's code recomputes it)."""
    from sft_tilt.store import cached, code_key, library_versions

    material = {"check": name, "config": config, "source": code_key(module), "libs": library_versions()}
    return cached("claim_evidence", material, compute)


def softmax_rows(z):
    from scipy.special import logsumexp

    return np.exp(z - logsumexp(z, axis=-1, keepdims=True))

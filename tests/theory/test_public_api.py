"""The public namespace of theory: what it exports, and what it keeps internal."""

import inspect
import types
import typing

import jax
from jax.typing import ArrayLike

import sft_tilt.theory
import sft_tilt.theory._validate as validate

INTERNAL = ("PROBABILITY_TOLERANCE", "is_concrete")


def test_validators_are_not_public():
    public = set(sft_tilt.theory.__all__) | {n for n in dir(sft_tilt.theory) if not n.startswith("_")}
    assert not [n for n in public if n.startswith("check_")]
    assert not [n for n in INTERNAL if n in public]
    # they stay importable from the private module
    assert callable(validate.check_real) and validate.PROBABILITY_TOLERANCE == 1e-6


def test_all_lists_exactly_the_public_names():
    import sft_tilt.theory.derivations  # noqa: F401  (a subpackage becomes an attribute once imported; it is not an export)

    public = {n for n in dir(sft_tilt.theory) if not n.startswith("_") and not isinstance(getattr(sft_tilt.theory, n), types.ModuleType)}
    assert set(sft_tilt.theory.__all__) == public
    assert len(sft_tilt.theory.__all__) == len(set(sft_tilt.theory.__all__))


def public_functions():
    return {n: getattr(sft_tilt.theory, n) for n in sft_tilt.theory.__all__ if inspect.isfunction(getattr(sft_tilt.theory, n))}


def test_public_functions_are_fully_typed():
    functions = public_functions()
    assert len(functions) > 30
    for name, fn in functions.items():
        hints = typing.get_type_hints(fn)  # resolves every annotation (from __future__ import annotations)
        params = inspect.signature(fn).parameters
        missing = [p for p in params if p not in hints]
        assert not missing, f"{name}: parameters without a type: {missing}"
        assert "return" in hints, f"{name}: no return type"
    # array inputs are jax.typing.ArrayLike, as in optax
    assert typing.get_type_hints(sft_tilt.theory.tilt)["q"] is ArrayLike
    assert typing.get_type_hints(sft_tilt.theory.tilt)["return"] is jax.Array
    assert typing.get_type_hints(sft_tilt.theory.talr_weights)["mask"] == ArrayLike | None


def test_every_public_callable_cites_its_source():
    callables = {n: getattr(sft_tilt.theory, n) for n in sft_tilt.theory.__all__ if callable(getattr(sft_tilt.theory, n))}
    assert len(callables) > 40
    for name, obj in callables.items():
        doc = inspect.getdoc(obj) or ""
        assert "References:" in doc, f"{name}: docstring has no References: line"
        ref = doc[doc.index("References:"):]
        assert "Sec." in ref or "sft_tilt.theory.derivations." in ref or "sft_tilt.theory._precision" in ref, f"{name}: {ref!r}"
        for forbidden in ("shared" + "/", "issue", "item "):
            assert forbidden not in doc.lower(), f"{name}: docstring mentions {forbidden!r}"

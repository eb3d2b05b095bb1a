"""The public namespace of theory: what it exports, and what it keeps internal."""

import theory
import theory._validate as validate

INTERNAL = ("PROBABILITY_TOLERANCE", "is_concrete")


def test_validators_are_not_public():
    public = set(theory.__all__) | {n for n in dir(theory) if not n.startswith("_")}
    assert not [n for n in public if n.startswith("check_")]
    assert not [n for n in INTERNAL if n in public]
    # they stay importable from the private module
    assert callable(validate.check_real) and validate.PROBABILITY_TOLERANCE == 1e-6


def test_all_lists_exactly_the_public_names():
    public = {n for n in dir(theory) if not n.startswith("_")}
    assert set(theory.__all__) == public
    assert len(theory.__all__) == len(set(theory.__all__))

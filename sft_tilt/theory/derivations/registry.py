"""Registry of derived results: statement, assumptions, and the machine checks that verify them.

A result is registered with :func:`derivation` on a function ``derive() -> Result``. Each result carries

* ``statement``: SymPy expression(s) (equalities/inequalities) and a plain-text form;
* ``assumptions``: an explicit list, in words;
* ``checks``: :class:`Check` records, each ``symbolic`` (SymPy proves it: a difference simplifies to 0, a
  series coefficient equals a cumulant, a KKT system is solved, a limit is taken) or ``numeric`` (float64
  cross-check on random instances against the lambdified expression, independent NumPy, and the
  ``theory`` jax export where one exists).

``verified`` is true only if there is at least one symbolic check and every check passed. A check that
raises is recorded as failed (with the exception), never hidden.

Results are cached on disk (:func:`sft_tilt.store.cached`, namespace ``derivations``) keyed by the result's name, the
code key of its module (its source and every repository module it imports: this registry and the ``theory``
exports its numeric checks call) and the library versions, so a stale entry is never found. A cached result
holds its statement as rendered text (SymPy text, LaTeX, pretty form), never as a pickled or evaluated
expression, and its checksum is verified on every read: a damaged or edited entry is recomputed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import sympy as sp

from sft_tilt.store import cached, code_key, library_versions

__all__ = [
    "Check",
    "Result",
    "Derivation",
    "DERIVATIONS",
    "derivation",
    "derive",
    "derive_all",
    "symbolic_zero",
    "symbolic_check",
    "numeric_check",
    "nonnegative_rational",
    "max_abs_diff",
]

KINDS = ("symbolic", "numeric")


@dataclass(frozen=True)
class Check:
    """One machine check: what it establishes, how (``symbolic``/``numeric``), whether it passed, and details."""

    description: str
    kind: str
    passed: bool
    detail: str = ""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.passed, bool):
            raise ValueError(f"passed: must be a bool, got {type(self.passed).__name__}")


@dataclass(frozen=True)
class Result:
    """A derived result with its machine verification."""

    name: str
    number: int
    title: str
    statement: tuple  # SymPy relationals / expressions (RenderedStatement when read from the cache)
    text: str  # plain-text statement
    assumptions: tuple[str, ...]
    checks: tuple[Check, ...]
    seconds: float = 0.0

    def __post_init__(self):
        if not self.assumptions:
            raise ValueError(f"assumptions: result {self.name!r} must state its assumptions")
        if not isinstance(self.statement, tuple) or not self.statement:
            raise ValueError(f"statement: result {self.name!r} needs at least one SymPy expression")

    @property
    def verified(self) -> bool:
        return any(c.kind == "symbolic" for c in self.checks) and all(c.passed for c in self.checks)

    def latex(self) -> str:
        return r" \\ ".join(_render(s).latex for s in self.statement)

    def pretty(self) -> str:
        return "\n".join(_render(s).pretty for s in self.statement)

    def as_json(self) -> dict:
        return {
            "name": self.name,
            "number": self.number,
            "title": self.title,
            "statement": self.text,
            "sympy": [_render(s).sstr for s in self.statement],
            "latex": self.latex(),
            "assumptions": list(self.assumptions),
            "checks": [
                {"description": c.description, "kind": c.kind, "passed": c.passed, "detail": c.detail} for c in self.checks
            ],
            "verified": self.verified,
        }


@dataclass(frozen=True)
class RenderedStatement:
    """A statement as text: what a cached result keeps instead of the SymPy expression."""

    sstr: str
    latex: str
    pretty: str


def _render(expr) -> RenderedStatement:
    if isinstance(expr, RenderedStatement):
        return expr
    return RenderedStatement(sp.sstr(expr), sp.latex(expr), sp.pretty(expr, use_unicode=True))


def _result_tree(r: Result) -> dict:
    return {
        "name": r.name, "number": r.number, "title": r.title, "text": r.text, "seconds": r.seconds,
        "statement": [dict(vars(_render(s))) for s in r.statement],
        "assumptions": list(r.assumptions),
        "checks": [{"description": c.description, "kind": c.kind, "passed": c.passed, "detail": c.detail} for c in r.checks],
    }


def _result_from_tree(t: dict) -> Result:
    return Result(
        name=t["name"], number=t["number"], title=t["title"], text=t["text"], seconds=t["seconds"],
        statement=tuple(RenderedStatement(**s) for s in t["statement"]),
        assumptions=tuple(t["assumptions"]),
        checks=tuple(Check(**c) for c in t["checks"]),
    )


@dataclass(frozen=True)
class Derivation:
    name: str
    number: int
    module: str
    derive: Callable[[], Result]


DERIVATIONS: dict[str, Derivation] = {}


def derivation(name: str, number: int) -> Callable:
    """Register ``derive() -> Result`` under ``name`` as result ``number`` (1-9) of the list in
    :mod:`sft_tilt.theory.derivations`."""
    if not 1 <= number <= 9:
        raise ValueError(f"number: must be in 1..9, got {number}")

    def register(fn: Callable[[], Result]) -> Callable[[], Result]:
        if name in DERIVATIONS and DERIVATIONS[name].module != fn.__module__:
            raise ValueError(f"name: {name!r} already registered by {DERIVATIONS[name].module}")
        DERIVATIONS[name] = Derivation(name=name, number=number, module=fn.__module__, derive=fn)
        return fn

    return register


def _run(d: Derivation) -> Result:
    start = time.perf_counter()
    try:
        res = d.derive()
    except Exception as exc:  # a derivation that crashes is reported as not verified, not hidden
        res = Result(
            name=d.name,
            number=d.number,
            title=d.name,
            statement=(sp.Symbol("derivation_failed"),),
            text=f"derivation raised {type(exc).__name__}: {exc}",
            assumptions=("(derivation crashed)",),
            checks=(Check("derivation ran", "symbolic", False, f"{type(exc).__name__}: {exc}"),),
        )
    return Result(**{**res.__dict__, "seconds": time.perf_counter() - start})


def _key_material(d: Derivation) -> dict:
    return {"name": d.name, "code": code_key(d.module), "libraries": library_versions()}


def derive(name: str, *, use_cache: bool = True) -> Result:
    """The result registered as ``name`` (from the disk cache when fresh, else recomputed)."""
    if name not in DERIVATIONS:
        raise ValueError(f"name: no derivation {name!r}; known: {sorted(DERIVATIONS)}")
    d = DERIVATIONS[name]
    if not use_cache:
        return _run(d)
    return _result_from_tree(cached("derivations", _key_material(d), lambda: _result_tree(_run(d))))


def derive_all(*, use_cache: bool = True, progress: bool = False) -> list[Result]:
    """Every registered result, ordered by number then registration order."""
    order = sorted(DERIVATIONS.values(), key=lambda d: d.number)
    iterator: Iterable = order
    if progress:
        from tqdm import tqdm

        iterator = tqdm(order, desc="derivations", unit="result", leave=False)
    return [derive(d.name, use_cache=use_cache) for d in iterator]


# ---------------------------------------------------------------- check helpers
def _nonzero_at_a_point(expr) -> bool:
    """Fast refutation: True if ``expr`` is certainly non-zero at one point of the domain.

    Free symbols get distinct values in ``(0, 1/(2k))`` (``k`` symbols), so complements such as
    ``1 - q1 - q2`` stay positive and logarithms real; evaluated with 30 digits. A non-zero value there
    proves the expression is not identically 0; anything else (zero, complex, failure) proves nothing.
    """
    syms = sorted(expr.free_symbols, key=lambda x: x.name)
    k = max(len(syms), 1)
    point = {x: sp.Rational(i + 1, 2 * k * (k + 1)) + sp.Rational(1, 97 * (i + 3)) for i, x in enumerate(syms)}
    try:
        val = sp.N(expr.subs(point), 30)
        return bool(val.is_real and abs(val) > 1e-12)
    except Exception:  # noqa: BLE001 - no refutation possible here
        return False


def _zero(expr) -> bool:
    expr = sp.sympify(expr)
    if _nonzero_at_a_point(expr):
        return False
    for attempt in (sp.expand, sp.simplify, lambda e: sp.simplify(sp.expand_log(sp.expand(e), force=True))):
        try:
            if attempt(expr) == 0:
                return True
        except Exception:  # noqa: BLE001 - try the next normal form
            continue
    return False


def symbolic_zero(description: str, expr) -> Check:
    """Symbolic check that ``expr`` simplifies to exactly 0."""
    try:
        ok = _zero(expr)
        detail = "simplifies to 0" if ok else f"does not simplify to 0: {sp.sstr(expr)[:300]}"
    except Exception as exc:  # noqa: BLE001
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return Check(description, "symbolic", bool(ok), detail)


def symbolic_check(description: str, predicate: Callable[[], bool], detail: str = "") -> Check:
    """Symbolic check given by a predicate computed with SymPy (exceptions count as failure)."""
    try:
        ok = bool(predicate())
    except Exception as exc:  # noqa: BLE001
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return Check(description, "symbolic", ok, detail)


def numeric_check(description: str, compute: Callable[[], tuple[bool, str]]) -> Check:
    """Numeric check: ``compute()`` returns ``(passed, detail)``; exceptions count as failure."""
    try:
        ok, detail = compute()
    except Exception as exc:  # noqa: BLE001
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return Check(description, "numeric", bool(ok), detail)


def nonnegative_rational(expr, positive_symbols) -> bool:
    """Sufficient test that ``expr >= 0`` for positive symbols: numerator and denominator are polynomials
    in them whose coefficients are all >= 0 (numerator not identically 0 is not required)."""
    num, den = sp.fraction(sp.together(sp.expand(expr)))
    for part in (num, den):
        poly = sp.Poly(sp.expand(part), *positive_symbols)
        for coeff in poly.coeffs():
            if not (sp.nsimplify(coeff).is_nonnegative):
                return False
    return not sp.expand(den) == 0


def max_abs_diff(a, b) -> float:
    """``max |a - b|`` in float64 (for check details)."""
    return float(np.max(np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))))


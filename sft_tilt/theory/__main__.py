"""Command line: ``python -m sft_tilt.theory [--latex | --json] [--no-cache] [NAME...]``.

Prints every derived result of :mod:`sft_tilt.theory.derivations` (statement, assumptions, machine checks and
whether it is verified). Exit status 1 if any printed result is not verified. Results come from the
disk cache when their source and library versions are unchanged, so a second run is fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("JAX_ENABLE_X64", "1")

import jax  # noqa: E402

# ``python -m sft_tilt.theory`` imports the package (and JAX) before this file runs, so set the flag explicitly too.
jax.config.update("jax_enable_x64", True)


def _status(ok: bool) -> str:
    return "VERIFIED" if ok else "NOT VERIFIED"


def _print_pretty(results, latex: bool) -> None:
    for r in results:
        print("=" * 100)
        print(f"[{_status(r.verified)}] result {r.number}: {r.name} - {r.title}")
        print("-" * 100)
        print(r.latex() if latex else r.pretty())
        print(f"\n  {r.text}")
        print("  assumptions:")
        for a in r.assumptions:
            print(f"    - {a}")
        print("  machine checks:")
        for c in r.checks:
            mark = "ok  " if c.passed else "FAIL"
            print(f"    [{mark}] ({c.kind}) {c.description}")
            if c.detail and (c.kind == "numeric" or not c.passed):
                print(f"           {c.detail}")
    n_ok = sum(r.verified for r in results)
    print("=" * 100)
    print(f"{n_ok}/{len(results)} results verified")


def main(argv: list[str] | None = None) -> int:
    from sft_tilt.theory.derivations import DERIVATIONS, derive

    parser = argparse.ArgumentParser(prog="python -m sft_tilt.theory", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"results to show (default: all): {', '.join(DERIVATIONS)}")
    fmt = parser.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="statements as LaTeX")
    fmt.add_argument("--json", action="store_true", help="JSON list of {name, statement, assumptions, verified, ...}")
    parser.add_argument("--no-cache", action="store_true", help="recompute every result (ignore the disk cache)")
    args = parser.parse_args(argv)

    if not jax.numpy.asarray(1.0).dtype == jax.numpy.float64:
        print("float64 is not in effect; refusing to run the numeric checks", file=sys.stderr)
        return 2
    unknown = [n for n in args.names if n not in DERIVATIONS]
    if unknown:
        parser.error(f"unknown result(s) {unknown}; known: {list(DERIVATIONS)}")
    names = args.names or sorted(DERIVATIONS, key=lambda n: DERIVATIONS[n].number)

    start = time.perf_counter()
    from tqdm import tqdm

    results = [derive(n, use_cache=not args.no_cache) for n in tqdm(names, desc="theory", unit="result", leave=False, file=sys.stderr)]
    if args.json:
        json.dump([r.as_json() for r in results], sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        _print_pretty(results, latex=args.latex)
        print(f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0 if all(r.verified for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

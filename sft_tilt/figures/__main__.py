"""Command line: ``python -m sft_tilt.figures --list | all [--group GROUP] | NAME...``.

``all`` draws every figure and rewrites ``paper_checks.md`` (and the verdicts it is rendered from,
``paper_checks.json``) from every claim check; ``all --group G`` draws the figures of group G and runs only the
checks and measured tables of that group; ``NAME...`` draws those figures and runs only the checks and tables that
read the same experiments. A partial run replaces only what it recomputed: every other check's verdict is kept as
stored, whatever the environment (another real-LM preset, another results folder).

Figures go to ``--out`` (default: ``sft_tilt/figures/out/`` in a checkout, else ``figures/`` in the user's data
folder) and the checks to ``--paper-checks`` (default: the checkout's ``paper_checks.md``, else
``paper_checks.md`` in the ``--out`` folder). The real-LM figures and checks read the committed results of
``--results-dir`` (default: ``$SFT_RESULTS_DIR``, else the checkout's ``results/``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")  # also set in sft_tilt/figures/__init__; here for clarity when read alone

import matplotlib

matplotlib.use("Agg")

def output_folder(text: str) -> Path:
    """argparse type: a folder the figures can be written to: an existing folder, or a path whose nearest existing
    parent is a writable folder (checked before any figure is drawn)."""
    from sft_tilt.store import unwritable

    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a directory")
    why = unwritable(path)
    if why is not None:
        raise argparse.ArgumentTypeError(f"{text}: {why}")
    return path


def output_file(text: str) -> Path:
    """argparse type: a file path that is not a directory, whose folder exists or can be made: its nearest existing
    parent is a writable folder (the folder is made when the file is written)."""
    from sft_tilt.store import unwritable

    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory")
    why = unwritable(path.parent)
    if why is not None:
        raise argparse.ArgumentTypeError(f"{text}: {why}")
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the command line; a missing input file (such as the default model, whose message names the command that
    installs it) ends it with that one line instead of a traceback."""
    try:
        return _run_command(argv)
    except FileNotFoundError as err:
        print(f"python -m sft_tilt.figures: error: {err}", file=sys.stderr)
        return 2


def _run_command(argv: list[str] | None) -> int:
    import sft_tilt.claims
    from sft_tilt.claims import report
    from sft_tilt.figures import DEFAULT_OUT_DIR, FIGURES
    from sft_tilt.store import CHECKOUT_ROOT, describe_results_dir

    parser = argparse.ArgumentParser(prog="python -m sft_tilt.figures", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="figure names, or 'all' (every figure, then paper_checks.md)")
    parser.add_argument("--list", action="store_true", help="list registered figures and exit")
    parser.add_argument("--out", type=output_folder, default=DEFAULT_OUT_DIR, help=f"output directory (default: {DEFAULT_OUT_DIR})")
    parser.add_argument("--group", default=None, choices=sft_tilt.claims.GROUPS, help="with 'all': only the figures and claim checks of this group")
    parser.add_argument("--no-checks", action="store_true", help="draw only; do not run claim checks or touch paper_checks.md")
    parser.add_argument("--paper-checks", type=output_file, default=None,
                        help="the page the claim checks write (default: the checkout's paper_checks.md, else "
                             "paper_checks.md in the --out folder); the verdicts it is rendered from are stored beside "
                             "it, under the same name with .json")
    parser.add_argument("--results-dir", type=Path, default=None, metavar="DIR",
                        help="folder of committed results the real-LM figures and checks read (default: "
                             "$SFT_RESULTS_DIR, else results/ in the checkout); sets $SFT_RESULTS_DIR")
    args = parser.parse_args(argv)
    if args.results_dir is not None:
        if not args.results_dir.is_dir():
            parser.error(f"--results-dir: {args.results_dir} is not an existing folder")
        os.environ["SFT_RESULTS_DIR"] = str(args.results_dir.resolve())  # read wherever results are looked up
    if args.paper_checks is None:
        args.paper_checks = CHECKOUT_ROOT / "paper_checks.md" if CHECKOUT_ROOT is not None else args.out / "paper_checks.md"

    if args.list or not args.names:
        width = max((len(n) for n in FIGURES), default=0)
        for fig in FIGURES.values():
            print(f"{fig.name:<{width}}  [{fig.group}]  {fig.description}")
        return 0

    run_all = args.names == ["all"]
    if run_all:
        names = [n for n, f in FIGURES.items() if args.group is None or f.group == args.group]
        groups = None if args.group is None else [args.group]
        checks = sft_tilt.claims.select_checks(groups)
        sections = report.select_sections(groups)
    else:
        if args.group is not None:
            parser.error("--group: only with 'all' (name the figures instead)")
        unknown = [n for n in args.names if n not in FIGURES]
        if unknown:
            parser.error(f"names: unknown figure(s) {unknown}; see --list")
        names = args.names
        checks = sft_tilt.claims.select_checks([], figures=names)
        sections = report.select_sections([], figures=names)

    full = run_all and args.group is None
    if (checks or sections) and not args.no_checks and not full:
        try:  # before any work: a partial run needs the stored verdicts it keeps
            report.stored_beside(args.paper_checks)
        except ValueError as exc:
            parser.error(f"--paper-checks: {exc}")

    print(f"[figures] figures into {args.out}. {describe_results_dir()}", flush=True)
    failures = []
    for name in names:
        start = time.perf_counter()
        print(f"[figures] {name} ...", flush=True)
        try:
            FIGURES[name].draw(args.out)
        except FileNotFoundError as exc:  # its message names the file and how to get it (the default model: one line)
            failures.append((name, exc))
            print(f"[figures] {name} FAILED: {exc}", flush=True)
            continue
        except Exception as exc:  # keep going: one broken figure must not hide the rest
            failures.append((name, exc))
            print(f"[figures] {name} FAILED: {exc!r}", flush=True)
            continue
        print(f"[figures] {name} done in {time.perf_counter() - start:.1f} s", flush=True)

    if (checks or sections) and not args.no_checks:
        print(f"[figures] running {len(checks)} claim check(s) and {len(sections)} measured table(s); "
              f"{'rewriting' if full else 'replacing only those in'} {args.paper_checks.name}", flush=True)
        args.paper_checks.parent.mkdir(parents=True, exist_ok=True)
        results = sft_tilt.claims.run_checks(checks)
        tables = report.compute_sections(sections)
        sft_tilt.claims.write_paper_checks(args.paper_checks, results, keep_other_rows=not full, sections=tables)

    if failures:
        print(f"[figures] {len(failures)} figure(s) failed: {[n for n, _ in failures]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Command line of the real-LM harness.

    python -m sims.harness run    --preset default --method talr --learning-rate 2.5e-4 --fmt cot --seed 0
    python -m sims.harness sweep  --preset default [--experiment lr|methods|tokens|single-step|all]
    python -m sims.harness report --preset default [--out report.md]

``--method`` is any registered method (:mod:`sims.methods`); ``--lr`` is a short alias of
``--learning-rate``. ``--model PATH`` selects the model file (GGUF) or checkpoint folder (Hugging Face) for the ``tiny``
preset (``paper`` reads ``$SFT_PAPER_MODEL``). Finished runs are read from their run folders
(``$SFT_RUNS_DIR`` or ``.cache/runs``); an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_ENABLE_X64", "1")  # like `python -m figures`: float64 available; the LM sets float32 itself


def enable_compilation_cache() -> None:
    """Persist XLA compilations under ``<cache>/jax_compile`` (a second cold run skips compiling)."""
    import jax

    from store import cache_root

    jax.config.update("jax_compilation_cache_dir", str(cache_root() / "jax_compile"))


def main(argv: list[str] | None = None) -> int:
    from sims.harness.presets import PRESETS
    from sims.methods import method_names

    parser = argparse.ArgumentParser(prog="python -m sims.harness", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("run", "sweep", "report"):
        p = sub.add_parser(name)
        p.add_argument("--preset", default="default", choices=sorted(PRESETS))
        p.add_argument("--model", default=None, help="model file or folder (tiny preset)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if name == "run":
            p.add_argument("--method", default="sft", choices=method_names(), help="a registered method (sims.methods)")
            p.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float, required=True)
            p.add_argument("--fmt", default="cot", choices=("cot", "label"))
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--steps", type=int, default=None)
        if name == "sweep":
            p.add_argument("--experiment", default="all", choices=("lr", "methods", "tokens", "single-step", "all"))
        if name == "report":
            p.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    from dataclasses import replace

    from sims.harness import experiments as ex
    from sims.harness.presets import get_preset
    from sims.harness.runs import run_one

    enable_compilation_cache()
    preset = get_preset(args.preset, args.model)
    progress = not args.quiet

    if args.command == "run":
        cfg = ex.method_config(preset, args.method, args.learning_rate, args.seed, args.fmt)
        if args.steps is not None:
            cfg = replace(cfg, steps=args.steps)
        result = run_one(cfg, progress=progress)
        s = ex.summarise_run(result)
        if s["diverged"]:
            print(f"run {s['key']}: {cfg.label()}  diverged at step {s['diverged_step']} (non-finite loss, parameters or evaluation)")
            return 0
        sets = {k: round(v, 4) for k, v in s["general_change_sets"].items()}
        print(f"run {s['key']}: {cfg.label()}  domain gain G={s['domain_gain']:+.4f}  general change D={s['general_change']:+.4f} "
              f"nats/token  D per set={sets}")
        for a in s["averaging"]:
            print(f"  averaging alpha={a['alpha']:g}: G={a['domain_gain']:+.4f}  D={a['general_change']:+.4f}")
        return 0

    if args.command == "sweep":
        steps = {
            "lr": [ex.lr_tradeoff],
            "methods": [ex.method_comparison],
            "tokens": [ex.token_analysis],
            "single-step": [ex.single_step_theory],
            "all": [ex.run_all],
        }[args.experiment]
        for fn in steps:
            fn(preset, progress)
        print(f"sweep {args.experiment} ({preset.name}) finished")
        return 0

    from sims.harness.report import render_report

    text = render_report(ex.run_all(preset, progress), preset.name)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

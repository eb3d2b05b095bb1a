"""The synthetic experiments, one module per experiment.

Each module has a frozen, validated config dataclass with ``preset(name)`` (``"ci"``: tiny, for tests;
``"default"``: what ``python -m sft_tilt.figures`` draws; ``"large"``: on demand) and a ``run(config)`` function
returning a dict of NumPy arrays, cached on disk (``sft_tilt.store.cached``) under a key made of the config, the code
key of the experiment's module (its source and every repository module it imports) and the library versions. Sweeps are computed cell by cell, each cell
cached as it finishes, so an interrupted run resumes without recomputing finished cells.

1. :mod:`sft_tilt.synthetic.experiments.single_step`    exact identities and bounds on >= 100,000 random instances
2. :mod:`sft_tilt.synthetic.experiments.adversarial`    gradient search for the smallest slack of each bound
3. :mod:`sft_tilt.synthetic.experiments.matched_gain`   general change at matched domain gain across step sizes (Thm 3.1)
4. :mod:`sft_tilt.synthetic.experiments.hard_tokens`    safe step size versus hard-token mass, CoT versus label-only (Thm 3.2)
5. :mod:`sft_tilt.synthetic.experiments.methods`        SFT/TALR/DFT/FLOW/L2 Pareto fronts with seed intervals
6. :mod:`sft_tilt.synthetic.experiments.token_stats`    target-token probability statistics over epochs (SFT vs TALR)
"""

"""sft_tilt: how much general ability domain fine-tuning costs, and why; one step as a log-space tilt.

Subpackages (import the one you need; this package itself imports nothing heavy, so that
``sft_tilt.torch_losses`` needs only torch):

* :mod:`sft_tilt.theory`      single-step identities and bounds, derived in SymPy, exported as ``jax.numpy`` functions
* :mod:`sft_tilt.methods`     the fine-tuning methods: registry and token weightings (SFT, TALR, DFT, FLOW, ...)
* :mod:`sft_tilt.torch_losses` the same weightings as PyTorch losses and a TRL trainer (imports only torch)
* :mod:`sft_tilt.lm`          a pretrained decoder LM in pure JAX (GGUF / safetensors, tokenizer, generation)
* :mod:`sft_tilt.synthetic`   synthetic token worlds that check the bounds in float64
* :mod:`sft_tilt.harness`     fine-tunes the LM on a domain and measures domain gain and general change (the only trainer)
* :mod:`sft_tilt.monitor`     the step monitor: a step's measured general cost against the theory's prediction
* :mod:`sft_tilt.analysis`    intervals and matched-gain reading of trajectories
* :mod:`sft_tilt.claims`      the paper's checkable claims and their decision rules
* :mod:`sft_tilt.figures`     every figure from one registry, and ``paper_checks.md``
* :mod:`sft_tilt.store`       checksummed records, content keys, caches
"""

__version__ = "0.2.0"

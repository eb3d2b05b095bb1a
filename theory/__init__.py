"""Machine-checked theory of one fine-tuning step as a log-space (exponential) tilt.

Derivations live in SymPy (``python -m theory`` prints them with their verification status);
every result is exported as a jit- and vmap-safe ``jax.numpy`` function.
"""

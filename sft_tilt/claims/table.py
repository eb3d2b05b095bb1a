"""The paper's 18 checkable claims, in this repository's own words.

Each :class:`Claim` gives its number (the numbering every check, figure caption and ``paper_checks.md`` row
uses), where in *SFT Doesn't Always Hurt General Capabilities* (Lin et al., ICLR 2026) it comes from, a short
title, the full wording, and what this repository measures to decide it. ``kind`` says whose claim it is:
``exact`` (a mathematical identity or bound), ``paper`` (stated by the paper), ``prediction`` (a consequence of
the tilt model that the paper does not state).

Notation: one SFT step is the tilt ``q_lam = q exp(lam s) / Z``; ``D`` is general degradation (general loss
change), ``G`` domain gain, ``Delta*`` the matched domain gain (``target_gain`` in code), ``lam`` the step size,
``tau`` the TALR temperature.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["Claim", "CLAIM_TABLE", "CLAIMS_BY_NUMBER", "KINDS", "PAPER_NUMBERS"]

KINDS = ("exact", "paper", "prediction")


@dataclass(frozen=True)
class Claim:
    number: int
    kind: str  # one of KINDS
    section: str  # where the paper makes it
    title: str  # short form, one line of paper_checks.md
    wording: str  # the full claim
    measured: str  # what this repository measures to decide it
    paper_number: str = "-"  # the paper's own number(s) for the claim, where it gives any

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {KINDS}")


CLAIM_TABLE: tuple[Claim, ...] = (
    Claim(1, "exact", "Section 3, Proposition 3.1",
          "Code-length identity: dL(P) = KL(P||q2) - KL(P||q1) = token-tree sum",
          "For any sequence distributions P, q1, q2: E_P[-log q2] - E_P[-log q1] = KL(P||q2) - KL(P||q1) = "
          "-sum_l sum_j p_lj log(q2_lj / q1_lj), with p_lj the P-mass of token-tree node (l, j).",
          "The machine-checked derivation code_length_as_kl, and the three forms on random token trees whose P has "
          "zero-probability branches."),
    Claim(2, "exact", "Section 3, the tilt model of one SFT step",
          "Tilt expansion: dL = lam(E_q s - E_P s) + lam^2/2 Var_q(s) + O(lam^3)",
          "For q_lam proportional to q exp(lam s): dL(P) = lam (E_q s - E_P s) + (lam^2/2) Var_q(s) + O(lam^3). If q = P "
          "on the general data, the per-step general degradation is >= 0 and O(lam^2); with a mismatch a first-order "
          "term of size <= lam sup|s| TV(P, q) appears.",
          "The derivations tilt_expansion, single_step_identity, jensen_lower_bound and hoeffding_upper_bound; q = P at "
          "extreme step sizes; an adversarial search for the bounds' smallest slack; the first-order mismatch term "
          "against lam sup|s| TV."),
    Claim(3, "paper", "Section 3, Theorem 3.1",
          "Matched-gain degradation non-decreasing in lam, bounded by k1 Delta* + k2 Delta*^2 lam",
          "Fine-tuning to the same domain gain Delta* with different step sizes, the general degradation D is "
          "non-decreasing in lam and bounded by k1 Delta* + k2 Delta*^2 lam: about affine in lam for small lam with a "
          "positive intercept (about k1 Delta*), so reducing the learning rate never drives degradation to zero at "
          "fixed Delta*.",
          "D at matched Delta* over a step-size grid (synthetic worlds, SmolLM2), the theory's multi-step bound along "
          "every trajectory, the small-lam intercept, and the fit of k1 Delta* + k2 Delta*^2 lam. On SmolLM2 Delta* runs "
          "from 20 to 95% of each format's saturation gain: the claim bites near saturation (from 80%), and below it "
          "only a fall of D with the rate would contradict it."),
    Claim(4, "paper", "Section 3, Theorem 3.1 (slope of the bound)",
          "lam-slope of the bound scales with Delta*^2",
          "The lam-slope of the matched-gain bound scales with Delta*^2: doubling the required domain gain about "
          "quadruples the learning-rate sensitivity (a naive expansion predicts a slope proportional to Delta*).",
          "The exponent p of the local slope dD/dlam ~ Delta*^p over several matched gains (p = 2 the paper, p = 1 "
          "the naive expansion), and which lam-term fits better with a free intercept per Delta*."),
    Claim(5, "prediction", "Section 3, the tilt model (gradient-flow limit)",
          "Gradient-flow limit: lam-dependence comes from state-dependent directions and vanishes as lam -> 0",
          "With fixed-direction tilts the degradation at matched Delta* does not depend on lam (tilts compose); "
          "lam-dependence appears only with state-dependent (cross-entropy e_y - q) directions, leakage or noise, "
          "and as lam -> 0 the degradation converges to the gradient-flow value.",
          "Relative spread over lam of D at matched Delta* for fixed-direction tilts and for cross-entropy steps, and "
          "whether the cross-entropy steps' change between neighbouring step sizes shrinks towards the smallest lam."),
    Claim(6, "exact", "Section 3, Theorem 3.2 (hard tokens)",
          "Hard tokens dominate updates: ||e_y - q|| in [1 - p_y, sqrt2 (1 - p_y)]",
          "For softmax cross-entropy the logit gradient norm ||e_y - q||_2 lies in [1 - p_y, sqrt2 (1 - p_y)]: easy "
          "tokens (p_y near 1) contribute almost no update, tokens with p_y <= 0.2 contribute at least 0.8 each.",
          "The derivation hard_tokens_safe_step, and the interval on random (q, y) with vocabularies up to 1000 and "
          "logit scales up to 30 (1 - p_y in log space), sft_tilt.theory.ce_update_norm_bounds, and autodiff gradients."),
    Claim(7, "paper", "Section 3, Theorem 3.2",
          "Safe step size decreases with hard-token mass; label-only > CoT",
          "lam_safe = max{lam : D <= eps at target Delta*} decreases monotonically in the number or mass of hard tokens "
          "in the domain data; label-only targets (fewer hard tokens) admit a larger lam_safe than chain-of-thought "
          "targets at the same Delta*.",
          "lam_safe over worlds of increasing hard-token mass (synthetic) and over the learning-rate grid for the two "
          "response formats (SmolLM2)."),
    Claim(8, "exact", "Section 4, the TALR optimisation problem",
          "TALR closed form softmax(-l/tau), optimum -tau logsumexp(-l/tau), limits",
          "argmin over the simplex of sum_i w_i l_i + tau sum_i w_i log w_i is softmax(-l/tau), proportional to "
          "p^(1/tau); the optimum value is -tau log sum_i exp(-l_i/tau); tau -> inf gives uniform weights (plain SFT), "
          "tau -> 0 one-hot weight on the smallest loss.",
          "The derivation talr_kkt, a constrained numerical minimiser against the closed form, and the limits of "
          "sft_tilt.theory.talr_weights at extreme tau."),
    Claim(9, "paper", "Section 4, Algorithm 1",
          "TALR gradient with stop-gradient; relative weight e^-k at loss k tau",
          "With stop-gradient weights the TALR gradient is sum_i w_i grad l_i; a token whose loss exceeds the smallest "
          "by k tau has relative weight e^-k (k = 1: 0.37, k = 3: 0.05); weights are floored at w_min.",
          "Autodiff gradient of sft_tilt.theory.talr_loss against sum_i w_i (q_i - e_yi), the relative weights, the floor, and "
          "the derivation talr_kkt for the closed form they rest on."),
    Claim(10, "paper", "Section 4, the temperature tau; token-level analysis (Figure 3c)",
          "Dynamic tau decays; fraction of tokens with p > 0.2 rises (curriculum)",
          "The dynamic temperature tau_t (batch median of per-sequence mean losses) decreases over training, so a token "
          "whose loss falls faster than tau gains weight (a curriculum), and the fraction of training tokens with "
          "p > 0.2 rises epoch over epoch.",
          "tau and the fraction of targets with p > 0.2 per epoch of TALR training (synthetic, several seeds); on SmolLM2 "
          "tau over TALR's training and, since any fit of the domain raises that fraction, its rise under TALR against "
          "SFT's at the same domain gain, with a minimum lead."),
    Claim(11, "paper", "Token-level analysis (Figure 3a-b)",
          "Median target-token probability ~ 1; hard tokens a small minority on domain content",
          "Under the initial model the median target-token probability is about 1; hard tokens (p <= 0.2) are a small "
          "minority, concentrated on domain-specific content.",
          "Median p, the fraction with p <= 0.2, and the share of digits among hard tokens against all targets, on "
          "SmolLM2's chain-of-thought training targets."),
    Claim(12, "paper", "Section 2 (learning-rate study) and Table 1-2, MedCalc",
          "LR headline: 5x LR buys +0.024 domain for -0.311 general (MedCalc)",
          "SFT on MedCalc (three-model average): learning rate 1e-6 gives domain 0.534, general 0.692; 5e-6 gives 0.558, "
          "0.381: a 5x learning rate buys +0.024 domain for -0.311 general.",
          "Domain gain G and general change D of SFT at the small and the large method learning rate (5x apart) on "
          "SmolLM2: the larger rate must raise G and D, at a worse exchange rate."),
    Claim(13, "paper", "Experiments, Table 2 and Figure 2 (learning rate 5e-6)",
          "At large LR general retention TALR > FLOW > L2 > SFT",
          "At learning rate 5e-6: TALR (domain 0.542, general 0.502), FLOW (0.553, 0.450), L2 (0.555, 0.395), SFT "
          "(0.558, 0.381): TALR has the best general score at <= 0.016 domain cost; general retention orders "
          "TALR > FLOW > L2 > SFT.",
          "General change D of the four methods at the larger learning rate on SmolLM2, mean over seeds."),
    Claim(14, "paper", "Experiments, Table 1 (learning rate 1e-6)",
          "Small LR compresses differences between methods",
          "At learning rate 1e-6 SFT, L2 and TALR are within 0.033 domain and 0.025 general of each other; TALR has the "
          "best general score among methods with a competitive domain score.",
          "Spread of D and of G across SFT, L2 and TALR at the small against the large learning rate on SmolLM2."),
    Claim(15, "paper", "Experiments, Table 1 (parameter-space baselines)",
          "LoRA and WiSE-FT keep general ability but lose ~2/3 of domain performance",
          "Parameter-space baselines are poor on the domain: LoRA and WiSE-FT keep general ability (WiSE-FT 0.727, the "
          "highest) but lose about two thirds of the domain performance (0.18-0.20 against 0.53).",
          "D and G of LoRA and of model averaging (alpha 0.5) against SFT at the small learning rate on SmolLM2."),
    Claim(16, "paper", "Experiments, Tables 1-2; limitations",
          "No free lunch: every method's general score is lower at the larger LR",
          "For every method the general performance at 5e-6 is lower than at 1e-6: no method removes the degradation.",
          "D of every method at the small and the large learning rate on SmolLM2."),
    Claim(17, "paper", "Section 4 and Table 2 (TALR against FLOW)",
          "Dynamic token-level (TALR) > static sample-level (FLOW) weighting",
          "Token-level weights from the current model (TALR) retain more general ability than sample-level weights "
          "frozen at the initial model (FLOW): 0.502 against 0.450 at 5e-6.",
          "D of TALR and FLOW at matched domain gain (synthetic, several seeds and learning rates) and at the larger "
          "learning rate with its seed standard error (SmolLM2)."),
    Claim(18, "prediction", "Section 3, Theorem 3.1 with Section 4 (TALR)",
          "Degradation per unit gain grows with LR; TALR lowers it mainly at large LR",
          "The degradation per unit domain gain, D / Delta*, rises with the learning rate, and TALR lowers it mostly "
          "at large learning rates.",
          "D / Delta* of SFT over the learning rates and its reduction by TALR (synthetic at matched gain; SmolLM2 "
          "at the end of training)."),
)

#: the paper's numbers, where the claim has them (benchmark accuracies of 3-4B models unless said otherwise)
PAPER_NUMBERS = {
    4: "slope ∝ Δ*^2 (exponent p = 2; naive expansion p = 1)",
    7: "label-only fine at lr 5e-6, CoT degrades at 5e-6",
    9: "relative weight 0.37 at k = 1, 0.05 at k = 3",
    11: "median target p ≈ 1.0",
    12: "lr 1e-6 → 5e-6: +0.024 domain / −0.311 general",
    13: "general TALR 0.502 > FLOW 0.450 > L2 0.395 > SFT 0.381 (domain 0.542/0.553/0.555/0.558) at 5e-6",
    14: "at 1e-6 SFT/L2/TALR within 0.033 domain, 0.025 general; general spread 0.121 at 5e-6",
    15: "domain LoRA 0.181, WiSE-FT 0.198 vs SFT 0.534; general WiSE-FT 0.727 vs SFT 0.692",
    16: "every method's general score lower at 5e-6 than at 1e-6",
    17: "general TALR 0.502 vs FLOW 0.450 at 5e-6",
}
CLAIM_TABLE = tuple(replace(c, paper_number=PAPER_NUMBERS.get(c.number, "-")) for c in CLAIM_TABLE)

CLAIMS_BY_NUMBER: dict[int, Claim] = {c.number: c for c in CLAIM_TABLE}

if sorted(CLAIMS_BY_NUMBER) != list(range(1, len(CLAIM_TABLE) + 1)):
    raise RuntimeError("CLAIM_TABLE: claims must be numbered 1..n without gaps")

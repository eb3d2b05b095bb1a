"""Which TALR each result used, and how the variants differ, computed from the method registry.

The TALR variants of ``sft_tilt.methods.registry`` differ only in parameters of one weighting: how the dynamic temperature takes
the median (average or lower middle value, empty sequences skipped or counted as 0), whether the target probability
is clamped before the power, and how the weights are normalised. :func:`variant_rows` evaluates each variant on one
small batch so a reader sees the difference in numbers; :func:`variants_used` says which variant each setting of
``paper_checks.md`` trained with.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EXAMPLE_PROBABILITIES", "VARIANTS", "variant_rows", "variants_used", "render_variants"]

#: One batch of four sequences: target-token probabilities per sequence (None = not supervised). It has an even
#: number of sequences (the two medians differ), a sequence without a supervised token, and a hopeless token.
EXAMPLE_PROBABILITIES = ((0.02, 0.01), (0.5, 1e-9), (0.03, None), (None, None))
VARIANTS = ("talr", "talr-disc", "talr-mean", "talr-simplex")


def _example_batch():
    losses = np.array([[-np.log(p) if p else 0.0 for p in row] for row in EXAMPLE_PROBABILITIES])
    mask = np.array([[1.0 if p else 0.0 for p in row] for row in EXAMPLE_PROBABILITIES])
    return losses, mask


def variant_rows() -> list[dict]:
    """Per variant: name, formula, source, the batch's dynamic tau, the weights of the p = 1e-9 and p = 0.5 tokens,
    and the batch loss ``(1/N) sum w l``."""
    from sft_tilt.methods.registry import MethodConfig, get_method
    from sft_tilt.methods.weighting import dynamic_tau, token_weights, weighted_loss

    losses, mask = _example_batch()
    rows = []
    for name in VARIANTS:
        weighting = MethodConfig(name).weighting()
        w = np.asarray(token_weights(weighting, losses, mask))
        method = get_method(name)
        rows.append({
            "name": name, "formula": method.formula, "source": method.source,
            "tau": float(dynamic_tau(losses, mask, weighting.median, weighting.empty_sequences)),
            "w_hopeless": float(w[1, 1]), "w_half": float(w[1, 0]),
            "loss": float(weighted_loss(losses, mask, w)),
        })
    return rows


def variants_used() -> dict[str, str]:
    """Setting -> the TALR variant(s) its runs trained with."""
    from sft_tilt.harness.presets import PRESETS
    from sft_tilt.synthetic.experiments.methods import COMPARED_TALR, METHOD_CONFIGS, UNNORMALISED_TALR

    synthetic = (f"`{METHOD_CONFIGS[COMPARED_TALR].name}` (compared with the other methods at an equal effective SGD step) and "
                 f"`{METHOD_CONFIGS[UNNORMALISED_TALR].name}` (its own row)")
    out = {"synthetic": synthetic}
    for name in ("default",):
        p = PRESETS[name]()
        others = [m for m in p.methods if m.startswith("talr") and m != p.compared_talr]
        used = (f"`{p.compared_talr}` (mean-one weights, the loss on SFT's scale; the runs use Adam, which ignores a constant "
                f"scale of the loss, so the variants differ by how the weight is spread over tokens and batches; \"TALR\" in "
                f"every real-LM claim)")
        out[f"real LM ({name} preset)"] = used + "".join(f" and `{m}` (its own row)" for m in others)
    return out


def render_variants() -> list[str]:
    """Markdown lines of the section."""
    lines = ["", "## TALR variants", "",
             "Which TALR each setting trained with:", ""]
    lines += [f"- {setting}: {used}" for setting, used in variants_used().items()]
    lines += ["", "How they differ, on one batch of four sequences with target probabilities "
              + "; ".join("(" + ", ".join("-" if p is None else f"{p:g}" for p in row) + ")" for row in EXAMPLE_PROBABILITIES)
              + " (computed by `sft_tilt/claims/talr_variants.py` from the method registry):", "",
              "| variant | τ | w(p = 1e-9) | w(p = 0.5) | loss |", "|---|---|---|---|---|"]
    rows = variant_rows()
    for r in rows:
        lines.append(f"| `{r['name']}` | {r['tau']:.4f} | {r['w_hopeless']:.5f} | {r['w_half']:.4f} | {r['loss']:.4f} |")
    # the formulas and sources are sentences: a list below the table keeps its cells short
    lines += ["", "Weight and temperature of each, and where it comes from:", ""]
    lines += [f"- `{r['name']}`: {' '.join(str(r['formula']).split())}. Source: {' '.join(str(r['source']).split())}" for r in rows]
    return lines

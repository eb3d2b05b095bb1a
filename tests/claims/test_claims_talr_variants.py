"""paper_checks.md's TALR-variant section: numbers computed from the registry, agreeing with an independent
NumPy evaluation of each variant's formula."""

import numpy as np
import pytest

from sft_tilt.claims.talr_variants import EXAMPLE_PROBABILITIES, render_variants, variant_rows, variants_used


def _numpy_variant(name):
    seqs = [[p for p in row if p is not None] for row in EXAMPLE_PROBABILITIES]
    flat = np.array([p for s in seqs for p in s])
    n = flat.size
    means = [np.mean(-np.log(s)) if s else None for s in seqs]
    if name == "talr-disc":  # lower middle value, empty sequences count as 0, clamp before the power
        vals = sorted(m if m is not None else 0.0 for m in means)
        tau = max(vals[(len(vals) - 1) // 2], 1e-6)
        w = np.maximum(np.maximum(flat, 1e-6) ** (1 / tau), 0.01)
    else:
        tau = max(float(np.median([m for m in means if m is not None])), 1e-6)
        raw = np.maximum(flat ** (1 / tau), 0.01)
        w = {"talr": raw, "talr-mean": raw * n / raw.sum(),
             "talr-simplex": flat ** (1 / tau) / np.sum(flat ** (1 / tau))}[name]
    loss = float(np.sum(w * -np.log(flat)) / n)
    i_half = [p for s in seqs for p in s].index(0.5)
    i_hopeless = [p for s in seqs for p in s].index(1e-9)
    return tau, w[i_hopeless], w[i_half], loss


@pytest.mark.parametrize("row", variant_rows(), ids=lambda r: r["name"])
def test_variant_numbers_match_their_formulas(row):
    tau, w_hopeless, w_half, loss = _numpy_variant(row["name"])
    assert row["tau"] == pytest.approx(tau, rel=1e-9)
    assert row["w_hopeless"] == pytest.approx(w_hopeless, rel=1e-9)
    assert row["w_half"] == pytest.approx(w_half, rel=1e-9)
    assert row["loss"] == pytest.approx(loss, rel=1e-9)


def test_every_setting_names_its_variant():
    used = variants_used()
    assert "talr-mean" in used["synthetic"] and "talr-disc" in used["synthetic"]
    assert any("talr" in v for k, v in used.items() if k.startswith("real LM"))
    text = "\n".join(render_variants())
    assert text.count("| `talr") == 4

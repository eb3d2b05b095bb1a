"""The token-weighted trainers with real TRL and transformers: one forward pass per micro-batch, no
``compute_loss_func``, the loss and gradient of an independent computation, ``num_items_in_batch`` exact, and the
dynamic temperature per original example in padding-free and packed batches.

The runs and the independent computation happen in the reference environment (.venv-ref: torch, transformers,
trl), in ``tools/trl_trainer_reference.py``, which writes what it measured to a JSON file; the assertions are here.
The trainer runs in float32 and the independent side in float64 from the same initial weights, so they agree to
float32 rounding: ``LOSS_RTOL`` and ``GRADIENT_RTOL``. Each comparison has teeth: the alternative that a wrong
implementation would compute (the other ``num_items_in_batch`` normalisation, a packed row taken as one sequence)
is at least ``DISTINCT`` away.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_PYTHON = ROOT / ".venv-ref" / "bin" / "python"
LOSS_RTOL = 1e-6
GRADIENT_RTOL = 2e-5  # max |g - g_ref| / max |g_ref| over all parameters
DISTINCT = 100 * LOSS_RTOL  # least relative distance of an alternative from the trainer's loss

# every run of the token-weighted trainers, by its path in the output
RUNS = [
    ("talr_padded", "with_num_items"),
    ("talr_padded", "without_num_items"),
    ("talr_padded", "fixed_tau"),
    ("talr_packed", "padding_free"),
    ("talr_packed", "bfd_packing"),
    ("talr_packed", "wrapped_packing"),
    ("flow", "padded"),
    ("flow", "padding_free"),
    ("transformers_trainer", "talr"),
    ("transformers_trainer", "talr_without_num_items"),
    ("transformers_trainer", "flow"),
]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    if not REFERENCE_PYTHON.exists():
        pytest.skip("needs the reference environment .venv-ref (make reference-env)")
    out = tmp_path_factory.mktemp("trl_trainer") / "out.json"
    proc = subprocess.run([str(REFERENCE_PYTHON), str(ROOT / "tools" / "trl_trainer_reference.py"), str(out)],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return json.loads(out.read_text())


def _relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.reference
def test_the_reference_environment_runs_the_tested_versions(measured):
    print(measured["versions"])
    assert measured["versions"]["trl"] == "1.16.0"


@pytest.mark.reference
def test_importing_the_losses_loads_no_trainer_library(measured):
    assert measured["imported_with_the_package"] == []


@pytest.mark.reference
@pytest.mark.parametrize("group,name", RUNS)
def test_loss_and_gradient_equal_the_independent_computation(measured, group, name):
    run = measured[group][name]
    print(f"{group}/{name}: loss {run['loss_trainer']:.8f} vs {run['loss_independent']:.8f}, "
          f"gradient relative difference {run['gradient_relative_difference']:.2e}")
    assert _relative(run["loss_trainer"], run["loss_independent"]) <= LOSS_RTOL
    assert run["gradient_relative_difference"] <= GRADIENT_RTOL


@pytest.mark.reference
@pytest.mark.parametrize("group,name", RUNS)
def test_one_forward_pass_per_micro_batch_and_no_compute_loss_func(measured, group, name):
    run = measured[group][name]
    assert run["backbone_forwards"] and all(n == 1 for n in run["backbone_forwards"])
    assert run["compute_loss_func_warnings"] == 0


@pytest.mark.reference
def test_the_forward_counter_sees_the_deprecated_hooks_second_pass(measured):
    hook = measured["deprecated_hook"]
    assert hook["compute_loss_func_warnings"] == 1
    assert all(n == 2 for n in hook["backbone_forwards"])


@pytest.mark.reference
@pytest.mark.parametrize("group,name", [r for r in RUNS if "without" not in r[1]])
def test_num_items_in_batch_is_the_accumulated_target_count(measured, group, name):
    run = measured[group][name]
    assert run["num_items_in_batch"] == [run["targets_in_step"]] * 2
    # teeth: the step's micro-batches differ in size, so normalising per micro-batch gives another loss
    assert len(set(run["targets_per_micro_batch"])) > 1
    assert _relative(run["loss_trainer"], run["loss_independent_other_normalisation"]) > DISTINCT


@pytest.mark.reference
@pytest.mark.parametrize("group,name", [r for r in RUNS if "without" in r[1]])
def test_without_num_items_in_batch_each_micro_batch_is_a_mean(measured, group, name):
    run = measured[group][name]
    assert run["num_items_in_batch"] == [None, None]
    assert len(set(run["targets_per_micro_batch"])) > 1
    assert _relative(run["loss_trainer"], run["loss_independent_other_normalisation"]) > DISTINCT


@pytest.mark.reference
@pytest.mark.parametrize("weighting", ["sft", "dft", "sft_moe"])
def test_sft_and_dft_equal_trl_own_losses(measured, weighting):
    """Against SFTTrainer's loss_type="nll" and "dft", under SFTConfig's default bfloat16 autocast; on a mixture of
    experts the router loss is part of both."""
    got = measured["trl_own_losses"][weighting]
    print(weighting, got)
    assert got["loss_difference"] <= 1e-7
    assert got["gradient_difference"] <= 1e-7 * got["gradient_scale"]
    assert got["entropy_difference"] <= 1e-7 and got["accuracy_difference"] <= 1e-7
    ours, theirs = got["num_tokens"]
    assert ours == theirs and ours[-1] > 0
    ours, theirs = got["aux_loss"]
    assert ours == theirs
    if weighting == "sft_moe":
        assert all(aux > 0.1 for aux in ours)  # a router loss that would show if it were left out


@pytest.mark.reference
def test_padding_free_batches_give_the_padded_batches_loss(measured):
    """The dynamic temperature is the median over the examples, whether they are padded rows or one flattened row."""
    packed = measured["talr_packed"]
    free, same = packed["padding_free"], packed["padding_free_vs_padded"]
    assert same["same_examples_in_each_micro_batch"]
    assert all(rows == 1 for rows in free["rows"]) and all(free["has_position_ids"])
    assert same["loss_difference"] <= LOSS_RTOL * free["loss_independent"]
    assert same["gradient_relative_difference"] <= GRADIENT_RTOL
    # teeth: the flattened row taken as one sequence (its token mean as the temperature) is another loss
    rows = packed["padding_free_rows_as_sequences"]
    assert _relative(free["loss_trainer"], rows["loss_independent"]) > DISTINCT


@pytest.mark.reference
def test_bfd_packing_takes_the_median_over_the_packed_examples(measured):
    packed = measured["talr_packed"]
    assert all(n > 1 for n in packed["bfd_sequences_per_row"])
    bfd = packed["bfd_packing"]
    assert _relative(bfd["loss_trainer"], bfd["loss_independent"]) <= LOSS_RTOL
    assert _relative(bfd["loss_trainer"], packed["bfd_rows_as_sequences"]["loss_independent"]) > DISTINCT


@pytest.mark.reference
def test_wrapped_packing_takes_the_median_over_the_packs(measured):
    """Wrapped packs keep no example boundaries (attention mask, no position_ids): each pack is one sequence."""
    wrapped = measured["talr_packed"]["wrapped_packing"]
    assert not any(wrapped["has_position_ids"]) and all(rows > 1 for rows in wrapped["rows"])
    assert _relative(wrapped["loss_trainer"], wrapped["loss_independent"]) <= LOSS_RTOL


@pytest.mark.reference
def test_the_deprecated_hook_took_a_padding_free_row_as_one_sequence(measured):
    """What the subclass changes: through compute_loss_func, TALR saw one row and used its token mean."""
    hook = measured["deprecated_hook"]
    assert _relative(hook["loss_trainer"], hook["loss_independent"]) <= LOSS_RTOL
    assert _relative(hook["loss_trainer"], hook["loss_independent_per_example"]) > DISTINCT


@pytest.mark.reference
def test_flow_refuses_packing_with_a_message(measured):
    message = measured["flow"]["packing_error"]
    assert "sequence_weight" in message and "packing" in message


@pytest.mark.reference
def test_logits_path_for_evaluation_gives_the_same_loss_in_one_pass(measured):
    path = measured["logits_path"]
    assert path["loss_difference"] <= LOSS_RTOL * abs(path["loss"])
    assert len(path["logits_shape"]) == 3
    assert path["backbone_forwards"] == [1, 1]


@pytest.mark.reference
def test_sequence_functions_equal_loops_over_the_tokens(measured):
    got = measured["sequence_functions"]
    assert max(got["worst"].values()) <= 1e-12
    assert got["trailing_sequences_weights"] == [[0.5, 0.25, 0.0, 0.0]]
    assert got["missing_weight_refusal"].startswith("sequence_weights:")
    assert got["flattened_vs_padded"] <= 1e-12


@pytest.mark.reference
def test_packed_sequence_ids_partition_rows_as_transformers_does(measured):
    got = measured["packed_sequence_ids"]
    assert got["rows_compared"] >= 200 and got["mismatches"] == 0


@pytest.mark.reference
@pytest.mark.parametrize("case,argument", [
    ("no_token_loss", "token_loss:"),
    ("transformers_no_token_loss", "token_loss:"),
    ("compute_loss_func", "compute_loss_func:"),
    ("loss_type_dft", "args.loss_type:"),
    ("label_smoothing", "label_smoothing_factor:"),
])
def test_refused_arguments_are_named(measured, case, argument):
    assert measured["refusals"][case].startswith(argument)

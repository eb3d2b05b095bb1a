"""Explicit versions of the computations whose results are committed to the repository.

A committed run is found by its key, so the key must change exactly when what the run computes changes: not when a
file moves, a docstring is edited or a report is rewritten. The key of a run (:func:`sft_tilt.harness.stored_runs.run_key`)
and of a base-model analysis (:mod:`sft_tilt.harness.base_model_analyses`) therefore hold the configuration, the
model file's fingerprint, the library versions and one of the strings below, instead of a hash of the source.

**Bump a version with every change that moves numbers** (training step, loss, weighting, optimiser, data
encoding, evaluation): any new string will do. The guard is the replay test of the committed points
(``tests/harness/test_committed_results.py``): it recomputes the first points of a committed run with the current
code and fails when they differ, which says the version must be bumped and the preset recomputed. The values are
the source hashes (:func:`sft_tilt.store.code_key`) these computations had when their versions became explicit,
so the results committed before then keep their keys.
"""

__all__ = ["TRAINING_VERSION", "BASE_ANALYSES_VERSION"]

#: The fine-tuning run: training, evaluation, generation (``run_one`` and everything it calls).
TRAINING_VERSION = "ee236bfd0a16d027"
#: The base-model analyses (target-token statistics, the single-step measurements, one step of SFT and TALR under each
#: optimiser in sft_tilt.harness.optimizer_step): a change to any of them moves all their keys.
BASE_ANALYSES_VERSION = "63307c9b7e9b3bf6"

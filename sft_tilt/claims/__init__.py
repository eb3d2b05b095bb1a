"""The paper's checkable claims, their evidence and their decision rules, apart from any drawing.

* :mod:`sft_tilt.claims.table`: the 18 claims in this repository's words (number, the paper's section, wording, what is
  measured); every check, caption and ``paper_checks.md`` row cites it.
* :mod:`sft_tilt.claims.registry`: :class:`Verdict`, the :func:`check` decorator, selection by group or figure, running.
* :mod:`sft_tilt.claims.verdict_records`: the stored outcome of every check (``paper_checks.json``); a run replaces
  only what it recomputed.
* :mod:`sft_tilt.claims.report`: renders ``paper_checks.md`` from those records (a summary table, then a section
  per claim).
* one module per claim, named by what it checks: it gathers measurements from stored experiment results
  (``measure*``), decides with a pure rule from measurements to ``(verdict, reason)`` (``decide*``), and words
  the evidence (``describe*``). The exact claims read :mod:`sft_tilt.theory.derivations` (:mod:`sft_tilt.claims.exact_evidence`);
  the synthetic ones :mod:`sft_tilt.synthetic.experiments` (:mod:`sft_tilt.claims.synthetic_results`); the real-LM ones
  :mod:`sft_tilt.harness.experiment_results` (:mod:`sft_tilt.claims.real_lm_results`), which reads stored runs and never trains.

Importing the package registers every check; nothing is computed until a check runs.
"""

import os

# The exact checks run in float64; this must precede the first JAX import (through theory or sims).
os.environ.setdefault("JAX_ENABLE_X64", "1")

from sft_tilt.claims.registry import CHECKS, GROUPS, VERDICTS, ClaimCheck, Verdict, check, run_checks, select_checks  # noqa: E402
from sft_tilt.claims.report import render_paper_checks, write_paper_checks  # noqa: E402
from sft_tilt.claims.verdict_records import read_stored, records_path  # noqa: E402
from sft_tilt.claims.table import CLAIM_TABLE, CLAIMS_BY_NUMBER, Claim  # noqa: E402

# Importing a claim module registers its checks, in claim order.
from sft_tilt.claims import code_length_identity, tilt_expansion, matched_gain_monotone, matched_gain_slope  # noqa: E402,F401
from sft_tilt.claims import gradient_flow_limit, hard_token_update_norm, safe_step_size, talr_closed_form, talr_gradient  # noqa: E402,F401
from sft_tilt.claims import talr_curriculum, target_token_statistics, learning_rate_exchange, method_ranking  # noqa: E402,F401
from sft_tilt.claims import small_lr_compression, parameter_space_baselines, no_free_lunch, token_vs_sample_weighting  # noqa: E402,F401
from sft_tilt.claims import cost_per_gain, optimizer_step_cost  # noqa: E402,F401

__all__ = ["CHECKS", "GROUPS", "VERDICTS", "ClaimCheck", "Verdict", "check", "run_checks", "select_checks", "read_stored",
           "records_path", "render_paper_checks", "write_paper_checks", "CLAIM_TABLE", "CLAIMS_BY_NUMBER", "Claim"]

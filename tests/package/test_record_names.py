"""One name per quantity in the records: the committed results and their index name the learning rate, the domain
gain and the general change by their one name (the synthetic experiments' and the real-LM tables' records are
checked where their tests compute or read them)."""

import json

from record_names import misnamed, misnamed_keys
from sft_tilt.store import CHECKOUT_ROOT


def test_the_check_knows_the_other_names_of_each_quantity():
    for key in ("lr", "lrs", "method_lr", "safe_lr", "lam", "lams", "lam_safe", "lam_lo", "degradation",
                "matched_degradation", "total_degradation", "rate", "peak", "gain", "eta"):
        assert misnamed(key), key
    for key in ("learning_rate", "learning_rates", "method_learning_rate", "safe_learning_rate", "learning_rate_grid",
                "domain_gain", "general_change", "general_change_sets", "matched_general_change", "target_gain",
                "total_domain_gain", "gain_rate", "bound_constant_gain_rate", "fmt", "seed", "tau"):
        assert not misnamed(key), key
    record = {"points": [{"train_steps": [{"learning_rate": 1e-4, "lr": 1e-4}]}], 1e-5: {"gain": 0.1}}
    assert misnamed_keys(record) == [".points[0].train_steps[0].lr", ".1e-05.gain"]


def test_the_committed_results_use_one_name_per_quantity():
    files = sorted((CHECKOUT_ROOT / "results").glob("*/*/result.json")) + sorted((CHECKOUT_ROOT / "results").glob("*/index.json"))
    assert len(files) > 2
    bad = {f"{path.relative_to(CHECKOUT_ROOT)}: {where}" for path in files
           for where in misnamed_keys(json.loads(path.read_text()))}
    assert sorted(bad) == []

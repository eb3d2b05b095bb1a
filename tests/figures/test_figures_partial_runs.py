"""A partial figures run keeps every verdict it did not recompute, byte for byte, whatever its environment.

The committed page and verdicts are copied to a temporary folder, and ``python -m sft_tilt.figures all --group theory``
runs there in a fresh process under another real-LM preset, or with a results folder that holds none of the
committed runs: in both, the real-LM checks register under settings other than the stored ones. The process is the
real command line with the real registry of that environment; only the theory group's own checks and figures are
replaced by cheap stand-ins (the real ones take minutes), since what is tested is what happens to everything else.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sft_tilt.claims import records_path
from sft_tilt.store import CHECKOUT_ROOT

PAGE = Path(CHECKOUT_ROOT) / "paper_checks.md"

DRIVER = """
import json
import sys
from dataclasses import replace

import sft_tilt.figures
from sft_tilt.claims import Verdict, registry
from sft_tilt.figures.__main__ import main

print(json.dumps(sorted({c.setting for c in registry.CHECKS if c.group == "real_lm"})))
registry.CHECKS[:] = [replace(c, check=lambda: Verdict("fails", "recomputed", "cmd")) if c.group == "theory" else c
                      for c in registry.CHECKS]
sft_tilt.figures.FIGURES.clear()
sys.exit(main(["all", "--group", "theory", "--out", sys.argv[1], "--paper-checks", sys.argv[2]]))
"""


def _blocks(text: str) -> dict[str, str]:
    """The page cut at its anchors: each claim's and each check's section by anchor id, and the page's head."""
    head, *rest = text.split('\n<a id="')
    return {"head": head, **{part.split('"', 1)[0]: part for part in rest}}


def _summary_rows(text: str) -> dict[str, str]:
    return {line.split("]", 1)[0]: line for line in text.splitlines() if line.startswith("| [")}


@pytest.mark.parametrize("environment", ["another real-LM preset", "a results folder without the committed runs"])
def test_a_theory_run_elsewhere_keeps_every_other_verdict_byte_for_byte(tmp_path, environment):
    page = tmp_path / "paper_checks.md"
    shutil.copyfile(PAGE, page)
    shutil.copyfile(records_path(PAGE), records_path(page))
    env = {k: v for k, v in os.environ.items() if k not in ("SFT_REAL_LM_PRESET", "SFT_RESULTS_DIR")}
    if environment == "another real-LM preset":
        env["SFT_REAL_LM_PRESET"] = "tiny"
    else:
        (tmp_path / "no results").mkdir()
        env["SFT_RESULTS_DIR"] = str(tmp_path / "no results")
    run = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "figures"), str(page)], cwd=CHECKOUT_ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]

    before = json.loads(records_path(PAGE).read_text(encoding="utf-8"))
    after = json.loads(records_path(page).read_text(encoding="utf-8"))
    stored_settings = {c["setting"] for c in before["checks"] if c["group"] == "real_lm"}
    registered = set(json.loads(run.stdout.splitlines()[0]))
    if environment == "another real-LM preset":  # the claims register other settings than the stored rows carry
        assert not stored_settings & registered, "the environment must register other settings"
    else:  # each claim names its preset, so an empty results folder changes no setting, and still no row is lost
        assert stored_settings == registered

    kept = [c for c in before["checks"] if c["group"] != "theory"]
    assert kept and all(c in after["checks"] for c in kept)
    assert len(after["checks"]) == len(before["checks"]) and after["sections"] == before["sections"]
    recomputed = [c for c in after["checks"] if c["group"] == "theory"]
    assert recomputed and all(c["evidence"] == "recomputed" for c in recomputed)

    old, new = PAGE.read_text(encoding="utf-8"), page.read_text(encoding="utf-8")
    old_blocks, new_blocks = _blocks(old), _blocks(new)
    theory_claims = {c["number"] for c in recomputed}
    changed = {k for k in old_blocks if old_blocks[k] != new_blocks.get(k)}
    # only the theory checks' sections (and the summary's counts above them) changed
    assert changed == {"head"} | {f"claim-{n}-exact" for n in theory_claims}
    assert set(new_blocks) == set(old_blocks)
    old_rows, new_rows = _summary_rows(old), _summary_rows(new)
    assert {k for k in old_rows if old_rows[k] != new_rows[k]} == {f"| [{n}" for n in theory_claims}
    assert re.sub(r"\d+ checks of.*\n", "", old.split("| #")[0]) == re.sub(r"\d+ checks of.*\n", "", new.split("| #")[0])

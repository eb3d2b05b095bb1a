"""``python -m sft_tilt.theory``: pretty, LaTeX and JSON output, exit status, and the disk cache between runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sft_tilt.theory.derivations import DERIVATIONS

REPO = Path(__file__).resolve().parents[2]
CHEAP = ["tradeoff_identity", "hoeffding_upper_bound"]


def test_json_lists_every_result_verified():
    """The real entry point in a fresh process. It uses the repository's default cache, which is keyed by the
    source of every derivation, the ``theory`` code version and the library versions (so it is never stale);
    ``tests/theory/test_derivations.py`` recomputes every result without the cache."""
    env = {k: v for k, v in os.environ.items() if k != "SFT_CACHE_DIR"}
    proc = subprocess.run([sys.executable, "-m", "sft_tilt.theory", "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert [d["name"] for d in data] == sorted(DERIVATIONS, key=lambda n: DERIVATIONS[n].number)
    assert {d["number"] for d in data} == set(range(1, 10))
    for d in data:
        assert {"name", "statement", "assumptions", "verified"} <= set(d)
        assert d["verified"] is True, d["name"]
        assert d["assumptions"] and all(isinstance(a, str) for a in d["assumptions"])
        assert any(c["kind"] == "symbolic" for c in d["checks"]) and all(c["passed"] for c in d["checks"])


def _main(args, capsys):
    from sft_tilt.theory.__main__ import main

    code = main(args)
    return code, capsys.readouterr()


def test_second_run_reads_the_cache_and_prints_the_same(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    code1, first = _main(CHEAP, capsys)
    files = sorted((tmp_path / "derivations").glob("*.json"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    code2, second = _main(CHEAP, capsys)
    assert code1 == code2 == 0
    assert first.out == second.out
    assert len(files) == len(CHEAP)
    assert [f.stat().st_mtime_ns for f in sorted((tmp_path / "derivations").glob("*.json"))] == mtimes  # read, not rewritten
    assert "VERIFIED" in first.out and "2/2 results verified" in first.out
    assert "(numeric)" in first.out and "(symbolic)" in first.out


def test_latex_output_contains_latex_statements(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    code, out = _main(["--latex", "tradeoff_identity"], capsys)
    assert code == 0
    assert r"\lambda \left(" in out.out


def test_unknown_name_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        _main(["no_such_result"], capsys)
    assert exc.value.code == 2 and "unknown result" in capsys.readouterr().err


def test_exit_status_is_nonzero_when_a_result_fails(tmp_path, monkeypatch, capsys):
    """Register a result whose check fails; main() must return 1 and print NOT VERIFIED."""
    import sympy as sp

    from sft_tilt.theory.derivations import Check, Result, registry

    def wrong():
        return Result(name="wrong_claim", number=5, title="Hoeffding with /16", statement=(sp.Symbol("x"),), text="false",
                      assumptions=("none",), checks=(Check("claim", "symbolic", False, "counterexample"),))

    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    monkeypatch.setitem(DERIVATIONS, "wrong_claim", registry.Derivation("wrong_claim", 5, __name__, wrong))
    code, out = _main(["wrong_claim", "--no-cache"], capsys)
    assert code == 1
    assert "NOT VERIFIED" in out.out and "0/1 results verified" in out.out


def test_json_and_latex_are_exclusive(capsys):
    with pytest.raises(SystemExit) as exc:
        _main(["--json", "--latex"], capsys)
    assert exc.value.code == 2

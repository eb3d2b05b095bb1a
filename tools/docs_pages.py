"""The documentation site's generated pages: what the measurements say, written by the code that reads them.

``mkdocs build`` runs this file through the mkdocs-gen-files plugin (``mkdocs.yml``). It writes into the build only,
never into ``docs/``:

* ``results/paper_checks.md``: the committed ``paper_checks.md``, its relative links rewritten for the page's place;
* ``results/cpu_runs.md`` and ``results/default_runs.md``: ``python -m sft_tilt.harness summary --preset P``, the
  tables of each preset's finished runs;
* ``results/memory_plans.md``: ``python -m sft_tilt.harness plan`` for the models the paper fine-tunes.

Each page is the command's own output, run in a subprocess from the repository root with this interpreter, so the
pages say what the committed results and the code say when the site is built. A command that fails fails the build.

Run alone, ``python tools/docs_pages.py --out DIR`` writes the same pages under ``DIR``.
"""

from __future__ import annotations

import argparse
import posixpath
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = REPO_ROOT / "docs"

#: Summary pages: preset name -> page.
SUMMARY_PAGES = {"cpu": "results/cpu_runs.md", "default": "results/default_runs.md"}
PAPER_CHECKS_PAGE = "results/paper_checks.md"
MEMORY_PLANS_PAGE = "results/memory_plans.md"
#: Every page this script writes (paths inside the site). Links to them from ``docs/`` resolve in the build.
GENERATED_PAGES = (PAPER_CHECKS_PAGE, *SUMMARY_PAGES.values(), MEMORY_PLANS_PAGE)

#: Where the files a generated page links to (outside ``docs/``) are copied in the build.
LINKED_FILES_DIR = "results/files"

#: The models of the paper's experiments (their published configurations are built into ``sft_tilt.lm.memory_plan``),
#: planned at the ``paper`` preset's batch and longest sequence on one node of eight 80 GB devices.
MEMORY_PLAN_MODELS = ("Qwen2.5-3B-Instruct", "Qwen3-4B", "gemma-3-4b-it")
MEMORY_PLAN_ARGS = ("--devices", "8", "--batch", "8", "--seq", "1280", "--device-memory", "80GB")

_LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\)")
_HTML_SRC = re.compile(r"(?P<attr>\b(?:src|href))=\"(?P<target>[^\"]+)\"")


def run_command(*args: str) -> str:
    """Run ``python -m ARGS`` from the repository root; its stdout, or a RuntimeError holding its stderr."""
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`python -m {' '.join(args)}` failed with exit code {done.returncode}:\n{done.stderr}")
    return done.stdout


def _is_relative(target: str) -> bool:
    return not (target.startswith(("#", "/", "mailto:")) or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", target))


def _relative_to_page(target_in_site: str, page: str) -> str:
    """``target_in_site`` (a path inside the site) as a link from ``page`` (also inside the site)."""
    return posixpath.relpath(target_in_site, posixpath.dirname(page) or ".")


def relink(markdown: str, source: Path, page: str) -> tuple[str, dict[str, Path]]:
    """Rewrite the relative links of ``markdown`` (read from ``source``) for its new place ``page`` in the site.

    A link into ``docs/`` points at that page; a link to another file of the repository points at a copy of it under
    :data:`LINKED_FILES_DIR` (returned as ``{path in the site: file to copy}``); a link to a file that does not exist
    (a figure not drawn yet) keeps its text and names the missing path, so the build has no broken link.
    """
    copies: dict[str, Path] = {}

    def resolve(target: str) -> str | None:
        path_part, _, anchor = target.partition("#")
        if not path_part:
            return target
        file = (source.parent / path_part).resolve()
        if not file.is_file():
            return None
        try:
            in_site = file.relative_to(DOCS_DIR).as_posix()
        except ValueError:
            in_site = f"{LINKED_FILES_DIR}/{file.relative_to(REPO_ROOT).as_posix()}"
            copies[in_site] = file
        return _relative_to_page(in_site, page) + (f"#{anchor}" if anchor else "")

    def markdown_link(match: re.Match) -> str:
        target = match["target"]
        if not _is_relative(target):
            return match[0]
        new = resolve(target)
        if new is None:
            missing = f"`{target}`, not in this checkout"
            return f"*({match['text'] or 'figure'}: {missing})*" if match["bang"] else f"{match['text']} ({missing})"
        return f"{match['bang']}[{match['text']}]({new}{match['title'] or ''})"

    def html_link(match: re.Match) -> str:
        target = match["target"]
        if not _is_relative(target):
            return match[0]
        new = resolve(target)
        return f'{match["attr"]}="{new if new is not None else "#"}"'

    return _HTML_SRC.sub(html_link, _LINK.sub(markdown_link, markdown)), copies


def separate_tables(text: str) -> str:
    """``text`` with a blank line wherever a table (lines starting with ``|``) meets other text, as Markdown needs."""
    out: list[str] = []
    for line in text.splitlines():
        if out and out[-1].strip() and line.strip() and out[-1].startswith("|") != line.startswith("|"):
            out.append("")
        out.append(line)
    return "\n".join(out) + "\n"


def paper_checks_page() -> tuple[str, dict[str, Path]]:
    """``paper_checks.md`` as it is committed, with its links made to work from :data:`PAPER_CHECKS_PAGE`."""
    source = REPO_ROOT / "paper_checks.md"
    return relink(source.read_text(encoding="utf-8"), source, PAPER_CHECKS_PAGE)


def summary_page(preset: str) -> str:
    """The ``summary`` tables of ``preset``'s finished runs, headed by the command that wrote them."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "summary.md"
        run_command("sft_tilt.harness", "summary", "--preset", preset, "--quiet", "--out", str(out))
        text = out.read_text(encoding="utf-8")
    heading, _, rest = text.partition("\n")
    if not heading.startswith("# "):
        heading, rest = f"# Finished runs of the `{preset}` preset", text
    note = (f"Written when this site was built by `python -m sft_tilt.harness summary --preset {preset}`, which reads "
            "the finished runs (committed under `results/` and in the run folders) and computes nothing.")
    return separate_tables(f"{heading}\n\n{note}\n{rest}")


def memory_plans_page() -> str:
    """``python -m sft_tilt.harness plan`` for each of :data:`MEMORY_PLAN_MODELS`."""
    parts = ["# Memory plans for the paper's models", "",
             "Bytes per device of a training step of the `paper` preset (float32 weights and Adam, batch 8, sequences "
             "of 1280 tokens) on a node of eight 80 GB devices, for every `DATA x MODEL` mesh, as "
             "`sft_tilt.lm.memory_plan` estimates them from the models' published configurations. Written when this "
             "site was built by the commands shown; the [presets guide](../guides/presets_and_results.md) says how "
             "the estimate compares with the compiled step's own figure."]
    for model in MEMORY_PLAN_MODELS:
        command = ("sft_tilt.harness", "plan", "--model", model, *MEMORY_PLAN_ARGS)
        output = run_command(*command).strip()
        parts += ["", f"## {model}", "", "```bash", f"python -m {' '.join(command)}", "```", "", separate_tables(output)]
    return "\n".join(parts) + "\n"


def pages() -> tuple[dict[str, str], dict[str, Path]]:
    """Every generated page (``{path in the site: markdown}``) and the repository files they link to."""
    checks, copies = paper_checks_page()
    out = {PAPER_CHECKS_PAGE: checks}
    for preset, page in SUMMARY_PAGES.items():
        out[page] = summary_page(preset)
    out[MEMORY_PLANS_PAGE] = memory_plans_page()
    return out, copies


def _write_with_gen_files() -> None:
    import mkdocs_gen_files

    generated, copies = pages()
    for path, text in generated.items():
        with mkdocs_gen_files.open(path, "w") as f:
            f.write(text)
    for path, file in copies.items():
        with mkdocs_gen_files.open(path, "wb") as f:
            f.write(file.read_bytes())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder to write the pages into")
    args = parser.parse_args(argv)
    generated, copies = pages()
    for path, text in generated.items():
        (args.out / path).parent.mkdir(parents=True, exist_ok=True)
        (args.out / path).write_text(text, encoding="utf-8")
    for path, file in copies.items():
        (args.out / path).parent.mkdir(parents=True, exist_ok=True)
        (args.out / path).write_bytes(file.read_bytes())
    print(f"wrote {len(generated)} pages and {len(copies)} linked files under {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
elif __name__ == "<run_path>":  # mkdocs-gen-files runs this file with runpy under that name
    _write_with_gen_files()

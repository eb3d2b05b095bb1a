"""The front door stays short and every door in it opens.

The README is at most 2,000 words; every relative link and image in it and in ``docs/`` resolves (to a file in the
repository, a heading of that file, or a page ``tools/docs_pages.py`` generates when the site is built); the
README's quickstarts are the fenced blocks between ``## Quickstart`` and the next ``## `` heading, and its verdict
table says what ``paper_checks.md`` says. The docs build itself (``make docs``, warnings as errors) checks the
rendered site.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
MAX_README_WORDS = 2000
VERDICT = re.compile(r"partly holds|holds|fails|inconclusive")


def _docs_pages():
    spec = importlib.util.spec_from_file_location("docs_pages", REPO / "tools" / "docs_pages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _prose(markdown: str) -> str:
    """``markdown`` without fenced code blocks and inline code spans (where brackets are code, not links)."""
    without_fences = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", markdown, flags=re.S | re.M)
    return re.sub(r"(`+).*?\1", "", without_fences, flags=re.S)


def _links(markdown: str) -> list[str]:
    prose = _prose(markdown)
    inline = re.findall(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose)
    html = re.findall(r"\b(?:src|href)=\"([^\"]+)\"", prose)
    return inline + html


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading (mkdocs.yml configures the same slugs for the site)."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(markdown: str) -> set[str]:
    return {_slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M),
                                          flags=re.M)}


def _markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def _quickstart_blocks() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Quickstart\n")
    end = text.find("\n## ", start + 1)
    section = text[start: end if end != -1 else len(text)]
    return re.findall(r"^```(\w*)\n(.*?)^```", section, flags=re.S | re.M)


def test_the_readme_is_at_most_2000_words():
    words = len(README.read_text(encoding="utf-8").split())
    assert words <= MAX_README_WORDS, f"README.md has {words} words; move detail to docs/ (at most {MAX_README_WORDS})"


def test_link_finder_sees_links_and_images_but_not_code():
    sample = ("[a](x.md) and ![b](img/y.png \"t\") and `[c](not.md)` and <img src=\"z.png\">\n"
              "```python\nd = e[f](g)\n```\n[h](#top) [i](https://example.org)")
    assert _links(sample) == ["x.md", "img/y.png", "#top", "https://example.org", "z.png"]


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path):
    generated = {DOCS / page for page in _docs_pages().GENERATED_PAGES}
    broken = []
    for target in _links(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target):
            continue  # https:, mailto:
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if dest in generated:
            continue  # written when the site is built; its anchors are checked by the strict build
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == []


def test_the_quickstarts_are_the_three_fenced_blocks_of_their_section():
    blocks = _quickstart_blocks()
    kinds = [(lang, code.splitlines()[0] == "# needs: torch") for lang, code in blocks]
    assert kinds == [("python", False), ("python", True), ("bash", False)]
    for lang, code in blocks:
        assert len(code.splitlines()) <= 15, f"a quickstart is about ten lines, this {lang} one has more:\n{code}"


def test_the_theory_quickstart_runs_from_an_empty_folder(tmp_path):
    lang, code = _quickstart_blocks()[0]
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    low, exact, high = (float(x) for x in re.findall(r"-?\d+\.\d+", done.stdout))
    assert low <= exact <= high
    assert list(tmp_path.iterdir()) == []  # writes nothing where it runs


def _readme_verdicts() -> dict[tuple[int, str], set[str]]:
    """``{(claim, "synthetic" | "real LM"): verdicts}`` from the README's table; a cell ``-`` gives an empty set."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("\n## What the toolkit found\n"):]
    rows = [line for line in section.splitlines() if re.match(r"^\|\s*\d", line)]
    assert rows, "README.md: no verdict table under 'What the toolkit found'"
    out = {}
    for row in rows:
        claim, synthetic, real = [c.strip() for c in row.strip("|").split("|")][:3]
        numbers = [int(n) for n in re.match(r"^([\d,\s]+)", claim).group(1).replace(",", " ").split()]
        for number in numbers:
            out[(number, "synthetic")] = set(VERDICT.findall(synthetic.split(":")[0]))
            out[(number, "real LM")] = set(VERDICT.findall(real.split(":")[0]))
    return out


def _setting_of(name: str) -> str | None:
    name = name.lower()
    if "real" in name:
        return "real LM"
    if "synthetic" in name or "exact" in name:
        return "synthetic"  # the README's synthetic column holds the exact checks, marked "(exact)"
    return None


def _paper_checks_verdicts() -> dict[tuple[int, str], set[str]]:
    """Verdicts per claim and setting from ``paper_checks.md``: from a table with a setting and a verdict column (a
    row per claim and setting), or from a table with a column per setting (a row per claim)."""
    found: dict[tuple[int, str], set[str]] = {}
    lines = (REPO / "paper_checks.md").read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines[:-1]):
        if not (line.startswith("|") and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip())):
            continue
        header = [c.strip().lower() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        setting_col = next((k for k, h in enumerate(header) if h == "setting"), None)
        verdict_col = next((k for k, h in enumerate(header) if h == "verdict"), None)
        per_column = {k: _setting_of(h) for k, h in enumerate(header) if setting_col is None and _setting_of(h)}
        if (setting_col is None or verdict_col is None) and not per_column:
            continue
        for row in lines[i + 2:]:
            if not row.startswith("|"):
                break
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]
            claim = re.search(r"\d+", cells[0]) if cells else None
            if claim is None:
                continue
            if per_column:
                for k, setting in per_column.items():
                    found.setdefault((int(claim.group()), setting), set()).update(VERDICT.findall(cells[k]))
            elif _setting_of(cells[setting_col]):
                found.setdefault((int(claim.group()), _setting_of(cells[setting_col])), set()).update(
                    VERDICT.findall(cells[verdict_col]))
    return {key: verdicts for key, verdicts in found.items() if verdicts}


def test_the_readme_verdicts_are_those_of_paper_checks():
    checks = _paper_checks_verdicts()
    assert checks, "paper_checks.md: found no table of verdicts per claim and setting"
    readme = _readme_verdicts()
    wrong = {key: (readme.get(key, set()), checks.get(key, set()))
             for key in set(readme) | set(checks) if readme.get(key, set()) != checks.get(key, set())}
    assert wrong == {}, "README.md's table (left) differs from paper_checks.md (right) for (claim, setting)"


def test_every_subpackage_has_an_api_reference_page():
    subpackages = sorted(p.name for p in (REPO / "sft_tilt").iterdir() if (p / "__init__.py").is_file())
    missing = []
    for name in subpackages:
        page = DOCS / "reference" / f"{name}.md"
        if not page.is_file() or f"::: sft_tilt.{name}" not in page.read_text(encoding="utf-8"):
            missing.append(name)
    assert missing == []


def test_relink_points_docs_links_at_pages_copies_other_files_and_names_missing_ones(tmp_path, monkeypatch):
    docs_pages = _docs_pages()
    repo = tmp_path / "repo"
    (repo / "docs" / "guides").mkdir(parents=True)
    (repo / "docs" / "guides" / "theory.md").write_text("# Theory\n")
    (repo / "figures").mkdir()
    (repo / "figures" / "drawn.png").write_bytes(b"png")
    monkeypatch.setattr(docs_pages, "REPO_ROOT", repo)
    monkeypatch.setattr(docs_pages, "DOCS_DIR", repo / "docs")
    source = repo / "paper_checks.md"
    text = ("[guide](docs/guides/theory.md#bounds) ![drawn](figures/drawn.png) ![lost](figures/lost.png) "
            "[out](https://example.org) [here](#claim-3) <img src=\"figures/drawn.png\">")
    out, copies = docs_pages.relink(text, source, "results/paper_checks.md")
    assert out == ("[guide](../guides/theory.md#bounds) ![drawn](files/figures/drawn.png) "
                   "*(lost: `figures/lost.png`, not in this checkout)* [out](https://example.org) [here](#claim-3) "
                   "<img src=\"files/figures/drawn.png\">")
    assert copies == {"results/files/figures/drawn.png": repo / "figures" / "drawn.png"}


def test_separate_tables_puts_a_blank_line_between_a_table_and_text():
    docs_pages = _docs_pages()
    assert docs_pages.separate_tables("title\n| a |\n|---|\n| 1 |\nnote\n\nend") == (
        "title\n\n| a |\n|---|\n| 1 |\n\nnote\n\nend\n")


def test_the_generated_summary_page_counts_every_committed_run():
    index = REPO / "results" / "default" / "index.json"
    committed = len(json.loads(index.read_text(encoding="utf-8")))
    page = _docs_pages().summary_page("default")
    assert page.splitlines()[0] == f"# Finished runs of the `default` preset: {committed} of {committed}"
    assert "| method | format | learning rate |" in page

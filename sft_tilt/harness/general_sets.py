"""General-capability sets, measured separately, all offline.

(a) ``"self"``: the initial model's own greedy responses to a fixed, varied list of instructions
    (:data:`INSTRUCTIONS`), generated once and cached. The initial model fits this data well by
    construction: it is the theory's ``P1`` (``q_0 ~ P1``), where one step's first-order term vanishes.
(b) ``"docs"``: human-written English prose from Python's bundled documentation (``pydoc_data.topics``).
(c) ``"code"``: Python source of a fixed list of standard-library modules (read with ``inspect``).

None of them is ever trained on, so every general loss is held-out. This module returns *texts*
(and instruction/response pairs); :mod:`sft_tilt.harness.encoding` turns them into token windows.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re

__all__ = ["GENERAL_SETS", "INSTRUCTIONS", "CODE_MODULES", "docs_paragraphs", "docs_texts", "code_texts"]

GENERAL_SETS = ("self", "docs", "code")

# A fixed, varied instruction list (writing, explanation, advice, reasoning, code, lists, rewriting).
INSTRUCTIONS: tuple[str, ...] = (
    "Write a short poem about the sea at night.",
    "Explain what photosynthesis is in simple terms.",
    "Give me three tips for staying focused while studying.",
    "What is the difference between a list and a tuple in Python?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "How do I boil an egg?",
    "Write a polite email declining a meeting invitation.",
    "What causes the seasons on Earth?",
    "Suggest a name for a small bakery and explain why.",
    "Write a Python function that reverses a string.",
    "Why is the sky blue?",
    "List five fruits that are high in vitamin C.",
    "Describe a cat to someone who has never seen one.",
    "What are the benefits of regular exercise?",
    "Translate 'good morning, how are you?' into French.",
    "Write a haiku about autumn leaves.",
    "Explain how a bicycle stays upright.",
    "Give an example of a metaphor and explain it.",
    "What should I pack for a weekend hiking trip?",
    "Explain recursion to a beginner programmer.",
    "Write a two-sentence horror story.",
    "How does a refrigerator keep food cold?",
    "What is the capital of Australia, and why is it not Sydney?",
    "Rewrite this sentence to be more formal: 'we gotta fix this asap'.",
    "Tell me a fun fact about octopuses.",
    "How can I save money on groceries?",
    "Explain what a black hole is.",
    "Write a short thank-you note to a teacher.",
    "What is the Pythagorean theorem?",
    "Give three ideas for a rainy-day activity with children.",
    "Explain the difference between weather and climate.",
    "Write a SQL query that counts the rows of a table named users.",
)

CODE_MODULES: tuple[str, ...] = (
    "textwrap", "fractions", "heapq", "bisect", "colorsys", "statistics", "shlex", "difflib",
    "calendar", "string", "queue", "glob", "fnmatch", "graphlib", "ipaddress", "json.decoder",
)


def docs_paragraphs(min_chars: int = 200) -> list[str]:
    """English prose paragraphs of ``pydoc_data.topics`` (sorted topics, paragraphs in order).

    A paragraph is kept when it is not indented (grammar and code blocks are), has at least
    ``min_chars`` characters and at least 80% of its characters are letters, spaces or punctuation.
    """
    if min_chars < 1:
        raise ValueError(f"min_chars: must be >= 1, got {min_chars}")
    from pydoc_data.topics import topics

    out = []
    for key in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[key]):
            if not para or para[0].isspace() or len(para) < min_chars:
                continue
            text = " ".join(para.split())
            prose = sum(ch.isalpha() or ch in " ,.;:'()-" for ch in text) / len(text)
            if prose >= 0.8 and "***" not in text and "::=" not in text:
                out.append(text)
    return out


def docs_texts(n: int) -> list[str]:
    """``n`` documents of English prose: consecutive prose paragraphs joined, spread evenly over the topics."""
    if n < 1:
        raise ValueError(f"n: must be >= 1, got {n}")
    paras = docs_paragraphs()
    if len(paras) < n:
        raise ValueError(f"n: only {len(paras)} prose paragraphs available, asked for {n}")
    stride = len(paras) // n
    return [" ".join(paras[i * stride : i * stride + 3]) for i in range(n)]


def code_texts(n: int) -> list[str]:
    """Source of the first ``n`` modules of :data:`CODE_MODULES` with the module docstring removed."""
    if not 1 <= n <= len(CODE_MODULES):
        raise ValueError(f"n: must be in [1, {len(CODE_MODULES)}], got {n}")
    out = []
    for name in CODE_MODULES[:n]:
        src = inspect.getsource(importlib.import_module(name))
        # drop the module docstring and the comment lines before the first statement
        tree = ast.parse(src)
        start = 0
        if tree.body and isinstance(tree.body[0], ast.Expr) and isinstance(getattr(tree.body[0], "value", None), ast.Constant):
            start = tree.body[0].end_lineno
        lines = src.splitlines()[start:]
        while lines and (not lines[0].strip() or lines[0].lstrip().startswith("#")):
            lines.pop(0)
        out.append("\n".join(lines) + "\n")
    return out

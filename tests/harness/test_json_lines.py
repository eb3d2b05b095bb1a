"""JSON Lines as the format defines it: a line ends at "\\n" and nowhere else.

A JSON string may hold U+2028, U+2029 and U+0085 raw (JSON requires escapes only below U+0020, for '"' and '\\'),
and ``json.dumps(..., ensure_ascii=False)`` writes them so; ``str.splitlines`` would cut a line at each of them.
"""

from __future__ import annotations

import hashlib
import json
import warnings

import pytest

from sft_tilt.harness.data_files import read_domain_file, read_general_file

# the characters str.splitlines cuts at that a JSON string may hold raw (the others, \v \f \x1c-\x1e, are control
# characters JSON must escape)
SEPARATORS = ["\u2028", "\u2029", "\u0085"]


def _jsonl(path, rows, end="\n"):
    path.write_bytes("".join(json.dumps(row, ensure_ascii=False) + end for row in rows).encode("utf-8"))
    return path


@pytest.mark.parametrize("char", SEPARATORS)
def test_a_raw_line_separator_inside_a_string_is_text(tmp_path, char):
    rows = [{"prompt": f"first{char}line", "response": f"so{char}4", "answer": 4}, {"prompt": "q2", "response": "r2"}]
    path = _jsonl(tmp_path / "d.jsonl", rows)
    assert char in path.read_text(encoding="utf-8")  # written raw, not escaped
    examples = read_domain_file(path)
    assert [(e.prompt, e.response_cot) for e in examples] == [(r["prompt"], r["response"]) for r in rows]
    assert [dict(e.inputs)["line"] for e in examples] == [1, 2]
    texts, _ = read_general_file(_jsonl(tmp_path / "g.jsonl", [{"text": f"a{char}b"}, {"text": "c"}]))
    assert texts == [f"a{char}b", "c"]


def test_errors_name_the_files_own_line_numbers(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps({"prompt": "a\u2028b\u2029c", "response": "r"}, ensure_ascii=False) + "\n{oops\n",
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"line 2, column 2: invalid JSON") as err:
        read_domain_file(path)
    assert "line 1" not in str(err.value) and "line 3" not in str(err.value)


def test_crlf_line_ends_read_like_lf(tmp_path):
    rows = [{"prompt": "p1", "response": "r1"}, {"prompt": "p2", "response": "r2"}]
    lf, crlf = read_domain_file(_jsonl(tmp_path / "lf.jsonl", rows)), read_domain_file(
        _jsonl(tmp_path / "crlf.jsonl", rows, end="\r\n"))
    assert [(e.prompt, e.response_cot, e.inputs) for e in lf] == [(e.prompt, e.response_cot, e.inputs) for e in crlf]


def _point_line(key: str, point: dict) -> str:
    """A points.jsonl line as the run store documents it: the run's key, the point and the SHA-256 of the sorted-key
    JSON of both, written here with the separator raw."""
    digest = hashlib.sha256(json.dumps({"key": key, "point": point}, sort_keys=True).encode()).hexdigest()
    return json.dumps({"key": key, "point": point, "sha256": digest}, sort_keys=True, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("char", SEPARATORS)
def test_stored_points_with_a_raw_separator_in_a_string_read_back(tmp_path, char):
    from sft_tilt.harness.runs import _read_points

    folder = tmp_path / ("0" * 20)  # a run folder is named by its run's key
    folder.mkdir()
    points = [{"step": 1, "note": f"x{char}y"}, {"step": 2, "note": "z"}]
    (folder / "points.jsonl").write_bytes("".join(_point_line(folder.name, p) for p in points).encode("utf-8"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _read_points(folder) == points

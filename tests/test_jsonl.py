"""core.jsonl: the one JSON Lines reader (offline imports, judge calibration, humans standing in for
the judge): line numbers kept, blank lines skipped, a bad line named."""
import pytest

from core.jsonl import JsonLineError, json_objects


def test_objects_come_with_their_line_numbers_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"b": "é"}\n', encoding="utf-8")
    assert list(json_objects(path)) == [(1, {"a": 1}), (4, {"b": "é"})]


@pytest.mark.parametrize("bad, reason", [("{nope", "not JSON"), ("[1, 2]", "expected a JSON object"),
                                         ('"text"', "expected a JSON object")])
def test_a_bad_line_is_named(tmp_path, bad, reason):
    path = tmp_path / "b.jsonl"
    path.write_text('{"ok": true}\n' + bad + "\n", encoding="utf-8")
    with pytest.raises(JsonLineError) as e:
        list(json_objects(path))
    assert e.value.line_no == 2 and e.value.reason.startswith(reason) and str(e.value).startswith(f"line 2: {reason}")


@pytest.mark.django_db
def test_humans_from_a_broken_line_is_a_clear_error(tmp_path):
    from shadow.services.judge import JudgeError, shadow_judge_from_humans

    path = tmp_path / "prefs.jsonl"
    path.write_text('{"id": "t1", "response_a": "x", "response_b": "y", "human": "a"}\n{broken\n', encoding="utf-8")
    with pytest.raises(JudgeError, match=r"prefs\.jsonl:2: not JSON"):
        shadow_judge_from_humans(path=path)

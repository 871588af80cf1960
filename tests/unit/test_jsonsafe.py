"""podvisor.core.jsonsafe: the one strict JSON reading of the logger and the aggregator."""
from __future__ import annotations

import json

import pytest

from podvisor.core import jsonsafe
from podvisor.core.jsonsafe import DEPTH_ERROR, MAX_DEPTH, JsonError


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def test_depth_limit_is_inclusive_and_checked_without_recursion():
    assert jsonsafe.decode(nested(MAX_DEPTH)) == (json.loads(nested(MAX_DEPTH)), True)
    for depth in (MAX_DEPTH + 1, 980, 100_000):  # far past the interpreter's recursion limit
        with pytest.raises(JsonError, match=DEPTH_ERROR):
            jsonsafe.decode(nested(depth))
    assert jsonsafe.scan(nested(100_000)) == (100_000, 200_001)


def test_brackets_inside_strings_do_not_count():
    text = json.dumps({"message": "[" * 500 + "{" * 500, "quoted": '\\"[[['})
    assert not jsonsafe.too_deep(text)
    assert jsonsafe.decode(text)[0]["message"].startswith("[[[")


def test_constants_become_strings_and_the_text_is_not_passed_on_as_written():
    assert jsonsafe.decode('{"a": NaN, "b": [Infinity, -Infinity]}') == (
        {"a": "NaN", "b": ["Infinity", "-Infinity"]}, False)
    assert jsonsafe.decode('{"a": 1.5}') == ({"a": 1.5}, True)


def test_numbers_out_of_float_range_are_kept_as_text_when_read_exactly():
    text = '{"v": 1e400, "w": -2.5E+999, "ok": 0.25, "big": 123456789012345678901234567890}'
    value, verbatim = jsonsafe.decode(text)
    assert verbatim and value["v"] == float("inf")  # valid JSON as written; encoding finds out
    with pytest.raises(ValueError):
        jsonsafe.dumps(value)
    exact = jsonsafe.loads_exact(text)
    assert exact == {"v": "1e400", "w": "-2.5E+999", "ok": 0.25, "big": 123456789012345678901234567890}
    assert json.loads(jsonsafe.dumps(exact)) == exact


@pytest.mark.parametrize("text", ["{not json", '{"a": 1} extra', ""])
def test_malformed_text_is_a_json_error_with_a_reason(text):
    with pytest.raises(JsonError) as caught:
        jsonsafe.decode(text)
    assert str(caught.value)


def test_entries_of_a_flat_batch_come_from_one_decoder_call():
    text = json.dumps([{"message": "a"}, {"message": "b"}])
    entries = jsonsafe.decode_entries(text)
    assert entries.is_array and entries.values == [{"message": "a"}, {"message": "b"}]
    assert entries.exact(1) == {"message": "b"}


def test_a_deep_entry_is_refused_alone_and_its_batch_mates_kept():
    text = ('[{"message": "before"}, {"message": "deep", "x": ' + nested(980) + '}, '
            '{"message": "nan", "v": NaN}, {"message": "far", "v": 1e400}, {"message": "after"}]')
    entries = jsonsafe.decode_entries(text)
    values = entries.values
    assert values[0] == {"message": "before"} and values[4] == {"message": "after"}
    assert isinstance(values[1], JsonError) and str(values[1]) == DEPTH_ERROR
    assert values[2] == {"message": "nan", "v": "NaN"}
    assert entries.exact(3) == {"message": "far", "v": "1e400"}


def test_a_batch_entry_just_over_the_limit_is_refused_even_when_the_batch_parses():
    text = json.dumps([{"message": "m", "x": json.loads(nested(MAX_DEPTH))}, {"message": "ok"}])
    values = jsonsafe.decode_entries(text).values
    assert isinstance(values[0], JsonError) and values[1] == {"message": "ok"}


def test_one_object_body_and_malformed_batches():
    assert jsonsafe.decode_entries('{"message": "one"}').values == [{"message": "one"}]
    deep = jsonsafe.decode_entries('{"x": ' + nested(2000) + "}")
    assert not deep.is_array and isinstance(deep.values[0], JsonError)
    for bad in ('[{"a": 1} {"b": 2}]', '[{"a": NaN}, ]', '[{"a": NaN}] trailing', "[" + nested(2000)):
        with pytest.raises(JsonError):
            jsonsafe.decode_entries(bad)


def test_scalar_entries_do_not_lend_their_bracket_budget_to_a_deep_one():
    deep = "{" + '"a":{' * 150 + "}" * 150 + "}"
    values = jsonsafe.decode_entries("[" + "5," * 160 + deep + "]").values
    assert values[:160] == [5] * 160 and isinstance(values[160], JsonError)

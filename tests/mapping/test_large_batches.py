"""Large batches take shortcuts (each distinct text coerced or mapped once, JSON numbers not turned
into text): their results must be exactly those of small batches, row for row."""

import math

import pandas as pd
import pytest

from integration_pipelines.connectors.spec import FieldMapping
from integration_pipelines.mapping import map_records

REPEAT = 1100  # above the sample the shortcuts look at first, even for two values

CASES = [
    ({"type": "date"}, ["2025-03-01", " 2025-03-02 ", "2025-03", "2025", "2025-13-45", "", None, "x"]),
    ({"type": "date", "format": "%d/%m/%Y"}, ["01/03/2025", "31/02/2025", None, " 02/03/2025"]),
    ({"type": "datetime"}, ["2025-06-01T08:00:00Z", "2025-06-01T08:00", "2025-06-01 10:00+02", "no", None]),
    ({"type": "datetime", "timezone": "America/Chicago"}, ["2025-11-02T01:30", "2025-03-09T02:30", None]),
    ({"type": "integer"}, ["42", " +3 ", "007", "12.00", "4.5", "1e3", "", None, "abc"]),
    ({"type": "number"}, ["1.5", " 2 ", "inf", "nan", "", None, "x", "1e3"]),
    ({"type": "decimal"}, ["1.005", "2.675", "-0.5", None, "y"]),
    ({"type": "boolean"}, ["true", "No", " YES ", "1", "0", "maybe", None]),
    ({"map": {"OPEN": "open", "CLOSED": "closed"}}, ["OPEN", " CLOSED ", "WEIRD", "", None]),
    ({"map": {"OPEN": "open"}, "default": "draft"}, ["OPEN", "odd", None]),
    ({"map": {"A": 1, "B": 2}, "type": "integer"}, ["A", "B", "C", None]),
    ({"type": "integer"}, [42, -7, 0, None, 10**17]),
    ({"type": "integer"}, [10**18, 5]),
    ({"type": "number"}, [1.5, 2, None, math.nan, -0.25]),
    ({"type": "number"}, [1.5, math.inf]),
    ({"type": "decimal"}, [1.005, 2.675, 3, None]),
]


def mapped(values: list, spec: dict) -> tuple[pd.Series, list[tuple[int, str]]]:
    result = map_records([{"v": v} for v in values], {"f": FieldMapping(path="v", **spec)})
    return result.frame["f"], list(zip(result.errors["row"], result.errors["reason"], strict=True))


@pytest.mark.parametrize(("spec", "values"), CASES)
def test_a_large_batch_maps_like_a_small_one(spec, values):
    small, small_errors = mapped(values, spec)
    large, large_errors = mapped(values * REPEAT, spec)
    expected = pd.concat([small] * REPEAT, ignore_index=True)
    pd.testing.assert_series_equal(large, expected)
    assert [(r % len(values), reason) for r, reason in large_errors] == small_errors * REPEAT
    assert [r for r, _ in large_errors] == sorted(r for r, _ in large_errors)
    if small.dtype == object:  # nulls stay None, not NaN
        assert [v is None for v in large[: len(values)]] == [v is None for v in small]


@pytest.mark.parametrize(
    ("spec", "numbers"),
    [
        ({"type": "integer"}, [42, -7, 0, None, 10**17, 123456789012345678]),
        ({"type": "number"}, [1.5, 2, None, math.nan, -0.25, 1e300]),
        ({"type": "decimal"}, [1.005, 2.675, 3, None, 0.125]),
    ],
)
def test_json_numbers_give_what_their_text_gives(spec, numbers):
    direct, direct_errors = mapped(numbers, spec)
    as_text, text_errors = mapped([*numbers, "0"], spec)  # one text value: every value goes through text
    pd.testing.assert_series_equal(direct, as_text[: len(numbers)])
    assert direct_errors == text_errors == []


def test_shortcuts_are_taken_for_large_enum_like_text():
    from integration_pipelines.mapping.coercion import as_text, few_distinct

    column = pd.Series(["2025-03-01", None, "x"] * REPEAT, dtype=object)
    assert as_text(column)[:3].tolist()[::2] == ["2025-03-01", "x"]
    codes, distinct = few_distinct(column)
    assert distinct.tolist() == ["2025-03-01", "x"] and codes[:3].tolist() == [0, -1, 1]
    assert few_distinct(pd.Series([f"id-{i}" for i in range(5000)], dtype=object)) is None


def test_a_large_concat_joins_like_a_small_one():
    places = [("Austin", "TX"), (" Leeds ", None), (None, "ON"), (None, None), ("", "  "), ("Paris", "")]
    records = [{"location": {"city": city, "region": region}} for city, region in places]
    spec = {"f": FieldMapping(concat=["location.city", ", ", "location.region"])}
    small = map_records(records, spec).frame["f"]
    large = map_records(records * REPEAT, spec).frame["f"]
    pd.testing.assert_series_equal(large, pd.concat([small] * REPEAT, ignore_index=True))
    assert small.tolist()[:3] == ["Austin, TX", "Leeds", "ON"]

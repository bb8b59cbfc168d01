import datetime as dt

import pandas as pd
import pytest

from integration_pipelines.connectors.spec import FieldMapping
from integration_pipelines.mapping import map_records


def run(values, **spec):
    """Map `{"v": value}` records through one field; return (values, {row: reason})."""
    records = [{"v": v} for v in values]
    result = map_records(records, {"f": FieldMapping(path="v", **spec)})
    return result.frame["f"], dict(zip(result.errors["row"], result.errors["reason"], strict=True))


def test_string_stringifies_strips_and_rejects_containers():
    out, errors = run(["  Austin ", 42, 1.5, None, "", ["a"]], type="string")
    assert str(out.dtype) == "str"
    assert out.tolist()[:3] == ["Austin", "42", "1.5"]
    assert out.isna().tolist() == [False, False, False, True, True, True]
    assert errors == {5: "f: ['a'] is not a string"}


def test_integer():
    out, errors = run([42, "7", " +3 ", "007", 5.0, "12.00", None, "4.5", "abc", True, "1e3"], type="integer")
    assert str(out.dtype) == "Int64"
    assert out.tolist()[:6] == [42, 7, 3, 7, 5, 12]
    assert out[6:].isna().all()
    assert errors == {
        7: "f: '4.5' is not an integer",
        8: "f: 'abc' is not an integer",
        9: "f: True is not an integer",
        10: "f: '1e3' is not an integer",
    }


def test_integer_keeps_large_ids_exact():
    out, errors = run(["123456789012345678", None], type="integer")
    assert out[0] == 123456789012345678
    assert errors == {}


def test_number():
    out, errors = run(["1.5", 2, "-3e2", None, "x", "nan", "inf"], type="number")
    assert out.dtype == "float64"
    assert out.tolist()[:3] == [1.5, 2.0, -300.0]
    assert set(errors) == {4, 5, 6}
    assert errors[4] == "f: 'x' is not a number"


def test_decimal_rounds_to_two_places_as_float64():
    out, errors = run(["95.00", "12.3456", 7, "0.125", "$5"], type="decimal")
    assert out.dtype == "float64"
    assert out.tolist()[:4] == [95.0, 12.35, 7.0, 0.12]  # 0.125 -> 0.12: half-to-even on binary value
    assert errors == {4: "f: '$5' is not a decimal number"}


def test_boolean():
    values = ["true", "FALSE", "Yes", "no", "1", 0, True, None, "maybe"]
    out, errors = run(values, type="boolean")
    assert str(out.dtype) == "boolean"
    assert out.tolist()[:7] == [True, False, True, False, True, False, True]
    assert out[7] is pd.NA
    assert errors == {8: "f: 'maybe' is not a boolean (true/false, yes/no, 1/0)"}


def test_date_iso_partial_and_invalid():
    out, errors = run(
        ["2019-03-15", "2019-03", "2019", "2019-03-15T23:30:00Z", None, "2025-13-45", "15/03/2019"],
        type="date",
    )
    assert out.tolist()[:4] == [
        dt.date(2019, 3, 15),
        dt.date(2019, 3, 1),
        dt.date(2019, 1, 1),
        dt.date(2019, 3, 15),
    ]
    assert out[4] is None
    assert errors == {
        5: "f: '2025-13-45' is not a date (expected YYYY-MM-DD, YYYY-MM or YYYY)",
        6: "f: '15/03/2019' is not a date (expected YYYY-MM-DD, YYYY-MM or YYYY)",
    }


def test_date_with_format():
    out, errors = run(["03/15/2019", "3/5/2019", "2019-03-15"], type="date", format="%m/%d/%Y")
    assert out.tolist()[:2] == [dt.date(2019, 3, 15), dt.date(2019, 3, 5)]
    assert errors == {2: "f: '2019-03-15' is not a date (format %m/%d/%Y)"}
    _, errors = run(["2025-13-45"], type="date", format="%Y-%m-%d")
    assert errors == {0: "f: '2025-13-45' is not a date (format %Y-%m-%d)"}


def test_datetime_naive_in_timezone_converted_to_utc():
    out, errors = run(
        [
            "2025-01-15T09:00:00",
            "2025-07-15T09:00:00",
            "2025-07-15T09:00:00+02:00",
            "2025-07-15T09:00:00Z",
            "2025-07-15",
            None,
            "yesterday",
        ],
        type="datetime",
        timezone="Europe/London",
    )
    assert str(out.dtype) == "datetime64[us, UTC]"
    assert out.tolist()[:5] == [
        pd.Timestamp("2025-01-15 09:00", tz="UTC"),  # GMT
        pd.Timestamp("2025-07-15 08:00", tz="UTC"),  # BST, one hour ahead
        pd.Timestamp("2025-07-15 07:00", tz="UTC"),  # explicit offset wins over timezone
        pd.Timestamp("2025-07-15 09:00", tz="UTC"),
        pd.Timestamp("2025-07-14 23:00", tz="UTC"),  # midnight London
    ]
    assert out[5:].isna().all()
    assert errors == {6: "f: 'yesterday' is not an ISO 8601 datetime"}


def test_datetime_default_timezone_is_utc_and_dst_edges_do_not_fail():
    out, errors = run(["2025-03-01 10:00:00"], type="datetime")
    assert out[0] == pd.Timestamp("2025-03-01 10:00", tz="UTC")
    # 01:30 on 30 March 2025 does not exist in London (moves forward); on 26 October it occurs twice
    out, errors = run(
        ["2025-03-30T01:30:00", "2025-10-26T01:30:00"], type="datetime", timezone="Europe/London"
    )
    assert out.tolist() == [
        pd.Timestamp("2025-03-30 01:00", tz="UTC"),
        pd.Timestamp("2025-10-26 00:30", tz="UTC"),
    ]
    assert errors == {}


def test_datetime_with_format_and_with_offset_in_format():
    out, errors = run(
        ["15/07/2025 09:30", "2025-07-15"],
        type="datetime",
        format="%d/%m/%Y %H:%M",
        timezone="America/Chicago",
    )
    assert out[0] == pd.Timestamp("2025-07-15 14:30", tz="UTC")
    assert errors == {1: "f: '2025-07-15' is not a datetime (format %d/%m/%Y %H:%M)"}
    out, _ = run(["2025-07-15 09:30 +0200"], type="datetime", format="%Y-%m-%d %H:%M %z")
    assert out[0] == pd.Timestamp("2025-07-15 07:30", tz="UTC")


def test_datetime_mixed_offsets_and_naive_values_in_one_column():
    out, errors = run(
        ["2025-07-15T09:00:00-05:00", "2025-07-15T09:00:00+0530", "2025-07-15T09:00:00"],
        type="datetime",
        timezone="Asia/Tokyo",
    )
    assert out.tolist() == [
        pd.Timestamp("2025-07-15 14:00", tz="UTC"),
        pd.Timestamp("2025-07-15 03:30", tz="UTC"),
        pd.Timestamp("2025-07-15 00:00", tz="UTC"),
    ]
    assert errors == {}


def test_list():
    out, errors = run(["a", ["b", "c"], None, {"k": 1}], type="list")
    assert out.tolist() == [["a"], ["b", "c"], [], [{"k": 1}]]
    assert errors == {}


@pytest.mark.parametrize(
    ("type_", "bad"),
    [("integer", "x"), ("number", "x"), ("decimal", "x"), ("boolean", "x"), ("date", "x"), ("datetime", "x")],
)
def test_bad_values_reject_only_their_row(type_, bad):
    records = [{"id": "1", "v": None}, {"id": "2", "v": bad}, {"id": "3"}]
    result = map_records(
        records, {"external_id": FieldMapping(path="id"), "v": FieldMapping(path="v", type=type_)}
    )
    assert result.rejected_rows() == {1}
    assert result.errors["field"].tolist() == ["v"]
    assert result.frame["external_id"].tolist() == ["1", "2", "3"]
    assert result.frame["v"].isna().all()

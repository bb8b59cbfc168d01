import datetime as dt

import numpy as np
import pandas as pd
import pytest

from integration_pipelines.connectors.spec import FieldMapping
from integration_pipelines.mapping import MappingConfigError, check_mapping, map_records, parse_concat

RECORDS = [
    {
        "id": "J-1",
        "position": {"title": "Welder", "openings": "3"},
        "location": {"city": "Austin", "region": "TX", "zip": "78701"},
        "status": "OPEN",
        "skills": ["welding", "forklift"],
        "client": {"ref": "CL-9"},
    },
    {
        "id": "J-2",
        "position": {"title": "Nurse", "openings": 1},
        "location": {"city": "Austin"},
        "status": "CLOSED",
        "skills": "triage",
        "client": {"ref": "CL-404"},
    },
    {
        "id": "J-3",
        "position": {"title": "Driver"},
        "location": {"region": "TX", "zip": ""},
        "status": "WEIRD",
        "client": {},
    },
]


def fm(**kwargs):
    return FieldMapping(**kwargs)


def one(mapping, records=RECORDS, **kwargs):
    result = map_records(records, {"x": mapping}, **kwargs)
    return result.frame["x"].tolist(), result.errors.to_dict("records")


# ------------------------------------------------------------------ result shape


def test_frame_has_one_row_per_record_in_order_and_one_column_per_mapping_key():
    result = map_records(
        RECORDS,
        {"external_id": "id", "title": {"path": "position.title"}, "missing": fm(path="no.such.field")},
    )
    assert list(result.frame.columns) == ["external_id", "title", "missing"]
    assert list(result.frame.index) == [0, 1, 2]
    assert result.frame["external_id"].tolist() == ["J-1", "J-2", "J-3"]
    assert result.frame["title"].tolist() == ["Welder", "Nurse", "Driver"]
    assert result.frame["missing"].isna().all()
    assert list(result.errors.columns) == ["row", "field", "reason"]
    assert result.errors.empty
    assert result.rejected_rows() == set()


def test_empty_records_give_empty_frame_with_mapped_columns_and_types():
    result = map_records(
        [],
        {"external_id": fm(path="id", type="string"), "n": fm(path="n", type="integer"), "h": fm(hook="h")},
        hooks={"h": lambda raw: raw["never"]},
    )
    assert list(result.frame.columns) == ["external_id", "n", "h"]
    assert len(result.frame) == 0
    assert str(result.frame["n"].dtype) == "Int64"
    assert result.errors.empty


# ------------------------------------------------------------------ sources


def test_path_with_list_index():
    assert one(fm(path="skills.0")) == (["welding", "triage", None], [])
    assert one(fm(path="skills.1")) == (["forklift", None, None], [])


def test_value_constant():
    values, errors = one(fm(value="ACME"))
    assert values == ["ACME", "ACME", "ACME"]
    values, _ = one(fm(value="5", type="integer"))
    assert values == [5, 5, 5]


def test_concat_city_region_and_missing_parts():
    values, errors = one(fm(concat=["location.city", ", ", "location.region"]))
    assert values[:2] == ["Austin, TX", "Austin"]
    assert values[2] == "TX"
    assert errors == []


def test_concat_all_parts_missing_is_null():
    values, _ = one(fm(concat=["nope.a", ", ", "nope.b"]))
    assert all(pd.isna(v) for v in values)


def test_concat_null_middle_part_drops_its_leading_literal_and_empty_text_counts_as_missing():
    values, _ = one(fm(concat=["location.city", ", ", "location.region", " ", "location.zip"]))
    # J-2: region and zip missing; J-3: city missing, zip is "" (treated as missing)
    assert values == ["Austin, TX 78701", "Austin", "TX"]


def test_concat_separator_quoted_literals_prefix_and_suffix():
    values, _ = one(fm(concat=["'Job '", "id", "position.title", "'!'"], separator=" - "))
    assert values == ["Job J-1 - Welder!", "Job J-2 - Nurse!", "Job J-3 - Driver!"]
    values, _ = one(fm(concat=["'Ref:'", "client.ref"]))
    assert values[:2] == ["Ref:CL-9", "Ref:CL-404"]
    assert pd.isna(values[2])  # no value -> no prefix either


def test_concat_literal_rule():
    parts = parse_concat(["location.city", ", ", "'USA'", "USA", "-", "@id", "n/a", ""])
    assert [(p.text, p.is_path) for p in parts] == [
        ("location.city", True),
        (", ", False),
        ("USA", False),
        ("USA", True),
        ("-", False),
        ("@id", True),
        ("n/a", False),
        ("", False),
    ]


def test_concat_without_paths_is_a_config_error():
    with pytest.raises(MappingConfigError, match="no path item"):
        map_records(RECORDS, {"x": fm(concat=["'a'", ", "])})


def test_hook_gets_flat_frame_and_result_is_typed_like_any_source():
    seen = {}

    def upper_title(raw: pd.DataFrame) -> pd.Series:
        seen["columns"] = set(raw.columns)
        return raw["position.title"].str.upper()

    values, errors = one(
        fm(hook="upper_title", map={"WELDER": "w", "NURSE": "n"}, default="other"),
        hooks={"upper_title": upper_title},
    )
    assert values == ["w", "n", "other"]
    assert {"position.title", "location.city", "skills"} <= seen["columns"]


def test_hook_cannot_mutate_the_raw_frame_seen_by_other_fields():
    def vandal(raw):
        raw["id"] = "X"
        return raw["id"]

    result = map_records(RECORDS, {"a": fm(hook="vandal"), "b": fm(path="id")}, hooks={"vandal": vandal})
    assert result.frame["a"].tolist() == ["X", "X", "X"]
    assert result.frame["b"].tolist() == ["J-1", "J-2", "J-3"]


def test_hook_output_realigned_by_index_or_refused_when_wrong_length():
    hooks = {
        "reversed": lambda raw: raw["id"].iloc[::-1],
        "short": lambda raw: raw["id"].iloc[:2],
        "array": lambda raw: np.array([1, 2, 3]),
    }
    assert one(fm(hook="reversed"), hooks=hooks)[0] == ["J-1", "J-2", "J-3"]
    assert one(fm(hook="array"), hooks=hooks)[0] == [1, 2, 3]
    with pytest.raises(MappingConfigError, match="'short' .* returned 2 values for 3 records"):
        one(fm(hook="short"), hooks=hooks)


def test_hook_exception_propagates_with_a_note_naming_hook_and_field():
    def broken(raw):
        raise KeyError("boom")

    with pytest.raises(KeyError) as info:
        one(fm(hook="broken"), hooks={"broken": broken})
    assert "in hook 'broken', computing field 'x'" in info.value.__notes__


def test_unknown_hook_names_the_available_ones():
    with pytest.raises(MappingConfigError, match=r"hook 'nope' is not defined; available hooks: a, b"):
        map_records(RECORDS, {"x": fm(hook="nope")}, hooks={"b": lambda r: r, "a": lambda r: r})
    with pytest.raises(MappingConfigError, match="available hooks: none"):
        map_records(RECORDS, {"x": fm(hook="nope")})


# ------------------------------------------------------------------ map and default


def test_map_unmapped_value_is_a_row_error_naming_known_values():
    values, errors = one(fm(path="status", map={"OPEN": "open", "CLOSED": "closed"}))
    assert values == ["open", "closed", None]
    assert errors == [{"row": 2, "field": "x", "reason": "x: unmapped value 'WEIRD' (known: OPEN, CLOSED)"}]


def test_map_with_default_takes_default_for_unmapped_and_missing():
    values, errors = one(fm(path="status", map={"OPEN": "open"}, default="unknown"))
    assert values == ["open", "unknown", "unknown"]
    assert errors == []
    values, errors = one(fm(path="nothing", map={"OPEN": "open"}))
    assert values == [None, None, None]
    assert errors == []  # null is not unmapped


def test_map_matches_non_string_values_by_their_text_and_can_map_to_null():
    records = [{"code": 1}, {"code": "2"}, {"code": 3}]
    values, errors = one(fm(path="code", map={"1": "A", "2": "B", "3": None}, type="string"), records)
    assert values[:2] == ["A", "B"]
    assert pd.isna(values[2])
    assert errors == []


def test_default_fills_nulls_but_not_rejected_cells():
    records = [{"n": "4"}, {}, {"n": "four"}]
    result = map_records(records, {"n": fm(path="n", type="integer", default="0")})
    assert result.frame["n"].tolist()[:2] == [4, 0]
    assert pd.isna(result.frame["n"][2])
    assert result.rejected_rows() == {2}


def test_bad_default_or_map_value_for_the_type_is_a_config_error():
    with pytest.raises(MappingConfigError, match="default 'soon' is not a date"):
        map_records(RECORDS, {"x": fm(path="d", type="date", default="soon")})
    with pytest.raises(MappingConfigError, match="map value 'many' is not an integer"):
        map_records(RECORDS, {"x": fm(path="d", type="integer", map={"A": "many"})})


# ------------------------------------------------------------------ lookup


def test_lookup_resolves_ids_and_unknown_ones_are_row_errors():
    calls = []

    def lookup(entity: str, external_ids: pd.Series) -> pd.Series:
        calls.append((entity, external_ids.tolist(), list(external_ids.index)))
        known = {"CL-9": 901}
        return external_ids.map(known)

    result = map_records(RECORDS, {"client_id": fm(path="client.ref", lookup="job")}, lookup=lookup)
    assert calls == [("job", ["CL-9", "CL-404"], [0, 1])]  # only non-null ids, once per batch
    assert result.frame["client_id"].tolist()[0] == 901
    assert result.frame["client_id"].isna().tolist() == [False, True, True]
    assert result.errors.to_dict("records") == [
        {
            "row": 1,
            "field": "client_id",
            "reason": "client_id: no job with external id 'CL-404' has been synced for this connection",
        }
    ]


def test_lookup_integer_ids_stay_integers_when_some_rows_are_null():
    def lookup(entity, ids):
        return pd.Series([7] * len(ids), index=ids.index, dtype="int64")

    values, _ = one(fm(path="client.ref", lookup="job"), lookup=lookup)
    assert values[:2] == [7, 7]
    assert values[2] is pd.NA


def test_lookup_needed_but_not_given_is_a_config_error():
    with pytest.raises(MappingConfigError, match="resolves job ids but no lookup was given"):
        map_records(RECORDS, {"job_id": fm(path="id", lookup="job")})


# ------------------------------------------------------------------ configuration checks


def test_config_errors_for_format_timezone_and_paths():
    with pytest.raises(MappingConfigError, match="format applies to type date or datetime"):
        map_records(RECORDS, {"x": fm(path="id", type="string", format="%Y")})
    with pytest.raises(MappingConfigError, match="unknown timezone 'Mars/Olympus'"):
        map_records(RECORDS, {"x": fm(path="id", type="datetime", timezone="Mars/Olympus")})
    with pytest.raises(MappingConfigError, match="timezone applies to type datetime"):
        map_records(RECORDS, {"x": fm(path="id", type="date", timezone="UTC")})
    with pytest.raises(MappingConfigError, match="empty segment"):
        map_records(RECORDS, {"x": fm(path="a..b")})


def test_check_mapping_accepts_connector_file_shorthand():
    checked = check_mapping({"title": "position.title", "n": {"path": "n", "type": "integer"}})
    assert checked["title"] == FieldMapping(path="position.title")
    assert checked["n"].type == "integer"
    with pytest.raises(MappingConfigError, match="field 'bad'"):
        check_mapping({"bad": {"path": "a", "value": 1}})


def test_errors_are_sorted_by_row_and_accepted_drops_rejected_rows():
    records = [{"a": "x", "b": "1"}, {"a": "1", "b": "y"}, {"a": "z", "b": "w"}]
    result = map_records(records, {"a": fm(path="a", type="integer"), "b": fm(path="b", type="integer")})
    assert result.errors[["row", "field"]].values.tolist() == [[0, "a"], [1, "b"], [2, "a"], [2, "b"]]
    assert result.rejected_rows() == {0, 1, 2}
    assert result.accepted().empty
    ok = map_records([{"a": "1"}, {"a": "q"}], {"a": fm(path="a", type="integer")})
    assert list(ok.accepted().index) == [0]


def test_date_values_come_out_as_dates():
    values, _ = one(fm(value="2024-02-29", type="date"))
    assert values == [dt.date(2024, 2, 29)] * 3


def test_star_plucks_from_every_list_element_and_items_shapes_objects() -> None:
    from integration_pipelines.connectors.spec import FieldMapping
    from integration_pipelines.mapping import map_records

    records = [
        {
            "Skills": {"Raw": [{"Name": "Java"}, {"Name": "SQL"}, {"Other": 1}]},
            "Positions": [
                {"JobTitle": {"Raw": "Dev"}, "Employer": {"Name": "Acme"}},
                {"JobTitle": {"Raw": "Lead"}},
            ],
        },
        {"Skills": {"Raw": {"Name": "Go"}}},  # XML-style single element
        {},
    ]
    mapping = {
        "skills": FieldMapping(path="Skills.Raw.*.Name", type="list"),
        "positions": FieldMapping(
            path="Positions", items={"title": "JobTitle.Raw", "employer": "Employer.Name"}
        ),
    }
    result = map_records(records, mapping)
    assert result.frame["skills"].tolist() == [["Java", "SQL"], ["Go"], []]
    assert result.frame["positions"].tolist() == [
        [{"title": "Dev", "employer": "Acme"}, {"title": "Lead", "employer": None}],
        [],
        [],
    ]
    assert result.errors.empty


def test_lookup_missing_null_keeps_the_row() -> None:
    import pandas as pd

    from integration_pipelines.connectors.spec import FieldMapping
    from integration_pipelines.mapping import map_records

    def lookup(entity: str, ids: pd.Series) -> pd.Series:
        return ids.map({"J1": "internal-1"})

    records = [{"job": "J1"}, {"job": "J2"}, {}]
    strict = map_records(records, {"job_id": FieldMapping(path="job", lookup="job")}, lookup=lookup)
    assert strict.rejected_rows() == {1}
    lenient = map_records(
        records, {"job_id": FieldMapping(path="job", lookup="job", lookup_missing="null")}, lookup=lookup
    )
    assert lenient.errors.empty
    assert lenient.frame["job_id"].tolist()[0] == "internal-1" and pd.isna(lenient.frame["job_id"][1])

import math

import pandas as pd
import pytest

from integration_pipelines.mapping.paths import as_list, flatten_records, get_path, is_path, resolve_path

RECORDS = [
    {
        "id": "c1",
        "ContactInformation": {"Telephones": [{"Raw": "555-0100"}, {"Raw": "555-0101"}], "Email": "a@x.com"},
        "Title": ["Engineer", "Lead"],
        "score": 7,
    },
    {
        "id": "c2",
        "ContactInformation": {"Telephones": [], "Email": None},
        "Title": "Nurse",
    },
    {"id": "c3", "ContactInformation": None},
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        (float("nan"), []),
        ([1, 2], [1, 2]),
        ((1, 2), [1, 2]),
        ({"a": 1}, [{"a": 1}]),
        ("x", ["x"]),
        (0, [0]),
    ],
)
def test_as_list(value, expected):
    assert as_list(value) == expected


def test_flatten_records_dotted_columns_lists_kept_raw_values_untouched():
    frame = flatten_records(RECORDS)
    assert list(frame.index) == [0, 1, 2]
    assert set(frame.columns) == {
        "id",
        "ContactInformation.Telephones",
        "ContactInformation.Email",
        "Title",
        "score",
        "ContactInformation",
    }
    assert frame["ContactInformation.Telephones"][0] == [{"Raw": "555-0100"}, {"Raw": "555-0101"}]
    # an integer with gaps stays an int (no float upcasting of ids), missing leaves are None
    assert frame["score"].tolist() == [7, None, None]
    assert type(frame["score"][0]) is int
    assert {str(dtype) for dtype in frame.dtypes} == {"object"}


def test_flatten_records_none_record_is_an_empty_row_and_non_mapping_is_refused():
    frame = flatten_records([{"a": 1}, None])
    assert frame["a"].tolist() == [1, None]
    with pytest.raises(TypeError, match="record 1 is a str"):
        flatten_records([{"a": 1}, "oops"])


def test_flatten_records_empty():
    frame = flatten_records([])
    assert frame.shape == (0, 0)


def test_resolve_path_direct_column_and_list_index():
    frame = flatten_records(RECORDS)
    assert resolve_path(frame, "id").tolist() == ["c1", "c2", "c3"]
    assert resolve_path(frame, "ContactInformation.Telephones.0.Raw").tolist() == ["555-0100", None, None]
    assert resolve_path(frame, "ContactInformation.Telephones.1.Raw").tolist() == ["555-0101", None, None]
    assert resolve_path(frame, "ContactInformation.Telephones.-1.Raw").tolist() == ["555-0101", None, None]


def test_resolve_path_index_zero_of_a_scalar_is_the_scalar_never_its_first_character():
    frame = flatten_records(RECORDS)
    assert resolve_path(frame, "Title.0").tolist() == ["Engineer", "Nurse", None]
    assert resolve_path(frame, "Title.1").tolist() == ["Lead", None, None]


def test_resolve_path_missing_path_is_all_null_not_an_error():
    frame = flatten_records(RECORDS)
    result = resolve_path(frame, "Nope.Not.Here")
    assert len(result) == 3
    assert result.isna().all()
    assert resolve_path(frame, "ContactInformation.Email.Domain").isna().all()


def test_resolve_path_xml_single_element_dict_read_with_index_zero():
    # xmltodict: one <Telephone> is a dict (flattened to columns), several are a list
    records = [
        {"Phones": {"Telephone": {"Raw": "1"}}},
        {"Phones": {"Telephone": [{"Raw": "2"}, {"Raw": "3"}]}},
    ]
    frame = flatten_records(records)
    assert resolve_path(frame, "Phones.Telephone.0.Raw").tolist() == ["1", "2"]
    assert resolve_path(frame, "Phones.Telephone.1.Raw").tolist() == [None, "3"]
    assert resolve_path(frame, "Phones.Telephone.Raw").tolist() == ["1", None]


def test_resolve_path_on_empty_frame():
    assert resolve_path(flatten_records([]), "a.b").tolist() == []


def test_get_path_single_object():
    assert get_path(RECORDS[0], "ContactInformation.Telephones.1.Raw") == "555-0101"
    assert get_path(RECORDS[1], "Title.0") == "Nurse"
    assert get_path(RECORDS[2], "ContactInformation.Email") is None
    assert get_path({"a": {"b": 0}}, "a.b") == 0


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("location.city", True),
        ("@id", True),
        ("Rate.BillRateMax", True),
        ("first-name", True),
        ("ns:Tag.#text", True),
        ("USA", True),
        (", ", False),
        (" ", False),
        ("-", False),
        ("", False),
        ("a..b", False),
        ("n/a", False),
        ("Austin TX", False),
    ],
)
def test_is_path(item, expected):
    assert is_path(item) is expected


def test_resolve_path_merges_scalar_and_nested_shapes():
    # location is a dict in one record and null in another: both readings are combined
    frame = flatten_records([{"location": {"city": "Austin"}}, {"location": None}, {}])
    assert resolve_path(frame, "location.city").tolist() == ["Austin", None, None]
    nan_frame = pd.DataFrame({"a": [1.5, math.nan]})
    assert resolve_path(nan_frame, "a").tolist()[0] == 1.5


def test_resolve_path_to_a_dict_node_rebuilds_the_dict():
    records = [
        {"Rate": {"BillRateMax": "95.00", "Currency": {"@code": "USD"}}},
        {"Rate": None},
        {"Rate": {"BillRateMax": None}},
    ]
    frame = flatten_records(records)
    assert resolve_path(frame, "Rate").tolist() == [
        {"BillRateMax": "95.00", "Currency": {"@code": "USD"}},
        None,
        None,
    ]
    assert resolve_path(frame, "Rate.Currency").tolist() == [{"@code": "USD"}, None, None]


def test_resolve_path_xml_node_that_is_a_dict_once_and_a_list_elsewhere():
    records = [
        {"Phones": {"Telephone": {"Raw": "1"}}},
        {"Phones": {"Telephone": [{"Raw": "2"}, {"Raw": "3"}]}},
        {"Phones": None},
    ]
    frame = flatten_records(records)
    assert resolve_path(frame, "Phones.Telephone").tolist() == [
        {"Raw": "1"},
        [{"Raw": "2"}, {"Raw": "3"}],
        None,
    ]
    assert resolve_path(frame, "Phones.Telephone.0").tolist() == [{"Raw": "1"}, {"Raw": "2"}, None]

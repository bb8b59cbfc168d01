import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from integration_pipelines.mapping import MappingConfigError, combine_errors, validate_frame


class Job(pa.DataFrameModel):
    external_id: Series[str] = pa.Field(unique=True)
    title: Series[str] = pa.Field(nullable=False)
    email: Series[str] = pa.Field(nullable=True, str_matches=r"^[^@\s]+@[^@\s]+\.[a-z]+$")
    bill_rate: Series[float] = pa.Field(ge=0, nullable=True, coerce=True)

    class Config:
        strict = "filter"


class LooseJob(pa.DataFrameModel):
    external_id: Series[str]
    bill_rate: Series[float] = pa.Field(ge=0, nullable=True, coerce=True)


class StrictJob(LooseJob):
    class Config:
        strict = True


class UncoercedJob(pa.DataFrameModel):
    external_id: Series[str]
    bill_rate: Series[float] = pa.Field(nullable=True)  # no coerce: the column must already be float


def frame(**columns):
    base = {
        "external_id": ["a", "b", "c", "d"],
        "title": ["Nurse", "Welder", "Driver", "Cook"],
        "email": ["a@x.com", None, "c@x.org", "d@x.com"],
        "bill_rate": ["95.00", "80", None, "12.5"],
        "extra": [1, 2, 3, 4],
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_all_valid_rows_are_coerced_and_filtered():
    result = validate_frame(frame(), Job)
    assert result.errors.empty
    assert list(result.errors.columns) == ["row", "field", "reason"]
    assert list(result.valid.columns) == ["external_id", "title", "email", "bill_rate"]  # "extra" filtered
    assert result.valid["bill_rate"].dtype == "float64"
    assert result.valid["bill_rate"].tolist()[:2] == [95.0, 80.0]


def test_failing_rows_become_errors_and_the_rest_is_valid_with_index_kept():
    df = frame(
        external_id=["a", "b", "c", "d", "e", "f"],
        title=["Nurse", None, "Driver", "Cook", "Clerk", "Chef"],
        email=["a@x.com", None, "not-an-email", None, None, None],
        bill_rate=["1", "2", "3", "abc", "4", "5"],
        extra=[0] * 6,
    )
    df.index = [10, 11, 12, 13, 14, 15]
    result = validate_frame(df, Job)
    assert list(result.valid.index) == [10, 14, 15]
    assert result.valid["external_id"].tolist() == ["a", "e", "f"]
    assert result.errors.to_dict("records") == [
        {"row": 11, "field": "title", "reason": "title: null not allowed"},
        {
            "row": 12,
            "field": "email",
            "reason": "email: 'not-an-email' fails str_matches('^[^@\\s]+@[^@\\s]+\\.[a-z]+$')",
        },
        {"row": 13, "field": "bill_rate", "reason": "bill_rate: 'abc' cannot be coerced to float64"},
    ]
    assert result.rejected_rows() == {11, 12, 13}


def test_check_hidden_behind_a_coercion_failure_is_found_in_the_next_pass():
    # while "abc" does not coerce, pandera cannot run ge(0) on the column at all
    df = frame(bill_rate=["1", "abc", "-5", "2"])
    result = validate_frame(df, Job)
    assert result.errors.to_dict("records") == [
        {"row": 1, "field": "bill_rate", "reason": "bill_rate: 'abc' cannot be coerced to float64"},
        {"row": 2, "field": "bill_rate", "reason": "bill_rate: '-5' fails greater_than_or_equal_to(0)"},
    ]
    assert list(result.valid.index) == [0, 3]


def test_duplicates_are_row_errors():
    result = validate_frame(frame(external_id=["a", "b", "a", "c"]), Job)
    assert result.errors["reason"].tolist() == ["external_id: duplicate value 'a'"] * 2
    assert result.errors["row"].tolist() == [0, 2]


def test_non_strict_schema_keeps_extra_columns():
    result = validate_frame(frame(), LooseJob)
    assert "extra" in result.valid.columns and "title" in result.valid.columns
    assert result.errors.empty


def test_strict_schema_with_an_extra_column_is_a_config_error():
    with pytest.raises(MappingConfigError, match="column 'extra' is not in the schema"):
        validate_frame(frame().drop(columns=["title", "email"]), StrictJob)


def test_missing_required_column_is_a_config_error_even_for_an_empty_batch():
    with pytest.raises(
        MappingConfigError, match="column 'title' required by the schema is not in the mapped frame"
    ):
        validate_frame(frame().drop(columns=["title"]), Job)
    with pytest.raises(MappingConfigError, match="column 'title'"):
        validate_frame(frame().drop(columns=["title"]).iloc[:0], Job)


def test_whole_column_of_wrong_dtype_rejects_every_row_with_the_reason():
    result = validate_frame(frame(), UncoercedJob)
    assert result.valid.empty
    assert list(result.valid.columns) == list(frame().columns)
    assert result.errors["row"].tolist() == [0, 1, 2, 3]
    assert set(result.errors["field"]) == {"bill_rate"}
    assert set(result.errors["reason"]) == {
        "bill_rate: column dtype is str, expected float64 (whole batch rejected)"
    }


def test_dataframe_schema_object_and_wide_checks():
    schema = pa.DataFrameSchema(
        {"external_id": pa.Column(str), "bill_rate": pa.Column(float, coerce=True, nullable=True)},
        checks=[pa.Check(lambda df: df["external_id"] != "b", name="not_b")],
        strict="filter",
    )
    result = validate_frame(frame(), schema)
    assert list(result.valid.index) == [0, 2, 3]
    assert result.errors.to_dict("records") == [
        {
            "row": 1,
            "field": "external_id, bill_rate",
            "reason": "row fails not_b (external_id='b', bill_rate='80')",
        }
    ]
    scalar_check = pa.DataFrameSchema(
        {"external_id": pa.Column(str)}, checks=[pa.Check(lambda df: len(df) < 2, name="small_batch")]
    )
    result = validate_frame(frame(), scalar_check)
    assert result.valid.empty
    assert len(result.errors) == 4
    assert result.errors["reason"][0].endswith("small_batch failed for the whole batch (False)")


def test_multiple_fields_uniqueness_is_one_error_per_row():
    schema = pa.DataFrameSchema({"a": pa.Column(str), "b": pa.Column(int)}, unique=["a", "b"])
    result = validate_frame(pd.DataFrame({"a": ["x", "x", "y"], "b": [1, 1, 1]}), schema)
    assert result.errors.to_dict("records") == [
        {"row": 0, "field": "a, b", "reason": "duplicate combination (a='x', b=1)"},
        {"row": 1, "field": "a, b", "reason": "duplicate combination (a='x', b=1)"},
    ]
    assert list(result.valid.index) == [2]


def test_combine_errors_groups_reasons_per_row():
    mapping_errors = pd.DataFrame(
        {
            "row": [3, 1, 3],
            "field": ["start", "status", "rate"],
            "reason": ["start: bad", "status: bad", "rate: bad"],
        }
    )
    validation_errors = pd.DataFrame(
        {"row": [3, 7], "field": ["title", "email"], "reason": ["title: null", "email: x"]}
    )
    combined = combine_errors(mapping_errors, validation_errors, None)
    assert combined.to_dict("records") == [
        {"row": 1, "field": "status", "reason": "status: bad"},
        {"row": 3, "field": "start, rate, title", "reason": "start: bad; rate: bad; title: null"},
        {"row": 7, "field": "email", "reason": "email: x"},
    ]
    assert list(combine_errors().columns) == ["row", "field", "reason"]

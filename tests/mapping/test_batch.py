import datetime as dt
import time

import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from integration_pipelines.mapping import combine_errors, map_records, validate_frame

MAPPING = {
    "external_id": {"path": "id", "type": "string"},
    "title": {"path": "position.title", "type": "string"},
    "email": {"path": "contact.emails.0", "type": "string"},
    "status": {"path": "status", "map": {"OPEN": "open", "CLOSED": "closed"}},
    "openings": {"path": "position.openings", "type": "integer", "default": 1},
    "bill_rate_max": {"path": "rate.max", "type": "decimal"},
    "start_date": {"path": "dates.start", "type": "date"},
    "updated_at": {"path": "meta.updated", "type": "datetime", "timezone": "America/Chicago"},
    "location": {"concat": ["location.city", ", ", "location.region"]},
    "remote": {"path": "flags.remote", "type": "boolean"},
}


class CanonicalJob(pa.DataFrameModel):
    external_id: Series[str] = pa.Field(unique=True)
    title: Series[str] = pa.Field(nullable=False)
    email: Series[str] = pa.Field(nullable=True, str_matches=r"^[^@\s]+@[^@\s]+\.[a-z]+$")
    status: Series[str] = pa.Field(isin=["open", "closed"])
    openings: Series[pd.Int64Dtype] = pa.Field(ge=1)
    bill_rate_max: Series[float] = pa.Field(ge=0, nullable=True)

    class Config:
        strict = "filter"


def record(i: int) -> dict:
    return {
        "id": f"JOB-{i:06d}",
        "position": {"title": f"Title {i % 50}", "openings": str(1 + i % 5)},
        "contact": {"emails": [f"recruiter{i % 7}@agency.com"]},
        "status": "OPEN" if i % 3 else "CLOSED",
        "rate": {"max": f"{40 + i % 60}.50"},
        "dates": {"start": f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"},
        "meta": {"updated": f"2025-06-{1 + i % 28:02d}T08:{i % 60:02d}:00"},
        "location": {"city": "Austin", "region": "TX" if i % 2 else None},
        "flags": {"remote": "yes" if i % 4 == 0 else "no"},
    }


def test_1000_records_with_3_bad_rows_give_997_valid_rows():
    records = [record(i) for i in range(1000)]
    records[17]["dates"]["start"] = "2025-13-45"  # mapping error: not a date
    records[500]["status"] = "WEIRD"  # mapping error: unmapped enum value
    records[999]["contact"]["emails"] = ["not-an-email"]  # validation error

    mapped = map_records(records, MAPPING)
    assert len(mapped.frame) == 1000
    assert mapped.rejected_rows() == {17, 500}
    assert mapped.frame["location"][0] == "Austin" and mapped.frame["location"][1] == "Austin, TX"
    assert mapped.frame["start_date"][1] == dt.date(2025, 2, 2)
    assert mapped.frame["updated_at"][0] == pd.Timestamp("2025-06-01 13:00", tz="UTC")  # CDT = UTC-5

    validated = validate_frame(mapped.accepted(), CanonicalJob)
    assert len(validated.valid) == 997
    assert not validated.valid.index.isin([17, 500, 999]).any()
    assert validated.valid["external_id"].iloc[0] == "JOB-000000"

    quarantine = combine_errors(mapped.errors, validated.errors)
    assert quarantine.to_dict("records") == [
        {
            "row": 17,
            "field": "start_date",
            "reason": "start_date: '2025-13-45' is not a date (expected YYYY-MM-DD, YYYY-MM or YYYY)",
        },
        {"row": 500, "field": "status", "reason": "status: unmapped value 'WEIRD' (known: OPEN, CLOSED)"},
        {
            "row": 999,
            "field": "email",
            "reason": "email: 'not-an-email' fails str_matches('^[^@\\s]+@[^@\\s]+\\.[a-z]+$')",
        },
    ]


@pytest.mark.slow
def test_performance_200k_nested_records(capsys):
    records = [record(i) for i in range(200_000)]
    started = time.perf_counter()
    result = map_records(records, MAPPING)
    seconds = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nmapped {len(records):,} nested records x {len(MAPPING)} fields in {seconds:.2f} s")
    assert len(result.frame) == 200_000
    assert result.errors.empty
    assert result.frame["openings"].sum() == 600_000
    assert seconds < 60

"""pandera schemas for the canonical entities: what a row must look like to enter the ATS.

Mapped partner data is checked against these before it is written; rows that fail are
quarantined with the reason and the rest of the page goes on. Only the fields a
connector maps are present, so every field is optional as a column; `title` and
`status` of a job, for instance, are required as values whenever they are mapped.
"""

from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

EMAIL = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
COUNTRY = r"^[A-Z]{2}$"
CURRENCY = r"^[A-Z]{3}$"

JOB_STATUSES = ["open", "on_hold", "closed", "filled", "draft", "cancelled"]
SUBMISSION_STATUSES = [
    "submitted",
    "in_review",
    "interviewing",
    "offered",
    "accepted",
    "rejected",
    "withdrawn",
]
PLACEMENT_STATUSES = ["pending", "active", "ended", "cancelled"]
RATE_PERIODS = ["hour", "day", "week", "month", "year"]

UTCTimestamp = Annotated[pd.DatetimeTZDtype, "ns", "UTC"]


def _dates_in_order(df: pd.DataFrame, start: str, end: str) -> pd.Series:
    if start not in df or end not in df:
        return pd.Series(True, index=df.index)
    first, last = pd.to_datetime(df[start], errors="coerce"), pd.to_datetime(df[end], errors="coerce")
    return first.isna() | last.isna() | (last >= first)


class Canonical(pa.DataFrameModel):
    """Shared settings: coerce types, keep unknown columns out of the ATS."""

    class Config:
        coerce = True
        strict = "filter"


class Candidate(Canonical):
    first_name: Series[str] | None = pa.Field(nullable=True, str_length={"max_value": 100})
    last_name: Series[str] | None = pa.Field(nullable=True, str_length={"max_value": 100})
    email: Series[str] | None = pa.Field(nullable=True, str_matches=EMAIL)
    phone: Series[str] | None = pa.Field(nullable=True, str_length={"max_value": 40})
    city: Series[str] | None = pa.Field(nullable=True)
    postal_code: Series[str] | None = pa.Field(nullable=True, str_length={"max_value": 20})
    country_code: Series[str] | None = pa.Field(nullable=True, str_matches=COUNTRY)
    headline: Series[str] | None = pa.Field(nullable=True, str_length={"max_value": 300})
    skills: Series[object] | None = pa.Field(nullable=True)


class ParsedResume(Canonical):
    candidate_id: Series[str] = pa.Field(nullable=False)
    document_id: Series[str] = pa.Field(nullable=False)
    parser: Series[str] = pa.Field(nullable=False)
    full_name: Series[str] | None = pa.Field(nullable=True)
    first_name: Series[str] | None = pa.Field(nullable=True, str_length={"max_value": 100})
    last_name: Series[str] | None = pa.Field(nullable=True, str_length={"max_value": 100})
    email: Series[str] | None = pa.Field(nullable=True, str_matches=EMAIL)
    phone: Series[str] | None = pa.Field(nullable=True, str_length={"max_value": 40})
    city: Series[str] | None = pa.Field(nullable=True)
    postal_code: Series[str] | None = pa.Field(nullable=True, str_length={"max_value": 20})
    country_code: Series[str] | None = pa.Field(nullable=True, str_matches=COUNTRY)
    summary: Series[str] | None = pa.Field(nullable=True)
    current_title: Series[str] | None = pa.Field(nullable=True)
    current_employer: Series[str] | None = pa.Field(nullable=True)
    skills: Series[object] | None = pa.Field(nullable=True)
    languages: Series[object] | None = pa.Field(nullable=True)
    positions: Series[object] | None = pa.Field(nullable=True)


class Job(Canonical):
    title: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 300})
    status: Series[str] = pa.Field(isin=JOB_STATUSES)
    client_name: Series[str] | None = pa.Field(nullable=True)
    client_reference: Series[str] | None = pa.Field(nullable=True)
    description: Series[str] | None = pa.Field(nullable=True)
    location: Series[str] | None = pa.Field(nullable=True)
    country_code: Series[str] | None = pa.Field(nullable=True, str_matches=COUNTRY)
    start_date: Series[pa.Date] | None = pa.Field(nullable=True)
    end_date: Series[pa.Date] | None = pa.Field(nullable=True)
    openings: Series[pd.Int64Dtype] | None = pa.Field(nullable=True, ge=0)
    bill_rate_max: Series[float] | None = pa.Field(nullable=True, ge=0)
    currency: Series[str] | None = pa.Field(nullable=True, str_matches=CURRENCY)
    rate_period: Series[str] | None = pa.Field(nullable=True, isin=RATE_PERIODS)
    remote_updated_at: Series[UTCTimestamp] | None = pa.Field(nullable=True)

    @pa.dataframe_check(element_wise=False)
    def ends_after_it_starts(cls, df: pd.DataFrame) -> pd.Series:
        return _dates_in_order(df, "start_date", "end_date")


class Submission(Canonical):
    candidate_id: Series[str] | None = pa.Field(nullable=True)
    job_id: Series[str] | None = pa.Field(nullable=True)
    status: Series[str] = pa.Field(isin=SUBMISSION_STATUSES)
    bill_rate: Series[float] | None = pa.Field(nullable=True, ge=0)
    pay_rate: Series[float] | None = pa.Field(nullable=True, ge=0)
    currency: Series[str] | None = pa.Field(nullable=True, str_matches=CURRENCY)
    rate_period: Series[str] | None = pa.Field(nullable=True, isin=RATE_PERIODS)
    available_date: Series[pa.Date] | None = pa.Field(nullable=True)
    remote_updated_at: Series[UTCTimestamp] | None = pa.Field(nullable=True)


class Placement(Canonical):
    candidate_id: Series[str] | None = pa.Field(nullable=True)
    job_id: Series[str] | None = pa.Field(nullable=True)
    submission_id: Series[str] | None = pa.Field(nullable=True)
    status: Series[str] = pa.Field(isin=PLACEMENT_STATUSES)
    start_date: Series[pa.Date] | None = pa.Field(nullable=True)
    end_date: Series[pa.Date] | None = pa.Field(nullable=True)
    bill_rate: Series[float] | None = pa.Field(nullable=True, ge=0)
    pay_rate: Series[float] | None = pa.Field(nullable=True, ge=0)
    currency: Series[str] | None = pa.Field(nullable=True, str_matches=CURRENCY)
    rate_period: Series[str] | None = pa.Field(nullable=True, isin=RATE_PERIODS)
    remote_updated_at: Series[UTCTimestamp] | None = pa.Field(nullable=True)

    @pa.dataframe_check(element_wise=False)
    def ends_after_it_starts(cls, df: pd.DataFrame) -> pd.Series:
        return _dates_in_order(df, "start_date", "end_date")


class CandidateDocument(Canonical):
    candidate_id: Series[str] = pa.Field(nullable=False)
    file_name: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255})
    content_type: Series[str] = pa.Field()


SCHEMAS: dict[str, type[Canonical]] = {
    "candidate": Candidate,
    "candidate_document": CandidateDocument,
    "parsed_resume": ParsedResume,
    "job": Job,
    "submission": Submission,
    "placement": Placement,
}

import datetime as dt

import pandas as pd
import xmltodict

from integration_pipelines.mapping import as_list, map_records

POSTINGS = """
<JobPostings>
  <JobPosting id="JP-1">
    <Title>Registered Nurse</Title>
    <Status>Open</Status>
    <StartDate>2025-03-01</StartDate>
    <Location><City>Austin</City><State>TX</State></Location>
    <Rate><BillRateMin>80.00</BillRateMin><BillRateMax>95.00</BillRateMax></Rate>
    <Skills><Skill>ICU</Skill><Skill>BLS</Skill></Skills>
  </JobPosting>
  <JobPosting id="JP-2">
    <Title>Welder</Title>
    <Status>Filled</Status>
    <StartDate>2025-04</StartDate>
    <Location><City>Dallas</City></Location>
    <Rate><BillRateMax>not disclosed</BillRateMax></Rate>
    <Skills><Skill>MIG</Skill></Skills>
  </JobPosting>
</JobPostings>
"""

SINGLE = """
<JobPostings>
  <JobPosting id="JP-9">
    <Title>Driver</Title>
    <Status>Open</Status>
    <Rate><BillRateMax>41.5</BillRateMax></Rate>
    <Skills/>
  </JobPosting>
</JobPostings>
"""

MAPPING = {
    "external_id": {"path": "@id"},
    "title": {"path": "Title"},
    "status": {"path": "Status", "map": {"Open": "open", "Filled": "filled"}},
    "start_date": {"path": "StartDate", "type": "date"},
    "location": {"concat": ["Location.City", ", ", "Location.State"]},
    "bill_rate_max": {"path": "Rate.BillRateMax", "type": "decimal"},
    "skills": {"path": "Skills.Skill", "type": "list"},
    "first_skill": {"path": "Skills.Skill.0"},
}


def postings(xml: str) -> list:
    return as_list(xmltodict.parse(xml)["JobPostings"]["JobPosting"])


def test_xml_postings_map_nested_rate_and_repeated_elements():
    records = postings(POSTINGS)
    assert len(records) == 2
    result = map_records(records, MAPPING)
    frame = result.frame
    assert frame["external_id"].tolist() == ["JP-1", "JP-2"]
    assert frame["status"].tolist() == ["open", "filled"]
    assert frame["start_date"].tolist() == [dt.date(2025, 3, 1), dt.date(2025, 4, 1)]
    assert frame["location"].tolist() == ["Austin, TX", "Dallas"]
    assert frame["bill_rate_max"][0] == 95.0
    assert pd.isna(frame["bill_rate_max"][1])
    # one <Skill> is a plain string in xmltodict, several are a list: both read the same way
    assert frame["skills"].tolist() == [["ICU", "BLS"], ["MIG"]]
    assert frame["first_skill"].tolist() == ["ICU", "MIG"]
    assert result.errors.to_dict("records") == [
        {
            "row": 1,
            "field": "bill_rate_max",
            "reason": "bill_rate_max: 'not disclosed' is not a decimal number",
        }
    ]


def test_xml_single_posting_is_a_dict_and_as_list_makes_it_a_batch_of_one():
    parsed = xmltodict.parse(SINGLE)["JobPostings"]["JobPosting"]
    assert isinstance(parsed, dict)
    records = as_list(parsed)
    assert records == [parsed]
    result = map_records(records, MAPPING)
    row = result.frame.iloc[0]
    assert row["external_id"] == "JP-9"
    assert row["bill_rate_max"] == 41.5
    assert row["skills"] == []  # <Skills/> is None in xmltodict
    assert pd.isna(row["location"])
    assert pd.isna(row["start_date"])
    assert result.errors.empty


def test_as_list_for_an_empty_page():
    parsed = xmltodict.parse("<JobPostings/>")["JobPostings"]
    assert parsed is None
    assert as_list(parsed) == []
    assert map_records(as_list(parsed), MAPPING).frame.shape == (0, len(MAPPING))

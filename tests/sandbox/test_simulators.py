"""Contract tests of the partner simulators, over real HTTP on 127.0.0.1."""

import base64
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import xmltodict

from integration_pipelines.sandbox import (
    FAULT_KINDS,
    FaultInjector,
    Sandbox,
    corrupt_document,
    generate_candidates,
    render_cv,
)
from integration_pipelines.sandbox.beeline import BeelineSimulator
from integration_pipelines.sandbox.sap_fieldglass import SapFieldglassSimulator

DAXTRA_FULL = "/cvx/rest/api/v1/profile/full/json"
FG_POSTINGS = "/vc/connector/JobPostingSupplierDownload"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    # Raise Beeline's limit so the many calls below do not trip it; the real limit is tested
    # on its own sandbox.
    sb = Sandbox(options={"beeline": {"rate_limit_per_minute": 100_000}})
    with sb:
        sb.add_tenant("acme")
        yield sb


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


@pytest.fixture(autouse=True)
def _clear_faults(sandbox: Sandbox) -> Iterator[None]:
    yield
    for sim in sandbox.simulators.values():
        sim.faults.clear()


@pytest.fixture(scope="module")
def candidate() -> dict[str, Any]:
    # The first generated candidate with a current job, so "Present" handling is exercised.
    return next(c for c in generate_candidates("acme", 50) if c["positions"][0]["end"] is None)


# ---------------------------------------------------------------------------- helpers


def tk_headers(sandbox: Sandbox, tenant: str = "acme") -> dict[str, str]:
    creds = sandbox.simulators["textkernel"].credentials(tenant)
    return {"Tx-AccountId": creds["account_id"], "Tx-ServiceKey": creds["service_key"]}


def tk_parse(client: httpx.Client, sandbox: Sandbox, document: bytes, **extra: Any) -> httpx.Response:
    body = {
        "DocumentAsBase64String": base64.b64encode(document).decode(),
        "DocumentLastModified": "2026-05-01",
    }
    body.update(extra)
    return client.post(
        sandbox.base_url("textkernel") + "/parser/resume", headers=tk_headers(sandbox), json=body
    )


def dx_parse(
    client: httpx.Client, sandbox: Sandbox, document: bytes, account: str | None = None
) -> httpx.Response:
    account = account or sandbox.simulators["daxtra"].credentials("acme")["account"]
    return client.post(
        sandbox.base_url("daxtra") + DAXTRA_FULL,
        json={"account": account, "file": base64.b64encode(document).decode()},
    )


def beeline_token(client: httpx.Client, sandbox: Sandbox, tenant: str = "acme") -> str:
    creds = sandbox.simulators["beeline"].add_tenant(tenant)
    r = client.post(
        sandbox.base_url("beeline") + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(creds["client_id"], creds["client_secret"]),
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def beeline_get(
    client: httpx.Client, sandbox: Sandbox, token: str, path: str, **params: Any
) -> httpx.Response:
    return client.get(
        sandbox.base_url("beeline") + path, params=params, headers={"Authorization": f"Bearer {token}"}
    )


def fg_token(client: httpx.Client, sandbox: Sandbox, tenant: str = "acme") -> str:
    creds = sandbox.simulators["sap_fieldglass"].add_tenant(tenant)
    r = client.post(
        sandbox.base_url("sap_fieldglass") + "/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "response_type": "token"},
        auth=(creds["client_id"], creds["license_key"]),
        headers={"X-ApplicationKey": creds["application_key"]},
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def fg_get(
    client: httpx.Client,
    sandbox: Sandbox,
    token: str,
    tenant: str = "acme",
    path: str = FG_POSTINGS,
    **params: Any,
) -> httpx.Response:
    key = sandbox.simulators["sap_fieldglass"].credentials(tenant)["application_key"]
    return client.get(
        sandbox.base_url("sap_fieldglass") + path,
        params=params,
        headers={"Authorization": f"Bearer {token}", "X-ApplicationKey": key},
    )


def fg_postings(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    doc = xmltodict.parse(response.text, force_list=("JobPosting",))
    return (doc["JobPostings"] or {}).get("JobPosting", [])


# ---------------------------------------------------------------------------- sandbox basics


def test_base_urls_and_admin(sandbox: Sandbox, client: httpx.Client) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/tx/v10", sandbox.base_url("textkernel"))
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.base_url("daxtra"))
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/gwg/supplier", sandbox.base_url("beeline"))
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api", sandbox.base_url("sap_fieldglass"))
    assert len(set(sandbox.ports.values())) == 4

    admin = sandbox.admin_url("beeline")
    creds = client.post(f"{admin}/tenants", json={"tenant": "acme"}).json()
    assert creds == sandbox.simulators["beeline"].credentials("acme")
    assert set(creds) == {"client_id", "client_secret", "webhook_secret"}

    r = client.post(f"{admin}/faults", json={"kind": "server_error", "count": 2, "status": 503})
    assert r.status_code == 200
    assert client.get(f"{admin}/faults").json()["faults"][0]["remaining"] == 2
    assert client.post(f"{admin}/faults", json={"kind": "nonsense"}).status_code == 400
    assert client.delete(f"{admin}/faults").status_code == 200
    assert sandbox.simulators["beeline"].faults.active() == []

    touched = client.post(f"{admin}/touch", json={"tenant": "acme", "n": 2}).json()["ids"]
    assert len(touched) == 2
    stats = client.get(f"{admin}/stats").json()
    assert "requests" in stats and "tokens_issued" in stats and "uploads" in stats
    assert client.post(f"{sandbox.admin_url('textkernel')}/touch", json={"tenant": "acme"}).status_code == 400


def test_credentials_are_deterministic_and_idempotent(sandbox: Sandbox) -> None:
    other = Sandbox(partners=["textkernel", "sap_fieldglass"])  # never started: state only
    for name in ("textkernel", "sap_fieldglass"):
        assert other.simulators[name].add_tenant("acme") == sandbox.simulators[name].credentials("acme")
    tk = sandbox.simulators["textkernel"].credentials("acme")
    assert re.fullmatch(r"\d{8}", tk["account_id"]) and len(tk["service_key"]) == 40
    assert sandbox.simulators["daxtra"].credentials("acme") == {"account": "ACME"}
    fg = sandbox.simulators["sap_fieldglass"]
    before = fg.postings("acme")
    assert fg.add_tenant("acme") == fg.credentials("acme")
    assert fg.postings("acme") == before  # not reseeded
    assert generate_candidates("globex", 5) == generate_candidates("globex", 5)
    assert generate_candidates("globex", 5) != generate_candidates("acme", 5)


def test_fault_injector_validates() -> None:
    injector = FaultInjector()
    with pytest.raises(ValueError, match="unknown fault kind"):
        injector.inject("explode")
    with pytest.raises(ValueError, match="count"):
        injector.inject("down", 0)
    with pytest.raises(ValueError, match="takes no parameter"):
        injector.inject("down", seconds=3)
    fault = injector.inject("slow", 2, tenant="acme", seconds=0.1)
    assert injector.take("globex", "/x", frozenset(FAULT_KINDS)) is None
    assert injector.take("acme", "/x", frozenset(FAULT_KINDS)) is not None
    assert injector.active()[0]["id"] == fault.id and injector.active()[0]["remaining"] == 1


# ---------------------------------------------------------------------------- textkernel


@pytest.mark.parametrize("fmt", ["txt", "html"])
def test_textkernel_parses_rendered_cv(
    sandbox: Sandbox, client: httpx.Client, candidate: dict[str, Any], fmt: str
) -> None:
    r = tk_parse(client, sandbox, render_cv(candidate, fmt))
    assert r.status_code == 200, r.text
    body = r.json()
    info = body["Info"]
    assert info["Code"] == "Success" and info["TransactionCost"] == 1.0
    uuid.UUID(info["TransactionId"])
    assert {"EngineVersion", "ApiVersion", "TotalElapsedMilliseconds", "CustomerDetails"} <= set(info)
    assert info["CustomerDetails"]["AccountId"] == tk_headers(sandbox)["Tx-AccountId"]
    value = body["Value"]
    assert value["ParsingResponse"]["Code"] == "Success"
    assert {"RedactedResumeData", "ConversionMetadata", "ParsingMetadata"} <= set(value)
    resume = value["ResumeData"]
    contact = resume["ContactInformation"]
    assert contact["CandidateName"] == {
        "FormattedName": f"{candidate['first_name']} {candidate['last_name']}",
        "GivenName": candidate["first_name"],
        "FamilyName": candidate["last_name"],
    }
    assert contact["EmailAddresses"] == [candidate["email"]]
    assert contact["Telephones"][0]["Raw"] == candidate["phone"]
    assert contact["Location"] == {
        "CountryCode": candidate["country_code"],
        "Municipality": candidate["city"],
        "PostalCode": candidate["postal_code"],
    }
    positions = resume["EmploymentHistory"]["Positions"]
    assert [p["JobTitle"]["Raw"] for p in positions] == [p["title"] for p in candidate["positions"]]
    assert [p["Employer"]["Name"]["Raw"] for p in positions] == [
        p["employer"] for p in candidate["positions"]
    ]
    current = positions[0]
    assert current["IsCurrent"] is True
    assert current["EndDate"] == {
        "Date": "2026-05-01",
        "IsCurrentDate": True,
        "FoundYear": True,
        "FoundMonth": True,
        "FoundDay": True,
    }
    assert current["StartDate"]["Date"] == candidate["positions"][0]["start"] + "-01"
    assert current["StartDate"]["FoundDay"] is False
    assert [s["Name"] for s in resume["Skills"]["Raw"]] == candidate["skills"]
    assert all(s["Id"].startswith("KS") for s in resume["Skills"]["Normalized"])
    assert [lang["Language"] for lang in resume["LanguageCompetencies"]] == candidate["languages"]
    assert (
        resume["Education"]["EducationDetails"][0]["SchoolName"]["Raw"] == candidate["education"][0]["school"]
    )
    assert "ContactInformation" not in value["RedactedResumeData"]


def test_textkernel_credits_and_account(
    sandbox: Sandbox, client: httpx.Client, candidate: dict[str, Any]
) -> None:
    before = client.get(sandbox.base_url("textkernel") + "/account", headers=tk_headers(sandbox)).json()
    assert before["Info"]["Code"] == "Success"
    credits = before["Info"]["CustomerDetails"]["CreditsRemaining"]
    after = tk_parse(client, sandbox, render_cv(candidate)).json()["Info"]["CustomerDetails"][
        "CreditsRemaining"
    ]
    assert after == credits - 1.0


def test_textkernel_auth(sandbox: Sandbox, client: httpx.Client) -> None:
    url = sandbox.base_url("textkernel") + "/account"
    r = client.get(url)
    assert r.status_code == 401 and r.json()["Info"]["Code"] == "AuthenticationError"
    wrong = {**tk_headers(sandbox), "Tx-ServiceKey": "x" * 40}
    assert client.get(url, headers=wrong).json()["Info"]["Code"] == "AuthenticationError"
    legacy = {k.replace("Tx-", "Sovren-"): v for k, v in tk_headers(sandbox).items()}
    assert client.get(url, headers=legacy).status_code == 200
    sim = sandbox.simulators["textkernel"]
    sim.revoke("acme")
    try:
        assert client.get(url, headers=tk_headers(sandbox)).status_code == 401
    finally:
        sim.unrevoke("acme")
    assert client.get(url, headers=tk_headers(sandbox)).status_code == 200


def test_textkernel_validation_and_unreadable(sandbox: Sandbox, client: httpx.Client) -> None:
    url = sandbox.base_url("textkernel") + "/parser/resume"
    r = client.post(url, headers=tk_headers(sandbox), json={"DocumentAsBase64String": "aGVsbG8="})
    assert r.status_code == 400 and r.json()["Info"]["Code"] == "MissingParameter"
    assert "DocumentLastModified" in r.json()["Info"]["Message"]
    r = client.post(
        url,
        headers=tk_headers(sandbox),
        json={"DocumentAsBase64String": "not base64!!", "DocumentLastModified": "2026-01-01"},
    )
    assert r.status_code == 400 and r.json()["Info"]["Code"] == "InvalidParameter"
    r = client.post(
        url,
        headers=tk_headers(sandbox),
        json={"DocumentAsBase64String": "aGVsbG8=", "DocumentLastModified": "01/02/2026"},
    )
    assert r.status_code == 400 and r.json()["Info"]["Code"] == "InvalidParameter"
    r = tk_parse(client, sandbox, corrupt_document())
    assert r.status_code == 422 and r.json()["Info"]["Code"] == "ConversionException"


def test_textkernel_faults(sandbox: Sandbox, client: httpx.Client, candidate: dict[str, Any]) -> None:
    sim = sandbox.simulators["textkernel"]
    doc = render_cv(candidate)
    sim.faults.inject("rate_limit", retry_after=7)
    r = tk_parse(client, sandbox, doc)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert r.json()["Info"]["Code"] == "TooManyRequests"
    sim.faults.inject("server_error")
    r = tk_parse(client, sandbox, doc)
    assert r.status_code == 500 and r.json()["Info"]["Code"] == "UnhandledException"
    sim.faults.inject("server_error", status=502)
    r = tk_parse(client, sandbox, doc)
    assert r.status_code == 502 and r.content == b""
    sim.faults.inject("down")
    r = tk_parse(client, sandbox, doc)
    assert r.status_code == 503 and r.content == b""
    sim.faults.inject("malformed_record")
    r = tk_parse(client, sandbox, doc)
    assert r.status_code == 422 and r.json()["Info"]["Code"] == "ConversionException"
    sim.faults.inject("schema_drift")
    resume = tk_parse(client, sandbox, doc).json()["Value"]["ResumeData"]
    assert "ProfessionalSummary" not in resume and "CandidateInsights" in resume
    assert tk_parse(client, sandbox, doc).status_code == 200  # faults were used up


# ---------------------------------------------------------------------------- daxtra


def test_daxtra_json_parse(sandbox: Sandbox, client: httpx.Client, candidate: dict[str, Any]) -> None:
    r = dx_parse(client, sandbox, render_cv(candidate, "html"), account="ACME; -turbo")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=UTF8"
    resume = r.json()["Resume"]
    assert {"src", "lang", "ParserInfo", "FileStruct", "TextResume", "ExperienceSummary", "TextZones"} <= set(
        resume
    )
    assert resume["ParserInfo"]["ParserMode"] == "turbo"
    sr = resume["StructuredResume"]
    assert sr["PersonName"]["GivenName"] == candidate["first_name"]
    assert sr["PersonName"]["FamilyName"] == candidate["last_name"]
    assert sr["ContactMethod"]["InternetEmailAddress_main"] == candidate["email"]
    assert sr["ContactMethod"]["Telephone_mobile"] == candidate["phone"]
    assert sr["ContactMethod"]["PostalAddress_main"]["Municipality"] == candidate["city"]
    jobs = sr["EmploymentHistory"]
    assert jobs[0]["EndDate"] == "Present" and jobs[0]["StartDate"] == candidate["positions"][0]["start"]
    assert jobs[0]["Title"] == [candidate["positions"][0]["title"]]
    assert jobs[0]["EmployerOrgName"] == candidate["positions"][0]["employer"]
    assert isinstance(jobs[0]["MonthsOfWork"], int) and jobs[0]["MonthsOfWork"] > 0
    assert [c["skillName"] for c in sr["Competency"]] == candidate["skills"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", sr["RevisionDate"])


def _multipart(account: bytes, document: bytes, gzip_file: bool, quote: bool = True) -> tuple[bytes, str]:
    boundary = "sandbox-boundary-42"
    q = '"' if quote else ""
    file_headers = f'Content-Disposition: form-data; name={q}file{q}; filename="cv.txt"\r\n'
    if gzip_file:
        document = gzip.compress(document)
        file_headers += "Content-Transfer-Encoding: gzip\r\n"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name={q}account{q}\r\n\r\n".encode()
        + account
        + f"\r\n--{boundary}\r\n{file_headers}Content-Type: application/octet-stream\r\n\r\n".encode()
        + document
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_daxtra_multipart_gzip_and_form(
    sandbox: Sandbox, client: httpx.Client, candidate: dict[str, Any]
) -> None:
    url = sandbox.base_url("daxtra") + DAXTRA_FULL
    doc = render_cv(candidate)
    for gz in (False, True):
        body, ctype = _multipart(b"ACME; -turbo", doc, gzip_file=gz)
        r = client.post(url, content=body, headers={"Content-Type": ctype})
        assert r.status_code == 200, r.text
        resume = r.json()["Resume"]
        assert resume["src"] == "cv.txt"
        assert resume["StructuredResume"]["ContactMethod"]["InternetEmailAddress_main"] == candidate["email"]
    r = client.post(url, data={"account": "ACME", "file": base64.b64encode(doc).decode()})
    assert r.status_code == 200
    assert r.json()["Resume"]["StructuredResume"]["PersonName"]["GivenName"] == candidate["first_name"]
    body, ctype = _multipart(b"ACME", doc, gzip_file=False, quote=False)  # strict parser: unquoted names
    r = client.post(url, content=body, headers={"Content-Type": ctype})
    assert r.status_code == 401 and r.json() == {"CSERROR": {"code": 401, "message": "Invalid account"}}


def test_daxtra_errors_and_faults(sandbox: Sandbox, client: httpx.Client, candidate: dict[str, Any]) -> None:
    doc = render_cv(candidate)
    r = dx_parse(client, sandbox, doc, account="NOSUCHACCOUNT")
    assert r.status_code == 401 and r.json()["CSERROR"] == {"code": 401, "message": "Invalid account"}
    r = dx_parse(client, sandbox, corrupt_document(seed=3))
    assert r.status_code == 200
    assert r.json() == {"CSERROR": {"code": 5, "message": "Unsupported document format"}}
    sim = sandbox.simulators["daxtra"]
    sim.faults.inject("malformed_record")
    assert dx_parse(client, sandbox, doc).json() == {
        "CSERROR": {"code": 5, "message": "Unsupported document format"}
    }
    sim.faults.inject("malformed_page")
    r = dx_parse(client, sandbox, doc)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    sim.faults.inject("schema_drift")
    sr = dx_parse(client, sandbox, doc).json()["Resume"]["StructuredResume"]
    assert "ExecutiveSummary" not in sr and "SocialMedia" in sr
    sim.faults.inject("down", tenant="acme")
    assert dx_parse(client, sandbox, doc).status_code == 503
    assert dx_parse(client, sandbox, doc).status_code == 200


def test_daxtra_xml_two_phase_and_access_token(
    sandbox: Sandbox, client: httpx.Client, candidate: dict[str, Any]
) -> None:
    base = sandbox.base_url("daxtra")
    doc = base64.b64encode(render_cv(candidate)).decode()
    r = client.post(base + "/cvx/rest/api/v1/profile/full/xml", json={"account": "ACME", "file": doc})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    assert root.tag == "Resume" and root.get("lang") == "en"
    assert root.findtext("StructuredResume/PersonName/FamilyName") == candidate["last_name"]

    r = client.post(base + "/cvx/rest/api/v1/profile/personal/json", json={"account": "ACME", "file": doc})
    phase1 = r.json()
    assert phase1["Resume"]["StructuredResume"]["PersonName"]["GivenName"] == candidate["first_name"]
    assert "EmploymentHistory" not in phase1["Resume"]["StructuredResume"]
    full = client.get(base + "/cvx/rest/api/v1/data", params={"token": phase1["full_profile_token"]}).json()
    assert len(full["Resume"]["StructuredResume"]["EmploymentHistory"]) == len(candidate["positions"])
    assert client.get(base + "/cvx/rest/api/v1/data", params={"token": "nope"}).status_code == 404

    r = client.get(base + "/cvx/rest/auth/v1/access_token", params={"account": "ACME"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    token = r.text
    assert dx_parse(client, sandbox, render_cv(candidate), account=f"{token}; -turbo").status_code == 200
    sandbox.simulators["daxtra"].expire_tokens()
    assert dx_parse(client, sandbox, render_cv(candidate), account=token).status_code == 401
    assert client.get(base + "/cvx/rest/auth/v1/access_token", params={"account": "NOPE"}).status_code == 401


# ---------------------------------------------------------------------------- beeline


def test_beeline_auth(sandbox: Sandbox, client: httpx.Client) -> None:
    base = sandbox.base_url("beeline")
    creds = sandbox.simulators["beeline"].credentials("acme")
    r = client.post(base + "/oauth/token", data={"grant_type": "client_credentials", **creds})  # form body
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and "refresh_token" not in body
    r = client.post(
        base + "/oauth/token", data={"grant_type": "client_credentials"}, auth=(creds["client_id"], "wrong")
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = client.get(base + "/job-postings")
    assert r.status_code == 401
    assert r.json()["status"] == 401 and r.json()["error"] == "Unauthorized" and r.json()["message"]
    for header in ("X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset"):
        assert header in r.headers
    assert beeline_get(client, sandbox, "not-a-token", "/job-postings").status_code == 401

    token = body["access_token"]
    assert beeline_get(client, sandbox, token, "/job-postings", limit=1).status_code == 200
    sim = sandbox.simulators["beeline"]
    sim.expire_tokens("acme")
    assert beeline_get(client, sandbox, token, "/job-postings", limit=1).status_code == 401
    sim.revoke("acme")
    try:
        r = client.post(base + "/oauth/token", data={"grant_type": "client_credentials", **creds})
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    finally:
        sim.unrevoke("acme")
    assert beeline_token(client, sandbox)


def test_beeline_offset_paging_returns_every_posting_once(sandbox: Sandbox, client: httpx.Client) -> None:
    token = beeline_token(client, sandbox)
    seen: list[dict[str, Any]] = []
    remaining: list[int] = []
    offset, calls = 0, 0
    while True:
        r = beeline_get(client, sandbox, token, "/job-postings", limit=50, offset=offset)
        assert r.status_code == 200
        remaining.append(int(r.headers["X-Rate-Limit-Remaining"]))
        items = r.json()["items"]
        seen.extend(items)
        calls += 1
        if len(items) < 50:
            break
        offset += 50
    assert calls == 7  # 6 full pages, then an empty (short) page
    assert sandbox.simulators["beeline"].stats.request_count("GET", "/job-postings") >= 7
    assert remaining == sorted(remaining, reverse=True) and len(set(remaining)) == 7
    uids = [p["uid"] for p in seen]
    assert len(uids) == 300 and len(set(uids)) == 300
    stamps = [(p["updatedAt"], p["uid"]) for p in seen]
    assert stamps == sorted(stamps)
    posting = seen[0]
    assert {
        "uid",
        "enterpriseJobPostingNumber",
        "enterpriseName",
        "title",
        "status",
        "startDate",
        "endDate",
        "positions",
        "location",
        "billRateMax",
        "rateCurrency",
        "ratePeriod",
        "description",
        "customFields",
        "createdAt",
        "updatedAt",
    } <= set(posting)
    assert re.fullmatch(r"REQ-\d{6}", posting["enterpriseJobPostingNumber"])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", posting["updatedAt"])
    assert posting["status"] in ("OPEN", "ON_HOLD", "CLOSED", "FILLED")
    assert set(posting["location"]) == {"city", "region", "country"}
    detail = beeline_get(client, sandbox, token, f"/job-postings/{posting['uid']}")
    assert detail.json() == posting
    assert beeline_get(client, sandbox, token, f"/job-postings/{uuid.uuid4()}").status_code == 404
    big = beeline_get(client, sandbox, token, "/job-postings", limit=200)
    assert len(big.json()["items"]) == 200
    bad = beeline_get(client, sandbox, token, "/job-postings", limit=201)
    assert bad.status_code == 400 and bad.json()["error"] == "Bad Request"


def test_beeline_updated_since_after_touch(sandbox: Sandbox, client: httpx.Client) -> None:
    sim = sandbox.simulators["beeline"]
    sim.add_tenant("touchco")
    token = beeline_token(client, sandbox, "touchco")
    before = {p["uid"]: p for p in sim.postings("touchco")}
    since = datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert beeline_get(client, sandbox, token, "/job-postings", updatedSince=since).json()["items"] == []
    touched = sim.touch("touchco", 5)
    items = beeline_get(client, sandbox, token, "/job-postings", updatedSince=since, limit=200).json()[
        "items"
    ]
    assert sorted(p["uid"] for p in items) == sorted(touched)
    for p in items:
        assert p["positions"] == before[p["uid"]]["positions"] + 1
        assert p["updatedAt"] > max(q["updatedAt"] for uid, q in before.items() if uid not in touched)
    added = sim.add_records("touchco", 3)
    items = beeline_get(client, sandbox, token, "/job-postings", updatedSince=since, limit=200).json()[
        "items"
    ]
    assert {p["uid"] for p in items} == set(touched) | set(added)
    assert beeline_get(client, sandbox, token, "/job-postings", updatedSince="yesterday").status_code == 400


def test_beeline_enforces_real_rate_limit(client: httpx.Client) -> None:
    with Sandbox(partners=["beeline"]) as sb:  # default: 100 calls per minute
        token = beeline_token(client, sb)  # call 1
        for i in range(2, 101):
            r = beeline_get(client, sb, token, "/job-postings", limit=1)
            assert r.status_code == 200, i
            assert r.headers["X-Rate-Limit-Limit"] == "100"
            assert r.headers["X-Rate-Limit-Remaining"] == str(100 - i)
        r = beeline_get(client, sb, token, "/job-postings", limit=1)
        assert r.status_code == 429 and r.json()["error"] == "Too Many Requests"
        assert r.headers["X-Rate-Limit-Remaining"] == "0"
        assert 1 <= int(r.headers["X-Rate-Limit-Reset"]) <= 60
        assert "Retry-After" not in r.headers
        sb.simulators["beeline"].add_tenant("other")
        assert beeline_token(client, sb, "other")  # the limit is per supplier


def test_beeline_faults(sandbox: Sandbox, client: httpx.Client) -> None:
    sim = sandbox.simulators["beeline"]
    token = beeline_token(client, sandbox)

    sim.faults.inject("rate_limit", retry_after=3)
    r = beeline_get(client, sandbox, token, "/job-postings")
    assert r.status_code == 429
    assert r.headers["X-Rate-Limit-Reset"] == "3" and r.headers["X-Rate-Limit-Remaining"] == "0"

    sim.faults.inject("malformed_record")
    items = beeline_get(client, sandbox, token, "/job-postings", limit=10).json()["items"]
    assert "title" not in items[0]
    assert items[1]["startDate"] == "2025-13-45"
    assert items[2]["billRateMax"] < 0
    assert all("title" in p for p in items[3:])

    page0 = beeline_get(client, sandbox, token, "/job-postings", limit=50, offset=0).json()["items"]
    sim.faults.inject("duplicate_page")
    page1 = beeline_get(client, sandbox, token, "/job-postings", limit=50, offset=50).json()["items"]
    assert [p["uid"] for p in page1] == [p["uid"] for p in page0]

    sim.faults.inject("schema_drift")
    items = beeline_get(client, sandbox, token, "/job-postings", limit=5).json()["items"]
    assert all("description" not in p and p["workArrangement"] == "HYBRID" for p in items)

    sim.faults.inject("malformed_page")
    r = beeline_get(client, sandbox, token, "/job-postings", limit=5)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)

    sim.faults.inject("slow", seconds=0.3, path_contains="/job-postings")
    started = time.monotonic()
    assert beeline_get(client, sandbox, token, "/job-postings", limit=1).status_code == 200
    assert time.monotonic() - started >= 0.3

    sim.faults.inject("expire_token")
    r = beeline_get(client, sandbox, token, "/job-postings", limit=1)
    assert r.status_code == 401 and r.json()["error"] == "Unauthorized"
    assert beeline_get(client, sandbox, token, "/job-postings", limit=1).status_code == 401  # stays expired
    token = beeline_token(client, sandbox)

    sim.faults.inject("server_error", tenant="someone-else")
    assert beeline_get(client, sandbox, token, "/job-postings", limit=1).status_code == 200
    assert len(sim.faults.active()) == 1


def test_beeline_workers_and_candidates(sandbox: Sandbox, client: httpx.Client) -> None:
    token = beeline_token(client, sandbox)
    base = sandbox.base_url("beeline")
    auth = {"Authorization": f"Bearer {token}"}
    r = client.post(
        base + "/workers",
        headers=auth,
        json={"firstName": "Maria", "lastName": "Lopez", "email": "maria.lopez@example.com"},
    )
    assert r.status_code == 201
    worker = r.json()
    posting = next(p for p in sandbox.simulators["beeline"].postings("acme") if p["status"] == "OPEN")
    r = client.post(base + "/candidates", headers=auth, json={"workerUid": worker["uid"], "rate": 80})
    assert r.status_code == 400
    assert r.json() == {"status": 400, "error": "Bad Request", "message": "jobPostingUid is required"}
    submission = {
        "jobPostingUid": posting["uid"],
        "workerUid": worker["uid"],
        "rate": 80.5,
        "rateCurrency": "USD",
        "ratePeriod": "HOURLY",
        "availableDate": "2026-07-01",
    }
    r = client.post(base + "/candidates", headers=auth, json=submission)
    assert r.status_code == 201
    cand = r.json()
    assert cand["status"] == "SUBMITTED"
    assert cand["enterpriseJobPostingNumber"] == posting["enterpriseJobPostingNumber"]
    assert client.post(base + "/candidates", headers=auth, json=submission).status_code == 409  # duplicate
    listed = client.get(base + "/candidates", headers=auth, params={"jobPostingUid": posting["uid"]}).json()
    assert [c["uid"] for c in listed["items"]] == [cand["uid"]]
    r = client.patch(base + f"/candidates/{cand['uid']}", headers=auth, json={"status": "RESCINDED"})
    assert r.status_code == 200 and r.json()["status"] == "RESCINDED"
    r = client.patch(base + f"/candidates/{cand['uid']}", headers=auth, json={"status": "WITHDRAWN"})
    assert r.status_code == 400
    r = client.patch(base + f"/workers/{worker['uid']}", headers=auth, json={"phone": "+1 512 555 0199"})
    assert r.json()["phone"] == "+1 512 555 0199"
    uploads = sandbox.simulators["beeline"].stats.uploads
    assert any(b'"jobPostingUid"' in u.body for u in uploads)


# ---------------------------------------------------------------------------- sap fieldglass


def test_fieldglass_auth_and_token_invalidation(sandbox: Sandbox, client: httpx.Client) -> None:
    base = sandbox.base_url("sap_fieldglass")
    creds = sandbox.simulators["sap_fieldglass"].credentials("acme")
    assert set(creds) == {
        "client_id",
        "license_key",
        "application_key",
        "webhook_username",
        "webhook_password",
    }
    form = {"grant_type": "client_credentials", "response_type": "token"}
    r = client.post(base + "/oauth2/v2.0/token", data=form, auth=(creds["client_id"], creds["license_key"]))
    assert r.status_code == 401  # no X-ApplicationKey
    assert r.json()["ReturnCode"] == 100 and r.json()["Message"] == "Unable to authenticate"
    assert "TransactionID" in r.json()
    r = client.post(
        base + "/oauth2/v2.0/token",
        data=form,
        auth=(creds["client_id"], "bad"),
        headers={"X-ApplicationKey": creds["application_key"]},
    )
    assert r.status_code == 401

    first = fg_token(client, sandbox)
    assert fg_get(client, sandbox, first, fromDate="2099-01-01").status_code == 200
    second = fg_token(client, sandbox)  # invalidates the first
    r = fg_get(client, sandbox, first, fromDate="2099-01-01")
    assert r.status_code == 401 and r.json()["ReturnCode"] == 100
    assert fg_get(client, sandbox, second, fromDate="2099-01-01").status_code == 200
    raw = client.get(
        base + FG_POSTINGS,
        params={"fromDate": "2099-01-01"},
        headers={"Authorization": second, "X-ApplicationKey": creds["application_key"]},
    )
    assert raw.status_code == 200  # raw token without "Bearer" is accepted
    no_key = client.get(base + FG_POSTINGS, headers={"Authorization": f"Bearer {second}"})
    assert no_key.status_code == 401
    r = fg_get(client, sandbox, second, path="/vc/connector/NoSuchConnector")
    assert r.status_code == 404 and r.json()["ReturnCode"] == 107


def test_fieldglass_delta_watermark_and_from_date(sandbox: Sandbox, client: httpx.Client) -> None:
    sim = sandbox.simulators["sap_fieldglass"]
    sim.add_tenant("deltaco")
    token = fg_token(client, sandbox, "deltaco")
    everything = fg_postings(fg_get(client, sandbox, token, "deltaco"))
    assert len(everything) == 250
    first = everything[0]
    assert re.fullmatch(r"DELTJP\d{8}", first["JobPostingID"])
    assert first["Status"] in ("Pending Submission", "Submitted", "Withdrawn", "Closed", "Filled")
    assert set(first["Rate"]) == {"BillRateMax", "Currency", "Unit"} and first["Rate"]["Unit"] in (
        "Hr",
        "Day",
    )
    assert {
        "Title",
        "BuyerCode",
        "BuyerName",
        "StartDate",
        "EndDate",
        "Site",
        "Positions",
        "Description",
        "LastModified",
    } <= set(first)
    assert fg_postings(fg_get(client, sandbox, token, "deltaco")) == []  # nothing revised since

    touched = sim.touch("deltaco", 3)
    by_id = {p["JobPostingID"]: p for p in everything}
    sim.faults.inject("server_error")
    assert fg_get(client, sandbox, token, "deltaco").status_code == 500
    delta = fg_postings(fg_get(client, sandbox, token, "deltaco"))  # failed run: same delta again
    assert sorted(p["JobPostingID"] for p in delta) == sorted(touched)
    for p in delta:
        assert int(p["Positions"]) == int(by_id[p["JobPostingID"]]["Positions"]) + 1
    assert fg_postings(fg_get(client, sandbox, token, "deltaco")) == []

    touched_again = sim.touch("deltaco", 2)
    sim.faults.inject("malformed_page", tenant="deltaco")
    broken = fg_get(client, sandbox, token, "deltaco")
    assert broken.status_code == 200
    with pytest.raises(ET.ParseError):
        ET.fromstring(broken.content)
    redelivered = fg_postings(fg_get(client, sandbox, token, "deltaco"))  # a faulted run is not "successful"
    assert sorted(p["JobPostingID"] for p in redelivered) == sorted(touched_again)

    stamp = delta[0]["LastModified"]
    since = fg_postings(fg_get(client, sandbox, token, "deltaco", fromDate=stamp))
    assert sorted(p["JobPostingID"] for p in since) == sorted(set(touched) | set(touched_again))
    since = fg_postings(fg_get(client, sandbox, token, "deltaco", fromDate=redelivered[0]["LastModified"]))
    assert sorted(p["JobPostingID"] for p in since) == sorted(touched_again)
    r = fg_get(client, sandbox, token, "deltaco", fromDate="last tuesday")
    assert r.status_code == 400 and r.json()["ReturnCode"] == 106


def test_fieldglass_faults(sandbox: Sandbox, client: httpx.Client) -> None:
    sim = sandbox.simulators["sap_fieldglass"]
    token = fg_token(client, sandbox)
    since = "2026-01-01T00:00:00Z"

    sim.faults.inject("malformed_record")
    items = fg_postings(fg_get(client, sandbox, token, fromDate=since))
    assert "Title" not in items[0] and items[1]["StartDate"] == "2025-13-45"
    assert float(items[2]["Rate"]["BillRateMax"]) < 0

    sim.faults.inject("malformed_page")
    r = fg_get(client, sandbox, token, fromDate=since)
    assert r.status_code == 200
    with pytest.raises(ET.ParseError):
        ET.fromstring(r.content)

    sim.faults.inject("schema_drift")
    items = fg_postings(fg_get(client, sandbox, token, fromDate=since))
    assert all("Description" not in p and p["LaborType"] == "Contingent" for p in items)

    normal = fg_get(client, sandbox, token, fromDate="2026-06-01T00:00:00Z")
    sim.faults.inject("duplicate_page")
    again = fg_get(client, sandbox, token, fromDate="2026-09-01T00:00:00Z")
    assert again.content == normal.content

    sim.faults.inject("rate_limit", retry_after=2)
    r = fg_get(client, sandbox, token, fromDate=since)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"

    sim.faults.inject("expire_token")
    assert fg_get(client, sandbox, token, fromDate=since).status_code == 401
    assert fg_get(client, sandbox, token, fromDate=since).status_code == 401


def test_fieldglass_job_seeker_upload_and_workers(sandbox: Sandbox, client: httpx.Client) -> None:
    sim: SapFieldglassSimulator = sandbox.simulators["sap_fieldglass"]  # type: ignore[assignment]
    token = fg_token(client, sandbox)
    key = sim.credentials("acme")["application_key"]
    open_posting = next(p for p in sim.postings("acme") if p["Status"] == "Submitted")["JobPostingID"]
    csv_body = (
        "Type,Job Seeker Upload\nTransaction,False\nSend Notification?,True\nDate Format,YYYY-MM-DD\n"
        'Number Format,"#,##9.99"\nLanguage,English\nComments,Submitted from ATS\n\n'
        "Job Posting ID,First Name,Last Name,Email,Bill Rate,Pay Rate,Available Date,Resume\n"
        f'{open_posting},Maria,Lopez,maria.lopez@example.com,"1,095.00",70.00,2026-07-01,maria_lopez.pdf\n'
        "ACMEJP99999999,Ghost,Posting,ghost@example.com,95.00,70.00,2026-07-01,ghost.pdf\n"
    )
    r = client.post(
        sandbox.base_url("sap_fieldglass") + "/vc/connector/JobSeekerUpload",
        content=csv_body,
        headers={"Authorization": f"Bearer {token}", "X-ApplicationKey": key, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200 and r.json()["Message"] == "File received"
    transaction = r.json()["TransactionID"]
    seekers = sim.job_seekers("acme")
    assert seekers[-1]["Email"] == "maria.lopez@example.com" and seekers[-1]["Bill Rate"] == 1095.0
    audit = [a for a in sim.audit_trail("acme") if a["TransactionID"] == transaction]
    assert [a["Status"] for a in audit] == ["Success", "Failed"]

    r = client.post(
        sandbox.base_url("sap_fieldglass") + "/vc/connector/JobSeekerUpload",
        json={
            "Data": [
                {
                    "Job Posting ID": open_posting,
                    "First Name": "Kwame",
                    "Last Name": "Mensah",
                    "Email": "kwame.mensah@example.com",
                }
            ]
        },
        headers={"Authorization": f"Bearer {token}", "X-ApplicationKey": key},
    )
    assert r.status_code == 200
    assert sim.job_seekers("acme")[-1]["First Name"] == "Kwame"

    rows = fg_get(client, sandbox, token, path="/vc/connector/SupplierWorkerDownload").json()["Data"]
    assert rows and {
        "Job seeker ID",
        "Worker ID",
        "Status",
        "First name",
        "Last name",
        "Worker email",
        "Work order ID",
        "Buyer code",
        "Start date",
        "End date",
        "Currency",
    } <= set(rows[0])
    assert re.fullmatch(r"ACMEPW\d{8}", rows[0]["Worker ID"])


def test_fieldglass_optional_budget_and_token_ttl(client: httpx.Client) -> None:
    options = {"sap_fieldglass": {"rate_limit_per_minute": 3, "token_ttl_seconds": 1}}
    with Sandbox(partners=["sap_fieldglass"], options=options) as sb:
        sb.simulators["sap_fieldglass"].add_tenant("acme", records=20)
        token = fg_token(client, sb)  # call 1
        assert len(fg_postings(fg_get(client, sb, token))) == 20  # call 2
        time.sleep(1.05)
        r = fg_get(client, sb, token)  # the token has expired (unattributable: not counted)
        assert r.status_code == 401 and r.json()["ReturnCode"] == 100
        token = fg_token(client, sb)  # call 3
        r = fg_get(client, sb, token)  # call 4: over the budget
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
        stats = sb.simulators["sap_fieldglass"].stats
        assert stats.tokens_issued == 2 and stats.rate_limited == 1
        assert stats.requests[("GET", "/api/vc/connector/{connector}")] == 3


def test_samples_are_packaged() -> None:
    from integration_pipelines.sandbox import UnreadableDocument, parse_cv

    samples = Path(__file__).resolve().parents[2] / "integration_pipelines" / "sandbox" / "samples"
    people = generate_candidates("samples", 2)
    assert parse_cv((samples / "cv_sample.txt").read_bytes()).email == people[0]["email"]
    assert parse_cv((samples / "cv_sample.html").read_bytes()).family_name == people[1]["last_name"]
    with pytest.raises(UnreadableDocument):
        parse_cv((samples / "cv_unreadable.bin").read_bytes())


# ---------------------------------------------------------------------------- downtime and CLI


def test_stop_and_start_partner_keeps_port_and_data(sandbox: Sandbox, client: httpx.Client) -> None:
    sim: BeelineSimulator = sandbox.simulators["beeline"]  # type: ignore[assignment]
    port = sandbox.ports["beeline"]
    token = beeline_token(client, sandbox)
    sim.touch("acme", 1)
    before = sim.postings("acme")
    sandbox.stop_partner("beeline")
    try:
        assert not sandbox.is_running("beeline")
        with httpx.Client(timeout=2) as fresh, pytest.raises(httpx.ConnectError):
            fresh.get(sandbox.base_url("beeline") + "/job-postings")
        assert (
            client.get(sandbox.base_url("textkernel") + "/account", headers=tk_headers(sandbox)).status_code
            == 200
        )
    finally:
        sandbox.start_partner("beeline")
    assert sandbox.ports["beeline"] == port
    items = beeline_get(client, sandbox, token, "/job-postings", limit=200, offset=100).json()["items"]
    assert items == before[100:300]


def _free_port_base() -> int:
    for base in range(23000, 60000, 97):
        socks = []
        try:
            for offset in range(4):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


def test_python_dash_m_runs_and_stops() -> None:
    base = _free_port_base()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        [sys.executable, "-m", "integration_pipelines.sandbox", "--port-base", str(base)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    ) as proc:
        try:
            lines: list[str] = []
            deadline = time.monotonic() + 20
            assert proc.stdout is not None
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line and proc.poll() is not None:
                    break
                lines.append(line)
                if line.strip().startswith("globex:") and "application_key" in line:
                    break
            output = "".join(lines)
            assert f"http://127.0.0.1:{base + 2}/api/gwg/supplier" in output, output
            assert f"http://127.0.0.1:{base}/tx/v10" in output
            assert "acme: client_id=" in output
            r = httpx.post(
                f"http://127.0.0.1:{base + 1}/cvx/rest/api/v1/profile/full/json",
                json={"account": "GLOBEX", "file": base64.b64encode(b"Jane Doe\njane@example.com").decode()},
            )
            assert r.status_code == 200
            assert r.json()["Resume"]["StructuredResume"]["PersonName"]["FormattedName"] == "Jane Doe"
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
    assert proc.returncode == 0

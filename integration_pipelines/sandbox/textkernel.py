"""Textkernel Tx Platform v10 (formerly Sovren) resume parser simulator.

Follows ``partners/textkernel.md``: static ``Tx-AccountId`` / ``Tx-ServiceKey`` headers on
every call (``Sovren-*`` accepted too; no tokens), ``POST parser/resume`` with a base64
document and a mandatory ``DocumentLastModified``, the ``Info`` + ``Value`` envelope, credits
decreasing per parse, and the documented ``Info.Code`` -> HTTP status mappings (400
``MissingParameter``/``InvalidParameter``, 401 ``AuthenticationError``, 422
``ConversionException``, 429 ``TooManyRequests``, 500 ``UnhandledException``).

Unconfirmed — plausible design (marked so on the fact sheet, implemented as suggested there):
the nested ``ResumeData`` names beyond ``CandidateName.FormattedName`` and
``Positions[].JobTitle.Raw`` (education, skills, languages, metadata blocks), the
``SkillsSettings`` contents, ``DataNotFound`` -> 404 and ``ServiceUnavailable`` -> 503.
``Retry-After`` on 429 is unconfirmed; the simulator sends it only with the ``rate_limit``
fault. Skills are normalised unless the request says ``"SkillsSettings": {"Normalize": false}``.
"""

import base64
import binascii
import copy
import hashlib
import html
import json
import re
import time
import uuid
from datetime import date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from integration_pipelines.sandbox.cv_text_parser import ParsedCV, UnreadableDocument, language_code, parse_cv
from integration_pipelines.sandbox.data import JOB_FAMILIES
from integration_pipelines.sandbox.simulator import Call, PartnerRoute, Simulator, TenantState, json_response

ENGINE_VERSION = "11.4.0"
API_VERSION = "10.8.0"
INITIAL_CREDITS = 10000.0
MAX_BODY_BYTES = 15 * 1024 * 1024
MAX_TRACKING_TAG = 100

STATUS_CODES: dict[int, str] = {
    400: "InvalidParameter",
    401: "AuthenticationError",
    403: "Unauthorized",
    404: "DataNotFound",
    405: "InvalidParameter",
    409: "Conflict",
    413: "RequestTooLarge",
    422: "ConversionException",
    429: "TooManyRequests",
    500: "UnhandledException",
    503: "ServiceUnavailable",
    504: "Timeout",
}

NORMALIZED_SKILLS: dict[str, str] = {
    "Java": "Java (Programming Language)",
    "Python": "Python (Programming Language)",
    "JavaScript": "JavaScript (Programming Language)",
    "TypeScript": "TypeScript (Programming Language)",
    "React": "React.js",
    "SQL": "SQL (Programming Language)",
    "AWS": "Amazon Web Services",
    "Azure": "Microsoft Azure",
    "Excel": "Microsoft Excel",
    "Git": "Git (Version Control System)",
    "CI/CD": "Continuous Integration and Continuous Delivery (CI/CD)",
    "Epic": "Epic Systems (EHR Software)",
    "BLS Certification": "Basic Life Support (BLS)",
    "ACLS": "Advanced Cardiovascular Life Support (ACLS)",
    "US GAAP": "US Generally Accepted Accounting Principles",
    "IFRS": "International Financial Reporting Standards",
    "Salesforce": "Salesforce.com",
    "Microsoft Office": "Microsoft Office Suite",
}
# skills Textkernel's taxonomy files under "IT": the software family's, plus business systems
IT_SKILLS = {*JOB_FAMILIES["software"].skills, "Power BI", "Salesforce", "WMS", "SAP FI", "SAP MM"}
SECTION_TYPES = {
    "summary": "SUMMARY",
    "experience": "WORK HISTORY",
    "education": "EDUCATION",
    "skills": "SKILLS",
    "languages": "LANGUAGES",
    "contact": "CONTACT INFO",
}
_EMPLOYER_SUFFIX = re.compile(r"[\s,]+(Ltd|Inc|LLC|GmbH|B\.V\.|plc|S\.A\.|Corp|Corporation)\.?$", re.I)
_SENIORITY = re.compile(r"^(Senior|Junior|Lead|Principal|Staff|Sr\.?|Jr\.?)\s+", re.I)


def _tx_date(value: str | None, is_current: bool, document_date: date) -> dict[str, Any] | None:
    if is_current:
        return {
            "Date": document_date.isoformat(),
            "IsCurrentDate": True,
            "FoundYear": True,
            "FoundMonth": True,
            "FoundDay": True,
        }
    if not value:
        return None
    if re.fullmatch(r"\d{4}-\d{2}", value):
        return {
            "Date": f"{value}-01",
            "IsCurrentDate": False,
            "FoundYear": True,
            "FoundMonth": True,
            "FoundDay": False,
        }
    return {
        "Date": f"{value[:4]}-01-01",
        "IsCurrentDate": False,
        "FoundYear": True,
        "FoundMonth": False,
        "FoundDay": False,
    }


def _skill_id(name: str) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    digest = hashlib.sha256(name.lower().encode()).digest()
    return "KS" + "".join(alphabet[b % len(alphabet)] for b in digest[:18])


def _degree_type(degree: str) -> str:
    d = degree.lower()
    if d.startswith(("ba ", "bsc", "beng", "bachelor")):
        return "bachelors"
    if d.startswith(("msc", "mba", "master", "ma ")):
        return "masters"
    if d.startswith("associate"):
        return "associates"
    return "certification"


class TextkernelSimulator(Simulator):
    """Simulator of Textkernel's Tx Platform v10 resume parsing API (``/tx/v10``)."""

    name = "textkernel"
    base_path = "/tx/v10"

    def partner_routes(self) -> list[PartnerRoute]:
        return [
            PartnerRoute("/parser/resume", ["POST"], self.parse_resume, data=True),
            PartnerRoute("/account", ["GET"], self.account),
        ]

    # ------------------------------------------------------------------ tenants and auth

    def make_credentials(self, tenant: str) -> dict[str, str]:
        account = self.derive(tenant, "account-id", 8, "0123456789")
        account = str(int(account[0]) % 9 + 1) + account[1:]  # no leading zero
        return {"account_id": account, "service_key": self.derive(tenant, "service-key", 40)}

    def seed_tenant(self, state: TenantState, records: int) -> None:
        state.data.update(
            credits_remaining=INITIAL_CREDITS,
            credits_used=0.0,
            company=f"{state.name.replace('-', ' ').replace('_', ' ').title()} Staffing",
        )

    @staticmethod
    def _header(request: Request, suffix: str) -> str | None:
        return request.headers.get(f"tx-{suffix}") or request.headers.get(f"sovren-{suffix}")

    async def identify(self, request: Request) -> str | None:
        state = self.find_tenant("account_id", self._header(request, "accountid"))
        return state.name if state else None

    async def authenticate(self, request: Request) -> str | Response:
        account = self._header(request, "accountid")
        key = self._header(request, "servicekey")
        if not account or not key:
            return self.error_response(
                401, "Missing authentication headers: send Tx-AccountId and Tx-ServiceKey on every request"
            )
        state = self.find_tenant("account_id", account)
        if state is None or state.credentials["service_key"] != key:
            return self.error_response(401, "Invalid AccountId or ServiceKey")
        if state.revoked:
            return self.error_response(401, "This account has been disabled. Contact Textkernel support.")
        tag = request.headers.get("tx-trackingtag")
        if tag is not None and len(tag) > MAX_TRACKING_TAG:
            return self.error_response(400, f"Tx-TrackingTag must be at most {MAX_TRACKING_TAG} characters")
        return state.name

    # ------------------------------------------------------------------ envelope

    def _info(
        self,
        code: str,
        message: str,
        started: float | None = None,
        cost: float = 0.0,
        tenant: str | None = None,
        client_ip: str | None = None,
    ) -> dict[str, Any]:
        info: dict[str, Any] = {
            "Code": code,
            "Message": message,
            "TransactionId": str(uuid.uuid4()),
            "EngineVersion": ENGINE_VERSION,
            "ApiVersion": API_VERSION,
            "TotalElapsedMilliseconds": int((time.perf_counter() - started) * 1000) if started else 0,
            "TransactionCost": cost,
        }
        if tenant is not None:
            info["CustomerDetails"] = self._customer_details(tenant, client_ip)
        return info

    def _customer_details(self, tenant: str, client_ip: str | None) -> dict[str, Any]:
        state = self.tenant_state(tenant)
        with self._lock:
            return {
                "AccountId": state.credentials["account_id"],
                "Name": state.data["company"],
                "IPAddress": client_ip or "127.0.0.1",
                "Region": "US",
                "CreditsRemaining": state.data["credits_remaining"],
                "CreditsUsed": state.data["credits_used"],
                "MaximumConcurrentRequests": 4,
                "ExpirationDate": "2027-12-31",
            }

    def error_response(
        self, status: int, message: str, code: str | int | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        info = self._info(str(code or STATUS_CODES.get(status, "UnhandledException")), message)
        return json_response({"Info": info}, status=status, headers=headers)

    # ------------------------------------------------------------------ endpoints

    async def account(self, call: Call) -> Response:
        client = call.request.client.host if call.request.client else None
        return json_response({"Info": self._info("Success", "Success", tenant=call.tenant, client_ip=client)})

    async def parse_resume(self, call: Call) -> Response:
        started = time.perf_counter()
        raw = await call.request.body()
        if len(raw) > MAX_BODY_BYTES:
            return self.error_response(413, "Request body too large", "RequestTooLarge")
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return self.error_response(400, "The request body is not valid JSON")
        if not isinstance(payload, dict):
            return self.error_response(400, "The request body must be a JSON object")
        for required in ("DocumentAsBase64String", "DocumentLastModified"):
            if payload.get(required) in (None, ""):
                return self.error_response(400, f"Missing required parameter: {required}", "MissingParameter")
        encoded = payload["DocumentAsBase64String"]
        try:
            if not isinstance(encoded, str):
                raise ValueError("not a string")
            document = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return self.error_response(400, "DocumentAsBase64String is not a valid base64 (RFC 4648) string")
        try:
            last_modified = datetime.strptime(str(payload["DocumentLastModified"]), "%Y-%m-%d").date()
        except ValueError:
            return self.error_response(400, "DocumentLastModified must be a date in the format yyyy-MM-dd")
        self.stats.record_upload(call.request.url.path, call.tenant, "application/json", document)
        if call.fault_kind == "malformed_record":
            return self.error_response(
                422, "Conversion failed: the document is corrupt or password protected", "ConversionException"
            )
        try:
            cv = parse_cv(document)
        except UnreadableDocument as exc:
            return self.error_response(422, f"Conversion failed: {exc}", "ConversionException")

        assert call.tenant is not None
        state = self.tenant_state(call.tenant)
        with self._lock:
            state.data["credits_remaining"] -= 1.0
            state.data["credits_used"] += 1.0
        resume = self._resume_data(cv, last_modified, payload)
        if call.fault_kind == "schema_drift":
            resume.pop("ProfessionalSummary", None)
            resume["CandidateInsights"] = {"SeniorityLevel": "Mid", "Version": "2"}
        value: dict[str, Any] = {
            "ParsingResponse": {"Code": "Success", "Message": "Success"},
            "ResumeData": resume,
            "RedactedResumeData": self._redacted(resume, cv),
            "ConversionMetadata": {
                "DetectedType": "Html" if cv.doc_format == "html" else "Text",
                "SuggestedFileExtension": cv.doc_format,
                "OutputValidityCode": "ovIsProbablyValid",
                "ElapsedMilliseconds": 1,
                "DocumentHash": hashlib.md5(document).hexdigest().upper(),
            },
            "Conversions": self._conversions(cv, payload),
            "ParsingMetadata": {
                "ElapsedMilliseconds": int((time.perf_counter() - started) * 1000),
                "TimedOut": False,
                "TimedOutAtMilliseconds": None,
            },
            "EducationNormalizationResponse": {"Code": "Success", "Message": "Education normalized"},
        }
        if (payload.get("ProfessionsSettings") or {}).get("Normalize"):
            value["ProfessionNormalizationResponse"] = {
                "Code": "Success",
                "Message": "Professions normalized",
            }
        client = call.request.client.host if call.request.client else None
        info = self._info("Success", "Success", started, cost=1.0, tenant=call.tenant, client_ip=client)
        return json_response({"Info": info, "Value": value})

    # ------------------------------------------------------------------ shaping

    def _resume_data(self, cv: ParsedCV, last_modified: date, payload: dict[str, Any]) -> dict[str, Any]:
        normalize_skills = (payload.get("SkillsSettings") or {}).get("Normalize", True) is not False
        normalize_professions = bool((payload.get("ProfessionsSettings") or {}).get("Normalize"))
        positions = []
        for i, p in enumerate(cv.positions, start=1):
            title_norm = _SENIORITY.sub("", p.title)
            position: dict[str, Any] = {
                "Id": f"POS-{i}",
                "Employer": {"Name": {"Raw": p.employer, "Normalized": _EMPLOYER_SUFFIX.sub("", p.employer)}},
                "JobTitle": {"Raw": p.title, "Normalized": title_norm},
                "StartDate": _tx_date(p.start, False, last_modified),
                "EndDate": _tx_date(p.end, p.is_current, last_modified),
                "IsCurrent": p.is_current,
                "Description": p.description,
            }
            if normalize_professions:
                position["NormalizedProfession"] = {
                    "Profession": {
                        "CodeId": int(hashlib.sha256(title_norm.encode()).hexdigest()[:4], 16),
                        "Description": title_norm,
                    },
                    "Confidence": 0.9,
                }
            positions.append(position)
        education = []
        for i, e in enumerate(cv.education, start=1):
            year = str(e.year) if e.year else None
            education.append(
                {
                    "Id": f"DEG-{i}",
                    "SchoolName": {"Raw": e.school, "Normalized": e.school},
                    "SchoolType": "university" if "universit" in e.school.lower() else "college",
                    "Degree": {
                        "Name": {"Raw": e.degree, "Normalized": e.degree},
                        "Type": _degree_type(e.degree),
                    },
                    "LastEducationDate": _tx_date(year, False, last_modified),
                    "EndDate": _tx_date(year, False, last_modified),
                    "Graduated": {"Value": True},
                }
            )
        skills: dict[str, Any] = {
            "Raw": [{"Name": s, "FoundIn": [{"SectionType": "SKILLS"}]} for s in cv.skills],
        }
        if normalize_skills:
            skills["Normalized"] = [
                {
                    "Name": NORMALIZED_SKILLS.get(s, s),
                    "Id": _skill_id(NORMALIZED_SKILLS.get(s, s)),
                    "Type": "IT" if s in IT_SKILLS else "Professional",
                    "RawSkills": [s],
                }
                for s in cv.skills
            ]
        contact: dict[str, Any] = {
            "CandidateName": {
                "FormattedName": cv.formatted_name,
                "GivenName": cv.given_name,
                "FamilyName": cv.family_name,
            },
            "EmailAddresses": [cv.email] if cv.email else [],
            "Telephones": [{"Raw": cv.phone, "Normalized": re.sub(r"[\s().\-/]+", " ", cv.phone).strip()}]
            if cv.phone
            else [],
            "Location": {
                "CountryCode": cv.country_code,
                "Municipality": cv.municipality,
                "PostalCode": cv.postal_code,
            },
        }
        resume: dict[str, Any] = {
            "ContactInformation": contact,
            "ProfessionalSummary": cv.summary or None,
            "EmploymentHistory": {"Positions": positions},
            "Education": {
                "HighestDegree": education[0]["Degree"] if education else None,
                "EducationDetails": education,
            },
            "Skills": skills,
            "LanguageCompetencies": [
                {"Language": lang, "LanguageCode": language_code(lang), "FoundInContext": "LANGUAGES"}
                for lang in cv.languages
            ],
            "ResumeMetadata": {
                "FoundSections": [
                    {
                        "FirstLineNumber": s.first_line,
                        "LastLineNumber": s.last_line,
                        "SectionType": SECTION_TYPES[s.kind],
                        "HeaderTextFound": s.heading,
                    }
                    for s in cv.sections
                ],
                "ResumeQuality": [],
                "ReservedData": {
                    "Phones": [cv.phone] if cv.phone else [],
                    "Names": [cv.formatted_name] if cv.formatted_name else [],
                    "EmailAddresses": [cv.email] if cv.email else [],
                    "Urls": [],
                    "OtherData": [],
                },
                "PlainText": cv.text,
                "DocumentLanguage": "en",
                "DocumentCulture": "en-US",
                "ParserSettings": "Coverage.SkillsTaxonomyVersion = V2; Sandbox = true",
                "DocumentLastModified": last_modified.isoformat(),
            },
        }
        return resume

    @staticmethod
    def _redacted(resume: dict[str, Any], cv: ParsedCV) -> dict[str, Any]:
        redacted = copy.deepcopy(resume)
        redacted.pop("ContactInformation", None)
        meta = redacted.get("ResumeMetadata", {})
        meta.pop("ReservedData", None)
        text = meta.get("PlainText", "")
        for secret in (cv.formatted_name, cv.email, cv.phone):
            if secret:
                text = text.replace(secret, "*" * len(secret))
        meta["PlainText"] = text
        return redacted

    @staticmethod
    def _conversions(cv: ParsedCV, payload: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if payload.get("OutputHtml"):
            body = "".join(f"<p>{html.escape(line)}</p>" for line in cv.lines)
            out["HTML"] = f"<html><body>{body}</body></html>"
        for flag, key in (
            ("OutputRtf", "RTF"),
            ("OutputPdf", "PDF"),
            ("OutputCandidateImage", "CandidateImage"),
        ):
            if payload.get(flag):
                out[key] = None  # the sandbox cannot render these
        return out

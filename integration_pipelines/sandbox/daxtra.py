"""Daxtra CVX REST parser simulator.

Follows ``partners/daxtra.md``: the ``account`` string in the request body is the credential
(options after a semicolon, e.g. ``"ACME; -turbo"``, are stripped), three request encodings
(JSON with a base64 ``file``; ``multipart/form-data`` with ``account`` and ``file`` parts, the
file part optionally gzip'd and marked ``Content-Transfer-Encoding: gzip``; form-urlencoded
with a base64 ``file``), ``CSERROR`` error objects, the ``Resume`` envelope with Daxtra's
mixed-case names, the two-phase flow (``profile/personal/json`` then ``GET data?token=``) and
browser-safe access tokens (``GET /cvx/rest/auth/v1/access_token``). JSON answers carry the
``Content-Type: application/json; charset=UTF8`` quirk (no hyphen); answers are gzip-compressed
when the client accepts it.

Multipart part names must be quoted (``name="file"``), like the strict upstream parser one
.NET client ran into; unquoted part names are ignored.

Unconfirmed — plausible design, as the fact sheet suggests: unknown account -> HTTP 401
``{"CSERROR": {"code": 401, "message": "Invalid account"}}``; unreadable/empty document ->
HTTP 200 ``{"CSERROR": {"code": 5, "message": "Unsupported document format"}}``; a missing
``file`` -> HTTP 400 with code 400; the sub-fields of ``PersonName``/``PostalAddress_main``,
``EducationHistory``, ``Competency``, ``Languages``, ``TextZones``, ``ParserInfo``,
``FileStruct`` and ``ExperienceSummary``; ``full_profile_token`` at the top level of the
phase-1 answer; phase-2 token lifetime (10 minutes) and access-token lifetime (the
simulator's ``token_ttl_seconds``, default 1 hour); XML attributes for the lower-case keys.
"""

import base64
import binascii
import gzip
import json
import re
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import xmltodict
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from integration_pipelines.sandbox.cv_text_parser import ParsedCV, UnreadableDocument, language_code, parse_cv
from integration_pipelines.sandbox.simulator import (
    Call,
    InvalidBody,
    PartnerRoute,
    Simulator,
    TenantState,
    json_response,
)

JSON_TYPE = "application/json; charset=UTF8"
XML_TYPE = "application/xml; charset=UTF8"
API = "/cvx/rest/api/v1"
PHASE2_TTL_SECONDS = 600.0
UNSUPPORTED = {"code": 5, "message": "Unsupported document format"}
_CONTRACT_WORDS = re.compile(r"\b(contract|contractor|freelance|interim|travel nurse|temporary)\b", re.I)
_MANAGER_WORDS = re.compile(r"\b(manager|lead|supervisor|head|director)\b", re.I)


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[bytes, str | None]]:
    """Parts of a ``multipart/form-data`` body: name -> (content, filename).

    Honours ``Content-Transfer-Encoding: gzip`` and ``base64`` part headers. Only quoted part
    names are recognised (strict, like the upstream parser).
    """
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise InvalidBody("multipart body without a boundary")
    boundary = b"--" + m.group(1).strip().encode("latin-1")
    fields: dict[str, tuple[bytes, str | None]] = {}
    for part in body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        part = part[2:] if part.startswith(b"\r\n") else part.lstrip(b"\n")
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            head, sep, content = part.partition(b"\n\n")
            if not sep:
                continue
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").splitlines():
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = re.search(r'\bname="([^"]*)"', disposition)
        if not name:
            continue
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        encoding = headers.get("content-transfer-encoding", "").lower()
        try:
            if encoding == "gzip":
                content = gzip.decompress(content)
            elif encoding == "base64":
                content = base64.b64decode(content)
        except (OSError, EOFError, binascii.Error) as exc:
            raise InvalidBody(f"part {name.group(1)!r}: cannot decode {encoding} content: {exc}") from exc
        fields[name.group(1)] = (content, filename.group(1) if filename else None)
    return fields


def _b64(value: str) -> bytes:
    cleaned = re.sub(r"\s+", "", value.replace(" ", "+"))
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidBody("the file field is not valid base64") from exc


def _months_between(start: str | None, end: str | None) -> int | None:
    if not start:
        return None
    sy, sm = int(start[:4]), int(start[5:7]) if len(start) >= 7 else 1
    if end:
        ey, em = int(end[:4]), int(end[5:7]) if len(end) >= 7 else 12
    else:
        today = datetime.now(UTC)
        ey, em = today.year, today.month
    return max(0, (ey - sy) * 12 + (em - sm) + 1)


def _to_xml_tree(value: Any) -> Any:
    """Lower-case scalar keys become XML attributes (``src``, ``lang``, ``skillName``...)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key[:1].islower() and not isinstance(item, (dict, list)):
                out[f"@{key}"] = item
            else:
                out[key] = _to_xml_tree(item)
        return out
    if isinstance(value, list):
        return [_to_xml_tree(v) for v in value]
    return value


class DaxtraSimulator(Simulator):
    """Simulator of Daxtra's CVX REST API (``/cvx/rest/...``)."""

    name = "daxtra"
    base_path = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._phase2: dict[str, tuple[str, float, dict[str, Any]]] = {}

    def partner_routes(self) -> list[PartnerRoute]:
        return [
            PartnerRoute(f"{API}/profile/full/json", ["POST"], self.full_json, data=True),
            PartnerRoute(f"{API}/profile/full/xml", ["POST"], self.full_xml, data=True),
            PartnerRoute(f"{API}/profile/personal/json", ["POST"], self.personal_json, data=True),
            PartnerRoute(f"{API}/data", ["GET"], self.phase2_data, auth=False, data=True),
            PartnerRoute("/cvx/rest/auth/v1/access_token", ["GET"], self.access_token, auth=False),
        ]

    def app_middleware(self) -> list[Middleware]:
        return [Middleware(GZipMiddleware, minimum_size=1024)]

    # ------------------------------------------------------------------ tenants and auth

    def make_credentials(self, tenant: str) -> dict[str, str]:
        base = re.sub(r"[^A-Z0-9]", "", tenant.upper()) or "ACCOUNT"
        account = base
        with self._lock:
            taken = {s.credentials["account"] for n, s in self.tenants.items() if n != tenant}
        if account in taken:
            account = f"{base}{self.derive(tenant, 'account', 4, '0123456789')}"
        return {"account": account}

    def seed_tenant(self, state: TenantState, records: int) -> None:
        state.data["documents_parsed"] = 0

    def _resolve_account(self, value: str | None) -> TenantState | None:
        if not value:
            return None
        name = value.split(";", 1)[0].strip()
        state = self.find_tenant("account", name)
        if state is None:
            tenant = self.token_tenant(name)
            state = self.tenants.get(tenant) if tenant else None
        return state

    async def _fields(self, request: Request) -> dict[str, Any]:
        """Decode the request once: {"account": str|None, "file": bytes|None, "filename": str|None}."""
        cached = getattr(request.state, "daxtra_fields", None)
        if cached is not None:
            return cached
        body = await request.body()
        ctype = request.headers.get("content-type", "").lower()
        fields: dict[str, Any] = {"account": None, "file": None, "filename": None}
        if ctype.startswith("multipart/form-data"):
            parts = parse_multipart(body, request.headers.get("content-type", ""))
            if "account" in parts:
                fields["account"] = parts["account"][0].decode("utf-8", errors="replace")
            if "file" in parts:
                fields["file"], fields["filename"] = parts["file"]
        elif ctype.startswith("application/json"):
            try:
                payload = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidBody("the request body is not valid JSON") from exc
            if not isinstance(payload, dict):
                raise InvalidBody("the request body must be a JSON object")
            fields["account"] = payload.get("account")
            if payload.get("file") is not None:
                fields["file"] = _b64(str(payload["file"]))
            fields["filename"] = payload.get("filename")
        elif ctype.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("latin-1"), keep_blank_values=True)
            fields["account"] = (form.get("account") or [None])[0]
            if form.get("file"):
                fields["file"] = _b64(form["file"][0])
            fields["filename"] = (form.get("filename") or [None])[0]
        else:
            raise InvalidBody(
                f"unsupported Content-Type {ctype or '(none)'}: use multipart/form-data, "
                "application/json or application/x-www-form-urlencoded"
            )
        request.state.daxtra_fields = fields
        return fields

    async def identify(self, request: Request) -> str | None:
        if request.url.path.endswith("/data"):
            with self._lock:
                entry = self._phase2.get(request.query_params.get("token", ""))
            return entry[0] if entry else None
        if request.url.path.endswith("/access_token"):
            state = self._resolve_account(request.query_params.get("account"))
            return state.name if state else None
        state = self._resolve_account((await self._fields(request))["account"])
        return state.name if state else None

    async def authenticate(self, request: Request) -> str | Response:
        try:
            account = (await self._fields(request))["account"]
        except InvalidBody as exc:
            return self.error_response(400, str(exc))
        state = self._resolve_account(account)
        if state is None or state.revoked:
            return self.error_response(401, "Invalid account")
        return state.name

    def error_response(
        self, status: int, message: str, code: str | int | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        body = {"CSERROR": {"code": code if code is not None else status, "message": message}}
        return json_response(body, status=status, headers=headers, media_type=JSON_TYPE)

    # ------------------------------------------------------------------ endpoints

    async def _parse(self, call: Call) -> ParsedCV | Response:
        fields = await self._fields(call.request)
        document = fields["file"]
        if document is None:
            return self.error_response(400, "Missing parameter: file")
        self.stats.record_upload(
            call.request.url.path, call.tenant, call.request.headers.get("content-type", ""), document
        )
        if call.fault_kind == "malformed_record":
            return json_response({"CSERROR": dict(UNSUPPORTED)}, media_type=JSON_TYPE)
        try:
            cv = parse_cv(document)
        except UnreadableDocument:
            return json_response({"CSERROR": dict(UNSUPPORTED)}, media_type=JSON_TYPE)
        with self._lock:
            self.tenant_state(call.tenant or "").data["documents_parsed"] += 1
        return cv

    def _options(self, account: str | None) -> list[str]:
        if not account or ";" not in account:
            return []
        return [o.strip() for o in account.split(";", 1)[1].split() if o.strip()]

    async def _resume_for(self, call: Call) -> dict[str, Any] | Response:
        parsed = await self._parse(call)
        if isinstance(parsed, Response):
            return parsed
        fields = await self._fields(call.request)
        resume = self.build_resume(
            parsed, fields["filename"], self._options(fields["account"]), len(fields["file"])
        )
        if call.fault_kind == "schema_drift":
            structured = resume["StructuredResume"]
            structured.pop("ExecutiveSummary", None)
            structured["SocialMedia"] = [{"type": "linkedin", "url": None}]
        return resume

    async def full_json(self, call: Call) -> Response:
        resume = await self._resume_for(call)
        if isinstance(resume, Response):
            return resume
        return json_response({"Resume": resume}, media_type=JSON_TYPE)

    async def full_xml(self, call: Call) -> Response:
        resume = await self._resume_for(call)
        if isinstance(resume, Response):
            return resume
        xml = xmltodict.unparse({"Resume": _to_xml_tree(resume)}, pretty=True)
        return Response(content=xml.encode("utf-8"), media_type=XML_TYPE)

    async def personal_json(self, call: Call) -> Response:
        resume = await self._resume_for(call)
        if isinstance(resume, Response):
            return resume
        token = secrets.token_hex(16)
        with self._lock:
            now = time.time()
            for key in [k for k, v in self._phase2.items() if v[1] <= now]:
                del self._phase2[key]
            self._phase2[token] = (call.tenant or "", now + PHASE2_TTL_SECONDS, resume)
        structured = resume["StructuredResume"]
        personal = {
            "src": resume["src"],
            "lang": resume["lang"],
            "StructuredResume": {
                "lang": structured["lang"],
                "PersonName": structured["PersonName"],
                "ContactMethod": structured["ContactMethod"],
            },
        }
        return json_response({"Resume": personal, "full_profile_token": token}, media_type=JSON_TYPE)

    async def phase2_data(self, call: Call) -> Response:
        token = call.request.query_params.get("token", "")
        with self._lock:
            entry = self._phase2.get(token)
        if entry is None or entry[1] <= time.time():
            return self.error_response(404, "Unknown or expired token")
        resume = json.loads(json.dumps(entry[2]))
        if call.fault_kind == "schema_drift":
            resume["StructuredResume"].pop("ExecutiveSummary", None)
            resume["StructuredResume"]["SocialMedia"] = [{"type": "linkedin", "url": None}]
        if call.fault_kind == "malformed_record":
            return json_response({"CSERROR": dict(UNSUPPORTED)}, media_type=JSON_TYPE)
        return json_response({"Resume": resume}, media_type=JSON_TYPE)

    async def access_token(self, call: Call) -> Response:
        account = (call.request.query_params.get("account") or "").split(";", 1)[0].strip()
        state = self.find_tenant("account", account)  # a token cannot be exchanged for a token
        if state is None or state.revoked:
            return self.error_response(401, "Invalid account")
        issued = self.issue_token(state.name)
        return PlainTextResponse(issued.token)

    # ------------------------------------------------------------------ shaping

    def build_resume(
        self, cv: ParsedCV, filename: str | None, options: list[str], size: int
    ) -> dict[str, Any]:
        employment = []
        total_months = 0
        manager_months = 0
        for i, p in enumerate(cv.positions, start=1):
            months = _months_between(p.start, p.end)
            total_months += months or 0
            if _MANAGER_WORDS.search(p.title):
                manager_months += months or 0
            employment.append(
                {
                    "EmployerOrgName": p.employer,
                    "Title": [p.title],
                    "StartDate": p.start,
                    "EndDate": "Present" if p.is_current else p.end,
                    "MonthsOfWork": months,
                    "PositionType": "contract"
                    if _CONTRACT_WORDS.search(f"{p.title} {p.description}")
                    else "directHire",
                    "TimelineNumber": str(i),
                    "Description": p.description,
                }
            )
        education = []
        for e in cv.education:
            education.append(
                {
                    "schoolType": "university" if "universit" in e.school.lower() else "college",
                    "SchoolName": e.school,
                    "Degree": {
                        "degreeType": "bachelors"
                        if e.degree[:1] == "B"
                        else "masters"
                        if e.degree[:1] == "M"
                        else "other",
                        "DegreeName": e.degree,
                        "DegreeDate": str(e.year) if e.year else None,
                    },
                    "EndDate": str(e.year) if e.year else None,
                }
            )
        text_lower = cv.text.lower()
        competency = []
        for skill in cv.skills:
            entry: dict[str, Any] = {
                "skillName": skill,
                "skillCount": max(1, text_lower.count(skill.lower())),
                "auth": True,
            }
            if skill in cv.skill_levels:
                entry["skillLevel"] = cv.skill_levels[skill]
            competency.append(entry)
        contact: dict[str, Any] = {"InternetEmailAddress_main": cv.email}
        if cv.phone:
            contact["Telephone_mobile"] = cv.phone
        contact["PostalAddress_main"] = {
            "CountryCode": cv.country_code,
            "Municipality": cv.municipality,
            "PostalCode": cv.postal_code,
        }
        structured: dict[str, Any] = {
            "lang": "en",
            "PersonName": {
                "FormattedName": cv.formatted_name,
                "GivenName": cv.given_name,
                "FamilyName": cv.family_name,
            },
            "ContactMethod": contact,
            "EmploymentHistory": employment,
            "EducationHistory": education,
            "Competency": competency,
            "Languages": [
                {
                    "LanguageCode": language_code(lang),
                    "Language": lang,
                    "Read": True,
                    "Write": True,
                    "Speak": True,
                }
                for lang in cv.languages
            ],
            "RevisionDate": datetime.now(UTC).date().isoformat(),
        }
        if cv.summary:
            structured["ExecutiveSummary"] = cv.summary
        if cv.headline:
            structured["PreferredPosition"] = cv.headline
        zones = [
            {
                "type": "personal",
                "heading": None,
                "text": "\n".join(cv.lines[: cv.sections[0].first_line] if cv.sections else cv.lines[:3]),
            }
        ]
        zones += [
            {
                "type": s.kind,
                "heading": s.heading,
                "text": "\n".join(cv.lines[s.first_line + 1 : s.last_line + 1]),
            }
            for s in cv.sections
        ]
        degree_types = [d["Degree"]["degreeType"] for d in education]
        return {
            "src": filename or "document",
            "lang": "en",
            "ParserInfo": {
                "ParserVersion": "CVX 8.4.12",
                "ParserSchema": "candidate/2.0.35",
                "ParserMode": "turbo" if "-turbo" in options else "standard",
                "ParserOptions": options,
                "ParserRelease": "2026-03",
            },
            "FileStruct": {
                "Format": cv.doc_format.upper(),
                "Size": size,
                "Lines": len(cv.lines),
                "Pages": 1,
                "Encoding": "UTF-8",
            },
            "TextResume": cv.text,
            "ExperienceSummary": {
                "TotalMonthsOfWork": total_months,
                "TotalYearsOfWork": round(total_months / 12, 1),
                "MonthsOfManagementExperience": manager_months,
                "HighestEducationalLevel": "masters"
                if "masters" in degree_types
                else (degree_types[0] if degree_types else None),
                "ExecutiveBrief": f"{round(total_months / 12)} years of work experience in "
                f"{len(employment)} position(s).",
            },
            "StructuredResume": structured,
            "TextZones": zones,
        }

"""SAP Fieldglass simulator (supplier side: connectors over the REST API).

Follows ``partners/sap-fieldglass.md``: OAuth 2.0 client credentials at
``POST /api/oauth2/v2.0/token`` with HTTP Basic ``client_id:license_key``, the
``X-ApplicationKey`` header and ``grant_type=client_credentials&response_type=token``;
7200 s tokens without refresh, where issuing a new token invalidates the client's previous
one; ``Authorization: Bearer <token>`` (the raw token without ``Bearer`` is accepted too) plus
``X-ApplicationKey`` on every call; connectors at ``/api/vc/connector/{connectorName}``;
delta download connectors keyed on a server-side watermark (a run returns what was revised
since the last *successful* run of that client, so a failed or faulted run re-sends the same
delta); uploads acknowledged with a ``TransactionID`` only, per-record outcome going to an
integration audit trail (``audit_trail()``); the Job Seeker Upload CSV layout (header block,
blank line, column header row, data rows) with its ``Transaction``, ``Date Format`` and
``Number Format`` semantics.

Unconfirmed — plausible design, as the fact sheet suggests: ``token_type``/``expires_in`` in
the token answer; ``GET`` for download connectors; the connector spellings
``JobPostingSupplierDownload``, ``JobSeekerUpload``, ``SupplierWorkerDownload``; the XML
element names of job postings; the ``fromDate`` query parameter (ISO-8601; returns postings
with ``LastModified >= fromDate``); the ``{"Data": [...]}`` JSON wrapper (uploads and the
worker download); the Job Seeker Upload column names; the error body
``{"ReturnCode": ..., "Message": ..., "TransactionID": ...}`` with the legacy return codes
(100 unable to authenticate, 106 general error, 107 no data found / unknown connector, 500
internal error); ID codes ``JP``/``JS``/``WO``/``PW``. No rate limit is documented: 429 with
``Retry-After`` comes from fault injection, or from the optional ``rate_limit_per_minute``.
"""

import base64
import copy
import csv
import io
import json
import re
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import xmltodict
from starlette.requests import Request
from starlette.responses import Response

from integration_pipelines.sandbox.data import (
    ENTERPRISES,
    generate_candidates,
    generate_requisitions,
    iso_utc,
    next_after,
    parse_iso_utc,
    seeded_rng,
)
from integration_pipelines.sandbox.simulator import Call, PartnerRoute, Simulator, TenantState, json_response

DOWNLOADS = ("JobPostingSupplierDownload", "SupplierWorkerDownload")
UPLOADS = ("JobSeekerUpload",)
RETURN_CODES = {400: 106, 401: 100, 403: 106, 404: 107, 405: 106, 409: 106, 429: 106, 500: 500, 503: 106}
DATE_FORMATS = {"MM/DD/YYYY": "%m/%d/%Y", "DD/MM/YYYY": "%d/%m/%Y", "YYYY-MM-DD": "%Y-%m-%d"}
NUMBER_FORMATS = {
    "#,##9.99": (",", "."),
    "#.##9,99": (".", ","),
    "#'##9.99": ("'", "."),
    "# ##9,99": (" ", ","),
}
JOB_SEEKER_REQUIRED = ("Job Posting ID", "First Name", "Last Name", "Email")
WORKER_COLUMNS = (
    "Job seeker ID",
    "Worker ID",
    "Person ID",
    "Status",
    "First name",
    "Last name",
    "Worker email",
    "Job posting title",
    "Work order ID",
    "Business unit code",
    "Business unit name",
    "Vendor number",
    "Vendor name",
    "Buyer code",
    "Cost center code",
    "Cost center name",
    "Start date",
    "End date",
    "Currency",
    "Job code",
)


def buyer_prefix(tenant: str) -> str:
    """Four-letter Fieldglass company prefix derived from the tenant ('acme' -> 'ACME')."""
    return (re.sub(r"[^A-Z]", "", tenant.upper()) or "CUST")[:4].ljust(4, "X")


class SapFieldglassSimulator(Simulator):
    """Simulator of SAP Fieldglass's REST connector API (``/api``) for a supplier."""

    name = "sap_fieldglass"
    base_path = "/api"
    default_token_ttl = 7200.0
    default_records = 250
    bearer_tokens = True

    def partner_routes(self) -> list[PartnerRoute]:
        return [
            PartnerRoute("/oauth2/v2.0/token", ["POST"], self.token, auth=False),
            PartnerRoute("/vc/connector/{connector}", ["GET"], self.download, data=True),
            PartnerRoute("/vc/connector/{connector}", ["POST"], self.upload),
        ]

    # ------------------------------------------------------------------ tenants and data

    def make_credentials(self, tenant: str) -> dict[str, str]:
        slug = re.sub(r"[^a-z0-9]", "", tenant.lower()) or "supplier"
        return {
            "client_id": f"{slug}_ws_integration",
            "license_key": self.derive(tenant, "license-key", 32),
            "application_key": self.derive(tenant, "application-key", 40),
        }

    def seed_tenant(self, state: TenantState, records: int) -> None:
        prefix = buyer_prefix(state.name)
        state.data.update(
            prefix=prefix,
            buyer_name=f"{state.name.replace('-', ' ').replace('_', ' ').title()} Corporation",
            postings={},
            revision=1,
            watermarks={},
            next_index=0,
            touches=0,
            job_seekers=[],
            audit=[],
            workers=[],
        )
        self._add_postings(state, records, fresh=False)
        self._seed_workers(state, min(40, max(records // 6, 5)) if records else 0)

    def _posting(self, state: TenantState, req: dict[str, Any]) -> dict[str, Any]:
        roll = req["status_roll"]
        status = (
            "Pending Submission"
            if roll < 0.2
            else "Submitted"
            if roll < 0.7
            else "Withdrawn"
            if roll < 0.8
            else "Closed"
            if roll < 0.9
            else "Filled"
        )
        unit, rate = "Hr", req["bill_rate_max"]
        if req["rate_period"] == "DAILY":
            unit = "Day"
        elif req["rate_period"] == "WEEKLY":
            unit, rate = "Day", rate / 5
        return {
            "JobPostingID": f"{state.data['prefix']}JP{12000 + req['index']:08d}",
            "Status": status,
            "Title": req["title"],
            "BuyerCode": state.data["prefix"],
            "BuyerName": state.data["buyer_name"],
            "StartDate": req["start_date"].isoformat(),
            "EndDate": req["end_date"].isoformat(),
            "Site": f"{req['city']} {req['region']}",
            "Positions": req["positions"],
            "Rate": {"BillRateMax": f"{rate:.2f}", "Currency": req["currency"], "Unit": unit},
            "Description": req["description"],
            "LastModified": iso_utc(req["updated"]),
            "_revision": state.data["revision"],
        }

    def _latest(self, state: TenantState) -> datetime | None:
        stamps = [p["LastModified"] for p in state.data["postings"].values()]
        return parse_iso_utc(max(stamps)) if stamps else None

    def _add_postings(self, state: TenantState, n: int, fresh: bool) -> list[str]:
        reqs = generate_requisitions(f"fieldglass:{state.name}", n, start=state.data["next_index"])
        state.data["next_index"] += n
        if fresh:
            state.data["revision"] += 1
        stamp = iso_utc(next_after(self._latest(state))) if fresh else None
        ids = []
        for req in reqs:
            posting = self._posting(state, req)
            if stamp is not None:
                posting.update(Status="Pending Submission", LastModified=stamp)
            state.data["postings"][posting["JobPostingID"]] = posting
            ids.append(posting["JobPostingID"])
        return ids

    def _seed_workers(self, state: TenantState, n: int) -> None:
        prefix = state.data["prefix"]
        rng = seeded_rng("fieldglass-workers", state.name)
        people = generate_candidates(f"fieldglass-workers:{state.name}", n)
        postings = sorted(state.data["postings"].values(), key=lambda p: p["JobPostingID"])
        vendor = state.name.replace("-", " ").title() + " Staffing"
        for i, person in enumerate(people, start=1):
            posting = postings[(i * 7) % len(postings)] if postings else None
            state.data["workers"].append(
                {
                    "Job seeker ID": f"{prefix}JS{500 + i:08d}",
                    "Worker ID": f"{prefix}PW{300 + i:08d}",
                    "Person ID": f"{prefix}PE{700 + i:08d}",
                    "Status": rng.choices(["Active", "Closed", "Withdrawn"], weights=[7, 2, 1])[0],
                    "First name": person["first_name"],
                    "Last name": person["last_name"],
                    "Worker email": person["email"],
                    "Job posting title": posting["Title"] if posting else None,
                    "Work order ID": f"{prefix}WO{900 + i:08d}",
                    "Business unit code": rng.choice(["BU100", "BU200", "BU300"]),
                    "Business unit name": rng.choice(["Corporate", "Operations", "Technology"]),
                    "Vendor number": f"V{10000 + rng.randint(0, 999)}",
                    "Vendor name": vendor,
                    "Buyer code": prefix,
                    "Cost center code": f"CC{rng.randint(1000, 9999)}",
                    "Cost center name": rng.choice(ENTERPRISES) + " Shared Services",
                    "Start date": posting["StartDate"] if posting else None,
                    "End date": posting["EndDate"] if posting else None,
                    "Currency": posting["Rate"]["Currency"] if posting else "USD",
                    "Job code": f"JC-{rng.randint(100, 999)}",
                }
            )

    def touch(self, tenant: str, n: int) -> list[str]:
        """Bump ``Positions`` of ``n`` postings; ``LastModified`` = now (latest); new revision."""
        with self._lock:
            state = self.tenant_state(tenant)
            postings = state.data["postings"]
            state.data["touches"] += 1
            rng = seeded_rng("fieldglass-touch", tenant, str(state.data["touches"]))
            chosen = rng.sample(sorted(postings), k=min(n, len(postings)))
            stamp = iso_utc(next_after(self._latest(state)))
            state.data["revision"] += 1
            for pid in chosen:
                postings[pid]["Positions"] += 1
                postings[pid]["LastModified"] = stamp
                postings[pid]["_revision"] = state.data["revision"]
            return chosen

    def add_records(self, tenant: str, n: int) -> list[str]:
        """Create ``n`` new postings (status Pending Submission) stamped now."""
        with self._lock:
            return self._add_postings(self.tenant_state(tenant), n, fresh=True)

    def postings(self, tenant: str) -> list[dict[str, Any]]:
        """All postings of a tenant, oldest change first (copies, internal fields removed)."""
        with self._lock:
            items = sorted(
                self.tenant_state(tenant).data["postings"].values(),
                key=lambda p: (p["LastModified"], p["JobPostingID"]),
            )
            return [{k: copy.deepcopy(v) for k, v in p.items() if not k.startswith("_")} for p in items]

    def job_seekers(self, tenant: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.tenant_state(tenant).data["job_seekers"])

    def audit_trail(self, tenant: str) -> list[dict[str, Any]]:
        """Per-record outcome of uploads (what the buyer sees in the Integration Audit Trail)."""
        with self._lock:
            return copy.deepcopy(self.tenant_state(tenant).data["audit"])

    # ------------------------------------------------------------------ auth and errors

    @staticmethod
    def _basic(request: Request) -> tuple[str | None, str | None]:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic" or not value:
            return None, None
        try:
            client_id, _, key = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None, None
        return client_id, key

    @staticmethod
    def bearer_token(request: Request) -> str | None:
        header = request.headers.get("authorization", "").strip()
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
        if scheme.lower() == "basic":
            return None
        return header  # raw token without the Bearer prefix (old samples do this)

    async def identify(self, request: Request) -> str | None:
        if request.url.path.endswith("/token"):
            state = self.find_tenant("client_id", self._basic(request)[0])
            return state.name if state else None
        return self.token_tenant(self.bearer_token(request))

    async def authenticate(self, request: Request) -> str | Response:
        tenant = self.token_tenant(self.bearer_token(request))
        if tenant is None:
            return self.error_response(401, "Unable to authenticate")
        key = request.headers.get("x-applicationkey")
        if not key or self.tenant_state(tenant).credentials["application_key"] != key:
            return self.error_response(401, "Unable to authenticate")
        return tenant

    def error_response(
        self, status: int, message: str, code: str | int | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        if status == 401:
            message = "Unable to authenticate"
        body = {
            "ReturnCode": code if code is not None else RETURN_CODES.get(status, 106),
            "Message": message,
            "TransactionID": uuid.uuid4().hex.upper(),
        }
        return json_response(body, status=status, headers=headers)

    def not_found_response(self, request: Request) -> Response:
        return self.error_response(404, f"No resource at {request.url.path}")

    # ------------------------------------------------------------------ endpoints

    async def token(self, call: Call) -> Response:
        request = call.request
        form = parse_qs((await request.body()).decode("latin-1"))
        client_id, license_key = self._basic(request)
        state = self.find_tenant("client_id", client_id)
        app_key = request.headers.get("x-applicationkey")
        if (
            state is None
            or state.revoked
            or not license_key
            or not app_key
            or state.credentials["license_key"] != license_key
            or state.credentials["application_key"] != app_key
        ):
            return self.error_response(401, "Unable to authenticate")
        if (form.get("grant_type") or [None])[0] != "client_credentials":
            return self.error_response(400, "grant_type must be client_credentials")
        if (form.get("response_type") or ["token"])[0] != "token":
            return self.error_response(400, "response_type must be token")
        issued = self.issue_token(state.name, replace_previous=True)
        return json_response(
            {"access_token": issued.token, "token_type": "Bearer", "expires_in": int(self.token_ttl_seconds)},
            headers={"Cache-Control": "no-store"},
        )

    async def download(self, call: Call) -> Response:
        connector = call.request.path_params["connector"]
        if connector in UPLOADS:
            return self.error_response(405, f"{connector} is an upload connector; use POST")
        if connector not in DOWNLOADS:
            return self.error_response(404, f"No data found: unknown connector {connector}")
        if connector == "SupplierWorkerDownload":
            return self._workers(call)
        from_raw = call.request.query_params.get("fromDate")
        since = None
        if from_raw:
            try:
                since = parse_iso_utc(from_raw)
            except ValueError:
                return self.error_response(
                    400, f"Invalid fromDate {from_raw!r}: use ISO-8601, e.g. 2025-06-11T09:12:00Z"
                )
        with self._lock:
            state = self.tenant_state(call.tenant or "")
            watermark = state.data["watermarks"].get(connector, 0)
            items = sorted(
                state.data["postings"].values(), key=lambda p: (p["LastModified"], p["JobPostingID"])
            )
            if since is not None:
                items = [p for p in items if parse_iso_utc(p["LastModified"]) >= since]
            else:
                items = [p for p in items if p["_revision"] > watermark]
            items = [{k: copy.deepcopy(v) for k, v in p.items() if not k.startswith("_")} for p in items]
            if call.fault is None:
                state.data["watermarks"][connector] = state.data["revision"]
        items = self._corrupt_postings(items, call.fault_kind)
        xml = xmltodict.unparse({"JobPostings": {"JobPosting": items} if items else None}, pretty=True)
        return Response(content=xml.encode("utf-8"), media_type="application/xml")

    @staticmethod
    def _corrupt_postings(items: list[dict[str, Any]], kind: str | None) -> list[dict[str, Any]]:
        if kind == "malformed_record":
            if items:
                items[0].pop("Title", None)
            if len(items) > 1:
                items[1]["StartDate"] = "2025-13-45"
            if len(items) > 2:
                items[2]["Rate"]["BillRateMax"] = "-" + items[2]["Rate"]["BillRateMax"].lstrip("-")
        elif kind == "schema_drift":
            for item in items:
                item.pop("Description", None)
                item["LaborType"] = "Contingent"
        return items

    def _workers(self, call: Call) -> Response:
        with self._lock:
            rows = copy.deepcopy(self.tenant_state(call.tenant or "").data["workers"])
        if call.fault_kind == "malformed_record":
            if rows:
                rows[0].pop("Last name", None)
            if len(rows) > 1:
                rows[1]["Start date"] = "2025-13-45"
        elif call.fault_kind == "schema_drift":
            for row in rows:
                row.pop("Cost center name", None)
                row["Labor type"] = "Contingent"
        return json_response({"Data": rows})

    async def upload(self, call: Call) -> Response:
        connector = call.request.path_params["connector"]
        if connector in DOWNLOADS:
            return self.error_response(405, f"{connector} is a download connector; use GET")
        if connector not in UPLOADS:
            return self.error_response(404, f"No data found: unknown connector {connector}")
        body = await call.request.body()
        ctype = call.request.headers.get("content-type", "")
        self.stats.record_upload(call.request.url.path, call.tenant, ctype, body)
        try:
            headers, rows = self._read_upload(body, ctype)
        except ValueError as exc:
            return self.error_response(400, f"Unable to read the upload file: {exc}")
        transaction = uuid.uuid4().hex.upper()
        self._process_job_seekers(call.tenant or "", transaction, headers, rows)
        return json_response({"TransactionID": transaction, "Message": "File received"})

    @staticmethod
    def _read_upload(body: bytes, content_type: str) -> tuple[dict[str, str], list[dict[str, str]]]:
        text = body.decode("utf-8-sig", errors="replace")
        if "json" in content_type or text.lstrip().startswith("{"):
            try:
                payload = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"invalid JSON ({exc})") from exc
            if not isinstance(payload, dict) or not isinstance(payload.get("Data"), list):
                raise ValueError('JSON uploads must look like {"Data": [ {column: value}, ... ]}')
            rows = [
                {str(k): "" if v is None else str(v) for k, v in r.items()}
                for r in payload["Data"]
                if isinstance(r, dict)
            ]
            return {
                "Type": "Job Seeker Upload",
                "Transaction": "False",
                "Date Format": "YYYY-MM-DD",
                "Number Format": "#,##9.99",
            }, rows
        records = list(csv.reader(io.StringIO(text)))
        headers: dict[str, str] = {}
        index = 0
        while index < len(records) and any(cell.strip() for cell in records[index]):
            row = records[index]
            headers[row[0].strip()] = row[1].strip() if len(row) > 1 else ""
            index += 1
        if index >= len(records) or "Type" not in headers:
            raise ValueError(
                "expected a header block starting with 'Type,<connector>', a blank line, "
                "a column header row and data rows"
            )
        while index < len(records) and not any(cell.strip() for cell in records[index]):
            index += 1
        if index >= len(records):
            raise ValueError("no column header row after the header block")
        columns = [c.strip() for c in records[index]]
        rows = [
            dict(zip(columns, (c.strip() for c in r), strict=False))
            for r in records[index + 1 :]
            if any(c.strip() for c in r)
        ]
        return headers, rows

    def _process_job_seekers(
        self, tenant: str, transaction: str, headers: dict[str, str], rows: list[dict[str, str]]
    ) -> None:
        date_format = DATE_FORMATS.get(headers.get("Date Format", "MM/DD/YYYY"), "%m/%d/%Y")
        thousands, decimal = NUMBER_FORMATS.get(headers.get("Number Format", "#,##9.99"), (",", "."))
        all_or_nothing = headers.get("Transaction", "True").strip().lower() != "false"
        with self._lock:
            state = self.tenant_state(tenant)
            results: list[tuple[int, dict[str, Any] | None, str]] = []
            if headers.get("Type", "").replace(" ", "") != "JobSeekerUpload":
                results = [
                    (i, None, f"Type header {headers.get('Type')!r} does not match Job Seeker Upload")
                    for i in range(1, len(rows) + 1)
                ]
            else:
                for i, row in enumerate(rows, start=1):
                    results.append((i, *self._job_seeker(state, row, date_format, thousands, decimal)))
            failed = any(seeker is None for _, seeker, _ in results)
            for i, seeker, message in results:
                ok = seeker is not None and not (all_or_nothing and failed)
                if ok and seeker is not None:
                    seeker["Job Seeker ID"] = (
                        f"{state.data['prefix']}JS{len(state.data['job_seekers']) + 1:08d}"
                    )
                    state.data["job_seekers"].append(seeker)
                state.data["audit"].append(
                    {
                        "TransactionID": transaction,
                        "Row": i,
                        "Status": "Success" if ok else "Failed",
                        "Message": message
                        if seeker is None or ok
                        else "Transaction rolled back: another row failed",
                        "Job Seeker ID": seeker["Job Seeker ID"] if ok and seeker is not None else None,
                    }
                )

    @staticmethod
    def _job_seeker(
        state: TenantState, row: dict[str, str], date_format: str, thousands: str, decimal: str
    ) -> tuple[dict[str, Any] | None, str]:
        for column in JOB_SEEKER_REQUIRED:
            if not row.get(column):
                return None, f"{column} is required"
        posting = state.data["postings"].get(row["Job Posting ID"])
        if posting is None:
            return None, f"Job Posting ID {row['Job Posting ID']} was not found"
        if posting["Status"] != "Submitted":
            return (
                None,
                f"Job Posting {posting['JobPostingID']} is {posting['Status']} and not open to suppliers",
            )
        seeker: dict[str, Any] = {k: v for k, v in row.items()}
        for column in ("Bill Rate", "Pay Rate"):
            if row.get(column):
                try:
                    seeker[column] = float(row[column].replace(thousands, "").replace(decimal, "."))
                except ValueError:
                    return None, f"{column} {row[column]!r} does not match the Number Format header"
        if row.get("Available Date"):
            try:
                seeker["Available Date"] = (
                    datetime.strptime(row["Available Date"], date_format).date().isoformat()
                )
            except ValueError:
                return None, f"Available Date {row['Available Date']!r} does not match the Date Format header"
        seeker["Status"] = "Submitted"
        seeker["Submitted At"] = iso_utc(next_after(None))
        return seeker, "Job seeker created"

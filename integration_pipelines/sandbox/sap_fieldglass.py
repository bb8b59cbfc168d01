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

Submissions and placements (unconfirmed — plausible design): a Job Seeker Upload row may
carry a ``Supplier Reference`` column (the supplier's own id for the submission); it is kept
on the job seeker and in the audit trail, and a second row with a reference already used is
a per-record failure (no duplicate job seeker). Uploaded job seekers get
``<PREFIX>JS000100NN`` ids. Work orders (placements; ~15 seeded per tenant) come from
``GET /api/vc/connector/WorkOrderDownload?fromDate=`` as JSON ``{"Data": [rows]}`` with the
columns ``Work Order ID, Job Posting ID, Job Seeker ID, Worker ID, First name, Last name,
Status (Pending|Active|Closed|Cancelled), Start date, End date (YYYY-MM-DD), Bill Rate, Pay
Rate (numbers), Currency, Last Modified (ISO-8601 Z)``; rows with ``Last Modified >=
fromDate``, or every row without ``fromDate``. ``POST .../WorkOrderUpdateUpload`` takes CSV
in the Job Seeker Upload layout (``Type,Work Order Update Upload`` header block, blank line,
columns ``Work Order ID,End Date,Bill Rate,Pay Rate,Comments``; ``Start Date`` and
``Status`` are accepted too) or JSON ``{"Data": [rows]}``, applies the non-empty fields,
bumps ``Last Modified`` and answers ``{"TransactionID", "Message": "File received"}``; an
unknown work order or a bad value is a per-record failure in ``audit_trail`` only (still 200).
The seeded worker download (``SupplierWorkerDownload``) is independent of the work orders.

Push (the sheet: pushes authenticate with a configured username/password, HTTP Basic; no
HMAC; payload unknown — the rest is plausible design): ``POST`` to the subscriber with
``Content-Type: application/xml`` and ``Authorization: Basic base64(webhook_username:
webhook_password)``; body ``<Event><EventID>uuid</EventID><EventType>..</EventType>
<OccurredAt>ISO-8601Z</OccurredAt><JobPosting>..</JobPosting></Event>`` where the posting has
the same elements as the download (``JobPostingCreated`` from ``add_records``,
``JobPostingUpdated`` from ``touch``), or ``<WorkOrder>`` for ``WorkOrderUpdated``
(``edit_work_order``) with the work order's columns as elements without spaces:
``WorkOrderID, JobPostingID, JobSeekerID, WorkerID, FirstName, LastName, Status, StartDate,
EndDate, BillRate, PayRate (two decimals), Currency, LastModified``. The record travels inside
the event. Uploads by the supplier never trigger a push.
"""

import base64
import copy
import csv
import io
import json
import random
import re
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
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

DOWNLOADS = ("JobPostingSupplierDownload", "SupplierWorkerDownload", "WorkOrderDownload")
UPLOADS = ("JobSeekerUpload", "WorkOrderUpdateUpload")
#: Connector name -> the ``Type`` header its files carry.
UPLOAD_TYPES = {"JobSeekerUpload": "Job Seeker Upload", "WorkOrderUpdateUpload": "Work Order Update Upload"}
WORK_ORDER_STATUSES = ("Pending", "Active", "Closed", "Cancelled")
#: Work order column -> XML element in a WorkOrderUpdated push.
WORK_ORDER_ELEMENTS = {
    "Work Order ID": "WorkOrderID",
    "Job Posting ID": "JobPostingID",
    "Job Seeker ID": "JobSeekerID",
    "Worker ID": "WorkerID",
    "First name": "FirstName",
    "Last name": "LastName",
    "Status": "Status",
    "Start date": "StartDate",
    "End date": "EndDate",
    "Bill Rate": "BillRate",
    "Pay Rate": "PayRate",
    "Currency": "Currency",
    "Last Modified": "LastModified",
}
#: Editable work order columns (``edit_work_order`` also takes the snake_case alias).
WORK_ORDER_EDITABLE = {
    "Status": "status",
    "Start date": "start_date",
    "End date": "end_date",
    "Bill Rate": "bill_rate",
    "Pay Rate": "pay_rate",
    "First name": "first_name",
    "Last name": "last_name",
}
#: Work Order Update Upload column (lower case) -> work order column.
WORK_ORDER_UPLOAD_COLUMNS = {
    "start date": "Start date",
    "end date": "End date",
    "bill rate": "Bill Rate",
    "pay rate": "Pay Rate",
    "status": "Status",
}
SEEDED_WORK_ORDERS = 15
FIRST_JOB_SEEKER_NUMBER = 10001
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


def _stamp_after(stamps: Iterable[str]) -> str:
    """Now, but strictly later than every stamp given (cursor-safe ``Last Modified``)."""
    values = list(stamps)
    return iso_utc(next_after(parse_iso_utc(max(values)) if values else None))


def _check_work_order(order: dict[str, Any]) -> str | None:
    """Problem with a (changed) work order, or ``None``."""
    for column in ("Start date", "End date"):
        value = order.get(column)
        try:
            if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                raise ValueError
            date.fromisoformat(value)
        except ValueError:
            return f"{column} must be a date YYYY-MM-DD, got {value!r}"
    for column in ("Bill Rate", "Pay Rate"):
        value = order.get(column)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            return f"{column} must be a positive number, got {value!r}"
    if order.get("Status") not in WORK_ORDER_STATUSES:
        return f"Status must be one of {', '.join(WORK_ORDER_STATUSES)}, got {order.get('Status')!r}"
    for column in ("First name", "Last name"):
        if not isinstance(order.get(column), str) or not order[column].strip():
            return f"{column} must be a non-empty string"
    if order["End date"] < order["Start date"]:
        return f"End date {order['End date']} is before Start date {order['Start date']}"
    return None


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
    supports_webhooks = True

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
            "webhook_username": f"{slug}_push",
            "webhook_password": self.derive(tenant, "webhook-password", 32),
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
            work_orders={},
        )
        self._add_postings(state, records, fresh=False)
        self._seed_workers(state, min(40, max(records // 6, 5)) if records else 0)
        self._seed_work_orders(state, min(SEEDED_WORK_ORDERS, records))

    def _seed_work_orders(self, state: TenantState, n: int) -> None:
        if n <= 0 or not state.data["postings"]:
            return
        prefix = state.data["prefix"]
        rng = seeded_rng("fieldglass-work-orders", state.name)
        rank = {"Filled": 0, "Closed": 1, "Submitted": 2, "Withdrawn": 3, "Pending Submission": 4}
        postings = sorted(
            state.data["postings"].values(), key=lambda p: (rank.get(p["Status"], 5), p["JobPostingID"])
        )
        for i, person in enumerate(generate_candidates(f"fieldglass-work-orders:{state.name}", n), start=1):
            posting = postings[(i - 1) % len(postings)]
            bill = round(float(posting["Rate"]["BillRateMax"]) * rng.uniform(0.85, 1.0), 2)
            changed = parse_iso_utc(posting["LastModified"]) + timedelta(
                days=rng.randint(3, 30), minutes=rng.randint(0, 600)
            )
            order = {
                "Work Order ID": f"{prefix}WO{100 + i:08d}",
                "Job Posting ID": posting["JobPostingID"],
                "Job Seeker ID": f"{prefix}JS{600 + i:08d}",
                "Worker ID": f"{prefix}PW{100 + i:08d}",
                "First name": person["first_name"],
                "Last name": person["last_name"],
                "Status": rng.choices(WORK_ORDER_STATUSES, weights=[3, 8, 3, 1])[0],
                "Start date": posting["StartDate"],
                "End date": posting["EndDate"],
                "Bill Rate": bill,
                "Pay Rate": round(bill * rng.uniform(0.68, 0.78), 2),
                "Currency": posting["Rate"]["Currency"],
                "Last Modified": iso_utc(changed),
            }
            state.data["work_orders"][order["Work Order ID"]] = order

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

    def touch(self, tenant: str, n: int, ids: list[str] | None = None) -> list[str]:
        """Bump ``Positions`` of ``n`` postings (or of ``ids``); ``LastModified`` = now (latest);
        new revision."""
        with self._lock:
            state = self.tenant_state(tenant)
            postings = state.data["postings"]
            state.data["touches"] += 1
            rng = seeded_rng("fieldglass-touch", tenant, str(state.data["touches"]))
            chosen = list(ids) if ids else rng.sample(sorted(postings), k=min(n, len(postings)))
            stamp = iso_utc(next_after(self._latest(state)))
            state.data["revision"] += 1
            for pid in chosen:
                postings[pid]["Positions"] += 1
                postings[pid]["LastModified"] = stamp
                postings[pid]["_revision"] = state.data["revision"]
            self.emit(tenant, [self._posting_event("JobPostingUpdated", postings[pid]) for pid in chosen])
            return chosen

    def add_records(self, tenant: str, n: int) -> list[str]:
        """Create ``n`` new postings (status Pending Submission) stamped now."""
        with self._lock:
            state = self.tenant_state(tenant)
            ids = self._add_postings(state, n, fresh=True)
            postings = state.data["postings"]
            self.emit(tenant, [self._posting_event("JobPostingCreated", postings[pid]) for pid in ids])
            return ids

    def collection(self, tenant: str, path: str) -> list[dict[str, Any]]:
        if path == "/vc/connector/JobPostingSupplierDownload":
            return self.postings(tenant)
        if path == "/vc/connector/WorkOrderDownload":
            return self.work_orders(tenant)
        return super().collection(tenant, path)

    def change(self, tenant: str, path: str, n: int) -> list[str]:
        if path == "/vc/connector/JobPostingSupplierDownload":
            return self.touch(tenant, n)
        if path == "/vc/connector/WorkOrderDownload":
            chosen = self.work_orders(tenant)[:n]
            for row in chosen:
                self.edit_work_order(
                    tenant, row["Work Order ID"], bill_rate=round(float(row["Bill Rate"]) + 1, 2)
                )
            return [row["Work Order ID"] for row in chosen]
        return super().change(tenant, path, n)

    def edit_work_order(self, tenant: str, work_order_id: str, **fields: Any) -> dict[str, Any]:
        """A buyer-side change of a work order: columns as keywords (``**{"End date": ...}``)
        or their aliases ``status, start_date, end_date, bill_rate, pay_rate, first_name,
        last_name``. Bumps ``Last Modified`` and pushes ``WorkOrderUpdated``; returns the row."""
        aliases = {alias: column for column, alias in WORK_ORDER_EDITABLE.items()}
        changes: dict[str, Any] = {}
        for key, value in fields.items():
            column = aliases.get(key, key)
            if column not in WORK_ORDER_EDITABLE:
                raise ValueError(f"cannot edit {key!r}; editable: {', '.join(WORK_ORDER_EDITABLE)}")
            if isinstance(value, date):
                value = value.isoformat()
            elif (
                column in ("Bill Rate", "Pay Rate") and isinstance(value, int) and not isinstance(value, bool)
            ):
                value = float(value)
            changes[column] = value
        if not changes:
            raise ValueError("nothing to edit")
        with self._lock:
            orders = self.tenant_state(tenant).data["work_orders"]
            order = orders.get(work_order_id)
            if order is None:
                raise KeyError(f"sap_fieldglass: tenant {tenant!r} has no work order {work_order_id!r}")
            problem = _check_work_order({**order, **changes})
            if problem:
                raise ValueError(problem)
            order.update(changes)
            order["Last Modified"] = _stamp_after(o["Last Modified"] for o in orders.values())
            self.emit(tenant, [self._work_order_event(order)])
            return copy.deepcopy(order)

    def work_orders(self, tenant: str) -> list[dict[str, Any]]:
        """All work orders of a tenant, oldest change first (copies)."""
        with self._lock:
            items = self.tenant_state(tenant).data["work_orders"].values()
            return copy.deepcopy(sorted(items, key=lambda o: (o["Last Modified"], o["Work Order ID"])))

    def job_seeker_by_reference(self, tenant: str, supplier_reference: str) -> dict[str, Any] | None:
        """The job seeker uploaded with ``Supplier Reference`` = ``supplier_reference``."""
        with self._lock:
            for seeker in self.tenant_state(tenant).data["job_seekers"]:
                if seeker.get("Supplier Reference") == supplier_reference:
                    return copy.deepcopy(seeker)
        return None

    # ------------------------------------------------------------------ push

    @staticmethod
    def _posting_event(kind: str, posting: dict[str, Any], occurred_at: str | None = None) -> dict[str, Any]:
        record = {k: copy.deepcopy(v) for k, v in posting.items() if not k.startswith("_")}
        return {
            "EventID": str(uuid.uuid4()),
            "EventType": kind,
            "OccurredAt": occurred_at or posting["LastModified"],
            "JobPosting": record,
        }

    @staticmethod
    def _work_order_event(order: dict[str, Any]) -> dict[str, Any]:
        element: dict[str, Any] = {}
        for column, name in WORK_ORDER_ELEMENTS.items():
            value = order.get(column)
            element[name] = f"{value:.2f}" if isinstance(value, float) else value
        return {
            "EventID": str(uuid.uuid4()),
            "EventType": "WorkOrderUpdated",
            "OccurredAt": order["Last Modified"],
            "WorkOrder": element,
        }

    def render_webhook(self, tenant: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = xmltodict.unparse({"Event": event}, encoding="utf-8").encode("utf-8")
        creds = self.credentials(tenant)
        basic = base64.b64encode(f"{creds['webhook_username']}:{creds['webhook_password']}".encode()).decode()
        return body, {
            "Content-Type": "application/xml",
            "Authorization": f"Basic {basic}",
            "User-Agent": "SAP-Fieldglass-Push/1.0 (sandbox)",
        }

    def sample_event(self, tenant: str) -> dict[str, Any]:
        """``JobPostingUpdated`` carrying one of the tenant's postings as it is now."""
        with self._lock:
            postings = self.tenant_state(tenant).data["postings"]
            if not postings:
                raise ValueError(f"sap_fieldglass: tenant {tenant!r} has no postings to send")
            posting = postings[random.choice(sorted(postings))]
            return self._posting_event("JobPostingUpdated", posting, iso_utc(next_after(None)))

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
        if connector == "WorkOrderDownload":
            return self._work_order_download(call, since)
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

    def _work_order_download(self, call: Call, since: datetime | None) -> Response:
        rows = self.work_orders(call.tenant or "")
        if since is not None:
            rows = [r for r in rows if parse_iso_utc(r["Last Modified"]) >= since]
        if call.fault_kind == "malformed_record":
            if rows:
                rows[0].pop("Status", None)
            if len(rows) > 1:
                rows[1]["Start date"] = "2025-13-45"
            if len(rows) > 2:
                rows[2]["Bill Rate"] = -abs(float(rows[2]["Bill Rate"]))
        elif call.fault_kind == "schema_drift":
            for row in rows:
                row.pop("Pay Rate", None)
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
            headers, rows = self._read_upload(body, ctype, UPLOAD_TYPES[connector])
        except ValueError as exc:
            return self.error_response(400, f"Unable to read the upload file: {exc}")
        transaction = uuid.uuid4().hex.upper()
        if connector == "JobSeekerUpload":
            self._process_job_seekers(call.tenant or "", transaction, headers, rows)
        else:
            self._process_work_order_updates(call.tenant or "", transaction, headers, rows)
        return json_response({"TransactionID": transaction, "Message": "File received"})

    @staticmethod
    def _read_upload(
        body: bytes, content_type: str, default_type: str = "Job Seeker Upload"
    ) -> tuple[dict[str, str], list[dict[str, str]]]:
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
                "Type": default_type,
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
                references = {s.get("Supplier Reference") for s in state.data["job_seekers"]} - {None, ""}
                for i, row in enumerate(rows, start=1):
                    seeker, message = self._job_seeker(state, row, date_format, thousands, decimal)
                    reference = row.get("Supplier Reference") or None
                    if seeker is not None and reference is not None:
                        if reference in references:
                            seeker, message = None, f"Duplicate Supplier Reference {reference}"
                        references.add(reference)
                    results.append((i, seeker, message))
            failed = any(seeker is None for _, seeker, _ in results)
            for i, seeker, message in results:
                ok = seeker is not None and not (all_or_nothing and failed)
                if ok and seeker is not None:
                    number = FIRST_JOB_SEEKER_NUMBER + len(state.data["job_seekers"])
                    seeker["Job Seeker ID"] = f"{state.data['prefix']}JS{number:08d}"
                    state.data["job_seekers"].append(seeker)
                row = rows[i - 1]
                state.data["audit"].append(
                    {
                        "Connector": "JobSeekerUpload",
                        "TransactionID": transaction,
                        "Row": i,
                        "Status": "Success" if ok else "Failed",
                        "Message": message
                        if seeker is None or ok
                        else "Transaction rolled back: another row failed",
                        "Job Seeker ID": seeker["Job Seeker ID"] if ok and seeker is not None else None,
                        "Supplier Reference": row.get("Supplier Reference") or None,
                    }
                )

    def _process_work_order_updates(
        self, tenant: str, transaction: str, headers: dict[str, str], rows: list[dict[str, str]]
    ) -> None:
        """Apply a Work Order Update Upload; per-record outcome goes to the audit trail only."""
        date_format = DATE_FORMATS.get(headers.get("Date Format", "MM/DD/YYYY"), "%m/%d/%Y")
        thousands, decimal = NUMBER_FORMATS.get(headers.get("Number Format", "#,##9.99"), (",", "."))
        all_or_nothing = headers.get("Transaction", "True").strip().lower() != "false"
        with self._lock:
            orders = self.tenant_state(tenant).data["work_orders"]
            results: list[tuple[int, str | None, dict[str, Any] | None, str]] = []
            for i, row in enumerate(rows, start=1):
                lowered = {k.strip().lower(): v.strip() for k, v in row.items() if k}
                order_id = lowered.get("work order id") or None
                if headers.get("Type", "").replace(" ", "") != "WorkOrderUpdateUpload":
                    problem = f"Type header {headers.get('Type')!r} does not match Work Order Update Upload"
                    results.append((i, order_id, None, problem))
                    continue
                changes, message = self._work_order_changes(
                    orders, order_id, lowered, date_format, thousands, decimal
                )
                results.append((i, order_id, changes, message))
            failed = any(changes is None for _, _, changes, _ in results)
            stamp = _stamp_after(o["Last Modified"] for o in orders.values())
            audit = self.tenant_state(tenant).data["audit"]
            for i, order_id, changes, message in results:
                ok = changes is not None and not (all_or_nothing and failed)
                if ok and changes and order_id is not None:
                    orders[order_id].update(changes)
                    orders[order_id]["Last Modified"] = stamp
                audit.append(
                    {
                        "Connector": "WorkOrderUpdateUpload",
                        "TransactionID": transaction,
                        "Row": i,
                        "Status": "Success" if ok else "Failed",
                        "Message": message
                        if changes is None or ok
                        else "Transaction rolled back: another row failed",
                        "Work Order ID": order_id,
                        "Comments": rows[i - 1].get("Comments") or None,
                    }
                )

    @staticmethod
    def _work_order_changes(
        orders: dict[str, dict[str, Any]],
        order_id: str | None,
        row: dict[str, str],
        date_format: str,
        thousands: str,
        decimal: str,
    ) -> tuple[dict[str, Any] | None, str]:
        if not order_id:
            return None, "Work Order ID is required"
        order = orders.get(order_id)
        if order is None:
            return None, f"Work Order ID {order_id} was not found"
        changes: dict[str, Any] = {}
        for key, column in WORK_ORDER_UPLOAD_COLUMNS.items():
            value = row.get(key)
            if not value:
                continue
            if column in ("Start date", "End date"):
                try:
                    changes[column] = datetime.strptime(value, date_format).date().isoformat()
                except ValueError:
                    return None, f"{key.title()} {value!r} does not match the Date Format header"
            elif column in ("Bill Rate", "Pay Rate"):
                try:
                    changes[column] = float(value.replace(thousands, "").replace(decimal, "."))
                except ValueError:
                    return None, f"{column} {value!r} does not match the Number Format header"
            else:
                changes[column] = value
        problem = _check_work_order({**order, **changes})
        if problem:
            return None, problem
        return changes, "Work order updated" if changes else "No changes"

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

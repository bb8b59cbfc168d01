"""Beeline Supplier and Talent API simulator (supplier side of the Beeline VMS).

Follows ``partners/beeline.md``: OAuth 2.0 client credentials at
``POST /api/gwg/supplier/oauth/token`` (HTTP Basic or form body; 1-hour tokens, no refresh
token), bearer tokens on every other call, offset paging with ``limit``/``offset`` and an
``items`` wrapper (clients page until a short page), and the rate limit of 100 calls per
minute per supplier across all endpoints with ``X-Rate-Limit-Limit``,
``X-Rate-Limit-Remaining`` and ``X-Rate-Limit-Reset`` on every response (429 when exceeded;
no ``Retry-After``). The limit is a constructor argument so tests can raise it.

Unconfirmed — plausible design, as the fact sheet suggests: the resource paths
(``/job-postings``, ``/workers``, ``/candidates``), the posting and worker field names, the
``updatedSince`` filter (ISO-8601 UTC, returns ``updatedAt >= updatedSince``), limit bounds
(default 50, 1..200, else 400), the ordering (``updatedAt`` then ``uid``), enumerations and
the error body ``{"status": 400, "error": "Bad Request", "message": "..."}``. The token
endpoint answers OAuth-style errors (``{"error": "invalid_client"}``).
"""

import base64
import copy
import hashlib
import math
import re
import uuid
from datetime import date, datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from integration_pipelines.sandbox.data import (
    generate_requisitions,
    iso_utc,
    next_after,
    parse_iso_utc,
    seeded_rng,
)
from integration_pipelines.sandbox.simulator import (
    Call,
    PartnerRoute,
    RateState,
    Simulator,
    TenantState,
    json_response,
    read_json,
)

POSTING_STATUSES = ("OPEN", "ON_HOLD", "CLOSED", "FILLED")
RATE_PERIODS = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
CANDIDATE_PATCH_STATUSES = ("RESCINDED", "RESUBMITTED")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _uid(*parts: str) -> str:
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


class BeelineSimulator(Simulator):
    """Simulator of Beeline's Supplier and Talent API (``/api/gwg/supplier``)."""

    name = "beeline"
    base_path = "/api/gwg/supplier"
    default_token_ttl = 3600.0
    default_rate_limit = 100
    default_records = 300
    bearer_tokens = True

    def partner_routes(self) -> list[PartnerRoute]:
        return [
            PartnerRoute("/oauth/token", ["POST"], self.token, auth=False),
            PartnerRoute("/job-postings", ["GET"], self.list_postings, data=True),
            PartnerRoute("/job-postings/{uid}", ["GET"], self.get_posting, data=True),
            PartnerRoute("/workers", ["GET"], self.list_workers, data=True),
            PartnerRoute("/workers", ["POST"], self.create_worker),
            PartnerRoute("/workers/{uid}", ["GET"], self.get_worker, data=True),
            PartnerRoute("/workers/{uid}", ["PATCH"], self.update_worker),
            PartnerRoute("/candidates", ["GET"], self.list_candidates, data=True),
            PartnerRoute("/candidates", ["POST"], self.submit_candidate),
            PartnerRoute("/candidates/{uid}", ["GET"], self.get_candidate, data=True),
            PartnerRoute("/candidates/{uid}", ["PATCH"], self.update_candidate),
        ]

    # ------------------------------------------------------------------ tenants and data

    def make_credentials(self, tenant: str) -> dict[str, str]:
        return {
            "client_id": _uid("beeline-client", tenant),
            "client_secret": self.derive(tenant, "secret", 48),
        }

    def seed_tenant(self, state: TenantState, records: int) -> None:
        state.data.update(postings={}, workers={}, candidates={}, next_index=0, touches=0)
        self._add_postings(state, records, fresh=False)

    def _posting(self, tenant: str, req: dict[str, Any]) -> dict[str, Any]:
        roll = req["status_roll"]
        status = "OPEN" if roll < 0.6 else "ON_HOLD" if roll < 0.75 else "CLOSED" if roll < 0.9 else "FILLED"
        return {
            "uid": _uid("beeline-posting", tenant, str(req["index"])),
            "enterpriseJobPostingNumber": f"REQ-{104233 + req['index'] * 7:06d}",
            "enterpriseName": req["enterprise"],
            "title": req["title"],
            "status": status,
            "startDate": req["start_date"].isoformat(),
            "endDate": req["end_date"].isoformat(),
            "positions": req["positions"],
            "location": {"city": req["city"], "region": req["region"], "country": req["country_code"]},
            "billRateMax": req["bill_rate_max"],
            "rateCurrency": req["currency"],
            "ratePeriod": req["rate_period"],
            "description": req["description"],
            "customFields": [
                {"name": "Cost Center", "value": req["cost_center"]},
                {"name": "Department", "value": req["department"]},
                {"name": "Shift", "value": req["shift"]},
            ],
            "createdAt": iso_utc(req["created"]),
            "updatedAt": iso_utc(req["updated"]),
        }

    def _latest(self, state: TenantState) -> datetime | None:
        stamps = [p["updatedAt"] for p in state.data["postings"].values()]
        return parse_iso_utc(max(stamps)) if stamps else None

    def _add_postings(self, state: TenantState, n: int, fresh: bool) -> list[str]:
        reqs = generate_requisitions(f"beeline:{state.name}", n, start=state.data["next_index"])
        state.data["next_index"] += n
        stamp = iso_utc(next_after(self._latest(state))) if fresh else None
        ids = []
        for req in reqs:
            posting = self._posting(state.name, req)
            if stamp is not None:
                posting.update(status="OPEN", createdAt=stamp, updatedAt=stamp)
            state.data["postings"][posting["uid"]] = posting
            ids.append(posting["uid"])
        return ids

    def touch(self, tenant: str, n: int) -> list[str]:
        """Bump ``positions`` of ``n`` postings and set their ``updatedAt`` to now (latest)."""
        with self._lock:
            state = self.tenant_state(tenant)
            postings = state.data["postings"]
            state.data["touches"] += 1
            rng = seeded_rng("beeline-touch", tenant, str(state.data["touches"]))
            chosen = rng.sample(sorted(postings), k=min(n, len(postings)))
            stamp = iso_utc(next_after(self._latest(state)))
            for uid in chosen:
                postings[uid]["positions"] += 1
                postings[uid]["updatedAt"] = stamp
            return chosen

    def add_records(self, tenant: str, n: int) -> list[str]:
        """Create ``n`` new OPEN postings stamped now (later than every other posting)."""
        with self._lock:
            return self._add_postings(self.tenant_state(tenant), n, fresh=True)

    def postings(self, tenant: str) -> list[dict[str, Any]]:
        """All postings of a tenant in API order (copies)."""
        with self._lock:
            items = list(self.tenant_state(tenant).data["postings"].values())
            return copy.deepcopy(sorted(items, key=lambda p: (p["updatedAt"], p["uid"])))

    def candidates(self, tenant: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self.tenant_state(tenant).data["candidates"].values()))

    def workers(self, tenant: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self.tenant_state(tenant).data["workers"].values()))

    # ------------------------------------------------------------------ auth, errors, rate headers

    @staticmethod
    def _client_credentials(request: Request, body: bytes) -> tuple[str | None, str | None]:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic" and value:
            try:
                client_id, _, secret = base64.b64decode(value.strip()).decode("utf-8").partition(":")
                return client_id, secret
            except (ValueError, UnicodeDecodeError):
                return None, None
        form = parse_qs(body.decode("latin-1"))
        return (form.get("client_id") or [None])[0], (form.get("client_secret") or [None])[0]

    async def identify(self, request: Request) -> str | None:
        if request.url.path.endswith("/oauth/token"):
            client_id, _ = self._client_credentials(request, await request.body())
            state = self.find_tenant("client_id", client_id)
            return state.name if state else None
        return self.token_tenant(self.bearer_token(request))

    async def authenticate(self, request: Request) -> str | Response:
        token = self.bearer_token(request)
        if token is None:
            return self.error_response(
                401, "Full authentication is required: send Authorization: Bearer <token>"
            )
        tenant = self.token_tenant(token)
        if tenant is None:
            return self.error_response(401, "The access token is invalid or has expired")
        return tenant

    def error_response(
        self, status: int, message: str, code: str | int | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return json_response(
            {"status": status, "error": phrase, "message": message}, status=status, headers=headers
        )

    def not_found_response(self, request: Request) -> Response:
        return self.error_response(404, f"No endpoint {request.method} {request.url.path}")

    def rate_headers(self, rate: RateState | None) -> dict[str, str]:
        if rate is None:
            limit = self.rate_limit_per_minute or 0
            return {
                "X-Rate-Limit-Limit": str(limit),
                "X-Rate-Limit-Remaining": str(limit),
                "X-Rate-Limit-Reset": "60",
            }
        return {
            "X-Rate-Limit-Limit": str(rate.limit),
            "X-Rate-Limit-Remaining": str(rate.remaining),
            "X-Rate-Limit-Reset": str(rate.reset_seconds),
        }

    def rate_limited_response(self, retry_after: float, tenant: str | None) -> Response:
        return self.error_response(
            429,
            f"Rate limit of {self.rate_limit_per_minute} calls per minute exceeded",
            headers={
                "X-Rate-Limit-Limit": str(self.rate_limit_per_minute),
                "X-Rate-Limit-Remaining": "0",
                "X-Rate-Limit-Reset": str(math.ceil(retry_after)),
            },
        )

    # ------------------------------------------------------------------ helpers

    def _paging(self, request: Request) -> tuple[int, int] | Response:
        try:
            limit = int(request.query_params.get("limit", DEFAULT_LIMIT))
            offset = int(request.query_params.get("offset", 0))
        except ValueError:
            return self.error_response(400, "limit and offset must be integers")
        if not 1 <= limit <= MAX_LIMIT:
            return self.error_response(400, f"limit must be between 1 and {MAX_LIMIT}")
        if offset < 0:
            return self.error_response(400, "offset must be zero or positive")
        return limit, offset

    @staticmethod
    def _corrupt(items: list[dict[str, Any]], kind: str | None, resource: str) -> list[dict[str, Any]]:
        if kind not in ("malformed_record", "schema_drift"):
            return items
        items = copy.deepcopy(items)
        if resource == "posting":
            if kind == "malformed_record":
                if items:
                    items[0].pop("title", None)
                if len(items) > 1:
                    items[1]["startDate"] = "2025-13-45"
                if len(items) > 2:
                    items[2]["billRateMax"] = -abs(float(items[2]["billRateMax"]))
            else:
                for item in items:
                    item.pop("description", None)
                    item["workArrangement"] = "HYBRID"
            return items
        if kind == "malformed_record":
            if items:
                items[0].pop("lastName" if resource == "worker" else "status", None)
            if len(items) > 1:
                items[1]["createdAt"] = "2025-13-45T25:61:00Z"
        else:
            for item in items:
                item.pop("phone" if resource == "worker" else "availableDate", None)
                item["externalReference"] = None
        return items

    def _page(self, call: Call, records: list[dict[str, Any]], resource: str) -> Response:
        paging = self._paging(call.request)
        if isinstance(paging, Response):
            return paging
        limit, offset = paging
        items = self._corrupt(copy.deepcopy(records[offset : offset + limit]), call.fault_kind, resource)
        return json_response({"items": items})

    async def _body(self, call: Call) -> dict[str, Any] | Response:
        body = await read_json(call.request)
        self.stats.record_upload(
            call.request.url.path, call.tenant, "application/json", await call.request.body()
        )
        if not isinstance(body, dict):
            return self.error_response(400, "The request body must be a JSON object")
        return body

    # ------------------------------------------------------------------ endpoints

    async def token(self, call: Call) -> Response:
        request = call.request
        body = await request.body()
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return json_response(
                {
                    "error": "invalid_request",
                    "error_description": "Use Content-Type application/x-www-form-urlencoded",
                },
                status=400,
            )
        form = parse_qs(body.decode("latin-1"))
        if (form.get("grant_type") or [None])[0] != "client_credentials":
            return json_response(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant_type must be client_credentials",
                },
                status=400,
            )
        client_id, secret = self._client_credentials(request, body)
        state = self.find_tenant("client_id", client_id)
        if state is None or state.revoked or not secret or state.credentials["client_secret"] != secret:
            return json_response(
                {"error": "invalid_client", "error_description": "Client authentication failed"}, status=401
            )
        issued = self.issue_token(state.name)
        return json_response(
            {"access_token": issued.token, "token_type": "Bearer", "expires_in": int(self.token_ttl_seconds)},
            headers={"Cache-Control": "no-store"},
        )

    async def list_postings(self, call: Call) -> Response:
        since_raw = call.request.query_params.get("updatedSince")
        since = None
        if since_raw:
            try:
                since = parse_iso_utc(since_raw)
            except ValueError:
                return self.error_response(
                    400, "updatedSince must be an ISO-8601 timestamp, e.g. 2025-06-11T09:12:00Z"
                )
        records = self.postings(call.tenant or "")
        if since is not None:
            records = [p for p in records if parse_iso_utc(p["updatedAt"]) >= since]
        return self._page(call, records, "posting")

    async def get_posting(self, call: Call) -> Response:
        uid = call.request.path_params["uid"]
        with self._lock:
            posting = self.tenant_state(call.tenant or "").data["postings"].get(uid)
            posting = copy.deepcopy(posting)
        if posting is None:
            return self.error_response(404, f"Job posting {uid} not found")
        return json_response(self._corrupt([posting], call.fault_kind, "posting")[0])

    async def list_workers(self, call: Call) -> Response:
        records = sorted(self.workers(call.tenant or ""), key=lambda w: (w["createdAt"], w["uid"]))
        return self._page(call, records, "worker")

    async def get_worker(self, call: Call) -> Response:
        uid = call.request.path_params["uid"]
        with self._lock:
            worker = copy.deepcopy(self.tenant_state(call.tenant or "").data["workers"].get(uid))
        if worker is None:
            return self.error_response(404, f"Worker {uid} not found")
        return json_response(self._corrupt([worker], call.fault_kind, "worker")[0])

    def _validate_worker(self, body: dict[str, Any], partial: bool) -> str | None:
        for name in ("firstName", "lastName", "email"):
            if name in body or not partial:
                value = body.get(name)
                if not isinstance(value, str) or not value.strip():
                    return f"{name} is required"
        if "email" in body and not _EMAIL_RE.fullmatch(str(body["email"])):
            return "email must be a valid e-mail address"
        if "phone" in body and body["phone"] is not None and not isinstance(body["phone"], str):
            return "phone must be a string"
        return None

    async def create_worker(self, call: Call) -> Response:
        body = await self._body(call)
        if isinstance(body, Response):
            return body
        problem = self._validate_worker(body, partial=False)
        if problem:
            return self.error_response(400, problem)
        with self._lock:
            state = self.tenant_state(call.tenant or "")
            stamp = iso_utc(next_after(None))
            worker = {
                "uid": str(uuid.uuid4()),
                "firstName": body["firstName"].strip(),
                "lastName": body["lastName"].strip(),
                "email": body["email"].strip(),
                "phone": body.get("phone"),
                "createdAt": stamp,
                "updatedAt": stamp,
            }
            state.data["workers"][worker["uid"]] = worker
        return json_response(worker, status=201)

    async def update_worker(self, call: Call) -> Response:
        body = await self._body(call)
        if isinstance(body, Response):
            return body
        uid = call.request.path_params["uid"]
        problem = self._validate_worker(body, partial=True)
        if problem:
            return self.error_response(400, problem)
        with self._lock:
            worker = self.tenant_state(call.tenant or "").data["workers"].get(uid)
            if worker is None:
                return self.error_response(404, f"Worker {uid} not found")
            for name in ("firstName", "lastName", "email", "phone"):
                if name in body:
                    worker[name] = body[name]
            worker["updatedAt"] = iso_utc(next_after(parse_iso_utc(worker["updatedAt"])))
            return json_response(copy.deepcopy(worker))

    async def list_candidates(self, call: Call) -> Response:
        records = sorted(self.candidates(call.tenant or ""), key=lambda c: (c["createdAt"], c["uid"]))
        posting_uid = call.request.query_params.get("jobPostingUid")
        if posting_uid:
            records = [c for c in records if c["jobPostingUid"] == posting_uid]
        return self._page(call, records, "candidate")

    async def get_candidate(self, call: Call) -> Response:
        uid = call.request.path_params["uid"]
        with self._lock:
            candidate = copy.deepcopy(self.tenant_state(call.tenant or "").data["candidates"].get(uid))
        if candidate is None:
            return self.error_response(404, f"Candidate {uid} not found")
        return json_response(self._corrupt([candidate], call.fault_kind, "candidate")[0])

    async def submit_candidate(self, call: Call) -> Response:
        body = await self._body(call)
        if isinstance(body, Response):
            return body
        for name in ("jobPostingUid", "workerUid", "rate", "rateCurrency", "ratePeriod"):
            if body.get(name) in (None, ""):
                return self.error_response(400, f"{name} is required")
        rate = body["rate"]
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or rate <= 0:
            return self.error_response(400, "rate must be a positive number")
        if not re.fullmatch(r"[A-Z]{3}", str(body["rateCurrency"])):
            return self.error_response(400, "rateCurrency must be an ISO 4217 code such as USD")
        if body["ratePeriod"] not in RATE_PERIODS:
            return self.error_response(400, f"ratePeriod must be one of {', '.join(RATE_PERIODS)}")
        available = body.get("availableDate")
        if available is not None:
            try:
                date.fromisoformat(str(available))
            except ValueError:
                return self.error_response(400, "availableDate must be a date in the format YYYY-MM-DD")
        with self._lock:
            state = self.tenant_state(call.tenant or "")
            posting = state.data["postings"].get(body["jobPostingUid"])
            if posting is None:
                return self.error_response(400, "jobPostingUid does not match an existing job posting")
            if body["workerUid"] not in state.data["workers"]:
                return self.error_response(400, "workerUid does not match an existing worker")
            if posting["status"] != "OPEN":
                return self.error_response(
                    409,
                    f"Job posting {posting['enterpriseJobPostingNumber']} is {posting['status']} "
                    "and does not accept candidates",
                )
            for other in state.data["candidates"].values():
                if (
                    other["jobPostingUid"] == posting["uid"]
                    and other["workerUid"] == body["workerUid"]
                    and other["status"] != "RESCINDED"
                ):
                    return self.error_response(
                        409,
                        f"Worker {body['workerUid']} is already submitted to this job posting "
                        f"(candidate {other['uid']})",
                    )
            stamp = iso_utc(next_after(None))
            candidate = {
                "uid": str(uuid.uuid4()),
                "status": "SUBMITTED",
                "jobPostingUid": posting["uid"],
                "enterpriseJobPostingNumber": posting["enterpriseJobPostingNumber"],
                "rateCurrency": body["rateCurrency"],
                "ratePeriod": body["ratePeriod"],
                "workerUid": body["workerUid"],
                "rate": float(rate),
                "availableDate": available,
                "createdAt": stamp,
                "updatedAt": stamp,
            }
            state.data["candidates"][candidate["uid"]] = candidate
        return json_response(candidate, status=201)

    async def update_candidate(self, call: Call) -> Response:
        body = await self._body(call)
        if isinstance(body, Response):
            return body
        uid = call.request.path_params["uid"]
        status = body.get("status")
        if status in (None, ""):
            return self.error_response(400, "status is required")
        if status not in CANDIDATE_PATCH_STATUSES:
            return self.error_response(400, f"status must be one of {', '.join(CANDIDATE_PATCH_STATUSES)}")
        with self._lock:
            candidate = self.tenant_state(call.tenant or "").data["candidates"].get(uid)
            if candidate is None:
                return self.error_response(404, f"Candidate {uid} not found")
            if status == "RESCINDED" and candidate["status"] == "RESCINDED":
                return self.error_response(409, f"Candidate {uid} is already RESCINDED")
            if status == "RESUBMITTED":
                for name in ("rate", "rateCurrency", "ratePeriod", "availableDate"):
                    if name in body:
                        candidate[name] = body[name]
            candidate["status"] = status
            candidate["updatedAt"] = iso_utc(next_after(parse_iso_utc(candidate["updatedAt"])))
            return json_response(copy.deepcopy(candidate))

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

Placements and submissions (unconfirmed — plausible design): candidates carry
``submittedAt`` and ``updatedAt``; ``GET /candidates`` takes ``updatedSince`` and
``jobPostingUid`` and is ordered like postings. ``POST /workers``, ``POST /candidates`` and
the PATCHes of workers, candidates and assignments honour an ``Idempotency-Key`` header: a
key seen before (per tenant and endpoint) answers the first successful answer again with
200 (plus ``Idempotent-Replayed: true``) and creates or changes nothing; the replayed
request's body is not compared; error answers are not remembered.
Assignments (the placement, created when the buyer accepts a candidate) live at
``/assignments`` (list with ``limit``/``offset``/``updatedSince``, detail, and ``PATCH`` of
``startDate``, ``endDate``, ``billRate``, ``payRate``, ``status``; a ``null`` value means
"no change"; any other field is refused with 400 so a mapping typo fails loudly). Each
tenant is seeded with up to 20 assignments (each with its worker and ACCEPTED candidate, on
FILLED/CLOSED postings first).
``set_candidate_status``, ``accept`` and ``edit_assignment`` are the buyer's side.

Webhooks (the sheet: "Receiving a notification for new postings" exists, but delivery,
payload and signature are unknown — all of this is plausible design): ``POST`` to the
subscriber with ``Content-Type: application/json``, ``X-Beeline-Timestamp: <unix seconds>``
and ``X-Beeline-Signature: sha256=<hex HMAC-SHA256 of "{timestamp}.{raw body}">`` keyed with
the tenant's ``webhook_secret``. Body ``{"eventId", "event", "occurredAt", ...ids}``;
notification style (the receiver fetches the record): ``jobPosting.created`` /
``jobPosting.updated`` carry ``jobPostingUid`` (``add_records`` / ``touch``),
``candidate.statusChanged`` carries ``candidateUid`` and ``status`` (``set_candidate_status``,
``accept``), ``assignment.updated`` carries ``assignmentUid`` (``accept`` creating one,
``edit_assignment``). ``occurredAt`` is the record's new ``updatedAt``. Changes the supplier
makes through the API (POST/PATCH) never fire webhooks.
"""

import base64
import copy
import hashlib
import hmac
import json
import math
import random
import re
import time
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from integration_pipelines.sandbox.data import (
    generate_candidates,
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
CANDIDATE_STATUSES = ("SUBMITTED", "RESUBMITTED", "RESCINDED", "REJECTED", "ACCEPTED")
ASSIGNMENT_STATUSES = ("PENDING_START", "ACTIVE", "ENDED", "CANCELLED")
#: Assignment fields the supplier may PATCH (and the buyer may edit), with snake_case aliases
#: accepted by ``edit_assignment``.
ASSIGNMENT_FIELDS = {
    "startDate": "start_date",
    "endDate": "end_date",
    "billRate": "bill_rate",
    "payRate": "pay_rate",
    "status": "status",
}
SEEDED_ASSIGNMENTS = 20
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _uid(*parts: str) -> str:
    digest = hashlib.sha256(":".join(parts).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _stamp_after(records: Iterable[dict[str, Any]]) -> str:
    """Now, but strictly later than every ``updatedAt`` of ``records`` (cursor-safe)."""
    stamps = [r["updatedAt"] for r in records]
    return iso_utc(next_after(parse_iso_utc(max(stamps)) if stamps else None))


def _is_rate(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and value > 0


def _check_assignment_changes(changes: dict[str, Any]) -> dict[str, Any] | str:
    """Validated, normalised assignment changes, or the problem as a message (``null``
    values mean "no change")."""
    unknown = sorted(set(changes) - set(ASSIGNMENT_FIELDS))
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}; updatable: {', '.join(ASSIGNMENT_FIELDS)}"
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return f"nothing to update: send any of {', '.join(ASSIGNMENT_FIELDS)}"
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name in ("startDate", "endDate"):
            if isinstance(value, date):
                value = value.isoformat()
            try:
                if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
                    raise ValueError
                date.fromisoformat(value)
            except ValueError:
                return f"{name} must be a date in the format YYYY-MM-DD"
            out[name] = value
        elif name in ("billRate", "payRate"):
            if not _is_rate(value):
                return f"{name} must be a positive number"
            out[name] = float(value)
        elif value not in ASSIGNMENT_STATUSES:
            return f"status must be one of {', '.join(ASSIGNMENT_STATUSES)}"
        else:
            out[name] = value
    return out


class BeelineSimulator(Simulator):
    """Simulator of Beeline's Supplier and Talent API (``/api/gwg/supplier``)."""

    name = "beeline"
    base_path = "/api/gwg/supplier"
    default_token_ttl = 3600.0
    default_rate_limit = 100
    default_records = 300
    bearer_tokens = True
    supports_webhooks = True

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
            PartnerRoute("/assignments", ["GET"], self.list_assignments, data=True),
            PartnerRoute("/assignments/{uid}", ["GET"], self.get_assignment, data=True),
            PartnerRoute("/assignments/{uid}", ["PATCH"], self.update_assignment),
        ]

    # ------------------------------------------------------------------ tenants and data

    def make_credentials(self, tenant: str) -> dict[str, str]:
        return {
            "client_id": _uid("beeline-client", tenant),
            "client_secret": self.derive(tenant, "secret", 48),
            "webhook_secret": self.derive(tenant, "webhook-secret", 48),
        }

    def seed_tenant(self, state: TenantState, records: int) -> None:
        state.data.update(
            postings={},
            workers={},
            candidates={},
            assignments={},
            idempotency={},
            next_index=0,
            touches=0,
        )
        self._add_postings(state, records, fresh=False)
        self._seed_assignments(state, min(SEEDED_ASSIGNMENTS, records))

    def _seed_assignments(self, state: TenantState, n: int) -> None:
        """``n`` placements, each with its worker and ACCEPTED candidate (deterministic)."""
        if n <= 0 or not state.data["postings"]:
            return
        tenant = state.name
        rng = seeded_rng("beeline-assignments", tenant)
        rank = {"FILLED": 0, "CLOSED": 1, "ON_HOLD": 2, "OPEN": 3}
        postings = sorted(state.data["postings"].values(), key=lambda p: (rank[p["status"]], p["uid"]))
        for i, person in enumerate(generate_candidates(f"beeline-workers:{tenant}", n)):
            posting = postings[i % len(postings)]
            worker_at = parse_iso_utc(posting["createdAt"]) + timedelta(
                days=rng.randint(1, 5), minutes=rng.randint(0, 600)
            )
            submitted_at = worker_at + timedelta(minutes=rng.randint(5, 120))
            accepted_at = submitted_at + timedelta(days=rng.randint(2, 14), minutes=rng.randint(0, 600))
            changed_at = accepted_at + timedelta(days=rng.randint(0, 20), minutes=rng.randint(0, 600))
            bill = round(float(posting["billRateMax"]) * rng.uniform(0.85, 1.0), 2)
            worker = {
                "uid": _uid("beeline-worker", tenant, str(i)),
                "firstName": person["first_name"],
                "lastName": person["last_name"],
                "email": person["email"],
                "phone": person["phone"],
                "createdAt": iso_utc(worker_at),
                "updatedAt": iso_utc(worker_at),
            }
            candidate = {
                "uid": _uid("beeline-candidate", tenant, str(i)),
                "status": "ACCEPTED",
                "jobPostingUid": posting["uid"],
                "enterpriseJobPostingNumber": posting["enterpriseJobPostingNumber"],
                "rateCurrency": posting["rateCurrency"],
                "ratePeriod": posting["ratePeriod"],
                "workerUid": worker["uid"],
                "rate": bill,
                "availableDate": posting["startDate"],
                "submittedAt": iso_utc(submitted_at),
                "createdAt": iso_utc(submitted_at),
                "updatedAt": iso_utc(accepted_at),
            }
            assignment = {
                "uid": _uid("beeline-assignment", tenant, str(i)),
                "candidateUid": candidate["uid"],
                "jobPostingUid": posting["uid"],
                "workerUid": worker["uid"],
                "status": rng.choices(ASSIGNMENT_STATUSES, weights=[3, 10, 4, 1])[0],
                "startDate": posting["startDate"],
                "endDate": posting["endDate"],
                "billRate": bill,
                "payRate": round(bill * rng.uniform(0.68, 0.78), 2),
                "rateCurrency": posting["rateCurrency"],
                "ratePeriod": posting["ratePeriod"],
                "createdAt": iso_utc(accepted_at),
                "updatedAt": iso_utc(changed_at),
            }
            state.data["workers"][worker["uid"]] = worker
            state.data["candidates"][candidate["uid"]] = candidate
            state.data["assignments"][assignment["uid"]] = assignment

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
            self.emit(tenant, [self._event("jobPosting.updated", stamp, jobPostingUid=uid) for uid in chosen])
            return chosen

    def add_records(self, tenant: str, n: int) -> list[str]:
        """Create ``n`` new OPEN postings stamped now (later than every other posting)."""
        with self._lock:
            state = self.tenant_state(tenant)
            ids = self._add_postings(state, n, fresh=True)
            self.emit(
                tenant,
                [
                    self._event(
                        "jobPosting.created", state.data["postings"][uid]["updatedAt"], jobPostingUid=uid
                    )
                    for uid in ids
                ],
            )
            return ids

    # ------------------------------------------------------------------ buyer side (tests, demo)

    def set_candidate_status(self, tenant: str, uid: str, status: str) -> dict[str, Any]:
        """The buyer moves a candidate to ``status`` (fires ``candidate.statusChanged``)."""
        if status not in CANDIDATE_STATUSES:
            raise ValueError(f"status must be one of {', '.join(CANDIDATE_STATUSES)}, got {status!r}")
        with self._lock:
            candidates = self.tenant_state(tenant).data["candidates"]
            candidate = candidates.get(uid)
            if candidate is None:
                raise KeyError(f"beeline: tenant {tenant!r} has no candidate {uid!r}")
            candidate["status"] = status
            candidate["updatedAt"] = _stamp_after(candidates.values())
            self.emit(
                tenant,
                [
                    self._event(
                        "candidate.statusChanged", candidate["updatedAt"], candidateUid=uid, status=status
                    )
                ],
            )
            return copy.deepcopy(candidate)

    def accept(self, tenant: str, candidate_uid: str, start_date: date | str, end_date: date | str) -> str:
        """The buyer accepts a candidate: status ACCEPTED and a PENDING_START assignment at the
        candidate's rate (pay rate 75 % of it). Fires ``candidate.statusChanged`` and
        ``assignment.updated``; returns the assignment's uid."""
        dates = _check_assignment_changes({"startDate": start_date, "endDate": end_date})
        if isinstance(dates, str):
            raise ValueError(dates)
        if dates["endDate"] < dates["startDate"]:
            raise ValueError("end_date is before start_date")
        with self._lock:
            data = self.tenant_state(tenant).data
            candidate = data["candidates"].get(candidate_uid)
            if candidate is None:
                raise KeyError(f"beeline: tenant {tenant!r} has no candidate {candidate_uid!r}")
            if candidate["status"] == "RESCINDED":
                raise ValueError(f"candidate {candidate_uid} was rescinded by the supplier")
            if any(a["candidateUid"] == candidate_uid for a in data["assignments"].values()):
                raise ValueError(f"candidate {candidate_uid} already has an assignment")
            self.set_candidate_status(tenant, candidate_uid, "ACCEPTED")
            stamp = _stamp_after(data["assignments"].values())
            assignment = {
                "uid": str(uuid.uuid4()),
                "candidateUid": candidate_uid,
                "jobPostingUid": candidate["jobPostingUid"],
                "workerUid": candidate["workerUid"],
                "status": "PENDING_START",
                "startDate": dates["startDate"],
                "endDate": dates["endDate"],
                "billRate": float(candidate["rate"]),
                "payRate": round(float(candidate["rate"]) * 0.75, 2),
                "rateCurrency": candidate["rateCurrency"],
                "ratePeriod": candidate["ratePeriod"],
                "createdAt": stamp,
                "updatedAt": stamp,
            }
            data["assignments"][assignment["uid"]] = assignment
            self.emit(tenant, [self._event("assignment.updated", stamp, assignmentUid=assignment["uid"])])
            return assignment["uid"]

    def collection(self, tenant: str, path: str) -> list[dict[str, Any]]:
        readers = {
            "/job-postings": self.postings,
            "/candidates": self.candidates,
            "/assignments": self.assignments,
        }
        if path not in readers:
            return super().collection(tenant, path)
        return readers[path](tenant)

    def change(self, tenant: str, path: str, n: int) -> list[str]:
        if path == "/job-postings":
            return self.touch(tenant, n)
        if path == "/candidates":
            chosen = self.candidates(tenant)[:n]
            for c in chosen:
                self.set_candidate_status(
                    tenant, c["uid"], "RESUBMITTED" if c["status"] == "REJECTED" else "REJECTED"
                )
            return [c["uid"] for c in chosen]
        if path == "/assignments":
            chosen = self.assignments(tenant)[:n]
            for a in chosen:
                self.edit_assignment(tenant, a["uid"], billRate=round(float(a["billRate"]) + 1, 2))
            return [a["uid"] for a in chosen]
        return super().change(tenant, path, n)

    def edit_assignment(self, tenant: str, uid: str, **fields: Any) -> dict[str, Any]:
        """A buyer-side change of an assignment (``startDate``/``start_date``, ``endDate``,
        ``billRate``, ``payRate``, ``status``): bumps ``updatedAt`` and fires
        ``assignment.updated``. Returns the updated assignment."""
        aliases = {alias: name for name, alias in ASSIGNMENT_FIELDS.items()}
        changes = _check_assignment_changes({aliases.get(k, k): v for k, v in fields.items()})
        if isinstance(changes, str):
            raise ValueError(changes)
        with self._lock:
            assignment = self._apply_assignment(tenant, uid, changes)
            if isinstance(assignment, str):
                raise ValueError(assignment)
            self.emit(tenant, [self._event("assignment.updated", assignment["updatedAt"], assignmentUid=uid)])
            return assignment

    def _apply_assignment(self, tenant: str, uid: str, changes: dict[str, Any]) -> dict[str, Any] | str:
        """Apply validated changes (``KeyError`` for an unknown uid); the result or a problem."""
        assignments = self.tenant_state(tenant).data["assignments"]
        assignment = assignments.get(uid)
        if assignment is None:
            raise KeyError(f"beeline: tenant {tenant!r} has no assignment {uid!r}")
        merged = {**assignment, **changes}
        if merged["endDate"] < merged["startDate"]:
            return f"endDate {merged['endDate']} is before startDate {merged['startDate']}"
        assignment.update(changes)
        assignment["updatedAt"] = _stamp_after(assignments.values())
        return copy.deepcopy(assignment)

    def assignments(self, tenant: str) -> list[dict[str, Any]]:
        """All assignments of a tenant in API order (copies)."""
        with self._lock:
            items = list(self.tenant_state(tenant).data["assignments"].values())
            return copy.deepcopy(sorted(items, key=lambda a: (a["updatedAt"], a["uid"])))

    # ------------------------------------------------------------------ webhooks

    @staticmethod
    def _event(kind: str, occurred_at: str, **ids: str) -> dict[str, Any]:
        return {"eventId": str(uuid.uuid4()), "event": kind, "occurredAt": occurred_at, **ids}

    def render_webhook(self, tenant: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timestamp = str(int(time.time()))
        secret = self.credentials(tenant)["webhook_secret"].encode()
        digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return body, {
            "Content-Type": "application/json",
            "X-Beeline-Timestamp": timestamp,
            "X-Beeline-Signature": f"sha256={digest}",
            "User-Agent": "Beeline-Webhooks/1.0 (sandbox)",
        }

    def sample_event(self, tenant: str) -> dict[str, Any]:
        """``jobPosting.updated`` about one of the tenant's postings, occurring now."""
        with self._lock:
            uids = sorted(self.tenant_state(tenant).data["postings"])
        uid = random.choice(uids) if uids else str(uuid.uuid4())
        return self._event("jobPosting.updated", iso_utc(next_after(None)), jobPostingUid=uid)

    def postings(self, tenant: str) -> list[dict[str, Any]]:
        """All postings of a tenant in API order (copies)."""
        with self._lock:
            items = list(self.tenant_state(tenant).data["postings"].values())
            return copy.deepcopy(sorted(items, key=lambda p: (p["updatedAt"], p["uid"])))

    def candidates(self, tenant: str) -> list[dict[str, Any]]:
        """All candidates of a tenant in API order (copies)."""
        with self._lock:
            items = list(self.tenant_state(tenant).data["candidates"].values())
            return copy.deepcopy(sorted(items, key=lambda c: (c["updatedAt"], c["uid"])))

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
                gone = {"worker": "phone", "assignment": "payRate"}.get(resource, "availableDate")
                item.pop(gone, None)
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

    def _updated_since(self, call: Call, records: list[dict[str, Any]]) -> list[dict[str, Any]] | Response:
        """``records`` with ``updatedAt >= updatedSince`` (all without the parameter)."""
        since_raw = call.request.query_params.get("updatedSince")
        if not since_raw:
            return records
        try:
            since = parse_iso_utc(since_raw)
        except ValueError:
            return self.error_response(
                400, "updatedSince must be an ISO-8601 timestamp, e.g. 2025-06-11T09:12:00Z"
            )
        return [r for r in records if parse_iso_utc(r["updatedAt"]) >= since]

    def _replay(self, call: Call, state: TenantState) -> Response | None:
        """The remembered answer for a repeated ``Idempotency-Key`` (call under the lock)."""
        key = call.request.headers.get("idempotency-key")
        if not key:
            return None
        stored = state.data["idempotency"].get((call.template, key))
        if stored is None:
            return None
        return json_response(copy.deepcopy(stored), headers={"Idempotent-Replayed": "true"})

    @staticmethod
    def _remember(call: Call, state: TenantState, answer: dict[str, Any]) -> None:
        key = call.request.headers.get("idempotency-key")
        if key:
            state.data["idempotency"][(call.template, key)] = copy.deepcopy(answer)

    def _bad_idempotency_key(self, call: Call) -> Response | None:
        key = call.request.headers.get("idempotency-key")
        if key is not None and not 1 <= len(key.strip()) <= 255:
            return self.error_response(400, "Idempotency-Key must be 1 to 255 characters")
        return None

    async def list_postings(self, call: Call) -> Response:
        records = self._updated_since(call, self.postings(call.tenant or ""))
        if isinstance(records, Response):
            return records
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
        bad_key = self._bad_idempotency_key(call)
        if bad_key is not None:
            return bad_key
        with self._lock:
            state = self.tenant_state(call.tenant or "")
            replay = self._replay(call, state)
            if replay is not None:
                return replay
            stamp = _stamp_after(state.data["workers"].values())
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
            self._remember(call, state, worker)
        return json_response(worker, status=201)

    async def update_worker(self, call: Call) -> Response:
        body = await self._body(call)
        if isinstance(body, Response):
            return body
        uid = call.request.path_params["uid"]
        problem = self._validate_worker(body, partial=True)
        if problem:
            return self.error_response(400, problem)
        bad_key = self._bad_idempotency_key(call)
        if bad_key is not None:
            return bad_key
        with self._lock:
            state = self.tenant_state(call.tenant or "")
            replay = self._replay(call, state)
            if replay is not None:
                return replay
            worker = state.data["workers"].get(uid)
            if worker is None:
                return self.error_response(404, f"Worker {uid} not found")
            for name in ("firstName", "lastName", "email", "phone"):
                if name in body:
                    worker[name] = body[name]
            worker["updatedAt"] = _stamp_after(state.data["workers"].values())
            self._remember(call, state, worker)
            return json_response(copy.deepcopy(worker))

    async def list_candidates(self, call: Call) -> Response:
        records = self._updated_since(call, self.candidates(call.tenant or ""))
        if isinstance(records, Response):
            return records
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
        bad_key = self._bad_idempotency_key(call)
        if bad_key is not None:
            return bad_key
        with self._lock:
            state = self.tenant_state(call.tenant or "")
            replay = self._replay(call, state)
            if replay is not None:
                return replay
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
            stamp = _stamp_after(state.data["candidates"].values())
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
                "submittedAt": stamp,
                "createdAt": stamp,
                "updatedAt": stamp,
            }
            state.data["candidates"][candidate["uid"]] = candidate
            self._remember(call, state, candidate)
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
        bad_key = self._bad_idempotency_key(call)
        if bad_key is not None:
            return bad_key
        with self._lock:
            state = self.tenant_state(call.tenant or "")
            replay = self._replay(call, state)
            if replay is not None:
                return replay
            candidates = state.data["candidates"]
            candidate = candidates.get(uid)
            if candidate is None:
                return self.error_response(404, f"Candidate {uid} not found")
            if status == "RESCINDED" and candidate["status"] == "RESCINDED":
                return self.error_response(409, f"Candidate {uid} is already RESCINDED")
            if status == "RESUBMITTED":
                for name in ("rate", "rateCurrency", "ratePeriod", "availableDate"):
                    if name in body:
                        candidate[name] = body[name]
            candidate["status"] = status
            candidate["updatedAt"] = _stamp_after(candidates.values())
            self._remember(call, state, candidate)
            return json_response(copy.deepcopy(candidate))

    async def list_assignments(self, call: Call) -> Response:
        records = self._updated_since(call, self.assignments(call.tenant or ""))
        if isinstance(records, Response):
            return records
        return self._page(call, records, "assignment")

    async def get_assignment(self, call: Call) -> Response:
        uid = call.request.path_params["uid"]
        with self._lock:
            assignment = copy.deepcopy(self.tenant_state(call.tenant or "").data["assignments"].get(uid))
        if assignment is None:
            return self.error_response(404, f"Assignment {uid} not found")
        return json_response(self._corrupt([assignment], call.fault_kind, "assignment")[0])

    async def update_assignment(self, call: Call) -> Response:
        """Supplier-side change of a placement (no webhook: the ATS made it)."""
        body = await self._body(call)
        if isinstance(body, Response):
            return body
        uid = call.request.path_params["uid"]
        changes = _check_assignment_changes(body)
        if isinstance(changes, str):
            return self.error_response(400, changes)
        bad_key = self._bad_idempotency_key(call)
        if bad_key is not None:
            return bad_key
        with self._lock:
            state = self.tenant_state(call.tenant or "")
            replay = self._replay(call, state)
            if replay is not None:
                return replay
            try:
                result = self._apply_assignment(call.tenant or "", uid, changes)
            except KeyError:
                return self.error_response(404, f"Assignment {uid} not found")
            if not isinstance(result, str):
                self._remember(call, state, result)
        if isinstance(result, str):
            return self.error_response(400, result)
        return json_response(result)

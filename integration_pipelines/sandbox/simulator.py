"""Machinery shared by every partner simulator.

A ``Simulator`` is one partner's API as a Starlette app plus the in-memory state behind it
(tenants, credentials, tokens, seeded records). Every partner route goes through the same
request pipeline, so faults, statistics, rate limiting and token expiry behave the same way
for every partner while the *shape* of each answer (error bodies, headers) stays the
partner's own:

1. count the request under its ``(method, path template)``;
2. find out, best effort and without side effects, which tenant is calling;
3. apply a transport fault (``down``, ``rate_limit``, ``server_error``, ``slow``) if armed;
4. apply the partner's own rate limit when it has one;
5. authenticate (the partner's scheme) and apply an ``expire_token`` fault;
6. run the handler, handing it a data fault (``malformed_record``, ``schema_drift``...)
   when the route returns records; ``duplicate_page`` and ``malformed_page`` are applied
   around the handler for every partner alike.

Admin endpoints under ``/_sandbox/`` (no auth, no faults, not counted) let a person or another
process drive the same controls over HTTP.

Partners that push events (``supports_webhooks``) keep one subscriber URL per tenant
(``subscribe``); data changes made on the partner's side (``touch``, ``add_records``,
buyer-side edits) queue events that a background thread delivers (``webhooks.py``). Changes
the ATS makes through the API never echo back as events.
"""

import asyncio
import copy
import hashlib
import json
import logging
import math
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integration_pipelines.sandbox.faults import DATA_FAULTS, TRANSPORT_FAULTS, Fault, FaultInjector
from integration_pipelines.sandbox.webhooks import PreparedDelivery, QueuedEvent, WebhookSender

logger = logging.getLogger(__name__)

_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_URL_RE = re.compile(r"https?://[^\s/?#]+[^\s]*")


class InvalidBody(Exception):
    """The request body could not be decoded (bad JSON, bad form data...)."""


@dataclass
class Upload:
    """One request body a partner received (documents to parse, uploads, submissions)."""

    path: str
    tenant: str | None
    content_type: str
    body: bytes
    received_at: float

    def as_dict(self, max_chars: int = 2000) -> dict[str, Any]:
        text = self.body.decode("utf-8", errors="replace")
        return {
            "path": self.path,
            "tenant": self.tenant,
            "content_type": self.content_type,
            "size": len(self.body),
            "body": text[:max_chars],
            "truncated": len(text) > max_chars,
            "received_at": self.received_at,
        }


class SimulatorStats:
    """Thread-safe counters of what a simulator saw: requests, tokens, uploads, faults, and
    the webhooks it sent (``webhook_deliveries`` holds one ``(event_id, status code or
    error text)`` per attempt; ``webhooks_sent`` / ``webhooks_failed`` count events)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str]] = Counter()
        self.tokens_issued = 0
        self.uploads: list[Upload] = []
        self.faults_applied: Counter[str] = Counter()
        self.rate_limited = 0
        self.webhooks_sent = 0
        self.webhooks_failed = 0
        self.webhook_deliveries: list[tuple[str, int | str]] = []

    def record_request(self, method: str, template: str) -> None:
        with self._lock:
            self.requests[(method, template)] += 1

    def record_token(self) -> None:
        with self._lock:
            self.tokens_issued += 1

    def record_upload(self, path: str, tenant: str | None, content_type: str, body: bytes) -> None:
        with self._lock:
            self.uploads.append(Upload(path, tenant, content_type, body, time.time()))

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self.faults_applied[kind] += 1

    def record_rate_limited(self) -> None:
        with self._lock:
            self.rate_limited += 1

    def record_webhook_attempt(self, event_id: str, outcome: int | str) -> None:
        with self._lock:
            self.webhook_deliveries.append((event_id, outcome))

    def record_webhook_result(self, delivered: bool) -> None:
        with self._lock:
            if delivered:
                self.webhooks_sent += 1
            else:
                self.webhooks_failed += 1

    def request_count(self, method: str | None = None, template_contains: str = "") -> int:
        """Requests seen, optionally only for one method and templates containing a string."""
        with self._lock:
            return sum(
                n
                for (m, t), n in self.requests.items()
                if (method is None or m == method) and template_contains in t
            )

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.tokens_issued = 0
            self.uploads.clear()
            self.faults_applied.clear()
            self.rate_limited = 0
            self.webhooks_sent = 0
            self.webhooks_failed = 0
            self.webhook_deliveries.clear()

    def snapshot(self) -> dict[str, Any]:
        """JSON-serialisable copy (upload bodies decoded and shortened)."""
        with self._lock:
            return {
                "requests": {f"{m} {t}": n for (m, t), n in sorted(self.requests.items())},
                "total_requests": sum(self.requests.values()),
                "tokens_issued": self.tokens_issued,
                "uploads": [u.as_dict() for u in self.uploads],
                "faults_applied": dict(self.faults_applied),
                "rate_limited": self.rate_limited,
                "webhooks_sent": self.webhooks_sent,
                "webhooks_failed": self.webhooks_failed,
                "webhook_deliveries": [list(d) for d in self.webhook_deliveries],
            }


@dataclass
class TenantState:
    """One tenant (one customer's account at the partner): credentials plus partner data."""

    name: str
    credentials: dict[str, str]
    revoked: bool = False
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class IssuedToken:
    token: str
    tenant: str
    expires_at: float


@dataclass
class RateState:
    limit: int
    remaining: int
    reset_seconds: int
    exceeded: bool


@dataclass
class Call:
    """What a partner handler gets: the request, the authenticated tenant, the data fault."""

    request: Request
    tenant: str | None
    fault: Fault | None
    template: str

    @property
    def fault_kind(self) -> str | None:
        return self.fault.kind if self.fault else None


Handler = Callable[[Call], Awaitable[Response]]


@dataclass
class PartnerRoute:
    """A partner endpoint: path relative to the simulator's ``base_path``."""

    path: str
    methods: list[str]
    handler: Handler
    auth: bool = True
    data: bool = False


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None, media_type: str = "application/json"
) -> Response:
    """JSON answer with an exact ``Content-Type`` (some partners have charset quirks)."""
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(content=body, status_code=status, headers=headers, media_type=media_type)


async def read_json(request: Request) -> Any:
    """Decode a JSON body or raise ``InvalidBody``."""
    raw = await request.body()
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidBody(f"request body is not valid JSON: {exc}") from exc


def _copy_response(response: Response) -> Response:
    """Same status, body and content type; per-request headers (rate limits...) are not kept."""
    body = bytes(getattr(response, "body", b""))
    headers = {"content-type": response.headers.get("content-type", "application/octet-stream")}
    return Response(content=body, status_code=response.status_code, headers=headers)


def _truncate_response(response: Response) -> Response:
    body = bytes(getattr(response, "body", b""))
    cut = body[: max(1, len(body) // 2)]
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length",)}
    return Response(content=cut, status_code=200, headers=headers)


class Simulator:
    """Base class of a partner simulator: a Starlette ``app`` plus thread-safe state.

    Subclasses set ``name`` and ``base_path``, implement ``partner_routes``,
    ``make_credentials``, ``seed_tenant``, ``error_response`` and (for partners with auth on
    their data routes) ``identify`` and ``authenticate``.
    """

    name: str = "simulator"
    #: Path prefix of the partner's API; ``Sandbox.base_url`` appends it to the host:port.
    base_path: str = ""
    #: Default lifetime of issued tokens, in seconds.
    default_token_ttl: float = 3600.0
    #: Default per-tenant calls per minute; ``None`` means no limit is enforced.
    default_rate_limit: int | None = None
    #: Default number of seeded records per tenant (VMS partners).
    default_records: int = 0
    #: Whether data calls carry OAuth bearer tokens (enables the ``expire_token`` fault).
    bearer_tokens: bool = False
    #: Whether the partner pushes events to a subscriber (``subscribe``, ``send_event``...).
    supports_webhooks: bool = False
    #: Delivery attempts per event and the first retry delay (doubling) of the sender.
    webhook_tries: int = 5
    webhook_backoff_seconds: float = 0.2

    def __init__(
        self,
        *,
        token_ttl_seconds: float | None = None,
        rate_limit_per_minute: int | None = None,
        default_records: int | None = None,
        webhook_tries: int | None = None,
        webhook_backoff_seconds: float | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.faults = FaultInjector()
        self.stats = SimulatorStats()
        self.token_ttl_seconds = float(token_ttl_seconds or self.default_token_ttl)
        self.rate_limit_per_minute = (
            rate_limit_per_minute if rate_limit_per_minute is not None else self.default_rate_limit
        )
        if default_records is not None:
            self.default_records = default_records
        self.tenants: dict[str, TenantState] = {}
        self._tokens: dict[str, IssuedToken] = {}
        self._windows: dict[str, list[float]] = {}
        self._last_data: dict[tuple[str | None, str], Response] = {}
        self._subscriptions: dict[str, str] = {}
        self._events_sent: dict[str, list[dict[str, Any]]] = {}
        self._webhooks_stopped = False
        self.webhooks = WebhookSender(
            self.name,
            self._prepare_delivery,
            self.stats,
            tries=webhook_tries if webhook_tries is not None else self.webhook_tries,
            backoff=(
                webhook_backoff_seconds
                if webhook_backoff_seconds is not None
                else self.webhook_backoff_seconds
            ),
        )
        self.app = self._build_app()

    # ---------------------------------------------------------------- tenants and credentials

    def add_tenant(self, tenant: str, records: int | None = None) -> dict[str, str]:
        """Create ``tenant`` (idempotent) and return its credentials.

        Credentials and seeded data are derived from the tenant name only, so every run of the
        sandbox gives the same values. A second call returns the same credentials and does not
        reseed.
        """
        if not isinstance(tenant, str) or not _TENANT_RE.fullmatch(tenant):
            raise ValueError(f"invalid tenant name {tenant!r}: use 1-63 letters, digits, '.', '_' or '-'")
        with self._lock:
            state = self.tenants.get(tenant)
            if state is None:
                state = TenantState(name=tenant, credentials=self.make_credentials(tenant))
                count = self.default_records if records is None else records
                self.seed_tenant(state, count)
                self.tenants[tenant] = state
            return dict(state.credentials)

    def credentials(self, tenant: str) -> dict[str, str]:
        """Credentials of an existing tenant (``KeyError`` if it was never added)."""
        with self._lock:
            return dict(self.tenants[tenant].credentials)

    def tenant_state(self, tenant: str) -> TenantState:
        with self._lock:
            state = self.tenants.get(tenant)
            if state is None:
                raise KeyError(f"{self.name}: unknown tenant {tenant!r}; call add_tenant first")
            return state

    def find_tenant(self, credential: str, value: str | None) -> TenantState | None:
        """Tenant whose credential ``credential`` equals ``value`` (constant-time compare)."""
        if not value:
            return None
        with self._lock:
            for state in self.tenants.values():
                expected = state.credentials.get(credential)
                if expected is not None and secrets.compare_digest(expected.encode(), value.encode()):
                    return state
        return None

    def revoke(self, tenant: str) -> None:
        """Make the tenant's credentials fail (token endpoint or every call) and drop its tokens."""
        with self._lock:
            self.tenant_state(tenant).revoked = True
        self.expire_tokens(tenant)

    def unrevoke(self, tenant: str) -> None:
        """Undo ``revoke``: the credentials work again."""
        with self._lock:
            self.tenant_state(tenant).revoked = False

    def derive(self, tenant: str, purpose: str, length: int, alphabet: str = _ALNUM) -> str:
        """Deterministic pseudo-random string for ``tenant`` (stable across processes)."""
        digest = hashlib.shake_256(f"{self.name}:{tenant}:{purpose}".encode()).digest(length * 2)
        return "".join(
            alphabet[int.from_bytes(digest[i * 2 : i * 2 + 2], "big") % len(alphabet)] for i in range(length)
        )

    # ---------------------------------------------------------------- webhooks (push events)

    def _require_webhooks(self) -> None:
        if not self.supports_webhooks:
            raise NotImplementedError(f"{self.name} does not push events")

    def subscribe(self, tenant: str, url: str) -> None:
        """Send ``tenant``'s future events to ``url`` (replaces an earlier subscription).

        Starts the sender thread unless ``stop_webhooks`` stopped it (a stopped partner).
        """
        self._require_webhooks()
        if not isinstance(url, str) or not _URL_RE.fullmatch(url):
            raise ValueError(f"subscriber url must be an http(s) URL, got {url!r}")
        self.tenant_state(tenant)
        with self._lock:
            self._subscriptions[tenant] = url
            stopped = self._webhooks_stopped
        if not stopped:
            self.webhooks.start()

    def unsubscribe(self, tenant: str) -> None:
        """Stop queueing events for ``tenant``; pending ones are dropped when their turn comes."""
        with self._lock:
            self._subscriptions.pop(tenant, None)

    def subscription(self, tenant: str) -> str | None:
        with self._lock:
            return self._subscriptions.get(tenant)

    def emit(self, tenant: str, events: list[dict[str, Any]]) -> int:
        """Queue ``events`` for ``tenant``'s subscriber; returns how many were queued (0 when
        nobody subscribed). Partner code calls this for buyer-side changes."""
        with self._lock:
            if not self.supports_webhooks or tenant not in self._subscriptions or not events:
                return 0
            queued = [copy.deepcopy(e) for e in events]
            self._events_sent.setdefault(tenant, []).extend(copy.deepcopy(queued))
            # still under the lock, so the log and the delivery queue keep the same order
            self.webhooks.enqueue([QueuedEvent(tenant, self.webhook_event_id(e), e) for e in queued])
        return len(queued)

    def send_event(
        self, tenant: str, event: dict[str, Any] | None = None, *, times: int = 1
    ) -> dict[str, Any]:
        """Queue ``event`` (or a freshly generated realistic one) ``times`` times for ``tenant``
        (the copies share their event id: duplicates). Returns the event."""
        self._require_webhooks()
        if not isinstance(times, int) or isinstance(times, bool) or times < 1:
            raise ValueError(f"times must be a positive integer, got {times!r}")
        if self.subscription(tenant) is None:
            raise ValueError(f"{self.name}: tenant {tenant!r} has no subscriber; call subscribe first")
        if event is None:
            event = self.sample_event(tenant)
        elif not isinstance(event, dict):
            raise TypeError("event must be a dict")
        self.emit(tenant, [event] * times)
        return copy.deepcopy(event)

    def events_sent(self, tenant: str) -> list[dict[str, Any]]:
        """Every event queued for ``tenant``, in queueing order (copies, duplicates included)."""
        with self._lock:
            return copy.deepcopy(self._events_sent.get(tenant, []))

    def shuffle_next(self, n: int) -> None:
        """Deliver the next ``n`` queued events in reverse order (then FIFO again)."""
        self._require_webhooks()
        self.webhooks.shuffle_next(n)

    def flush_webhooks(self, timeout: float = 10) -> bool:
        """Wait until no event is waiting or being sent (True) or ``timeout`` passes (False)."""
        return self.webhooks.flush(timeout)

    def start_webhooks(self) -> None:
        """(Re)start the sender thread (``Sandbox.start_partner`` calls this)."""
        with self._lock:
            self._webhooks_stopped = False
        if self.supports_webhooks:
            self.webhooks.start()

    def stop_webhooks(self) -> None:
        """Stop the sender thread, keeping pending events (``Sandbox.stop_partner`` calls this)."""
        with self._lock:
            self._webhooks_stopped = True
        self.webhooks.stop()

    def _prepare_delivery(self, item: QueuedEvent) -> PreparedDelivery | None:
        url = self.subscription(item.tenant)
        if url is None:
            return None
        body, headers = self.render_webhook(item.tenant, item.event)
        return PreparedDelivery(url=url, body=body, headers=headers)

    def webhook_event_id(self, event: dict[str, Any]) -> str:
        """The partner's id of an event (for stats)."""
        return str(event.get("eventId") or event.get("EventID") or "")

    def render_webhook(self, tenant: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
        """Body and headers of the POST delivering ``event`` (signed now, if the partner signs)."""
        raise NotImplementedError(f"{self.name} does not push events")

    def sample_event(self, tenant: str) -> dict[str, Any]:
        """A realistic event about one of the tenant's records (for ``send_event``)."""
        raise NotImplementedError(f"{self.name} does not push events")

    # Subclass hooks ------------------------------------------------------------------------

    def make_credentials(self, tenant: str) -> dict[str, str]:
        raise NotImplementedError

    def seed_tenant(self, state: TenantState, records: int) -> None:
        """Fill ``state.data`` with the tenant's deterministic records."""

    def touch(self, tenant: str, n: int) -> list[str]:
        """Change ``n`` existing records now (VMS simulators); returns their ids."""
        raise NotImplementedError(f"{self.name} keeps no records that can be touched")

    def add_records(self, tenant: str, n: int) -> list[str]:
        """Create ``n`` new records now (VMS simulators); returns their ids."""
        raise NotImplementedError(f"{self.name} keeps no records that can be added")

    def collection(self, tenant: str, path: str) -> list[dict[str, Any]]:
        """The records a list endpoint (path relative to the base URL) serves this tenant.

        Lets the connector contract tests ask any simulator "how many records should a full
        sync of this stream find?" without knowing the partner.
        """
        raise NotImplementedError(f"{self.name} serves no list endpoint {path!r}")

    def change(self, tenant: str, path: str, n: int) -> list[str]:
        """Change ``n`` records behind a list endpoint now, as the partner's users would."""
        raise NotImplementedError(f"{self.name} cannot change records behind {path!r}")

    def partner_routes(self) -> list[PartnerRoute]:
        raise NotImplementedError

    async def identify(self, request: Request) -> str | None:
        """Best-effort tenant of a request, before auth, without side effects (for faults)."""
        return None

    async def authenticate(self, request: Request) -> str | Response:
        """Tenant name, or the partner's auth error response."""
        raise NotImplementedError

    def error_response(
        self, status: int, message: str, code: str | int | None = None, headers: dict[str, str] | None = None
    ) -> Response:
        """The partner's error body for ``status``."""
        raise NotImplementedError

    def rate_limited_response(self, retry_after: float, tenant: str | None) -> Response:
        """429 in the partner's format. Default: error body plus ``Retry-After``."""
        return self.error_response(
            429, "Too many requests, slow down", headers={"Retry-After": str(math.ceil(retry_after))}
        )

    def rate_headers(self, rate: RateState | None) -> dict[str, str]:
        """Headers added to every partner response (Beeline's X-Rate-Limit-*). Default: none."""
        return {}

    def not_found_response(self, request: Request) -> Response:
        """Answer for a path the partner does not have. Default: bare 404 like a gateway."""
        return Response(status_code=404)

    # ---------------------------------------------------------------- tokens

    def issue_token(self, tenant: str, replace_previous: bool = False) -> IssuedToken:
        """Issue a bearer token for ``tenant``; optionally invalidate its earlier tokens."""
        token = secrets.token_urlsafe(32)
        issued = IssuedToken(token=token, tenant=tenant, expires_at=time.time() + self.token_ttl_seconds)
        with self._lock:
            if replace_previous:
                for key in [k for k, t in self._tokens.items() if t.tenant == tenant]:
                    del self._tokens[key]
            self._tokens[token] = issued
        self.stats.record_token()
        return issued

    def token_tenant(self, token: str | None) -> str | None:
        """Tenant of a live token, or ``None`` (unknown, expired or revoked)."""
        if not token:
            return None
        with self._lock:
            issued = self._tokens.get(token)
            if issued is None:
                return None
            if issued.expires_at <= time.time():
                del self._tokens[token]
                return None
            return issued.tenant

    def invalidate_token(self, token: str | None) -> None:
        with self._lock:
            if token:
                self._tokens.pop(token, None)

    def expire_tokens(self, tenant: str | None = None) -> int:
        """Invalidate every issued token (or every token of ``tenant``); returns how many."""
        with self._lock:
            keys = [k for k, t in self._tokens.items() if tenant is None or t.tenant == tenant]
            for key in keys:
                del self._tokens[key]
            return len(keys)

    @staticmethod
    def bearer_token(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None

    # ---------------------------------------------------------------- rate limiting

    def _rate_check(self, tenant: str | None) -> RateState | None:
        limit = self.rate_limit_per_minute
        if limit is None:
            return None
        now = time.time()
        if tenant is None:
            return RateState(limit=limit, remaining=limit, reset_seconds=60, exceeded=False)
        with self._lock:
            window = self._windows.get(tenant)
            if window is None or now - window[0] >= 60.0:
                window = [now, 0.0]
                self._windows[tenant] = window
            window[1] += 1
            used = int(window[1])
            reset = max(1, math.ceil(window[0] + 60.0 - now))
        return RateState(
            limit=limit, remaining=max(0, limit - used), reset_seconds=reset, exceeded=used > limit
        )

    # ---------------------------------------------------------------- request pipeline

    def fault_response(self, fault: Fault, tenant: str | None) -> Response:
        if fault.kind == "down":
            return Response(status_code=503)
        if fault.kind == "rate_limit":
            return self.rate_limited_response(float(fault.params.get("retry_after", 1)), tenant)
        status = int(fault.params.get("status", 500))
        if status in (502, 504):
            return Response(status_code=status)
        return self.error_response(status, "Injected server error (sandbox fault)")

    def _finish(self, response: Response, rate: RateState | None) -> Response:
        for key, value in self.rate_headers(rate).items():
            if key.lower() not in response.headers:
                response.headers[key] = value
        return response

    async def _handle(self, spec: PartnerRoute, request: Request) -> Response:
        template = self.base_path + spec.path
        path = request.url.path
        self.stats.record_request(request.method, template)
        try:
            tenant = await self.identify(request)
        except Exception:  # identification is best effort; auth reports the real problem
            tenant = None
        fault = self.faults.take(tenant, path, TRANSPORT_FAULTS)
        if fault is not None and fault.kind == "slow":
            self.stats.record_fault("slow")
            await asyncio.sleep(float(fault.params.get("seconds", 2)))
            fault = self.faults.take(tenant, path, TRANSPORT_FAULTS - {"slow"})
        rate = self._rate_check(tenant)
        if fault is not None:
            self.stats.record_fault(fault.kind)
            return self._finish(self.fault_response(fault, tenant), rate)
        if rate is not None and rate.exceeded:
            self.stats.record_rate_limited()
            return self._finish(self.rate_limited_response(rate.reset_seconds, tenant), rate)
        if spec.auth:
            result = await self.authenticate(request)
            if isinstance(result, Response):
                return self._finish(result, rate)
            tenant = result
            if self.bearer_tokens:
                expired = self.faults.take(tenant, path, frozenset({"expire_token"}))
                if expired is not None:
                    self.stats.record_fault("expire_token")
                    self.invalidate_token(self.bearer_token(request))
                    return self._finish(self.error_response(401, "The access token has expired"), rate)
        data_fault = self.faults.take(tenant, path, DATA_FAULTS) if spec.data else None
        if data_fault is not None:
            self.stats.record_fault(data_fault.kind)
            if data_fault.kind == "duplicate_page":
                with self._lock:
                    previous = self._last_data.get((tenant, path))
                if previous is not None:
                    return self._finish(_copy_response(previous), rate)
        call = Call(request=request, tenant=tenant, fault=data_fault, template=template)
        try:
            response = await spec.handler(call)
        except InvalidBody as exc:
            response = self.error_response(400, str(exc))
        except Exception:
            logger.exception("%s simulator: unhandled error in %s %s", self.name, request.method, path)
            response = self.error_response(500, "Unhandled exception in the sandbox simulator")
        if spec.data and response.status_code == 200 and data_fault is None:
            with self._lock:
                self._last_data[(tenant, path)] = _copy_response(response)
        if data_fault is not None and data_fault.kind == "malformed_page" and response.status_code == 200:
            response = _truncate_response(response)
        return self._finish(response, rate)

    def _endpoint(self, spec: PartnerRoute) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._handle(spec, request)

        endpoint.__name__ = f"{self.name}_{spec.handler.__name__}"
        return endpoint

    # ---------------------------------------------------------------- admin endpoints

    async def _admin_json(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw.strip():
            return {}
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("admin request body must be a JSON object")
        return data

    def _admin(self, func: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                payload = await self._admin_json(request)
                # in a worker thread: some controls wait (flush-webhooks) and must not block the loop
                return JSONResponse(await asyncio.to_thread(func, payload))
            except (ValueError, KeyError, TypeError, NotImplementedError) as exc:
                message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
                return JSONResponse({"error": str(message)}, status_code=400)

        endpoint.__name__ = f"{self.name}_admin_{func.__name__}"
        return endpoint

    def _admin_add_tenant(self, payload: dict[str, Any]) -> dict[str, str]:
        return self.add_tenant(payload["tenant"], payload.get("records"))

    def _admin_list_tenants(self, payload: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            return {name: dict(s.credentials) for name, s in self.tenants.items()}

    def _admin_inject(self, payload: dict[str, Any]) -> dict[str, Any]:
        params = dict(payload)
        kind = params.pop("kind")
        count = params.pop("count", 1)
        tenant = params.pop("tenant", None)
        path_contains = params.pop("path_contains", None)
        fault = self.faults.inject(kind, count, tenant=tenant, path_contains=path_contains, **params)
        return {"fault": fault.as_dict()}

    def _admin_clear(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.faults.clear()
        return {"cleared": True}

    def _admin_faults(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"faults": self.faults.active()}

    def _admin_stats(self, payload: dict[str, Any]) -> dict[str, Any]:
        return self.stats.snapshot()

    def _admin_expire(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"expired": self.expire_tokens(payload.get("tenant"))}

    def _admin_touch(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"ids": self.touch(payload["tenant"], int(payload.get("n", 1)))}

    def _admin_add_records(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"ids": self.add_records(payload["tenant"], int(payload.get("n", 1)))}

    def _admin_revoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.revoke(payload["tenant"])
        return {"revoked": payload["tenant"]}

    def _admin_unrevoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.unrevoke(payload["tenant"])
        return {"unrevoked": payload["tenant"]}

    def _admin_subscribe(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.subscribe(payload["tenant"], payload["url"])
        return {"subscribed": payload["tenant"], "url": payload["url"]}

    def _admin_unsubscribe(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.unsubscribe(payload["tenant"])
        return {"unsubscribed": payload["tenant"]}

    def _admin_send_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        event = self.send_event(payload["tenant"], payload.get("event"), times=int(payload.get("times", 1)))
        return {"event": event}

    def _admin_flush_webhooks(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"flushed": self.flush_webhooks(float(payload.get("timeout", 10)))}

    def _admin_routes(self) -> list[Route]:
        a = self._admin
        return [
            Route("/_sandbox/tenants", a(self._admin_add_tenant), methods=["POST"]),
            Route("/_sandbox/tenants", a(self._admin_list_tenants), methods=["GET"]),
            Route("/_sandbox/faults", a(self._admin_inject), methods=["POST"]),
            Route("/_sandbox/faults", a(self._admin_clear), methods=["DELETE"]),
            Route("/_sandbox/faults", a(self._admin_faults), methods=["GET"]),
            Route("/_sandbox/stats", a(self._admin_stats), methods=["GET"]),
            Route("/_sandbox/expire-tokens", a(self._admin_expire), methods=["POST"]),
            Route("/_sandbox/touch", a(self._admin_touch), methods=["POST"]),
            Route("/_sandbox/add-records", a(self._admin_add_records), methods=["POST"]),
            Route("/_sandbox/revoke", a(self._admin_revoke), methods=["POST"]),
            Route("/_sandbox/unrevoke", a(self._admin_unrevoke), methods=["POST"]),
            Route("/_sandbox/subscribe", a(self._admin_subscribe), methods=["POST"]),
            Route("/_sandbox/unsubscribe", a(self._admin_unsubscribe), methods=["POST"]),
            Route("/_sandbox/send-event", a(self._admin_send_event), methods=["POST"]),
            Route("/_sandbox/flush-webhooks", a(self._admin_flush_webhooks), methods=["POST"]),
        ]

    # ---------------------------------------------------------------- app

    def _build_app(self) -> Starlette:
        routes = self._admin_routes()
        for spec in self.partner_routes():
            routes.append(Route(self.base_path + spec.path, self._endpoint(spec), methods=spec.methods))

        async def not_found(request: Request, exc: Exception) -> Response:
            status = getattr(exc, "status_code", 404)
            if status == 405:
                return self.error_response(405, f"Method {request.method} not allowed on {request.url.path}")
            return self.not_found_response(request)

        return Starlette(
            routes=routes, middleware=self.app_middleware(), exception_handlers={HTTPException: not_found}
        )

    def app_middleware(self) -> list[Middleware]:
        """Extra Starlette middleware for the partner (e.g. gzip for Daxtra)."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} tenants={sorted(self.tenants)}>"

"""The webhook receiver: a small HTTP app that checks, parses and stores partner events.

`POST /webhooks/{connection_id}` does, in this order, and stops at the first failure:

1. find the connection and its connector's `webhooks:` block (404 `unknown connection`);
2. read the body, refusing more than `max_body_bytes` (413), from Content-Length before reading
   and by counting while streaming;
3. answer the subscription handshake if this is one (the challenge echoed, after the signature);
4. check the signature (401; the reason is logged, never a secret);
5. parse the body as the connector's `format` (400 when malformed) and read `event_id`,
   `event_type` and `occurred_at` by path (400 when the id or type is missing);
6. store the event in the inbox: 202 `accepted` for a new event, 200 `duplicate` for one
   already stored. Event types without a route are stored as `ignored` (still 202), so a
   partner adding event types gets no errors.

Nothing is stored for a rejected request, and no partner is called. Bad input never gets a 5xx:
the only 503 is a database that cannot be reached. The app keeps no state besides short-lived
caches, so any number of workers and hosts can serve it against one database.

Durability: a 2xx is sent only after the transaction holding the event has committed. Inserts
of concurrent requests are committed together (`GroupCommit`: one writer thread per process, one
multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING` and one commit per batch), so the cost
of a commit is shared. On SQLite the receiver's connections use WAL with `synchronous=FULL`:
the WAL is fsynced at every commit, so an accepted event survives a power loss, not only a crash
of the process (`NORMAL` would survive the latter only). On PostgreSQL the commit waits for the
WAL flush as configured (`synchronous_commit`, on by default).

Checks and parsing of bodies up to `INLINE_BODY_BYTES` run in the event loop (they take
microseconds); larger ones go to a thread. `POST /webhooks/...` is dispatched to the receiver
directly, without FastAPI's routing stack (`_ReceiverApp`); everything else goes through it.
"""

import asyncio
import json
import logging
import math
import os
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl
from xml.parsers.expat import ExpatError

import anyio
import anyio.to_thread
import sqlalchemy as sa
import xmltodict
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from integration_pipelines.connections import ConnectionConfigError, ConnectionStore
from integration_pipelines.connectors.registry import LoadedConnector, load_connectors
from integration_pipelines.connectors.spec import Handshake, Webhooks
from integration_pipelines.db.engine import create_db_engine, default_database_url
from integration_pipelines.health.status_page import build_status_router
from integration_pipelines.mapping.paths import get_path
from integration_pipelines.resources.vault import CredentialVault, VaultError
from integration_pipelines.webhooks.inbox import NewEvent, record_events
from integration_pipelines.webhooks.signatures import SignatureError, verify

log = logging.getLogger("integration_pipelines.webhooks")

CACHE_TTL_SECONDS = 30.0  # connection, connector and secrets, per connection id
UNKNOWN_TTL_SECONDS = 5.0  # "no such connection" is remembered for less time
CACHE_MAX_ENTRIES = 10_000
MAX_DEPTH = 64  # nesting of a parsed event; deeper bodies are refused (400)
MAX_FORM_FIELDS = 1_000
EVENT_ID_MAX = 200  # the inbox columns' lengths
EVENT_TYPE_MAX = 100
CONNECTION_ID_MAX = 140
SQLITE_THREADS = 4  # threads checking and parsing large bodies, per process
SERVER_DB_THREADS = 16  # the same on PostgreSQL
INLINE_BODY_BYTES = 64 * 1024  # smaller bodies are checked and parsed in the event loop itself
MAX_BATCH = 500  # events written and committed together at most (group commit)
SQLITE_SYNCHRONOUS = "FULL"  # the receiver's SQLite commits are fsynced: durable on power loss
SQLITE_SYNCHRONOUS_LEVELS = ("EXTRA", "FULL", "NORMAL")  # NORMAL: survives a crash, not a power loss

ENV_PUBLIC_URL = "INTEGRATION_WEBHOOK_PUBLIC_URL"
ENV_CONNECTORS_DIR = "INTEGRATION_CONNECTORS_DIR"
ENV_VAULT_KEY_FILE = "INTEGRATION_VAULT_KEY_FILE"
ENV_SQLITE_SYNCHRONOUS = "INTEGRATION_WEBHOOK_SQLITE_SYNCHRONOUS"


# ---------------------------------------------------------------- response models (OpenAPI)


class EventStatus(BaseModel):
    """The outcome for an event: `accepted` (stored now) or `duplicate` (stored before)."""

    status: Literal["accepted", "duplicate"]


class ErrorBody(BaseModel):
    """Why a request was refused; never a secret or a part of the body."""

    error: str


class HealthStatus(BaseModel):
    """Whether the receiver can reach its database."""

    status: Literal["ok", "error"]
    database: Literal["ok", "unavailable"]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Malformed body, missing event id or type, or no handshake challenge"),
    401: _error("Signature, token or credentials missing, wrong or stale"),
    404: _error("Unknown connection, or its connector receives no webhooks"),
    405: _error("The connector does not expect this method (GET is for handshakes only)"),
    413: _error("Body larger than the connector's max_body_bytes"),
    503: _error("The database cannot be reached; retry later"),
}
_HANDSHAKE_200 = {
    "description": "Handshake: the challenge echoed (text, or JSON `{key: challenge}`)",
    "content": {
        "text/plain": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}},
    },
}
_EVENT_BODY = {
    "requestBody": {
        "required": False,
        "description": "The partner's event, in the connector's format (json, form or xml).",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            },
            "application/xml": {"schema": {"type": "string"}},
        },
    }
}


# ---------------------------------------------------------------- small pieces


@dataclass(frozen=True)
class Target:
    """What the receiver needs to know about one connection (cached for a short time)."""

    connection_id: str
    connector: str
    webhooks: Webhooks
    secrets: Mapping[str, str]


@dataclass(frozen=True)
class _Incoming:
    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    body: bytes


class _Rejected(Exception):
    """A request answered with an error: `reason` is logged, `public` (default: reason) is returned."""

    def __init__(self, status: int, reason: str, public: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.public = public or reason


class _TTLCache:
    """A bounded per-key cache whose misses load once per key, even when many requests miss at once."""

    _MISS = object()

    def __init__(self, load: Callable[[str], Any], ttl: Callable[[Any], float], max_entries: int) -> None:
        self._load = load
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def peek(self, key: str) -> Any:
        """The cached value, or `_TTLCache._MISS`; never blocks on I/O."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return self._MISS
            if entry[0] < time.monotonic():
                del self._entries[key]
                return self._MISS
            return entry[1]

    def get(self, key: str) -> Any:
        """The cached value, loading it (blocking) on a miss."""
        value = self.peek(key)
        if value is not self._MISS:
            return value
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        try:
            with key_lock:
                value = self.peek(key)
                if value is not self._MISS:
                    return value
                value = self._load(key)
                with self._lock:
                    self._entries[key] = (time.monotonic() + self._ttl(value), value)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self._max:
                        self._entries.popitem(last=False)
                return value
        finally:
            with self._lock:
                self._loading.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Whether dicts/lists nest deeper than `limit` (iterative: no recursion on hostile input)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=MAX_FORM_FIELDS
        )
    except ValueError:  # includes UnicodeDecodeError
        raise _Rejected(400, "malformed form body") from None


def parse_body(fmt: str, body: bytes) -> dict[str, Any]:
    """The event as a dict, or `_Rejected` (400) for a body that is not one event of `fmt`."""
    if fmt == "json":
        try:
            value = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise _Rejected(400, "malformed json body") from None
        if not isinstance(value, dict):
            raise _Rejected(400, "event is not a json object")
    elif fmt == "form":
        value = dict(_parse_form(body))
    else:
        try:
            value = xmltodict.parse(body)
        except (ExpatError, ValueError, TypeError):
            raise _Rejected(400, "malformed xml body") from None
        if not isinstance(value, dict):
            raise _Rejected(400, "malformed xml body")
    if _depth_exceeds(value, MAX_DEPTH):
        raise _Rejected(400, "event nested too deeply")
    return value


def _text(value: Any, name: str, max_length: int) -> str | None:
    """An id or type read from the event as text; None when absent or empty."""
    if isinstance(value, dict) and "#text" in value:  # XML element with attributes
        value = value["#text"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Rejected(400, f"{name} is not a single value")
    text = value if isinstance(value, str) else str(value)
    if not text:
        return None
    if len(text) > max_length:
        raise _Rejected(400, f"{name} is longer than {max_length} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Rejected(400, f"{name} is not valid text") from None
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in text):
        raise _Rejected(400, f"{name} contains control characters")
    return text


def parse_timestamp(value: Any) -> datetime | None:
    """`occurred_at` as an aware UTC datetime: ISO 8601 text or epoch seconds (ms if > 1e11).

    A value that does not parse gives None (the event is still stored; the raw value stays in
    the payload).
    """
    if isinstance(value, dict) and "#text" in value:
        value = value["#text"]
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, str):
            text = value.strip()
            try:
                value = float(text)
            except ValueError:
                parsed = datetime.fromisoformat(text)
                return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
        if isinstance(value, int | float):
            if not math.isfinite(value):
                return None
            seconds = value / 1000 if abs(value) > 1e11 else value
            return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _challenge(handshake: Handshake, incoming: _Incoming, fmt: str) -> str | None:
    """The handshake challenge in this request, if there is one."""
    if handshake.location == "query":
        value: Any = incoming.query.get(handshake.param)
    else:
        try:
            parsed = parse_body(fmt, incoming.body)
        except _Rejected:
            return None
        value = parsed.get(handshake.param)
        if value is None:
            value = get_path(parsed, handshake.param)
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = str(value)
    try:
        text.encode("utf-8")  # it is sent back: a lone surrogate cannot be
    except UnicodeEncodeError:
        return None
    return text or None


_ACCEPTED = b'{"status":"accepted"}'  # what JSONResponse({"status": ...}) renders, made once
_DUPLICATE = b'{"status":"duplicate"}'


def _as_received(fmt: str, body: bytes) -> str | None:
    """A JSON body that parsed as an object, as text to store without serialising it again.

    Only plain UTF-8 text starting with `{` (json.loads also takes UTF-16/32 and a BOM, which
    are serialised again instead); None otherwise.
    """
    if fmt != "json" or not body.startswith(b"{"):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _full_url(request: Request, public_base_url: str | None) -> str:
    """The URL the partner called, as it signed it: raw path and query as received."""
    scope = request.scope
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    query = scope.get("query_string", b"").decode("latin-1")
    base = public_base_url or f"{request.url.scheme}://{request.url.netloc}"
    return base + path + (f"?{query}" if query else "")


# ---------------------------------------------------------------- group commit


_Waiting = tuple[NewEvent, asyncio.AbstractEventLoop, "asyncio.Future[bool]"]


def _settle(settled: "list[tuple[asyncio.Future[bool], bool | BaseException]]") -> None:
    for future, outcome in settled:
        if future.done():  # the request went away meanwhile
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


class GroupCommit:
    """Inbox inserts from concurrent requests, written and committed together by one thread.

    A request hands its event over and waits; the writer thread takes every event waiting (up to
    `max_batch`), stores them in ONE transaction (one multi-row insert, one commit, so one fsync)
    and only then answers each request with its own outcome: stored, duplicate, or the error.
    No request is answered before the transaction holding its event has committed. While one
    batch commits the next one gathers, so the batch size follows the load by itself.

    If a batch fails on a value (`DataError`, `IntegrityError`), its events are written again one
    per transaction, so only the event at fault is refused.
    """

    def __init__(self, engine: Callable[[], sa.Engine], max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Waiting | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0  # statistics: transactions committed, events written
        self.events = 0

    async def store(self, event: NewEvent) -> bool:
        """True if the event was stored now, False if it was a duplicate; after the commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        if self._thread is None:
            self._start()
        self._queue.put((event, loop, future))
        return await future

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inbox-group-commit", daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the writer after the events already handed over are written."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(30)
        if self.batches:
            log.info(
                "inbox group commit: %d events in %d transactions (%.1f per commit)",
                self.events,
                self.batches,
                self.events / self.batches,
            )

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            outcomes = self._write([event for event, _, _ in batch])
            answers: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool | BaseException]]]
            answers = {}
            for (_, loop, future), outcome in zip(batch, outcomes, strict=True):
                answers.setdefault(loop, []).append((future, outcome))
            for loop, settled in answers.items():  # one wake-up per event loop, not per request
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # that event loop is closed: nobody waits any more
                    pass

    def _write(self, events: list[NewEvent]) -> list[bool | BaseException]:
        try:
            with self._engine().begin() as conn:
                created: list[bool | BaseException] = list(record_events(conn, events))
        except (sa.exc.DataError, sa.exc.IntegrityError) as exc:
            if len(events) == 1:
                return [exc]
            return [outcome for event in events for outcome in self._write([event])]
        except Exception as exc:  # the database is unreachable, or worse: every request learns it
            return [exc] * len(events)
        self.batches += 1
        self.events += len(events)
        return created


# ---------------------------------------------------------------- the receiver


class WebhookReceiver:
    """The request handling behind the app: connection lookup (cached), checks and the inbox write."""

    def __init__(
        self,
        engine: sa.Engine,
        vault: CredentialVault | None,
        connectors: Mapping[str, LoadedConnector],
        public_base_url: str | None = None,
        cache_ttl_seconds: float = CACHE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        threads: int | None = None,
    ) -> None:
        self.engine = engine
        self.store = ConnectionStore(engine, vault)
        self.connectors = connectors
        self.public_base_url = public_base_url.rstrip("/") if public_base_url else None
        self.clock = clock
        # threads checking bodies over INLINE_BODY_BYTES (the inserts all go through `committer`)
        self.threads = threads or (SQLITE_THREADS if engine.dialect.name == "sqlite" else SERVER_DB_THREADS)
        self._capacity: anyio.CapacityLimiter | None = None
        self.committer = GroupCommit(lambda: self.engine)
        self._targets = _TTLCache(
            self._load_target,
            ttl=lambda target: (
                cache_ttl_seconds if target is not None else min(UNKNOWN_TTL_SECONDS, cache_ttl_seconds)
            ),
            max_entries=CACHE_MAX_ENTRIES,
        )

    # ------------------------------------------------------------ lookup
    def _load_target(self, connection_id: str) -> Target | None:
        try:
            connection = self.store.get(connection_id)
        except ConnectionConfigError:
            return None
        loaded = self.connectors.get(connection.connector)
        if loaded is None or loaded.spec.webhooks is None:
            return None
        webhooks = loaded.spec.webhooks
        signature = webhooks.signature
        secrets: dict[str, str] = {}
        if signature.scheme != "none":
            try:
                stored = self.store.credentials(connection_id)
            except (ConnectionConfigError, VaultError) as exc:
                log.error("webhook secrets unavailable for connection=%r: %s", connection_id, exc)
                stored = {}
            wanted = {signature.secret, signature.username} - {None}
            secrets = {name: value for name, value in stored.items() if name in wanted}
            for name in sorted(wanted - set(secrets)):
                log.error(
                    "webhook secret %r is not set for connection=%r: its events are refused",
                    name,
                    connection_id,
                )
        return Target(connection_id, connection.connector, webhooks, secrets)

    async def target(self, connection_id: str) -> Target | None:
        if len(connection_id) > CONNECTION_ID_MAX or not connection_id.isprintable():
            return None
        cached = self._targets.peek(connection_id)
        if cached is not _TTLCache._MISS:
            return cached
        return await anyio.to_thread.run_sync(self._targets.get, connection_id)

    def _limiter(self) -> anyio.CapacityLimiter:
        """Threads checking large bodies at once (made in the event loop, on first use)."""
        if self._capacity is None:
            self._capacity = anyio.CapacityLimiter(self.threads)
        return self._capacity

    def forget(self) -> None:
        """Drop every cached connection (tests, or after changing credentials)."""
        self._targets.clear()

    # ------------------------------------------------------------ requests
    async def handle(self, request: Request, connection_id: str) -> Response:
        try:
            target = await self.target(connection_id)
            if target is None:
                raise _Rejected(404, "unknown connection")
            webhooks = target.webhooks
            handshake = webhooks.handshake
            if request.method == "GET" and (handshake is None or handshake.method != "GET"):
                raise _Rejected(405, "method not allowed")
            body = await self._read_body(request, webhooks.max_body_bytes)
            incoming = _Incoming(
                method=request.method,
                # only url_params_hmac signs the URL: not rebuilt for the others
                url=_full_url(request, self.public_base_url)
                if webhooks.signature.scheme == "url_params_hmac"
                else "",
                headers=request.headers,
                query=request.query_params,
                body=body,
            )
            if len(body) <= INLINE_BODY_BYTES:  # microseconds of work: no thread hand-off
                checked = self._check(target, incoming)
            else:
                checked = await anyio.to_thread.run_sync(
                    self._check, target, incoming, limiter=self._limiter()
                )
            if isinstance(checked, Response):
                return checked
            try:
                created = await self.committer.store(checked)
            except sa.exc.DataError:  # the database refused a value: the input's fault, not an outage
                raise _Rejected(400, "event cannot be stored") from None
            if created:
                log.debug("webhook stored connection=%r type=%r", target.connection_id, checked.event_type)
                return Response(_ACCEPTED, status_code=202, media_type="application/json")
            return Response(_DUPLICATE, status_code=200, media_type="application/json")
        except _Rejected as rejected:
            log.warning(
                "webhook rejected connection=%r status=%d reason=%s",
                connection_id[:CONNECTION_ID_MAX],
                rejected.status,
                rejected.reason,
            )
            headers = {"Allow": "POST"} if rejected.status == 405 else None
            return JSONResponse({"error": rejected.public}, status_code=rejected.status, headers=headers)
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as exc:
            log.error(
                "webhook not stored connection=%r status=503 reason=database unavailable (%s)",
                connection_id[:CONNECTION_ID_MAX],
                type(getattr(exc, "orig", None) or exc).__name__,
            )
            return JSONResponse(
                {"error": "database unavailable"}, status_code=503, headers={"Retry-After": "5"}
            )

    @staticmethod
    async def _read_body(request: Request, limit: int) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                raise _Rejected(400, "invalid content-length") from None
            if length > limit:
                raise _Rejected(413, "body too large")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise _Rejected(413, "body too large")
                chunks.append(chunk)
        except ClientDisconnect:
            raise _Rejected(400, "client disconnected") from None
        return b"".join(chunks)

    def _verify(self, target: Target, incoming: _Incoming, form: list[tuple[str, str]] | None) -> None:
        try:
            verify(
                target.webhooks.signature,
                body=incoming.body,
                headers=incoming.headers,
                url=incoming.url,
                form=form,
                query=incoming.query,
                secrets=target.secrets,
                now=self.clock(),
            )
        except SignatureError as exc:
            public = "invalid signature" if exc.reason == "secret not configured" else exc.reason
            raise _Rejected(401, exc.reason, public) from None

    def _check(self, target: Target, incoming: _Incoming) -> Response | NewEvent:
        """Everything after the body is read, short of storing: the handshake's answer, or the
        event to store. No I/O: runs in the event loop (or a thread, for large bodies)."""
        webhooks = target.webhooks
        handshake = webhooks.handshake
        if handshake is not None and incoming.method == handshake.method:
            challenge = _challenge(handshake, incoming, webhooks.format)
            if challenge is not None:
                self._verify(target, incoming, self._form_for_signature(target, incoming))
                if handshake.respond == "json":
                    return JSONResponse({handshake.json_key or handshake.param: challenge})
                return PlainTextResponse(challenge, headers={"X-Content-Type-Options": "nosniff"})
        if incoming.method != "POST":
            raise _Rejected(400, "missing handshake challenge")

        self._verify(target, incoming, self._form_for_signature(target, incoming))
        event = parse_body(webhooks.format, incoming.body)
        event_id = _text(get_path(event, webhooks.event_id), "event id", EVENT_ID_MAX)
        if event_id is None:
            raise _Rejected(400, "missing event id")
        event_type = _text(get_path(event, webhooks.event_type), "event type", EVENT_TYPE_MAX)
        if event_type is None:
            raise _Rejected(400, "missing event type")
        occurred_at = parse_timestamp(get_path(event, webhooks.occurred_at)) if webhooks.occurred_at else None
        return NewEvent(
            connection_id=target.connection_id,
            event_id=event_id,
            event_type=event_type,
            occurred_at=occurred_at,
            received_at=datetime.now(UTC),
            payload=event,
            status="pending" if event_type in webhooks.routes else "ignored",
            payload_json=_as_received(webhooks.format, incoming.body),
        )

    @staticmethod
    def _form_for_signature(target: Target, incoming: _Incoming) -> list[tuple[str, str]] | None:
        """The form parameters `url_params_hmac` signs (POSTed form bodies only)."""
        webhooks = target.webhooks
        if webhooks.signature.scheme != "url_params_hmac" or webhooks.format != "form":
            return None
        if incoming.method != "POST" or not incoming.body:
            return None
        return _parse_form(incoming.body)

    def health(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except (sa.exc.DBAPIError, sa.exc.TimeoutError):
            return False
        return True


# ---------------------------------------------------------------- the app


def create_app(
    *,
    database_url: str | None = None,
    vault: CredentialVault | None = None,
    public_base_url: str | None = None,
    connectors: Mapping[str, LoadedConnector] | None = None,
    cache_ttl_seconds: float = CACHE_TTL_SECONDS,
    sqlite_synchronous: str = SQLITE_SYNCHRONOUS,
) -> FastAPI:
    """The receiver as an ASGI app.

    `database_url` defaults to `default_database_url()` (the schema must already be migrated);
    `vault` decrypts webhook secrets (without one only `scheme: none` connectors can be
    received); `public_base_url` (`https://hooks.example.com`) replaces scheme, host and port in
    the URL `url_params_hmac` signs, when a proxy sits in front; `connectors` replaces the
    registry's connectors (tests); `sqlite_synchronous` is SQLite's `synchronous` for the
    receiver's connections (FULL: an accepted event survives a power loss; NORMAL: only a crash).
    """
    level = sqlite_synchronous.upper()
    if level not in SQLITE_SYNCHRONOUS_LEVELS:
        raise ValueError(f"sqlite_synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS_LEVELS)}")
    engine = create_db_engine(database_url or default_database_url())
    if engine.dialect.name == "sqlite":

        def _sqlite_durable(dbapi_conn: Any, _record: Any) -> None:
            """WAL + synchronous=FULL: the WAL is fsynced at each commit, so every event answered
            2xx is on disk. With group commit that is one fsync per batch, not per event."""
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA synchronous={level}")
            cursor.close()

        sa.event.listen(engine, "connect", _sqlite_durable)  # after the engine's own pragmas
    receiver = WebhookReceiver(
        engine,
        vault,
        connectors if connectors is not None else load_connectors(),
        public_base_url=public_base_url,
        cache_ttl_seconds=cache_ttl_seconds,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await anyio.to_thread.run_sync(receiver.committer.close)
        engine.dispose()

    app = _ReceiverApp(
        title="Integration pipelines webhook receiver",
        version="1",
        description=(
            "Receives partner webhooks for configured connections, checks their signatures and "
            "stores each event once in the inbox. Nothing is processed inside the request."
        ),
        lifespan=lifespan,
    )
    app.state.receiver = receiver

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        """Routing errors (no such path, method) in the same shape as the receiver's own."""
        return JSONResponse(
            {"error": str(exc.detail).lower()}, status_code=exc.status_code, headers=exc.headers
        )

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's description without the 422 it adds to every route with parameters: the
        receiver reads the raw request and never answers 422."""
        if app.openapi_schema is None:
            schema = default_openapi()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
        return app.openapi_schema

    app.openapi = openapi

    @app.post(
        "/webhooks/{connection_id:path}",
        summary="Receive a partner event (or a POST handshake)",
        status_code=202,
        response_model=None,
        responses={
            200: {
                "description": "Event already stored (duplicate), or a POST handshake's challenge echoed",
                "content": {
                    "application/json": {
                        "schema": {
                            "anyOf": [
                                {"$ref": "#/components/schemas/EventStatus"},
                                {"type": "object", "additionalProperties": {"type": "string"}},
                            ]
                        }
                    },
                    "text/plain": {"schema": {"type": "string"}},
                },
            },
            202: {"model": EventStatus, "description": "Event stored (accepted)"},
            **_ERRORS,
        },
        openapi_extra=_EVENT_BODY,
    )
    async def receive_event(connection_id: str, request: Request) -> Response:
        """Check, parse and store one event for `connection_id` (e.g. `acme/beeline`)."""
        return await receiver.handle(request, connection_id)

    @app.get(
        "/webhooks/{connection_id:path}",
        summary="Subscription handshake: echo the partner's challenge",
        response_model=None,
        responses={200: _HANDSHAKE_200, **_ERRORS},
    )
    async def handshake(connection_id: str, request: Request) -> Response:
        """Echo the challenge query parameter the connector's `handshake:` names."""
        return await receiver.handle(request, connection_id)

    @app.get(
        "/health",
        summary="Liveness and database reachability",
        response_model=HealthStatus,
        responses={503: {"model": HealthStatus, "description": "The database cannot be reached"}},
    )
    async def health() -> JSONResponse:
        """`ok` when the database answers."""
        if await anyio.to_thread.run_sync(receiver.health):
            return JSONResponse({"status": "ok", "database": "ok"})
        return JSONResponse({"status": "error", "database": "unavailable"}, status_code=503)

    # the customer-facing status pages live on the same app (GET /status/{tenant}, GET /status)
    app.include_router(build_status_router(engine_provider=lambda: engine, connectors=receiver.connectors))
    return app


class _ReceiverApp(FastAPI):
    """FastAPI, with `POST /webhooks/{connection_id}` answered without the routing stack.

    That route is all the receiver's traffic: it goes straight to `WebhookReceiver.handle`,
    the same code the route calls, skipping the middleware, routing and endpoint machinery
    (about a third of the CPU per request). Anything unusual (another method or path, a mount
    under a root path, added middleware, a connection id the route would not match) takes the
    normal way, so the answers are the same.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("root_path")
            and not self.user_middleware
        ):
            path: str = scope["path"]
            if path.startswith("/webhooks/") and len(path) > 10 and "\n" not in path:
                receiver: WebhookReceiver = self.state.receiver
                scope["app"] = self
                response = await receiver.handle(Request(scope, receive, send), path[10:])
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _connectors_from_env() -> dict[str, LoadedConnector]:
    connectors = dict(load_connectors())
    extra = os.environ.get(ENV_CONNECTORS_DIR)
    if extra:
        connectors.update(load_connectors(Path(extra)))
    return connectors


def app_from_env() -> FastAPI:
    """The app configured from the environment (the uvicorn factory `serve` runs).

    `INTEGRATION_DATABASE_URL` (already migrated), `INTEGRATION_VAULT_KEYS` or
    `INTEGRATION_VAULT_KEY_FILE`, `INTEGRATION_WEBHOOK_PUBLIC_URL`, and
    `INTEGRATION_CONNECTORS_DIR` for connector files outside the package (merged over them),
    `INTEGRATION_WEBHOOK_SQLITE_SYNCHRONOUS` (FULL, the default, or NORMAL or EXTRA).
    """
    key_file = os.environ.get(ENV_VAULT_KEY_FILE)
    try:
        vault: CredentialVault | None = CredentialVault.from_env(
            key_file=Path(key_file) if key_file else None
        )
    except VaultError as exc:
        log.warning("no credential vault: only unsigned (scheme none) webhooks can be received (%s)", exc)
        vault = None
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    return create_app(
        database_url=default_database_url(),
        vault=vault,
        public_base_url=os.environ.get(ENV_PUBLIC_URL) or None,
        connectors=_connectors_from_env(),
        sqlite_synchronous=os.environ.get(ENV_SQLITE_SYNCHRONOUS) or SQLITE_SYNCHRONOUS,
    )


__all__ = [
    "EventStatus",
    "Target",
    "WebhookReceiver",
    "app_from_env",
    "create_app",
    "parse_body",
    "parse_timestamp",
]

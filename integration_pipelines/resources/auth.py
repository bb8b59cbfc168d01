"""`httpx.Auth` implementations for the auth kinds a connector file can declare.

:func:`build_auth` turns a connector's ``auth`` block plus the connection's decrypted
credentials into an ``httpx.Auth`` (or None). OAuth 2.0 token requests and response parsing go
through authlib's httpx ``OAuth2Client``; this module adds caching, renewal before expiry, a
single renewal at a time, and one retry on a 401.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
import warnings
from collections.abc import Callable, Generator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
from authlib.oauth2.client import DEFAULT_HEADERS as OAUTH_DEFAULT_HEADERS

from integration_pipelines.connectors.spec import (
    ApiKeyAuth,
    BasicAuth,
    HmacSignatureAuth,
    NoAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)
from integration_pipelines.resources.errors import (
    AuthenticationFailed,
    MalformedResponse,
    PartnerError,
    PartnerUnavailable,
    RateLimited,
    describe_call,
)
from integration_pipelines.resources.rate_limit import parse_wait_header
from integration_pipelines.resources.redaction import redact
from integration_pipelines.templates import TemplateError, render

with warnings.catch_warnings():
    # authlib prefers the `httpx2` package and warns when it falls back to `httpx`, which is
    # what this project depends on (and what PartnerClient's transports are).
    warnings.simplefilter("ignore", DeprecationWarning)
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import OAuth2Client

DEFAULT_TOKEN_LIFETIME = 3600.0
# OAuth error codes (RFC 6749 5.2) that mean "these credentials / this grant will not work"
REFUSAL_ERRORS = frozenset(
    {
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "invalid_scope",
        "unsupported_grant_type",
        "access_denied",
        "invalid_request",
    }
)


def join_url(base_url: str, url: str) -> str:
    """`url` if absolute, else `url` appended to `base_url`'s path (``http://h/api`` + ``/t`` -> ``http://h/api/t``)."""
    if urlsplit(url).scheme:
        return url
    if not url:
        return base_url
    return base_url.rstrip("/") + "/" + url.lstrip("/")


def _credential(
    credentials: Mapping[str, str], name: str, kind: str, partner: str, connection_id: str
) -> str:
    value = credentials.get(name)
    if value is None or value == "":
        raise AuthenticationFailed(
            f"{describe_call(partner, connection_id)}: credential {name!r} needed for {kind} auth "
            "is not set; store it in the vault for this connection",
            partner=partner,
            connection_id=connection_id,
        )
    return value


# ---------------------------------------------------------------- api key


class ApiKeyAuthFlow(httpx.Auth):
    """Static keys in headers, the query string, or the request body (JSON object or form).

    For ``body``: a JSON object gets the keys as extra fields, a form-urlencoded body gets
    extra fields, an empty body becomes a JSON object of the keys. Multipart bodies are left
    untouched (their boundary-encoded parts cannot be extended safely here): a connector that
    uploads files with a body key must add the key to the form fields itself. A JSON body that
    is not an object raises ValueError.
    """

    def __init__(self, location: str, values: Mapping[str, str]) -> None:
        self.location = location
        self.values = dict(values)
        self.requires_request_body = location == "body"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.location == "header":
            request.headers.update(self.values)
        elif self.location == "query":
            request.url = request.url.copy_merge_params(self.values)
        else:
            request = self._with_body_keys(request)
        yield request

    def _with_body_keys(self, request: httpx.Request) -> httpx.Request:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = request.content
        if content_type.startswith("multipart/"):
            return request
        headers = httpx.Headers(request.headers)
        headers.pop("content-length", None)
        if content_type == "application/x-www-form-urlencoded":
            fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            fields += list(self.values.items())
            new_body = urlencode(fields).encode("utf-8")
        elif not body:
            headers["content-type"] = "application/json"
            new_body = json.dumps(self.values).encode("utf-8")
        else:
            try:
                payload = json.loads(body)
            except ValueError:
                raise ValueError(
                    f"api_key auth with location 'body' needs a JSON object or form body; "
                    f"got content-type {content_type or 'none'!r}"
                ) from None
            if not isinstance(payload, dict):
                raise ValueError(
                    "api_key auth with location 'body' needs a JSON object body, not a list or value"
                )
            payload.update(self.values)
            new_body = json.dumps(payload).encode("utf-8")
        return httpx.Request(
            request.method, request.url, headers=headers, content=new_body, extensions=request.extensions
        )


# ---------------------------------------------------------------- hmac


def hmac_signature(
    secret: str,
    *,
    timestamp: str,
    method: str,
    path: str,
    body: bytes,
    algorithm: str = "sha256",
    encoding: str = "hex",
) -> str:
    """HMAC over ``"{timestamp}\\n{METHOD}\\n{path with query}\\n{sha256 hex of body}"``."""
    string_to_sign = "\n".join([timestamp, method.upper(), path, hashlib.sha256(body).hexdigest()])
    digest = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), algorithm).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode("ascii")


def _path_with_query(request: httpx.Request) -> str:
    return request.url.raw_path.decode("ascii")


class HmacAuth(httpx.Auth):
    """Signs each request with HMAC over timestamp, method, path with query and body hash."""

    requires_request_body = True

    def __init__(
        self, spec: HmacSignatureAuth, key_id: str, secret: str, clock: Callable[[], float] = time.time
    ):
        self.spec = spec
        self._key_id = key_id
        self._secret = secret
        self._clock = clock

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        timestamp = str(int(self._clock()))
        signature = hmac_signature(
            self._secret,
            timestamp=timestamp,
            method=request.method,
            path=_path_with_query(request),
            body=request.content,
            algorithm=self.spec.algorithm,
            encoding=self.spec.encoding,
        )
        request.headers[self.spec.timestamp_header] = timestamp
        request.headers[self.spec.key_id_header] = self._key_id
        request.headers[self.spec.signature_header] = signature
        yield request


def verify_hmac_request(
    request: httpx.Request,
    spec: HmacSignatureAuth,
    secret: str,
    *,
    key_id: str | None = None,
    now: float | None = None,
    max_skew_seconds: float | None = 300,
) -> bool:
    """True when `request` carries a valid signature made with `secret` (what the partner checks).

    Also checks the key id header (when `key_id` is given) and that the timestamp is within
    `max_skew_seconds` of `now` (skipped when either is None).
    """
    signature = request.headers.get(spec.signature_header)
    timestamp = request.headers.get(spec.timestamp_header)
    if not signature or not timestamp:
        return False
    if key_id is not None and request.headers.get(spec.key_id_header) != key_id:
        return False
    if now is not None and max_skew_seconds is not None:
        try:
            if abs(now - int(timestamp)) > max_skew_seconds:
                return False
        except ValueError:
            return False
    expected = hmac_signature(
        secret,
        timestamp=timestamp,
        method=request.method,
        path=_path_with_query(request),
        body=request.read(),
        algorithm=spec.algorithm,
        encoding=spec.encoding,
    )
    return hmac.compare_digest(expected, signature)


# ---------------------------------------------------------------- oauth 2.0


class TokenManager:
    """Fetches, caches and renews one connection's OAuth 2.0 access token; safe to share across threads.

    Token requests go through authlib's httpx ``OAuth2Client`` (client authentication by
    ``client_secret_basic`` or ``client_secret_post``, form encoding, error parsing). A token is
    renewed `expiry_margin_seconds` before it expires (``expires_in``/``expires_at``, 3600 s
    when the partner does not say; the margin is at most half the lifetime). Renewal holds a
    lock and re-checks after acquiring it, so threads that all need a token cause one request.
    Every new token dict (for the refresh-token grant including the possibly rotated
    ``refresh_token``) is passed to `on_token` so the caller can store it.
    """

    def __init__(
        self,
        spec: OAuth2ClientCredentials | OAuth2RefreshToken,
        credentials: Mapping[str, str],
        *,
        base_url: str,
        transport: httpx.BaseTransport | None = None,
        on_token: Callable[[dict], None] | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float = 30.0,
        partner: str = "",
        connection_id: str = "",
    ) -> None:
        self.spec = spec
        self.partner = partner
        self.connection_id = connection_id
        self.token_url = join_url(base_url, spec.token_url)
        self._token_path = urlsplit(self.token_url).path or "/"
        kind = spec.kind
        self._client_id = _credential(credentials, spec.client_id, kind, partner, connection_id)
        self._client_secret = _credential(credentials, spec.client_secret, kind, partner, connection_id)
        self._refresh_token: str | None = None
        if isinstance(spec, OAuth2RefreshToken):
            self._refresh_token = _credential(credentials, spec.refresh_token, kind, partner, connection_id)
        token_headers = getattr(spec, "token_headers", {}) or {}
        try:
            self._headers = {
                **OAUTH_DEFAULT_HEADERS,
                **{
                    name: render(value, {"credentials": credentials}) for name, value in token_headers.items()
                },
            }
        except TemplateError as exc:
            raise AuthenticationFailed(
                f"{describe_call(partner, connection_id)}: token_headers: {exc}; "
                "store that credential in the vault",
                partner=partner,
                connection_id=connection_id,
            ) from None
        self._params: dict[str, str] = dict(getattr(spec, "token_params", {}) or {})
        self._on_token = on_token
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, float] | None = None  # (access token, renew at); replaced atomically
        self.token_requests = 0
        self._client = OAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret,
            token_endpoint_auth_method="client_secret_basic"
            if spec.client_auth == "basic"
            else "client_secret_post",
            scope=spec.scope,
            transport=transport,
            timeout=timeout,
        )
        self._client.register_compliance_hook("access_token_response", self._check_response)
        self._client.register_compliance_hook("refresh_token_response", self._check_response)

    # -- public

    def get_token(self) -> str:
        """A valid access token, requesting a new one only when the cached one is (nearly) expired."""
        cached = self._cached
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        with self._lock:
            cached = self._cached  # another thread may have renewed it while we waited
            if cached is not None and self._clock() < cached[1]:
                return cached[0]
            return self._renew()

    def invalidate(self, access_token: str | None = None) -> None:
        """Forget the cached token (only if it is still `access_token`, when given: the 401 was for it)."""
        with self._lock:
            if self._cached is not None and (access_token is None or self._cached[0] == access_token):
                self._cached = None

    @property
    def expires_at(self) -> float | None:
        """When the cached token will be renewed (clock time), or None."""
        cached = self._cached
        return cached[1] if cached else None

    def close(self) -> None:
        """Close the token endpoint's HTTP client."""
        self._client.close()

    # -- internals

    def _secrets(self) -> list[str]:
        return [s for s in (self._client_id, self._client_secret, self._refresh_token) if s]

    def _check_response(self, response: httpx.Response) -> httpx.Response:
        """authlib compliance hook: turn 429/5xx from the token endpoint into transient errors."""
        where = describe_call(self.partner, self.connection_id, "POST", self._token_path)
        common: dict[str, Any] = dict(
            partner=self.partner,
            connection_id=self.connection_id,
            status_code=response.status_code,
            method="POST",
            path=self._token_path,
        )
        if response.status_code == 429:
            retry_after = parse_wait_header(response.headers.get("Retry-After"))
            raise RateLimited(
                f"{where}: the token endpoint is rate limiting (HTTP 429); try again later",
                retry_after=retry_after,
                **common,
            )
        if response.status_code >= 500:
            raise PartnerUnavailable(
                f"{where}: the token endpoint failed (HTTP {response.status_code}); "
                "the partner is having problems, try again later",
                **common,
            )
        if response.status_code >= 400 and not self._is_oauth_error(response):
            # a partner-specific error body (e.g. SAP Fieldglass' {"ReturnCode":..., "Message":...}):
            # authlib would take it for a token without access_token and hide the refusal
            status = response.status_code
            if status in (400, 401, 403):
                raise AuthenticationFailed(
                    f"{where}: the token endpoint refused the credentials (HTTP {status}); "
                    f"{self._fix_hint('invalid_client')}",
                    **common,
                )
            raise AuthenticationFailed(
                f"{where}: the token endpoint answered HTTP {status}; check the connector's token_url",
                **common,
            )
        return response

    @staticmethod
    def _is_oauth_error(response: httpx.Response) -> bool:
        """An RFC 6749 error answer (``{"error": ...}``), which authlib turns into an OAuthError."""
        try:
            body = response.json()
        except ValueError:
            return False
        return isinstance(body, dict) and "error" in body

    def _renew(self) -> str:
        """Request a token (caller holds the lock)."""
        where = describe_call(self.partner, self.connection_id, "POST", self._token_path)
        common: dict[str, Any] = dict(
            partner=self.partner, connection_id=self.connection_id, method="POST", path=self._token_path
        )
        started = self._clock()
        self.token_requests += 1
        try:
            if self._refresh_token is not None:
                token = self._client.refresh_token(
                    self.token_url,
                    refresh_token=self._refresh_token,
                    body=urlencode(self._params),
                    headers=dict(self._headers),
                )
            else:
                token = self._client.fetch_token(
                    self.token_url,
                    grant_type="client_credentials",
                    body=urlencode(self._params),
                    headers=dict(self._headers),
                )
        except PartnerError:
            raise
        except OAuthError as exc:
            code = str(exc.error or "oauth_error")
            description = redact(str(getattr(exc, "description", "") or ""), self._secrets())[:200]
            detail = f"{code}: {description}" if description else code
            if code in REFUSAL_ERRORS:
                raise AuthenticationFailed(
                    f"{where}: the token endpoint refused the credentials ({detail}); {self._fix_hint(code)}",
                    **common,
                ) from None
            raise PartnerUnavailable(
                f"{where}: the token endpoint answered {detail}; try again later", **common
            ) from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            if status in (400, 401, 403):
                raise AuthenticationFailed(
                    f"{where}: the token endpoint refused the credentials (HTTP {status}); "
                    f"{self._fix_hint('invalid_client')}",
                    status_code=status,
                    **common,
                ) from None
            raise AuthenticationFailed(
                f"{where}: the token endpoint answered HTTP {status}; check the connector's token_url",
                status_code=status,
                **common,
            ) from None
        except httpx.TimeoutException:
            raise PartnerUnavailable(
                f"{where}: the token endpoint timed out; try again later", **common
            ) from None
        except httpx.TransportError as exc:
            raise PartnerUnavailable(
                f"{where}: cannot reach the token endpoint ({type(exc).__name__}); try again later", **common
            ) from None
        except ValueError:
            raise MalformedResponse(
                f"{where}: the token endpoint's answer is not a JSON object; check the connector's token_url",
                **common,
            ) from None
        access_token = token.get("access_token") if isinstance(token, Mapping) else None
        if not access_token:
            raise MalformedResponse(f"{where}: the token endpoint's answer has no access_token", **common)
        if self._refresh_token is not None and token.get("refresh_token"):
            self._refresh_token = str(token["refresh_token"])  # the partner may rotate it
        renew_at = self._renew_at(token, started)
        self._cached = (str(access_token), renew_at)
        if self._on_token is not None:
            self._on_token(dict(token))
        return str(access_token)

    def _renew_at(self, token: Mapping[str, Any], obtained_at: float) -> float:
        expires_at: float | None = None
        try:
            if token.get("expires_in") is not None:
                expires_at = obtained_at + float(token["expires_in"])
            elif token.get("expires_at") is not None:
                expires_at = float(token["expires_at"])
        except (TypeError, ValueError):
            expires_at = None
        if expires_at is None:
            expires_at = obtained_at + DEFAULT_TOKEN_LIFETIME
        lifetime = max(0.0, expires_at - obtained_at)
        margin = min(float(self.spec.expiry_margin_seconds), lifetime / 2)
        return expires_at - margin

    def _fix_hint(self, code: str) -> str:
        if code == "invalid_grant" and self._refresh_token is not None:
            return (
                "the refresh token was revoked, expired or already used: re-authorise the connection "
                "and store the new refresh_token"
            )
        if code == "invalid_scope":
            return "check the connector's scope"
        return "check the client id and secret stored for this connection (they may be wrong or revoked)"


class TokenAuth(httpx.Auth):
    """Bearer-token auth backed by a :class:`TokenManager`; on a 401 it renews the token and retries once.

    Synchronous only (the token manager blocks on a lock and on the token request).
    """

    requires_request_body = True  # the request may be sent twice

    def __init__(self, manager: TokenManager) -> None:
        self.manager = manager

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        token = self.manager.get_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        # the partner no longer accepts this token (revoked, clock skew, key roll-over): renew once
        self.manager.invalidate(token)
        request.headers["Authorization"] = f"Bearer {self.manager.get_token()}"
        yield request  # a second 401 goes back to the caller

    async def async_auth_flow(self, request: httpx.Request) -> Any:
        raise NotImplementedError("TokenAuth is synchronous; use it with httpx.Client")
        yield request  # pragma: no cover  (makes this an async generator)

    def close(self) -> None:
        """Close the token manager's HTTP client."""
        self.manager.close()


# ---------------------------------------------------------------- factory

AuthSpecType = (
    ApiKeyAuth | BasicAuth | OAuth2ClientCredentials | OAuth2RefreshToken | HmacSignatureAuth | NoAuth
)


def build_auth(
    spec: AuthSpecType,
    credentials: Mapping[str, str],
    *,
    base_url: str,
    transport: httpx.BaseTransport | None = None,
    on_token: Callable[[dict], None] | None = None,
    clock: Callable[[], float] = time.time,
    timeout: float = 30.0,
    partner: str = "",
    connection_id: str = "",
) -> httpx.Auth | None:
    """The ``httpx.Auth`` for a connector's auth block and a connection's decrypted credentials.

    `transport` is used for OAuth token requests (pass the partner client's transport in
    tests); `on_token` receives each new OAuth token dict; `clock` drives OAuth expiry and HMAC
    timestamps. `partner` and `connection_id` only label error messages. A missing credential
    raises :class:`AuthenticationFailed` naming it (never showing any value).
    """
    kind = spec.kind
    if isinstance(spec, NoAuth):
        return None
    if isinstance(spec, ApiKeyAuth):
        values = {
            where: _credential(credentials, name, kind, partner, connection_id)
            for where, name in spec.keys.items()
        }
        return ApiKeyAuthFlow(spec.location, values)
    if isinstance(spec, BasicAuth):
        return httpx.BasicAuth(
            _credential(credentials, spec.username, kind, partner, connection_id),
            _credential(credentials, spec.password, kind, partner, connection_id),
        )
    if isinstance(spec, HmacSignatureAuth):
        return HmacAuth(
            spec,
            _credential(credentials, spec.key_id, kind, partner, connection_id),
            _credential(credentials, spec.secret, kind, partner, connection_id),
            clock=clock,
        )
    if isinstance(spec, OAuth2ClientCredentials | OAuth2RefreshToken):
        manager = TokenManager(
            spec,
            credentials,
            base_url=base_url,
            transport=transport,
            on_token=on_token,
            clock=clock,
            timeout=timeout,
            partner=partner,
            connection_id=connection_id,
        )
        return TokenAuth(manager)
    raise TypeError(f"unknown auth kind {kind!r}")


__all__ = [
    "ApiKeyAuthFlow",
    "HmacAuth",
    "TokenAuth",
    "TokenManager",
    "build_auth",
    "hmac_signature",
    "join_url",
    "verify_hmac_request",
]

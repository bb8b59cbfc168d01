"""The HTTP client for one connection: auth, rate limit, retries with backoff, circuit breaker.

Retries are tenacity's, the breaker is pybreaker's, the budget is :class:`RateLimiter`. What
this module decides is *which* outcomes are worth retrying (connection errors, timeouts, 429,
5xx), how long to wait (the partner's stated wait on 429/503, else exponential backoff with
jitter) and what a final failure means (:mod:`integration_pipelines.resources.errors`).
Any other response -- 2xx, 3xx, a 4xx other than 401/403 -- goes back to the caller as is.
"""

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pybreaker
import tenacity

from integration_pipelines.connectors.spec import RateLimit, RetryPolicy
from integration_pipelines.resources.errors import (
    AuthenticationFailed,
    PartnerError,
    PartnerUnavailable,
    RateLimited,
    describe_call,
)
from integration_pipelines.resources.rate_limit import RateLimiter, parse_wait_header

log = logging.getLogger("integration_pipelines.http")

# network trouble worth another attempt; other transport errors (bad URL, proxy) are configuration
RETRYABLE_EXCEPTIONS: tuple[type[Exception], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)
STATS_KEYS = ("requests", "retries", "rate_limited", "server_errors", "timeouts", "auth_retries")


class _Call:
    """One `request()` across its attempts."""

    __slots__ = ("method", "path", "attempt", "stated_wait", "first")

    def __init__(self, method: str, path: str, first: httpx.Request | None) -> None:
        self.method = method
        self.path = path
        self.attempt = 0
        self.stated_wait: float | None = None
        self.first = first


class _Exhausted:
    """Returned by tenacity when the last attempt still failed."""

    def __init__(self, state: tenacity.RetryCallState) -> None:
        self.state = state


class PartnerClient:
    """One connection's HTTP client: authenticated, rate limited, retried and circuit-broken.

    Share `breaker` (and `limiter`) between clients of the same connection so that their
    failures and budget are counted together. Tests inject `transport`, `sleep` and `clock`
    (the rate limiter's clock; have the fake `sleep` advance it) so nothing really waits.
    """

    def __init__(
        self,
        *,
        partner: str,
        connection_id: str,
        base_url: str,
        auth: httpx.Auth | None,
        headers: Mapping[str, str] | None = None,
        rate_limit: RateLimit | None = None,
        retry: RetryPolicy = RetryPolicy(),
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        breaker: pybreaker.CircuitBreaker | None = None,
        limiter: RateLimiter | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.partner = partner
        self.connection_id = connection_id
        self.retry = retry
        self.rate_limit = rate_limit
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=base_url,
            timeout=retry.timeout_seconds,
            transport=transport,
            auth=auth,
            headers=dict(headers) if headers else None,
        )
        self.breaker = (
            breaker if breaker is not None else self.make_breaker(retry, name=f"{partner}:{connection_id}")
        )
        if limiter is None and rate_limit is not None:
            limiter = RateLimiter.from_spec(rate_limit, clock=clock, sleep=sleep)
        self.limiter = limiter
        if rate_limit is not None:
            self._wait_headers = [h for h in (rate_limit.retry_after_header, rate_limit.reset_header) if h]
        else:
            self._wait_headers = ["Retry-After"]
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=retry.initial_backoff_seconds,
            max=retry.max_backoff_seconds,
            jitter=retry.initial_backoff_seconds,
        )
        self._stats_lock = threading.Lock()
        self._stats: dict[str, float] = {key: 0 for key in STATS_KEYS}
        self._stats["waited_seconds"] = 0.0

    # ------------------------------------------------------------------ public

    @staticmethod
    def make_breaker(retry: RetryPolicy, name: str | None = None) -> pybreaker.CircuitBreaker:
        """A circuit breaker for one connection, to share between its clients."""
        return pybreaker.CircuitBreaker(
            fail_max=retry.breaker_failures,
            reset_timeout=retry.breaker_reset_seconds,
            throw_new_error_on_trip=False,
            name=name,
        )

    @property
    def breaker_state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``, as pybreaker reports it.

        An open breaker turns half-open on the first call after `breaker_reset_seconds`."""
        return self.breaker.current_state

    @property
    def stats(self) -> dict[str, float]:
        """Counters since the client was made.

        ``requests`` counts attempts (the auth flow's own resend after a 401 is in
        ``auth_retries`` instead); ``rate_limited`` and ``server_errors`` count 429 and 5xx
        answers; ``waited_seconds`` adds rate-limiter waits and retry sleeps.
        """
        with self._stats_lock:
            return dict(self._stats)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        json: Any = None,
        data: Any = None,
        content: Any = None,
        files: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a request, retrying transient failures; raise a PartnerError when it cannot succeed.

        Returns 2xx/3xx/4xx (except 401/403) responses unchanged. Raises
        :class:`AuthenticationFailed` on 401/403, :class:`RateLimited` or
        :class:`PartnerUnavailable` when retries run out, and ``PartnerUnavailable(breaker_open=True)``
        without calling the partner while the circuit breaker is open.
        """
        method = method.upper()

        def build() -> httpx.Request:
            return self._client.build_request(
                method,
                url,
                params=params,
                json=json,
                data=data,
                content=content,
                files=files,
                headers=headers,
            )

        first = build()
        call = _Call(method, first.url.path, first)
        deferred: Exception | None = None
        response: httpx.Response | None = None
        try:
            with self.breaker.calling():
                try:
                    response = self._with_retries(call, build)
                except PartnerError as exc:
                    self._label(exc)
                    if exc.is_transient:
                        raise  # one failed call for the breaker
                    deferred = exc  # the partner answered: not a health problem
                except Exception as exc:
                    deferred = exc
        except pybreaker.CircuitBreakerError as exc:
            if isinstance(exc.__context__, PartnerError):  # the failure that tripped a shared breaker
                raise exc.__context__ from None
            raise self._breaker_open(call) from None
        if deferred is not None:
            raise deferred
        assert response is not None
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """`request("GET", ...)`."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """`request("POST", ...)`."""
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        """Close the HTTP connections (the auth object belongs to the caller)."""
        self._client.close()

    def __enter__(self) -> "PartnerClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ retries

    def _with_retries(self, call: _Call, build: Callable[[], httpx.Request]) -> httpx.Response:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry.max_attempts),
            wait=lambda state: self._wait(call, state),
            retry=tenacity.retry_if_exception(self._retryable_exception)
            | tenacity.retry_if_result(self._retryable_response),
            before=lambda state: self._before_attempt(call, state),
            before_sleep=lambda state: self._before_sleep(call, state),
            sleep=self._do_sleep,
            retry_error_callback=_Exhausted,
        )
        result = retrying(self._attempt, call, build)
        if isinstance(result, _Exhausted):
            raise self._exhausted(call, result.state)
        response: httpx.Response = result
        if response.status_code in (401, 403):
            raise self._auth_failed(call, response)
        return response

    def _before_attempt(self, call: _Call, state: tenacity.RetryCallState) -> None:
        call.attempt = state.attempt_number
        if self.breaker.current_state == pybreaker.STATE_OPEN:  # another caller tripped it meanwhile
            raise self._breaker_open(call)
        if self.limiter is not None:
            waited = self.limiter.acquire()
            if waited:
                self._count("waited_seconds", waited)

    def _attempt(self, call: _Call, build: Callable[[], httpx.Request]) -> httpx.Response:
        request = call.first if call.first is not None else build()
        call.first = None  # later attempts get a fresh request (the auth flow may have changed this one)
        self._count("requests")
        try:
            response = self._client.send(request)
        except httpx.TimeoutException:
            self._count("timeouts")
            self._debug(call, "timeout")
            raise
        except httpx.TransportError as exc:
            self._debug(call, type(exc).__name__)
            raise
        auth_retries = sum(1 for r in response.history if r.status_code == 401)
        if auth_retries:
            self._count("auth_retries", auth_retries)
        if response.status_code == 429:
            self._count("rate_limited")
        elif response.status_code >= 500:
            self._count("server_errors")
        self._debug(call, str(response.status_code))
        return response

    @staticmethod
    def _retryable_exception(exc: BaseException) -> bool:
        if isinstance(exc, PartnerUnavailable) and exc.breaker_open:
            return False
        if isinstance(exc, PartnerError):  # from the OAuth token endpoint
            return exc.is_transient
        return isinstance(exc, RETRYABLE_EXCEPTIONS)

    @staticmethod
    def _retryable_response(response: httpx.Response) -> bool:
        return response.status_code == 429 or response.status_code >= 500

    def _wait(self, call: _Call, state: tenacity.RetryCallState) -> float:
        """The partner's stated wait on 429/503 (capped), else exponential backoff with jitter."""
        call.stated_wait = None
        outcome = state.outcome
        stated: float | None = None
        if outcome is not None and outcome.failed:
            exc = outcome.exception()
            if isinstance(exc, RateLimited):
                stated = exc.retry_after
        elif outcome is not None:
            response = outcome.result()
            if response.status_code in (429, 503):
                stated = self._stated_wait(response)
        if stated is not None:
            call.stated_wait = min(stated, self.retry.max_backoff_seconds)
            return call.stated_wait
        return float(self._backoff(state))

    def _stated_wait(self, response: httpx.Response) -> float | None:
        waits = [parse_wait_header(response.headers.get(name)) for name in self._wait_headers]
        known = [w for w in waits if w is not None]
        return max(known) if known else None

    def _before_sleep(self, call: _Call, state: tenacity.RetryCallState) -> None:
        wait = state.next_action.sleep if state.next_action else 0.0
        self._count("retries")
        if call.stated_wait is not None and self.limiter is not None:
            self.limiter.pause_for(call.stated_wait)  # the partner's wait applies to every caller
        log.warning(
            "partner=%s connection=%s %s %s -> %s; retry %d/%d in %.2fs%s",
            self.partner,
            self.connection_id,
            call.method,
            call.path,
            self._outcome_label(state),
            state.attempt_number,
            self.retry.max_attempts - 1,
            wait,
            " (wait stated by the partner)" if call.stated_wait is not None else "",
        )

    def _do_sleep(self, seconds: float) -> None:
        seconds = float(seconds)
        self._sleep(seconds)
        self._count("waited_seconds", seconds)

    # ------------------------------------------------------------------ errors

    def _where(self, call: _Call) -> str:
        return describe_call(self.partner, self.connection_id, call.method, call.path)

    def _common(self, call: _Call, status: int | None = None) -> dict[str, Any]:
        return dict(
            partner=self.partner,
            connection_id=self.connection_id,
            status_code=status,
            method=call.method,
            path=call.path,
        )

    def _label(self, exc: PartnerError) -> None:
        """Fill in partner/connection on errors raised below us (the token endpoint)."""
        if not exc.partner:
            exc.partner = self.partner
        if not exc.connection_id:
            exc.connection_id = self.connection_id

    def _exhausted(self, call: _Call, state: tenacity.RetryCallState) -> Exception:
        outcome = state.outcome
        assert outcome is not None
        attempts = state.attempt_number
        where = self._where(call)
        if outcome.failed:
            exc = outcome.exception()
            if isinstance(exc, PartnerError):
                return exc
            if isinstance(exc, httpx.TimeoutException):
                error = PartnerUnavailable(
                    f"{where}: timed out ({self.retry.timeout_seconds:g}s) on all {attempts} attempts; "
                    "the partner is slow or down -- try again later, "
                    "or raise retry.timeout_seconds in the connector",
                    **self._common(call),
                )
            else:
                error = PartnerUnavailable(
                    f"{where}: could not reach the partner ({type(exc).__name__}) in {attempts} attempts; "
                    "check the partner's status page and the connector's base_url",
                    **self._common(call),
                )
            error.__cause__ = exc
            return error
        response: httpx.Response = outcome.result()
        status = response.status_code
        if status == 429:
            if call.stated_wait is not None and self.limiter is not None:
                self.limiter.pause_for(call.stated_wait)
            hint = f"the partner asks to wait {call.stated_wait:g}s; " if call.stated_wait is not None else ""
            return RateLimited(
                f"{where}: still rate limited (HTTP 429) after {attempts} attempts; {hint}re-run later, "
                "or lower rate_limit.requests in the connector if this keeps happening",
                retry_after=call.stated_wait,
                **self._common(call, status),
            )
        return PartnerUnavailable(
            f"{where}: the partner kept failing (HTTP {status}) for {attempts} attempts; it is having "
            "problems -- try again later",
            **self._common(call, status),
        )

    def _auth_failed(self, call: _Call, response: httpx.Response) -> AuthenticationFailed:
        status = response.status_code
        renewed = any(r.status_code == 401 for r in response.history)
        return AuthenticationFailed(
            f"{self._where(call)}: the partner refused the credentials (HTTP {status})"
            f"{' even with a freshly issued token' if renewed else ''}; check the credentials stored for "
            "this connection -- they may be wrong, expired, revoked or lack permission for this endpoint",
            **self._common(call, status),
        )

    def _breaker_open(self, call: _Call) -> PartnerUnavailable:
        return PartnerUnavailable(
            f"{self._where(call)}: not called -- the circuit breaker is open after "
            f"{self.breaker.fail_max} failed calls in a row; calls resume after "
            f"{self.breaker.reset_timeout:g}s, check the partner's status meanwhile",
            breaker_open=True,
            **self._common(call),
        )

    # ------------------------------------------------------------------ bookkeeping

    def _count(self, key: str, amount: float = 1) -> None:
        with self._stats_lock:
            self._stats[key] += amount

    def _debug(self, call: _Call, outcome: str) -> None:
        log.debug(
            "partner=%s connection=%s %s %s -> %s (attempt %d/%d)",
            self.partner,
            self.connection_id,
            call.method,
            call.path,
            outcome,
            call.attempt,
            self.retry.max_attempts,
        )

    @staticmethod
    def _outcome_label(state: tenacity.RetryCallState) -> str:
        outcome = state.outcome
        if outcome is None:
            return "?"
        if outcome.failed:
            exc = outcome.exception()
            if isinstance(exc, httpx.TimeoutException):
                return "timeout"
            if isinstance(exc, PartnerError):
                return f"{type(exc).__name__} ({exc.status_code or 'no status'})"
            return type(exc).__name__
        return str(outcome.result().status_code)


__all__ = ["PartnerClient", "RETRYABLE_EXCEPTIONS", "STATS_KEYS"]

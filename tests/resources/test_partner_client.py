import base64
import email.utils
import logging

import httpx
import pybreaker
import pytest

from integration_pipelines.connectors.spec import (
    ApiKeyAuth,
    OAuth2ClientCredentials,
    RateLimit,
    RetryPolicy,
)
from integration_pipelines.resources.auth import build_auth
from integration_pipelines.resources.errors import (
    AuthenticationFailed,
    PartnerUnavailable,
    RateLimited,
)
from integration_pipelines.resources.partner_client import PartnerClient
from integration_pipelines.resources.rate_limit import RateLimiter

from .fakes import FakeClock, Recorder, script, token_response

BASE = "https://partner.example/api"
API_KEY = "live-key-Q9w8e7"


def make_client(recorder: Recorder, clock: FakeClock, **kwargs: object) -> PartnerClient:
    options: dict[str, object] = dict(
        partner="acme",
        connection_id="conn-1",
        base_url=BASE,
        auth=None,
        retry=RetryPolicy(max_attempts=4, initial_backoff_seconds=1, max_backoff_seconds=30),
        transport=recorder.transport,
        sleep=clock.sleep,
        clock=clock,
    )
    options.update(kwargs)
    return PartnerClient(**options)  # type: ignore[arg-type]


def ok(**headers: str) -> httpx.Response:
    return httpx.Response(200, json={"items": []}, headers=headers)


# ---------------------------------------------------------------- partner-stated waits


def test_429_waits_retry_after_then_succeeds(clock: FakeClock) -> None:
    recorder = Recorder(script(httpx.Response(429, headers={"Retry-After": "7"}), ok()))
    client = make_client(recorder, clock)
    response = client.request("GET", "/jobs", params={"page": "1"})
    assert response.status_code == 200
    assert clock.sleeps == [7.0]
    assert len(recorder.requests) == 2
    stats = client.stats
    assert (stats["requests"], stats["retries"], stats["rate_limited"], stats["waited_seconds"]) == (
        2,
        1,
        1,
        7.0,
    )


def test_retry_after_http_date(clock: FakeClock) -> None:
    when = email.utils.formatdate(__import__("time").time() + 20, usegmt=True)
    recorder = Recorder(script(httpx.Response(503, headers={"Retry-After": when}), ok()))
    make_client(recorder, clock).request("GET", "/jobs")
    assert len(clock.sleeps) == 1 and 18 <= clock.sleeps[0] <= 20


def test_reset_header_honoured_and_longest_stated_wait_wins(clock: FakeClock) -> None:
    rate_limit = RateLimit(requests=100, per="second", reset_header="X-Rate-Limit-Reset")
    recorder = Recorder(
        script(
            httpx.Response(429, headers={"X-Rate-Limit-Reset": "12"}),
            httpx.Response(429, headers={"X-Rate-Limit-Reset": "3", "Retry-After": "5"}),
            ok(),
        )
    )
    client = make_client(recorder, clock, rate_limit=rate_limit)
    assert client.request("GET", "/jobs").status_code == 200
    assert clock.sleeps == [12.0, 5.0]  # no extra limiter sleeps: the pause had passed


def test_stated_wait_capped_and_pauses_other_callers(clock: FakeClock) -> None:
    limiter = RateLimiter(100, "second", clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(max_attempts=2, initial_backoff_seconds=1, max_backoff_seconds=30)
    recorder = Recorder(script(httpx.Response(429, headers={"Retry-After": "600"}), ok()))
    client = make_client(recorder, clock, retry=retry, limiter=limiter)
    client.request("GET", "/jobs")
    assert clock.sleeps == [30.0]
    assert limiter.paused_until == pytest.approx(1000.0 + 30.0)


def test_rate_limited_when_429_persists(clock: FakeClock) -> None:
    recorder = Recorder(script(httpx.Response(429, headers={"Retry-After": "2"})))
    client = make_client(recorder, clock)
    with pytest.raises(RateLimited) as err:
        client.request("GET", "/jobs")
    assert (err.value.status_code, err.value.retry_after, err.value.failure_type) == (
        429,
        2.0,
        "transient_error",
    )
    assert len(recorder.requests) == 4
    assert clock.sleeps == [2.0, 2.0, 2.0]
    assert str(err.value).startswith("acme (connection conn-1): GET /api/jobs: still rate limited (HTTP 429)")


# ---------------------------------------------------------------- backoff


def test_5xx_backoff_grows_is_bounded_then_partner_unavailable(clock: FakeClock) -> None:
    retry = RetryPolicy(max_attempts=6, initial_backoff_seconds=1, max_backoff_seconds=5)
    recorder = Recorder(script(httpx.Response(500)))
    client = make_client(recorder, clock, retry=retry)
    with pytest.raises(PartnerUnavailable) as err:
        client.request("POST", "/candidates", json={"name": "Ada"})
    assert err.value.status_code == 500 and not err.value.breaker_open
    assert len(recorder.requests) == 6
    sleeps = clock.sleeps
    assert len(sleeps) == 5
    assert 1 <= sleeps[0] <= 2 and 2 <= sleeps[1] <= 3 and 4 <= sleeps[2] <= 5
    assert sleeps[3] == sleeps[4] == 5  # capped
    assert sleeps == sorted(sleeps)
    assert client.stats["server_errors"] == 6


def test_503_without_stated_wait_uses_backoff(clock: FakeClock) -> None:
    recorder = Recorder(script(httpx.Response(503), ok()))
    make_client(recorder, clock).request("GET", "/jobs")
    assert len(clock.sleeps) == 1 and 1 <= clock.sleeps[0] <= 2


def test_timeouts_are_retried(clock: FakeClock) -> None:
    recorder = Recorder(script(httpx.ReadTimeout("timed out"), httpx.ConnectError("refused"), ok()))
    client = make_client(recorder, clock)
    assert client.request("GET", "/jobs").status_code == 200
    assert client.stats["timeouts"] == 1 and client.stats["retries"] == 2


def test_connection_errors_exhausted(clock: FakeClock) -> None:
    recorder = Recorder(script(httpx.ConnectError("refused")))
    with pytest.raises(PartnerUnavailable) as err:
        make_client(recorder, clock).request("GET", "/jobs")
    assert err.value.status_code is None
    assert "ConnectError" in str(err.value) and "4 attempts" in str(err.value)
    assert isinstance(err.value.__cause__, httpx.ConnectError)


def test_timeouts_exhausted(clock: FakeClock) -> None:
    recorder = Recorder(script(httpx.ReadTimeout("timed out")))
    client = make_client(recorder, clock)
    with pytest.raises(PartnerUnavailable) as err:
        client.request("GET", "/jobs")
    assert "timed out (30s) on all 4 attempts" in str(err.value)
    assert client.stats["timeouts"] == 4


# ---------------------------------------------------------------- what is returned, what is raised


@pytest.mark.parametrize("status", [200, 201, 204, 302, 400, 404, 409, 422])
def test_other_responses_returned_unchanged_without_retry(status: int, clock: FakeClock) -> None:
    recorder = Recorder(script(httpx.Response(status, json={"s": status})))
    response = make_client(recorder, clock).request("GET", "/jobs/1")
    assert response.status_code == status
    assert len(recorder.requests) == 1 and clock.sleeps == []


@pytest.mark.parametrize("status", [401, 403])
def test_401_403_raise_authentication_failed(status: int, clock: FakeClock) -> None:
    recorder = Recorder(script(httpx.Response(status)))
    with pytest.raises(AuthenticationFailed) as err:
        make_client(recorder, clock).request("GET", "/jobs")
    assert err.value.status_code == status and err.value.failure_type == "config_error"
    assert len(recorder.requests) == 1


def test_oauth_401_retried_once_by_auth_flow_and_counted(clock: FakeClock) -> None:
    tokens = script(token_response("tok-A"), token_response("tok-B"))

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return tokens(request)
        if request.headers["Authorization"] == "Bearer tok-A":
            return httpx.Response(401)
        return ok()

    recorder = Recorder(respond)
    spec = OAuth2ClientCredentials(kind="oauth2_client_credentials", token_url="/token")
    auth = build_auth(
        spec,
        {"client_id": "c", "client_secret": "s"},
        base_url=BASE,
        transport=recorder.transport,
        clock=clock,
    )
    client = make_client(recorder, clock, auth=auth)
    assert client.request("GET", "/jobs").status_code == 200
    assert client.stats["auth_retries"] == 1
    assert client.stats["requests"] == 1  # one attempt from the retry policy's point of view


def test_token_endpoint_outage_is_retried_then_breaker_counts_it(clock: FakeClock) -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return httpx.Response(502)
        return ok()

    recorder = Recorder(respond)
    spec = OAuth2ClientCredentials(kind="oauth2_client_credentials", token_url="/token")
    auth = build_auth(
        spec,
        {"client_id": "c", "client_secret": "s"},
        base_url=BASE,
        transport=recorder.transport,
        clock=clock,
    )
    client = make_client(recorder, clock, auth=auth)
    with pytest.raises(PartnerUnavailable) as err:
        client.request("GET", "/jobs")
    assert err.value.partner == "acme" and err.value.connection_id == "conn-1"  # labelled by the client
    assert len(recorder.requests) == 4
    assert client.breaker.fail_counter == 1


# ---------------------------------------------------------------- circuit breaker


def test_breaker_opens_after_n_failed_calls_then_skips_the_partner(clock: FakeClock) -> None:
    retry = RetryPolicy(
        max_attempts=2, initial_backoff_seconds=0, breaker_failures=3, breaker_reset_seconds=60
    )
    recorder = Recorder(script(httpx.Response(503)))
    client = make_client(recorder, clock, retry=retry)
    for _ in range(3):
        with pytest.raises(PartnerUnavailable) as err:
            client.request("GET", "/jobs")
        assert not err.value.breaker_open and err.value.status_code == 503
    assert client.breaker_state == "open"
    assert len(recorder.requests) == 6

    with pytest.raises(PartnerUnavailable) as err:
        client.request("GET", "/jobs")
    assert err.value.breaker_open
    assert len(recorder.requests) == 6  # the partner was not called
    assert "circuit breaker is open after 3 failed calls" in str(err.value)


def test_success_resets_the_failure_count_and_4xx_do_not_count(clock: FakeClock) -> None:
    retry = RetryPolicy(max_attempts=1, breaker_failures=2)
    recorder = Recorder(
        script(
            httpx.Response(500),
            ok(),
            httpx.Response(500),
            httpx.Response(404),
            httpx.Response(401),
            httpx.Response(500),
        )
    )
    client = make_client(recorder, clock, retry=retry)
    with pytest.raises(PartnerUnavailable):
        client.request("GET", "/a")
    assert client.breaker.fail_counter == 1
    client.request("GET", "/a")
    assert client.breaker.fail_counter == 0
    with pytest.raises(PartnerUnavailable):
        client.request("GET", "/a")
    assert client.request("GET", "/a").status_code == 404
    with pytest.raises(AuthenticationFailed):
        client.request("GET", "/a")
    with pytest.raises(PartnerUnavailable):
        client.request("GET", "/a")
    assert client.breaker_state == "closed"


def test_shared_breaker_across_clients_and_half_open_trial(clock: FakeClock) -> None:
    retry = RetryPolicy(max_attempts=1, breaker_failures=1, breaker_reset_seconds=60)
    breaker = PartnerClient.make_breaker(retry)
    failing = Recorder(script(httpx.Response(500)))
    healthy = Recorder(script(ok()))
    first = make_client(failing, clock, retry=retry, breaker=breaker)
    second = make_client(healthy, clock, retry=retry, breaker=breaker)
    with pytest.raises(PartnerUnavailable):
        first.request("GET", "/a")
    with pytest.raises(PartnerUnavailable) as err:
        second.request("GET", "/a")
    assert err.value.breaker_open and healthy.requests == []
    assert second.breaker_state == "open"

    breaker.half_open()  # what pybreaker does once reset_seconds have passed
    assert second.breaker_state == "half-open"
    assert second.request("GET", "/a").status_code == 200
    assert first.breaker_state == "closed"


def test_caller_supplied_breaker_that_raises_on_trip(clock: FakeClock) -> None:
    breaker = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=60)  # throw_new_error_on_trip=True
    recorder = Recorder(script(httpx.Response(500)))
    client = make_client(recorder, clock, retry=RetryPolicy(max_attempts=1), breaker=breaker)
    with pytest.raises(PartnerUnavailable) as err:
        client.request("GET", "/a")
    assert err.value.status_code == 500  # the real failure, not pybreaker's error
    with pytest.raises(PartnerUnavailable) as err:
        client.request("GET", "/a")
    assert err.value.breaker_open


# ---------------------------------------------------------------- rate limiter


def test_rate_limit_spaces_calls(clock: FakeClock) -> None:
    seen: list[float] = []

    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(clock())
        return ok()

    client = make_client(Recorder(respond), clock, rate_limit=RateLimit(requests=120, per="minute"))
    for _ in range(3):
        client.request("GET", "/jobs")
    assert seen == [1000.0, 1000.5, 1001.0]
    assert client.stats["waited_seconds"] == pytest.approx(1.0)


# ---------------------------------------------------------------- nothing secret leaks


def test_no_secret_or_query_string_in_errors_or_logs(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    spec = ApiKeyAuth(kind="api_key", location="query", keys={"api_key": "key"})
    auth = build_auth(spec, {"key": API_KEY}, base_url=BASE)
    recorder = Recorder(
        script(httpx.Response(429), httpx.Response(502), httpx.ReadTimeout("timed out"), httpx.Response(503))
    )
    client = make_client(recorder, clock, auth=auth, headers={"X-Tenant": "tenant-secret-header"})
    caplog.set_level(logging.DEBUG, logger="integration_pipelines.http")
    with pytest.raises(PartnerUnavailable) as err:
        client.request(
            "POST",
            "/search?email=ada%40example.com",
            params={"ssn": "123-45-6789"},
            json={"password": "body-secret"},
        )
    assert API_KEY in str(recorder.requests[0].url)  # the key really was sent

    texts = [str(err.value), repr(err.value)] + [r.getMessage() for r in caplog.records]
    forbidden = [
        API_KEY,
        base64.b64encode(API_KEY.encode()).decode(),
        "ada",
        "email=",
        "ssn",
        "123-45-6789",
        "body-secret",
        "tenant-secret-header",
        "?",
    ]
    for text in texts:
        for needle in forbidden:
            assert needle not in text, (needle, text)

    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(debug) == 4 and len(warnings) == 3
    assert debug[0].getMessage() == "partner=acme connection=conn-1 POST /api/search -> 429 (attempt 1/4)"
    assert (
        warnings[1]
        .getMessage()
        .startswith("partner=acme connection=conn-1 POST /api/search -> 502; retry 2/3 in")
    )


def test_context_manager_closes(clock: FakeClock) -> None:
    recorder = Recorder(script(ok()))
    with make_client(recorder, clock) as client:
        client.request("GET", "/jobs")
    with pytest.raises(RuntimeError):
        client.request("GET", "/jobs")

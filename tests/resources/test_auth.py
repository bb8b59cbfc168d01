import base64
import threading
import time

import httpx
import pytest

from integration_pipelines.connectors.spec import (
    ApiKeyAuth,
    BasicAuth,
    HmacSignatureAuth,
    NoAuth,
    OAuth2ClientCredentials,
    OAuth2RefreshToken,
)
from integration_pipelines.resources.auth import (
    TokenAuth,
    build_auth,
    join_url,
    verify_hmac_request,
)
from integration_pipelines.resources.errors import AuthenticationFailed, MalformedResponse, PartnerUnavailable

from .fakes import FakeClock, Recorder, body_json, form, script, token_response

BASE = "https://partner.example/api"
CREDS = {"client_id": "cid-1", "client_secret": "csecret-XYZ", "application_key": "appkey-42"}


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


def client_for(auth: httpx.Auth | None, recorder: Recorder) -> httpx.Client:
    return httpx.Client(base_url=BASE, auth=auth, transport=recorder.transport)


# ---------------------------------------------------------------- templates and urls


def test_join_url() -> None:
    assert join_url("http://h/api", "/oauth2/v2.0/token") == "http://h/api/oauth2/v2.0/token"
    assert join_url("http://h/api/", "oauth/token") == "http://h/api/oauth/token"
    assert join_url("http://h/api", "https://login.example/t") == "https://login.example/t"


# ---------------------------------------------------------------- api key / basic / none


def test_none_auth_is_none() -> None:
    assert build_auth(NoAuth(kind="none"), {}, base_url=BASE) is None


def test_api_key_in_header() -> None:
    spec = ApiKeyAuth(
        kind="api_key", location="header", keys={"X-Api-Key": "api_key", "X-Account": "account"}
    )
    auth = build_auth(spec, {"api_key": "k-1", "account": "acc"}, base_url=BASE)
    recorder = Recorder(ok)
    client_for(auth, recorder).get("/jobs")
    assert recorder.requests[0].headers["X-Api-Key"] == "k-1"
    assert recorder.requests[0].headers["X-Account"] == "acc"


def test_api_key_in_query_keeps_other_params() -> None:
    spec = ApiKeyAuth(kind="api_key", location="query", keys={"apikey": "api_key"})
    auth = build_auth(spec, {"api_key": "k-1"}, base_url=BASE)
    recorder = Recorder(ok)
    client_for(auth, recorder).get("/jobs", params={"page": "2"})
    assert dict(recorder.requests[0].url.params) == {"page": "2", "apikey": "k-1"}


def test_api_key_in_json_body_form_body_and_empty_body() -> None:
    spec = ApiKeyAuth(kind="api_key", location="body", keys={"api_key": "api_key"})
    auth = build_auth(spec, {"api_key": "k-1"}, base_url=BASE)
    recorder = Recorder(ok)
    client = client_for(auth, recorder)
    client.post("/search", json={"q": "nurse"})
    client.post("/search", data={"q": "nurse"})
    client.post("/search")
    json_req, form_req, empty_req = recorder.requests
    assert body_json(json_req) == {"q": "nurse", "api_key": "k-1"}
    assert int(json_req.headers["content-length"]) == len(json_req.content)
    assert form(form_req) == {"q": "nurse", "api_key": "k-1"}
    assert body_json(empty_req) == {"api_key": "k-1"}


def test_api_key_body_leaves_multipart_untouched() -> None:
    spec = ApiKeyAuth(kind="api_key", location="body", keys={"api_key": "api_key"})
    auth = build_auth(spec, {"api_key": "k-1"}, base_url=BASE)
    recorder = Recorder(ok)
    client_for(auth, recorder).post("/upload", files={"cv": ("cv.txt", b"hello")}, data={"a": "b"})
    assert b"k-1" not in recorder.requests[0].content
    assert b"hello" in recorder.requests[0].content


def test_basic_auth() -> None:
    auth = build_auth(BasicAuth(kind="basic"), {"username": "u", "password": "pw"}, base_url=BASE)
    recorder = Recorder(ok)
    client_for(auth, recorder).get("/jobs")
    assert recorder.requests[0].headers["Authorization"] == "Basic " + base64.b64encode(b"u:pw").decode()


def test_missing_credential_is_named_not_shown() -> None:
    with pytest.raises(AuthenticationFailed) as err:
        build_auth(
            BasicAuth(kind="basic"), {"username": "u"}, base_url=BASE, partner="acme", connection_id="c1"
        )
    assert "'password'" in str(err.value)
    assert err.value.failure_type == "config_error"


# ---------------------------------------------------------------- hmac


@pytest.mark.parametrize(("algorithm", "encoding"), [("sha256", "hex"), ("sha512", "base64")])
def test_hmac_signature_verifies_and_tampering_fails(algorithm: str, encoding: str, clock: FakeClock) -> None:
    spec = HmacSignatureAuth(kind="hmac", algorithm=algorithm, encoding=encoding)
    auth = build_auth(spec, {"key_id": "kid-7", "secret": "hmac-secret"}, base_url=BASE, clock=clock)
    recorder = Recorder(ok)
    client_for(auth, recorder).post("/candidates", params={"site": "eu"}, json={"name": "Ada"})
    sent = recorder.requests[0]
    assert sent.headers["X-Key-Id"] == "kid-7"
    assert sent.headers["X-Timestamp"] == "1000"
    assert verify_hmac_request(sent, spec, "hmac-secret", key_id="kid-7", now=clock())
    assert not verify_hmac_request(sent, spec, "wrong-secret")
    assert not verify_hmac_request(sent, spec, "hmac-secret", now=clock() + 3600)  # replayed an hour later

    tampered = httpx.Request(sent.method, sent.url, headers=sent.headers, content=b'{"name":"Eve"}')
    assert not verify_hmac_request(tampered, spec, "hmac-secret")
    other_path = httpx.Request(
        sent.method, str(sent.url).replace("site=eu", "site=us"), headers=sent.headers, content=sent.content
    )
    assert not verify_hmac_request(other_path, spec, "hmac-secret")


# ---------------------------------------------------------------- oauth2 client credentials


def oauth_partner(*token_answers: httpx.Response, api: object = None) -> Recorder:
    """A partner whose /oauth2/v2.0/token answers `token_answers` in order and whose API says 200."""
    token_script = script(*token_answers)

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            return token_script(request)
        if callable(api):
            return api(request)
        return httpx.Response(200, json={"auth": request.headers.get("Authorization")})

    return Recorder(respond)


def cc_spec(**overrides: object) -> OAuth2ClientCredentials:
    values: dict[str, object] = {"kind": "oauth2_client_credentials", "token_url": "/oauth2/v2.0/token"}
    values.update(overrides)
    return OAuth2ClientCredentials(**values)  # type: ignore[arg-type]


def token_requests(recorder: Recorder) -> list[httpx.Request]:
    return [r for r in recorder.requests if r.url.path.endswith("/token")]


def test_client_credentials_token_fetched_once_and_reused(clock: FakeClock) -> None:
    recorder = oauth_partner(token_response("tok-A"), token_response("tok-B"))
    spec = cc_spec(
        scope="jobs.read",
        token_params={"resource": "https://api.partner.example"},
        token_headers={"Ocp-Apim-Subscription-Key": "{credentials.application_key}"},
    )
    auth = build_auth(spec, CREDS, base_url=BASE, transport=recorder.transport, clock=clock)
    client = client_for(auth, recorder)
    answers = [client.get(f"/jobs/{i}").json()["auth"] for i in range(3)]
    assert answers == ["Bearer tok-A"] * 3

    (token_request,) = token_requests(recorder)
    assert str(token_request.url) == "https://partner.example/api/oauth2/v2.0/token"  # relative url joined
    assert token_request.method == "POST"
    assert (
        token_request.headers["Authorization"] == "Basic " + base64.b64encode(b"cid-1:csecret-XYZ").decode()
    )
    assert token_request.headers["Ocp-Apim-Subscription-Key"] == "appkey-42"
    assert form(token_request) == {
        "grant_type": "client_credentials",
        "scope": "jobs.read",
        "resource": "https://api.partner.example",
    }


def test_client_credentials_client_auth_in_body_and_absolute_token_url(clock: FakeClock) -> None:
    recorder = oauth_partner(token_response("tok-A"))
    spec = cc_spec(client_auth="body", token_url="https://login.partner.example/tenant/token")
    auth = build_auth(spec, CREDS, base_url=BASE, transport=recorder.transport, clock=clock)
    client_for(auth, recorder).get("/jobs")
    (token_request,) = token_requests(recorder)
    assert str(token_request.url) == "https://login.partner.example/tenant/token"
    assert "Authorization" not in token_request.headers
    assert form(token_request) == {
        "grant_type": "client_credentials",
        "client_id": "cid-1",
        "client_secret": "csecret-XYZ",
    }


def test_token_renewed_margin_seconds_before_expiry(clock: FakeClock) -> None:
    recorder = oauth_partner(
        token_response("tok-A", expires_in=3600), token_response("tok-B", expires_in=3600)
    )
    auth = build_auth(
        cc_spec(expiry_margin_seconds=60), CREDS, base_url=BASE, transport=recorder.transport, clock=clock
    )
    client = client_for(auth, recorder)
    assert client.get("/a").json()["auth"] == "Bearer tok-A"
    clock.advance(3600 - 60 - 1)  # one second before the renewal point
    assert client.get("/b").json()["auth"] == "Bearer tok-A"
    clock.advance(2)
    assert client.get("/c").json()["auth"] == "Bearer tok-B"
    assert len(token_requests(recorder)) == 2


def test_token_without_expiry_assumed_to_last_an_hour(clock: FakeClock) -> None:
    recorder = oauth_partner(token_response("tok-A", expires_in=None), token_response("tok-B"))
    auth = build_auth(cc_spec(), CREDS, base_url=BASE, transport=recorder.transport, clock=clock)
    client = client_for(auth, recorder)
    client.get("/a")
    clock.advance(3500)
    assert client.get("/b").json()["auth"] == "Bearer tok-A"
    clock.advance(60)
    assert client.get("/c").json()["auth"] == "Bearer tok-B"


def test_401_renews_token_once_then_succeeds(clock: FakeClock) -> None:
    def api(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == "Bearer tok-A":
            return httpx.Response(401, json={"error": "token revoked"})
        return httpx.Response(200, json={"auth": request.headers["Authorization"]})

    recorder = oauth_partner(token_response("tok-A"), token_response("tok-B"), api=api)
    auth = build_auth(cc_spec(), CREDS, base_url=BASE, transport=recorder.transport, clock=clock)
    response = client_for(auth, recorder).post("/candidates", json={"name": "Ada"})
    assert response.status_code == 200
    assert response.json() == {"auth": "Bearer tok-B"}
    assert [r.status_code for r in response.history] == [401]
    api_calls = [r for r in recorder.requests if r.url.path.endswith("/candidates")]
    assert [body_json(r) for r in api_calls] == [{"name": "Ada"}, {"name": "Ada"}]  # body replayed
    assert len(token_requests(recorder)) == 2


def test_second_401_goes_back_to_the_caller(clock: FakeClock) -> None:
    recorder = oauth_partner(
        token_response("tok-A"),
        token_response("tok-B"),
        token_response("tok-C"),
        api=lambda request: httpx.Response(401),
    )
    auth = build_auth(cc_spec(), CREDS, base_url=BASE, transport=recorder.transport, clock=clock)
    response = client_for(auth, recorder).get("/jobs")
    assert response.status_code == 401
    assert len([r for r in recorder.requests if r.url.path == "/api/jobs"]) == 2
    assert len(token_requests(recorder)) == 2


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(401, json={"error": "invalid_client", "error_description": "bad secret csecret-XYZ"}),
        httpx.Response(400, json={"error": "invalid_grant"}),
        httpx.Response(401, text="<html>denied</html>"),
    ],
)
def test_refused_credentials_raise_authentication_failed(answer: httpx.Response, clock: FakeClock) -> None:
    recorder = oauth_partner(answer)
    auth = build_auth(
        cc_spec(),
        CREDS,
        base_url=BASE,
        transport=recorder.transport,
        clock=clock,
        partner="acme",
        connection_id="c1",
    )
    with pytest.raises(AuthenticationFailed) as err:
        client_for(auth, recorder).get("/jobs")
    message = str(err.value)
    assert message.startswith("acme (connection c1): POST /api/oauth2/v2.0/token: the token endpoint refused")
    assert "csecret-XYZ" not in message and "cid-1" not in message
    assert err.value.failure_type == "config_error"
    assert not [r for r in recorder.requests if r.url.path == "/api/jobs"]


def test_token_endpoint_down_or_garbled(clock: FakeClock) -> None:
    recorder = oauth_partner(httpx.Response(503, text="maintenance"))
    auth = build_auth(cc_spec(), CREDS, base_url=BASE, transport=recorder.transport, clock=clock)
    with pytest.raises(PartnerUnavailable) as err:
        client_for(auth, recorder).get("/jobs")
    assert err.value.status_code == 503

    recorder = oauth_partner(httpx.Response(200, text="not json"))
    auth = build_auth(cc_spec(), CREDS, base_url=BASE, transport=recorder.transport, clock=clock)
    with pytest.raises(MalformedResponse):
        client_for(auth, recorder).get("/jobs")


def test_missing_token_header_credential_is_named(clock: FakeClock) -> None:
    spec = cc_spec(token_headers={"X-App": "{credentials.app_key}"})
    with pytest.raises(AuthenticationFailed) as err:
        build_auth(spec, CREDS, base_url=BASE, clock=clock)
    assert "credentials.app_key" in str(err.value)


def test_ten_threads_cause_one_token_request(clock: FakeClock) -> None:
    calls = 0
    lock = threading.Lock()

    def slow_token(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        with lock:
            calls += 1
        time.sleep(0.05)  # hold the renewal so the other threads pile up on the lock
        return token_response("tok-A")

    recorder = Recorder(lambda r: slow_token(r) if r.url.path.endswith("/token") else ok(r))
    auth = build_auth(cc_spec(), CREDS, base_url=BASE, transport=recorder.transport, clock=clock)
    assert isinstance(auth, TokenAuth)
    barrier = threading.Barrier(10)
    tokens: list[str] = []

    def worker() -> None:
        barrier.wait()
        tokens.append(auth.manager.get_token())

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert calls == 1
    assert tokens == ["tok-A"] * 10


# ---------------------------------------------------------------- oauth2 refresh token


def test_refresh_token_grant_passes_rotated_token_to_on_token(clock: FakeClock) -> None:
    recorder = oauth_partner(
        token_response("tok-A", refresh_token="refresh-2"),
        token_response("tok-B"),  # no new refresh token: keep using refresh-2
    )
    saved: list[dict] = []
    spec = OAuth2RefreshToken(kind="oauth2_refresh_token", token_url="/oauth/token")
    creds = {**CREDS, "refresh_token": "refresh-1"}
    auth = build_auth(
        spec, creds, base_url=BASE, transport=recorder.transport, clock=clock, on_token=saved.append
    )
    client = client_for(auth, recorder)
    assert client.get("/a").json()["auth"] == "Bearer tok-A"
    clock.advance(4000)
    assert client.get("/b").json()["auth"] == "Bearer tok-B"

    first, second = token_requests(recorder)
    assert form(first) == {
        "grant_type": "refresh_token",
        "refresh_token": "refresh-1",
        "client_id": "cid-1",
        "client_secret": "csecret-XYZ",
    }
    assert form(second)["refresh_token"] == "refresh-2"
    assert [(t["access_token"], t["refresh_token"]) for t in saved] == [
        ("tok-A", "refresh-2"),
        ("tok-B", "refresh-2"),
    ]


def test_revoked_refresh_token_says_to_reauthorise(clock: FakeClock) -> None:
    recorder = oauth_partner(httpx.Response(400, json={"error": "invalid_grant"}))
    spec = OAuth2RefreshToken(kind="oauth2_refresh_token", token_url="/oauth/token")
    creds = {**CREDS, "refresh_token": "refresh-1"}
    auth = build_auth(spec, creds, base_url=BASE, transport=recorder.transport, clock=clock)
    with pytest.raises(AuthenticationFailed) as err:
        client_for(auth, recorder).get("/a")
    assert "re-authorise" in str(err.value)
    assert "refresh-1" not in str(err.value)

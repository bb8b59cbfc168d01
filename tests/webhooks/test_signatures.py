"""Signature schemes: published test vectors, round trips through `sign`, and every way to fail."""

import base64
import hashlib
import hmac

import pytest

from integration_pipelines.connectors.spec import Signature
from integration_pipelines.webhooks.signatures import SignatureError, sign, verify

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def check(
    spec: Signature, *, body: bytes = b"", headers=None, url="", form=None, query=None, secrets, now=NOW
):
    verify(
        spec,
        body=body,
        headers=headers or {},
        url=url,
        form=form,
        query=query or {},
        secrets=secrets,
        now=now,
    )


def rejected(reason: str, spec: Signature, **kwargs) -> SignatureError:
    with pytest.raises(SignatureError) as info:
        check(spec, **kwargs)
    assert info.value.reason == reason
    for secret in kwargs["secrets"].values():
        assert secret not in str(info.value)
    return info.value


# ---------------------------------------------------------------- published vectors


def test_github_vector() -> None:
    """GitHub's documented example: X-Hub-Signature-256 for "Hello, World!"."""
    spec = Signature(scheme="hmac", header="X-Hub-Signature-256", prefix="sha256=")
    secrets = {"webhook_secret": "It's a Secret to Everybody"}
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    check(spec, body=b"Hello, World!", headers={"x-hub-signature-256": expected}, secrets=secrets)
    assert sign(spec, secrets=secrets, body=b"Hello, World!").headers == {"X-Hub-Signature-256": expected}


TWILIO = Signature(
    scheme="url_params_hmac",
    header="X-Twilio-Signature",
    algorithm="sha1",
    encoding="base64",
    secret="auth_token",
)
TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
TWILIO_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def test_twilio_vector() -> None:
    """The vector of Twilio's own request-validator tests."""
    secrets = {"auth_token": "12345"}
    headers = {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}
    check(TWILIO, url=TWILIO_URL, form=TWILIO_PARAMS, headers=headers, secrets=secrets)
    assert sign(TWILIO, secrets=secrets, url=TWILIO_URL, form=TWILIO_PARAMS).headers == headers
    rejected(
        "signature mismatch",
        TWILIO,
        url=TWILIO_URL + "&baz=3",
        form=TWILIO_PARAMS,
        headers=headers,
        secrets=secrets,
    )
    tampered = {**TWILIO_PARAMS, "Digits": "9999"}
    rejected("signature mismatch", TWILIO, url=TWILIO_URL, form=tampered, headers=headers, secrets=secrets)


def test_twilio_repeated_parameters_sort_by_value() -> None:
    pairs = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
    headers = {"X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="}
    check(TWILIO, url=TWILIO_URL, form=pairs, headers=headers, secrets={"auth_token": "12345"})


# ---------------------------------------------------------------- hmac


HMAC = Signature(scheme="hmac", header="X-Signature")
SECRETS = {"webhook_secret": "s3cr3t-value"}


def _hex(body: bytes, secret: str = "s3cr3t-value", algorithm=hashlib.sha256) -> str:
    return hmac.new(secret.encode(), body, algorithm).hexdigest()


def test_hmac_accepts_uppercase_hex_and_any_of_several_signatures() -> None:
    body = b'{"id": 1}'
    check(HMAC, body=body, headers={"X-SIGNATURE": _hex(body).upper()}, secrets=SECRETS)
    rotated = f"{_hex(body, 'old-secret')}, {_hex(body)}"
    check(HMAC, body=body, headers={"x-signature": rotated}, secrets=SECRETS)


def test_hmac_base64_sha512_with_prefix() -> None:
    spec = Signature(scheme="hmac", header="X-Sig", algorithm="sha512", encoding="base64", prefix="v1=")
    body = "événement".encode()
    digest = base64.b64encode(hmac.new(b"s3cr3t-value", body, hashlib.sha512).digest()).decode()
    check(spec, body=body, headers={"X-Sig": f"v1={digest}"}, secrets=SECRETS)
    assert sign(spec, secrets=SECRETS, body=body).headers == {"X-Sig": f"v1={digest}"}
    rejected("signature mismatch", spec, body=body, headers={"X-Sig": digest}, secrets=SECRETS)  # no prefix


@pytest.mark.parametrize(
    "header, reason",
    [
        (None, "missing signature header"),
        ("", "missing signature header"),
        ("not-hex", "signature mismatch"),
        ("00" * 32, "signature mismatch"),
    ],
)
def test_hmac_rejections(header: str | None, reason: str) -> None:
    headers = {} if header is None else {"X-Signature": header}
    rejected(reason, HMAC, body=b"{}", headers=headers, secrets=SECRETS)


def test_hmac_tampered_body_and_wrong_secret() -> None:
    body = b'{"id": 1}'
    rejected(
        "signature mismatch", HMAC, body=b'{"id": 2}', headers={"X-Signature": _hex(body)}, secrets=SECRETS
    )
    rejected(
        "signature mismatch", HMAC, body=body, headers={"X-Signature": _hex(body, "other")}, secrets=SECRETS
    )


def test_missing_secret_is_a_rejection() -> None:
    rejected("secret not configured", HMAC, body=b"{}", headers={"X-Signature": "00"}, secrets={})


# ---------------------------------------------------------------- timestamped


SLACK = Signature(
    scheme="timestamped_hmac",
    header="X-Slack-Signature",
    prefix="v0=",
    timestamp_header="X-Slack-Request-Timestamp",
    signed_payload="v0:{timestamp}:{body}",
    tolerance_seconds=300,
)


def test_timestamped_signs_the_template() -> None:
    body = b"token=abc&text={timestamp}"  # a body holding the placeholder text is signed verbatim
    ts = str(int(NOW))
    expected = "v0=" + _hex(b"v0:" + ts.encode() + b":" + body)
    headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": expected}
    check(SLACK, body=body, headers=headers, secrets=SECRETS)
    assert sign(SLACK, secrets=SECRETS, body=body, timestamp=NOW).headers == headers


@pytest.mark.parametrize("offset, ok", [(0, True), (299, True), (-299, True), (301, False), (-301, False)])
def test_timestamped_tolerance_both_ways(offset: int, ok: bool) -> None:
    body = b"{}"
    headers = sign(SLACK, secrets=SECRETS, body=body, timestamp=NOW + offset).headers
    if ok:
        check(SLACK, body=body, headers=headers, secrets=SECRETS)
    else:
        rejected("stale timestamp", SLACK, body=body, headers=headers, secrets=SECRETS)


@pytest.mark.parametrize(
    "timestamp, reason",
    [(None, "missing timestamp header"), ("yesterday", "invalid timestamp"), ("nan", "invalid timestamp")],
)
def test_timestamped_bad_timestamps(timestamp: str | None, reason: str) -> None:
    headers = {"X-Slack-Signature": "v0=00"}
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    rejected(reason, SLACK, body=b"{}", headers=headers, secrets=SECRETS)


def test_timestamped_replayed_with_a_new_timestamp_fails() -> None:
    body = b"{}"
    headers = sign(SLACK, secrets=SECRETS, body=body, timestamp=NOW).headers
    headers["X-Slack-Request-Timestamp"] = str(int(NOW) + 10)
    rejected("signature mismatch", SLACK, body=body, headers=headers, secrets=SECRETS)


# ---------------------------------------------------------------- token, basic, none


def test_token_in_header_or_query() -> None:
    in_header = Signature(scheme="token", header="X-Token")
    check(in_header, headers={"x-token": "s3cr3t-value"}, secrets=SECRETS)
    rejected("token mismatch", in_header, headers={"X-Token": "s3cr3t-valuX"}, secrets=SECRETS)
    rejected("missing token", in_header, headers={}, secrets=SECRETS)
    in_query = Signature(scheme="token", query_param="token")
    check(in_query, query={"token": "s3cr3t-value"}, secrets=SECRETS)
    rejected("token mismatch", in_query, query={"token": "nope"}, secrets=SECRETS)
    assert sign(in_query, secrets=SECRETS).params == {"token": "s3cr3t-value"}


BASIC = Signature(scheme="basic", username="user", secret="password")
BASIC_SECRETS = {"user": "fieldglass", "password": "p@ss:w0rd"}


def _basic(value: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(value.encode()).decode()}


def test_basic() -> None:
    check(BASIC, headers=_basic("fieldglass:p@ss:w0rd"), secrets=BASIC_SECRETS)
    assert sign(BASIC, secrets=BASIC_SECRETS).headers == _basic("fieldglass:p@ss:w0rd")
    rejected("basic credentials mismatch", BASIC, headers=_basic("fieldglass:wrong"), secrets=BASIC_SECRETS)
    rejected("basic credentials mismatch", BASIC, headers=_basic("other:p@ss:w0rd"), secrets=BASIC_SECRETS)
    rejected("basic credentials mismatch", BASIC, headers=_basic("fieldglass"), secrets=BASIC_SECRETS)
    rejected("missing basic credentials", BASIC, headers={"Authorization": "Bearer x"}, secrets=BASIC_SECRETS)
    rejected("missing basic credentials", BASIC, headers={}, secrets=BASIC_SECRETS)
    rejected(
        "malformed basic credentials", BASIC, headers={"Authorization": "Basic !!!"}, secrets=BASIC_SECRETS
    )


def test_none_accepts_anything() -> None:
    check(Signature(scheme="none"), body=b"anything", secrets={})
    assert sign(Signature(scheme="none"), secrets={}).headers == {}

"""Checking (and, for tests and benchmarks, making) the signatures partners put on webhooks.

The schemes are those of `connectors.spec.Signature`:

* `hmac`: HMAC(secret, raw body) in `header`, hex or base64, after an optional `prefix`
  (`sha256=`). The header may carry several comma-separated signatures (a partner rotating its
  secret signs with both); one match is enough.
* `timestamped_hmac`: HMAC(secret, `signed_payload`) where `{timestamp}` is the value of
  `timestamp_header` exactly as sent and `{body}` the raw body; the timestamp (seconds since the
  epoch) must be within `tolerance_seconds` of now, either way.
* `url_params_hmac` (Twilio): HMAC(secret, full URL + key1 + value1 + key2 + value2 ...) with the
  form parameters sorted by key (then value, for repeated keys).
* `token`: `header` (or else `query_param`) equals the secret.
* `basic`: `Authorization: Basic` carries the credentials named `username` and `secret`.
* `none`: nothing to check.

Every comparison is constant-time (`hmac.compare_digest`). A `SignatureError`'s reason is safe
to log: it never contains the secret, the expected signature or the one received.
"""

import base64
import binascii
import hashlib
import hmac
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from integration_pipelines.connectors.spec import Signature

FormData = Mapping[str, str] | Iterable[tuple[str, str]]


class SignatureError(Exception):
    """A webhook whose signature does not check out; `reason` is short and safe to log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SignedRequest:
    """What to add to a request so that `verify` accepts it: headers and query parameters."""

    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------- building blocks


def _secret(secrets: Mapping[str, str], name: str) -> str:
    value = secrets.get(name)
    if not value:
        raise SignatureError("secret not configured")
    return value


def _lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _pairs(form: FormData | None) -> list[tuple[str, str]]:
    if form is None:
        return []
    items = form.items() if isinstance(form, Mapping) else form
    return [(str(k), str(v)) for k, v in items]


def _digest(spec: Signature, secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, getattr(hashlib, spec.algorithm)).digest()


def _encode(spec: Signature, digest: bytes) -> str:
    if spec.encoding == "hex":
        return digest.hex()
    return base64.b64encode(digest).decode("ascii")


def _decode(spec: Signature, text: str) -> bytes | None:
    """A signature as sent, back to digest bytes (None if it is not valid hex/base64)."""
    try:
        if spec.encoding == "hex":
            return bytes.fromhex(text)
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


def _timestamped_message(spec: Signature, timestamp: str, body: bytes) -> bytes:
    """`signed_payload` with `{timestamp}` and `{body}` filled in (the body is never re-scanned)."""
    parts = spec.signed_payload.split("{body}")
    literals = [p.replace("{timestamp}", timestamp).encode("utf-8") for p in parts]
    return body.join(literals)


def _url_params_message(url: str, form: FormData | None) -> bytes:
    pairs = sorted(_pairs(form))
    return (url + "".join(k + v for k, v in pairs)).encode("utf-8")


def signed_message(spec: Signature, *, body: bytes, url: str, form: FormData | None, timestamp: str) -> bytes:
    """The bytes an HMAC scheme signs."""
    if spec.scheme == "hmac":
        return body
    if spec.scheme == "timestamped_hmac":
        return _timestamped_message(spec, timestamp, body)
    if spec.scheme == "url_params_hmac":
        return _url_params_message(url, form)
    raise ValueError(f"scheme {spec.scheme} does not sign a message")


def _check_hmac(spec: Signature, header_value: str | None, expected: bytes) -> None:
    if not header_value:
        raise SignatureError("missing signature header")
    matched = False
    for candidate in header_value.split(","):
        candidate = candidate.strip()
        if spec.prefix:
            if not candidate.startswith(spec.prefix):
                continue
            candidate = candidate[len(spec.prefix) :]
        received = _decode(spec, candidate)
        # no short-circuit: every candidate is compared, in constant time
        if received is not None and hmac.compare_digest(received, expected):
            matched = True
    if not matched:
        raise SignatureError("signature mismatch")


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


# ---------------------------------------------------------------- verify


def verify(
    spec: Signature,
    *,
    body: bytes,
    headers: Mapping[str, str],
    url: str,
    form: FormData | None,
    query: Mapping[str, str],
    secrets: Mapping[str, str],
    now: float,
) -> None:
    """Raise `SignatureError` unless the request is signed as `spec` says.

    `headers` are matched case-insensitively; `url` is the full URL the partner called (scheme,
    host, path and query, as the partner sees it); `form` the parsed form parameters (only for
    `url_params_hmac`); `secrets` the connection's decrypted credentials by name.
    """
    scheme = spec.scheme
    if scheme == "none":
        return
    lowered = _lower_keys(headers)
    if scheme in ("hmac", "timestamped_hmac", "url_params_hmac"):
        secret = _secret(secrets, spec.secret)
        timestamp = ""
        if scheme == "timestamped_hmac":
            timestamp = _check_timestamp(spec, lowered.get(spec.timestamp_header.lower()), now)
        message = signed_message(spec, body=body, url=url, form=form, timestamp=timestamp)
        _check_hmac(spec, lowered.get(spec.header.lower()), _digest(spec, secret, message))
        return
    if scheme == "token":
        secret = _secret(secrets, spec.secret)
        given = lowered.get(spec.header.lower()) if spec.header else None
        if given is None and spec.query_param:
            given = query.get(spec.query_param)
        if not given:
            raise SignatureError("missing token")
        if not _equal(given, secret):
            raise SignatureError("token mismatch")
        return
    if scheme == "basic":
        password = _secret(secrets, spec.secret)
        username = _secret(secrets, spec.username)
        authorization = lowered.get("authorization", "")
        kind, _, encoded = authorization.partition(" ")
        if kind.lower() != "basic" or not encoded.strip():
            raise SignatureError("missing basic credentials")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (ValueError, binascii.Error):
            raise SignatureError("malformed basic credentials") from None
        given_user, sep, given_password = decoded.partition(":")
        # both compared, whatever the first gives
        user_ok = _equal(given_user, username)
        password_ok = _equal(given_password, password)
        if not (sep and user_ok and password_ok):
            raise SignatureError("basic credentials mismatch")
        return
    raise SignatureError(f"unsupported scheme {scheme}")  # unreachable: the spec is validated


def _check_timestamp(spec: Signature, value: str | None, now: float) -> str:
    if not value:
        raise SignatureError("missing timestamp header")
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        raise SignatureError("invalid timestamp") from None
    if not math.isfinite(seconds):
        raise SignatureError("invalid timestamp")
    if abs(now - seconds) > spec.tolerance_seconds:
        raise SignatureError("stale timestamp")
    return value


# ---------------------------------------------------------------- sign (tests, benchmarks, sandbox)


def sign(
    spec: Signature,
    *,
    secrets: Mapping[str, str],
    body: bytes = b"",
    url: str = "",
    form: FormData | None = None,
    timestamp: float | str | None = None,
) -> SignedRequest:
    """The headers (and query parameters) that make `verify` accept this request.

    `timestamp` defaults to now for `timestamped_hmac`; pass a string to control its exact
    text. For `url_params_hmac`, `url` must be the full URL the request is sent to.
    """
    scheme = spec.scheme
    if scheme == "none":
        return SignedRequest()
    if scheme in ("hmac", "timestamped_hmac", "url_params_hmac"):
        headers: dict[str, str] = {}
        ts = ""
        if scheme == "timestamped_hmac":
            ts = timestamp if isinstance(timestamp, str) else str(int(timestamp or time.time()))
            headers[spec.timestamp_header] = ts
        message = signed_message(spec, body=body, url=url, form=form, timestamp=ts)
        signature = _encode(spec, _digest(spec, _secret(secrets, spec.secret), message))
        headers[spec.header] = spec.prefix + signature
        return SignedRequest(headers=headers)
    if scheme == "token":
        token = _secret(secrets, spec.secret)
        if spec.header:
            return SignedRequest(headers={spec.header: token})
        return SignedRequest(params={spec.query_param: token})
    if scheme == "basic":
        pair = f"{_secret(secrets, spec.username)}:{_secret(secrets, spec.secret)}"
        encoded = base64.b64encode(pair.encode("utf-8")).decode("ascii")
        return SignedRequest(headers={"Authorization": f"Basic {encoded}"})
    raise ValueError(f"unsupported scheme {scheme}")


__all__ = ["SignatureError", "SignedRequest", "sign", "signed_message", "verify"]

import base64
import logging
import pickle
from urllib.parse import quote

from integration_pipelines.resources.errors import (
    AuthenticationFailed,
    MalformedResponse,
    PartnerError,
    PartnerUnavailable,
    RateLimited,
    RequestRejected,
    describe_call,
    safe_path,
)
from integration_pipelines.resources.redaction import SecretRedactingFilter, redact

SECRET = "p@ss word/+="


def test_redact_raw_base64_and_url_encoded_forms() -> None:
    b64 = base64.b64encode(SECRET.encode()).decode()
    text = f"raw={SECRET} b64={b64} url={quote(SECRET, safe='')} plus=p%40ss+word%2F%2B%3D"
    assert redact(text, [SECRET]) == "raw=*** b64=*** url=*** plus=***"


def test_redact_ignores_empty_and_prefers_longest() -> None:
    assert redact("token abcdef and abc", ["", "abc", "abcdef"]) == "token *** and ***"
    assert redact("nothing here", []) == "nothing here"


def test_filter_masks_message_args_and_traceback() -> None:
    secrets = {"tok-123"}
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    handler.addFilter(SecretRedactingFilter(lambda: secrets))
    logger = logging.getLogger("tests.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.info("sent %s to %s", "tok-123", {"auth": "Bearer tok-123"})
        secrets.add("late-secret")  # the provider is asked per record
        try:
            raise ValueError("boom late-secret")
        except ValueError:
            logger.exception("failed with late-secret")
    finally:
        logger.removeHandler(handler)
    assert records[0].getMessage() == "sent *** to {'auth': 'Bearer ***'}"
    assert records[1].getMessage() == "failed with ***"
    assert "late-secret" not in (records[1].exc_text or "")
    assert "boom ***" in (records[1].exc_text or "")


def test_failure_types() -> None:
    assert AuthenticationFailed("x").failure_type == "config_error"
    assert RequestRejected("x").failure_type == "config_error"
    assert RateLimited("x").failure_type == "transient_error"
    assert PartnerUnavailable("x").failure_type == "transient_error"
    assert MalformedResponse("x").failure_type == "system_error"
    assert PartnerError("x").failure_type == "system_error"
    assert PartnerError("x", failure_type="config_error").failure_type == "config_error"


def test_errors_pickle_with_their_attributes() -> None:
    error = RateLimited(
        "acme: slow down",
        partner="acme",
        connection_id="c1",
        status_code=429,
        retry_after=7.0,
        method="get",
        path="/x?secret=1",
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimited
    assert (str(copy), copy.partner, copy.connection_id, copy.status_code, copy.retry_after) == (
        "acme: slow down",
        "acme",
        "c1",
        429,
        7.0,
    )
    assert (copy.method, copy.path) == ("GET", "/x")


def test_safe_path_and_describe_call_drop_query_and_userinfo() -> None:
    assert safe_path("https://user:pw@h.example/api/v1/jobs?key=abc#frag") == "/api/v1/jobs"
    assert safe_path("/jobs?key=abc") == "/jobs"
    assert describe_call("acme", "c1", "get", "/jobs?key=abc") == "acme (connection c1): GET /jobs"

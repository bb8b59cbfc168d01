"""Reading a partner's response: decode JSON or XML, judge it, pull out the records."""

import json
from dataclasses import dataclass
from typing import Any

import httpx
import xmltodict

from integration_pipelines.connectors.spec import ResponseFilter, Stream
from integration_pipelines.mapping.paths import as_list, get_path
from integration_pipelines.resources.errors import MalformedResponse, RequestRejected, describe_call
from integration_pipelines.templates import TemplateError, render


@dataclass(frozen=True)
class Verdict:
    """What a response means for the sync: `ok`, or a response filter's action."""

    action: str  # ok | reject | fail | retry | ignore
    message: str = ""


def decode_body(response: httpx.Response, fmt: str, *, partner: str, connection_id: str) -> Any:
    """The body as Python data; an unreadable body raises MalformedResponse (retryable once or twice)."""
    if not response.content:
        return None
    text = response.content.decode("utf-8", errors="replace")
    try:
        if fmt == "xml":
            return xmltodict.parse(text)
        return json.loads(text)
    except (ValueError, xmltodict.expat.ExpatError) as exc:
        where = describe_call(partner, connection_id, response.request.method, response.request.url.path)
        raise MalformedResponse(
            f"{where}: the partner answered HTTP {response.status_code} with a body that is not valid "
            f"{fmt.upper()} ({exc}); the answer was truncated or corrupted on the way -- re-run the sync, "
            "and if it keeps happening check the partner's status page",
            partner=partner,
            connection_id=connection_id,
            status_code=response.status_code,
        ) from None


def _matches(rule: ResponseFilter, response: httpx.Response, body: Any) -> bool:
    if rule.http_codes is not None and response.status_code not in rule.http_codes:
        return False
    if rule.body_has is not None and get_path(body, rule.body_has) is None:
        return False
    return True


def _message(rule: ResponseFilter, response: httpx.Response, body: Any) -> str:
    if rule.message is None:
        return f"HTTP {response.status_code}"
    try:
        return render(rule.message, body if isinstance(body, dict) else {})
    except (TemplateError, AttributeError, ValueError):
        return f"{rule.message} (HTTP {response.status_code})"


def judge(stream: Stream, response: httpx.Response, body: Any) -> Verdict:
    """Apply the stream's response filters; unmatched 4xx/5xx responses fail the sync."""
    for rule in stream.response_filters:
        if _matches(rule, response, body):
            return Verdict(rule.action, _message(rule, response, body))
    if response.status_code >= 400:
        return Verdict("fail", f"HTTP {response.status_code}: {_summary(body)}")
    return Verdict("ok")


def _summary(body: Any) -> str:
    text = json.dumps(body) if not isinstance(body, str) else body
    return text[:300] if text else "(empty body)"


def records_of(stream: Stream, body: Any) -> list[dict[str, Any]]:
    """The records at the stream's `records` path; a single object counts as one record."""
    found = body if stream.records is None else get_path(body, stream.records)
    rows = as_list(found)
    return [r for r in rows if isinstance(r, dict)]


def raise_rejected(verdict: Verdict, response: httpx.Response, *, partner: str, connection_id: str) -> None:
    where = describe_call(partner, connection_id, response.request.method, response.request.url.path)
    raise RequestRejected(
        f"{where}: the partner refused the request: {verdict.message}",
        partner=partner,
        connection_id=connection_id,
        status_code=response.status_code,
    )

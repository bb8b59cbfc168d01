"""Security fuzzing of the webhook receiver from its own OpenAPI description (schemathesis +
hypothesis), over HTTP against uvicorn.

Requests come from `/openapi.json` in positive and negative modes; hypothesis then steers
part of them at real connections, with partner-shaped events (odd ids, types and timestamps)
signed correctly, wrongly or not at all. For every request: no 5xx, the response matches the
description, and the inbox grows by exactly one row on a 202 and by none otherwise (a rejected
request stores nothing). Afterwards no other table has a row more than before the fuzzing.

`WEBHOOK_FUZZ_EXAMPLES` sets the number of cases: 5,000 by default (the reliability suite's
floor, about a minute); set it lower for a quick local run. The test checks that at least that
many requests were really sent.
"""

import json
import os
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import hypothesis.strategies as st
import schemathesis
import sqlalchemy as sa
import xmltodict
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from integration_pipelines.webhooks.signatures import sign
from tests.webhooks.conftest import SCHEMES, WebhookEnv
from tests.webhooks.conftest import webhook_env as webhook_env  # the fixture, shared with tests/webhooks

EXAMPLES = int(os.environ.get("WEBHOOK_FUZZ_EXAMPLES", "5000"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.text(min_size=95, max_size=210),
    st.sampled_from(["", "dup-1", "dup-2", "job.created", "job.updated", "delivered", "a\x00b", "\ud800"]),
)
VALUES = st.one_of(
    SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=5), SCALARS, max_size=3)
)


def _serialize(kwargs: dict[str, Any]) -> bytes:
    """The bytes schemathesis would send for this case."""
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data")
    if data is None:
        return b""
    if isinstance(data, dict):
        return urlencode(data).encode()
    return data.encode() if isinstance(data, str) else bytes(data)


def _raw(value: Any) -> bytes:
    return str(value).encode("utf-8", "surrogatepass")  # lone surrogates give invalid UTF-8, as sent


def _event(fmt: str, event_id: Any, event_type: Any, occurred_at: Any, extra: dict) -> bytes:
    """A partner-shaped event (in the connector's format) with fuzzed fields."""
    if fmt == "form":
        fields = {"MessageSid": event_id, "SmsStatus": event_type, **extra}
        raw = {_raw(k): _raw(v) for k, v in fields.items() if v is not None}
        return urlencode(raw).encode()
    if fmt == "xml":
        try:
            event = {"Event": {"Id": event_id, "Type": event_type, "OccurredAt": occurred_at}}
            return xmltodict.unparse(event).encode("utf-8", "replace")
        except Exception:  # values xmltodict cannot write: send something broken instead
            return b"<Event><Id>"
    event = {"id": event_id, "type": event_type, "created_at": occurred_at, **extra}
    if extra.get("challenge") is None:
        event.pop("challenge", None)
    return json.dumps(event).encode("utf-8", "surrogatepass")


def _table_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows per table of the integration database."""
    with engine.connect() as conn:
        names = sa.inspect(conn).get_table_names()
        return {name: conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in names}


def test_fuzz_from_openapi(webhook_env: WebhookEnv) -> None:
    tables_before = _table_counts(webhook_env.engine)
    schema = schemathesis.openapi.from_dict(webhook_env.client.get("/openapi.json").json())
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    names = list(SCHEMES)
    seen: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    @given(case=cases, data=st.data())
    def run(case, data) -> None:
        kwargs = case.as_transport_kwargs(base_url=webhook_env.url)
        method = kwargs["method"].upper()
        split = urlsplit(kwargs["url"])
        path = split.path
        params: dict[str, str] = {}
        headers = dict(kwargs.get("headers") or {})
        body = _serialize(kwargs)

        target = data.draw(st.sampled_from([None, *names])) if path.startswith("/webhooks/") else None
        if target is not None:
            path = webhook_env.path(target)
            block = SCHEMES[target][0]
            handshake = block.get("handshake")
            if method == "POST" and data.draw(st.booleans()):
                extra = data.draw(st.dictionaries(st.text(max_size=8), VALUES, max_size=3))
                if handshake and handshake.get("location") == "body" and data.draw(st.booleans()):
                    extra["challenge"] = data.draw(SCALARS)
                body = _event(
                    block.get("format", "json"),
                    data.draw(SCALARS),
                    data.draw(SCALARS),
                    data.draw(SCALARS),
                    extra,
                )
            if method == "GET" and handshake and data.draw(st.booleans()):
                params[handshake["param"]] = data.draw(st.text(max_size=40))
            signing = data.draw(st.sampled_from(["valid", "wrong", "unsigned"]))
            if signing != "unsigned":
                secrets = webhook_env.secrets(target)
                if signing == "wrong":
                    secrets = {k: v + "x" for k, v in secrets.items()}
                spec = webhook_env.connectors[target].spec.webhooks.signature
                query = urlencode(params)
                url = webhook_env.url + path + (f"?{query}" if query else "")
                form = None
                if block.get("format") == "form" and method == "POST":
                    try:
                        form = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=True)
                    except ValueError:
                        form = None
                signature = sign(spec, secrets=secrets, body=body, url=url, form=form)
                headers.update(signature.headers)
                params.update(signature.params)

        before = webhook_env.total_rows()
        response = webhook_env.client.request(
            method, path, content=body, headers=headers, params=params or None
        )
        after = webhook_env.total_rows()
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (method, path, body[:200], response.text)
        assert after - before == (1 if response.status_code == 202 else 0), (
            response.status_code,
            response.text,
        )
        case.validate_response(response, checks=CHECKS)

    run()
    sent = sum(seen.values())
    print(f"webhook fuzzing: {sent} requests, by status: {dict(sorted(seen.items()))}")
    assert sent >= EXAMPLES, (sent, EXAMPLES)
    # the steering reached past the signature checks, both ways
    assert seen.get(202, 0) > 0 and seen.get(400, 0) > 0 and seen.get(401, 0) > 0, seen
    # only accepted events were stored, and only in the inbox
    tables_after = _table_counts(webhook_env.engine)
    grown = {t: tables_after[t] - n for t, n in tables_before.items() if tables_after[t] != n}
    assert grown == ({"inbox": seen[202]} if seen.get(202) else {}), (grown, seen)

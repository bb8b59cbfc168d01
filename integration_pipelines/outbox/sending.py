"""Sending one claimed item: the create (with its steps) or the update, as the connector says."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa

from integration_pipelines.connectors.spec import FieldMapping, Outbound, Request
from integration_pipelines.mapping import parse_concat
from integration_pipelines.mapping.paths import get_path
from integration_pipelines.outbox.body import build_body, encode_csv, flatten
from integration_pipelines.outbox.changes import changed_fields
from integration_pipelines.outbox.clients import Target
from integration_pipelines.outbox.context import build_context, find_link
from integration_pipelines.outbox.errors import OutboundError
from integration_pipelines.outbox.queue import ensure_link
from integration_pipelines.resources.errors import RequestRejected, describe_call
from integration_pipelines.templates import TemplateError, render, render_value


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Sent:
    """What a send achieved: the partner's id for the record, whether to link it, a note."""

    external_id: str | None
    link: bool = False  # create the record's link to external_id
    note: str | None = None


def _reads(spec: FieldMapping) -> set[str] | None:
    """Context paths a field mapping reads; None when unknowable (a hook reads the whole record)."""
    if spec.hook is not None:
        return None
    if spec.path is not None:
        return {spec.path}
    if spec.concat is not None:
        return {p.text for p in parse_concat(spec.concat) if p.is_path}
    return set()


def changed_only(
    mapping: Mapping[str, FieldMapping], entity: str, changed: set[str]
) -> dict[str, FieldMapping]:
    """The body fields an update must send: those computed from a changed field of the record, plus
    those that do not come from the record (related records, steps, constants). Empty when no
    field of the body depends on what changed."""
    keep: dict[str, FieldMapping] = {}
    touched = False
    for name, spec in mapping.items():
        paths = _reads(spec)
        if paths is None:
            keep[name], touched = spec, True
            continue
        fields = {p.split(".")[1] for p in paths if p.startswith(f"{entity}.")}
        if fields & changed:
            keep[name], touched = spec, True
        elif not fields:
            keep[name] = spec
    return keep if touched else {}


def _partner_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("message", "error_description", "error", "detail", "title"):
            if isinstance(data.get(key), str) and data[key]:
                return data[key]
    return response.text.strip()[:300] or "(no body)"


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        raise OutboundError(
            f"{what}: the partner answered HTTP {response.status_code} with a body that is not JSON; "
            "the record may exist at the partner -- check there before retrying"
        ) from None


class Sender:
    """Sends one claimed item: steps, then its create or update request."""

    def __init__(self, engine: sa.Engine, target: Target, item: Any, outbound: Outbound, stream: str) -> None:
        self.engine = engine
        self.target = target
        self.item = item
        self.outbound = outbound
        self.stream = stream
        self.hooks = target.connector.hooks

    def send(self) -> Sent:
        item, outbound = self.item, self.outbound
        with self.engine.connect() as conn:
            context = build_context(
                conn,
                connection_id=item.connection_id,
                entity=item.entity,
                record_id=item.record_id,
                outbound=outbound,
                payload=item.payload,
                item_id=item.id,
                config=self.target.connection.config,
            )
        linked = context["link"]["external_id"]
        operation, note = item.operation, None
        if operation == "create" and linked is not None:
            if outbound.update is None:
                return Sent(linked, note=f"already linked to {linked} at the partner; nothing sent")
            operation, note = "update", f"already linked to {linked} at the partner: sent as an update"
        if operation == "update":
            return self._update(context, linked, note)
        if outbound.create is None:
            raise OutboundError(
                f"stream {self.stream} creates nothing at the partner (it has no create request)"
            )
        build_body(outbound.body, context, hooks=self.hooks)  # a mapping problem fails before any call
        self._steps(context)
        body = build_body(outbound.body, context, hooks=self.hooks)
        response = self._request(outbound.create, context, body, outbound.format, f"outbox-{item.id}")
        if not outbound.response_id:
            return Sent(None, note="created; the partner returns no id (no response_id in the connector)")
        external_id = get_path(_json(response, "create"), outbound.response_id)
        if external_id in (None, ""):
            raise OutboundError(
                f"the partner answered HTTP {response.status_code} without {outbound.response_id!r}; the "
                "record may exist at the partner -- check there before retrying"
            )
        return Sent(str(external_id), link=True, note=note)

    def _update(self, context: dict[str, Any], linked: str | None, note: str | None) -> Sent:
        outbound, item = self.outbound, self.item
        if outbound.update is None:
            raise OutboundError(f"stream {self.stream} sends no updates (it has no update request)")
        if linked is None:
            if outbound.create is None:
                raise OutboundError(
                    f"partner creates these records; nothing to update yet (no record link for "
                    f"{item.entity} {item.record_id} on this connection)"
                )
            raise OutboundError(
                f"{item.entity} {item.record_id} was never created at the partner (no record link and no "
                "create before this update); nothing to update"
            )
        mapping = outbound.update_body if outbound.update_body is not None else outbound.body
        mapping = changed_only(mapping, item.entity, changed_fields(item.entity, item.payload))
        body = build_body(mapping, context, hooks=self.hooks) if mapping else {}
        if not body:
            return Sent(linked, note="no field this partner receives changed; nothing sent")
        self._request(outbound.update, context, body, outbound.format, f"outbox-{item.id}")
        return Sent(linked, note=note)

    def _steps(self, context: dict[str, Any]) -> None:
        """Run the create's steps in order; a step whose `link` exists is skipped (its `id` is the
        link's external id), a step that runs has its link saved at once, so a retry skips it.

        The Idempotency-Key of a step is per item: two DIFFERENT items that both need the same
        linked record (the first two submissions of one candidate) and are sent at the same moment
        by two processes can each create it; the later link is the one used from then on."""
        item = self.item
        for name, step in self.outbound.steps.items():
            key = get_path(context, step.link_key) if step.link_key else None
            if step.link and step.link_key:
                if key in (None, ""):
                    raise OutboundError(
                        f"step {name}: {step.link_key} is empty, so the step cannot be linked"
                    )
                with self.engine.connect() as conn:
                    existing = find_link(conn, item.connection_id, step.link, str(key))
                if existing is not None:
                    context["steps"][name] = {"id": existing}
                    continue
            body = build_body(step.body, context, hooks=self.hooks)
            fmt = "form" if self.outbound.format == "form" else "json"
            response = self._request(step.request, context, body, fmt, f"outbox-{item.id}-{name}")
            data = _json(response, f"step {name}") if step.save else None
            saved = {save_as: get_path(data, path) for save_as, path in step.save.items()}
            if step.link and step.link_key:
                external_id = saved.get("id")
                if external_id in (None, ""):
                    raise OutboundError(
                        f"step {name}: the partner answered HTTP {response.status_code} without the id "
                        f"(save.id: {step.save.get('id')!r}); the {step.link} may exist at the partner"
                    )
                with self.engine.begin() as conn:  # at once: a retry of this item skips the step
                    ensure_link(
                        conn,
                        connection_id=item.connection_id,
                        entity=step.link,
                        external_id=str(external_id),
                        internal_id=str(key),
                        synced_at=_now(),
                    )
            context["steps"][name] = saved

    def _request(
        self, request: Request, context: dict[str, Any], body: dict[str, Any], fmt: str, idempotency_key: str
    ) -> httpx.Response:
        client = self.target.client
        try:
            path = render(request.path, context)
            params = render_value(request.params, context) or None
            headers = {**render_value(request.headers, context), "Idempotency-Key": idempotency_key}
        except TemplateError as exc:
            raise OutboundError(f"{request.method} {request.path}: {exc}") from None
        kwargs: dict[str, Any] = {}
        if fmt == "json":
            kwargs["json"] = body
        elif fmt == "form":
            kwargs["data"] = {k: "" if v is None else str(v) for k, v in flatten(body).items()}
        else:
            assert self.outbound.csv is not None
            layout = self.outbound.csv
            try:
                header_block = {k: render(v, context) for k, v in layout.header_block.items()}
            except TemplateError as exc:
                raise OutboundError(f"csv header_block: {exc}") from None
            layout = layout.model_copy(update={"header_block": header_block})
            headers["Content-Type"] = "text/csv"
            kwargs["content"] = encode_csv(layout, [body]).encode("utf-8")
        response = client.request(request.method, path, params=params, headers=headers, **kwargs)
        if response.is_success:
            return response
        where = describe_call(client.partner, client.connection_id, request.method, path)
        raise RequestRejected(
            f"{where}: HTTP {response.status_code}: {_partner_message(response)}",
            partner=client.partner,
            connection_id=client.connection_id,
            status_code=response.status_code,
            method=request.method,
            path=path,
        )

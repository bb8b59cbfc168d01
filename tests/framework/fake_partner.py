"""A tiny in-memory partner for framework tests: one list endpoint, every pagination kind."""

from pathlib import Path
from typing import Any

import httpx

from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.connectors.spec import Connector

PAGINATION = {
    "offset": {"kind": "offset", "limit_param": "limit", "offset_param": "offset", "page_size": 5},
    "page_number": {"kind": "page_number", "page_param": "page", "size_param": "per_page", "page_size": 5},
    "cursor": {
        "kind": "cursor",
        "cursor_param": "after",
        "cursor_path": "meta.next",
        "size_param": "n",
        "page_size": 5,
    },
    "next_link": {"kind": "next_link", "next_path": "links.next"},
    "link_header": {"kind": "link_header"},
    "none": {"kind": "none"},
}


def make_records(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"J{i:04d}",
            "name": f"Job {i}",
            "state": "OPEN",
            "modified": f"2025-01-{1 + i % 28:02d}T10:00:00Z",
        }
        for i in range(n)
    ]


def connector(kind: str, incremental: bool = False) -> LoadedConnector:
    stream: dict[str, Any] = {
        "direction": "inbound",
        "entity": "job",
        "request": {"path": "/jobs"},
        "records": "items",
        "primary_key": "id",
        "mapping": {
            "external_id": "id",
            "title": "name",
            "status": {"path": "state", "map": {"OPEN": "open", "CLOSED": "closed"}},
            "remote_updated_at": {"path": "modified", "type": "datetime"},
        },
    }
    if incremental:
        stream["incremental"] = {"cursor_field": "modified", "param": "since"}
    spec = Connector.model_validate(
        {
            "name": "fake",
            "title": "Fake partner",
            "category": "other",
            "base_url": "https://partner.test/api",
            "auth": {"kind": "none"},
            "retry": {"max_attempts": 3, "initial_backoff_seconds": 0, "max_backoff_seconds": 0},
            "pagination": PAGINATION[kind],
            "streams": {"jobs": stream},
        }
    )
    return LoadedConnector(spec=spec, path=Path("fake/connector.yaml"))


class FakePartner:
    """Serves `records` under /api/jobs the way the chosen pagination kind expects."""

    def __init__(self, kind: str, records: list[dict[str, Any]]):
        self.kind = kind
        self.records = records
        self.requests: list[httpx.Request] = []
        self.fail_next: list[int] = []  # statuses to answer before serving normally

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_next:
            return httpx.Response(self.fail_next.pop(0), json={"error": "injected"})
        q = request.url.params
        rows = self.records
        if "since" in q:
            rows = [r for r in rows if r["modified"] >= q["since"]]
        size = 5
        if self.kind == "offset":
            start = int(q["offset"])
            return httpx.Response(200, json={"items": rows[start : start + int(q["limit"])]})
        if self.kind == "page_number":
            page = int(q["page"])
            return httpx.Response(200, json={"items": rows[(page - 1) * size : page * size]})
        if self.kind in ("cursor", "next_link", "link_header"):
            start = int(q.get("after", q.get("start", "0")))
            chunk = rows[start : start + size]
            more = start + size < len(rows)
            if self.kind == "cursor":
                return httpx.Response(
                    200, json={"items": chunk, "meta": {"next": str(start + size) if more else None}}
                )
            if self.kind == "next_link":
                body = {
                    "items": chunk,
                    "links": {"next": f"/api/jobs?start={start + size}" if more else None},
                }
                return httpx.Response(200, json=body)
            headers = (
                {"Link": f'<https://partner.test/api/jobs?start={start + size}>; rel="next"'} if more else {}
            )
            return httpx.Response(200, json={"items": chunk}, headers=headers)
        return httpx.Response(200, json={"items": rows})

"""Pagination kinds from the connector file, as small state machines.

A page's position is a JSON-able dict, so it can be saved as a checkpoint with the page's
rows and a crashed sync resumes exactly where it stopped.
"""

from typing import Any, Protocol

import httpx

from integration_pipelines.connectors import spec as s
from integration_pipelines.mapping.paths import get_path

PageState = dict[str, Any]


class Paginator(Protocol):
    def first(self) -> PageState: ...

    def request(self, state: PageState) -> tuple[str | None, dict[str, Any]]:
        """(absolute URL replacing the stream's path or None, extra query params)."""

    def next(self, state: PageState, response: httpx.Response, body: Any, records: list) -> PageState | None:
        """The next page's state, or None after the last page."""


class OffsetPaginator:
    def __init__(self, spec: s.OffsetPagination):
        self.spec = spec

    def first(self) -> PageState:
        return {"offset": 0}

    def request(self, state: PageState) -> tuple[str | None, dict[str, Any]]:
        return None, {self.spec.limit_param: self.spec.page_size, self.spec.offset_param: state["offset"]}

    def next(self, state: PageState, response: httpx.Response, body: Any, records: list) -> PageState | None:
        if len(records) < self.spec.page_size:
            return None
        return {"offset": state["offset"] + len(records)}


class PageNumberPaginator:
    def __init__(self, spec: s.PageNumberPagination):
        self.spec = spec

    def first(self) -> PageState:
        return {"page": self.spec.first_page}

    def request(self, state: PageState) -> tuple[str | None, dict[str, Any]]:
        params: dict[str, Any] = {self.spec.page_param: state["page"]}
        if self.spec.size_param:
            params[self.spec.size_param] = self.spec.page_size
        return None, params

    def next(self, state: PageState, response: httpx.Response, body: Any, records: list) -> PageState | None:
        if not records or (self.spec.size_param and len(records) < self.spec.page_size):
            return None
        if self.spec.total_pages_path:
            total = get_path(body, self.spec.total_pages_path)
            if total is not None and state["page"] - self.spec.first_page + 1 >= int(total):
                return None
        return {"page": state["page"] + 1}


class CursorPaginator:
    def __init__(self, spec: s.CursorPagination):
        self.spec = spec

    def first(self) -> PageState:
        return {"cursor": None}

    def request(self, state: PageState) -> tuple[str | None, dict[str, Any]]:
        params: dict[str, Any] = {}
        if state["cursor"] is not None:
            params[self.spec.cursor_param] = state["cursor"]
        if self.spec.size_param:
            params[self.spec.size_param] = self.spec.page_size
        return None, params

    def next(self, state: PageState, response: httpx.Response, body: Any, records: list) -> PageState | None:
        cursor = get_path(body, self.spec.cursor_path)
        if not records or cursor in (None, "") or cursor == state["cursor"]:
            return None
        return {"cursor": cursor}


class NextLinkPaginator:
    def __init__(self, spec: s.NextLinkPagination):
        self.spec = spec

    def first(self) -> PageState:
        return {"url": None}

    def request(self, state: PageState) -> tuple[str | None, dict[str, Any]]:
        return state["url"], {}

    def next(self, state: PageState, response: httpx.Response, body: Any, records: list) -> PageState | None:
        link = get_path(body, self.spec.next_path)
        if not link or not records:
            return None
        return {"url": str(response.request.url.join(link))}


class LinkHeaderPaginator:
    def __init__(self, spec: s.LinkHeaderPagination):
        self.spec = spec

    def first(self) -> PageState:
        return {"url": None}

    def request(self, state: PageState) -> tuple[str | None, dict[str, Any]]:
        return state["url"], {}

    def next(self, state: PageState, response: httpx.Response, body: Any, records: list) -> PageState | None:
        link = response.links.get(self.spec.rel, {}).get("url")
        if not link or not records:
            return None
        return {"url": str(response.request.url.join(link))}


class SinglePage:
    def __init__(self, spec: s.NoPagination | None = None):
        self.spec = spec

    def first(self) -> PageState:
        return {}

    def request(self, state: PageState) -> tuple[str | None, dict[str, Any]]:
        return None, {}

    def next(self, state: PageState, response: httpx.Response, body: Any, records: list) -> PageState | None:
        return None


_KINDS: dict[str, type] = {
    "offset": OffsetPaginator,
    "page_number": PageNumberPaginator,
    "cursor": CursorPaginator,
    "next_link": NextLinkPaginator,
    "link_header": LinkHeaderPaginator,
    "none": SinglePage,
}


def paginator_for(spec: s.PaginationSpec) -> Paginator:
    return _KINDS[spec.kind](spec)

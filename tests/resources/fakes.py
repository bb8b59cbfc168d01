"""Fakes for the API & auth layer: a clock that fake sleeps advance, a recording transport."""

import json
from collections.abc import Callable
from urllib.parse import parse_qsl

import httpx


class FakeClock:
    """`clock()` returns fake time; `sleep(s)` records `s` and advances it. Nothing really waits."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder:
    """A MockTransport handler that records requests and answers from a script or a function."""

    def __init__(self, respond: Callable[[httpx.Request], httpx.Response]) -> None:
        self.respond = respond
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.respond(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]


def script(*responses: httpx.Response | Exception) -> Callable[[httpx.Request], httpx.Response]:
    """Answer with `responses` in order (an exception is raised); the last one repeats."""
    queue = list(responses)

    def respond(request: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return respond


def token_response(access_token: str, expires_in: int | None = 3600, **extra: object) -> httpx.Response:
    body: dict[str, object] = {"access_token": access_token, "token_type": "Bearer", **extra}
    if expires_in is not None:
        body["expires_in"] = expires_in
    return httpx.Response(200, json=body)


def form(request: httpx.Request) -> dict[str, str]:
    return dict(parse_qsl(request.content.decode()))


def body_json(request: httpx.Request) -> object:
    return json.loads(request.content)

"""Fault injection for the partner simulators.

A test (or a person using the admin endpoint ``POST /_sandbox/faults``) arms a fault with
``FaultInjector.inject(kind, count, tenant=..., path_contains=..., **params)``; the next
``count`` requests that match it are answered with the fault instead of (or on top of) the
normal answer. Faults are consumed in the order they were injected. ``after=n`` lets the first
``n`` matching requests through untouched first (a fault in the middle of a stream: the third
document sent to a parser, the second page of a list).

Kinds and what they do (the partner-specific shape of each answer lives in the simulator):

``rate_limit``        429 with the partner's error body and rate headers. ``retry_after``
                      (seconds, default 1) goes to ``Retry-After`` or, for Beeline, to
                      ``X-Rate-Limit-Reset`` (with ``X-Rate-Limit-Remaining: 0``).
``server_error``      500, or ``status`` (e.g. 502, 503). 502 and 504 look like a gateway
                      answered: no body. Other statuses carry the partner's error body.
``slow``              sleep ``seconds`` (default 2) and then answer normally; combines with
                      one other fault on the same request.
``expire_token``      the bearer token on the request is treated as expired (401) and stays
                      invalid. OAuth partners only (Beeline, SAP Fieldglass).
``malformed_record``  the records of the next page break the canonical contract while the
                      body stays valid JSON/XML (missing title, impossible date, negative
                      bill rate); CV parsers answer with a per-document error instead.
``malformed_page``    status 200 with a truncated body (invalid JSON/XML).
``duplicate_page``    the previous page (last data answer served to that tenant on that
                      endpoint) is served again instead of the requested one.
``schema_drift``      records gain an unknown field and lose an optional one.
``down``              503 with no body.
"""

import threading
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS: tuple[str, ...] = (
    "rate_limit",
    "server_error",
    "slow",
    "expire_token",
    "malformed_record",
    "malformed_page",
    "duplicate_page",
    "schema_drift",
    "down",
)

#: Faults decided before authentication: they look like the network or a gateway failing.
TRANSPORT_FAULTS: frozenset[str] = frozenset({"rate_limit", "server_error", "slow", "down"})
#: Faults that change the content of a data answer; only data endpoints consume them.
DATA_FAULTS: frozenset[str] = frozenset(
    {"malformed_record", "malformed_page", "duplicate_page", "schema_drift"}
)

_ALLOWED_PARAMS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "rate_limit": {"retry_after": (int, float)},
    "server_error": {"status": int},
    "slow": {"seconds": (int, float)},
}


@dataclass
class Fault:
    """One armed fault: what to do, how many more times, and which requests it matches."""

    id: int
    kind: str
    remaining: int
    tenant: str | None = None
    path_contains: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    after: int = 0  # matching requests still to let through before the fault applies

    def matches(self, tenant: str | None, path: str) -> bool:
        if self.tenant is not None and self.tenant != tenant:
            return False
        if self.path_contains is not None and self.path_contains not in path:
            return False
        return True

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "remaining": self.remaining,
            "tenant": self.tenant,
            "path_contains": self.path_contains,
            "params": dict(self.params),
            "after": self.after,
        }


class FaultInjector:
    """Thread-safe queue of armed faults, shared by one simulator's request handlers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._next_id = 1

    def inject(
        self,
        kind: str,
        count: int = 1,
        *,
        tenant: str | None = None,
        path_contains: str | None = None,
        after: int = 0,
        **params: Any,
    ) -> Fault:
        """Arm ``kind`` for the next ``count`` matching requests and return the armed fault.

        Raises ``ValueError`` for an unknown kind, a non-positive count or a parameter the
        kind does not take (so a typo in a test fails loudly instead of silently).
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"fault count must be a positive integer, got {count!r}")
        if not isinstance(after, int) or isinstance(after, bool) or after < 0:
            raise ValueError(f"fault 'after' must be zero or a positive integer, got {after!r}")
        allowed = _ALLOWED_PARAMS.get(kind, {})
        for name, value in params.items():
            if name not in allowed:
                raise ValueError(
                    f"fault kind {kind!r} takes no parameter {name!r}"
                    + (f"; it takes {', '.join(allowed)}" if allowed else "")
                )
            if isinstance(value, bool) or not isinstance(value, allowed[name]):
                raise ValueError(f"fault parameter {name!r} must be a number, got {value!r}")
        if kind == "server_error" and "status" in params and not 500 <= params["status"] <= 599:
            raise ValueError(f"server_error status must be 5xx, got {params['status']}")
        with self._lock:
            fault = Fault(
                id=self._next_id,
                kind=kind,
                remaining=count,
                tenant=tenant,
                path_contains=path_contains,
                params=dict(params),
                after=after,
            )
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()

    def active(self) -> list[dict[str, Any]]:
        """Snapshot of the armed faults, oldest first."""
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def take(self, tenant: str | None, path: str, kinds: frozenset[str] | set[str]) -> Fault | None:
        """Consume one use of the oldest armed fault of one of ``kinds`` matching the request.

        Returns a copy (with ``remaining`` as it was after this use) or ``None``.
        """
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and fault.matches(tenant, path):
                    if fault.after > 0:  # this request passes; later faults may still apply
                        fault.after -= 1
                        continue
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return Fault(
                        id=fault.id,
                        kind=fault.kind,
                        remaining=fault.remaining,
                        tenant=fault.tenant,
                        path_contains=fault.path_contains,
                        params=dict(fault.params),
                    )
        return None

"""What can go wrong when talking to a partner, classified the way Airbyte classifies failures.

`failure_type` tells the sync layer (and whoever is on call) what to do about it:

* ``config_error`` -- the connection is wrong (bad or revoked credentials, a request the partner
  refuses). Retrying will not help; somebody has to fix the connection.
* ``transient_error`` -- the partner is rate limiting, down or slow. Try again later.
* ``system_error`` -- something unexpected (a body that cannot be parsed). Look at the code or
  at the partner's change log.

Messages say what failed, where (partner, connection, method, path) and what to do. They never
contain secrets, tokens, query strings or request bodies: whoever raises one builds the message
from :func:`describe_call`, which keeps only the path.
"""

from typing import Any, Literal
from urllib.parse import urlsplit

FailureType = Literal["config_error", "transient_error", "system_error"]


def safe_path(url_or_path: str) -> str:
    """The path of a URL or path, without query string, fragment, scheme, host or user info."""
    if not url_or_path:
        return "/"
    parts = urlsplit(url_or_path)
    return parts.path or "/"


def describe_call(
    partner: str, connection_id: str, method: str | None = None, path: str | None = None
) -> str:
    """``"acme (connection c-1): GET /candidates"`` -- the 'where' of a message, safe to log."""
    where = partner or "partner"
    if connection_id:
        where += f" (connection {connection_id})"
    if method or path:
        where += ":"
        if method:
            where += f" {method.upper()}"
        if path:
            where += f" {safe_path(path)}"
    return where


def _restore(cls: type, state: dict[str, Any]) -> "PartnerError":
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class PartnerError(Exception):
    """Base of every error raised while calling a partner; carries the Airbyte-style failure type."""

    failure_type: FailureType = "system_error"

    def __init__(
        self,
        message: str,
        *,
        partner: str = "",
        connection_id: str = "",
        status_code: int | None = None,
        method: str | None = None,
        path: str | None = None,
        failure_type: FailureType | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.partner = partner
        self.connection_id = connection_id
        self.status_code = status_code
        self.method = method.upper() if method else None
        self.path = safe_path(path) if path else None
        if failure_type is not None:
            self.failure_type = failure_type

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # keyword-only attributes survive pickling (Dagster sends errors across processes)
        return (_restore, (type(self), dict(self.__dict__)))

    @property
    def is_transient(self) -> bool:
        """True when trying again later may succeed."""
        return self.failure_type == "transient_error"


class AuthenticationFailed(PartnerError):
    """The partner (or its token endpoint) refused the connection's credentials."""

    failure_type: FailureType = "config_error"


class RateLimited(PartnerError):
    """The partner kept answering 429 until the retries ran out."""

    failure_type: FailureType = "transient_error"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PartnerUnavailable(PartnerError):
    """5xx, timeouts or connection errors until the retries ran out, or the circuit breaker is open."""

    failure_type: FailureType = "transient_error"

    def __init__(self, message: str, *, breaker_open: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.breaker_open = breaker_open


class MalformedResponse(PartnerError):
    """The partner answered with a body that cannot be parsed."""

    failure_type: FailureType = "system_error"


class RequestRejected(PartnerError):
    """The partner refused a request with a 4xx that is not about credentials."""

    failure_type: FailureType = "config_error"


__all__ = [
    "AuthenticationFailed",
    "FailureType",
    "MalformedResponse",
    "PartnerError",
    "PartnerUnavailable",
    "RateLimited",
    "RequestRejected",
    "describe_call",
    "safe_path",
]

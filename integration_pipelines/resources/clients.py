"""Building a connection's partner client from its connector file, config and secrets.

Also the SSRF guard: a connection may only call hosts its connector allows (`allowed_hosts`),
over https, and never an internal address: loopback, private, link-local (cloud metadata),
shared, reserved or unspecified. A host name is resolved and *every* address it resolves to
is checked, so a name in an allowed domain that points at 127.0.0.1 or 169.254.169.254 is
refused too. The local simulators' loopback addresses are allowed in sandbox mode only.

The guard runs when a connection is added (`check_base_url`), when its client is built
(`base_url_for`) and again on every request the client sends (`GuardedTransport`): a
partner's next-page link or a token URL to another host is refused before anything (or any
credential) is sent, and a name is resolved again just before each request, which narrows a
DNS-rebinding window to the time between that check and the connection. A name that does
not resolve passes: nothing can be reached through it.
"""

import functools
import ipaddress
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterable
from fnmatch import fnmatch

import httpx

from integration_pipelines.connections import Connection
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.connectors.spec import Connector
from integration_pipelines.resources.auth import build_auth
from integration_pipelines.resources.errors import RequestRejected
from integration_pipelines.resources.partner_client import PartnerClient
from integration_pipelines.templates import render

LOOPBACK_NAMES = {"localhost"}

Resolver = Callable[[str, int], Iterable[str]]


def resolve_host(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (empty when it does not resolve)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def _is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") in LOOPBACK_NAMES:
        return True
    ip = _ip(host)
    return ip is not None and ip.is_loopback


def _is_internal(host: str) -> bool:
    """Loopback, private, link-local (cloud metadata), shared, reserved or unspecified addresses:
    anything that is not a global unicast address."""
    if _is_loopback(host):
        return True
    ip = _ip(host)
    return ip is not None and (not ip.is_global or ip.is_multicast)


def check_url(
    url: str,
    *,
    partner: str,
    connection_id: str,
    allowed_hosts: Iterable[str],
    allow_loopback: bool = False,
    resolve: Resolver | None = resolve_host,
    what: str = "base URL",
) -> str:
    """`url` if a connection may call it, else `RequestRejected` saying why (no secret in it:
    only scheme and host are named)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise RequestRejected(
            f"connection {connection_id}: {what} is not a valid URL",
            partner=partner,
            connection_id=connection_id,
        ) from None
    host = parsed.host
    allowed = list(allowed_hosts)

    def refuse(reason: str) -> RequestRejected:
        return RequestRejected(
            f"connection {connection_id}: {reason} (allowed for {partner}: {', '.join(allowed) or 'none'}; "
            "loopback only in sandbox mode)",
            partner=partner,
            connection_id=connection_id,
        )

    if not host:
        raise refuse(f"{what} has no host")
    if allow_loopback and _is_loopback(host):
        return url
    if parsed.scheme != "https":
        raise refuse(f"{what} must use https (got {parsed.scheme}://{host})")
    if _is_internal(host) or (allowed and not any(fnmatch(host, pattern) for pattern in allowed)):
        raise refuse(f"host {host!r} is not allowed")
    if resolve is not None and _ip(host) is None:
        for address in resolve(host, parsed.port or 443):
            if _is_internal(address) and not (allow_loopback and _is_loopback(address)):
                raise refuse(f"host {host!r} resolves to the internal address {address}")
    return url


def check_base_url(
    spec: Connector,
    config: dict,
    *,
    connection_id: str,
    allow_loopback: bool = False,
    resolve: Resolver | None = resolve_host,
) -> str:
    """The base URL a connection with `config` would call, checked (see `check_url`)."""
    url = config.get("base_url") or render(spec.base_url, {"config": config})
    return check_url(
        url,
        partner=spec.name,
        connection_id=connection_id,
        allowed_hosts=spec.allowed_hosts,
        allow_loopback=allow_loopback,
        resolve=resolve,
    )


def base_url_for(
    connector: LoadedConnector,
    connection: Connection,
    *,
    allow_loopback: bool = False,
    resolve: Resolver | None = resolve_host,
) -> str:
    """The connection's base URL (its override or the connector's template), checked against allowed hosts."""
    return check_base_url(
        connector.spec,
        connection.config,
        connection_id=connection.id,
        allow_loopback=allow_loopback,
        resolve=resolve,
    )


class GuardedTransport(httpx.BaseTransport):
    """Checks every request's URL with `check_url` before handing it to the real transport."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        partner: str,
        connection_id: str,
        allowed_hosts: Iterable[str],
        allow_loopback: bool,
        resolve: Resolver | None = resolve_host,
    ) -> None:
        self.inner = inner
        self._check = dict(
            partner=partner,
            connection_id=connection_id,
            allowed_hosts=list(allowed_hosts),
            allow_loopback=allow_loopback,
            resolve=resolve,
            what="request URL",
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        check_url(str(request.url), **self._check)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def _default_transport(base_url: str) -> httpx.BaseTransport:
    """What httpx would use without a transport: honours an HTTPS_PROXY/HTTP_PROXY of the
    environment (httpx ignores them once a transport is given)."""
    parsed = httpx.URL(base_url)
    proxy = None
    if parsed.host and not urllib.request.proxy_bypass(parsed.host):
        proxy = urllib.request.getproxies().get(parsed.scheme)
    return httpx.HTTPTransport(verify=_tls_context(), proxy=proxy or None)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process: loading the CA bundle costs ~50 ms, too much to
    pay again for every sync (an incremental sync of a few records takes about that long)."""
    return httpx.create_ssl_context()


def build_partner_client(
    connector: LoadedConnector,
    connection: Connection,
    credentials: dict[str, str],
    *,
    allow_loopback: bool = False,
    on_token: Callable[[dict], None] | None = None,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PartnerClient:
    """A rate-limited, retrying client with the connection's auth and default headers."""
    spec = connector.spec
    base_url = base_url_for(connector, connection, allow_loopback=allow_loopback)
    transport = GuardedTransport(
        transport if transport is not None else _default_transport(base_url),
        partner=connector.name,
        connection_id=connection.id,
        allowed_hosts=spec.allowed_hosts,
        allow_loopback=allow_loopback,
    )
    namespaces = {"credentials": credentials, "config": connection.config}
    headers = {name: render(value, namespaces) for name, value in spec.headers.items()}
    auth = build_auth(
        spec.auth,
        credentials,
        base_url=base_url,
        transport=transport,
        on_token=on_token,
        timeout=spec.retry.timeout_seconds,  # the token endpoint keeps the connector's timeout too
        partner=connector.name,
        connection_id=connection.id,
    )
    return PartnerClient(
        partner=connector.name,
        connection_id=connection.id,
        base_url=base_url,
        auth=auth,
        headers=headers,
        rate_limit=spec.rate_limit,
        retry=spec.retry,
        transport=transport,
        sleep=sleep,
    )

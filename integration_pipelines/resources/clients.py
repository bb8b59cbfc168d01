"""Building a connection's partner client from its connector file, config and secrets.

Also the SSRF guard: a connection may only call hosts its connector allows; the local
simulators' loopback addresses are allowed in sandbox mode only.
"""

import ipaddress
import time
from collections.abc import Callable
from fnmatch import fnmatch

import httpx

from integration_pipelines.connections import Connection
from integration_pipelines.connectors.registry import LoadedConnector
from integration_pipelines.resources.auth import build_auth
from integration_pipelines.resources.errors import RequestRejected
from integration_pipelines.resources.partner_client import PartnerClient
from integration_pipelines.templates import render

LOOPBACK_NAMES = {"localhost"}


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_internal(host: str) -> bool:
    """Loopback, private, link-local (cloud metadata) or reserved addresses."""
    if _is_loopback(host):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_multicast


def base_url_for(connector: LoadedConnector, connection: Connection, *, allow_loopback: bool = False) -> str:
    """The connection's base URL (its override or the connector's template), checked against allowed hosts."""
    override = connection.config.get("base_url")
    url = override or render(connector.spec.base_url, {"config": connection.config})
    parsed = httpx.URL(url)
    host = parsed.host
    allowed = connector.spec.allowed_hosts
    if allow_loopback and _is_loopback(host):
        return url
    if parsed.scheme != "https":
        raise RequestRejected(
            f"connection {connection.id}: base URL must use https (got {parsed.scheme}://{host})",
            partner=connector.name,
            connection_id=connection.id,
        )
    if _is_internal(host) or (allowed and not any(fnmatch(host, pattern) for pattern in allowed)):
        raise RequestRejected(
            f"connection {connection.id}: host {host!r} is not allowed for {connector.name} "
            f"(allowed: {', '.join(allowed) or 'none'}; loopback only in sandbox mode)",
            partner=connector.name,
            connection_id=connection.id,
        )
    return url


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
    namespaces = {"credentials": credentials, "config": connection.config}
    headers = {name: render(value, namespaces) for name, value in spec.headers.items()}
    auth = build_auth(
        spec.auth,
        credentials,
        base_url=base_url,
        transport=transport,
        on_token=on_token,
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

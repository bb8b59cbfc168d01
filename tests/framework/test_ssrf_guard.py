"""A connection may only call the hosts its connector allows; loopback only in sandbox mode."""

import pytest

from integration_pipelines.connections import Connection
from integration_pipelines.connectors.registry import get_connector
from integration_pipelines.resources.clients import base_url_for
from integration_pipelines.resources.errors import RequestRejected


def connection(connector: str, **config: str) -> Connection:
    return Connection(id=f"acme/{connector}", tenant_id="acme", connector=connector, config=config)


def test_template_fills_config_and_allowed_hosts_pass() -> None:
    fg = get_connector("sap_fieldglass")
    assert base_url_for(fg, connection("sap_fieldglass", environment="psg4", domain="fgvms.eu")) == (
        "https://psg4.fgvms.eu/api"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.com/api",
        "http://gwg.cloud.utmost.co/api",
        "https://127.0.0.1/api",
        "https://169.254.169.254/latest",
        "http://localhost:8080",
    ],
)
def test_other_hosts_are_refused(url: str) -> None:
    with pytest.raises(RequestRejected, match="not allowed|https"):
        base_url_for(get_connector("beeline"), connection("beeline", base_url=url))


def test_loopback_only_in_sandbox_mode() -> None:
    beeline = get_connector("beeline")
    local = connection("beeline", base_url="http://127.0.0.1:9999/api/gwg/supplier")
    with pytest.raises(RequestRejected):
        base_url_for(beeline, local)
    assert base_url_for(beeline, local, allow_loopback=True).startswith("http://127.0.0.1:9999")


def test_internal_addresses_are_refused_even_without_an_allow_list() -> None:
    from pathlib import Path

    from integration_pipelines.connectors.registry import LoadedConnector
    from integration_pipelines.connectors.spec import Connector

    spec = get_connector("beeline").spec.model_copy(update={"allowed_hosts": []})
    open_connector = LoadedConnector(
        spec=Connector.model_validate(spec.model_dump(by_alias=True)), path=Path("x")
    )
    assert base_url_for(open_connector, connection("beeline", base_url="https://api.partner.example/v1"))
    for url in ("https://10.0.0.5/api", "https://169.254.169.254/", "https://[::1]/", "https://192.168.1.1/"):
        with pytest.raises(RequestRejected):
            base_url_for(open_connector, connection("beeline", base_url=url))

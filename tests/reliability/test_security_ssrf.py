"""SSRF: a connection can only make the framework call its connector's allowed hosts.

tests/framework/test_ssrf_guard.py checks `base_url_for` on literal URLs. Here: host names are
resolved and every address is checked (a name in an allowed domain that points at loopback,
the cloud metadata service or a private network is refused), odd spellings of internal
addresses, the guard at `connections add` (CLI and ConnectionStore: nothing is stored for a
refused connection), at sync time (direct, CLI and Dagster), and on every request a client
sends (a partner's next-page link or an absolute URL to another host never leaves, and so
never carries the connection's credentials). The sandbox's loopback simulators work in
sandbox mode only.
"""

import socket
from pathlib import Path

import dagster as dg
import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from integration_pipelines.canonical.tables import connections, tenants
from integration_pipelines.cli.main import cli
from integration_pipelines.connections import Connection, ConnectionConfigError
from integration_pipelines.connectors.registry import LoadedConnector, get_connector, load_connectors
from integration_pipelines.connectors.spec import Connector
from integration_pipelines.definitions import build_definitions, sync_job_name
from integration_pipelines.resources.clients import base_url_for, build_partner_client
from integration_pipelines.resources.dagster_resources import default_resources
from integration_pipelines.resources.errors import RequestRejected
from integration_pipelines.sync.service import sync_stream
from tests.helpers import connect, scalar

INTERNAL = ["127.0.0.1", "169.254.169.254", "10.1.2.3", "192.168.0.10", "100.64.0.1", "::1", "fd00::1"]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names to fake DNS answers (every other name resolves as usual)."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in answers[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def conn_to(connector: str, url: str) -> Connection:
    return Connection(id=f"acme/{connector}", tenant_id="acme", connector=connector, config={"base_url": url})


def open_connector() -> LoadedConnector:
    """Beeline without an allow list: only the internal-address checks apply."""
    spec = get_connector("beeline").spec.model_dump(by_alias=True)
    spec["allowed_hosts"] = []
    return LoadedConnector(spec=Connector.model_validate(spec), path=Path("x"))


# ---------------------------------------------------------------- resolution


@pytest.mark.parametrize("address", INTERNAL)
def test_an_allowed_name_that_resolves_inside_is_refused(dns, address: str) -> None:
    dns["gwg.cloud.utmost.co"] = [address]
    with pytest.raises(RequestRejected, match=f"resolves to the internal address {address}"):
        base_url_for(get_connector("beeline"), conn_to("beeline", "https://gwg.cloud.utmost.co/api"))


def test_every_address_is_checked_not_just_the_first(dns) -> None:
    dns["gwg.cloud.utmost.co"] = ["93.184.216.34", "169.254.169.254"]
    with pytest.raises(RequestRejected, match="169.254.169.254"):
        base_url_for(get_connector("beeline"), conn_to("beeline", "https://gwg.cloud.utmost.co/api"))
    dns["gwg.cloud.utmost.co"] = ["93.184.216.34", "2606:2800:220:1::1"]
    url = "https://gwg.cloud.utmost.co/api"
    assert base_url_for(get_connector("beeline"), conn_to("beeline", url)) == url


def test_sandbox_mode_allows_loopback_answers_only(dns) -> None:
    beeline = get_connector("beeline")
    dns["gwg.cloud.utmost.co"] = ["127.0.0.1"]
    url = "https://gwg.cloud.utmost.co/api"
    assert base_url_for(beeline, conn_to("beeline", url), allow_loopback=True) == url
    dns["gwg.cloud.utmost.co"] = ["169.254.169.254"]
    with pytest.raises(RequestRejected, match="169.254.169.254"):
        base_url_for(beeline, conn_to("beeline", url), allow_loopback=True)
    with pytest.raises(RequestRejected, match="loopback only in sandbox mode"):
        base_url_for(beeline, conn_to("beeline", "http://127.0.0.1:1/api"))


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/",  # 127.0.0.1 as one number (resolves to loopback)
        "https://0x7f000001/",
        "https://127.1/",
        "https://0.0.0.0/",
        "https://[::ffff:127.0.0.1]/",
        "https://[::ffff:169.254.169.254]/",
        "https://[::]/",
        "https://100.64.0.1/",  # carrier-grade NAT: not global
        "https://localhost./",
        "https://LOCALHOST/",
    ],
)
def test_odd_spellings_of_internal_addresses_are_refused(url: str) -> None:
    with pytest.raises(RequestRejected):
        base_url_for(open_connector(), conn_to("beeline", url))


# ---------------------------------------------------------------- when a connection is added


def test_store_refuses_outside_hosts_and_stores_nothing(store, dns) -> None:
    beeline = get_connector("beeline").spec
    dns["evil.cloud.utmost.co"] = ["169.254.169.254"]
    for url in (
        "https://evil.example.com/api",
        "http://gwg.cloud.utmost.co/api",
        "https://169.254.169.254/latest",
        "https://gwg.cloud.utmost.co.evil.example/api",
    ):
        with pytest.raises(ConnectionConfigError, match="not allowed|https"):
            store.add("acme", beeline, {"base_url": url})
    # a template filled from config is checked too: a domain outside the allow list
    with pytest.raises(ConnectionConfigError, match="not allowed"):
        store.add("acme", get_connector("daxtra").spec, {"host": "cvx.evil.example"})
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(connections)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(tenants)).scalar_one() == 0
    # loopback (the sandbox) is accepted by the store, and refused when the caller says so
    assert store.add("acme", beeline, {"base_url": "http://127.0.0.1:9/api"}).id == "acme/beeline"
    with pytest.raises(ConnectionConfigError, match="loopback only in sandbox mode"):
        store.add("acme", beeline, {"base_url": "http://127.0.0.1:9/api"}, suffix="2", allow_loopback=False)


def test_cli_connections_add_refuses_outside_hosts(tmp_path: Path, dns) -> None:
    runner = CliRunner()
    env = {"INTEGRATION_DATABASE_URL": f"sqlite:///{tmp_path / 'ats.db'}"}
    dns["evil.fgvms.com"] = ["10.0.0.7"]

    def add(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["connections", "add", *args], env=env)
        return result.exit_code, result.output

    for args, reason in (
        (
            ("acme", "beeline", "--config", "base_url=https://evil.example.com/api"),
            "'evil.example.com' is not allowed",
        ),
        (
            ("acme", "beeline", "--config", "base_url=http://127.0.0.1:8080/api"),
            "loopback only in sandbox mode",
        ),
        (("acme", "daxtra", "--config", "host=169.254.169.254"), "not allowed"),
        (
            ("acme", "sap_fieldglass", "--config", "environment=evil", "--config", "domain=fgvms.com"),
            "10.0.0.7",
        ),
    ):
        code, output = add(*args)
        assert code == 1 and reason in output, (args, output)
    listed = runner.invoke(cli, ["connections", "list"], env=env).output
    assert "acme/" not in listed
    code, output = add("acme", "beeline", "--sandbox", "--config", "base_url=http://127.0.0.1:8080/api")
    assert code == 0 and "added acme/beeline" in output, output
    code, output = add("acme", "textkernel", "--sandbox", "--config", "base_url=https://evil.example.com")
    assert code == 1 and "not allowed" in output  # --sandbox allows loopback, nothing else


# ---------------------------------------------------------------- when a sync runs


def _repoint(store, connection_id: str, url: str) -> None:
    """The base URL changed behind the guard's back (an old row, a hand edit)."""
    connection = store.get(connection_id)
    with store.engine.begin() as conn:
        conn.execute(
            connections.update()
            .where(connections.c.id == connection_id)
            .values(config={**connection.config, "base_url": url})
        )


def test_sync_refuses_outside_hosts_and_loopback_outside_sandbox(store, sandbox, tenant, dns) -> None:
    beeline = get_connector("beeline")
    connection_id, _ = connect(store, sandbox, beeline, tenant)
    # the sandbox's loopback simulator: refused outside sandbox mode, fine inside it
    with pytest.raises(RequestRejected, match="loopback only in sandbox mode"):
        sync_stream(store.engine, store.vault, connection_id, "job_postings", allow_loopback=False)
    count = f"select count(*) from job where tenant_id = '{tenant}'"
    assert scalar(store.engine, count) == 0
    report = sync_stream(store.engine, store.vault, connection_id, "job_postings", allow_loopback=True)
    assert report.status == "succeeded" and scalar(store.engine, count) == report.written > 0

    dns["api.cloud.utmost.co"] = ["169.254.169.254"]
    for url in (
        "https://evil.example.com/api",
        "https://api.cloud.utmost.co/api",
        "https://169.254.169.254/",
    ):
        _repoint(store, connection_id, url)
        with pytest.raises(RequestRejected, match="not allowed|internal address"):
            sync_stream(store.engine, store.vault, connection_id, "job_postings", allow_loopback=True)


def test_cli_sync_and_dagster_refuse_loopback_outside_sandbox(
    store, sandbox, tenant, tmp_path, monkeypatch, vault_key
) -> None:
    beeline = get_connector("beeline")
    connection_id, _ = connect(store, sandbox, beeline, tenant)
    db_url = store.engine.url.render_as_string(hide_password=False)
    env = {"INTEGRATION_DATABASE_URL": db_url, "INTEGRATION_VAULT_KEYS": vault_key}
    result = CliRunner().invoke(cli, ["sync", connection_id, "--stream", "job_postings"], env=env)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "loopback only in sandbox mode" in result.output, result.output

    monkeypatch.setenv("INTEGRATION_DATABASE_URL", db_url)
    monkeypatch.setenv("INTEGRATION_VAULT_KEYS", vault_key)
    monkeypatch.delenv("INTEGRATION_SANDBOX", raising=False)
    defs = build_definitions(list(load_connectors().values()), resources=default_resources())
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions("beeline_connections", [connection_id])
    result = defs.resolve_job_def(sync_job_name("beeline")).execute_in_process(
        partition_key=connection_id, instance=instance, raise_on_error=False
    )
    assert not result.success
    messages = [e.event_specific_data.error.message for e in result.get_step_failure_events()]
    assert messages and all("loopback only in sandbox mode" in m for m in messages), messages
    assert scalar(store.engine, f"select count(*) from job where tenant_id = '{tenant}'") == 0


# ---------------------------------------------------------------- every request


def test_no_request_leaves_for_another_host(dns) -> None:
    """A next-page link, a redirect target or any absolute URL to a host the connector does not
    allow is refused before it is sent: the partner's credentials never go there."""
    sent: list[httpx.Request] = []

    def partner(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"ok": True})

    textkernel = get_connector("textkernel")
    connection = Connection(
        id="acme/textkernel", tenant_id="acme", connector="textkernel", config={"data_center": "us"}
    )
    credentials = {"account_id": "acct-1", "service_key": "svc-key-0123456789"}
    dns["api.eu.textkernel.com"] = ["169.254.169.254"]
    with build_partner_client(
        textkernel, connection, credentials, transport=httpx.MockTransport(partner)
    ) as client:
        assert client.get("/parser/resume").status_code == 200  # the partner itself: fine
        for url in (
            "https://evil.example.com/next?page=2",
            "http://169.254.169.254/latest/meta-data/",
            "http://api.us.textkernel.com/tx/v10/next",  # plain http
            "https://api.eu.textkernel.com/tx/v10/next",  # allowed name, internal address
        ):
            with pytest.raises(RequestRejected):
                client.get(url)
    assert [str(r.url.host) for r in sent] == ["api.us.textkernel.com"]

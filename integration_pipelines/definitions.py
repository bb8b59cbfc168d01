"""The Dagster code location: everything generated from the connector files."""

import dagster as dg

from integration_pipelines.assets.checks import build_stream_checks, with_freshness
from integration_pipelines.assets.sync_assets import (
    build_ats_entities,
    build_connector_assets,
    sync_asset_key,
    webhook_events_key,
)
from integration_pipelines.connectors.registry import LoadedConnector, load_connectors
from integration_pipelines.outbox.dagster_defs import build_outbox_job, build_outbox_sensor
from integration_pipelines.resources.dagster_resources import default_resources
from integration_pipelines.sensors.connections_sensor import build_connections_sensor
from integration_pipelines.sensors.health_sensor import build_health_sensor, build_run_failure_sensor
from integration_pipelines.sensors.inbox_sensor import build_inbox_sensor
from integration_pipelines.sensors.schedules import build_poll_schedule


def sync_job_name(connector: str) -> str:
    return f"{connector}_sync"


def webhooks_job_name(connector: str) -> str:
    return f"{connector}_webhooks"


def build_definitions(connectors: list[LoadedConnector], resources: dict | None = None) -> dg.Definitions:
    """Assets, jobs, schedules and sensors for `connectors`."""
    assets: list = []
    jobs, schedules, sensors = [], [], [build_connections_sensor(connectors)]
    asset_checks: list = []
    for connector in connectors:
        assets.extend(with_freshness(build_connector_assets(connector), connector))
        asset_checks.extend(build_stream_checks(connector))
        keys = [sync_asset_key(connector.name, s) for s in connector.spec.inbound_streams()]
        if not keys:
            continue
        job = dg.define_asset_job(
            sync_job_name(connector.name),
            selection=dg.AssetSelection.assets(*keys),
            description=f"Sync every inbound stream of one {connector.spec.title} connection.",
            tags={"connector": connector.name},
        )
        jobs.append(job)
        schedules.append(build_poll_schedule(connector, job))
        if connector.spec.webhooks:
            webhooks_job = dg.define_asset_job(
                webhooks_job_name(connector.name),
                selection=dg.AssetSelection.assets(webhook_events_key(connector.name)),
                description=f"Apply pending {connector.spec.title} webhook events of one connection.",
                tags={"connector": connector.name},
            )
            jobs.append(webhooks_job)
            sensors.append(build_inbox_sensor(connector, webhooks_job))
    assets.extend(build_ats_entities(connectors))
    outbox_job = build_outbox_job()
    jobs.append(outbox_job)
    sensors.append(build_outbox_sensor(outbox_job))
    by_name = {c.name: c for c in connectors}
    sensors += [build_health_sensor(by_name), build_run_failure_sensor(by_name)]
    return dg.Definitions(
        assets=assets,
        asset_checks=asset_checks,
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources=resources or default_resources(),
    )


defs = build_definitions(list(load_connectors().values()))
